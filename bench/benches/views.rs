//! Each view's incremental update cost per event.
//!
//! A one-worker dataflow holds only one view and the operators it needs
//! ([`weir_bench::views_dataflow`] over [`weir::dataflow::views::build_selected`], picking
//! it by [`ViewId`]) over a base of
//! 50,000 admitted generated events; each iteration then applies a batch of 1,000 further
//! events and waits until the view has absorbed it. Batches are inserted and later retracted
//! in turn, so the state stays between 50,000 and 70,000 events. Throughput lines give
//! events/s of updates for that view alone.
//!
//! Run with `cargo bench -p weir-bench --bench views`.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use weir::admit::Admission;
use weir::dataflow::views::Time;
use weir::event::Event;
use weir::plugins::PluginFactory;
use weir::plugins::native::NativePlugins;
use weir::row::ViewId;
use weir::source::generator::{GenConfig, Generator};

const BASE: usize = 50_000;
const BATCH: usize = 1_000;
const BATCHES: usize = 20;

fn admitted(lines: usize) -> Vec<Event> {
    let input: Vec<String> = Generator::new(GenConfig {
        seed: 11,
        tenants: 4,
        start_ms: GenConfig::DEFAULT_START_MS,
    })
    .take(lines)
    .collect();
    Admission::new(NativePlugins.transforms())
        .admit(&input, 0, false)
        .events
}

/// Time for `iters` batches through a dataflow of `view` alone, base loaded untimed.
fn measure(view: ViewId, base: &[Event], batches: &[Vec<Event>], iters: u64) -> Duration {
    let (base, batches) = (base.to_vec(), batches.to_vec());
    timely::execute_directly(move |worker| {
        let (mut input, mut deploy, probe) =
            weir_bench::views_dataflow(worker, &Default::default(), |v| v == view);
        for event in base {
            input.insert((0, event));
        }
        let mut time: Time = 0;
        // Closes the next logical time and runs the worker until the view has absorbed it.
        macro_rules! settle {
            () => {
                time += 1;
                input.advance_to(time);
                input.flush();
                deploy.advance_to(time);
                deploy.flush();
                while probe.less_than(input.time()) {
                    worker.step();
                }
            };
        }
        settle!();
        let started = Instant::now();
        for i in 0..iters as usize {
            let round = i / batches.len();
            let diff = if round % 2 == 0 { 1 } else { -1 };
            for event in &batches[i % batches.len()] {
                input.update((0, event.clone()), diff);
            }
            settle!();
        }
        started.elapsed()
    })
}

fn view_updates(c: &mut Criterion) {
    let events = admitted(BASE + BATCH * BATCHES + 2_000);
    let (base, rest) = events.split_at(BASE);
    let batches: Vec<Vec<Event>> = rest
        .chunks_exact(BATCH)
        .take(BATCHES)
        .map(<[Event]>::to_vec)
        .collect();
    let mut group = c.benchmark_group("view_update");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    // The six views of SPEC §2, as `weir::row::VIEWS` lists them.
    for view in ViewId::VIEWS {
        group.bench_function(format!("{} (batch of 1,000 on 50k)", view.name()), |b| {
            b.iter_custom(|iters| measure(view, base, &batches, iters))
        });
    }
    group.finish();
}

criterion_group!(benches, view_updates);
criterion_main!(benches);
