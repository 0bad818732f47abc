//! Durable runs: Kafka in, the landing zone and checkpoints out, exactly once across crashes.
//!
//! The loop reads messages, admits them partition by partition (so each partition's order is
//! kept, and producers keying by `order_id`/`user_id` keep each entity's order), hands the
//! events to the dataflow, and every `checkpoint_every`:
//!
//! 1. closes a logical time, so everything read so far sits at closed times;
//! 2. lands the raw events and quarantined inputs of each partition's new offset range;
//! 3. writes a segment of the dataflow's new input and commits a checkpoint naming it, with
//!    the next offset of every partition.
//!
//! A crash anywhere leaves the newest committed checkpoint as the truth. On start, the state
//! it holds is fed back to a fresh dataflow, landed files past its offsets are removed, and
//! reading resumes at its offsets: what was read after it is read again, and counted once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::checkpoint::{Checkpoint, CheckpointError, Checkpoints, Segment, SegmentRef};
use crate::event::Event;
use crate::ingest::{Admission, Quarantined};
use crate::kafka::{KafkaSource, KafkaSourceError, KafkaUrl, Offsets, Record};
use crate::landing::{Landing, LandingError};
use crate::pipeline::Pipeline;
use crate::row::VIEWS;
use crate::run::{RunConfig, RunResult, Status};
use crate::serve::ServeConfig;
use crate::store::ViewStore;

/// Messages read per poll.
const POLL_MAX: usize = 8192;
/// Logical times the dataflow may fall behind before reading pauses.
const MAX_LAG: u64 = 50;

/// Settings of a durable run.
#[derive(Clone)]
pub struct DurableConfig {
    pub run: RunConfig,
    pub source: KafkaUrl,
    /// The consumer group offsets are reported to.
    pub group: String,
    /// The landing zone: a directory or an object store URL.
    pub out: String,
    pub checkpoint_dir: PathBuf,
    pub checkpoint_every: Duration,
    /// How often the views are exported to the landing zone.
    pub export_every: Duration,
    /// Stop once no message has come for this long.
    pub until_idle: Option<Duration>,
    pub tick: Duration,
    pub status_every: Duration,
    pub serve: Option<ServeConfig>,
    pub history: usize,
    pub subscriber_buffer: usize,
}

/// A failure of a durable run.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    #[error(transparent)]
    Landing(#[from] LandingError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Source(#[from] KafkaSourceError),
    #[error("cannot recover from checkpoint {id}: {message}")]
    Recover { id: u64, message: String },
    #[error("{0}")]
    Start(#[from] std::io::Error),
}

/// One partition's offsets since the last checkpoint, and what they held.
struct Range {
    first: i64,
    last: i64,
    raw: Vec<(i64, Event)>,
    rejected: Vec<(i64, Quarantined)>,
}

/// Everything read since the last checkpoint.
#[derive(Default)]
struct Pending {
    ranges: BTreeMap<(String, i32), Range>,
    segment: Segment,
}

struct Durable<'a> {
    config: &'a DurableConfig,
    pipeline: Pipeline,
    /// Rejected inputs come back from `admit_traced` and are landed with their offsets, so
    /// the sink itself stays empty.
    admission: Admission<Vec<Quarantined>>,
    landing: Landing,
    checkpoints: Checkpoints,
    transforms: Vec<String>,
    offsets: Offsets,
    segments: Vec<SegmentRef>,
    next_id: u64,
    pending: Pending,
}

