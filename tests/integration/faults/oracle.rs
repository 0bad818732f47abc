//! The oracle's own SPEC §1 validation against weir's admission: line by line, the same
//! verdict (admitted, duplicate, or quarantined with the same reason) on the generator's
//! output, malformed lines of every class included, and on hand-made lines at and past every
//! bound of the contract; admitted events agree on what the views read, card masking
//! included. Neither side's answer is derived from the other's: the oracle reads each line as
//! a `serde_json::Value` with its own checks, weir with its own decoder.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::{Value, json};
use weir::admit::Admission;
use weir::event::Body;
use weir::source::generator::{GenConfig, Generator};

use crate::common::{assert_quarantine_is_the_bad_lines, mangled_input};
use crate::oracle::{self, MAX_CENTS, MAX_QUANTITY};

/// What became of one input line.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    /// Admitted; what the views and the PCI rules read of it.
    Admitted(String),
    Duplicate,
    Quarantined(String),
}

/// The oracle's verdict on each line, deduplicating as SPEC §1 says.
fn oracle_verdicts(lines: &[String]) -> Vec<Verdict> {
    let mut seen = HashSet::new();
    lines
        .iter()
        .map(|line| match oracle::validate(line.as_bytes()) {
            Err(reason) => Verdict::Quarantined(reason),
            Ok(e) if !seen.insert((e.tenant_id.clone(), e.event_id.clone())) => Verdict::Duplicate,
            Ok(e) => Verdict::Admitted(oracle_summary(&e)),
        })
        .collect()
}

fn oracle_summary(e: &oracle::Event) -> String {
    let body = match &e.body {
        oracle::Body::PageView { user_id } => format!("page_view {user_id}"),
        oracle::Body::AddToCart {
            user_id,
            sku,
            quantity,
            price_cents,
        } => format!("add_to_cart {user_id} {sku} {quantity} {price_cents}"),
        oracle::Body::OrderPlaced(o) => format!(
            "order_placed {} {} {:?} {} {} {}",
            o.user_id, o.order_id, o.items, o.total_cents, o.currency, o.discount_cents
        ),
        oracle::Body::OrderCancelled { user_id, order_id } => {
            format!("order_cancelled {user_id} {order_id}")
        }
        oracle::Body::Payment(p) => format!(
            "payment {} {} {} {} {} {} {:?} {:?} {:?}",
            p.user_id,
            p.order_id,
            p.payment_id,
            p.provider,
            p.status,
            p.amount_cents,
            p.device_id,
            p.card_fingerprint,
            p.card
        ),
        oracle::Body::InventoryAdjusted { sku, delta } => {
            format!("inventory_adjusted {sku} {delta}")
        }
    };
    format!(
        "{}/{} v{} at {}: {body}",
        e.tenant_id, e.event_id, e.schema_version, e.time
    )
}

fn weir_summary(e: &weir::event::Event) -> String {
    let body = match &e.body {
        Body::PageView(v) => format!("page_view {}", v.user_id),
        Body::AddToCart(a) => format!(
            "add_to_cart {} {} {} {}",
            a.user_id, a.sku, a.quantity, a.price_cents
        ),
        Body::OrderPlaced(o) => {
            let items: Vec<(String, i64, i64)> = o
                .items
                .iter()
                .map(|i| (i.sku.clone(), i.quantity, i.price_cents))
                .collect();
            format!(
                "order_placed {} {} {items:?} {} {} {}",
                o.user_id, o.order_id, o.total_cents, o.currency, o.discount_cents
            )
        }
        Body::OrderCancelled(c) => format!("order_cancelled {} {}", c.user_id, c.order_id),
        Body::Payment(p) => {
            let card = p.card_bin.clone().zip(p.card_last4.clone());
            format!(
                "payment {} {} {} {} {} {} {:?} {:?} {card:?}",
                p.user_id,
                p.order_id,
                p.payment_id,
                p.provider,
                p.status,
                p.amount_cents,
                p.device_id,
                p.card_fingerprint
            )
        }
        Body::InventoryAdjusted(a) => format!("inventory_adjusted {} {}", a.sku, a.delta),
    };
    format!(
        "{}/{} v{} at {}: {body}",
        e.tenant_id, e.event_id, e.schema_version, e.event_time_ms
    )
}

