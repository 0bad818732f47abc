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
use crate::dataflow::views::cold::ColdTier;
use crate::dataflow::views::{self, Diff, Time};
use crate::event::Event;
use crate::plugins::PluginFactory;
use crate::plugins::registry::{Deployment, Mode, RegistryError, RuleRegistry, Split, VersionId};
use crate::plugins::wasm::{Limits, WasmEngine};

enum Message {
    Events(Vec<(Time, Event)>),
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
}

impl Pipeline {
    /// Starts the workers; `store` receives the published views.
    pub fn start(config: PipelineConfig, store: Arc<ViewStore>) -> Result<Pipeline, PipelineError> {
        let workers = config.workers.max(1);
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| crossbeam_channel::unbounded()).unzip();
        let receivers: Arc<Mutex<Vec<Option<Receiver<Message>>>>> =
            Arc::new(Mutex::new(receivers.into_iter().map(Some).collect()));
        let worker_store = store.clone();
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
        let mut pipeline = Pipeline {
            senders,
            guards: Some(guards),
            store,
            rules,
            plugins: config.plugins.clone(),
            uploads,
            epoch: 0,
            next_worker: 0,
        };
        // The configured rules are the first versions, deployed for every event.
        for spec in config.plugins.rule_makers() {
            let id = pipeline.rules.register(spec);
            pipeline.deploy_rule(id, Mode::Retroactive, None)?;
        }
        Ok(pipeline)
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
        // One worker feeds deployments; differential spreads them.
        self.senders[0]
            .send(Message::Deploy(changes))
            .map_err(|_| PipelineError::Stopped)?;
        Ok(self.epoch)
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
                let _ = self.senders[0].send(Message::Deploy(changes));
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
        let changes = self.rules.restore(saved)?;
        self.senders[0]
            .send(Message::Deploy(changes))
            .map_err(|_| PipelineError::Stopped)
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
