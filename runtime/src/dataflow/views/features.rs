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

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::event::{Millis, status};
use crate::plugins::{Features, RuleEvent, RuleEventKind, RuleInput};

use super::compact::stateful;
use super::route::{Order, PaymentRec};
use super::{Coll, Diff, Key, MINUTE_MS, Time};

const VELOCITY_WINDOW_MS: Millis = 10 * MINUTE_MS;
const CARD_TESTING_WINDOW_MS: Millis = 5 * MINUTE_MS;

/// An order as its user's features read it: `(time, event_id, order_id, total, device,
/// admitted)`, in time order.
type Fact = (Millis, String, String, i64, Option<String>, Time);

/// One user's orders that a feature can still read.
#[derive(Default)]
struct UserOrders {
    /// Orders folded into these totals are before every window still computed; they only
    /// count as prior orders.
    folded_count: i128,
    folded_total: i128,
    /// Orders with their multiplicities, in time order.
    hot: BTreeMap<Fact, Diff>,
    /// Orders before this time are final: their features are no longer emitted or retracted
    /// (no admissible order is early enough to change them), they stay in `hot` only as the
    /// velocity window of the later ones.
    final_before: Millis,
    /// The rule inputs last emitted, sorted, with multiplicities: one per hot order not final.
    emitted: Vec<((RuleInput, Time), Diff)>,
}

/// The order features operator's state: each user with orders a feature can still read.
struct Users {
    users: HashMap<Key, UserOrders>,
    /// The greatest event time seen per tenant, never ahead of its watermark.
    seen: HashMap<String, Millis>,
    lateness: Option<Millis>,
    since_sweep: usize,
}

/// Sweeps for final orders run once the updates since the last one outnumber the users
/// held; never more often than every this many updates.
const SWEEP_AT_LEAST: usize = 1_024;

/// Features of every order: the user's orders in the velocity window and before it.
///
/// With a lateness L, an order more than L behind its tenant's watermark W is final (every
/// order admitted later is at `W − L` or after, so none is before it or in its window), and
/// one more than L plus the window behind is folded into the user's prior count and total:
/// what is held per user is the orders of the last L and window, not the history.
pub(super) fn order_features<'s>(
    orders: Coll<'s, (Key, Order)>,
    lateness: Option<Millis>,
) -> Coll<'s, (RuleInput, Time)> {
    let facts = orders.map(|((tenant, order_id), o)| {
        let fact: Fact = (
            o.time,
            o.event_id,
            order_id,
            o.total_cents,
            o.device_id,
            o.admitted,
        );
        ((tenant, o.user_id), fact)
    });
    let state = Users {
        users: HashMap::new(),
        seen: HashMap::new(),
        lateness,
        since_sweep: 0,
    };
    stateful(facts, "OrderFeatures", state, |state, updates, out| {
        state.since_sweep += updates.len();
        let mut touched = HashSet::new();
        for ((key, fact), diff) in updates {
            if diff > 0 {
                let seen = state.seen.entry(key.0.clone()).or_insert(fact.0);
                *seen = (*seen).max(fact.0);
            }
            let user = state
                .users
                .entry(key.clone())
                .or_insert_with(|| UserOrders {
                    final_before: Millis::MIN,
                    ..UserOrders::default()
                });
            let count = user.hot.entry(fact.clone()).or_insert(0);
            *count += diff;
            if *count == 0 {
                user.hot.remove(&fact);
            }
            touched.insert(key);
        }
        for key in touched {
            let Some(user) = state.users.get_mut(&key) else {
                continue;
            };
            let inputs = user_features(&key, user);
            super::compact::changes(&user.emitted, &inputs, |input, diff| {
                out.push((input, diff));
            });
            user.emitted = inputs;
            if user.hot.is_empty() && user.folded_count == 0 {
                state.users.remove(&key);
            }
        }
        if let Some(lateness) = state.lateness
            && state.since_sweep >= state.users.len().max(SWEEP_AT_LEAST)
        {
            state.since_sweep = 0;
            let seen = &state.seen;
            for ((tenant, _), user) in state.users.iter_mut() {
                let cutoff = seen
                    .get(tenant)
                    .map_or(Millis::MIN, |w| w.saturating_sub(lateness));
                finalise(user, cutoff);
            }
        }
    })
}

/// Marks the orders before `cutoff` final and folds those before its window into totals.
fn finalise(user: &mut UserOrders, cutoff: Millis) {
    if cutoff <= user.final_before {
        return;
    }
    user.final_before = cutoff;
    user.emitted
        .retain(|((input, _), _)| input.event.event_time_ms >= cutoff);
    let window_start = cutoff.saturating_sub(VELOCITY_WINDOW_MS);
    while let Some(entry) = user.hot.first_entry() {
        if entry.key().0 >= window_start {
            break;
        }
        let ((_, _, _, total, _, _), count) = entry.remove_entry();
        user.folded_count += count as i128;
        user.folded_total += i128::from(total) * count as i128;
    }
}

/// The rule inputs of a user's orders that are not final, sorted, with multiplicities.
fn user_features((tenant, user_id): &Key, user: &UserOrders) -> Vec<((RuleInput, Time), Diff)> {
    // Expand multiplicities so positions count orders.
    let mut times = Vec::with_capacity(user.hot.len());
    let mut prefix = vec![user.folded_total];
    for (fact, &count) in &user.hot {
        for _ in 0..count.max(0) {
            times.push(fact.0);
            prefix.push(prefix[prefix.len() - 1] + i128::from(fact.3));
        }
    }
    let mut inputs = Vec::new();
    for ((time, event_id, order_id, total, device, admitted), &count) in user.hot.range(
        (
            user.final_before,
            String::new(),
            String::new(),
            i64::MIN,
            None,
            0,
        )..,
    ) {
        let upto = times.partition_point(|&t| t <= *time);
        let window_start = times.partition_point(|&t| t <= *time - VELOCITY_WINDOW_MS);
        let prior = times.partition_point(|&t| t < *time);
        let input = RuleInput {
            event: RuleEvent {
                kind: RuleEventKind::Order,
                tenant_id: tenant.clone(),
                event_id: event_id.clone(),
                event_time_ms: *time,
                user_id: user_id.clone(),
                order_id: order_id.clone(),
                payment_id: String::new(),
                amount_cents: *total,
                status: String::new(),
                device_id: device.clone(),
                card_fingerprint: None,
            },
            features: Features {
                user_orders_10m: (upto - window_start) as u32,
                user_prior_orders: (user.folded_count + prior as i128) as u32,
                user_prior_total_cents: super::saturate(prefix[prior]),
                device_failed_cards_5m: 0,
            },
        };
        inputs.push(((input, *admitted), count));
    }
    inputs.sort();
    inputs
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
