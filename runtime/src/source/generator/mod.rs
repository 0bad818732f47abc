//! The built-in event generator: an endless, deterministic stream of realistic NDJSON input.
//!
//! It owns what `weir gen` prints and what the live mode consumes when no Kafka is configured.
//! The stream models several tenants (merchants), each with its own currency, users, devices,
//! cards and catalogue, whose shoppers browse, fill carts, place orders and pay through
//! provider-specific status flows, plus periodic inventory adjustments. On top of that it
//! carries the awkward parts of real input the runtime must survive (SPEC §1): events emitted
//! late (seconds to hours), producer re-sends of the same line, non-UTC timestamps, card data
//! that must be masked, malformed lines of every quarantine class, and injected fraud for every
//! rule of SPEC §2 together with near misses that must *not* alert.
//!
//! How it works: a simulated clock advances a little with every emitted line. Whenever nothing
//! is due, a new *episode* starts at the current time — usually a shopper's journey, sometimes
//! a tenant's inventory adjustment or a fraud scenario — and plans all of its events ahead into
//! a priority queue keyed by emission time. Most events are emitted at their event time; a few
//! get a later emission time, which is what makes them late. Emitted lines are sometimes queued
//! again as re-sends, and malformed lines are interleaved directly.
//!
//! The stream is a pure function of [`GenConfig`]: a private SplitMix64 PRNG, the simulated
//! clock, ordered containers only, and sampling built from IEEE-exact arithmetic, so the same
//! config yields byte-identical lines on every run and platform.
//!
//! It is a source only: it uses nothing from the rest of the crate (std, `chrono`, `serde` and
//! `serde_json` alone) and touches nothing outside its own state, so the stream cannot change
//! when the runtime that consumes it does. This file holds the configuration, the simulated
//! clock with the emission queue, and the fractions that shape the stream; the submodules hold
//! the PRNG (`rng`), the shops and their vocabulary (`catalogue`), how a line is built
//! (`line`), ordinary traffic (`journeys`), injected fraud (`fraud`) and broken lines
//! (`malformed`).

mod catalogue;
mod fraud;
mod journeys;
mod line;
pub mod live;
mod malformed;
mod rng;

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use catalogue::Tenant;
use fraud::Scenario;
use line::Line;
use rng::Rng;

/// Everything the stream depends on; equal configs give identical streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenConfig {
    /// Seed of the PRNG.
    pub seed: u64,
    /// Number of tenants (at least one is generated).
    pub tenants: usize,
    /// Event time of the first event, epoch milliseconds UTC. It must leave room for years of
    /// simulated time within chrono's range (±262,000 years); iterating panics otherwise.
    pub start_ms: i64,
}

impl GenConfig {
    /// 2025-11-20T00:00:00Z.
    pub const DEFAULT_START_MS: i64 = 1_763_596_800_000;
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 0,
            tenants: 4,
            start_ms: Self::DEFAULT_START_MS,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shape of the stream. Fractions are of emitted lines unless said otherwise.

/// Mean advance of the simulated clock per emitted line (~50 lines per simulated second).
const MEAN_TICK_MS: f64 = 20.0;
/// Lines that are malformed (rotating through the seven quarantine classes).
const P_MALFORMED: f64 = 0.005;
/// Valid lines that are re-sent later, byte for byte.
const P_RESEND: f64 = 0.02;
/// Events emitted seconds to minutes after their event time...
const P_LATE: f64 = 0.03;
/// ...and up to three hours after it.
const P_VERY_LATE: f64 = 0.005;
/// Event times written with a non-UTC offset (same instant).
const P_OFFSET_TIME: f64 = 0.05;
/// Payment events that carry a raw `card_number` and `cvv`.
const P_CARD_NUMBER: f64 = 0.10;
/// Journeys that add to the cart, and carts that check out.
const P_CART: f64 = 0.25;
const P_CHECKOUT: f64 = 0.35;
/// Orders written in schema version 1 (no currency, no discount).
const P_ORDER_V1: f64 = 0.30;
/// Orders cancelled later, and orders that never see a payment event.
const P_CANCEL: f64 = 0.05;
const P_UNPAID: f64 = 0.02;
/// Per episode: each fraud scenario, and each near miss.
const P_FRAUD: f64 = 0.002;
const P_NEAR_MISS: f64 = 0.001;
/// Inventory adjustments across all tenants: one every this many simulated ms on average.
const INVENTORY_EVERY_MS: f64 = 1_600.0;

// ---------------------------------------------------------------------------------------------
// The emission queue.

/// A line waiting for its emission time. The heap pops the smallest `(emit_ms, seq)`; `seq`
/// breaks ties in planning order, which keeps the stream deterministic.
struct Pending {
    emit_ms: i64,
    seq: u64,
    line: String,
    /// Already a re-send: not re-sent again.
    resend: bool,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.emit_ms, self.seq) == (other.emit_ms, other.seq)
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest line first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.emit_ms, other.seq).cmp(&(self.emit_ms, self.seq))
    }
}

