//! The Kafka source, the landing zone and checkpoints, against a real Kafka-compatible broker.
//!
//! What this proves, each against the independent batch oracle over every line produced:
//!
//! - `weir run --source kafka://…` killed with SIGKILL again and again while the topic fills,
//!   then run to idle, ends with exactly the oracle's views; every valid event lands in
//!   `raw/` exactly once and every bad input in `quarantine/` exactly once (exactly-once
//!   across crashes), and replaying the landing zone gives the same views again.
//! - A torn newest checkpoint manifest is skipped with a warning, and the run resumes from the
//!   one before it without losing or doubling anything.
//! - A broker that is unreachable at start, and again in the middle of the stream, costs
//!   nothing: the run reports it, retries, and ends with the oracle's views.
//! - A bounded file run lands its raw events too, and replaying them reproduces its views.
//!
//! The broker is `tansu` (`cargo install --locked tansu --features dynostore`), started by the
//! tests on a port the OS picks, behind a proxy on another, unless `WEIR_KAFKA=HOST:PORT` names
//! one that is already running. The broker tests take a lock so they never run side by side:
//! they are timing-sensitive (kill points, idle timeouts) and the machine has two cores.
//!
//! The broker is checked too: every line's delivery is acknowledged, and the topic is read
//! back and must hold exactly the lines produced, so a difference from the oracle is the
//! run's. Lines go one per record batch because tansu 0.6.0 mis-serves fetches that start
//! inside a batch (see `produce`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use weir::row::{Cell, Row};

use crate::common::{
    Expected, Landed, Rng, WeirProcess, assert_landed_events_are_masked,
    assert_quarantine_is_the_bad_lines, assert_views_eq, mangled_input, oracle, parquet_files,
    read_gold, read_parquet, read_views, scratch_dir, tail,
};
use crate::oracle::{Lateness, Params};
use weir::run::DEFAULT_EPOCH_LINES;
use weir::settings::DEFAULT_LATENESS_MS;

const TOO_LATE: &str = "too_late";

// ------------------------------------------------------------------------------------------
// The tests
// ------------------------------------------------------------------------------------------

