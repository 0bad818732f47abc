//! Rule versions and their deployments: what runs, since when, and for which events.
//!
//! Every version of a rule ever deployed stays listed with its content hash, scope and the
//! logical times it was deployed at; rollback is a deploy of an earlier version. A
//! [`Deployment`] says which version judges the events admitted in a range of logical times.
//!
//! A rule has at most one global version in force and at most one per tenant. A tenant's own
//! version overrides the global one for that tenant only: the global deployments carry the
//! tenants they no longer judge, and from when (`except`), so deploying, rolling back or
//! retiring a version for one tenant — from now or retroactively — changes nothing for the
//! others. A rule retired for one tenant (it kept failing on that tenant's events) is
//! excepted the same way until a fixed version is deployed.
//! With a lateness (SPEC §2.7), a retroactive deploy at `T` re-judges only the events within
//! the lateness of their tenant's watermark at `T` ([`Split`]): the older ones keep the
//! version that judged them, and the deployments say so, so a restart that judges the whole
//! input again reaches the same verdicts.
//! Deployments are data in the dataflow: changing them at time `T` makes differential
//! re-evaluate exactly the rule inputs whose judge changed, retracting the old verdicts and
//! adding the new ones at `T`.
//!
//! The registry only keeps the record and returns the changes: it never sends a deployment to
//! the workers (the pipeline does), compiles or validates a component (that is
//! [`super::set`]'s), or writes the checkpoint that saves it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::Rule;
use super::wasm::WasmEngine;
use crate::event::Millis;
use crate::time::Time;

/// A version's id in the registry (its position in the list).
pub type VersionId = u64;

/// Makes a fresh instance of a rule version; every worker makes its own.
pub type RuleMaker = Arc<dyn Fn() -> Box<dyn Rule> + Send + Sync>;

/// A rule as a plugin set offers it, ready to be registered as a version.
#[derive(Clone)]
pub struct RuleSpec {
    /// The name its alerts carry in `fraud_alerts.rule`.
    pub name: String,
    /// The content hash (see [`content_hash`]).
    pub hash: String,
    /// `Some(t)`: only tenant `t`'s events reach it.
    pub tenant: Option<String>,
    pub maker: RuleMaker,
}

/// Why the registry refused a deploy or a checkpoint's rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("no rule version {0}")]
    NoVersion(VersionId),
    #[error("rule version {id} ({name} {hash}) of the checkpoint is not registered")]
    NotRegistered {
        id: VersionId,
        name: String,
        hash: String,
    },
    #[error(
        "the checkpoint was taken with rule {saved_name} {saved_hash} as version {id}, this run has {name} {hash}: \
         start with the plugins the checkpoint was taken with, or with a fresh --out"
    )]
    CheckpointMismatch {
        id: VersionId,
        saved_name: String,
        saved_hash: String,
        name: String,
        hash: String,
    },
}

impl RegistryError {
    /// The stable, machine-readable code of the variant.
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::NoVersion(_) => "no_rule_version",
            RegistryError::NotRegistered { .. } => "rule_version_not_registered",
            RegistryError::CheckpointMismatch { .. } => "checkpoint_rule_mismatch",
        }
    }
}

/// How a deploy takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// The new version judges events admitted from the deploy time on; earlier events keep
    /// the verdicts of the version that judged them.
    FromNow,
    /// The new version re-judges every retained event: the views become what they would be
    /// had it always run.
    Retroactive,
}

/// One version of a rule.
#[derive(Clone)]
pub struct RuleVersion {
    pub id: VersionId,
    /// The rule's name: alerts carry it in `fraud_alerts.rule`.
    pub name: String,
    /// FNV-1a of the component bytes (or of the native implementation's name).
    pub hash: String,
    /// `Some(t)`: only tenant `t`'s events reach it.
    pub tenant: Option<String>,
    /// Logical times and modes this version was deployed with.
    pub deployed: Vec<(Time, Mode)>,
    /// When it was retired for failing (it judges nothing admitted from then on).
    pub disabled_at: Option<Time>,
    /// Tenants it was retired for, and from when (a global version that kept failing on one
    /// tenant's events still judges the others).
    pub disabled_for: Vec<(String, Time)>,
    /// The component, for a version uploaded while running (a checkpoint keeps it, since the
    /// configuration cannot bring it back).
    pub component: Option<Arc<[u8]>>,
    /// The test vectors an uploaded version passed: a restart validates it against them
    /// again before it judges anything.
    pub vectors: Option<Arc<str>>,
    maker: RuleMaker,
}

