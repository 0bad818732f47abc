//! The flat batch encoding of `wit/plugin.wit`, host side: writing event and rule batches,
//! reading the answers.
//!
//! An event's fields are visited in the ABI's record order by one function, [`slots`], which
//! writes a batch, checks an output event and builds it over its input, so the
//! three cannot disagree about the layout. Nothing a guest answers is trusted: every length is
//! bounds-checked, every string validated as UTF-8, every tag known. An answer that cannot be
//! read fails the call ([`malformed`]); one event's bad output fails that event.

use std::sync::Arc;

use super::super::{Alert, PluginError, RuleEventKind, RuleInput};
use crate::event::{
    AddToCart, Body, Event, InventoryAdjusted, Item, OrderCancelled, OrderPlaced, PageView, Payment,
};

const NONE: u32 = u32::MAX;

/// One field of an event, in record order.
pub(super) enum Slot<'e> {
    Str(&'e mut String),
    Opt(&'e mut Option<String>),
    Int(&'e mut i64),
    Items(&'e mut Vec<Item>),
}

/// Calls `f` on every field of `e` but its type, schema version and time, in the ABI's
/// record order: tenant, event id, then the body's fields.
pub(super) fn slots<E>(
    e: &mut Event,
    f: &mut impl FnMut(Slot<'_>) -> Result<(), E>,
) -> Result<(), E> {
    use Slot::{Int, Items, Opt, Str};
    f(Str(&mut e.tenant_id))?;
    f(Str(&mut e.event_id))?;
    match &mut e.body {
        Body::PageView(v) => {
            f(Str(&mut v.user_id))?;
            f(Str(&mut v.url))?;
            f(Opt(&mut v.sku))?;
            f(Opt(&mut v.device_id))
        }
        Body::AddToCart(a) => {
            f(Str(&mut a.user_id))?;
            f(Str(&mut a.sku))?;
            f(Int(&mut a.quantity))?;
            f(Int(&mut a.price_cents))
        }
        Body::OrderPlaced(o) => {
            f(Str(&mut o.user_id))?;
            f(Str(&mut o.order_id))?;
            f(Items(&mut o.items))?;
            f(Int(&mut o.total_cents))?;
            f(Str(&mut o.currency))?;
            f(Int(&mut o.discount_cents))?;
            f(Opt(&mut o.device_id))
        }
        Body::OrderCancelled(c) => {
            f(Str(&mut c.user_id))?;
            f(Str(&mut c.order_id))
        }
        Body::Payment(p) => {
            f(Str(&mut p.user_id))?;
            f(Str(&mut p.order_id))?;
            f(Str(&mut p.payment_id))?;
            f(Str(&mut p.provider))?;
            f(Str(&mut p.status))?;
            f(Opt(&mut p.provider_status))?;
            f(Int(&mut p.amount_cents))?;
            f(Opt(&mut p.device_id))?;
            f(Opt(&mut p.card_fingerprint))?;
            f(Opt(&mut p.card_bin))?;
            f(Opt(&mut p.card_last4))
        }
        Body::InventoryAdjusted(i) => {
            f(Str(&mut i.sku))?;
            f(Int(&mut i.delta))?;
            f(Str(&mut i.reason))?;
            f(Opt(&mut i.warehouse))
        }
    }
}

/// The ABI's index of an event's type (`event-type`'s case order).
pub(super) fn type_index(body: &Body) -> u8 {
    match body {
        Body::PageView(_) => 0,
        Body::AddToCart(_) => 1,
        Body::OrderPlaced(_) => 2,
        Body::OrderCancelled(_) => 3,
        Body::Payment(_) => 4,
        Body::InventoryAdjusted(_) => 5,
    }
}

/// A body of type `ty` with every field empty, to read an output event into.
fn blank(ty: u8) -> Option<Body> {
    Some(match ty {
        0 => Body::PageView(PageView {
            user_id: String::new(),
            url: String::new(),
            sku: None,
            device_id: None,
        }),
        1 => Body::AddToCart(AddToCart {
            user_id: String::new(),
            sku: String::new(),
            quantity: 0,
            price_cents: 0,
        }),
        2 => Body::OrderPlaced(OrderPlaced {
            user_id: String::new(),
            order_id: String::new(),
            items: Vec::new(),
            total_cents: 0,
            currency: String::new(),
            discount_cents: 0,
            device_id: None,
        }),
        3 => Body::OrderCancelled(OrderCancelled {
            user_id: String::new(),
            order_id: String::new(),
        }),
        4 => Body::Payment(Payment {
            user_id: String::new(),
            order_id: String::new(),
            payment_id: String::new(),
            provider: String::new(),
            status: String::new(),
            provider_status: None,
            amount_cents: 0,
            device_id: None,
            card_fingerprint: None,
            card_bin: None,
            card_last4: None,
        }),
        5 => Body::InventoryAdjusted(InventoryAdjusted {
            sku: String::new(),
            delta: 0,
            reason: String::new(),
            warehouse: None,
        }),
        _ => return None,
    })
}

/// A batch being written: fixed-size records, then the strings they refer to.
pub(super) struct Batch {
    head: Vec<u8>,
    arena: Vec<u8>,
}

impl Batch {
    pub(super) fn new(count: usize, bytes_hint: usize) -> Self {
        let mut head = Vec::with_capacity(bytes_hint / 2 + 8);
        head.extend_from_slice(&(count as u32).to_le_bytes());
        head.extend_from_slice(&0u32.to_le_bytes());
        Batch {
            head,
            arena: Vec::with_capacity(bytes_hint / 2),
        }
    }

    fn u32(&mut self, v: u32) {
        self.head.extend_from_slice(&v.to_le_bytes());
    }

    fn i64(&mut self, v: i64) {
        self.head.extend_from_slice(&v.to_le_bytes());
    }

    fn str(&mut self, s: &str) {
        self.u32(self.arena.len() as u32);
        self.u32(s.len() as u32);
        self.arena.extend_from_slice(s.as_bytes());
    }

    fn opt(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => {
                self.u32(0);
                self.u32(NONE);
            }
        }
    }

    /// Appends an event record. (`&mut` only because [`slots`] hands out fields mutably;
    /// nothing is changed.)
    pub(super) fn event(&mut self, e: &mut Event) {
        self.head.push(type_index(&e.body));
        self.head.push(e.schema_version);
        self.i64(e.event_time_ms);
        let _ = slots::<()>(e, &mut |slot| {
            match slot {
                Slot::Str(s) => self.str(s),
                Slot::Opt(s) => self.opt(s.as_deref()),
                Slot::Int(v) => self.i64(*v),
                Slot::Items(items) => {
                    self.u32(items.len() as u32);
                    for item in items.iter() {
                        self.str(&item.sku);
                        self.i64(item.quantity);
                        self.i64(item.price_cents);
                    }
                }
            }
            Ok(())
        });
    }

    /// Appends a rule record.
    pub(super) fn rule(&mut self, input: &RuleInput) {
        let (e, f) = (&input.event, &input.features);
        self.head.push(match e.kind {
            RuleEventKind::Order => 0,
            RuleEventKind::Payment => 1,
        });
        self.i64(e.event_time_ms);
        self.i64(e.amount_cents);
        self.u32(f.user_orders_10m);
        self.u32(f.user_prior_orders);
        self.i64(f.user_prior_total_cents);
        self.u32(f.device_failed_cards_5m);
        for s in [
            &e.tenant_id,
            &e.event_id,
            &e.user_id,
            &e.order_id,
            &e.payment_id,
            &e.status,
        ] {
            self.str(s);
        }
        self.opt(e.device_id.as_deref());
        self.opt(e.card_fingerprint.as_deref());
    }

    /// The whole buffer, as the guest reads it.
    pub(super) fn finish(mut self) -> Vec<u8> {
        let arena = self.head.len() as u32;
        self.head[4..8].copy_from_slice(&arena.to_le_bytes());
        self.head.extend_from_slice(&self.arena);
        self.head
    }
}

/// An answer the host cannot read: the whole call fails with it.
pub(super) fn malformed(what: impl std::fmt::Display) -> PluginError {
    PluginError::InvalidOutput(format!("unreadable answer: {what}"))
}

/// A bounds-checked cursor over an answer.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PluginError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| malformed(format!("{n} bytes past its end at {}", self.pos)))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, PluginError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, PluginError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }

    fn i64(&mut self) -> Result<i64, PluginError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }

    fn str(&mut self) -> Result<&'a str, PluginError> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map_err(|e| malformed(format!("text at {}: {e}", self.pos - len)))
    }

    fn text(&mut self) -> Result<String, PluginError> {
        self.str().map(str::to_owned)
    }

    fn count(&mut self, expected: usize) -> Result<(), PluginError> {
        let count = self.u32()? as usize;
        if count != expected {
            return Err(malformed(format!("{count} answers for {expected} inputs")));
        }
        Ok(())
    }

    fn end(&self) -> Result<(), PluginError> {
        if self.pos != self.buf.len() {
            return Err(malformed(format!(
                "{} bytes after the last answer",
                self.buf.len() - self.pos
            )));
        }
        Ok(())
    }
}

