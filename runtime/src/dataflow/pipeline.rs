//! The running dataflow: timely workers fed by admission, publishing to the [`ViewStore`].
//!
//! The caller admits events and hands them over with [`Pipeline::push`]; [`Pipeline::advance`]
//! closes the current logical time. Events are spread round-robin over the workers' inputs and
//! differential exchanges them by key inside the dataflow. Worker 0 watches the frontier of all
//! view outputs together and publishes a time once every view has passed it.
//!
//! It owns the workers, the logical times and the run's rule registry; it never decodes or
//! admits an event, reads a source, writes a file or knows who reads the store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use differential_dataflow::input::Input;
use timely::dataflow::ProbeHandle;
use timely::dataflow::operators::probe::Probe;

use crate::dataflow::store::ViewStore;
use serde::{Deserialize, Serialize};

use crate::dataflow::views::cold::ColdTier;
use crate::dataflow::views::state::{self as operator_state, StateError, WorkerState};
use crate::dataflow::views::{self, Diff, Time};
use crate::event::Event;
use crate::plugins::PluginFactory;
use crate::plugins::registry::{Deployment, Mode, RegistryError, RuleRegistry, Split, VersionId};
use crate::plugins::wasm::{Limits, WasmEngine};

enum Message {
    Events(Vec<(Time, Event)>),
    /// Encode the operators' state (every time before the current one is applied).
    Save(Sender<(usize, Result<WorkerState, StateError>)>),
    /// Changes to events already admitted (a retroactive transform swap).
    Updates(Vec<((Time, Event), Diff)>),
    Deploy(Vec<(Deployment, Diff)>),
    Advance(Time),
}

/// A failure of the dataflow.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot start the dataflow: {0}")]
    Start(String),
    #[error("the dataflow has stopped")]
    Stopped,
    #[error("a dataflow worker failed: {0}")]
    WorkerFailed(String),
    #[error(transparent)]
    Rules(#[from] RegistryError),
    #[error(transparent)]
    Upload(#[from] crate::plugins::set::UploadError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "the checkpoint's state is of {saved} dataflow workers and this run has {workers}: start with --workers {saved}, or remove the checkpoint directory to rebuild from the source"
    )]
    Workers { saved: usize, workers: usize },
}

impl PipelineError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            PipelineError::Start(_) => "pipeline_start",
            PipelineError::Stopped => "pipeline_stopped",
            PipelineError::WorkerFailed(_) => "worker_failed",
            PipelineError::Rules(e) => e.code(),
            PipelineError::Upload(e) => e.code(),
            PipelineError::State(e) => e.code(),
            PipelineError::Workers { .. } => "state_workers",
        }
    }
}

/// Pipeline settings.
#[derive(Clone)]
pub struct PipelineConfig {
    /// Timely worker threads.
    pub workers: usize,
    pub plugins: Arc<dyn PluginFactory>,
    /// The lateness admission applies (SPEC §2.7), which lets the views close state.
    pub lateness: Option<crate::event::Millis>,
    /// Where idle entity records go ([`ColdTier::prepare`] has made it ready); `None` keeps
    /// them in memory.
    pub cold: Option<ColdTier>,
}

/// The dataflow's state between two logical times: every operator's on every worker, and
/// the rule deployments it holds. A pipeline started from it goes on from `epoch` as if it
/// had never stopped.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DataflowState {
    /// The logical time the next events carry.
    pub epoch: Time,
    pub workers: Vec<WorkerState>,
    pub deployments: Vec<(Deployment, Diff)>,
}

thread_local! {
    /// The store a dataflow worker thread publishes to, so a panic on it can stop publication
    /// before unwinding drops the worker's state (and with it the capabilities that keep the
    /// other workers from publishing an incomplete time).
    static WORKER_STORE: std::cell::RefCell<Option<Arc<ViewStore>>> =
        const { std::cell::RefCell::new(None) };
}

/// Chains a panic hook, once per process, that fails the store of a panicking worker.
fn install_worker_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let store = WORKER_STORE.with(|s| s.borrow().clone());
            if let Some(store) = store {
                store.fail(info.to_string());
            }
            previous(info);
        }));
    });
}

