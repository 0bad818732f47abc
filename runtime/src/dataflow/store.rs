//! The read side: every view's rows as of one consistent logical time.
//!
//! Workers push each view's updates here as they produce them (`stage`); nothing staged is
//! visible. When the dataflow's frontier shows that every view has absorbed all input up to
//! time `T`, the updates at or before `T` are applied together and `as_of` becomes `T`
//! (`publish`). A reader therefore never sees one view ahead of another, and readers take a
//! read lock on published state only: they never stop the workers.
//!
//! The updates of the last few publications are kept with their logical times, so a query can
//! be answered as of any time back to the oldest one retained, and a subscriber gets exactly
//! the updates after its snapshot. Subscribers hang off the publication through bounded
//! channels: one that does not keep up is dropped (and told so) rather than holding the
//! dataflow back.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::row::{Cell, Row, TABLES, ViewId};
use crate::time::{Diff, Time};

/// Publications whose updates are kept by default (a few seconds of a live run).
pub const DEFAULT_HISTORY: usize = 256;

/// Publications a subscriber may fall behind by unless configured otherwise.
pub const DEFAULT_SUBSCRIBER_BUFFER: usize = 1024;

/// Published state.
#[derive(Debug, Default, Clone)]
pub struct Published {
    /// The logical time every view reflects; `None` before the first publication.
    pub as_of: Option<Time>,
    /// Per view and table (indexed as [`TABLES`]), each row with its multiplicity (1 for a consistent view).
    pub views: Vec<BTreeMap<Row, Diff>>,
}

impl Published {
    /// The rows of one view, in key order.
    pub fn rows(&self, view: ViewId) -> Vec<Row> {
        let mut out = Vec::new();
        for (row, count) in self.view(view) {
            for _ in 0..(*count).max(0) {
                out.push(row.clone());
            }
        }
        out
    }

    /// One view's rows, each with its multiplicity.
    pub fn view(&self, view: ViewId) -> &BTreeMap<Row, Diff> {
        &self.views[view.index()]
    }

    /// Rows whose leading columns equal `prefix`, in key order.
    pub fn rows_with_prefix(&self, view: ViewId, prefix: &[Cell]) -> Vec<Row> {
        self.with_prefix(view, prefix)
            .filter(|(_, count)| **count > 0)
            .map(|(row, _)| row.clone())
            .collect()
    }

    fn with_prefix<'a>(
        &'a self,
        view: ViewId,
        prefix: &'a [Cell],
    ) -> impl Iterator<Item = (&'a Row, &'a Diff)> + 'a {
        let start: Row = prefix.to_vec();
        self.view(view)
            .range(start..)
            .take_while(move |(row, _)| row.starts_with(prefix))
    }
}

/// What one publication changed: per table, `(row, logical time, diff)` consolidated.
#[derive(Debug)]
pub struct Publication {
    pub time: Time,
    pub updates: Vec<Vec<(Row, Time, Diff)>>,
}

/// A batch delivered to a subscriber: its view's updates under its prefix, then the progress
/// mark (the published time the replica is now exact at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    pub updates: Vec<(Row, Time, Diff)>,
    pub progress: Time,
}

/// A live subscription: the snapshot it started from and the changes since.
pub struct Subscription {
    pub as_of: Option<Time>,
    pub snapshot: Vec<Row>,
    pub changes: mpsc::Receiver<Changes>,
    lagged: Arc<AtomicBool>,
}

impl Subscription {
    /// Whether the subscription was dropped because its reader fell behind (its channel then
    /// ends); the reader resubscribes to get a fresh snapshot.
    pub fn fell_behind(&self) -> bool {
        self.lagged.load(Ordering::SeqCst)
    }
}

struct Subscriber {
    view: ViewId,
    prefix: Row,
    sender: mpsc::Sender<Changes>,
    lagged: Arc<AtomicBool>,
}

/// A dataflow worker failed, so the time waited for will never be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a dataflow worker failed ({0}); the views stop at the last time published before it")]
pub struct DataflowFailed(pub String);

/// Why a query cannot be answered at the requested time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsOfError {
    #[error("nothing is published yet")]
    NothingPublished,
    #[error("logical time {requested} is not published yet (latest is {latest})")]
    NotYetPublished { requested: Time, latest: Time },
    #[error("logical time {requested} is no longer retained (oldest is {oldest})")]
    NoLongerRetained { requested: Time, oldest: Time },
}

/// A query's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub as_of: Time,
    pub rows: Vec<Row>,
    /// More rows matched than the limit.
    pub truncated: bool,
}

