//! The WebAssembly host: plugins as sandboxed components of the `wit/` worlds.
//!
//! One [`WasmEngine`] per process (component model, fuel, epoch interruption, a pooling
//! allocator); a plugin is compiled and linked once into an `InstancePre`. Every call gets a
//! fresh `Store` with a memory cap and a fresh instance, so a call's answer depends on its
//! input alone — no state leaks from one batch to the next, which is what lets the dataflow
//! re-run a rule to retract its earlier answer.
//!
//! Failure is decided by fuel, not wall time, and per event: every call gets one event's budget
//! whatever its batch size, and a batch that fails is split in halves down to single events,
//! so an event fails exactly when it fails alone — never because of the events beside it. The
//! epoch deadline is only a backstop (a call past it fails as `deadline`, its events judged
//! alone like any failure). Traps become typed [`PluginError`]s.
//!
//! A component that imports anything beyond types is refused, so a plugin cannot reach a clock,
//! a file, the network or weir's state. The host reports a failure as its typed error and never
//! decides where the event goes: admission quarantines it, `fraud_alerts` dead-letters it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    StoreLimits, StoreLimitsBuilder, Trap,
};

use super::{Alert, PluginError, Rule, RuleEventKind, RuleInput, Transform};
use crate::event::{self as ev, Event};

mod transform_world {
    wasmtime::component::bindgen!({ path: "../wit", world: "transform" });
}
mod rule_world {
    wasmtime::component::bindgen!({ path: "../wit", world: "rule" });
}

use rule_world::weir::plugin::types as rt;
use transform_world::weir::plugin::types as tt;

/// Limits every plugin call runs under.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Fuel one event may use. Every call gets this plus `base_fuel`, whatever its batch
    /// size, and a batch that runs out is split until each event is judged within it alone:
    /// an event's verdict never depends on the events that share its batch.
    pub fuel_per_event: u64,
    /// Fuel for the call itself (instantiation, lifting and lowering).
    pub base_fuel: u64,
    /// Linear memory cap per instance, in bytes.
    pub memory_bytes: usize,
    /// Events one input may become.
    pub max_outputs_per_event: usize,
    /// Wall-clock backstop per call.
    pub deadline: Duration,
    /// Consecutive failed events after which a plugin is disabled.
    pub disable_after: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel_per_event: 2_000_000,
            base_fuel: 20_000_000,
            memory_bytes: 64 << 20,
            max_outputs_per_event: 1_000,
            deadline: Duration::from_secs(5),
            disable_after: 1_000,
        }
    }
}

/// How often the engine's epoch advances; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Why a component was refused at load time, or the engine that loads them could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot start wasmtime: {0}")]
    Engine(String),
    #[error("cannot start the epoch thread: {cause}")]
    EpochThread { cause: std::io::Error },
    #[error("not a WebAssembly component: {0}")]
    Malformed(String),
    #[error(
        "the component imports {0}; a plugin may import nothing (no files, sockets, clocks or randomness): build it for wasm32-unknown-unknown with the plugin SDK"
    )]
    Imports(String),
    #[error(
        "the component does not match the weir:plugin/{world} world (imports must be empty, exports as in wit/plugin.wit): {detail}"
    )]
    WorldMismatch { world: &'static str, detail: String },
}

impl LoadError {
    /// The stable, machine-readable code of the variant.
    pub fn code(&self) -> &'static str {
        match self {
            LoadError::Engine(_) => "wasm_engine",
            LoadError::EpochThread { .. } => "wasm_epoch_thread",
            LoadError::Malformed(_) => "component_malformed",
            LoadError::Imports(_) => "component_imports",
            LoadError::WorldMismatch { .. } => "world_mismatch",
        }
    }
}

/// Per-store state: the memory limiter, remembering whether it refused a growth.
struct StoreState {
    limits: StoreLimits,
    memory_refused: bool,
}

impl ResourceLimiter for StoreState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum);
        if !matches!(allowed, Ok(true)) {
            self.memory_refused = true;
        }
        allowed
    }
    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

