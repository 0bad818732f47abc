//! The end-to-end harness: JSON bytes in → decode → plugins → every view, on the default
//! (WebAssembly) plugins.
//!
//! It measures (a) the maximum sustained throughput over a bounded input, (b) at a fixed
//! input rate, the delay from an event's admission to its visibility in a published view and
//! to the visibility of the fraud alerts it raises, and the latency of gRPC point queries
//! served meanwhile, and (c) peak RSS; and, for context, the
//! batched plugin call cost against the native implementation. It writes
//! `target/bench/report.json` and `target/bench/report.md` and prints the table.
//!
//! With `--readers N` (20 unless 0 is given) it runs (a) and (b) a second time, on the same
//! input, with N more gRPC clients reading meanwhile: half page through whole views back to
//! back, half hold subscriptions on whole views (`weir_bench::readers`). The report then
//! compares throughput and freshness without and with them, and counts what the readers got.
//!
//! `cargo run --release -p weir-bench --bin e2e -- --events 2000000 --rate 10000 --seconds 30`

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir::dataflow::store::ViewStore;
use weir::plugins::PluginFactory;
use weir::plugins::native::NativePlugins;
use weir::plugins::set::WasmPlugins;
use weir::plugins::wasm::Limits;
use weir::row::{FRAUD_ALERTS, view_schema};
use weir::run::{Driver, RunConfig};
use weir::serve::{Caller, ServeConfig, Server, Tokens};
use weir::source::generator::{GenConfig, Generator};
use weir_bench::readers;

struct Args {
    events: usize,
    rate: u64,
    seconds: u64,
    workers: usize,
    out: std::path::PathBuf,
    /// Reader clients of the second pass; 0 skips it.
    readers: usize,
    /// Rows per page of the readers' full-view queries; 0 for the server's default.
    page_rows: u32,
}

fn parse_args() -> Args {
    let mut args = Args {
        events: 2_000_000,
        rate: 10_000,
        seconds: 30,
        workers: 2,
        out: "target/bench".into(),
        readers: 20,
        page_rows: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--events" => args.events = value().parse().expect("--events N"),
            "--rate" => args.rate = value().parse().expect("--rate N"),
            "--seconds" => args.seconds = value().parse().expect("--seconds N"),
            "--workers" => args.workers = value().parse().expect("--workers N"),
            "--out" => args.out = value().into(),
            "--readers" => args.readers = value().parse().expect("--readers N"),
            "--page-rows" => args.page_rows = value().parse().expect("--page-rows N"),
            other => panic!(
                "unknown flag {other} (known: --events --rate --seconds --workers --out \
                 --readers --page-rows)"
            ),
        }
    }
    args
}

fn generator(seed: u64) -> Generator {
    Generator::new(GenConfig {
        seed,
        tenants: 4,
        start_ms: GenConfig::DEFAULT_START_MS,
    })
}

/// Peak resident set size of this process, in bytes (Linux).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Events per second over the whole bounded input `lines`, epochs of 20,000 lines, with
/// `readers` reader clients on the API meanwhile (and what they did).
fn throughput(args: &Args, lines: &[String], readers: usize) -> (f64, Option<readers::Stats>) {
    let config = RunConfig {
        workers: args.workers,
        ..RunConfig::default()
    };
    let store = Arc::new(ViewStore::default());
    let started = Instant::now();
    let mut runner = Driver::start(&config, store.clone()).expect("start");
    // Without readers there is no server either, as before the readers existed.
    let load = (readers > 0).then(|| {
        let serve = serve_config(readers);
        let (server, _admin) =
            Server::start(&serve, store, runner.pipeline().rules().clone()).expect("serve");
        let load = readers::Load::start(server.grpc_addr(), readers, args.page_rows);
        (server, load)
    });
    for chunk in lines.chunks(4_096) {
        runner.feed(chunk);
    }
    runner.finish().unwrap();
    let events_per_sec = lines.len() as f64 / started.elapsed().as_secs_f64();
    let stats = load.map(|(server, load)| {
        let stats = load.stop();
        drop(server);
        stats
    });
    (events_per_sec, stats)
}

