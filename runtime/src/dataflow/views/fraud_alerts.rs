//! The `fraud_alerts` view (SPEC §2.6) and the dead letters of failed rule evaluations.
//!
//! Owns the judging: every rule input (the events with their features, from `features`) is
//! spread over shards and meets every rule deployment; each deployment judges the inputs of
//! its tenants admitted in its range, a batch at a time, with the rule version the registry
//! holds. The judge keeps the deployments and, for a deployment change to re-judge, the
//! inputs within the lateness (all of them without one). Alerts keep the earliest flagging
//! event per subject; a failed evaluation becomes a dead letter, kept with its error until a
//! fixed rule is deployed.
//!
//! It is the only view that calls a plugin. It computes no feature itself and never registers a
//! version or changes a deployment: deployments arrive here as data, and the pipeline changes
//! them.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::Millis;
use crate::plugins::RuleInput;
use crate::plugins::registry::{Deployment, RuleInstances, RuleRegistry, VersionId};
use crate::row::{Cell, Row};

use super::cold::ColdTier;
use super::compact::{Closing, least, stateful};
use super::features::{order_features, payment_features};
use super::route::{Order, PaymentRec};
use super::state::{Saved, decode, encode};
use super::{Coll, Diff, Key, Time};

/// The inputs one rule version judges in a batch, with each input's multiplicity.
#[derive(Default)]
struct Judging {
    name: String,
    inputs: Vec<RuleInput>,
    diffs: Vec<Diff>,
}

/// What reaches the judge on one shard: a rule input with its admission time, or a rule
/// deployment (every deployment reaches every shard).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Judged {
    Input(RuleInput, Time),
    Deploy(Deployment),
}

/// One shard's deployments and the rule inputs a deployment change may still re-judge.
#[derive(Default, Serialize, Deserialize)]
struct Shard {
    deployments: BTreeMap<Deployment, Diff>,
    inputs: HashMap<(RuleInput, Time), Diff>,
}

/// The judge's state on one worker.
struct Judge {
    shards: HashMap<u64, Shard>,
    instances: RuleInstances,
    closing: Closing,
}

impl Saved for Judge {
    /// The rule instances are a cache, made again on the first batch.
    fn save(&mut self) -> Result<Vec<u8>, String> {
        encode(&(&self.shards, &self.closing))
    }

    fn load(&mut self, bytes: &[u8]) -> Result<(), String> {
        let (shards, closing) = decode(bytes)?;
        self.shards = shards;
        self.closing.load_from(closing);
        Ok(())
    }
}

