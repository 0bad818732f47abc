//! The typed event model: what a valid, deduplicated, PCI-masked input becomes.
//!
//! Everything downstream of decoding (plugins, the dataflow, the landing zone) sees only these
//! types. A card number never has a field here: decoding turns it into `card_bin` and
//! `card_last4` before an `Event` exists, so no later stage can leak it.

use serde::{Deserialize, Serialize};

pub use crate::time::Millis;

/// Largest accepted input, in bytes (SPEC §1).
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// How much of one input line or message a source holds: an oversize input up to this is
/// quarantined whole; of a larger one, only its first this many bytes (with reason
/// `oversize`), so no producer can make weir hold a line of any size.
pub const MAX_INPUT_BYTES: usize = 1 << 20;

/// The largest amount, price or discount in cents, and the largest `|delta|` (SPEC §1): far
/// above any real order, and small enough that no per-event arithmetic can overflow.
pub const MAX_CENTS: i64 = 1_000_000_000_000_000;
/// The largest item or cart quantity.
pub const MAX_QUANTITY: i64 = 1_000_000;
/// The earliest event time admitted: 2000-01-01T00:00:00Z.
pub const EARLIEST_EVENT_TIME_MS: Millis = 946_684_800_000;
/// Event times must be before 2100-01-01T00:00:00Z.
pub const END_EVENT_TIME_MS: Millis = 4_102_444_800_000;

/// One valid event.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Event {
    pub tenant_id: String,
    pub event_id: String,
    pub event_time_ms: Millis,
    pub schema_version: u8,
    pub body: Body,
}

