//! Test plugin `hostile-fanout`: turns an add-to-cart of user `fanout` into `quantity` copies
//! of itself, so a test sets how many events one input becomes: at, just past or far past the
//! host's cap on outputs per event, while staying well inside the sandbox's memory and fuel
//! (which `hostile-output` exhausts first). Every other event passes through unchanged.

use weir_plugin_sdk::transform::*;

fn hostile_fanout(event: Event) -> Result<Vec<Event>, String> {
    if let Body::AddToCart(a) = &event.body
        && a.user_id == "fanout"
    {
        let copies = usize::try_from(a.quantity).map_err(|_| "negative quantity".to_owned())?;
        return Ok(vec![event; copies]);
    }
    Ok(vec![event])
}

weir_plugin_sdk::export_transform!(hostile_fanout);