impl RuleVersion {
    pub fn instance(&self) -> Box<dyn Rule> {
        (self.maker)()
    }
}

/// A version judging the events admitted in `[from, until)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Deployment {
    pub name: String,
    pub version: VersionId,
    pub tenant: Option<String>,
    pub from: Time,
    pub until: Time,
    /// A global deployment's tenants judged otherwise from a time on (their own version, or
    /// none after the rule was retired for them), in tenant order.
    #[serde(default)]
    pub except: Vec<(String, Time)>,
    /// The retroactive deploys that split the events this deployment judges: with `true` it
    /// judges only the events the split re-judged (it is that deploy's new version, or came
    /// after it), with `false` only those the split left with their verdicts.
    #[serde(default)]
    pub splits: Vec<(Split, bool)>,
}

/// How a retroactive deploy at `at` shared the events admitted before it between the new
/// version and the old ones, with a lateness: an event of tenant `t` with `event_time` at or
/// after `t`'s cutoff (`W_t(at) − L`, SPEC §2.7) is re-judged, an older one keeps its verdict.
/// The cutoffs are those admission read the lateness rule with at `at`, so the split depends
/// only on the input and the deploy time, never on which worker held what.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Split {
    pub at: Time,
    /// `(tenant, W − L)`, sorted by tenant; a tenant without a watermark at `at` has no event
    /// old enough to keep its verdict.
    pub cutoffs: Vec<(String, Millis)>,
}

impl Split {
    /// A split at `at` with these cutoffs, in any order.
    pub fn new(at: Time, mut cutoffs: Vec<(String, Millis)>) -> Split {
        cutoffs.sort();
        Split { at, cutoffs }
    }

    fn cutoff(&self, tenant: &str) -> Millis {
        self.cutoffs
            .binary_search_by(|(t, _)| t.as_str().cmp(tenant))
            .map_or(Millis::MIN, |i| self.cutoffs[i].1)
    }

    /// Whether the new version of this split judges the event.
    fn rejudges(&self, tenant: &str, admitted: Time, event_time: Millis) -> bool {
        admitted >= self.at || event_time >= self.cutoff(tenant)
    }

    /// This split as it concerns `tenant` alone.
    fn of(&self, tenant: &str) -> Split {
        Split {
            at: self.at,
            cutoffs: self
                .cutoffs
                .iter()
                .filter(|(t, _)| t == tenant)
                .cloned()
                .collect(),
        }
    }

    /// Whether every event `earlier` left with its old verdict, this split leaves too.
    fn leaves_old(&self, earlier: &Split) -> bool {
        earlier.at <= self.at && earlier.cutoffs.iter().all(|(t, c)| self.cutoff(t) >= *c)
    }

    /// Whether it leaves no event with its old verdict (no tenant had anything late).
    fn rejudges_all(&self) -> bool {
        self.cutoffs.iter().all(|(_, c)| *c == Millis::MIN)
    }
}

impl Deployment {
    /// Whether this deployment judges an event of `tenant` with `event_time` admitted at
    /// `admitted`.
    pub fn judges(&self, tenant: &str, admitted: Time, event_time: Millis) -> bool {
        self.from <= admitted
            && admitted < self.until
            && self.tenant.as_deref().is_none_or(|t| t == tenant)
            && !self
                .except
                .iter()
                .any(|(t, since)| t == tenant && admitted >= *since)
            && self
                .splits
                .iter()
                .all(|(s, rejudged)| s.rejudges(tenant, admitted, event_time) == *rejudged)
    }

