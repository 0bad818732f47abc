//! The guest SDK for weir's WebAssembly plugins.
//!
//! weir runs the business logic that changes often — payment status normalisation,
//! enrichment, fraud rules — as sandboxed WebAssembly components. The ABI is the WIT package
//! `weir:plugin` in the repository's `wit/` directory; this crate generates its guest bindings
//! from that same file with `wit-bindgen`, so a plugin cannot disagree with the host about it.
//!
//! There is one module per WIT world:
//!
//! - [`transform`] — a function from one [`transform::Event`] to the events it becomes
//!   (possibly none), or an error message (the event goes to quarantine). Exported with
//!   [`export_transform!`].
//! - [`rule`] — a function from one [`rule::RuleInput`] (an order or payment together with
//!   the features the core maintains for it) to the [`rule::Alert`]s it raises, or an error
//!   message (the evaluation goes to the dead-letter table). Exported with [`export_rule!`].
//!
//! The host calls a plugin with a batch, encoded as one flat buffer (`wit/plugin.wit`
//! documents the layout): fixed-size records whose strings are offsets into one arena. The
//! code the macros generate decodes one input at a time, lazily — a string field is a
//! [`transform::Str`], a borrowed slice of the buffer, until the plugin replaces it — calls
//! the plugin's function and writes one result per input, in order. An event handed back as
//! it came is answered with one byte ("unchanged"), and a field left alone is answered as
//! "same": only what a plugin rewrites crosses back. A plugin author writes one plain
//! function and one macro line:
//!
//! ```ignore
//! use weir_plugin_sdk::transform::*;
//!
//! fn tag_stripe(mut event: Event) -> Result<Vec<Event>, String> {
//!     if let Body::Payment(p) = &mut event.body {
//!         if p.provider == "stripe" && p.status == "succeeded" {
//!             p.status = "captured".into();
//!         }
//!     }
//!     Ok(vec![event])
//! }
//!
//! weir_plugin_sdk::export_transform!(tag_stripe);
//! ```
//!
//! ```ignore
//! use weir_plugin_sdk::rule::*;
//!
//! fn velocity(input: &RuleInput) -> Result<Vec<Alert>, String> {
//!     let flagged = input.event.kind == RuleEventKind::Order && input.features.user_orders_10m >= 5;
//!     Ok(flagged.then(|| Alert::on(&input.event.order_id)).into_iter().collect())
//! }
//!
//! weir_plugin_sdk::export_rule!(velocity);
//! ```
//!
//! Both functions must be pure: the host re-runs a plugin to retract what it produced earlier
//! and expects the same answer.
//!
//! # Building a plugin
//!
//! A plugin is a `cdylib` crate that depends on this one, built for `wasm32-unknown-unknown`:
//!
//! ```toml
//! [package]
//! name = "my-plugin"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! weir-plugin-sdk = { path = "../plugin-sdk" }
//!
//! [profile.release]
//! opt-level = 3
//! lto = true
//! panic = "abort"
//! codegen-units = 1
//! ```
//!
//! ```sh
//! rustup target add wasm32-unknown-unknown      # once
//! cargo build --release --target wasm32-unknown-unknown
//! ```
//!
//! The result, `target/wasm32-unknown-unknown/release/my_plugin.wasm`, is a core module that
//! carries the WIT world in a `component-type:*` custom section (put there by `wit-bindgen`).
//! The host turns it into a component with `wit-component` when it loads it; `weir` does the
//! whole build itself for a crate directory. The plugins shipped with weir live in the
//! `plugins/` workspace and are built into the `weir` binary by its build script.
//!
//! # The sandbox
//!
//! Neither world imports anything, and a plugin is built for `wasm32-unknown-unknown`, not
//! for WASI: the module has no import at all, so there is no file, socket, clock or random
//! source to reach — its output depends on its input alone. (The component made from it
//! imports the *types* of `weir:plugin/types`, an instance with no functions, which carries no
//! capability.) The host runs each call under a
//! fuel budget and a memory cap with an epoch deadline as the backstop; an infinite loop, a
//! memory bomb, a stack overflow or a panic (which aborts: a wasm `unreachable` trap) fails
//! that one call, and its events go to quarantine.

#![warn(missing_docs)]

// The generated bindings name this crate by its absolute path (the export macros expand in
// the plugin's crate), so the path must resolve inside this crate too.
extern crate self as weir_plugin_sdk;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

mod codec;

/// The `transform` world: events in, events (or a per-event error) out.
pub mod transform {
    use std::borrow::Cow;

