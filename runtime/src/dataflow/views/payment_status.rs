//! The `payment_status` view (SPEC §2.2): each payment at the status, provider and amount of
//! its latest event, counted and summed per tenant, provider and status.
//!
//! It owns the latest status of each payment and the totals over them; it reads only the
//! `PaymentRec`s `route` narrowed, never a whole event or an order.

use crate::row::{Cell, Row};

use super::compact::sum_groups;
use super::route::PaymentRec;
use super::{Coll, latest};

pub(super) fn payment_status<'s>(payments: Coll<'s, (String, PaymentRec)>) -> Coll<'s, Row> {
    let latest = latest(payments.map(|(tenant, p)| ((tenant, p.payment_id.clone()), p)))
        .map(|((tenant, _), p)| ((tenant, p.provider, p.status), [1, p.amount_cents]));
    sum_groups(latest, "PaymentStatus").map(|((tenant, provider, status), [payments, amount])| {
        vec![
            Cell::Str(tenant),
            Cell::Str(provider),
            Cell::Str(status),
            Cell::Int(payments),
            Cell::Int(amount),
        ]
    })
}
