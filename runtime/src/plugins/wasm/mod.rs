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
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    StoreLimits, StoreLimitsBuilder, Trap,
};

use super::{Alert, PluginError, Rule, RuleInput, Transform};
use crate::event::Event;

mod codec;

mod transform_world {
    wasmtime::component::bindgen!({ path: "../wit", world: "transform" });
}
mod rule_world {
    wasmtime::component::bindgen!({ path: "../wit", world: "rule" });
}

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
    /// Per plugin, per tenant: consecutive failed events, and whether it is disabled. One
    /// tenant's bad events disable a plugin for that tenant only.
    health: BTreeMap<String, BTreeMap<String, (u64, bool)>>,
}

impl Usage {
    /// Shares `fuel` among `tenants` (one per input) by their number of inputs; the rounding
    /// goes to the first. Shares are taken per run of one tenant's inputs, so a batch costs
    /// one map update per run, however many tenants it holds.
    fn book_fuel(&mut self, tenants: &[&str], fuel: u64) {
        let Some(&first) = tenants.first() else {
            return;
        };
        let total = tenants.len() as u128;
        let mut left = fuel;
        let mut rest = tenants;
        while let Some(&tenant) = rest.first() {
            let run = rest.iter().take_while(|&&t| t == tenant).count();
            let share = (u128::from(fuel) * run as u128 / total) as u64;
            left -= share;
            self.add_fuel(tenant, share);
            rest = &rest[run..];
        }
        self.add_fuel(first, left);
    }

