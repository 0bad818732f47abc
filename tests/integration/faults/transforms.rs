//! Transforms are deployed, listed and rolled back over the API like rules: a transform
//! disabled for one tenant is fixed by deploying a working version for that tenant (the other
//! tenants never notice), a retroactive deploy on a run without history is refused with why,
//! and an uploaded transform is in force again after a restart from its checkpoint.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;
use tonic::transport::Channel;
use tonic::{Code, Request};
use weir::dataflow::store::ViewStore;
use weir::plugins::PluginFactory;
use weir::plugins::embedded;
use weir::plugins::registry::{Mode, content_hash};
use weir::plugins::set::WasmPlugins;
use weir::plugins::wasm::Limits;
use weir::row::{Cell, Row};
use weir::run::{Driver, RunConfig, RunResult};
use weir::serve::proto::{self, plugins_client::PluginsClient};
use weir::serve::{Caller, ServeConfig, Server, Tokens};

use crate::common::views_of;

const ADMIN: &str = "transforms-admin";
/// The tenant whose own `normalize-payments` traps; the others run the global one.
const BROKEN: &str = "fix-mallory";
const OTHERS: [&str; 2] = ["fix-acme", "fix-globex"];
const NAME: &str = "normalize-payments";

fn payment(tenant: &str, id: &str) -> String {
    json!({"event_id": id, "tenant_id": tenant, "type": "payment",
           "event_time": "2026-11-21T07:00:05Z", "schema_version": 2,
           "user_id": "u1", "order_id": format!("o-{id}"), "payment_id": format!("p-{id}"),
           "provider": "stripe", "status": "requires_capture", "amount_cents": 1200})
    .to_string()
}

/// Ten payments of each tenant, ids starting with `batch`.
fn batch(batch: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for i in 0..10 {
        for tenant in OTHERS.iter().chain([&BROKEN]) {
            lines.push(payment(tenant, &format!("{batch}-{tenant}-{i}")));
        }
    }
    lines
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    weir::serve::client::bearer(message, token).unwrap()
}

fn vectors(dir: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../plugins/{dir}")),
    )
    .unwrap()
}

/// The global `normalize-payments`, and (with `broken`) [`BROKEN`]'s own that traps, on an
/// engine that disables a plugin for a tenant after three failures in a row.
fn plugins(broken: bool) -> Arc<dyn PluginFactory> {
    let mut set = WasmPlugins::new(Limits {
        disable_after: 3,
        ..Limits::default()
    })
    .unwrap();
    set.add_embedded(NAME, None).unwrap();
    if broken {
        let trap = embedded::component("hostile-trap").unwrap();
        set.add(NAME, &trap, Some(BROKEN)).unwrap();
    }
    Arc::new(set)
}

/// The quarantine reasons of each input id.
fn reasons(result: &RunResult) -> BTreeMap<String, String> {
    result
        .quarantine
        .iter()
        .map(|q| {
            let raw: serde_json::Value = serde_json::from_str(&q.raw).unwrap();
            (
                raw["event_id"].as_str().unwrap().to_owned(),
                q.reason.clone(),
            )
        })
        .collect()
}

/// Every view's rows, but [`BROKEN`]'s.
fn others_rows(result: &RunResult) -> BTreeMap<&'static str, Vec<Row>> {
    views_of(result)
        .into_iter()
        .map(|(view, rows)| {
            let rows = rows
                .into_iter()
                .filter(|r| r.first() != Some(&Cell::from(BROKEN)))
                .collect();
            (view, rows)
        })
        .collect()
}

fn transform_versions(listed: &[proto::PluginVersion]) -> Vec<&proto::PluginVersion> {
    listed
        .iter()
        .filter(|v| v.kind == proto::PluginKind::Transform as i32 && v.name == NAME)
        .collect()
}

