//! The PCI scrub: card data masked in everything admission keeps or stores.
//!
//! Valid events are masked while they are decoded ([`super::decode`] calls [`mask_card`]);
//! a rejected input is stored whole in the quarantine, so it is masked here first, the same
//! way. Nothing else in weir may see an unmasked `card_number` or `cvv`.
//!
//! The scrub owns the masking rules and nothing else: it decides no quarantine reason, keeps
//! nothing and writes nothing, so its caller stores exactly what it returns.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Splits a card number into (bin, last4); `None` unless it holds 12–19 digits.
pub(super) fn mask_card(number: &str) -> Option<(String, String)> {
    let digits: String = number.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((
        digits[..6].to_owned(),
        digits[digits.len() - 4..].to_owned(),
    ))
}

/// Makes a rejected input safe to store: the quarantine keeps the input whole except for
/// restricted card data, which is masked exactly as a valid event's would be.
///
/// JSON objects are masked field by field (at any depth). Text that is not JSON cannot be
/// parsed for fields, so any run of 12+ digits keeps only its first six and last four, and the
/// digits of a value following a `cvv` key are starred.
pub fn scrub(raw: &[u8]) -> String {
    // Only a member named `card_number` or `cvv` is masked in JSON. A line without those bytes
    // and without escapes (which could spell them) has nothing to mask if it is JSON, and
    // checking that builds nothing: oversize inputs are ~100 KB each.
    let may_name_card = raw.contains(&b'\\')
        || raw.windows(3).any(|w| w == b"cvv")
        || raw.windows(11).any(|w| w == b"card_number");
    if !may_name_card {
        return match std::str::from_utf8(raw) {
            Ok(text) if serde_json::from_str::<Json>(text).is_ok() => text.to_owned(),
            _ => scrub_text(&String::from_utf8_lossy(raw)),
        };
    }
    if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(raw) {
        if mask_value(&mut value) {
            return value.to_string();
        }
        return String::from_utf8_lossy(raw).into_owned();
    }
    scrub_text(&String::from_utf8_lossy(raw))
}

/// Accepts exactly the documents `serde_json::Value` accepts (both read through
/// `deserialize_any`, so numbers out of range fail alike) and keeps nothing of them.
/// `IgnoredAny` would not do: it skips numbers unchecked.
struct Json;

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct JsonVisitor;
        impl<'de> Visitor<'de> for JsonVisitor {
            type Value = Json;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Json, E> {
                Ok(Json)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Json, E> {
                Ok(Json)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Json, E> {
                Ok(Json)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Json, E> {
                Ok(Json)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Json, E> {
                Ok(Json)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
                Ok(Json)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                while seq.next_element::<Json>()?.is_some() {}
                Ok(Json)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                while map.next_entry::<Json, Json>()?.is_some() {}
                Ok(Json)
            }
        }
        d.deserialize_any(JsonVisitor)
    }
}

/// Masks card fields in place; returns whether anything changed.
fn mask_value(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut changed = map.remove("cvv").is_some();
            if let Some(number) = map.remove("card_number") {
                changed = true;
                if let Some((bin, last4)) = number.as_str().and_then(mask_card) {
                    map.insert("card_bin".into(), Value::String(bin));
                    map.insert("card_last4".into(), Value::String(last4));
                }
            }
            for v in map.values_mut() {
                changed |= mask_value(v);
            }
            changed
        }
        Value::Array(items) => items.iter_mut().fold(false, |c, v| mask_value(v) | c),
        _ => false,
    }
}

fn scrub_text(text: &str) -> String {
    let mut out: Vec<char> = text.chars().collect();
    // Runs of digits, allowing single spaces or dashes between them (as card numbers are written).
    let mut i = 0;
    while i < out.len() {
        if !out[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = vec![];
        let mut end = i;
        while end < out.len() {
            if out[end].is_ascii_digit() {
                digits.push(end);
                end += 1;
            } else if matches!(out[end], ' ' | '-')
                && end + 1 < out.len()
                && out[end + 1].is_ascii_digit()
            {
                end += 1;
            } else {
                break;
            }
        }
        if digits.len() >= 12 {
            for &d in &digits[6..digits.len() - 4] {
                out[d] = '*';
            }
        }
        i = end.max(start + 1);
    }
    let lower: String = out.iter().collect::<String>().to_ascii_lowercase();
    let lower: Vec<char> = lower.chars().collect();
    let mut j = 0;
    while j + 3 <= lower.len() {
        if lower[j..j + 3] == ['c', 'v', 'v'] {
            for c in out.iter_mut().skip(j + 3).take(16) {
                if c.is_ascii_digit() {
                    *c = '*';
                }
            }
        }
        j += 1;
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_masks_json_and_text() {
        let json = r#"{"x":{"card_number":"4111111111111234","cvv":"321"},"y":1}"#;
        let s = scrub(json.as_bytes());
        assert!(!s.contains("4111111111111234") && !s.contains("321"), "{s}");
        assert!(s.contains("411111") && s.contains("1234"));
        let text = r#"{"card_number":"4111 1111 1111 1234","cvv":"321","#;
        let s = scrub(text.as_bytes());
        assert!(
            !s.contains("4111 1111 1111 1234") && !s.contains("321"),
            "{s}"
        );
        assert_eq!(scrub(b"{\"a\":1}"), "{\"a\":1}");
        // An escape can spell a card field's name: such input is parsed, and masked.
        let escaped = r#"{"card\u005fnumber":"4111111111111234","\u0063vv":"321"}"#;
        let s = scrub(escaped.as_bytes());
        assert!(!s.contains("4111111111111234") && !s.contains("321"), "{s}");
        // Invalid UTF-8 inside a JSON string is not JSON: it is scrubbed as text.
        let s = scrub(b"{\"a\":\"\xff 4111111111111234\"}");
        assert!(!s.contains("4111111111111234"), "{s}");
    }
}