// ---------------------------------------------------------------------------------------------
// The generator.

/// An endless, deterministic iterator of NDJSON lines (without newlines); see the module docs.
pub struct Generator {
    rng: Rng,
    /// The simulated clock: advances with every emitted line.
    clock: i64,
    tenants: Vec<Tenant>,
    /// Cumulative traffic shares of the tenants.
    tenant_cdf: Vec<f64>,
    queue: BinaryHeap<Pending>,
    seq: u64,
    malformed: u64,
}

impl Generator {
    pub fn new(cfg: GenConfig) -> Generator {
        let mut rng = Rng(cfg.seed);
        let n = cfg.tenants.max(1);
        // Zipf-like shares, 1/(rank+1): the first tenant is the busiest, as on any platform.
        let weights: Vec<f64> = (0..n).map(|i| 1.0 / (i + 1) as f64).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let tenant_cdf = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        let tenants = weights
            .iter()
            .enumerate()
            .map(|(i, w)| Tenant::new(i, w / total, &mut rng, cfg.start_ms))
            .collect();
        Generator {
            rng,
            clock: cfg.start_ms,
            tenants,
            tenant_cdf,
            queue: BinaryHeap::new(),
            seq: 0,
            malformed: 0,
        }
    }

    // --- timing ------------------------------------------------------------------------------

    /// How long after its event time an event is emitted: usually at once.
    fn lateness(&mut self) -> i64 {
        let x = self.rng.unit();
        if x < P_VERY_LATE {
            self.rng.range(600_000, 3 * 3_600_000)
        } else if x < P_VERY_LATE + P_LATE {
            // Between 2 s and 10 min, skewed (u³) towards seconds.
            let u = self.rng.unit();
            2_000 + (u * u * u * 598_000.0) as i64
        } else {
            0
        }
    }

    /// How long after the original a re-send arrives: mostly a quick producer retry, sometimes
    /// a replay long after.
    fn resend_delay(&mut self) -> i64 {
        let x = self.rng.unit();
        if x < 0.6 {
            self.rng.range(50, 5_000)
        } else if x < 0.9 {
            self.rng.range(5_000, 300_000)
        } else {
            self.rng.range(300_000, 2 * 3_600_000)
        }
    }

    // --- queueing ----------------------------------------------------------------------------

    fn push(&mut self, emit_ms: i64, line: String, resend: bool) {
        self.seq += 1;
        self.queue.push(Pending {
            emit_ms,
            seq: self.seq,
            line,
            resend,
        });
    }

    /// Queues an event that happens at `t`, to be emitted then or, sometimes, late.
    fn plan(&mut self, t: i64, line: &Line) {
        let emit_ms = t + self.lateness();
        self.push(emit_ms, line.render(), false);
    }

    // --- episodes ----------------------------------------------------------------------------

