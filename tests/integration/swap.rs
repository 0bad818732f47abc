//! Hot swap: a rule version deployed at a logical time while input streams in, from now on or
//! retroactively, and rolled back; no event lost or doubled in any view.

use std::sync::Arc;

use weir::dataflow::store::ViewStore;
use weir::plugins::embedded;
use weir::plugins::registry::{Mode, content_hash};
use weir::run::{Driver, RunConfig};

use crate::common::{assert_views_eq, mangled_input, oracle, views_of};
use crate::oracle::Params;

/// What a run with a swap of `velocity` to threshold 3 at line `at` publishes; then, when
/// `rollback`, the first version redeployed retroactively at line `rollback_at`.
fn run_with_swap(
    lines: &[String],
    at: usize,
    mode: Mode,
    rollback_at: Option<usize>,
) -> weir::run::RunResult {
    let config = RunConfig {
        workers: 2,
        epoch_lines: 1_000,
        ..RunConfig::default()
    };
    let mut runner = Driver::start(&config, Arc::new(ViewStore::default())).unwrap();
    let v2_bytes = embedded::component("velocity-v2").unwrap();
    let v2_vectors = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../plugins/testdata/velocity-v2/vectors.jsonl"),
    )
    .unwrap();
    // v1's vectors say 4 orders raise nothing: v2 must be refused on them.
    let v1_vectors = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/velocity/vectors.jsonl"),
    )
    .unwrap();
    let refused =
        runner
            .pipeline()
            .deploy_rule_component("velocity", &v2_bytes, &v1_vectors, None, mode);
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("fails its test vectors")
    );
    let v1 = runner
        .pipeline()
        .rules()
        .list()
        .into_iter()
        .find(|v| v.name == "velocity")
        .unwrap()
        .id;

    runner.feed(&lines[..at]);
    let (v2, t) = runner
        .pipeline()
        .deploy_rule_component("velocity", &v2_bytes, &v2_vectors, None, mode)
        .unwrap();
    assert_eq!(listed_hash(&mut runner, v2), content_hash(&v2_bytes));
    assert!(
        t > 0,
        "the swap happens at a logical time while input streams"
    );
    let rest_end = rollback_at.unwrap_or(lines.len());
    runner.feed(&lines[at..rest_end]);
    if rollback_at.is_some() {
        runner
            .pipeline()
            .deploy_rule(v1, Mode::Retroactive)
            .unwrap();
        runner.feed(&lines[rest_end..]);
    }
    // Every version stays listed, with the times it was deployed at.
    let listed = runner.pipeline().rules().list();
    assert_eq!(listed[v2 as usize].deployed, vec![(t, mode)]);
    runner.finish().unwrap()
}

fn listed_hash(runner: &mut Driver, version: u64) -> String {
    runner.pipeline().rules().version(version).unwrap().hash
}

/// The input, and the line from which a deploy at a logical-time boundary takes effect.
fn input() -> (Vec<String>, usize) {
    (mangled_input(41, 60_000, 800), 30_000)
}

#[test]
fn retroactive_swap_rejudges_every_event() {
    let (lines, at) = input();
    let result = run_with_swap(&lines, at, Mode::Retroactive, None);
    let want = oracle(
        &lines,
        &Params {
            velocity_threshold: 3,
            velocity_switch: None,
            ..Params::default()
        },
    );
    assert_views_eq(&views_of(&result), &want.views, "retroactive v2");
    let v1 = oracle(&lines, &Params::default());
    assert_ne!(
        want.views["fraud_alerts"], v1.views["fraud_alerts"],
        "the swap must matter"
    );
}

#[test]
fn from_now_swap_judges_only_later_events() {
    let (lines, at) = input();
    let result = run_with_swap(&lines, at, Mode::FromNow, None);
    let want = oracle(
        &lines,
        &Params {
            velocity_threshold: 5,
            velocity_switch: Some((at, 3)),
            ..Params::default()
        },
    );
    assert_views_eq(&views_of(&result), &want.views, "from-now v2");
    let retro = oracle(
        &lines,
        &Params {
            velocity_threshold: 3,
            velocity_switch: None,
            ..Params::default()
        },
    );
    assert_ne!(
        want.views["fraud_alerts"], retro.views["fraud_alerts"],
        "modes must differ"
    );
}

#[test]
fn rollback_restores_the_first_versions_results() {
    let (lines, at) = input();
    let result = run_with_swap(&lines, at, Mode::FromNow, Some(45_000));
    let want = oracle(&lines, &Params::default());
    assert_views_eq(&views_of(&result), &want.views, "rolled back to v1");
}

/// A run whose transforms lack `normalize-payments` until it is swapped in at line `at`.
fn run_with_transform_swap(lines: &[String], at: usize, mode: Mode) -> weir::run::RunResult {
    let mut set =
        weir::plugins::set::WasmPlugins::new(weir::plugins::wasm::Limits::default()).unwrap();
    for name in [
        "sku-canonicalize",
        "velocity",
        "card-testing",
        "amount-anomaly",
    ] {
        set.add_embedded(name, None).unwrap();
    }
    let config = RunConfig {
        workers: 2,
        epoch_lines: 1_000,
        plugins: Arc::new(set),
        ..RunConfig::default()
    };
    let mut runner = Driver::start(&config, Arc::new(ViewStore::default())).unwrap();
    runner.retain_history();
    runner.feed(&lines[..at]);
    let mut normalize =
        weir::plugins::set::WasmPlugins::new(weir::plugins::wasm::Limits::default()).unwrap();
    normalize.add_embedded("normalize-payments", None).unwrap();
    let transform = weir::plugins::PluginFactory::transforms(&normalize).remove(0);
    let t = runner.swap_transform(transform, mode).unwrap();
    assert_eq!(t as usize, at / 1_000);
    runner.feed(&lines[at..]);
    runner.finish().unwrap()
}

#[test]
fn retroactive_transform_swap_reprocesses_every_retained_event() {
    let (lines, at) = input();
    let result = run_with_transform_swap(&lines, at, Mode::Retroactive);
    let want = oracle(&lines, &Params::default());
    assert_views_eq(
        &views_of(&result),
        &want.views,
        "normalize-payments swapped in retroactively",
    );
    assert_eq!(
        result.stats.admitted as usize, want.valid,
        "no event lost or doubled"
    );
}

#[test]
fn from_now_transform_swap_leaves_earlier_events_as_they_were() {
    let (lines, at) = input();
    let result = run_with_transform_swap(&lines, at, Mode::FromNow);
    let (view, _) = weir::row::view_schema("payment_status").unwrap();
    let statuses: std::collections::BTreeSet<String> = result
        .store
        .read(|p| p.rows(view))
        .into_iter()
        .map(|r| r[2].to_string())
        .collect();
    // Payments whose latest event came before the swap keep the provider's word; later ones
    // are canonical.
    assert!(
        statuses.contains("succeeded") || statuses.contains("Settled"),
        "{statuses:?}"
    );
    assert!(statuses.contains("captured"), "{statuses:?}");
    let want = oracle(&lines, &Params::default());
    assert_eq!(
        result.stats.admitted as usize, want.valid,
        "no event lost or doubled"
    );
}
