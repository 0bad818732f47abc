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

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::f64::consts::{LN_2, SQRT_2};

use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde::Serialize;

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

const USERS_PER_TENANT: u32 = 2_000;
const SKUS_PER_TENANT: usize = 300;
/// Fraudsters are fresh users numbered from here, so their order history is exactly what the
/// scenario planned and the rule fires (or, for a near miss, does not) by construction.
const FRAUD_USER_BASE: u32 = 900_000;
/// SPEC §1 limit; oversize lines are made a little bigger.
const MAX_LINE_BYTES: usize = 64 * 1024;

const TENANT_NAMES: [&str; 4] = ["acme", "globex", "initech", "umbrella"];
const CURRENCIES: [&str; 3] = ["USD", "EUR", "GBP"];
/// Offsets (seconds east of UTC) used for the non-UTC event times.
const OFFSETS: [i32; 6] = [7_200, 3_600, -18_000, 19_800, 32_400, -10_800];

const USER_AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Pro) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.6723.107 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "ShopApp/5.12.0 (iOS 18.1; iPhone15,2; Scale/3.00) Alamofire/5.9.1",
];
const LOCALES: [(&str, &str); 6] = [
    ("en-US", "America/New_York"),
    ("en-US", "America/Los_Angeles"),
    ("de-DE", "Europe/Berlin"),
    ("en-GB", "Europe/London"),
    ("fr-FR", "Europe/Paris"),
    ("ja-JP", "Asia/Tokyo"),
];
const REFERRERS: [&str; 6] = [
    "",
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://l.instagram.com/",
    "https://news.ycombinator.com/",
    "android-app://com.google.android.gm/",
];
const CAMPAIGNS: [(&str, &str, &str); 4] = [
    ("google", "cpc", "black_friday_2025"),
    ("newsletter", "email", "weekly_deals_47"),
    ("instagram", "social", "holiday_gift_guide"),
    ("partner", "affiliate", "cashback_q4"),
];
const CATEGORIES: [&str; 8] = [
    "shoes",
    "outerwear",
    "kitchen",
    "audio",
    "toys",
    "garden",
    "beauty",
    "books",
];
const SEARCH_TERMS: [&str; 8] = [
    "running+shoes",
    "wireless+earbuds",
    "rain+jacket",
    "espresso+machine",
    "lego",
    "gift+for+dad",
    "yoga+mat",
    "desk+lamp",
];
const EXPERIMENTS: [&str; 6] = [
    "checkout_v2:B",
    "reco_model:control",
    "free_shipping_banner:A",
    "search_rerank:B",
    "pdp_video:A",
    "one_click:control",
];
const CHANNELS: [&str; 3] = ["web", "ios", "android"];
const WAREHOUSES: [&str; 5] = [
    "WH-EAST-1",
    "WH-WEST-2",
    "WH-CENTRAL",
    "WH-EU-FRA",
    "WH-UK-MAN",
];

// ---------------------------------------------------------------------------------------------
// Payment providers and their status flows (SPEC §1 lists the words).

/// One provider's vocabulary, in flow order.
struct Provider {
    name: &'static str,
    /// Share of payments.
    share: f64,
    /// Pending words in flow order; a flow may start at any of them (Stripe only asks for
    /// `requires_action` when 3-D Secure kicks in).
    pending: &'static [&'static str],
    authorized: &'static str,
    /// Captured words in flow order (Adyen reports the settlement after the capture request).
    captured: &'static [&'static str],
    /// Declines straight after the attempt, and voids after an authorisation.
    failed_early: &'static [&'static str],
    failed_late: &'static [&'static str],
    refunded: &'static str,
    /// Card acquirers show a card fingerprint on most payments; wallets rarely do.
    cards: bool,
}

/// `klarna` is not in the normalisation table: its words must all become `unknown`, however
/// canonical they look.
static PROVIDERS: [Provider; 4] = [
    Provider {
        name: "stripe",
        share: 0.50,
        pending: &["requires_action", "processing"],
        authorized: "requires_capture",
        captured: &["succeeded"],
        failed_early: &["payment_failed"],
        failed_late: &["canceled"],
        refunded: "refunded",
        cards: true,
    },
    Provider {
        name: "adyen",
        share: 0.25,
        pending: &["Received"],
        authorized: "Authorised",
        captured: &["SentForSettle", "Settled"],
        failed_early: &["Refused", "Refused", "Error"],
        failed_late: &["Cancelled"],
        refunded: "Refunded",
        cards: true,
    },
    Provider {
        name: "paypal",
        share: 0.20,
        pending: &["PENDING"],
        authorized: "APPROVED",
        captured: &["COMPLETED"],
        failed_early: &["DECLINED"],
        failed_late: &["VOIDED"],
        refunded: "REFUNDED",
        cards: false,
    },
    Provider {
        name: "klarna",
        share: 0.05,
        pending: &["pending"],
        authorized: "AUTHORIZED",
        captured: &["CAPTURED"],
        failed_early: &["REJECTED"],
        failed_late: &["CANCELLED"],
        refunded: "REFUNDED",
        cards: false,
    },
];

/// How one payment attempt ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Captured,
    Refunded,
    FailedEarly,
    FailedLate,
    /// The flow stops while pending or authorised, so the order keeps its stock reserved.
    Stalled,
}

const OUTCOMES: [(f64, Outcome); 5] = [
    (0.80, Outcome::Captured),
    (0.04, Outcome::Refunded),
    (0.07, Outcome::FailedEarly),
    (0.02, Outcome::FailedLate),
    (0.07, Outcome::Stalled),
];

/// The canonical meaning of a step, which decides how long it takes to arrive.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Pending,
    Authorized,
    Captured,
    Failed,
    Refunded,
}

// ---------------------------------------------------------------------------------------------
// Malformed lines: one table per quarantine class, rotated through so every few thousand lines
// hold each class and each variant in turn.

/// Event types a malformed line can be derived from.
#[derive(Clone, Copy)]
enum Kind {
    PageView,
    AddToCart,
    Order,
    Cancel,
    /// Always with `card_number` and `cvv`: PCI must hold for the quarantine too.
    Payment,
    Inventory,
}

/// The quarantine classes, in rotation order.
const MALFORMED_CLASSES: u64 = 7;