/// Acceptance 1 and 3: at least ten SIGKILLs while the topic fills, then a run to idle; the
/// views, the raw landing and the quarantine are exact, and a replay of the landing matches.
#[test]
fn crash_recovery_is_exactly_once() {
    let _serial = broker_tests_one_at_a_time();
    let begun = Instant::now();
    let root = scratch_dir("kafka-crash");
    let (out, logs) = (root.join("out"), root.join("logs"));
    std::fs::create_dir_all(&logs).unwrap();

    let broker = Broker::start(&root);
    let topic = broker.topic("crash", 4);
    let lines = mangled_input(41, 300_000, 2_000);
    let producing = Producing::start(&broker.addr, &topic, lines.clone(), 15_000);

    // Kill at a random point 1–4 s after each start, at least ten times and until every line
    // is in the topic, so kills land during start-up, mid-batch and mid-checkpoint alike.
    let mut rng = Rng::new(0xC0FFEE);
    let mut starts: Vec<Start> = Vec::new();
    let mut mid_export = 0;
    // Spans of 5 minutes of event time go to gold 5 minutes behind the watermark, well within
    // the hour of lateness, so exports and merges into them go on all the time; each file
    // waits 100 ms before it is written, so kills land in the middle of exports too. The
    // run's state is saved every 20,000 events (with the export), so most restarts start
    // from a state and replay only the events since.
    let with_gold = |until_idle| {
        let mut args = live_args(&broker.url(&topic), &out, "0.5", until_idle);
        args.extend(
            [
                "--serve-window",
                "5m",
                "--gold-span",
                "5m",
                "--snapshot-events",
                "20000",
            ]
            .map(String::from),
        );
        args
    };
    while starts.len() < 10 || !producing.finished() || mid_export == 0 {
        // Not waiting for the ready file: a kill may land before the run serves.
        let mut weir = WeirProcess::spawn_with_env(
            &with_gold(None),
            &[("WEIR_GOLD_WRITE_DELAY_MS", "100")],
            &logs,
            &format!("start-{:02}", starts.len()),
        );
        let kill_at = weir.started() + Duration::from_millis(1_000 + rng.below(3_001) as u64);
        let mut seen_after = None;
        while Instant::now() < kill_at {
            if seen_after.is_none() && weir.log().contains(RECOVERED) {
                seen_after = Some(weir.started().elapsed());
            }
            assert!(
                weir.running(),
                "weir exited by itself before kill {}: {}",
                starts.len(),
                tail(&weir.log())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let stderr = weir.kill();
        if stderr.rfind(GOLD_EXPORTING) > stderr.rfind(GOLD_EXPORTED) {
            mid_export += 1;
        }
        assert!(
            mid_export > 0 || starts.len() < 40,
            "40 kills and none in the middle of a gold export"
        );
        starts.push(Start {
            recovered: parse_recovered(&stderr),
            seen_after,
        });
    }
    let kills = starts.len();
    // Reported before anything else can fail, so a failing run still shows it.
    eprintln!(
        "kafka crash test: {kills} kills ({mid_export} in the middle of a gold export), {} lines",
        lines.len()
    );
    for (i, start) in starts.iter().enumerate() {
        match &start.recovered {
            Some(r) => eprintln!(
                "  start {i:2}: recovered checkpoint {} ({}{} events replayed) in {} ms; line seen {:?} after spawn",
                r.id,
                if r.from_state { "its state and " } else { "" },
                r.events,
                r.ms,
                start.seen_after
            ),
            None => eprintln!("  start {i:2}: no checkpoint recovered before the kill"),
        }
    }
    let produced = producing.join();
    assert_eq!(produced.lines, lines.len());
    eprintln!(
        "  produced in {:.1} s ({:.0} lines/s)",
        produced.took.as_secs_f64(),
        lines.len() as f64 / produced.took.as_secs_f64()
    );
    let in_topic = topic_contents(&broker.addr, &topic, &produced.ends);
    assert_same_lines(&in_topic, &lines, "the topic");

    // The last run drains the topic and stops once it has been idle for three seconds.
    let weir = start_live(&with_gold(Some("3")), &logs, "final");
    let started = weir.started();
    let final_stderr = weir.wait_success(Duration::from_secs(600));
    let final_recovery = parse_recovered(&final_stderr)
        .unwrap_or_else(|| panic!("the final run recovered no checkpoint: {final_stderr}"));
    let (moved, revived) = cold_counts(&final_stderr)
        .unwrap_or_else(|| panic!("the final run reported no cold tier: {final_stderr}"));
    // The final run starts from the last run's state, so what it moves itself depends on what
    // is left to read; what it brings back went cold in the runs that were killed, and came
    // back through their savepoints.
    assert!(
        revived > 0,
        "the final run moved {moved} entity states to the cold tier and brought {revived} back"
    );
    let final_secs = started.elapsed().as_secs_f64();

    let recoveries: Vec<&Recovered> = starts.iter().filter_map(|s| s.recovered.as_ref()).collect();
    let mut ms: Vec<f64> = recoveries.iter().map(|r| r.ms).collect();
    ms.sort_by(f64::total_cmp);
    eprintln!(
        "kafka crash test: recovery p50 {:?} ms, max {:?} ms over {} recoveries; final run recovered in {} ms and took {final_secs:.1} s; total {:.1} s",
        ms.get((ms.len().max(1) - 1) / 2),
        ms.last(),
        ms.len(),
        final_recovery.ms,
        begun.elapsed().as_secs_f64()
    );

    // Checkpoints were taken while the process kept dying, and recovery never went back.
    assert!(
        recoveries.len() * 2 >= kills,
        "only {} of {kills} starts recovered a checkpoint",
        recoveries.len()
    );
    let mut sequence: Vec<&Recovered> = recoveries.clone();
    sequence.push(&final_recovery);
    for pair in sequence.windows(2) {
        assert!(
            pair[0].id <= pair[1].id && pair[0].time <= pair[1].time,
            "a later start recovered an older checkpoint: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
    let from_state = sequence.iter().filter(|r| r.from_state).count();
    assert!(
        from_state * 2 >= sequence.len(),
        "only {from_state} of {} recoveries started from a saved state",
        sequence.len()
    );
    let distinct: BTreeSet<u64> = sequence.iter().map(|r| r.id).collect();
    assert!(
        distinct.len() >= 3,
        "checkpoints did not advance across kills: {distinct:?}"
    );

    // The run keeps weir's default lateness of an hour: the generator's events up to three
    // hours late span it, so some are too_late, and recovery must keep the watermarks.
    let oracle = oracle_with_landed_lateness(&out, &lines);
    assert!(
        oracle.quarantined.get(TOO_LATE).is_some_and(|n| *n > 0),
        "the input must have events past the lateness: {:?}",
        oracle.quarantined
    );
    // A windowed view is its gold files and its live rows.
    let gold = read_gold(&out);
    // About 100 minutes of event time: most minutes and sessions, and some hours, are in gold.
    assert!(
        gold["gmv_minute"].len() > 100
            && gold["sessions"].len() > 1_000
            && !gold["conversion_hour"].is_empty(),
        "too little went to gold: {:?}",
        gold.iter()
            .map(|(v, rows)| (v, rows.len()))
            .collect::<Vec<_>>()
    );
    let views = union(read_views(&out), gold);
    assert_views_eq(&views, &oracle.views, "after kills");
    assert_raw_exactly_once(&out, Some(&topic), &oracle, "after kills");
    assert_quarantine_exactly_once(&out, &topic, &lines, &oracle);

    // Acceptance 3: the landing zone alone reproduces the live run's views.
    let replay = root.join("replay");
    weir_bounded(&out, &replay, &logs, "replay");
    assert_views_eq(&read_views(&replay), &views, "replay vs live");
}

/// Acceptance 2: with the newest manifest torn, the next start warns, recovers the one
/// before it, and the result is still exact.
#[test]
fn a_torn_newest_checkpoint_falls_back() {
    let _serial = broker_tests_one_at_a_time();
    let root = scratch_dir("kafka-torn");
    let (out, logs) = (root.join("out"), root.join("logs"));
    std::fs::create_dir_all(&logs).unwrap();
    let broker = Broker::start(&root);
    let topic = broker.topic("torn", 2);
    let mut lines = mangled_input(42, 50_000, 1_000);
    lines.truncate(50_000);
    let (first, second) = lines.split_at(40_000);

    // Checkpoints every 0.3 s while 40,000 lines arrive at ~8K/s: several manifests.
    let producing = Producing::start(&broker.addr, &topic, first.to_vec(), 8_000);
    let args = live_args(&broker.url(&topic), &out, "0.3", Some("2"));
    let run = start_live(&args, &logs, "first");
    let mut produced = producing.join();
    assert_eq!(produced.lines, first.len());
    let stderr = run.wait_success(Duration::from_secs(300));
    assert!(stderr.contains("weir: no checkpoint in "), "{stderr}");

    let manifests = checkpoint_manifests(&out);
    assert!(
        manifests.len() >= 2,
        "need two checkpoints to fall back between: {manifests:?}"
    );
    let (newest_id, newest) = manifests.last().unwrap().clone();
    let (previous_id, _) = manifests[manifests.len() - 2].clone();
    let text = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &text[..text.len() / 2]).unwrap();

    let producing = Producing::start(&broker.addr, &topic, second.to_vec(), 8_000);
    let more = producing.join();
    assert_eq!(more.lines, second.len());
    produced.ends.extend(more.ends);
    let in_topic = topic_contents(&broker.addr, &topic, &produced.ends);
    assert_same_lines(&in_topic, &lines, "the topic");
    let stderr = start_live(&args, &logs, "second").wait_success(Duration::from_secs(300));
    let name = newest.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("weir: warning: checkpoint ")
                && l.contains(&name)
                && l.contains(" is unreadable (")
                && l.ends_with("); trying an earlier one")),
        "no warning about the torn {name}: {stderr}"
    );
    let recovered = parse_recovered(&stderr)
        .unwrap_or_else(|| panic!("no checkpoint recovered after the torn one: {stderr}"));
    assert!(
        recovered.id < newest_id,
        "recovered {} although {newest_id} is torn",
        recovered.id
    );
    assert_eq!(
        recovered.id, previous_id,
        "the newest complete checkpoint is the one before the torn one"
    );

    let oracle = oracle_with_landed_lateness(&out, &lines);
    assert_views_eq(
        &read_views(&out),
        &oracle.views,
        "after the torn checkpoint",
    );
    assert_raw_exactly_once(&out, Some(&topic), &oracle, "torn");
    assert_quarantine_exactly_once(&out, &topic, &lines, &oracle);
}

/// Acceptance 4: the broker is unreachable when the run starts and again for three seconds
/// mid-stream (a proxy in front of it refuses and cuts every connection); nothing is lost.
#[test]
fn broker_down_at_start_and_mid_run_loses_nothing() {
    let _serial = broker_tests_one_at_a_time();
    let root = scratch_dir("kafka-outage");
    let (out, logs) = (root.join("out"), root.join("logs"));
    std::fs::create_dir_all(&logs).unwrap();

    // The broker advertises its proxy's port, so every client, weir's and the producer's,
    // reaches it only through the proxy, which starts down; topic creation goes to the broker
    // directly.
    let mut broker = Broker::spawn_tansu(&root, false);
    let topic = broker.topic("outage", 4);
    let mut lines = mangled_input(43, 20_000, 1_000);
    lines.truncate(20_000);
    let url = broker.url(&topic);

    // It serves before it reaches for the broker, so it is ready while the broker is down.
    let mut weir = start_live(&live_args(&url, &out, "0.5", Some("6")), &logs, "weir");
    let deadline = weir.started() + Duration::from_secs(8);
    while Instant::now() < deadline
        && (weir.started().elapsed() < Duration::from_secs(3) || !has_kafka_line(&weir.log()))
    {
        assert!(weir.running(), "weir exited: {}", tail(&weir.log()));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        has_kafka_line(&weir.log()),
        "no `weir: kafka:` line while the broker is unreachable: {}",
        weir.log()
    );

    broker.proxy().up();
    let producing = Producing::start(&broker.addr, &topic, lines.clone(), 4_000);
    while producing.sent() < lines.len() / 2 && !producing.finished() {
        std::thread::sleep(Duration::from_millis(20));
    }
    broker.proxy().down();
    std::thread::sleep(Duration::from_secs(3));
    broker.proxy().up();
    let produced = producing.join();
    assert_eq!(produced.lines, lines.len());
    // Every line is in the topic: had the run given up as idle during an outage, it would
    // have stopped by now.
    assert!(
        weir.running(),
        "weir stopped before the last line was in the topic: {}",
        tail(&weir.log())
    );
    let stderr = weir.wait_success(Duration::from_secs(300));
    // A produce request cut by the outage may have been stored before it was retried, so a
    // line can be in the topic twice; none may be missing, and nothing else may be there.
    let in_topic = topic_contents(&broker.addr, &topic, &produced.ends);
    let distinct: HashSet<&String> = in_topic.iter().collect();
    assert_eq!(distinct, lines.iter().collect::<HashSet<_>>(), "the topic");
    eprintln!(
        "kafka outage test: {} `weir: kafka:` lines; {} messages in the topic for {} lines",
        stderr.lines().filter(|l| l.starts_with(KAFKA)).count(),
        in_topic.len(),
        lines.len()
    );

    let oracle = oracle_with_landed_lateness(&out, &lines);
    assert_views_eq(&read_views(&out), &oracle.views, "after outages");
    assert_raw_exactly_once(&out, Some(&topic), &oracle, "outages");
}

/// Acceptance 3 without a broker: a bounded file run lands its raw events, and replaying the
/// landing directory (or a glob of its raw files) gives the same views, the oracle's.
#[test]
fn replay_of_a_file_run_landing_matches() {
    let root = scratch_dir("kafka-replay-file");
    // Longer than the default lateness of an hour of event time, so that it applies; a
    // bounded run's logical times are counted in lines, so the oracle decides it too.
    let lines = mangled_input(7, 250_000, 1_000);
    let oracle = oracle(
        &lines,
        &Params {
            lateness: Some(Lateness {
                ms: DEFAULT_LATENESS_MS,
                epoch_lines: DEFAULT_EPOCH_LINES,
            }),
            ..Params::default()
        },
    );
    assert!(oracle.quarantined.contains_key(TOO_LATE));
    let input = root.join("events.ndjson");
    std::fs::write(&input, lines.join("\n")).unwrap();

    let (a, b, c) = (root.join("a"), root.join("b"), root.join("c"));
    weir_bounded(&input, &a, &root, "a");
    assert_views_eq(&read_views(&a), &oracle.views, "file run");
    assert_raw_exactly_once(&a, None, &oracle, "file run");

    weir_bounded(&a, &b, &root, "b");
    assert_views_eq(&read_views(&b), &read_views(&a), "replay of the directory");
    let glob = a.join("raw/**/*.parquet");
    weir_bounded(&glob, &c, &root, "c");
    assert_views_eq(&read_views(&c), &read_views(&a), "replay of the raw glob");
}

// ------------------------------------------------------------------------------------------
// Checks on what a run wrote
// ------------------------------------------------------------------------------------------

const RAW_COLUMNS: [&str; 7] = [
    "tenant_id",
    "event_id",
    "type",
    "event_time_ms",
    "partition",
    "offset",
    "event",
];

/// The raw landing holds each valid event, and nothing else, exactly once: its
/// `(tenant_id, event_id)` pairs are the oracle's admitted events without a repeat, each with
/// the oracle's type, time and card masking. For a Kafka run (`topic` given) each file's name
/// also bounds its rows' partition and offsets.
/// `weir gen --to` a topic the broker does not have (tansu creates none on produce): the topic
/// is created, and the count printed is what the broker acknowledged, every line read back.
#[test]
fn gen_to_a_missing_topic_creates_it_and_every_event_arrives() {
    let _serial = broker_tests_one_at_a_time();
    let root = scratch_dir("kafka-gen-to");
    let broker = Broker::start(&root);
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let topic = format!("gen-to-{}-{stamp}", std::process::id());
    let generate = |to: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
        cmd.args(["gen", "--events", "3000", "--seed", "5"]);
        if let Some(to) = to {
            cmd.args(["--to", to]);
        }
        cmd.output().unwrap()
    };
    let produced = generate(Some(&broker.url(&topic)));
    let stderr = String::from_utf8_lossy(&produced.stderr);
    assert!(produced.status.success(), "{stderr}");
    assert!(stderr.contains("produced 3000 events"), "{stderr}");
    let got = topic_contents(&broker.addr, &topic, &BTreeMap::from([(0, 3000)]));
    let want: Vec<String> = String::from_utf8(generate(None).stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_same_lines(&got, &want, "gen --to a new topic");
}

fn assert_raw_exactly_once(dir: &Path, topic: Option<&str>, oracle: &Expected, context: &str) {
    let files = parquet_files(&dir.join("raw"));
    assert!(!files.is_empty(), "{context}: no raw landing files");
    let mut landed: Vec<Landed> = Vec::new();
    let mut positions = HashSet::new();
    for file in &files {
        let (names, rows) = read_parquet(file);
        if rows.is_empty() {
            continue;
        }
        assert_eq!(names, RAW_COLUMNS, "{}", file.display());
        let rel = file.strip_prefix(dir.join("raw")).unwrap();
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            parts.len(),
            3,
            "raw/tenant_id=T/date=D/FILE: {}",
            rel.display()
        );
        let tenant = parts[0]
            .strip_prefix("tenant_id=")
            .unwrap_or_else(|| panic!("{}", rel.display()));
        let date = parts[1]
            .strip_prefix("date=")
            .unwrap_or_else(|| panic!("{}", rel.display()));
        assert!(is_iso_date(date), "{}", rel.display());
        let range = topic.map(|t| file_range(&parts[2], t));
        for row in rows {
            let [
                Cell::Str(t),
                Cell::Str(id),
                Cell::Str(kind),
                Cell::Int(time),
                Cell::Int(p),
                Cell::Int(o),
                Cell::Str(event),
            ] = &row[..]
            else {
                panic!("{}: unexpected raw row {row:?}", file.display())
            };
            assert_eq!(t, tenant, "{}", file.display());
            if let Some((partition, first, last)) = range {
                assert!(
                    *p == partition && (first..=last).contains(o),
                    "{}: row at {p}/{o} outside the file's range",
                    file.display()
                );
                assert!(positions.insert((*p, *o)), "offset {p}/{o} landed twice");
            }
            landed.push(Landed {
                tenant_id: t.clone(),
                event_id: id.clone(),
                kind: kind.clone(),
                event_time_ms: *time,
                event: event.clone(),
            });
        }
    }
    assert_landed_events_are_masked(&landed, oracle, context);
}