/// The process-wide WebAssembly engine.
#[derive(Clone)]
pub struct WasmEngine {
    engine: Engine,
    limits: Limits,
    usage: Arc<Mutex<Usage>>,
    _ticker: Arc<Ticker>,
}

/// What plugins cost and how they fare, across all workers.
#[derive(Debug, Default)]
struct Usage {
    fuel_by_tenant: BTreeMap<String, u64>,
    /// Per (plugin, tenant): consecutive failed events, and whether it is disabled. One
    /// tenant's bad events disable a plugin for that tenant only.
    health: BTreeMap<(String, String), (u64, bool)>,
}

/// Advances the engine epoch until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How much of a freed linear memory stays mapped for the next instance in its slot.
const KEEP_RESIDENT_BYTES: usize = 4 << 20;

impl WasmEngine {
    pub fn new(limits: Limits) -> Result<Self, LoadError> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(512 << 10);
        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_component_instances(256)
            .total_core_instances(512)
            .total_memories(256)
            .total_tables(256)
            .max_memory_size(limits.memory_bytes)
            // Every call gets a fresh instance. Zeroing the first pages of a freed slot with
            // memset keeps them mapped, where `madvise` had each call fault them back in one
            // at a time (a batch of ~1,000 events touches a few MiB).
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(64 << 10);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        let engine = Engine::new(&config).map_err(|e| LoadError::Engine(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let ticking = engine.clone();
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                }
            })
            .map_err(|cause| LoadError::EpochThread { cause })?;
        Ok(WasmEngine {
            engine,
            limits,
            usage: Arc::default(),
            _ticker: Arc::new(Ticker { stop }),
        })
    }

    /// Fuel burnt by plugin calls, per tenant whose events they processed.
    pub fn fuel_by_tenant(&self) -> BTreeMap<String, u64> {
        self.usage.lock().unwrap().fuel_by_tenant.clone()
    }

    /// `(plugin, tenant)` pairs disabled after `disable_after` consecutive failed events of
    /// that tenant.
    pub fn disabled(&self) -> Vec<(String, String)> {
        let usage = self.usage.lock().unwrap();
        usage
            .health
            .iter()
            .filter(|(_, (_, disabled))| *disabled)
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Whether `plugin` is disabled for `tenant`'s events.
    pub fn is_disabled(&self, plugin: &str, tenant: &str) -> bool {
        self.usage
            .lock()
            .unwrap()
            .health
            .get(&(plugin.to_owned(), tenant.to_owned()))
            .is_some_and(|(_, d)| *d)
    }

    /// Clears a plugin's failure record for `tenant`, or for every tenant (a new version was
    /// deployed under its name for that scope).
    pub fn reset_health(&self, plugin: &str, tenant: Option<&str>) {
        self.usage
            .lock()
            .unwrap()
            .health
            .retain(|(p, t), (_, disabled)| {
                let kept = p != plugin || tenant.is_some_and(|only| only != t);
                if !kept && *disabled {
                    crate::metrics::global().plugin_health(p, t, false);
                }
                kept
            });
    }

    /// Clears a plugin's failure record for every tenant but `keep` (a new global version
    /// was deployed; the tenants in `keep` run their own versions, whose records stand).
    pub fn reset_health_except(&self, plugin: &str, keep: &[String]) {
        self.usage
            .lock()
            .unwrap()
            .health
            .retain(|(p, t), (_, disabled)| {
                let kept = p != plugin || keep.contains(t);
                if !kept && *disabled {
                    crate::metrics::global().plugin_health(p, t, false);
                }
                kept
            });
    }

    /// Runs one call of `plugin` on `items` inputs of `tenant` in a fresh store, and books it.
    fn booked<O>(
        &self,
        plugin: &str,
        tenant: &str,
        items: usize,
        call: impl FnOnce(&mut Store<StoreState>) -> CallResult<O>,
    ) -> CallResult<O> {
        let started = Instant::now();
        let mut store = self.store();
        let result = call(&mut store);
        let fuel = self.budget() - store.get_fuel().unwrap_or(0);
        let failed = match &result {
            Ok(results) => results.iter().filter(|r| r.is_err()).count() as u64,
            Err(_) if items == 1 => 1,
            Err(_) => 0,
        };
        crate::metrics::global().plugin_call(plugin, failed, fuel, started.elapsed());
        match &result {
            Ok(results) => self.account(plugin, tenant, fuel, results),
            // A failed single input counts against the plugin; a failed batch is retried
            // input by input, which counts then.
            Err(e) if items == 1 => self.account::<()>(plugin, tenant, fuel, &[Err(e.clone())]),
            Err(_) => self.account::<()>(plugin, tenant, fuel, &[]),
        }
        result
    }

    /// Books a call: its fuel against the tenant, its results against the plugin's record.
    fn account<O>(
        &self,
        plugin: &str,
        tenant: &str,
        fuel: u64,
        results: &[Result<O, PluginError>],
    ) {
        let mut usage = self.usage.lock().unwrap();
        *usage.fuel_by_tenant.entry(tenant.to_owned()).or_default() += fuel;
        let (run, disabled) = usage
            .health
            .entry((plugin.to_owned(), tenant.to_owned()))
            .or_default();
        for result in results {
            if result.is_ok() {
                *run = 0;
            } else {
                *run += 1;
            }
            if *run >= self.limits.disable_after && !*disabled {
                *disabled = true;
                crate::metrics::global().plugin_health(plugin, tenant, true);
                eprintln!(
                    "weir: plugin {plugin} disabled for tenant {tenant} after {run} consecutive failed events of it; deploy a fixed version"
                );
            }
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A call's fuel: one event's, whatever the batch (see [`Limits::fuel_per_event`]).
    fn budget(&self) -> u64 {
        self.limits.base_fuel + self.limits.fuel_per_event
    }

    fn store(&self) -> Store<StoreState> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .trap_on_grow_failure(true)
            .instances(16)
            .build();
        let mut store = Store::new(
            &self.engine,
            StoreState {
                limits,
                memory_refused: false,
            },
        );
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        store.set_fuel(self.budget()).expect("fuel is enabled");
        let ticks = (self.limits.deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        store
    }

    fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| LoadError::Malformed(format!("{e:#}")))?;
        // An interface of types only (the ABI's own `types`) gives a plugin nothing to call.
        let reaches_out = |item: &ComponentItem| match item {
            ComponentItem::Type(_) => false,
            ComponentItem::ComponentInstance(instance) => instance
                .exports(&self.engine)
                .any(|(_, export)| !matches!(export.ty, ComponentItem::Type(_))),
            _ => true,
        };
        let imports: Vec<String> = component
            .component_type()
            .imports(&self.engine)
            .filter(|(_, import)| reaches_out(&import.ty))
            .map(|(name, _)| name.to_owned())
            .collect();
        if !imports.is_empty() {
            return Err(LoadError::Imports(imports.join(", ")));
        }
        Ok(component)
    }

    /// Compiles and links a transform component.
    pub fn load_transform(&self, name: &str, bytes: &[u8]) -> Result<WasmTransform, LoadError> {
        let component = self.compile(bytes)?;
        let linker = Linker::<StoreState>::new(&self.engine);
        let mismatch = |e: wasmtime::Error| LoadError::WorldMismatch {
            world: "transform",
            detail: format!("{e:#}"),
        };
        let pre = linker.instantiate_pre(&component).map_err(mismatch)?;
        let pre = transform_world::TransformPre::new(pre).map_err(mismatch)?;
        // Asked once: which types it reads is part of what was deployed, not of each call.
        let mut store = self.store();
        let types = pre
            .instantiate(&mut store)
            .and_then(|instance| instance.call_accepts(&mut store))
            .map_err(|e| LoadError::WorldMismatch {
                world: "transform",
                detail: format!("accepts() failed: {e:#}"),
            })?;
        let mut accepts = [false; 6];
        for ty in types {
            accepts[type_index(ty)] = true;
        }
        Ok(WasmTransform {
            name: name.to_owned(),
            engine: self.clone(),
            pre,
            accepts,
        })
    }

    /// Compiles and links a rule component.
    pub fn load_rule(&self, name: &str, bytes: &[u8]) -> Result<WasmRule, LoadError> {
        let component = self.compile(bytes)?;
        let linker = Linker::<StoreState>::new(&self.engine);
        let mismatch = |e: wasmtime::Error| LoadError::WorldMismatch {
            world: "rule",
            detail: format!("{e:#}"),
        };
        let pre = linker.instantiate_pre(&component).map_err(mismatch)?;
        let pre = rule_world::RulePre::new(pre).map_err(mismatch)?;
        Ok(WasmRule {
            name: name.to_owned(),
            engine: self.clone(),
            pre,
        })
    }
}

