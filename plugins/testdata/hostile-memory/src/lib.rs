//! Test plugin `hostile-memory`: on an event of user `evil`, allocates 1 MiB blocks, writes
//! into each and keeps them, without bound (the memory cap must stop it); every other
//! event passes through unchanged. The blocks are not zeroed, so the memory cap and not the
//! fuel budget is what stops it.

use std::hint::black_box;

use weir_plugin_sdk::transform::*;

const BLOCK: usize = 1 << 20;
const PAGE: usize = 4096;

fn hostile_memory(event: Event) -> Result<Vec<Event>, String> {
    if event.body.user_id() == Some("evil") {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut block: Vec<u8> = Vec::with_capacity(BLOCK);
            for byte in block.spare_capacity_mut().iter_mut().step_by(PAGE) {
                byte.write(1);
            }
            hoard.push(black_box(block));
            black_box(&mut hoard);
        }
    }
    Ok(vec![event])
}

weir_plugin_sdk::export_transform!(hostile_memory);
