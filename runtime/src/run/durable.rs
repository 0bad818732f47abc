//! Durability: the component the [`super::Driver`] is given to land what it reads and, for
//! sources that can seek, to checkpoint and recover exactly once.
//!
//! The driver admits records partition by partition and hands each admitted stretch to
//! [`Durability::record`]. What happens then:
//!
//! - **bounded runs** land the raw events in spans of [`SPAN`] offsets
//!   (`raw/…/input-0-<first>-<last>.parquet`); their quarantine stays with the run;
//! - **durable runs** (Kafka), every `checkpoint_every`:
//!   1. close a logical time, so everything read so far sits at closed times;
//!   2. land the raw events and quarantined inputs of each partition's new offset range;
//!   3. write a segment of the dataflow's new input and commit a checkpoint naming it, with
//!      the next offset of every partition; then tell the source how far it got.
//!
//! A crash anywhere leaves the newest committed checkpoint as the truth. On start,
//! [`Durability::recover`] feeds the state it holds back to a fresh dataflow, removes landed
//! files past its offsets, and returns the offsets to resume at: what was read after it is
//! read again, and counted once.
//!
//! It owns when and what is landed and checkpointed. It never polls a source (it is handed the
//! records, and only tells the source how far it got), never decodes or admits, and writes only
//! through the landing zone and checkpoints of `output/`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::admit::{Admission, Admitted, Quarantined};
use crate::dataflow::pipeline::DataflowState;
use crate::dataflow::pipeline::Pipeline;
use crate::dataflow::store::ViewStore;
use crate::event::Event;
use crate::output::checkpoint::{
    Checkpoint, CheckpointError, Checkpoints, Loaded, MAX_SEGMENTS, Segment, SegmentRef, State,
};
use crate::output::gold::{Gold, GoldPlan, GoldStats};
use crate::output::landing::{Landing, LandingError};
use crate::plugins::transforms::TransformRegistry;
use crate::source::file::STREAM;
use crate::source::{Offsets, Record, Source};
use crate::time::Time;

/// Offsets per landed file of a bounded run.
pub const SPAN: i64 = 200_000;
/// The first wait before landing again after the store failed, doubled up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Events admitted since the last state after which a checkpoint writes a new one (a
/// restart replays at most about this many).
pub const DEFAULT_SNAPSHOT_EVENTS: usize = 500_000;

/// How often a durable run checkpoints and exports, and where checkpoints go.
#[derive(Clone, Debug)]
pub struct CheckpointSettings {
    pub dir: PathBuf,
    pub every: Duration,
    /// How often the views are exported to the landing zone.
    pub export_every: Duration,
    /// A checkpoint writes the run's state, instead of a segment of the events since it,
    /// once the segments hold this many events.
    pub snapshot_events: usize,
}

/// A failure of durability.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    #[error(transparent)]
    Landing(#[from] LandingError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("cannot recover from checkpoint {id}: {reason}")]
    Recover { id: u64, reason: RecoverError },
    #[error("cannot save the run's state for checkpoint {id}: {source}")]
    SaveState {
        id: u64,
        #[source]
        source: crate::dataflow::pipeline::PipelineError,
    },
}

/// Why a checkpoint cannot be restored into this run.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(
        "rule {name} {hash} is not among this run's plugins: start with the plugins the checkpoint was taken with"
    )]
    UnknownRule { name: String, hash: String },
    #[error(transparent)]
    Upload(#[from] crate::plugins::set::UploadError),
    #[error(transparent)]
    Rules(#[from] crate::dataflow::pipeline::PipelineError),
    #[error("its state never became visible: {0}")]
    Replay(#[from] crate::dataflow::store::DataflowFailed),
    #[error(
        "it holds the run's state, and the dataflow was started without it: start the driver with Driver::durable before it runs"
    )]
    StateNotTaken,
    #[error("its gold files cannot be written again: {0}")]
    Gold(LandingError),
}

