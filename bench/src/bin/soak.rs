//! The soak harness: what a long `weir run` costs in memory, and what a restart costs after it.
//!
//! 1. **Memory.** Runs the `weir` binary live on the built-in generator (`--rate`, 20,000
//!    events/s unless told, for `--minutes`, 30 unless told, with `--lateness`, 10 minutes
//!    unless told, `--entity-idle`, 10 minutes unless told, so the cold tier is used within
//!    the run, and `--serve-window`, a day unless told, so closed spans go to gold within it:
//!    the generator's event time runs hundreds of times faster than the wall clock) landing
//!    in `target/bench/soak-landing`, and samples its RSS from `/proc/<pid>/status` and the events it has read
//!    from its status line every 10 s. It reports the growth in MB per million events read
//!    after the first third of the run (when the lateness window has filled), the figure
//!    retention must bound.
//! 2. **Restart** (with `--kafka HOST:PORT`, a Kafka-protocol broker that creates topics on
//!    first produce): `weir gen --to` puts `--kafka-events` events in a fresh topic, a durable
//!    `weir run` reads them to idle, and a second one recovers its checkpoint: the report has
//!    the checkpoint directory's size and the recovery time the second run printed (the
//!    memory report is written first, in case this phase fails on its own).
//!
//! It writes `target/bench/soak.json` and `target/bench/soak.md`. Build the binary first:
//!
//! `cargo build --release && cargo run --release -p weir-bench --bin soak -- --minutes 30`

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    weir: PathBuf,
    minutes: f64,
    rate: u64,
    lateness: String,
    entity_idle: String,
    serve_window: String,
    every: Duration,
    kafka: Option<String>,
    kafka_events: u64,
    out: PathBuf,
}

fn parse_args() -> Args {
    let mut args = Args {
        weir: "target/release/weir".into(),
        minutes: 30.0,
        rate: 20_000,
        lateness: "10m".into(),
        entity_idle: "10m".into(),
        serve_window: "1d".into(),
        every: Duration::from_secs(10),
        kafka: None,
        kafka_events: 2_000_000,
        out: "target/bench".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--weir" => args.weir = value().into(),
            "--minutes" => args.minutes = value().parse().expect("--minutes M"),
            "--rate" => args.rate = value().parse().expect("--rate N"),
            "--lateness" => args.lateness = value(),
            "--entity-idle" => args.entity_idle = value(),
            "--serve-window" => args.serve_window = value(),
            "--every-secs" => {
                args.every = Duration::from_secs_f64(value().parse().expect("--every-secs S"))
            }
            "--kafka" => args.kafka = Some(value()),
            "--kafka-events" => args.kafka_events = value().parse().expect("--kafka-events N"),
            "--out" => args.out = value().into(),
            other => panic!(
                "unknown flag {other}; flags: --weir PATH --minutes M --rate N --lateness D --entity-idle D --every-secs S --kafka HOST:PORT --kafka-events N --out DIR"
            ),
        }
    }
    args
}

/// One sample of the live run.
struct Sample {
    secs: f64,
    rss_bytes: u64,
    read: u64,
}

fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `read N` of the newest status line.
fn read_count(line: &str) -> Option<u64> {
    let rest = line.split("| read ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Keeps the newest read count of `child`'s stderr, and its last lines for errors.
fn follow(child: &mut Child) -> (Arc<AtomicU64>, Arc<Mutex<Vec<String>>>) {
    let read = Arc::new(AtomicU64::new(0));
    let tail = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("stderr piped");
    let (r, t) = (read.clone(), tail.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(n) = read_count(&line) {
                r.store(n, Ordering::Relaxed);
            }
            let mut t = t.lock().unwrap();
            t.push(line);
            let excess = t.len().saturating_sub(50);
            t.drain(..excess);
        }
    });
    (read, tail)
}

