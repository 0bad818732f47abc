//! `amount-anomaly` (SPEC §2): an order of at least 100000 cents is flagged when its user has at
//! least 3 earlier orders and `total × n > 5 × Σ earlier totals` (n = that count): more than
//! five times the user's average. The alert's subject is the order id.

use weir_plugin_sdk::rule::*;

const MIN_AMOUNT_CENTS: i64 = 100_000;
const MIN_PRIOR_ORDERS: u32 = 3;
const FACTOR: i128 = 5;

fn amount_anomaly(input: &RuleInput) -> Result<Vec<Alert>, String> {
    let (e, f) = (&input.event, &input.features);
    // i128: neither product can overflow, whatever the totals.
    let flagged = e.kind == RuleEventKind::Order
        && e.amount_cents >= MIN_AMOUNT_CENTS
        && f.user_prior_orders >= MIN_PRIOR_ORDERS
        && i128::from(e.amount_cents) * i128::from(f.user_prior_orders)
            > FACTOR * i128::from(f.user_prior_total_cents);
    Ok(if flagged {
        vec![Alert::on(&e.order_id)]
    } else {
        vec![]
    })
}

weir_plugin_sdk::export_rule!(amount_anomaly);
