//! The `weir.v1` API over a real socket with the generated clients: list, query (exact
//! against the oracle, consistent across views at one `as_of`), subscribe (a replica that
//! stays exact, late-event retractions, tenant isolation, slow subscribers dropped), plugin
//! deploy and rollback, and every authentication and authorisation refusal.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use weir::dataflow::store::ViewStore;
use weir::plugins::embedded;
use weir::plugins::registry::RuleRegistry;
use weir::row::{Cell, Row, VIEWS, ViewId};
use weir::run::{Driver, RunConfig};
use weir::serve::api::{from_row, to_value};
use weir::serve::proto::{self, plugins_client::PluginsClient, views_client::ViewsClient};
use weir::serve::{AdminQueue, Caller, ServeConfig, Server, Tokens};

use weir::output::gold::Gold;
use weir::output::landing::Landing;

use crate::common::{
    WeirProcess, mangled_input, oracle, parquet_files, read_parquet, run_lines, scratch_dir, tail,
};
use crate::oracle::Params;

const ADMIN: &str = "admin-token";
const ACME: &str = "acme-token";
const GLOBEX: &str = "globex-token";

fn tokens() -> Tokens {
    let mut tokens = Tokens::default();
    tokens.insert(ADMIN, Caller::Admin).unwrap();
    tokens.insert(ACME, Caller::Tenant("acme".into())).unwrap();
    tokens
        .insert(GLOBEX, Caller::Tenant("globex".into()))
        .unwrap();
    tokens
}