fn soak(args: &Args) -> Vec<Sample> {
    let landing = args.out.join("soak-landing");
    let _ = std::fs::remove_dir_all(&landing);
    let mut child = Command::new(&args.weir)
        .args(["run", "--rate", &args.rate.to_string()])
        .args(["--lateness", &args.lateness])
        .args(["--entity-idle", &args.entity_idle])
        .args(["--serve-window", &args.serve_window, "--out"])
        .arg(&landing)
        .args(["--grpc", "127.0.0.1:0", "--metrics", "off"])
        .args(["--status-secs", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", args.weir.display()));
    let (read, tail) = follow(&mut child);
    let began = Instant::now();
    let until = Duration::from_secs_f64(args.minutes * 60.0);
    let mut samples = Vec::new();
    while began.elapsed() < until {
        std::thread::sleep(args.every);
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "weir exited ({status}) after {:.0} s:\n{}",
                began.elapsed().as_secs_f64(),
                tail.lock().unwrap().join("\n")
            );
        }
        let sample = Sample {
            secs: began.elapsed().as_secs_f64(),
            rss_bytes: rss_of(child.id()).unwrap_or(0),
            read: read.load(Ordering::Relaxed),
        };
        eprintln!(
            "soak: {:>6.0} s  RSS {:>6.0} MiB  read {:>10}",
            sample.secs,
            sample.rss_bytes as f64 / (1 << 20) as f64,
            sample.read
        );
        samples.push(sample);
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
    samples
}

/// MB of RSS per million events read, from the first sample at or after `from` to the last.
fn growth(samples: &[Sample], from: f64) -> Option<f64> {
    let first = samples.iter().find(|s| s.secs >= from)?;
    let last = samples.last()?;
    let events = last.read.checked_sub(first.read).filter(|n| *n > 0)?;
    let bytes = last.rss_bytes as f64 - first.rss_bytes as f64;
    Some(bytes / 1e6 / (events as f64 / 1e6))
}

struct Restart {
    events: u64,
    checkpoint_bytes: u64,
    recovery_ms: Option<f64>,
    recovered_events: Option<u64>,
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => pending.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Runs `cmd` to success within [`RESTART_DEADLINE`]; its stderr.
fn run_to_success(cmd: &mut Command, what: &str) -> String {
    let log = std::env::temp_dir().join(format!("weir-soak-{}.stderr", std::process::id()));
    let file = std::fs::File::create(&log).expect("stderr file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if began.elapsed() > RESTART_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    match status {
        Some(s) if s.success() => stderr,
        Some(s) => panic!("{what} failed ({s}):\n{stderr}"),
        None => panic!(
            "{what} did not finish in {} s:\n{stderr}",
            RESTART_DEADLINE.as_secs()
        ),
    }
}

/// How long each step of the restart phase may take.
const RESTART_DEADLINE: Duration = Duration::from_secs(900);

fn restart(args: &Args, broker: &str) -> Restart {
    let topic = format!("soak-{}", std::process::id());
    let url = format!("kafka://{broker}/{topic}");
    let dir = args.out.join(format!("soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    run_to_success(
        Command::new(&args.weir).args([
            "gen",
            "--events",
            &args.kafka_events.to_string(),
            "--to",
            &url,
        ]),
        "weir gen --to",
    );
    let run = |name: &str| {
        run_to_success(
            Command::new(&args.weir)
                .args(["run", "--source", &url, "--out"])
                .arg(&dir)
                .args(["--lateness", &args.lateness, "--until-idle", "5"])
                .args(["--entity-idle", &args.entity_idle])
                .args(["--grpc", "127.0.0.1:0", "--metrics", "off"]),
            name,
        )
    };
    run("the durable run");
    let checkpoint_bytes = dir_bytes(&dir.join("checkpoints"));
    let stderr = run("the restart");
    // "weir: recovered checkpoint ID (logical time T, N events) in MS ms"
    let line = stderr.lines().find(|l| l.contains("recovered checkpoint"));
    let recovery_ms = line
        .and_then(|l| l.rsplit(" in ").next())
        .and_then(|s| s.trim_end_matches(" ms").parse().ok());
    let recovered_events = line
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok());
    let _ = std::fs::remove_dir_all(&dir);
    Restart {
        events: args.kafka_events,
        checkpoint_bytes,
        recovery_ms,
        recovered_events,
    }
}

fn main() {
    let args = parse_args();
    std::fs::create_dir_all(&args.out).expect("output directory");
    let samples = soak(&args);
    let settle = args.minutes * 60.0 / 3.0;
    let grown = growth(&samples, settle);
    // The memory figures first: the restart phase needs a broker and may fail on its own.
    write_report(&args, &samples, settle, grown, None);
    if let Some(broker) = args.kafka.as_deref() {
        let restart = restart(&args, broker);
        write_report(&args, &samples, settle, grown, Some(&restart));
    }
}

fn write_report(
    args: &Args,
    samples: &[Sample],
    settle: f64,
    grown: Option<f64>,
    restart: Option<&Restart>,
) {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let report = serde_json::json!({
        "rate": args.rate,
        "minutes": args.minutes,
        "lateness": args.lateness,
        "entity_idle": args.entity_idle,
        "serve_window": args.serve_window,
        "growth_mb_per_million_events_after": {"secs": settle, "value": grown},
        "samples": samples.iter().map(|s| serde_json::json!({
            "secs": s.secs, "rss_bytes": s.rss_bytes, "read": s.read,
        })).collect::<Vec<_>>(),
        "restart": restart.map(|r| serde_json::json!({
            "events": r.events,
            "checkpoint_bytes": r.checkpoint_bytes,
            "recovery_ms": r.recovery_ms,
            "recovered_events": r.recovered_events,
        })),
    });
    let json = args.out.join("soak.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report).unwrap()).expect("write");
    let (first, last) = (samples.first(), samples.last());
    let mut md = format!(
        "| soak: {} min at {} events/s, lateness {}, entity_idle {}, serve {} | |\n|---|---|\n\
         | RSS first / last sample | {:.0} / {:.0} MiB |\n\
         | events read | {} |\n\
         | growth after {:.0} s | {} MB per million events (goal < 40) |\n",
        args.minutes,
        args.rate,
        args.lateness,
        args.entity_idle,
        args.serve_window,
        first.map_or(0.0, |s| mib(s.rss_bytes)),
        last.map_or(0.0, |s| mib(s.rss_bytes)),
        last.map_or(0, |s| s.read),
        settle,
        grown.map_or("-".to_owned(), |g| format!("{g:.1}")),
    );
    if let Some(r) = restart {
        md += &format!(
            "| checkpoints after {} events | {:.1} MiB |\n| recovery | {} ms ({} events replayed; goal < 10 s) |\n",
            r.events,
            mib(r.checkpoint_bytes),
            r.recovery_ms.map_or("-".to_owned(), |m| format!("{m:.0}")),
            r.recovered_events.map_or("-".to_owned(), |n| n.to_string()),
        );
    }
    std::fs::write(args.out.join("soak.md"), &md).expect("write");
    println!("{md}\nreport: {}", json.display());
}
