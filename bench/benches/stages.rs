//! Per-stage costs: decode + validate, admission (dedup and the default transforms), a whole
//! bounded run through every view (admission included), and Parquet output.
//!
//! Run with `cargo bench -p weir-bench --bench stages`. Throughput lines give events/s
//! (elements) or MB/s (bytes) for the stage alone.

use std::sync::Arc;
use weir_bench as _; // the shipped allocator

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use weir::admit::Admission;
use weir::admit::decode::decode;
use weir::dataflow::store::ViewStore;
use weir::output::encode::write_view;
use weir::row::{SESSIONS, ViewId};
use weir::run::{Driver, RunConfig};
use weir::source::generator::{GenConfig, Generator};

fn lines(n: usize) -> Vec<String> {
    Generator::new(GenConfig {
        seed: 9,
        tenants: 4,
        start_ms: GenConfig::DEFAULT_START_MS,
    })
    .take(n)
    .collect()
}

fn decode_validate(c: &mut Criterion) {
    let input = lines(10_000);
    let bytes: usize = input.iter().map(String::len).sum();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("10k lines (bytes)", |b| {
        b.iter(|| {
            input
                .iter()
                .filter(|l| decode(l.as_bytes()).is_ok())
                .count()
        })
    });
    group.throughput(Throughput::Elements(input.len() as u64));
    group.bench_function("10k lines (events)", |b| {
        b.iter(|| {
            input
                .iter()
                .filter(|l| decode(l.as_bytes()).is_ok())
                .count()
        })
    });
    group.finish();
}

fn admission(c: &mut Criterion) {
    let input = lines(10_000);
    let mut group = c.benchmark_group("admission");
    group.throughput(Throughput::Elements(input.len() as u64));
    let hour = Some(3_600_000);
    for (name, config, lateness) in [
        ("native", RunConfig::native(), None),
        ("wasm", RunConfig::default(), None),
        // SPEC §2.7's default: the watermarks and the times dedup keeps.
        ("native, lateness 1h", RunConfig::native(), hour),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let mut admission = Admission::new(config.plugins.transforms());
                    admission.set_lateness(lateness);
                    admission
                },
                |mut admission| admission.admit(&input, 0, false).events.len(),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn views(c: &mut Criterion) {
    let input = lines(50_000);
    let mut group = c.benchmark_group("bounded_run");
    group.sample_size(10);
    group.throughput(Throughput::Elements(input.len() as u64));
    for workers in [1, 2] {
        group.bench_function(
            format!("50k events, native plugins, {workers} workers"),
            |b| {
                b.iter(|| {
                    let config = RunConfig {
                        workers,
                        ..RunConfig::native()
                    };
                    let mut runner =
                        Driver::start(&config, Arc::new(ViewStore::default())).unwrap();
                    runner.feed(&input);
                    runner.finish().unwrap().stats.admitted
                })
            },
        );
    }
    group.finish();
}

fn parquet(c: &mut Criterion) {
    let input = lines(50_000);
    let mut runner = Driver::start(&RunConfig::native(), Arc::new(ViewStore::default())).unwrap();
    runner.feed(&input);
    let result = runner.finish().unwrap();
    let rows = result.store.read(|p| p.rows(ViewId::Sessions));
    let dir = std::env::temp_dir().join("weir-bench-parquet");
    let path = dir.join("sessions.parquet");
    write_view(&path, &SESSIONS, &rows, None).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let mut group = c.benchmark_group("parquet");
    group.throughput(Throughput::Bytes(size));
    group.bench_function(
        format!("sessions view, {} rows (file bytes)", rows.len()),
        |b| b.iter(|| write_view(&path, &SESSIONS, &rows, None).unwrap()),
    );
    group.finish();
}

criterion_group!(benches, decode_validate, admission, views, parquet);
criterion_main!(benches);
