//! The admitted events split by what reads them, narrowed to the records the views read.
//!
//! Owns [`Routed`] and [`route`], and the narrow records several views of SPEC §2 read:
//! [`Order`] (`gmv_minute` §2.1, `inventory` §2.3, `sessions` §2.4 and the fraud features of
//! `fraud_alerts` §2.6), [`PaymentRec`] (`payment_status` §2.2, `inventory` §2.3, the fraud
//! features) and the activity kinds that make up sessions (§2.4).
//!
//! It is the only view code that reads a whole [`Event`]: every view downstream sees these
//! narrow records, so a field no view reads goes no further. It computes nothing (no grouping,
//! no join); it only moves fields.

use serde::{Deserialize, Serialize};

use differential_dataflow::AsCollection;
use timely::dataflow::operators::vec::Partition;

use crate::event::{Body, Event, Millis};

use super::{Coll, Key, Time};

/// The order fields the views read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(super) struct Order {
    pub(super) time: Millis,
    /// The logical time the event was admitted at: picks the rule version that judges it.
    pub(super) admitted: Time,
    pub(super) event_id: String,
    pub(super) user_id: String,
    pub(super) total_cents: i64,
    pub(super) currency: String,
    pub(super) device_id: Option<String>,
    pub(super) items: Vec<(String, i64)>,
}

/// The payment fields the views read; ordered by `(time, event_id)` first, which is "latest".
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(super) struct PaymentRec {
    pub(super) time: Millis,
    pub(super) event_id: String,
    pub(super) admitted: Time,
    pub(super) payment_id: String,
    pub(super) order_id: String,
    pub(super) user_id: String,
    pub(super) provider: String,
    pub(super) status: String,
    pub(super) amount_cents: i64,
    pub(super) device_id: Option<String>,
    pub(super) card_fingerprint: Option<String>,
}

/// Activity kinds that make up sessions, in a fixed order so equal-time events sort stably.
pub(super) const PAGE_VIEW: u8 = 0;
pub(super) const ADD_TO_CART: u8 = 1;
pub(super) const ORDER: u8 = 2;

/// What one admitted event contributes to the views, narrowed to the fields they read.
#[derive(Clone)]
pub(super) enum Routed {
    Order(Key, Order),
    Payment(String, PaymentRec),
    Cancel(Key),
    /// `(tenant, sku)` and the change on hand.
    Adjustment(Key, i64),
    /// `(tenant, user)` and `(time, kind)` of a page view or an add to cart.
    Activity(Key, (Millis, u8)),
}

/// Splits the admitted events by what reads them, each moved once into its narrow record:
/// one output per [`Routed`] variant, in declaration order. Handing the whole events to each
/// reader instead cost a clone of every event per extra reader, most of them page views that
/// only sessions read.
pub(super) fn route<'s>(admitted: Coll<'s, (Time, Event)>) -> [Coll<'s, Routed>; 5] {
    let parts = admitted.inner.partition(5, |((at, e), t, r)| {
        let (part, routed) = match e.body {
            Body::OrderPlaced(o) => (
                0,
                Routed::Order(
                    (e.tenant_id, o.order_id),
                    Order {
                        time: e.event_time_ms,
                        admitted: at,
                        event_id: e.event_id,
                        user_id: o.user_id,
                        total_cents: o.total_cents,
                        currency: o.currency,
                        device_id: o.device_id,
                        items: o.items.into_iter().map(|i| (i.sku, i.quantity)).collect(),
                    },
                ),
            ),
            Body::Payment(p) => (
                1,
                Routed::Payment(
                    e.tenant_id,
                    PaymentRec {
                        time: e.event_time_ms,
                        event_id: e.event_id,
                        admitted: at,
                        payment_id: p.payment_id,
                        order_id: p.order_id,
                        user_id: p.user_id,
                        provider: p.provider,
                        status: p.status,
                        amount_cents: p.amount_cents,
                        device_id: p.device_id,
                        card_fingerprint: p.card_fingerprint,
                    },
                ),
            ),
            Body::OrderCancelled(c) => (2, Routed::Cancel((e.tenant_id, c.order_id))),
            Body::InventoryAdjusted(a) => (3, Routed::Adjustment((e.tenant_id, a.sku), a.delta)),
            Body::PageView(p) => (
                4,
                Routed::Activity((e.tenant_id, p.user_id), (e.event_time_ms, PAGE_VIEW)),
            ),
            Body::AddToCart(a) => (
                4,
                Routed::Activity((e.tenant_id, a.user_id), (e.event_time_ms, ADD_TO_CART)),
            ),
        };
        (part, (routed, t, r))
    });
    let mut parts = parts.into_iter().map(|p| p.as_collection());
    std::array::from_fn(|_| parts.next().expect("one stream per part"))
}
