//! The serving path: one gRPC point query (a `gmv_minute` row by its full key) and one
//! tenant-prefix query (`sessions` of a user), over a loopback socket, against the views of
//! 100,000 generated events; and the same point read straight from the store, which is the
//! part of the round trip that is weir's own.
//!
//! Run with `cargo bench -p weir-bench --bench serving`.

use std::sync::Arc;
use weir_bench as _; // the shipped allocator

use criterion::{Criterion, criterion_group, criterion_main};
use weir::plugins::registry::RuleRegistry;
use weir::row::{Cell, GMV_MINUTE, SESSIONS, view_schema};
use weir::run::{RunConfig, run_bounded};
use weir::serve::api::to_value;
use weir::serve::client::bearer;
use weir::serve::proto::{QueryRequest, views_client::ViewsClient};
use weir::serve::{Caller, ServeConfig, Server, Tokens};
use weir::source::generator::{GenConfig, Generator};

const TOKEN: &str = "bench-admin";

fn point_queries(c: &mut Criterion) {
    let input: Vec<String> = Generator::new(GenConfig {
        seed: 5,
        tenants: 4,
        start_ms: GenConfig::DEFAULT_START_MS,
    })
    .take(100_000)
    .collect();
    let result = run_bounded(&RunConfig::native(), input.join("\n").as_bytes()).expect("a run");
    let store = result.store.clone();
    let (gmv, _) = view_schema(GMV_MINUTE.name).expect("a view");
    let (sessions, _) = view_schema(SESSIONS.name).expect("a view");
    let gmv_key: Vec<Cell> = store.read(|p| p.rows(gmv)[0][..3].to_vec());
    let user: Vec<Cell> = store.read(|p| p.rows(sessions)[0][..2].to_vec());
    let mut tokens = Tokens::default();
    tokens.insert(TOKEN, Caller::Admin).expect("a token");
    let config = ServeConfig {
        grpc: "127.0.0.1:0".parse().expect("an address"),
        metrics: None,
        tls: None,
        tokens,
        max_subscriptions_per_token: weir::serve::api::DEFAULT_MAX_SUBSCRIPTIONS_PER_TOKEN,
    };
    let (server, _admin) =
        Server::start(&config, store.clone(), Arc::new(RuleRegistry::default())).expect("serve");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut client = runtime.block_on(async {
        let channel =
            tonic::transport::Channel::from_shared(format!("http://{}", server.grpc_addr()))
                .expect("an endpoint")
                .connect()
                .await
                .expect("connect");
        ViewsClient::new(channel)
    });
    let request = |view: &str, prefix: &[Cell]| {
        let query = QueryRequest {
            view: view.into(),
            key_prefix: prefix.iter().map(to_value).collect(),
            limit: 0,
            as_of: None,
            page_token: String::new(),
        };
        bearer(query, TOKEN).expect("an ASCII token")
    };
    let mut group = c.benchmark_group("serving");
    group.bench_function("gRPC point query (gmv_minute by key)", |b| {
        b.iter(|| {
            runtime
                .block_on(client.query(request("gmv_minute", &gmv_key)))
                .expect("an answer")
        })
    });
    group.bench_function("gRPC prefix query (sessions of one user)", |b| {
        b.iter(|| {
            runtime
                .block_on(client.query(request("sessions", &user)))
                .expect("an answer")
        })
    });
    group.bench_function("store point read (no network)", |b| {
        b.iter(|| {
            store
                .query(gmv, &gmv_key, &weir::dataflow::store::Page::first(0), None)
                .expect("an answer")
        })
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, point_queries);
criterion_main!(benches);
