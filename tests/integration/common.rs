//! Helpers shared by the test modules: seeded inputs, runs, the oracle, Parquet read-back,
//! and [`WeirProcess`], the `weir` binary started as a child process.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use arrow_array::{Array, BooleanArray, Int64Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use weir::row::{Cell, Row, VIEWS, ViewId};
use weir::run::{RunConfig, RunResult, run_bounded};
use weir::source::generator::{GenConfig, Generator};

use crate::oracle::{self, OracleViews, Params, compute};

/// A small deterministic PRNG for test input mangling (SplitMix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Generated lines for `seed`, then mangled further: shuffled within windows of `window`
/// lines (the generator emits in near time order, so a window spans minutes to hours of event
/// time), extra exact duplicates moved later, and extra malformed lines.
pub fn mangled_input(seed: u64, lines: usize, window: usize) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut out: Vec<String> = Generator::new(GenConfig {
        seed,
        tenants: 3,
        start_ms: GenConfig::DEFAULT_START_MS,
    })
    .take(lines)
    .collect();
    for chunk in out.chunks_mut(window.max(2)) {
        for i in (1..chunk.len()).rev() {
            let j = rng.below(i + 1);
            chunk.swap(i, j);
        }
    }
    let extra = lines / 50;
    for _ in 0..extra {
        let from = rng.below(out.len());
        let to = (from + rng.below(window.max(2) * 4)).min(out.len());
        let copy = out[from].clone();
        out.insert(to, copy);
    }
    for k in 0..extra / 4 {
        let at = rng.below(out.len());
        let bad = match k % 4 {
            0 => out[at][..out[at].len() / 2].to_owned(),
            1 => out[at].replacen("\"schema_version\":", "\"schema_version\":9,\"x\":", 1),
            2 => out[at].replacen("\"tenant_id\":\"", "\"tenant_id\":\"bad tenant ", 1),
            _ => "\u{0}\u{1} garbage".to_owned(),
        };
        out.insert(at, bad);
    }
    out
}

pub fn run_lines(lines: &[String], config: &RunConfig) -> RunResult {
    let text = lines.join("\n");
    run_bounded(config, text.as_bytes()).expect("bounded run")
}

/// The oracle's result with its rows in weir's cells, to compare with what a run published.
pub type Expected = OracleViews<Cell>;

/// The independent batch oracle's views over `lines`.
pub fn oracle(lines: &[String], params: &Params) -> Expected {
    let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let expected = compute(&refs, params).map_cells(|cell| match cell {
        oracle::Cell::Int(v) => Cell::Int(v),
        oracle::Cell::Str(v) => Cell::Str(v),
        oracle::Cell::Bool(v) => Cell::Bool(v),
    });
    // The oracle names its views after SPEC §2 on its own; a view it named differently would
    // otherwise be compared with nothing.
    let names: Vec<&str> = expected.views.keys().copied().collect();
    let mut weirs: Vec<&str> = VIEWS.iter().map(|v| v.name).collect();
    weirs.sort_unstable();
    assert_eq!(names, weirs, "the oracle's views and weir's");
    expected
}

/// Rows of every view, by name.
pub type Views = BTreeMap<&'static str, Vec<Row>>;

/// The oracle's views split as SPEC §2.7's gold leaves them after a run with a serve window
/// of `serve` ms and gold files of `span` ms: the rows in gold, and the live rest.
pub fn oracle_gold(lines: &[String], params: &Params, serve: i64, span: i64) -> (Views, Views) {
    let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let (gold, live) = compute(&refs, params).split_gold(serve, span);
    let cells = |tables: oracle::Tables| {
        tables
            .into_iter()
            .map(|(name, rows)| {
                let mut rows: Vec<Row> = rows
                    .into_iter()
                    .map(|row| {
                        row.into_iter()
                            .map(|cell| match cell {
                                oracle::Cell::Int(v) => Cell::Int(v),
                                oracle::Cell::Str(v) => Cell::Str(v),
                                oracle::Cell::Bool(v) => Cell::Bool(v),
                            })
                            .collect()
                    })
                    .collect();
                rows.sort();
                (name, rows)
            })
            .collect()
    };
    (cells(gold), cells(live))
}

