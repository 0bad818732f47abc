//! One tenant's plugins and failures are that tenant's alone: a tenant's own version of a
//! rule or transform replaces the global one for that tenant only (from now and
//! retroactively, other tenants keep theirs); plugin health is counted per (plugin, tenant);
//! and a rule uploaded while running is booked on the same health record, so when it keeps
//! failing on one tenant's events it is retired for that tenant and listed as such.

use std::sync::Arc;

use weir::admit::Admission;
use weir::dataflow::pipeline::{Pipeline, PipelineConfig};
use weir::dataflow::store::ViewStore;
use weir::plugins::registry::{
    Deployment, Mode, RuleMaker, RuleRegistry, RuleSpec, Split, VersionId,
};
use weir::plugins::set::WasmPlugins;
use weir::plugins::wasm::Limits;
use weir::plugins::{Alert, PluginError, PluginFactory, Rule, RuleInput, embedded};
use weir::row::{Cell, ViewId};

struct Silent;

impl Rule for Silent {
    fn name(&self) -> &str {
        "silent"
    }
    fn evaluate(&mut self, batch: &[RuleInput]) -> Vec<Result<Vec<Alert>, PluginError>> {
        batch.iter().map(|_| Ok(vec![])).collect()
    }
}

fn spec(name: &str, hash: &str, tenant: Option<&str>) -> RuleSpec {
    let maker: RuleMaker = Arc::new(|| Box::new(Silent) as Box<dyn Rule>);
    RuleSpec {
        name: name.into(),
        hash: hash.into(),
        tenant: tenant.map(str::to_owned),
        maker,
    }
}

/// The versions judging an event of `tenant` admitted at `admitted` (whatever its time).
fn judges(active: &[Deployment], tenant: &str, admitted: u64) -> Vec<VersionId> {
    judges_at(active, tenant, admitted, 0)
}

/// The versions judging an event of `tenant` at `time` admitted at `admitted`.
fn judges_at(active: &[Deployment], tenant: &str, admitted: u64, time: i64) -> Vec<VersionId> {
    let mut versions: Vec<VersionId> = active
        .iter()
        .filter(|d| d.judges(tenant, admitted, time))
        .map(|d| d.version)
        .collect();
    versions.sort();
    versions
}

#[test]
fn a_tenants_own_rule_version_replaces_the_global_one_for_that_tenant_only() {
    let registry = RuleRegistry::default();
    let global = registry.register(spec("velocity", "g1", None));
    let acme = registry.register(spec("velocity", "a1", Some("acme")));
    let global2 = registry.register(spec("velocity", "g2", None));
    let acme2 = registry.register(spec("velocity", "a2", Some("acme")));
    let other = registry.register(spec("card_testing", "c1", None));
    registry.deploy(global, Mode::Retroactive, 0, None).unwrap();
    registry.deploy(other, Mode::Retroactive, 0, None).unwrap();

    // acme's own version from time 5: acme's later events are judged by it alone.
    registry.deploy(acme, Mode::FromNow, 5, None).unwrap();
    let active = registry.active();
    assert_eq!(judges(&active, "acme", 4), [global, other]);
    assert_eq!(judges(&active, "acme", 5), [acme, other]);
    assert_eq!(judges(&active, "globex", 9), [global, other]);

    // A new global version from 10 leaves acme's own in place.
    registry.deploy(global2, Mode::FromNow, 10, None).unwrap();
    let active = registry.active();
    assert_eq!(judges(&active, "acme", 4), [global, other]);
    assert_eq!(judges(&active, "acme", 12), [acme, other]);
    assert_eq!(judges(&active, "globex", 9), [global, other]);
    assert_eq!(judges(&active, "globex", 12), [global2, other]);

    // acme's second version, retroactively: every acme event is re-judged by it, and nobody
    // else's judge changes.
    registry.deploy(acme2, Mode::Retroactive, 15, None).unwrap();
    let active = registry.active();
    for t in [0, 4, 5, 12, 20] {
        assert_eq!(judges(&active, "acme", t), [acme2, other], "acme at {t}");
    }
    assert_eq!(judges(&active, "globex", 4), [global, other]);
    assert_eq!(judges(&active, "globex", 20), [global2, other]);

    // A global version deployed retroactively re-judges the other tenants' events; acme
    // keeps its own.
    registry
        .deploy(global, Mode::Retroactive, 20, None)
        .unwrap();
    let active = registry.active();
    assert_eq!(judges(&active, "acme", 3), [acme2, other]);
    assert_eq!(judges(&active, "globex", 12), [global, other]);

    // Retiring the global version for globex (it kept failing on globex's events) stops it
    // judging globex's new events only.
    assert!(!registry.retire("velocity", "globex", 25).is_empty());
    let active = registry.active();
    assert_eq!(judges(&active, "globex", 24), [global, other]);
    assert_eq!(judges(&active, "globex", 25), [other]);
    assert_eq!(judges(&active, "initech", 30), [global, other]);
    assert_eq!(judges(&active, "acme", 30), [acme2, other]);
    let listed = registry.version(global).unwrap();
    assert_eq!(listed.disabled_for, [("globex".to_owned(), 25)]);
    assert_eq!(listed.disabled_at, None);
    // Retiring it again is a no-op.
    assert!(registry.retire("velocity", "globex", 26).is_empty());
}

