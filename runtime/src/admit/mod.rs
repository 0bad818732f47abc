//! Admission: raw lines in, valid deduplicated events out, everything else to quarantine.
//!
//! The stage between a source and the dataflow: decode and validate ([`crate::admit::decode`],
//! which also masks card data), drop repeated `(tenant_id, event_id)` pairs keeping the first
//! in input order, and run the transform plugins. Admission is sequential, so "first in input
//! order" is simply the first one this stage sees.
//!
//! Admission owns no storage: it says where each input went and its caller keeps or lands
//! the quarantine. It must not reach the dataflow or any output.

pub mod decode;
pub mod scrub;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::event::Event;
use crate::plugins::Transform;
use crate::plugins::registry::Mode;
use crate::time::Time;
use decode::Reason;

type Hasher = foldhash::fast::RandomState;

/// The plugin error kind of a transform output that breaks the event contract.
pub const INVALID_OUTPUT: &str = "invalid_output";

/// An input that was not admitted: the (card-scrubbed) input and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    pub raw: String,
    pub reason: String,
}

/// Counters of what admission did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// Input lines seen.
    pub read: u64,
    /// Events that passed validation and dedup and entered the dataflow.
    pub admitted: u64,
    /// Valid copies of an event already admitted.
    pub duplicates: u64,
    /// Quarantined inputs by reason.
    pub quarantined: BTreeMap<String, u64>,
    /// Admitted events by tenant and type.
    pub admitted_by: BTreeMap<(String, &'static str), u64>,
}

impl AdmissionStats {
    pub fn quarantined_total(&self) -> u64 {
        self.quarantined.values().sum()
    }
}

/// The admission stage.
pub struct Admission {
    /// Event ids admitted so far, per tenant: looked up by borrowed `&str` (no key is built
    /// for a duplicate), one allocation per new id, and a hostile tenant's ids only ever
    /// collide with its own. foldhash is seeded per process, so ids cannot be chosen to collide.
    seen: HashMap<Box<str>, HashSet<Box<str>, Hasher>, Hasher>,
    transforms: Vec<Box<dyn Transform>>,
    stats: AdmissionStats,
    retain: bool,
    retained: Vec<Retained>,
    /// The tenants whose events are admitted, when the configuration lists them: any other
    /// tenant's event is quarantined before it claims an id or reaches a plugin, so a
    /// producer spraying tenant ids grows no state.
    allowed: Option<Arc<HashSet<String>>>,
}

impl Admission {
    pub fn new(transforms: Vec<Box<dyn Transform>>) -> Self {
        Admission {
            seen: HashMap::default(),
            transforms,
            stats: AdmissionStats::default(),
            retain: false,
            retained: Vec::new(),
            allowed: None,
        }
    }

    /// Admits only events of `tenants`; others are quarantined as `unknown_tenant`.
    pub fn allow_tenants(&mut self, tenants: Arc<HashSet<String>>) {
        self.allowed = Some(tenants);
    }

    pub fn stats(&self) -> &AdmissionStats {
        &self.stats
    }

    /// Frees an id whose event was not admitted after all.
    fn release(&mut self, tenant: &str, id: &str) {
        if let Some(ids) = self.seen.get_mut(tenant) {
            ids.remove(id);
        }
    }

    /// Records `(tenant, id)`; whether it was new.
    fn first_time(&mut self, tenant: &str, id: &str) -> bool {
        let ids = match self.seen.get_mut(tenant) {
            Some(ids) => ids,
            None => self.seen.entry(tenant.into()).or_default(),
        };
        if ids.contains(id) {
            return false;
        }
        ids.insert(id.into());
        true
    }

    fn reject(&mut self, raw: &[u8], reason: Reason) -> Quarantined {
        let reason = reason.to_string();
        *self.stats.quarantined.entry(reason.clone()).or_default() += 1;
        Quarantined {
            raw: scrub::scrub(raw),
            reason,
        }
    }

