//! Gold: the closed rows of the windowed views, as Parquet tables in the landing zone.
//!
//! ```text
//! gold/<view>/tenant_id=<T>/date=<YYYY-MM-DD>/<HHMM>.parquet
//! ```
//!
//! `gmv_minute`, `sessions` and `conversion_hour` rows each belong to an hour of event time
//! (of `minute_start_ms`, `session_start_ms`, `hour_start_ms`; [`Gold::with_span`] makes the
//! files span less). Once an hour is more than the
//! serve window (`[retention] serve`, default 7 days) behind its tenant's watermark, its rows
//! are written to that hour's file and leave the live store ([`ViewStore::retire`]). A view
//! is the union of its gold files and its live rows, always: a later change to a row in gold
//! (an order of that hour cancelled a week on) arrives in the store as an ordinary update,
//! and the next pass merges it into the hour's file and retires it too.
//!
//! A file is named by its hour, so writing it again replaces it: an export is idempotent, and
//! a file is replaced whole (staged, then renamed; an S3 put is atomic) or not at all. A pass
//! is a [`GoldPlan`] first — every file's whole content, and the rows it takes out of the
//! store — then written, then retired. A checkpointing run commits the plan inside the
//! checkpoint that saves its state (the saved store already without those rows) and writes it
//! only after the commit; a restart from that state writes the plan again
//! ([`Gold::resume`]), so gold and the restored store are one union whenever the kill landed.
//! A restart from a checkpoint without a state rebuilds every row, including those of the
//! hours already in gold: the first pass that reaches such an hour *takes it over*, writing it
//! from the store alone (the rebuilt truth) instead of merging into it. A run that starts from
//! nothing (bounded, or live on the generator) removes the gold files of an earlier run
//! first.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::dataflow::store::{Retired, ViewStore};
use crate::output::landing::{Landing, LandingError};
use crate::row::{Cell, Row, ViewId};
use crate::time::{Diff, Millis};

/// SPEC §2.7's default serve window: rows of an hour more than 7 days behind their tenant's
/// watermark go to gold.
pub const DEFAULT_SERVE_MS: Millis = 7 * 86_400_000;

/// The span of event time one gold file holds (its name is the span's start, `HHMM`).
pub const BUCKET_MS: Millis = 3_600_000;

/// How often a run looks for hours to export.
pub const EVERY: Duration = Duration::from_secs(2);

/// The windowed views, each with the column holding the event time its rows belong to.
pub const WINDOWED: [(ViewId, usize); 3] = [
    (ViewId::GmvMinute, 2),
    (ViewId::Sessions, 2),
    (ViewId::ConversionHour, 1),
];

/// The file of one view's rows of one tenant and span, named by the span's start.
pub fn file_name(view: ViewId, tenant: &str, start: Millis) -> String {
    let at = chrono::DateTime::from_timestamp_millis(start).unwrap_or_default();
    format!(
        "gold/{}/tenant_id={tenant}/date={}/{}.parquet",
        view.name(),
        at.format("%Y-%m-%d"),
        at.format("%H%M")
    )
}

/// The view, tenant and span start of a gold file's name (`None` for anything else).
pub fn parse_name(name: &str) -> Option<(ViewId, String, Millis)> {
    let mut parts = name.split('/');
    if parts.next()? != "gold" {
        return None;
    }
    let view = ViewId::from_name(parts.next()?)?;
    let tenant = parts.next()?.strip_prefix("tenant_id=")?.to_owned();
    let date = parts.next()?.strip_prefix("date=")?;
    let start = parts.next()?.strip_suffix(".parquet")?;
    if start.len() != 4
        || !start.bytes().all(|b| b.is_ascii_digit())
        || parts.next().is_some()
        || !WINDOWED.iter().any(|(v, _)| *v == view)
    {
        return None;
    }
    let (hour, minute) = (start[..2].parse().ok()?, start[2..].parse().ok()?);
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let at = day
        .and_hms_opt(hour, minute, 0)?
        .and_utc()
        .timestamp_millis();
    Some((view, tenant, at))
}

type Bucket = (ViewId, String, Millis);