/// The quarantine files hold every bad input once: the `(raw, reason)` rows are exactly the
/// lines the oracle quarantines, with its reasons, kept whole but for masked card data.
fn assert_quarantine_exactly_once(dir: &Path, topic: &str, lines: &[String], oracle: &Expected) {
    let mut stored: Vec<(String, String)> = Vec::new();
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    let mut positions = HashSet::new();
    for file in parquet_files(&dir.join("quarantine")) {
        let (names, rows) = read_parquet(&file);
        if rows.is_empty() {
            continue;
        }
        assert_eq!(
            names,
            ["raw", "reason", "partition", "offset"],
            "{}",
            file.display()
        );
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let (partition, first, last) = file_range(&name, topic);
        for row in rows {
            let [
                Cell::Str(raw),
                Cell::Str(reason),
                Cell::Int(p),
                Cell::Int(o),
            ] = &row[..]
            else {
                panic!("{}: unexpected quarantine row {row:?}", file.display())
            };
            assert!(
                *p == partition && (first..=last).contains(o),
                "{}: row at {p}/{o} outside the file's range",
                file.display()
            );
            assert!(
                positions.insert((*p, *o)),
                "offset {p}/{o} quarantined twice"
            );
            if reason != TOO_LATE {
                stored.push((raw.clone(), reason.clone()));
            }
            *by_reason.entry(reason.clone()).or_default() += 1;
        }
    }
    assert_eq!(
        by_reason, oracle.quarantined,
        "quarantined inputs by reason"
    );
    assert_quarantine_is_the_bad_lines(&stored, lines, "the Kafka quarantine");
}