    /// Starts something new at the current time: an inventory adjustment if a tenant's timer
    /// is due, else a fraud scenario (rarely) or a shopper's journey. Always plans an event at
    /// the current time, which is due at once unless it was made late, so the caller's loop
    /// soon ends.
    fn spawn(&mut self) {
        let now = self.clock;
        let due = (0..self.tenants.len())
            .filter(|&i| self.tenants[i].next_inventory_ms <= now)
            .min_by_key(|&i| (self.tenants[i].next_inventory_ms, i));
        if let Some(ti) = due {
            let line = self.inventory_line(ti, now);
            self.plan(now, &line);
            let mean = self.tenants[ti].inventory_mean_ms;
            self.tenants[ti].next_inventory_ms = now + self.rng.exp_ms(mean);
            return;
        }
        type Episode = fn(&mut Generator, i64, Scenario);
        const EPISODES: [(f64, Episode, Scenario); 6] = [
            (P_FRAUD, Generator::velocity, Scenario::Fraud),
            (P_NEAR_MISS, Generator::velocity, Scenario::NearMiss),
            (P_FRAUD, Generator::card_testing, Scenario::Fraud),
            (P_NEAR_MISS, Generator::card_testing, Scenario::NearMiss),
            (P_FRAUD, Generator::amount_anomaly, Scenario::Fraud),
            (P_NEAR_MISS, Generator::amount_anomaly, Scenario::NearMiss),
        ];
        let mut x = self.rng.unit();
        for (p, episode, scenario) in EPISODES {
            if x < p {
                return episode(self, now, scenario);
            }
            x -= p;
        }
        self.journey(now);
    }
}

impl Iterator for Generator {
    type Item = String;

