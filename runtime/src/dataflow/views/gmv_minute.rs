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

use super::route::Order;
use super::{Coll, Key, MINUTE_MS, floor, sum_by};

pub(super) fn gmv_minute<'s>(
    cancelled: Coll<'s, (Key, Order)>,
    live: Coll<'s, (Key, Order)>,
) -> Coll<'s, Row> {
    let bucket = |cancelled: bool| {
        move |((tenant, _), o): (Key, Order)| {
            (
                (tenant, o.currency, floor(o.time, MINUTE_MS)),
                (o.total_cents, cancelled),
            )
        }
    };
    cancelled
        .map(bucket(true))
        .concat(live.map(bucket(false)))
        .reduce(|_key, input, output| {
            let orders = sum_by(input, |_| 1);
            let gmv = sum_by(input, |(total, _)| *total);
            let cancelled = sum_by(input, |(_, c)| i64::from(*c));
            let net = sum_by(input, |(total, c)| if *c { 0 } else { *total });
            output.push(((orders, gmv, cancelled, net), 1));
        })
        .map(
            |((tenant, currency, minute), (orders, gmv, cancelled, net))| {
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
