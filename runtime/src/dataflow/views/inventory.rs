//! The `inventory` view (SPEC §2.3): on hand, reserved and available per tenant and sku,
//! for every sku an adjustment or an order item names.
//!
//! Owns the per-sku totals: adjustments summed on hand, and the items of the orders that
//! reserve them.
//!
//! It never decides an order's status or whether it is cancelled (`orders` does, for
//! `gmv_minute` too) and never floors available at zero: it is on hand minus reserved,
//! negative when oversold.

use crate::row::{Cell, Row};

use super::compact::sum_groups;
use super::orders::OrderRow;
use super::{Coll, Key};

pub(super) fn inventory<'s>(
    adjustments: Coll<'s, (Key, i64)>,
    orders: Coll<'s, (Key, OrderRow)>,
) -> Coll<'s, Row> {
    // Values are [Δ on hand, reserved]; every sku an order names gets a row even at [0, 0].
    let adjustments = adjustments.map(|(key, delta)| (key, [delta, 0]));
    let items = orders.flat_map(|((tenant, _), row)| {
        let reserving = row.reserving;
        row.placed
            .items
            .into_iter()
            .flat_map(move |(sku, quantity)| {
                let key = (tenant.clone(), sku);
                let reserved = reserving.then(|| (key.clone(), [0, quantity]));
                std::iter::once((key, [0, 0])).chain(reserved)
            })
    });
    sum_groups(adjustments.concat(items), "Inventory").map(
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
