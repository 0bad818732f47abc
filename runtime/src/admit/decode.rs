//! Decode and validate: one input line in, a typed [`Event`] or a quarantine [`Reason`] out.
//!
//! This is the first stage every input passes, and the only one that ever holds a card number:
//! `card_number` becomes `card_bin` + `card_last4` and `cvv` is dropped right here, so PCI data
//! never reaches a plugin, a view, a log line or storage (SPEC §1).
//!
//! Parsing goes straight from bytes into borrowed slots with a hand-written serde visitor: no
//! `serde_json::Value` on this path, and each field keeps enough of its JSON kind to give the
//! exact reason (`missing_field:x`, `wrong_type:x`, `invalid_value:x`). Checks run in a fixed
//! order — size, JSON, then the envelope fields in SPEC order, then the type's fields in SPEC
//! order — so a line with several faults always gets the same reason.

use std::borrow::Cow;
use std::fmt;
use std::ops::RangeInclusive;

use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

use super::scrub::mask_card;
use crate::event::{
    AddToCart, Body, EARLIEST_EVENT_TIME_MS, END_EVENT_TIME_MS, Event, InventoryAdjusted, Item,
    MAX_CENTS, MAX_QUANTITY, Millis, OrderCancelled, OrderPlaced, PageView, Payment,
};

pub use crate::event::MAX_EVENT_BYTES;