impl DurableError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            DurableError::Landing(e) => e.code(),
            DurableError::Checkpoint(e) => e.code(),
            DurableError::Recover { .. } => "recover",
            DurableError::SaveState { .. } => "save_state",
        }
    }
}

/// Runs `write` until it succeeds, waiting [`RETRY_FIRST`] after the first failure and twice
/// as long after each next one, up to [`RETRY_MAX`]; gives up only when the run is told to
/// stop.
fn retrying(
    stop: &AtomicBool,
    mut write: impl FnMut() -> Result<(), LandingError>,
) -> Result<(), LandingError> {
    let mut wait = RETRY_FIRST;
    loop {
        match write() {
            Ok(()) => return Ok(()),
            Err(e) if stop.load(Ordering::SeqCst) => return Err(e),
            Err(e) => {
                eprintln!(
                    "weir: landing: {e}; retrying in {:.1} s",
                    wait.as_secs_f64()
                );
                std::thread::sleep(wait);
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}

/// One partition's offsets since the last landing, and what they held.
struct Range {
    first: i64,
    last: i64,
    raw: Vec<(i64, Event)>,
    rejected: Vec<(i64, Quarantined)>,
}

/// What a durable run adds to landing: checkpoints.
struct Checkpointing {
    checkpoints: Checkpoints,
    settings: CheckpointSettings,
    transforms: Vec<String>,
    /// The run's transform versions: checkpointed, and put back on recovery.
    transform_versions: Option<std::sync::Arc<TransformRegistry>>,
    segments: Vec<SegmentRef>,
    /// The state the segments follow, and how many events they hold.
    state: Option<SegmentRef>,
    events_since_state: usize,
    /// The dataflow's input since the last checkpoint.
    segment: Segment,
    /// The newest checkpoint, read at open, until it is recovered.
    loaded: Option<Loaded>,
    /// Whether the dataflow was started from the loaded state.
    restore_taken: bool,
    /// The gold export, which a durable run makes with the checkpoints that write a state.
    gold: Option<Gold>,
    next_id: u64,
    last: Instant,
    last_export: Instant,
}

/// The landing zone, and checkpoints for sources that can seek.
pub struct Durability {
    landing: Landing,
    ranges: BTreeMap<(String, i32), Range>,
    /// The next offset of every partition read.
    offsets: Offsets,
    checkpointing: Option<Checkpointing>,
    /// A bounded run's first landing failure, reported when it finishes.
    deferred: Option<LandingError>,
    /// A bounded run lands its full ranges on this thread, off the admission path.
    lander: Option<Lander>,
}

/// A thread that lands a bounded run's full ranges while admission goes on. At most one range
/// waits for it, so a slow landing zone slows the run rather than piling ranges up in memory.
struct Lander {
    ranges: std::sync::mpsc::SyncSender<((String, i32), Range)>,
    thread: std::thread::JoinHandle<Option<LandingError>>,
}

impl Lander {
    fn start(landing: Landing) -> Result<Lander, LandingError> {
        let (ranges, queued) = std::sync::mpsc::sync_channel::<((String, i32), Range)>(1);
        let thread = std::thread::Builder::new()
            .name("weir-land".into())
            .spawn(move || {
                let mut first_failure = None;
                for (key, range) in queued {
                    if let Err(e) = land_range(&landing, &key, &range) {
                        first_failure.get_or_insert(e);
                    }
                }
                first_failure
            })
            .map_err(|e| LandingError::Open {
                target: "raw landing".into(),
                message: format!("cannot start its thread: {e}"),
            })?;
        Ok(Lander { ranges, thread })
    }

    /// Waits for every range sent to be landed; the first failure, if any.
    fn finish(self) -> Option<LandingError> {
        drop(self.ranges);
        self.thread.join().unwrap_or_else(|_| {
            Some(LandingError::Open {
                target: "raw landing".into(),
                message: "its thread panicked".into(),
            })
        })
    }
}

/// Lands one range's raw events.
fn land_range(
    landing: &Landing,
    (stream, partition): &(String, i32),
    range: &Range,
) -> Result<(), LandingError> {
    landing.write_raw(stream, *partition, (range.first, range.last), &range.raw)?;
    Ok(())
}

impl Durability {
    /// A bounded run's landing: raw events only, replacing an earlier bounded run's files.
    pub fn bounded(landing: Landing) -> Result<Durability, LandingError> {
        landing.remove_uncommitted(&[STREAM.to_owned()], &Offsets::new())?;
        let lander = Some(Lander::start(landing.another()?)?);
        Ok(Durability {
            landing,
            ranges: BTreeMap::new(),
            offsets: Offsets::new(),
            checkpointing: None,
            deferred: None,
            lander,
        })
    }

    /// A durable run's landing and checkpoints; `transforms` names the run's transforms (a
    /// checkpoint taken with others is restored with a warning).
    pub fn checkpointed(
        landing: Landing,
        settings: CheckpointSettings,
        transforms: Vec<String>,
    ) -> Result<Durability, DurableError> {
        let checkpoints = Checkpoints::open(&settings.dir)?;
        let loaded = checkpoints.latest()?;
        let now = Instant::now();
        Ok(Durability {
            landing,
            ranges: BTreeMap::new(),
            offsets: Offsets::new(),
            checkpointing: Some(Checkpointing {
                next_id: checkpoints.highest_id()? + 1,
                checkpoints,
                settings,
                transforms,
                transform_versions: None,
                segments: Vec::new(),
                state: None,
                events_since_state: 0,
                segment: Segment::default(),
                loaded,
                restore_taken: false,
                gold: None,
                last: now,
                last_export: now,
            }),
            deferred: None,
            lander: None,
        })
    }

    /// Checkpoints `registry` (transform versions uploaded while running, and which is in
    /// force for whom) and puts it back on recovery.
    pub(super) fn track_transforms(&mut self, registry: std::sync::Arc<TransformRegistry>) {
        if let Some(c) = self.checkpointing.as_mut() {
            c.transform_versions = Some(registry);
        }
    }

    /// Whether the checkpoint to recover holds the run's state: the dataflow must start from
    /// it ([`Durability::take_restore`]) and the cold tier be kept as it is.
    pub fn restores_state(&self) -> bool {
        self.checkpointing
            .as_ref()
            .and_then(|c| c.loaded.as_ref())
            .is_some_and(|l| l.state.is_some())
    }

    /// The dataflow's state to start from, once.
    pub(super) fn take_restore(&mut self) -> Option<DataflowState> {
        let c = self.checkpointing.as_mut()?;
        let state = c.loaded.as_mut()?.state.as_mut()?;
        c.restore_taken = true;
        Some(std::mem::take(&mut state.dataflow))
    }

    /// Exports gold with the checkpoints that write a state (so a restart finds gold and its
    /// state as one); `None` when this run has no checkpoints, and the gold is handed back.
    pub(super) fn export_gold(&mut self, gold: Gold) -> Option<Gold> {
        match self.checkpointing.as_mut() {
            Some(c) => {
                c.gold = Some(gold);
                None
            }
            None => Some(gold),
        }
    }

    pub(super) fn gold_stats(&self) -> Option<GoldStats> {
        self.checkpointing
            .as_ref()
            .and_then(|c| c.gold.as_ref())
            .map(Gold::stats)
    }

    /// Whether this run checkpoints (and so lands its quarantine by offset range).
    pub fn checkpoints(&self) -> bool {
        self.checkpointing.is_some()
    }

    /// Drops records at offsets already read: a broker or client delivering one again must
    /// not land it twice.
    pub(super) fn drop_already_read(
        &self,
        stream: &str,
        partition: i32,
        records: &mut Vec<&Record>,
    ) {
        let mut next = self
            .offsets
            .get(&(stream.to_owned(), partition))
            .copied()
            .unwrap_or(i64::MIN);
        records.retain(|r| {
            let fresh = r.offset >= next;
            next = next.max(r.offset + 1);
            fresh
        });
    }

    /// Takes what admission made of `records` (one partition's, in offset order, admitted at
    /// `epoch`) for landing and the next checkpoint. Hands back the events for the dataflow
    /// and the rejected inputs this landing does not keep.
    pub(super) fn record(
        &mut self,
        (stream, partition): (&str, i32),
        records: &[&Record],
        epoch: Time,
        admitted: Admitted,
    ) -> Admitted {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return admitted;
        };
        let (first, last) = (first.offset, last.offset);
        let key = (stream.to_owned(), partition);
        let range = self.ranges.entry(key.clone()).or_insert_with(|| Range {
            first,
            last,
            raw: Vec::new(),
            rejected: Vec::new(),
        });
        range.last = last;
        let Admitted {
            events,
            inputs,
            mut rejected,
            claimed,
        } = admitted;
        if let Some(c) = self.checkpointing.as_mut() {
            c.segment.claim(claimed);
            c.segment
                .events
                .extend(events.iter().map(|e| (epoch, e.clone())));
            rejected.sort_by_key(|r| r.0);
            range.rejected.extend(
                rejected
                    .drain(..)
                    .map(|(line, q)| (records[line].offset, q)),
            );
        }
        range.raw.extend(
            inputs
                .into_iter()
                .map(|(line, input)| (records[line].offset, input)),
        );
        self.offsets.insert(key, last + 1);
        Admitted {
            events,
            inputs: Vec::new(),
            rejected,
            claimed: Vec::new(),
        }
    }

    /// Bounded runs: hands every range that spans [`SPAN`] offsets to the landing thread. A
    /// failure is kept for [`Durability::finish`]; the run goes on meanwhile.
    pub(super) fn flush_spans(&mut self) {
        if self.lander.is_none() {
            return;
        }
        let full: Vec<(String, i32)> = self
            .ranges
            .iter()
            .filter(|(_, r)| r.last - r.first + 1 >= SPAN)
            .map(|(key, _)| key.clone())
            .collect();
        for key in full {
            let range = self.ranges.remove(&key).expect("listed above");
            let lander = self.lander.as_ref().expect("checked above");
            if let Err(std::sync::mpsc::SendError(returned)) = lander.ranges.send((key, range)) {
                // The thread is gone (it panicked): land here, and learn why at the end.
                let (key, range) = returned;
                self.ranges.insert(key.clone(), range);
                if let Err(e) = self.land(&key) {
                    self.deferred.get_or_insert(e);
                }
            }
        }
    }

    /// Lands one range and forgets it.
    fn land(&mut self, key: &(String, i32)) -> Result<(), LandingError> {
        let Some(range) = self.ranges.get(key) else {
            return Ok(());
        };
        land_range(&self.landing, key, range)?;
        if self.checkpointing.is_some() {
            let span = (range.first, range.last);
            self.landing
                .write_quarantine(&key.0, key.1, span, &range.rejected)?;
        }
        // Forgotten only once landed: a failed write is tried again whole (its files are
        // named by the range, so a retry replaces what a failed one left).
        self.ranges.remove(key);
        Ok(())
    }

    /// Lands one range of a durable run, retrying with backoff while the store fails:
    /// nothing is checkpointed, and so nothing acknowledged, until it is landed. Gives up only
    /// when the run is told to stop.
    fn land_retrying(
        &mut self,
        key: &(String, i32),
        stop: &AtomicBool,
    ) -> Result<(), LandingError> {
        retrying(stop, || self.land(key))
    }

    /// After each poll: bounded runs land full spans; durable runs checkpoint when one is
    /// due or a deploy just took effect (a restart must not forget it), and export the views
    /// when due.
    pub(super) fn after_input(
        &mut self,
        pipeline: &mut Pipeline,
        admission: &Admission,
        store: &ViewStore,
        source: &mut dyn Source,
        deployed: bool,
        stop: &AtomicBool,
    ) -> Result<(), DurableError> {
        let Some(c) = self.checkpointing.as_mut() else {
            self.flush_spans();
            return Ok(());
        };
        if deployed || c.last.elapsed() >= c.settings.every {
            c.last = Instant::now();
            self.checkpoint(pipeline, admission, store, source, deployed, false, stop)?;
        }
        let Some(c) = self.checkpointing.as_mut() else {
            return Ok(());
        };
        if c.last_export.elapsed() >= c.settings.export_every {
            c.last_export = Instant::now();
            // An export is a copy of published state: one that fails is simply made again at
            // the next interval (and at the end).
            if let Err(e) = super::export_views(&self.landing, store) {
                eprintln!("weir: landing: cannot export the views: {e}; exporting again later");
            }
        }
        Ok(())
    }

    /// Lands what came since the last checkpoint and commits a new one (skipped when nothing
    /// came, unless `force`): a segment of the events since the last, or, once those add up
    /// to `snapshot_events` (or [`MAX_SEGMENTS`] segments), or when `last` (a run's final
    /// checkpoint, so its gold holds every change made to it), the run's state with the gold
    /// export made with it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn checkpoint(
        &mut self,
        pipeline: &mut Pipeline,
        admission: &Admission,
        store: &ViewStore,
        source: &mut dyn Source,
        force: bool,
        last: bool,
        stop: &AtomicBool,
    ) -> Result<(), DurableError> {
        let Some(c) = self.checkpointing.as_ref() else {
            return Ok(());
        };
        let since = c.events_since_state + c.segment.events.len();
        if self.ranges.is_empty() && !force && !(last && since > 0) {
            return Ok(());
        }
        store.watermarks(pipeline.epoch(), admission.watermarks());
        pipeline.advance();
        let keys: Vec<(String, i32)> = self.ranges.keys().cloned().collect();
        for key in &keys {
            self.land_retrying(key, stop)?;
        }
        let Some(c) = self.checkpointing.as_mut() else {
            return Ok(());
        };
        let id = c.next_id;
        let events = c.events_since_state + c.segment.events.len();
        let mut segments = std::mem::take(&mut c.segments);
        let mut plan = None;
        if last || events >= c.settings.snapshot_events || segments.len() + 1 >= MAX_SEGMENTS {
            let began = Instant::now();
            // Everything before the new time is applied and nothing after it has come: the
            // operators, the store and dedup are saved as of the same moment.
            let dataflow = pipeline
                .save_state()
                .map_err(|source| DurableError::SaveState { id, source })?;
            let gold = match c.gold.as_mut() {
                Some(gold) => gold.plan(store)?,
                None => GoldPlan::default(),
            };
            let state = State {
                dataflow,
                store: store.save(&gold.retired),
                seen: admission.saved_ids(),
                gold: gold.files.clone(),
            };
            let written = c.checkpoints.write_state(id, &state)?;
            eprintln!(
                "weir: checkpoint {id}: state of {events} events' run written ({} MB) in {} ms",
                written.bytes / 1_000_000,
                began.elapsed().as_millis()
            );
            c.state = Some(written);
            c.events_since_state = 0;
            c.segment = Segment::default();
            segments.clear();
            plan = Some(gold);
        } else {
            c.events_since_state = events;
            segments.push(
                c.checkpoints
                    .write_segment(id, &std::mem::take(&mut c.segment))?,
            );
        }
        for version in pipeline.rules().list() {
            if let Some(component) = &version.component {
                c.checkpoints.save_component(&version.hash, component)?;
            }
        }
        let transform_versions = c
            .transform_versions
            .as_ref()
            .map(|registry| registry.save())
            .unwrap_or_default();
        for version in c.transform_versions.iter().flat_map(|r| r.list()) {
            if let Some(component) = &version.component {
                c.checkpoints.save_component(&version.hash, component)?;
            }
        }
        let checkpoint = Checkpoint {
            id,
            epoch: pipeline.epoch(),
            offsets: self
                .offsets
                .iter()
                .map(|((stream, partition), next)| (stream.clone(), *partition, *next))
                .collect(),
            state: c.state.clone(),
            segments: segments.clone(),
            rules: pipeline.rules().save(),
            transforms: c.transforms.clone(),
            transform_versions,
            stats: admission.stats().into(),
            watermarks: admission.watermarks(),
            written_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        };
        c.checkpoints.commit(&checkpoint)?;
        c.segments = segments;
        c.next_id += 1;
        // Written only now: a crash before the commit leaves gold as the last state has it.
        if let (Some(plan), Some(gold)) = (plan, c.gold.as_mut()) {
            retrying(stop, || gold.apply(&plan.files))?;
            gold.retire(plan, store);
        }
        source.commit(&self.offsets);
        Ok(())
    }

    /// Loads the newest complete checkpoint into the fresh dataflow and admission, removes
    /// landed files of `streams` it does not cover, and returns the offsets to resume at.
    pub(super) fn recover(
        &mut self,
        pipeline: &mut Pipeline,
        admission: &mut Admission,
        store: &ViewStore,
        streams: &[String],
    ) -> Result<Offsets, DurableError> {
        let began = Instant::now();
        let Some(c) = self.checkpointing.as_mut() else {
            return Ok(Offsets::new());
        };
        let loaded = match c.loaded.take() {
            Some(loaded) => Some(loaded),
            None => c.checkpoints.latest()?,
        };
        match loaded {
            Some(loaded) => {
                let checkpoint = loaded.checkpoint;
                let id = checkpoint.id;
                let recover_error = |reason: RecoverError| DurableError::Recover { id, reason };
                // Rules uploaded while running come back from the components kept with the
                // checkpoints; the configured ones were registered at start.
                let registered = pipeline.rules().list().len();
                for v in checkpoint.rules.versions.iter().skip(registered) {
                    if !v.uploaded {
                        return Err(recover_error(RecoverError::UnknownRule {
                            name: v.name.clone(),
                            hash: v.hash.clone(),
                        }));
                    }
                    let bytes = c.checkpoints.component(&v.name, &v.hash)?;
                    // Validated again, against the vectors it passed when it was deployed.
                    crate::plugins::set::upload_rule(
                        pipeline.rules(),
                        &v.name,
                        bytes.into(),
                        v.vectors.as_deref().unwrap_or_default(),
                        v.tenant.as_deref(),
                    )
                    .map_err(|e| recover_error(e.into()))?;
                }
                pipeline
                    .restore_rules(&checkpoint.rules)
                    .map_err(|e| recover_error(e.into()))?;
                if checkpoint.transforms != c.transforms {
                    eprintln!(
                        "weir: warning: checkpoint {id} was taken with the transforms {:?}, this run has {:?}: events admitted from now on meet this run's",
                        checkpoint.transforms, c.transforms
                    );
                }
                if let Some(registry) = &c.transform_versions {
                    let saved = &checkpoint.transform_versions;
                    // The configured versions are this run's; the uploaded ones come back from
                    // the components kept with the checkpoints, validated again against the
                    // vectors they passed when they were deployed.
                    let configured = registry.list();
                    let mut ids = Vec::with_capacity(saved.versions.len());
                    for v in &saved.versions {
                        if !v.uploaded {
                            ids.push(
                                configured
                                    .iter()
                                    .find(|c| {
                                        c.component.is_none()
                                            && c.name == v.name
                                            && c.hash == v.hash
                                            && c.tenant == v.tenant
                                    })
                                    .map(|c| c.id),
                            );
                            continue;
                        }
                        let bytes = c.checkpoints.component(&v.name, &v.hash)?;
                        let (version, _) = crate::plugins::set::upload_transform(
                            registry,
                            &v.name,
                            bytes.into(),
                            v.vectors.as_deref().unwrap_or_default(),
                            v.tenant.as_deref(),
                        )
                        .map_err(|e| recover_error(e.into()))?;
                        ids.push(Some(version));
                    }
                    for name in registry.restore(saved, &ids) {
                        // Recovered events are fed as the transforms made them: only what is
                        // admitted from now on meets the versions put back.
                        admission
                            .swap_transforms(
                                &name,
                                registry.group(&name),
                                crate::plugins::registry::Mode::FromNow,
                            )
                            .expect("a swap from now needs no history");
                    }
                }
                let mut segments = loaded.segments;
                let mut from_state = Vec::new();
                if let Some(state) = loaded.state {
                    if !c.restore_taken {
                        return Err(recover_error(RecoverError::StateNotTaken));
                    }
                    eprintln!(
                        "weir: checkpoint {id} holds the run's state as of logical time {}; the events admitted since are replayed",
                        state.store.as_of.map_or(0, |t| t + 1)
                    );
                    store.restore(state.store);
                    from_state = state.seen;
                    if let Some(gold) = c.gold.as_mut() {
                        gold.resume(&state.gold)
                            .map_err(|e| recover_error(RecoverError::Gold(e)))?;
                    }
                }
                c.events_since_state = segments.iter().map(|s| s.events.len()).sum();
                let seen = from_state
                    .into_iter()
                    .chain(segments.iter_mut().flat_map(Segment::take_seen));
                admission.restore(seen, checkpoint.stats.to_stats());
                admission.restore_watermarks(checkpoint.watermarks.iter().cloned());
                let mut events = 0;
                for segment in segments {
                    events += segment.events.len();
                    pipeline.push_restored(segment.events);
                }
                pipeline.resume_at(checkpoint.epoch);
                if let Some(restored) = checkpoint.epoch.checked_sub(1) {
                    store
                        .wait_for(restored)
                        .map_err(|e| recover_error(e.into()))?;
                }
                self.offsets = checkpoint
                    .offsets
                    .iter()
                    .map(|(stream, partition, next)| ((stream.clone(), *partition), *next))
                    .collect();
                c.segments = checkpoint.segments;
                c.state = checkpoint.state;
                eprintln!(
                    "weir: recovered checkpoint {id} (logical time {}, {events} events) in {} ms",
                    checkpoint.epoch,
                    began.elapsed().as_millis()
                );
            }
            None => eprintln!(
                "weir: no checkpoint in {}; starting from the earliest offsets",
                c.checkpoints.dir().display()
            ),
        }
        let removed = self.landing.remove_uncommitted(streams, &self.offsets)?;
        if removed > 0 {
            eprintln!(
                "weir: removed {removed} landed files past the checkpoint; their offsets are read again"
            );
        }
        Ok(self.offsets.clone())
    }

    /// After the dataflow drained: durable runs export the final views; bounded runs land
    /// their last span (reporting an earlier landing failure) and write the run's outputs.
    pub(super) fn finish(mut self, result: &super::RunResult) -> Result<(), DurableError> {
        if self.checkpointing.is_some() {
            super::export_views(&self.landing, &result.store)?;
            return Ok(());
        }
        if let Some(failure) = self.lander.take().and_then(Lander::finish) {
            self.deferred.get_or_insert(failure);
        }
        if let Some(error) = self.deferred.take() {
            return Err(error.into());
        }
        let keys: Vec<(String, i32)> = self.ranges.keys().cloned().collect();
        for key in &keys {
            self.land(key)?;
        }
        result.write_outputs(&self.landing)?;
        Ok(())
    }
}