    fn add_fuel(&mut self, tenant: &str, fuel: u64) {
        match self.fuel_by_tenant.get_mut(tenant) {
            Some(total) => *total += fuel,
            None => {
                self.fuel_by_tenant.insert(tenant.to_owned(), fuel);
            }
        }
    }
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
            .flat_map(|(plugin, tenants)| {
                tenants
                    .iter()
                    .filter(|(_, (_, disabled))| *disabled)
                    .map(|(tenant, _)| (plugin.clone(), tenant.clone()))
            })
            .collect()
    }

    /// Whether `plugin` is disabled for `tenant`'s events.
    pub fn is_disabled(&self, plugin: &str, tenant: &str) -> bool {
        self.usage
            .lock()
            .unwrap()
            .health
            .get(plugin)
            .and_then(|tenants| tenants.get(tenant))
            .is_some_and(|(_, d)| *d)
    }

    /// Clears a plugin's failure record for `tenant`, or for every tenant (a new version was
    /// deployed under its name for that scope).
    pub fn reset_health(&self, plugin: &str, tenant: Option<&str>) {
        self.forget(plugin, |t| tenant.is_some_and(|only| only != t));
    }

    /// Clears a plugin's failure record for every tenant but `keep` (a new global version
    /// was deployed; the tenants in `keep` run their own versions, whose records stand).
    pub fn reset_health_except(&self, plugin: &str, keep: &[String]) {
        self.forget(plugin, |t| keep.iter().any(|k| k == t));
    }

    /// Drops `plugin`'s record of every tenant but those `kept` names.
    fn forget(&self, plugin: &str, kept: impl Fn(&str) -> bool) {
        let mut usage = self.usage.lock().unwrap();
        let Some(tenants) = usage.health.get_mut(plugin) else {
            return;
        };
        tenants.retain(|t, (_, disabled)| {
            let keep = kept(t);
            if !keep && *disabled {
                crate::metrics::global().plugin_health(plugin, t, false);
            }
            keep
        });
    }

    /// Runs one call of `plugin` on inputs of `tenants` (one per input, in order) in a fresh
    /// store, and books it: the call's fuel is shared among the tenants by their number of
    /// inputs (the sandbox cannot meter one event inside a call), each result counts against
    /// its own tenant's record.
    fn booked<O>(
        &self,
        plugin: &str,
        tenants: &[&str],
        call: impl FnOnce(&mut Store<StoreState>) -> CallResult<O>,
    ) -> CallResult<O> {
        let started = Instant::now();
        let mut store = self.store();
        let result = call(&mut store);
        let fuel = self.budget() - store.get_fuel().unwrap_or(0);
        let single = tenants.len() == 1;
        let failed = match &result {
            Ok(results) => results.iter().filter(|r| r.is_err()).count() as u64,
            Err(_) if single => 1,
            Err(_) => 0,
        };
        crate::metrics::global().plugin_call(plugin, failed, fuel, started.elapsed());
        let mut usage = self.usage.lock().unwrap();
        usage.book_fuel(tenants, fuel);
        match &result {
            // A plugin with no failure on record and a call without one: nothing to count.
            Ok(_) if failed == 0 && !usage.health.contains_key(plugin) => {}
            Ok(results) => {
                for (tenant, r) in tenants.iter().zip(results) {
                    self.record(&mut usage, plugin, tenant, r.is_ok());
                }
            }
            // A failed single input counts against the plugin; a failed batch is retried
            // in halves, which count then.
            Err(_) if single => self.record(&mut usage, plugin, tenants[0], false),
            Err(_) => {}
        }
        drop(usage);
        result
    }

    /// Counts one result against `(plugin, tenant)`'s run of consecutive failures.
    fn record(&self, usage: &mut Usage, plugin: &str, tenant: &str, ok: bool) {
        let tenants = match usage.health.get_mut(plugin) {
            Some(tenants) => tenants,
            // Nothing to reset: the common case costs no allocation.
            None if ok => return,
            None => usage.health.entry(plugin.to_owned()).or_default(),
        };
        let (run, disabled) = match tenants.get_mut(tenant) {
            Some(entry) => entry,
            None if ok => return,
            None => tenants.entry(tenant.to_owned()).or_default(),
        };
        if ok {
            *run = 0;
            return;
        }
        *run += 1;
        if *run >= self.limits.disable_after && !*disabled {
            *disabled = true;
            crate::metrics::global().plugin_health(plugin, tenant, true);
            eprintln!(
                "weir: plugin {plugin} disabled for tenant {tenant} after {run} consecutive failed events of it; deploy a fixed version"
            );
        }
    }

    /// The tenants `plugin` is disabled for.
    fn disabled_tenants(&self, plugin: &str) -> Vec<String> {
        let usage = self.usage.lock().unwrap();
        usage.health.get(plugin).map_or_else(Vec::new, |tenants| {
            tenants
                .iter()
                .filter(|(_, (_, disabled))| *disabled)
                .map(|(tenant, _)| tenant.clone())
                .collect()
        })
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

    /// Compiles a component and links it against `world`'s bindings, once per deployment.
    fn link<P>(
        &self,
        bytes: &[u8],
        world: &'static str,
        bind: impl FnOnce(InstancePre<StoreState>) -> wasmtime::Result<P>,
    ) -> Result<P, LoadError> {
        let component = self.compile(bytes)?;
        let mismatch = |e: wasmtime::Error| LoadError::WorldMismatch {
            world,
            detail: format!("{e:#}"),
        };
        let pre = Linker::<StoreState>::new(&self.engine)
            .instantiate_pre(&component)
            .map_err(mismatch)?;
        bind(pre).map_err(mismatch)
    }

    /// Compiles and links a transform component.
    pub fn load_transform(&self, name: &str, bytes: &[u8]) -> Result<WasmTransform, LoadError> {
        let pre = self.link(bytes, "transform", transform_world::TransformPre::new)?;
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
            accepts[accepted_index(ty)] = true;
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
        let pre = self.link(bytes, "rule", rule_world::RulePre::new)?;
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

/// A transform plugin running as a component.
#[derive(Clone)]
pub struct WasmTransform {
    name: String,
    engine: WasmEngine,
    pre: transform_world::TransformPre<StoreState>,
    /// By [`codec::type_index`]: the event types it reads; the others pass it by.
    accepts: [bool; 6],
}

fn accepted_index(ty: tt::EventType) -> usize {
    match ty {
        tt::EventType::PageView => 0,
        tt::EventType::AddToCart => 1,
        tt::EventType::OrderPlaced => 2,
        tt::EventType::OrderCancelled => 3,
        tt::EventType::Payment => 4,
        tt::EventType::InventoryAdjusted => 5,
    }
}

impl WasmTransform {
    /// One call on the events at `picked`, whatever their tenants: each event's answer is
    /// its own (see [`bisect`]), so one instance serves the whole batch. Events of a tenant
    /// the transform is disabled for by now are answered `disabled` without being sent:
    /// admission is sequential, so when that happens is fixed by input order.
    fn call(&self, events: &mut [Event], picked: &[usize]) -> CallResult<codec::Answer> {
        let disabled = self.engine.disabled_tenants(&self.name);
        let refused: Vec<bool> = picked
            .iter()
            .map(|&i| disabled.iter().any(|t| *t == events[i].tenant_id))
            .collect();
        let sent: Vec<usize> = picked
            .iter()
            .zip(&refused)
            .filter(|(_, refused)| !**refused)
            .map(|(&i, _)| i)
            .collect();
        let mut answers = if sent.is_empty() {
            Vec::new().into_iter()
        } else {
            self.send(events, &sent)?.into_iter()
        };
        Ok(refused
            .into_iter()
            .map(|refused| {
                if refused {
                    Err(PluginError::Disabled)
                } else {
                    answers.next().expect("one answer per event sent")
                }
            })
            .collect())
    }

    fn send(&self, events: &mut [Event], picked: &[usize]) -> CallResult<codec::Answer> {
        let mut batch = codec::Batch::new(picked.len(), picked.len() * 192);
        for &i in picked {
            batch.event(&mut events[i]);
        }
        let batch = batch.finish();
        let inputs: Vec<&Event> = picked.iter().map(|&i| &events[i]).collect();
        let tenants: Vec<&str> = inputs.iter().map(|e| e.tenant_id.as_str()).collect();
        self.engine.booked(&self.name, &tenants, |store| {
            let instance = self
                .pre
                .instantiate(&mut *store)
                .map_err(|e| classify(e, store))?;
            let answer = instance
                .call_transform(&mut *store, &batch)
                .map_err(|e| classify(e, store))?;
            codec::transform_answer(answer, &inputs, self.engine.limits.max_outputs_per_event)
        })
    }
}

impl Transform for WasmTransform {
    fn name(&self) -> &str {
        &self.name
    }
    fn apply(&mut self, mut events: Vec<Event>) -> Vec<Result<Vec<Event>, PluginError>> {
        let picked: Vec<usize> = (0..events.len())
            .filter(|&i| self.accepts[usize::from(codec::type_index(&events[i].body))])
            .collect();
        let answers = batched(&picked, |b| self.call(&mut events, b));
        let mut answers = picked.iter().copied().zip(answers).peekable();
        events
            .into_iter()
            .enumerate()
            .map(|(i, event)| {
                let answer = match answers.peek() {
                    Some(&(at, _)) if at == i => answers.next().expect("peeked").1,
                    // Not a type it reads: passes by.
                    _ => return Ok(vec![event]),
                };
                Ok(answer?.outputs(event))
            })
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
    /// One call on the inputs at `picked`, booked against their tenants. A failing rule is
    /// only reported here: the pipeline retires its deployment at a logical time, so that
    /// re-running it for a retraction still gives the same answer.
    fn call(&self, inputs: &[RuleInput], picked: &[usize]) -> CallResult<Vec<Alert>> {
        let mut batch = codec::Batch::new(picked.len(), picked.len() * 160);
        for &i in picked {
            batch.rule(&inputs[i]);
        }
        let batch = batch.finish();
        let tenants: Vec<&str> = picked
            .iter()
            .map(|&i| inputs[i].event.tenant_id.as_str())
            .collect();
        self.engine.booked(&self.name, &tenants, |store| {
            let instance = self
                .pre
                .instantiate(&mut *store)
                .map_err(|e| classify(e, store))?;
            let answer = instance
                .call_evaluate(&mut *store, &batch)
                .map_err(|e| classify(e, store))?;
            codec::rule_answer(
                &answer,
                picked.len(),
                self.engine.limits.max_outputs_per_event,
            )
        })
    }
}

impl Rule for WasmRule {
    fn name(&self) -> &str {
        &self.name
    }
    fn evaluate(&mut self, batch: &[RuleInput]) -> Vec<Result<Vec<Alert>, PluginError>> {
        let all: Vec<usize> = (0..batch.len()).collect();
        batched(&all, |picked| self.call(batch, picked))
    }
}

#[cfg(test)]
mod tests {
    use super::Usage;

    #[test]
    fn fuel_is_shared_by_inputs_and_nothing_is_lost_to_rounding() {
        let mut usage = Usage::default();
        usage.book_fuel(&["a", "b", "a", "a", "c", "c"], 1_001);
        let booked = &usage.fuel_by_tenant;
        assert_eq!(booked.values().sum::<u64>(), 1_001);
        // a: 3 of 6 inputs in two runs (166 + 333), plus the rounding; b: 1/6; c: 2/6.
        assert_eq!(booked["b"], 166);
        assert_eq!(booked["c"], 333);
        assert_eq!(booked["a"], 1_001 - 166 - 333);
        usage.book_fuel(&["b"], 10);
        assert_eq!(usage.fuel_by_tenant["b"], 176);
        usage.book_fuel(&[], 10);
        assert_eq!(usage.fuel_by_tenant.values().sum::<u64>(), 1_011);
    }
}
