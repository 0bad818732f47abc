//! The footprint harness: how much memory each view's dataflow state grows by per million
//! events, with the lateness and cold tier a run would have, and nothing else in the process
//! (no admission history, store, landing or server).
//!
//! A one-worker dataflow holds one view (`--view NAME`, or every view without it) over the
//! generator's events, admitted with the lateness rule (`--lateness-ms`, 10 minutes unless
//! told) 2,000 lines per logical time; RSS is read from `/proc/self/status` every 500,000
//! events, and the growth after the first third of `--events` (3,000,000 unless told) is the
//! figure. `--idle-ms N` puts entities idle for N ms of event time in a cold tier under
//! `--cold DIR` (the temporary directory unless told). One view per process, so RSS is that
//! view's alone:
//!
//! `for v in gmv_minute payment_status inventory sessions conversion_hour fraud_alerts; do
//!    cargo run --release -p weir-bench --bin footprint -- --view $v; done`

use std::path::PathBuf;

use weir::admit::Admission;
use weir::dataflow::views::cold::ColdTier;
use weir::dataflow::views::{Retention, Time};
use weir::plugins::PluginFactory;
use weir::plugins::native::NativePlugins;
use weir::row::ViewId;
use weir::source::generator::{GenConfig, Generator};

const LINES_PER_TIME: usize = 2_000;
const REPORT_EVERY: usize = 500_000;

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let (mut view, mut events, mut lateness, mut idle, mut cold) =
        (None, 3_000_000usize, 600_000i64, None, None::<PathBuf>);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| panic!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--view" => {
                let name = value();
                let found = ViewId::VIEWS.into_iter().find(|v| v.name() == name);
                view = Some(found.unwrap_or_else(|| panic!("--view {name}: no such view")));
            }
            "--events" => events = value().parse().expect("--events N"),
            "--lateness-ms" => lateness = value().parse().expect("--lateness-ms N"),
            "--idle-ms" => idle = Some(value().parse().expect("--idle-ms N")),
            "--cold" => cold = Some(value().into()),
            other => panic!("unknown flag {other}"),
        }
    }
    let tier = idle.map(|idle| {
        let dir = cold.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("weir-footprint-{}", std::process::id()))
        });
        ColdTier::prepare(dir, idle).unwrap_or_else(|e| panic!("{e}"))
    });
    let name = view.map_or("every view", ViewId::name);
    let retention = Retention {
        lateness: Some(lateness),
        cold: tier.clone(),
    };
    timely::execute_directly(move |worker| {
        let (mut input, mut deploy, probe) =
            weir_bench::views_dataflow(worker, &retention, |v| view.is_none_or(|w| w == v));
        let mut generator = Generator::new(GenConfig {
            seed: 7,
            tenants: 4,
            start_ms: GenConfig::DEFAULT_START_MS,
        });
        let mut admission = Admission::new(NativePlugins.transforms());
        admission.set_lateness(Some(lateness));
        let (mut time, mut fed): (Time, usize) = (1, 0);
        let mut third = (0, rss_mb());
        while fed < events {
            let lines: Vec<String> = generator.by_ref().take(LINES_PER_TIME).collect();
            fed += lines.len();
            for event in admission.admit(&lines, time, false).events {
                input.insert((time, event));
            }
            time += 1;
            input.advance_to(time);
            input.flush();
            deploy.advance_to(time);
            deploy.flush();
            while probe.less_than(input.time()) {
                worker.step();
            }
            if fed.is_multiple_of(REPORT_EVERY) {
                let rss = rss_mb();
                eprintln!("{name}: {fed} events, RSS {rss:.0} MB");
                if fed <= events / 3 {
                    third = (fed, rss);
                }
            }
        }
        let rss = rss_mb();
        let growth = (rss - third.1) / ((fed - third.0) as f64 / 1e6);
        let cold = tier.as_ref().map_or(String::new(), |t| {
            format!(
                "; {} entities went cold, {} came back",
                t.moved(),
                t.revived()
            )
        });
        println!(
            "{name}: {growth:.1} MB per million events after {}; {rss:.0} MB at {fed}{cold}",
            third.0
        );
    });
}