/// What the exports did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoldStats {
    /// Files written (first exports, merges and takeovers).
    pub files: u64,
    /// Of the files, those that merged changes into rows exported before.
    pub merged: u64,
    /// Rows taken out of the live store.
    pub rows: u64,
}

/// The exporter: which hours it has written, which it found from an earlier run.
pub struct Gold {
    landing: Landing,
    serve: Millis,
    /// The span of event time of one file: [`BUCKET_MS`] unless set.
    bucket: Millis,
    /// Whether each pass that writes says so on stderr (a run's, not a library caller's).
    logged: bool,
    /// A pause before each file is written, from `WEIR_GOLD_WRITE_DELAY_MS`: a fault
    /// injection that stretches an export so a test's kill lands in the middle of one.
    delay: Duration,
    /// When the current pass wrote its first file.
    writing: Option<Instant>,
    /// Hours whose file plus the live rows is the view.
    owned: HashSet<Bucket>,
    /// Hours with a file from before this run, not yet taken over.
    found: BTreeSet<Bucket>,
    /// A pass whose files are not all written yet: the next one finishes it first.
    pending: Option<GoldPlan>,
    stats: GoldStats,
}

impl Gold {
    /// An exporter into `landing`, for rows more than `serve` behind their watermark. With
    /// `fresh`, the gold files of an earlier run are removed; else they are taken over as
    /// the passes reach them. Staged halves of files a killed run left are removed either way.
    pub fn open(landing: Landing, serve: Millis, fresh: bool) -> Result<Gold, LandingError> {
        landing.remove_staged("gold")?;
        let mut found = BTreeSet::new();
        for name in landing.files("gold")? {
            match parse_name(&name) {
                Some(_) if fresh => landing.remove(&name)?,
                Some(bucket) => {
                    found.insert(bucket);
                }
                None => {}
            }
        }
        Ok(Gold {
            landing,
            serve: serve.max(0),
            bucket: BUCKET_MS,
            logged: false,
            delay: std::env::var("WEIR_GOLD_WRITE_DELAY_MS")
                .ok()
                .and_then(|ms| ms.parse().ok())
                .map_or(Duration::ZERO, Duration::from_millis),
            writing: None,
            owned: HashSet::new(),
            found,
            pending: None,
            stats: GoldStats::default(),
        })
    }

    /// Files of `minutes` of event time each instead of an hour (a whole number of minutes
    /// that divides a day), for inputs that span less than many hours.
    pub fn with_span(mut self, minutes: u32) -> Gold {
        assert!(
            minutes > 0 && 1_440 % minutes == 0,
            "a gold file spans a divisor of a day, not {minutes} minutes"
        );
        self.bucket = Millis::from(minutes) * 60_000;
        self
    }

    /// Each pass that writes files says so on stderr, when it starts and when it is done.
    pub fn logged(mut self) -> Gold {
        self.logged = true;
        self
    }

    pub fn stats(&self) -> GoldStats {
        self.stats
    }

    /// Exports every hour now past the serve window, and merges the changes made since to the
    /// hours exported before. The rows leave the store only once every file is written; a
    /// pass that fails midway is finished first by the next one (its files are written
    /// whole again), so the store and gold stay one union.
    pub fn pass(&mut self, store: &ViewStore) -> Result<(), LandingError> {
        self.writing = None;
        let plan = match self.pending.take() {
            Some(plan) => plan,
            None => self.plan(store)?,
        };
        let applied = self.apply(&plan.files);
        match applied {
            Ok(()) => self.retire(plan, store),
            Err(_) => {
                self.report(plan.before);
                self.pending = Some(plan);
            }
        }
        applied
    }