/// The worker threads of one dataflow, and where they start.
struct Workers {
    senders: Vec<Sender<Message>>,
    guards: timely::communication::initialize::WorkerGuards<()>,
    epoch: Time,
    held: std::collections::BTreeMap<Deployment, Diff>,
}

impl Workers {
    fn spawn(
        config: &PipelineConfig,
        store: &Arc<ViewStore>,
        rules: &Arc<RuleRegistry>,
        restore: Option<DataflowState>,
    ) -> Result<Workers, PipelineError> {
        let workers = config.workers.max(1);
        let (epoch, held, restore) = match restore {
            Some(state) if state.workers.len() != workers => {
                return Err(PipelineError::Workers {
                    saved: state.workers.len(),
                    workers,
                });
            }
            Some(state) => (
                state.epoch,
                state.deployments.into_iter().collect(),
                state.workers.into_iter().map(Some).collect(),
            ),
            None => (0, Default::default(), vec![None; workers]),
        };
        let restore: Arc<Mutex<Vec<Option<WorkerState>>>> = Arc::new(Mutex::new(restore));
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| crossbeam_channel::unbounded()).unzip();
        let receivers: Arc<Mutex<Vec<Option<Receiver<Message>>>>> =
            Arc::new(Mutex::new(receivers.into_iter().map(Some).collect()));
        let worker_store = store.clone();
        let worker_rules = rules.clone();
        let (lateness, cold) = (config.lateness, config.cold.clone());
        install_worker_panic_hook();
        let guards = timely::execute(timely::Config::process(workers), move |worker| {
            WORKER_STORE.with(|s| *s.borrow_mut() = Some(worker_store.clone()));
            let index = worker.index();
            let receiver = receivers.lock().unwrap()[index]
                .take()
                .expect("each worker takes its own input channel once");
            let store = worker_store.clone();
            let probe = ProbeHandle::new();
            let saved = restore.lock().unwrap()[index].take();
            operator_state::install(saved);
            let (mut input, mut deploy) = worker.dataflow::<Time, _, _>(|scope| {
                let (input, events) = scope.new_collection::<(Time, Event), Diff>();
                let (deploy, deployments) = scope.new_collection::<Deployment, Diff>();
                let retention = views::Retention {
                    lateness,
                    cold: cold.as_ref().map(|tier| tier.for_worker(index)),
                };
                let streams = views::build(events, deployments, worker_rules.clone(), &retention);
                for (view, updates) in streams.views {
                    let store = store.clone();
                    updates
                        .inspect_batch(move |_, batch| store.stage(view, batch))
                        .inner
                        .probe_with(&probe);
                }
                (input, deploy)
            });
            // A worker that cannot start from the checkpoint's state must not go on from
            // nothing: the run stops with the reason (the panic hook fails the store).
            if let Err(e) = operator_state::check_restored() {
                panic!("{e}");
            }
            input.advance_to(epoch);
            deploy.advance_to(epoch);
            let mut published: Option<Time> = None;
            let mut publish = |probe: &ProbeHandle<Time>, last: Time| {
                if index != 0 {
                    return;
                }
                let complete = probe.with_frontier(|f| match f.first() {
                    Some(&t) => t.checked_sub(1),
                    None => Some(last),
                });
                if let Some(t) = complete
                    && published.is_none_or(|p| p < t)
                {
                    store.publish(t);
                    published = Some(t);
                }
            };
            loop {
                let mut closed = false;
                loop {
                    match receiver.try_recv() {
                        Ok(Message::Events(events)) => {
                            for event in events {
                                input.insert(event);
                            }
                        }
                        Ok(Message::Save(reply)) => {
                            let _ = reply.send((index, operator_state::save_all()));
                        }
                        Ok(Message::Updates(updates)) => {
                            for (event, diff) in updates {
                                input.update(event, diff);
                            }
                        }
                        Ok(Message::Deploy(changes)) => {
                            for (deployment, diff) in changes {
                                deploy.update(deployment, diff);
                            }
                        }
                        Ok(Message::Advance(time)) => {
                            input.advance_to(time);
                            input.flush();
                            deploy.advance_to(time);
                            deploy.flush();
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
                if closed {
                    break;
                }
                worker.step_or_park(Some(Duration::from_millis(1)));
                publish(&probe, *input.time());
            }
            let last = *input.time();
            input.close();
            deploy.close();
            while !probe.done() {
                worker.step_or_park(Some(Duration::from_millis(1)));
            }
            publish(&probe, last);
        })
        .map_err(PipelineError::Start)?;
        Ok(Workers {
            senders,
            guards,
            epoch,
            held,
        })
    }
}

/// A running dataflow.
pub struct Pipeline {
    senders: Vec<Sender<Message>>,
    /// `None` once joined, or after a worker failed (its threads are left to the process).
    guards: Option<timely::communication::initialize::WorkerGuards<()>>,
    store: Arc<ViewStore>,
    rules: Arc<RuleRegistry>,
    plugins: Arc<dyn PluginFactory>,
    /// The engine rules uploaded while running execute on, when the configured plugins have
    /// none (native ones): its health record is asked too.
    uploads: Option<WasmEngine>,
    epoch: Time,
    next_worker: usize,
    /// The deployments the dataflow holds: what every change sent so far adds up to.
    held: std::collections::BTreeMap<Deployment, Diff>,
    /// What the workers were started with (a restart from a state starts them again).
    config: PipelineConfig,
}

impl Pipeline {
    /// Starts the workers; `store` receives the published views.
    pub fn start(config: PipelineConfig, store: Arc<ViewStore>) -> Result<Pipeline, PipelineError> {
        let rules = Arc::new(RuleRegistry::default());
        let uploads = match config.plugins.engine() {
            Some(engine) => {
                rules.run_uploads_on(engine);
                None
            }
            // Without an engine to share, uploads get one of their own, still asked for health.
            None => WasmEngine::new(Limits::default()).ok().inspect(|engine| {
                rules.run_uploads_on(engine.clone());
            }),
        };
        let workers = Workers::spawn(&config, &store, &rules, None)?;
        let mut pipeline = Pipeline {
            senders: workers.senders,
            guards: Some(workers.guards),
            store,
            rules,
            plugins: config.plugins.clone(),
            uploads,
            epoch: workers.epoch,
            next_worker: 0,
            held: workers.held,
            config,
        };
        // The configured rules are the first versions, deployed for every event.
        for spec in pipeline.config.plugins.rule_makers() {
            let id = pipeline.rules.register(spec);
            pipeline.deploy_rule(id, Mode::Retroactive, None)?;
        }
        Ok(pipeline)
    }

    /// Starts the dataflow again from `state` (saved by [`Pipeline::save_state`]; its cold
    /// tier, if any, reopened with [`ColdTier::reopen`]), with the same rule registry: for a
    /// driver built before its checkpoint was read. Nothing may have been pushed yet.
    pub fn restart_from(&mut self, state: DataflowState) -> Result<(), PipelineError> {
        self.senders.clear();
        if let Some(guards) = self.guards.take() {
            for result in guards.join() {
                result.map_err(PipelineError::WorkerFailed)?;
            }
        }
        let workers = Workers::spawn(&self.config, &self.store, &self.rules, Some(state))?;
        self.senders = workers.senders;
        self.guards = Some(workers.guards);
        self.epoch = workers.epoch;
        self.held = workers.held;
        self.next_worker = 0;
        Ok(())
    }

    /// The rule versions and deployments.
    pub fn rules(&self) -> &Arc<RuleRegistry> {
        &self.rules
    }

    /// Deploys a registered rule version at the current logical time, which it returns: with
    /// `FromNow` it judges events admitted from then on, with `Retroactive` every event, or
    /// with a `split` (admission's, on a run with a lateness) those within the lateness.
    pub fn deploy_rule(
        &mut self,
        version: VersionId,
        mode: Mode,
        split: Option<Split>,
    ) -> Result<Time, PipelineError> {
        let changes = self.rules.deploy(version, mode, self.epoch, split)?;
        if let Some(v) = self.rules.version(version) {
            self.plugins.reset_health(&v.name, v.tenant.as_deref());
            if let Some(uploads) = &self.uploads {
                uploads.reset_health(&v.name, v.tenant.as_deref());
            }
        }
        self.send_deployments(changes)?;
        Ok(self.epoch)
    }

    /// Changes the deployments the dataflow holds. One worker feeds them; differential
    /// spreads them.
    fn send_deployments(&mut self, changes: Vec<(Deployment, Diff)>) -> Result<(), PipelineError> {
        for (deployment, diff) in &changes {
            let held = self.held.entry(deployment.clone()).or_insert(0);
            *held += diff;
            if *held == 0 {
                self.held.remove(deployment);
            }
        }
        self.senders[0]
            .send(Message::Deploy(changes))
            .map_err(|_| PipelineError::Stopped)
    }

    /// The logical time events pushed now will carry.
    pub fn epoch(&self) -> Time {
        self.epoch
    }

    pub fn store(&self) -> &Arc<ViewStore> {
        &self.store
    }

    /// Validates a rule component (compiles, matches the rule world, passes `vectors`),
    /// registers it as a new version and deploys it now; returns the version and the
    /// logical time it took effect at (`split` as for [`Pipeline::deploy_rule`]).
    pub fn deploy_rule_component(
        &mut self,
        name: &str,
        bytes: &[u8],
        vectors: &str,
        tenant: Option<&str>,
        mode: Mode,
        split: Option<Split>,
    ) -> Result<(VersionId, Time), PipelineError> {
        let (id, _) =
            crate::plugins::set::upload_rule(&self.rules, name, bytes.into(), vectors, tenant)?;
        let at = self.deploy_rule(id, mode, split)?;
        Ok((id, at))
    }

    /// Rules that keep failing stop judging new events from the current time on.
    fn retire_failing_rules(&mut self) {
        let uploads = self.uploads.iter().flat_map(WasmEngine::disabled);
        let disabled: Vec<(String, String)> =
            self.plugins.disabled().into_iter().chain(uploads).collect();
        for (name, tenant) in disabled {
            let changes = self.rules.retire(&name, &tenant, self.epoch);
            if !changes.is_empty() {
                eprintln!(
                    "weir: rule {name} retired for tenant {tenant} at logical time {}: that tenant's events admitted from then on are not judged by it",
                    self.epoch
                );
                let _ = self.send_deployments(changes);
            }
        }
    }

    /// Hands admitted events to the dataflow at the current time.
    pub fn push(&mut self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let epoch = self.epoch;
        self.store.admitted(epoch, std::time::Instant::now());
        self.spread(events.len(), events.into_iter().map(|e| (epoch, e)));
    }

    /// Hands over events restored from a checkpoint, each with the logical time it was first
    /// admitted at (which is what rule deployments judge by).
    pub fn push_restored(&mut self, events: Vec<(Time, Event)>) {
        self.spread(events.len(), events.into_iter());
    }

    /// Splits `len` events into one part per worker, handed out round-robin. Each event is
    /// moved once, straight into its part.
    fn spread(&mut self, len: usize, mut events: impl Iterator<Item = (Time, Event)>) {
        let workers = self.senders.len();
        let chunk = len.div_ceil(workers).max(1);
        loop {
            let part: Vec<(Time, Event)> = events.by_ref().take(chunk).collect();
            if part.is_empty() {
                break;
            }
            let _ = self.senders[self.next_worker].send(Message::Events(part));
            self.next_worker = (self.next_worker + 1) % workers;
        }
    }

    /// Continues a recovered run: the restored state is closed and the next events carry
    /// logical time `epoch`, the one the checkpoint was taken at.
    pub fn resume_at(&mut self, epoch: Time) {
        if epoch > self.epoch {
            self.epoch = epoch;
            for sender in &self.senders {
                let _ = sender.send(Message::Advance(self.epoch));
            }
        }
    }

    /// Puts back the rule versions and deployments a checkpoint recorded (see
    /// [`RuleRegistry::restore`]).
    pub fn restore_rules(
        &mut self,
        saved: &crate::plugins::registry::SavedRules,
    ) -> Result<(), PipelineError> {
        self.rules.restore(saved)?;
        // What turns the deployments the dataflow holds (none, or a restored state's) into
        // the saved ones.
        let mut changes: std::collections::BTreeMap<Deployment, Diff> =
            saved.active.iter().map(|d| (d.clone(), 1)).collect();
        for (deployment, diff) in &self.held {
            *changes.entry(deployment.clone()).or_insert(0) -= diff;
        }
        changes.retain(|_, diff| *diff != 0);
        self.send_deployments(changes.into_iter().collect())
    }

    /// The dataflow's state now. Call it right after [`Pipeline::advance`], before anything is
    /// pushed at the new time: it waits until every earlier time is published (so every
    /// operator has applied it) and returns what a pipeline started from it needs.
    pub fn save_state(&mut self) -> Result<DataflowState, PipelineError> {
        if let Some(closed) = self.epoch.checked_sub(1) {
            self.store
                .wait_for(closed)
                .map_err(|e| PipelineError::WorkerFailed(e.0))?;
        }
        let (reply, replies) = crossbeam_channel::unbounded();
        for sender in &self.senders {
            sender
                .send(Message::Save(reply.clone()))
                .map_err(|_| PipelineError::Stopped)?;
        }
        drop(reply);
        let mut workers = vec![None; self.senders.len()];
        for _ in 0..self.senders.len() {
            let (index, state) = loop {
                match replies.recv_timeout(Duration::from_millis(100)) {
                    Ok(reply) => break reply,
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                        return Err(self.failure().unwrap_or(PipelineError::Stopped));
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                        if let Some(failed) = self.failure() {
                            return Err(failed);
                        }
                    }
                }
            };
            workers[index] = Some(state?);
        }
        Ok(DataflowState {
            epoch: self.epoch,
            workers: workers.into_iter().map(Option::unwrap_or_default).collect(),
            deployments: self.held.iter().map(|(d, n)| (d.clone(), *n)).collect(),
        })
    }

    /// Applies changes to events admitted earlier (each with its original admission time) at
    /// the current logical time.
    pub fn push_updates(&mut self, updates: Vec<(Time, Event, Diff)>) {
        if updates.is_empty() {
            return;
        }
        let updates = updates.into_iter().map(|(t, e, d)| ((t, e), d)).collect();
        let _ = self.senders[0].send(Message::Updates(updates));
    }

    /// Closes the current time; returns it. It is published once every view has absorbed it.
    pub fn advance(&mut self) -> Time {
        self.retire_failing_rules();
        let closed = self.epoch;
        self.epoch += 1;
        for sender in &self.senders {
            let _ = sender.send(Message::Advance(self.epoch));
        }
        closed
    }

    /// Why the dataflow stopped, if a worker failed; the run must end, since no later time
    /// will be published.
    pub fn failure(&self) -> Option<PipelineError> {
        self.store
            .failure()
            .map(|why| PipelineError::WorkerFailed(why.to_owned()))
    }

    /// Closes the input and waits until the workers have drained and published everything.
    pub fn finish(mut self) -> Result<Arc<ViewStore>, PipelineError> {
        self.senders.clear();
        // The workers publish the last time once they drained; a worker failing on the way
        // wakes this wait instead, and the others are not joined (they may wait forever on
        // its progress).
        let drained = self.store.wait_for(self.epoch);
        if let Some(error) = self
            .failure()
            .or(drained.err().map(|e| PipelineError::WorkerFailed(e.0)))
        {
            std::mem::forget(self.guards.take());
            return Err(error);
        }
        if let Some(guards) = self.guards.take() {
            for result in guards.join() {
                if let Err(panic) = result {
                    return Err(PipelineError::WorkerFailed(panic));
                }
            }
        }
        Ok(self.store.clone())
    }
}

impl Drop for Pipeline {
    /// Dropping a pipeline whose worker failed must not wait for the others.
    fn drop(&mut self) {
        if self.store.failure().is_some() {
            std::mem::forget(self.guards.take());
        }
    }
}