/// Hooks run on every publication (metrics).
pub trait PublishHook: Send + Sync {
    /// `time` was published; `waited` are the wall-clock delays since the admission of each
    /// logical time it made visible; `subscribers` and `lag` describe the live subscriptions.
    fn published(&self, time: Time, waited: &[f64], subscribers: usize, lag: usize);
}

#[derive(Default)]
struct State {
    published: Published,
    history: VecDeque<Arc<Publication>>,
    /// Every update with a time after this is in `history`.
    floor: Time,
    subscribers: Vec<Subscriber>,
}

type Observer = Box<dyn FnMut(&Published) + Send>;

/// The shared read-side store of all views.
pub struct ViewStore {
    staged: Vec<Mutex<Vec<(Row, Time, Diff)>>>,
    state: RwLock<State>,
    history_len: usize,
    subscriber_buffer: usize,
    /// Wall-clock admission of each logical time not yet published.
    admitted: Mutex<VecDeque<(Time, Instant)>>,
    /// Signalled on every publication, for callers waiting on a time.
    progress: (Mutex<Option<Time>>, Condvar),
    /// Why the dataflow stopped, once a worker failed: nothing is published after it.
    failed: OnceLock<String>,
    observer: Mutex<Option<Observer>>,
    hook: Mutex<Option<&'static dyn PublishHook>>,
}

impl Default for ViewStore {
    fn default() -> Self {
        ViewStore::new(DEFAULT_HISTORY, DEFAULT_SUBSCRIBER_BUFFER)
    }
}

impl ViewStore {
    /// A store keeping the updates of the last `history` publications, giving each
    /// subscriber room for `subscriber_buffer` undelivered publications.
    pub fn new(history: usize, subscriber_buffer: usize) -> ViewStore {
        ViewStore {
            staged: TABLES.iter().map(|_| Mutex::new(Vec::new())).collect(),
            state: RwLock::new(State {
                published: Published {
                    as_of: None,
                    views: TABLES.iter().map(|_| BTreeMap::new()).collect(),
                },
                ..State::default()
            }),
            history_len: history.max(1),
            subscriber_buffer: subscriber_buffer.max(1),
            admitted: Mutex::new(VecDeque::new()),
            progress: (Mutex::new(None), Condvar::new()),
            failed: OnceLock::new(),
            observer: Mutex::new(None),
            hook: Mutex::new(None),
        }
    }

    /// Registers a callback run on every publication, with the newly published state.
    pub fn observe(&self, observer: impl FnMut(&Published) + Send + 'static) {
        *self.observer.lock().unwrap() = Some(Box::new(observer));
    }

    /// Registers the publication hook (the process's metrics).
    pub fn hook(&self, hook: &'static dyn PublishHook) {
        *self.hook.lock().unwrap() = Some(hook);
    }

    /// Notes when the first event of logical time `time` was admitted (for freshness).
    pub fn admitted(&self, time: Time, at: Instant) {
        let mut admitted = self.admitted.lock().unwrap();
        if admitted.back().is_none_or(|(t, _)| *t < time) {
            admitted.push_back((time, at));
        }
    }

    /// Hands over updates a worker produced for `view`; they stay invisible until published.
    pub fn stage(&self, view: ViewId, updates: &[(Row, Time, Diff)]) {
        self.staged[view.index()]
            .lock()
            .unwrap()
            .extend_from_slice(updates);
    }

    /// Makes every staged update at or before `time` visible, all views at once.
    ///
    /// Only worker 0 publishes, one time after another; the updates are gathered and
    /// consolidated before the write lock is taken, so readers wait only for the apply.
    pub fn publish(&self, time: Time) {
        // A failed worker's state is gone: what the others computed is not the whole view.
        if self.failed.get().is_some() || self.as_of().is_some_and(|t| t >= time) {
            return;
        }
        let mut updates = Vec::with_capacity(self.staged.len());
        for staged in &self.staged {
            let (mut applied, kept): (Vec<_>, Vec<_>) = {
                let mut staged = staged.lock().unwrap();
                std::mem::take(&mut *staged)
                    .into_iter()
                    .partition(|update| update.1 <= time)
            };
            if !kept.is_empty() {
                staged.lock().unwrap().extend(kept);
            }
            consolidate(&mut applied);
            updates.push(applied);
        }
        let mut state = self.state.write().unwrap();
        for (view, applied) in updates.iter().enumerate() {
            let view_state = &mut state.published.views[view];
            for (row, _, diff) in applied {
                let count = view_state.entry(row.clone()).or_insert(0);
                *count += diff;
                if *count == 0 {
                    view_state.remove(row);
                }
            }
        }
        state.published.as_of = Some(time);
        let publication = Arc::new(Publication { time, updates });
        state.history.push_back(publication.clone());
        while state.history.len() > self.history_len {
            if let Some(old) = state.history.pop_front() {
                state.floor = old.time;
            }
        }
        let lag = deliver(&mut state.subscribers, &publication);
        let subscribers = state.subscribers.len();
        if let Some(observer) = self.observer.lock().unwrap().as_mut() {
            observer(&state.published);
        }
        drop(state);
        let now = Instant::now();
        let mut waited = Vec::new();
        {
            let mut admitted = self.admitted.lock().unwrap();
            while admitted.front().is_some_and(|(t, _)| *t <= time) {
                let (_, at) = admitted.pop_front().expect("checked");
                waited.push(now.duration_since(at).as_secs_f64());
            }
        }
        if let Some(hook) = *self.hook.lock().unwrap() {
            hook.published(time, &waited, subscribers, lag);
        }
        let (lock, cvar) = &self.progress;
        *lock.lock().unwrap() = Some(time);
        cvar.notify_all();
    }

