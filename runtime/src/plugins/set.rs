//! The configured plugin set: which transforms and rules run, in which order, for whom.
//!
//! The default set is the example plugins compiled to WebAssembly and embedded in the binary;
//! `--plugin name=file.wasm` replaces one by name or adds one. The native implementations
//! remain available as the reference (`--plugins native`).
//!
//! A plugin is configured once globally and at most once per tenant under the same name; a
//! tenant's own version replaces the global one for that tenant only (a global transform
//! passes that tenant's events through untouched; rules are scoped by the registry).
//!
//! It owns what runs for whom (order, tenant scope) and the checks an uploaded rule or
//! transform passes before it is registered; it never deploys a version (the pipeline and the
//! run driver do) and reads no file: components arrive as bytes.

use std::sync::Arc;

use super::embedded;
use super::registry::{RuleMaker, RuleRegistry, RuleSpec, VersionId, content_hash};
use super::transforms::{TransformMaker, TransformRegistry, TransformSpec};
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

/// Why an uploaded component was refused: nothing of it was registered.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "{name} is a transform; only rules are swapped while the pipeline runs (restart with --plugin {name}=FILE)"
    )]
    Transform { name: String },
    #[error("{name} is a rule, not a transform")]
    Rule { name: String },
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
            UploadError::Rule { .. } => "not_a_transform",
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

    /// An empty set whose plugins run on `engine` (and are booked in its health record).
    pub fn on(engine: WasmEngine) -> Self {
        WasmPlugins {
            engine,
            entries: Vec::new(),
        }
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

    /// Adds a component under `name`, replacing the plugin of that name and scope; the world
    /// is read off the component. With `tenant`, the plugin sees only that tenant's events,
    /// and a global plugin of the same name no longer sees them.
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
        match self
            .entries
            .iter_mut()
            .find(|e| e.name == name && e.tenant == entry.tenant)
        {
            Some(existing) => *existing = entry,
            // A tenant's version runs where the global one does, so the order of the
            // transforms is the same for every tenant.
            None => match self.entries.iter().rposition(|e| e.name == name) {
                Some(last) => self.entries.insert(last + 1, entry),
                None => self.entries.push(entry),
            },
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
                    except: self.overridden(e),
                    inner: t.clone(),
                }) as Box<dyn Transform>),
                Loaded::Rule(_) => None,
            })
            .collect()
    }
    fn transform_versions(&self) -> Vec<(String, String, Option<String>)> {
        self.entries
            .iter()
            .filter(|e| matches!(e.plugin, Loaded::Transform(_)))
            .map(|e| (e.name.clone(), e.hash.clone(), e.tenant.clone()))
            .collect()
    }
    fn disabled(&self) -> Vec<(String, String)> {
        self.engine.disabled()
    }
    fn engine(&self) -> Option<WasmEngine> {
        Some(self.engine.clone())
    }
    fn reset_health(&self, name: &str, tenant: Option<&str>) {
        self.engine.reset_health(name, tenant);
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
                    // The registry takes overridden tenants out of a global rule's deployments.
                    let maker: RuleMaker = Arc::new(move || {
                        Box::new(Scoped {
                            tenant: tenant.clone(),
                            except: Vec::new(),
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

impl WasmPlugins {
    /// The tenants with their own plugin of a global entry's name: it must not see them.
    fn overridden(&self, entry: &Entry) -> Vec<String> {
        if entry.tenant.is_some() {
            return Vec::new();
        }
        self.entries
            .iter()
            .filter(|e| e.name == entry.name)
            .filter_map(|e| e.tenant.clone())
            .collect()
    }
}

/// `inner` restricted to `tenant`'s events, or to every tenant but `except`: the others pass
/// it untouched.
pub(crate) fn scoped_transform(
    tenant: Option<String>,
    except: Vec<String>,
    inner: Box<dyn Transform>,
) -> Box<dyn Transform> {
    Box::new(Scoped {
        tenant,
        except,
        inner,
    })
}

/// Restricts a plugin to one tenant, or to every tenant but those with their own version:
/// other events never reach it (a transform passes them through).
struct Scoped<P> {
    tenant: Option<String>,
    except: Vec<String>,
    inner: P,
}

impl<P> Scoped<P> {
    fn sees(&self, tenant: &str) -> bool {
        self.tenant.as_deref().is_none_or(|t| t == tenant)
            && !self.except.iter().any(|t| t == tenant)
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
///
/// The vectors run on an engine of their own, so a failing candidate never counts against
/// the health of the version in force; the registered version runs on the registry's engine
/// (the configured plugins'), whose limits and health record it shares.
pub fn upload_rule(
    registry: &RuleRegistry,
    name: &str,
    bytes: Arc<[u8]>,
    vectors: &str,
    tenant: Option<&str>,
) -> Result<(VersionId, String), UploadError> {
    let mut spec = validate_rule(name, &bytes, vectors, tenant)?;
    if let Some(engine) = registry.engine() {
        let mut set = WasmPlugins::on(engine);
        set.add(name, &bytes, tenant)?;
        spec = set.rule_makers().remove(0);
    }
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

/// What an uploaded component became: a new version of a rule or of a transform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uploaded {
    pub world: World,
    pub version: VersionId,
    pub hash: String,
}

/// Checks an uploaded component and registers it as a new version of a rule or a transform,
/// by the world it implements (not yet deployed). See [`upload_rule`] and
/// [`upload_transform`] for the checks.
pub fn upload(
    rules: &RuleRegistry,
    transforms: &TransformRegistry,
    name: &str,
    bytes: Arc<[u8]>,
    vectors: &str,
    tenant: Option<&str>,
) -> Result<Uploaded, UploadError> {
    let (world, (version, hash)) = match upload_rule(rules, name, bytes.clone(), vectors, tenant) {
        Err(UploadError::Transform { .. }) => (
            World::Transform,
            upload_transform(transforms, name, bytes, vectors, tenant)?,
        ),
        uploaded => (World::Rule, uploaded?),
    };
    Ok(Uploaded {
        world,
        version,
        hash,
    })
}

/// Checks an uploaded transform component and registers it as a new version (not yet
/// deployed); returns the version and the component's content hash. It must compile,
/// implement the transform world, and pass `vectors`; otherwise nothing is registered.
///
/// The vectors run unscoped on an engine of their own (they test the component, whatever
/// tenant it is deployed for), so a failing candidate never counts against the health of the
/// version in force; the registered version runs on the registry's engine (the configured
/// plugins'), whose limits and health record it shares.
pub fn upload_transform(
    registry: &TransformRegistry,
    name: &str,
    bytes: Arc<[u8]>,
    vectors: &str,
    tenant: Option<&str>,
) -> Result<(VersionId, String), UploadError> {
    let mut set = WasmPlugins::new(Limits::default())?;
    if set.add(name, &bytes, None)? == World::Rule {
        return Err(UploadError::Rule {
            name: name.to_owned(),
        });
    }
    let report = super::vectors::check(&set, name, vectors)?;
    if !report.ok() {
        return Err(UploadError::FailsVectors {
            name: name.to_owned(),
            passed: report.passed,
            failures: report.failures,
        });
    }
    let engine = registry.engine().unwrap_or_else(|| {
        // Native plugins share no engine: the first upload's becomes the one every later
        // upload runs on, so one health record sees them all.
        registry.run_uploads_on(set.engine().clone());
        set.engine().clone()
    });
    let transform = engine
        .load_transform(name, &bytes)
        .map_err(|source| ConfigError::Load {
            name: name.to_owned(),
            source,
        })?;
    let maker: TransformMaker = Arc::new(move || Box::new(transform.clone()) as Box<dyn Transform>);
    let hash = content_hash(&bytes);
    let spec = TransformSpec {
        name: name.to_owned(),
        hash: hash.clone(),
        tenant: tenant.map(str::to_owned),
        maker,
    };
    Ok((
        registry.register_uploaded(spec, bytes, vectors.into()),
        hash,
    ))
}
