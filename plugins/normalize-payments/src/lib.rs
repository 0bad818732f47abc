//! `normalize-payments`: providers speak their own words, views use the canonical status
//! (SPEC §1). A payment's `status` becomes the canonical word and the provider's word moves to
//! `provider-status`; every other event passes through unchanged. Provider and word match
//! exactly (case-sensitive); anything not in the table is `unknown`.

use weir_plugin_sdk::transform::*;

/// The canonical status of `raw` as spoken by `provider`.
fn canonical(provider: &str, raw: &str) -> &'static str {
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

fn normalize(mut event: Event) -> Result<Vec<Event>, String> {
    if let Body::Payment(p) = &mut event.body {
        let status = canonical(&p.provider, &p.status).into();
        p.provider_status = Some(std::mem::replace(&mut p.status, status));
    }
    Ok(vec![event])
}

weir_plugin_sdk::export_transform!(normalize, accepts: [Payment]);
