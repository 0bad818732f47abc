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

use crate::generator::{GenConfig, Generator};
use crate::ingest::{Admission, AdmissionStats, QuarantineSink, Quarantined};
use crate::pipeline::{Pipeline, PipelineConfig};
use crate::plugins::PluginFactory;
use crate::plugins::native::NativePlugins;
use crate::row::{FRAUD_ALERTS, VIEWS};
use crate::sink::{self, SinkError};
use crate::store::ViewStore;

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
    fn default() -> Self {
        RunConfig {
            workers: 1,
            epoch_lines: 20_000,
            lockstep: false,
            plugins: Arc::new(NativePlugins),
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
    let started = Instant::now();
    let mut pipeline = start(config, store)?;
    let mut admission = Admission::new(config.plugins.transforms(), Vec::new());
    let epoch_lines = config.epoch_lines.max(1);
    let mut in_epoch = 0;
    loop {
        let want = CHUNK_LINES.min(epoch_lines - in_epoch);
        let lines = read_chunk(&mut input, want)?;
        if lines.is_empty() {
            break;
        }
        in_epoch += lines.len();
        pipeline.push(admission.admit(&lines));
        if in_epoch == epoch_lines {
            in_epoch = 0;
            let closed = pipeline.advance();
            if config.lockstep {
                pipeline.store().wait_for(closed);
            }
        }
    }
    let stats = admission.stats().clone();
    let store = pipeline.finish();
    Ok(RunResult {
        store,
        stats,
        quarantine: admission.into_quarantine(),
        elapsed: started.elapsed(),
    })
}

fn start(config: &RunConfig, store: Arc<ViewStore>) -> io::Result<Pipeline> {
    Pipeline::start(
        PipelineConfig {
            workers: config.workers,
            plugins: config.plugins.clone(),
        },
        store,
    )
    .map_err(|e| io::Error::other(format!("cannot start the dataflow workers: {e}")))
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
}

/// Keeps the most recent quarantined inputs of a run that never ends.
struct RecentQuarantine {
    records: VecDeque<Quarantined>,
    capacity: usize,
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
    let store = Arc::new(ViewStore::default());
    let mut pipeline = start(&config.run, store.clone())?;
    let quarantine = RecentQuarantine {
        records: VecDeque::new(),
        capacity: 100_000,
    };
    let mut admission = Admission::new(config.run.plugins.transforms(), quarantine);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut generator = Generator::new(GenConfig {
        seed: config.seed,
        tenants: config.tenants,
        start_ms: now_ms,
    });
    let mut generated: u64 = 0;
    let mut last_status = Instant::now();
    let mut status_read = 0;
    while !stop.load(Ordering::SeqCst) {
        let due = (started.elapsed().as_secs_f64() * config.rate as f64) as u64;
        while generated < due {
            let n = (due - generated).min(CHUNK_LINES as u64);
            let lines: Vec<String> = generator.by_ref().take(n as usize).collect();
            generated += n;
            pipeline.push(admission.admit(&lines));
        }
        pipeline.advance();
        if last_status.elapsed() >= config.status_every {
            let stats = admission.stats();
            let rate = (stats.read - status_read) as f64 / last_status.elapsed().as_secs_f64();
            status_read = stats.read;
            last_status = Instant::now();
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
        std::thread::sleep(config.tick);
    }
    let stats = admission.stats().clone();
    let store = pipeline.finish();
    Ok(RunResult {
        store,
        stats,
        quarantine: admission.into_quarantine().records.into(),
        elapsed: started.elapsed(),
    })
}