    /// A read of the published state.
    pub fn read<R>(&self, f: impl FnOnce(&Published) -> R) -> R {
        f(&self.state.read().unwrap().published)
    }

    /// The published time, if any.
    pub fn as_of(&self) -> Option<Time> {
        self.state.read().unwrap().published.as_of
    }

    /// The oldest logical time a query can still ask for.
    pub fn oldest(&self) -> Time {
        self.state.read().unwrap().floor
    }

    /// The rows of `view` under `prefix` (at most `limit`, 0 for all) as of `as_of`, or the
    /// latest published time. Every row reflects the same input prefix.
    pub fn query(
        &self,
        view: ViewId,
        prefix: &[Cell],
        limit: usize,
        as_of: Option<Time>,
    ) -> Result<Answer, AsOfError> {
        let state = self.state.read().unwrap();
        let latest = state.published.as_of.ok_or(AsOfError::NothingPublished)?;
        let requested = as_of.unwrap_or(latest);
        if requested > latest {
            return Err(AsOfError::NotYetPublished { requested, latest });
        }
        if requested < state.floor {
            return Err(AsOfError::NoLongerRetained {
                requested,
                oldest: state.floor,
            });
        }
        let limit = if limit == 0 { usize::MAX } else { limit };
        let mut rows = Vec::new();
        let mut truncated = false;
        let mut push = |row: &Row, count: Diff| {
            for _ in 0..count.max(0) {
                if rows.len() == limit {
                    truncated = true;
                    return false;
                }
                rows.push(row.clone());
            }
            true
        };
        if requested == latest {
            for (row, count) in state.published.with_prefix(view, prefix) {
                if !push(row, *count) {
                    break;
                }
            }
        } else {
            // Undo, under the prefix, every update after the requested time.
            let mut at: BTreeMap<&Row, Diff> = state
                .published
                .with_prefix(view, prefix)
                .map(|(row, count)| (row, *count))
                .collect();
            for publication in state.history.iter().rev() {
                if publication.time <= requested {
                    break;
                }
                for (row, t, diff) in &publication.updates[view.index()] {
                    if *t > requested && row.starts_with(prefix) {
                        *at.entry(row).or_insert(0) -= diff;
                    }
                }
            }
            for (row, count) in at {
                if !push(row, count) {
                    break;
                }
            }
        }
        Ok(Answer {
            as_of: requested,
            rows,
            truncated,
        })
    }

    /// Subscribes to the rows of `view` under `prefix`: the snapshot as of the latest
    /// publication and, through the channel, every publication's changes after it.
    pub fn subscribe(&self, view: ViewId, prefix: &[Cell]) -> Subscription {
        // The write lock orders this against publications: nothing is missed or doubled.
        let mut state = self.state.write().unwrap();
        let snapshot = state.published.rows_with_prefix(view, prefix);
        let (sender, changes) = mpsc::channel(self.subscriber_buffer);
        let lagged = Arc::new(AtomicBool::new(false));
        state.subscribers.push(Subscriber {
            view,
            prefix: prefix.to_vec(),
            sender,
            lagged: lagged.clone(),
        });
        Subscription {
            as_of: state.published.as_of,
            snapshot,
            changes,
            lagged,
        }
    }

    /// Blocks until `time` is published.
    pub fn wait_for(&self, time: Time) -> Result<(), DataflowFailed> {
        let (lock, cvar) = &self.progress;
        let mut current = lock.lock().unwrap();
        while current.is_none_or(|t| t < time) {
            if let Some(why) = self.failed.get() {
                return Err(DataflowFailed(why.clone()));
            }
            current = cvar.wait(current).unwrap();
        }
        Ok(())
    }

