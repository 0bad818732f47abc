//! WebAssembly plugins: hostile components cost only their own events, bad components are
//! refused with a reason, rule failures are dead-lettered, vectors pass.

use std::collections::BTreeMap;

use weir::admit::Admission;
use weir::plugins::set::{ConfigError, WasmPlugins, World};
use weir::plugins::wasm::{Limits, LoadError};
use weir::plugins::{PluginError, PluginFactory};
use weir::row::{Cell, DEAD_LETTERS, Row, view_schema};
use weir::run::RunConfig;

use crate::common::{Expected, assert_views_eq, mangled_input, oracle, run_lines, views_of};
use crate::oracle::{self, Params};

fn payment(tenant: &str, id: &str, user: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","tenant_id":"{tenant}","type":"payment","event_time":"2026-11-21T07:00:00Z","schema_version":2,"user_id":"{user}","order_id":"o-{id}","payment_id":"p-{id}","provider":"stripe","status":"succeeded","amount_cents":100}}"#
    )
}

fn page_view(tenant: &str, id: &str, user: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","tenant_id":"{tenant}","type":"page_view","event_time":"2026-11-21T07:00:00Z","schema_version":1,"user_id":"{user}","url":"/"}}"#
    )
}

/// Acme's ordinary traffic interleaved with Mallory's, where user `evil` triggers the plugin.
fn mixed_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for i in 0..40 {
        lines.push(payment("acme", &format!("a{i}"), "alice"));
        lines.push(page_view("acme", &format!("b{i}"), "bob"));
        lines.push(payment(
            "mallory",
            &format!("m{i}"),
            if i % 10 == 3 { "evil" } else { "mal" },
        ));
        lines.push(page_view(
            "mallory",
            &format!("n{i}"),
            if i % 10 == 7 { "evil" } else { "mal" },
        ));
    }
    lines
}

/// Runs admission with normalize-payments and then `hostile` (optionally scoped to a tenant);
/// returns (admitted events, quarantine reasons by line).
fn admit_with(
    hostile: &str,
    tenant: Option<&str>,
) -> (Vec<weir::event::Event>, Vec<(String, String)>) {
    let mut set = WasmPlugins::new(Limits::default()).unwrap();
    set.add_embedded("normalize-payments", None).unwrap();
    assert_eq!(set.add_embedded(hostile, tenant).unwrap(), World::Transform);
    let mut admission = Admission::new(set.transforms());
    let admitted = admission.admit(&mixed_lines(), 0, false);
    let events = admitted.events;
    let quarantined = admitted
        .rejected
        .into_iter()
        .map(|(_, q)| {
            let v: serde_json::Value = serde_json::from_str(&q.raw).unwrap();
            (v["event_id"].as_str().unwrap().to_owned(), q.reason)
        })
        .collect();
    (events, quarantined)
}

/// The ids of Mallory's events with user `evil`, of the given type.
fn evil_ids(kind: &str) -> Vec<String> {
    (0..40)
        .filter_map(|i| match kind {
            "payment" if i % 10 == 3 => Some(format!("m{i}")),
            "page_view" if i % 10 == 7 => Some(format!("n{i}")),
            _ => None,
        })
        .collect()
}

/// Asserts exactly `ids` were quarantined with `reason`, and everything else was admitted with
/// payments normalised.
fn assert_only(
    events: &[weir::event::Event],
    quarantined: &[(String, String)],
    ids: &[String],
    reason: &str,
) {
    let got: Vec<&str> = quarantined.iter().map(|(id, _)| id.as_str()).collect();
    let want: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got_sorted, want_sorted);
    assert!(
        quarantined.iter().all(|(_, r)| r == reason),
        "{quarantined:?}"
    );
    assert_eq!(events.len(), 160 - ids.len());
    for e in events {
        if let weir::event::Body::Payment(p) = &e.body {
            assert_eq!(
                p.status, "captured",
                "normalisation still ran for {}",
                e.event_id
            );
        }
    }
}

#[test]
fn an_infinite_loop_runs_out_of_fuel_on_its_own_events_only() {
    let (events, quarantined) = admit_with("hostile-loop", None);
    assert_only(
        &events,
        &quarantined,
        &evil_ids("payment"),
        "plugin_error:hostile-loop:out_of_fuel",
    );
}

#[test]
fn a_memory_bomb_hits_the_memory_cap() {
    let (events, quarantined) = admit_with("hostile-memory", None);
    let mut ids = evil_ids("payment");
    ids.extend(evil_ids("page_view"));
    assert_only(
        &events,
        &quarantined,
        &ids,
        "plugin_error:hostile-memory:memory_limit",
    );
}