    /// What a pass would write and take out of the store, with nothing written yet: a durable
    /// run commits it with a checkpoint first ([`Gold::apply`], then [`Gold::retire`]).
    pub fn plan(&mut self, store: &ViewStore) -> Result<GoldPlan, LandingError> {
        let version = store.version();
        let published = &version.published;
        self.writing = None;
        let mut plan = GoldPlan {
            before: self.stats,
            ..GoldPlan::default()
        };
        for (tenant, mark) in published.watermarks.iter() {
            let upto = mark
                .saturating_sub(self.serve)
                .div_euclid(self.bucket)
                .saturating_mul(self.bucket);
            for (view, column) in WINDOWED {
                let prefix = [Cell::Str(tenant.clone())];
                let mut hours: BTreeMap<Millis, Vec<(Row, Diff)>> = BTreeMap::new();
                for (row, count) in published.with_prefix(view, &prefix, None) {
                    let Some(Cell::Int(at)) = row.get(column) else {
                        continue;
                    };
                    if *at < upto {
                        hours
                            .entry(at.div_euclid(self.bucket) * self.bucket)
                            .or_default()
                            .push((row.clone(), count));
                    }
                }
                // Hours of an earlier run this run has no rows for: not in the view now.
                let stale: Vec<Millis> = self
                    .found
                    .range((view, tenant.clone(), Millis::MIN)..(view, tenant.clone(), upto))
                    .map(|(_, _, hour)| *hour)
                    .filter(|hour| !hours.contains_key(hour))
                    .collect();
                for hour in stale {
                    plan.files.push(GoldFile {
                        name: file_name(view, tenant, hour),
                        rows: Vec::new(),
                    });
                    self.found.remove(&(view, tenant.clone(), hour));
                    self.owned.insert((view, tenant.clone(), hour));
                }
                let mut retired = Vec::new();
                for (hour, changes) in hours {
                    let file = self.merged(view, tenant, hour, &changes)?;
                    plan.files.push(file);
                    retired.extend(changes);
                }
                let already = published.gold.get(&(view, tenant.clone())).copied();
                if !retired.is_empty() || already.is_none_or(|a| a < upto) {
                    self.stats.rows += retired.len() as u64;
                    plan.retired
                        .push((view, retired, vec![(tenant.clone(), upto)]));
                }
            }
        }
        Ok(plan)
    }

    /// Writes `files` (each whole, replacing what was there; one with no rows is removed).
    pub fn apply(&mut self, files: &[GoldFile]) -> Result<(), LandingError> {
        for file in files {
            self.begin();
            let Some((view, tenant, hour)) = parse_name(&file.name) else {
                continue;
            };
            if file.rows.is_empty() {
                self.landing.remove(&file.name)?;
            } else {
                self.landing
                    .write_table(&file.name, view.schema(), &file.rows, None)?;
            }
            self.owned.insert((view, tenant, hour));
        }
        Ok(())
    }

    /// Continues the gold of the run a checkpoint's state was taken in: the files of the
    /// export committed with it are written again, and every file found is this run's (the
    /// state's store holds exactly the rows they do not).
    pub fn resume(&mut self, files: &[GoldFile]) -> Result<(), LandingError> {
        self.writing = None;
        // The injected pause stretches exports, not restarts.
        let delay = std::mem::take(&mut self.delay);
        let applied = self.apply(files);
        self.delay = delay;
        applied?;
        if let (true, Some(at)) = (self.logged, self.writing) {
            eprintln!(
                "weir: gold: exported {} files again (the export of the checkpoint's state) in {} ms",
                files.len(),
                at.elapsed().as_millis()
            );
        }
        self.owned.extend(std::mem::take(&mut self.found));
        Ok(())
    }

    fn report(&self, before: GoldStats) {
        crate::metrics::global().count_gold(
            self.stats.rows - before.rows,
            self.stats.files - before.files,
        );
        if let (true, Some(at)) = (self.logged, self.writing) {
            eprintln!(
                "weir: gold: exported {} files ({} rows) in {} ms",
                self.stats.files - before.files,
                self.stats.rows - before.rows,
                at.elapsed().as_millis()
            );
        }
    }

    /// Takes the rows of a planned export, once its files are written, out of the store.
    pub fn retire(&mut self, plan: GoldPlan, store: &ViewStore) {
        for (view, rows, marks) in &plan.retired {
            store.retire(*view, rows, marks);
        }
        self.report(plan.before);
    }

    /// Before a file of the pass is written or removed.
    fn begin(&mut self) {
        if self.writing.is_none() {
            self.writing = Some(Instant::now());
            if self.logged {
                eprintln!("weir: gold: exporting");
            }
        }
        std::thread::sleep(self.delay);
    }

