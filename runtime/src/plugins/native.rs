//! Native Rust implementations of the default plugins: `normalize-payments` and the three
//! fraud rules of SPEC §2 with their thresholds.
//!
//! They read only their input and keep no state between calls (no clock, no I/O, no feature
//! they compute themselves), so they hold to the same contract as a sandboxed plugin.

use std::sync::Arc;

use super::registry::{RuleMaker, RuleSpec, content_hash};
use super::{Alert, PluginError, PluginFactory, Rule, RuleEventKind, RuleInput, Transform};
use crate::event::{Body, Event, status};

/// Maps a provider's own status word to the canonical status (SPEC §1 table).
pub fn canonical_status(provider: &str, raw: &str) -> &'static str {
    use status::*;
    match (provider, raw) {
        ("stripe", "requires_action" | "processing") => PENDING,
        ("stripe", "requires_capture") => AUTHORIZED,
        ("stripe", "succeeded") => CAPTURED,
        ("stripe", "canceled" | "payment_failed") => FAILED,
        ("stripe", "refunded") => REFUNDED,
        ("adyen", "Received") => PENDING,
        ("adyen", "Authorised") => AUTHORIZED,
        ("adyen", "SentForSettle" | "Settled") => CAPTURED,
        ("adyen", "Refused" | "Error" | "Cancelled") => FAILED,
        ("adyen", "Refunded") => REFUNDED,
        ("paypal", "PENDING") => PENDING,
        ("paypal", "APPROVED") => AUTHORIZED,
        ("paypal", "COMPLETED") => CAPTURED,
        ("paypal", "DECLINED" | "VOIDED") => FAILED,
        ("paypal", "REFUNDED") => REFUNDED,
        _ => UNKNOWN,
    }
}

/// `normalize-payments`: rewrites a payment's `status` to the canonical word and keeps the
/// provider's word in `provider_status`. Other events pass through untouched.
#[derive(Default)]
pub struct NormalizePayments;

impl Transform for NormalizePayments {
    fn name(&self) -> &str {
        "normalize-payments"
    }
    fn apply(&mut self, events: Vec<Event>) -> Vec<Result<Vec<Event>, PluginError>> {
        events
            .into_iter()
            .map(|mut event| {
                if let Body::Payment(p) = &mut event.body {
                    let canonical = canonical_status(&p.provider, &p.status);
                    let raw = std::mem::replace(&mut p.status, canonical.to_owned());
                    p.provider_status = Some(raw);
                }
                Ok(vec![event])
            })
            .collect()
    }
}

/// `velocity`: an order whose user placed at least `threshold` orders in the 10 minutes up to
/// and including it.
pub struct Velocity {
    pub threshold: u32,
}

impl Default for Velocity {
    fn default() -> Self {
        Velocity { threshold: 5 }
    }
}

fn each<F: FnMut(&RuleInput) -> Option<String>>(
    batch: &[RuleInput],
    mut flag: F,
) -> Vec<Result<Vec<Alert>, PluginError>> {
    batch
        .iter()
        .map(|input| {
            Ok(flag(input)
                .map(|subject_id| vec![Alert { subject_id }])
                .unwrap_or_default())
        })
        .collect()
}

impl Rule for Velocity {
    fn name(&self) -> &str {
        "velocity"
    }
    fn evaluate(&mut self, batch: &[RuleInput]) -> Vec<Result<Vec<Alert>, PluginError>> {
        each(batch, |i| {
            (i.event.kind == RuleEventKind::Order && i.features.user_orders_10m >= self.threshold)
                .then(|| i.event.order_id.clone())
        })
    }
}

/// `card_testing`: a failed payment whose device saw at least 3 distinct cards fail in the
/// 5 minutes up to and including it.
#[derive(Default)]
pub struct CardTesting;

impl Rule for CardTesting {
    fn name(&self) -> &str {
        "card_testing"
    }
    fn evaluate(&mut self, batch: &[RuleInput]) -> Vec<Result<Vec<Alert>, PluginError>> {
        each(batch, |i| {
            let e = &i.event;
            (e.kind == RuleEventKind::Payment
                && e.status == status::FAILED
                && e.device_id.is_some()
                && e.card_fingerprint.is_some()
                && i.features.device_failed_cards_5m >= 3)
                .then(|| e.payment_id.clone())
        })
    }
}

/// `amount_anomaly`: a large order (≥ 100000 cents) more than five times its user's average
/// over at least three earlier orders.
#[derive(Default)]
pub struct AmountAnomaly;

impl Rule for AmountAnomaly {
    fn name(&self) -> &str {
        "amount_anomaly"
    }
    fn evaluate(&mut self, batch: &[RuleInput]) -> Vec<Result<Vec<Alert>, PluginError>> {
        each(batch, |i| {
            let f = &i.features;
            let total = i128::from(i.event.amount_cents);
            (i.event.kind == RuleEventKind::Order
                && total >= 100_000
                && f.user_prior_orders >= 3
                && total * i128::from(f.user_prior_orders)
                    > 5 * i128::from(f.user_prior_total_cents))
            .then(|| i.event.order_id.clone())
        })
    }
}

/// The default plugin set, natively.
#[derive(Default)]
pub struct NativePlugins;

impl PluginFactory for NativePlugins {
    fn transforms(&self) -> Vec<Box<dyn Transform>> {
        vec![Box::new(NormalizePayments)]
    }
    fn rules(&self) -> Vec<Box<dyn Rule>> {
        vec![
            Box::new(Velocity::default()),
            Box::new(CardTesting),
            Box::new(AmountAnomaly),
        ]
    }
    fn rule_makers(&self) -> Vec<RuleSpec> {
        let makers: [RuleMaker; 3] = [
            Arc::new(|| Box::new(Velocity::default())),
            Arc::new(|| Box::new(CardTesting)),
            Arc::new(|| Box::new(AmountAnomaly)),
        ];
        makers
            .into_iter()
            .map(|maker| {
                let name = maker().name().to_owned();
                let hash = content_hash(format!("native:{name}").as_bytes());
                RuleSpec {
                    name,
                    hash,
                    tenant: None,
                    maker,
                }
            })
            .collect()
    }
}
