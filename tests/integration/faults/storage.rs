//! The S3 landing path against a real S3-compatible server, read back through its S3 API:
//!
//! - a bounded `weir run --out s3://…` lands its views, dead letters, quarantine and raw events
//!   in the store (and no local `s3:` directory), the same files a local run writes, and the
//!   views equal the oracle's;
//! - a durable run landing in S3 (checkpoints local) lands every event once in `raw/`, every
//!   bad input once in `quarantine/`, exports the views, and restarts from its checkpoint,
//!   removing a file landed past it.
//!
//! The server is `s3s-fs` (`cargo install --locked s3s-fs --version 0.14.1 --features
//! binary`), started by the tests on a free port with a scratch root unless `WEIR_S3` names one
//! that is already running (`.ci/run` starts one), with `WEIR_S3_ACCESS_KEY`,
//! `WEIR_S3_SECRET_KEY` and an existing bucket `WEIR_S3_BUCKET` (default `weir`).

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use weir::output::landing::Landing;
use weir::row::Cell;
use weir::run::{CheckpointSettings, Driver, Durability, RunConfig};

use crate::common::{
    Landed, assert_landed_events_are_masked, assert_quarantine_is_the_bad_lines, assert_views_eq,
    mangled_input, oracle, oracle_gold, parquet_files, read_gold, read_parquet, read_views,
    scratch_dir, tail,
};
use crate::oracle::Params;

const INSTALL_S3S: &str = "the S3 tests need an S3-compatible server: install s3s-fs with \
     `cargo install --locked s3s-fs --version 0.14.1 --features binary`, or start one and set \
     WEIR_S3=http://HOST:PORT (with WEIR_S3_ACCESS_KEY, WEIR_S3_SECRET_KEY, and WEIR_S3_BUCKET \
     naming a bucket that exists)";

