//! The dataflow views: SPEC §2 as differential dataflow over the admitted events.
//!
//! Every view is a function of the collection of admitted events, maintained incrementally:
//! a late event is an insertion at a later logical time, and differential recomputes exactly
//! the groups it touches (the user's sessions, the minute's GMV, the device's failure window),
//! emitting retractions for what no longer holds. Grouped logic runs in `reduce`, which sees
//! each group's whole current contents, so "latest", "sorted by time" and "within a window"
//! are ordinary scans there and stay exact under any arrival order.
//!
//! Fraud features are computed here, in the core, and handed to the rule plugins; rules are
//! pure functions, so re-running one on a retracted input retracts its alert.

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};

use crate::event::{Body, Event, Millis, status};
use std::sync::Arc;

use std::collections::BTreeMap;

use differential_dataflow::AsCollection;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::vec::Partition;

use crate::plugins::registry::{Deployment, RuleInstances, RuleRegistry, VersionId};
use crate::plugins::{Features, RuleEvent, RuleEventKind, RuleInput};
use crate::row::{Cell, Row};

/// Logical time: the epoch in which an event was admitted.
pub type Time = u64;
/// Multiplicity of a record in a collection.
pub type Diff = isize;

type Coll<'s, D> = VecCollection<'s, Time, D, Diff>;

const MINUTE_MS: Millis = 60_000;
const HOUR_MS: Millis = 3_600_000;
const SESSION_GAP_MS: Millis = 30 * MINUTE_MS;
const VELOCITY_WINDOW_MS: Millis = 10 * MINUTE_MS;
const CARD_TESTING_WINDOW_MS: Millis = 5 * MINUTE_MS;

/// `(tenant_id, id)`: the key of most groups.
type Key = (String, String);

/// The order fields the views read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Order {
    time: Millis,
    /// The logical time the event was admitted at: picks the rule version that judges it.
    admitted: Time,
    event_id: String,
    user_id: String,
    total_cents: i64,
    currency: String,
    device_id: Option<String>,
    items: Vec<(String, i64)>,
}

/// The payment fields the views read; ordered by `(time, event_id)` first, which is "latest".
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct PaymentRec {
    time: Millis,
    event_id: String,
    admitted: Time,
    payment_id: String,
    order_id: String,
    user_id: String,
    provider: String,
    status: String,
    amount_cents: i64,
    device_id: Option<String>,
    card_fingerprint: Option<String>,
}

/// One session of a user (SPEC §2 `sessions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Session {
    start: Millis,
    end: Millis,
    events: i64,
    page_views: i64,
    add_to_carts: i64,
    orders: i64,
}

/// Activity kinds that make up sessions, in a fixed order so equal-time events sort stably.
const PAGE_VIEW: u8 = 0;
const ADD_TO_CART: u8 = 1;
const ORDER: u8 = 2;

/// The update streams as rows, in the order of [`crate::row::TABLES`]: the six views, then
/// the dead letters of failed rule evaluations.
pub struct ViewStreams<'s> {
    pub views: Vec<Coll<'s, Row>>,
}

fn floor(t: Millis, unit: Millis) -> Millis {
    t.div_euclid(unit) * unit
}

/// Builds every view over `admitted` (events with the logical time they were admitted at);
/// fraud rules are judged by the versions `deployments` names, looked up in `rules`.
pub fn build<'s>(
    admitted: Coll<'s, (Time, Event)>,
    deployments: Coll<'s, Deployment>,
    rules: Arc<RuleRegistry>,
) -> ViewStreams<'s> {
    build_selected(admitted, deployments, rules, |_| true)
}

