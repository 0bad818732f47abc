//! The fraud features the core maintains exactly (SPEC §2.6), handed with each event to the
//! rule plugins that `fraud_alerts` runs.
//!
//! Owns [`order_features`] (the user's orders in the velocity window, and the count and total
//! of those before the order, for `velocity` and `amount_anomaly`), [`payment_features`] (the
//! distinct cards failed on the device in the card-testing window, for `card_testing`) and
//! the two windows.
//!
//! The features are computed here, never judged: nothing in this file calls a rule or decides
//! what a feature is worth, and the plugin types it builds are plain data (no plugin host, no
//! registry).

use crate::event::{Millis, status};
use crate::plugins::{Features, RuleEvent, RuleEventKind, RuleInput};

use super::route::{Order, PaymentRec};
use super::{Coll, Key, MINUTE_MS, Time};

const VELOCITY_WINDOW_MS: Millis = 10 * MINUTE_MS;
const CARD_TESTING_WINDOW_MS: Millis = 5 * MINUTE_MS;

/// Features of every order: the user's orders in the velocity window and before it.
pub(super) fn order_features<'s>(orders: Coll<'s, (Key, Order)>) -> Coll<'s, (RuleInput, Time)> {
    orders
        .map(|((tenant, order_id), o)| {
            (
                (tenant, o.user_id.clone()),
                (
                    o.time,
                    o.event_id,
                    order_id,
                    o.total_cents,
                    o.device_id,
                    o.admitted,
                ),
            )
        })
        .reduce(|(tenant, user), input, output| {
            // Sorted by time; expand multiplicities so positions count orders.
            let mut times = Vec::with_capacity(input.len());
            let mut prefix = vec![0i128];
            for &(v, count) in input {
                for _ in 0..count {
                    times.push(v.0);
                    prefix.push(prefix[prefix.len() - 1] + i128::from(v.3));
                }
            }
            for &((time, event_id, order_id, total, device, admitted), count) in input {
                let upto = times.partition_point(|&t| t <= *time);
                let window_start = times.partition_point(|&t| t <= *time - VELOCITY_WINDOW_MS);
                let prior = times.partition_point(|&t| t < *time);
                let input = RuleInput {
                    event: RuleEvent {
                        kind: RuleEventKind::Order,
                        tenant_id: tenant.clone(),
                        event_id: event_id.clone(),
                        event_time_ms: *time,
                        user_id: user.clone(),
                        order_id: order_id.clone(),
                        payment_id: String::new(),
                        amount_cents: *total,
                        status: String::new(),
                        device_id: device.clone(),
                        card_fingerprint: None,
                    },
                    features: Features {
                        user_orders_10m: (upto - window_start) as u32,
                        user_prior_orders: prior as u32,
                        user_prior_total_cents: super::saturate(prefix[prior]),
                        device_failed_cards_5m: 0,
                    },
                };
                output.push(((input, *admitted), count));
            }
        })
        .map(|(_, input)| input)
}

/// Features of every failed payment with a device and a card: distinct cards failed on the
/// device in the card-testing window.
pub(super) fn payment_features<'s>(
    payments: Coll<'s, (String, PaymentRec)>,
) -> Coll<'s, (RuleInput, Time)> {
    payments
        .flat_map(|(tenant, p)| {
            let device = p.device_id.clone()?;
            (p.status == status::FAILED && p.card_fingerprint.is_some())
                .then_some(((tenant, device), p))
        })
        .reduce(|(tenant, _device), input, output| {
            for (i, &(p, count)) in input.iter().enumerate() {
                let mut cards: Vec<&str> = input[..=i]
                    .iter()
                    .rev()
                    .take_while(|(q, _)| q.time > p.time - CARD_TESTING_WINDOW_MS)
                    .filter_map(|(q, _)| q.card_fingerprint.as_deref())
                    .collect();
                // Later records with the same time are inside the window too.
                cards.extend(
                    input[i + 1..]
                        .iter()
                        .take_while(|(q, _)| q.time == p.time)
                        .filter_map(|(q, _)| q.card_fingerprint.as_deref()),
                );
                cards.sort_unstable();
                cards.dedup();
                let input = RuleInput {
                    event: RuleEvent {
                        kind: RuleEventKind::Payment,
                        tenant_id: tenant.clone(),
                        event_id: p.event_id.clone(),
                        event_time_ms: p.time,
                        user_id: p.user_id.clone(),
                        order_id: p.order_id.clone(),
                        payment_id: p.payment_id.clone(),
                        amount_cents: p.amount_cents,
                        status: p.status.clone(),
                        device_id: p.device_id.clone(),
                        card_fingerprint: p.card_fingerprint.clone(),
                    },
                    features: Features {
                        device_failed_cards_5m: cards.len() as u32,
                        ..Features::default()
                    },
                };
                output.push(((input, p.admitted), count));
            }
        })
        .map(|(_, input)| input)
}
