//! Faults that used to stop or corrupt a run: each test is named after what it proves.
//!
//! - values at and past SPEC §1's ranges: the bound is admitted, one past it is quarantined
//!   with its field;
//! - sums past `i64::MAX` in one group end at the bound (and equal the oracle) instead of
//!   panicking a worker;
//! - a transform output that breaks the event contract, or names another tenant, fails its
//!   input as `plugin_error:<plugin>:invalid_output`;
//! - a dataflow worker that fails ends the run with an error instead of hanging it;
//! - an event a transform rejected does not claim its id: a later copy counts;
//! - only the demo run uses the demo tokens: any other run without tokens makes a private
//!   admin token (and tokens compare in constant time);
//! - a huge input line is read only up to the limit (Kafka messages likewise: a unit test in
//!   `source::kafka`);
//! - a run restarts from a checkpoint that holds a rule deployed while it ran (and one that
//!   holds a transform: `transforms`, with the fix of a transform disabled for a tenant);
//! - a landing zone that fails is retried with backoff; the checkpoint waits for it;
//! - checkpoints carry CRC-32C (unit tests in `output::checkpoint`);
//! - Kafka offsets that went backwards or aged out stop the run unless `--reset-offsets` (a
//!   unit test in `source::kafka` on rdkafka's mock cluster);
//! - landed files and checkpoints are fsynced with their directories before the call that
//!   lands them returns (unit tests in `output::landing`; the fsync itself cannot be observed
//!   from a test, what is left on disk can);
//! - an event's fuel verdict is its own: the same alone and in a batch;
//! - server reflection answers v1alpha clients (Python, Postman, older grpcurl) as well as v1.
//! - a bounded run streams its quarantine to Parquet and holds only a bounded prefix;
//!
//! and, a module each:
//!
//! - `readers` — queries come in bounded pages at one time, page tokens cannot widen a scope,
//!   subscriptions are capped per token, `weir query` pages past a gRPC message's size;
//! - `tenants` — a tenant's own rule or transform overrides the global one for it alone,
//!   health per (plugin, tenant), uploaded rules booked on the configured engine, the
//!   `[tenants] allow` list, metric labels folded into `tenant="other"`;
//! - `transforms` — transforms deployed, listed and rolled back over the API, and restored
//!   from a checkpoint;
//! - `storage` — landing and checkpoints on a real S3 server;
//! - `tls` — gRPC and metrics over TLS, and bad certificate files refused by name;
//! - `oracle` — the oracle's own SPEC §1 validation agrees with admission on every line.

mod oracle;
mod readers;
mod storage;
mod tenants;
mod tls;
mod transforms;

use std::sync::Arc;

use serde_json::{Value, json};
use weir::admit::Admission;
use weir::event::{Body, Event, MAX_CENTS, MAX_QUANTITY};
use weir::plugins::native::NativePlugins;
use weir::plugins::registry::RuleSpec;
use weir::plugins::{Alert, PluginError, PluginFactory, Rule, RuleInput, Transform};
use weir::row::{Cell, ViewId};
use weir::run::{RunConfig, RunError, run_bounded};

use crate::common::{assert_views_eq, oracle, run_lines, views_of};
use crate::oracle::Params;

const T0: &str = "2026-11-21T07:00:05Z";

fn envelope(id: &str, kind: &str, time: &str) -> Value {
    json!({"event_id": id, "tenant_id": "acme", "type": kind, "event_time": time, "schema_version": 2})
}

fn with(mut base: Value, fields: Value) -> String {
    for (k, v) in fields.as_object().unwrap() {
        base[k] = v.clone();
    }
    base.to_string()
}

fn order(id: &str, total: Value, quantity: Value, price: Value) -> String {
    with(
        envelope(id, "order_placed", T0),
        json!({"user_id": format!("u-{id}"), "order_id": format!("o-{id}"), "currency": "EUR",
               "items": [{"sku": "SKU-1", "quantity": quantity, "price_cents": price}],
               "total_cents": total}),
    )
}

fn adjustment(id: &str, delta: Value) -> String {
    with(
        envelope(id, "inventory_adjusted", T0),
        json!({"sku": "SKU-1", "delta": delta, "reason": "restock"}),
    )
}

fn payment(id: &str, status: &str, amount: Value) -> String {
    with(
        envelope(id, "payment", T0),
        json!({"user_id": "u1", "order_id": "o1", "payment_id": format!("p-{id}"),
               "provider": "stripe", "status": status, "amount_cents": amount}),
    )
}