fn serve(store: Arc<ViewStore>, registry: Arc<RuleRegistry>) -> (Server, AdminQueue) {
    let config = ServeConfig {
        grpc: "127.0.0.1:0".parse().unwrap(),
        metrics: None,
        tls: None,
        tokens: tokens(),
        max_subscriptions_per_token: weir::serve::api::DEFAULT_MAX_SUBSCRIPTIONS_PER_TOKEN,
    };
    Server::start(&config, store, registry).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn channel(server: &Server) -> Channel {
    Channel::from_shared(format!("http://{}", server.grpc_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    weir::serve::client::bearer(message, token).unwrap()
}

fn query_request(view: &str, prefix: &[Cell], as_of: Option<u64>) -> proto::QueryRequest {
    proto::QueryRequest {
        view: view.into(),
        key_prefix: prefix.iter().map(to_value).collect(),
        limit: 0,
        as_of,
        page_token: String::new(),
    }
}

async fn query(
    client: &mut ViewsClient<Channel>,
    token: &str,
    view: &str,
    prefix: &[Cell],
    as_of: Option<u64>,
) -> Result<(u64, Vec<Row>), Status> {
    // Every page of one answer is at the first page's `as_of`.
    let mut request = query_request(view, prefix, as_of);
    let mut rows = Vec::new();
    loop {
        let page = client
            .query(with_token(request.clone(), token))
            .await?
            .into_inner();
        rows.extend(page.rows.iter().map(|r| from_row(r).unwrap()));
        if page.next_page_token.is_empty() {
            return Ok((page.as_of, rows));
        }
        request.page_token = page.next_page_token;
    }
}

fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort();
    rows
}

fn tenant_of(row: &Row) -> &str {
    match &row[0] {
        Cell::Str(t) => t,
        other => panic!("tenant_id must be text, got {other:?}"),
    }
}

/// Σ of an integer column per tenant.
fn sum_by_tenant(rows: &[Row], column: usize) -> BTreeMap<String, i64> {
    let mut sums = BTreeMap::new();
    for row in rows {
        let Cell::Int(v) = row[column] else {
            panic!("column {column} must be an integer")
        };
        *sums.entry(tenant_of(row).to_owned()).or_insert(0) += v;
    }
    // A tenant with sessions but no orders yet sums to zero in one view and is absent in
    // the other.
    sums.retain(|_, v| *v != 0);
    sums
}

/// A store with the final result of a bounded run over generated input.
fn finished_store(lines: &[String]) -> Arc<ViewStore> {
    run_lines(lines, &RunConfig::native()).store
}

#[test]
fn list_views_names_every_column_with_its_type() {
    let store = finished_store(&mangled_input(3, 2_000, 100));
    let (server, _admin) = serve(store, Arc::default());
    runtime().block_on(async {
        let mut client = ViewsClient::new(channel(&server).await);
        let views = client
            .list_views(with_token(proto::ListViewsRequest {}, ACME))
            .await
            .unwrap()
            .into_inner()
            .views;
        for schema in VIEWS {
            let info = views.iter().find(|v| v.name == schema.name).unwrap();
            let keys: Vec<&str> = info.key_columns.iter().map(|c| c.name.as_str()).collect();
            let want: Vec<&str> = schema.key_columns().iter().map(|c| c.name).collect();
            assert_eq!(keys, want, "{}", schema.name);
            assert_eq!(info.value_columns.len(), schema.value_columns().len());
        }
        let gmv = views.iter().find(|v| v.name == "gmv_minute").unwrap();
        assert_eq!(gmv.key_columns[0].r#type, proto::ColumnType::String as i32);
        assert_eq!(gmv.key_columns[2].r#type, proto::ColumnType::Int as i32);
    });
}

#[test]
fn queries_return_exactly_the_oracle_rows_and_tenants_only_their_own() {
    let lines = mangled_input(5, 20_000, 400);
    let want = oracle(&lines, &Params::default());
    let store = finished_store(&lines);
    let (server, _admin) = serve(store, Arc::default());
    runtime().block_on(async {
        let mut client = ViewsClient::new(channel(&server).await);
        for view in VIEWS {
            let (_, all) = query(&mut client, ADMIN, view.name, &[], None)
                .await
                .unwrap();
            assert_eq!(sorted(all.clone()), want.views[view.name], "{}", view.name);
            let (_, acme) = query(&mut client, ACME, view.name, &[], None)
                .await
                .unwrap();
            let want_acme: Vec<Row> = all
                .iter()
                .filter(|r| tenant_of(r) == "acme")
                .cloned()
                .collect();
            assert_eq!(acme, want_acme, "{} for acme", view.name);
        }
        let (_, acme) = query(&mut client, ACME, "gmv_minute", &[], None)
            .await
            .unwrap();
        assert!(!acme.is_empty(), "acme has orders in the input");
        // A longer prefix narrows; a limit truncates and says so.
        let prefix = [Cell::from("acme"), acme[0][1].clone()];
        let (_, narrowed) = query(&mut client, ACME, "gmv_minute", &prefix, None)
            .await
            .unwrap();
        assert!(narrowed.iter().all(|r| r[1] == acme[0][1]));
        let limited = client
            .query(with_token(
                proto::QueryRequest {
                    limit: 1,
                    ..query_request("gmv_minute", &[], None)
                },
                ACME,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(limited.rows.len(), 1);
        assert_eq!(limited.truncated, acme.len() > 1);
    });
}

/// Once spans of a windowed view went to gold, a query answers with the live rows and says,
/// for the caller's tenants alone, before when and where the rest are: those files plus the
/// rows are the view.
#[test]
fn a_query_says_where_its_tenants_rows_in_gold_are() {
    let lines = mangled_input(6, 30_000, 400);
    let want = oracle(&lines, &Params::default());
    let store = finished_store(&lines);
    let landing = scratch_dir("serving-gold");
    let mut gold = Gold::open(
        Landing::open(landing.to_str().unwrap()).unwrap(),
        120_000,
        true,
    )
    .unwrap()
    .with_span(1);
    gold.pass(&store).unwrap();
    assert!(gold.stats().rows > 0);
    let (server, _admin) = serve(store, Arc::default());
    runtime().block_on(async {
        let mut client = ViewsClient::new(channel(&server).await);
        for (token, tenant) in [
            (ACME, Some("acme")),
            (GLOBEX, Some("globex")),
            (ADMIN, None),
        ] {
            let answer = client
                .query(with_token(query_request("sessions", &[], None), token))
                .await
                .unwrap()
                .into_inner();
            let tenants: Vec<&str> = answer.gold.iter().map(|g| g.tenant_id.as_str()).collect();
            match tenant {
                Some(tenant) => assert_eq!(tenants, [tenant], "{token}"),
                None => assert_eq!(tenants, ["acme", "globex", "initech"], "{token}"),
            }
            for part in &answer.gold {
                assert_eq!(
                    part.location,
                    format!("gold/sessions/tenant_id={}/", part.tenant_id)
                );
                // The files under the location and the live rows are the tenant's sessions.
                let mut rows: Vec<Row> = parquet_files(&landing.join(&part.location))
                    .iter()
                    .flat_map(|f| read_parquet(f).1)
                    .collect();
                assert!(
                    rows.iter()
                        .all(|r| matches!(r[2], Cell::Int(t) if t < part.before_ms)),
                    "a gold row of {} at or after {}",
                    part.tenant_id,
                    part.before_ms
                );
                let (_, live) = query(
                    &mut client,
                    ADMIN,
                    "sessions",
                    &[Cell::from(part.tenant_id.as_str())],
                    None,
                )
                .await
                .unwrap();
                assert!(!rows.is_empty() && !live.is_empty(), "{}", part.tenant_id);
                rows.extend(live);
                let want_tenant: Vec<Row> = want.views["sessions"]
                    .iter()
                    .filter(|r| tenant_of(r) == part.tenant_id)
                    .cloned()
                    .collect();
                assert_eq!(sorted(rows), want_tenant, "{}", part.tenant_id);
            }
        }
    });
}

/// An `as_of` still retained answers with the rows of that time — the oracle over the lines
/// admitted by then, not the newest rows — in every view; one ahead or no longer retained gets
/// a clear status.
#[test]
fn an_earlier_as_of_answers_with_that_times_rows_and_out_of_range_ones_get_clear_statuses() {
    let epoch_lines = 100;
    let store = Arc::new(ViewStore::new(2, 8));
    let config = RunConfig {
        epoch_lines,
        lockstep: true,
        ..RunConfig::native()
    };
    let mut runner = Driver::start(&config, store.clone()).unwrap();
    let lines = mangled_input(8, 1_000, 50);
    runner.feed(&lines);
    let (server, _admin) = serve(store.clone(), Arc::default());
    let latest = store.as_of().unwrap();
    // Lockstep publishes every closed time; time t holds the lines of times 0..=t.
    let at_time = |t: u64| {
        let upto = ((t as usize + 1) * epoch_lines).min(lines.len());
        oracle(&lines[..upto], &Params::default())
    };
    let (earlier, newest) = (at_time(latest - 1), at_time(latest));
    runtime().block_on(async {
        let mut client = ViewsClient::new(channel(&server).await);
        let ahead = query(&mut client, ADMIN, "gmv_minute", &[], Some(latest + 5))
            .await
            .unwrap_err();
        assert_eq!(ahead.code(), Code::OutOfRange, "{ahead:?}");
        assert!(ahead.message().contains("not published yet"));
        let old = query(&mut client, ADMIN, "gmv_minute", &[], Some(0))
            .await
            .unwrap_err();
        assert_eq!(old.code(), Code::FailedPrecondition, "{old:?}");
        assert!(old.message().contains("no longer retained"));
        let mut differing = 0;
        for view in VIEWS {
            let (at, rows) = query(&mut client, ADMIN, view.name, &[], Some(latest - 1))
                .await
                .unwrap();
            assert_eq!(at, latest - 1);
            assert_eq!(
                sorted(rows),
                earlier.views[view.name],
                "{} at {at}",
                view.name
            );
            let (at, rows) = query(&mut client, ADMIN, view.name, &[], Some(latest))
                .await
                .unwrap();
            assert_eq!(at, latest);
            assert_eq!(
                sorted(rows),
                newest.views[view.name],
                "{} at {at}",
                view.name
            );
            if earlier.views[view.name] != newest.views[view.name] {
                differing += 1;
            }
        }
        // Otherwise an answer with the newest rows would pass for the earlier ones.
        assert!(differing >= 3, "only {differing} views changed in one time");
    });
    runner.finish().unwrap();
}

/// Σ `gmv_minute.orders` = Σ `sessions.orders` per tenant (both count every order) in every
/// pair of answers at one `as_of`, while input streams in.
#[test]
fn concurrent_queries_at_one_as_of_are_never_torn() {
    let lines = mangled_input(13, 150_000, 400);
    let store = Arc::new(ViewStore::new(1 << 20, 64));
    let config = RunConfig {
        workers: 2,
        epoch_lines: 500,
        ..RunConfig::native()
    };
    let mut runner = Driver::start(&config, store.clone()).unwrap();
    let (server, _admin) = serve(store.clone(), Arc::default());
    let done = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));
    let feeder = {
        let (done, checks) = (done.clone(), checks.clone());
        std::thread::spawn(move || {
            for chunk in lines.chunks(5_000) {
                runner.feed(chunk);
                // However slow the machine, some checks run between chunks, so they span
                // the stream rather than its end.
                let target = checks.load(Ordering::SeqCst) + 2;
                let deadline = Instant::now() + Duration::from_secs(5);
                while checks.load(Ordering::SeqCst) < target && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            let result = runner.finish().unwrap();
            done.store(true, Ordering::SeqCst);
            result
        })
    };
    let times = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    while store.as_of().is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    runtime().block_on(async {
        let channel = channel(&server).await;
        let mut tasks = Vec::new();
        for task in 0..6 {
            let (done, checks, times) = (done.clone(), checks.clone(), times.clone());
            let mut client = ViewsClient::new(channel.clone());
            tasks.push(tokio::spawn(async move {
                let mut last = 0;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let (t, gmv) = query(&mut client, ADMIN, "gmv_minute", &[], None)
                        .await
                        .unwrap();
                    assert!(t >= last, "as_of went back from {last} to {t}");
                    last = t;
                    // Odd tasks ask both views at t concurrently, even ones one after the other.
                    let (sessions, again) = if task % 2 == 1 {
                        let mut other = client.clone();
                        let (a, b) = tokio::join!(
                            query(&mut client, ADMIN, "sessions", &[], Some(t)),
                            query(&mut other, ADMIN, "gmv_minute", &[], Some(t)),
                        );
                        (a.unwrap(), b.unwrap())
                    } else {
                        let a = query(&mut client, ADMIN, "sessions", &[], Some(t)).await;
                        let b = query(&mut client, ADMIN, "gmv_minute", &[], Some(t)).await;
                        (a.unwrap(), b.unwrap())
                    };
                    assert_eq!(sessions.0, t);
                    assert_eq!(again, (t, gmv.clone()), "two answers at {t} differ");
                    assert_eq!(
                        sum_by_tenant(&gmv, 3),
                        sum_by_tenant(&sessions.1, 7),
                        "orders per tenant differ between gmv_minute and sessions at {t}"
                    );
                    checks.fetch_add(1, Ordering::SeqCst);
                    times.lock().unwrap().insert(t);
                    if finished {
                        break;
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
    let result = feeder.join().unwrap();
    let checks = checks.load(Ordering::SeqCst);
    let distinct = times.lock().unwrap().len();
    assert!(checks >= 30, "only {checks} checks ran");
    assert!(
        distinct >= 5,
        "the checks must span the stream: {distinct} distinct times"
    );
    assert!(result.stats.admitted > 100_000);
}

/// A subscriber's replica (snapshot plus every update) equals the view at each progress
/// mark; a late event that merges two sessions arrives as retractions.
#[test]
fn subscription_replica_stays_exact_and_sees_late_retractions() {
    let page_view = |id: &str, time: &str| {
        format!(
            r#"{{"event_id":"{id}","tenant_id":"acme","type":"page_view","event_time":"2026-11-21T{time}Z","schema_version":1,"user_id":"u1","url":"/p/1"}}"#
        )
    };
    let store = Arc::new(ViewStore::default());
    let config = RunConfig {
        epoch_lines: 1,
        lockstep: true,
        ..RunConfig::native()
    };
    let mut runner = Driver::start(&config, store.clone()).unwrap();
    runner.feed(&[page_view("a", "10:00:00"), page_view("b", "10:40:00")]);
    let (server, _admin) = serve(store.clone(), Arc::default());
    let rt = runtime();
    let mut stream = rt.block_on(async {
        let mut client = ViewsClient::new(channel(&server).await);
        client
            .subscribe(with_token(
                proto::SubscribeRequest {
                    view: "sessions".into(),
                    key_prefix: vec![],
                },
                ACME,
            ))
            .await
            .unwrap()
            .into_inner()
    });
    // The late view at 10:20 bridges the 40-minute gap: two sessions become one.
    runner.feed(&[page_view("c", "10:20:00")]);
    let last = store.as_of().unwrap();
    let (replica, updates) = rt.block_on(async {
        let mut replica: BTreeMap<Row, i64> = BTreeMap::new();
        let mut updates = Vec::new();
        loop {
            let message = stream.message().await.unwrap().unwrap();
            match message.kind.unwrap() {
                proto::subscribe_response::Kind::Snapshot(s) => {
                    assert_eq!(s.rows.len(), 2, "two sessions before the late event");
                    for row in &s.rows {
                        *replica.entry(from_row(row).unwrap()).or_default() += 1;
                    }
                }
                proto::subscribe_response::Kind::Changes(c) => {
                    for u in &c.updates {
                        let row = from_row(u.row.as_ref().unwrap()).unwrap();
                        *replica.entry(row.clone()).or_default() += u.diff;
                        assert!(u.time <= c.progress);
                        updates.push((row, u.diff));
                    }
                    if c.progress >= last {
                        break;
                    }
                }
            }
        }
        replica.retain(|_, n| *n != 0);
        (replica, updates)
    });
    let retracted: Vec<_> = updates.iter().filter(|(_, d)| *d < 0).collect();
    assert_eq!(
        retracted.len(),
        2,
        "both old sessions are retracted: {updates:?}"
    );
    let rows: Vec<Row> = replica.keys().cloned().collect();
    assert_eq!(rows, store.read(|p| p.rows(ViewId::Sessions)));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][4], Cell::Int(3), "one session of three events");
    drop(server);
    runner.finish().unwrap();
}

/// A tenant's subscription never carries another tenant's row: it equals the admin's
/// subscription filtered to that tenant.
#[test]
fn tenant_subscriptions_never_see_other_tenants() {
    let lines = mangled_input(21, 30_000, 300);
    let store = Arc::new(ViewStore::default());
    let config = RunConfig {
        workers: 2,
        epoch_lines: 1_000,
        lockstep: true,
        ..RunConfig::native()
    };
    let mut runner = Driver::start(&config, store.clone()).unwrap();
    let (server, _admin) = serve(store.clone(), Arc::default());
    let rt = runtime();
    let open = |token: &'static str| {
        let server = &server;
        rt.block_on(async move {
            let mut client = ViewsClient::new(channel(server).await);
            client
                .subscribe(with_token(
                    proto::SubscribeRequest {
                        view: "gmv_minute".into(),
                        key_prefix: vec![],
                    },
                    token,
                ))
                .await
                .unwrap()
                .into_inner()
        })
    };
    let mut acme = open(ACME);
    let mut admin = open(ADMIN);
    runner.feed(&lines);
    let last = store.as_of().unwrap();
    let collect = |stream: &mut tonic::Streaming<proto::SubscribeResponse>| {
        rt.block_on(async {
            let mut updates = Vec::new();
            loop {
                let message = stream.message().await.unwrap().unwrap();
                if let Some(proto::subscribe_response::Kind::Changes(c)) = message.kind {
                    for u in c.updates {
                        updates.push((from_row(&u.row.unwrap()).unwrap(), u.diff, u.time));
                    }
                    if c.progress >= last {
                        return updates;
                    }
                }
            }
        })
    };
    let acme_updates = collect(&mut acme);
    let admin_updates = collect(&mut admin);
    assert!(acme_updates.len() > 50, "acme sees its own changes");
    assert!(
        acme_updates
            .iter()
            .all(|(row, _, _)| tenant_of(row) == "acme")
    );
    assert!(
        admin_updates
            .iter()
            .any(|(row, _, _)| tenant_of(row) != "acme")
    );
    let filtered: Vec<_> = admin_updates
        .into_iter()
        .filter(|(row, _, _)| tenant_of(row) == "acme")
        .collect();
    assert_eq!(acme_updates, filtered);
    drop(server);
    runner.finish().unwrap();
}

/// A subscriber that stops reading is dropped with RESOURCE_EXHAUSTED; the pipeline never
/// waits for it.
#[test]
fn a_slow_subscriber_is_dropped_without_stalling_the_dataflow() {
    let lines = mangled_input(34, 40_000, 300);
    let store = Arc::new(ViewStore::new(16, 4));
    let config = RunConfig {
        workers: 2,
        epoch_lines: 200,
        lockstep: true,
        ..RunConfig::native()
    };
    let mut runner = Driver::start(&config, store.clone()).unwrap();
    let (server, _admin) = serve(store.clone(), Arc::default());
    let rt = runtime();
    let mut stream = rt.block_on(async {
        let mut client = ViewsClient::new(channel(&server).await);
        client
            .subscribe(with_token(
                proto::SubscribeRequest {
                    view: "sessions".into(),
                    key_prefix: vec![],
                },
                ADMIN,
            ))
            .await
            .unwrap()
            .into_inner()
    });
    // Lockstep: every logical time is published before the next is fed, so finishing
    // proves publication never waited on the subscriber that reads nothing.
    runner.feed(&lines);
    let status = rt.block_on(async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without saying why"),
                Err(status) => return status,
            }
        }
    });
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("fell behind"));
    drop(server);
    runner.finish().unwrap();
}

/// Deploy a rule version retroactively over the API while input streams, then roll it back:
/// each time the alerts become exactly the oracle's for the version in force.
#[test]
fn deploy_and_rollback_over_the_api() {
    let lines = mangled_input(41, 40_000, 800);
    let v1 = oracle(&lines, &Params::default());
    let v2 = oracle(
        &lines,
        &Params {
            velocity_threshold: 3,
            velocity_switch: None,
            ..Params::default()
        },
    );
    assert_ne!(v1.views["fraud_alerts"], v2.views["fraud_alerts"]);
    let store = Arc::new(ViewStore::default());
    let config = RunConfig {
        workers: 2,
        epoch_lines: 1_000,
        ..RunConfig::default()
    };
    let mut runner = Driver::start(&config, store.clone()).unwrap();
    let (server, mut admin) = serve(store.clone(), runner.pipeline().rules().clone());
    let stop = Arc::new(AtomicBool::new(false));
    let fed = Arc::new(AtomicU64::new(u64::MAX));
    let feeder = {
        let (stop, fed) = (stop.clone(), fed.clone());
        std::thread::spawn(move || {
            for chunk in lines.chunks(1_000) {
                admin.drain(runner.pipeline());
                runner.feed(chunk);
                std::thread::sleep(Duration::from_millis(5));
            }
            fed.store(runner.pipeline().epoch(), Ordering::SeqCst);
            // The source is exhausted but time goes on: later deploys take effect too.
            while !stop.load(Ordering::SeqCst) {
                admin.drain(runner.pipeline());
                runner.pipeline().advance();
                std::thread::sleep(Duration::from_millis(5));
            }
            runner.finish().unwrap()
        })
    };
    let v2_bytes = embedded::component("velocity-v2").unwrap();
    let vectors = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../plugins/testdata/velocity-v2/vectors.jsonl"),
    )
    .unwrap();
    // Waits until every line is fed and `time` is published (all lines are visible once
    // the time before the feeder's last epoch is).
    let wait_for = |time: u64| {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let fed = fed.load(Ordering::SeqCst);
            if fed != u64::MAX && store.as_of().is_some_and(|t| t >= time.max(fed - 1)) {
                return;
            }
            assert!(Instant::now() < deadline, "time {time} never published");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    runtime().block_on(async {
        let channel = channel(&server).await;
        let mut plugins = PluginsClient::new(channel.clone());
        let mut views = ViewsClient::new(channel);
        while store.as_of().is_none_or(|t| t < 5) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Refused first: its vectors fail, nothing is registered.
        let refused = plugins
            .deploy(with_token(
                proto::DeployRequest {
                    name: "velocity".into(),
                    component: v2_bytes.clone(),
                    vectors: std::fs::read_to_string(
                        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                            .join("../plugins/velocity/vectors.jsonl"),
                    )
                    .unwrap(),
                    tenant: None,
                    mode: proto::DeployMode::Retroactive as i32,
                },
                ADMIN,
            ))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().contains("fails its test vectors"));
        let deployed = plugins
            .deploy(with_token(
                proto::DeployRequest {
                    name: "velocity".into(),
                    component: v2_bytes.clone(),
                    vectors: vectors.clone(),
                    tenant: None,
                    mode: proto::DeployMode::Retroactive as i32,
                },
                ADMIN,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(deployed.effective_time >= 5);
        assert_eq!(
            deployed.hash,
            weir::plugins::registry::content_hash(&v2_bytes)
        );
        wait_for(deployed.effective_time);
        let (_, alerts) = query(&mut views, ADMIN, "fraud_alerts", &[], None)
            .await
            .unwrap();
        assert_eq!(sorted(alerts), v2.views["fraud_alerts"], "after the deploy");

        let listed = plugins
            .list(with_token(proto::ListPluginsRequest {}, ADMIN))
            .await
            .unwrap()
            .into_inner()
            .versions;
        let new = listed
            .iter()
            .find(|v| v.version == deployed.version)
            .unwrap();
        assert!(new.active);
        assert_eq!(new.deployed[0].time, deployed.effective_time);
        let old = listed
            .iter()
            .find(|v| v.name == "velocity" && v.version != deployed.version)
            .unwrap();
        assert!(!old.active);

        let rolled = plugins
            .rollback(with_token(
                proto::RollbackRequest {
                    name: "velocity".into(),
                    version: None,
                    mode: proto::DeployMode::Retroactive as i32,
                },
                ADMIN,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(rolled.version, old.version);
        assert!(rolled.effective_time > deployed.effective_time);
        wait_for(rolled.effective_time);
        let (_, alerts) = query(&mut views, ADMIN, "fraud_alerts", &[], None)
            .await
            .unwrap();
        assert_eq!(
            sorted(alerts),
            v1.views["fraud_alerts"],
            "after the rollback"
        );
    });
    stop.store(true, Ordering::SeqCst);
    feeder.join().unwrap();
}

#[test]
fn every_unauthenticated_or_unauthorised_call_is_refused() {
    let store = finished_store(&mangled_input(55, 3_000, 100));
    let (server, _admin) = serve(store, Arc::default());
    runtime().block_on(async {
        let channel = channel(&server).await;
        let mut views = ViewsClient::new(channel.clone());
        let mut plugins = PluginsClient::new(channel);
        let bad_headers: [Option<&str>; 3] = [None, Some("Bearer nope"), Some("Basic YWRtaW4=")];
        for header in bad_headers {
            let sign = |mut r: Request<()>| {
                if let Some(h) = header {
                    r.metadata_mut().insert("authorization", h.parse().unwrap());
                }
                r
            };
            let codes = [
                views
                    .list_views(sign(Request::new(())).map(|_| proto::ListViewsRequest {}))
                    .await
                    .map(|_| ())
                    .unwrap_err()
                    .code(),
                views
                    .query(sign(Request::new(())).map(|_| query_request("gmv_minute", &[], None)))
                    .await
                    .map(|_| ())
                    .unwrap_err()
                    .code(),
                views
                    .subscribe(sign(Request::new(())).map(|_| proto::SubscribeRequest {
                        view: "gmv_minute".into(),
                        key_prefix: vec![],
                    }))
                    .await
                    .map(|_| ())
                    .unwrap_err()
                    .code(),
                plugins
                    .list(sign(Request::new(())).map(|_| proto::ListPluginsRequest {}))
                    .await
                    .map(|_| ())
                    .unwrap_err()
                    .code(),
                plugins
                    .deploy(sign(Request::new(())).map(|_| proto::DeployRequest::default()))
                    .await
                    .map(|_| ())
                    .unwrap_err()
                    .code(),
                plugins
                    .rollback(sign(Request::new(())).map(|_| proto::RollbackRequest::default()))
                    .await
                    .map(|_| ())
                    .unwrap_err()
                    .code(),
            ];
            assert!(
                codes.iter().all(|c| *c == Code::Unauthenticated),
                "{header:?}: {codes:?}"
            );
        }

        // A tenant token may not administer plugins.
        let denied = [
            plugins
                .list(with_token(proto::ListPluginsRequest {}, ACME))
                .await
                .map(|_| ())
                .unwrap_err(),
            plugins
                .deploy(with_token(
                    proto::DeployRequest {
                        name: "velocity".into(),
                        component: embedded::component("velocity-v2").unwrap(),
                        ..Default::default()
                    },
                    ACME,
                ))
                .await
                .map(|_| ())
                .unwrap_err(),
            plugins
                .rollback(with_token(
                    proto::RollbackRequest {
                        name: "velocity".into(),
                        ..Default::default()
                    },
                    GLOBEX,
                ))
                .await
                .map(|_| ())
                .unwrap_err(),
        ];
        for status in &denied {
            assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        }

        // A tenant token cannot name another tenant, in a query or a subscription.
        let other = [Cell::from("globex")];
        let status = query(&mut views, ACME, "sessions", &other, None)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        let status = views
            .subscribe(with_token(
                proto::SubscribeRequest {
                    view: "sessions".into(),
                    key_prefix: other.iter().map(to_value).collect(),
                },
                ACME,
            ))
            .await
            .map(|_| ())
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        // Bad requests are named, not guessed at.
        let status = query(&mut views, ACME, "gmv_hour", &[], None)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        let status = query(&mut views, ADMIN, "gmv_minute", &[Cell::Int(1)], None)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        // The admin may read another tenant; the tenant gets its own rows, all of them.
        let (_, globex) = query(&mut views, ADMIN, "sessions", &other, None)
            .await
            .unwrap();
        let (_, own) = query(&mut views, GLOBEX, "sessions", &[], None)
            .await
            .unwrap();
        assert!(!own.is_empty());
        assert_eq!(own, globex);
    });
}

/// `weir run` as README starts it: the CLI client answers, reflection lists the services,
/// health says serving, and `/metrics` is valid Prometheus text with the pipeline's metrics.
#[test]
fn weir_run_serves_queries_reflection_health_and_metrics() {
    let run = WeirRun::start();
    query_prints_a_gmv_table_once_rows_are_published(&run);
    query_with_a_tenant_token_returns_only_its_rows(&run);
    query_without_a_token_is_unauthenticated(&run);
    reflection_lists_the_services_and_health_says_serving(&run);
    metrics_are_prometheus_text_with_the_pipelines_metrics(&run);
    plugin_commands_deploy_list_and_roll_back(&run);
    plugin_list_with_a_tenant_token_is_denied(&run);
    ctrl_c_drains_and_stops_cleanly(run);
}

/// `weir run --rate 3000 --status-secs 1` serving gRPC and metrics on free ports.
struct WeirRun {
    process: WeirProcess,
    /// `HOST:PORT` of the gRPC API.
    grpc: String,
    /// `HOST:PORT` of `/metrics`.
    metrics: String,
    /// The test's scratch directory: the run's log and ready file, a plugin component.
    dir: std::path::PathBuf,
}

impl WeirRun {
    fn start() -> WeirRun {
        let dir = scratch_dir("serving-weir-run");
        let process = WeirProcess::start(
            &[
                "run",
                "--grpc",
                "127.0.0.1:0",
                "--metrics",
                "127.0.0.1:0",
                "--rate",
                "3000",
                "--status-secs",
                "1",
            ],
            &dir,
            "weir",
        );
        let grpc = process.grpc().to_string();
        let metrics = process.metrics().expect("metrics are on").to_string();
        WeirRun {
            process,
            grpc,
            metrics,
            dir,
        }
    }
}

/// The `weir` binary, as a client.
fn weir_cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// `weir query gmv_minute` with the demo admin token prints a table with rows.
fn query_prints_a_gmv_table_once_rows_are_published(run: &WeirRun) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let table = loop {
        let out = weir_cli()
            .args(["query", "gmv_minute", "--addr", &run.grpc])
            .env("WEIR_TOKEN", "pulsecart-admin-demo")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Before the first publication the answer is UNAVAILABLE: ask again.
        assert!(
            out.status.success() || stderr.contains("nothing is published yet"),
            "{stderr}"
        );
        let text = String::from_utf8(out.stdout).unwrap();
        if text.lines().count() > 1 {
            break text;
        }
        assert!(Instant::now() < deadline, "no gmv rows within a minute");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        table.starts_with("tenant_id  currency  minute_start_ms  orders"),
        "{table}"
    );
}

/// `weir query --json` with a tenant's token prints only that tenant's rows.
fn query_with_a_tenant_token_returns_only_its_rows(run: &WeirRun) {
    let json = weir_cli()
        .args([
            "query",
            "fraud_alerts",
            "--json",
            "--addr",
            &run.grpc,
            "--token",
            "acme-demo",
        ])
        .output()
        .unwrap();
    assert!(json.status.success());
    for line in String::from_utf8(json.stdout).unwrap().lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["tenant_id"], "acme", "{line}");
    }
}

fn query_without_a_token_is_unauthenticated(run: &WeirRun) {
    let refused = weir_cli()
        .args(["query", "gmv_minute", "--addr", &run.grpc])
        .env_remove("WEIR_TOKEN")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Unauthenticated"));
}

fn reflection_lists_the_services_and_health_says_serving(run: &WeirRun) {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    runtime().block_on(async {
        let channel = Channel::from_shared(format!("http://{}", run.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut reflection = ServerReflectionClient::new(channel.clone());
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = reflection
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let response = responses.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("not a service list: {response:?}")
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for want in ["weir.v1.Views", "weir.v1.Plugins", "grpc.health.v1.Health"] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "weir.v1.Views".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    });
}

/// `GET /metrics` is valid Prometheus text carrying the admission, plugin, view-freshness,
/// gRPC and logical-time metrics.
fn metrics_are_prometheus_text_with_the_pipelines_metrics(run: &WeirRun) {
    let scrape = || crate::common::scrape_metrics(&run.metrics);
    // The first payments reach normalize-payments a little after the first orders are
    // visible; on a loaded machine, scrape again until they have.
    let deadline = Instant::now() + Duration::from_secs(60);
    let response = loop {
        let response = scrape();
        if response.contains("weir_plugin_calls_total{plugin=\"normalize-payments\"}")
            || Instant::now() > deadline
        {
            break response;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    // Every line is a sample, a HELP or TYPE line, or blank: nothing the parser skips.
    for line in body.lines() {
        let parsed = prometheus_parse::LineInfo::parse(line);
        assert!(
            !matches!(parsed, prometheus_parse::LineInfo::Ignored),
            "not Prometheus text: {line:?}"
        );
    }
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let value = |name: &str, label: (&str, &str)| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
            .map(|s| s.value.clone())
            .unwrap_or_else(|| panic!("no {name}{{{}={}}}", label.0, label.1))
    };
    let counter = |v: prometheus_parse::Value| match v {
        prometheus_parse::Value::Counter(c) => c,
        other => panic!("not a counter: {other:?}"),
    };
    assert!(counter(value("weir_events_admitted_total", ("tenant", "acme"))) > 0.0);
    assert!(
        counter(value(
            "weir_plugin_calls_total",
            ("plugin", "normalize-payments")
        )) > 0.0
    );
    for (name, label) in [
        ("weir_view_freshness_seconds", ("view", "gmv_minute")),
        ("weir_plugin_call_seconds", ("plugin", "velocity")),
        ("weir_grpc_request_seconds", ("method", "Query")),
    ] {
        match value(name, label) {
            prometheus_parse::Value::Histogram(buckets) => {
                assert!(buckets.iter().any(|b| b.count > 0.0), "{name} is empty")
            }
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }
    let logical = scrape
        .samples
        .iter()
        .find(|s| s.metric == "weir_logical_time")
        .unwrap();
    assert!(matches!(logical.value, prometheus_parse::Value::Gauge(t) if t > 0.0));
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "weir_events_quarantined_total")
    );
    for name in [
        "weir_events_duplicate_total",
        "weir_cold_entities_moved_total",
        "weir_cold_entities_revived_total",
        "weir_gold_rows_exported_total",
        "weir_gold_files_written_total",
    ] {
        assert!(scrape.samples.iter().any(|s| s.metric == name), "no {name}");
    }
}

/// The plugin commands with the demo admin token: deploy a rule version, list it, roll it
/// back.
fn plugin_commands_deploy_list_and_roll_back(run: &WeirRun) {
    let component = run.dir.join("velocity-v2.wasm");
    std::fs::write(&component, embedded::component("velocity-v2").unwrap()).unwrap();
    let vectors = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/testdata/velocity-v2/vectors.jsonl");
    let admin = |args: &[&str]| {
        let out = weir_cli()
            .args(args)
            .args(["--addr", &run.grpc, "--token", "pulsecart-admin-demo"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let deployed = admin(&[
        "plugin",
        "deploy",
        component.to_str().unwrap(),
        "--name",
        "velocity",
        "--mode",
        "retroactive",
        "--vectors",
        vectors.to_str().unwrap(),
    ]);
    assert!(
        deployed.starts_with("deployed velocity version 3 "),
        "{deployed}"
    );
    assert!(deployed.contains("at logical time "), "{deployed}");
    let listed = admin(&["plugin", "list"]);
    let v2: Vec<&str> = listed
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"velocity") && f.get(1) == Some(&"3"))
        .unwrap_or_else(|| panic!("no velocity version 3 in {listed}"));
    assert_eq!(v2[4], "yes", "{listed}");
    assert!(v2[5].starts_with("retroactive@"), "{listed}");
    let rolled = admin(&["plugin", "rollback", "velocity"]);
    assert!(
        rolled.starts_with("rolled velocity back to version 0 "),
        "{rolled}"
    );
}

fn plugin_list_with_a_tenant_token_is_denied(run: &WeirRun) {
    let denied = weir_cli()
        .args([
            "plugin",
            "list",
            "--addr",
            &run.grpc,
            "--token",
            "acme-demo",
        ])
        .output()
        .unwrap();
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("PermissionDenied"));
}

/// Ctrl-C drains and stops cleanly.
fn ctrl_c_drains_and_stops_cleanly(run: WeirRun) {
    run.process.interrupt();
    let (status, log) = run.process.wait(Duration::from_secs(120));
    assert!(status.success(), "{status:?}: {}", tail(&log));
}