    /// Admits a batch of lines at logical time `epoch`: the one entry point of admission.
    ///
    /// Returns the events that enter the dataflow and where every other input went: the
    /// rejected ones with their line index (the caller decides where quarantine lives: a
    /// bounded run keeps it, a durable source lands it with its offsets) and, when
    /// `keep_inputs`, the decoded first-seen inputs before any transform (for the landing
    /// zone). With history retained, each event is kept with what the transforms made of it,
    /// for retroactive swaps.
    pub fn admit<L: AsRef<[u8]>>(
        &mut self,
        lines: &[L],
        epoch: Time,
        keep_inputs: bool,
    ) -> Admitted {
        // First copies claim their id now; a later copy of a claimed id waits until the
        // transforms have judged the claimant: if it fails, the id is free again and the next
        // copy is judged in its place (a producer's retry after a rejected event counts).
        let mut candidates = Vec::with_capacity(lines.len());
        let mut later: Vec<(usize, Event)> = Vec::new();
        let mut rejected = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            let line = line.as_ref();
            self.stats.read += 1;
            match decode::decode(line) {
                Ok(event)
                    if self
                        .allowed
                        .as_ref()
                        .is_some_and(|allowed| !allowed.contains(&event.tenant_id)) =>
                {
                    rejected.push((index, self.reject(line, Reason::UnknownTenant)));
                }
                Ok(event) => {
                    if self.first_time(&event.tenant_id, &event.event_id) {
                        candidates.push((index, event));
                    } else {
                        later.push((index, event));
                    }
                }
                Err(reason) => rejected.push((index, self.reject(line, reason))),
            }
        }
        let mut events = Vec::new();
        let mut kept = Vec::new();
        let mut claimed = Vec::new();
        while !candidates.is_empty() {
            let (origin, inputs): (Vec<usize>, Vec<Event>) = candidates.into_iter().unzip();
            let first = self.retained.len();
            if self.retain {
                self.retained.extend(inputs.iter().map(|input| Retained {
                    admitted: epoch,
                    input: input.clone(),
                    outputs: Vec::new(),
                }));
            }
            let round_kept = keep_inputs.then(|| {
                origin
                    .iter()
                    .copied()
                    .zip(inputs.iter().cloned())
                    .collect::<Vec<_>>()
            });
            let (out, owners, failures) = self.chain(inputs);
            let mut failed = Vec::with_capacity(failures.len());
            for (owner, reason) in failures {
                let index = origin[owner];
                rejected.push((index, self.reject(lines[index].as_ref(), reason)));
                // Failures are rare: the id is read back from the line rather than kept for
                // every event.
                if let Ok(e) = decode::decode(lines[index].as_ref()) {
                    self.release(&e.tenant_id, &e.event_id);
                    failed.push((e.tenant_id, e.event_id));
                }
            }
            if self.retain {
                for (event, owner) in out.iter().zip(&owners) {
                    self.retained[first + owner].outputs.push(event.clone());
                }
            }
            if let Some(round) = round_kept {
                claimed.extend(
                    round
                        .iter()
                        .filter(|(_, e)| {
                            !failed
                                .iter()
                                .any(|(t, id)| *t == e.tenant_id && *id == e.event_id)
                        })
                        .map(|(_, e)| (e.tenant_id.clone(), e.event_id.clone())),
                );
                kept.extend(round);
            }
            events.extend(out);
            candidates = Vec::new();
            if !failed.is_empty() {
                let mut waiting = Vec::with_capacity(later.len());
                for (index, event) in later.drain(..) {
                    let freed = failed
                        .iter()
                        .any(|(t, id)| *t == event.tenant_id && *id == event.event_id);
                    if freed && self.first_time(&event.tenant_id, &event.event_id) {
                        candidates.push((index, event));
                    } else {
                        waiting.push((index, event));
                    }
                }
                later = waiting;
            }
        }
        self.stats.duplicates += later.len() as u64;
        self.count(&events, 1);
        Admitted {
            events,
            inputs: kept,
            rejected,
            claimed,
        }
    }

    /// Restores what a checkpoint recorded: the pairs seen and the counters.
    pub fn restore(
        &mut self,
        seen: impl IntoIterator<Item = (String, String)>,
        stats: AdmissionStats,
    ) {
        for (tenant, id) in seen {
            self.first_time(&tenant, &id);
        }
        self.stats = stats;
    }

    fn count(&mut self, events: &[Event], sign: i64) {
        // Counted under borrowed keys first: one owned key per tenant and type, not per event.
        let mut counts: std::collections::HashMap<(&str, &'static str), i64> =
            std::collections::HashMap::new();
        for event in events {
            *counts
                .entry((event.tenant_id.as_str(), event.body.type_name()))
                .or_default() += sign;
        }
        for ((tenant, kind), delta) in counts {
            let n = self
                .stats
                .admitted_by
                .entry((tenant.to_owned(), kind))
                .or_default();
            *n = n.saturating_add_signed(delta);
        }
        self.stats.admitted = self
            .stats
            .admitted
            .saturating_add_signed(sign * events.len() as i64);
    }

    /// Runs the transforms in order over `inputs`: the events they become, each with the
    /// index of the input it came from, and the inputs that failed with why.
    ///
    /// Every output must be an event that could have been admitted, of its input's tenant:
    /// one that is not fails its input as `plugin_error:<plugin>:invalid_output`.
    fn chain(&mut self, inputs: Vec<Event>) -> (Vec<Event>, Vec<usize>, Vec<(usize, Reason)>) {
        if self.transforms.is_empty() {
            let owners = (0..inputs.len()).collect();
            return (inputs, owners, Vec::new());
        }
        let tenants: Vec<String> = inputs.iter().map(|e| e.tenant_id.clone()).collect();
        let mut owners: Vec<usize> = (0..inputs.len()).collect();
        let mut events = inputs;
        let mut failures = Vec::new();
        for transform in self.transforms.iter_mut() {
            let results = transform.apply(std::mem::take(&mut events));
            let mut next = Vec::with_capacity(owners.len());
            let failure = |kind: &str| Reason::PluginError {
                plugin: transform.name().to_owned(),
                kind: kind.to_owned(),
            };
            for (result, &owner) in results.into_iter().zip(&owners) {
                match result {
                    Ok(out)
                        if out.iter().all(|e| {
                            e.tenant_id == tenants[owner] && decode::validate(e).is_ok()
                        }) =>
                    {
                        next.extend(std::iter::repeat_n(owner, out.len()));
                        events.extend(out);
                    }
                    Ok(_) => failures.push((owner, failure(INVALID_OUTPUT))),
                    Err(error) => failures.push((owner, failure(error.code()))),
                }
            }
            owners = next;
        }
        (events, owners, failures)
    }

    /// Keeps every admitted event with its transform outputs, so a transform can later be
    /// swapped retroactively. Costs a copy of every event.
    pub fn retain_history(&mut self) {
        self.retain = true;
    }

    /// Replaces the transforms of the same name (or appends `transform`). `FromNow`: events
    /// admitted from now on meet it. `Retroactive`: every retained event is transformed again
    /// and the returned updates — `(admitted at, event, ±1)` — turn the old outputs into the
    /// new ones; events that now fail go to quarantine.
    pub fn swap_transform(
        &mut self,
        transform: Box<dyn Transform>,
        mode: Mode,
    ) -> Result<Swapped, AdmitError> {
        let name = transform.name().to_owned();
        self.swap_transforms(&name, vec![transform], mode)
    }

    /// Whether admitted events are retained, so a transform can be swapped retroactively.
    pub fn retains_history(&self) -> bool {
        self.retain
    }

    /// As [`Admission::swap_transform`], for every version of one transform at once:
    /// `group` (each scoped to its tenants) replaces every transform named `name`, where the
    /// first of them ran (or at the end). A transform has a version per tenant scope, all
    /// under one name, so they are swapped together.
    pub fn swap_transforms(
        &mut self,
        name: &str,
        group: Vec<Box<dyn Transform>>,
        mode: Mode,
    ) -> Result<Swapped, AdmitError> {
        if mode == Mode::Retroactive && !self.retain {
            return Err(AdmitError::NoHistory);
        }
        let at = self
            .transforms
            .iter()
            .position(|t| t.name() == name)
            .unwrap_or(self.transforms.len());
        self.transforms.retain(|t| t.name() != name);
        self.transforms.splice(at..at, group);
        if mode == Mode::FromNow {
            return Ok(Swapped::default());
        }
        let mut retained = std::mem::take(&mut self.retained);
        let inputs: Vec<Event> = retained.iter().map(|r| r.input.clone()).collect();
        let (events, owners, failures) = self.chain(inputs);
        let mut fresh: Vec<Vec<Event>> = vec![Vec::new(); retained.len()];
        for (event, owner) in events.into_iter().zip(owners) {
            fresh[owner].push(event);
        }
        let rejected = failures
            .into_iter()
            .map(|(owner, reason)| {
                let raw = retained[owner].input.to_wire().to_string();
                self.reject(raw.as_bytes(), reason)
            })
            .collect();
        let mut updates = Vec::new();
        for (kept, new) in retained.iter_mut().zip(fresh) {
            if kept.outputs == new {
                continue;
            }
            self.count(&kept.outputs, -1);
            self.count(&new, 1);
            updates.extend(kept.outputs.drain(..).map(|e| (kept.admitted, e, -1)));
            updates.extend(new.iter().cloned().map(|e| (kept.admitted, e, 1)));
            kept.outputs = new;
        }
        self.retained = retained;
        Ok(Swapped { updates, rejected })
    }
}