/// The oracle's result for a live run with lateness, from its landing.
///
/// Lateness is decided per logical time, and a live run's logical times follow the clock, so
/// which of the events near the lateness were too late is the run's to say. Each input the
/// landed quarantine holds as `too_late` must be a valid line of the input, more than the
/// lateness behind another event of its tenant; it is taken out of the input (its last copy:
/// a watermark only rises, so a later copy of a late event is as late), and the result is
/// the oracle's over the rest, with those lines quarantined as `too_late`. The rest of the
/// quarantine is checked against the oracle's own validation.
fn oracle_with_landed_lateness(out: &Path, lines: &[String]) -> Expected {
    let valid: Vec<Option<crate::oracle::Event>> = lines
        .iter()
        .map(|l| crate::oracle::validate(l.as_bytes()).ok())
        .collect();
    let mut newest: HashMap<&str, i64> = HashMap::new();
    for e in valid.iter().flatten() {
        let t = newest.entry(e.tenant_id.as_str()).or_insert(e.time);
        *t = (*t).max(e.time);
    }
    let mut by_form: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, line) in lines.iter().enumerate() {
        if valid[i].is_some() {
            by_form
                .entry(crate::common::quarantine_form(line, true))
                .or_default()
                .push(i);
        }
    }
    let mut taken = vec![false; lines.len()];
    let mut too_late = 0;
    for file in parquet_files(&out.join("quarantine")) {
        for row in read_parquet(&file).1 {
            let (Cell::Str(raw), Cell::Str(reason)) = (&row[0], &row[1]) else {
                panic!("{}: unexpected quarantine row {row:?}", file.display());
            };
            if reason != TOO_LATE {
                continue;
            }
            let form = crate::common::quarantine_form(raw, false);
            let i = by_form
                .get_mut(&form)
                .and_then(Vec::pop)
                .unwrap_or_else(|| panic!("too_late {raw:.300} is no valid input line left"));
            let e = valid[i].as_ref().unwrap();
            assert!(
                e.time < newest[e.tenant_id.as_str()] - DEFAULT_LATENESS_MS,
                "too_late {raw:.300}: no event of its tenant is an hour later"
            );
            taken[i] = true;
            too_late += 1;
        }
    }
    let rest: Vec<String> = lines
        .iter()
        .zip(&taken)
        .filter(|(_, t)| !**t)
        .map(|(l, _)| l.clone())
        .collect();
    let mut expected = oracle(&rest, &Params::default());
    if too_late > 0 {
        expected.quarantined.insert(TOO_LATE.into(), too_late);
    }
    expected
}

