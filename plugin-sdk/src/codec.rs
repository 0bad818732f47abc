//! The flat batch encoding of `wit/plugin.wit`, guest side: reading the host's batches in
//! place and writing the answers.
//!
//! The host writes only Rust strings into a batch, so a string field is taken as it is — a
//! slice of the batch, never copied or validated again; a malformed batch can only come from
//! a broken host, and a slice out of bounds traps the call. Answers say "same" for every field
//! equal to the input's, so what crosses back is what the plugin changed.

use std::borrow::Cow;

use crate::rule::{Features, RuleEvent, RuleEventKind, RuleInput};
use crate::transform::{
    AddToCart, Body, Event, InventoryAdjusted, Item, OrderCancelled, OrderPlaced, PageView, Payment,
};

const NONE: u32 = u32::MAX;

/// A cursor over a batch's records, with its string arena.
pub(crate) struct Batch<'a> {
    buf: &'a [u8],
    pos: usize,
    arena: &'a [u8],
    pub(crate) count: u32,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        let mut batch = Batch {
            buf,
            pos: 0,
            arena: &[],
            count: 0,
        };
        batch.count = batch.u32();
        let arena = batch.u32() as usize;
        batch.arena = &buf[arena..];
        batch
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let bytes: [u8; N] = self.buf[self.pos..self.pos + N]
            .try_into()
            .expect("N bytes");
        self.pos += N;
        bytes
    }

    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }

    fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.take())
    }

    fn opt(&mut self) -> Option<Cow<'a, str>> {
        let offset = self.u32() as usize;
        let len = self.u32();
        if len == NONE {
            return None;
        }
        let bytes = &self.arena[offset..offset + len as usize];
        // SAFETY: the host writes only `str`s into the arena (see the module comment), and a
        // ref is the exact span of one of them.
        Some(Cow::Borrowed(unsafe {
            std::str::from_utf8_unchecked(bytes)
        }))
    }

    fn str(&mut self) -> Cow<'a, str> {
        self.opt().unwrap_or_default()
    }

    /// The next event record.
    pub(crate) fn event(&mut self) -> Event<'a> {
        let ty = self.u8();
        let schema_version = self.u8();
        let event_time_ms = self.i64();
        let tenant_id = self.str();
        let event_id = self.str();
        let body = match ty {
            0 => Body::PageView(PageView {
                user_id: self.str(),
                url: self.str(),
                sku: self.opt(),
                device_id: self.opt(),
            }),
            1 => Body::AddToCart(AddToCart {
                user_id: self.str(),
                sku: self.str(),
                quantity: self.i64(),
                price_cents: self.i64(),
            }),
            2 => {
                let user_id = self.str();
                let order_id = self.str();
                let n = self.u32();
                let items = (0..n)
                    .map(|_| Item {
                        sku: self.str(),
                        quantity: self.i64(),
                        price_cents: self.i64(),
                    })
                    .collect();
                Body::OrderPlaced(OrderPlaced {
                    user_id,
                    order_id,
                    items,
                    total_cents: self.i64(),
                    currency: self.str(),
                    discount_cents: self.i64(),
                    device_id: self.opt(),
                })
            }
            3 => Body::OrderCancelled(OrderCancelled {
                user_id: self.str(),
                order_id: self.str(),
            }),
            4 => Body::Payment(Payment {
                user_id: self.str(),
                order_id: self.str(),
                payment_id: self.str(),
                provider: self.str(),
                status: self.str(),
                provider_status: self.opt(),
                amount_cents: self.i64(),
                device_id: self.opt(),
                card_fingerprint: self.opt(),
                card_bin: self.opt(),
                card_last4: self.opt(),
            }),
            5 => Body::InventoryAdjusted(InventoryAdjusted {
                sku: self.str(),
                delta: self.i64(),
                reason: self.str(),
                warehouse: self.opt(),
            }),
            other => panic!("event type {other} is not in the ABI"),
        };
        Event {
            tenant_id,
            event_id,
            event_time_ms,
            schema_version,
            body,
        }
    }

    /// The next rule record.
    pub(crate) fn rule_input(&mut self) -> RuleInput<'a> {
        let kind = match self.u8() {
            0 => RuleEventKind::Order,
            _ => RuleEventKind::Payment,
        };
        let event_time_ms = self.i64();
        let amount_cents = self.i64();
        let features = Features {
            user_orders_10m: self.u32(),
            user_prior_orders: self.u32(),
            user_prior_total_cents: self.i64(),
            device_failed_cards_5m: self.u32(),
        };
        RuleInput {
            event: RuleEvent {
                kind,
                tenant_id: self.str(),
                event_id: self.str(),
                event_time_ms,
                user_id: self.str(),
                order_id: self.str(),
                payment_id: self.str(),
                amount_cents,
                status: self.str(),
                device_id: self.opt(),
                card_fingerprint: self.opt(),
            },
            features,
        }
    }
}

/// An answer being written.
pub(crate) struct Answer {
    pub(crate) out: Vec<u8>,
}

