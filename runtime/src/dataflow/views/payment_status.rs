//! The `payment_status` view (SPEC §2.2): each payment at the status, provider and amount of
//! its latest event, counted and summed per tenant, provider and status.
//!
//! It owns the latest status of each payment and the totals over them; it reads only the
//! `PaymentRec`s `route` narrowed, never a whole event or an order.

use crate::row::{Cell, Row};

use super::Coll;
use super::cold::ColdTier;
use super::compact::{latest, sum_groups};
use super::route::PaymentRec;

pub(super) fn payment_status<'s>(
    payments: Coll<'s, (String, PaymentRec)>,
    cold: Option<&ColdTier>,
) -> Coll<'s, Row> {
    // Only the fields the view reads are held, ordered by (time, event_id) first: the
    // payment's other fields would be kept for every one of its events.
    let narrow = payments.map(|(tenant, p)| {
        (
            (tenant, p.payment_id),
            (p.time, p.event_id, p.provider, p.status, p.amount_cents),
        )
    });
    let latest = latest(narrow, "LatestPayment", |v| v.0, cold).map(
        |((tenant, _), (_, _, provider, status, amount))| ((tenant, provider, status), [1, amount]),
    );
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