    /// What of this deployment a retroactive deploy splitting at `split` leaves it: the events
    /// admitted before the split that keep their verdicts. `None` when that is nothing.
    fn keeping_old(&self, split: &Split) -> Option<Deployment> {
        // Left with old verdicts by an earlier split that this one leaves old as a whole (the
        // watermarks only rise, unless a restart raised the lateness): nothing changes.
        let old = |(earlier, rejudged): &(Split, bool)| !rejudged && split.leaves_old(earlier);
        if self.splits.iter().any(old) {
            return Some(self.clone());
        }
        if split.rejudges_all() || self.from >= split.at {
            return None;
        }
        let mut kept = self.clone();
        kept.until = kept.until.min(split.at);
        kept.splits.push((split.clone(), false));
        Some(kept)
    }

    /// Whether it judges anything admitted at or after `at`.
    fn in_force_at(&self, at: Time) -> bool {
        self.until > at
    }

    /// This deployment, no longer judging `tenant` from `since` on (an earlier exception
    /// stands).
    fn excepting(&self, tenant: &str, since: Time) -> Deployment {
        let mut d = self.clone();
        match d.except.iter_mut().find(|(t, _)| t == tenant) {
            Some((_, at)) => *at = (*at).min(since),
            None => {
                d.except.push((tenant.to_owned(), since));
                d.except.sort();
            }
        }
        d
    }
}

/// FNV-1a, 64 bits: stable across runs and machines.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A content hash for listing versions.
pub fn content_hash(bytes: &[u8]) -> String {
    format!("{:016x}", fnv1a(bytes))
}

/// All rule versions, and the deployments in force.
#[derive(Default)]
pub struct RuleRegistry {
    versions: RwLock<Vec<RuleVersion>>,
    active: RwLock<Vec<Deployment>>,
    /// Where versions uploaded while running execute: the configured plugins' engine.
    engine: RwLock<Option<WasmEngine>>,
}

impl RuleRegistry {
    /// Uploaded versions will run on `engine` (so its health record sees their failures).
    pub fn run_uploads_on(&self, engine: WasmEngine) {
        *self.engine.write().unwrap() = Some(engine);
    }

    /// The engine uploaded versions run on, once the pipeline has named one.
    pub fn engine(&self) -> Option<WasmEngine> {
        self.engine.read().unwrap().clone()
    }

    /// Registers a version (not yet deployed); returns its id.
    pub fn register(&self, spec: RuleSpec) -> VersionId {
        let RuleSpec {
            name,
            hash,
            tenant,
            maker,
        } = spec;
        let mut versions = self.versions.write().unwrap();
        let id = versions.len() as VersionId;
        versions.push(RuleVersion {
            id,
            name,
            hash,
            tenant,
            deployed: Vec::new(),
            disabled_at: None,
            disabled_for: Vec::new(),
            component: None,
            vectors: None,
            maker,
        });
        id
    }

    /// As [`RuleRegistry::register`], for a component uploaded while running, with the test
    /// vectors it passed.
    pub fn register_uploaded(
        &self,
        spec: RuleSpec,
        component: Arc<[u8]>,
        vectors: Arc<str>,
    ) -> VersionId {
        let id = self.register(spec);
        let version = &mut self.versions.write().unwrap()[id as usize];
        version.component = Some(component);
        version.vectors = Some(vectors);
        id
    }

    /// What a checkpoint records of the rules: every version and the deployments in force.
    pub fn save(&self) -> SavedRules {
        let versions = self.versions.read().unwrap();
        SavedRules {
            versions: versions
                .iter()
                .map(|v| SavedVersion {
                    name: v.name.clone(),
                    hash: v.hash.clone(),
                    tenant: v.tenant.clone(),
                    deployed: v.deployed.clone(),
                    disabled_at: v.disabled_at,
                    disabled_for: v.disabled_for.clone(),
                    uploaded: v.component.is_some(),
                    vectors: v.vectors.as_deref().map(str::to_owned),
                })
                .collect(),
            active: self.active.read().unwrap().clone(),
        }
    }

