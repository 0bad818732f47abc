//! What the simulated shops are made of: tenants with their users, devices, cards and priced
//! SKUs, the vocabulary their events are dressed in (currencies, user agents, locales,
//! referrers, campaigns, categories, warehouses), and the payment providers with their status
//! words.
//!
//! Identities (ids, devices, cards) are derived from counters and each tenant's salt rather
//! than stored, and card numbers are synthetic: Luhn-valid, never real. It plans no event and
//! emits no line; journeys and fraud dress their events from it.

use serde::Serialize;

use super::rng::{Rng, mix};
use super::{Generator, INVENTORY_EVERY_MS};

const USERS_PER_TENANT: u32 = 2_000;
const SKUS_PER_TENANT: usize = 300;

const TENANT_NAMES: [&str; 4] = ["acme", "globex", "initech", "umbrella"];
const CURRENCIES: [&str; 3] = ["USD", "EUR", "GBP"];

pub(super) const USER_AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Pro) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.6723.107 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "ShopApp/5.12.0 (iOS 18.1; iPhone15,2; Scale/3.00) Alamofire/5.9.1",
];
pub(super) const LOCALES: [(&str, &str); 6] = [
    ("en-US", "America/New_York"),
    ("en-US", "America/Los_Angeles"),
    ("de-DE", "Europe/Berlin"),
    ("en-GB", "Europe/London"),
    ("fr-FR", "Europe/Paris"),
    ("ja-JP", "Asia/Tokyo"),
];
pub(super) const REFERRERS: [&str; 6] = [
    "",
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://l.instagram.com/",
    "https://news.ycombinator.com/",
    "android-app://com.google.android.gm/",
];
pub(super) const CAMPAIGNS: [(&str, &str, &str); 4] = [
    ("google", "cpc", "black_friday_2025"),
    ("newsletter", "email", "weekly_deals_47"),
    ("instagram", "social", "holiday_gift_guide"),
    ("partner", "affiliate", "cashback_q4"),
];
pub(super) const CATEGORIES: [&str; 8] = [
    "shoes",
    "outerwear",
    "kitchen",
    "audio",
    "toys",
    "garden",
    "beauty",
    "books",
];
pub(super) const SEARCH_TERMS: [&str; 8] = [
    "running+shoes",
    "wireless+earbuds",
    "rain+jacket",
    "espresso+machine",
    "lego",
    "gift+for+dad",
    "yoga+mat",
    "desk+lamp",
];
pub(super) const EXPERIMENTS: [&str; 6] = [
    "checkout_v2:B",
    "reco_model:control",
    "free_shipping_banner:A",
    "search_rerank:B",
    "pdp_video:A",
    "one_click:control",
];
pub(super) const CHANNELS: [&str; 3] = ["web", "ios", "android"];
pub(super) const WAREHOUSES: [&str; 5] = [
    "WH-EAST-1",
    "WH-WEST-2",
    "WH-CENTRAL",
    "WH-EU-FRA",
    "WH-UK-MAN",
];

// ---------------------------------------------------------------------------------------------
// Payment providers and their status flows (SPEC §1 lists the words).

/// One provider's vocabulary, in flow order.
pub(super) struct Provider {
    pub(super) name: &'static str,
    /// Share of payments.
    pub(super) share: f64,
    /// Pending words in flow order; a flow may start at any of them (Stripe only asks for
    /// `requires_action` when 3-D Secure kicks in).
    pub(super) pending: &'static [&'static str],
    pub(super) authorized: &'static str,
    /// Captured words in flow order (Adyen reports the settlement after the capture request).
    pub(super) captured: &'static [&'static str],
    /// Declines straight after the attempt, and voids after an authorisation.
    pub(super) failed_early: &'static [&'static str],
    pub(super) failed_late: &'static [&'static str],
    pub(super) refunded: &'static str,
    /// Card acquirers show a card fingerprint on most payments; wallets rarely do.
    pub(super) cards: bool,
}

