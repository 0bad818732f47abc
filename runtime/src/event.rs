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