fn reasons(lines: &[String]) -> Vec<String> {
    let mut admission = Admission::new(Vec::new());
    let admitted = admission.admit(lines, 0, false);
    let mut by_line = admitted.rejected;
    by_line.sort_by_key(|(line, _)| *line);
    by_line.into_iter().map(|(_, q)| q.reason).collect()
}

#[test]
fn values_past_the_spec_ranges_are_quarantined_and_the_bounds_admitted() {
    let max = json!(MAX_CENTS);
    let over = json!(MAX_CENTS + 1);
    let q_max = json!(MAX_QUANTITY);
    let admitted = [
        order("ok1", max.clone(), q_max.clone(), max.clone()),
        adjustment("ok2", json!(-MAX_CENTS)),
        payment("ok3", "succeeded", max.clone()),
        with(
            envelope("ok4", "page_view", "2000-01-01T00:00:00Z"),
            json!({"user_id": "u", "url": "/"}),
        ),
        with(
            envelope("ok5", "page_view", "2099-12-31T23:59:59.999Z"),
            json!({"user_id": "u", "url": "/"}),
        ),
    ];
    assert_eq!(
        reasons(&admitted),
        Vec::<String>::new(),
        "the bounds are valid"
    );
    let refused = [
        order("b1", over.clone(), json!(1), json!(1)),
        order("b2", json!(1), json!(MAX_QUANTITY + 1), json!(1)),
        order("b3", json!(1), json!(1), over.clone()),
        adjustment("b4", json!(MAX_CENTS + 1)),
        adjustment("b5", json!(-MAX_CENTS - 1)),
        payment("b6", "succeeded", over.clone()),
        with(
            envelope("b7", "page_view", "1999-12-31T23:59:59.999Z"),
            json!({"user_id": "u", "url": "/"}),
        ),
        with(
            envelope("b8", "page_view", "2100-01-01T00:00:00Z"),
            json!({"user_id": "u", "url": "/"}),
        ),
        with(
            envelope("b9", "add_to_cart", T0),
            json!({"user_id": "u", "sku": "s", "quantity": MAX_QUANTITY + 1, "price_cents": 1}),
        ),
        with(
            envelope("b10", "order_placed", T0),
            json!({"user_id": "u", "order_id": "o", "currency": "EUR", "total_cents": 1,
                   "discount_cents": MAX_CENTS + 1,
                   "items": [{"sku": "s", "quantity": 1, "price_cents": 1}]}),
        ),
    ];
    assert_eq!(
        reasons(&refused),
        [
            "invalid_value:total_cents",
            "invalid_value:items.quantity",
            "invalid_value:items.price_cents",
            "invalid_value:delta",
            "invalid_value:delta",
            "invalid_value:amount_cents",
            "invalid_value:event_time",
            "invalid_value:event_time",
            "invalid_value:quantity",
            "invalid_value:discount_cents",
        ]
    );
}

#[test]
fn sums_past_i64_in_one_group_end_at_the_bound_and_equal_the_oracle() {
    // 10,000 orders of the largest total in one minute: Σ is 10^19, past i64::MAX. So are the
    // restocks of one sku and the captured amount of one provider.
    let max = json!(MAX_CENTS);
    let mut lines = Vec::new();
    for i in 0..10_000 {
        lines.push(order(&format!("o{i}"), max.clone(), json!(1), max.clone()));
        lines.push(adjustment(&format!("a{i}"), max.clone()));
        lines.push(payment(&format!("p{i}"), "succeeded", max.clone()));
    }
    let result = run_lines(
        &lines,
        &RunConfig {
            epoch_lines: 5_000,
            ..RunConfig::native()
        },
    );
    let got = views_of(&result);
    let gmv = &got["gmv_minute"];
    assert_eq!(gmv.len(), 1);
    assert_eq!(
        gmv[0][4],
        Cell::Int(i64::MAX),
        "gmv_cents ends at the bound"
    );
    assert_eq!(gmv[0][6], Cell::Int(i64::MAX), "net_gmv_cents too");
    let inventory = &got["inventory"];
    assert_eq!(
        inventory[0][2],
        Cell::Int(i64::MAX),
        "on_hand ends at the bound"
    );
    assert_views_eq(
        &got,
        &oracle(&lines, &Params::default()).views,
        "saturated sums",
    );
}

