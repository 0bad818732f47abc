//! Transform versions: every version deployed, for which tenants, since when; and the
//! instances admission runs for one transform name.
//!
//! Like rule versions ([`super::registry`]), every version stays listed with its content hash,
//! tenant scope and the logical times and modes it was deployed with; the configured transforms
//! are the first versions, and rollback is a deploy of an earlier version. A transform has at
//! most one global version in force and at most one per tenant: a tenant's version replaces
//! the global one for that tenant only (the global one is built excepting the tenants with
//! their own), and a global deploy leaves the tenant versions in force.
//!
//! The registry keeps the record and builds the chain of one name ([`TransformRegistry::group`]);
//! it never swaps anything into admission (the run driver does), validates a component (that
//! is [`super::set`]'s) or writes the checkpoint that saves it.

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::Transform;
use super::registry::{Mode, VersionId};
use super::wasm::WasmEngine;
use super::{PluginError, PluginFactory};
use crate::event::Event;
use crate::time::Time;

/// Makes a fresh, unscoped instance of a transform version; the registry scopes it.
pub type TransformMaker = Arc<dyn Fn() -> Box<dyn Transform> + Send + Sync>;

/// A transform as a plugin set or an upload offers it, ready to be registered as a version.
#[derive(Clone)]
pub struct TransformSpec {
    /// The name its quarantine reasons carry (`plugin_error:<name>:<code>`).
    pub name: String,
    /// The content hash (see [`super::registry::content_hash`]).
    pub hash: String,
    /// `Some(t)`: only tenant `t`'s events reach it.
    pub tenant: Option<String>,
    pub maker: TransformMaker,
}

/// One version of a transform.
#[derive(Clone)]
pub struct TransformVersion {
    pub id: VersionId,
    pub name: String,
    pub hash: String,
    pub tenant: Option<String>,
    /// Logical times and modes this version was deployed with.
    pub deployed: Vec<(Time, Mode)>,
    /// The component, for a version uploaded while running (a checkpoint keeps it, since the
    /// configuration cannot bring it back).
    pub component: Option<Arc<[u8]>>,
    /// The test vectors an uploaded version passed: a restart validates it against them
    /// again before it transforms anything.
    pub vectors: Option<Arc<str>>,
    maker: TransformMaker,
}

impl TransformVersion {
    /// A fresh instance, unscoped.
    pub fn instance(&self) -> Box<dyn Transform> {
        (self.maker)()
    }
}

/// The version in force for one transform name and scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InForce {
    pub name: String,
    pub tenant: Option<String>,
    pub version: VersionId,
}

/// Why a transform deploy was refused; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    #[error("no transform version {0}")]
    NoVersion(VersionId),
    #[error(
        "a retroactive deploy of transform {name} transforms every retained event again, and this run retains no admitted events (Driver::retain_history): deploy it from_now"
    )]
    NoHistory { name: String },
}

impl TransformError {
    /// The stable, machine-readable code of the variant.
    pub fn code(&self) -> &'static str {
        match self {
            TransformError::NoVersion(_) => "no_transform_version",
            TransformError::NoHistory { .. } => "no_history",
        }
    }
}

#[derive(Default)]
struct State {
    versions: Vec<TransformVersion>,
    /// The transform names in the order they run.
    names: Vec<String>,
    in_force: Vec<InForce>,
    /// Every deploy's version, in the order they happened (a rollback undoes the last one).
    log: Vec<VersionId>,
}

/// All transform versions, and which is in force for whom.
#[derive(Default)]
pub struct TransformRegistry {
    state: RwLock<State>,
    /// Where versions uploaded while running execute: the configured plugins' engine.
    engine: RwLock<Option<WasmEngine>>,
}

