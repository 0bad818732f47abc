//! The `fraud_alerts` view (SPEC §2.6) and the dead letters of failed rule evaluations.
//!
//! Owns the judging: every rule input (the events with their features, from `features`) is
//! spread over shards and joined with every rule deployment; each deployment judges the
//! inputs of its tenants admitted in its range, a batch at a time, with the rule version the
//! registry holds. Alerts keep the earliest flagging event per subject; a failed evaluation
//! becomes a dead letter, kept with its error until a fixed rule is deployed.
//!
//! It is the only view that calls a plugin. It computes no feature itself and never registers a
//! version or changes a deployment: deployments arrive here as data, and the pipeline changes
//! them.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use std::collections::BTreeMap;

use differential_dataflow::AsCollection;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator;

use crate::plugins::RuleInput;
use crate::plugins::registry::{Deployment, RuleInstances, RuleRegistry, VersionId};
use crate::row::{Cell, Row};

use super::features::{order_features, payment_features};
use super::route::{Order, PaymentRec};
use super::{Coll, Diff, Key, Time};

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

pub(super) fn fraud_alerts<'s>(
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