/// A transform that turns every payment into a different, broken event.
struct Breaks {
    how: fn(&mut Event),
}

impl Transform for Breaks {
    fn name(&self) -> &str {
        "breaks"
    }
    fn apply(&mut self, events: Vec<Event>) -> Vec<Result<Vec<Event>, PluginError>> {
        events
            .into_iter()
            .map(|mut e| {
                if matches!(e.body, Body::Payment(_)) {
                    (self.how)(&mut e);
                }
                Ok(vec![e])
            })
            .collect()
    }
}

#[test]
fn a_transform_output_breaking_the_contract_fails_its_input_as_invalid_output() {
    let breakers: [fn(&mut Event); 4] = [
        |e| e.event_time_ms = i64::MIN,
        |e| {
            if let Body::Payment(p) = &mut e.body {
                p.amount_cents = i64::MAX;
            }
        },
        |e| e.tenant_id = "globex".into(),
        |e| e.event_id.clear(),
    ];
    for how in breakers {
        let mut admission = Admission::new(vec![Box::new(Breaks { how })]);
        let lines = [
            payment("p1", "succeeded", json!(100)),
            adjustment("a1", json!(5)),
        ];
        let admitted = admission.admit(&lines, 0, false);
        assert_eq!(admitted.events.len(), 1, "the adjustment passes");
        let reasons: Vec<&str> = admitted
            .rejected
            .iter()
            .map(|(_, q)| q.reason.as_str())
            .collect();
        assert_eq!(reasons, ["plugin_error:breaks:invalid_output"]);
        // Quarantined whole: the input as it came, not the broken output.
        let raw: Value = serde_json::from_str(&admitted.rejected[0].1.raw).unwrap();
        assert_eq!(raw["tenant_id"], "acme");
        assert_eq!(raw["amount_cents"], 100);
    }
}

/// The native plugins with one more rule that panics on the order it is told.
struct PanickingRule;

impl Rule for PanickingRule {
    fn name(&self) -> &str {
        "panics"
    }
    fn evaluate(&mut self, batch: &[RuleInput]) -> Vec<Result<Vec<Alert>, PluginError>> {
        if batch.iter().any(|i| i.event.order_id == "o-poison") {
            panic!("a rule bug met its input");
        }
        batch.iter().map(|_| Ok(Vec::new())).collect()
    }
}

struct WithPanickingRule;

impl PluginFactory for WithPanickingRule {
    fn transforms(&self) -> Vec<Box<dyn Transform>> {
        NativePlugins.transforms()
    }
    fn rules(&self) -> Vec<Box<dyn Rule>> {
        let mut rules = NativePlugins.rules();
        rules.push(Box::new(PanickingRule));
        rules
    }
    fn rule_makers(&self) -> Vec<RuleSpec> {
        let mut specs = NativePlugins.rule_makers();
        specs.push(RuleSpec {
            name: "panics".into(),
            hash: "panics".into(),
            tenant: None,
            maker: Arc::new(|| Box::new(PanickingRule)),
        });
        specs
    }
}

#[test]
fn a_failed_dataflow_worker_ends_the_run_with_an_error_instead_of_hanging() {
    let mut lines: Vec<String> = (0..2_000)
        .map(|i| order(&format!("e{i}"), json!(100), json!(1), json!(100)))
        .collect();
    lines.insert(1_000, order("poison", json!(100), json!(1), json!(100)));
    let config = RunConfig {
        epoch_lines: 100,
        workers: 2,
        lockstep: true,
        plugins: Arc::new(WithPanickingRule),
        lateness: None,
        cold: None,
    };
    let text = lines.join("\n");
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let outcome = run_bounded(&config, text.as_bytes()).map(|r| r.stats.read);
        let _ = done.send(outcome);
    });
    let outcome = result
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the run ended instead of hanging");
    match outcome {
        Err(RunError::Pipeline(e)) => {
            assert_eq!(e.code(), "worker_failed");
            assert!(e.to_string().contains("a rule bug met its input"), "{e}");
        }
        Err(other) => panic!("another error: {other}"),
        Ok(read) => panic!("the run succeeded over {read} lines"),
    }
}

/// Rejects payments whose provider status is `bad`: a producer's mistake it then fixes.
struct RejectsBad;

