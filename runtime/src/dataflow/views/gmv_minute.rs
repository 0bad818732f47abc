//! The `gmv_minute` view (SPEC §2.1): orders, GMV, cancelled orders and net GMV per tenant,
//! currency and minute of event time.
//!
//! Owns the per-minute grouping; which orders are cancelled (the semijoin and antijoin with
//! the cancellations) is decided in `build_selected`, where `inventory` shares it.
//!
//! It sees only the orders handed to it, already split into cancelled and live, never a
//! cancellation event, and it never converts between currencies: each currency keeps its own
//! rows.

use crate::row::{Cell, Row};

use super::compact::sum_groups;
use super::route::Order;
use super::{Coll, Key, MINUTE_MS, floor};

pub(super) fn gmv_minute<'s>(
    cancelled: Coll<'s, (Key, Order)>,
    live: Coll<'s, (Key, Order)>,
) -> Coll<'s, Row> {
    // Per order: [orders, gmv, cancelled, net], summed per minute.
    let bucket = |cancelled: bool| {
        move |((tenant, _), o): (Key, Order)| {
            let net = if cancelled { 0 } else { o.total_cents };
            (
                (tenant, o.currency, floor(o.time, MINUTE_MS)),
                [1, o.total_cents, i64::from(cancelled), net],
            )
        }
    };
    let orders = cancelled.map(bucket(true)).concat(live.map(bucket(false)));
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
