//! Admission: raw lines in, valid deduplicated events out, everything else to quarantine.
//!
//! The stage between a source and the dataflow: decode and validate ([`crate::admit::decode`],
//! which also masks card data), quarantine what is too late, drop repeated
//! `(tenant_id, event_id)` pairs keeping the first in input order, and run the transform
//! plugins. Admission is sequential, so "first in input order" is simply the first one this
//! stage sees.
//!
//! **Lateness** (SPEC §2.7). Each tenant has a watermark: the greatest `event_time` among its
//! events admitted at logical times *before* the current one. Per tenant, so one shop's clock
//! never makes another's events late; per logical time, so the decision depends only on the
//! input and where logical times close, not on how admission is split into calls. An event
//! more than the lateness behind its tenant's watermark is quarantined as `too_late` before
//! it claims an id, so dedup only has to remember ids within the lateness of the watermark:
//! an older id is forgotten, and a copy of it is `too_late` anyway.
//!
//! Admission owns no storage: it says where each input went and its caller keeps or lands
//! the quarantine. It must not reach the dataflow or any output.

pub mod decode;
pub mod scrub;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::event::{Event, Millis};
use crate::plugins::Transform;
use crate::plugins::registry::{Mode, Split};
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
    /// Event ids admitted, per tenant, each with its event's time (it is forgotten once that is
    /// more than the lateness behind the watermark): looked up by borrowed `&str` (no key is
    /// built for a duplicate), one allocation per new id, and a hostile tenant's ids only ever
    /// collide with its own. foldhash is seeded per process, so ids cannot be chosen to collide.
    seen: HashMap<Box<str>, HashMap<Box<str>, Millis, Hasher>, Hasher>,
    /// The lateness rule and the watermarks it reads.
    clock: Watermarks,
    /// Ids remembered after the last sweep of forgotten ones, and claimed since: a sweep runs
    /// once the claims outnumber the survivors, so its cost is amortised over the claims.
    kept_at_sweep: usize,
    claims_since_sweep: usize,
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
            clock: Watermarks::default(),
            kept_at_sweep: 0,
            claims_since_sweep: 0,
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

    /// Quarantines as `too_late` every event more than `lateness` behind its tenant's
    /// watermark; `None` admits any event time and remembers every id.
    pub fn set_lateness(&mut self, lateness: Option<Millis>) {
        self.clock.lateness = lateness;
    }

    /// Each tenant's watermark, counting every event admitted so far (what a checkpoint
    /// records: the events after it are admitted at later logical times).
    pub fn watermarks(&self) -> Vec<(String, Millis)> {
        self.clock.all()
    }

    /// How a retroactive rule deploy at `at` splits the events admitted before it: each
    /// tenant's cutoff of the lateness rule at `at`. `None` without a lateness (every event is
    /// re-judged).
    pub fn split_at(&self, at: Time) -> Option<Split> {
        let lateness = self.clock.lateness?;
        // The events admitted at the clock's own time count from the next one on.
        let marks = if at > self.clock.epoch {
            self.clock.all()
        } else {
            let closed = self.clock.closed.iter();
            closed.map(|(t, m)| (t.to_string(), *m)).collect()
        };
        let cutoffs = marks
            .into_iter()
            .map(|(t, m)| (t, m.saturating_sub(lateness)))
            .collect();
        Some(Split::new(at, cutoffs))
    }

    /// Puts back the watermarks a checkpoint recorded.
    pub fn restore_watermarks(&mut self, marks: impl IntoIterator<Item = (String, Millis)>) {
        for (tenant, mark) in marks {
            self.clock.raise_now(&tenant, mark);
        }
    }

    /// Frees an id whose event was not admitted after all.
    fn release(&mut self, tenant: &str, id: &str) {
        if let Some(ids) = self.seen.get_mut(tenant) {
            ids.remove(id);
        }
    }

    /// Records `(tenant, id)` of an event at `time`; whether it was new. An id whose event is
    /// before `forgotten_before` (the tenant's [`Watermarks::cutoff`]) is forgotten, whether
    /// or not a sweep has removed it yet, so when sweeps run never changes what is admitted.
    fn first_time(
        &mut self,
        tenant: &str,
        id: &str,
        time: Millis,
        forgotten_before: Millis,
    ) -> bool {
        let ids = match self.seen.get_mut(tenant) {
            Some(ids) => ids,
            None => self.seen.entry(tenant.into()).or_default(),
        };
        match ids.get_mut(id) {
            Some(kept) if *kept >= forgotten_before => false,
            Some(kept) => {
                *kept = time;
                true
            }
            None => {
                ids.insert(id.into(), time);
                self.claims_since_sweep += 1;
                true
            }
        }
    }

    /// Drops the ids no admissible event can repeat, once enough were claimed since the last
    /// sweep that it pays for itself.
    fn sweep(&mut self) {
        if self.clock.lateness.is_none()
            || self.claims_since_sweep < self.kept_at_sweep.max(SWEEP_AT_LEAST)
        {
            return;
        }
        let mut kept = 0;
        for (tenant, ids) in self.seen.iter_mut() {
            let cutoff = self.clock.cutoff(tenant);
            ids.retain(|_, time| *time >= cutoff);
            kept += ids.len();
        }
        self.seen.retain(|_, ids| !ids.is_empty());
        let clock = &self.clock;
        self.retained.retain(|r| clock.retains(r));
        self.kept_at_sweep = kept;
        self.claims_since_sweep = 0;
    }

    /// Whether an id of `tenant`'s whose event is at `time` still counts for deduplication.
    pub fn remembers(&self, tenant: &str, time: Millis) -> bool {
        time >= self.clock.cutoff(tenant)
    }

    /// Ids remembered for deduplication, across tenants.
    pub fn remembered_ids(&self) -> usize {
        self.seen.values().map(HashMap::len).sum()
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
        self.clock.close_before(epoch);
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
                    // One lookup of the tenant's cutoff serves the lateness check and dedup.
                    let cutoff = self.clock.cutoff(&event.tenant_id);
                    if event.event_time_ms < cutoff {
                        rejected.push((index, self.reject(line, Reason::TooLate)));
                    } else if self.first_time(
                        &event.tenant_id,
                        &event.event_id,
                        event.event_time_ms,
                        cutoff,
                    ) {
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
            let marks = Marks::of(&inputs);
            let (out, owners, failures) = self.chain(inputs);
            marks.raise(&mut self.clock, &failures);
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
                        .map(|(_, e)| (e.tenant_id.clone(), e.event_id.clone(), e.event_time_ms)),
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
                    if freed
                        && self.first_time(
                            &event.tenant_id,
                            &event.event_id,
                            event.event_time_ms,
                            self.clock.cutoff(&event.tenant_id),
                        )
                    {
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
        self.sweep();
        Admitted {
            events,
            inputs: kept,
            rejected,
            claimed,
        }
    }

    /// The ids deduplication still remembers, with their events' times (what a checkpoint's
    /// state holds).
    pub fn saved_ids(&self) -> Vec<(String, String, Millis)> {
        let mut ids = Vec::with_capacity(self.remembered_ids());
        for (tenant, kept) in &self.seen {
            ids.extend(
                kept.iter()
                    .filter(|(_, time)| self.remembers(tenant, **time))
                    .map(|(id, time)| (tenant.to_string(), id.to_string(), *time)),
            );
        }
        ids
    }

    /// Restores what a checkpoint recorded: the pairs seen, each with its event's time, and
    /// the counters.
    pub fn restore(
        &mut self,
        seen: impl IntoIterator<Item = (String, String, Millis)>,
        stats: AdmissionStats,
    ) {
        for (tenant, id, time) in seen {
            let kept = self.seen.entry(tenant.into()).or_default();
            let time = kept.get(id.as_str()).map_or(time, |t| (*t).max(time));
            kept.insert(id.into(), time);
        }
        self.kept_at_sweep = self.remembered_ids();
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
    /// swapped retroactively. Costs a copy of every event within the lateness (of every
    /// event without one): a retroactive swap re-evaluates the events within the lateness.
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
        // Only events within the lateness are transformed again: the views have closed what
        // is older (SPEC §2.7), and no later event can reach it either.
        retained.retain(|r| self.clock.retains(r));
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
    /// The `(tenant_id, event_id)` pairs this batch admitted, each with its event's time, for
    /// a checkpoint's deduplication state (with `keep_inputs`).
    pub claimed: Vec<(String, String, Millis)>,
}

/// Ids claimed since the last sweep before one runs, however few are kept.
const SWEEP_AT_LEAST: usize = 1 << 16;

/// The lateness, and each tenant's watermark: `closed` counts the events admitted at logical
/// times before `epoch`, which is what the rule reads; `rising` those admitted at `epoch`.
#[derive(Debug, Default)]
struct Watermarks {
    lateness: Option<Millis>,
    epoch: Time,
    closed: HashMap<Box<str>, Millis, Hasher>,
    rising: HashMap<Box<str>, Millis, Hasher>,
}

impl Watermarks {
    /// Folds what was admitted before `epoch` into the watermarks the rule reads.
    fn close_before(&mut self, epoch: Time) {
        if epoch <= self.epoch {
            return;
        }
        self.epoch = epoch;
        for (tenant, mark) in self.rising.drain() {
            let closed = self.closed.entry(tenant).or_insert(mark);
            *closed = (*closed).max(mark);
        }
    }

    /// Events of `tenant` before this time are too late (and their ids forgotten); with no
    /// lateness or no watermark yet, none is.
    fn cutoff(&self, tenant: &str) -> Millis {
        match (self.lateness, self.closed.get(tenant)) {
            (Some(lateness), Some(mark)) => mark.saturating_sub(lateness),
            _ => Millis::MIN,
        }
    }

    /// As [`Watermarks::cutoff`], counting the events of the current logical time too: no
    /// view has closed state an event at or after it belongs to.
    fn cutoff_now(&self, tenant: &str) -> Millis {
        let mark = match (self.closed.get(tenant), self.rising.get(tenant)) {
            (Some(a), Some(b)) => Some((*a).max(*b)),
            (a, b) => a.or(b).copied(),
        };
        match (self.lateness, mark) {
            (Some(lateness), Some(mark)) => mark.saturating_sub(lateness),
            _ => Millis::MIN,
        }
    }

    /// Whether a retained event and what the transforms made of it are all within the
    /// lateness, so a retroactive swap may still change them.
    fn retains(&self, kept: &Retained) -> bool {
        std::iter::once(&kept.input)
            .chain(&kept.outputs)
            .all(|e| e.event_time_ms >= self.cutoff_now(&e.tenant_id))
    }

    /// An admitted event of `tenant` at `time`: it raises the watermark from the next logical
    /// time on.
    fn raise(&mut self, tenant: &str, time: Millis) {
        match self.rising.get_mut(tenant) {
            Some(mark) => *mark = (*mark).max(time),
            None => {
                self.rising.insert(tenant.into(), time);
            }
        }
    }

    /// A watermark restored from a checkpoint, in force at once.
    fn raise_now(&mut self, tenant: &str, time: Millis) {
        let closed = self.closed.entry(tenant.into()).or_insert(time);
        *closed = (*closed).max(time);
    }

    fn all(&self) -> Vec<(String, Millis)> {
        let mut all: HashMap<&str, Millis> = HashMap::new();
        for (tenant, mark) in self.closed.iter().chain(&self.rising) {
            let m = all.entry(tenant).or_insert(*mark);
            *m = (*m).max(*mark);
        }
        let mut all: Vec<(String, Millis)> =
            all.into_iter().map(|(t, m)| (t.to_owned(), m)).collect();
        all.sort();
        all
    }
}

/// The tenant and time of each input of one round, to raise the watermarks by those the
/// transforms pass: one owned tenant name per distinct tenant, not per event.
struct Marks {
    tenants: Vec<String>,
    of: Vec<(u32, Millis)>,
}

impl Marks {
    fn of(inputs: &[Event]) -> Marks {
        let mut index: HashMap<&str, u32, Hasher> = HashMap::default();
        let mut tenants = Vec::new();
        let of = inputs
            .iter()
            .map(|e| {
                let i = *index.entry(e.tenant_id.as_str()).or_insert_with(|| {
                    tenants.push(e.tenant_id.clone());
                    (tenants.len() - 1) as u32
                });
                (i, e.event_time_ms)
            })
            .collect();
        Marks { tenants, of }
    }

    /// Raises the watermarks by the inputs not among `failures` (`(input index, _)`).
    fn raise<R>(&self, clock: &mut Watermarks, failures: &[(usize, R)]) {
        let mut best: Vec<Option<Millis>> = vec![None; self.tenants.len()];
        for (i, (tenant, time)) in self.of.iter().enumerate() {
            if failures.iter().any(|(owner, _)| *owner == i) {
                continue;
            }
            let b = &mut best[*tenant as usize];
            *b = Some(b.map_or(*time, |b| b.max(*time)));
        }
        for (tenant, mark) in self.tenants.iter().zip(best) {
            if let Some(mark) = mark {
                clock.raise(tenant, mark);
            }
        }
    }
}

/// An admitted event and what the transforms made of it.
struct Retained {
    admitted: Time,
    input: Event,
    outputs: Vec<Event>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Millis = 3_600_000;
    /// 2026-11-21T07:00:00Z.
    const T0: Millis = 1_795_244_400_000;

    fn view(tenant: &str, id: &str, at: Millis) -> String {
        let time = chrono::DateTime::from_timestamp_millis(at)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        format!(
            r#"{{"event_id":"{id}","tenant_id":"{tenant}","type":"page_view","event_time":"{time}","schema_version":2,"user_id":"u","url":"/"}}"#
        )
    }

    fn late(lateness: Millis) -> Admission {
        let mut a = Admission::new(Vec::new());
        a.set_lateness(Some(lateness));
        a
    }

    /// The ids admitted and the reasons of the rest, in line order.
    fn admit(a: &mut Admission, lines: &[String], epoch: Time) -> Vec<String> {
        let admitted = a.admit(lines, epoch, false);
        let mut out: Vec<(usize, String)> = admitted
            .rejected
            .into_iter()
            .map(|(i, q)| (i, q.reason))
            .collect();
        let ids: Vec<&str> = admitted
            .events
            .iter()
            .map(|e| e.event_id.as_str())
            .collect();
        for (i, line) in lines.iter().enumerate() {
            if ids
                .iter()
                .any(|id| line.contains(&format!(r#""event_id":"{id}""#)))
            {
                out.push((i, "admitted".into()));
            }
        }
        out.sort();
        out.into_iter().map(|(_, r)| r).collect()
    }

    #[test]
    fn the_watermark_counts_only_earlier_logical_times() {
        let mut a = late(HOUR);
        // In one logical time the newest event does not make the older one late, however
        // far apart they are and whichever call admitted them.
        assert_eq!(
            admit(&mut a, &[view("acme", "new", T0 + 5 * HOUR)], 0),
            ["admitted"]
        );
        assert_eq!(admit(&mut a, &[view("acme", "old", T0)], 0), ["admitted"]);
        // From the next logical time on, the watermark is T0 + 5 h.
        let lines = [
            view("acme", "behind", T0 + 4 * HOUR - 1),
            view("acme", "within", T0 + 4 * HOUR),
        ];
        assert_eq!(admit(&mut a, &lines, 1), ["too_late", "admitted"]);
        assert_eq!(a.stats().quarantined["too_late"], 1);
    }

    #[test]
    fn each_tenant_has_its_own_watermark() {
        let mut a = late(HOUR);
        admit(&mut a, &[view("fast", "a", T0 + 10 * HOUR)], 0);
        let lines = [view("slow", "b", T0), view("fast", "c", T0)];
        assert_eq!(admit(&mut a, &lines, 1), ["admitted", "too_late"]);
        assert_eq!(
            a.watermarks(),
            [("fast".to_owned(), T0 + 10 * HOUR), ("slow".to_owned(), T0)]
        );
    }

    #[test]
    fn a_late_copy_is_too_late_and_an_id_past_the_lateness_is_forgotten() {
        let mut a = late(HOUR);
        admit(&mut a, &[view("acme", "e", T0)], 0);
        admit(&mut a, &[view("acme", "now", T0 + 3 * HOUR)], 1);
        // The same event again: too late, not a duplicate.
        assert_eq!(admit(&mut a, &[view("acme", "e", T0)], 2), ["too_late"]);
        assert_eq!(a.stats().duplicates, 0);
        // A different event under the old id, within the lateness: the old id was forgotten.
        assert_eq!(
            admit(&mut a, &[view("acme", "e", T0 + 3 * HOUR)], 2),
            ["admitted"]
        );
        // And that one is remembered.
        assert_eq!(
            admit(&mut a, &[view("acme", "e", T0 + 3 * HOUR)], 3),
            Vec::<String>::new()
        );
        assert_eq!(a.stats().duplicates, 1);
    }

    #[test]
    fn sweeps_bound_the_ids_remembered_without_changing_what_is_admitted() {
        let mut a = late(60_000);
        let mut b = Admission::new(Vec::new());
        let mut admitted = 0;
        for epoch in 0..40u64 {
            // 4,000 events a logical time, a minute of event time each: with a minute of
            // lateness only the last two logical times' ids can still repeat.
            let base = T0 + epoch as i64 * 60_000;
            let lines: Vec<String> = (0..4_000)
                .map(|i| view("acme", &format!("e{epoch}-{i}"), base + i * 15))
                .collect();
            admitted += a.admit(&lines, epoch, false).events.len();
            b.admit(&lines, epoch, false);
        }
        assert_eq!(admitted, 160_000);
        assert_eq!(b.remembered_ids(), 160_000);
        assert!(
            a.remembered_ids() <= 2 * SWEEP_AT_LEAST + 8_000,
            "{} ids remembered",
            a.remembered_ids()
        );
    }

    #[test]
    fn no_lateness_admits_any_time() {
        let mut a = Admission::new(Vec::new());
        admit(&mut a, &[view("acme", "new", T0 + 100 * HOUR)], 0);
        assert_eq!(admit(&mut a, &[view("acme", "old", T0)], 1), ["admitted"]);
    }
}
