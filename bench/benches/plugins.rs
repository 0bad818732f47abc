//! Plugin call cost: the same logic batched through the WebAssembly host and natively.
//!
//! Run with `cargo bench -p weir-bench --bench plugins`. Each benchmark processes one batch
//! of 1,000 inputs, so `time / 1000` is the cost per event; the ratio of the `wasm` and
//! `native` lines of a group is the sandbox's overhead (SPEC §6 target: at most 1.5×).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use weir::plugins::PluginFactory;
use weir::plugins::native::NativePlugins;
use weir::plugins::set::WasmPlugins;
use weir::plugins::wasm::Limits;
use weir_bench::{events_of, order_inputs};

const BATCH: usize = 1_000;

fn wasm(name: &str) -> WasmPlugins {
    let mut set = WasmPlugins::new(Limits::default()).expect("engine");
    set.add_embedded(name, None).expect("embedded plugin");
    set
}

fn normalize_payments(c: &mut Criterion) {
    let payments = events_of("payment", BATCH, 3);
    let mut group = c.benchmark_group("normalize-payments");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut native = NativePlugins.transforms().remove(0);
    group.bench_function("native", |b| {
        b.iter_batched(
            || payments.clone(),
            |batch| native.apply(batch),
            BatchSize::LargeInput,
        )
    });
    let mut sandboxed = wasm("normalize-payments").transforms().remove(0);
    group.bench_function("wasm", |b| {
        b.iter_batched(
            || payments.clone(),
            |batch| sandboxed.apply(batch),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn velocity(c: &mut Criterion) {
    let inputs = order_inputs(BATCH);
    let mut group = c.benchmark_group("velocity");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut native = NativePlugins.rules().remove(0);
    group.bench_function("native", |b| b.iter(|| native.evaluate(&inputs)));
    let mut sandboxed = wasm("velocity").rules().remove(0);
    group.bench_function("wasm", |b| b.iter(|| sandboxed.evaluate(&inputs)));
    group.finish();
}

criterion_group!(benches, normalize_payments, velocity);
criterion_main!(benches);