#[test]
fn with_a_lateness_a_retroactive_version_rejudges_only_the_events_within_it() {
    let registry = RuleRegistry::default();
    let global = registry.register(spec("velocity", "g1", None));
    let global2 = registry.register(spec("velocity", "g2", None));
    let acme = registry.register(spec("velocity", "a1", Some("acme")));
    let global3 = registry.register(spec("velocity", "g3", None));
    registry.deploy(global, Mode::Retroactive, 0, None).unwrap();
    let cutoffs = |acme: i64, globex: i64| vec![("globex".into(), globex), ("acme".into(), acme)];

    // At 10, acme's cutoff is 1,000 ms and globex's 5,000; initech has no watermark yet.
    let split = Split::new(10, cutoffs(1_000, 5_000));
    registry
        .deploy(global2, Mode::Retroactive, 10, Some(split))
        .unwrap();
    let active = registry.active();
    let at = |tenant, admitted, time| judges_at(&active, tenant, admitted, time);
    assert_eq!(at("acme", 3, 999), [global]);
    assert_eq!(at("acme", 3, 1_000), [global2]);
    assert_eq!(at("globex", 3, 4_999), [global]);
    assert_eq!(at("globex", 9, 5_000), [global2]);
    // Admitted from the deploy on: the new version, however old the event.
    assert_eq!(at("globex", 10, 0), [global2]);
    assert_eq!(at("initech", 3, i64::MIN), [global2]);

    // acme's own version at 20, retroactively, acme's cutoff now 3,000: acme's events within
    // it go to acme's version; older ones keep whichever version judged them; globex's keep
    // theirs.
    let split = Split::new(20, cutoffs(3_000, 6_000));
    registry
        .deploy(acme, Mode::Retroactive, 20, Some(split))
        .unwrap();
    let active = registry.active();
    let at = |tenant, admitted, time| judges_at(&active, tenant, admitted, time);
    assert_eq!(at("acme", 3, 999), [global]);
    assert_eq!(at("acme", 3, 2_000), [global2]);
    assert_eq!(at("acme", 15, 2_000), [global2]);
    assert_eq!(at("acme", 15, 3_000), [acme]);
    assert_eq!(at("acme", 25, 0), [acme]);
    assert_eq!(at("globex", 3, 4_999), [global]);
    assert_eq!(at("globex", 15, 0), [global2]);

    // A third global version from now at 30: acme keeps its own.
    registry.deploy(global3, Mode::FromNow, 30, None).unwrap();
    let active = registry.active();
    let at = |tenant, admitted, time| judges_at(&active, tenant, admitted, time);
    assert_eq!(at("globex", 25, 0), [global2]);
    assert_eq!(at("globex", 35, 0), [global3]);
    assert_eq!(at("acme", 35, 0), [acme]);
    assert_eq!(at("acme", 3, 999), [global]);

    one_judge_each(&registry);

    // A lower cutoff than before (a restart with a longer lateness) takes back what it
    // re-judges from the versions that kept it.
    let split = Split::new(40, cutoffs(500, 4_000));
    registry
        .deploy(global2, Mode::Retroactive, 40, Some(split))
        .unwrap();
    let active = registry.active();
    assert_eq!(judges_at(&active, "globex", 3, 3_999), [global]);
    assert_eq!(judges_at(&active, "globex", 3, 4_000), [global2]);
    assert_eq!(judges_at(&active, "acme", 3, 999), [global]);
    one_judge_each(&registry);

    // A split with nothing late re-judges everything, as a run without a lateness (acme's
    // own events stay with acme's versions).
    registry
        .deploy(global, Mode::Retroactive, 50, Some(Split::new(50, vec![])))
        .unwrap();
    let active = registry.active();
    assert_eq!(judges_at(&active, "globex", 3, 0), [global]);
    assert_eq!(judges_at(&active, "globex", 45, 0), [global]);
    assert_eq!(judges_at(&active, "acme", 3, 2_000), [global2]);
    one_judge_each(&registry);
}