/// The API's tokens: the point-query client's and one per reader.
fn serve_config(readers: usize) -> ServeConfig {
    let mut tokens = Tokens::default();
    tokens.insert(BENCH_TOKEN, Caller::Admin).expect("a token");
    for i in 0..readers {
        tokens
            .insert(&readers::token(i), Caller::Admin)
            .expect("a token");
    }
    ServeConfig {
        grpc: "127.0.0.1:0".parse().expect("an address"),
        metrics: None,
        tls: None,
        tokens,
        max_subscriptions_per_token: weir::serve::api::DEFAULT_MAX_SUBSCRIPTIONS_PER_TOKEN,
    }
}

/// Percentiles of a weighted sample, in milliseconds.
fn percentiles(mut sample: Vec<(f64, u64)>) -> BTreeMap<&'static str, f64> {
    sample.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: u64 = sample.iter().map(|(_, w)| w).sum();
    let at = |q: f64| {
        let target = (q * total as f64).ceil() as u64;
        let mut seen = 0;
        for (v, w) in &sample {
            seen += w;
            if seen >= target.max(1) {
                return *v;
            }
        }
        sample.last().map_or(0.0, |s| s.0)
    };
    BTreeMap::from([("p50", at(0.5)), ("p99", at(0.99)), ("max", at(1.0))])
}

/// At a fixed rate: admission → publication delays, for every event and for the events of
/// logical times whose publication changed `fraud_alerts`.
/// Percentiles (ms) by name.
type Percentiles = BTreeMap<&'static str, f64>;

/// What the fixed-rate phase measures.
struct Latency {
    visible: Percentiles,
    alerts: Percentiles,
    /// Events whose delays were measured.
    events: u64,
    queries: Percentiles,
    query_count: usize,
    /// What the reader clients did, when there were any.
    load: Option<readers::Stats>,
}

