//! Test plugin `hostile-trap`: panics on every call. Plugins are built with `panic = "abort"`,
//! so the panic is a wasm `unreachable` trap.

use weir_plugin_sdk::transform::*;

fn hostile_trap(event: Event) -> Result<Vec<Event>, String> {
    panic!("hostile-trap: refusing event {}", event.event_id)
}

weir_plugin_sdk::export_transform!(hostile_trap);
