//! The independent batch oracle for weir's views (SPEC §2).
//!
//! Given the raw input lines in admission order, [`compute`] decodes them, quarantines the bad
//! ones, deduplicates the rest and then computes every view from scratch with plain sorting,
//! grouping and scanning over the whole input — no timely, no differential dataflow, no
//! incremental state.
//!
//! It is deliberately *independent* of the runtime: apart from the decoder
//! (`weir::admit::decode::decode`), the event types (`weir::event`) and the row schemas (`weir::row`),
//! nothing here comes from `weir`. Deduplication, the canonical payment-status table (SPEC §1),
//! and every view and fraud rule are re-implemented here in the most direct form, so that the
//! exactness tests compare two implementations that could only agree by both being right.

use std::collections::{BTreeMap, HashMap, HashSet};

use weir::admit::decode::decode;
use weir::event::{Body, Event, Millis, OrderPlaced, Payment};
use weir::row::{self, Cell, Row};

/// Tunables of the views that tests may vary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// `velocity`: orders of one user within 10 minutes (the flagged one included) that raise
    /// the alert.
    pub velocity_threshold: usize,
    /// `Some((line, threshold))`: orders from input lines at index `line` on are judged with
    /// `threshold` instead (a rule version deployed "from now" at that point of the input).
    pub velocity_switch: Option<(usize, usize)>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            velocity_threshold: 5,
            velocity_switch: None,
        }
    }
}

/// The batch result over one input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OracleViews {
    /// Every view by its schema name (all six always present), rows in schema column order,
    /// each `Vec` sorted.
    pub views: BTreeMap<&'static str, Vec<Row>>,
    /// Valid events that count: decoded successfully and not a duplicate (|E| in SPEC §2).
    pub valid: usize,
    /// Valid events dropped as later copies of an earlier `(tenant_id, event_id)`.
    pub duplicates: usize,
    /// Quarantined lines by reason (`Reason`'s `Display`).
    ///
    /// `valid + duplicates + Σ quarantined` is the number of input lines.
    pub quarantined: BTreeMap<String, usize>,
}

const MINUTE_MS: Millis = 60_000;
const HOUR_MS: Millis = 60 * MINUTE_MS;
const SESSION_GAP_MS: Millis = 30 * MINUTE_MS;
const VELOCITY_WINDOW_MS: Millis = 10 * MINUTE_MS;
const CARD_TESTING_WINDOW_MS: Millis = 5 * MINUTE_MS;
const CARD_TESTING_MIN_FINGERPRINTS: usize = 3;
const ANOMALY_MIN_TOTAL_CENTS: i64 = 100_000;
const ANOMALY_MIN_PRIOR_ORDERS: usize = 3;
const ANOMALY_FACTOR: i128 = 5;

/// The canonical payment status of a provider's word (SPEC §1 table), matched exactly.
pub fn canonical_status(provider: &str, raw: &str) -> &'static str {
    match (provider, raw) {
        ("stripe", "requires_action" | "processing") => "pending",
        ("stripe", "requires_capture") => "authorized",
        ("stripe", "succeeded") => "captured",
        ("stripe", "canceled" | "payment_failed") => "failed",
        ("stripe", "refunded") => "refunded",
        ("adyen", "Received") => "pending",
        ("adyen", "Authorised") => "authorized",
        ("adyen", "SentForSettle" | "Settled") => "captured",
        ("adyen", "Refused" | "Error" | "Cancelled") => "failed",
        ("adyen", "Refunded") => "refunded",
        ("paypal", "PENDING") => "pending",
        ("paypal", "APPROVED") => "authorized",
        ("paypal", "COMPLETED") => "captured",
        ("paypal", "DECLINED" | "VOIDED") => "failed",
        ("paypal", "REFUNDED") => "refunded",
        _ => "unknown",
    }
}

/// A true floor of `t` to a multiple of `unit`, for negative times too.
fn floor_to(t: Millis, unit: Millis) -> Millis {
    t.div_euclid(unit) * unit
}