/// Why an input was quarantined; `Display` gives the SPEC's machine-readable reason.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    InvalidJson,
    MissingField(&'static str),
    WrongType(&'static str),
    InvalidValue(&'static str),
    UnknownType,
    UnsupportedSchemaVersion,
    Oversize,
    /// A valid event of a tenant not in the configured `[tenants] allow` list.
    UnknownTenant,
    /// A valid event more than the lateness behind its tenant's watermark (SPEC §2.7).
    TooLate,
    /// A transform plugin failed on the event; `kind` is the error variant's stable code.
    PluginError {
        plugin: String,
        kind: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::InvalidJson => f.write_str("invalid_json"),
            Reason::MissingField(name) => write!(f, "missing_field:{name}"),
            Reason::WrongType(name) => write!(f, "wrong_type:{name}"),
            Reason::InvalidValue(name) => write!(f, "invalid_value:{name}"),
            Reason::UnknownType => f.write_str("unknown_type"),
            Reason::UnsupportedSchemaVersion => f.write_str("unsupported_schema_version"),
            Reason::Oversize => f.write_str("oversize"),
            Reason::UnknownTenant => f.write_str("unknown_tenant"),
            Reason::TooLate => f.write_str("too_late"),
            Reason::PluginError { plugin, kind } => write!(f, "plugin_error:{plugin}:{kind}"),
        }
    }
}

/// Decodes, validates and PCI-masks one line (without its newline).
pub fn decode(line: &[u8]) -> Result<Event, Reason> {
    if line.len() > MAX_EVENT_BYTES {
        return Err(Reason::Oversize);
    }
    let raw: RawEvent<'_> = serde_json::from_slice(line).map_err(|_| Reason::InvalidJson)?;
    raw.validate()
}

/// What one JSON member held, with just enough of its kind to name the fault.
#[derive(Debug, Default)]
enum Slot<'a> {
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    /// An integer outside `i64`.
    BigInt,
    Float,
    Bool,
    Array(Vec<RawItem<'a>>),
    Object,
}

struct SlotVisitor {
    /// Whether array elements are parsed as order items (only `items` needs them).
    items: bool,
}

impl<'de> Visitor<'de> for SlotVisitor {
    type Value = Slot<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Slot<'de>, E> {
        Ok(Slot::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Slot<'de>, E> {
        Ok(Slot::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Slot<'de>, E> {
        Ok(Slot::Str(Cow::Owned(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Slot<'de>, E> {
        Ok(Slot::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Slot<'de>, E> {
        Ok(i64::try_from(v).map_or(Slot::BigInt, Slot::Int))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Slot<'de>, E> {
        Ok(Slot::Float)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Slot<'de>, E> {
        Ok(Slot::Bool)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Slot<'de>, E> {
        Ok(Slot::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Slot<'de>, A::Error> {
        let mut out = Vec::new();
        if self.items {
            while let Some(item) = seq.next_element::<RawItem<'de>>()? {
                out.push(item);
            }
        } else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
        }
        Ok(Slot::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Slot<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Slot::Object)
    }
}

impl<'de> DeserializeSeed<'de> for SlotVisitor {
    type Value = Slot<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Slot<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Deserialize<'de> for Slot<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SlotVisitor { items: false })
    }
}

/// One element of `items`: an object's three members, or a note that it was not an object.
#[derive(Debug, Default)]
struct RawItem<'a> {
    is_object: bool,
    sku: Slot<'a>,
    quantity: Slot<'a>,
    price_cents: Slot<'a>,
}

impl<'de> Deserialize<'de> for RawItem<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = RawItem<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an order item")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawItem<'de>, A::Error> {
                let mut item = RawItem {
                    is_object: true,
                    ..RawItem::default()
                };
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        "sku" => item.sku = map.next_value()?,
                        "quantity" => item.quantity = map.next_value()?,
                        "price_cents" => item.price_cents = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(item)
            }
            // Anything that is not an object is a wrong type, reported by validation.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawItem<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawItem::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<RawItem<'de>, E> {
                Ok(RawItem::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawItem<'de>, E> {
                Ok(RawItem::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawItem<'de>, E> {
                Ok(RawItem::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawItem<'de>, E> {
                Ok(RawItem::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawItem<'de>, E> {
                Ok(RawItem::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawItem<'de>, E> {
                Ok(RawItem::default())
            }
        }
        d.deserialize_any(ItemVisitor)
    }
}

/// Every member any event type may carry; unknown members are skipped unparsed.
#[derive(Debug, Default)]
struct RawEvent<'a> {
    event_id: Slot<'a>,
    tenant_id: Slot<'a>,
    type_: Slot<'a>,
    event_time: Slot<'a>,
    schema_version: Slot<'a>,
    user_id: Slot<'a>,
    url: Slot<'a>,
    sku: Slot<'a>,
    device_id: Slot<'a>,
    quantity: Slot<'a>,
    price_cents: Slot<'a>,
    order_id: Slot<'a>,
    items: Slot<'a>,
    total_cents: Slot<'a>,
    currency: Slot<'a>,
    discount_cents: Slot<'a>,
    payment_id: Slot<'a>,
    provider: Slot<'a>,
    status: Slot<'a>,
    amount_cents: Slot<'a>,
    card_fingerprint: Slot<'a>,
    card_number: Slot<'a>,
    card_bin: Slot<'a>,
    card_last4: Slot<'a>,
    delta: Slot<'a>,
    reason: Slot<'a>,
    warehouse: Slot<'a>,
}

impl<'de> Deserialize<'de> for RawEvent<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EventVisitor;
        impl<'de> Visitor<'de> for EventVisitor {
            type Value = RawEvent<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEvent<'de>, A::Error> {
                let mut ev = RawEvent::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        "event_id" => &mut ev.event_id,
                        "tenant_id" => &mut ev.tenant_id,
                        "type" => &mut ev.type_,
                        "event_time" => &mut ev.event_time,
                        "schema_version" => &mut ev.schema_version,
                        "user_id" => &mut ev.user_id,
                        "url" => &mut ev.url,
                        "sku" => &mut ev.sku,
                        "device_id" => &mut ev.device_id,
                        "quantity" => &mut ev.quantity,
                        "price_cents" => &mut ev.price_cents,
                        "order_id" => &mut ev.order_id,
                        "items" => {
                            ev.items = map.next_value_seed(SlotVisitor { items: true })?;
                            continue;
                        }
                        "total_cents" => &mut ev.total_cents,
                        "currency" => &mut ev.currency,
                        "discount_cents" => &mut ev.discount_cents,
                        "payment_id" => &mut ev.payment_id,
                        "provider" => &mut ev.provider,
                        "status" => &mut ev.status,
                        "amount_cents" => &mut ev.amount_cents,
                        "card_fingerprint" => &mut ev.card_fingerprint,
                        "card_number" => &mut ev.card_number,
                        "card_bin" => &mut ev.card_bin,
                        "card_last4" => &mut ev.card_last4,
                        "delta" => &mut ev.delta,
                        "reason" => &mut ev.reason,
                        "warehouse" => &mut ev.warehouse,
                        // `cvv` lands here too: it is skipped unread and so dropped.
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = map.next_value()?;
                }
                Ok(ev)
            }
        }
        // Only an object is an event; any other JSON value fails as invalid JSON.
        d.deserialize_map(EventVisitor)
    }
}

