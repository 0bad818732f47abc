//! Malformed lines of every quarantine class: a table of variants per class, and the code that
//! breaks a valid sample event (or writes something that never was one) accordingly.

use super::Generator;
use super::catalogue::{IdKind, Item, PROVIDERS, SEARCH_TERMS, sku_name};
use super::journeys::{OrderSpec, Placed};
use super::line::{Line, json};
use super::rng::Rng;

/// SPEC §1 limit; oversize lines are made a little bigger.
pub(super) const MAX_LINE_BYTES: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Malformed lines: one table per quarantine class, rotated through so every few thousand lines
// hold each class and each variant in turn.

/// Event types a malformed line can be derived from.
#[derive(Clone, Copy)]
enum Kind {
    PageView,
    AddToCart,
    Order,
    Cancel,
    /// Always with `card_number` and `cvv`: PCI must hold for the quarantine too.
    Payment,
    Inventory,
}

/// The quarantine classes, in rotation order.
const MALFORMED_CLASSES: u64 = 7;

/// `missing_field:<name>`: a required field left out.
const MISSING: [(Kind, &str); 16] = [
    (Kind::PageView, "user_id"),
    (Kind::Payment, "order_id"),
    (Kind::Order, "items"),
    (Kind::AddToCart, "sku"),
    (Kind::Order, "currency"),
    (Kind::Payment, "amount_cents"),
    (Kind::PageView, "event_time"),
    (Kind::Inventory, "delta"),
    (Kind::Cancel, "order_id"),
    (Kind::AddToCart, "event_id"),
    (Kind::Payment, "status"),
    (Kind::Order, "tenant_id"),
    (Kind::PageView, "type"),
    (Kind::Inventory, "schema_version"),
    (Kind::PageView, "url"),
    (Kind::Inventory, "reason"),
];