impl TransformRegistry {
    /// A registry whose first versions are `plugins`' transforms, in force from time 0.
    pub fn configured(plugins: &Arc<dyn PluginFactory>) -> TransformRegistry {
        let registry = TransformRegistry::default();
        if let Some(engine) = plugins.engine() {
            registry.run_uploads_on(engine);
        }
        for (index, (name, hash, tenant)) in plugins.transform_versions().into_iter().enumerate() {
            let factory = plugins.clone();
            // The factory's own instance, already scoped as configured: scoping it again by
            // the registry's record changes nothing until a deploy changes the record.
            let maker: TransformMaker = Arc::new(move || factory.transforms().swap_remove(index));
            let id = registry.register(TransformSpec {
                name,
                hash,
                tenant,
                maker,
            });
            registry
                .deploy(id, Mode::Retroactive, 0)
                .expect("a version just registered");
        }
        registry
    }

    /// Uploaded versions will run on `engine` (so its health record sees their failures).
    pub fn run_uploads_on(&self, engine: WasmEngine) {
        *self.engine.write().unwrap() = Some(engine);
    }

    /// The engine uploaded versions run on: the configured plugins', or (native plugins) the
    /// first upload's.
    pub fn engine(&self) -> Option<WasmEngine> {
        self.engine.read().unwrap().clone()
    }

    /// Registers a version (not yet deployed); returns its id.
    pub fn register(&self, spec: TransformSpec) -> VersionId {
        let mut state = self.state.write().unwrap();
        let id = state.versions.len() as VersionId;
        state.versions.push(TransformVersion {
            id,
            name: spec.name,
            hash: spec.hash,
            tenant: spec.tenant,
            deployed: Vec::new(),
            component: None,
            vectors: None,
            maker: spec.maker,
        });
        id
    }

    /// As [`TransformRegistry::register`], for a component uploaded while running, with the
    /// test vectors it passed.
    pub fn register_uploaded(
        &self,
        spec: TransformSpec,
        component: Arc<[u8]>,
        vectors: Arc<str>,
    ) -> VersionId {
        let id = self.register(spec);
        let version = &mut self.state.write().unwrap().versions[id as usize];
        version.component = Some(component);
        version.vectors = Some(vectors);
        id
    }

    pub fn version(&self, id: VersionId) -> Option<TransformVersion> {
        self.state
            .read()
            .unwrap()
            .versions
            .get(id as usize)
            .cloned()
    }

    /// Every version ever registered, oldest first.
    pub fn list(&self) -> Vec<TransformVersion> {
        self.state.read().unwrap().versions.clone()
    }

    /// The versions in force.
    pub fn in_force(&self) -> Vec<InForce> {
        self.state.read().unwrap().in_force.clone()
    }

    /// Records a deploy of `version` at `at`: it replaces the version in force for its own
    /// scope only. Returns the version.
    pub fn deploy(
        &self,
        version: VersionId,
        mode: Mode,
        at: Time,
    ) -> Result<TransformVersion, TransformError> {
        let mut state = self.state.write().unwrap();
        let v = state
            .versions
            .get_mut(version as usize)
            .ok_or(TransformError::NoVersion(version))?;
        v.deployed.push((at, mode));
        let v = v.clone();
        if !state.names.contains(&v.name) {
            state.names.push(v.name.clone());
        }
        match state
            .in_force
            .iter_mut()
            .find(|f| f.name == v.name && f.tenant == v.tenant)
        {
            Some(f) => f.version = version,
            None => state.in_force.push(InForce {
                name: v.name.clone(),
                tenant: v.tenant.clone(),
                version,
            }),
        }
        state.log.push(version);
        Ok(v)
    }

    /// The tenants with their own version of `name` in force: the global version must not
    /// see their events.
    pub fn overridden(&self, name: &str) -> Vec<String> {
        let state = self.state.read().unwrap();
        let mut tenants: Vec<String> = state
            .in_force
            .iter()
            .filter(|f| f.name == name)
            .filter_map(|f| f.tenant.clone())
            .collect();
        tenants.sort();
        tenants
    }

