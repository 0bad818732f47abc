//! Runs: one [`Driver`] wires any [`Source`] through admission and the dataflow to the outputs.
//!
//! ```text
//!            ┌─────────── Driver::run: one loop for every source ───────────┐
//! Source ──▶ poll ──▶ Admission::admit ──▶ Pipeline::push ──▶ advance ──▶ store
//!              ▲                 │                                 │
//!              │                 └──▶ Durability (raw, quarantine, │
//!              └── seek/commit ◀──── checkpoints, view exports) ◀──┘
//! ```
//!
//! What differs between a bounded run over a file, a live run on the generator and a durable
//! run on Kafka is data, not code: how logical times close ([`Clock`]: every N lines, or every
//! tick), where quarantined inputs go, whether the API is served, and whether the driver is
//! given a [`Durability`] (the landing zone, and checkpoints for sources that can seek).
//!
//! The driver owns the order of things; it must not decode, validate or compute views itself.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::admit::{Admission, AdmissionStats, Admitted, Quarantined};
use crate::dataflow::pipeline::{Pipeline, PipelineConfig, PipelineError};
use crate::dataflow::store::ViewStore;
use crate::dataflow::views::cold::{ColdError, ColdTier};
use crate::event::Millis;
use crate::output::gold::{Gold, GoldExport, GoldStats};
use crate::output::landing::{Landing, LandingError};
use crate::plugins::PluginFactory;
use crate::plugins::native::NativePlugins;
use crate::plugins::registry::{Mode, VersionId};
use crate::plugins::transforms::{TransformError, TransformRegistry};
use crate::row::ViewId;
use crate::serve::{AdminQueue, DeployError, Deployed, Deploys, ServeConfig, ServeError, Server};
use crate::settings::{Input, Settings};
use crate::source::file::FileSource;
use crate::source::generator::live::GeneratorSource;
use crate::source::kafka::KafkaInput;
use crate::source::replay::ReplaySource;
use crate::source::{Polled, Record, Source, SourceError};
use crate::time::Time;

pub mod durable;
pub mod quarantine;
mod status;

pub use durable::{CheckpointSettings, DEFAULT_SNAPSHOT_EVENTS, Durability, DurableError};
use quarantine::{Quarantine, Spill};
use status::Status;

/// Dataflow worker threads unless told otherwise.
pub const DEFAULT_WORKERS: usize = 2;
/// Input lines per logical time of a bounded run unless told otherwise.
pub const DEFAULT_EPOCH_LINES: usize = 20_000;
/// Lines read and admitted together from a file.
pub const CHUNK_LINES: usize = 1024;
/// Messages read per poll of a live source.
pub const POLL_MAX: usize = 8192;
/// Logical times a durable run's dataflow may fall behind before reading pauses.
pub const MAX_LAG: u64 = 50;

/// Settings shared by every run.
#[derive(Clone)]
pub struct RunConfig {
    pub workers: usize,
    /// Bounded runs: input lines per logical time.
    pub epoch_lines: usize,
    /// Wait for each logical time to be published before reading on (tests use this to see
    /// every intermediate time).
    pub lockstep: bool,
    pub plugins: Arc<dyn PluginFactory>,
    /// SPEC §2.7's lateness: an event more than this behind its tenant's watermark is
    /// quarantined as `too_late`. `None` admits any event time (and dedup remembers every
    /// id); `weir run` defaults to [`crate::settings::DEFAULT_LATENESS_MS`].
    pub lateness: Option<Millis>,
    /// Where entity records idle for a while go, and come back from when an event touches
    /// them; `None` keeps every one in memory. `weir run` puts it under `--out` (`cold/`).
    pub cold: Option<ColdTier>,
}

impl Default for RunConfig {
    /// The default plugins as WebAssembly.
    fn default() -> Self {
        let plugins: Arc<dyn PluginFactory> = match crate::plugins::set::shared_defaults() {
            Ok(set) => set,
            Err(e) => panic!("the embedded default plugins must load: {e}"),
        };
        RunConfig {
            workers: DEFAULT_WORKERS,
            epoch_lines: DEFAULT_EPOCH_LINES,
            lockstep: false,
            plugins,
            lateness: None,
            cold: None,
        }
    }
}