/// `wrong_type:<name>`: a field with a JSON value of the wrong kind (raw JSON text).
const WRONG_TYPE: [(Kind, &str, &str); 12] = [
    (Kind::AddToCart, "quantity", r#""2""#),
    (Kind::Order, "total_cents", r#""1999""#),
    (Kind::Payment, "amount_cents", "12.5"),
    (Kind::PageView, "user_id", "42"),
    (
        Kind::Order,
        "items",
        r#"{"sku":"SKU-00001","quantity":1,"price_cents":999}"#,
    ),
    (Kind::Inventory, "delta", r#""-3""#),
    (Kind::PageView, "schema_version", r#""2""#),
    (Kind::Payment, "status", "true"),
    (Kind::AddToCart, "price_cents", "19.99"),
    (
        Kind::Order,
        "items",
        r#"[{"sku":"SKU-00007","quantity":"2","price_cents":1999}]"#,
    ),
    (Kind::Cancel, "user_id", r#"["u-000001"]"#),
    (Kind::PageView, "event_time", "1763596800000"),
];

/// `invalid_value:<name>`: the right kind of value breaking a rule.
const INVALID_VALUE: [(Kind, &str, &str); 14] = [
    (Kind::AddToCart, "quantity", "0"),
    (Kind::PageView, "tenant_id", r#""acme corp""#),
    (Kind::Order, "event_time", r#""2025-11-20T10:00:00""#),
    (Kind::Order, "currency", r#""usd""#),
    (Kind::Order, "items", "[]"),
    (Kind::AddToCart, "price_cents", "-100"),
    (Kind::PageView, "event_id", r#""""#),
    (Kind::Payment, "amount_cents", "-500"),
    (Kind::PageView, "event_time", r#""yesterday""#),
    (Kind::Inventory, "event_time", r#""2025-13-40T25:61:00Z""#),
    (Kind::Payment, "tenant_id", r#""../globex""#),
    (
        Kind::Order,
        "items",
        r#"[{"sku":"SKU-00003","quantity":0,"price_cents":500}]"#,
    ),
    (Kind::Order, "total_cents", "-1"),
    (Kind::Order, "discount_cents", "-250"),
];

/// `unknown_type`: well-formed events of types the contract does not know.
const UNKNOWN_TYPE: [(Kind, &str); 4] = [
    (Kind::Payment, "refund_issued"),
    (Kind::PageView, "wishlist_add"),
    (Kind::AddToCart, "checkout_started"),
    (Kind::PageView, "PageView"),
];

/// `unsupported_schema_version`: a producer ahead of (or behind) the contract.
const BAD_SCHEMA: [(Kind, u8); 6] = [
    (Kind::Order, 3),
    (Kind::Payment, 3),
    (Kind::PageView, 3),
    (Kind::AddToCart, 3),
    (Kind::Cancel, 0),
    (Kind::Inventory, 99),
];

/// `invalid_json`: what a crashed producer or a proxy leaves behind.
const INVALID_JSON: [Kind; 4] = [Kind::PageView, Kind::Payment, Kind::Order, Kind::AddToCart];

impl Generator {
    /// One valid event of `kind` for a random user, not planned: the raw material of a
    /// malformed line. Payments always carry card data; orders are v2 (so `currency` counts).
    fn sample(&mut self, ti: usize, t: i64, kind: Kind) -> Line {
        let user = self.pick_user(ti);
        let who = self.shopper(ti, user);
        match kind {
            Kind::PageView => {
                let sku = sku_name(self.pick_sku(ti));
                self.page_view_line(&who, t, &format!("/p/{sku}"), Some(&sku))
            }
            Kind::AddToCart => {
                let sku = self.pick_sku(ti);
                let quantity = self.quantity(ti, sku);
                self.add_to_cart_line(&who, t, sku, quantity)
            }
            Kind::Order => {
                let items: Vec<Item> = (0..self.rng.range(1, 3))
                    .map(|_| {
                        let sku = self.pick_sku(ti);
                        self.tenants[ti].item(sku, 1)
                    })
                    .collect();
                let order_id = self.next_id(ti, IdKind::Order);
                let spec = OrderSpec {
                    version: 2,
                    discount: None,
                };
                self.order_line(&who, t, &order_id, &items, spec).0
            }
            Kind::Cancel => {
                let order_id = self.next_id(ti, IdKind::Order);
                self.cancel_line(&who, t, &order_id)
            }
            Kind::Payment => {
                let sku = self.pick_sku(ti);
                let order = Placed {
                    order_id: self.next_id(ti, IdKind::Order),
                    total: self.tenants[ti].prices[sku],
                };
                let provider = &PROVIDERS[self.rng.below(2) as usize];
                let pay = self.attempt(&who, &order, provider, 1);
                let status = provider.captured[0];
                self.payment_line(&pay, t, status, true)
            }
            Kind::Inventory => self.inventory_line(ti, t),
        }
    }

    /// The next malformed line. Classes rotate so that each appears once every seven malformed
    /// lines (about every 1,400 lines), and each class walks through its variants in turn.
    pub(super) fn malformed_line(&mut self) -> String {
        let n = self.malformed;
        self.malformed += 1;
        let variant = (n / MALFORMED_CLASSES) as usize;
        let ti = self.pick_tenant();
        let t = self.clock;
        match n % MALFORMED_CLASSES {
            0 => self.invalid_json(ti, t, variant),
            1 => {
                let (kind, field) = MISSING[variant % MISSING.len()];
                let mut line = self.sample(ti, t, kind);
                line.remove(field);
                line.render()
            }
            2 => {
                let (kind, field, raw) = WRONG_TYPE[variant % WRONG_TYPE.len()];
                let mut line = self.sample(ti, t, kind);
                line.set(field, raw.to_owned());
                line.render()
            }
            3 => {
                let (kind, field, raw) = INVALID_VALUE[variant % INVALID_VALUE.len()];
                let mut line = self.sample(ti, t, kind);
                line.set(field, raw.to_owned());
                line.render()
            }
            4 => {
                let (kind, name) = UNKNOWN_TYPE[variant % UNKNOWN_TYPE.len()];
                let mut line = self.sample(ti, t, kind);
                line.set("type", json(name));
                line.render()
            }
            5 => {
                let (kind, version) = BAD_SCHEMA[variant % BAD_SCHEMA.len()];
                let mut line = self.sample(ti, t, kind);
                line.set("schema_version", version.to_string());
                line.render()
            }
            _ => self.oversize(ti, t, variant),
        }
    }

    /// A truncated event (a crashed producer, a split write), or now and then a proxy's error
    /// page where an event should be.
    fn invalid_json(&mut self, ti: usize, t: i64, variant: usize) -> String {
        if variant % 5 == 4 {
            return "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>".to_owned();
        }
        let kind = INVALID_JSON[variant % INVALID_JSON.len()];
        let mut line = self.sample(ti, t, kind).render();
        // Cut anywhere past the first third: card data is sometimes kept, sometimes cut off.
        let mut cut = self.rng.range(line.len() as i64 / 3, line.len() as i64 - 2) as usize;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line
    }

    /// A line over the 64 KiB limit: a huge search URL, a payment dragging a huge gateway
    /// response along (with card data), or an order with thousands of items.
    fn oversize(&mut self, ti: usize, t: i64, variant: usize) -> String {
        let target = MAX_LINE_BYTES + self.rng.range(1_000, 25_000) as usize;
        let filler = |rng: &mut Rng| {
            let mut s = String::with_capacity(target + 32);
            while s.len() < target {
                s.push_str(rng.pick(&SEARCH_TERMS));
                s.push('+');
            }
            s
        };
        match variant % 3 {
            0 => {
                let mut line = self.sample(ti, t, Kind::PageView);
                line.set("url", json(&format!("/search?q={}", filler(&mut self.rng))));
                line.render()
            }
            1 => {
                let mut line = self.sample(ti, t, Kind::Payment);
                line.set("gateway_response", json(&filler(&mut self.rng)));
                line.render()
            }
            _ => {
                let mut line = self.sample(ti, t, Kind::Order);
                // ~50 bytes per item.
                let items: Vec<Item> = (0..target / 45)
                    .map(|_| {
                        let sku = self.pick_sku(ti);
                        self.tenants[ti].item(sku, 1)
                    })
                    .collect();
                let total: i64 = items.iter().map(|i| i.price_cents).sum();
                line.set("items", json(&items));
                line.set("total_cents", total.to_string());
                line.render()
            }
        }
    }
}