/// However the deploys split them, every event has exactly one `velocity` judge.
fn one_judge_each(registry: &RuleRegistry) {
    let active = registry.active();
    for tenant in ["acme", "globex", "initech"] {
        for admitted in [0, 3, 9, 10, 15, 19, 20, 25, 30, 35, 40, 45, 50, 55] {
            for time in [
                i64::MIN,
                0,
                499,
                999,
                1_000,
                2_000,
                3_000,
                3_999,
                4_999,
                5_000,
                9_000,
            ] {
                assert_eq!(
                    judges_at(&active, tenant, admitted, time).len(),
                    1,
                    "{tenant} admitted at {admitted}, event time {time}: {active:#?}"
                );
            }
        }
    }
}

fn payment(tenant: &str, id: &str, status: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","tenant_id":"{tenant}","type":"payment","event_time":"2026-11-21T07:00:00Z","schema_version":2,"user_id":"u-{id}","order_id":"o-{id}","payment_id":"p-{id}","provider":"stripe","status":"{status}","amount_cents":100}}"#
    )
}

fn order(tenant: &str, id: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","tenant_id":"{tenant}","type":"order_placed","event_time":"2026-11-21T07:00:00Z","schema_version":2,"user_id":"u-{id}","order_id":"o-{id}","currency":"EUR","items":[{{"sku":"SKU-1","quantity":1,"price_cents":100}}],"total_cents":100}}"#
    )
}

#[test]
fn a_tenants_own_transform_replaces_the_global_one_for_that_tenant_only() {
    // Raw provider statuses normalize-payments rewrites.
    let lines: Vec<String> = (0..20)
        .flat_map(|i| {
            [
                payment("acme", &format!("a{i}"), "SUCCEEDED"),
                payment("mallory", &format!("m{i}"), "SUCCEEDED"),
            ]
        })
        .collect();
    let acme_events = |set: &WasmPlugins| {
        let mut admission = Admission::new(set.transforms());
        let admitted = admission.admit(&lines, 0, false);
        let acme: Vec<_> = admitted
            .events
            .into_iter()
            .filter(|e| e.tenant_id == "acme")
            .collect();
        (acme, admitted.rejected)
    };
    let mut global = WasmPlugins::new(Limits::default()).unwrap();
    global.add_embedded("normalize-payments", None).unwrap();
    let (normalized, _) = acme_events(&global);
    let (raw, _) = acme_events(&WasmPlugins::new(Limits::default()).unwrap());
    assert_eq!(normalized.len(), 20);
    assert_ne!(normalized, raw, "normalize-payments changes these payments");

    // mallory gets its own normalize-payments (one that traps on everything).
    let mut scoped = global.clone();
    let trap = embedded::component("hostile-trap").unwrap();
    scoped
        .add("normalize-payments", &trap, Some("mallory"))
        .unwrap();
    assert_eq!(
        scoped.list().len(),
        2,
        "the global version stays configured"
    );
    let (acme, rejected) = acme_events(&scoped);
    assert_eq!(acme, normalized, "acme keeps the global version");
    assert_eq!(rejected.len(), 20);
    for (_, q) in &rejected {
        assert!(
            q.reason.starts_with("plugin_error:normalize-payments:"),
            "{}",
            q.reason
        );
    }
}