type Check<T> = Result<T, Reason>;

fn string(slot: &Slot<'_>, name: &'static str) -> Check<String> {
    match slot {
        Slot::Absent => Err(Reason::MissingField(name)),
        Slot::Str(s) => Ok(s.as_ref().to_owned()),
        _ => Err(Reason::WrongType(name)),
    }
}

/// A required identifier: a non-empty string.
fn ident(slot: &Slot<'_>, name: &'static str) -> Check<String> {
    let s = string(slot, name)?;
    if s.is_empty() {
        return Err(Reason::InvalidValue(name));
    }
    Ok(s)
}

/// An optional string; `null` counts as absent.
fn opt_string(slot: &Slot<'_>, name: &'static str) -> Check<Option<String>> {
    match slot {
        Slot::Absent | Slot::Null => Ok(None),
        Slot::Str(s) => Ok(Some(s.as_ref().to_owned())),
        _ => Err(Reason::WrongType(name)),
    }
}

/// Cents: prices, totals, discounts and amounts.
const CENTS: RangeInclusive<i64> = 0..=MAX_CENTS;
/// Item and cart quantities.
const QUANTITY: RangeInclusive<i64> = 1..=MAX_QUANTITY;
/// Inventory changes, either way.
const DELTA: RangeInclusive<i64> = -MAX_CENTS..=MAX_CENTS;

fn int(slot: &Slot<'_>, name: &'static str, range: RangeInclusive<i64>) -> Check<i64> {
    match slot {
        Slot::Absent => Err(Reason::MissingField(name)),
        Slot::Int(v) if range.contains(v) => Ok(*v),
        Slot::Int(_) | Slot::BigInt => Err(Reason::InvalidValue(name)),
        _ => Err(Reason::WrongType(name)),
    }
}

fn opt_int(slot: &Slot<'_>, name: &'static str, range: RangeInclusive<i64>) -> Check<Option<i64>> {
    match slot {
        Slot::Absent | Slot::Null => Ok(None),
        other => int(other, name, range).map(Some),
    }
}

/// Whether an event time is inside SPEC §1's range.
fn valid_time(t: Millis) -> bool {
    (EARLIEST_EVENT_TIME_MS..END_EVENT_TIME_MS).contains(&t)
}

fn valid_event_id(s: &str) -> bool {
    (1..=128).contains(&s.chars().count())
}

fn valid_currency(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// Checks a typed event by the rules decoding applies to a line: what a transform emits must
/// be an event that could have been admitted, so no plugin can feed the views a value no
/// producer could (an out-of-range amount, an empty id, a time before 2000).
pub fn validate(event: &Event) -> Check<()> {
    let check = |ok: bool, name: &'static str| {
        if ok {
            Ok(())
        } else {
            Err(Reason::InvalidValue(name))
        }
    };
    check(valid_event_id(&event.event_id), "event_id")?;
    check(valid_tenant(&event.tenant_id), "tenant_id")?;
    check(valid_time(event.event_time_ms), "event_time")?;
    check(matches!(event.schema_version, 1 | 2), "schema_version")?;
    let id = |s: &str, name| check(!s.is_empty(), name);
    let within = |v: i64, range: RangeInclusive<i64>, name| check(range.contains(&v), name);
    match &event.body {
        Body::PageView(p) => id(&p.user_id, "user_id"),
        Body::AddToCart(a) => {
            id(&a.user_id, "user_id")?;
            id(&a.sku, "sku")?;
            within(a.quantity, QUANTITY, "quantity")?;
            within(a.price_cents, CENTS, "price_cents")
        }
        Body::OrderPlaced(o) => {
            id(&o.user_id, "user_id")?;
            id(&o.order_id, "order_id")?;
            check(!o.items.is_empty(), "items")?;
            for item in &o.items {
                id(&item.sku, "items.sku")?;
                within(item.quantity, QUANTITY, "items.quantity")?;
                within(item.price_cents, CENTS, "items.price_cents")?;
            }
            within(o.total_cents, CENTS, "total_cents")?;
            check(valid_currency(&o.currency), "currency")?;
            within(o.discount_cents, CENTS, "discount_cents")
        }
        Body::OrderCancelled(c) => {
            id(&c.user_id, "user_id")?;
            id(&c.order_id, "order_id")
        }
        Body::Payment(p) => {
            id(&p.user_id, "user_id")?;
            id(&p.order_id, "order_id")?;
            id(&p.payment_id, "payment_id")?;
            within(p.amount_cents, CENTS, "amount_cents")
        }
        Body::InventoryAdjusted(a) => {
            id(&a.sku, "sku")?;
            within(a.delta, DELTA, "delta")
        }
    }
}