/// Maps a failed call to the typed error.
fn classify(error: wasmtime::Error, store: &Store<StoreState>) -> PluginError {
    if store.data().memory_refused {
        return PluginError::MemoryLimit;
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => PluginError::OutOfFuel,
        Some(Trap::StackOverflow) => PluginError::StackOverflow,
        Some(Trap::Interrupt) => PluginError::Deadline,
        Some(trap) => PluginError::GuestTrap(trap.to_string()),
        None => PluginError::GuestTrap(format!("{error:#}")),
    }
}

/// Runs `call` over `items` in one batch; if the batch fails, runs each item alone so that
/// only the items that fail on their own are reported as failed.
/// The results of one plugin call: one per input, or the failure of the whole call.
type CallResult<O> = Result<Vec<Result<O, PluginError>>, PluginError>;

fn batched<I, O>(
    items: &[I],
    mut call: impl FnMut(&[I]) -> CallResult<O>,
) -> Vec<Result<O, PluginError>> {
    items
        .chunks(MAX_CALL_ITEMS)
        .flat_map(|chunk| bisect(chunk, &mut call))
        .collect()
}

/// Events one call carries at most, so a batch of ordinary events fits one event's fuel.
const MAX_CALL_ITEMS: usize = 1024;

/// Calls `items` as one batch; if the call fails, each half on its own, down to single
/// events. Every call has one event's budget, so a batch that passes proves each of its events
/// would pass alone, and an event that fails is judged alone: its verdict is its own. One
/// hostile event costs a logarithmic number of calls, not one per event of its batch.
fn bisect<I, O>(
    items: &[I],
    call: &mut dyn FnMut(&[I]) -> CallResult<O>,
) -> Vec<Result<O, PluginError>> {
    match items {
        [] => Vec::new(),
        [item] => vec![match call(std::slice::from_ref(item)) {
            Ok(mut out) if out.len() == 1 => out.pop().expect("one result"),
            Ok(out) => Err(PluginError::InvalidOutput(format!(
                "{} results for 1 input",
                out.len()
            ))),
            Err(e) => Err(e),
        }],
        _ => match call(items) {
            Ok(out) if out.len() == items.len() => out,
            _ => {
                let (first, second) = items.split_at(items.len() / 2);
                let mut out = bisect(first, call);
                out.extend(bisect(second, call));
                out
            }
        },
    }
}

