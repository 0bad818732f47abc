//! Hot swap: a rule version deployed at a logical time while input streams in, from now on or
//! retroactively, and rolled back; no event lost or doubled in any view.

use std::sync::Arc;

use weir::dataflow::store::ViewStore;
use weir::plugins::embedded;
use weir::plugins::registry::{Mode, SavedRules, content_hash};
use weir::plugins::set::upload_rule;
use weir::run::{Driver, RunConfig};
use weir::serve::Deploys;

use crate::common::{assert_views_eq, mangled_input, oracle, views_of};
use crate::oracle::{Lateness, Params};

/// Lines per logical time of the runs here.
const EPOCH_LINES: usize = 1_000;

/// What a run with a swap of `velocity` to threshold 3 at line `at` publishes; then, when
/// `rollback`, the first version redeployed retroactively at line `rollback_at`.
fn run_with_swap(
    lines: &[String],
    at: usize,
    mode: Mode,
    rollback_at: Option<usize>,
) -> weir::run::RunResult {
    run_late_with_swap(lines, at, mode, rollback_at, None).0
}

/// As [`run_with_swap`], on a run with `lateness` (ms); with the rules it ends with (what its
/// checkpoint would hold).
fn run_late_with_swap(
    lines: &[String],
    at: usize,
    mode: Mode,
    rollback_at: Option<usize>,
    lateness: Option<i64>,
) -> (weir::run::RunResult, SavedRules) {
    let config = RunConfig {
        workers: 2,
        epoch_lines: EPOCH_LINES,
        lateness,
        ..RunConfig::default()
    };
    let mut runner = Driver::start(&config, Arc::new(ViewStore::default())).unwrap();
    let v2_bytes = embedded::component("velocity-v2").unwrap();
    let v2_vectors = velocity_v2_vectors();
    // v1's vectors say 4 orders raise nothing: v2 must be refused on them.
    let v1_vectors = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/velocity/vectors.jsonl"),
    )
    .unwrap();
    let refused = runner.deploy_rule_component("velocity", &v2_bytes, &v1_vectors, None, mode);
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
        runner.deploy_rule(v1, Mode::Retroactive).unwrap();
        runner.feed(&lines[rest_end..]);
    }
    // Every version stays listed, with the times it was deployed at.
    let listed = runner.pipeline().rules().list();
    assert_eq!(listed[v2 as usize].deployed, vec![(t, mode)]);
    let rules = runner.pipeline().rules().save();
    (runner.finish().unwrap(), rules)
}

fn velocity_v2_vectors() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../plugins/testdata/velocity-v2/vectors.jsonl"),
    )
    .unwrap()
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
fn retroactive_swap_with_a_lateness_leaves_older_verdicts_standing() {
    // The input spans some 18 minutes of event time: a third of it is past the lateness at
    // the swap.
    let (lines, at) = input();
    let ms = 3 * 60_000;
    let (result, rules) = run_late_with_swap(&lines, at, Mode::Retroactive, None, Some(ms));
    let late = Some(Lateness {
        ms,
        epoch_lines: EPOCH_LINES,
    });
    let want = oracle(
        &lines,
        &Params {
            velocity_switch: Some((at, 3)),
            velocity_retroactive: true,
            lateness: late,
            ..Params::default()
        },
    );
    assert_views_eq(
        &views_of(&result),
        &want.views,
        "retroactive v2 within the lateness",
    );
    // Some orders were re-judged, some kept their verdicts: the split is what was checked.
    for (other, mode) in [(3, None), (5, Some((at, 3)))] {
        let whole = oracle(
            &lines,
            &Params {
                velocity_threshold: other,
                velocity_switch: mode,
                lateness: late,
                ..Params::default()
            },
        );
        assert!(
            whole.views["fraud_alerts"] != want.views["fraud_alerts"],
            "threshold {other} switched {mode:?} must differ"
        );
    }

    // A restart judges its whole input again with the deployments its checkpoint holds: the
    // split they record gives every event the judge it had.
    let config = RunConfig {
        workers: 2,
        epoch_lines: EPOCH_LINES,
        lateness: Some(ms),
        ..RunConfig::default()
    };
    let mut again = Driver::start(&config, Arc::new(ViewStore::default())).unwrap();
    let v2 = embedded::component("velocity-v2").unwrap();
    let vectors = velocity_v2_vectors();
    upload_rule(
        again.pipeline().rules(),
        "velocity",
        v2.into(),
        &vectors,
        None,
    )
    .unwrap();
    again.pipeline().restore_rules(&rules).unwrap();
    again.feed(&lines);
    let replayed = again.finish().unwrap();
    assert_views_eq(
        &views_of(&replayed),
        &want.views,
        "replayed with the deployments",
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