#[test]
fn deep_recursion_overflows_the_stack() {
    let (events, quarantined) = admit_with("hostile-stack", None);
    let mut ids = evil_ids("payment");
    ids.extend(evil_ids("page_view"));
    assert_only(
        &events,
        &quarantined,
        &ids,
        "plugin_error:hostile-stack:stack_overflow",
    );
}

#[test]
fn a_plugin_trapping_on_every_call_costs_only_its_tenant() {
    let (events, quarantined) = admit_with("hostile-trap", Some("mallory"));
    let ids: Vec<String> = (0..40)
        .flat_map(|i| [format!("m{i}"), format!("n{i}")])
        .collect();
    assert_only(
        &events,
        &quarantined,
        &ids,
        "plugin_error:hostile-trap:trap",
    );
    assert!(events.iter().all(|e| e.tenant_id == "acme"));
}

/// Two million copies of an event do not fit the sandbox: the guest fails on the memory cap
/// before the host lifts a single output.
#[test]
fn an_output_too_big_for_the_sandbox_hits_its_memory_cap() {
    let (events, quarantined) = admit_with("hostile-output", None);
    let mut ids = evil_ids("payment");
    ids.extend(evil_ids("page_view"));
    assert_only(
        &events,
        &quarantined,
        &ids,
        "plugin_error:hostile-output:memory_limit",
    );
}

fn add_to_cart(tenant: &str, id: &str, user: &str, quantity: usize) -> String {
    format!(
        r#"{{"event_id":"{id}","tenant_id":"{tenant}","type":"add_to_cart","event_time":"2026-11-21T07:00:00Z","schema_version":1,"user_id":"{user}","sku":"SKU-1","quantity":{quantity},"price_cents":100}}"#
    )
}

/// Outputs that fit the sandbox but pass the host's cap on events per input are lifted and
/// refused by the host: the input fails as `invalid_output` (not on memory or fuel), at the
/// cap it passes whole, and the other events of the batch are untouched.
#[test]
fn outputs_past_the_hosts_cap_per_event_fail_as_invalid_output_and_the_cap_itself_passes() {
    let cap = Limits::default().max_outputs_per_event;
    let mut set = WasmPlugins::new(Limits::default()).unwrap();
    assert_eq!(
        set.add_embedded("hostile-fanout", None).unwrap(),
        World::Transform
    );
    let mut admission = Admission::new(set.transforms());
    let mut lines = mixed_lines();
    let fanouts = [
        ("at-cap", cap),
        ("past-cap", cap + 1),
        ("far-past-cap", 10 * cap),
    ];
    for (i, (id, copies)) in fanouts.iter().enumerate() {
        lines.insert(i * 37, add_to_cart("mallory", id, "fanout", *copies));
    }
    let admitted = admission.admit(&lines, 0, false);
    let mut rejected: Vec<(String, String)> = admitted
        .rejected
        .into_iter()
        .map(|(index, q)| {
            let v: serde_json::Value = serde_json::from_str(&lines[index]).unwrap();
            (v["event_id"].as_str().unwrap().to_owned(), q.reason)
        })
        .collect();
    rejected.sort();
    let refused = "plugin_error:hostile-fanout:invalid_output".to_owned();
    assert_eq!(
        rejected,
        vec![
            ("far-past-cap".to_owned(), refused.clone()),
            ("past-cap".to_owned(), refused),
        ]
    );
    let copies_of = |id: &str| admitted.events.iter().filter(|e| e.event_id == id).count();
    assert_eq!(copies_of("at-cap"), cap);
    // Every ordinary event passed once.
    assert_eq!(admitted.events.len(), 160 + cap);
    assert!(
        mixed_lines().iter().all(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            copies_of(v["event_id"].as_str().unwrap()) == 1
        }),
        "an ordinary event was lost or doubled"
    );
}

#[test]
fn the_error_variants_are_typed() {
    let mut set = WasmPlugins::new(Limits::default()).unwrap();
    for name in [
        "hostile-loop",
        "hostile-memory",
        "hostile-stack",
        "hostile-trap",
    ] {
        set.add_embedded(name, None).unwrap();
    }
    let evil = weir::admit::decode::decode(payment("mallory", "x", "evil").as_bytes()).unwrap();
    let mut transforms = set.transforms();
    let variants: Vec<PluginError> = transforms
        .iter_mut()
        .map(|t| t.apply(vec![evil.clone()]).pop().unwrap().unwrap_err())
        .collect();
    assert_eq!(variants[0], PluginError::OutOfFuel);
    assert_eq!(variants[1], PluginError::MemoryLimit);
    assert_eq!(variants[2], PluginError::StackOverflow);
    assert!(
        matches!(variants[3], PluginError::GuestTrap(_)),
        "{:?}",
        variants[3]
    );
}