/// `(partition, first, last)` from `<topic>-<partition>-<first>-<last>.parquet`.
fn file_range(name: &str, topic: &str) -> (i64, i64, i64) {
    let numbers: Vec<i64> = name
        .strip_prefix(topic)
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.strip_suffix(".parquet"))
        .map(|r| r.split('-').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default();
    let [partition, first, last] = numbers[..] else {
        panic!("{name} is not {topic}-<partition>-<first>-<last>.parquet")
    };
    assert!(first <= last, "{name}");
    (partition, first, last)
}

fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// `(id, path)` of every `checkpoint-<id>.json` manifest, oldest first.
fn checkpoint_manifests(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name()?.to_str()?;
            let id = name.strip_prefix("checkpoint-")?.strip_suffix(".json")?;
            assert_eq!(
                id.len(),
                10,
                "checkpoint ids are zero-padded to 10 digits: {name}"
            );
            Some((id.parse().ok()?, path))
        })
        .collect();
    out.sort();
    out
}

// ------------------------------------------------------------------------------------------
// Running weir
// ------------------------------------------------------------------------------------------

const RECOVERED: &str = "weir: recovered checkpoint ";
const FROM_STATE: &str = "holds the run's state as of logical time";
const GOLD_EXPORTING: &str = "weir: gold: exporting";
const GOLD_EXPORTED: &str = "weir: gold: exported";

/// Two sets of rows of every view as one, each view sorted.
fn union(
    mut a: BTreeMap<&'static str, Vec<Row>>,
    b: BTreeMap<&'static str, Vec<Row>>,
) -> BTreeMap<&'static str, Vec<Row>> {
    for (view, rows) in b {
        let all = a.entry(view).or_default();
        all.extend(rows);
        all.sort();
    }
    a
}
const KAFKA: &str = "weir: kafka:";

fn has_kafka_line(stderr: &str) -> bool {
    stderr.lines().any(|l| l.starts_with(KAFKA))
}

/// One start of the crash loop.
struct Start {
    recovered: Option<Recovered>,
    /// From spawn until the recovery line was in its stderr (polled every 20 ms).
    seen_after: Option<Duration>,
}

