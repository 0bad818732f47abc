//! Hot swap: a rule version deployed at a logical time while input streams in, from now on or
//! retroactively, and rolled back; no event lost or doubled in any view.

use std::sync::Arc;

use weir::plugins::embedded;
use weir::plugins::registry::{Mode, content_hash};
use weir::plugins::set::{WasmPlugins, rule_name};
use weir::plugins::wasm::Limits;
use weir::run::{RunConfig, Runner};
use weir::store::ViewStore;

use crate::common::{assert_views_eq, mangled_input, views_of};
use crate::oracle::{Params, compute};

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
    let mut runner = Runner::start(&config, Arc::new(ViewStore::default())).unwrap();
    let v2_bytes = embedded::component("velocity-v2").unwrap();
    let mut set = WasmPlugins::new(Limits::default()).unwrap();
    set.add("velocity", &v2_bytes, None).unwrap();
    let (_, _, _, maker) = weir::plugins::PluginFactory::rule_makers(&set).remove(0);
    let v1 = runner
        .pipeline()
        .rules()
        .list()
        .into_iter()
        .find(|v| v.name == "velocity")
        .unwrap()
        .id;
    let v2 = runner.pipeline().rules().register(
        &rule_name("velocity"),
        content_hash(&v2_bytes),
        None,
        maker,
    );

    runner.feed(&lines[..at]);
    let t = runner.pipeline().deploy_rule(v2, mode).unwrap();
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
    runner.finish()
}

fn oracle(lines: &[String], params: Params) -> crate::oracle::OracleViews {
    let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    compute(&refs, &params)
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
        Params {
            velocity_threshold: 3,
            velocity_switch: None,
        },
    );
    assert_views_eq(&views_of(&result), &want.views, "retroactive v2");
    let v1 = oracle(&lines, Params::default());
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
        Params {
            velocity_threshold: 5,
            velocity_switch: Some((at, 3)),
        },
    );
    assert_views_eq(&views_of(&result), &want.views, "from-now v2");
    let retro = oracle(
        &lines,
        Params {
            velocity_threshold: 3,
            velocity_switch: None,
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
    let want = oracle(&lines, Params::default());
    assert_views_eq(&views_of(&result), &want.views, "rolled back to v1");
}
