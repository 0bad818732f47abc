//! Exactness: every view equals the independent batch oracle.

use std::sync::{Arc, Mutex};

use weir::dataflow::store::ViewStore;
use weir::row::ViewId;
use weir::run::{RunConfig, run_bounded_into};

use weir::dataflow::views::cold::ColdTier;

use weir::output::gold::{Gold, GoldStats};
use weir::output::landing::Landing;
use weir::run::Driver;

use crate::common::{
    Expected, assert_views_eq, mangled_input, oracle, oracle_gold, read_gold, run_lines,
    scratch_dir, views_of,
};
use crate::oracle::{Lateness, Params};

/// Asserts a run's views, admitted, duplicate and quarantine counts are the oracle's; the
/// quarantine counts by reason.
fn assert_run_is_the_oracles(
    result: &weir::run::RunResult,
    oracle: &crate::common::Expected,
    context: &str,
) -> std::collections::BTreeMap<String, usize> {
    assert_views_eq(&views_of(result), &oracle.views, context);
    assert_eq!(result.stats.admitted as usize, oracle.valid, "{context}");
    assert_eq!(
        result.stats.duplicates as usize, oracle.duplicates,
        "{context}"
    );
    let quarantined: std::collections::BTreeMap<String, usize> = result
        .stats
        .quarantined
        .iter()
        .map(|(k, v)| (k.clone(), *v as usize))
        .collect();
    assert_eq!(quarantined, oracle.quarantined, "{context}");
    quarantined
}

#[test]
fn views_equal_the_oracle_on_twenty_seeds() {
    let mut rules_seen = std::collections::BTreeMap::new();
    for seed in 1..=20u64 {
        // Every fifth input is long enough for the slowest fraud pattern (several orders over
        // half an hour of event time) to complete.
        let len = if seed % 5 == 0 { 120_000 } else { 30_000 };
        // Shuffle windows from 500 lines (seconds of event time) to 20,000 (minutes), on top
        // of the generator's own events up to three hours late.
        let window = 500 + (seed as usize * 7_919) % 20_000;
        let lines = mangled_input(seed, len, window);
        let config = RunConfig {
            workers: 1 + (seed % 2) as usize,
            epoch_lines: 700 + seed as usize * 37,
            ..RunConfig::default()
        };
        let result = run_lines(&lines, &config);
        let oracle = oracle(&lines, &Params::default());
        let quarantined = assert_run_is_the_oracles(&result, &oracle, &format!("seed {seed}"));
        // The input must exercise what it claims to: duplicates, malformed lines and alerts.
        assert!(result.stats.duplicates > 0 && !quarantined.is_empty());
        for row in &oracle.views["fraud_alerts"] {
            *rules_seen.entry(row[1].to_string()).or_insert(0) += 1;
        }
    }
    for rule in ["velocity", "card_testing", "amount_anomaly"] {
        assert!(
            rules_seen.contains_key(rule),
            "no {rule} alert in any input: {rules_seen:?}"
        );
    }
}

/// Where a run exports its closed rows: the landing directory, the serve window (ms) and the
/// minutes of event time per gold file.
struct GoldAt<'a> {
    dir: &'a std::path::Path,
    serve: i64,
    span_minutes: u32,
}

