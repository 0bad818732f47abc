//! Inputs shared by weir's benchmarks: realistic batches built from the built-in generator,
//! and the allocator the `weir` binary ships with, so that every bench linking this crate
//! measures allocation as it happens in production; and reader load on the gRPC API
//! ([`readers`]).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod readers;

use weir::admit::decode::decode;
use weir::event::{Body, Event};
use weir::plugins::{Features, RuleEvent, RuleEventKind, RuleInput};
use weir::source::generator::{GenConfig, Generator};

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