impl Transform for RejectsBad {
    fn name(&self) -> &str {
        "rejects-bad"
    }
    fn apply(&mut self, events: Vec<Event>) -> Vec<Result<Vec<Event>, PluginError>> {
        events
            .into_iter()
            .map(|e| match &e.body {
                Body::Payment(p) if p.status == "bad" => Err(PluginError::Rejected("bad".into())),
                _ => Ok(vec![e]),
            })
            .collect()
    }
}

#[test]
fn an_event_a_transform_rejected_leaves_its_id_free_for_a_valid_retry() {
    let bad = payment("p1", "bad", json!(100));
    let good = payment("p1", "succeeded", json!(100));
    let mut admission = Admission::new(vec![Box::new(RejectsBad)]);

    // In one batch: the rejected copy, its fixed retry, then a repeat of the retry.
    let admitted = admission.admit(&[bad.clone(), good.clone(), good.clone()], 0, true);
    assert_eq!(admitted.events.len(), 1, "the retry counts once");
    assert_eq!(admitted.rejected.len(), 1);
    let claimed: Vec<(&str, &str)> = admitted
        .claimed
        .iter()
        .map(|(t, id, _)| (t.as_str(), id.as_str()))
        .collect();
    assert_eq!(claimed, [("acme", "p1")]);
    assert_eq!(
        admission.stats().duplicates,
        1,
        "only the repeat is a duplicate"
    );
    let Body::Payment(p) = &admitted.events[0].body else {
        panic!("a payment")
    };
    assert_eq!(p.status, "succeeded");

    // Across batches: rejected in one, retried in the next.
    let bad2 = payment("p2", "bad", json!(5));
    let good2 = payment("p2", "succeeded", json!(5));
    let first = admission.admit(&[bad2.clone(), bad2], 1, false);
    assert!(first.events.is_empty());
    assert_eq!(
        first.rejected.len(),
        2,
        "both bad copies are judged and rejected"
    );
    let second = admission.admit(std::slice::from_ref(&good2), 2, false);
    assert_eq!(second.events.len(), 1, "the retry in a later batch counts");
    let third = admission.admit(&[good2], 3, false);
    assert!(third.events.is_empty(), "and only once");
    assert_eq!(admission.stats().duplicates, 2);
    assert_eq!(admission.stats().admitted, 2);
}

#[test]
fn retried_events_count_once_in_the_views() {
    // The same rule through a whole run: every view counts each fixed payment once.
    let mut lines = Vec::new();
    for i in 0..50 {
        lines.push(payment(&format!("x{i}"), "bad", json!(10)));
        lines.push(payment(&format!("x{i}"), "succeeded", json!(10)));
    }
    struct Factory;
    impl PluginFactory for Factory {
        fn transforms(&self) -> Vec<Box<dyn Transform>> {
            vec![
                Box::new(RejectsBad),
                Box::new(weir::plugins::native::NormalizePayments),
            ]
        }
        fn rules(&self) -> Vec<Box<dyn Rule>> {
            NativePlugins.rules()
        }
        fn rule_makers(&self) -> Vec<RuleSpec> {
            NativePlugins.rule_makers()
        }
    }
    let result = run_lines(
        &lines,
        &RunConfig {
            epoch_lines: 7,
            plugins: Arc::new(Factory),
            ..RunConfig::native()
        },
    );
    assert_eq!(result.stats.admitted, 50);
    assert_eq!(
        result.stats.quarantined["plugin_error:rejects-bad:rejected"],
        50
    );
    let payments = result.store.read(|p| p.rows(ViewId::PaymentStatus));
    assert_eq!(
        payments,
        [vec![
            Cell::from("acme"),
            Cell::from("stripe"),
            Cell::from("captured"),
            Cell::Int(50),
            Cell::Int(500)
        ]]
    );
}