/// The per-type part of an event (SPEC §1).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Body {
    PageView(PageView),
    AddToCart(AddToCart),
    OrderPlaced(OrderPlaced),
    OrderCancelled(OrderCancelled),
    Payment(Payment),
    InventoryAdjusted(InventoryAdjusted),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PageView {
    pub user_id: String,
    pub url: String,
    pub sku: Option<String>,
    pub device_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AddToCart {
    pub user_id: String,
    pub sku: String,
    pub quantity: i64,
    pub price_cents: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Item {
    pub sku: String,
    pub quantity: i64,
    pub price_cents: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub user_id: String,
    pub order_id: String,
    pub items: Vec<Item>,
    pub total_cents: i64,
    /// `USD` for schema version 1.
    pub currency: String,
    /// 0 unless a version 2 event says otherwise.
    pub discount_cents: i64,
    pub device_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub user_id: String,
    pub order_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Payment {
    pub user_id: String,
    pub order_id: String,
    pub payment_id: String,
    pub provider: String,
    /// The provider's own word as decoded; the canonical word once `normalize-payments` ran.
    pub status: String,
    /// The provider's word, kept by normalisation when it rewrites `status`.
    pub provider_status: Option<String>,
    pub amount_cents: i64,
    pub device_id: Option<String>,
    pub card_fingerprint: Option<String>,
    /// First six digits of the card number, when the input carried one.
    pub card_bin: Option<String>,
    /// Last four digits of the card number, when the input carried one.
    pub card_last4: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InventoryAdjusted {
    pub sku: String,
    pub delta: i64,
    pub reason: String,
    pub warehouse: Option<String>,
}

/// The wire names of every event type.
pub const TYPE_NAMES: [&str; 6] = [
    "page_view",
    "add_to_cart",
    "order_placed",
    "order_cancelled",
    "payment",
    "inventory_adjusted",
];

impl Body {
    /// The wire name of the event type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Body::PageView(_) => "page_view",
            Body::AddToCart(_) => "add_to_cart",
            Body::OrderPlaced(_) => "order_placed",
            Body::OrderCancelled(_) => "order_cancelled",
            Body::Payment(_) => "payment",
            Body::InventoryAdjusted(_) => "inventory_adjusted",
        }
    }
}

/// Canonical payment statuses (SPEC §1), as the views spell them.
pub mod status {
    pub const PENDING: &str = "pending";
    pub const AUTHORIZED: &str = "authorized";
    pub const CAPTURED: &str = "captured";
    pub const FAILED: &str = "failed";
    pub const REFUNDED: &str = "refunded";
    pub const UNKNOWN: &str = "unknown";
}

impl Event {
    /// The event in the SPEC §1 wire format, with the fields decoding adds (`card_bin`,
    /// `card_last4`) and normalisation adds (`provider_status`) when set. Used where an event
    /// must be shown or stored whole: plugin test vectors and quarantined plugin failures.
    pub fn to_wire(&self) -> serde_json::Value {
        serde_json::from_str(&self.to_wire_json()).expect("to_wire_json writes JSON")
    }

    /// [`Event::to_wire`] as text, members sorted by name as `serde_json` prints a map,
    /// written straight from the fields: the landing zone writes one per admitted event, and
    /// building a JSON tree (a map entry and a copied string per field) cost more than
    /// encoding the Parquet file.
    pub fn to_wire_json(&self) -> String {
        let mut fields: Vec<(&'static str, Wire<'_>)> = Vec::with_capacity(16);
        let time = chrono::DateTime::from_timestamp_millis(self.event_time_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        fields.push(("event_id", Wire::Str(&self.event_id)));
        fields.push(("tenant_id", Wire::Str(&self.tenant_id)));
        fields.push(("type", Wire::Str(self.body.type_name())));
        fields.push(("event_time", time.as_deref().map_or(Wire::Null, Wire::Str)));
        fields.push(("schema_version", Wire::Int(i64::from(self.schema_version))));
        // As in `to_wire`, an absent optional field is left out.
        fn opt<'a>(
            fields: &mut Vec<(&'static str, Wire<'a>)>,
            name: &'static str,
            v: &'a Option<String>,
        ) {
            if let Some(v) = v {
                fields.push((name, Wire::Str(v)));
            }
        }
        match &self.body {
            Body::PageView(p) => {
                opt(&mut fields, "sku", &p.sku);
                opt(&mut fields, "device_id", &p.device_id);
                fields.push(("user_id", Wire::Str(&p.user_id)));
                fields.push(("url", Wire::Str(&p.url)));
            }
            Body::AddToCart(a) => fields.extend([
                ("user_id", Wire::Str(&a.user_id)),
                ("sku", Wire::Str(&a.sku)),
                ("quantity", Wire::Int(a.quantity)),
                ("price_cents", Wire::Int(a.price_cents)),
            ]),
            Body::OrderPlaced(o) => {
                opt(&mut fields, "device_id", &o.device_id);
                fields.extend([
                    ("user_id", Wire::Str(&o.user_id)),
                    ("order_id", Wire::Str(&o.order_id)),
                    ("items", Wire::Items(&o.items)),
                    ("total_cents", Wire::Int(o.total_cents)),
                ]);
                if self.schema_version >= 2 {
                    fields.push(("currency", Wire::Str(&o.currency)));
                    if o.discount_cents != 0 {
                        fields.push(("discount_cents", Wire::Int(o.discount_cents)));
                    }
                }
            }
            Body::OrderCancelled(c) => fields.extend([
                ("user_id", Wire::Str(&c.user_id)),
                ("order_id", Wire::Str(&c.order_id)),
            ]),
            Body::Payment(p) => {
                opt(&mut fields, "provider_status", &p.provider_status);
                opt(&mut fields, "device_id", &p.device_id);
                opt(&mut fields, "card_fingerprint", &p.card_fingerprint);
                opt(&mut fields, "card_bin", &p.card_bin);
                opt(&mut fields, "card_last4", &p.card_last4);
                fields.extend([
                    ("user_id", Wire::Str(&p.user_id)),
                    ("order_id", Wire::Str(&p.order_id)),
                    ("payment_id", Wire::Str(&p.payment_id)),
                    ("provider", Wire::Str(&p.provider)),
                    ("status", Wire::Str(&p.status)),
                    ("amount_cents", Wire::Int(p.amount_cents)),
                ]);
            }
            Body::InventoryAdjusted(a) => {
                opt(&mut fields, "warehouse", &a.warehouse);
                fields.extend([
                    ("sku", Wire::Str(&a.sku)),
                    ("delta", Wire::Int(a.delta)),
                    ("reason", Wire::Str(&a.reason)),
                ]);
            }
        }
        fields.sort_unstable_by_key(|(name, _)| *name);
        let mut out = Vec::with_capacity(512);
        out.push(b'{');
        for (i, (name, value)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_into(&mut out, name);
            out.push(b':');
            match value {
                Wire::Str(s) => json_into(&mut out, s),
                Wire::Int(n) => json_into(&mut out, n),
                Wire::Null => out.extend_from_slice(b"null"),
                Wire::Items(items) => {
                    out.push(b'[');
                    for (j, item) in items.iter().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(b"{\"price_cents\":");
                        json_into(&mut out, &item.price_cents);
                        out.extend_from_slice(b",\"quantity\":");
                        json_into(&mut out, &item.quantity);
                        out.extend_from_slice(b",\"sku\":");
                        json_into(&mut out, &item.sku);
                        out.push(b'}');
                    }
                    out.push(b']');
                }
            }
        }
        out.push(b'}');
        String::from_utf8(out).expect("JSON written from strings is UTF-8")
    }
}

/// One member's value in [`Event::to_wire_json`].
enum Wire<'a> {
    Str(&'a str),
    Int(i64),
    Null,
    Items(&'a [Item]),
}

/// Appends `value` as JSON, escaped exactly as `serde_json` escapes it everywhere else.
fn json_into(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    serde_json::to_writer(&mut *out, value).expect("strings and integers always serialize");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::generator::{GenConfig, Generator};

    #[test]
    fn wire_json_is_to_wire_byte_for_byte() {
        let mut events: Vec<Event> = Generator::new(GenConfig {
            seed: 11,
            tenants: 3,
            start_ms: GenConfig::DEFAULT_START_MS,
        })
        .take(20_000)
        .filter_map(|line| crate::admit::decode::decode(line.as_bytes()).ok())
        .collect();
        let mut kinds = std::collections::BTreeSet::new();
        for e in &events {
            kinds.insert(e.body.type_name());
        }
        assert_eq!(kinds.len(), TYPE_NAMES.len(), "every type is covered");
        // What normalisation adds, and strings that need escaping.
        for e in events.iter_mut().take(2_000) {
            e.event_id.push_str("\"\\\u{1}é\u{2028}");
            if let Body::Payment(p) = &mut e.body {
                p.provider_status = Some("settled\n".into());
            }
        }
        for e in &events {
            assert_eq!(e.to_wire_json(), e.to_wire().to_string(), "{e:?}");
        }
    }
}