/// Every gold file's rows under `dir/gold`, by view (every view present), sorted; no file may
/// be a half-written one.
pub fn read_gold(dir: &Path) -> BTreeMap<&'static str, Vec<Row>> {
    let mut gold: BTreeMap<&'static str, Vec<Row>> =
        VIEWS.iter().map(|v| (v.name, Vec::new())).collect();
    for path in files_under(&dir.join("gold")) {
        let relative = path
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let (view, tenant, _) = weir::output::gold::parse_name(&relative)
            .unwrap_or_else(|| panic!("{relative} is not a gold file"));
        let (names, rows) = read_parquet(&path);
        let want: Vec<&str> = view.schema().columns.iter().map(|c| c.name).collect();
        assert_eq!(names, want, "columns of {relative}");
        assert!(
            rows.iter().all(|r| r[0] == Cell::Str(tenant.clone())),
            "{relative} holds another tenant's rows"
        );
        gold.get_mut(view.name()).unwrap().extend(rows);
    }
    for rows in gold.values_mut() {
        rows.sort();
    }
    gold
}

/// The published rows of every view, by name.
pub fn views_of(result: &RunResult) -> BTreeMap<&'static str, Vec<Row>> {
    result.store.read(|p| {
        ViewId::VIEWS
            .into_iter()
            .map(|v| (v.name(), p.rows(v)))
            .collect()
    })
}

/// Asserts two view sets are equal, naming the first differing rows of each view.
pub fn assert_views_eq(
    got: &BTreeMap<&'static str, Vec<Row>>,
    want: &BTreeMap<&'static str, Vec<Row>>,
    context: &str,
) {
    for view in VIEWS {
        let g = &got[view.name];
        let w = &want[view.name];
        if g != w {
            let missing: Vec<_> = w.iter().filter(|r| !g.contains(r)).take(5).collect();
            let extra: Vec<_> = g.iter().filter(|r| !w.contains(r)).take(5).collect();
            panic!(
                "{context}: view {} differs ({} rows vs oracle {}); missing {missing:?}; extra {extra:?}",
                view.name,
                g.len(),
                w.len()
            );
        }
    }
}

/// Reads a Parquet file back as rows of cells.
pub fn read_parquet(path: &Path) -> (Vec<String>, Vec<Row>) {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    // From the file's schema, so a file of no rows has its columns too.
    let names: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let reader = builder.build().unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        for r in 0..batch.num_rows() {
            let row = batch
                .columns()
                .iter()
                .map(|col| {
                    let any = col.as_any();
                    if let Some(a) = any.downcast_ref::<Int64Array>() {
                        Cell::Int(a.value(r))
                    } else if let Some(a) = any.downcast_ref::<StringArray>() {
                        Cell::Str(a.value(r).to_owned())
                    } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
                        Cell::Bool(a.value(r))
                    } else {
                        panic!("unexpected column type {:?}", col.data_type())
                    }
                })
                .collect();
            rows.push(row);
        }
    }
    (names, rows)
}

/// A fresh, empty scratch directory under the target directory.
/// Every view file under `dir/views`, checked against its schema, rows sorted like the
/// oracle's.
pub fn read_views(dir: &Path) -> BTreeMap<&'static str, Vec<Row>> {
    VIEWS
        .iter()
        .map(|view| {
            let (names, mut rows) =
                read_parquet(&dir.join("views").join(format!("{}.parquet", view.name)));
            let want: Vec<&str> = view.columns.iter().map(|c| c.name).collect();
            assert_eq!(names, want, "{}: columns of {}", dir.display(), view.name);
            rows.sort();
            (view.name, rows)
        })
        .collect()
}