impl RunConfig {
    /// As the default, with the native reference plugins instead of WebAssembly.
    pub fn native() -> Self {
        RunConfig {
            plugins: Arc::new(NativePlugins),
            ..RunConfig::default()
        }
    }
}

/// Settings of a run that does not end by itself: it closes a logical time every `tick`,
/// serves the API and prints a status line.
#[derive(Clone)]
pub struct LiveConfig {
    /// How often a logical time closes.
    pub tick: Duration,
    /// How often the status line is printed.
    pub status_every: Duration,
    /// The API, if served.
    pub serve: Option<ServeConfig>,
    /// Publications kept for earlier `as_of` queries and subscribers.
    pub history: usize,
    /// Publications a subscriber may fall behind by.
    pub subscriber_buffer: usize,
    /// Stop once no input has come for this long.
    pub until_idle: Option<Duration>,
    /// Pause reading while the dataflow is this many logical times behind.
    pub max_lag: Option<u64>,
}

/// A failure of a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Landing(#[from] LandingError),
    #[error(transparent)]
    Durable(#[from] DurableError),
    #[error(transparent)]
    Spill(#[from] quarantine::SpillError),
    #[error(transparent)]
    Cold(#[from] ColdError),
    #[error("{streams} cannot resume at recorded offsets, so a run on it cannot checkpoint")]
    NotSeekable { streams: String },
    #[error("cannot write the ready file {path}: {source}")]
    ReadyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl RunError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            RunError::Pipeline(e) => e.code(),
            RunError::Source(e) => e.code(),
            RunError::Serve(e) => e.code(),
            RunError::Landing(e) => e.code(),
            RunError::Durable(e) => e.code(),
            RunError::Spill(e) => e.code(),
            RunError::Cold(e) => e.code(),
            RunError::NotSeekable { .. } => "not_seekable",
            RunError::ReadyFile { .. } => "ready_file",
        }
    }
}

/// What a run leaves behind.
pub struct RunResult {
    pub store: Arc<ViewStore>,
    pub stats: AdmissionStats,
    /// The quarantined inputs held in memory: all of them, unless the run streamed them to
    /// its `quarantine.parquet` (then the first [`quarantine::KEPT_IN_MEMORY`]).
    pub quarantine: Vec<Quarantined>,
    /// Where every quarantined input is, when the run streamed them to a file.
    pub quarantine_file: Option<quarantine::SpillFile>,
    pub elapsed: Duration,
    /// The cold tier the run used, with what moved through it.
    pub cold: Option<ColdTier>,
    /// What the gold export wrote, when the run had one.
    pub gold: Option<GoldStats>,
}

/// Exports every view as `views/<view>.parquet`, at one published time.
pub fn export_views(landing: &Landing, store: &ViewStore) -> Result<(), LandingError> {
    let published = store.read(|p| p.clone());
    for view in ViewId::VIEWS {
        landing.write_view(view.schema(), &published.rows(view), published.as_of)?;
    }
    Ok(())
}

impl RunResult {
    /// Writes `views/<view>.parquet`, `dead_letters.parquet` and `quarantine.parquet`.
    pub fn write_outputs(&self, landing: &Landing) -> Result<(), LandingError> {
        export_views(landing, &self.store)?;
        let published = self.store.read(|p| p.clone());
        let dead = ViewId::DeadLetters;
        landing.write_table(
            &format!("{}.parquet", dead.name()),
            dead.schema(),
            &published.rows(dead),
            published.as_of,
        )?;
        match &self.quarantine_file {
            Some(file) => landing.write_file("quarantine.parquet", &file.path),
            None => landing.write_quarantined("quarantine.parquet", &self.quarantine),
        }
    }

