//! `velocity` (SPEC §2): an order is flagged when its user placed at least 5 orders (this one
//! included) in the 10 minutes up to and including it; the alert's subject is the order id.

use weir_plugin_sdk::rule::*;

const THRESHOLD: u32 = 5;

fn velocity(input: &RuleInput) -> Result<Vec<Alert>, String> {
    let e = &input.event;
    if e.kind == RuleEventKind::Order && input.features.user_orders_10m >= THRESHOLD {
        Ok(vec![Alert::on(&e.order_id)])
    } else {
        Ok(vec![])
    }
}

weir_plugin_sdk::export_rule!(velocity);