/// As [`build`], with only the tables `want` picks (by index in [`crate::row::TABLES`]) and
/// the operators they need; the others stay empty. The per-view benchmarks measure each
/// view's own incremental cost this way.
pub fn build_selected<'s>(
    admitted: Coll<'s, (Time, Event)>,
    deployments: Coll<'s, Deployment>,
    rules: Arc<RuleRegistry>,
    want: impl Fn(usize) -> bool,
) -> ViewStreams<'s> {
    let (w_gmv, w_payments, w_inventory, w_sessions, w_conversion, w_alerts) = (
        want(0),
        want(1),
        want(2),
        want(3),
        want(4),
        want(5) || want(6),
    );
    let [orders, payments, cancels, adjustments, activity] = route(admitted);
    // The tables not wanted stay empty; they hang off the rarest events.
    let nothing = cancels.clone();
    let empty = || nothing.clone().flat_map(|_| None::<Row>);
    let orders: Coll<'s, (Key, Order)> = orders.flat_map(|r| match r {
        Routed::Order(key, order) => Some((key, order)),
        _ => None,
    });
    let payments: Coll<'s, (String, PaymentRec)> = payments.flat_map(|r| match r {
        Routed::Payment(tenant, payment) => Some((tenant, payment)),
        _ => None,
    });
    let cancels: Coll<'s, Key> = cancels.flat_map(|r| match r {
        Routed::Cancel(key) => Some(key),
        _ => None,
    });
    let adjustments: Coll<'s, (Key, i64)> = adjustments.flat_map(|r| match r {
        Routed::Adjustment(key, delta) => Some((key, delta)),
        _ => None,
    });
    // An order is session activity of its user too.
    let activity: Coll<'s, (Key, (Millis, u8))> = activity
        .flat_map(|r| match r {
            Routed::Activity(key, what) => Some((key, what)),
            _ => None,
        })
        .concat(
            orders
                .clone()
                .map(|((tenant, _), o)| ((tenant, o.user_id), (o.time, ORDER))),
        );

    let (cancelled_orders, live_orders) = if w_gmv || w_inventory {
        let cancels = cancels.distinct();
        (
            orders.clone().semijoin(cancels.clone()),
            orders.clone().antijoin(cancels),
        )
    } else {
        let none = || orders.clone().filter(|_| false);
        (none(), none())
    };

    let gmv = if w_gmv {
        gmv_minute(cancelled_orders, live_orders.clone())
    } else {
        empty()
    };
    let payment_status = if w_payments {
        payment_status(payments.clone())
    } else {
        empty()
    };
    let inventory = if w_inventory {
        inventory(adjustments, orders.clone(), live_orders, payments.clone())
    } else {
        empty()
    };
    let sessions = (w_sessions || w_conversion).then(|| sessions(activity));
    let conversion = match &sessions {
        Some(sessions) if w_conversion => conversion_hour(sessions.clone()),
        _ => empty(),
    };
    let (alerts, dead_letters) = if w_alerts {
        fraud_alerts(orders, payments, deployments, rules)
    } else {
        (empty(), empty())
    };

    let session_rows = match sessions {
        Some(sessions) if w_sessions => sessions.map(|((tenant, user), s)| {
            vec![
                Cell::Str(tenant),
                Cell::Str(user),
                Cell::Int(s.start),
                Cell::Int(s.end),
                Cell::Int(s.events),
                Cell::Int(s.page_views),
                Cell::Int(s.add_to_carts),
                Cell::Int(s.orders),
                Cell::Bool(s.orders > 0),
            ]
        }),
        _ => empty(),
    };
    ViewStreams {
        views: vec![
            gmv,
            payment_status,
            inventory,
            session_rows,
            conversion,
            alerts,
            dead_letters,
        ],
    }
}

/// What one admitted event contributes to the views, narrowed to the fields they read.
#[derive(Clone)]
enum Routed {
    Order(Key, Order),
    Payment(String, PaymentRec),
    Cancel(Key),
    /// `(tenant, sku)` and the change on hand.
    Adjustment(Key, i64),
    /// `(tenant, user)` and `(time, kind)` of a page view or an add to cart.
    Activity(Key, (Millis, u8)),
}