    /// The closing summary, one fact per line.
    pub fn summary(&self) -> String {
        let s = &self.stats;
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mut out = format!(
            "events read:   {}\nadmitted:      {}\nduplicates:    {}\nquarantined:   {}\n",
            s.read,
            s.admitted,
            s.duplicates,
            s.quarantined_total()
        );
        for (reason, count) in &s.quarantined {
            out.push_str(&format!("  {reason}: {count}\n"));
        }
        out.push_str(&format!(
            "logical time:  {}\nelapsed:       {:.2} s\nthroughput:    {:.0} events/s\n",
            self.store
                .as_of()
                .map_or_else(|| "-".to_owned(), |t| t.to_string()),
            secs,
            s.read as f64 / secs
        ));
        if let Some(cold) = &self.cold {
            out.push_str(&format!(
                "cold tier:     {} entity states moved to disk, {} brought back\n",
                cold.moved(),
                cold.revived()
            ));
        }
        if let Some(gold) = &self.gold {
            out.push_str(&format!(
                "gold:          {} closed rows exported ({} files written)\n",
                gold.rows, gold.files
            ));
        }
        out
    }
}

/// Writes the API's addresses as JSON, atomically (a reader never sees half a file).
fn write_ready(path: &std::path::Path, server: &Server) -> Result<(), RunError> {
    let ready = serde_json::json!({
        "grpc": server.grpc_addr().to_string(),
        "metrics": server.metrics_addr().map(|a| a.to_string()),
    });
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, ready.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| RunError::ReadyFile {
            path: path.display().to_string(),
            source,
        })
}

/// Runs the dataflow over all of `input` (NDJSON) and returns the final state.
pub fn run_bounded(
    config: &RunConfig,
    input: impl std::io::BufRead,
) -> Result<RunResult, RunError> {
    run_bounded_into(config, Arc::new(ViewStore::default()), input)
}

/// As [`run_bounded`], publishing into a store the caller already holds (and may observe).
pub fn run_bounded_into(
    config: &RunConfig,
    store: Arc<ViewStore>,
    input: impl std::io::BufRead,
) -> Result<RunResult, RunError> {
    let mut driver = Driver::start(config, store)?;
    let mut source = crate::source::file::FileSource::new(input, "the input");
    driver.run(&mut source, &AtomicBool::new(false))?;
    driver.finish()
}

/// Runs what `settings` describe to its end (or until `stop`), writing the outputs it names.
pub fn execute(settings: &Settings, stop: &AtomicBool) -> Result<RunResult, RunError> {
    let mut run = settings.run.clone();
    // A durable run's checkpoint is read first: when it holds the run's state, the cold tier
    // it refers to is kept, not emptied.
    let transforms = run
        .plugins
        .transforms()
        .iter()
        .map(|t| t.name().to_owned())
        .collect();
    let mut durability = match (&settings.out, &settings.checkpoints) {
        (Some(out), Some(checkpoints)) => Some(Durability::checkpointed(
            Landing::open(out)?,
            checkpoints.clone(),
            transforms,
        )?),
        _ => None,
    };
    let restoring = durability.as_ref().is_some_and(Durability::restores_state);
    if let Some(cold) = &settings.cold {
        let tier = if restoring {
            ColdTier::reopen(&cold.dir, cold.idle)?
        } else {
            ColdTier::prepare(&cold.dir, cold.idle)?
        };
        eprintln!(
            "weir: entities idle for {} s of event time move to {}",
            cold.idle / 1_000,
            cold.dir.display()
        );
        run.cold = Some(tier);
    }
    let run = &run;
    let mut driver = match &settings.live {
        Some(live) => Driver::live(run, live.clone())?,
        None => Driver::start(run, Arc::new(ViewStore::default()))?,
    };
    driver.ready_file = settings.ready_file.clone();
    if let Some(allowed) = &settings.allowed_tenants {
        eprintln!(
            "weir: admitting the events of {} listed tenants; any other tenant's are quarantined as unknown_tenant",
            allowed.len()
        );
        driver.allow_tenants(allowed.iter().cloned());
    }
    crate::metrics::global().set_max_tenant_labels(settings.tenant_labels);
    let out = settings.out.as_deref().unwrap_or_default();
    // The source first: a missing input is reported before an output directory is made.
    let mut source: Box<dyn Source> = match &settings.input {
        Input::File(path) => Box::new(FileSource::open(path)?),
        Input::Replay(input) => {
            let replay = ReplaySource::open(input).map_err(SourceError::from)?;
            eprintln!(
                "weir: replaying {} landed raw files from {input}",
                replay.files()
            );
            Box::new(replay)
        }
        Input::Generator {
            rate,
            seed,
            tenants,
        } => {
            eprintln!(
                "weir: live on the built-in generator at {rate} events/s with {} workers; Ctrl-C stops",
                run.workers
            );
            Box::new(GeneratorSource::new(*seed, *tenants, *rate))
        }
        Input::Kafka {
            url,
            group,
            reset_offsets,
        } => {
            eprintln!(
                "weir: reading {} from {} with {} workers; landing in {out}; Ctrl-C stops",
                url.topics.join(","),
                url.brokers,
                run.workers
            );
            Box::new(KafkaInput::new(url.clone(), group, *reset_offsets))
        }
    };
    match durability.take() {
        Some(durability) => driver = driver.durable(durability)?,
        None => {
            let landing = settings.out.as_deref().map(Landing::open).transpose()?;
            match landing {
                Some(landing) if settings.live.is_none() => driver.land_into(landing)?,
                landing => driver.outputs = landing,
            }
        }
    }
    if let (Some(out), Some(gold)) = (&settings.out, settings.gold) {
        // A run from a checkpoint takes the gold of the run it continues over; any other
        // starts from nothing.
        let fresh = settings.checkpoints.is_none();
        let serve = gold.serve;
        let gold = Gold::open(Landing::open(out)?, serve, fresh)?
            .with_span(gold.span_minutes)
            .logged();
        eprintln!(
            "weir: spans of event time more than {} s behind their tenant's watermark move to {out}/gold",
            serve / 1_000
        );
        driver.export_gold(gold, Some(crate::output::gold::EVERY));
    }
    driver.run(source.as_mut(), stop)?;
    let result = driver.finish()?;
    if settings.checkpoints.is_some() {
        eprintln!(
            "weir: wrote {out}/views/*.parquet; raw events and quarantine in {out}/raw and {out}/quarantine"
        );
    } else if settings.out.is_some() {
        eprintln!("weir: wrote {out}/views/*.parquet and quarantine.parquet");
    }
    Ok(result)
}