/// Runs on Kafka until `stop` is set or the source has been idle for `until_idle`; then
/// takes a last checkpoint, exports the views and returns the final state.
pub fn run_kafka(config: &DurableConfig, stop: &AtomicBool) -> Result<RunResult, DurableError> {
    let started = Instant::now();
    let store = Arc::new(ViewStore::new(config.history, config.subscriber_buffer));
    let pipeline = crate::run::start(&config.run, store.clone())?;
    let transforms = config
        .run
        .plugins
        .transforms()
        .iter()
        .map(|t| t.name().to_owned())
        .collect();
    let checkpoints = Checkpoints::open(&config.checkpoint_dir)?;
    let mut run = Durable {
        config,
        pipeline,
        admission: Admission::new(config.run.plugins.transforms(), Vec::new()),
        landing: Landing::open(&config.out)?,
        next_id: checkpoints.highest_id()? + 1,
        checkpoints,
        transforms,
        offsets: Offsets::new(),
        segments: Vec::new(),
        pending: Pending::default(),
    };
    run.recover(&store)?;
    let mut served = crate::run::serve(config.serve.as_ref(), &store, &run.pipeline)?;
    let mut source = match KafkaSource::connect(&config.source, &config.group, &run.offsets, stop) {
        Ok(source) => Some(source),
        Err(KafkaSourceError::Stopped) => None,
        Err(e) => return Err(e.into()),
    };
    let metrics = crate::serve::metrics::global();
    let source_id = Arc::as_ptr(&store) as usize;
    let mut status = Status::new(config.status_every);
    let mut records = Vec::with_capacity(POLL_MAX);
    let now = Instant::now();
    let (mut last_message, mut last_tick, mut last_checkpoint, mut last_export) =
        (now, now, now, now);
    while let Some(source) = source.as_mut() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let published = store.as_of().map_or(0, |t| t + 1);
        if run.pipeline.epoch().saturating_sub(published) <= MAX_LAG {
            records.clear();
            if source.poll(POLL_MAX, config.tick, &mut records) > 0 {
                last_message = Instant::now();
                run.admit(&records);
            }
        } else {
            // Backpressure: the dataflow is behind; librdkafka stops fetching once its
            // per-partition queue is full. Waiting here is not the source being idle.
            std::thread::sleep(Duration::from_millis(1));
            last_message = Instant::now();
        }
        let mut deployed = false;
        if last_tick.elapsed() >= config.tick {
            last_tick = Instant::now();
            if let Some((_, admin)) = served.as_mut() {
                deployed = admin.drain(&mut run.pipeline) > 0;
            }
            metrics.sync_admission(source_id, run.admission.stats());
            run.pipeline.advance();
        }
        // A deploy is made durable at once: a restart must not forget it.
        if deployed || last_checkpoint.elapsed() >= config.checkpoint_every {
            last_checkpoint = Instant::now();
            run.checkpoint(source, deployed)?;
        }
        if last_export.elapsed() >= config.export_every {
            last_export = Instant::now();
            run.export(&store)?;
        }
        status.tick(run.admission.stats(), &store);
        if let Some(idle) = config.until_idle
            && last_message.elapsed() >= idle
        {
            eprintln!(
                "weir: the source has been idle for {:.1} s; stopping",
                idle.as_secs_f64()
            );
            break;
        }
    }
    if let Some(source) = source.as_ref() {
        run.checkpoint(source, false)?;
    }
    let stats = run.admission.stats().clone();
    let Durable {
        pipeline, landing, ..
    } = run;
    let store = pipeline.finish();
    export_views(&landing, &store)?;
    drop(served);
    Ok(RunResult {
        store,
        stats,
        quarantine: Vec::new(),
        elapsed: started.elapsed(),
    })
}

fn export_views(landing: &Landing, store: &ViewStore) -> Result<(), LandingError> {
    let published = store.read(|p| p.clone());
    for (i, view) in VIEWS.iter().enumerate() {
        landing.write_view(view, &published.rows(i), published.as_of)?;
    }
    Ok(())
}