/// A run of `lines` with `lateness` (ms) against the oracle applying the same rule at the
/// same logical times: the oracle, the quarantine counts by reason and what went to gold.
/// With `cold`, entities idle that long move to the cold tier and come back when touched.
/// With `gold`, an export pass runs after every 2,000 lines and once at the end: the rows of
/// the closed spans must be in the gold files exactly and the rest live, so that their union
/// is the view.
fn assert_late_run_is_the_oracles(
    lines: &[String],
    workers: usize,
    epoch_lines: usize,
    lateness: i64,
    cold: Option<&ColdTier>,
    gold: Option<GoldAt>,
    context: &str,
) -> (
    crate::common::Expected,
    std::collections::BTreeMap<String, usize>,
    Option<GoldStats>,
) {
    let config = RunConfig {
        workers,
        epoch_lines,
        lateness: Some(lateness),
        cold: cold.cloned(),
        ..RunConfig::default()
    };
    let params = Params {
        lateness: Some(Lateness {
            ms: lateness,
            epoch_lines,
        }),
        ..Params::default()
    };
    let oracle = oracle(lines, &params);
    let Some(gold) = gold else {
        let result = run_lines(lines, &config);
        let quarantined = assert_run_is_the_oracles(&result, &oracle, context);
        return (oracle, quarantined, None);
    };
    let landing = Landing::open(gold.dir.to_str().unwrap()).unwrap();
    let exporter = Gold::open(landing, gold.serve, true)
        .unwrap()
        .with_span(gold.span_minutes);
    let mut driver = Driver::start(&config, Arc::new(ViewStore::default())).unwrap();
    driver.export_gold(exporter, None);
    for chunk in lines.chunks(2_000) {
        driver.feed(chunk);
        driver.pass_gold().unwrap();
    }
    let result = driver.finish().unwrap();
    let span = i64::from(gold.span_minutes) * 60_000;
    let (want_gold, want_live) = oracle_gold(lines, &params, gold.serve, span);
    assert_views_eq(
        &read_gold(gold.dir),
        &want_gold,
        &format!("{context}: gold"),
    );
    let live = Expected {
        views: want_live,
        ..oracle.clone()
    };
    let quarantined = assert_run_is_the_oracles(&result, &live, &format!("{context}: live"));
    (oracle, quarantined, result.gold)
}

/// SPEC §2.7 with 2 to 20 minutes of lateness: the events the generator and the shuffle make
/// later than that are `too_late`, decided per tenant and per logical time exactly as the
/// oracle decides them, and every view is the batch computation over what was admitted.
/// Spans of 1 to 5 minutes more than 1 to 4 minutes behind the watermark go to gold while the
/// run goes, well within the lateness: late events keep changing rows already in gold, and
/// gold plus live must still be every view.
#[test]
fn views_equal_the_oracle_with_minutes_of_lateness_on_twenty_seeds() {
    let (mut too_late, mut moved, mut revived) = (0, 0, 0);
    let (mut exported, mut merged) = (0, 0);
    for seed in 1..=20u64 {
        let minutes = 2 + (seed % 4) as i64 * 6;
        let lateness = minutes * 60_000;
        // About 50 lines a second of event time: 4,800 lines a minute of lateness span 1.6
        // times it, so events later than it are read within the input.
        let len = (minutes as usize * 4_800).max(30_000);
        let window = 500 + (seed as usize * 7_919) % 20_000;
        let lines = mangled_input(seed, len, window);
        let context = format!("seed {seed}, {minutes} min");
        let workers = 1 + (seed % 2) as usize;
        let epoch_lines = 300 + seed as usize * 53;
        // Entities idle for half the lateness go cold.
        let cold = ColdTier::prepare(scratch_dir(&format!("cold-{seed}")), lateness / 2).unwrap();
        let landing = scratch_dir(&format!("gold-{seed}"));
        let gold = GoldAt {
            dir: &landing,
            serve: (1 + (seed % 4) as i64) * 60_000,
            span_minutes: [1, 2, 5][seed as usize % 3],
        };
        let (oracle, quarantined, stats) = assert_late_run_is_the_oracles(
            &lines,
            workers,
            epoch_lines,
            lateness,
            Some(&cold),
            Some(gold),
            &context,
        );
        let stats = stats.expect("a gold export");
        assert!(
            stats.rows > 0 && !oracle.views["sessions"].is_empty(),
            "{context}: nothing went to gold"
        );
        exported += stats.rows;
        merged += stats.merged;
        let late = quarantined.get("too_late").copied().unwrap_or_default();
        assert!(late > 0, "{context}: no event past the lateness");
        too_late += late;
        moved += cold.moved();
        revived += cold.revived();
    }
    assert!(too_late > 1_000, "{too_late} too_late in all");
    assert!(
        moved > 0 && revived > 0,
        "{moved} went cold, {revived} came back"
    );
    assert!(
        exported > 10_000 && merged > 100,
        "{exported} rows went to gold, {merged} files took changes to them"
    );
}

