//! The `weir` binary as a user runs it: gen piped into a bounded run, outputs, errors, a bad
//! config refused and the shipped demo config run.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use weir::row::VIEWS;

use crate::common::{WeirProcess, read_parquet, scratch_dir};

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

fn gen_lines(events: u64, seed: u64) -> String {
    let out = weir()
        .args([
            "gen",
            "--events",
            &events.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `weir run --input - --out DIR` on `input`; returns stderr.
fn run_bounded(input: &str, out: &Path, workers: u32) -> String {
    let mut child = weir()
        .args(["run", "--input", "-", "--out"])
        .arg(out)
        .args(["--workers", &workers.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let result = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert!(result.status.success(), "weir run failed: {stderr}");
    stderr + &String::from_utf8_lossy(&result.stdout)
}

#[test]
fn gen_is_deterministic() {
    assert_eq!(gen_lines(2_000, 5), gen_lines(2_000, 5));
    assert_ne!(gen_lines(2_000, 5), gen_lines(2_000, 6));
}

#[test]
fn bounded_run_writes_views_with_spec_columns_and_same_rows_for_any_worker_count() {
    let input = gen_lines(30_000, 3);
    let one = scratch_dir("cli-workers-1");
    let two = scratch_dir("cli-workers-2");
    let log = run_bounded(&input, &one, 1);
    assert!(log.contains("events read:   30000"), "{log}");
    run_bounded(&input, &two, 2);
    for view in VIEWS {
        let file = format!("views/{}.parquet", view.name);
        let (names, rows_one) = read_parquet(&one.join(&file));
        let want: Vec<&str> = view.columns.iter().map(|c| c.name).collect();
        assert_eq!(names, want, "{file}");
        let (_, rows_two) = read_parquet(&two.join(&file));
        assert_eq!(rows_one, rows_two, "{file} differs between 1 and 2 workers");
        assert!(
            !rows_one.is_empty() || view.name == "fraud_alerts",
            "{file} is empty"
        );
    }
    let (names, rows) = read_parquet(&one.join("quarantine.parquet"));
    assert_eq!(names, ["raw", "reason"]);
    assert!(!rows.is_empty());
}

#[test]
fn bad_input_and_flags_fail_with_a_clear_message() {
    let out = weir()
        .args([
            "run",
            "--input",
            "/nonexistent/events.ndjson",
            "--out",
            "/tmp/x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read input file /nonexistent/events.ndjson"),
        "{err}"
    );

    let out = weir().args(["run", "--input", "-"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --out"));

    let out = weir().args(["run", "--workers", "0"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers"));
}

#[test]
fn live_run_prints_status_and_stops_cleanly_on_ctrl_c() {
    let dir = scratch_dir("cli-live");
    let weir = WeirProcess::start(
        &[
            "run",
            "--rate",
            "3000",
            "--status-secs",
            "1",
            "--workers",
            "2",
            // Free ports, not the defaults: nothing else may be using those.
            "--grpc",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ],
        &dir,
        "weir",
    );
    std::thread::sleep(Duration::from_millis(3_500));
    weir.interrupt();
    let (status, err) = weir.wait(Duration::from_secs(120));
    assert!(status.success(), "exit {status:?}: {err}");
    let status_lines = err.lines().filter(|l| l.contains("events/s |")).count();
    assert!(status_lines >= 2, "{err}");
    assert!(err.contains("logical time"), "{err}");
    // It drained: the closing summary counts what was read.
    let read: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("events read:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap();
    assert!(read > 3_000, "{err}");
}

#[test]
fn a_bad_config_is_refused_naming_the_key() {
    let dir = scratch_dir("bad-config");
    let cases = [
        (
            "[serve]\ngrpc_addr = \"127.0.0.1:1\"\n",
            "unknown field `grpc_addr`",
        ),
        ("[source]\nrate = 0\n", "source.rate: must be at least 1"),
        ("[[tokens]]\ntoken = \"t\"\n", "tokens[0]: set `tenant"),
        ("[serve]\nmetrics = \"everywhere\"\n", "serve.metrics"),
        (
            "[retention]\nlateness = \"an hour\"\n",
            "retention.lateness: \"an hour\" is not a duration",
        ),
        ("[retention]\nlateness = \"0s\"\n", "retention.lateness"),
    ];
    for (i, (text, message)) in cases.into_iter().enumerate() {
        let path = dir.join(format!("weir-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = weir()
            .args(["run", "--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{text:?}: {stderr}");
    }
}

/// `weir run --config` on the shipped demo file starts and serves with what the file says,
/// read here with a plain TOML parser: its admin token sees every tenant the generator was
/// told to make, each tenant token sees its own tenant's rows only, and any other token is
/// refused.
#[test]
fn the_demo_config_runs_as_shipped_with_its_tokens_and_tenants() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pulsecart/weir.toml");
    let file: toml::Table = std::fs::read_to_string(&demo).unwrap().parse().unwrap();
    let tenants = file["source"]["tenants"].as_integer().unwrap() as usize;
    let mut admin = None;
    let mut tenant_tokens = BTreeMap::new();
    for entry in file["tokens"].as_array().unwrap() {
        let token = entry["token"].as_str().unwrap().to_owned();
        match entry.get("tenant").and_then(|t| t.as_str()) {
            Some(tenant) => {
                tenant_tokens.insert(tenant.to_owned(), token);
            }
            None => {
                assert_eq!(entry["admin"].as_bool(), Some(true), "{entry}");
                admin = Some(token);
            }
        }
    }
    let admin = admin.expect("the demo file has an admin token");
    assert_eq!(tenant_tokens.len(), tenants, "a token per demo tenant");

    let dir = scratch_dir("cli-demo-config");
    // Flags win over the file: free ports instead of its fixed ones.
    let run = WeirProcess::start(
        &[
            "run",
            "--config",
            demo.to_str().unwrap(),
            "--grpc",
            "127.0.0.1:0",
            "--metrics",
            "off",
        ],
        &dir,
        "weir",
    );
    let addr = run.grpc().to_string();
    let query = |token: &str| {
        weir()
            .args([
                "query",
                "conversion_hour",
                "--json",
                "--addr",
                &addr,
                "--token",
                token,
            ])
            .output()
            .unwrap()
    };
    let tenants_in = |out: &std::process::Output| -> BTreeSet<String> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| {
                let row: serde_json::Value = serde_json::from_str(line).unwrap();
                row["tenant_id"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    // Until every tenant has a session: before the first publication the answer is an error.
    let deadline = Instant::now() + Duration::from_secs(60);
    let seen = loop {
        let out = query(&admin);
        let seen = if out.status.success() {
            tenants_in(&out)
        } else {
            BTreeSet::new()
        };
        if seen.len() >= tenants || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let named: BTreeSet<String> = tenant_tokens.keys().cloned().collect();
    assert_eq!(
        seen,
        named,
        "the admin token sees the file's tenants: {}",
        run.log()
    );
    for (tenant, token) in &tenant_tokens {
        let out = query(token);
        assert!(
            out.status.success(),
            "{tenant}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            tenants_in(&out),
            BTreeSet::from([tenant.clone()]),
            "{tenant}'s token"
        );
    }
    let refused = query("not-in-the-file");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Unauthenticated"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    run.interrupt();
    let (status, log) = run.wait(Duration::from_secs(120));
    assert!(status.success(), "exit {status:?}: {log}");
}