    /// Makes the deployments what `saved` recorded; returns the changes to the deployments
    /// collection. The versions must already be registered in the same order (the configured
    /// ones at start, then the uploaded ones put back from the checkpoint).
    pub fn restore(&self, saved: &SavedRules) -> Result<Vec<(Deployment, isize)>, RegistryError> {
        let mut versions = self.versions.write().unwrap();
        for (id, s) in saved.versions.iter().enumerate() {
            let Some(v) = versions.get_mut(id) else {
                return Err(RegistryError::NotRegistered {
                    id: id as VersionId,
                    name: s.name.clone(),
                    hash: s.hash.clone(),
                });
            };
            if v.name != s.name || v.hash != s.hash {
                return Err(RegistryError::CheckpointMismatch {
                    id: id as VersionId,
                    saved_name: s.name.clone(),
                    saved_hash: s.hash.clone(),
                    name: v.name.clone(),
                    hash: v.hash.clone(),
                });
            }
            v.deployed = s.deployed.clone();
            v.disabled_at = s.disabled_at;
            v.disabled_for = s.disabled_for.clone();
        }
        let mut active = self.active.write().unwrap();
        let mut changes: Vec<(Deployment, isize)> = active.drain(..).map(|d| (d, -1)).collect();
        changes.extend(saved.active.iter().cloned().map(|d| (d, 1)));
        *active = saved.active.clone();
        Ok(changes)
    }

    pub fn version(&self, id: VersionId) -> Option<RuleVersion> {
        self.versions.read().unwrap().get(id as usize).cloned()
    }

    /// Every version ever registered, oldest first.
    pub fn list(&self) -> Vec<RuleVersion> {
        self.versions.read().unwrap().clone()
    }

    /// The deployments in force.
    pub fn active(&self) -> Vec<Deployment> {
        self.active.read().unwrap().clone()
    }

    /// Deploys `version` at logical time `at`; returns the changes to the deployments
    /// collection (record, +1 or −1).
    ///
    /// It replaces the version in force for its own scope only: a global version the other
    /// global deployments of its rule, a tenant's version that tenant's. A tenant's version
    /// also takes that tenant out of the rule's global deployments from the time it judges
    /// from; a global version starts out excepting the tenants that have their own.
    /// A retroactive deploy with a `split` (a run with a lateness) re-judges only the events
    /// the split says; the versions it replaces keep judging the others.
    pub fn deploy(
        &self,
        version: VersionId,
        mode: Mode,
        at: Time,
        split: Option<Split>,
    ) -> Result<Vec<(Deployment, isize)>, RegistryError> {
        let split = split.filter(|_| mode == Mode::Retroactive);
        let mut versions = self.versions.write().unwrap();
        let v = versions
            .get_mut(version as usize)
            .ok_or(RegistryError::NoVersion(version))?;
        v.deployed.push((at, mode));
        let (name, tenant) = (v.name.clone(), v.tenant.clone());
        let mut active = self.active.write().unwrap();
        let mut changes = Vec::new();
        let (same, others): (Vec<_>, Vec<_>) = active
            .drain(..)
            .partition(|d| d.name == name && d.tenant == tenant);
        *active = others;
        for old in same {
            // From now: what was admitted before `at` keeps its judge.
            if mode == Mode::FromNow && old.until <= at {
                active.push(old);
                continue;
            }
            let kept = match &split {
                _ if mode == Mode::FromNow => (old.from < at).then(|| Deployment {
                    until: old.until.min(at),
                    ..old.clone()
                }),
                Some(split) => old.keeping_old(split),
                None => None,
            };
            if kept.as_ref() == Some(&old) {
                active.push(old);
                continue;
            }
            changes.push((old, -1));
            if let Some(kept) = kept {
                changes.push((kept.clone(), 1));
                active.push(kept);
            }
        }
        let from = if mode == Mode::FromNow { at } else { 0 };
        let except = match &tenant {
            // The tenants with their own version in force keep it.
            None => {
                let mut except: Vec<(String, Time)> = Vec::new();
                for d in active
                    .iter()
                    .filter(|d| d.name == name && d.in_force_at(at))
                {
                    if let Some(t) = &d.tenant {
                        match except.iter_mut().find(|(e, _)| e == t) {
                            Some((_, since)) => *since = (*since).min(d.from),
                            None => except.push((t.clone(), d.from)),
                        }
                    }
                }
                except.sort();
                except
            }
            // This tenant leaves the global deployments from `from` on; with a split, the
            // global version goes on judging this tenant's events the split leaves old, as a
            // deployment of its own for the tenant.
            Some(t) => {
                let mut left_old = Vec::new();
                for d in active.iter_mut() {
                    let covers = d.name == name && d.tenant.is_none() && d.until > from;
                    let already = d.except.iter().any(|(e, since)| e == t && *since <= from);
                    if covers && !already {
                        if let Some(split) = &split {
                            let since = d
                                .except
                                .iter()
                                .find(|(e, _)| e == t)
                                .map_or(d.until, |(_, since)| (*since).min(d.until));
                            let own = Deployment {
                                tenant: Some(t.clone()),
                                until: since,
                                except: Vec::new(),
                                ..d.clone()
                            };
                            left_old.extend(own.keeping_old(&split.of(t)));
                        }
                        changes.push((d.clone(), -1));
                        *d = d.excepting(t, from);
                        changes.push((d.clone(), 1));
                    }
                }
                for own in left_old {
                    changes.push((own.clone(), 1));
                    active.push(own);
                }
                Vec::new()
            }
        };
        let splits = match split {
            Some(split) if !split.rejudges_all() => vec![(split, true)],
            _ => Vec::new(),
        };
        let new = Deployment {
            name,
            version,
            tenant,
            from,
            until: Time::MAX,
            except,
            splits,
        };
        changes.push((new.clone(), 1));
        active.push(new);
        Ok(changes)
    }
}

