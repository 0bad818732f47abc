//! Test plugin `hostile-loop`: loops forever on a payment of user `evil` (the fuel budget must
//! stop it); every other event passes through unchanged.

use std::hint::black_box;

use weir_plugin_sdk::transform::*;

fn hostile_loop(event: Event) -> Result<Vec<Event>, String> {
    if let Body::Payment(p) = &event.body
        && p.user_id == "evil"
    {
        let mut spins = 0u64;
        loop {
            spins = black_box(spins.wrapping_add(1));
        }
    }
    Ok(vec![event])
}

weir_plugin_sdk::export_transform!(hostile_loop);