/// When logical times close.
#[derive(Clone, Copy, Debug)]
pub enum Clock {
    /// Every `per` input lines (bounded runs: the result depends only on the input).
    Lines { per: usize, done: usize },
    /// Every tick of the wall clock (live runs).
    Every(Duration),
}

/// The one run loop: owns the pipeline, admission, the API, the status line and metrics.
pub struct Driver {
    pipeline: Pipeline,
    admission: Admission,
    /// The transform versions, and which runs for whom: admission runs what it says.
    transforms: Arc<TransformRegistry>,
    store: Arc<ViewStore>,
    clock: Clock,
    lockstep: bool,
    quarantine: Quarantine,
    live: Option<LiveConfig>,
    served: Option<(Server, AdminQueue)>,
    status: Option<Status>,
    durability: Option<Durability>,
    /// The run's cold tier, for its counts.
    cold: Option<ColdTier>,
    /// The export of closed hours to gold, when the run has a landing zone and a serve window.
    gold: Option<GoldExport>,
    /// Where a run without durability writes its final outputs, if anywhere.
    outputs: Option<Landing>,
    /// Where the API's addresses are written once it serves.
    ready_file: Option<std::path::PathBuf>,
    /// Whether the source was positioned and read (a run stopped while waiting for its
    /// broker takes no final checkpoint).
    positioned: bool,
    /// Records fed by [`Driver::feed`] so far: their offsets.
    fed: i64,
    started: Instant,
}

impl Driver {
    /// A bounded driver: a logical time every `epoch_lines` lines, every quarantined input
    /// kept, nothing served. Feed it with [`Driver::feed`] or [`Driver::run`].
    pub fn start(config: &RunConfig, store: Arc<ViewStore>) -> Result<Driver, RunError> {
        let pipeline = Pipeline::start(
            PipelineConfig {
                workers: config.workers,
                plugins: config.plugins.clone(),
                lateness: config.lateness,
                cold: config.cold.clone(),
            },
            store.clone(),
        )?;
        let mut admission = Admission::new(config.plugins.transforms());
        admission.set_lateness(config.lateness);
        Ok(Driver {
            pipeline,
            admission,
            transforms: Arc::new(TransformRegistry::configured(&config.plugins)),
            store,
            clock: Clock::Lines {
                per: config.epoch_lines.max(1),
                done: 0,
            },
            lockstep: config.lockstep,
            quarantine: Quarantine::Keep(Vec::new()),
            live: None,
            served: None,
            status: None,
            durability: None,
            cold: config.cold.clone(),
            gold: None,
            outputs: None,
            ready_file: None,
            positioned: false,
            fed: 0,
            started: Instant::now(),
        })
    }