/// Calls `run` once per tenant's share of `items` (in first-seen order) and puts the results
/// back in input order: one tenant's failing events never cost another tenant a retry.
/// Items are moved into their tenant's batch, never copied: every string of an event would
/// otherwise be allocated twice before the plugin even sees it.
fn per_tenant<I, O>(
    items: Vec<I>,
    tenant: impl Fn(&I) -> &str,
    mut run: impl FnMut(&[I]) -> Vec<Result<O, PluginError>>,
) -> Vec<Result<O, PluginError>> {
    if items.windows(2).all(|w| tenant(&w[0]) == tenant(&w[1])) {
        return run(&items);
    }
    // The tenant (by first index) of each item, then each tenant's items in input order.
    let mut firsts: Vec<usize> = Vec::new();
    let owner: Vec<usize> = (0..items.len())
        .map(|i| {
            let g = firsts
                .iter()
                .position(|&f| tenant(&items[f]) == tenant(&items[i]));
            g.unwrap_or_else(|| {
                firsts.push(i);
                firsts.len() - 1
            })
        })
        .collect();
    let mut groups: Vec<Vec<I>> = firsts.iter().map(|_| Vec::new()).collect();
    for (item, &g) in items.into_iter().zip(&owner) {
        groups[g].push(item);
    }
    let mut results: Vec<std::vec::IntoIter<Result<O, PluginError>>> =
        groups.iter().map(|batch| run(batch).into_iter()).collect();
    owner
        .into_iter()
        .map(|g| results[g].next().expect("one result per input"))
        .collect()
}