impl RuleRegistry {
    /// Retires rule `name` for `tenant`'s events admitted from `at` on (it keeps failing on
    /// them): that tenant's own deployments end at `at` and the global ones except it from
    /// then; other tenants keep being judged. Returns the changes to the deployments
    /// collection, empty if nothing of that name judges the tenant's new events.
    pub fn retire(&self, name: &str, tenant: &str, at: Time) -> Vec<(Deployment, isize)> {
        let mut active = self.active.write().unwrap();
        let mut versions = self.versions.write().unwrap();
        let mut changes = Vec::new();
        for d in active.iter_mut() {
            if d.name != name || d.until <= at {
                continue;
            }
            match d.tenant.as_deref() {
                Some(t) if t == tenant => {
                    changes.push((d.clone(), -1));
                    if let Some(v) = versions.get_mut(d.version as usize) {
                        v.disabled_at = Some(at);
                    }
                    d.until = at;
                    if d.from < at {
                        changes.push((d.clone(), 1));
                    }
                }
                Some(_) => {}
                None => {
                    if d.except
                        .iter()
                        .any(|(t, since)| t == tenant && *since <= at)
                    {
                        continue;
                    }
                    changes.push((d.clone(), -1));
                    if let Some(v) = versions.get_mut(d.version as usize)
                        && !v.disabled_for.iter().any(|(t, _)| t == tenant)
                    {
                        v.disabled_for.push((tenant.to_owned(), at));
                    }
                    *d = d.excepting(tenant, at);
                    changes.push((d.clone(), 1));
                }
            }
        }
        active.retain(|d| d.from < d.until);
        changes
    }
}

/// A rule version as a checkpoint records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedVersion {
    pub name: String,
    pub hash: String,
    pub tenant: Option<String>,
    pub deployed: Vec<(Time, Mode)>,
    pub disabled_at: Option<Time>,
    #[serde(default)]
    pub disabled_for: Vec<(String, Time)>,
    /// Uploaded while running: the checkpoint holds its component, named by `hash`.
    pub uploaded: bool,
    /// The test vectors an uploaded version passed when it was deployed.
    #[serde(default)]
    pub vectors: Option<String>,
}

/// The rules as a checkpoint records them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedRules {
    pub versions: Vec<SavedVersion>,
    pub active: Vec<Deployment>,
}

/// A worker's cache of rule instances by version.
#[derive(Default)]
pub struct RuleInstances {
    instances: HashMap<VersionId, Box<dyn Rule>>,
}

impl RuleInstances {
    /// The instance of `version`, made on first use.
    pub fn get(
        &mut self,
        registry: &RuleRegistry,
        version: VersionId,
    ) -> Option<&mut Box<dyn Rule>> {
        match self.instances.entry(version) {
            std::collections::hash_map::Entry::Occupied(e) => Some(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => {
                Some(e.insert(registry.version(version)?.instance()))
            }
        }
    }
}