    /// A live driver: a logical time every tick, the API served once the run starts, a
    /// status line, the most recent quarantined inputs kept.
    pub fn live(config: &RunConfig, live: LiveConfig) -> Result<Driver, RunError> {
        let store = Arc::new(ViewStore::new(live.history, live.subscriber_buffer));
        let mut driver = Driver::start(config, store)?;
        driver.clock = Clock::Every(live.tick);
        driver.quarantine = Quarantine::Recent(VecDeque::new(), 0);
        driver.status = Some(Status::new(live.status_every));
        driver.live = Some(live);
        Ok(driver)
    }

    /// Lands what is read in `durability`; with checkpoints, quarantined inputs are landed
    /// there too (with their offsets) instead of kept. When its checkpoint holds the run's
    /// state, the dataflow starts again from it (call this before the driver runs).
    pub fn durable(mut self, mut durability: Durability) -> Result<Driver, RunError> {
        if durability.checkpoints() {
            self.quarantine = Quarantine::Landed;
        }
        if let Some(state) = durability.take_restore() {
            self.pipeline.restart_from(state)?;
        }
        durability.track_transforms(self.transforms.clone());
        if let Some(gold) = self.gold.take() {
            self.gold = durability.export_gold(gold.stop()).map(GoldExport::on_call);
        }
        self.durability = Some(durability);
        Ok(self)
    }

    /// Exports the hours of the windowed views past `gold`'s serve window as the run goes
    /// (every `every`, or at each [`Driver::pass_gold`] when `None`), and once more when it
    /// finishes.
    pub fn export_gold(&mut self, gold: Gold, every: Option<Duration>) {
        // A checkpointing run exports with the checkpoints that save its state.
        let gold = match self.durability.as_mut() {
            Some(durability) => match durability.export_gold(gold) {
                Some(gold) => gold,
                None => return,
            },
            None => gold,
        };
        self.gold = Some(match every {
            Some(every) => GoldExport::start(gold, self.store.clone(), every),
            None => GoldExport::on_call(gold),
        });
    }

    /// A gold export pass now, for an export that passes on call.
    pub fn pass_gold(&mut self) -> Result<(), RunError> {
        match self.gold.as_mut() {
            Some(gold) => Ok(gold.pass(&self.store)?),
            None => Ok(()),
        }
    }

    /// Closes the current logical time, publishing the watermarks it closes at with it (what
    /// the gold export reads).
    fn advance(&mut self) -> Time {
        self.store
            .watermarks(self.pipeline.epoch(), self.admission.watermarks());
        self.pipeline.advance()
    }

    /// Lands the raw events of a bounded run in `landing` (replacing an earlier bounded
    /// run's there).
    pub fn land_into(&mut self, landing: Landing) -> Result<(), RunError> {
        self.durability = Some(Durability::bounded(landing)?);
        self.quarantine = Quarantine::Spill(Box::new(Spill::new()));
        Ok(())
    }

    /// Admits only the events of `tenants` (the configuration's `[tenants] allow`); the
    /// others are quarantined as `unknown_tenant`.
    pub fn allow_tenants(&mut self, tenants: impl IntoIterator<Item = String>) {
        self.admission
            .allow_tenants(std::sync::Arc::new(tenants.into_iter().collect()));
    }

    pub fn pipeline(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }

    pub fn store(&self) -> &Arc<ViewStore> {
        &self.store
    }

    /// The API's addresses, once it is served.
    pub fn server(&self) -> Option<&Server> {
        self.served.as_ref().map(|(server, _)| server)
    }

    /// Keeps every admitted event so transforms can be swapped retroactively.
    pub fn retain_history(&mut self) {
        self.admission.retain_history();
    }

    /// The transform versions, and which is in force for whom.
    pub fn transforms(&self) -> &Arc<TransformRegistry> {
        &self.transforms
    }

