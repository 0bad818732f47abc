//! Test plugin `failing-rule`: a rule that rejects every input with the message `boom`.

use weir_plugin_sdk::rule::*;

fn fail(_input: &RuleInput) -> Result<Vec<Alert>, String> {
    Err("boom".to_owned())
}

weir_plugin_sdk::export_rule!(fail);