/// `klarna` is not in the normalisation table: its words must all become `unknown`, however
/// canonical they look.
pub(super) static PROVIDERS: [Provider; 4] = [
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

// ---------------------------------------------------------------------------------------------
// Tenants and the identities derived from them.

/// One merchant: its catalogue and the counters its ids are drawn from.
pub(super) struct Tenant {
    pub(super) name: String,
    pub(super) currency: &'static str,
    /// Keys every identity derived for this tenant (ids, devices, cards).
    salt: u64,
    users: u32,
    /// `price_cents` by SKU index.
    pub(super) prices: Vec<i64>,
    pub(super) cheapest: usize,
    pub(super) dearest: usize,
    events: u64,
    orders: u64,
    payments: u64,
    pub(super) fraudsters: u32,
    pub(super) next_inventory_ms: i64,
    pub(super) inventory_mean_ms: f64,
}

impl Tenant {
    pub(super) fn new(index: usize, share: f64, rng: &mut Rng, start_ms: i64) -> Tenant {
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
    pub(super) fn device(&self, user: u32, k: u64) -> String {
        format!(
            "dev-{:012x}",
            mix(self.salt ^ 0xDE71 ^ (u64::from(user) << 4 | k)) >> 16
        )
    }

    pub(super) fn device_count(&self, user: u32) -> u64 {
        1 + mix(self.salt ^ 0xDE70 ^ u64::from(user)) % 3
    }

    /// The cards a user pays with: a quarter of users have two.
    pub(super) fn card(&self, user: u32, k: u64) -> u64 {
        mix(self.salt ^ 0xCA2D ^ (u64::from(user) << 4 | k))
    }

    pub(super) fn card_count(&self, user: u32) -> u64 {
        1 + u64::from(mix(self.salt ^ 0xCA2C ^ u64::from(user)).is_multiple_of(4))
    }

    pub(super) fn item(&self, sku: usize, quantity: i64) -> Item {
        Item {
            sku: sku_name(sku),
            quantity,
            price_cents: self.prices[sku],
        }
    }
}

#[derive(Serialize)]
pub(super) struct Item {
    sku: String,
    pub(super) quantity: i64,
    pub(super) price_cents: i64,
}

/// A 16-digit card number with a valid Luhn check digit, derived from the card's key.
pub(super) fn card_number(key: u64, spaced: bool) -> String {
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

pub(super) fn fingerprint(card: u64) -> String {
    format!("fp-{:012x}", card >> 16)
}

pub(super) fn sku_name(sku: usize) -> String {
    format!("SKU-{sku:05}")
}

pub(super) fn user_name(user: u32) -> String {
    format!("u-{user:06}")
}

/// Which per-tenant counter an id comes from.
#[derive(Clone, Copy)]
pub(super) enum IdKind {
    Event,
    Order,
    Payment,
}

impl Generator {
    // --- picking -----------------------------------------------------------------------------

    pub(super) fn pick_tenant(&mut self) -> usize {
        let x = self.rng.unit();
        self.tenant_cdf
            .iter()
            .position(|&c| x < c)
            .unwrap_or(self.tenants.len() - 1)
    }

    /// A user with skewed popularity (`n·u^1.5`: the top user gets ~0.6% of the tenant's
    /// journeys). Gentle enough that ordinary shoppers rarely reach the velocity threshold.
    pub(super) fn pick_user(&mut self, ti: usize) -> u32 {
        let u = self.rng.unit();
        let n = self.tenants[ti].users;
        ((u * u.sqrt() * f64::from(n)) as u32).min(n - 1)
    }

    /// A SKU with strongly skewed popularity (`n·u²`): bestsellers dominate.
    pub(super) fn pick_sku(&mut self, ti: usize) -> usize {
        let u = self.rng.unit();
        let n = self.tenants[ti].prices.len();
        ((u * u * n as f64) as usize).min(n - 1)
    }

    pub(super) fn next_id(&mut self, ti: usize, kind: IdKind) -> String {
        let t = &mut self.tenants[ti];
        let (prefix, counter, salt) = match kind {
            IdKind::Event => ("evt", &mut t.events, 0xE7),
            IdKind::Order => ("ord", &mut t.orders, 0x02D),
            IdKind::Payment => ("pay", &mut t.payments, 0x9A1),
        };
        *counter += 1;
        format!("{prefix}-{:016x}", mix(t.salt ^ salt ^ *counter))
    }
}