    /// One hour's file: its rows so far plus `changes`, or `changes` alone for an hour not
    /// written (or taken over) by this run yet.
    fn merged(
        &mut self,
        view: ViewId,
        tenant: &str,
        hour: Millis,
        changes: &[(Row, Diff)],
    ) -> Result<GoldFile, LandingError> {
        let name = file_name(view, tenant, hour);
        let bucket = (view, tenant.to_owned(), hour);
        let mut rows: BTreeMap<Row, Diff> = BTreeMap::new();
        if self.owned.contains(&bucket) {
            self.stats.merged += 1;
            for row in self
                .landing
                .read_view_rows(&name, view.schema())?
                .unwrap_or_default()
            {
                *rows.entry(row).or_insert(0) += 1;
            }
        }
        for (row, diff) in changes {
            *rows.entry(row.clone()).or_insert(0) += diff;
        }
        let rows: Vec<Row> = rows
            .into_iter()
            .flat_map(|(row, count)| std::iter::repeat_n(row, count.max(0) as usize))
            .collect();
        self.found.remove(&bucket);
        self.owned.insert(bucket);
        self.stats.files += 1;
        Ok(GoldFile { name, rows })
    }
}

/// A file an export writes, whole: its rows (none: the file is removed).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GoldFile {
    pub name: String,
    pub rows: Vec<Row>,
}

/// What one export pass writes, and the rows it then takes out of the store.
#[derive(Debug, Default)]
pub struct GoldPlan {
    pub files: Vec<GoldFile>,
    pub retired: Vec<Retired>,
    /// The exporter's counts before it was planned.
    before: GoldStats,
}

/// A run's [`Gold`] exporter: on its own thread, passing every so often while the run goes,
/// or passing only when the run asks (for results that depend on the input alone).
pub struct GoldExport {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Gold>>,
    here: Option<Gold>,
}