#[test]
fn reflection_answers_v1alpha_clients_too() {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    use weir::dataflow::store::ViewStore;
    use weir::plugins::registry::RuleRegistry;
    use weir::serve::{ServeConfig, Server, Tokens};

    let config = ServeConfig {
        grpc: "127.0.0.1:0".parse().unwrap(),
        metrics: None,
        tls: None,
        tokens: Tokens::default(),
        max_subscriptions_per_token: weir::serve::api::DEFAULT_MAX_SUBSCRIPTIONS_PER_TOKEN,
    };
    let (server, _admin) = Server::start(
        &config,
        Arc::new(ViewStore::default()),
        Arc::new(RuleRegistry::default()),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let names = runtime.block_on(async {
        let channel =
            tonic::transport::Channel::from_shared(format!("http://{}", server.grpc_addr()))
                .unwrap()
                .connect()
                .await
                .unwrap();
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let response = responses.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("not a service list: {response:?}")
        };
        list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
    });
    for want in ["weir.v1.Views", "weir.v1.Plugins", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
}

/// A seekable source over lines in memory: one partition, the line index as the offset.
struct Lines {
    lines: Vec<String>,
    next: usize,
}

impl weir::source::Source for Lines {
    fn streams(&self) -> Vec<String> {
        vec!["mem".into()]
    }
    fn poll(
        &mut self,
        max: usize,
        _wait: std::time::Duration,
        out: &mut Vec<weir::source::Record>,
    ) -> Result<weir::source::Polled, weir::source::SourceError> {
        if self.next == self.lines.len() {
            return Ok(weir::source::Polled::End);
        }
        let stream: Arc<str> = "mem".into();
        let upto = (self.next + max).min(self.lines.len());
        for (offset, line) in self.lines[self.next..upto].iter().enumerate() {
            out.push(weir::source::Record {
                stream: stream.clone(),
                partition: 0,
                offset: (self.next + offset) as i64,
                payload: line.clone().into_bytes(),
            });
        }
        let n = upto - self.next;
        self.next = upto;
        Ok(weir::source::Polled::Records(n))
    }
    fn seekable(&self) -> bool {
        true
    }
    fn seek(
        &mut self,
        from: &weir::source::Offsets,
        _stop: &std::sync::atomic::AtomicBool,
    ) -> Result<bool, weir::source::SourceError> {
        self.next = from.get(&("mem".to_owned(), 0)).map_or(0, |n| *n as usize);
        Ok(true)
    }
}

/// `driver` made durable over `dir`, checkpointing only when its source ends.
fn durable(
    driver: weir::run::Driver,
    dir: &std::path::Path,
    config: &RunConfig,
) -> weir::run::Driver {
    use weir::output::landing::Landing;
    use weir::run::{CheckpointSettings, Durability};
    let settings = CheckpointSettings {
        dir: dir.join("checkpoints"),
        every: std::time::Duration::from_secs(3_600),
        export_every: std::time::Duration::from_secs(3_600),
        // Every checkpoint saves the run's state: a restart starts from it.
        snapshot_events: 1,
    };
    let landing = Landing::open(&dir.to_string_lossy()).unwrap();
    let transforms = config
        .plugins
        .transforms()
        .iter()
        .map(|t| t.name().to_owned())
        .collect();
    driver
        .durable(Durability::checkpointed(landing, settings, transforms).unwrap())
        .unwrap()
}

#[test]
fn a_run_restarts_from_a_checkpoint_holding_a_rule_deployed_while_running() {
    use weir::plugins::embedded;
    use weir::plugins::registry::Mode;
    use weir::run::Driver;

    let dir = crate::common::scratch_dir("faults-restart");
    let lines = crate::common::mangled_input(5, 3_000, 50);
    let config = RunConfig {
        epoch_lines: 500,
        ..RunConfig::default()
    };
    let durable = |driver| durable(driver, &dir, &config);
    let stop = std::sync::atomic::AtomicBool::new(false);

    // A rule version uploaded through the one upload path (as the API does), then a run that
    // checkpoints it.
    let mut first = durable(Driver::start(&config, Arc::default()).unwrap());
    let v2 = embedded::component("velocity-v2").unwrap();
    let vectors = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../plugins/testdata/velocity-v2/vectors.jsonl"),
    )
    .unwrap();
    let (version, _) = first
        .deploy_rule_component("velocity", &v2, &vectors, None, Mode::Retroactive)
        .unwrap();
    let hash = first.pipeline().rules().version(version).unwrap().hash;
    first
        .run(
            &mut Lines {
                lines: lines.clone(),
                next: 0,
            },
            &stop,
        )
        .unwrap();
    let before = views_of(&first.finish().unwrap());

    // The restart re-validates the uploaded component against its own vectors and goes on.
    let mut second = durable(Driver::start(&config, Arc::default()).unwrap());
    second
        .run(&mut Lines { lines, next: 0 }, &stop)
        .expect("the run recovers the checkpoint with the uploaded rule");
    let listed: Vec<String> = second
        .pipeline()
        .rules()
        .list()
        .into_iter()
        .map(|v| v.hash)
        .collect();
    assert!(listed.contains(&hash), "{hash} not in {listed:?}");
    let after = views_of(&second.finish().unwrap());
    assert_views_eq(&after, &before, "after the restart");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bounded_run_streams_its_quarantine_to_parquet_and_holds_only_a_bounded_prefix() {
    use weir::output::landing::Landing;
    use weir::run::Driver;
    use weir::run::quarantine::KEPT_IN_MEMORY;

    let dir = crate::common::scratch_dir("faults-quarantine-stream");
    let bad = KEPT_IN_MEMORY * 2 + 123;
    let lines: Vec<String> = (0..bad)
        .map(|i| format!("not json {i}"))
        .chain([payment("ok", "succeeded", json!(1))])
        .collect();
    let mut driver = Driver::start(&RunConfig::native(), Arc::default()).unwrap();
    driver
        .land_into(Landing::open(dir.to_str().unwrap()).unwrap())
        .unwrap();
    for chunk in lines.chunks(1000) {
        driver.feed(chunk);
    }
    let result = driver.finish().unwrap();
    assert_eq!(result.stats.quarantined["invalid_json"], bad as u64);
    assert_eq!(
        result.quarantine.len(),
        KEPT_IN_MEMORY,
        "memory holds a bounded prefix"
    );
    let (columns, rows) = crate::common::read_parquet(&dir.join("quarantine.parquet"));
    assert_eq!(columns, ["raw", "reason"]);
    assert_eq!(rows.len(), bad, "the file holds every quarantined input");
    assert_eq!(
        rows[bad - 1][0],
        Cell::from(format!("not json {}", bad - 1))
    );
    assert!(rows.iter().all(|r| r[1] == Cell::from("invalid_json")));
    let spill = result
        .quarantine_file
        .as_ref()
        .map(|f| f.path.clone())
        .unwrap();
    drop(result);
    assert!(
        !spill.exists(),
        "the spill file goes once the run's result does"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_huge_input_line_is_read_only_up_to_the_limit_and_quarantined_as_oversize() {
    use weir::event::MAX_INPUT_BYTES;
    use weir::source::file::read_lines;

    // 8 MB on one line between two valid events: read past, never held whole.
    let valid = payment("ok", "succeeded", json!(1));
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(8 << 20));
    let text = format!("{valid}\n{huge}\r\n{valid}\n");
    let lines = read_lines(&mut text.as_bytes(), 10).unwrap();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], valid.as_bytes());
    assert_eq!(lines[1].len(), MAX_INPUT_BYTES);
    assert_eq!(lines[2], valid.as_bytes());
    // Through a run: the oversize line is quarantined with its prefix, not its megabytes.
    let result = run_bounded(&RunConfig::native(), text.as_bytes()).unwrap();
    assert_eq!(result.stats.quarantined["oversize"], 1);
    assert_eq!(result.stats.duplicates, 1);
    assert!(result.quarantine[0].raw.len() <= MAX_INPUT_BYTES);
}