/// A transform plugin running as a component.
#[derive(Clone)]
pub struct WasmTransform {
    name: String,
    engine: WasmEngine,
    pre: transform_world::TransformPre<StoreState>,
    /// By [`type_index`]: the event types it reads; the others pass it by.
    accepts: [bool; 6],
}

fn type_index(ty: tt::EventType) -> usize {
    match ty {
        tt::EventType::PageView => 0,
        tt::EventType::AddToCart => 1,
        tt::EventType::OrderPlaced => 2,
        tt::EventType::OrderCancelled => 3,
        tt::EventType::Payment => 4,
        tt::EventType::InventoryAdjusted => 5,
    }
}

fn body_index(body: &ev::Body) -> usize {
    match body {
        ev::Body::PageView(_) => 0,
        ev::Body::AddToCart(_) => 1,
        ev::Body::OrderPlaced(_) => 2,
        ev::Body::OrderCancelled(_) => 3,
        ev::Body::Payment(_) => 4,
        ev::Body::InventoryAdjusted(_) => 5,
    }
}

impl WasmTransform {
    /// One call on a batch of one tenant's events, booked against that tenant.
    fn call(&self, events: &[tt::Event]) -> CallResult<Vec<Event>> {
        // Admission is sequential, so when a transform is disabled is fixed by input order.
        let tenant = events.first().map_or("", |e| e.tenant_id.as_str());
        if self.engine.is_disabled(&self.name, tenant) {
            return Ok(events.iter().map(|_| Err(PluginError::Disabled)).collect());
        }
        self.engine
            .booked(&self.name, tenant, events.len(), |store| {
                self.call_in(store, events)
            })
    }

    fn call_in(
        &self,
        store: &mut Store<StoreState>,
        events: &[tt::Event],
    ) -> CallResult<Vec<Event>> {
        let instance = self
            .pre
            .instantiate(&mut *store)
            .map_err(|e| classify(e, store))?;
        let results = instance
            .call_transform(&mut *store, events)
            .map_err(|e| classify(e, store))?;
        let max = self.engine.limits.max_outputs_per_event;
        Ok(results
            .into_iter()
            .zip(events)
            .map(|(r, input)| match r {
                Ok(out) if out.len() > max => Err(PluginError::InvalidOutput(format!(
                    "{} events out of one (at most {max})",
                    out.len()
                ))),
                // A plugin speaks only for the tenant whose event it was given.
                Ok(out) if out.iter().any(|e| e.tenant_id != input.tenant_id) => Err(
                    PluginError::InvalidOutput("an output event names another tenant".into()),
                ),
                Ok(out) => Ok(out.into_iter().map(from_wit).collect()),
                Err(message) => Err(PluginError::Rejected(message)),
            })
            .collect())
    }
}