    /// Deploys a registered transform version at the current logical time, which it
    /// returns. It replaces the version in force for its own scope only (a tenant's version
    /// takes that tenant out of the global one; a global one leaves the tenants' versions),
    /// and clears that scope's health record, so a fixed version re-enables a transform
    /// disabled for failing. `Retroactive` needs the run to retain history.
    pub fn deploy_transform(
        &mut self,
        version: VersionId,
        mode: Mode,
    ) -> Result<Time, TransformError> {
        let v = self
            .transforms
            .version(version)
            .ok_or(TransformError::NoVersion(version))?;
        let no_history = || TransformError::NoHistory {
            name: v.name.clone(),
        };
        if mode == Mode::Retroactive && !self.admission.retains_history() {
            return Err(no_history());
        }
        let at = self.pipeline.epoch();
        self.transforms.deploy(version, mode, at)?;
        if let Some(engine) = self.transforms.engine() {
            match &v.tenant {
                Some(tenant) => engine.reset_health(&v.name, Some(tenant)),
                None => engine.reset_health_except(&v.name, &self.transforms.overridden(&v.name)),
            }
        }
        let swapped = self
            .admission
            .swap_transforms(&v.name, self.transforms.group(&v.name), mode)
            .map_err(|_| no_history())?;
        self.quarantine.put(swapped.rejected);
        self.pipeline.push_updates(swapped.updates);
        eprintln!(
            "weir: transform {} version {} ({}) deployed {mode:?} for {} at logical time {at}",
            v.name,
            v.id,
            v.hash,
            v.tenant
                .as_deref()
                .map_or("every tenant".to_owned(), |t| format!("tenant {t}"))
        );
        Ok(at)
    }

    /// Validates a transform component (compiles, matches the transform world, passes
    /// `vectors`), registers it as a new version and deploys it now; returns the version and
    /// the logical time it took effect at.
    pub fn deploy_transform_component(
        &mut self,
        name: &str,
        bytes: &[u8],
        vectors: &str,
        tenant: Option<&str>,
        mode: Mode,
    ) -> Result<(VersionId, Time), DeployError> {
        let (id, _) = crate::plugins::set::upload_transform(
            &self.transforms,
            name,
            bytes.into(),
            vectors,
            tenant,
        )
        .map_err(PipelineError::from)?;
        let at = self.deploy_transform(id, mode)?;
        Ok((id, at))
    }

    /// As [`Pipeline::deploy_rule_component`]: a retroactive deploy re-judges the events
    /// within the run's lateness (SPEC §2.7), as a deploy through the API does.
    pub fn deploy_rule_component(
        &mut self,
        name: &str,
        bytes: &[u8],
        vectors: &str,
        tenant: Option<&str>,
        mode: Mode,
    ) -> Result<(VersionId, Time), DeployError> {
        let split = self.admission.split_at(self.pipeline.epoch());
        let pipeline = &mut self.pipeline;
        Ok(pipeline.deploy_rule_component(name, bytes, vectors, tenant, mode, split)?)
    }

    /// Swaps in a transform at the current logical time (which it returns); see
    /// [`Admission::swap_transform`] for the modes.
    pub fn swap_transform(
        &mut self,
        transform: Box<dyn crate::plugins::Transform>,
        mode: crate::plugins::registry::Mode,
    ) -> Result<Time, crate::admit::AdmitError> {
        let swapped = self.admission.swap_transform(transform, mode)?;
        self.quarantine.put(swapped.rejected);
        self.pipeline.push_updates(swapped.updates);
        Ok(self.pipeline.epoch())
    }

    /// Admits `lines` as the next records of a bounded input.
    pub fn feed<L: AsRef<[u8]>>(&mut self, lines: &[L]) {
        let stream: Arc<str> = crate::source::file::STREAM.into();
        let mut records = Vec::with_capacity(lines.len());
        crate::source::numbered(
            &stream,
            &mut self.fed,
            lines.iter().map(|l| l.as_ref().to_vec()),
            &mut records,
        );
        self.admit(&records);
        self.after_input();
    }