    /// Stops publication for good: a worker failed with `why`. Whoever waits for a time is
    /// woken and told.
    pub fn fail(&self, why: String) {
        let _ = self.failed.set(why);
        let (lock, cvar) = &self.progress;
        let _held = lock.lock().unwrap();
        cvar.notify_all();
    }

    /// Why the dataflow stopped, if a worker failed.
    pub fn failure(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }
}

/// Sends each subscriber its part of `publication`; drops the ones that are gone or full.
/// Returns the deepest backlog (in publications) among those kept.
fn deliver(subscribers: &mut Vec<Subscriber>, publication: &Publication) -> usize {
    let mut lag = 0;
    subscribers.retain(|s| {
        let updates: Vec<(Row, Time, Diff)> = publication.updates[s.view.index()]
            .iter()
            .filter(|(row, _, _)| row.starts_with(&s.prefix))
            .cloned()
            .collect();
        let changes = Changes {
            updates,
            progress: publication.time,
        };
        match s.sender.try_send(changes) {
            Ok(()) => {
                lag = lag.max(s.sender.max_capacity() - s.sender.capacity());
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                s.lagged.store(true, Ordering::SeqCst);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    });
    lag
}

/// Sums the diffs of equal `(row, time)` and drops the zeros, in `(time, row)` order.
fn consolidate(updates: &mut Vec<(Row, Time, Diff)>) {
    updates.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    let mut out: Vec<(Row, Time, Diff)> = Vec::with_capacity(updates.len());
    for (row, time, diff) in updates.drain(..) {
        match out.last_mut() {
            Some(last) if last.1 == time && last.0 == row => last.2 += diff,
            _ => out.push((row, time, diff)),
        }
        if out.last().is_some_and(|l| l.2 == 0) {
            out.pop();
        }
    }
    *updates = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: ViewId = ViewId::GmvMinute;

    fn row(tenant: &str, n: i64) -> Row {
        vec![Cell::from(tenant), Cell::Int(n)]
    }

    #[test]
    fn queries_as_of_a_retained_time_and_refuses_others() {
        let store = ViewStore::new(2, 4);
        assert_eq!(
            store.query(V, &[], 0, None),
            Err(AsOfError::NothingPublished)
        );
        store.stage(V, &[(row("a", 1), 0, 1), (row("b", 1), 0, 1)]);
        store.publish(0);
        store.stage(V, &[(row("a", 1), 1, -1), (row("a", 2), 1, 1)]);
        store.stage(V, &[(row("a", 3), 2, 1)]);
        store.publish(2);
        let a = [Cell::from("a")];
        assert_eq!(
            store.query(V, &a, 0, None).unwrap().rows,
            [row("a", 2), row("a", 3)]
        );
        assert_eq!(store.query(V, &a, 0, Some(1)).unwrap().rows, [row("a", 2)]);
        assert_eq!(store.query(V, &a, 0, Some(0)).unwrap().rows, [row("a", 1)]);
        let limited = store.query(V, &[], 2, Some(2)).unwrap();
        assert!(limited.truncated);
        assert_eq!(limited.rows.len(), 2);
        assert_eq!(
            store.query(V, &a, 0, Some(3)),
            Err(AsOfError::NotYetPublished {
                requested: 3,
                latest: 2
            })
        );
        store.publish(3);
        store.publish(4);
        assert_eq!(
            store.query(V, &a, 0, Some(1)),
            Err(AsOfError::NoLongerRetained {
                requested: 1,
                oldest: 2
            })
        );
        assert_eq!(store.query(V, &a, 0, Some(2)).unwrap().rows.len(), 2);
    }

    #[test]
    fn subscribers_get_their_prefix_and_slow_ones_are_dropped() {
        let store = ViewStore::new(8, 2);
        store.stage(V, &[(row("a", 1), 0, 1)]);
        store.publish(0);
        let mut sub = store.subscribe(V, &[Cell::from("a")]);
        let mut slow = store.subscribe(V, &[]);
        assert_eq!(sub.snapshot, [row("a", 1)]);
        store.stage(V, &[(row("a", 1), 1, -1), (row("b", 1), 1, 1)]);
        store.publish(1);
        let changes = sub.changes.try_recv().unwrap();
        assert_eq!(changes.updates, [(row("a", 1), 1, -1)]);
        assert_eq!(changes.progress, 1);
        for t in 2..5 {
            store.publish(t);
            let _ = sub.changes.try_recv();
        }
        assert!(slow.fell_behind());
        assert!(!sub.fell_behind());
        let mut drained = 0;
        while slow.changes.try_recv().is_ok() {
            drained += 1;
        }
        assert_eq!(drained, 2);
        assert!(slow.changes.is_closed());
    }
}