#[test]
fn a_landing_zone_that_fails_is_retried_until_it_takes_the_files() {
    use weir::run::Driver;

    let dir = crate::common::scratch_dir("faults-landing-retry");
    std::fs::create_dir_all(&dir).unwrap();
    // `raw` is a file: every raw write fails until it becomes a directory again.
    let raw = dir.join("raw");
    std::fs::write(&raw, b"in the way").unwrap();
    let mended = std::thread::spawn({
        let raw = raw.clone();
        move || {
            std::thread::sleep(std::time::Duration::from_millis(1_500));
            std::fs::remove_file(&raw).unwrap();
        }
    });
    let lines = crate::common::mangled_input(9, 2_000, 20);
    let config = RunConfig {
        epoch_lines: 500,
        ..RunConfig::native()
    };
    let mut driver = durable(
        Driver::start(&config, Arc::default()).unwrap(),
        &dir,
        &config,
    );
    let stop = std::sync::atomic::AtomicBool::new(false);
    driver
        .run(
            &mut Lines {
                lines: lines.clone(),
                next: 0,
            },
            &stop,
        )
        .expect("the checkpoint waits for the store instead of failing the run");
    let result = driver.finish().unwrap();
    mended.join().unwrap();
    assert_views_eq(
        &views_of(&result),
        &oracle(&lines, &Params::default()).views,
        "after the landing retries",
    );
    let landed = weir::source::replay::raw_files(&dir.to_string_lossy()).unwrap();
    let events: usize = landed
        .iter()
        .map(|f| weir::source::replay::read_raw(f).unwrap().len())
        .sum();
    assert_eq!(
        events as u64, result.stats.admitted,
        "every admitted event landed once"
    );
    assert!(dir.join("checkpoints").read_dir().unwrap().count() > 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_run_that_is_not_the_demo_refuses_the_demo_tokens_and_makes_a_private_admin_token() {
    use std::os::unix::fs::PermissionsExt;

    let dir = crate::common::scratch_dir("faults-tokens");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("lake");
    // A Kafka run whose broker is not there yet: it serves while it waits for it.
    let weir = crate::common::WeirProcess::start(
        &[
            "run",
            "--source",
            "kafka://127.0.0.1:9/events",
            "--out",
            out.to_str().unwrap(),
            "--grpc",
            "127.0.0.1:0",
            "--metrics",
            "off",
        ],
        &dir,
        "tokens",
    );
    let token_file = out
        .join("checkpoints")
        .join(weir::settings::ADMIN_TOKEN_FILE);
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is its owner's alone");
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(token.len() >= 32, "a token worth guessing at: {token:?}");
    assert!(
        weir.log().contains(&token_file.display().to_string()),
        "{}",
        weir.log()
    );
    let query = |token: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args([
                "query",
                "gmv_minute",
                "--addr",
                &weir.grpc().to_string(),
                "--token",
                token,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(query("pulsecart-admin-demo").contains("Unauthenticated"));
    let with_own = query(&token);
    assert!(!with_own.contains("Unauthenticated"), "{with_own}");
    weir.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_events_fuel_verdict_is_the_same_alone_and_in_a_batch() {
    use weir::plugins::set::WasmPlugins;
    use weir::plugins::wasm::Limits;

    let burner = |id: &str, spins: i64| {
        with(
            envelope(id, "payment", T0),
            json!({"user_id": "burner", "order_id": "o1", "payment_id": format!("p-{id}"),
                   "provider": "stripe", "status": "succeeded", "amount_cents": spins}),
        )
    };
    let ordinary: Vec<String> = (0..9)
        .map(|i| payment(&format!("n{i}"), "succeeded", json!(1)))
        .collect();
    // What spinning costs, measured with fuel to spare.
    let spins = 2_000_000;
    let generous = Limits {
        fuel_per_event: 10_000_000_000,
        ..Limits::default()
    };
    let mut set = WasmPlugins::new(generous).unwrap();
    set.add_embedded("fuel-burner", None).unwrap();
    Admission::new(set.transforms()).admit(&[burner("probe", spins)], 0, false);
    let cost = set.engine().fuel_by_tenant()["acme"];
    assert!(cost > 4_000_000, "spinning costs fuel: {cost}");

    // One event's budget is half of what the burner needs; nine ordinary events beside it
    // bring a batch's pooled share to five times that.
    let tight = Limits {
        fuel_per_event: cost / 2,
        base_fuel: 1_000_000,
        ..Limits::default()
    };
    let verdicts = |lines: &[String]| {
        let mut set = WasmPlugins::new(tight).unwrap();
        set.add_embedded("fuel-burner", None).unwrap();
        let admitted = Admission::new(set.transforms()).admit(lines, 0, false);
        let mut rejected: Vec<String> = admitted
            .rejected
            .into_iter()
            .map(|(i, q)| format!("{i}:{}", q.reason))
            .collect();
        rejected.sort();
        (admitted.events.len(), rejected)
    };
    let alone = verdicts(&[burner("b", spins)]);
    assert_eq!(
        alone,
        (0, vec!["0:plugin_error:fuel-burner:out_of_fuel".to_owned()])
    );
    let mut batch = ordinary.clone();
    batch.insert(4, burner("b", spins));
    let batched = verdicts(&batch);
    assert_eq!(
        batched,
        (9, vec!["4:plugin_error:fuel-burner:out_of_fuel".to_owned()]),
        "the same verdict in a batch; its neighbours pass"
    );
    // An event within one event's budget passes both ways.
    let light = burner("l", spins / 8);
    assert_eq!(verdicts(std::slice::from_ref(&light)), (1, vec![]));
    let mut batch = ordinary;
    batch.push(light);
    assert_eq!(verdicts(&batch), (10, vec![]));
}
