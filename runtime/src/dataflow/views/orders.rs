//! Each order's state: its placements, whether it is cancelled and its status, which
//! `gmv_minute` (§2.1) and `inventory` (§2.3) share.
//!
//! Owns [`Placed`] (the fields of an `order_placed` those two views read), [`OrderRow`] and
//! [`orders`]: one compact record per order holding its placements, the count of its
//! cancellations and the `(time, event_id, status)` of its payment events, so an order costs
//! its own fields once instead of an arranged copy per join with the cancellations and the
//! statuses. It sums nothing: the views do.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::event::{Millis, status};

use super::cold::{ColdTier, Tiered};
use super::compact::{add, changes, stateful};
use super::route::{Order, PaymentRec};
use super::{Coll, Diff, Key};

/// The order fields `gmv_minute` and `inventory` read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(super) struct Placed {
    pub(super) time: Millis,
    pub(super) currency: String,
    pub(super) total_cents: i64,
    pub(super) items: Vec<(String, i64)>,
}

/// One placement of an order with what the order's other events say of it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(super) struct OrderRow {
    pub(super) placed: Placed,
    /// An `order_cancelled` of the same `(tenant_id, order_id)` was admitted (SPEC §2.1).
    pub(super) cancelled: bool,
    /// Not cancelled, and the order's status is `pending` or `authorized` (SPEC §2.3): its
    /// items are reserved.
    pub(super) reserving: bool,
}

/// A payment event of an order: `(time, event_id, status)`, ordered as "latest" is.
type Paid = (Millis, String, String);

/// What reaches an order's state: one of its placements, a cancellation or a payment event.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Fact {
    Placed(Placed),
    Cancelled,
    Paid(Paid),
}

/// One order's placements and payment events with their multiplicities, and its
/// cancellations.
#[derive(Default, Serialize, Deserialize)]
struct OrderState {
    placed: Vec<(Placed, Diff)>,
    cancels: Diff,
    paid: Vec<(Paid, Diff)>,
}

impl OrderState {
    /// What the order contributes: each placement, cancelled if any cancellation names it,
    /// reserving if not and the status of its latest payment event (pending without one)
    /// holds stock.
    fn rows(&self) -> Vec<(OrderRow, Diff)> {
        let cancelled = self.cancels > 0;
        let status = self
            .paid
            .iter()
            .rev()
            .find(|(_, n)| *n > 0)
            .map_or(status::PENDING, |((_, _, s), _)| s.as_str());
        let reserving = !cancelled && (status == status::PENDING || status == status::AUTHORIZED);
        let mut rows: Vec<_> = self
            .placed
            .iter()
            .map(|(p, n)| {
                let row = OrderRow {
                    placed: p.clone(),
                    cancelled,
                    reserving,
                };
                (row, *n)
            })
            .collect();
        rows.sort();
        rows
    }

    fn is_empty(&self) -> bool {
        self.placed.is_empty() && self.cancels == 0 && self.paid.is_empty()
    }
}

/// Every placement of every order with whether that order is cancelled and whether it
/// reserves its items. An order's status is the canonical status of its latest payment
/// event (greatest `(event_time, event_id)`), `pending` without one.
pub(super) fn orders<'s>(
    orders: Coll<'s, (Key, Order)>,
    cancels: Coll<'s, Key>,
    payments: Coll<'s, (String, PaymentRec)>,
    cold: Option<&ColdTier>,
) -> Coll<'s, (Key, OrderRow)> {
    let facts = orders
        .map(|(key, o)| {
            let placed = Placed {
                time: o.time,
                currency: o.currency,
                total_cents: o.total_cents,
                items: o.items,
            };
            (key, Fact::Placed(placed))
        })
        .concat(cancels.map(|key| (key, Fact::Cancelled)))
        .concat(payments.map(|(tenant, p)| {
            (
                (tenant, p.order_id),
                Fact::Paid((p.time, p.event_id, p.status)),
            )
        }));
    stateful(
        facts,
        "Orders",
        Tiered::<OrderState>::new("Orders", cold),
        |states, updates, out| {
            let mut before: HashMap<Key, Vec<(OrderRow, Diff)>> = HashMap::new();
            for ((key, fact), diff) in updates {
                // A cancellation carries no time: it touches the order without making it
                // recent.
                let time = match &fact {
                    Fact::Placed(placed) => placed.time,
                    Fact::Paid((time, _, _)) => *time,
                    Fact::Cancelled => Millis::MIN,
                };
                let state = states.touch(key.clone(), time);
                before.entry(key.clone()).or_insert_with(|| state.rows());
                match fact {
                    Fact::Cancelled => state.cancels += diff,
                    Fact::Placed(placed) => add(&mut state.placed, placed, diff),
                    Fact::Paid(paid) => add(&mut state.paid, paid, diff),
                }
            }
            for (key, old) in before {
                let Some(state) = states.get(&key) else {
                    continue;
                };
                changes(&old, &state.rows(), |row, diff| {
                    out.push(((key.clone(), row), diff));
                });
                if state.is_empty() {
                    states.remove(&key);
                }
            }
            states.sweep();
        },
    )
}
