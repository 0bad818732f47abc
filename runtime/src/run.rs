//! Runs: wiring a source through admission and the dataflow to the outputs.
//!
//! A bounded run reads NDJSON to its end and writes the final views; a live run pulls from the
//! built-in generator at a fixed rate until told to stop. Both close a logical time every few
//! events (bounded) or milliseconds (live), which is what views are published at.

use std::collections::VecDeque;
use std::io::{self, BufRead};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::event::Event;
use crate::generator::{GenConfig, Generator};
use crate::ingest::{Admission, AdmissionStats, QuarantineSink, Quarantined};
use crate::landing::{Landing, LandingError};
use crate::pipeline::{Pipeline, PipelineConfig};
use crate::plugins::PluginFactory;
use crate::plugins::native::NativePlugins;
use crate::row::{DEAD_LETTERS, FRAUD_ALERTS, TABLES, VIEWS, view_schema};
use crate::sink::{self, SinkError};
use crate::store::ViewStore;

/// The source name of a bounded run's landed raw files.
pub const BOUNDED_SOURCE: &str = "input";

/// Lines admitted together before their events go to the workers.
const CHUNK_LINES: usize = 1024;

/// Settings shared by bounded and live runs.
#[derive(Clone)]
pub struct RunConfig {
    pub workers: usize,
    /// Bounded runs: input lines per logical time.
    pub epoch_lines: usize,
    /// Wait for each logical time to be published before reading on (tests use this to see
    /// every intermediate time).
    pub lockstep: bool,
    pub plugins: Arc<dyn PluginFactory>,
}