/// `weir: recovered checkpoint <id> (logical time <t>, <n> events) in <ms> ms`
#[derive(Debug)]
struct Recovered {
    id: u64,
    /// The logical time the run goes on from.
    time: u64,
    /// Events replayed: those since the state the checkpoint holds (or all, with none).
    events: u64,
    ms: f64,
    /// Whether the checkpoint held the run's state.
    from_state: bool,
}

/// The recovery line of a start, if it printed one; a malformed one fails the test.
fn parse_recovered(stderr: &str) -> Option<Recovered> {
    let line = stderr.lines().find(|l| l.starts_with(RECOVERED))?;
    let parse = || {
        let rest = line.strip_prefix(RECOVERED)?;
        let (id, rest) = rest.split_once(" (logical time ")?;
        let (time, rest) = rest.split_once(", ")?;
        let (events, rest) = rest.split_once(" events) in ")?;
        let ms = rest.strip_suffix(" ms")?;
        Some(Recovered {
            id: id.parse().ok()?,
            time: time.parse().ok()?,
            events: events.parse().ok()?,
            ms: ms.parse().ok()?,
            from_state: stderr.contains(FROM_STATE),
        })
    };
    Some(parse().unwrap_or_else(|| panic!("malformed recovery line: {line}")))
}

/// What a run's summary says went through its cold tier: states moved, states brought back.
fn cold_counts(stderr: &str) -> Option<(u64, u64)> {
    let line = stderr.lines().find_map(|l| l.strip_prefix("cold tier:"))?;
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    Some((*numbers.first()?, *numbers.get(1)?))
}

/// `weir run` against a Kafka topic with the flags every test here uses.
fn live_args(
    url: &str,
    out: &Path,
    checkpoint_secs: &str,
    until_idle: Option<&str>,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "--source",
        url,
        "--out",
        out.to_str().unwrap(),
        "--checkpoint-secs",
        checkpoint_secs,
        "--grpc",
        "127.0.0.1:0",
        "--metrics",
        "off",
        "--workers",
        "2",
        // About 50 events a second of event time: orders, payments and users go cold within
        // every run and come back when touched, kills landing while they move.
        "--entity-idle",
        "5m",
    ]
    .map(String::from)
    .to_vec();
    if let Some(secs) = until_idle {
        args.extend(["--until-idle".into(), secs.into()]);
    }
    args
}

/// A live run (see [`live_args`]) started with its stderr in `DIR/NAME.stderr`, once it
/// serves: it writes its ready file after recovering a checkpoint, before it reaches for the
/// broker.
fn start_live(args: &[String], dir: &Path, name: &str) -> WeirProcess {
    let mut weir = WeirProcess::spawn(args, dir, name);
    weir.wait_ready(Duration::from_secs(120));
    weir
}

/// `weir run --input INPUT --out OUT` (a file, a landing directory or a glob) to success,
/// its stderr in `DIR/NAME.stderr`. A bounded run serves nothing, so there is no ready file
/// to wait for.
fn weir_bounded(input: &Path, out: &Path, dir: &Path, name: &str) {
    let args = [
        "run",
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--workers",
        "2",
    ]
    .map(String::from);
    WeirProcess::spawn(&args, dir, name).wait_success(Duration::from_secs(300));
}

// ------------------------------------------------------------------------------------------
// Fixtures
// ------------------------------------------------------------------------------------------

/// The broker tests run one at a time (see the module doc).
fn broker_tests_one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A Kafka-compatible broker: the one `WEIR_KAFKA` names, or a tansu this fixture starts with
/// in-memory storage and kills when dropped. Every port is the OS's choice: tansu listens on
/// port 0 and advertises a [`Proxy`] whose listener this fixture holds for the broker's life,
/// so no port is ever picked, freed and hoped to be free again.
struct Broker {
    /// `HOST:PORT` that clients bootstrap from.
    addr: String,
    /// `HOST:PORT` of the broker itself, behind the proxy: topics are created here, so that
    /// a test can take the proxy down first.
    direct: String,
    child: Option<Child>,
    proxy: Option<Proxy>,
}

const INSTALL_TANSU: &str = "the Kafka tests need a broker: install tansu with \
     `cargo install --locked tansu --features dynostore`, or set WEIR_KAFKA=HOST:PORT";

impl Broker {
    fn start(scratch: &Path) -> Broker {
        match std::env::var("WEIR_KAFKA") {
            Ok(addr) if !addr.is_empty() => Broker {
                direct: addr.clone(),
                addr,
                child: None,
                proxy: None,
            },
            _ => Broker::spawn_tansu(scratch, true),
        }
    }

