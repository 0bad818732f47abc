//! The fraud features the core maintains exactly (SPEC §2.6), handed with each event to the
//! rule plugins that `fraud_alerts` runs.
//!
//! Owns [`order_features`] (the user's orders in the velocity window, and the count and total
//! of those before the order, for `velocity` and `amount_anomaly`), [`payment_features`] (the
//! distinct cards failed on the device in the card-testing window, for `card_testing`), the
//! two windows, and the windowed state both keep per group: the facts a feature can still
//! read, with those past the lateness made final and folded away.
//!
//! The features are computed here, never judged: nothing in this file calls a rule or decides
//! what a feature is worth, and the plugin types it builds are plain data (no plugin host, no
//! registry).

use std::collections::{BTreeMap, HashSet};

use crate::event::{Millis, status};
use crate::plugins::{Features, RuleEvent, RuleEventKind, RuleInput};

use serde::{Deserialize, Serialize};

use super::cold::{ColdTier, Tiered};
use super::compact::{Closing, changes, stateful};
use super::route::{Order, PaymentRec};
use super::state::{Saved, decode, encode};
use super::{Coll, Diff, Key, MINUTE_MS, Time};

const VELOCITY_WINDOW_MS: Millis = 10 * MINUTE_MS;
const CARD_TESTING_WINDOW_MS: Millis = 5 * MINUTE_MS;

/// An order as its user's features read it: `(time, event_id, order_id, total, device,
/// admitted)`, in time order.
type OrderFact = (Millis, String, String, i64, Option<String>, Time);

/// Rule inputs with their admission times and multiplicities, sorted.
type Inputs = Vec<((RuleInput, Time), Diff)>;

/// One group's facts (a user's orders, a device's failed payments) that a feature can still
/// read.
#[derive(Serialize, Deserialize)]
#[serde(bound(serialize = "F: Serialize", deserialize = "F: Ord + Deserialize<'de>"))]
struct Recent<F> {
    /// Facts folded away are before every window still computed: they only count as prior
    /// orders.
    folded_count: i128,
    folded_total: i128,
    /// Facts with their multiplicities, in time order.
    facts: BTreeMap<F, Diff>,
    /// Facts before this time are final: their features are no longer emitted or retracted
    /// (no admissible event is early enough to change them); they stay in `facts` only as
    /// the window of later ones.
    final_before: Millis,
    /// The rule inputs last emitted, sorted, with multiplicities: one per fact not final.
    emitted: Inputs,
}

impl<F> Default for Recent<F> {
    fn default() -> Self {
        Recent {
            folded_count: 0,
            folded_total: 0,
            facts: BTreeMap::new(),
            final_before: Millis::MIN,
            emitted: Vec::new(),
        }
    }
}

/// How one feature reads its groups' facts.
struct Feature<F> {
    name: &'static str,
    window: Millis,
    time: fn(&F) -> Millis,
    /// Whether folded facts still count (as prior orders), so a group keeps its totals.
    counts_prior: bool,
    /// What a folded fact adds to the folded total.
    weight: fn(&F) -> i64,
    /// The rule inputs of the facts not final, sorted, with multiplicities.
    inputs: fn(&Key, &Recent<F>) -> Inputs,
}

/// A windowed feature's state on one worker: each group with facts a feature can still read.
struct Groups<F> {
    groups: Tiered<Recent<F>>,
    closing: Closing,
}

impl<F> Saved for Groups<F>
where
    F: Ord + Serialize + serde::de::DeserializeOwned,
{
    fn save(&mut self) -> Result<Vec<u8>, String> {
        encode(&(&self.closing, self.groups.save()?))
    }

    fn load(&mut self, bytes: &[u8]) -> Result<(), String> {
        let (closing, groups): (Closing, Vec<u8>) = decode(bytes)?;
        self.closing.load_from(closing);
        self.groups.load(&groups)
    }
}

/// Sweeps for final facts run never more often than every this many updates; the floor is
/// low because failed payments are rare.
const SWEEP_AT_LEAST: usize = 64;

/// The rule inputs of a windowed feature over each group's facts (keyed `(tenant, _)`).
///
/// With a lateness L, a fact more than L behind its tenant's watermark W is final (every
/// event admitted later is at `W − L` or after, so none is before it or in its window), and
/// one more than L plus the window behind leaves (folded into the group's prior count and
/// total where the feature counts them): what is held per group is its facts of the last L
/// and window, not the history. A group no event has touched for the cold tier's idle time
/// goes `cold` (with its prior count and total) until one does.
fn windowed<'s, F>(
    facts: Coll<'s, (Key, F)>,
    feature: Feature<F>,
    lateness: Option<Millis>,
    cold: Option<&ColdTier>,
) -> Coll<'s, (RuleInput, Time)>
where
    F: differential_dataflow::ExchangeData,
{
    let state = Groups {
        groups: Tiered::new(feature.name, cold),
        closing: Closing::new(lateness, SWEEP_AT_LEAST),
    };
    stateful(facts, feature.name, state, move |state, updates, out| {
        let mut touched = HashSet::new();
        for ((key, fact), diff) in updates {
            let time = (feature.time)(&fact);
            state.closing.saw(&key.0, time, diff);
            let group = state.groups.touch(key.clone(), time);
            let count = group.facts.entry(fact.clone()).or_insert(0);
            *count += diff;
            if *count == 0 {
                group.facts.remove(&fact);
            }
            touched.insert(key);
        }
        for key in touched {
            let Some(group) = state.groups.get_mut(&key) else {
                continue;
            };
            let inputs = (feature.inputs)(&key, group);
            changes(&group.emitted, &inputs, |input, diff| {
                out.push((input, diff))
            });
            group.emitted = inputs;
            if group.facts.is_empty() && (group.folded_count == 0 || !feature.counts_prior) {
                state.groups.remove(&key);
            }
        }
        if state.closing.sweep_due(state.groups.len()) {
            let closing = &state.closing;
            state.groups.retain(|(tenant, _), group| {
                finalise(group, closing.cutoff(tenant), &feature);
                !group.facts.is_empty() || (feature.counts_prior && group.folded_count != 0)
            });
        }
        state.groups.sweep();
    })
}