    /// Fresh instances of the versions of `name` in force, scoped, in the order they run: the
    /// global one (excepting the tenants with their own), then each tenant's.
    pub fn group(&self, name: &str) -> Vec<Box<dyn Transform>> {
        let except = self.overridden(name);
        let state = self.state.read().unwrap();
        let mut in_force: Vec<&InForce> =
            state.in_force.iter().filter(|f| f.name == name).collect();
        in_force.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        in_force
            .into_iter()
            .filter_map(|f| {
                let v = state.versions.get(f.version as usize)?;
                let except = if f.tenant.is_none() {
                    except.clone()
                } else {
                    Vec::new()
                };
                Some(super::set::scoped_transform(
                    f.tenant.clone(),
                    except,
                    v.instance(),
                ))
            })
            .collect()
    }

    /// The version a rollback of `name` deploys: undoing its last deploy, the version in force
    /// for that deploy's scope before it.
    pub fn previous(&self, name: &str) -> Option<VersionId> {
        let state = self.state.read().unwrap();
        let scope_of = |id: VersionId| {
            state
                .versions
                .get(id as usize)
                .filter(|v| v.name == name)
                .map(|v| v.tenant.clone())
        };
        let last = *state.log.iter().rev().find(|id| scope_of(**id).is_some())?;
        let scope = scope_of(last)?;
        state
            .log
            .iter()
            .rev()
            .find(|id| **id != last && scope_of(**id).as_ref() == Some(&scope))
            .copied()
    }

    /// What a checkpoint records of the transforms.
    pub fn save(&self) -> SavedTransforms {
        let state = self.state.read().unwrap();
        SavedTransforms {
            versions: state
                .versions
                .iter()
                .map(|v| SavedTransformVersion {
                    name: v.name.clone(),
                    hash: v.hash.clone(),
                    tenant: v.tenant.clone(),
                    deployed: v.deployed.clone(),
                    uploaded: v.component.is_some(),
                    vectors: v.vectors.as_deref().map(str::to_owned),
                })
                .collect(),
            names: state.names.clone(),
            in_force: state.in_force.clone(),
            log: state.log.clone(),
        }
    }

    /// Makes the record what `saved` holds. `ids` maps each saved version to its id in this
    /// run (`None`: a configured version this run does not have; what it was in force for
    /// keeps this run's). Returns the names whose versions in force changed.
    pub fn restore(&self, saved: &SavedTransforms, ids: &[Option<VersionId>]) -> Vec<String> {
        let id = |saved: VersionId| ids.get(saved as usize).copied().flatten();
        let mut state = self.state.write().unwrap();
        for (s, mapped) in saved.versions.iter().zip(ids) {
            if let Some(v) = mapped.and_then(|m| state.versions.get_mut(m as usize)) {
                v.deployed = s.deployed.clone();
            }
        }
        for name in &saved.names {
            if !state.names.contains(name) {
                state.names.push(name.clone());
            }
        }
        let mut changed = Vec::new();
        for f in &saved.in_force {
            let Some(version) = id(f.version) else {
                continue;
            };
            match state
                .in_force
                .iter_mut()
                .find(|g| g.name == f.name && g.tenant == f.tenant)
            {
                Some(g) if g.version == version => continue,
                Some(g) => g.version = version,
                None => state.in_force.push(InForce {
                    version,
                    ..f.clone()
                }),
            }
            if !changed.contains(&f.name) {
                changed.push(f.name.clone());
            }
        }
        state.log = saved.log.iter().filter_map(|v| id(*v)).collect();
        changed
    }
}

/// A transform version as a checkpoint records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedTransformVersion {
    pub name: String,
    pub hash: String,
    pub tenant: Option<String>,
    pub deployed: Vec<(Time, Mode)>,
    /// Uploaded while running: the checkpoint holds its component, named by `hash`.
    pub uploaded: bool,
    /// The test vectors an uploaded version passed when it was deployed.
    #[serde(default)]
    pub vectors: Option<String>,
}

/// The transforms as a checkpoint records them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedTransforms {
    pub versions: Vec<SavedTransformVersion>,
    pub names: Vec<String>,
    pub in_force: Vec<InForce>,
    #[serde(default)]
    pub log: Vec<VersionId>,
}

