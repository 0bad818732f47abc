//! Quarantine reasons, deduplication and PCI masking, end to end.

use weir::row::{Cell, GMV_MINUTE, view_schema};
use weir::run::RunConfig;

use crate::common::run_lines;

const ENV: &str = r#""tenant_id":"acme","event_time":"2026-11-21T07:00:00Z","schema_version":2"#;

fn order(event_id: &str, tenant: &str, total: i64) -> String {
    format!(
        r#"{{"event_id":"{event_id}","tenant_id":"{tenant}","type":"order_placed","event_time":"2026-11-21T07:00:10Z","schema_version":2,"user_id":"u1","order_id":"o-{event_id}","items":[{{"sku":"S1","quantity":1,"price_cents":{total}}}],"total_cents":{total},"currency":"EUR"}}"#
    )
}

#[test]
fn every_reason_reaches_the_quarantine_and_nothing_else_counts() {
    let cases: Vec<(String, &str)> = vec![
        ("{\"event_id\":".into(), "invalid_json"),
        ("\u{fffd}\u{0} not json".into(), "invalid_json"),
        (
            format!(r#"{{{ENV},"type":"page_view","url":"/"}}"#)
                .replace("\"tenant_id\"", "\"event_id\":\"e1\",\"tenant_id\""),
            "missing_field:user_id",
        ),
        (
            format!(r#"{{"event_id":"e2",{ENV},"type":"page_view","user_id":5,"url":"/"}}"#),
            "wrong_type:user_id",
        ),
        (
            format!(
                r#"{{"event_id":"e3",{ENV},"type":"add_to_cart","user_id":"u","sku":"s","quantity":0,"price_cents":1}}"#
            ),
            "invalid_value:quantity",
        ),
        (
            format!(r#"{{"event_id":"e4",{ENV},"type":"refund_issued"}}"#),
            "unknown_type",
        ),
        (
            format!(r#"{{"event_id":"e5",{ENV},"type":"page_view","user_id":"u","url":"/"}}"#)
                .replace("\"schema_version\":2", "\"schema_version\":3"),
            "unsupported_schema_version",
        ),
        (
            format!(
                r#"{{"event_id":"e6",{ENV},"type":"page_view","user_id":"u","url":"{}"}}"#,
                "x".repeat(70_000)
            ),
            "oversize",
        ),
    ];
    let mut lines: Vec<String> = cases.iter().map(|(l, _)| l.clone()).collect();
    lines.push(order("ok1", "acme", 100));
    let result = run_lines(&lines, &RunConfig::default());
    assert_eq!(result.stats.admitted, 1);
    assert_eq!(result.quarantine.len(), cases.len());
    for ((line, reason), q) in cases.iter().zip(&result.quarantine) {
        assert_eq!(q.reason, *reason, "{line:.80}");
    }
    // Whole inputs are kept (the oversize one too).
    assert_eq!(result.quarantine[7].raw.len(), cases[7].0.len());
    assert_eq!(result.quarantine[0].raw, cases[0].0);
}

#[test]
fn first_valid_copy_wins_per_tenant_and_event_id() {
    let lines = vec![
        "{\"event_id\":\"d1\", broken".to_owned(), // invalid: does not claim the id
        order("d1", "acme", 700),
        order("d1", "acme", 900),   // later copy with other content: dropped
        order("d1", "globex", 500), // same id, other tenant: counts
        order("d1", "acme", 700),   // exact retry: dropped
    ];
    let result = run_lines(
        &lines,
        &RunConfig {
            workers: 2,
            ..RunConfig::default()
        },
    );
    assert_eq!(result.stats.duplicates, 2);
    assert_eq!(result.stats.admitted, 2);
    let (gmv, _) = view_schema(GMV_MINUTE.name).unwrap();
    let rows = result.store.read(|p| p.rows(gmv));
    let totals: Vec<(Cell, Cell)> = rows.iter().map(|r| (r[0].clone(), r[4].clone())).collect();
    assert_eq!(
        totals,
        vec![
            (Cell::Str("acme".into()), Cell::Int(700)),
            (Cell::Str("globex".into()), Cell::Int(500)),
        ]
    );
}