    /// The next line. Each call advances the clock by one tick and emits the earliest due
    /// line, starting new episodes until one is due; the stream never ends.
    fn next(&mut self) -> Option<String> {
        self.clock += self.rng.exp_ms(MEAN_TICK_MS);
        if self.rng.chance(P_MALFORMED) {
            return Some(self.malformed_line());
        }
        loop {
            if self.queue.peek().is_some_and(|p| p.emit_ms <= self.clock) {
                let pending = self.queue.pop()?;
                if !pending.resend && self.rng.chance(P_RESEND) {
                    let at = self.clock + self.resend_delay();
                    self.push(at, pending.line.clone(), true);
                }
                return Some(pending.line);
            }
            self.spawn();
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    use chrono::DateTime;
    use serde_json::{Map, Value};

    use super::catalogue::card_number;
    use super::fraud::FRAUD_USER_BASE;
    use super::malformed::MAX_LINE_BYTES;
    use super::rng::{ln, mix};
    use super::*;

    fn lines(seed: u64, n: usize) -> Vec<String> {
        Generator::new(GenConfig {
            seed,
            tenants: 4,
            start_ms: GenConfig::DEFAULT_START_MS,
        })
        .take(n)
        .collect()
    }

    /// A valid event as far as these tests care.
    struct Valid {
        tenant: String,
        id: String,
        kind: String,
        ms: i64,
        obj: Map<String, Value>,
    }

    /// An independent reading of SPEC §1: `Err` holds the quarantine class (the reason up to
    /// its colon).
    fn check(line: &str) -> Result<Valid, &'static str> {
        fn get<'a>(o: &'a Map<String, Value>, k: &str) -> Result<&'a Value, &'static str> {
            o.get(k).ok_or("missing_field")
        }
        fn string<'a>(o: &'a Map<String, Value>, k: &str) -> Result<&'a str, &'static str> {
            get(o, k)?.as_str().ok_or("wrong_type")
        }
        fn ident<'a>(o: &'a Map<String, Value>, k: &str) -> Result<&'a str, &'static str> {
            let s = string(o, k)?;
            if s.is_empty() {
                Err("invalid_value")
            } else {
                Ok(s)
            }
        }
        fn int(o: &Map<String, Value>, k: &str, min: Option<i64>) -> Result<i64, &'static str> {
            let v = get(o, k)?.as_i64().ok_or("wrong_type")?;
            if min.is_some_and(|m| v < m) {
                Err("invalid_value")
            } else {
                Ok(v)
            }
        }
        fn opt_string(o: &Map<String, Value>, k: &str) -> Result<(), &'static str> {
            match o.get(k) {
                None | Some(Value::String(_)) => Ok(()),
                Some(_) => Err("wrong_type"),
            }
        }
        if line.len() > MAX_LINE_BYTES {
            return Err("oversize");
        }
        let Ok(Value::Object(o)) = serde_json::from_str::<Value>(line) else {
            return Err("invalid_json");
        };
        let id = string(&o, "event_id")?;
        if id.is_empty() || id.len() > 128 {
            return Err("invalid_value");
        }
        let tenant = string(&o, "tenant_id")?;
        let tenant_ok = (1..=64).contains(&tenant.len())
            && tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !tenant_ok {
            return Err("invalid_value");
        }
        let kind = string(&o, "type")?;
        let ms = DateTime::parse_from_rfc3339(string(&o, "event_time")?)
            .map_err(|_| "invalid_value")?
            .timestamp_millis();
        let version = int(&o, "schema_version", None)?;
        match kind {
            "page_view" | "add_to_cart" | "order_placed" | "order_cancelled" | "payment"
            | "inventory_adjusted" => {}
            _ => return Err("unknown_type"),
        }
        if !(1..=2).contains(&version) {
            return Err("unsupported_schema_version");
        }
        match kind {
            "page_view" => {
                ident(&o, "user_id")?;
                string(&o, "url")?;
                opt_string(&o, "sku")?;
                opt_string(&o, "device_id")?;
            }
            "add_to_cart" => {
                ident(&o, "user_id")?;
                ident(&o, "sku")?;
                int(&o, "quantity", Some(1))?;
                int(&o, "price_cents", Some(0))?;
            }
            "order_placed" => {
                ident(&o, "user_id")?;
                ident(&o, "order_id")?;
                let items = get(&o, "items")?.as_array().ok_or("wrong_type")?;
                if items.is_empty() {
                    return Err("invalid_value");
                }
                for item in items {
                    let item = item.as_object().ok_or("wrong_type")?;
                    ident(item, "sku")?;
                    int(item, "quantity", Some(1))?;
                    int(item, "price_cents", Some(0))?;
                }
                int(&o, "total_cents", Some(0))?;
                opt_string(&o, "device_id")?;
                if version == 2 {
                    let currency = string(&o, "currency")?;
                    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
                        return Err("invalid_value");
                    }
                    if o.contains_key("discount_cents") {
                        int(&o, "discount_cents", Some(0))?;
                    }
                }
            }
            "order_cancelled" => {
                ident(&o, "user_id")?;
                ident(&o, "order_id")?;
            }
            "payment" => {
                for k in ["user_id", "order_id", "payment_id"] {
                    ident(&o, k)?;
                }
                string(&o, "provider")?;
                string(&o, "status")?;
                int(&o, "amount_cents", Some(0))?;
                for k in ["device_id", "card_fingerprint", "card_number", "cvv"] {
                    opt_string(&o, k)?;
                }
            }
            _ => {
                ident(&o, "sku")?;
                int(&o, "delta", None)?;
                string(&o, "reason")?;
                opt_string(&o, "warehouse")?;
            }
        }
        Ok(Valid {
            tenant: tenant.to_owned(),
            id: id.to_owned(),
            kind: kind.to_owned(),
            ms,
            obj: o,
        })
    }

    #[test]
    fn deterministic_per_seed() {
        let a = lines(42, 2_000);
        assert_eq!(a, lines(42, 2_000));
        assert_ne!(a, lines(43, 2_000));
        // Tenant count only changes the mix, never the determinism.
        let cfg = GenConfig {
            seed: 1,
            tenants: 9,
            start_ms: 0,
        };
        let b: Vec<String> = Generator::new(cfg).take(500).collect();
        assert_eq!(b, Generator::new(cfg).take(500).collect::<Vec<_>>());
        assert!(b.iter().any(|l| l.contains("\"shop-009\"")));
    }

    #[test]
    fn portable_ln_matches_std() {
        for x in [1e-300, 2f64.powi(-53), 0.001, 0.3, 0.5, 0.75, 0.99, 1.0] {
            assert!((ln(x) - x.ln()).abs() < 1e-12 * (1.0 + x.ln().abs()), "{x}");
        }
    }

    #[test]
    fn card_numbers_pass_luhn() {
        for key in 0..200u64 {
            let key = mix(key);
            let spaced = card_number(key, true);
            let digits: Vec<u32> = card_number(key, false)
                .chars()
                .map(|c| c.to_digit(10).unwrap())
                .collect();
            assert_eq!(digits.len(), 16);
            assert_eq!(spaced.replace(' ', ""), card_number(key, false));
            let sum: u32 = digits
                .iter()
                .rev()
                .enumerate()
                .map(|(i, &d)| {
                    if i % 2 == 1 {
                        (2 * d) / 10 + (2 * d) % 10
                    } else {
                        d
                    }
                })
                .sum();
            assert_eq!(sum % 10, 0, "{spaced}");
        }
    }

    #[test]
    fn stream_shape() {
        const N: usize = 100_000;
        let all = lines(7, N);
        let mut classes: BTreeMap<&str, usize> = BTreeMap::new();
        let mut types: BTreeMap<String, usize> = BTreeMap::new();
        let mut first: HashMap<(String, String), &str> = HashMap::new();
        let (mut resends, mut late, mut very_late, mut max_ms) = (0, 0, 0, 0);
        let (mut offset_times, mut orders_v1, mut orders) = (0, 0, 0);
        let (mut payments, mut with_card, mut pv_bytes, mut pv) = (0, 0, 0, 0);
        let mut malformed_with_card = 0;
        for line in &all {
            let v = match check(line) {
                Ok(v) => v,
                Err(class) => {
                    *classes.entry(class).or_default() += 1;
                    if line.contains("\"card_number\"") {
                        malformed_with_card += 1;
                    }
                    continue;
                }
            };
            // Only the deliberate oversize lines may break the limit; real ones are compact.
            assert!(line.len() < 4_096, "{line}");
            let key = (v.tenant.clone(), v.id.clone());
            if let Some(earlier) = first.get(&key) {
                assert_eq!(
                    earlier, line,
                    "a repeated event id must be an exact re-send"
                );
                resends += 1;
                continue;
            }
            first.insert(key, line);
            *types.entry(v.kind.clone()).or_default() += 1;
            if v.ms < max_ms - 1_000 {
                late += 1;
            }
            if v.ms < max_ms - 600_000 {
                very_late += 1;
            }
            max_ms = max_ms.max(v.ms);
            if !v.obj["event_time"].as_str().unwrap().ends_with('Z') {
                offset_times += 1;
            }
            match v.kind.as_str() {
                "order_placed" => {
                    orders += 1;
                    if v.obj["schema_version"] == 1 {
                        orders_v1 += 1;
                        assert!(!v.obj.contains_key("currency"));
                    }
                    let items = v.obj["items"].as_array().unwrap();
                    assert!((1..=4).contains(&items.len()));
                    let subtotal: i64 = items
                        .iter()
                        .map(|i| {
                            i["quantity"].as_i64().unwrap() * i["price_cents"].as_i64().unwrap()
                        })
                        .sum();
                    let discount = v
                        .obj
                        .get("discount_cents")
                        .map_or(0, |d| d.as_i64().unwrap());
                    assert_eq!(v.obj["total_cents"].as_i64().unwrap(), subtotal - discount);
                }
                "payment" => {
                    payments += 1;
                    if v.obj.contains_key("card_number") {
                        with_card += 1;
                        assert_eq!(v.obj["cvv"].as_str().unwrap().len(), 3);
                    }
                }
                "page_view" => {
                    pv += 1;
                    pv_bytes += line.len();
                }
                _ => {}
            }
        }
        let frac = |x: usize, of: usize| x as f64 / of as f64;
        let malformed: usize = classes.values().sum();
        eprintln!("classes {classes:?}\ntypes {types:?}");
        eprintln!(
            "resends {resends} late {late} very_late {very_late} offsets {offset_times} \
             v1 {orders_v1}/{orders} cards {with_card}/{payments} pv_avg {}",
            pv_bytes / pv
        );

        assert!(
            (0.0035..0.0065).contains(&frac(malformed, N)),
            "{malformed}"
        );
        // Rotation: every class equally often (±1), so each is decoded to its own reason.
        assert_eq!(classes.len(), 7, "{classes:?}");
        let (lo, hi) = (
            classes.values().min().unwrap(),
            classes.values().max().unwrap(),
        );
        assert!(hi - lo <= 1, "{classes:?}");
        assert!(malformed_with_card > 0);

        assert!((0.016..0.024).contains(&frac(resends, N)), "{resends}");
        let unique = first.len();
        assert!((0.025..0.045).contains(&frac(late, unique)), "{late}");
        assert!(
            very_late > 0 && frac(very_late, unique) < 0.006,
            "{very_late}"
        );
        assert!((0.04..0.06).contains(&frac(offset_times, unique)));
        assert!((0.25..0.35).contains(&frac(orders_v1, orders)));
        assert!((0.07..0.13).contains(&frac(with_card, payments)));
        assert!((300..1_500).contains(&(pv_bytes / pv)));

        assert_eq!(types.len(), 6, "{types:?}");
        // Traffic is skewed towards the first tenant.
        let per_tenant = |name: &str| first.keys().filter(|(t, _)| t == name).count();
        assert!(per_tenant("acme") > per_tenant("globex"));
        assert!(per_tenant("globex") > per_tenant("umbrella"));
    }

    /// Canonical payment status per SPEC §1 (only `failed` matters here).
    fn failed(provider: &str, status: &str) -> bool {
        matches!(
            (provider, status),
            ("stripe", "canceled" | "payment_failed")
                | ("adyen", "Refused" | "Error" | "Cancelled")
                | ("paypal", "DECLINED" | "VOIDED")
        )
    }

    /// Batch evaluation of the three fraud rules of SPEC §2 over deduplicated valid events:
    /// rule → flagged `(tenant_id, user_id, subject_id)`.
    fn alerts(lines: &[String]) -> BTreeMap<&'static str, BTreeSet<(String, String, String)>> {
        /// `(tenant, user or device)` → events as `(time, subject_id, user, T)`.
        type Series<T> = BTreeMap<(String, String), Vec<(i64, String, String, T)>>;
        let mut seen = BTreeSet::new();
        // Orders by user, with their totals.
        let mut orders: Series<i64> = BTreeMap::new();
        // Failed payments by device, with their card fingerprints.
        let mut fails: Series<String> = BTreeMap::new();
        for v in lines.iter().filter_map(|l| check(l).ok()) {
            if !seen.insert((v.tenant.clone(), v.id.clone())) {
                continue;
            }
            let s = |k: &str| v.obj.get(k).and_then(Value::as_str).map(str::to_owned);
            let user = s("user_id").unwrap_or_default();
            if v.kind == "order_placed" {
                let total = v.obj["total_cents"].as_i64().unwrap();
                let key = (v.tenant.clone(), user.clone());
                let order = (v.ms, s("order_id").unwrap(), user, total);
                orders.entry(key).or_default().push(order);
            } else if v.kind == "payment"
                && failed(&s("provider").unwrap(), &s("status").unwrap())
                && let (Some(device), Some(fp)) = (s("device_id"), s("card_fingerprint"))
            {
                let payment = (v.ms, s("payment_id").unwrap(), user, fp);
                fails
                    .entry((v.tenant.clone(), device))
                    .or_default()
                    .push(payment);
            }
        }
        let mut out: BTreeMap<&str, BTreeSet<(String, String, String)>> = BTreeMap::new();
        for ((tenant, _), os) in &orders {
            for (t, id, user, total) in os {
                let flag = (tenant.clone(), user.clone(), id.clone());
                let window = os.iter().filter(|o| o.0 > t - 600_000 && o.0 <= *t).count();
                if window >= 5 {
                    out.entry("velocity").or_default().insert(flag.clone());
                }
                let prior: Vec<i64> = os.iter().filter(|o| o.0 < *t).map(|o| o.3).collect();
                let n = prior.len() as i64;
                if *total >= 100_000 && n >= 3 && total * n > 5 * prior.iter().sum::<i64>() {
                    out.entry("amount_anomaly").or_default().insert(flag);
                }
            }
        }
        for ((tenant, _), ps) in &fails {
            for (t, id, user, _) in ps {
                let fps: BTreeSet<&String> = ps
                    .iter()
                    .filter(|p| p.0 > t - 300_000 && p.0 <= *t)
                    .map(|p| &p.3)
                    .collect();
                if fps.len() >= 3 {
                    let flag = (tenant.clone(), user.clone(), id.clone());
                    out.entry("card_testing").or_default().insert(flag);
                }
            }
        }
        out
    }

    fn is_fraudster(user: &str) -> bool {
        user[2..].parse::<u32>().unwrap() > FRAUD_USER_BASE
    }

    #[test]
    fn every_fraud_rule_fires_mostly_on_fraudsters() {
        let found = alerts(&lines(11, 200_000));
        eprintln!(
            "alerts: {:?}",
            found
                .iter()
                .map(|(k, v)| (k, v.len(), v.iter().filter(|a| !is_fraudster(&a.1)).count()))
                .collect::<Vec<_>>()
        );
        for rule in ["velocity", "card_testing", "amount_anomaly"] {
            let flagged = found.get(rule).cloned().unwrap_or_default();
            let ordinary = flagged.iter().filter(|a| !is_fraudster(&a.1)).count();
            assert!(flagged.len() >= 10, "too few {rule} alerts: {flagged:?}");
            assert!(
                ordinary * 10 <= flagged.len(),
                "{rule}: {ordinary} ordinary users flagged"
            );
        }
    }

    /// Runs one scenario `n` times on its own and returns every line it planned.
    fn episodes(episode: fn(&mut Generator, i64, Scenario), scenario: Scenario) -> Vec<String> {
        let mut g = Generator::new(GenConfig::default());
        let t = g.clock;
        for _ in 0..40 {
            episode(&mut g, t, scenario);
        }
        std::iter::from_fn(|| g.queue.pop().map(|p| p.line)).collect()
    }

    #[test]
    fn injected_fraud_alerts_and_near_misses_do_not() {
        type Episode = fn(&mut Generator, i64, Scenario);
        let cases: [(&str, Episode); 3] = [
            ("velocity", Generator::velocity),
            ("card_testing", Generator::card_testing),
            ("amount_anomaly", Generator::amount_anomaly),
        ];
        for (rule, episode) in cases {
            let fraud = episodes(episode, Scenario::Fraud);
            let users: BTreeSet<(String, String)> = fraud
                .iter()
                .filter_map(|l| check(l).ok())
                .map(|v| (v.tenant, v.obj["user_id"].as_str().unwrap().to_owned()))
                .collect();
            let flagged: BTreeSet<(String, String)> = alerts(&fraud)
                .remove(rule)
                .unwrap_or_default()
                .into_iter()
                .map(|(tenant, user, _)| (tenant, user))
                .collect();
            assert_eq!(users.len(), 40, "{rule}");
            assert_eq!(flagged, users, "every {rule} fraudster is flagged");

            let near = episodes(episode, Scenario::NearMiss);
            assert_eq!(alerts(&near).get(rule), None, "a {rule} near miss alerted");
        }
    }
}
