//! Test plugin `fuel-burner`: spins `amount_cents` times on a payment of user `burner`, so its
//! fuel use is set by its input; every event passes through unchanged.

use std::hint::black_box;

use weir_plugin_sdk::transform::*;

fn fuel_burner(event: Event) -> Result<Vec<Event>, String> {
    if let Body::Payment(p) = &event.body
        && p.user_id == "burner"
    {
        let mut spins = 0u64;
        for _ in 0..p.amount_cents {
            spins = black_box(spins.wrapping_add(1));
        }
    }
    Ok(vec![event])
}

weir_plugin_sdk::export_transform!(fuel_burner);