/// SPEC §2.7's closing of state: with inputs spanning about 50 minutes of event time and 2 to
/// 10 minutes of lateness, sessions ended more than 30 minutes before `W − L` close, orders
/// become final and fold into their users' prior totals, and the judge forgets inputs it can
/// no longer re-judge, and idle entities move to the cold tier and back, all while the run
/// goes on. None of it may change a row.
#[test]
fn views_equal_the_oracle_while_sessions_and_fraud_features_close() {
    for (seed, minutes) in [(21u64, 2i64), (22, 5), (23, 10)] {
        let lateness = minutes * 60_000;
        let lines = mangled_input(seed, 250_000, 2_000);
        let context = format!("seed {seed}, {minutes} min");
        // Orders, payments and users untouched for the lateness go cold; a later payment,
        // refund or cancellation of one brings it back.
        let cold =
            ColdTier::prepare(scratch_dir(&format!("cold-closing-{seed}")), lateness).unwrap();
        let (oracle, _, _) = assert_late_run_is_the_oracles(
            &lines,
            2,
            1_000 + seed as usize,
            lateness,
            Some(&cold),
            None,
            &context,
        );
        let sessions = &oracle.views["sessions"];
        assert!(
            sessions.len() > 5_000,
            "{context}: {} sessions",
            sessions.len()
        );
        assert!(
            cold.moved() > 1_000 && cold.revived() > 0,
            "{context}: {} went cold, {} came back",
            cold.moved(),
            cold.revived()
        );
    }
}

#[test]
fn every_published_time_equals_the_oracle_over_its_prefix() {
    let lines = mangled_input(99, 15_000, 600);
    let epoch_lines = 500;
    let snapshots = Arc::new(Mutex::new(Vec::new()));
    let store = Arc::new(ViewStore::default());
    let sink = snapshots.clone();
    store.observe(move |published| sink.lock().unwrap().push(published.clone()));
    let config = RunConfig {
        workers: 2,
        epoch_lines,
        lockstep: true,
        ..RunConfig::default()
    };
    run_bounded_into(&config, store, lines.join("\n").as_bytes()).unwrap();
    let snapshots = snapshots.lock().unwrap();
    // Lockstep publishes every time: 30 closed times plus the final one.
    assert!(
        snapshots.len() >= lines.len() / epoch_lines,
        "{}",
        snapshots.len()
    );
    let mut previous = None;
    for snapshot in snapshots.iter() {
        let as_of = snapshot.as_of.unwrap();
        assert!(previous < Some(as_of), "as_of must move forward");
        previous = Some(as_of);
        let upto = ((as_of as usize + 1) * epoch_lines).min(lines.len());
        let want = oracle(&lines[..upto], &Params::default());
        let got = ViewId::VIEWS
            .into_iter()
            .map(|v| (v.name(), snapshot.rows(v)))
            .collect();
        assert_views_eq(&got, &want.views, &format!("as_of {as_of}"));
        // Every row of a consistent view has multiplicity one.
        for view in &snapshot.views {
            assert!(view.values().all(|c| *c == 1));
        }
    }
}

#[test]
fn worker_count_does_not_change_any_row() {
    let lines = mangled_input(7, 20_000, 500);
    let one = views_of(&run_lines(
        &lines,
        &RunConfig {
            workers: 1,
            ..RunConfig::default()
        },
    ));
    for workers in [2, 3] {
        let many = views_of(&run_lines(
            &lines,
            &RunConfig {
                workers,
                ..RunConfig::default()
            },
        ));
        assert_views_eq(&many, &one, &format!("{workers} workers vs 1"));
    }
}
