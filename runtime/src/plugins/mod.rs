//! The plugin stage: the interfaces that business logic implements, between decoding and the
//! dataflow.
//!
//! Two kinds of plugin exist (SPEC §3). A [`Transform`] rewrites a batch of decoded events
//! (payment normalisation, enrichment); a [`Rule`] looks at an event together with the
//! features the core maintains and raises alerts (fraud rules). Both are pure functions of their
//! input: a retraction re-runs a rule on the retracted record and must get the same answer.
//!
//! [`native`] holds Rust implementations of the default plugins. They are the reference the
//! sandboxed versions are measured against.
//!
//! This module owns the plugin interfaces and the values that cross them: a plugin sees only
//! these types, never a card number (admission masked it), the dataflow, the store or the API.
//! Nothing under `plugins/` imports the dataflow or serve.

use serde::{Deserialize, Serialize};

use crate::event::{Event, Millis};

pub mod embedded;
pub mod native;
mod nested_cargo;
pub mod registry;
pub mod set;
pub mod transforms;
pub mod vectors;
pub mod wasm;

/// Why one plugin call failed. The code is stable: it lands in quarantine reasons as
/// `plugin_error:<plugin>:<code>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error("plugin ran out of fuel")]
    OutOfFuel,
    #[error("plugin exceeded its memory limit")]
    MemoryLimit,
    #[error("plugin overflowed its stack")]
    StackOverflow,
    #[error("plugin ran past its wall-clock deadline")]
    Deadline,
    #[error("plugin trapped: {0}")]
    GuestTrap(String),
    #[error("plugin rejected the event: {0}")]
    Rejected(String),
    #[error("plugin produced invalid output: {0}")]
    InvalidOutput(String),
    #[error("plugin is disabled after repeated failures")]
    Disabled,
}

impl PluginError {
    /// The stable, machine-readable code of the variant.
    pub fn code(&self) -> &'static str {
        match self {
            PluginError::OutOfFuel => "out_of_fuel",
            PluginError::MemoryLimit => "memory_limit",
            PluginError::StackOverflow => "stack_overflow",
            PluginError::Deadline => "deadline",
            PluginError::GuestTrap(_) => "trap",
            PluginError::Rejected(_) => "rejected",
            PluginError::InvalidOutput(_) => "invalid_output",
            PluginError::Disabled => "disabled",
        }
    }
}

/// A batch-in, batch-out event rewriter.
pub trait Transform: Send {
    /// The plugin's registered name (used in quarantine reasons).
    fn name(&self) -> &str;
    /// One result per input event, in order: the events it becomes (possibly none), or why
    /// the plugin failed on it.
    fn apply(&mut self, events: Vec<Event>) -> Vec<Result<Vec<Event>, PluginError>>;
}

/// What kind of event a rule is looking at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleEventKind {
    Order,
    Payment,
}

/// The slice of an event that fraud rules read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RuleEvent {
    pub kind: RuleEventKind,
    pub tenant_id: String,
    pub event_id: String,
    pub event_time_ms: Millis,
    pub user_id: String,
    pub order_id: String,
    /// The payment id for payments; empty for orders.
    pub payment_id: String,
    /// `total_cents` of an order, `amount_cents` of a payment.
    pub amount_cents: i64,
    /// Canonical payment status; empty for orders.
    pub status: String,
    pub device_id: Option<String>,
    pub card_fingerprint: Option<String>,
}

/// Features the core maintains exactly for the event (SPEC §2, `fraud_alerts`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Features {
    /// Orders: the user's `order_placed` events with time in `(t − 10 min, t]`, this one included.
    pub user_orders_10m: u32,
    /// Orders: the user's orders with time strictly before this one's.
    pub user_prior_orders: u32,
    /// Orders: Σ `total_cents` of those prior orders.
    pub user_prior_total_cents: i64,
    /// Failed payments with a device and a fingerprint: distinct fingerprints among the
    /// device's failed payments with time in `(t − 5 min, t]`.
    pub device_failed_cards_5m: u32,
}

/// One rule input: the event and its features.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RuleInput {
    pub event: RuleEvent,
    pub features: Features,
}

/// An alert a rule raises on the event it was given. The host adds the tenant, the rule's
/// name and the event time, so a rule cannot speak for another tenant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Alert {
    pub subject_id: String,
}

/// A fraud rule.
pub trait Rule: Send {
    /// The rule's name, as it appears in `fraud_alerts.rule`.
    fn name(&self) -> &str;
    /// One result per input, in order.
    fn evaluate(&mut self, batch: &[RuleInput]) -> Vec<Result<Vec<Alert>, PluginError>>;
}

/// Builds a fresh set of plugin instances; every dataflow worker gets its own.
pub trait PluginFactory: Send + Sync {
    fn transforms(&self) -> Vec<Box<dyn Transform>>;
    fn rules(&self) -> Vec<Box<dyn Rule>>;
    /// The rules as versions to register.
    fn rule_makers(&self) -> Vec<registry::RuleSpec>;
    /// `(name, content hash, tenant scope)` of each of [`PluginFactory::transforms`], in the
    /// same order: the first transform versions. By default every transform is global and
    /// hashed by its name.
    fn transform_versions(&self) -> Vec<(String, String, Option<String>)> {
        self.transforms()
            .iter()
            .map(|t| {
                let name = t.name().to_owned();
                (name.clone(), registry::content_hash(name.as_bytes()), None)
            })
            .collect()
    }
    /// `(plugin, tenant)` pairs (plugins by the name they report) disabled for failing on
    /// that tenant's events too often.
    fn disabled(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// The engine the plugins run on, if they are WebAssembly: rules uploaded while running
    /// run there too, under the same limits and health record.
    fn engine(&self) -> Option<wasm::WasmEngine> {
        None
    }
    /// Forgets a plugin's failures for `tenant`, or every tenant: a new version is deployed
    /// under its name for that scope.
    fn reset_health(&self, _name: &str, _tenant: Option<&str>) {}
}
