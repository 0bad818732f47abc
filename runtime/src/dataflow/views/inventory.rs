//! The `inventory` view (SPEC §2.3): on hand, reserved and available per tenant and sku,
//! for every sku an adjustment or an order item names.
//!
//! Owns the order statuses (that of each order's latest payment event, pending without one)
//! and the reservations of the live orders they leave pending or authorized.
//!
//! It never decides which orders are cancelled (it is handed the live ones, as `gmv_minute` is)
//! and never floors available at zero: it is on hand minus reserved, negative when oversold.

use crate::event::status;
use crate::row::{Cell, Row};

use super::compact::sum_groups;
use super::route::{Order, PaymentRec};
use super::{Coll, Key, latest};

pub(super) fn inventory<'s>(
    adjustments: Coll<'s, (Key, i64)>,
    orders: Coll<'s, (Key, Order)>,
    live_orders: Coll<'s, (Key, Order)>,
    payments: Coll<'s, (String, PaymentRec)>,
) -> Coll<'s, Row> {
    // An order's status is that of its latest payment event; no payment means pending.
    let order_status: Coll<'s, (Key, String)> =
        latest(payments.map(|(tenant, p)| ((tenant, p.order_id), (p.time, p.event_id, p.status))))
            .map(|(key, (_, _, status))| (key, status));
    let live_items = live_orders.map(|(key, o)| (key, o.items));
    let reserving = live_items
        .clone()
        .join(order_status.clone())
        .filter(|(_, (_, status))| status == status::PENDING || status == status::AUTHORIZED)
        .map(|(key, (items, _))| (key, items))
        .concat(live_items.antijoin(order_status.map(|(key, _)| key)));

    // Values are [Δ on hand, reserved]; every sku an order names gets a row even at [0, 0].
    let adjustments = adjustments.map(|(key, delta)| (key, [delta, 0]));
    let seen = orders.flat_map(|((tenant, _), o)| {
        o.items
            .into_iter()
            .map(move |(sku, _)| ((tenant.clone(), sku), [0, 0]))
    });
    let reserved = reserving.flat_map(|((tenant, _), items)| {
        items
            .into_iter()
            .map(move |(sku, quantity)| ((tenant.clone(), sku), [0, quantity]))
    });
    sum_groups(adjustments.concat(seen).concat(reserved), "Inventory").map(
        |((tenant, sku), [on_hand, reserved])| {
            vec![
                Cell::Str(tenant),
                Cell::Str(sku),
                Cell::Int(on_hand),
                Cell::Int(reserved),
                Cell::Int(on_hand.saturating_sub(reserved)),
            ]
        },
    )
}