impl Durable<'_> {
    /// Loads the newest complete checkpoint into the fresh dataflow and admission, and removes
    /// landed files it does not cover.
    fn recover(&mut self, store: &ViewStore) -> Result<(), DurableError> {
        let began = Instant::now();
        match self.checkpoints.latest()? {
            Some(loaded) => {
                let checkpoint = loaded.checkpoint;
                let id = checkpoint.id;
                let recover_error = |message: String| DurableError::Recover { id, message };
                // Rules uploaded while running come back from the components kept with the
                // checkpoints; the configured ones were registered at start.
                let registered = self.pipeline.rules().list().len();
                for v in checkpoint.rules.versions.iter().skip(registered) {
                    if !v.uploaded {
                        return Err(recover_error(format!(
                            "rule {} {} is not among this run's plugins: start with the plugins the checkpoint was taken with",
                            v.name, v.hash
                        )));
                    }
                    let bytes = self.checkpoints.component(&v.name, &v.hash)?;
                    let (name, hash, tenant, maker) = crate::plugins::set::validate_rule(
                        &v.name,
                        &bytes,
                        "",
                        v.tenant.as_deref(),
                    )
                    .map_err(recover_error)?;
                    self.pipeline.rules().register_uploaded(
                        &name,
                        hash,
                        tenant,
                        maker,
                        bytes.into(),
                    );
                }
                self.pipeline
                    .restore_rules(&checkpoint.rules)
                    .map_err(recover_error)?;
                if checkpoint.transforms != self.transforms {
                    eprintln!(
                        "weir: warning: checkpoint {id} was taken with the transforms {:?}, this run has {:?}: events admitted from now on meet this run's",
                        checkpoint.transforms, self.transforms
                    );
                }
                let mut segments = loaded.segments;
                let seen = segments
                    .iter_mut()
                    .flat_map(|s| std::mem::take(&mut s.seen));
                self.admission.restore(seen, checkpoint.stats.to_stats());
                let mut events = 0;
                for segment in segments {
                    events += segment.events.len();
                    self.pipeline.push_restored(segment.events);
                }
                self.pipeline.resume_at(checkpoint.epoch);
                if let Some(restored) = checkpoint.epoch.checked_sub(1) {
                    store.wait_for(restored);
                }
                self.offsets = checkpoint
                    .offsets
                    .iter()
                    .map(|(topic, partition, next)| ((topic.clone(), *partition), *next))
                    .collect();
                self.segments = checkpoint.segments;
                eprintln!(
                    "weir: recovered checkpoint {id} (logical time {}, {events} events) in {} ms",
                    checkpoint.epoch,
                    began.elapsed().as_millis()
                );
            }
            None => eprintln!(
                "weir: no checkpoint in {}; starting from the earliest offsets",
                self.checkpoints.dir().display()
            ),
        }
        let removed = self
            .landing
            .remove_uncommitted(&self.config.source.topics, &self.offsets)?;
        if removed > 0 {
            eprintln!(
                "weir: removed {removed} landed files past the checkpoint; their offsets are read again"
            );
        }
        Ok(())
    }

    /// Admits one poll's messages, partition by partition, in offset order.
    fn admit(&mut self, records: &[Record]) {
        let mut partitions: BTreeMap<(&str, i32), Vec<&Record>> = BTreeMap::new();
        for r in records {
            partitions
                .entry((r.topic.as_str(), r.partition))
                .or_default()
                .push(r);
        }
        for ((topic, partition), mut records) in partitions {
            // An offset already read (a broker or client delivering it again) is not admitted
            // twice: it would land twice.
            let mut next = self
                .offsets
                .get(&(topic.to_owned(), partition))
                .copied()
                .unwrap_or(i64::MIN);
            records.retain(|r| {
                let fresh = r.offset >= next;
                next = next.max(r.offset + 1);
                fresh
            });
            if records.is_empty() {
                continue;
            }
            let lines: Vec<&[u8]> = records.iter().map(|r| r.payload.as_slice()).collect();
            let epoch = self.pipeline.epoch();
            let traced = self.admission.admit_traced(&lines, epoch, true);
            let (first, last) = (records[0].offset, records[records.len() - 1].offset);
            let range = self
                .pending
                .ranges
                .entry((topic.to_owned(), partition))
                .or_insert_with(|| Range {
                    first,
                    last,
                    raw: Vec::new(),
                    rejected: Vec::new(),
                });
            range.last = last;
            for (line, input) in traced.inputs {
                self.pending
                    .segment
                    .seen
                    .push((input.tenant_id.clone(), input.event_id.clone()));
                range.raw.push((records[line].offset, input));
            }
            let mut rejected = traced.rejected;
            rejected.sort_by_key(|r| r.0);
            range.rejected.extend(
                rejected
                    .into_iter()
                    .map(|(line, q)| (records[line].offset, q)),
            );
            self.pending
                .segment
                .events
                .extend(traced.events.iter().map(|e| (epoch, e.clone())));
            self.pipeline.push(traced.events);
            self.offsets.insert((topic.to_owned(), partition), last + 1);
        }
    }

    /// Lands what came since the last checkpoint and commits a new one (skipped when nothing
    /// came, unless `force`).
    fn checkpoint(&mut self, source: &KafkaSource, force: bool) -> Result<(), DurableError> {
        if self.pending.ranges.is_empty() && !force {
            return Ok(());
        }
        self.pipeline.advance();
        let pending = std::mem::take(&mut self.pending);
        for ((topic, partition), range) in &pending.ranges {
            let span = (range.first, range.last);
            self.landing
                .write_raw(topic, *partition, span, &range.raw)?;
            self.landing
                .write_quarantine(topic, *partition, span, &range.rejected)?;
        }
        let id = self.next_id;
        let mut segments = self
            .checkpoints
            .maybe_merge(id, std::mem::take(&mut self.segments))?;
        segments.push(self.checkpoints.write_segment(id, &pending.segment)?);
        for version in self.pipeline.rules().list() {
            if let Some(component) = &version.component {
                self.checkpoints.save_component(&version.hash, component)?;
            }
        }
        let checkpoint = Checkpoint {
            id,
            epoch: self.pipeline.epoch(),
            offsets: self
                .offsets
                .iter()
                .map(|((topic, partition), next)| (topic.clone(), *partition, *next))
                .collect(),
            segments: segments.clone(),
            rules: self.pipeline.rules().save(),
            transforms: self.transforms.clone(),
            stats: self.admission.stats().into(),
            written_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        };
        self.checkpoints.commit(&checkpoint)?;
        self.segments = segments;
        self.next_id += 1;
        source.commit(&self.offsets);
        Ok(())
    }

    fn export(&self, store: &ViewStore) -> Result<(), LandingError> {
        export_views(&self.landing, store)
    }
}