#[test]
fn components_that_could_reach_the_outside_or_are_not_wasm_are_refused() {
    let mut set = WasmPlugins::new(Limits::default()).unwrap();
    // A component that imports WASI's filesystem: nothing in the host provides it.
    let wasi = r#"(component
        (import "wasi:filesystem/types@0.2.0" (instance
            (export "open" (func (param "path" string) (result u32)))
        ))
    )"#;
    match set.add("reads-files", wasi.as_bytes(), None) {
        Err(ConfigError::Load {
            name,
            source: LoadError::Imports(imports),
        }) => {
            assert_eq!(name, "reads-files");
            assert!(imports.contains("wasi:filesystem"), "{imports}");
        }
        other => panic!("expected Imports, got {:?}", other.map(|_| ())),
    }
    // A component with the right shape of nothing: refused for not matching either world.
    match set.add("empty", b"(component)", None) {
        Err(ConfigError::NoWorld { detail, .. }) => {
            assert!(detail.contains("transform"), "{detail}")
        }
        other => panic!("expected NoWorld, got {:?}", other.map(|_| ())),
    }
    match set.add("junk", b"\0asm\x0d\x00\x01\x00not a component", None) {
        Err(ConfigError::Load {
            source: LoadError::Malformed(_),
            ..
        }) => {}
        other => panic!("expected Malformed, got {:?}", other.map(|_| ())),
    }
    assert!(set.list().is_empty(), "nothing refused was configured");
}

#[test]
fn a_failing_rule_dead_letters_and_the_views_still_count_every_event() {
    let lines = mangled_input(31, 20_000, 500);
    let mut set = WasmPlugins::defaults().unwrap();
    set.add_embedded("failing-rule", None).unwrap();
    let result = run_lines(
        &lines,
        &RunConfig {
            workers: 2,
            plugins: std::sync::Arc::new(set),
            ..RunConfig::default()
        },
    );
    let oracle = oracle(&lines, &Params::default());
    assert_views_eq(&views_of(&result), &oracle.views, "with a failing rule");
    let (dead, _) = view_schema(DEAD_LETTERS.name).unwrap();
    let mut dead_letters = result.store.read(|p| p.rows(dead));
    dead_letters.sort();
    let want = failing_rule_dead_letters(&oracle, |_, _| true);
    assert!(want.len() > 100, "the input must feed the rules");
    assert_eq!(
        dead_letters.len(),
        want.len(),
        "dead letters vs rule inputs"
    );
    assert_eq!(dead_letters, want);
}