/// Weir's verdict on each line: its admission with no transform, so that every verdict is the
/// contract's alone. Also returns what its quarantine stored, `(raw, reason)`.
fn weir_verdicts(lines: &[String]) -> (Vec<Verdict>, Vec<(String, String)>) {
    let admitted = Admission::new(Vec::new()).admit(lines, 0, true);
    let mut verdicts = vec![Verdict::Duplicate; lines.len()];
    for (index, event) in &admitted.inputs {
        verdicts[*index] = Verdict::Admitted(weir_summary(event));
    }
    let mut stored = Vec::new();
    for (index, q) in admitted.rejected {
        verdicts[index] = Verdict::Quarantined(q.reason.clone());
        stored.push((q.raw, q.reason));
    }
    (verdicts, stored)
}

/// Panics, listing the lines, wherever the two verdicts differ.
fn assert_same_verdicts(lines: &[String], context: &str) {
    let want = oracle_verdicts(lines);
    let (got, stored) = weir_verdicts(lines);
    let differing: Vec<String> = lines
        .iter()
        .zip(want.iter().zip(&got))
        .filter(|(_, (w, g))| w != g)
        .map(|(line, (w, g))| format!("{line:.300}\n  oracle: {w:?}\n  weir:   {g:?}"))
        .collect();
    assert!(
        differing.is_empty(),
        "{context}: {} of {} lines differ:\n{}",
        differing.len(),
        lines.len(),
        differing[..differing.len().min(20)].join("\n")
    );
    assert_quarantine_is_the_bad_lines(&stored, lines, context);
}

/// A valid v2 event of `ty` with `fields` on top (a `null` removes a member).
fn event(id: &str, ty: &str, fields: Value) -> String {
    let mut v = json!({
        "event_id": id,
        "tenant_id": "acme",
        "type": ty,
        "event_time": "2026-11-21T07:00:00.250+01:00",
        "schema_version": 2,
    });
    let base = match ty {
        "page_view" => json!({"user_id": "u", "url": "/p", "sku": "S", "device_id": "d"}),
        "add_to_cart" => json!({"user_id": "u", "sku": "S", "quantity": 2, "price_cents": 5}),
        "order_placed" => json!({
            "user_id": "u", "order_id": "o", "total_cents": 10, "currency": "EUR",
            "discount_cents": 1, "device_id": "d",
            "items": [{"sku": "S", "quantity": 2, "price_cents": 5}],
        }),
        "order_cancelled" => json!({"user_id": "u", "order_id": "o"}),
        "payment" => json!({
            "user_id": "u", "order_id": "o", "payment_id": "p", "provider": "adyen",
            "status": "Refused", "amount_cents": 10, "device_id": "d", "card_fingerprint": "f",
            "card_number": "4111 1111 1111 1234", "cvv": "321",
        }),
        "inventory_adjusted" => {
            json!({"sku": "S", "delta": -2, "reason": "sold", "warehouse": "w"})
        }
        _ => json!({}),
    };
    for (k, x) in base
        .as_object()
        .unwrap()
        .iter()
        .chain(fields.as_object().unwrap())
    {
        match x {
            Value::Null => {
                v.as_object_mut().unwrap().remove(k);
            }
            _ => v[k] = x.clone(),
        }
    }
    v.to_string()
}