/// `GET /metrics` over plain HTTP: the whole response, head and body.
pub fn scrape_metrics(addr: impl std::fmt::Display) -> String {
    use std::io::{Read, Write};
    let mut http = std::net::TcpStream::connect(addr.to_string()).unwrap();
    write!(
        http,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    http.read_to_string(&mut response).unwrap();
    response
}

pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// At most the last 4,000 bytes of `text` (of a log, for a failure message).
pub fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(4_000);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// How long [`WeirProcess::start`] waits for the ready file.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a `weir run` serves, as its `--ready-file` says.
#[derive(Clone, Copy, Debug)]
pub struct Ready {
    pub grpc: SocketAddr,
    /// `None` when metrics are off.
    pub metrics: Option<SocketAddr>,
}

/// A `weir run` child process. Its stderr goes to `DIR/NAME.stderr` (readable while it runs
/// and after a SIGKILL) and it is told to write its addresses to `DIR/NAME.ready.json`, in a
/// directory the test owns. A live run writes that file once its API serves (after any
/// checkpoint is recovered, before the source is read); a bounded run never does.
/// Dropping it kills the process, so a failing test leaves nothing running.
pub struct WeirProcess {
    child: Child,
    log: PathBuf,
    ready_file: PathBuf,
    ready: Option<Ready>,
    started: Instant,
}

impl WeirProcess {
    /// Spawns `weir ARGS --ready-file DIR/NAME.ready.json` and returns at once; `ARGS` is a
    /// `weir run` command line (starting with `run`).
    pub fn spawn<S: AsRef<OsStr>>(args: &[S], dir: &Path, name: &str) -> WeirProcess {
        WeirProcess::spawn_with_env(args, &[], dir, name)
    }

    /// As [`WeirProcess::spawn`], with `env` added to the child's environment.
    pub fn spawn_with_env<S: AsRef<OsStr>>(
        args: &[S],
        env: &[(&str, &str)],
        dir: &Path,
        name: &str,
    ) -> WeirProcess {
        assert!(
            args.first().is_some_and(|a| a.as_ref() == "run"),
            "WeirProcess runs `weir run ...`"
        );
        let log = dir.join(format!("{name}.stderr"));
        let ready_file = dir.join(format!("{name}.ready.json"));
        let _ = std::fs::remove_file(&ready_file);
        let stderr = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let started = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .arg("--ready-file")
            .arg(&ready_file)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn weir");
        WeirProcess {
            child,
            log,
            ready_file,
            ready: None,
            started,
        }
    }

    /// Spawns as [`WeirProcess::spawn`] and waits (up to [`READY_TIMEOUT`]) until it serves.
    pub fn start<S: AsRef<OsStr>>(args: &[S], dir: &Path, name: &str) -> WeirProcess {
        let mut process = WeirProcess::spawn(args, dir, name);
        process.wait_ready(READY_TIMEOUT);
        process
    }

    /// Waits for the ready file and parses it; fails, with the log, if the process exits
    /// first or `timeout` passes.
    pub fn wait_ready(&mut self, timeout: Duration) -> Ready {
        if let Some(ready) = self.ready {
            return ready;
        }
        let deadline = Instant::now() + timeout;
        loop {
            // Written to a temporary file and renamed: once it exists, it is whole.
            if let Ok(text) = std::fs::read_to_string(&self.ready_file) {
                let ready = parse_ready(&text).unwrap_or_else(|why| {
                    panic!(
                        "{}: {why}: {text}\n{}",
                        self.ready_file.display(),
                        tail(&self.log())
                    )
                });
                self.ready = Some(ready);
                return ready;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "weir exited with {status} before it was ready: {}",
                    tail(&self.log())
                );
            }
            assert!(
                Instant::now() < deadline,
                "weir wrote no {} within {timeout:?}: {}",
                self.ready_file.display(),
                tail(&self.log())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ready(&self) -> Ready {
        self.ready
            .expect("weir is not known to serve yet: WeirProcess::start or wait_ready first")
    }

    /// The gRPC address it serves on.
    pub fn grpc(&self) -> SocketAddr {
        self.ready().grpc
    }

    /// The metrics address it serves on, if metrics are on.
    pub fn metrics(&self) -> Option<SocketAddr> {
        self.ready().metrics
    }

    /// When it was spawned.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The child process itself, for a test that signals or waits on it in its own way
    /// ([`WeirProcess::kill`] and [`WeirProcess::interrupt`] cover SIGKILL and SIGINT).
    #[allow(dead_code)]
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGKILL (what `Child::kill` sends on Unix); returns its stderr.
    pub fn kill(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.log()
    }

    /// SIGINT, as Ctrl-C sends it.
    pub fn interrupt(&self) {
        let sent = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -INT {}: {sent}", self.child.id());
    }

    /// Waits for the process to exit; returns how, and its stderr.
    pub fn wait(mut self, timeout: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "weir still running after {timeout:?}: {}",
                tail(&self.log())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit 0 and returns its stderr.
    pub fn wait_success(self, timeout: Duration) -> String {
        let (status, stderr) = self.wait(timeout);
        assert!(
            status.success(),
            "weir exited with {status}: {}",
            tail(&stderr)
        );
        stderr
    }
}

impl Drop for WeirProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `{"grpc": "HOST:PORT", "metrics": "HOST:PORT" | null}`
fn parse_ready(text: &str) -> Result<Ready, String> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let addr = |key: &str| -> Result<Option<SocketAddr>, String> {
        match &json[key] {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::String(s) => s
                .parse()
                .map(Some)
                .map_err(|e| format!("{key}: {s:?} is not an address: {e}")),
            other => Err(format!("{key}: {other} is not an address")),
        }
    };
    Ok(Ready {
        grpc: addr("grpc")?.ok_or("no grpc address")?,
        metrics: addr("metrics")?,
    })
}

/// Every card number `lines` carry in a `card_number` member, digits only (12 or more).
pub fn card_numbers(lines: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in lines {
        for (i, _) in line.match_indices("\"card_number\":\"") {
            let value: String = line[i + 15..].chars().take_while(|c| *c != '"').collect();
            let digits: String = value.chars().filter(char::is_ascii_digit).collect();
            if digits.len() >= 12 {
                out.insert(digits);
            }
        }
    }
    out
}

/// Panics if `text` holds any of `cards` (in its digits, however they are grouped) or a digit
/// within 16 characters after a `cvv`: a key name may survive in a line too broken to parse,
/// but never the value after it.
pub fn assert_no_card_data(text: &str, cards: &BTreeSet<String>, context: &str) {
    for (i, _) in text.to_ascii_lowercase().match_indices("cvv") {
        let after: String = text[i..].chars().take(16).collect();
        assert!(
            !after.chars().any(|c| c.is_ascii_digit()),
            "{context}: a cvv survived: {after}"
        );
    }
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    for card in cards {
        assert!(
            !digits.contains(card.as_str()),
            "{context}: card {card} leaked: {text:.200}"
        );
    }
}

/// How an input is compared with what a quarantine stored for it: as a JSON value with the
/// oracle's card masking applied, or, for text that is not JSON, with every digit and `*`
/// blurred, so that masking may star digits but change nothing else.
pub fn quarantine_form(text: &str, mask: bool) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(mut value) => {
            if mask {
                oracle::mask_value(&mut value);
            }
            format!("json {value}")
        }
        Err(_) => {
            let blurred: String = text
                .chars()
                .map(|c| {
                    if c.is_ascii_digit() || c == '*' {
                        '#'
                    } else {
                        c
                    }
                })
                .collect();
            format!("text {blurred}")
        }
    }
}

/// Asserts that `stored`, the `(raw, reason)` rows of a quarantine, are exactly the inputs of
/// `lines` that the oracle quarantines, each once, with the oracle's reason, whole but for card
/// data, and that no card number or cvv of the input survives in any of them.
pub fn assert_quarantine_is_the_bad_lines(
    stored: &[(String, String)],
    lines: &[String],
    context: &str,
) {
    let mut want: BTreeMap<(String, String), usize> = BTreeMap::new();
    for line in lines {
        if let Err(reason) = oracle::validate(line.as_bytes()) {
            *want
                .entry((quarantine_form(line, true), reason))
                .or_default() += 1;
        }
    }
    let cards = card_numbers(lines);
    let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (raw, reason) in stored {
        assert_no_card_data(raw, &cards, context);
        *got.entry((quarantine_form(raw, false), reason.clone()))
            .or_default() += 1;
    }
    if got != want {
        let missing: Vec<_> = want
            .iter()
            .filter(|(k, n)| got.get(*k) != Some(*n))
            .map(|((raw, reason), n)| format!("{n} × {reason}: {raw:.300}"))
            .take(3)
            .collect();
        let extra: Vec<_> = got
            .iter()
            .filter(|(k, n)| want.get(*k) != Some(*n))
            .map(|((raw, reason), n)| format!("{n} × {reason}: {raw:.300}"))
            .take(3)
            .collect();
        panic!(
            "{context}: {} quarantined vs {} bad lines; missing {missing:#?}; extra {extra:#?}",
            stored.len(),
            want.values().sum::<usize>()
        );
    }
}

/// One row of the raw landing zone.
#[derive(Clone, Debug)]
pub struct Landed {
    pub tenant_id: String,
    pub event_id: String,
    pub kind: String,
    pub event_time_ms: i64,
    /// The event as landed, JSON.
    pub event: String,
}

/// Asserts the raw landing holds each event the oracle admits exactly once and nothing else,
/// each with the oracle's type and time, and card data only as the oracle masks it: no
/// `card_number` or `cvv` member anywhere, `card_bin` and `card_last4` where the input had a
/// card number.
pub fn assert_landed_events_are_masked(landed: &[Landed], expected: &Expected, context: &str) {
    let by_key: BTreeMap<(&str, &str), &oracle::Event> = expected
        .admitted
        .iter()
        .map(|(_, e)| ((e.tenant_id.as_str(), e.event_id.as_str()), e))
        .collect();
    let mut seen = BTreeSet::new();
    for row in landed {
        let key = (row.tenant_id.as_str(), row.event_id.as_str());
        assert!(seen.insert(key), "{context}: {key:?} landed twice");
        let want = by_key
            .get(&key)
            .unwrap_or_else(|| panic!("{context}: {key:?} landed but is no admitted event"));
        let kind = match &want.body {
            oracle::Body::PageView { .. } => "page_view",
            oracle::Body::AddToCart { .. } => "add_to_cart",
            oracle::Body::OrderPlaced(_) => "order_placed",
            oracle::Body::OrderCancelled { .. } => "order_cancelled",
            oracle::Body::Payment(_) => "payment",
            oracle::Body::InventoryAdjusted { .. } => "inventory_adjusted",
        };
        assert_eq!(
            (row.kind.as_str(), row.event_time_ms),
            (kind, want.time),
            "{context}: {key:?}"
        );
        let json: serde_json::Value = serde_json::from_str(&row.event)
            .unwrap_or_else(|e| panic!("{context}: {key:?} landed as no JSON ({e})"));
        assert_eq!(json["tenant_id"], row.tenant_id.as_str(), "{context}");
        assert_eq!(json["event_id"], row.event_id.as_str(), "{context}");
        // Masking changes nothing in what was masked before it landed.
        let mut masked = json.clone();
        oracle::mask_value(&mut masked);
        assert_eq!(
            masked, json,
            "{context}: {key:?} landed with a card number or cvv"
        );
        if let oracle::Body::Payment(oracle::Payment {
            card: Some((bin, last4)),
            ..
        }) = &want.body
        {
            assert_eq!(
                (&json["card_bin"], &json["card_last4"]),
                (&serde_json::json!(bin), &serde_json::json!(last4)),
                "{context}: {key:?}"
            );
        }
    }
    let missing: Vec<_> = by_key
        .keys()
        .filter(|k| !seen.contains(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && seen.len() == expected.valid,
        "{context}: {} landed of {} admitted; not landed: {missing:?}",
        seen.len(),
        expected.valid
    );
}

/// Every file under `dir`, at any depth, sorted; none if `dir` does not exist.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Every `*.parquet` under `dir`, at any depth, sorted; none if `dir` does not exist.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = files_under(dir);
    out.retain(|path| path.extension().is_some_and(|e| e == "parquet"));
    out
}