    /// tansu on a port of the OS's choosing, behind a proxy that is up if `up`.
    fn spawn_tansu(scratch: &Path, up: bool) -> Broker {
        let tansu = tansu_binary().unwrap_or_else(|| panic!("{INSTALL_TANSU}"));
        let front = TcpListener::bind("127.0.0.1:0").unwrap();
        let advertised = front.local_addr().unwrap();
        let log = scratch.join("tansu.log");
        let child = Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                "tcp://127.0.0.1:0",
                "--advertised-listener-url",
                &format!("tcp://{advertised}"),
                "--storage-engine",
                "memory://tansu/",
            ])
            // Its own log at info is large; warnings and errors are what a failure needs.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(File::create(&log).unwrap())
            .stderr(File::create(scratch.join("tansu.stderr")).unwrap())
            .spawn()
            .expect("spawn tansu");
        let mut broker = Broker {
            addr: advertised.to_string(),
            direct: String::new(),
            child: Some(child),
            proxy: None,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let pid = broker.child.as_ref().unwrap().id();
        let port = loop {
            let exited = broker.child.as_mut().unwrap().try_wait().unwrap();
            let why = || std::fs::read_to_string(scratch.join("tansu.stderr")).unwrap_or_default();
            assert!(exited.is_none(), "tansu exited with {exited:?}: {}", why());
            if let Some(port) = listening_port(pid) {
                break port;
            }
            assert!(Instant::now() < deadline, "tansu never listened: {}", why());
            std::thread::sleep(Duration::from_millis(100));
        };
        let direct = SocketAddr::from(([127, 0, 0, 1], port));
        broker.direct = direct.to_string();
        let mut proxy = Proxy::start(front, direct);
        if up {
            proxy.up();
        }
        broker.proxy = Some(proxy);
        broker
    }

    /// The proxy in front of a broker this fixture started.
    fn proxy(&mut self) -> &mut Proxy {
        self.proxy
            .as_mut()
            .expect("only a broker the tests started has a proxy")
    }

    /// A new topic with a name no other test or run uses.
    fn topic(&self, base: &str, partitions: i32) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let name = format!(
            "{base}-{}-{}-{stamp}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        match tansu_binary() {
            // tansu's own CLI is known to work against tansu.
            Some(tansu) => {
                let out = Command::new(tansu)
                    .args(["topic", "create", "--broker"])
                    .arg(format!("tcp://{}", self.direct))
                    .args(["--partitions", &partitions.to_string(), &name])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "tansu topic create {name}: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            // A broker from WEIR_KAFKA on a machine without tansu: the Kafka admin API.
            None => {
                let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                    .set("bootstrap.servers", &self.addr)
                    .create()
                    .unwrap();
                let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
                let created = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(admin.create_topics([&topic], &AdminOptions::new()))
                    .unwrap();
                for result in created {
                    result.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
                }
            }
        }
        name
    }

    fn url(&self, topic: &str) -> String {
        format!("kafka://{}/{topic}", self.addr)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn tansu_binary() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("tansu"))
        .find(|p| p.is_file())
}

/// The TCP port process `pid` listens on, once it does: its sockets' inodes looked up among
/// the listening sockets of `/proc/net/tcp`.
fn listening_port(pid: u32) -> Option<u16> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|fd| {
            let target = std::fs::read_link(fd.ok()?.path()).ok()?;
            let target = target.to_str()?;
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        // sl, local_address (hex IP:port), rem_address, st (0A is LISTEN), …, inode (10th).
        let columns: Vec<&str> = line.split_whitespace().collect();
        let listening = columns.get(3) == Some(&"0A");
        if !listening || !columns.get(9).is_some_and(|inode| inodes.contains(*inode)) {
            return None;
        }
        u16::from_str_radix(columns[1].rsplit(':').next()?, 16).ok()
    })
}

/// Lines being produced to a topic by a background thread at a steady rate, each keyed by
/// its `order_id`, else its `user_id`, else its own bytes: every copy of an event goes to the
/// same partition, and an order's events stay in order.
struct Producing {
    handle: JoinHandle<Result<Delivered, String>>,
    sent: Arc<AtomicUsize>,
}

impl Producing {
    fn start(bootstrap: &str, topic: &str, lines: Vec<String>, per_sec: u64) -> Producing {
        let sent = Arc::new(AtomicUsize::new(0));
        let (bootstrap, topic, counter) = (bootstrap.to_owned(), topic.to_owned(), sent.clone());
        let handle =
            std::thread::spawn(move || produce(&bootstrap, &topic, &lines, per_sec, &counter));
        Producing { handle, sent }
    }

    /// Lines handed to the client so far.
    fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    fn finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits until every line is acknowledged by the broker.
    fn join(self) -> Delivered {
        self.handle
            .join()
            .expect("producer thread panicked")
            .unwrap_or_else(|e| panic!("producing failed: {e}"))
    }
}

fn produce(
    bootstrap: &str,
    topic: &str,
    lines: &[String],
    per_sec: u64,
    sent: &AtomicUsize,
) -> Result<Delivered, String> {
    let deliveries = Arc::new(Deliveries::default());
    let producer: BaseProducer<Counting> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        // One message per record batch. tansu 0.6.0 answers a fetch from an offset inside a
        // batch with the batches *after* it (and never serves the tail of a partition's last
        // batch that way): a run resuming from a checkpoint mid-batch would silently skip
        // messages, which is the broker's fault, not the run's. Kafka serves the whole batch.
        // The price: tansu takes a few thousand lines/s this way, not tens of thousands.
        .set("batch.num.messages", "1")
        .set("message.timeout.ms", "120000")
        // Back in within half a second once the proxy is up again.
        .set("reconnect.backoff.max.ms", "500")
        .create_with_context(Counting(deliveries.clone()))
        .map_err(|e| e.to_string())?;
    let begun = Instant::now();
    for (i, line) in lines.iter().enumerate() {
        if i % 100 == 0 {
            let due = begun + Duration::from_secs_f64(i as f64 / per_sec as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            producer.poll(Duration::ZERO);
        }
        let key = key_of(line);
        let mut record = BaseRecord::to(topic).key(&key[..]).payload(line.as_str());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(format!("send line {i}: {e}")),
            }
        }
        sent.store(i + 1, Ordering::Relaxed);
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(|e| format!("flush: {e}"))?;
    let failed = deliveries.failed.lock().unwrap();
    let ok = deliveries.ok.load(Ordering::Relaxed);
    if !failed.is_empty() || ok != lines.len() {
        return Err(format!(
            "{ok} of {} delivered; failures: {:?}",
            lines.len(),
            &failed[..failed.len().min(5)]
        ));
    }
    let ends = deliveries.ends.lock().unwrap().clone();
    Ok(Delivered {
        lines: ok,
        ends,
        took: begun.elapsed(),
    })
}