/// Hand-made lines at and past every bound and rule of SPEC §1, each with its own event id.
fn edge_lines() -> Vec<String> {
    let mut cases: Vec<(&str, Value)> = Vec::new();
    let item =
        |q: Value, p: Value| json!({"items": [{"sku": "S", "quantity": q, "price_cents": p}]});
    for (ty, field, lo, hi) in [
        ("add_to_cart", "quantity", 1, MAX_QUANTITY),
        ("add_to_cart", "price_cents", 0, MAX_CENTS),
        ("order_placed", "total_cents", 0, MAX_CENTS),
        ("order_placed", "discount_cents", 0, MAX_CENTS),
        ("payment", "amount_cents", 0, MAX_CENTS),
        ("inventory_adjusted", "delta", -MAX_CENTS, MAX_CENTS),
    ] {
        for v in [lo - 1, lo, hi, hi + 1, i64::MIN, i64::MAX] {
            cases.push((ty, json!({ field: v })));
        }
        cases.push((ty, json!({ field: u64::MAX })));
        cases.push((ty, json!({ field: 1.5 })));
        cases.push((ty, json!({ field: "1" })));
        cases.push((ty, json!({ field: null })));
    }
    for (q, p) in [
        (json!(1), json!(0)),
        (json!(MAX_QUANTITY), json!(MAX_CENTS)),
        (json!(0), json!(0)),
        (json!(MAX_QUANTITY + 1), json!(0)),
        (json!(1), json!(-1)),
        (json!(1), json!(MAX_CENTS + 1)),
        (json!("1"), json!(0)),
        (json!(1), json!(0.5)),
    ] {
        cases.push(("order_placed", item(q, p)));
    }
    for time in [
        "2000-01-01T00:00:00Z",
        "1999-12-31T23:59:59.999Z",
        "1999-12-31T23:59:59.9999999Z",
        "2000-01-01T01:00:00+01:00",
        "2000-01-01T00:59:59.999+01:00",
        "1999-12-31T19:00:00-05:00",
        "2099-12-31T23:59:59.999Z",
        "2100-01-01T00:00:00Z",
        "2100-01-01T00:30:00+01:00",
        "2100-01-01T01:00:00+01:00",
        "2099-12-31T20:00:00-04:00",
        "2026-11-21t07:00:00.5z",
        "2026-11-21 07:00:00Z",
        "2026-11-21T07:00:00.123456789Z",
        "2026-11-21T07:00:00-00:00",
        "2026-11-21T23:59:60Z",
        "2024-02-29T12:00:00Z",
        "2026-02-29T12:00:00Z",
        "2026-04-31T12:00:00Z",
        "2026-11-21T07:00:00",
        "2026-11-21T07:00:00+0100",
        "2026-11-21T07:00:00+24:00",
        "2026-11-21T24:00:00Z",
        "2026-11-21T07:00Z",
        "2026-11-21",
        "1763710800000",
    ] {
        cases.push(("page_view", json!({ "event_time": time })));
    }
    for version in [
        json!(1),
        json!(2),
        json!(0),
        json!(3),
        json!(-2),
        json!(u64::MAX),
    ] {
        cases.push(("order_placed", json!({ "schema_version": version })));
    }
    for version in [json!("2"), json!(2.0), json!(null), json!(true)] {
        cases.push(("page_view", json!({ "schema_version": version })));
    }
    for id in [
        json!("x".repeat(128)),
        json!("x".repeat(129)),
        json!("ü".repeat(128)),
        json!("ü".repeat(129)),
        json!(""),
        json!(7),
        json!(null),
    ] {
        cases.push(("page_view", json!({ "event_id": id })));
    }
    for tenant in [
        json!("a".repeat(64)),
        json!("a".repeat(65)),
        json!("Acme_2-x"),
        json!("acme corp"),
        json!("acme.eu"),
        json!("äcme"),
        json!(""),
        json!(["acme"]),
    ] {
        cases.push(("page_view", json!({ "tenant_id": tenant })));
    }
    for ty in [
        json!("PageView"),
        json!("refund_issued"),
        json!(""),
        json!(3),
    ] {
        cases.push(("page_view", json!({ "type": ty })));
    }
    for currency in [
        json!("EUR"),
        json!("eur"),
        json!("EURO"),
        json!("E1R"),
        json!(978),
        json!(null),
    ] {
        cases.push(("order_placed", json!({ "currency": currency })));
    }
    // A v1 order's currency and discount are not the contract's: ignored whatever they hold.
    cases.push((
        "order_placed",
        json!({"schema_version": 1, "currency": "eur", "discount_cents": -5}),
    ));
    for items in [json!([]), json!({}), json!("S"), json!([1]), json!([[]])] {
        cases.push(("order_placed", json!({ "items": items })));
    }
    for card in [
        json!("4111111111111234"),
        json!("4111-1111-1111-1234"),
        json!("411111111234"),
        json!("41111111123"),
        json!("4111111111111111234"),
        json!("41111111111111111234"),
        json!("4111 1111 1111 12x4"),
        json!(4_111_111_111_111_234_i64),
        json!(null),
    ] {
        cases.push(("payment", json!({ "card_number": card })));
    }
    cases.push(("payment", json!({"card_number": null, "cvv": null})));
    cases.push(("payment", json!({"cvv": 123})));
    for (ty, field) in [
        ("page_view", "sku"),
        ("page_view", "device_id"),
        ("order_placed", "device_id"),
        ("payment", "device_id"),
        ("payment", "card_fingerprint"),
        ("inventory_adjusted", "warehouse"),
    ] {
        cases.push((ty, json!({ field: null })));
        cases.push((ty, json!({ field: 5 })));
        cases.push((ty, json!({ field: {"a": 1} })));
    }
    for (ty, field) in [
        ("page_view", "user_id"),
        ("page_view", "url"),
        ("add_to_cart", "user_id"),
        ("add_to_cart", "sku"),
        ("order_placed", "user_id"),
        ("order_placed", "order_id"),
        ("order_cancelled", "user_id"),
        ("order_cancelled", "order_id"),
        ("payment", "user_id"),
        ("payment", "order_id"),
        ("payment", "payment_id"),
        ("payment", "provider"),
        ("payment", "status"),
        ("inventory_adjusted", "sku"),
        ("inventory_adjusted", "reason"),
    ] {
        cases.push((ty, json!({ field: null })));
        cases.push((ty, json!({ field: false })));
    }
    // Several faults in one line: the first in SPEC's field order names the reason.
    for fields in [
        json!({"event_id": "", "tenant_id": "a b", "type": "refund"}),
        json!({"tenant_id": "a b", "event_time": "never"}),
        json!({"event_time": "never", "schema_version": 7}),
        json!({"schema_version": 7, "user_id": 1}),
        json!({"user_id": 1, "url": null}),
        json!({"type": 1, "event_time": "never"}),
        json!({"type": "refund", "event_time": "never"}),
        json!({"type": "refund", "schema_version": 7}),
        json!({"type": "refund", "user_id": 1}),
    ] {
        cases.push(("page_view", fields));
    }
    for fields in [
        json!({"items": [{"sku": "A", "quantity": 0, "price_cents": -1}, {}], "total_cents": -1}),
        json!({"items": [{"sku": "A", "quantity": 1, "price_cents": 1}, {"quantity": 1}]}),
        json!({"total_cents": -1, "currency": "x"}),
        json!({"currency": "x", "discount_cents": -1}),
    ] {
        cases.push(("order_placed", fields));
    }
    cases.push(("payment", json!({"amount_cents": -1, "card_number": "1"})));
    cases.push((
        "payment",
        json!({"card_fingerprint": 1, "card_number": "1"}),
    ));
    cases.push((
        "page_view",
        json!({"extra": {"card_number": "4111111111111234"}, "z": [1.5]}),
    ));

    let mut lines: Vec<String> = cases
        .into_iter()
        .enumerate()
        .map(|(i, (ty, fields))| {
            let mut fields = fields;
            // Each case its own event unless it is about the id itself.
            if fields.get("event_id").is_none() {
                fields["event_id"] = json!(format!("edge-{i}"));
            }
            event("", ty, fields)
        })
        .collect();
    let padded = |total: usize| {
        let line = event("edge-size", "page_view", json!({"url": ""}));
        event(
            "edge-size",
            "page_view",
            json!({"url": "x".repeat(total - line.len())}),
        )
    };
    lines.push(padded(oracle::MAX_EVENT_BYTES));
    lines.push(padded(oracle::MAX_EVENT_BYTES + 1).replace("edge-size", "edge-size-2"));
    for junk in [
        "",
        "null",
        "[]",
        "\"event\"",
        "{",
        "{\"event_id\":\"x\"}}",
        "<html>502 Bad Gateway</html>",
    ] {
        lines.push(junk.to_owned());
    }
    lines
}