impl Transform for WasmTransform {
    fn name(&self) -> &str {
        &self.name
    }
    fn apply(&mut self, events: Vec<Event>) -> Vec<Result<Vec<Event>, PluginError>> {
        // Events of types it does not read pass by; the rest go in, in order.
        let mut results: Vec<Option<Result<Vec<Event>, PluginError>>> =
            Vec::with_capacity(events.len());
        let mut inputs = Vec::new();
        for event in events {
            if self.accepts[body_index(&event.body)] {
                results.push(None);
                inputs.push(to_wit(event));
            } else {
                results.push(Some(Ok(vec![event])));
            }
        }
        if inputs.is_empty() {
            return results.into_iter().flatten().collect();
        }
        let mut called = per_tenant(
            inputs,
            |e| &e.tenant_id,
            |batch| batched(batch, |b| self.call(b)),
        )
        .into_iter();
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| called.next().expect("one result per input")))
            .collect()
    }
}

/// A rule plugin running as a component.
#[derive(Clone)]
pub struct WasmRule {
    name: String,
    engine: WasmEngine,
    pre: rule_world::RulePre<StoreState>,
}

impl WasmRule {
    /// One call on a batch of one tenant's inputs, booked against that tenant. A failing rule
    /// is only reported here: the pipeline retires its deployment at a logical time, so that
    /// re-running it for a retraction still gives the same answer.
    fn call(&self, batch: &[rt::RuleInput]) -> CallResult<Vec<Alert>> {
        let tenant = batch.first().map_or("", |i| i.event.tenant_id.as_str());
        self.engine
            .booked(&self.name, tenant, batch.len(), |store| {
                self.call_in(store, batch)
            })
    }

    fn call_in(
        &self,
        store: &mut Store<StoreState>,
        batch: &[rt::RuleInput],
    ) -> CallResult<Vec<Alert>> {
        let instance = self
            .pre
            .instantiate(&mut *store)
            .map_err(|e| classify(e, store))?;
        let results = instance
            .call_evaluate(&mut *store, batch)
            .map_err(|e| classify(e, store))?;
        let max = self.engine.limits.max_outputs_per_event;
        Ok(results
            .into_iter()
            .map(|r| match r {
                Ok(out) if out.len() > max => Err(PluginError::InvalidOutput(format!(
                    "{} alerts for one input (at most {max})",
                    out.len()
                ))),
                Ok(out) => Ok(out
                    .into_iter()
                    .map(|a| Alert {
                        subject_id: a.subject_id,
                    })
                    .collect()),
                Err(message) => Err(PluginError::Rejected(message)),
            })
            .collect())
    }
}

impl Rule for WasmRule {
    fn name(&self) -> &str {
        &self.name
    }
    fn evaluate(&mut self, batch: &[RuleInput]) -> Vec<Result<Vec<Alert>, PluginError>> {
        let inputs: Vec<rt::RuleInput> = batch.iter().map(rule_to_wit).collect();
        per_tenant(
            inputs,
            |i| &i.event.tenant_id,
            |b| batched(b, |b| self.call(b)),
        )
    }
}

fn rule_to_wit(input: &RuleInput) -> rt::RuleInput {
    let e = &input.event;
    let f = &input.features;
    rt::RuleInput {
        event: rt::RuleEvent {
            kind: match e.kind {
                RuleEventKind::Order => rt::RuleEventKind::Order,
                RuleEventKind::Payment => rt::RuleEventKind::Payment,
            },
            tenant_id: e.tenant_id.clone(),
            event_id: e.event_id.clone(),
            event_time_ms: e.event_time_ms,
            user_id: e.user_id.clone(),
            order_id: e.order_id.clone(),
            payment_id: e.payment_id.clone(),
            amount_cents: e.amount_cents,
            status: e.status.clone(),
            device_id: e.device_id.clone(),
            card_fingerprint: e.card_fingerprint.clone(),
        },
        features: rt::Features {
            user_orders_10m: f.user_orders_10m,
            user_prior_orders: f.user_prior_orders,
            user_prior_total_cents: f.user_prior_total_cents,
            device_failed_cards_5m: f.device_failed_cards_5m,
        },
    }
}