/// Parses an RFC 3339 timestamp with an offset into epoch milliseconds (floored).
pub fn parse_event_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn valid_tenant(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl RawEvent<'_> {
    fn validate(&self) -> Check<Event> {
        let event_id = string(&self.event_id, "event_id")?;
        if !valid_event_id(&event_id) {
            return Err(Reason::InvalidValue("event_id"));
        }
        let tenant_id = string(&self.tenant_id, "tenant_id")?;
        if !valid_tenant(&tenant_id) {
            return Err(Reason::InvalidValue("tenant_id"));
        }
        let type_name = match &self.type_ {
            Slot::Absent => return Err(Reason::MissingField("type")),
            Slot::Str(s) => s.as_ref(),
            _ => return Err(Reason::WrongType("type")),
        };
        let event_time_ms = match &self.event_time {
            Slot::Absent => return Err(Reason::MissingField("event_time")),
            Slot::Str(s) => parse_event_time(s)
                .filter(|t| valid_time(*t))
                .ok_or(Reason::InvalidValue("event_time"))?,
            _ => return Err(Reason::WrongType("event_time")),
        };
        let schema_version = match &self.schema_version {
            Slot::Absent => return Err(Reason::MissingField("schema_version")),
            Slot::Int(1) => 1,
            Slot::Int(2) => 2,
            Slot::Int(_) | Slot::BigInt => return Err(Reason::UnsupportedSchemaVersion),
            _ => return Err(Reason::WrongType("schema_version")),
        };
        let body = match type_name {
            "page_view" => Body::PageView(PageView {
                user_id: ident(&self.user_id, "user_id")?,
                url: string(&self.url, "url")?,
                sku: opt_string(&self.sku, "sku")?,
                device_id: opt_string(&self.device_id, "device_id")?,
            }),
            "add_to_cart" => Body::AddToCart(AddToCart {
                user_id: ident(&self.user_id, "user_id")?,
                sku: ident(&self.sku, "sku")?,
                quantity: int(&self.quantity, "quantity", QUANTITY)?,
                price_cents: int(&self.price_cents, "price_cents", CENTS)?,
            }),
            "order_placed" => Body::OrderPlaced(self.order_placed(schema_version)?),
            "order_cancelled" => Body::OrderCancelled(OrderCancelled {
                user_id: ident(&self.user_id, "user_id")?,
                order_id: ident(&self.order_id, "order_id")?,
            }),
            "payment" => Body::Payment(self.payment()?),
            "inventory_adjusted" => Body::InventoryAdjusted(InventoryAdjusted {
                sku: ident(&self.sku, "sku")?,
                delta: int(&self.delta, "delta", DELTA)?,
                reason: string(&self.reason, "reason")?,
                warehouse: opt_string(&self.warehouse, "warehouse")?,
            }),
            _ => return Err(Reason::UnknownType),
        };
        Ok(Event {
            tenant_id,
            event_id,
            event_time_ms,
            schema_version,
            body,
        })
    }

    fn order_placed(&self, schema_version: u8) -> Check<OrderPlaced> {
        let user_id = ident(&self.user_id, "user_id")?;
        let order_id = ident(&self.order_id, "order_id")?;
        let items = match &self.items {
            Slot::Absent => return Err(Reason::MissingField("items")),
            Slot::Array(items) if items.is_empty() => return Err(Reason::InvalidValue("items")),
            Slot::Array(items) => items
                .iter()
                .map(|item| {
                    if !item.is_object {
                        return Err(Reason::WrongType("items"));
                    }
                    Ok(Item {
                        sku: ident(&item.sku, "items.sku")?,
                        quantity: int(&item.quantity, "items.quantity", QUANTITY)?,
                        price_cents: int(&item.price_cents, "items.price_cents", CENTS)?,
                    })
                })
                .collect::<Check<Vec<Item>>>()?,
            _ => return Err(Reason::WrongType("items")),
        };
        let total_cents = int(&self.total_cents, "total_cents", CENTS)?;
        let device_id = opt_string(&self.device_id, "device_id")?;
        // Version 1 had neither field; whatever a v1 producer sends there is ignored.
        let (currency, discount_cents) = if schema_version == 1 {
            ("USD".to_owned(), 0)
        } else {
            let currency = string(&self.currency, "currency")?;
            if !valid_currency(&currency) {
                return Err(Reason::InvalidValue("currency"));
            }
            let discount = opt_int(&self.discount_cents, "discount_cents", CENTS)?;
            (currency, discount.unwrap_or(0))
        };
        Ok(OrderPlaced {
            user_id,
            order_id,
            items,
            total_cents,
            currency,
            discount_cents,
            device_id,
        })
    }

    fn payment(&self) -> Check<Payment> {
        let user_id = ident(&self.user_id, "user_id")?;
        let order_id = ident(&self.order_id, "order_id")?;
        let payment_id = ident(&self.payment_id, "payment_id")?;
        let provider = string(&self.provider, "provider")?;
        let status = string(&self.status, "status")?;
        let amount_cents = int(&self.amount_cents, "amount_cents", CENTS)?;
        let device_id = opt_string(&self.device_id, "device_id")?;
        let card_fingerprint = opt_string(&self.card_fingerprint, "card_fingerprint")?;
        let (card_bin, card_last4) = match &self.card_number {
            // Already masked: an event from the landing zone (replay) carries what decoding
            // made of its card number, and nothing more.
            Slot::Absent | Slot::Null => (
                digits(&self.card_bin, "card_bin", 6)?,
                digits(&self.card_last4, "card_last4", 4)?,
            ),
            Slot::Str(number) => {
                let (bin, last4) = mask_card(number).ok_or(Reason::InvalidValue("card_number"))?;
                (Some(bin), Some(last4))
            }
            _ => return Err(Reason::WrongType("card_number")),
        };
        Ok(Payment {
            user_id,
            order_id,
            payment_id,
            provider,
            status,
            provider_status: None,
            amount_cents,
            device_id,
            card_fingerprint,
            card_bin,
            card_last4,
        })
    }
}