#[test]
fn the_oracles_validation_and_weirs_admission_agree_on_every_generated_and_edge_line() {
    let mut lines: Vec<String> = Generator::new(GenConfig {
        seed: 2_026,
        tenants: 4,
        start_ms: GenConfig::DEFAULT_START_MS,
    })
    .take(60_000)
    .collect();
    lines.extend(mangled_input(17, 10_000, 300));
    let edges = edge_lines();
    lines.extend(edges.iter().cloned());

    // The input exercises every quarantine class it claims to.
    let reasons: BTreeSet<String> = lines
        .iter()
        .filter_map(|l| oracle::validate(l.as_bytes()).err())
        .collect();
    let classes: BTreeMap<&str, usize> = [
        "invalid_json",
        "missing_field:",
        "wrong_type:",
        "invalid_value:",
        "unknown_type",
        "unsupported_schema_version",
        "oversize",
    ]
    .into_iter()
    .map(|class| {
        (
            class,
            reasons.iter().filter(|r| r.starts_with(class)).count(),
        )
    })
    .collect();
    assert!(classes.values().all(|n| *n > 0), "{classes:?}");
    assert!(reasons.len() >= 40, "{reasons:?}");

    assert_same_verdicts(&edges, "hand-made edge lines");
    assert_same_verdicts(&lines, "generated lines");
}