impl Default for RunConfig {
    /// One worker and the default plugins as WebAssembly.
    fn default() -> Self {
        let plugins: Arc<dyn PluginFactory> = match crate::plugins::set::shared_defaults() {
            Ok(set) => set,
            Err(e) => panic!("the embedded default plugins must load: {e}"),
        };
        RunConfig {
            workers: 1,
            epoch_lines: 20_000,
            lockstep: false,
            plugins,
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

/// What a run leaves behind.
pub struct RunResult {
    pub store: Arc<ViewStore>,
    pub stats: AdmissionStats,
    pub quarantine: Vec<Quarantined>,
    pub elapsed: Duration,
}

impl RunResult {
    /// Writes `DIR/views/<view>.parquet` and `DIR/quarantine.parquet`.
    pub fn write_outputs(&self, dir: &Path) -> Result<(), SinkError> {
        let published = self.store.read(|p| p.clone());
        for (i, view) in VIEWS.iter().enumerate() {
            let path = dir.join("views").join(format!("{}.parquet", view.name));
            sink::write_view(&path, view, &published.rows(i), published.as_of)?;
        }
        let (dead, _) = view_schema(DEAD_LETTERS.name).expect("dead letters are a table");
        let path = dir.join(format!("{}.parquet", DEAD_LETTERS.name));
        sink::write_view(&path, &TABLES[dead], &published.rows(dead), published.as_of)?;
        sink::write_quarantine(&dir.join("quarantine.parquet"), &self.quarantine)
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
        out
    }
}

/// Splits `buf` into lines without their `\n` / `\r\n`; blank lines are skipped.
fn read_chunk(input: &mut impl BufRead, max: usize) -> io::Result<Vec<Vec<u8>>> {
    let mut lines = Vec::with_capacity(max);
    while lines.len() < max {
        let mut line = Vec::new();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            lines.push(line);
        }
    }
    Ok(lines)
}

/// Runs the dataflow over all of `input` (NDJSON) and returns the final state.
pub fn run_bounded(config: &RunConfig, input: impl BufRead) -> io::Result<RunResult> {
    run_bounded_into(config, Arc::new(ViewStore::default()), input)
}

/// As [`run_bounded`], publishing into a store the caller already holds (and may observe).
pub fn run_bounded_into(
    config: &RunConfig,
    store: Arc<ViewStore>,
    mut input: impl BufRead,
) -> io::Result<RunResult> {
    let mut runner = Runner::start(config, store)?;
    runner.feed_all(&mut input)?;
    Ok(runner.finish())
}

/// A bounded run fed by the caller: lines in, logical times closed every `epoch_lines`
/// lines, and the pipeline at hand between feeds (to deploy a rule version, say).
pub struct Runner {
    pipeline: Pipeline,
    admission: Admission<Vec<Quarantined>>,
    epoch_lines: usize,
    in_epoch: usize,
    lockstep: bool,
    started: Instant,
    landing: Option<RawLanding>,
    landing_error: Option<LandingError>,
}

/// Raw events of a bounded run on their way to the landing zone; the input's line numbers
/// are its offsets.
struct RawLanding {
    landing: Landing,
    lines: i64,
    first: i64,
    raw: Vec<(i64, Event)>,
}

impl RawLanding {
    /// Lines per landed file.
    const SPAN: i64 = 200_000;

    fn flush(&mut self) -> Result<(), LandingError> {
        if self.lines > self.first {
            let span = (self.first, self.lines - 1);
            self.landing.write_raw(BOUNDED_SOURCE, 0, span, &self.raw)?;
        }
        self.first = self.lines;
        self.raw.clear();
        Ok(())
    }
}

impl Runner {
    pub fn start(config: &RunConfig, store: Arc<ViewStore>) -> io::Result<Runner> {
        Ok(Runner {
            pipeline: start(config, store)?,
            admission: Admission::new(config.plugins.transforms(), Vec::new()),
            epoch_lines: config.epoch_lines.max(1),
            in_epoch: 0,
            lockstep: config.lockstep,
            started: Instant::now(),
            landing: None,
            landing_error: None,
        })
    }

    /// Lands the raw events in `landing` too (replacing an earlier bounded run's there).
    pub fn land_into(&mut self, landing: Landing) -> Result<(), LandingError> {
        landing.remove_uncommitted(&[BOUNDED_SOURCE.to_owned()], &Default::default())?;
        self.landing = Some(RawLanding {
            landing,
            lines: 0,
            first: 0,
            raw: Vec::new(),
        });
        Ok(())
    }

    /// Feeds all of `input` (NDJSON), a chunk of lines at a time.
    pub fn feed_all(&mut self, input: &mut impl BufRead) -> io::Result<()> {
        loop {
            let lines = read_chunk(input, CHUNK_LINES)?;
            if lines.is_empty() {
                return Ok(());
            }
            self.feed(&lines);
        }
    }

    /// Admits `lines` and hands their events to the dataflow.
    pub fn feed<L: AsRef<[u8]>>(&mut self, lines: &[L]) {
        let raw = self.feed_epochs(lines, self.landing.is_some());
        let Some(landing) = self.landing.as_mut() else {
            return;
        };
        let base = landing.lines;
        landing
            .raw
            .extend(raw.into_iter().map(|(line, e)| (base + line as i64, e)));
        landing.lines += lines.len() as i64;
        if landing.lines - landing.first >= RawLanding::SPAN
            && let Err(e) = landing.flush()
        {
            // Kept for [`Runner::finish_landed`] to report; the run goes on meanwhile.
            self.landing_error.get_or_insert(e);
        }
    }

    /// Admits `lines` in logical times of `epoch_lines`; returns the raw inputs with their
    /// line index when `keep_inputs`.
    fn feed_epochs<L: AsRef<[u8]>>(
        &mut self,
        mut lines: &[L],
        keep_inputs: bool,
    ) -> Vec<(usize, Event)> {
        let mut raw = Vec::new();
        let mut done = 0;
        while !lines.is_empty() {
            let take = lines.len().min(self.epoch_lines - self.in_epoch);
            let (now, rest) = lines.split_at(take);
            lines = rest;
            let epoch = self.pipeline.epoch();
            let (events, inputs) = self.admission.admit_keeping(now, epoch, keep_inputs);
            raw.extend(inputs.into_iter().map(|(i, e)| (done + i, e)));
            done += take;
            self.pipeline.push(events);
            self.in_epoch += take;
            if self.in_epoch == self.epoch_lines {
                self.in_epoch = 0;
                let closed = self.pipeline.advance();
                if self.lockstep {
                    self.pipeline.store().wait_for(closed);
                }
            }
        }
        raw
    }

    pub fn pipeline(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }

    /// Keeps every admitted event so transforms can be swapped retroactively.
    pub fn retain_history(&mut self) {
        self.admission.retain_history();
    }

    /// Swaps in a transform at the current logical time (which it returns); see
    /// [`Admission::swap_transform`] for the modes.
    pub fn swap_transform(
        &mut self,
        transform: Box<dyn crate::plugins::Transform>,
        mode: crate::plugins::registry::Mode,
    ) -> Result<crate::views::Time, String> {
        let updates = self.admission.swap_transform(transform, mode)?;
        self.pipeline.push_updates(updates);
        Ok(self.pipeline.epoch())
    }

    /// As [`Runner::finish`], landing the last raw events first; fails if any landing
    /// write did.
    pub fn finish_landed(mut self) -> Result<RunResult, LandingError> {
        if let Some(error) = self.landing_error.take() {
            return Err(error);
        }
        if let Some(landing) = self.landing.as_mut() {
            landing.flush()?;
        }
        Ok(self.finish())
    }

    /// Closes the input, drains the dataflow and returns the final state.
    pub fn finish(self) -> RunResult {
        let stats = self.admission.stats().clone();
        let store = self.pipeline.finish();
        RunResult {
            store,
            stats,
            quarantine: self.admission.into_quarantine(),
            elapsed: self.started.elapsed(),
        }
    }
}

pub(crate) fn start(config: &RunConfig, store: Arc<ViewStore>) -> io::Result<Pipeline> {
    Pipeline::start(
        PipelineConfig {
            workers: config.workers,
            plugins: config.plugins.clone(),
        },
        store,
    )
    .map_err(|e| io::Error::other(format!("cannot start the dataflow: {e}")))
}

/// Settings of a live run on the built-in generator.
#[derive(Clone)]
pub struct LiveConfig {
    pub run: RunConfig,
    /// Generated events per second.
    pub rate: u64,
    pub seed: u64,
    pub tenants: usize,
    /// How often a logical time closes.
    pub tick: Duration,
    /// How often the status line is printed.
    pub status_every: Duration,
    /// The API, if served.
    pub serve: Option<crate::serve::ServeConfig>,
    /// Publications kept for earlier `as_of` queries and subscribers.
    pub history: usize,
    /// Publications a subscriber may fall behind by.
    pub subscriber_buffer: usize,
}

/// Keeps the most recent quarantined inputs of a run that never ends.
struct RecentQuarantine {
    records: VecDeque<Quarantined>,
    capacity: usize,
}

impl RecentQuarantine {
    fn new() -> Self {
        RecentQuarantine {
            records: VecDeque::new(),
            capacity: 100_000,
        }
    }
}

impl QuarantineSink for RecentQuarantine {
    fn put(&mut self, record: Quarantined) {
        if self.records.len() == self.capacity {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }
}

/// Runs on the generator until `stop` is set, then drains and returns the final state.
pub fn run_live(config: &LiveConfig, stop: &AtomicBool) -> io::Result<RunResult> {
    let started = Instant::now();
    let store = Arc::new(ViewStore::new(config.history, config.subscriber_buffer));
    let mut pipeline = start(&config.run, store.clone())?;
    let mut served = serve(config.serve.as_ref(), &store, &pipeline)?;
    let metrics = crate::serve::metrics::global();
    let source_id = Arc::as_ptr(&store) as usize;
    let mut admission = Admission::new(config.run.plugins.transforms(), RecentQuarantine::new());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut generator = Generator::new(GenConfig {
        seed: config.seed,
        tenants: config.tenants,
        start_ms: now_ms,
    });
    let mut generated: u64 = 0;
    let mut status = Status::new(config.status_every);
    while !stop.load(Ordering::SeqCst) {
        let due = (started.elapsed().as_secs_f64() * config.rate as f64) as u64;
        while generated < due {
            let n = (due - generated).min(CHUNK_LINES as u64);
            let lines: Vec<String> = generator.by_ref().take(n as usize).collect();
            generated += n;
            let epoch = pipeline.epoch();
            pipeline.push(admission.admit_at(&lines, epoch));
        }
        if let Some((_, admin)) = served.as_mut() {
            admin.drain(&mut pipeline);
        }
        metrics.sync_admission(source_id, admission.stats());
        pipeline.advance();
        status.tick(admission.stats(), &store);
        std::thread::sleep(config.tick);
    }
    let stats = admission.stats().clone();
    let store = pipeline.finish();
    drop(served);
    Ok(RunResult {
        store,
        stats,
        quarantine: admission.into_quarantine().records.into(),
        elapsed: started.elapsed(),
    })
}

/// Starts the API for a live run, if it is served; says where on stderr.
pub(crate) fn serve(
    config: Option<&crate::serve::ServeConfig>,
    store: &Arc<ViewStore>,
    pipeline: &Pipeline,
) -> io::Result<Option<(crate::serve::Server, crate::serve::AdminQueue)>> {
    let Some(config) = config else {
        return Ok(None);
    };
    let (server, admin) =
        crate::serve::Server::start(config, store.clone(), pipeline.rules().clone())
            .map_err(io::Error::other)?;
    eprintln!(
        "weir: gRPC on {} (weir.v1, health, reflection)",
        server.grpc_addr()
    );
    if let Some(addr) = server.metrics_addr() {
        eprintln!("weir: metrics on http://{addr}/metrics");
    }
    Ok(Some((server, admin)))
}

/// The status line of a live run, every so often.
pub(crate) struct Status {
    every: Duration,
    last: Instant,
    read: u64,
}

impl Status {
    pub(crate) fn new(every: Duration) -> Self {
        Status {
            every,
            last: Instant::now(),
            read: 0,
        }
    }

    pub(crate) fn tick(&mut self, stats: &AdmissionStats, store: &ViewStore) {
        if self.last.elapsed() < self.every {
            return;
        }
        let rate = (stats.read - self.read) as f64 / self.last.elapsed().as_secs_f64();
        self.read = stats.read;
        self.last = Instant::now();
        let (as_of, alerts) = store.read(|p| (p.as_of, p.views[5].len()));
        eprintln!(
            "weir: {rate:.0} events/s | read {} admitted {} duplicates {} quarantined {} | {} {alerts} | logical time {}",
            stats.read,
            stats.admitted,
            stats.duplicates,
            stats.quarantined_total(),
            FRAUD_ALERTS.name,
            as_of.map_or_else(|| "-".to_owned(), |t| t.to_string()),
        );
    }
}