#[test]
fn a_transform_disabled_for_one_tenant_is_fixed_and_rolled_back_over_the_api_while_the_others_never_notice()
 {
    let config = RunConfig {
        workers: 1,
        epoch_lines: 10,
        plugins: plugins(true),
        ..RunConfig::default()
    };
    let store = Arc::new(ViewStore::default());
    let mut driver = Driver::start(&config, store.clone()).unwrap();
    let mut tokens = Tokens::default();
    tokens.insert(ADMIN, Caller::Admin).unwrap();
    let serve = ServeConfig {
        grpc: "127.0.0.1:0".parse().unwrap(),
        metrics: None,
        tls: None,
        tokens,
        max_subscriptions_per_token: 4,
    };
    let (server, mut admin) = Server::start_with_transforms(
        &serve,
        store,
        driver.pipeline().rules().clone(),
        driver.transforms().clone(),
    )
    .unwrap();

    // The run loop: applies waiting deploys between batches, and says when a batch is in.
    let (lines, batches) = mpsc::channel::<Vec<String>>();
    let (fed, done) = mpsc::channel::<()>();
    let runner = std::thread::spawn(move || {
        loop {
            admin.drain(&mut driver);
            match batches.recv_timeout(Duration::from_millis(5)) {
                Ok(batch) => {
                    driver.feed(&batch);
                    fed.send(()).unwrap();
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    driver.pipeline().advance();
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        driver.finish().unwrap()
    });
    let feed = |name: &str| {
        lines.send(batch(name)).unwrap();
        done.recv_timeout(Duration::from_secs(60)).unwrap();
    };

    let fixed = embedded::component(NAME).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (deployed, rolled, listed) = runtime.block_on(async {
        let channel = Channel::from_shared(format!("http://{}", server.grpc_addr()))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut plugins = PluginsClient::new(channel);
        let deploy = |mode: proto::DeployMode| proto::DeployRequest {
            name: NAME.into(),
            component: fixed.clone(),
            vectors: vectors("normalize-payments/vectors.jsonl"),
            tenant: Some(BROKEN.into()),
            mode: mode as i32,
        };

        feed("before");

        // Disabled for the broken tenant: List says so on the version in force for it.
        let before = plugins
            .list(with_token(proto::ListPluginsRequest {}, ADMIN))
            .await
            .unwrap()
            .into_inner()
            .versions;
        let in_force_for_broken = before
            .iter()
            .find(|v| v.active && v.tenant.as_deref() == Some(BROKEN))
            .unwrap_or_else(|| panic!("no version in force for {BROKEN} in {before:?}"));
        assert_eq!(in_force_for_broken.disabled_tenants, [BROKEN], "{before:?}");
        assert!(
            before
                .iter()
                .all(|v| v.tenant.is_some() || v.disabled_tenants.is_empty()),
            "the global version is not disabled for anyone: {before:?}"
        );

        // This run keeps no history, so a retroactive transform deploy cannot be honoured.
        let refused = plugins
            .deploy(with_token(deploy(proto::DeployMode::Retroactive), ADMIN))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert!(
            refused.message().contains("retains no admitted events"),
            "{}",
            refused.message()
        );

        let deployed = plugins
            .deploy(with_token(deploy(proto::DeployMode::FromNow), ADMIN))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(deployed.kind, proto::PluginKind::Transform as i32);
        assert_eq!(deployed.hash, content_hash(&fixed));
        feed("fixed");

        let listed = plugins
            .list(with_token(proto::ListPluginsRequest {}, ADMIN))
            .await
            .unwrap()
            .into_inner()
            .versions;
        let rolled = plugins
            .rollback(with_token(
                proto::RollbackRequest {
                    name: NAME.into(),
                    version: None,
                    mode: proto::DeployMode::FromNow as i32,
                },
                ADMIN,
            ))
            .await
            .unwrap()
            .into_inner();
        feed("rolled-back");
        (deployed, rolled, listed)
    });
    drop(lines);
    let result = runner.join().unwrap();

    // Listed: the configured global and broken versions, the refused upload (never
    // deployed) and the fix, each a transform; the fix in force for the broken tenant only.
    let versions = transform_versions(&listed);
    assert_eq!(versions.len(), 4, "{listed:?}");
    let broken = versions
        .iter()
        .find(|v| {
            v.tenant.as_deref() == Some(BROKEN) && v.deployed.first().map(|d| d.time) == Some(0)
        })
        .unwrap_or_else(|| panic!("no configured {BROKEN} version in {listed:?}"));
    assert!(!broken.active, "the fix replaced it: {listed:?}");
    let fix = versions
        .iter()
        .find(|v| v.version == deployed.version)
        .unwrap();
    assert!(
        fix.active && fix.tenant.as_deref() == Some(BROKEN),
        "{fix:?}"
    );
    assert_eq!(fix.hash, content_hash(&fixed));
    assert!(
        fix.disabled_tenants.is_empty(),
        "the fix is healthy: {fix:?}"
    );
    assert_eq!(fix.deployed.len(), 1);
    assert_eq!(fix.deployed[0].time, deployed.effective_time);
    assert_eq!(fix.deployed[0].mode, proto::DeployMode::FromNow as i32);
    let global = versions.iter().find(|v| v.tenant.is_none()).unwrap();
    assert!(
        global.active,
        "a tenant's fix leaves the global version: {listed:?}"
    );
    assert!(
        versions.iter().any(|v| !v.active && v.deployed.is_empty()),
        "the refused upload is listed, never deployed: {listed:?}"
    );

    // The rollback undid the fix: the broken version is back, in the fix's scope.
    assert_eq!(rolled.version, broken.version);
    assert_eq!(rolled.kind, proto::PluginKind::Transform as i32);
    assert!(rolled.effective_time >= deployed.effective_time);

    // The broken tenant: quarantined until the fix (three traps, then disabled), admitted
    // with it, quarantined again once rolled back (the deploy reset its health).
    let reasons = reasons(&result);
    for (stage, admitted) in [("before", false), ("fixed", true), ("rolled-back", false)] {
        let got: Vec<&str> = (0..10)
            .map(|i| {
                reasons
                    .get(&format!("{stage}-{BROKEN}-{i}"))
                    .map_or("admitted", String::as_str)
            })
            .collect();
        let want: Vec<String> = (0..10)
            .map(|i| match (admitted, i < 3) {
                (true, _) => "admitted".to_owned(),
                (false, true) => format!("plugin_error:{NAME}:trap"),
                (false, false) => format!("plugin_error:{NAME}:disabled"),
            })
            .collect();
        assert_eq!(got, want, "{BROKEN}'s {stage} payments");
    }
    assert_eq!(
        reasons.len(),
        20,
        "only the broken tenant's payments are quarantined: {reasons:?}"
    );
    assert_eq!(
        result
            .stats
            .admitted_by
            .get(&(BROKEN.to_owned(), "payment")),
        Some(&10)
    );

    // The other tenants: exactly the views of a run that never had the broken tenant.
    let mut others: Vec<String> = Vec::new();
    for stage in ["before", "fixed", "rolled-back"] {
        others.extend(batch(stage).into_iter().filter(|l| !l.contains(BROKEN)));
    }
    let reference = crate::common::run_lines(
        &others,
        &RunConfig {
            workers: 1,
            plugins: plugins(false),
            ..RunConfig::default()
        },
    );
    assert!(reference.quarantine.is_empty());
    let want = others_rows(&reference);
    assert!(want.values().any(|rows| !rows.is_empty()));
    assert_eq!(others_rows(&result), want);
}

#[test]
fn an_uploaded_transform_is_in_force_after_a_restart_from_its_checkpoint() {
    let dir = crate::common::scratch_dir("faults-transform-restart");
    let config = RunConfig {
        epoch_lines: 500,
        ..RunConfig::default()
    };
    let durable = |driver| super::durable(driver, &dir, &config);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let tenant = "restart-x";
    let mut lines = crate::common::mangled_input(7, 2_000, 50);
    lines.extend((0..5).map(|i| payment(tenant, &format!("first-{i}"))));
    let read_first = lines.len();
    // Read only after the restart (the checkpoint's offsets end before them).
    lines.extend((0..7).map(|i| payment(tenant, &format!("second-{i}"))));
    let trap = embedded::component("hostile-trap").unwrap();
    let vectors = format!(
        "{}\n",
        json!({"input": serde_json::from_str::<serde_json::Value>(&payment("acme", "v1")).unwrap(), "error": true})
    );
    let trapped = format!("plugin_error:{NAME}:trap");

    // A trapping normalize-payments for one tenant, uploaded through the one upload path (as
    // the API does), then a run that checkpoints it.
    let mut first = durable(Driver::start(&config, Arc::default()).unwrap());
    let (version, _) = first
        .deploy_transform_component(NAME, &trap, &vectors, Some(tenant), Mode::FromNow)
        .unwrap_or_else(|e| panic!("{e}"));
    first
        .run(
            &mut super::Lines {
                lines: lines[..read_first].to_vec(),
                next: 0,
            },
            &stop,
        )
        .unwrap();
    let before = first.finish().unwrap();
    assert_eq!(before.stats.quarantined.get(&trapped), Some(&5));

    // The restart validates the component again against its own vectors and runs it for
    // that tenant's new events; the other tenants keep the configured version.
    let mut second = durable(Driver::start(&config, Arc::default()).unwrap());
    second
        .run(&mut super::Lines { lines, next: 0 }, &stop)
        .expect("the run recovers the checkpoint with the uploaded transform");
    let restored = second.transforms().version(version).unwrap();
    assert_eq!(restored.hash, content_hash(&trap));
    assert!(
        second
            .transforms()
            .in_force()
            .iter()
            .any(|f| f.version == version && f.tenant.as_deref() == Some(tenant)),
        "{:?}",
        second.transforms().in_force()
    );
    let after = second.finish().unwrap();
    assert_eq!(
        after.stats.quarantined.get(&trapped),
        Some(&12),
        "{:?}",
        after.stats.quarantined
    );
    assert_eq!(after.stats.admitted, before.stats.admitted);
    let _ = std::fs::remove_dir_all(&dir);
}