    /// Reads `source` until it ends, `stop` is set or (live) it has been idle too long.
    ///
    /// With a [`Durability`] that checkpoints, the newest checkpoint is restored first and the
    /// source positioned at its offsets; the API is served once the state is back.
    pub fn run(&mut self, source: &mut dyn Source, stop: &AtomicBool) -> Result<(), RunError> {
        let mut from = crate::source::Offsets::new();
        if let Some(durability) = self.durability.as_mut()
            && durability.checkpoints()
        {
            if !source.seekable() {
                return Err(RunError::NotSeekable {
                    streams: source.streams().join(","),
                });
            }
            from = durability.recover(
                &mut self.pipeline,
                &mut self.admission,
                &self.store,
                &source.streams(),
            )?;
        }
        self.serve()?;
        if !source.seek(&from, stop)? {
            return Ok(());
        }
        self.positioned = true;
        let (max, wait) = match &self.live {
            Some(live) => (POLL_MAX, live.tick),
            None => (CHUNK_LINES, Duration::ZERO),
        };
        let until_idle = self.live.as_ref().and_then(|l| l.until_idle);
        let max_lag = self.live.as_ref().and_then(|l| l.max_lag);
        let mut records = Vec::with_capacity(max);
        let (mut last_input, mut last_tick) = (Instant::now(), Instant::now());
        while !stop.load(Ordering::SeqCst) {
            if let Some(failed) = self.pipeline.failure() {
                return Err(failed.into());
            }
            let published = self.store.as_of().map_or(0, |t| t + 1);
            if max_lag.is_some_and(|lag| self.pipeline.epoch().saturating_sub(published) > lag) {
                // Backpressure: the dataflow is behind and the source is not read (Kafka's
                // client stops fetching once its queue is full). Waiting is not being idle.
                std::thread::sleep(Duration::from_millis(1));
                last_input = Instant::now();
            } else {
                records.clear();
                match source.poll(max, wait, &mut records)? {
                    Polled::End => break,
                    Polled::Records(0) => {}
                    Polled::Records(_) => {
                        last_input = Instant::now();
                        self.admit(&records);
                    }
                }
            }
            let mut deployed = Vec::new();
            if let Clock::Every(tick) = self.clock
                && last_tick.elapsed() >= tick
            {
                last_tick = Instant::now();
                deployed = self.tick();
            }
            if let Some(durability) = self.durability.as_mut() {
                // A deploy is checkpointed at once, and acknowledged only after: a restart
                // must not forget what a caller was told took effect.
                durability.after_input(
                    &mut self.pipeline,
                    &self.admission,
                    &self.store,
                    source,
                    !deployed.is_empty(),
                    stop,
                )?;
            }
            deployed.into_iter().for_each(Deployed::acknowledge);
            if let Some(status) = self.status.as_mut() {
                status.tick(self.admission.stats(), &self.store, self.cold.as_ref());
            }
            if let Some(idle) = until_idle
                && last_input.elapsed() >= idle
            {
                eprintln!(
                    "weir: the source has been idle for {:.1} s; stopping",
                    idle.as_secs_f64()
                );
                break;
            }
        }
        if let Some(durability) = self.durability.as_mut()
            && durability.checkpoints()
        {
            durability.checkpoint(
                &mut self.pipeline,
                &self.admission,
                &self.store,
                source,
                false,
                true,
                stop,
            )?;
        }
        Ok(())
    }

    /// Closes the input, drains the dataflow, lands what is left and returns the final state.
    pub fn finish(self) -> Result<RunResult, RunError> {
        let Driver {
            pipeline,
            admission,
            quarantine,
            served,
            durability,
            outputs,
            started,
            cold,
            gold,
            store,
            ..
        } = self;
        let stats = admission.stats().clone();
        store.watermarks(pipeline.epoch(), admission.watermarks());
        let store = pipeline.finish()?;
        // The last pass, over the final views: every closed hour is in gold when the run ends.
        let gold = match gold {
            Some(export) => {
                let mut gold = export.stop();
                gold.pass(&store)?;
                Some(gold.stats())
            }
            None => None,
        };
        let gold = gold.or_else(|| durability.as_ref().and_then(Durability::gold_stats));
        let (quarantine, quarantine_file) = quarantine.finish()?;
        let result = RunResult {
            store,
            stats,
            quarantine,
            quarantine_file,
            elapsed: started.elapsed(),
            cold,
            gold,
        };
        if let Some(durability) = durability {
            durability.finish(&result)?;
        }
        if let Some(landing) = outputs {
            result.write_outputs(&landing)?;
        }
        drop(served);
        Ok(result)
    }