/// Splits the admitted events by what reads them, each moved once into its narrow record:
/// one output per [`Routed`] variant, in declaration order. Handing the whole events to each
/// reader instead cost a clone of every event per extra reader, most of them page views that
/// only sessions read.
fn route<'s>(admitted: Coll<'s, (Time, Event)>) -> [Coll<'s, Routed>; 5] {
    let parts = admitted.inner.partition(5, |((at, e), t, r)| {
        let (part, routed) = match e.body {
            Body::OrderPlaced(o) => (
                0,
                Routed::Order(
                    (e.tenant_id, o.order_id),
                    Order {
                        time: e.event_time_ms,
                        admitted: at,
                        event_id: e.event_id,
                        user_id: o.user_id,
                        total_cents: o.total_cents,
                        currency: o.currency,
                        device_id: o.device_id,
                        items: o.items.into_iter().map(|i| (i.sku, i.quantity)).collect(),
                    },
                ),
            ),
            Body::Payment(p) => (
                1,
                Routed::Payment(
                    e.tenant_id,
                    PaymentRec {
                        time: e.event_time_ms,
                        event_id: e.event_id,
                        admitted: at,
                        payment_id: p.payment_id,
                        order_id: p.order_id,
                        user_id: p.user_id,
                        provider: p.provider,
                        status: p.status,
                        amount_cents: p.amount_cents,
                        device_id: p.device_id,
                        card_fingerprint: p.card_fingerprint,
                    },
                ),
            ),
            Body::OrderCancelled(c) => (2, Routed::Cancel((e.tenant_id, c.order_id))),
            Body::InventoryAdjusted(a) => (3, Routed::Adjustment((e.tenant_id, a.sku), a.delta)),
            Body::PageView(p) => (
                4,
                Routed::Activity((e.tenant_id, p.user_id), (e.event_time_ms, PAGE_VIEW)),
            ),
            Body::AddToCart(a) => (
                4,
                Routed::Activity((e.tenant_id, a.user_id), (e.event_time_ms, ADD_TO_CART)),
            ),
        };
        (part, (routed, t, r))
    });
    let mut parts = parts.into_iter().map(|p| p.as_collection());
    std::array::from_fn(|_| parts.next().expect("one stream per part"))
}

/// Σ over a group's values with their multiplicities.
fn sum_by<V>(input: &[(&V, Diff)], f: impl Fn(&V) -> i64) -> i64 {
    input.iter().map(|(v, r)| f(v) * *r as i64).sum()
}

fn gmv_minute<'s>(
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

/// The latest record of each group, by the record's own order.
fn latest<'s, K, V>(records: Coll<'s, (K, V)>) -> Coll<'s, (K, V)>
where
    K: differential_dataflow::ExchangeData + std::hash::Hash,
    V: differential_dataflow::ExchangeData,
{
    records.reduce(|_key, input, output| {
        let (last, _) = input[input.len() - 1];
        output.push((last.clone(), 1));
    })
}

fn payment_status<'s>(payments: Coll<'s, (String, PaymentRec)>) -> Coll<'s, Row> {
    latest(payments.map(|(tenant, p)| ((tenant, p.payment_id.clone()), p)))
        .map(|((tenant, _), p)| ((tenant, p.provider, p.status), p.amount_cents))
        .reduce(|_key, input, output| {
            output.push(((sum_by(input, |_| 1), sum_by(input, |a| *a)), 1));
        })
        .map(|((tenant, provider, status), (payments, amount))| {
            vec![
                Cell::Str(tenant),
                Cell::Str(provider),
                Cell::Str(status),
                Cell::Int(payments),
                Cell::Int(amount),
            ]
        })
}

