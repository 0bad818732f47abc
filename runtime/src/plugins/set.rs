//! The configured plugin set: which transforms and rules run, in which order, for whom.
//!
//! The default set is the example plugins compiled to WebAssembly and embedded in the binary;
//! `--plugin name=file.wasm` replaces one by name or adds one. The native implementations
//! remain available as the reference (`--plugins native`).
//!
//! It owns what runs for whom (order, tenant scope) and the checks an uploaded rule passes
//! before it is registered; it never deploys a version (the pipeline does) and reads no file:
//! components arrive as bytes.

use std::sync::Arc;

use super::embedded;
use super::registry::{RuleMaker, RuleRegistry, RuleSpec, VersionId, content_hash};
use super::vectors::VectorError;
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
    #[error(transparent)]
    Engine(LoadError),
}

impl ConfigError {
    /// The stable, machine-readable code of the variant; a plugin that failed to load keeps
    /// the code of why.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Load { source, .. } => source.code(),
            ConfigError::NoWorld { .. } => "no_plugin_world",
            ConfigError::NotEmbedded(_) => "not_embedded",
            ConfigError::Engine(e) => e.code(),
        }
    }
}

/// Why an uploaded rule component was refused: nothing of it was registered.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "{name} is a transform; only rules are swapped while the pipeline runs (restart with --plugin {name}=FILE)"
    )]
    Transform { name: String },
    #[error(transparent)]
    Vectors(#[from] VectorError),
    #[error("{name} fails its test vectors ({passed} passed): {}", .failures.join("; "))]
    FailsVectors {
        name: String,
        passed: usize,
        failures: Vec<String>,
    },
}

impl UploadError {
    /// The stable, machine-readable code of the variant; a wrapped error keeps its own.
    pub fn code(&self) -> &'static str {
        match self {
            UploadError::Config(e) => e.code(),
            UploadError::Transform { .. } => "not_a_rule",
            UploadError::Vectors(e) => e.code(),
            UploadError::FailsVectors { .. } => "fails_vectors",
        }
    }
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
            .map(|spec| (spec.maker)())
            .collect()
    }
    fn rule_makers(&self) -> Vec<RuleSpec> {
        self.entries
            .iter()
            .filter_map(|e| match &e.plugin {
                Loaded::Rule(r) => {
                    let (rule, tenant) = (r.clone(), e.tenant.clone());
                    let maker: RuleMaker = Arc::new(move || {
                        Box::new(Scoped {
                            tenant: tenant.clone(),
                            inner: rule.clone(),
                        }) as Box<dyn Rule>
                    });
                    Some(RuleSpec {
                        name: rule_name(&e.name),
                        hash: e.hash.clone(),
                        tenant: e.tenant.clone(),
                        maker,
                    })
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

/// The default set, compiled once per process and shared. The error is shared too: every
/// caller after the first gets the same one.
pub fn shared_defaults() -> Result<Arc<WasmPlugins>, Arc<ConfigError>> {
    static DEFAULTS: std::sync::OnceLock<Result<Arc<WasmPlugins>, Arc<ConfigError>>> =
        std::sync::OnceLock::new();
    DEFAULTS
        .get_or_init(|| WasmPlugins::defaults().map(Arc::new).map_err(Arc::new))
        .clone()
}

/// Checks an uploaded rule component and registers it as a new version (not yet deployed);
/// returns the version and the component's content hash. It must compile, implement the rule
/// world, and pass `vectors`; otherwise nothing is registered.
pub fn upload_rule(
    registry: &RuleRegistry,
    name: &str,
    bytes: Arc<[u8]>,
    vectors: &str,
    tenant: Option<&str>,
) -> Result<(VersionId, String), UploadError> {
    let spec = validate_rule(name, &bytes, vectors, tenant)?;
    let hash = spec.hash.clone();
    Ok((
        registry.register_uploaded(spec, bytes, vectors.into()),
        hash,
    ))
}

fn validate_rule(
    name: &str,
    bytes: &[u8],
    vectors: &str,
    tenant: Option<&str>,
) -> Result<RuleSpec, UploadError> {
    let mut set = WasmPlugins::new(Limits::default())?;
    match set.add(name, bytes, tenant)? {
        World::Rule => {}
        World::Transform => {
            return Err(UploadError::Transform {
                name: name.to_owned(),
            });
        }
    }
    let report = super::vectors::check(&set, name, vectors)?;
    if !report.ok() {
        return Err(UploadError::FailsVectors {
            name: name.to_owned(),
            passed: report.passed,
            failures: report.failures,
        });
    }
    Ok(set.rule_makers().remove(0))
}