/// What a [`Producing`] put in the topic.
struct Delivered {
    lines: usize,
    /// Per partition, one past the highest offset acknowledged.
    ends: BTreeMap<i32, i64>,
    /// From the first send to the last acknowledgement.
    took: Duration,
}

/// The message key of a line (see [`Producing`]); malformed lines are keyed by their bytes.
fn key_of(line: &str) -> Vec<u8> {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(line) {
        for field in ["order_id", "user_id"] {
            match value.get(field) {
                Some(serde_json::Value::String(s)) => return s.clone().into_bytes(),
                Some(serde_json::Value::Null) | None => {}
                Some(other) => return other.to_string().into_bytes(),
            }
        }
    }
    line.as_bytes().to_vec()
}

/// Every message in `topic` up to `ends` (per partition, one past the last offset to read),
/// read back from the beginning: the test's own check that the topic holds what it produced,
/// so that a difference from the oracle is the run's and not the broker's. (The ends come
/// from the delivery reports: tansu's high watermarks can lag the last batch of a partition.)
fn topic_contents(bootstrap: &str, topic: &str, ends: &BTreeMap<i32, i64>) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("weir-test-reader-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in ends.keys() {
        assignment
            .add_partition_offset(topic, *partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut next: BTreeMap<i32, i64> = ends.keys().map(|p| (*p, 0)).collect();
    let mut out = Vec::new();
    while next.iter().any(|(p, n)| *n < ends[p]) {
        let message = consumer
            .poll(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("reading {topic} back stalled at {next:?} of {ends:?}"))
            .unwrap();
        if message.offset() < ends[&message.partition()] {
            next.insert(message.partition(), message.offset() + 1);
            let payload = message.payload().unwrap_or_default();
            out.push(String::from_utf8(payload.to_vec()).unwrap());
        }
    }
    out
}

/// Panics unless `got` and `want` are the same multiset of lines.
fn assert_same_lines(got: &[String], want: &[String], context: &str) {
    let mut count: BTreeMap<&str, i64> = BTreeMap::new();
    for line in want {
        *count.entry(line).or_default() += 1;
    }
    for line in got {
        *count.entry(line).or_default() -= 1;
    }
    let off: Vec<_> = count.iter().filter(|(_, n)| **n != 0).take(3).collect();
    assert!(
        off.is_empty(),
        "{context}: {} lines read back vs {} produced; first differences (produced - read): {off:?}",
        got.len(),
        want.len()
    );
}

/// Delivery reports, so a test knows every line really is in the topic.
#[derive(Default)]
struct Deliveries {
    ok: AtomicUsize,
    failed: Mutex<Vec<String>>,
    /// Per partition, one past the highest offset the broker acknowledged.
    ends: Mutex<BTreeMap<i32, i64>>,
}

struct Counting(Arc<Deliveries>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                self.0.ok.fetch_add(1, Ordering::Relaxed);
                let mut ends = self.0.ends.lock().unwrap();
                let end = ends.entry(m.partition()).or_default();
                *end = (*end).max(m.offset() + 1);
            }
            Err((e, _)) => self.0.failed.lock().unwrap().push(e.to_string()),
        }
    }
}

/// A TCP proxy in front of the broker that can be taken down (every live connection cut, and
/// every new one closed as soon as it is accepted) and brought up again. It holds its listener
/// from start to drop, so its port is never free for anything else to take.
struct Proxy {
    open: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy from `listener` to `target`, down until [`Proxy::up`].
    fn start(listener: TcpListener, target: SocketAddr) -> Proxy {
        listener.set_nonblocking(true).unwrap();
        let open = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let acceptor = {
            let (open, stop, live) = (open.clone(), stop.clone(), live.clone());
            std::thread::spawn(move || {
                // Polls so that dropping the proxy can stop it.
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            // Under the lock `down` takes, so no connection outlives an outage.
                            let mut streams = live.lock().unwrap();
                            let upstream = open
                                .load(Ordering::SeqCst)
                                .then(|| TcpStream::connect(target).ok())
                                .flatten();
                            let Some(upstream) = upstream else {
                                // Down: the connection is cut before a byte passes.
                                let _ = client.shutdown(Shutdown::Both);
                                continue;
                            };
                            client.set_nonblocking(false).unwrap();
                            streams.push(client.try_clone().unwrap());
                            streams.push(upstream.try_clone().unwrap());
                            pipe(client.try_clone().unwrap(), upstream.try_clone().unwrap());
                            pipe(upstream, client);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Proxy {
            open,
            stop,
            live,
            acceptor: Some(acceptor),
        }
    }

    fn up(&mut self) {
        assert!(
            !self.open.swap(true, Ordering::SeqCst),
            "the proxy is already up"
        );
    }

    fn down(&mut self) {
        let mut live = self.live.lock().unwrap();
        self.open.store(false, Ordering::SeqCst);
        for stream in live.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.down();
    }
}

/// Copies `from` to `to` on a thread until either side closes, then closes both ways.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
