//! Test plugin `hostile-output`: turns an event of user `evil` into 2,000,000 copies of itself
//! (the host must refuse output that large); every other event passes through unchanged.

use weir_plugin_sdk::transform::*;

const COPIES: usize = 2_000_000;

fn hostile_output(event: Event) -> Result<Vec<Event>, String> {
    if event.body.user_id() == Some("evil") {
        return Ok(vec![event; COPIES]);
    }
    Ok(vec![event])
}

weir_plugin_sdk::export_transform!(hostile_output);