/// What a transform answered for one event.
#[derive(Debug)]
pub(super) enum Answer {
    /// The event passes as it came.
    Unchanged,
    /// The events it becomes: `n` output records of `answer`, from byte `at`, already checked.
    Events {
        answer: Arc<Vec<u8>>,
        at: usize,
        n: usize,
    },
}

impl Answer {
    /// The events `input` becomes. Each output is built over the input itself (the last one)
    /// or a copy of it, and only the fields the plugin wrote are replaced: a field left as it
    /// came is neither read nor copied.
    pub(super) fn outputs(self, mut input: Event) -> Vec<Event> {
        let Answer::Events { answer, at, n } = self else {
            return vec![input];
        };
        let mut r = Reader {
            buf: &answer,
            pos: at,
        };
        let mut outputs = Vec::with_capacity(n);
        for _ in 1..n {
            let mut copy = input.clone();
            build_output(&mut r, &mut copy);
            outputs.push(copy);
        }
        build_output(&mut r, &mut input);
        outputs.push(input);
        outputs
    }
}

/// Reads a transform answer for `inputs`, which were sent in this order. Every output record
/// is checked here, so that an unreadable answer fails the call before any event is built.
pub(super) fn transform_answer(
    buf: Vec<u8>,
    inputs: &[&Event],
    max_outputs: usize,
) -> Result<Vec<Result<Answer, PluginError>>, PluginError> {
    let answer = Arc::new(buf);
    let mut r = Reader {
        buf: &answer,
        pos: 0,
    };
    r.count(inputs.len())?;
    let mut answers = Vec::with_capacity(inputs.len());
    for input in inputs {
        answers.push(match r.u8()? {
            0 => Ok(Answer::Unchanged),
            1 => {
                let n = r.u32()? as usize;
                let at = r.pos;
                let mut problem = (n > max_outputs).then(|| {
                    PluginError::InvalidOutput(format!(
                        "{n} events out of one (at most {max_outputs})"
                    ))
                });
                for _ in 0..n {
                    problem = problem.or(check_output(&mut r, input)?);
                }
                match problem {
                    Some(problem) => Err(problem),
                    None => Ok(Answer::Events {
                        answer: answer.clone(),
                        at,
                        n,
                    }),
                }
            }
            2 => Err(PluginError::Rejected(r.text()?)),
            tag => return Err(malformed(format!("answer tag {tag}"))),
        });
    }
    r.end()?;
    Ok(answers)
}

