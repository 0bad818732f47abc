//! Ordinary traffic: shoppers browsing, filling carts, placing orders and paying through their
//! provider's status flow, and the tenants' inventory adjustments.
//!
//! It plans ordinary traffic only: `fraud` reuses its orders and payment flows, and broken
//! lines are `malformed`'s. It emits nothing itself: every line goes through `plan`, which
//! decides how late it is, into the emission queue.

use serde::Serialize;

use super::catalogue::{
    CAMPAIGNS, CATEGORIES, CHANNELS, EXPERIMENTS, IdKind, Item, LOCALES, PROVIDERS, Provider,
    REFERRERS, SEARCH_TERMS, USER_AGENTS, WAREHOUSES, card_number, fingerprint, sku_name,
    user_name,
};
use super::line::Line;
use super::rng::mix;
use super::{Generator, P_CANCEL, P_CARD_NUMBER, P_CART, P_CHECKOUT, P_ORDER_V1, P_UNPAID};

/// A user of a tenant on one of their devices: who acts in an episode.
pub(super) struct Shopper {
    pub(super) ti: usize,
    pub(super) user: u32,
    pub(super) device: String,
}

/// One payment attempt; its status events share everything here.
pub(super) struct Pay {
    pub(super) ti: usize,
    pub(super) user: u32,
    pub(super) order_id: String,
    pub(super) payment_id: String,
    pub(super) provider: &'static Provider,
    pub(super) amount: i64,
    pub(super) attempt: u32,
    pub(super) device: Option<String>,
    /// The card's key; its fingerprint is shown only if `show_fingerprint`.
    pub(super) card: u64,
    pub(super) show_fingerprint: bool,
}

/// How an order is written: schema version and the optional v2 discount.
#[derive(Clone, Copy)]
pub(super) struct OrderSpec {
    pub(super) version: u8,
    pub(super) discount: Option<i64>,
}

/// An order as its payments and cancellation need it.
pub(super) struct Placed {
    pub(super) order_id: String,
    pub(super) total: i64,
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

// ---------------------------------------------------------------------------------------------
// Payment flows (the providers' words are in the catalogue).

/// How one payment attempt ends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
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

impl Generator {
    // --- picking -----------------------------------------------------------------------------

    pub(super) fn shopper(&mut self, ti: usize, user: u32) -> Shopper {
        let k = self.rng.below(self.tenants[ti].device_count(user));
        Shopper {
            ti,
            user,
            device: self.tenants[ti].device(user, k),
        }
    }

    /// How many of `sku` a shopper takes: several of a cheap article, rarely two dear ones.
    /// Keeping big baskets rare keeps ordinary shoppers clear of `amount_anomaly`.
    pub(super) fn quantity(&mut self, ti: usize, sku: usize) -> i64 {
        let weights: &[(f64, i64)] = match self.tenants[ti].prices[sku] {
            ..5_000 => &[(0.60, 1), (0.25, 2), (0.10, 3), (0.05, 4)],
            5_000..15_000 => &[(0.85, 1), (0.15, 2)],
            _ => &[(0.97, 1), (0.03, 2)],
        };
        self.rng.weighted(weights)
    }

    // --- event lines -------------------------------------------------------------------------
    pub(super) fn page_view_line(
        &mut self,
        who: &Shopper,
        t: i64,
        url: &str,
        sku: Option<&str>,
    ) -> Line {
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

    pub(super) fn add_to_cart_line(
        &mut self,
        who: &Shopper,
        t: i64,
        sku: usize,
        quantity: i64,
    ) -> Line {
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
    pub(super) fn order_line(
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

    pub(super) fn cancel_line(&mut self, who: &Shopper, t: i64, order_id: &str) -> Line {
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

    pub(super) fn payment_line(
        &mut self,
        pay: &Pay,
        t: i64,
        status: &str,
        with_card: bool,
    ) -> Line {
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

    pub(super) fn inventory_line(&mut self, ti: usize, t: i64) -> Line {
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
    pub(super) fn place_order(
        &mut self,
        who: &Shopper,
        t: i64,
        items: &[Item],
        spec: OrderSpec,
    ) -> Placed {
        let order_id = self.next_id(who.ti, IdKind::Order);
        let (line, total) = self.order_line(who, t, &order_id, items, spec);
        self.plan(t, &line);
        Placed { order_id, total }
    }

    /// Places an order with a random spec, then plans its payments and maybe a cancellation.
    pub(super) fn checkout(&mut self, who: &Shopper, t: i64, items: &[Item]) {
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
    pub(super) fn attempt(
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
    pub(super) fn pay(&mut self, who: &Shopper, order: &Placed, t_order: i64) {
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
    pub(super) fn plan_flow(&mut self, pay: &Pay, outcome: Outcome, mut t: i64) -> i64 {
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

    /// A shopper browses a few pages; some fill a cart, some of those check out.
    pub(super) fn journey(&mut self, mut t: i64) {
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
}