fn latency(args: &Args, readers: usize) -> Latency {
    let store = Arc::new(ViewStore::default());
    let (alerts_view, _) = view_schema(FRAUD_ALERTS.name).expect("a view");
    // Publication wall times and whether fraud_alerts changed, by logical time.
    let published: Arc<Mutex<Vec<(u64, Instant, bool)>>> = Arc::default();
    let sink = published.clone();
    let mut last_alerts = 0usize;
    store.observe(move |p| {
        let alerts = p.view(alerts_view).len();
        let changed = alerts != last_alerts;
        last_alerts = alerts;
        sink.lock()
            .unwrap()
            .push((p.as_of.unwrap_or(0), Instant::now(), changed));
    });
    let tick = Duration::from_millis(10);
    let per_tick = (args.rate as usize / 100).max(1);
    let config = RunConfig {
        workers: args.workers,
        epoch_lines: per_tick,
        ..RunConfig::default()
    };
    let mut runner = Driver::start(&config, store.clone()).expect("start");
    let serve = serve_config(readers);
    let (server, _admin) =
        Server::start(&serve, store, runner.pipeline().rules().clone()).expect("serve");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let queries = {
        let (addr, stop) = (server.grpc_addr(), stop.clone());
        std::thread::spawn(move || query_load(addr, &stop))
    };
    let load =
        (readers > 0).then(|| readers::Load::start(server.grpc_addr(), readers, args.page_rows));
    let mut source = generator(2);
    // (logical time, admission instant, events) of each tick's input.
    let mut admitted: Vec<(u64, Instant, usize)> = Vec::new();
    let started = Instant::now();
    let mut next = started;
    while started.elapsed() < Duration::from_secs(args.seconds) {
        let lines: Vec<String> = source.by_ref().take(per_tick).collect();
        let epoch = runner.pipeline().epoch();
        admitted.push((epoch, Instant::now(), lines.len()));
        runner.feed(&lines);
        next += tick;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let queries = queries.join().expect("the query client");
    let load = load.map(readers::Load::stop);
    drop(server);
    runner.finish().unwrap();
    let published = published.lock().unwrap();
    // A time is visible at the first publication at or after it.
    let visible = |epoch: u64| {
        let i = published.partition_point(|(t, _, _)| *t < epoch);
        published.get(i).map(|(_, at, _)| *at)
    };
    // The logical times covered by a publication that changed fraud_alerts.
    let mut alert_times = std::collections::BTreeSet::new();
    let mut previous: Option<u64> = None;
    for (t, _, changed) in published.iter() {
        if *changed {
            let from = previous.map_or(0, |p| p + 1);
            alert_times.extend(from..=*t);
        }
        previous = Some(*t);
    }
    let mut all = Vec::new();
    let mut alerts = Vec::new();
    for (epoch, at, n) in admitted {
        let Some(seen) = visible(epoch) else { continue };
        let ms = seen.saturating_duration_since(at).as_secs_f64() * 1e3;
        all.push((ms, n as u64));
        if alert_times.contains(&epoch) {
            alerts.push((ms, n as u64));
        }
    }
    let events = all.iter().map(|(_, n)| n).sum();
    Latency {
        visible: percentiles(all),
        alerts: percentiles(alerts),
        events,
        query_count: queries.len(),
        queries: percentiles(queries.into_iter().map(|ms| (ms, 1)).collect()),
        load,
    }
}

const BENCH_TOKEN: &str = "bench-admin";

/// A client querying single `gmv_minute` rows by their full key over gRPC, 200 times a
/// second, while the pipeline ingests: each call's round-trip time in milliseconds.
fn query_load(addr: std::net::SocketAddr, stop: &std::sync::atomic::AtomicBool) -> Vec<f64> {
    use weir::serve::proto::{QueryRequest, views_client::ViewsClient};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .expect("an endpoint")
            .connect()
            .await
            .expect("connect");
        let mut client = ViewsClient::new(channel);
        let request = |message: QueryRequest| {
            weir::serve::client::bearer(message, BENCH_TOKEN).expect("an ASCII token")
        };
        let mut keys: Vec<Vec<weir::serve::proto::Value>> = Vec::new();
        let mut times = Vec::new();
        let mut i = 0usize;
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            tick.tick().await;
            if i.is_multiple_of(200) {
                // The keys present now: the point queries below ask for one of them.
                let all = QueryRequest {
                    view: "gmv_minute".into(),
                    key_prefix: vec![],
                    limit: 0,
                    as_of: None,
                    page_token: String::new(),
                };
                if let Ok(answer) = client.query(request(all)).await {
                    keys = answer
                        .into_inner()
                        .rows
                        .into_iter()
                        .map(|row| row.values.into_iter().take(3).collect())
                        .collect();
                }
            }
            i += 1;
            if keys.is_empty() {
                continue;
            }
            let key = keys[i * 7919 % keys.len()].clone();
            let point = QueryRequest {
                view: "gmv_minute".into(),
                key_prefix: key,
                limit: 0,
                as_of: None,
                page_token: String::new(),
            };
            let started = Instant::now();
            let answer = client.query(request(point)).await;
            let ms = started.elapsed().as_secs_f64() * 1e3;
            if answer.is_ok_and(|a| a.get_ref().rows.len() == 1) {
                times.push(ms);
            }
        }
        times
    })
}

