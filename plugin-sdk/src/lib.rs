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
//! The host calls a plugin with a batch; the code the macros generate loops over the batch
//! and returns one result per input, in order. A plugin author writes one plain function and
//! one macro line:
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

/// The `transform` world: events in, events (or a per-event error) out.
pub mod transform {
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
            additional_derives: [PartialEq, Eq],
        });
    }

    pub use __bindings::weir::plugin::types::{
        AddToCart, Body, Event, EventType, InventoryAdjusted, Item, OrderCancelled, OrderPlaced,
        PageView, Payment,
    };

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
    pub type TransformResult = Result<Vec<Event>, String>;

    impl Body {
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
    }

    /// Applies `f` to every event of a batch, one result per event, in order. Called by the
    /// code [`export_transform!`](crate::export_transform) generates.
    #[doc(hidden)]
    pub fn __run<F>(events: Vec<Event>, f: F) -> Vec<TransformResult>
    where
        F: FnMut(Event) -> TransformResult,
    {
        events.into_iter().map(f).collect()
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
            additional_derives: [PartialEq, Eq],
        });
    }

    pub use __bindings::weir::plugin::types::{
        Alert, Features, RuleEvent, RuleEventKind, RuleInput,
    };

    /// What a rule returns for one input: the alerts it raises, or why it failed.
    pub type RuleResult = Result<Vec<Alert>, String>;

    impl Alert {
        /// An alert on `subject_id` (an order or payment id).
        pub fn on(subject_id: impl Into<String>) -> Alert {
            Alert {
                subject_id: subject_id.into(),
            }
        }
    }

    /// Applies `f` to every input of a batch, one result per input, in order. Called by the
    /// code [`export_rule!`](crate::export_rule) generates.
    #[doc(hidden)]
    pub fn __run<F>(batch: Vec<RuleInput>, f: F) -> Vec<RuleResult>
    where
        F: FnMut(&RuleInput) -> RuleResult,
    {
        batch.iter().map(f).collect()
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

                fn transform(
                    events: ::std::vec::Vec<$crate::transform::Event>,
                ) -> ::std::vec::Vec<$crate::transform::TransformResult> {
                    $crate::transform::__run(events, $f)
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
                fn evaluate(
                    batch: ::std::vec::Vec<$crate::rule::RuleInput>,
                ) -> ::std::vec::Vec<$crate::rule::RuleResult> {
                    $crate::rule::__run(batch, $f)
                }
            }

            $crate::rule::__bindings::__export_world!(
                __WeirRule with_types_in $crate::rule::__bindings
            );
        };
    };
}