/// The kind of a field, as [`slots`] visits it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Opt,
    Int,
    Items,
}

impl Kind {
    fn of(slot: &Slot<'_>) -> Self {
        match slot {
            Slot::Str(_) => Kind::Str,
            Slot::Opt(_) => Kind::Opt,
            Slot::Int(_) => Kind::Int,
            Slot::Items(_) => Kind::Items,
        }
    }

    /// The fields of an event of type `ty`, in record order: taken from [`slots`] once, so
    /// that checking a record needs no event to visit.
    fn fields(ty: u8) -> Option<&'static [Kind]> {
        static FIELDS: std::sync::LazyLock<Vec<Vec<Kind>>> = std::sync::LazyLock::new(|| {
            (0..)
                .map_while(blank)
                .map(|body| {
                    let mut e = Event {
                        tenant_id: String::new(),
                        event_id: String::new(),
                        event_time_ms: 0,
                        schema_version: 0,
                        body,
                    };
                    let mut kinds = Vec::new();
                    let _ = slots::<()>(&mut e, &mut |slot| {
                        kinds.push(Kind::of(&slot));
                        Ok(())
                    });
                    kinds
                })
                .collect()
        });
        FIELDS.get(usize::from(ty)).map(Vec::as_slice)
    }
}

/// One field of an output record as written.
enum Field<'a> {
    /// The input's, as it came.
    Kept,
    Str(&'a str),
    NoStr,
    Int(i64),
    Items(Vec<(&'a str, i64, i64)>),
}

impl<'a> Reader<'a> {
    fn field(&mut self, kind: Kind) -> Result<Field<'a>, PluginError> {
        Ok(match (kind, self.u8_unless(kind == Kind::Int)?) {
            (Kind::Int, _) => Field::Int(self.i64()?),
            (_, 0) => Field::Kept,
            (Kind::Str, 1) | (Kind::Opt, 2) => Field::Str(self.str()?),
            (Kind::Opt, 1) => Field::NoStr,
            (Kind::Items, 1) => {
                let n = self.u32()? as usize;
                let mut items = Vec::with_capacity(n.min(self.buf.len()));
                for _ in 0..n {
                    items.push((self.str()?, self.i64()?, self.i64()?));
                }
                Field::Items(items)
            }
            (_, tag) => return Err(malformed(format!("field tag {tag}"))),
        })
    }

    /// A tag byte, or 0 when the field has none (integers are always written).
    fn u8_unless(&mut self, untagged: bool) -> Result<u8, PluginError> {
        if untagged { Ok(0) } else { self.u8() }
    }
}

/// Checks one output record of `input`, answering what is wrong with the event it makes, if
/// anything; an unreadable record fails the call.
fn check_output(r: &mut Reader<'_>, input: &Event) -> Result<Option<PluginError>, PluginError> {
    let ty = r.u8()?;
    let fields = Kind::fields(ty).ok_or_else(|| malformed(format!("event type {ty}")))?;
    r.take(9)?;
    let same_type = ty == type_index(&input.body);
    let mut problem = None;
    for (k, &kind) in fields.iter().enumerate() {
        match r.field(kind)? {
            // A plugin speaks only for the tenant whose event it was given.
            Field::Str(tenant) if k == 0 && tenant != input.tenant_id => {
                problem = Some(PluginError::InvalidOutput(
                    "an output event names another tenant".into(),
                ));
            }
            // Tenant and event id are every type's first two fields; the body's line up only
            // with a body of the same type.
            Field::Kept if k > 1 && !same_type => {
                problem = Some(PluginError::InvalidOutput(
                    "an output event keeps a field of an input of another type".into(),
                ));
            }
            _ => {}
        }
    }
    Ok(problem)
}

/// Builds a checked output record over `e` (its input, or a copy of it): the fields the plugin
/// kept stay as they are, the others are written over them.
fn build_output(r: &mut Reader<'_>, e: &mut Event) {
    let built = (|| {
        let ty = r.u8()?;
        if ty != type_index(&e.body) {
            // Only the tenant and the event id may be kept from an input of another type.
            e.body = blank(ty).ok_or_else(|| malformed(ty))?;
        }
        e.schema_version = r.u8()?;
        e.event_time_ms = r.i64()?;
        slots(e, &mut |slot| {
            let kind = Kind::of(&slot);
            match (slot, r.field(kind)?) {
                (_, Field::Kept) => {}
                (Slot::Str(s), Field::Str(text)) => text.clone_into(s),
                (Slot::Opt(s), Field::Str(text)) => *s = Some(text.to_owned()),
                (Slot::Opt(s), Field::NoStr) => *s = None,
                (Slot::Int(v), Field::Int(n)) => *v = n,
                (Slot::Items(items), Field::Items(written)) => {
                    *items = written
                        .into_iter()
                        .map(|(sku, quantity, price_cents)| Item {
                            sku: sku.to_owned(),
                            quantity,
                            price_cents,
                        })
                        .collect();
                }
                _ => return Err(malformed("field of another kind")),
            }
            Ok(())
        })
    })();
    debug_assert!(built.is_ok(), "an answer is checked when it is read");
}

/// Reads a rule answer for `count` inputs.
pub(super) fn rule_answer(
    buf: &[u8],
    count: usize,
    max_alerts: usize,
) -> Result<Vec<Result<Vec<Alert>, PluginError>>, PluginError> {
    let mut r = Reader { buf, pos: 0 };
    r.count(count)?;
    let mut answers = Vec::with_capacity(count);
    for _ in 0..count {
        answers.push(match r.u8()? {
            0 => Ok(Vec::new()),
            1 => {
                let n = r.u32()? as usize;
                let mut alerts = Vec::with_capacity(n.min(max_alerts));
                for _ in 0..n {
                    let subject_id = r.text()?;
                    if alerts.len() <= max_alerts {
                        alerts.push(Alert { subject_id });
                    }
                }
                if n > max_alerts {
                    Err(PluginError::InvalidOutput(format!(
                        "{n} alerts for one input (at most {max_alerts})"
                    )))
                } else {
                    Ok(alerts)
                }
            }
            2 => Err(PluginError::Rejected(r.text()?)),
            tag => return Err(malformed(format!("answer tag {tag}"))),
        });
    }
    r.end()?;
    Ok(answers)
}

#[cfg(test)]
mod tests {
    //! Answers written by hand, as a hostile or broken guest could write them.
    use super::*;

    fn payment(tenant: &str, id: &str, status: &str) -> Event {
        let Some(Body::Payment(mut p)) = blank(4) else {
            unreachable!()
        };
        p.user_id = "u1".into();
        p.order_id = "o1".into();
        p.payment_id = format!("p-{id}");
        p.provider = "stripe".into();
        p.status = status.into();
        p.amount_cents = 1_250;
        p.card_last4 = Some("4242".into());
        Event {
            tenant_id: tenant.into(),
            event_id: id.into(),
            event_time_ms: 1_700_000_000_000,
            schema_version: 2,
            body: Body::Payment(p),
        }
    }

    /// A guest's answer, written field by field.
    #[derive(Default)]
    struct Out(Vec<u8>);

    impl Out {
        fn answers(n: u32) -> Self {
            Out(n.to_le_bytes().to_vec())
        }
        fn u8(mut self, v: u8) -> Self {
            self.0.push(v);
            self
        }
        fn u32(mut self, v: u32) -> Self {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        fn i64(mut self, v: i64) -> Self {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        fn text(self, s: &[u8]) -> Self {
            let mut out = self.u32(s.len() as u32);
            out.0.extend_from_slice(s);
            out
        }
        /// An output event header: type, schema version, time.
        fn head(self, ty: u8) -> Self {
            self.u8(ty).u8(2).i64(1_700_000_000_000)
        }
        /// A payment's fields after the tenant: event id and user to provider kept, then
        /// `status` written, the rest kept (amount is an integer, always written).
        fn payment_rest(self, status: &str) -> Self {
            self.u8(0) // event id
                .u8(0)
                .u8(0)
                .u8(0)
                .u8(0) // user, order, payment, provider
                .u8(1)
                .text(status.as_bytes())
                .u8(0) // provider status
                .i64(1_250)
                .u8(0)
                .u8(0)
                .u8(0)
                .u8(0)
        }
    }

    fn read(
        answer: Out,
        inputs: &[Event],
    ) -> Result<Vec<Result<Vec<Event>, PluginError>>, PluginError> {
        let refs: Vec<&Event> = inputs.iter().collect();
        let answers = transform_answer(answer.0, &refs, 4)?;
        Ok(answers
            .into_iter()
            .zip(inputs.iter().cloned())
            .map(|(a, input)| a.map(|a| a.outputs(input)))
            .collect())
    }

    #[test]
    fn outputs_keep_what_the_plugin_kept_and_take_what_it_wrote() {
        let inputs = [
            payment("acme", "e1", "succeeded"),
            payment("acme", "e2", "refunded"),
        ];
        // e1 unchanged; e2 split in two: its status rewritten, then an order_cancelled that
        // keeps the tenant and event id and writes its own body.
        let answer = Out::answers(2)
            .u8(0)
            .u8(1)
            .u32(2)
            .head(4)
            .u8(0)
            .payment_rest("refunded-canonical")
            .head(3)
            .u8(0)
            .u8(0)
            .u8(1)
            .text(b"u9")
            .u8(1)
            .text(b"o9");
        let out = read(answer, &inputs).unwrap();
        assert_eq!(out[0].as_ref().unwrap(), &vec![inputs[0].clone()]);
        let split = out[1].as_ref().unwrap();
        let mut rewritten = inputs[1].clone();
        let Body::Payment(p) = &mut rewritten.body else {
            unreachable!()
        };
        p.status = "refunded-canonical".into();
        assert_eq!(split[0], rewritten);
        assert_eq!(split[1].tenant_id, "acme");
        assert_eq!(split[1].event_id, "e2");
        assert_eq!(
            split[1].body,
            Body::OrderCancelled(OrderCancelled {
                user_id: "u9".into(),
                order_id: "o9".into()
            })
        );
    }

    #[test]
    fn an_output_for_another_tenant_fails_that_event_only() {
        let inputs = [
            payment("acme", "e1", "succeeded"),
            payment("acme", "e2", "succeeded"),
        ];
        let answer = Out::answers(2)
            .u8(1)
            .u32(1)
            .head(4)
            .u8(1)
            .text(b"globex")
            .payment_rest("captured")
            .u8(0);
        let out = read(answer, &inputs).unwrap();
        assert!(
            matches!(&out[0], Err(PluginError::InvalidOutput(m)) if m.contains("another tenant")),
            "{out:?}"
        );
        assert_eq!(out[1].as_ref().unwrap(), &vec![inputs[1].clone()]);
    }

    #[test]
    fn an_output_keeping_a_field_of_another_type_fails_that_event() {
        let inputs = [payment("acme", "e1", "succeeded")];
        // An order_cancelled that claims to keep its user: a payment's field in another place.
        let answer = Out::answers(1)
            .u8(1)
            .u32(1)
            .head(3)
            .u8(0)
            .u8(0)
            .u8(0)
            .u8(1)
            .text(b"o9");
        let out = read(answer, &inputs).unwrap();
        assert!(
            matches!(&out[0], Err(PluginError::InvalidOutput(m)) if m.contains("another type")),
            "{out:?}"
        );
    }

    #[test]
    fn too_many_outputs_fail_that_event() {
        let inputs = [payment("acme", "e1", "succeeded")];
        let mut answer = Out::answers(1).u8(1).u32(5);
        for _ in 0..5 {
            answer = answer.head(4).u8(0).payment_rest("captured");
        }
        let out = read(answer, &inputs).unwrap();
        assert!(
            matches!(&out[0], Err(PluginError::InvalidOutput(m)) if m.contains("at most 4")),
            "{out:?}"
        );
    }

    #[test]
    fn an_unreadable_answer_fails_the_call() {
        let inputs = [payment("acme", "e1", "succeeded")];
        let full = || {
            Out::answers(1)
                .u8(1)
                .u32(1)
                .head(4)
                .u8(0)
                .payment_rest("captured")
        };
        let mut truncated = full();
        truncated.0.pop();
        let broken = [
            ("wrong count", Out::answers(2).u8(0).u8(0)),
            ("answer tag", Out::answers(1).u8(7)),
            ("event type", Out::answers(1).u8(1).u32(1).head(9)),
            ("field tag", Out::answers(1).u8(1).u32(1).head(4).u8(5)),
            ("truncated", truncated),
            ("trailing", full().u8(0)),
            (
                "bad utf-8",
                Out::answers(1)
                    .u8(1)
                    .u32(1)
                    .head(4)
                    .u8(1)
                    .text(&[0xff, 0xfe]),
            ),
            ("huge length", Out::answers(1).u8(2).u32(u32::MAX)),
        ];
        for (what, answer) in broken {
            match read(answer, &inputs) {
                Err(PluginError::InvalidOutput(m)) => {
                    assert!(m.starts_with("unreadable answer"), "{what}: {m}")
                }
                other => panic!("{what}: {other:?}"),
            }
        }
        assert!(read(full(), &inputs).is_ok());
    }
}
