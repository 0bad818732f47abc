//! `sku-canonicalize`: services spell SKUs differently (`" ab-12 "`, `"AB-12"`); this
//! enrichment trims surrounding whitespace and upper-cases every SKU an event carries — a page
//! view's, an add-to-cart's, each order item's and an inventory adjustment's — so views key on
//! one spelling. Every other field is unchanged.

use weir_plugin_sdk::transform::*;

/// Rewrites `sku` in place to its trimmed, upper-case form.
fn canonicalize(sku: &mut Str) {
    let trimmed = sku.trim();
    // The common case, an already canonical ASCII SKU, costs no allocation.
    if trimmed.len() == sku.len() && sku.is_ascii() && !sku.bytes().any(|b| b.is_ascii_lowercase())
    {
        return;
    }
    *sku = trimmed.to_uppercase().into();
}

fn sku_canonicalize(mut event: Event) -> Result<Vec<Event>, String> {
    match &mut event.body {
        Body::PageView(v) => {
            if let Some(sku) = &mut v.sku {
                canonicalize(sku);
            }
        }
        Body::AddToCart(a) => canonicalize(&mut a.sku),
        Body::OrderPlaced(o) => {
            for item in &mut o.items {
                canonicalize(&mut item.sku);
            }
        }
        Body::InventoryAdjusted(i) => canonicalize(&mut i.sku),
        Body::OrderCancelled(_) | Body::Payment(_) => {}
    }
    Ok(vec![event])
}

weir_plugin_sdk::export_transform!(sku_canonicalize, accepts: [PageView, AddToCart, OrderPlaced, InventoryAdjusted]);
