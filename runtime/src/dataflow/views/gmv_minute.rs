//! The `gmv_minute` view (SPEC §2.1): orders, GMV, cancelled orders and net GMV per tenant,
//! currency and minute of event time.
//!
//! Owns the per-minute grouping; which orders are cancelled is decided by `orders`, which
//! `inventory` shares.
//!
//! It sees only the orders handed to it, each marked cancelled or not, never a cancellation
//! event, and it never converts between currencies: each currency keeps its own rows.

use crate::row::{Cell, Row};

use super::compact::sum_groups;
use super::orders::OrderRow;
use super::{Coll, Key, MINUTE_MS, floor};

pub(super) fn gmv_minute<'s>(orders: Coll<'s, (Key, OrderRow)>) -> Coll<'s, Row> {
    // Per order: [orders, gmv, cancelled, net], summed per minute.
    let orders = orders.map(|((tenant, _), row)| {
        let (o, cancelled) = (row.placed, row.cancelled);
        let net = if cancelled { 0 } else { o.total_cents };
        (
            (tenant, o.currency, floor(o.time, MINUTE_MS)),
            [1, o.total_cents, i64::from(cancelled), net],
        )
    });
    sum_groups(orders, "GmvMinute").map(
        |((tenant, currency, minute), [orders, gmv, cancelled, net])| {
            vec![
                Cell::Str(tenant),
                Cell::Str(currency),
                Cell::Int(minute),
                Cell::Int(orders),
                Cell::Int(gmv),
                Cell::Int(cancelled),
                Cell::Int(net),
            ]
        },
    )
}