    /// Bindings generated from `wit/plugin.wit`, world `transform`.
    #[doc(hidden)]
    #[allow(missing_docs)]
    pub mod __bindings {
        wit_bindgen::generate!({
            path: "../wit",
            world: "transform",
            pub_export_macro: true,
            export_macro_name: "__export_world",
            default_bindings_module: "weir_plugin_sdk::transform::__bindings",
            runtime_path: "weir_plugin_sdk::__wit_bindgen::rt",
        });
    }

    pub use __bindings::weir::plugin::types::EventType;

    /// A string field: a slice of the batch the host sent until the plugin replaces it
    /// (`field = "new".into()` or `field = some_string.into()`). Compares with `&str` as is.
    pub type Str<'a> = Cow<'a, str>;

    /// A valid, deduplicated, PCI-masked event (SPEC §1).
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Event<'a> {
        /// The tenant; an output event must keep its input's.
        pub tenant_id: Str<'a>,
        /// Unique per tenant.
        pub event_id: Str<'a>,
        /// Epoch milliseconds, UTC.
        pub event_time_ms: i64,
        /// The input's schema version.
        pub schema_version: u8,
        /// The per-type part.
        pub body: Body<'a>,
    }

    /// The per-type part of an event.
    #[derive(Clone, Debug, PartialEq, Eq)]
    #[allow(missing_docs)]
    pub enum Body<'a> {
        PageView(PageView<'a>),
        AddToCart(AddToCart<'a>),
        OrderPlaced(OrderPlaced<'a>),
        OrderCancelled(OrderCancelled<'a>),
        Payment(Payment<'a>),
        InventoryAdjusted(InventoryAdjusted<'a>),
    }

    /// `page_view`.
    #[derive(Clone, Debug, PartialEq, Eq)]
    #[allow(missing_docs)]
    pub struct PageView<'a> {
        pub user_id: Str<'a>,
        pub url: Str<'a>,
        pub sku: Option<Str<'a>>,
        pub device_id: Option<Str<'a>>,
    }

    /// `add_to_cart`.
    #[derive(Clone, Debug, PartialEq, Eq)]
    #[allow(missing_docs)]
    pub struct AddToCart<'a> {
        pub user_id: Str<'a>,
        pub sku: Str<'a>,
        pub quantity: i64,
        pub price_cents: i64,
    }

    /// One line of an order.
    #[derive(Clone, Debug, PartialEq, Eq)]
    #[allow(missing_docs)]
    pub struct Item<'a> {
        pub sku: Str<'a>,
        pub quantity: i64,
        pub price_cents: i64,
    }

    /// `order_placed`.
    #[derive(Clone, Debug, PartialEq, Eq)]
    #[allow(missing_docs)]
    pub struct OrderPlaced<'a> {
        pub user_id: Str<'a>,
        pub order_id: Str<'a>,
        pub items: Vec<Item<'a>>,
        pub total_cents: i64,
        /// `USD` for schema version 1.
        pub currency: Str<'a>,
        pub discount_cents: i64,
        pub device_id: Option<Str<'a>>,
    }

    /// `order_cancelled`.
    #[derive(Clone, Debug, PartialEq, Eq)]
    #[allow(missing_docs)]
    pub struct OrderCancelled<'a> {
        pub user_id: Str<'a>,
        pub order_id: Str<'a>,
    }

    /// `payment`. Card data arrives masked: never a card number or CVV, only `card_bin` and
    /// `card_last4`.
    #[derive(Clone, Debug, PartialEq, Eq)]
    #[allow(missing_docs)]
    pub struct Payment<'a> {
        pub user_id: Str<'a>,
        pub order_id: Str<'a>,
        pub payment_id: Str<'a>,
        pub provider: Str<'a>,
        /// The provider's own word until a normaliser rewrites it.
        pub status: Str<'a>,
        /// The provider's word, kept by a normaliser that rewrote `status`.
        pub provider_status: Option<Str<'a>>,
        pub amount_cents: i64,
        pub device_id: Option<Str<'a>>,
        pub card_fingerprint: Option<Str<'a>>,
        pub card_bin: Option<Str<'a>>,
        pub card_last4: Option<Str<'a>>,
    }

    /// `inventory_adjusted`.
    #[derive(Clone, Debug, PartialEq, Eq)]
    #[allow(missing_docs)]
    pub struct InventoryAdjusted<'a> {
        pub sku: Str<'a>,
        pub delta: i64,
        pub reason: Str<'a>,
        pub warehouse: Option<Str<'a>>,
    }

    /// Every event type: what a transform reads unless it says otherwise.
    pub const ALL_TYPES: [EventType; 6] = [
        EventType::PageView,
        EventType::AddToCart,
        EventType::OrderPlaced,
        EventType::OrderCancelled,
        EventType::Payment,
        EventType::InventoryAdjusted,
    ];

    /// What a transform returns for one event: the events it becomes, or why it failed.
    pub type TransformResult<'a> = Result<Vec<Event<'a>>, String>;

    impl Body<'_> {
        /// The user the event is about; `None` for `inventory-adjusted`.
        pub fn user_id(&self) -> Option<&str> {
            match self {
                Body::PageView(b) => Some(&b.user_id),
                Body::AddToCart(b) => Some(&b.user_id),
                Body::OrderPlaced(b) => Some(&b.user_id),
                Body::OrderCancelled(b) => Some(&b.user_id),
                Body::Payment(b) => Some(&b.user_id),
                Body::InventoryAdjusted(_) => None,
            }
        }

        /// The event's type.
        pub fn event_type(&self) -> EventType {
            match self {
                Body::PageView(_) => EventType::PageView,
                Body::AddToCart(_) => EventType::AddToCart,
                Body::OrderPlaced(_) => EventType::OrderPlaced,
                Body::OrderCancelled(_) => EventType::OrderCancelled,
                Body::Payment(_) => EventType::Payment,
                Body::InventoryAdjusted(_) => EventType::InventoryAdjusted,
            }
        }
    }

    /// Applies `f` to every event of an encoded batch and encodes the answers, in order. Each
    /// event is read when its turn comes, so a batch never exists decoded as a whole. Called
    /// by the code [`export_transform!`](crate::export_transform) generates.
    #[doc(hidden)]
    pub fn __run<F>(batch: &[u8], mut f: F) -> Vec<u8>
    where
        F: for<'a> FnMut(Event<'a>) -> TransformResult<'a>,
    {
        let mut batch = crate::codec::Batch::new(batch);
        let mut answer = crate::codec::Answer::new(batch.count, 16 * batch.count as usize + 16);
        for _ in 0..batch.count {
            let input = batch.event();
            match f(input.clone()) {
                Ok(events) => {
                    let mark = answer.out.len();
                    answer.u8(1);
                    answer.u32(events.len() as u32);
                    let mut same = events.len() == 1;
                    for event in &events {
                        same &= answer.event(event, &input);
                    }
                    if same {
                        answer.out.truncate(mark);
                        answer.u8(0);
                    }
                }
                Err(message) => {
                    answer.u8(2);
                    answer.text(&message);
                }
            }
        }
        answer.out
    }
}

