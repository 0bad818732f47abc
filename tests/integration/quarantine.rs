//! Quarantine reasons, deduplication and PCI masking, end to end.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use weir::plugins::embedded;
use weir::row::{Cell, GMV_MINUTE, view_schema};
use weir::run::RunConfig;

use crate::common::{
    Landed, WeirProcess, assert_landed_events_are_masked, assert_no_card_data,
    assert_quarantine_is_the_bad_lines, card_numbers, mangled_input, oracle, parquet_files,
    read_parquet, run_lines, scratch_dir,
};
use crate::oracle::Params;

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

/// A payment with card data; `fields` go on top (a `null` removes a member).
fn card_payment(id: &str, fields: serde_json::Value) -> String {
    let mut v = serde_json::json!({
        "event_id": id, "tenant_id": "acme", "type": "payment",
        "event_time": "2026-11-21T07:00:30Z", "schema_version": 2, "user_id": "u-card",
        "order_id": format!("o-{id}"), "payment_id": format!("p-{id}"), "provider": "stripe",
        "status": "payment_failed", "amount_cents": 1999, "device_id": "d-card",
        "card_fingerprint": format!("fp-{id}"), "cvv": "737",
    });
    for (k, x) in fields.as_object().unwrap() {
        match x {
            serde_json::Value::Null => {
                v.as_object_mut().unwrap().remove(k);
            }
            _ => v[k] = x.clone(),
        }
    }
    v.to_string()
}

/// The raw landing under `out`, read back by column name.
fn landed(out: &Path) -> Vec<Landed> {
    let mut rows = Vec::new();
    for file in parquet_files(&out.join("raw")) {
        let (names, cells) = read_parquet(&file);
        let column = |name: &str| names.iter().position(|n| n == name).unwrap();
        let (t, id, kind, time, event) = (
            column("tenant_id"),
            column("event_id"),
            column("type"),
            column("event_time_ms"),
            column("event"),
        );
        for row in cells {
            let text = |i: usize| match &row[i] {
                Cell::Str(s) => s.clone(),
                other => panic!("{}: {other:?} is not text", file.display()),
            };
            let Cell::Int(ms) = row[time] else {
                panic!("{}: event_time_ms is not an integer", file.display())
            };
            rows.push(Landed {
                tenant_id: text(t),
                event_id: text(id),
                kind: text(kind),
                event_time_ms: ms,
                event: text(event),
            });
        }
    }
    rows
}

/// Every file a run wrote, as text: each Parquet file's cells, any other file's bytes.
fn texts_under(dir: &Path, into: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            texts_under(&path, into);
        } else if path.extension().is_some_and(|e| e == "parquet") {
            let (_, rows) = read_parquet(&path);
            for row in rows {
                for cell in row {
                    into.push((path.display().to_string(), cell.to_string()));
                }
            }
        } else {
            let bytes = std::fs::read(&path).unwrap();
            into.push((
                path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
}

/// A bounded `weir run` over generated input with card data (and hand-made lines carrying
/// cards in every place a line can go), with a rule that fails on every input so that card
/// payments reach the dead letters too: no card number or cvv appears in the raw landing,
/// the quarantine, the dead letters, the views, any other file or the log. The raw landing
/// holds each admitted event once with the oracle's `card_bin` and `card_last4`, and the
/// quarantine holds each bad line whole but for its card data.
#[test]
fn no_card_number_or_cvv_reaches_raw_quarantine_dead_letters_views_or_the_log() {
    let dir = scratch_dir("quarantine-pci");
    let mut lines = mangled_input(11, 40_000, 500);
    let handmade = [
        // Admitted, a failed payment with a device and a fingerprint: a rule input.
        card_payment("pci-grouped", json!({"card_number": "4000 0566 5566 5556"})),
        // Admitted; a card in an unknown extra field is not kept either.
        card_payment(
            "pci-nested",
            json!({"card_number": "5555-5555-5555-4444",
                   "gateway": {"card_number": "6011111111111117", "cvv": "999"}}),
        ),
        // Quarantined as JSON: masked field by field.
        card_payment(
            "pci-bad-amount",
            json!({"card_number": "5105105105105100", "amount_cents": -1}),
        ),
        // Quarantined as text: cut after the card and the cvv.
        {
            let line = card_payment("pci-cut", json!({"card_number": "378282246310005"}));
            line[..line.find("\"user_id\"").unwrap()].to_owned()
        },
        // Quarantined: a card number that cannot be masked is not admitted.
        card_payment(
            "pci-unmaskable",
            json!({"card_number": "4111 1111 1111 111X"}),
        ),
    ];
    lines.extend(handmade.iter().cloned());
    let cards = card_numbers(&lines);
    assert!(cards.len() > 20, "the input must carry card numbers");
    for line in &handmade[..4] {
        assert!(
            cards.iter().any(|c| line.contains(&c[c.len() - 4..])),
            "{line}"
        );
    }
    let expected = oracle(&lines, &Params::default());
    let admitted: BTreeSet<&str> = expected
        .admitted
        .iter()
        .map(|(_, e)| e.event_id.as_str())
        .collect();
    assert!(admitted.contains("pci-grouped") && admitted.contains("pci-nested"));
    assert!(!admitted.contains("pci-bad-amount") && !admitted.contains("pci-unmaskable"));

    let input = dir.join("events.ndjson");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let rule = dir.join("failing-rule.wasm");
    std::fs::write(&rule, embedded::component("failing-rule").unwrap()).unwrap();
    let out = dir.join("out");
    let args = [
        "run".to_owned(),
        "--input".to_owned(),
        input.display().to_string(),
        "--out".to_owned(),
        out.display().to_string(),
        "--workers".to_owned(),
        "2".to_owned(),
        "--plugin".to_owned(),
        format!("failing-rule={}", rule.display()),
    ];
    let log = WeirProcess::spawn(&args, &dir, "weir").wait_success(Duration::from_secs(300));

    // Every place a card could land holds something to check.
    let raw = landed(&out);
    assert_landed_events_are_masked(&raw, &expected, "raw landing");
    let (names, rows) = read_parquet(&out.join("quarantine.parquet"));
    assert_eq!(names, ["raw", "reason"]);
    let stored: Vec<(String, String)> = rows
        .into_iter()
        .map(|row| match &row[..] {
            [Cell::Str(raw), Cell::Str(reason)] => (raw.clone(), reason.clone()),
            other => panic!("unexpected quarantine row {other:?}"),
        })
        .collect();
    assert_quarantine_is_the_bad_lines(&stored, &lines, "quarantine.parquet");
    let (_, dead) = read_parquet(&out.join("dead_letters.parquet"));
    assert!(
        dead.iter()
            .any(|row| row[2] == Cell::Str("pci-grouped".into())),
        "the card payment was dead-lettered"
    );

    let mut texts = vec![("the log".to_owned(), log)];
    texts_under(&out, &mut texts);
    assert!(
        texts
            .iter()
            .any(|(file, _)| file.ends_with("dead_letters.parquet"))
    );
    assert!(texts.iter().any(|(file, _)| file.contains("/raw/")));
    for (file, text) in &texts {
        assert_no_card_data(text, &cards, file);
    }
}