fn inventory<'s>(
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

    // Values are (Δ on hand, reserved); every sku an order names gets a row even at (0, 0).
    let adjustments = adjustments.map(|(key, delta)| (key, (delta, 0i64)));
    let seen = orders.flat_map(|((tenant, _), o)| {
        o.items
            .into_iter()
            .map(move |(sku, _)| ((tenant.clone(), sku), (0i64, 0i64)))
    });
    let reserved = reserving.flat_map(|((tenant, _), items)| {
        items
            .into_iter()
            .map(move |(sku, quantity)| ((tenant.clone(), sku), (0i64, quantity)))
    });
    adjustments
        .concat(seen)
        .concat(reserved)
        .reduce(|_key, input, output| {
            output.push(((sum_by(input, |v| v.0), sum_by(input, |v| v.1)), 1));
        })
        .map(|((tenant, sku), (on_hand, reserved))| {
            vec![
                Cell::Str(tenant),
                Cell::Str(sku),
                Cell::Int(on_hand),
                Cell::Int(reserved),
                Cell::Int(on_hand - reserved),
            ]
        })
}

/// Sessions from each user's activity: `(time, kind)` of page views, adds to cart and orders.
fn sessions<'s>(activity: Coll<'s, (Key, (Millis, u8))>) -> Coll<'s, (Key, Session)> {
    activity.reduce(|_key, input, output| {
        // Values arrive sorted by time: one scan splits them at gaps over 30 minutes.
        let mut current: Option<Session> = None;
        for &(&(time, kind), count) in input {
            let count = count as i64;
            let session = match current.as_mut() {
                Some(s) if time - s.end <= SESSION_GAP_MS => s,
                _ => {
                    if let Some(done) = current.take() {
                        output.push((done, 1));
                    }
                    current.insert(Session {
                        start: time,
                        end: time,
                        events: 0,
                        page_views: 0,
                        add_to_carts: 0,
                        orders: 0,
                    })
                }
            };
            session.end = time;
            session.events += count;
            match kind {
                PAGE_VIEW => session.page_views += count,
                ADD_TO_CART => session.add_to_carts += count,
                _ => session.orders += count,
            }
        }
        output.extend(current.map(|s| (s, 1)));
    })
}

fn conversion_hour<'s>(sessions: Coll<'s, (Key, Session)>) -> Coll<'s, Row> {
    sessions
        .map(|((tenant, _), s)| ((tenant, floor(s.start, HOUR_MS)), s.orders > 0))
        .reduce(|_key, input, output| {
            output.push(((sum_by(input, |_| 1), sum_by(input, |c| i64::from(*c))), 1));
        })
        .map(|((tenant, hour), (sessions, converted))| {
            vec![
                Cell::Str(tenant),
                Cell::Int(hour),
                Cell::Int(sessions),
                Cell::Int(converted),
            ]
        })
}

/// Features of every order: the user's orders in the velocity window and before it.
fn order_features<'s>(orders: Coll<'s, (Key, Order)>) -> Coll<'s, (RuleInput, Time)> {
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
            let mut prefix = vec![0i64];
            for &(v, count) in input {
                for _ in 0..count {
                    times.push(v.0);
                    prefix.push(prefix[prefix.len() - 1] + v.3);
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
                        user_prior_total_cents: prefix[prior],
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
fn payment_features<'s>(payments: Coll<'s, (String, PaymentRec)>) -> Coll<'s, (RuleInput, Time)> {
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

/// The inputs one rule version judges in a batch, with each input's time and multiplicity.
#[derive(Default)]
struct Judging {
    name: String,
    inputs: Vec<RuleInput>,
    updates: Vec<(Time, Diff)>,
}

/// What one rule evaluation left: an alert, or a failure to dead-letter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Verdict {
    Alert { subject_id: String },
    Failed { event_id: String, error: String },
}

/// Rule inputs are spread over this many shards; every rule deployment is joined with each.
const RULE_SHARDS: u64 = 64;

/// A stable shard of an event id (FNV-1a), the same on every worker and every run.
fn shard(event_id: &str) -> u64 {
    crate::plugins::registry::fnv1a(event_id.as_bytes()) % RULE_SHARDS
}

