//! The typed event model: what a valid, deduplicated, PCI-masked input becomes.
//!
//! Everything downstream of decoding (plugins, the dataflow, the landing zone) sees only these
//! types. A card number never has a field here: decoding turns it into `card_bin` and
//! `card_last4` before an `Event` exists, so no later stage can leak it.

use serde::{Deserialize, Serialize};

/// Epoch milliseconds, UTC.
pub type Millis = i64;

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
        use serde_json::{Map, Value, json};
        let mut m = Map::new();
        m.insert("event_id".into(), json!(self.event_id));
        m.insert("tenant_id".into(), json!(self.tenant_id));
        m.insert("type".into(), json!(self.body.type_name()));
        let time = chrono::DateTime::from_timestamp_millis(self.event_time_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        m.insert("event_time".into(), json!(time));
        m.insert("schema_version".into(), json!(self.schema_version));
        let mut put = |k: &str, v: Value| {
            if !v.is_null() {
                m.insert(k.into(), v);
            }
        };
        match &self.body {
            Body::PageView(p) => {
                put("user_id", json!(p.user_id));
                put("url", json!(p.url));
                put("sku", json!(p.sku));
                put("device_id", json!(p.device_id));
            }
            Body::AddToCart(a) => {
                put("user_id", json!(a.user_id));
                put("sku", json!(a.sku));
                put("quantity", json!(a.quantity));
                put("price_cents", json!(a.price_cents));
            }
            Body::OrderPlaced(o) => {
                put("user_id", json!(o.user_id));
                put("order_id", json!(o.order_id));
                let items: Vec<Value> = o
                    .items
                    .iter()
                    .map(|i| json!({"sku": i.sku, "quantity": i.quantity, "price_cents": i.price_cents}))
                    .collect();
                put("items", Value::Array(items));
                put("total_cents", json!(o.total_cents));
                if self.schema_version >= 2 {
                    put("currency", json!(o.currency));
                    if o.discount_cents != 0 {
                        put("discount_cents", json!(o.discount_cents));
                    }
                }
                put("device_id", json!(o.device_id));
            }
            Body::OrderCancelled(c) => {
                put("user_id", json!(c.user_id));
                put("order_id", json!(c.order_id));
            }
            Body::Payment(p) => {
                put("user_id", json!(p.user_id));
                put("order_id", json!(p.order_id));
                put("payment_id", json!(p.payment_id));
                put("provider", json!(p.provider));
                put("status", json!(p.status));
                put("provider_status", json!(p.provider_status));
                put("amount_cents", json!(p.amount_cents));
                put("device_id", json!(p.device_id));
                put("card_fingerprint", json!(p.card_fingerprint));
                put("card_bin", json!(p.card_bin));
                put("card_last4", json!(p.card_last4));
            }
            Body::InventoryAdjusted(a) => {
                put("sku", json!(a.sku));
                put("delta", json!(a.delta));
                put("reason", json!(a.reason));
                put("warehouse", json!(a.warehouse));
            }
        }
        Value::Object(m)
    }
}