fn s(v: &str) -> Cell {
    Cell::Str(v.to_string())
}

fn int(v: i64) -> Cell {
    Cell::Int(v)
}

/// An exact sum as an i64 column holds it: at the bound once past it (SPEC §1: no sum may
/// overflow; the defined result is the nearest bound).
fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

fn sum(v: i128) -> Cell {
    Cell::Int(saturate(v))
}

fn count(n: usize) -> Cell {
    Cell::Int(i64::try_from(n).expect("count fits in i64"))
}

/// Computes every view over `lines` (raw input lines in admission order, no newline).
pub fn compute(lines: &[&[u8]], params: &Params) -> OracleViews {
    let mut quarantined: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut events: Vec<Event> = Vec::new();
    let mut line_of: HashMap<(String, String), usize> = HashMap::new();
    let mut duplicates = 0;
    for (index, line) in lines.iter().enumerate() {
        match decode(line) {
            Err(reason) => *quarantined.entry(reason.to_string()).or_default() += 1,
            Ok(ev) => {
                if seen.insert((ev.tenant_id.clone(), ev.event_id.clone())) {
                    line_of.insert((ev.tenant_id.clone(), ev.event_id.clone()), index);
                    events.push(ev);
                } else {
                    duplicates += 1;
                }
            }
        }
    }

    let sessions = sessions(&events);
    let mut views: BTreeMap<&'static str, Vec<Row>> = BTreeMap::new();
    views.insert(row::GMV_MINUTE.name, gmv_minute(&events));
    views.insert(row::PAYMENT_STATUS.name, payment_status(&events));
    views.insert(row::INVENTORY.name, inventory(&events));
    views.insert(row::CONVERSION_HOUR.name, conversion_hour(&sessions));
    views.insert(row::SESSIONS.name, sessions);
    views.insert(
        row::FRAUD_ALERTS.name,
        fraud_alerts(&events, &line_of, params),
    );
    for rows in views.values_mut() {
        rows.sort();
    }

    OracleViews {
        views,
        valid: events.len(),
        duplicates,
        quarantined,
    }
}

fn orders(events: &[Event]) -> impl Iterator<Item = (&Event, &OrderPlaced)> {
    events.iter().filter_map(|e| match &e.body {
        Body::OrderPlaced(o) => Some((e, o)),
        _ => None,
    })
}

fn payments(events: &[Event]) -> impl Iterator<Item = (&Event, &Payment)> {
    events.iter().filter_map(|e| match &e.body {
        Body::Payment(p) => Some((e, p)),
        _ => None,
    })
}

/// `(tenant_id, order_id)` of every order with at least one `order_cancelled`, at any time.
fn cancelled_orders(events: &[Event]) -> HashSet<(&str, &str)> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            Body::OrderCancelled(c) => Some((e.tenant_id.as_str(), c.order_id.as_str())),
            _ => None,
        })
        .collect()
}

/// The latest payment event of each key: greatest `(event_time_ms, event_id)`.
fn latest_payment_by<'a, K: std::hash::Hash + Eq>(
    events: &'a [Event],
    key: impl Fn(&'a Event, &'a Payment) -> K,
) -> HashMap<K, (&'a Event, &'a Payment)> {
    let mut latest: HashMap<K, (&Event, &Payment)> = HashMap::new();
    for (e, p) in payments(events) {
        let k = key(e, p);
        match latest.get(&k) {
            Some((cur, _))
                if (cur.event_time_ms, &cur.event_id) >= (e.event_time_ms, &e.event_id) => {}
            _ => {
                latest.insert(k, (e, p));
            }
        }
    }
    latest
}

/// One `gmv_minute` group's values.
#[derive(Default)]
struct Gmv {
    orders: usize,
    gmv_cents: i128,
    cancelled_orders: usize,
    net_gmv_cents: i128,
}