/// What a retroactive transform swap changed.
#[derive(Debug, Default)]
pub struct Swapped {
    /// `(admitted at, event, ±1)`: the old outputs retracted, the new ones added.
    pub updates: Vec<(Time, Event, isize)>,
    /// Retained events the new version fails, for the quarantine.
    pub rejected: Vec<Quarantined>,
}

/// Why admission refused a request.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error("a retroactive transform swap needs the run to retain history")]
    NoHistory,
}

impl AdmitError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AdmitError::NoHistory => "no_history",
        }
    }
}

/// What [`Admission::admit`] made of a batch of lines.
#[derive(Debug, Default)]
pub struct Admitted {
    /// The events that enter the dataflow.
    pub events: Vec<Event>,
    /// Each decoded, first-seen input as it was before the transforms, with its line index.
    pub inputs: Vec<(usize, Event)>,
    /// Each rejected input with its line index, in no particular order.
    pub rejected: Vec<(usize, Quarantined)>,
    /// The `(tenant_id, event_id)` pairs this batch admitted, for a checkpoint's
    /// deduplication state (with `keep_inputs`).
    pub claimed: Vec<(String, String)>,
}

/// An admitted event and what the transforms made of it.
struct Retained {
    admitted: Time,
    input: Event,
    outputs: Vec<Event>,
}