fn fraud_alerts<'s>(
    orders: Coll<'s, (Key, Order)>,
    payments: Coll<'s, (String, PaymentRec)>,
    deployments: Coll<'s, Deployment>,
    registry: Arc<RuleRegistry>,
) -> (Coll<'s, Row>, Coll<'s, Row>) {
    // Each input meets every deployment of every rule; a deployment judges the inputs of its
    // tenants admitted in its range. A deployment change re-judges exactly what it covers.
    let inputs = order_features(orders)
        .concat(payment_features(payments))
        .map(|(input, admitted)| (shard(&input.event.event_id), (input, admitted)));
    let deployments = deployments.flat_map(|d| (0..RULE_SHARDS).map(move |s| (s, d.clone())));
    // Judged a batch at a time: one plugin call per rule version per batch of updates, each
    // verdict carrying its input's logical time and multiplicity (a retraction re-runs the
    // rule and retracts what it said).
    let verdicts = inputs
        .join(deployments)
        .inner
        .unary(Pipeline, "JudgeRules", move |_, _| {
            let mut instances = RuleInstances::default();
            move |input, output| {
                input.for_each_time(|time, data| {
                    let mut by_version: BTreeMap<VersionId, Judging> = BTreeMap::new();
                    for batch in data {
                        for ((_, ((rule_input, admitted), deployment)), t, r) in batch.drain(..) {
                            if !deployment.judges(&rule_input.event.tenant_id, admitted) {
                                continue;
                            }
                            let judging = by_version.entry(deployment.version).or_default();
                            judging.name = deployment.name;
                            judging.inputs.push(rule_input);
                            judging.updates.push((t, r));
                        }
                    }
                    let mut session = output.session(&time);
                    for (version, judging) in by_version {
                        let Some(rule) = instances.get(&registry, version) else {
                            continue;
                        };
                        let results = rule.evaluate(&judging.inputs);
                        for ((input, (t, r)), result) in
                            judging.inputs.iter().zip(judging.updates).zip(results)
                        {
                            let key = (input.event.tenant_id.clone(), judging.name.clone());
                            let when = input.event.event_time_ms;
                            match result {
                                Ok(alerts) => {
                                    for alert in alerts {
                                        let verdict = Verdict::Alert {
                                            subject_id: alert.subject_id,
                                        };
                                        session.give(((key.clone(), (verdict, when)), t, r));
                                    }
                                }
                                // The event still counts in every view; the evaluation waits
                                // in the dead-letter table for a fixed rule.
                                Err(error) => {
                                    let verdict = Verdict::Failed {
                                        event_id: input.event.event_id.clone(),
                                        error: error.code().to_owned(),
                                    };
                                    session.give(((key, (verdict, when)), t, r));
                                }
                            }
                        }
                    }
                });
            }
        })
        .container::<Vec<_>>()
        .as_collection();
    let alerts = verdicts
        .clone()
        .flat_map(|((tenant, rule), (verdict, time))| match verdict {
            Verdict::Alert { subject_id } => Some(((tenant, rule, subject_id), time)),
            Verdict::Failed { .. } => None,
        })
        .reduce(|_key, input, output| output.push((*input[0].0, 1)))
        .map(|((tenant, rule, subject), time)| {
            vec![
                Cell::Str(tenant),
                Cell::Str(rule),
                Cell::Str(subject),
                Cell::Int(time),
            ]
        });
    let dead_letters = verdicts
        .flat_map(|((tenant, rule), (verdict, _))| match verdict {
            Verdict::Failed { event_id, error } => Some(((tenant, rule, event_id), error)),
            Verdict::Alert { .. } => None,
        })
        .reduce(|_key, input, output| output.push((input[0].0.clone(), 1)))
        .map(|((tenant, rule, event_id), error)| {
            vec![
                Cell::Str(tenant),
                Cell::Str(rule),
                Cell::Str(event_id),
                Cell::Str(error),
            ]
        });
    (alerts, dead_letters)
}