    /// Starts the API, if this run serves it; says where on stderr.
    fn serve(&mut self) -> Result<(), RunError> {
        let Some(config) = self.live.as_ref().and_then(|l| l.serve.as_ref()) else {
            return Ok(());
        };
        if self.served.is_some() {
            return Ok(());
        }
        let (server, admin) = Server::start_with_transforms(
            config,
            self.store.clone(),
            self.pipeline.rules().clone(),
            self.transforms.clone(),
        )?;
        eprintln!(
            "weir: gRPC on {} (weir.v1, health, reflection)",
            server.grpc_addr()
        );
        if let Some(addr) = server.metrics_addr() {
            let scheme = if config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            eprintln!("weir: metrics on {scheme}://{addr}/metrics");
        }
        if let Some(path) = &self.ready_file {
            write_ready(path, &server)?;
        }
        self.served = Some((server, admin));
        Ok(())
    }

    /// A live run's tick: applies waiting deploys, books the counters, closes a logical time.
    /// Returns the deploys that took effect.
    fn tick(&mut self) -> Vec<Deployed> {
        // Out of `self` while it applies them: a transform deploy needs the whole driver.
        let mut served = self.served.take();
        let deployed = match served.as_mut() {
            Some((_, admin)) => admin.drain_unacknowledged(self),
            None => Vec::new(),
        };
        self.served = served;
        let source_id = Arc::as_ptr(&self.store) as usize;
        crate::metrics::global().sync_admission(source_id, self.admission.stats());
        self.advance();
        deployed
    }

    /// Bounded runs land their raw events in spans; an error is kept for [`Driver::finish`].
    fn after_input(&mut self) {
        if let Some(durability) = self.durability.as_mut() {
            durability.flush_spans();
        }
    }

    /// Admits records partition by partition, in offset order within each, closing logical
    /// times on the way when they are counted in lines.
    fn admit(&mut self, records: &[Record]) {
        let mut partitions: BTreeMap<(&str, i32), Vec<&Record>> = BTreeMap::new();
        for r in records {
            partitions
                .entry((&r.stream, r.partition))
                .or_default()
                .push(r);
        }
        for ((stream, partition), mut records) in partitions {
            if let Some(durability) = &self.durability {
                durability.drop_already_read(stream, partition, &mut records);
            }
            let mut rest = &records[..];
            while !rest.is_empty() {
                let take = match self.clock {
                    Clock::Lines { per, done } => rest.len().min(per - done),
                    Clock::Every(_) => rest.len(),
                };
                let (now, later) = rest.split_at(take);
                rest = later;
                let epoch = self.pipeline.epoch();
                let lines: Vec<&[u8]> = now.iter().map(|r| r.payload.as_slice()).collect();
                let admitted = self
                    .admission
                    .admit(&lines, epoch, self.durability.is_some());
                let Admitted {
                    events, rejected, ..
                } = match self.durability.as_mut() {
                    Some(durability) => {
                        durability.record((stream, partition), now, epoch, admitted)
                    }
                    None => admitted,
                };
                self.quarantine.put(rejected.into_iter().map(|(_, q)| q));
                self.pipeline.push(events);
                if let Clock::Lines { per, done } = &mut self.clock {
                    *done += take;
                    if *done == *per {
                        *done = 0;
                        let closed = self.advance();
                        // A failed worker ends the run at the next poll.
                        if self.lockstep && self.store.wait_for(closed).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
}

impl Deploys for Driver {
    /// A retroactive deploy re-judges the events within the run's lateness (SPEC §2.7).
    fn deploy_rule(&mut self, version: VersionId, mode: Mode) -> Result<Time, DeployError> {
        let split = self.admission.split_at(self.pipeline.epoch());
        crate::serve::deploy_rule_logged(&mut self.pipeline, version, mode, split)
    }

    fn deploy_transform(&mut self, version: VersionId, mode: Mode) -> Result<Time, DeployError> {
        Ok(Driver::deploy_transform(self, version, mode)?)
    }
}