/// Marks the facts before `cutoff` final and folds those before its window away.
fn finalise<F: Ord>(group: &mut Recent<F>, cutoff: Millis, feature: &Feature<F>) {
    if cutoff <= group.final_before {
        return;
    }
    group.final_before = cutoff;
    group
        .emitted
        .retain(|((input, _), _)| input.event.event_time_ms >= cutoff);
    let window_start = cutoff.saturating_sub(feature.window);
    while let Some(entry) = group.facts.first_entry() {
        if (feature.time)(entry.key()) >= window_start {
            break;
        }
        let (fact, count) = entry.remove_entry();
        group.folded_count += count as i128;
        group.folded_total += i128::from((feature.weight)(&fact)) * count as i128;
    }
}

/// Features of every order: the user's orders in the velocity window and before it.
pub(super) fn order_features<'s>(
    orders: Coll<'s, (Key, Order)>,
    lateness: Option<Millis>,
    cold: Option<&ColdTier>,
) -> Coll<'s, (RuleInput, Time)> {
    let facts = orders.map(|((tenant, order_id), o)| {
        let fact: OrderFact = (
            o.time,
            o.event_id,
            order_id,
            o.total_cents,
            o.device_id,
            o.admitted,
        );
        ((tenant, o.user_id), fact)
    });
    let feature = Feature {
        name: "OrderFeatures",
        window: VELOCITY_WINDOW_MS,
        time: |f: &OrderFact| f.0,
        counts_prior: true,
        weight: |f: &OrderFact| f.3,
        inputs: user_features,
    };
    windowed(facts, feature, lateness, cold)
}

/// The rule inputs of a user's orders that are not final, sorted, with multiplicities.
fn user_features((tenant, user_id): &Key, user: &Recent<OrderFact>) -> Inputs {
    // Expand multiplicities so positions count orders.
    let mut times = Vec::with_capacity(user.facts.len());
    let mut prefix = vec![user.folded_total];
    for (fact, &count) in &user.facts {
        for _ in 0..count.max(0) {
            times.push(fact.0);
            prefix.push(prefix[prefix.len() - 1] + i128::from(fact.3));
        }
    }
    let not_final = (
        user.final_before,
        String::new(),
        String::new(),
        i64::MIN,
        None,
        0,
    );
    let mut inputs = Vec::new();
    for ((time, event_id, order_id, total, device, admitted), &count) in
        user.facts.range(not_final..)
    {
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
    lateness: Option<Millis>,
    cold: Option<&ColdTier>,
) -> Coll<'s, (RuleInput, Time)> {
    let facts = payments.flat_map(|(tenant, p)| {
        let device = p.device_id.clone()?;
        (p.status == status::FAILED && p.card_fingerprint.is_some())
            .then_some(((tenant, device), p))
    });
    let feature = Feature {
        name: "PaymentFeatures",
        window: CARD_TESTING_WINDOW_MS,
        time: |p: &PaymentRec| p.time,
        counts_prior: false,
        weight: |_| 0,
        inputs: device_features,
    };
    windowed(facts, feature, lateness, cold)
}

/// The rule inputs of a device's failed payments that are not final, sorted, with
/// multiplicities.
fn device_features((tenant, _): &Key, device: &Recent<PaymentRec>) -> Inputs {
    let facts: Vec<(&PaymentRec, Diff)> = device.facts.iter().map(|(p, n)| (p, *n)).collect();
    let mut inputs = Vec::new();
    for (i, &(p, count)) in facts.iter().enumerate() {
        if p.time < device.final_before {
            continue;
        }
        let mut cards: Vec<&str> = facts[..=i]
            .iter()
            .rev()
            .take_while(|(q, _)| q.time > p.time - CARD_TESTING_WINDOW_MS)
            .filter_map(|(q, _)| q.card_fingerprint.as_deref())
            .collect();
        // Later records with the same time are inside the window too.
        cards.extend(
            facts[i + 1..]
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
        inputs.push(((input, p.admitted), count));
    }
    inputs.sort();
    inputs
}