/// The dead letters `failing-rule` leaves, computed from the oracle's admitted events that
/// `judged(tenant, line)` says it judged: one per rule input, and the rules of SPEC §2.6 read
/// every order (`velocity`, `amount_anomaly`) and every payment whose canonical status is
/// `failed` with a device and a card fingerprint (`card_testing`).
fn failing_rule_dead_letters(
    expected: &Expected,
    judged: impl Fn(&str, usize) -> bool,
) -> Vec<Row> {
    let mut rows: Vec<Row> = expected
        .admitted
        .iter()
        .filter(|(line, e)| judged(&e.tenant_id, *line))
        .filter(|(_, e)| match &e.body {
            oracle::Body::OrderPlaced(_) => true,
            oracle::Body::Payment(p) => {
                oracle::canonical_status(&p.provider, &p.status) == "failed"
                    && p.device_id.is_some()
                    && p.card_fingerprint.is_some()
            }
            _ => false,
        })
        .map(|(_, e)| {
            vec![
                Cell::Str(e.tenant_id.clone()),
                Cell::Str("failing_rule".into()),
                Cell::Str(e.event_id.clone()),
                Cell::Str("rejected".into()),
            ]
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn wasm_and_native_plugins_give_the_same_views() {
    let lines = mangled_input(5, 20_000, 800);
    let wasm = views_of(&run_lines(&lines, &RunConfig::default()));
    let native = views_of(&run_lines(&lines, &RunConfig::native()));
    assert_views_eq(&wasm, &native, "wasm vs native");
}

#[test]
fn every_default_plugin_passes_its_vectors() {
    let set = WasmPlugins::defaults().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    for (name, _, _) in set.list() {
        let vectors = std::fs::read_to_string(root.join(&name).join("vectors.jsonl")).unwrap();
        let report = weir::plugins::vectors::check(&set, &name, &vectors).unwrap();
        assert!(report.ok(), "{name}: {:?}", report.failures);
        assert!(report.passed >= 3, "{name} has too few vectors");
    }
}

#[test]
fn a_transform_that_keeps_failing_is_disabled() {
    let limits = Limits {
        disable_after: 10,
        ..Limits::default()
    };
    let mut set = WasmPlugins::new(limits).unwrap();
    set.add_embedded("hostile-trap", Some("mallory")).unwrap();
    let mut admission = Admission::new(set.transforms());
    let admitted = admission.admit(&mixed_lines(), 0, false);
    let events = admitted.events;
    assert_eq!(events.len(), 80, "acme's events all pass");
    let reasons: Vec<String> = admitted
        .rejected
        .into_iter()
        .map(|(_, q)| q.reason)
        .collect();
    assert_eq!(reasons.len(), 80);
    assert!(
        reasons[..10]
            .iter()
            .all(|r| r == "plugin_error:hostile-trap:trap"),
        "{reasons:?}"
    );
    assert!(
        reasons[10..]
            .iter()
            .all(|r| r == "plugin_error:hostile-trap:disabled"),
        "{reasons:?}"
    );
    assert_eq!(
        set.engine().disabled(),
        vec![("hostile-trap".to_owned(), "mallory".to_owned())]
    );
    // Fuel is booked per tenant: mallory's failures never count against acme.
    let fuel = set.engine().fuel_by_tenant();
    assert!(fuel["mallory"] > 0);
    assert!(!fuel.contains_key("acme"));
}

#[test]
fn a_rule_that_keeps_failing_is_retired_at_a_logical_time() {
    let lines = mangled_input(37, 30_000, 500);
    let limits = Limits {
        disable_after: 50,
        ..Limits::default()
    };
    let mut set = WasmPlugins::new(limits).unwrap();
    for name in [
        "normalize-payments",
        "sku-canonicalize",
        "velocity",
        "card-testing",
        "amount-anomaly",
        "failing-rule",
    ] {
        set.add_embedded(name, None).unwrap();
    }
    // In lockstep every logical time is judged before the next one opens, so when the rule
    // is retired depends on the input alone, not on how fast the workers keep up.
    let config = RunConfig {
        workers: 2,
        epoch_lines: 1_000,
        lockstep: true,
        plugins: std::sync::Arc::new(set),
        lateness: None,
        cold: None,
    };
    let mut runner = weir::run::Driver::start(
        &config,
        std::sync::Arc::new(weir::dataflow::store::ViewStore::default()),
    )
    .unwrap();
    let rules = runner.pipeline().rules().clone();
    runner.feed(&lines);
    let result = runner.finish().unwrap();
    let failing = rules
        .list()
        .into_iter()
        .find(|v| v.name == "failing_rule")
        .unwrap();
    let retired: BTreeMap<String, u64> = failing.disabled_for.iter().cloned().collect();
    assert!(!retired.is_empty(), "the failing rule was retired");
    assert!(
        retired.values().all(|t| *t > 0 && *t < 30),
        "retired at {retired:?}"
    );
    let oracle = oracle(&lines, &Params::default());
    assert_views_eq(&views_of(&result), &oracle.views, "with a retired rule");
    let (dead, _) = view_schema(DEAD_LETTERS.name).unwrap();
    let mut dead_letters = result.store.read(|p| p.rows(dead));
    dead_letters.sort();
    // Retired for a tenant at T, the rule still judged that tenant's events admitted before
    // T, and only those: the inputs of its lines before logical time T.
    let judged = |tenant: &str, line: usize| {
        retired
            .get(tenant)
            .is_none_or(|t| line < *t as usize * config.epoch_lines)
    };
    let want = failing_rule_dead_letters(&oracle, judged);
    assert!(
        want.len() >= 50,
        "{} rule inputs before the retirement",
        want.len()
    );
    assert_eq!(
        dead_letters, want,
        "dead letters of a rule retired at {retired:?}"
    );
}

/// A transform that declares the types it reads is never called for the others: no fuel is
/// spent on them, and they pass unchanged.
#[test]
fn a_transform_is_called_only_for_the_types_it_accepts() {
    let mut set = WasmPlugins::new(Limits::default()).unwrap();
    set.add_embedded("normalize-payments", None).unwrap();
    let mut admission = Admission::new(set.transforms());
    let views: Vec<String> = (0..20)
        .map(|i| page_view("acme", &format!("v{i}"), "alice"))
        .collect();
    let passed = admission.admit(&views, 0, false).events;
    assert_eq!(passed.len(), 20);
    assert!(
        set.engine().fuel_by_tenant().is_empty(),
        "page views never enter a payments-only plugin"
    );
    let paid = admission
        .admit(&[payment("globex", "p1", "bob")], 0, false)
        .events;
    let weir::event::Body::Payment(p) = &paid[0].body else {
        panic!("a payment stays a payment")
    };
    assert_eq!(p.status, "captured");
    assert!(set.engine().fuel_by_tenant()["globex"] > 0);
}
