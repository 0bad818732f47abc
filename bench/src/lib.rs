//! Inputs shared by weir's benchmarks: realistic batches built from the built-in generator,
//! and the allocator the `weir` binary ships with, so that every bench linking this crate
//! measures allocation as it happens in production; and reader load on the gRPC API
//! ([`readers`]).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod readers;

use std::sync::Arc;

use differential_dataflow::input::{Input, InputSession};
use timely::dataflow::ProbeHandle;
use timely::dataflow::operators::probe::Probe;
use weir::admit::decode::decode;
use weir::dataflow::views::{self, Diff, Retention, Time};
use weir::event::{Body, Event};
use weir::plugins::native::NativePlugins;
use weir::plugins::registry::{Deployment, Mode, RuleRegistry};
use weir::plugins::{Features, PluginFactory, RuleEvent, RuleEventKind, RuleInput};
use weir::row::ViewId;
use weir::source::generator::{GenConfig, Generator};

/// A worker's dataflow of the views `want` picks: the input of admitted events, the input of
/// rule deployments (the native rules deployed at time 0; keep it open), and a probe that
/// has passed a time once every picked view has absorbed it.
pub type ViewsDataflow = (
    InputSession<Time, (Time, Event), Diff>,
    InputSession<Time, Deployment, Diff>,
    ProbeHandle<Time>,
);

/// Builds [`ViewsDataflow`] on `worker` with `retention`.
pub fn views_dataflow(
    worker: &mut timely::worker::Worker,
    retention: &Retention,
    want: impl Fn(ViewId) -> bool,
) -> ViewsDataflow {
    let registry = Arc::new(RuleRegistry::default());
    let rules = registry.clone();
    let probe = ProbeHandle::new();
    let (input, mut deploy) = worker.dataflow::<Time, _, _>(|scope| {
        let (input, events) = scope.new_collection::<(Time, Event), Diff>();
        let (deploy, deployments) = scope.new_collection();
        let streams = views::build_selected(events, deployments, rules, retention, &want);
        for (view, updates) in streams.views {
            if want(view) {
                updates.inner.probe_with(&probe);
            }
        }
        (input, deploy)
    });
    for spec in NativePlugins.rule_makers() {
        let id = registry.register(spec);
        for (deployment, diff) in registry.deploy(id, Mode::Retroactive, 0, None).unwrap() {
            deploy.update(deployment, diff);
        }
    }
    (input, deploy, probe)
}

/// The first `n` valid events of type `kind` the generator makes for `seed`.
pub fn events_of(kind: &str, n: usize, seed: u64) -> Vec<Event> {
    Generator::new(GenConfig {
        seed,
        tenants: 4,
        start_ms: GenConfig::DEFAULT_START_MS,
    })
    .filter_map(|line| decode(line.as_bytes()).ok())
    .filter(|e| e.body.type_name() == kind)
    .take(n)
    .collect()
}

/// `n` order rule inputs with varied features, around the velocity threshold.
pub fn order_inputs(n: usize) -> Vec<RuleInput> {
    events_of("order_placed", n, 7)
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let Body::OrderPlaced(o) = e.body else {
                unreachable!("filtered to orders")
            };
            RuleInput {
                event: RuleEvent {
                    kind: RuleEventKind::Order,
                    tenant_id: e.tenant_id,
                    event_id: e.event_id,
                    event_time_ms: e.event_time_ms,
                    user_id: o.user_id,
                    order_id: o.order_id,
                    payment_id: String::new(),
                    amount_cents: o.total_cents,
                    status: String::new(),
                    device_id: o.device_id,
                    card_fingerprint: None,
                },
                features: Features {
                    user_orders_10m: (i % 7) as u32,
                    user_prior_orders: (i % 5) as u32,
                    user_prior_total_cents: 10_000 * (i % 5) as i64,
                    device_failed_cards_5m: 0,
                },
            }
        })
        .collect()
}