/// The `rule` world: an order or payment with its features in, alerts (or an error) out.
pub mod rule {
    /// Bindings generated from `wit/plugin.wit`, world `rule`.
    #[doc(hidden)]
    #[allow(missing_docs)]
    pub mod __bindings {
        wit_bindgen::generate!({
            path: "../wit",
            world: "rule",
            pub_export_macro: true,
            export_macro_name: "__export_world",
            default_bindings_module: "weir_plugin_sdk::rule::__bindings",
            runtime_path: "weir_plugin_sdk::__wit_bindgen::rt",
        });
    }

    pub use crate::transform::Str;

    /// Which kind of event a rule is looking at.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[allow(missing_docs)]
    pub enum RuleEventKind {
        Order,
        Payment,
    }

    /// The slice of an order or payment event that fraud rules read.
    #[derive(Clone, Debug, PartialEq, Eq)]
    #[allow(missing_docs)]
    pub struct RuleEvent<'a> {
        pub kind: RuleEventKind,
        pub tenant_id: Str<'a>,
        pub event_id: Str<'a>,
        /// Epoch milliseconds, UTC.
        pub event_time_ms: i64,
        pub user_id: Str<'a>,
        pub order_id: Str<'a>,
        /// Empty for orders.
        pub payment_id: Str<'a>,
        /// An order's `total_cents`, a payment's `amount_cents`.
        pub amount_cents: i64,
        /// Canonical payment status; empty for orders.
        pub status: Str<'a>,
        pub device_id: Option<Str<'a>>,
        pub card_fingerprint: Option<Str<'a>>,
    }

    /// Features the core maintains exactly for the event.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Features {
        /// Orders: the user's orders with time in (t − 10 min, t], this one included.
        pub user_orders_10m: u32,
        /// Orders: the user's orders with time strictly before t.
        pub user_prior_orders: u32,
        /// Orders: the sum of those prior orders' totals.
        pub user_prior_total_cents: i64,
        /// Failed payments with device and fingerprint: distinct fingerprints among the
        /// device's failed payments with time in (t − 5 min, t].
        pub device_failed_cards_5m: u32,
    }

    /// One rule input: the event and its features.
    #[derive(Clone, Debug, PartialEq, Eq)]
    #[allow(missing_docs)]
    pub struct RuleInput<'a> {
        pub event: RuleEvent<'a>,
        pub features: Features,
    }

    /// An alert on the input it answers; the host adds tenant, rule name and event time.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Alert {
        /// The order or payment id the alert is about.
        pub subject_id: String,
    }

    /// What a rule returns for one input: the alerts it raises, or why it failed.
    pub type RuleResult = Result<Vec<Alert>, String>;

    impl Alert {
        /// An alert on `subject_id` (an order or payment id).
        pub fn on(subject_id: impl AsRef<str>) -> Alert {
            Alert {
                subject_id: subject_id.as_ref().to_owned(),
            }
        }
    }

    /// Applies `f` to every input of an encoded batch and encodes the answers, in order.
    /// Called by the code [`export_rule!`](crate::export_rule) generates.
    #[doc(hidden)]
    pub fn __run<F>(batch: &[u8], mut f: F) -> Vec<u8>
    where
        F: for<'a, 'b> FnMut(&'a RuleInput<'b>) -> RuleResult,
    {
        let mut batch = crate::codec::Batch::new(batch);
        let mut answer = crate::codec::Answer::new(batch.count, batch.count as usize + 16);
        for _ in 0..batch.count {
            match f(&batch.rule_input()) {
                Ok(alerts) if alerts.is_empty() => answer.u8(0),
                Ok(alerts) => {
                    answer.u8(1);
                    answer.u32(alerts.len() as u32);
                    for alert in &alerts {
                        answer.text(&alert.subject_id);
                    }
                }
                Err(message) => {
                    answer.u8(2);
                    answer.text(&message);
                }
            }
        }
        answer.out
    }
}