impl Answer {
    pub(crate) fn new(count: u32, capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(&count.to_le_bytes());
        Answer { out }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    fn i64(&mut self, v: i64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn text(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.out.extend_from_slice(s.as_bytes());
    }

    /// A string field; `true` if it is the input's.
    fn str(&mut self, s: &str, base: Option<&str>) -> bool {
        if base.is_some_and(|b| same(b, s)) {
            self.u8(0);
            true
        } else {
            self.u8(1);
            self.text(s);
            false
        }
    }

    fn opt(&mut self, s: &Option<Cow<'_, str>>, base: Option<&Option<Cow<'_, str>>>) -> bool {
        match (s, base) {
            (None, Some(None)) => self.u8(0),
            (Some(s), Some(Some(b))) if same(b, s) => self.u8(0),
            (None, _) => {
                self.u8(1);
                return false;
            }
            (Some(s), _) => {
                self.u8(2);
                self.text(s);
                return false;
            }
        }
        true
    }

    /// An integer field (always written); `true` if it is the input's.
    fn int(&mut self, v: i64, base: Option<i64>) -> bool {
        self.i64(v);
        base == Some(v)
    }

    fn items(&mut self, items: &[Item<'_>], base: Option<&[Item<'_>]>) -> bool {
        if base == Some(items) {
            self.u8(0);
            return true;
        }
        self.u8(1);
        self.u32(items.len() as u32);
        for item in items {
            self.text(&item.sku);
            self.i64(item.quantity);
            self.i64(item.price_cents);
        }
        false
    }

    /// Writes `e`, an output of `input`; `true` if it is `input` exactly.
    pub(crate) fn event(&mut self, e: &Event<'_>, input: &Event<'_>) -> bool {
        self.u8(e.body.event_type() as u8);
        self.u8(e.schema_version);
        self.i64(e.event_time_ms);
        let mut same =
            e.schema_version == input.schema_version && e.event_time_ms == input.event_time_ms;
        same &= self.str(&e.tenant_id, Some(&input.tenant_id));
        same &= self.str(&e.event_id, Some(&input.event_id));
        macro_rules! base {
            ($variant:ident) => {
                match &input.body {
                    Body::$variant(b) => Some(b),
                    _ => None,
                }
            };
        }
        match &e.body {
            Body::PageView(v) => {
                let b = base!(PageView);
                same &= b.is_some();
                same &= self.str(&v.user_id, b.map(|b| &*b.user_id));
                same &= self.str(&v.url, b.map(|b| &*b.url));
                same &= self.opt(&v.sku, b.map(|b| &b.sku));
                same &= self.opt(&v.device_id, b.map(|b| &b.device_id));
            }
            Body::AddToCart(a) => {
                let b = base!(AddToCart);
                same &= b.is_some();
                same &= self.str(&a.user_id, b.map(|b| &*b.user_id));
                same &= self.str(&a.sku, b.map(|b| &*b.sku));
                same &= self.int(a.quantity, b.map(|b| b.quantity));
                same &= self.int(a.price_cents, b.map(|b| b.price_cents));
            }
            Body::OrderPlaced(o) => {
                let b = base!(OrderPlaced);
                same &= b.is_some();
                same &= self.str(&o.user_id, b.map(|b| &*b.user_id));
                same &= self.str(&o.order_id, b.map(|b| &*b.order_id));
                same &= self.items(&o.items, b.map(|b| &*b.items));
                same &= self.int(o.total_cents, b.map(|b| b.total_cents));
                same &= self.str(&o.currency, b.map(|b| &*b.currency));
                same &= self.int(o.discount_cents, b.map(|b| b.discount_cents));
                same &= self.opt(&o.device_id, b.map(|b| &b.device_id));
            }
            Body::OrderCancelled(c) => {
                let b = base!(OrderCancelled);
                same &= b.is_some();
                same &= self.str(&c.user_id, b.map(|b| &*b.user_id));
                same &= self.str(&c.order_id, b.map(|b| &*b.order_id));
            }
            Body::Payment(p) => {
                let b = base!(Payment);
                same &= b.is_some();
                same &= self.str(&p.user_id, b.map(|b| &*b.user_id));
                same &= self.str(&p.order_id, b.map(|b| &*b.order_id));
                same &= self.str(&p.payment_id, b.map(|b| &*b.payment_id));
                same &= self.str(&p.provider, b.map(|b| &*b.provider));
                same &= self.str(&p.status, b.map(|b| &*b.status));
                same &= self.opt(&p.provider_status, b.map(|b| &b.provider_status));
                same &= self.int(p.amount_cents, b.map(|b| b.amount_cents));
                same &= self.opt(&p.device_id, b.map(|b| &b.device_id));
                same &= self.opt(&p.card_fingerprint, b.map(|b| &b.card_fingerprint));
                same &= self.opt(&p.card_bin, b.map(|b| &b.card_bin));
                same &= self.opt(&p.card_last4, b.map(|b| &b.card_last4));
            }
            Body::InventoryAdjusted(i) => {
                let b = base!(InventoryAdjusted);
                same &= b.is_some();
                same &= self.str(&i.sku, b.map(|b| &*b.sku));
                same &= self.int(i.delta, b.map(|b| b.delta));
                same &= self.str(&i.reason, b.map(|b| &*b.reason));
                same &= self.opt(&i.warehouse, b.map(|b| &b.warehouse));
            }
        }
        same
    }
}

/// Equal strings, checked by address first: a field the plugin did not touch still points
/// into the batch.
fn same(a: &str, b: &str) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}