/// `missing_field:<name>`: a required field left out.
const MISSING: [(Kind, &str); 16] = [
    (Kind::PageView, "user_id"),
    (Kind::Payment, "order_id"),
    (Kind::Order, "items"),
    (Kind::AddToCart, "sku"),
    (Kind::Order, "currency"),
    (Kind::Payment, "amount_cents"),
    (Kind::PageView, "event_time"),
    (Kind::Inventory, "delta"),
    (Kind::Cancel, "order_id"),
    (Kind::AddToCart, "event_id"),
    (Kind::Payment, "status"),
    (Kind::Order, "tenant_id"),
    (Kind::PageView, "type"),
    (Kind::Inventory, "schema_version"),
    (Kind::PageView, "url"),
    (Kind::Inventory, "reason"),
];

/// `wrong_type:<name>`: a field with a JSON value of the wrong kind (raw JSON text).
const WRONG_TYPE: [(Kind, &str, &str); 12] = [
    (Kind::AddToCart, "quantity", r#""2""#),
    (Kind::Order, "total_cents", r#""1999""#),
    (Kind::Payment, "amount_cents", "12.5"),
    (Kind::PageView, "user_id", "42"),
    (
        Kind::Order,
        "items",
        r#"{"sku":"SKU-00001","quantity":1,"price_cents":999}"#,
    ),
    (Kind::Inventory, "delta", r#""-3""#),
    (Kind::PageView, "schema_version", r#""2""#),
    (Kind::Payment, "status", "true"),
    (Kind::AddToCart, "price_cents", "19.99"),
    (
        Kind::Order,
        "items",
        r#"[{"sku":"SKU-00007","quantity":"2","price_cents":1999}]"#,
    ),
    (Kind::Cancel, "user_id", r#"["u-000001"]"#),
    (Kind::PageView, "event_time", "1763596800000"),
];

/// `invalid_value:<name>`: the right kind of value breaking a rule.
const INVALID_VALUE: [(Kind, &str, &str); 14] = [
    (Kind::AddToCart, "quantity", "0"),
    (Kind::PageView, "tenant_id", r#""acme corp""#),
    (Kind::Order, "event_time", r#""2025-11-20T10:00:00""#),
    (Kind::Order, "currency", r#""usd""#),
    (Kind::Order, "items", "[]"),
    (Kind::AddToCart, "price_cents", "-100"),
    (Kind::PageView, "event_id", r#""""#),
    (Kind::Payment, "amount_cents", "-500"),
    (Kind::PageView, "event_time", r#""yesterday""#),
    (Kind::Inventory, "event_time", r#""2025-13-40T25:61:00Z""#),
    (Kind::Payment, "tenant_id", r#""../globex""#),
    (
        Kind::Order,
        "items",
        r#"[{"sku":"SKU-00003","quantity":0,"price_cents":500}]"#,
    ),
    (Kind::Order, "total_cents", "-1"),
    (Kind::Order, "discount_cents", "-250"),
];

/// `unknown_type`: well-formed events of types the contract does not know.
const UNKNOWN_TYPE: [(Kind, &str); 4] = [
    (Kind::Payment, "refund_issued"),
    (Kind::PageView, "wishlist_add"),
    (Kind::AddToCart, "checkout_started"),
    (Kind::PageView, "PageView"),
];

/// `unsupported_schema_version`: a producer ahead of (or behind) the contract.
const BAD_SCHEMA: [(Kind, u8); 6] = [
    (Kind::Order, 3),
    (Kind::Payment, 3),
    (Kind::PageView, 3),
    (Kind::AddToCart, 3),
    (Kind::Cancel, 0),
    (Kind::Inventory, 99),
];

/// `invalid_json`: what a crashed producer or a proxy leaves behind.
const INVALID_JSON: [Kind; 4] = [Kind::PageView, Kind::Payment, Kind::Order, Kind::AddToCart];

// ---------------------------------------------------------------------------------------------
// Randomness.

/// SplitMix64 (Steele, Lea & Flood, 2014): one word of state, statistically sound for
/// simulation and trivially reproducible. The crate deliberately has no `rand` dependency, so
/// the stream can never change under a dependency upgrade.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `[0, n)` by multiply-high (Lemire); the bias is negligible for our small `n`.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Exponentially distributed with mean `mean_ms` (arrivals, think times), in whole ms.
    fn exp_ms(&mut self, mean_ms: f64) -> i64 {
        (-mean_ms * ln(1.0 - self.unit())) as i64
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }

    /// Picks by weight; the weights need not sum to one.
    fn weighted<T: Copy>(&mut self, xs: &[(f64, T)]) -> T {
        let total: f64 = xs.iter().map(|(w, _)| w).sum();
        let mut x = self.unit() * total;
        for &(w, v) in xs {
            if x < w {
                return v;
            }
            x -= w;
        }
        xs[xs.len() - 1].1
    }

    /// Number of successes before the first failure: 0, 1, 2… with mean `p / (1 - p)`.
    fn geometric(&mut self, p: f64, cap: u32) -> u32 {
        let mut n = 0;
        while n < cap && self.chance(p) {
            n += 1;
        }
        n
    }
}

/// The SplitMix64 finaliser: a bijection on `u64` that scrambles well. Besides driving the PRNG
/// it derives stable identities (ids, devices, cards) from counters without storing them; being
/// a bijection, distinct counters give distinct ids.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Natural logarithm of a positive normal `x` from `+ − × ÷` only. `f64::ln` may differ in its
/// last bit between platforms, and the stream must not.
fn ln(x: f64) -> f64 {
    let bits = x.to_bits();
    let mut exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52)); // in [1, 2)
    if m > SQRT_2 {
        m /= 2.0;
        exponent += 1;
    }
    // ln m = 2·atanh(s) = 2(s + s³/3 + s⁵/5 + …), and |s| < 0.172 makes eight terms plenty.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let (mut term, mut sum) = (s, 0.0);
    for k in 0..8 {
        sum += term / f64::from(2 * k + 1);
        term *= s2;
    }
    exponent as f64 * LN_2 + 2.0 * sum
}

// ---------------------------------------------------------------------------------------------
// Building lines.

/// A JSON object under construction: keys in insertion order, values as JSON text. Keeping the
/// values rendered lets malformed lines drop a field or splice in any raw text, and the field
/// order stays fixed whatever features `serde_json` was built with.
#[derive(Default)]
struct Line {
    fields: Vec<(&'static str, String)>,
}

impl Line {
    fn with<T: Serialize + ?Sized>(mut self, key: &'static str, value: &T) -> Line {
        self.fields.push((key, json(value)));
        self
    }

    fn with_opt<T: Serialize + ?Sized>(self, key: &'static str, value: Option<&T>) -> Line {
        match value {
            Some(v) => self.with(key, v),
            None => self,
        }
    }

    /// Sets `key` to raw JSON text, in place if present.
    fn set(&mut self, key: &'static str, raw: String) {
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some(field) => field.1 = raw,
            None => self.fields.push((key, raw)),
        }
    }

    fn remove(&mut self, key: &str) {
        self.fields.retain(|(k, _)| *k != key);
    }

    fn render(&self) -> String {
        let len: usize = self.fields.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let mut out = String::with_capacity(len + 2);
        out.push('{');
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Keys are plain ASCII identifiers: no escaping needed.
            out.push('"');
            out.push_str(key);
            out.push_str("\":");
            out.push_str(value);
        }
        out.push('}');
        out
    }
}

fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data always serialises")
}

#[derive(Serialize)]
struct Item {
    sku: String,
    quantity: i64,
    price_cents: i64,
}

/// What a clickstream SDK attaches to a page view. The runtime ignores it (unknown fields are
/// allowed); it gives page views the size and shape of real ones, which is what the decoder's
/// throughput is measured on.
#[derive(Serialize)]
struct Context {
    user_agent: &'static str,
    locale: &'static str,
    timezone: &'static str,
    referrer: &'static str,
    /// From the documentation ranges (RFC 5737), never a real address.
    ip: String,
    screen: Screen,
    page_load_ms: i64,
    experiments: [&'static str; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    utm: Option<Utm>,
    consent: Consent,
}

#[derive(Serialize)]
struct Screen {
    width: u32,
    height: u32,
    dpr: f64,
}

#[derive(Serialize)]
struct Utm {
    source: &'static str,
    medium: &'static str,
    campaign: &'static str,
}

#[derive(Serialize)]
struct Consent {
    analytics: bool,
    marketing: bool,
}

/// A 16-digit card number with a valid Luhn check digit, derived from the card's key.
fn card_number(key: u64, spaced: bool) -> String {
    let mut digits = Vec::with_capacity(16);
    // Visa (4…) or Mastercard (51–55…) prefixes, then digits from the key.
    if key & 1 == 0 {
        digits.push(4);
    } else {
        digits.extend([5, 1 + (key >> 1) % 5]);
    }
    let mut rest = mix(key);
    while digits.len() < 15 {
        digits.push(rest % 10);
        rest /= 10;
    }
    // Luhn: double every second digit counting leftwards from the one before the check digit.
    let sum: u64 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| match (i % 2 == 0, 2 * d) {
            (true, x) if x > 9 => x - 9,
            (true, x) => x,
            (false, _) => d,
        })
        .sum();
    digits.push((10 - sum % 10) % 10);
    let mut out = String::with_capacity(19);
    for (i, d) in digits.iter().enumerate() {
        if spaced && i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(char::from(b'0' + *d as u8));
    }
    out
}

fn fingerprint(card: u64) -> String {
    format!("fp-{:012x}", card >> 16)
}

fn sku_name(sku: usize) -> String {
    format!("SKU-{sku:05}")
}

fn user_name(user: u32) -> String {
    format!("u-{user:06}")
}

// ---------------------------------------------------------------------------------------------
// Tenants and the emission queue.

/// One merchant: its catalogue and the counters its ids are drawn from.
struct Tenant {
    name: String,
    currency: &'static str,
    /// Keys every identity derived for this tenant (ids, devices, cards).
    salt: u64,
    users: u32,
    /// `price_cents` by SKU index.
    prices: Vec<i64>,
    cheapest: usize,
    dearest: usize,
    events: u64,
    orders: u64,
    payments: u64,
    fraudsters: u32,
    next_inventory_ms: i64,
    inventory_mean_ms: f64,
}

impl Tenant {
    fn new(index: usize, share: f64, rng: &mut Rng, start_ms: i64) -> Tenant {
        let name = TENANT_NAMES
            .get(index)
            .map_or_else(|| format!("shop-{:03}", index + 1), |n| (*n).to_owned());
        let salt = rng.next_u64();
        let users = USERS_PER_TENANT - 200 + rng.below(401) as u32;
        // Mostly cheap articles, a few up to $400; cents endings as shops price them.
        let prices: Vec<i64> = (0..SKUS_PER_TENANT)
            .map(|_| {
                let u = rng.unit();
                let dollars = 3 + (u * u * u * u * 397.0) as i64;
                dollars * 100 + rng.pick(&[99, 95, 49, 0])
            })
            .collect();
        let by_price = |a: &usize, b: &usize| prices[*a].cmp(&prices[*b]).then(a.cmp(b));
        let cheapest = (0..prices.len()).min_by(by_price).unwrap_or(0);
        let dearest = (0..prices.len()).max_by(by_price).unwrap_or(0);
        let inventory_mean_ms = INVENTORY_EVERY_MS / share;
        Tenant {
            name,
            currency: CURRENCIES[index % CURRENCIES.len()],
            salt,
            users,
            prices,
            cheapest,
            dearest,
            events: 0,
            orders: 0,
            payments: 0,
            fraudsters: 0,
            next_inventory_ms: start_ms + rng.exp_ms(inventory_mean_ms),
            inventory_mean_ms,
        }
    }

    /// The devices a user shops from: one to three, fixed per user.
    fn device(&self, user: u32, k: u64) -> String {
        format!(
            "dev-{:012x}",
            mix(self.salt ^ 0xDE71 ^ (u64::from(user) << 4 | k)) >> 16
        )
    }

    fn device_count(&self, user: u32) -> u64 {
        1 + mix(self.salt ^ 0xDE70 ^ u64::from(user)) % 3
    }

    /// The cards a user pays with: a quarter of users have two.
    fn card(&self, user: u32, k: u64) -> u64 {
        mix(self.salt ^ 0xCA2D ^ (u64::from(user) << 4 | k))
    }

    fn card_count(&self, user: u32) -> u64 {
        1 + u64::from(mix(self.salt ^ 0xCA2C ^ u64::from(user)).is_multiple_of(4))
    }

    fn item(&self, sku: usize, quantity: i64) -> Item {
        Item {
            sku: sku_name(sku),
            quantity,
            price_cents: self.prices[sku],
        }
    }
}

/// Which per-tenant counter an id comes from.
#[derive(Clone, Copy)]
enum IdKind {
    Event,
    Order,
    Payment,
}

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

/// A user of a tenant on one of their devices: who acts in an episode.
struct Shopper {
    ti: usize,
    user: u32,
    device: String,
}

/// One payment attempt; its status events share everything here.
struct Pay {
    ti: usize,
    user: u32,
    order_id: String,
    payment_id: String,
    provider: &'static Provider,
    amount: i64,
    attempt: u32,
    device: Option<String>,
    /// The card's key; its fingerprint is shown only if `show_fingerprint`.
    card: u64,
    show_fingerprint: bool,
}

/// How an order is written: schema version and the optional v2 discount.
#[derive(Clone, Copy)]
struct OrderSpec {
    version: u8,
    discount: Option<i64>,
}

/// An order as its payments and cancellation need it.
struct Placed {
    order_id: String,
    total: i64,
}

/// Variants of a fraud scenario: the real thing, or a near miss that must not alert.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Fraud,
    NearMiss,
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

    // --- picking -----------------------------------------------------------------------------

    fn pick_tenant(&mut self) -> usize {
        let x = self.rng.unit();
        self.tenant_cdf
            .iter()
            .position(|&c| x < c)
            .unwrap_or(self.tenants.len() - 1)
    }

    /// A user with skewed popularity (`n·u^1.5`: the top user gets ~0.6% of the tenant's
    /// journeys). Gentle enough that ordinary shoppers rarely reach the velocity threshold.
    fn pick_user(&mut self, ti: usize) -> u32 {
        let u = self.rng.unit();
        let n = self.tenants[ti].users;
        ((u * u.sqrt() * f64::from(n)) as u32).min(n - 1)
    }

    /// A SKU with strongly skewed popularity (`n·u²`): bestsellers dominate.
    fn pick_sku(&mut self, ti: usize) -> usize {
        let u = self.rng.unit();
        let n = self.tenants[ti].prices.len();
        ((u * u * n as f64) as usize).min(n - 1)
    }

    fn shopper(&mut self, ti: usize, user: u32) -> Shopper {
        let k = self.rng.below(self.tenants[ti].device_count(user));
        Shopper {
            ti,
            user,
            device: self.tenants[ti].device(user, k),
        }
    }

    /// A fresh fraudster with a single device.
    fn fraudster(&mut self) -> Shopper {
        let ti = self.pick_tenant();
        let tenant = &mut self.tenants[ti];
        tenant.fraudsters += 1;
        let user = FRAUD_USER_BASE + tenant.fraudsters;
        Shopper {
            ti,
            user,
            device: tenant.device(user, 0),
        }
    }

    /// How many of `sku` a shopper takes: several of a cheap article, rarely two dear ones.
    /// Keeping big baskets rare keeps ordinary shoppers clear of `amount_anomaly`.
    fn quantity(&mut self, ti: usize, sku: usize) -> i64 {
        let weights: &[(f64, i64)] = match self.tenants[ti].prices[sku] {
            ..5_000 => &[(0.60, 1), (0.25, 2), (0.10, 3), (0.05, 4)],
            5_000..15_000 => &[(0.85, 1), (0.15, 2)],
            _ => &[(0.97, 1), (0.03, 2)],
        };
        self.rng.weighted(weights)
    }

    fn next_id(&mut self, ti: usize, kind: IdKind) -> String {
        let t = &mut self.tenants[ti];
        let (prefix, counter, salt) = match kind {
            IdKind::Event => ("evt", &mut t.events, 0xE7),
            IdKind::Order => ("ord", &mut t.orders, 0x02D),
            IdKind::Payment => ("pay", &mut t.payments, 0x9A1),
        };
        *counter += 1;
        format!("{prefix}-{:016x}", mix(t.salt ^ salt ^ *counter))
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

    fn format_time(&mut self, ms: i64) -> String {
        let utc =
            DateTime::from_timestamp_millis(ms).expect("simulated time within chrono's range");
        if self.rng.chance(P_OFFSET_TIME) {
            let offset =
                FixedOffset::east_opt(self.rng.pick(&OFFSETS)).expect("offsets are < 24 h");
            utc.with_timezone(&offset)
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        } else {
            utc.to_rfc3339_opts(SecondsFormat::Millis, true)
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

    // --- event lines -------------------------------------------------------------------------

    /// The fields every event has; consumes an event id.
    fn header(&mut self, ti: usize, kind: &'static str, t: i64, version: u8) -> Line {
        let event_id = self.next_id(ti, IdKind::Event);
        let time = self.format_time(t);
        Line::default()
            .with("event_id", &event_id)
            .with("tenant_id", &self.tenants[ti].name)
            .with("type", kind)
            .with("event_time", &time)
            .with("schema_version", &version)
    }

    /// Orders follow their own version rule; other producers were mostly migrated to v2.
    fn version(&mut self) -> u8 {
        if self.rng.chance(0.1) { 1 } else { 2 }
    }

    fn page_view_line(&mut self, who: &Shopper, t: i64, url: &str, sku: Option<&str>) -> Line {
        let version = self.version();
        let device = self.rng.chance(0.85).then_some(who.device.as_str());
        // Browser and locale belong to the device, so they stay put across its page views.
        let h = who.device.bytes().fold(0, |h, b| mix(h ^ u64::from(b)));
        let user_agent = USER_AGENTS[h as usize % USER_AGENTS.len()];
        let (locale, timezone) = LOCALES[(h >> 32) as usize % LOCALES.len()];
        let mobile = user_agent.contains("Mobile") || user_agent.contains("iOS");
        let context = Context {
            user_agent,
            locale,
            timezone,
            referrer: self.rng.pick(&REFERRERS),
            ip: format!("203.0.113.{}", 1 + self.rng.below(254)),
            screen: if mobile {
                Screen {
                    width: 390,
                    height: 844,
                    dpr: 3.0,
                }
            } else {
                Screen {
                    width: 1920,
                    height: 1080,
                    dpr: 1.0,
                }
            },
            page_load_ms: 120 + self.rng.exp_ms(600.0),
            experiments: [self.rng.pick(&EXPERIMENTS), self.rng.pick(&EXPERIMENTS)],
            utm: self.rng.chance(0.3).then(|| {
                let (source, medium, campaign) = self.rng.pick(&CAMPAIGNS);
                Utm {
                    source,
                    medium,
                    campaign,
                }
            }),
            consent: Consent {
                analytics: true,
                marketing: self.rng.chance(0.6),
            },
        };
        self.header(who.ti, "page_view", t, version)
            .with("user_id", &user_name(who.user))
            .with("url", url)
            .with_opt("sku", sku)
            .with_opt("device_id", device)
            .with("context", &context)
    }

    fn add_to_cart_line(&mut self, who: &Shopper, t: i64, sku: usize, quantity: i64) -> Line {
        let version = self.version();
        let source = self
            .rng
            .pick(&["pdp", "search", "recommendations", "wishlist"]);
        self.header(who.ti, "add_to_cart", t, version)
            .with("user_id", &user_name(who.user))
            .with("sku", &sku_name(sku))
            .with("quantity", &quantity)
            .with("price_cents", &self.tenants[who.ti].prices[sku])
            .with("source", source)
    }

    /// A random version and discount, as the order service writes them.
    fn order_spec(&mut self, subtotal: i64) -> OrderSpec {
        if self.rng.chance(P_ORDER_V1) {
            return OrderSpec {
                version: 1,
                discount: None,
            };
        }
        let x = self.rng.unit();
        let discount = if x < 0.15 {
            let percent: i64 = self.rng.pick(&[5, 10, 15, 20]);
            Some(subtotal * percent / 100)
        } else if x < 0.25 {
            let coupon: i64 = self.rng.pick(&[500, 1_000, 1_500]);
            Some(coupon.min(subtotal))
        } else if x < 0.30 {
            Some(0) // Some clients always send the field.
        } else {
            None
        };
        OrderSpec {
            version: 2,
            discount,
        }
    }

    /// An `order_placed` line for `items`; returns it with its `total_cents`.
    fn order_line(
        &mut self,
        who: &Shopper,
        t: i64,
        order_id: &str,
        items: &[Item],
        spec: OrderSpec,
    ) -> (Line, i64) {
        let subtotal: i64 = items.iter().map(|i| i.quantity * i.price_cents).sum();
        let total = subtotal - spec.discount.unwrap_or(0);
        let device = self.rng.chance(0.7).then_some(who.device.as_str());
        let channel = self.rng.pick(&CHANNELS);
        let mut line = self
            .header(who.ti, "order_placed", t, spec.version)
            .with("user_id", &user_name(who.user))
            .with("order_id", order_id)
            .with("items", items)
            .with("total_cents", &total)
            .with_opt("device_id", device);
        if spec.version >= 2 {
            line = line
                .with("currency", self.tenants[who.ti].currency)
                .with_opt("discount_cents", spec.discount.as_ref());
        }
        (line.with("channel", channel), total)
    }

    fn cancel_line(&mut self, who: &Shopper, t: i64, order_id: &str) -> Line {
        let version = self.version();
        let reason = self.rng.pick(&[
            "customer_request",
            "out_of_stock",
            "fraud_review",
            "address_invalid",
        ]);
        self.header(who.ti, "order_cancelled", t, version)
            .with("user_id", &user_name(who.user))
            .with("order_id", order_id)
            .with("cancel_reason", reason)
    }

    fn payment_line(&mut self, pay: &Pay, t: i64, status: &str, with_card: bool) -> Line {
        let version = self.version();
        let fp = pay.show_fingerprint.then(|| fingerprint(pay.card));
        let mut line = self
            .header(pay.ti, "payment", t, version)
            .with("user_id", &user_name(pay.user))
            .with("order_id", &pay.order_id)
            .with("payment_id", &pay.payment_id)
            .with("provider", pay.provider.name)
            .with("status", status)
            .with("amount_cents", &pay.amount)
            .with_opt("device_id", pay.device.as_ref())
            .with_opt("card_fingerprint", fp.as_ref());
        if with_card {
            let number = card_number(pay.card, self.rng.chance(0.3));
            let cvv = format!("{:03}", mix(pay.card ^ 0xC77) % 1_000);
            line = line.with("card_number", &number).with("cvv", &cvv);
        }
        line = line.with("attempt", &pay.attempt);
        if pay.provider.name == "adyen" {
            // Adyen's reference: alphanumeric, so it never looks like a card number.
            line = line.with(
                "psp_reference",
                &format!("NC{:014X}", mix(pay.card ^ t as u64) >> 8),
            );
        }
        line
    }

    fn inventory_line(&mut self, ti: usize, t: i64) -> Line {
        let version = self.version();
        let sku = self.pick_sku(ti);
        let (reason, delta) = match self.rng.below(20) {
            0..=4 => ("restock", self.rng.range(50, 500)),
            5..=11 => ("return", 1),
            12..=15 => ("damage", -self.rng.range(1, 5)),
            _ => ("shrinkage", -self.rng.range(1, 3)),
        };
        let warehouse = self.rng.chance(0.7).then(|| self.rng.pick(&WAREHOUSES));
        self.header(ti, "inventory_adjusted", t, version)
            .with("sku", &sku_name(sku))
            .with("delta", &delta)
            .with("reason", reason)
            .with_opt("warehouse", warehouse)
    }

    // --- planned pieces of episodes ----------------------------------------------------------

    /// Plans a page view of a random page; returns the SKU if it was a product page.
    fn browse(&mut self, who: &Shopper, t: i64) -> Option<usize> {
        let x = self.rng.unit();
        let (url, sku) = if x < 0.60 {
            let sku = self.pick_sku(who.ti);
            (format!("/p/{}", sku_name(sku)), Some(sku))
        } else if x < 0.75 {
            (format!("/c/{}", self.rng.pick(&CATEGORIES)), None)
        } else if x < 0.85 {
            (format!("/search?q={}", self.rng.pick(&SEARCH_TERMS)), None)
        } else if x < 0.95 {
            ("/".to_owned(), None)
        } else {
            ("/cart".to_owned(), None)
        };
        // The SDK does not always know the product on a product page.
        let sku_field = sku.filter(|_| self.rng.chance(0.9)).map(sku_name);
        let line = self.page_view_line(who, t, &url, sku_field.as_deref());
        self.plan(t, &line);
        sku
    }

    /// Plans a product page view of `sku` (the first step of the fraud scenarios).
    fn view_product(&mut self, who: &Shopper, t: i64, sku: usize) {
        let name = sku_name(sku);
        let line = self.page_view_line(who, t, &format!("/p/{name}"), Some(&name));
        self.plan(t, &line);
    }

    fn place_order(&mut self, who: &Shopper, t: i64, items: &[Item], spec: OrderSpec) -> Placed {
        let order_id = self.next_id(who.ti, IdKind::Order);
        let (line, total) = self.order_line(who, t, &order_id, items, spec);
        self.plan(t, &line);
        Placed { order_id, total }
    }

    /// Places an order with a random spec, then plans its payments and maybe a cancellation.
    fn checkout(&mut self, who: &Shopper, t: i64, items: &[Item]) {
        let subtotal = items.iter().map(|i| i.quantity * i.price_cents).sum();
        let spec = self.order_spec(subtotal);
        let order = self.place_order(who, t, items, spec);
        self.pay(who, &order, t);
        if self.rng.chance(P_CANCEL) {
            let at = t + 60_000 + self.rng.exp_ms(1_200_000.0);
            let line = self.cancel_line(who, at, &order.order_id);
            self.plan(at, &line);
        }
    }

    /// A new payment attempt for `order`, with a provider and one of the user's cards.
    fn attempt(
        &mut self,
        who: &Shopper,
        order: &Placed,
        provider: &'static Provider,
        n: u32,
    ) -> Pay {
        let tenant = &self.tenants[who.ti];
        let card = tenant.card(who.user, u64::from(n - 1) % tenant.card_count(who.user));
        let show_fingerprint = self.rng.chance(if provider.cards { 0.9 } else { 0.1 });
        Pay {
            ti: who.ti,
            user: who.user,
            order_id: order.order_id.clone(),
            payment_id: self.next_id(who.ti, IdKind::Payment),
            provider,
            amount: order.total,
            attempt: n,
            device: self.rng.chance(0.85).then(|| who.device.clone()),
            card,
            show_fingerprint,
        }
    }

    /// Plans the payment events of an order: up to three attempts, a declined one sometimes
    /// retried with the user's other card.
    fn pay(&mut self, who: &Shopper, order: &Placed, t_order: i64) {
        if self.rng.chance(P_UNPAID) {
            return;
        }
        let provider = self
            .rng
            .weighted(&PROVIDERS.each_ref().map(|p| (p.share, p)));
        let mut t = t_order + 500 + self.rng.exp_ms(3_000.0);
        for n in 1..=3 {
            let pay = self.attempt(who, order, provider, n);
            let outcome = self.rng.weighted(&OUTCOMES);
            t = self.plan_flow(&pay, outcome, t);
            if outcome != Outcome::FailedEarly || !self.rng.chance(0.5) {
                break;
            }
            t += 5_000 + self.rng.exp_ms(30_000.0);
        }
    }

    /// The status words of one attempt with the given outcome, in flow order.
    fn flow(&mut self, pr: &'static Provider, outcome: Outcome) -> Vec<(Stage, &'static str)> {
        let start = self.rng.below(pr.pending.len() as u64) as usize;
        let mut steps: Vec<_> = pr.pending[start..]
            .iter()
            .map(|&s| (Stage::Pending, s))
            .collect();
        let authorized = (Stage::Authorized, pr.authorized);
        match outcome {
            Outcome::FailedEarly => {
                // Declined outright, or after the pending step.
                if self.rng.chance(0.4) {
                    steps.clear();
                }
                steps.push((Stage::Failed, self.rng.pick(pr.failed_early)));
            }
            Outcome::FailedLate => {
                steps.push(authorized);
                steps.push((Stage::Failed, self.rng.pick(pr.failed_late)));
            }
            Outcome::Stalled => {
                if self.rng.chance(0.5) {
                    steps.push(authorized);
                }
            }
            Outcome::Captured | Outcome::Refunded => {
                steps.push(authorized);
                steps.extend(pr.captured.iter().map(|&s| (Stage::Captured, s)));
                if outcome == Outcome::Refunded {
                    steps.push((Stage::Refunded, pr.refunded));
                }
            }
        }
        steps
    }

    /// Time from one status to the next, by what the next one means.
    fn step_gap(&mut self, prev: Stage, next: Stage) -> i64 {
        match (prev, next) {
            (_, Stage::Refunded) => 600_000 + self.rng.exp_ms(3_600_000.0),
            (Stage::Captured, Stage::Captured) => 60_000 + self.rng.exp_ms(600_000.0),
            (_, Stage::Captured) => 1_000 + self.rng.exp_ms(30_000.0),
            (Stage::Authorized, Stage::Failed) => 5_000 + self.rng.exp_ms(120_000.0),
            _ => 200 + self.rng.exp_ms(2_000.0),
        }
    }

    /// Plans one attempt's status events from `t` on, strictly increasing in time; returns
    /// the time of the last one.
    fn plan_flow(&mut self, pay: &Pay, outcome: Outcome, mut t: i64) -> i64 {
        let steps = self.flow(pay.provider, outcome);
        let mut prev = None;
        for (stage, status) in steps {
            if let Some(p) = prev {
                t += self.step_gap(p, stage);
            }
            prev = Some(stage);
            let with_card = self.rng.chance(P_CARD_NUMBER);
            let line = self.payment_line(pay, t, status, with_card);
            self.plan(t, &line);
        }
        t
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

    /// A shopper browses a few pages; some fill a cart, some of those check out.
    fn journey(&mut self, mut t: i64) {
        let ti = self.pick_tenant();
        let user = self.pick_user(ti);
        let who = self.shopper(ti, user);
        let mut viewed = Vec::new();
        for i in 0..1 + self.rng.geometric(0.65, 15) {
            if i > 0 {
                t += 2_000 + self.rng.exp_ms(15_000.0);
            }
            viewed.extend(self.browse(&who, t));
        }
        if !self.rng.chance(P_CART) {
            return;
        }
        let mut cart: Vec<(usize, i64)> = Vec::new();
        for _ in 0..self.rng.range(1, 3) {
            t += 1_000 + self.rng.exp_ms(8_000.0);
            let sku = if viewed.is_empty() || self.rng.chance(0.2) {
                self.pick_sku(ti)
            } else {
                self.rng.pick(&viewed)
            };
            let quantity = self.quantity(ti, sku);
            let line = self.add_to_cart_line(&who, t, sku, quantity);
            self.plan(t, &line);
            match cart.iter_mut().find(|(s, _)| *s == sku) {
                Some((_, q)) => *q += quantity,
                None => cart.push((sku, quantity)),
            }
        }
        if !self.rng.chance(P_CHECKOUT) {
            return;
        }
        // Returning customers sometimes check out items carted in an earlier visit too.
        if cart.len() < 4 && self.rng.chance(0.2) {
            let sku = self.pick_sku(ti);
            if cart.iter().all(|(s, _)| *s != sku) {
                cart.push((sku, 1));
            }
        }
        t += 10_000 + self.rng.exp_ms(60_000.0);
        let items: Vec<Item> = cart
            .iter()
            .map(|&(sku, q)| self.tenants[ti].item(sku, q))
            .collect();
        self.checkout(&who, t, &items);
    }

    /// `velocity`: one user places 5–7 orders within nine minutes. Near misses: four orders
    /// in ten minutes, or five spread so that no ten-minute window holds five.
    fn velocity(&mut self, mut t: i64, scenario: Scenario) {
        let who = self.fraudster();
        let (orders, gap) = match scenario {
            Scenario::Fraud => (self.rng.range(5, 7), (15_000, 90_000)),
            Scenario::NearMiss if self.rng.chance(0.5) => (4, (15_000, 140_000)),
            // Four gaps of at least 155 s span more than ten minutes.
            Scenario::NearMiss => (5, (155_000, 170_000)),
        };
        let sku = self.pick_sku(who.ti);
        self.view_product(&who, t, sku);
        t += 3_000;
        for i in 0..orders {
            if i > 0 {
                t += self.rng.range(gap.0, gap.1);
            }
            let sku = self.pick_sku(who.ti);
            let mut items = vec![self.tenants[who.ti].item(sku, 1)];
            if self.rng.chance(0.4) {
                let sku = self.pick_sku(who.ti);
                let quantity = self.quantity(who.ti, sku);
                items.push(self.tenants[who.ti].item(sku, quantity));
            }
            self.checkout(&who, t, &items);
        }
    }

    /// `card_testing`: a cheap order, then 3–6 declined attempts from one device with distinct
    /// stolen cards within four minutes, sometimes followed by one that works. Near misses:
    /// the attempts rotate only two cards, or three cards are tried more than five minutes
    /// apart.
    fn card_testing(&mut self, mut t: i64, scenario: Scenario) {
        let who = self.fraudster();
        let cheapest = self.tenants[who.ti].cheapest;
        self.view_product(&who, t, cheapest);
        t += 5_000 + self.rng.exp_ms(10_000.0);
        let items = [self.tenants[who.ti].item(cheapest, 1)];
        let spec = OrderSpec {
            version: 2,
            discount: None,
        };
        let order = self.place_order(&who, t, &items, spec);

        let spread = scenario == Scenario::NearMiss && self.rng.chance(0.5);
        let (attempts, distinct) = match scenario {
            Scenario::Fraud => {
                let n = self.rng.range(3, 6) as usize;
                (n, n)
            }
            Scenario::NearMiss if spread => (3, 3),
            Scenario::NearMiss => (self.rng.range(3, 5) as usize, 2),
        };
        // Stolen cards: fresh keys, with distinct fingerprints.
        let mut cards: Vec<u64> = Vec::with_capacity(distinct);
        while cards.len() < distinct {
            let card = self.rng.next_u64();
            if cards.iter().all(|c| c >> 16 != card >> 16) {
                cards.push(card);
            }
        }
        let start = t + 2_000;
        let mut times: Vec<i64> = if spread {
            // Consecutive tries 160–200 s apart: any three span more than five minutes.
            let mut at = start;
            (0..attempts)
                .map(|i| {
                    if i > 0 {
                        at += self.rng.range(160_000, 200_000);
                    }
                    at
                })
                .collect()
        } else {
            // All within 230 s (declines land at most 2 s later: inside five minutes).
            (0..attempts)
                .map(|_| start + self.rng.range(0, 230_000))
                .collect()
        };
        times.sort_unstable();
        let provider = &PROVIDERS[if self.rng.chance(0.6) { 0 } else { 1 }];
        for (i, &at) in times.iter().enumerate() {
            let pay = Pay {
                ti: who.ti,
                user: who.user,
                order_id: order.order_id.clone(),
                payment_id: self.next_id(who.ti, IdKind::Payment),
                provider,
                amount: order.total,
                attempt: i as u32 + 1,
                device: Some(who.device.clone()),
                card: cards[i % cards.len()],
                show_fingerprint: true,
            };
            let mut at = at;
            if self.rng.chance(0.5) {
                let pending = self.rng.pick(provider.pending);
                // Carders send raw card details far more often than real shoppers' clients.
                let with_card = self.rng.chance(0.4);
                let line = self.payment_line(&pay, at, pending, with_card);
                self.plan(at, &line);
                at += self.rng.range(300, 1_500);
            }
            let declined = self.rng.pick(provider.failed_early);
            let with_card = self.rng.chance(0.4);
            let line = self.payment_line(&pay, at, declined, with_card);
            self.plan(at, &line);
        }
        if self.rng.chance(0.3) {
            let last = times.last().copied().unwrap_or(start);
            let mut pay = self.attempt(&who, &order, provider, attempts as u32 + 1);
            pay.device = Some(who.device.clone());
            pay.card = self.rng.next_u64();
            pay.show_fingerprint = true;
            self.plan_flow(&pay, Outcome::Captured, last + 20_000);
        }
    }

    /// `amount_anomaly`: a new customer places 3–5 small orders, then one of $1,000 or more
    /// and over five times their average. Near misses: the big order after only two priors,
    /// or a discount bringing it just under the $1,000 threshold.
    fn amount_anomaly(&mut self, mut t: i64, scenario: Scenario) {
        let who = self.fraudster();
        let under_threshold = scenario == Scenario::NearMiss && self.rng.chance(0.5);
        let priors = if scenario == Scenario::NearMiss && !under_threshold {
            2
        } else {
            self.rng.range(3, 5)
        };
        let cheapest = self.tenants[who.ti].cheapest;
        let mut prior_sum = 0;
        for i in 0..priors {
            if i > 0 {
                // At least three minutes apart, so no ten-minute window holds five orders.
                t += 180_000 + self.rng.exp_ms(300_000.0);
            }
            self.view_product(&who, t, cheapest);
            let at = t + 20_000 + self.rng.exp_ms(40_000.0);
            let quantity = self.rng.range(1, 2);
            let items = [self.tenants[who.ti].item(cheapest, quantity)];
            self.checkout_exact(&who, at, &items, &mut prior_sum);
            t = at;
        }
        t += 180_000 + self.rng.exp_ms(600_000.0);
        let dearest = self.tenants[who.ti].dearest;
        let price = self.tenants[who.ti].prices[dearest];
        self.view_product(&who, t, dearest);
        t += 30_000 + self.rng.exp_ms(60_000.0);
        let (quantity, spec) = if under_threshold {
            // The subtotal clears $1,000 but the total, after a discount, does not.
            let quantity = (100_000 + price - 1) / price;
            let total = self.rng.range(95_000, 99_999).min(quantity * price);
            let discount = Some(quantity * price - total);
            (
                quantity,
                OrderSpec {
                    version: 2,
                    discount,
                },
            )
        } else {
            // Comfortably over both thresholds whatever the priors were.
            let target = self
                .rng
                .range(120_000, 400_000)
                .max(5 * prior_sum / priors + 1);
            let version = if self.rng.chance(P_ORDER_V1) { 1 } else { 2 };
            let spec = OrderSpec {
                version,
                discount: None,
            };
            ((target + price - 1) / price, spec)
        };
        let items = [self.tenants[who.ti].item(dearest, quantity)];
        let order = self.place_order(&who, t, &items, spec);
        self.pay(&who, &order, t);
    }

    /// A v2 order without discount (so its total is exact), paid, adding its total to `sum`.
    fn checkout_exact(&mut self, who: &Shopper, t: i64, items: &[Item], sum: &mut i64) {
        let spec = OrderSpec {
            version: 2,
            discount: None,
        };
        let order = self.place_order(who, t, items, spec);
        *sum += order.total;
        self.pay(who, &order, t);
    }

    // --- malformed lines ---------------------------------------------------------------------

    /// One valid event of `kind` for a random user, not planned: the raw material of a
    /// malformed line. Payments always carry card data; orders are v2 (so `currency` counts).
    fn sample(&mut self, ti: usize, t: i64, kind: Kind) -> Line {
        let user = self.pick_user(ti);
        let who = self.shopper(ti, user);
        match kind {
            Kind::PageView => {
                let sku = sku_name(self.pick_sku(ti));
                self.page_view_line(&who, t, &format!("/p/{sku}"), Some(&sku))
            }
            Kind::AddToCart => {
                let sku = self.pick_sku(ti);
                let quantity = self.quantity(ti, sku);
                self.add_to_cart_line(&who, t, sku, quantity)
            }
            Kind::Order => {
                let items: Vec<Item> = (0..self.rng.range(1, 3))
                    .map(|_| {
                        let sku = self.pick_sku(ti);
                        self.tenants[ti].item(sku, 1)
                    })
                    .collect();
                let order_id = self.next_id(ti, IdKind::Order);
                let spec = OrderSpec {
                    version: 2,
                    discount: None,
                };
                self.order_line(&who, t, &order_id, &items, spec).0
            }
            Kind::Cancel => {
                let order_id = self.next_id(ti, IdKind::Order);
                self.cancel_line(&who, t, &order_id)
            }
            Kind::Payment => {
                let sku = self.pick_sku(ti);
                let order = Placed {
                    order_id: self.next_id(ti, IdKind::Order),
                    total: self.tenants[ti].prices[sku],
                };
                let provider = &PROVIDERS[self.rng.below(2) as usize];
                let pay = self.attempt(&who, &order, provider, 1);
                let status = provider.captured[0];
                self.payment_line(&pay, t, status, true)
            }
            Kind::Inventory => self.inventory_line(ti, t),
        }
    }

    /// The next malformed line. Classes rotate so that each appears once every seven malformed
    /// lines (about every 1,400 lines), and each class walks through its variants in turn.
    fn malformed_line(&mut self) -> String {
        let n = self.malformed;
        self.malformed += 1;
        let variant = (n / MALFORMED_CLASSES) as usize;
        let ti = self.pick_tenant();
        let t = self.clock;
        match n % MALFORMED_CLASSES {
            0 => self.invalid_json(ti, t, variant),
            1 => {
                let (kind, field) = MISSING[variant % MISSING.len()];
                let mut line = self.sample(ti, t, kind);
                line.remove(field);
                line.render()
            }
            2 => {
                let (kind, field, raw) = WRONG_TYPE[variant % WRONG_TYPE.len()];
                let mut line = self.sample(ti, t, kind);
                line.set(field, raw.to_owned());
                line.render()
            }
            3 => {
                let (kind, field, raw) = INVALID_VALUE[variant % INVALID_VALUE.len()];
                let mut line = self.sample(ti, t, kind);
                line.set(field, raw.to_owned());
                line.render()
            }
            4 => {
                let (kind, name) = UNKNOWN_TYPE[variant % UNKNOWN_TYPE.len()];
                let mut line = self.sample(ti, t, kind);
                line.set("type", json(name));
                line.render()
            }
            5 => {
                let (kind, version) = BAD_SCHEMA[variant % BAD_SCHEMA.len()];
                let mut line = self.sample(ti, t, kind);
                line.set("schema_version", version.to_string());
                line.render()
            }
            _ => self.oversize(ti, t, variant),
        }
    }

    /// A truncated event (a crashed producer, a split write), or now and then a proxy's error
    /// page where an event should be.
    fn invalid_json(&mut self, ti: usize, t: i64, variant: usize) -> String {
        if variant % 5 == 4 {
            return "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>".to_owned();
        }
        let kind = INVALID_JSON[variant % INVALID_JSON.len()];
        let mut line = self.sample(ti, t, kind).render();
        // Cut anywhere past the first third: card data is sometimes kept, sometimes cut off.
        let mut cut = self.rng.range(line.len() as i64 / 3, line.len() as i64 - 2) as usize;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line
    }

    /// A line over the 64 KiB limit: a huge search URL, a payment dragging a huge gateway
    /// response along (with card data), or an order with thousands of items.
    fn oversize(&mut self, ti: usize, t: i64, variant: usize) -> String {
        let target = MAX_LINE_BYTES + self.rng.range(1_000, 25_000) as usize;
        let filler = |rng: &mut Rng| {
            let mut s = String::with_capacity(target + 32);
            while s.len() < target {
                s.push_str(rng.pick(&SEARCH_TERMS));
                s.push('+');
            }
            s
        };
        match variant % 3 {
            0 => {
                let mut line = self.sample(ti, t, Kind::PageView);
                line.set("url", json(&format!("/search?q={}", filler(&mut self.rng))));
                line.render()
            }
            1 => {
                let mut line = self.sample(ti, t, Kind::Payment);
                line.set("gateway_response", json(&filler(&mut self.rng)));
                line.render()
            }
            _ => {
                let mut line = self.sample(ti, t, Kind::Order);
                // ~50 bytes per item.
                let items: Vec<Item> = (0..target / 45)
                    .map(|_| {
                        let sku = self.pick_sku(ti);
                        self.tenants[ti].item(sku, 1)
                    })
                    .collect();
                let total: i64 = items.iter().map(|i| i.price_cents).sum();
                line.set("items", json(&items));
                line.set("total_cents", total.to_string());
                line.render()
            }
        }
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

    use serde_json::{Map, Value};

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