/// An optional string of exactly `len` ASCII digits.
fn digits(slot: &Slot<'_>, name: &'static str, len: usize) -> Check<Option<String>> {
    match opt_string(slot, name)? {
        Some(s) if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) => {
            Err(Reason::InvalidValue(name))
        }
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(line: &str) -> String {
        decode(line.as_bytes()).unwrap_err().to_string()
    }

    const ENVELOPE: &str = r#""event_id":"e1","tenant_id":"acme","event_time":"2026-11-21T07:00:00.123Z","schema_version":2"#;

    #[test]
    fn decodes_a_v1_order_with_usd() {
        let line = r#"{"event_id":"e1","tenant_id":"acme","type":"order_placed","event_time":"2026-11-21T08:00:00.5+01:00","schema_version":1,"user_id":"u","order_id":"o","items":[{"sku":"s","quantity":2,"price_cents":5}],"total_cents":10,"currency":"EUR","extra":[1,{"a":2}]}"#;
        let ev = decode(line.as_bytes()).unwrap();
        assert_eq!(ev.event_time_ms, 1_795_244_400_500);
        match ev.body {
            Body::OrderPlaced(o) => {
                assert_eq!(o.currency, "USD");
                assert_eq!(o.items.len(), 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_reason() {
        let cases: &[(&str, &str)] = &[
            ("{not json", "invalid_json"),
            ("[1,2]", "invalid_json"),
            (r#"{"tenant_id":"acme"}"#, "missing_field:event_id"),
            (r#"{"event_id":7}"#, "wrong_type:event_id"),
            (
                r#"{"event_id":"","tenant_id":"a"}"#,
                "invalid_value:event_id",
            ),
            (
                r#"{"event_id":"e","tenant_id":"a b"}"#,
                "invalid_value:tenant_id",
            ),
            (
                &format!(r#"{{{ENVELOPE},"type":"refund"}}"#),
                "unknown_type",
            ),
            (
                r#"{"event_id":"e","tenant_id":"a","type":"page_view","event_time":"2026-11-21T07:00:00Z","schema_version":3}"#,
                "unsupported_schema_version",
            ),
            (
                r#"{"event_id":"e","tenant_id":"a","type":"page_view","event_time":"yesterday","schema_version":1}"#,
                "invalid_value:event_time",
            ),
            (
                r#"{"event_id":"e","tenant_id":"a","type":"page_view","event_time":"2026-11-21T07:00:00","schema_version":1,"user_id":"u","url":"/"}"#,
                "invalid_value:event_time",
            ),
            (
                &format!(
                    r#"{{{ENVELOPE},"type":"add_to_cart","user_id":"u","sku":"s","quantity":"2","price_cents":1}}"#
                ),
                "wrong_type:quantity",
            ),
            (
                &format!(
                    r#"{{{ENVELOPE},"type":"add_to_cart","user_id":"u","sku":"s","quantity":0,"price_cents":1}}"#
                ),
                "invalid_value:quantity",
            ),
            (
                &format!(
                    r#"{{{ENVELOPE},"type":"order_placed","user_id":"u","order_id":"o","items":[],"total_cents":1,"currency":"EUR"}}"#
                ),
                "invalid_value:items",
            ),
            (
                &format!(
                    r#"{{{ENVELOPE},"type":"order_placed","user_id":"u","order_id":"o","items":[{{"sku":"s","quantity":1}}],"total_cents":1,"currency":"EUR"}}"#
                ),
                "missing_field:items.price_cents",
            ),
            (
                &format!(
                    r#"{{{ENVELOPE},"type":"order_placed","user_id":"u","order_id":"o","items":[{{"sku":"s","quantity":1,"price_cents":1}}],"total_cents":1}}"#
                ),
                "missing_field:currency",
            ),
            (
                &format!(
                    r#"{{{ENVELOPE},"type":"order_placed","user_id":"u","order_id":"o","items":[{{"sku":"s","quantity":1,"price_cents":1}}],"total_cents":1,"currency":"eur"}}"#
                ),
                "invalid_value:currency",
            ),
            (
                &format!(
                    r#"{{{ENVELOPE},"type":"payment","user_id":"u","order_id":"o","payment_id":"p","provider":"stripe","status":"succeeded","amount_cents":-1}}"#
                ),
                "invalid_value:amount_cents",
            ),
            (
                &format!(
                    r#"{{{ENVELOPE},"type":"inventory_adjusted","sku":"s","delta":1.5,"reason":"x"}}"#
                ),
                "wrong_type:delta",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(&reason(line), want, "{line}");
        }
        let big = format!(r#"{{"url":"{}"}}"#, "x".repeat(MAX_EVENT_BYTES));
        assert_eq!(reason(&big), "oversize");
    }

    #[test]
    fn card_number_is_masked_and_cvv_dropped() {
        let line = format!(
            r#"{{{ENVELOPE},"type":"payment","user_id":"u","order_id":"o","payment_id":"p","provider":"stripe","status":"succeeded","amount_cents":100,"card_number":"4111 1111 1111 1234","cvv":"987"}}"#
        );
        let ev = decode(line.as_bytes()).unwrap();
        let Body::Payment(p) = &ev.body else { panic!() };
        assert_eq!(p.card_bin.as_deref(), Some("411111"));
        assert_eq!(p.card_last4.as_deref(), Some("1234"));
        let debug = format!("{ev:?}");
        assert!(!debug.contains("4111 1111 1111 1234") && !debug.contains("987"));
    }
}