#[test]
fn one_tenants_failures_disable_a_plugin_for_that_tenant_only() {
    let limits = Limits {
        disable_after: 5,
        ..Limits::default()
    };
    let mut set = WasmPlugins::new(limits).unwrap();
    set.add_embedded("hostile-trap", None).unwrap();
    let mut admission = Admission::new(set.transforms());
    // Ten of health-b's events first: with one count for every tenant, health-a's would be
    // refused as disabled without ever being tried.
    let mut lines: Vec<String> = (0..10)
        .map(|i| payment("health-b", &format!("b{i}"), "succeeded"))
        .collect();
    lines.extend((0..3).map(|i| payment("health-a", &format!("a{i}"), "succeeded")));
    let admitted = admission.admit(&lines, 0, false);
    let reasons = |tenant: &str| -> Vec<String> {
        admitted
            .rejected
            .iter()
            .filter(|(_, q)| q.raw.contains(&format!("\"{tenant}\"")))
            .map(|(_, q)| q.reason.clone())
            .collect()
    };
    let b = reasons("health-b");
    assert_eq!(b.len(), 10);
    assert_eq!(
        b.iter().filter(|r| r.ends_with(":trap")).count(),
        5,
        "{b:?}"
    );
    assert_eq!(
        b.iter().filter(|r| r.ends_with(":disabled")).count(),
        5,
        "{b:?}"
    );
    assert_eq!(
        reasons("health-a"),
        vec!["plugin_error:hostile-trap:trap"; 3]
    );
    assert_eq!(
        set.engine().disabled(),
        [("hostile-trap".to_owned(), "health-b".to_owned())]
    );
    let metrics = weir::metrics::global().encode();
    assert!(
        metrics.contains(r#"weir_plugin_disabled{plugin="hostile-trap",tenant="health-b"} 1"#),
        "{metrics}"
    );
    // A fix for health-b clears health-b's record only.
    set.engine().reset_health("hostile-trap", Some("health-a"));
    assert_eq!(set.engine().disabled().len(), 1);
    set.engine().reset_health("hostile-trap", Some("health-b"));
    assert!(set.engine().disabled().is_empty());
}

#[test]
fn an_uploaded_rule_runs_under_the_configured_limits_and_is_retired_for_the_failing_tenant_only() {
    // The configured engine gives a call almost no fuel: an uploaded rule validated on its
    // own engine passes its vectors, and then runs out of fuel on every event it judges here
    // — if, and only if, it runs on the configured engine and is booked in its health.
    let limits = Limits {
        disable_after: 3,
        // Less than a call of the flat ABI needs to read one event's record.
        base_fuel: 10,
        fuel_per_event: 10,
        ..Limits::default()
    };
    let plugins: Arc<dyn PluginFactory> = Arc::new(WasmPlugins::new(limits).unwrap());
    let store = Arc::new(ViewStore::default());
    let mut pipeline = Pipeline::start(
        PipelineConfig {
            workers: 1,
            plugins,
            lateness: None,
            cold: None,
        },
        store.clone(),
    )
    .unwrap();
    let velocity = embedded::component("velocity").unwrap();
    let vectors = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/velocity/vectors.jsonl"),
    )
    .unwrap();
    let (version, _) = pipeline
        .deploy_rule_component("velocity", &velocity, &vectors, None, Mode::FromNow, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut admission = Admission::new(Vec::new());
    let mut feed = |pipeline: &mut Pipeline, lines: Vec<String>| {
        let epoch = pipeline.epoch();
        pipeline.push(admission.admit(&lines, epoch, false).events);
        let closed = pipeline.advance();
        store.wait_for(closed).unwrap();
    };
    let dead = |tenant: &str| -> Vec<String> {
        store.read(|p| {
            p.rows(ViewId::DeadLetters)
                .into_iter()
                .filter(|row| row[0] == Cell::from(tenant))
                .map(|row| row[3].to_string())
                .collect()
        })
    };
    // quiet-a fails three times: the rule is retired for quiet-a at the next time.
    feed(
        &mut pipeline,
        (0..3)
            .map(|i| order("quiet-a", &format!("qa{i}")))
            .collect(),
    );
    feed(&mut pipeline, Vec::new());
    assert_eq!(dead("quiet-a"), vec!["out_of_fuel"; 3]);
    let listed = pipeline.rules().version(version).unwrap();
    assert_eq!(listed.disabled_for.len(), 1, "{:?}", listed.disabled_for);
    assert_eq!(listed.disabled_for[0].0, "quiet-a");
    // quiet-a's new events are no longer judged; quiet-b's still are.
    feed(
        &mut pipeline,
        (3..6)
            .map(|i| order("quiet-a", &format!("qa{i}")))
            .chain((0..2).map(|i| order("quiet-b", &format!("qb{i}"))))
            .collect(),
    );
    assert_eq!(dead("quiet-a").len(), 3);
    assert_eq!(dead("quiet-b"), vec!["out_of_fuel"; 2]);
    pipeline.finish().unwrap();
}

/// Lines of three tenants: acme's and globex's orders, and initech's.
fn three_tenants() -> Vec<String> {
    let mut lines = Vec::new();
    for i in 0..4 {
        lines.push(order("acme", &format!("acme-{i}")));
        lines.push(order("globex", &format!("globex-{i}")));
        lines.push(order("initech", &format!("initech-{i}")));
    }
    lines
}

#[test]
fn a_tenant_allow_list_quarantines_every_other_tenants_events_as_unknown_tenant() {
    let dir = crate::common::scratch_dir("faults-tenant-allow");
    std::fs::write(dir.join("in.ndjson"), three_tenants().join("\n") + "\n").unwrap();
    std::fs::write(
        dir.join("weir.toml"),
        "[tenants]\nallow = [\"acme\", \"globex\"]\n",
    )
    .unwrap();
    let out = dir.join("out");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--input"])
        .arg(dir.join("in.ndjson"))
        .arg("--out")
        .arg(&out)
        .arg("--config")
        .arg(dir.join("weir.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("unknown_tenant"), "{stderr}");
    let (_, quarantined) = crate::common::read_parquet(&out.join("quarantine.parquet"));
    assert_eq!(quarantined.len(), 4);
    for row in &quarantined {
        assert!(row[0].to_string().contains("\"initech\""), "{row:?}");
        assert_eq!(row[1], Cell::from("unknown_tenant"));
    }
    let (_, gmv) = crate::common::read_parquet(&out.join("views/gmv_minute.parquet"));
    let tenants: std::collections::BTreeSet<String> =
        gmv.iter().map(|row| row[0].to_string()).collect();
    assert_eq!(tenants, ["acme".to_owned(), "globex".to_owned()].into());

    // A listed id that is not a tenant id is refused at start, naming its place.
    std::fs::write(
        dir.join("bad.toml"),
        "[tenants]\nallow = [\"acme\", \"no spaces\"]\n",
    )
    .unwrap();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--input"])
        .arg(dir.join("in.ndjson"))
        .arg("--out")
        .arg(dir.join("out2"))
        .arg("--config")
        .arg(dir.join("bad.toml"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("tenants.allow[1]"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tenants_past_the_metric_label_cap_are_counted_as_other() {
    let dir = crate::common::scratch_dir("faults-tenant-labels");
    std::fs::write(
        dir.join("weir.toml"),
        "[source]\ntenants = 6\n\n[tenants]\nmetric_labels = 2\n",
    )
    .unwrap();
    let config = dir.join("weir.toml");
    let process = crate::common::WeirProcess::start(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--grpc",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--rate",
            "3000",
        ],
        &dir,
        "weir",
    );
    let metrics = process.metrics().expect("metrics are on");
    let scrape = || crate::common::scrape_metrics(metrics);
    let labels = |text: &str| -> std::collections::BTreeSet<String> {
        text.lines()
            .filter(|l| l.starts_with("weir_events_admitted_total{"))
            .filter_map(|l| l.split("tenant=\"").nth(1))
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_owned)
            .collect()
    };
    // Six tenants' events arrive; wait until the folded label shows.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let seen = loop {
        let seen = labels(&scrape());
        if seen.contains("other") || std::time::Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(seen.contains("other"), "{seen:?}");
    let named: Vec<&String> = seen.iter().filter(|t| *t != "other").collect();
    assert!(named.len() <= 2, "{seen:?}");
    drop(process);
    let _ = std::fs::remove_dir_all(&dir);
}