fn to_wit(e: Event) -> tt::Event {
    let body = match e.body {
        ev::Body::PageView(p) => tt::Body::PageView(tt::PageView {
            user_id: p.user_id,
            url: p.url,
            sku: p.sku,
            device_id: p.device_id,
        }),
        ev::Body::AddToCart(a) => tt::Body::AddToCart(tt::AddToCart {
            user_id: a.user_id,
            sku: a.sku,
            quantity: a.quantity,
            price_cents: a.price_cents,
        }),
        ev::Body::OrderPlaced(o) => tt::Body::OrderPlaced(tt::OrderPlaced {
            user_id: o.user_id,
            order_id: o.order_id,
            items: o
                .items
                .into_iter()
                .map(|i| tt::Item {
                    sku: i.sku,
                    quantity: i.quantity,
                    price_cents: i.price_cents,
                })
                .collect(),
            total_cents: o.total_cents,
            currency: o.currency,
            discount_cents: o.discount_cents,
            device_id: o.device_id,
        }),
        ev::Body::OrderCancelled(c) => tt::Body::OrderCancelled(tt::OrderCancelled {
            user_id: c.user_id,
            order_id: c.order_id,
        }),
        ev::Body::Payment(p) => tt::Body::Payment(tt::Payment {
            user_id: p.user_id,
            order_id: p.order_id,
            payment_id: p.payment_id,
            provider: p.provider,
            status: p.status,
            provider_status: p.provider_status,
            amount_cents: p.amount_cents,
            device_id: p.device_id,
            card_fingerprint: p.card_fingerprint,
            card_bin: p.card_bin,
            card_last4: p.card_last4,
        }),
        ev::Body::InventoryAdjusted(a) => tt::Body::InventoryAdjusted(tt::InventoryAdjusted {
            sku: a.sku,
            delta: a.delta,
            reason: a.reason,
            warehouse: a.warehouse,
        }),
    };
    tt::Event {
        tenant_id: e.tenant_id,
        event_id: e.event_id,
        event_time_ms: e.event_time_ms,
        schema_version: e.schema_version,
        body,
    }
}

fn from_wit(e: tt::Event) -> Event {
    let body = match e.body {
        tt::Body::PageView(p) => ev::Body::PageView(ev::PageView {
            user_id: p.user_id,
            url: p.url,
            sku: p.sku,
            device_id: p.device_id,
        }),
        tt::Body::AddToCart(a) => ev::Body::AddToCart(ev::AddToCart {
            user_id: a.user_id,
            sku: a.sku,
            quantity: a.quantity,
            price_cents: a.price_cents,
        }),
        tt::Body::OrderPlaced(o) => ev::Body::OrderPlaced(ev::OrderPlaced {
            user_id: o.user_id,
            order_id: o.order_id,
            items: o
                .items
                .into_iter()
                .map(|i| ev::Item {
                    sku: i.sku,
                    quantity: i.quantity,
                    price_cents: i.price_cents,
                })
                .collect(),
            total_cents: o.total_cents,
            currency: o.currency,
            discount_cents: o.discount_cents,
            device_id: o.device_id,
        }),
        tt::Body::OrderCancelled(c) => ev::Body::OrderCancelled(ev::OrderCancelled {
            user_id: c.user_id,
            order_id: c.order_id,
        }),
        tt::Body::Payment(p) => ev::Body::Payment(ev::Payment {
            user_id: p.user_id,
            order_id: p.order_id,
            payment_id: p.payment_id,
            provider: p.provider,
            status: p.status,
            provider_status: p.provider_status,
            amount_cents: p.amount_cents,
            device_id: p.device_id,
            card_fingerprint: p.card_fingerprint,
            card_bin: p.card_bin,
            card_last4: p.card_last4,
        }),
        tt::Body::InventoryAdjusted(a) => ev::Body::InventoryAdjusted(ev::InventoryAdjusted {
            sku: a.sku,
            delta: a.delta,
            reason: a.reason,
            warehouse: a.warehouse,
        }),
    };
    Event {
        tenant_id: e.tenant_id,
        event_id: e.event_id,
        event_time_ms: e.event_time_ms,
        schema_version: e.schema_version,
        body,
    }
}