/// Exports a function `fn(Event) -> Result<Vec<Event>, String>` as the plugin's `transform`.
///
/// The function is called once per event of the batch the host passes; `Ok(vec![])` drops the
/// event, `Ok` with several events splits it, `Err(message)` sends it to quarantine. Use the
/// macro once, in a `cdylib` crate built for `wasm32-unknown-unknown`.
///
/// By default the transform sees every event. Naming the types it reads,
/// `export_transform!(f, accepts: [Payment])`, lets the host pass every other event by
/// without a call — far cheaper, since a call copies each event into the sandbox and back.
///
/// ```ignore
/// use weir_plugin_sdk::transform::*;
///
/// fn identity(event: Event) -> Result<Vec<Event>, String> {
///     Ok(vec![event])
/// }
///
/// weir_plugin_sdk::export_transform!(identity);
/// ```
#[macro_export]
macro_rules! export_transform {
    ($f:expr $(,)?) => {
        $crate::export_transform!(@export $f, $crate::transform::ALL_TYPES.to_vec());
    };
    ($f:expr, accepts: [$($ty:ident),+ $(,)?] $(,)?) => {
        $crate::export_transform!(
            @export $f,
            ::std::vec![$($crate::transform::EventType::$ty),+]
        );
    };
    (@export $f:expr, $accepts:expr) => {
        const _: () = {
            struct __WeirTransform;

            impl $crate::transform::__bindings::Guest for __WeirTransform {
                fn accepts() -> ::std::vec::Vec<$crate::transform::EventType> {
                    $accepts
                }

                fn transform(batch: ::std::vec::Vec<u8>) -> ::std::vec::Vec<u8> {
                    $crate::transform::__run(&batch, $f)
                }
            }

            $crate::transform::__bindings::__export_world!(
                __WeirTransform with_types_in $crate::transform::__bindings
            );
        };
    };
}

/// Exports a function `fn(&RuleInput) -> Result<Vec<Alert>, String>` as the plugin's
/// `evaluate`.
///
/// The function is called once per input of the batch the host passes; it returns the alerts
/// the input raises (usually none or one), or `Err(message)` to dead-letter the evaluation.
/// Use the macro once, in a `cdylib` crate built for `wasm32-unknown-unknown`.
///
/// ```ignore
/// use weir_plugin_sdk::rule::*;
///
/// fn big_orders(input: &RuleInput) -> Result<Vec<Alert>, String> {
///     let e = &input.event;
///     let big = e.kind == RuleEventKind::Order && e.amount_cents >= 1_000_000;
///     Ok(if big { vec![Alert::on(&e.order_id)] } else { vec![] })
/// }
///
/// weir_plugin_sdk::export_rule!(big_orders);
/// ```
#[macro_export]
macro_rules! export_rule {
    ($f:expr $(,)?) => {
        const _: () = {
            struct __WeirRule;

            impl $crate::rule::__bindings::Guest for __WeirRule {
                fn evaluate(batch: ::std::vec::Vec<u8>) -> ::std::vec::Vec<u8> {
                    $crate::rule::__run(&batch, $f)
                }
            }

            $crate::rule::__bindings::__export_world!(
                __WeirRule with_types_in $crate::rule::__bindings
            );
        };
    };
}