/// Sweeps for inputs past the lateness run never more often than every this many updates.
const SWEEP_AT_LEAST: usize = 1_024;

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
    lateness: Option<Millis>,
    cold: Option<&ColdTier>,
) -> (Coll<'s, Row>, Coll<'s, Row>) {
    // Each input meets every deployment of every rule; a deployment judges the inputs of its
    // tenants admitted in its range. A deployment change re-judges exactly what it covers:
    // the judge holds the inputs within the lateness, and the deployments. A retroactive
    // deploy at T changes the judge only of inputs at or after admission's cutoff at T
    // (`Split`), and every input past it on this worker's clock is past it on admission's.
    let inputs = order_features(orders, lateness, cold)
        .concat(payment_features(payments, lateness, cold))
        .map(|(input, admitted)| (shard(&input.event.event_id), Judged::Input(input, admitted)));
    let deployments =
        deployments.flat_map(|d| (0..RULE_SHARDS).map(move |s| (s, Judged::Deploy(d.clone()))));
    let judge = Judge {
        shards: HashMap::new(),
        instances: RuleInstances::default(),
        closing: Closing::new(lateness, SWEEP_AT_LEAST),
    };
    // Judged a batch at a time: one plugin call per rule version per logical time, each
    // verdict carrying its input's multiplicity (a retraction re-runs the rule and retracts
    // what it said).
    let verdicts = stateful(
        inputs.concat(deployments),
        "JudgeRules",
        judge,
        move |judge, updates, out| {
            let mut by_version: BTreeMap<VersionId, Judging> = BTreeMap::new();
            let mut judging = |d: &Deployment, input: &RuleInput, admitted: Time, diff: Diff| {
                let (tenant, at) = (&input.event.tenant_id, input.event.event_time_ms);
                if diff != 0 && d.judges(tenant, admitted, at) {
                    let judging = by_version.entry(d.version).or_default();
                    judging.name.clone_from(&d.name);
                    judging.inputs.push(input.clone());
                    judging.diffs.push(diff);
                }
            };
            let mut changed = Vec::new();
            let mut arrived = Vec::new();
            for ((shard, judged), diff) in updates {
                match judged {
                    Judged::Input(input, admitted) => arrived.push((shard, input, admitted, diff)),
                    Judged::Deploy(d) => changed.push((shard, d, diff)),
                }
            }
            // Δ(inputs ⋈ deployments) = Δinputs ⋈ deployments before + inputs after ⋈ Δdeployments.
            for (shard, input, admitted, diff) in arrived {
                judge
                    .closing
                    .saw(&input.event.tenant_id, input.event.event_time_ms, diff);
                let shard = judge.shards.entry(shard).or_default();
                for (d, n) in &shard.deployments {
                    judging(d, &input, admitted, diff * n);
                }
                match shard.inputs.entry((input, admitted)) {
                    Entry::Occupied(mut held) => {
                        *held.get_mut() += diff;
                        if *held.get() == 0 {
                            held.remove();
                        }
                    }
                    Entry::Vacant(held) => {
                        held.insert(diff);
                    }
                }
            }
            for (shard, d, diff) in changed {
                let shard = judge.shards.entry(shard).or_default();
                for ((input, admitted), n) in &shard.inputs {
                    judging(&d, input, *admitted, diff * n);
                }
                let count = shard.deployments.entry(d.clone()).or_insert(0);
                *count += diff;
                if *count == 0 {
                    shard.deployments.remove(&d);
                }
            }
            for (version, judging) in by_version {
                let Some(rule) = judge.instances.get(&registry, version) else {
                    continue;
                };
                let results = rule.evaluate(&judging.inputs);
                for ((input, r), result) in judging.inputs.iter().zip(judging.diffs).zip(results) {
                    let key = (input.event.tenant_id.clone(), judging.name.clone());
                    let when = input.event.event_time_ms;
                    match result {
                        Ok(alerts) => {
                            for alert in alerts {
                                let verdict = Verdict::Alert {
                                    subject_id: alert.subject_id,
                                };
                                out.push(((key.clone(), (verdict, when)), r));
                            }
                        }
                        // The event still counts in every view; the evaluation waits in the
                        // dead-letter table for a fixed rule.
                        Err(error) => {
                            let verdict = Verdict::Failed {
                                event_id: input.event.event_id.clone(),
                                error: error.code().to_owned(),
                            };
                            out.push(((key, (verdict, when)), r));
                        }
                    }
                }
            }
            // Inputs past the lateness are never re-judged: their verdicts stand.
            let held = judge.shards.values().map(|s| s.inputs.len()).sum();
            if judge.closing.sweep_due(held) {
                let closing = &judge.closing;
                for shard in judge.shards.values_mut() {
                    shard.inputs.retain(|(input, _), _| {
                        input.event.event_time_ms >= closing.cutoff(&input.event.tenant_id)
                    });
                }
            }
        },
    );
    let alerts = verdicts
        .clone()
        .flat_map(|((tenant, rule), (verdict, time))| match verdict {
            Verdict::Alert { subject_id } => Some(((tenant, rule, subject_id), time)),
            Verdict::Failed { .. } => None,
        });
    let alerts = least(alerts, "FirstAlert").map(|((tenant, rule, subject), time)| {
        vec![
            Cell::Str(tenant),
            Cell::Str(rule),
            Cell::Str(subject),
            Cell::Int(time),
        ]
    });
    let dead_letters = verdicts.flat_map(|((tenant, rule), (verdict, _))| match verdict {
        Verdict::Failed { event_id, error } => Some(((tenant, rule, event_id), error)),
        Verdict::Alert { .. } => None,
    });
    let dead_letters =
        least(dead_letters, "DeadLetter").map(|((tenant, rule, event_id), error)| {
            vec![
                Cell::Str(tenant),
                Cell::Str(rule),
                Cell::Str(event_id),
                Cell::Str(error),
            ]
        });
    (alerts, dead_letters)
}
