//! The configured plugin set: which transforms and rules run, in which order, for whom.
//!
//! The default set is the example plugins compiled to WebAssembly and embedded in the binary;
//! `--plugin name=file.wasm` replaces one by name or adds one. The native implementations
//! remain available as the reference (`--plugins native`).

use std::sync::Arc;

use super::embedded;
use super::registry::{RuleMaker, content_hash};
use super::wasm::{Limits, LoadError, WasmEngine, WasmRule, WasmTransform};
use super::{Alert, PluginError, PluginFactory, Rule, RuleInput, Transform};
use crate::event::Event;

/// Which world a component implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum World {
    Transform,
    Rule,
}

/// The default plugins: transforms in the order they run, then rules.
pub const DEFAULT_TRANSFORMS: [&str; 2] = ["normalize-payments", "sku-canonicalize"];
pub const DEFAULT_RULES: [&str; 3] = ["velocity", "card-testing", "amount-anomaly"];

/// The name a rule's alerts carry in `fraud_alerts.rule` (`card-testing` → `card_testing`).
pub fn rule_name(plugin: &str) -> String {
    plugin.replace('-', "_")
}

#[derive(Clone)]
enum Loaded {
    Transform(WasmTransform),
    Rule(WasmRule),
}

/// One configured plugin.
#[derive(Clone)]
struct Entry {
    name: String,
    tenant: Option<String>,
    hash: String,
    plugin: Loaded,
}

/// A set of WebAssembly plugins, shared by all workers (each gets its own handles).
#[derive(Clone)]
pub struct WasmPlugins {
    engine: WasmEngine,
    entries: Vec<Entry>,
}

/// Why a plugin could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("plugin {name}: {source}")]
    Load { name: String, source: LoadError },
    #[error(
        "plugin {name}: the component implements neither weir:plugin/transform nor weir:plugin/rule ({detail})"
    )]
    NoWorld { name: String, detail: String },
    #[error("plugin {0} is not embedded in this binary")]
    NotEmbedded(String),
    #[error("{0}")]
    Engine(String),
}

impl WasmPlugins {
    /// An empty set on a new engine.
    pub fn new(limits: Limits) -> Result<Self, ConfigError> {
        Ok(WasmPlugins {
            engine: WasmEngine::new(limits).map_err(ConfigError::Engine)?,
            entries: Vec::new(),
        })
    }

    /// The default set, from the embedded components.
    pub fn defaults() -> Result<Self, ConfigError> {
        let mut set = WasmPlugins::new(Limits::default())?;
        for name in DEFAULT_TRANSFORMS.iter().chain(&DEFAULT_RULES) {
            set.add_embedded(name, None)?;
        }
        Ok(set)
    }

    pub fn engine(&self) -> &WasmEngine {
        &self.engine
    }

    /// Adds (or replaces) a plugin embedded in the binary by its name.
    pub fn add_embedded(&mut self, name: &str, tenant: Option<&str>) -> Result<World, ConfigError> {
        let bytes =
            embedded::component(name).ok_or_else(|| ConfigError::NotEmbedded(name.to_owned()))?;
        self.add(name, &bytes, tenant)
    }

    /// Adds a component under `name`, replacing a plugin of that name; the world is read off
    /// the component. With `tenant`, the plugin sees only that tenant's events.
    pub fn add(
        &mut self,
        name: &str,
        bytes: &[u8],
        tenant: Option<&str>,
    ) -> Result<World, ConfigError> {
        let (plugin, world) = match self.engine.load_transform(name, bytes) {
            Ok(t) => (Loaded::Transform(t), World::Transform),
            Err(source @ (LoadError::Malformed(_) | LoadError::Imports(_))) => {
                return Err(ConfigError::Load {
                    name: name.to_owned(),
                    source,
                });
            }
            Err(as_transform) => match self.engine.load_rule(&rule_name(name), bytes) {
                Ok(r) => (Loaded::Rule(r), World::Rule),
                Err(as_rule) => {
                    return Err(ConfigError::NoWorld {
                        name: name.to_owned(),
                        detail: format!("as a transform: {as_transform}; as a rule: {as_rule}"),
                    });
                }
            },
        };
        let entry = Entry {
            name: name.to_owned(),
            tenant: tenant.map(str::to_owned),
            hash: content_hash(bytes),
            plugin,
        };
        match self.entries.iter_mut().find(|e| e.name == name) {
            Some(existing) => *existing = entry,
            None => self.entries.push(entry),
        }
        Ok(world)
    }

    /// The configured plugins: (name, world, tenant scope).
    pub fn list(&self) -> Vec<(String, World, Option<String>)> {
        self.entries
            .iter()
            .map(|e| {
                let world = match e.plugin {
                    Loaded::Transform(_) => World::Transform,
                    Loaded::Rule(_) => World::Rule,
                };
                (e.name.clone(), world, e.tenant.clone())
            })
            .collect()
    }
}

