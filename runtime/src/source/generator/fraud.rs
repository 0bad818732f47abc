//! The injected fraud: a scenario for every rule of SPEC §2 (velocity, card testing, amount
//! anomaly), each with near misses that must not alert.

use super::catalogue::{IdKind, Item, PROVIDERS, sku_name};
use super::journeys::{OrderSpec, Outcome, Pay, Shopper};
use super::{Generator, P_ORDER_V1};

/// Fraudsters are fresh users numbered from here, so their order history is exactly what the
/// scenario planned and the rule fires (or, for a near miss, does not) by construction.
pub(super) const FRAUD_USER_BASE: u32 = 900_000;

/// Variants of a fraud scenario: the real thing, or a near miss that must not alert.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Scenario {
    Fraud,
    NearMiss,
}

impl Generator {
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

    /// Plans a product page view of `sku` (the first step of the fraud scenarios).
    fn view_product(&mut self, who: &Shopper, t: i64, sku: usize) {
        let name = sku_name(sku);
        let line = self.page_view_line(who, t, &format!("/p/{name}"), Some(&name));
        self.plan(t, &line);
    }

    /// `velocity`: one user places 5–7 orders within nine minutes. Near misses: four orders
    /// in ten minutes, or five spread so that no ten-minute window holds five.
    pub(super) fn velocity(&mut self, mut t: i64, scenario: Scenario) {
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
    pub(super) fn card_testing(&mut self, mut t: i64, scenario: Scenario) {
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
    pub(super) fn amount_anomaly(&mut self, mut t: i64, scenario: Scenario) {
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
}
