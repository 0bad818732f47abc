//! Test plugin `velocity-v2`: `velocity` with a threshold of 3 orders in 10 minutes, the second
//! version the host's hot-swap tests deploy.

use weir_plugin_sdk::rule::*;

const THRESHOLD: u32 = 3;

fn velocity(input: &RuleInput) -> Result<Vec<Alert>, String> {
    let e = &input.event;
    if e.kind == RuleEventKind::Order && input.features.user_orders_10m >= THRESHOLD {
        Ok(vec![Alert::on(&e.order_id)])
    } else {
        Ok(vec![])
    }
}

weir_plugin_sdk::export_rule!(velocity);