impl PluginFactory for WasmPlugins {
    fn transforms(&self) -> Vec<Box<dyn Transform>> {
        self.entries
            .iter()
            .filter_map(|e| match &e.plugin {
                Loaded::Transform(t) => Some(Box::new(Scoped {
                    tenant: e.tenant.clone(),
                    inner: t.clone(),
                }) as Box<dyn Transform>),
                Loaded::Rule(_) => None,
            })
            .collect()
    }
    fn disabled(&self) -> Vec<String> {
        self.engine.disabled()
    }
    fn reset_health(&self, name: &str) {
        self.engine.reset_health(name);
    }
    fn rules(&self) -> Vec<Box<dyn Rule>> {
        self.rule_makers()
            .into_iter()
            .map(|(_, _, _, make)| make())
            .collect()
    }
    fn rule_makers(&self) -> Vec<(String, String, Option<String>, RuleMaker)> {
        self.entries
            .iter()
            .filter_map(|e| match &e.plugin {
                Loaded::Rule(r) => {
                    let (rule, tenant) = (r.clone(), e.tenant.clone());
                    let make: RuleMaker = Arc::new(move || {
                        Box::new(Scoped {
                            tenant: tenant.clone(),
                            inner: rule.clone(),
                        }) as Box<dyn Rule>
                    });
                    Some((rule_name(&e.name), e.hash.clone(), e.tenant.clone(), make))
                }
                Loaded::Transform(_) => None,
            })
            .collect()
    }
}

/// Restricts a plugin to one tenant: other tenants' events never reach it.
struct Scoped<P> {
    tenant: Option<String>,
    inner: P,
}

impl<P> Scoped<P> {
    fn sees(&self, tenant: &str) -> bool {
        self.tenant.as_deref().is_none_or(|t| t == tenant)
    }
}

impl<P: Transform> Transform for Scoped<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn apply(&mut self, events: Vec<Event>) -> Vec<Result<Vec<Event>, PluginError>> {
        if events.iter().all(|e| self.sees(&e.tenant_id)) {
            return self.inner.apply(events);
        }
        let (mine, others): (Vec<_>, Vec<_>) = events
            .into_iter()
            .enumerate()
            .partition(|(_, e)| self.sees(&e.tenant_id));
        let mut out: Vec<Option<Result<Vec<Event>, PluginError>>> =
            (0..mine.len() + others.len()).map(|_| None).collect();
        let (idx, mine): (Vec<usize>, Vec<Event>) = mine.into_iter().unzip();
        for (i, r) in idx.into_iter().zip(self.inner.apply(mine)) {
            out[i] = Some(r);
        }
        for (i, e) in others {
            out[i] = Some(Ok(vec![e]));
        }
        out.into_iter()
            .map(|r| r.expect("every event has a result"))
            .collect()
    }
}

impl<P: Rule> Rule for Scoped<P> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn evaluate(&mut self, batch: &[RuleInput]) -> Vec<Result<Vec<Alert>, PluginError>> {
        if batch.iter().all(|i| self.sees(&i.event.tenant_id)) {
            return self.inner.evaluate(batch);
        }
        batch
            .iter()
            .map(|input| {
                if self.sees(&input.event.tenant_id) {
                    self.inner
                        .evaluate(std::slice::from_ref(input))
                        .pop()
                        .unwrap_or(Ok(vec![]))
                } else {
                    Ok(vec![])
                }
            })
            .collect()
    }
}

/// The default set, compiled once per process and shared.
pub fn shared_defaults() -> Result<Arc<WasmPlugins>, String> {
    static DEFAULTS: std::sync::OnceLock<Result<Arc<WasmPlugins>, String>> =
        std::sync::OnceLock::new();
    DEFAULTS
        .get_or_init(|| {
            WasmPlugins::defaults()
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
}

/// A rule component checked for deployment: it compiles, implements the rule world, and
/// passes its test vectors. Returns what the registry needs to register it as a version.
pub fn validate_rule(
    name: &str,
    bytes: &[u8],
    vectors: &str,
    tenant: Option<&str>,
) -> Result<(String, String, Option<String>, RuleMaker), String> {
    let mut set = WasmPlugins::new(Limits::default()).map_err(|e| e.to_string())?;
    match set.add(name, bytes, tenant).map_err(|e| e.to_string())? {
        World::Rule => {}
        World::Transform => {
            return Err(format!(
                "{name} is a transform; only rules are swapped while the pipeline runs (restart with --plugin {name}=FILE)"
            ));
        }
    }
    let report = super::vectors::check(&set, name, vectors)?;
    if !report.ok() {
        return Err(format!(
            "{name} fails its test vectors ({} passed): {}",
            report.passed,
            report.failures.join("; ")
        ));
    }
    Ok(set.rule_makers().remove(0))
}