/// Median time of applying `transform` to each of `runs` copies of `batch` (copies made
/// before timing).
fn median(
    runs: usize,
    batch: &[weir::event::Event],
    transform: &mut dyn weir::plugins::Transform,
) -> Duration {
    let copies: Vec<Vec<weir::event::Event>> = (0..runs).map(|_| batch.to_vec()).collect();
    let mut times: Vec<Duration> = copies
        .into_iter()
        .map(|copy| {
            let t = Instant::now();
            transform.apply(copy);
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

/// Batched plugin cost (1,000 payments through normalize-payments), wasm over native.
fn plugin_ratio() -> (f64, f64) {
    let payments = weir_bench::events_of("payment", 1_000, 3);
    let mut native = NativePlugins.transforms().remove(0);
    let mut set = WasmPlugins::new(Limits::default()).expect("engine");
    set.add_embedded("normalize-payments", None)
        .expect("plugin");
    let mut wasm = set.transforms().remove(0);
    let n = median(31, &payments, native.as_mut());
    let w = median(31, &payments, wasm.as_mut());
    (n.as_secs_f64() * 1e6, w.as_secs_f64() * 1e6)
}

/// One pass of the bounded run and the fixed-rate run.
struct Pass {
    events_per_sec: f64,
    mb_per_sec: f64,
    bounded_load: Option<readers::Stats>,
    latency: Latency,
}

fn load_json(stats: &readers::Stats) -> serde_json::Value {
    serde_json::json!({
        "full_view_queries": stats.queries,
        "pages": stats.pages,
        "rows_read": stats.rows,
        "full_view_query_ms": percentiles(stats.query_ms.iter().map(|ms| (*ms, 1)).collect()),
        "refused": stats.refused,
        "refused_before_first_publication": stats.unpublished,
        "subscription_snapshots": stats.snapshots,
        "snapshot_rows": stats.snapshot_rows,
        "subscription_updates": stats.updates,
        "change_messages": stats.change_messages,
        "resubscribes": stats.resubscribes,
        "fell_behind": stats.fell_behind,
    })
}

/// The comparison of a pass without readers and one with them, and what the readers did in
/// each of its two runs.
fn readers_table(args: &Args, base: &Pass, loaded: &Pass) -> String {
    let (Some(bounded), Some(fixed)) = (&loaded.bounded_load, &loaded.latency.load) else {
        return String::new();
    };
    let ms = |p: &Percentiles, digits: usize| {
        format!(
            "{:.digits$} / {:.digits$} / {:.digits$} ms",
            p["p50"], p["p99"], p["max"]
        )
    };
    let both = |f: &dyn Fn(&Pass) -> String| format!("{} | {}", f(base), f(loaded));
    let each = |f: &dyn Fn(&readers::Stats) -> String| format!("{} | {}", f(bounded), f(fixed));
    let page = match args.page_rows {
        0 => "the server's default page".to_owned(),
        n => format!("pages of {n} rows"),
    };
    format!(
        "\n**Reader load**: {} clients, each on its own connection: {} page through whole views \
         of {} back to back ({page}), {} hold subscriptions on them.\n\n\
         | metric | without readers | with readers |\n|---|---|---|\n\
         | throughput, JSON in → all views and plugins | {} |\n\
         | admitted → visible in a view at {} events/s, p50 / p99 / max | {} |\n\
         | admitted → fraud alert visible, p50 / p99 / max | {} |\n\
         | gRPC point query, p50 / p99 / max | {} |\n\n\
         | what the readers did | bounded run | fixed-rate run |\n|---|---|---|\n\
         | full-view queries completed (pages) | {} |\n\
         | rows read by queries | {} |\n\
         | full-view query, p50 / p99 / max | {} |\n\
         | subscription updates received (messages) | {} |\n\
         | subscription snapshots (rows) | {} |\n\
         | resubscribes (of them fell behind) | {} |\n\
         | calls refused (of them before the first publication) | {} |\n",
        args.readers,
        bounded.queriers,
        readers::VIEWS.join(", "),
        bounded.subscribers,
        both(&|p| format!(
            "{:.0} events/s ({:.1} MB/s)",
            p.events_per_sec, p.mb_per_sec
        )),
        args.rate,
        both(&|p| ms(&p.latency.visible, 1)),
        both(&|p| ms(&p.latency.alerts, 1)),
        both(&|p| format!(
            "{} ({} queries)",
            ms(&p.latency.queries, 2),
            p.latency.query_count
        )),
        each(&|s| format!("{} ({})", s.queries, s.pages)),
        each(&|s| s.rows.to_string()),
        each(&|s| ms(
            &percentiles(s.query_ms.iter().map(|ms| (*ms, 1)).collect()),
            1
        )),
        each(&|s| format!("{} ({})", s.updates, s.change_messages)),
        each(&|s| format!("{} ({})", s.snapshots, s.snapshot_rows)),
        each(&|s| format!("{} ({})", s.resubscribes, s.fell_behind)),
        each(&|s| format!("{} ({})", s.refused, s.unpublished)),
    )
}

fn main() {
    let args = parse_args();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        );
    let lines: Vec<String> = generator(1).take(args.events).collect();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let passes: Vec<usize> = if args.readers > 0 {
        vec![0, args.readers]
    } else {
        vec![0]
    };
    let with = |readers: usize| match readers {
        0 => String::new(),
        n => format!(" with {n} readers"),
    };
    // Every pass reads the same input, the one without readers first.
    let bounded: Vec<_> = passes
        .iter()
        .map(|&readers| {
            eprintln!(
                "e2e: throughput over {} events on {} workers{}…",
                args.events,
                args.workers,
                with(readers)
            );
            throughput(&args, &lines, readers)
        })
        .collect();
    // As before the reader passes existed, the input is not held through the fixed-rate runs.
    drop(lines);
    let mut passes: Vec<Pass> = passes
        .iter()
        .zip(bounded)
        .map(|(&readers, (events_per_sec, bounded_load))| {
            eprintln!(
                "e2e: latency at {} events/s for {} s{}…",
                args.rate,
                args.seconds,
                with(readers)
            );
            Pass {
                events_per_sec,
                mb_per_sec: bytes as f64 / (args.events as f64 / events_per_sec) / 1e6,
                bounded_load,
                latency: latency(&args, readers),
            }
        })
        .collect();
    let loaded = (passes.len() > 1).then(|| passes.remove(1));
    let base = passes.remove(0);
    let (native_us, wasm_us) = plugin_ratio();
    let rss = peak_rss().unwrap_or(0);
    let Pass {
        events_per_sec,
        mb_per_sec,
        latency:
            Latency {
                visible,
                alerts,
                events: measured,
                queries,
                query_count,
                load: _,
            },
        ..
    } = &base;
    let readers_json = loaded.as_ref().map(|p| {
        let load = |stats: &Option<readers::Stats>| stats.as_ref().map(load_json);
        let queriers = p.bounded_load.as_ref().map_or(0, |s| s.queriers);
        serde_json::json!({
            "clients": args.readers,
            "queriers": queriers,
            "subscribers": args.readers - queriers,
            "views": readers::VIEWS,
            "page_rows": args.page_rows,
            "throughput": { "events_per_sec": p.events_per_sec, "mb_per_sec": p.mb_per_sec,
                            "readers": load(&p.bounded_load) },
            "latency_ms": { "events": p.latency.events,
                            "admitted_to_visible": p.latency.visible,
                            "admitted_to_alert_visible": p.latency.alerts,
                            "grpc_point_query": p.latency.queries,
                            "grpc_point_queries": p.latency.query_count,
                            "readers": load(&p.latency.load) },
        })
    });
    let report = serde_json::json!({
        "commit": commit,
        "workers": args.workers,
        "throughput": { "events": args.events, "events_per_sec": events_per_sec, "mb_per_sec": mb_per_sec },
        "latency_ms": { "rate": args.rate, "seconds": args.seconds, "events": measured,
                        "admitted_to_visible": visible, "admitted_to_alert_visible": alerts,
                        "grpc_point_query": queries, "grpc_point_queries": query_count },
        "with_readers": readers_json,
        "peak_rss_bytes": rss,
        "plugin_batch_1000_us": { "native": native_us, "wasm": wasm_us, "ratio": wasm_us / native_us },
    });
    let mut table = format!(
        "| metric | value | SPEC §6 target |\n|---|---|---|\n\
         | throughput, JSON in → all views and plugins ({} workers) | {:.0} events/s ({:.1} MB/s) | ≥ 250,000 events/s |\n\
         | admitted → visible in a view at {} events/s, p50 / p99 / max | {:.1} / {:.1} / {:.1} ms | p99 ≤ 100 ms |\n\
         | admitted → fraud alert visible, p50 / p99 / max | {:.1} / {:.1} / {:.1} ms | p99 ≤ 50 ms |\n\
         | gRPC point query under that load, p50 / p99 / max ({} queries) | {:.2} / {:.2} / {:.2} ms | p99 ≤ 5 ms |\n\
         | plugin batch (1,000 payments), wasm vs native | {:.0} µs vs {:.0} µs ({:.1}×) | ≤ 1.5× |\n\
         | peak RSS | {:.0} MiB | bounded by retention |\n\
         | commit | {} | |\n",
        args.workers,
        events_per_sec,
        mb_per_sec,
        args.rate,
        visible["p50"],
        visible["p99"],
        visible["max"],
        alerts["p50"],
        alerts["p99"],
        alerts["max"],
        query_count,
        queries["p50"],
        queries["p99"],
        queries["max"],
        wasm_us,
        native_us,
        wasm_us / native_us,
        rss as f64 / (1 << 20) as f64,
        commit,
    );
    if let Some(loaded) = &loaded {
        table.push_str(&readers_table(&args, &base, loaded));
    }
    std::fs::create_dir_all(&args.out).expect("create the report directory");
    std::fs::write(
        args.out.join("report.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .expect("write report.json");
    std::fs::write(args.out.join("report.md"), &table).expect("write report.md");
    println!("{table}");
}