#[test]
fn a_bounded_run_with_out_s3_lands_its_outputs_in_the_store_as_a_local_run_does() {
    let dir = scratch_dir("faults-s3-bounded");
    let s3 = S3::start(&dir);
    let lines = mangled_input(21, 10_000, 200);
    let expected = oracle(&lines, &Params::default());
    let input = dir.join("events.ndjson");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let local = dir.join("local");
    let prefix = s3.fresh_prefix("bounded");

    let run = |out: &str, name: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "--input", input.to_str().unwrap(), "--out", out])
            .args(["--epoch-lines", "1000", "--workers", "2"])
            // The input spans minutes of event time: minutes a minute behind go to gold.
            .args(["--serve-window", "1m", "--gold-span", "1m"])
            .envs(s3.env())
            // Where a URL taken for a path would turn into directories.
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{name}: {}", tail(&stderr));
        stderr
    };
    run(local.to_str().unwrap(), "local run");
    let stderr = run(&s3.url(&prefix), "S3 run");
    assert!(
        stderr.contains(&format!("wrote {}/views", s3.url(&prefix))),
        "{stderr}"
    );
    assert!(
        !dir.join("s3:").exists(),
        "the run wrote a local s3: directory"
    );

    let mirror = dir.join("mirror");
    let keys = s3.mirror(&prefix, &mirror);
    let mut want: Vec<String> = parquet_files(&local)
        .iter()
        .map(|f| {
            f.strip_prefix(&local)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    want.sort();
    assert!(
        want.iter().any(|f| f.starts_with("raw/")),
        "the local run landed raw files: {want:?}"
    );
    for top in ["dead_letters.parquet", "quarantine.parquet"] {
        assert!(want.iter().any(|f| f == top), "{top} not in {want:?}");
    }
    for view in ["gmv_minute", "sessions", "conversion_hour"] {
        assert!(
            want.iter().any(|f| f.starts_with(&format!("gold/{view}/"))),
            "no gold file of {view} in {want:?}"
        );
    }
    assert_eq!(keys, want, "the objects under {prefix}");
    for key in &keys {
        assert_eq!(
            read_parquet(&mirror.join(key)),
            read_parquet(&local.join(key)),
            "{key} in S3 and locally"
        );
    }
    // Gold holds the rows of the minutes wholly a minute behind the watermark, views the rest.
    let (gold, live) = oracle_gold(&lines, &Params::default(), 60_000, 60_000);
    assert_views_eq(&read_gold(&mirror), &gold, "gold read from S3");
    assert_views_eq(&read_views(&mirror), &live, "views read from S3");
    assert_raw_exactly_once(&mirror, &expected, "the S3 raw landing");
    let (_, quarantined) = read_parquet(&mirror.join("quarantine.parquet"));
    let stored: Vec<(String, String)> = quarantined
        .into_iter()
        .map(|row| match &row[..] {
            [Cell::Str(raw), Cell::Str(reason)] => (raw.clone(), reason.clone()),
            _ => panic!("unexpected quarantine row {row:?}"),
        })
        .collect();
    assert_quarantine_is_the_bad_lines(&stored, &lines, "the S3 quarantine.parquet");
}

#[test]
fn a_durable_run_lands_raw_quarantine_and_views_in_s3_and_restarts_from_its_checkpoint() {
    let dir = scratch_dir("faults-s3-durable");
    let s3 = S3::start(&dir);
    let lines = mangled_input(22, 8_000, 100);
    let expected = oracle(&lines, &Params::default());
    let prefix = s3.fresh_prefix("durable");
    let config = RunConfig {
        epoch_lines: 500,
        ..RunConfig::native()
    };
    let transforms: Vec<String> = config
        .plugins
        .transforms()
        .iter()
        .map(|t| t.name().to_owned())
        .collect();
    let durable = || {
        let landing = Landing::open_with(&s3.url(&prefix), s3.options()).unwrap();
        // After every poll: several ranges, checkpoints and view exports go through S3.
        let settings = CheckpointSettings {
            dir: dir.join("checkpoints"),
            every: Duration::ZERO,
            export_every: Duration::ZERO,
            // Some checkpoints save the run's state, the others the events since.
            snapshot_events: 2_000,
        };
        let durability = Durability::checkpointed(landing, settings, transforms.clone()).unwrap();
        Driver::start(&config, Arc::default())
            .unwrap()
            .durable(durability)
            .unwrap()
    };
    let stop = std::sync::atomic::AtomicBool::new(false);

    // The first run reads half the input and ends on a checkpoint.
    let half = lines.len() / 2;
    let mut first = durable();
    first
        .run(
            &mut super::Lines {
                lines: lines[..half].to_vec(),
                next: 0,
            },
            &stop,
        )
        .expect("a durable run landing in S3");
    first.finish().unwrap();
    assert!(
        dir.join("checkpoints").read_dir().unwrap().count() > 0,
        "checkpoints are local"
    );
    // A file landed past the checkpoint before a crash, never committed.
    let stray = format!("raw/tenant_id=acme/date=2025-11-20/mem-0-{half}-999999.parquet");
    s3.put(&format!("{prefix}/{stray}"), b"not committed");

    let mut second = durable();
    second
        .run(
            &mut super::Lines {
                lines: lines.clone(),
                next: 0,
            },
            &stop,
        )
        .expect("the restart recovers its checkpoint and lands the rest in S3");
    let result = second.finish().unwrap();

    let mirror = dir.join("mirror");
    let keys = s3.mirror(&prefix, &mirror);
    assert!(
        !keys.contains(&stray),
        "the file past the checkpoint is removed"
    );
    assert!(
        keys.iter().filter(|k| k.starts_with("raw/")).count() > 2,
        "raw ranges of both runs: {keys:?}"
    );
    assert_views_eq(
        &read_views(&mirror),
        &expected.views,
        "views exported to S3",
    );
    assert_raw_exactly_once(&mirror, &expected, "the S3 raw landing");
    let mut stored = Vec::new();
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for file in parquet_files(&mirror.join("quarantine")) {
        let (names, rows) = read_parquet(&file);
        assert_eq!(names, ["raw", "reason", "partition", "offset"]);
        for row in rows {
            let [Cell::Str(raw), Cell::Str(reason), ..] = &row[..] else {
                panic!("{}: unexpected quarantine row {row:?}", file.display())
            };
            *by_reason.entry(reason.clone()).or_default() += 1;
            stored.push((raw.clone(), reason.clone()));
        }
    }
    assert_eq!(by_reason, expected.quarantined, "quarantined by reason");
    assert_quarantine_is_the_bad_lines(&stored, &lines, "the S3 quarantine/");
    assert_eq!(result.stats.admitted as usize, expected.valid);
}

/// Every valid event landed once under `dir/raw`, and nothing else.
fn assert_raw_exactly_once(dir: &Path, expected: &crate::common::Expected, context: &str) {
    let mut landed = Vec::new();
    for file in parquet_files(&dir.join("raw")) {
        let (_, rows) = read_parquet(&file);
        for row in rows {
            let [
                Cell::Str(tenant_id),
                Cell::Str(event_id),
                Cell::Str(kind),
                Cell::Int(event_time_ms),
                _,
                _,
                Cell::Str(event),
            ] = &row[..]
            else {
                panic!("{}: unexpected raw row {row:?}", file.display())
            };
            landed.push(Landed {
                tenant_id: tenant_id.clone(),
                event_id: event_id.clone(),
                kind: kind.clone(),
                event_time_ms: *event_time_ms,
                event: event.clone(),
            });
        }
    }
    assert!(!landed.is_empty(), "{context}: nothing landed");
    assert_landed_events_are_masked(&landed, expected, context);
}

/// An S3-compatible server: the one `WEIR_S3` names, or an `s3s-fs` this fixture starts on a
/// free port over a scratch root and kills when dropped.
struct S3 {
    endpoint: String,
    access_key: String,
    secret_key: String,
    bucket: String,
    child: Option<Child>,
    runtime: tokio::runtime::Runtime,
}

impl S3 {
    fn start(scratch: &Path) -> S3 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        if let Some(endpoint) = std::env::var("WEIR_S3").ok().filter(|v| !v.is_empty()) {
            return S3 {
                endpoint,
                access_key: var("WEIR_S3_ACCESS_KEY", ""),
                secret_key: var("WEIR_S3_SECRET_KEY", ""),
                bucket: var("WEIR_S3_BUCKET", "weir"),
                child: None,
                runtime,
            };
        }
        let binary = s3s_binary().unwrap_or_else(|| panic!("{INSTALL_S3S}"));
        let (access_key, secret_key, bucket) = ("weir-test", "weir-test-secret", "weir");
        let root = scratch.join("s3s-root");
        // s3s-fs keeps a bucket as a directory of its root.
        std::fs::create_dir_all(root.join(bucket)).unwrap();
        let port = free_port();
        let stderr = scratch.join("s3s-fs.stderr");
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", access_key, "--secret-key", secret_key])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn s3s-fs");
        let mut s3 = S3 {
            endpoint: format!("http://127.0.0.1:{port}"),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            bucket: bucket.into(),
            child: Some(child),
            runtime,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            let exited = s3.child.as_mut().unwrap().try_wait().unwrap();
            let why = std::fs::read_to_string(&stderr).unwrap_or_default();
            assert!(exited.is_none(), "s3s-fs exited with {exited:?}: {why}");
            assert!(
                Instant::now() < deadline,
                "s3s-fs never listened on {addr}: {why}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s3
    }

    /// A prefix no other test or run uses.
    fn fresh_prefix(&self, base: &str) -> String {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        format!("{base}-{}-{stamp}", std::process::id())
    }

    fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// The store's configuration, as `object_store` keys.
    fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_allow_http", "true"),
            ("aws_region", "us-east-1"),
            ("aws_access_key_id", self.access_key.as_str()),
            ("aws_secret_access_key", self.secret_key.as_str()),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into()
    }

    /// The same configuration as the environment of a `weir` process.
    fn env(&self) -> Vec<(String, String)> {
        self.options()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v))
            .collect()
    }

    fn store(&self) -> Box<dyn ObjectStore> {
        let url = url::Url::parse(&format!("s3://{}", self.bucket)).unwrap();
        object_store::parse_url_opts(&url, self.options())
            .unwrap()
            .0
    }

    fn put(&self, key: &str, bytes: &'static [u8]) {
        self.runtime
            .block_on(
                self.store()
                    .put(&Key::from(key), PutPayload::from_static(bytes)),
            )
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
    }

    /// Downloads every object under `prefix` to `into`, at its key below the prefix; returns
    /// those relative keys, sorted.
    fn mirror(&self, prefix: &str, into: &Path) -> Vec<String> {
        let store = self.store();
        let root = Key::from(prefix);
        let mut keys = Vec::new();
        self.runtime.block_on(async {
            let listed: Vec<_> = store
                .list(Some(&root))
                .try_collect()
                .await
                .unwrap_or_else(|e| panic!("list {prefix}: {e}"));
            for meta in listed {
                let relative: PathBuf = meta
                    .location
                    .prefix_match(&root)
                    .unwrap()
                    .map(|part| part.as_ref().to_owned())
                    .collect();
                let bytes = store
                    .get(&meta.location)
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                let file = into.join(&relative);
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(&file, &bytes).unwrap();
                keys.push(relative.to_string_lossy().into_owned());
            }
        });
        keys.sort();
        keys
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn s3s_binary() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("s3s-fs"))
        .find(|p| p.is_file())
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