fn gmv_minute(events: &[Event]) -> Vec<Row> {
    let cancelled = cancelled_orders(events);
    let mut groups: BTreeMap<(&str, &str, Millis), Gmv> = BTreeMap::new();
    for (e, o) in orders(events) {
        let minute = floor_to(e.event_time_ms, MINUTE_MS);
        let g = groups
            .entry((&e.tenant_id, &o.currency, minute))
            .or_default();
        g.orders += 1;
        g.gmv_cents += i128::from(o.total_cents);
        if cancelled.contains(&(e.tenant_id.as_str(), o.order_id.as_str())) {
            g.cancelled_orders += 1;
        } else {
            g.net_gmv_cents += i128::from(o.total_cents);
        }
    }
    groups
        .into_iter()
        .map(|((tenant, currency, minute), g)| {
            vec![
                s(tenant),
                s(currency),
                int(minute),
                count(g.orders),
                sum(g.gmv_cents),
                count(g.cancelled_orders),
                sum(g.net_gmv_cents),
            ]
        })
        .collect()
}

fn payment_status(events: &[Event]) -> Vec<Row> {
    let latest = latest_payment_by(events, |e, p| (e.tenant_id.as_str(), p.payment_id.as_str()));
    let mut groups: BTreeMap<(&str, &str, &str), (usize, i128)> = BTreeMap::new();
    for (e, p) in latest.into_values() {
        let status = canonical_status(&p.provider, &p.status);
        let g = groups
            .entry((&e.tenant_id, &p.provider, status))
            .or_default();
        g.0 += 1;
        g.1 += i128::from(p.amount_cents);
    }
    groups
        .into_iter()
        .map(|((tenant, provider, status), (n, amount))| {
            vec![s(tenant), s(provider), s(status), count(n), sum(amount)]
        })
        .collect()
}