impl GoldExport {
    /// Passes over `store` every `every`. A failed pass is reported and tried again at the
    /// next: the landing zone being away for a while costs memory, never a row.
    pub fn start(mut gold: Gold, store: Arc<ViewStore>, every: Duration) -> GoldExport {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("weir-gold".into())
            .spawn(move || {
                let mut last = Instant::now();
                while !stopping.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20).min(every));
                    if last.elapsed() < every || store.failure().is_some() {
                        continue;
                    }
                    last = Instant::now();
                    if let Err(e) = gold.pass(&store) {
                        eprintln!("weir: gold export failed, to be tried again: {e}");
                    }
                }
                gold
            })
            .expect("spawn the gold exporter");
        GoldExport {
            stop,
            thread: Some(thread),
            here: None,
        }
    }

    /// Passes only when [`GoldExport::pass`] is called.
    pub fn on_call(gold: Gold) -> GoldExport {
        GoldExport {
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
            here: Some(gold),
        }
    }

    /// A pass now, for an exporter that passes on call (one on a thread passes on its own).
    pub fn pass(&mut self, store: &ViewStore) -> Result<(), LandingError> {
        match self.here.as_mut() {
            Some(gold) => gold.pass(store),
            None => Ok(()),
        }
    }

    /// Stops the passes and returns the exporter, for the final one.
    pub fn stop(self) -> Gold {
        self.stop.store(true, Ordering::SeqCst);
        match (self.here, self.thread) {
            (Some(gold), _) => gold,
            (None, Some(thread)) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            (None, None) => unreachable!("an export passes on a thread or on call"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_give_their_hour_back() {
        let hour = 1_764_565_200_000; // 2025-12-01T05:00:00Z
        let name = file_name(ViewId::Sessions, "acme", hour);
        assert_eq!(
            name,
            "gold/sessions/tenant_id=acme/date=2025-12-01/0500.parquet"
        );
        assert_eq!(
            parse_name(&name),
            Some((ViewId::Sessions, "acme".to_owned(), hour))
        );
        assert_eq!(
            parse_name("gold/sessions/tenant_id=a/date=2025-12-01/0530.parquet"),
            Some((ViewId::Sessions, "a".to_owned(), hour + 1_800_000))
        );
        assert_eq!(
            parse_name("gold/inventory/tenant_id=a/date=2025-12-01/0500.parquet"),
            None
        );
        assert_eq!(
            parse_name("gold/sessions/tenant_id=a/date=2025-12-01/05.parquet"),
            None
        );
        assert_eq!(
            parse_name("raw/tenant_id=a/date=2025-12-01/x.parquet"),
            None
        );
    }

    fn published_row(tenant: &str, minute: Millis) -> Row {
        vec![
            Cell::Str(tenant.into()),
            Cell::Str("USD".into()),
            Cell::Int(minute),
            Cell::Int(1),
            Cell::Int(100),
            Cell::Int(0),
            Cell::Int(100),
        ]
    }

    /// Gold plus live is the view through a first export, a change to an exported row, a
    /// takeover by a restarted run and a run starting fresh.
    #[test]
    fn gold_and_live_stay_the_view() {
        let dir = std::env::temp_dir().join(format!("weir-gold-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let open = || Landing::open(dir.to_str().unwrap()).unwrap();
        let view = ViewId::GmvMinute;
        let h = 10 * BUCKET_MS;
        let old = published_row("acme", h + 60_000);
        let store = ViewStore::default();
        store.stage(
            view,
            &[
                (old.clone(), 0, 1),
                (published_row("acme", h + 7_200_000), 0, 1),
            ],
        );
        store.watermarks(0, vec![("acme".into(), h + 2 * BUCKET_MS)]);
        store.publish(0);
        let mut gold = Gold::open(open(), BUCKET_MS / 2, true).unwrap();
        gold.pass(&store).unwrap();
        let file = file_name(view, "acme", h);
        let in_gold = |landing: &Landing| landing.read_view_rows(&file, view.schema()).unwrap();
        assert_eq!(in_gold(&open()), Some(vec![old.clone()]));
        // Only the hour behind the serve window left the store.
        assert_eq!(store.read(|p| p.view(view).len()), 1);
        assert_eq!(
            store.read(|p| p.gold.get(&(view, "acme".into())).copied()),
            Some(h + BUCKET_MS)
        );

        // The exported row changes: the store holds the change until the next pass merges it.
        let mut new = old.clone();
        new[5] = Cell::Int(1);
        new[6] = Cell::Int(0);
        store.stage(view, &[(old.clone(), 1, -1), (new.clone(), 1, 1)]);
        store.publish(1);
        assert_eq!(store.read(|p| p.view(view).get(&old).copied()), Some(-1));
        gold.pass(&store).unwrap();
        assert_eq!(in_gold(&open()), Some(vec![new.clone()]));
        assert_eq!(store.read(|p| p.view(view).len()), 1);

        // A restarted run rebuilds every row; its first pass takes the hour over, not adding
        // the rebuilt rows to the file's.
        let rebuilt = ViewStore::default();
        rebuilt.stage(view, &[(new.clone(), 0, 1)]);
        rebuilt.watermarks(0, vec![("acme".into(), h + 2 * BUCKET_MS)]);
        rebuilt.publish(0);
        let mut again = Gold::open(open(), BUCKET_MS / 2, false).unwrap();
        again.pass(&rebuilt).unwrap();
        assert_eq!(in_gold(&open()), Some(vec![new.clone()]));
        assert_eq!(rebuilt.read(|p| p.view(view).len()), 0);

        // A restarted run whose rows of the hour are gone removes its file.
        let empty = ViewStore::default();
        empty.watermarks(0, vec![("acme".into(), h + 2 * BUCKET_MS)]);
        empty.publish(0);
        Gold::open(open(), BUCKET_MS / 2, false)
            .unwrap()
            .pass(&empty)
            .unwrap();
        assert_eq!(in_gold(&open()), None);

        // A fresh run removes an earlier run's files before it starts.
        Gold::open(open(), BUCKET_MS / 2, false)
            .unwrap()
            .pass(&store)
            .unwrap();
        assert!(in_gold(&open()).is_none());
        std::fs::create_dir_all(dir.join("gold/gmv_minute/tenant_id=acme/date=1970-01-01"))
            .unwrap();
        std::fs::write(dir.join(format!("{file}#3")), b"half").unwrap();
        open()
            .write_table(&file, view.schema(), std::slice::from_ref(&old), None)
            .unwrap();
        Gold::open(open(), BUCKET_MS / 2, true).unwrap();
        assert_eq!(in_gold(&open()), None);
        assert!(!dir.join(format!("{file}#3")).exists());
    }
}