impl Transform for Box<dyn Transform> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn apply(&mut self, events: Vec<Event>) -> Vec<Result<Vec<Event>, PluginError>> {
        (**self).apply(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transform that appends its version to event ids: enough to tell versions apart.
    struct Tag(&'static str);

    impl Transform for Tag {
        fn name(&self) -> &str {
            "tag"
        }
        fn apply(&mut self, events: Vec<Event>) -> Vec<Result<Vec<Event>, PluginError>> {
            events
                .into_iter()
                .map(|mut e| {
                    e.event_id = format!("{}-{}", e.event_id, self.0);
                    Ok(vec![e])
                })
                .collect()
        }
    }

    fn spec(version: &'static str, tenant: Option<&str>) -> TransformSpec {
        TransformSpec {
            name: "tag".into(),
            hash: version.into(),
            tenant: tenant.map(str::to_owned),
            maker: Arc::new(move || Box::new(Tag(version))),
        }
    }

    fn event(tenant: &str) -> Event {
        crate::admit::decode::decode(
            format!(
                r#"{{"event_id":"e","tenant_id":"{tenant}","type":"page_view","event_time":"2026-11-21T07:00:00Z","schema_version":1,"user_id":"u","url":"/"}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    /// What the group of `tag` makes of one event of each tenant.
    fn ids(registry: &TransformRegistry) -> Vec<String> {
        let mut events = vec![event("acme"), event("globex")];
        for mut t in registry.group("tag") {
            events = t
                .apply(events)
                .into_iter()
                .flat_map(|r| r.unwrap())
                .collect();
        }
        events.into_iter().map(|e| e.event_id).collect()
    }

    #[test]
    fn a_tenant_version_replaces_the_global_one_for_that_tenant_only_and_a_global_deploy_keeps_it()
    {
        let registry = TransformRegistry::default();
        let v1 = registry.register(spec("v1", None));
        registry.deploy(v1, Mode::Retroactive, 0).unwrap();
        assert_eq!(ids(&registry), ["e-v1", "e-v1"]);
        let acme = registry.register(spec("acme", Some("acme")));
        registry.deploy(acme, Mode::FromNow, 3).unwrap();
        assert_eq!(ids(&registry), ["e-acme", "e-v1"]);
        let v2 = registry.register(spec("v2", None));
        registry.deploy(v2, Mode::FromNow, 5).unwrap();
        assert_eq!(ids(&registry), ["e-acme", "e-v2"]);
        // Rolling back undoes the last deploy, in its own scope.
        assert_eq!(registry.previous("tag"), Some(v1));
        registry.deploy(v1, Mode::FromNow, 7).unwrap();
        assert_eq!(ids(&registry), ["e-acme", "e-v1"]);
        assert_eq!(registry.previous("tag"), Some(v2));
    }

    #[test]
    fn a_saved_record_restores_the_versions_in_force() {
        let registry = TransformRegistry::default();
        let v1 = registry.register(spec("v1", None));
        registry.deploy(v1, Mode::Retroactive, 0).unwrap();
        let acme = registry.register(spec("acme", Some("acme")));
        registry.deploy(acme, Mode::FromNow, 4).unwrap();
        let saved = registry.save();

        let fresh = TransformRegistry::default();
        let v1 = fresh.register(spec("v1", None));
        fresh.deploy(v1, Mode::Retroactive, 0).unwrap();
        let acme = fresh.register(spec("acme", Some("acme")));
        assert_eq!(ids(&fresh), ["e-v1", "e-v1"]);
        let changed = fresh.restore(&saved, &[Some(v1), Some(acme)]);
        assert_eq!(changed, ["tag"]);
        assert_eq!(ids(&fresh), ["e-acme", "e-v1"]);
        assert_eq!(fresh.version(acme).unwrap().deployed, [(4, Mode::FromNow)]);
    }
}