fn inventory(events: &[Event]) -> Vec<Row> {
    let cancelled = cancelled_orders(events);
    let order_status =
        latest_payment_by(events, |e, p| (e.tenant_id.as_str(), p.order_id.as_str()));
    // (on_hand, reserved)
    let mut skus: BTreeMap<(&str, &str), (i128, i128)> = BTreeMap::new();
    for e in events {
        if let Body::InventoryAdjusted(a) = &e.body {
            skus.entry((&e.tenant_id, &a.sku)).or_default().0 += i128::from(a.delta);
        }
    }
    for (e, o) in orders(events) {
        let key = (e.tenant_id.as_str(), o.order_id.as_str());
        let status = match order_status.get(&key) {
            Some((_, p)) => canonical_status(&p.provider, &p.status),
            None => "pending",
        };
        let reserves = !cancelled.contains(&key) && matches!(status, "pending" | "authorized");
        for item in &o.items {
            let entry = skus.entry((&e.tenant_id, &item.sku)).or_default();
            if reserves {
                entry.1 += i128::from(item.quantity);
            }
        }
    }
    skus.into_iter()
        .map(|((tenant, sku), (on_hand, reserved))| {
            vec![
                s(tenant),
                s(sku),
                sum(on_hand),
                sum(reserved),
                // The view's columns are i64: available is what they say, not the exact sum.
                int(saturate(on_hand).saturating_sub(saturate(reserved))),
            ]
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Activity {
    PageView,
    AddToCart,
    Order,
}

fn sessions(events: &[Event]) -> Vec<Row> {
    let mut by_user: BTreeMap<(&str, &str), Vec<(Millis, Activity)>> = BTreeMap::new();
    for e in events {
        let (user, kind) = match &e.body {
            Body::PageView(v) => (&v.user_id, Activity::PageView),
            Body::AddToCart(a) => (&a.user_id, Activity::AddToCart),
            Body::OrderPlaced(o) => (&o.user_id, Activity::Order),
            _ => continue,
        };
        by_user
            .entry((&e.tenant_id, user))
            .or_default()
            .push((e.event_time_ms, kind));
    }

    let mut rows = Vec::new();
    for ((tenant, user), mut acts) in by_user {
        acts.sort();
        // Split the time-sorted activity wherever the gap exceeds 30 minutes.
        let mut start = 0;
        for i in 1..=acts.len() {
            if i < acts.len() && acts[i].0 - acts[i - 1].0 <= SESSION_GAP_MS {
                continue;
            }
            let session = &acts[start..i];
            let of = |k: Activity| session.iter().filter(|a| a.1 == k).count();
            let n_orders = of(Activity::Order);
            rows.push(vec![
                s(tenant),
                s(user),
                int(session[0].0),
                int(session[session.len() - 1].0),
                count(session.len()),
                count(of(Activity::PageView)),
                count(of(Activity::AddToCart)),
                count(n_orders),
                Cell::Bool(n_orders > 0),
            ]);
            start = i;
        }
    }
    rows
}

/// From `sessions` rows (SESSIONS layout).
fn conversion_hour(sessions: &[Row]) -> Vec<Row> {
    let mut groups: BTreeMap<(&str, Millis), (usize, usize)> = BTreeMap::new();
    for r in sessions {
        let (Cell::Str(tenant), Cell::Int(start), Cell::Bool(converted)) = (&r[0], &r[2], &r[8])
        else {
            unreachable!("sessions rows are built above with this layout");
        };
        let g = groups
            .entry((tenant, floor_to(*start, HOUR_MS)))
            .or_default();
        g.0 += 1;
        if *converted {
            g.1 += 1;
        }
    }
    groups
        .into_iter()
        .map(|((tenant, hour), (n, n_converted))| {
            vec![s(tenant), int(hour), count(n), count(n_converted)]
        })
        .collect()
}

fn fraud_alerts(
    events: &[Event],
    line_of: &HashMap<(String, String), usize>,
    params: &Params,
) -> Vec<Row> {
    // (tenant, rule, subject) -> earliest flagged event time
    let mut alerts: BTreeMap<(&str, &'static str, &str), Millis> = BTreeMap::new();
    let mut raise = |tenant, rule, subject, t: Millis| {
        alerts
            .entry((tenant, rule, subject))
            .and_modify(|cur| *cur = (*cur).min(t))
            .or_insert(t);
    };

    // Orders of each user, sorted by time (ties in any order: they are all "at or before").
    // (tenant, user) -> (time, order, event id)
    type UserOrders<'a> = HashMap<(&'a str, &'a str), Vec<(Millis, &'a OrderPlaced, &'a str)>>;
    let mut user_orders: UserOrders = HashMap::new();
    let mut threshold_of: HashMap<(&str, &str), usize> = HashMap::new();
    for (e, o) in orders(events) {
        user_orders
            .entry((&e.tenant_id, &o.user_id))
            .or_default()
            .push((e.event_time_ms, o, &e.event_id));
        let line = line_of[&(e.tenant_id.clone(), e.event_id.clone())];
        let threshold = match params.velocity_switch {
            Some((from, threshold)) if line >= from => threshold,
            _ => params.velocity_threshold,
        };
        threshold_of.insert((&e.tenant_id, &e.event_id), threshold);
    }
    for ((tenant, _), mut list) in user_orders {
        list.sort_by_key(|(t, _, _)| *t);
        let times: Vec<Millis> = list.iter().map(|(t, _, _)| *t).collect();
        let mut prefix_totals: Vec<i128> = vec![0];
        for (_, o, _) in &list {
            prefix_totals.push(prefix_totals[prefix_totals.len() - 1] + i128::from(o.total_cents));
        }
        for &(t, o, event_id) in &list {
            // velocity: orders with time in (t - 10 min, t]
            let upto = times.partition_point(|&x| x <= t);
            let after = times.partition_point(|&x| x <= t - VELOCITY_WINDOW_MS);
            if upto - after >= threshold_of[&(tenant, event_id)] {
                raise(tenant, "velocity", o.order_id.as_str(), t);
            }
            // amount_anomaly: the n orders strictly before t
            if o.total_cents >= ANOMALY_MIN_TOTAL_CENTS {
                let n = times.partition_point(|&x| x < t);
                // The rule sees the prior total as the core hands it: an i64 feature.
                let prior_sum = i128::from(saturate(prefix_totals[n]));
                if n >= ANOMALY_MIN_PRIOR_ORDERS
                    && i128::from(o.total_cents) * n as i128 > ANOMALY_FACTOR * prior_sum
                {
                    raise(tenant, "amount_anomaly", o.order_id.as_str(), t);
                }
            }
        }
    }

    // card_testing: failed payments with a device and a fingerprint, per (tenant, device).
    // (time, payment, fingerprint) of each failure
    type Failure<'a> = (Millis, &'a Payment, &'a str);
    let mut device_failures: HashMap<(&str, &str), Vec<Failure>> = HashMap::new();
    for (e, p) in payments(events) {
        if canonical_status(&p.provider, &p.status) != "failed" {
            continue;
        }
        if let (Some(device), Some(fingerprint)) = (&p.device_id, &p.card_fingerprint) {
            device_failures
                .entry((&e.tenant_id, device))
                .or_default()
                .push((e.event_time_ms, p, fingerprint));
        }
    }
    for ((tenant, _), mut list) in device_failures {
        list.sort_by_key(|(t, _, _)| *t);
        for &(t, p, _) in &list {
            let distinct: HashSet<&str> = list
                .iter()
                .filter(|(x, _, _)| *x > t - CARD_TESTING_WINDOW_MS && *x <= t)
                .map(|(_, _, fp)| *fp)
                .collect();
            if distinct.len() >= CARD_TESTING_MIN_FINGERPRINTS {
                raise(tenant, "card_testing", p.payment_id.as_str(), t);
            }
        }
    }

    alerts
        .into_iter()
        .map(|((tenant, rule, subject), t)| vec![s(tenant), s(rule), s(subject), int(t)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// 2026-01-01T00:00:00Z in epoch milliseconds.
    const BASE: Millis = 1_767_225_600_000;
    const MIN: Millis = MINUTE_MS;

    /// RFC 3339 for `BASE + offset` (offset within the first day).
    fn at(offset: Millis) -> String {
        assert!((0..86_400_000).contains(&offset));
        let (h, rest) = (offset / HOUR_MS, offset % HOUR_MS);
        let (m, rest) = (rest / MIN, rest % MIN);
        let (sec, ms) = (rest / 1000, rest % 1000);
        format!("2026-01-01T{h:02}:{m:02}:{sec:02}.{ms:03}Z")
    }

    fn event(id: &str, ty: &str, offset: Millis, fields: Value) -> String {
        event_at(id, ty, &at(offset), fields)
    }

    fn event_at(id: &str, ty: &str, time: &str, fields: Value) -> String {
        let mut v = json!({
            "event_id": id,
            "tenant_id": "t1",
            "type": ty,
            "event_time": time,
            "schema_version": 1,
        });
        for (k, x) in fields.as_object().unwrap() {
            v[k] = x.clone();
        }
        v.to_string()
    }

    fn page_view(id: &str, user: &str, offset: Millis) -> String {
        event(
            id,
            "page_view",
            offset,
            json!({"user_id": user, "url": "/"}),
        )
    }

    fn order(id: &str, user: &str, order_id: &str, offset: Millis, total: i64) -> String {
        event(
            id,
            "order_placed",
            offset,
            json!({
                "user_id": user,
                "order_id": order_id,
                "items": [{"sku": "sku-1", "quantity": 2, "price_cents": total / 2}],
                "total_cents": total,
            }),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn payment(
        id: &str,
        order_id: &str,
        payment_id: &str,
        offset: Millis,
        provider: &str,
        status: &str,
        amount: i64,
        device_fp: Option<(&str, &str)>,
    ) -> String {
        let mut fields = json!({
            "user_id": "u1",
            "order_id": order_id,
            "payment_id": payment_id,
            "provider": provider,
            "status": status,
            "amount_cents": amount,
        });
        if let Some((device, fp)) = device_fp {
            fields["device_id"] = json!(device);
            fields["card_fingerprint"] = json!(fp);
        }
        event(id, "payment", offset, fields)
    }

    fn run(lines: &[String]) -> OracleViews {
        let lines: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        compute(&lines, &Params::default())
    }

    fn strs(v: &[&str]) -> Vec<Cell> {
        v.iter().map(|x| s(x)).collect()
    }

    fn alert(rule: &str, subject: &str, t: Millis) -> Row {
        vec![s("t1"), s(rule), s(subject), int(t)]
    }

    fn alerts_of(out: &OracleViews, rule: &str) -> Vec<Row> {
        out.views["fraud_alerts"]
            .iter()
            .filter(|r| r[1] == s(rule))
            .cloned()
            .collect()
    }

    #[test]
    fn canonical_table_is_exact() {
        assert_eq!(canonical_status("stripe", "succeeded"), "captured");
        assert_eq!(canonical_status("stripe", "processing"), "pending");
        assert_eq!(canonical_status("adyen", "Authorised"), "authorized");
        assert_eq!(canonical_status("adyen", "authorised"), "unknown");
        assert_eq!(canonical_status("paypal", "VOIDED"), "failed");
        assert_eq!(canonical_status("Stripe", "succeeded"), "unknown");
        assert_eq!(canonical_status("klarna", "PENDING"), "unknown");
    }

    #[test]
    fn empty_input_has_all_views() {
        let out = compute(&[], &Params::default());
        let names: Vec<&str> = row::VIEWS.iter().map(|v| v.name).collect();
        assert_eq!(out.views.keys().copied().collect::<Vec<_>>(), {
            let mut n = names.clone();
            n.sort();
            n
        });
        assert!(out.views.values().all(Vec::is_empty));
        assert_eq!((out.valid, out.duplicates), (0, 0));
    }

    #[test]
    fn quarantine_and_dedup_counts() {
        let lines = vec![
            "not json".to_string(),
            page_view("e1", "u1", 0),
            page_view("e1", "u1", 5 * MIN), // duplicate: dropped, first counts
            page_view("e2", "u1", MIN),
        ];
        let out = run(&lines);
        assert_eq!(out.valid, 2);
        assert_eq!(out.duplicates, 1);
        assert_eq!(out.quarantined.values().sum::<usize>(), 1);
        assert_eq!(out.quarantined.get("invalid_json"), Some(&1));
        // The duplicate at +5 min would have extended the session.
        assert_eq!(out.views["sessions"][0][3], int(BASE + MIN));
    }

    #[test]
    fn late_event_merges_two_sessions() {
        let a = page_view("e1", "u1", 0);
        let b = page_view("e2", "u1", 40 * MIN);
        let out = run(&[a.clone(), b.clone()]);
        assert_eq!(out.views["sessions"].len(), 2);

        // A late event at +20 min closes both gaps (20 ≤ 30): one session.
        let late = order("e3", "u1", "o1", 20 * MIN, 500);
        let out = run(&[a, b, late]);
        let mut expected = strs(&["t1", "u1"]);
        expected.extend([
            int(BASE),
            int(BASE + 40 * MIN),
            int(3),
            int(2),
            int(0),
            int(1),
            Cell::Bool(true),
        ]);
        assert_eq!(out.views["sessions"], vec![expected]);
        assert_eq!(
            out.views["conversion_hour"],
            vec![vec![s("t1"), int(BASE), int(1), int(1)]]
        );
    }

    #[test]
    fn session_gap_is_strictly_more_than_30_minutes() {
        let out = run(&[
            page_view("e1", "u1", 0),
            page_view("e2", "u1", 30 * MIN),
            page_view("e3", "u1", 60 * MIN + 1),
        ]);
        let starts: Vec<Cell> = out.views["sessions"].iter().map(|r| r[2].clone()).collect();
        assert_eq!(starts, vec![int(BASE), int(BASE + 60 * MIN + 1)]);
        assert_eq!(out.views["sessions"][0][4], int(2));
        let hours: Vec<Row> = out.views["conversion_hour"].clone();
        assert_eq!(
            hours,
            vec![
                vec![s("t1"), int(BASE), int(1), int(0)],
                vec![s("t1"), int(BASE + HOUR_MS), int(1), int(0)],
            ]
        );
    }

    #[test]
    fn cancelled_order_counts_in_gmv_and_releases_inventory() {
        let lines = vec![
            order("e1", "u1", "o1", 10, 1000),
            order("e2", "u2", "o2", 20, 3000),
            event(
                "e3",
                "order_cancelled",
                5 * MIN, // a later minute: still cancels o1
                json!({"user_id": "u1", "order_id": "o1"}),
            ),
            event(
                "e4",
                "inventory_adjusted",
                0,
                json!({"sku": "sku-1", "delta": 10, "reason": "restock"}),
            ),
        ];
        let out = run(&lines);
        assert_eq!(
            out.views["gmv_minute"],
            vec![vec![
                s("t1"),
                s("USD"),
                int(BASE),
                int(2),
                int(4000),
                int(1),
                int(3000)
            ]]
        );
        // Only o2 (pending, no payment) reserves its 2 units.
        assert_eq!(
            out.views["inventory"],
            vec![vec![s("t1"), s("sku-1"), int(10), int(2), int(8)]]
        );
    }

    #[test]
    fn inventory_follows_latest_payment_of_order() {
        let lines = vec![
            order("e1", "u1", "o1", 0, 1000),
            order("e2", "u1", "o2", 0, 1000),
            // o1 captured: no longer reserved
            payment("p1a", "o1", "p1", MIN, "stripe", "succeeded", 1000, None),
            // o2 authorised: still reserved
            payment("p2a", "o2", "p2", MIN, "adyen", "Authorised", 1000, None),
        ];
        let out = run(&lines);
        assert_eq!(
            out.views["inventory"],
            vec![vec![s("t1"), s("sku-1"), int(0), int(2), int(-2)]]
        );
    }

    #[test]
    fn payment_latest_breaks_time_ties_by_event_id() {
        let lines = vec![
            // Same time: "b" > "a", so the captured event is the latest, whatever the arrival.
            payment("b", "o1", "p1", MIN, "stripe", "succeeded", 700, None),
            payment("a", "o1", "p1", MIN, "stripe", "processing", 500, None),
            // An earlier event arriving last changes nothing.
            payment("z", "o1", "p1", 0, "stripe", "refunded", 900, None),
            payment("c", "o2", "p2", 0, "paypal", "weird", 100, None),
        ];
        let out = run(&lines);
        assert_eq!(
            out.views["payment_status"],
            vec![
                vec![s("t1"), s("paypal"), s("unknown"), int(1), int(100)],
                vec![s("t1"), s("stripe"), s("captured"), int(1), int(700)],
            ]
        );
    }

    #[test]
    fn velocity_needs_five_orders_in_ten_minutes() {
        // Four orders within the window: nothing.
        let four: Vec<String> = (0..4)
            .map(|i| order(&format!("e{i}"), "u1", &format!("o{i}"), i * MIN, 100))
            .collect();
        assert!(alerts_of(&run(&four), "velocity").is_empty());

        // A fifth at +4 min flags it (all five in (t-10min, t]).
        let mut five = four.clone();
        five.push(order("e4", "u1", "o4", 4 * MIN, 100));
        assert_eq!(
            alerts_of(&run(&five), "velocity"),
            vec![alert("velocity", "o4", BASE + 4 * MIN)]
        );

        // A fifth exactly 10 minutes after the first: the first falls outside the window.
        let mut edge = four.clone();
        edge.push(order("e4", "u1", "o4", 10 * MIN, 100));
        assert!(alerts_of(&run(&edge), "velocity").is_empty());

        // With a threshold of 4, the fourth order is flagged too.
        let lines: Vec<&[u8]> = five.iter().map(|l| l.as_bytes()).collect();
        let out = compute(
            &lines,
            &Params {
                velocity_threshold: 4,
                velocity_switch: None,
            },
        );
        assert_eq!(
            alerts_of(&out, "velocity"),
            vec![
                alert("velocity", "o3", BASE + 3 * MIN),
                alert("velocity", "o4", BASE + 4 * MIN)
            ]
        );
    }

    #[test]
    fn card_testing_needs_three_fingerprints_in_five_minutes() {
        let fail = |id: &str, pid: &str, t: Millis, fp: &str| {
            payment(
                id,
                "o1",
                pid,
                t,
                "stripe",
                "payment_failed",
                100,
                Some(("d1", fp)),
            )
        };
        let lines = vec![
            fail("e0", "p0", 0, "fpA"), // outside the window of p3 (exactly 5 min before)
            fail("e1", "p1", 5 * MIN, "fpB"),
            fail("e2", "p2", 5 * MIN + 1, "fpB"),
            fail("e3", "p3", 5 * MIN, "fpC"),
            // A captured payment with a new fingerprint does not count.
            payment(
                "e4",
                "o1",
                "p4",
                5 * MIN,
                "stripe",
                "succeeded",
                100,
                Some(("d1", "fpD")),
            ),
        ];
        assert!(alerts_of(&run(&lines), "card_testing").is_empty());

        // A third distinct fingerprint inside the window flags it and every later failure.
        let mut more = lines.clone();
        more.push(fail("e5", "p5", 6 * MIN, "fpE"));
        assert_eq!(
            alerts_of(&run(&more), "card_testing"),
            vec![alert("card_testing", "p5", BASE + 6 * MIN)]
        );
        more.push(fail("e6", "p5", 7 * MIN, "fpF")); // same subject later: earliest kept
        // A failure with a new fingerprint on another device does not count for d1.
        more.push(payment(
            "e7",
            "o1",
            "p7",
            5 * MIN,
            "stripe",
            "canceled",
            100,
            Some(("d2", "fpG")),
        ));
        assert_eq!(
            alerts_of(&run(&more), "card_testing"),
            vec![alert("card_testing", "p5", BASE + 6 * MIN)]
        );
    }

    #[test]
    fn amount_anomaly() {
        let mut lines: Vec<String> = (0..3)
            .map(|i| order(&format!("e{i}"), "u1", &format!("o{i}"), i * MIN, 10_000))
            .collect();
        // 3 prior orders totalling 30,000: 150,000 × 3 > 5 × 30,000 flags.
        lines.push(order("e3", "u1", "big", 10 * MIN, 150_000));
        // 4 prior orders totalling 180,000: 100,000 × 4 ≤ 5 × 180,000, not flagged.
        lines.push(order("e4", "u1", "later", 20 * MIN, 100_000));
        // Another user with only 2 prior orders (and one at the same time): not flagged.
        lines.push(order("e5", "u2", "x1", 0, 1_000));
        lines.push(order("e6", "u2", "x2", MIN, 1_000));
        lines.push(order("e7", "u2", "x3", 2 * MIN, 1_000));
        lines.push(order("e8", "u2", "huge", MIN, 1_000_000));
        let out = run(&lines);
        assert_eq!(
            alerts_of(&out, "amount_anomaly"),
            vec![alert("amount_anomaly", "big", BASE + 10 * MIN)]
        );
    }

    #[test]
    fn times_before_2000_are_out_of_range() {
        // SPEC §1: event times run from 2000-01-01 on, so no view floors a negative time.
        let out = run(&[event_at(
            "e1",
            "order_placed",
            "1969-12-31T23:59:30.000Z",
            json!({
                "user_id": "u1",
                "order_id": "o1",
                "items": [{"sku": "s", "quantity": 1, "price_cents": 5}],
                "total_cents": 5,
            }),
        )]);
        assert!(out.views["gmv_minute"].is_empty());
        assert_eq!(out.quarantined["invalid_value:event_time"], 1);
    }
}
