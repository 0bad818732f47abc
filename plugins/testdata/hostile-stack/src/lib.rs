//! Test plugin `hostile-stack`: on an event of user `evil`, recurses without bound (the stack
//! limit must stop it); every other event passes through unchanged.

use std::hint::black_box;

use weir_plugin_sdk::transform::*;

/// Never returns for a depth the optimiser can see: the exit condition is opaque, and the frame
/// stays live across the call, so the recursion cannot become a loop.
#[inline(never)]
fn dive(depth: u64) -> u64 {
    let frame = black_box([depth; 4]);
    if black_box(depth) == u64::MAX {
        return frame[0];
    }
    let below = dive(black_box(depth + 1));
    black_box(&frame);
    below.wrapping_add(frame[1])
}

fn hostile_stack(event: Event) -> Result<Vec<Event>, String> {
    if event.body.user_id() == Some("evil") {
        black_box(dive(0));
    }
    Ok(vec![event])
}

weir_plugin_sdk::export_transform!(hostile_stack);
