//! `card-testing` (SPEC §2): a failed payment with a device and a card fingerprint is flagged
//! when that device's failed payments in the 5 minutes up to and including it carry at least 3
//! distinct fingerprints; the alert's subject is the payment id.

use weir_plugin_sdk::rule::*;

const THRESHOLD: u32 = 3;

fn card_testing(input: &RuleInput) -> Result<Vec<Alert>, String> {
    let e = &input.event;
    let flagged = e.kind == RuleEventKind::Payment
        && e.status == "failed"
        && e.device_id.is_some()
        && e.card_fingerprint.is_some()
        && input.features.device_failed_cards_5m >= THRESHOLD;
    Ok(if flagged {
        vec![Alert::on(&e.payment_id)]
    } else {
        vec![]
    })
}

weir_plugin_sdk::export_rule!(card_testing);
