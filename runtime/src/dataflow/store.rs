//! The read side: every view's rows as of one consistent logical time.
//!
//! Workers push each view's updates here as they produce them (`stage`); nothing staged is
//! visible. When the dataflow's frontier shows that every view has absorbed all input up to
//! time `T`, the updates at or before `T` are applied together and `as_of` becomes `T`
//! (`publish`). A reader therefore never sees one view ahead of another.
//!
//! Publication never waits for a reader. Each publication is an immutable [`Version`]: the
//! views are persistent maps (`imbl::OrdMap`), so the next version shares every untouched
//! node with the last and costs only the rows that changed, and it is swapped in atomically
//! (`arc-swap`). A reader takes the current version and works on it for as long as it likes;
//! the publisher is already building the next one. Queries come in bounded pages
//! ([`Page`]), continued from the last row of the previous page at the same time.
//!
//! The updates of the last few publications are kept with their logical times, so a query can
//! be answered as of any time back to the oldest one retained, and a subscriber gets exactly
//! the updates after its snapshot. Subscribers hang off the publication through bounded
//! channels: one that does not keep up is dropped (and told so) rather than holding the
//! dataflow back. Registering a subscriber and delivering a publication share one short lock
//! (a pointer copy and non-blocking sends), which is what makes "nothing missed or doubled"
//! hold; the snapshot itself is read outside it.
//!
//! The store holds the **live** rows. Rows of windowed views far enough behind their tenant's
//! watermark move to the gold files of the landing zone (`output::gold`), which [`retire`]s
//! them here; a later change to such a row arrives as an ordinary update and is merged into
//! its gold file on the next export. A view is the union of its gold and live rows;
//! [`Published::gold`] says, per view and tenant, up to where gold holds them.
//!
//! [`retire`]: ViewStore::retire

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Instant;

use arc_swap::ArcSwap;
use imbl::OrdMap;
use tokio::sync::mpsc;

use crate::row::{Cell, Row, TABLES, ViewId};
use crate::time::{Diff, Millis, Time};

/// Publications whose updates are kept by default (a few seconds of a live run).
pub const DEFAULT_HISTORY: usize = 256;

/// Publications a subscriber may fall behind by unless configured otherwise.
pub const DEFAULT_SUBSCRIBER_BUFFER: usize = 1024;

/// Rows in a query page when the caller asks for none in particular.
pub const DEFAULT_PAGE_ROWS: usize = 1_000;

/// The most rows one query page holds, whatever the caller asks for.
pub const MAX_PAGE_ROWS: usize = 10_000;

/// One view's rows, each with its multiplicity (1 for a consistent view).
pub type ViewRows = OrdMap<Row, Diff>;

/// Each tenant's watermark, by tenant.
pub type Watermarks = Arc<Vec<(String, Millis)>>;

/// Published state. Cloning it is cheap (the maps are persistent).
#[derive(Debug, Default, Clone)]
pub struct Published {
    /// The logical time every view reflects; `None` before the first publication.
    pub as_of: Option<Time>,
    /// Per view and table (indexed as [`TABLES`]).
    pub views: Vec<ViewRows>,
    /// Each tenant's watermark over every event admitted at or before `as_of` (SPEC §2.7).
    pub watermarks: Watermarks,
    /// Per view and tenant: the row time before which the rows are in the gold files and not
    /// here (besides changes made to them since, which are merged on the next export).
    pub gold: Arc<BTreeMap<(ViewId, String), Millis>>,
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
    pub fn view(&self, view: ViewId) -> &ViewRows {
        &self.views[view.index()]
    }

    /// Rows whose leading columns equal `prefix`, in key order.
    pub fn rows_with_prefix(&self, view: ViewId, prefix: &[Cell]) -> Vec<Row> {
        self.with_prefix(view, prefix, None)
            .filter(|(_, count)| *count > 0)
            .map(|(row, _)| row.clone())
            .collect()
    }

    /// Rows under `prefix` strictly after `after` (from the first when `None`), in key order,
    /// with their multiplicities (a change to a row in gold can leave a negative one).
    pub fn with_prefix<'a>(
        &'a self,
        view: ViewId,
        prefix: &'a [Cell],
        after: Option<&Row>,
    ) -> impl Iterator<Item = (&'a Row, Diff)> + 'a {
        let start = match after {
            Some(after) if after.as_slice() >= prefix => Bound::Excluded(after.clone()),
            _ => Bound::Included(prefix.to_vec()),
        };
        self.view(view)
            .range((start, Bound::Unbounded))
            .take_while(move |(row, _)| row.starts_with(prefix))
            .map(|(row, count)| (row, *count))
    }
}

/// Adds `diff` to `row`'s multiplicity, dropping the row at zero.
fn add(rows: &mut ViewRows, row: &Row, diff: Diff) {
    let count = rows.get(row).copied().unwrap_or(0) + diff;
    if count == 0 {
        rows.remove(row);
    } else {
        rows.insert(row.clone(), count);
    }
}

impl Published {
    fn retire(&mut self, view: ViewId, rows: &[(Row, Diff)], gold: &[(String, Millis)]) {
        let live = &mut self.views[view.index()];
        for (row, diff) in rows {
            add(live, row, -diff);
        }
        if !gold.is_empty() {
            let mut marks = BTreeMap::clone(&self.gold);
            for (tenant, before) in gold {
                let mark = marks.entry((view, tenant.clone())).or_insert(*before);
                *mark = (*mark).max(*before);
            }
            self.gold = Arc::new(marks);
        }
    }
}

/// Rows a gold export takes out of a view's live rows, with the marks it sets: as
/// [`ViewStore::retire`] takes them.
pub type Retired = (ViewId, Vec<(Row, Diff)>, Vec<(String, Millis)>);

/// The published state as a checkpoint holds it ([`ViewStore::save`]).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SavedStore {
    pub as_of: Option<Time>,
    /// Per table (indexed as [`TABLES`]), the rows with their multiplicities.
    pub views: Vec<Vec<(Row, Diff)>>,
    pub watermarks: Vec<(String, Millis)>,
    /// `(table index, tenant, before)`: as [`Published::gold`].
    pub gold: Vec<(usize, String, Millis)>,
}

/// What one publication changed: per table, `(row, logical time, diff)` consolidated.
#[derive(Debug)]
pub struct Publication {
    pub time: Time,
    pub updates: Vec<Vec<(Row, Time, Diff)>>,
}

/// One immutable publication of every view, with the history needed to answer as of the
/// retained earlier times. Readers hold it; the publisher never touches it again.
#[derive(Debug, Default, Clone)]
pub struct Version {
    pub published: Published,
    history: imbl::Vector<Arc<Publication>>,
    /// Every update with a time after this is in `history`.
    floor: Time,
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

/// Which rows of a query to return: at most `limit` (0 for [`DEFAULT_PAGE_ROWS`], never more
/// than [`MAX_PAGE_ROWS`]), starting after the row `after` (the previous page's last).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub after: Option<Row>,
}

impl Page {
    /// The first page of at most `limit` rows.
    pub fn first(limit: usize) -> Page {
        Page { limit, after: None }
    }

    fn rows(&self) -> usize {
        match self.limit {
            0 => DEFAULT_PAGE_ROWS,
            n => n.min(MAX_PAGE_ROWS),
        }
    }
}

/// A query's answer: one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub as_of: Time,
    pub rows: Vec<Row>,
    /// More rows follow; the next page starts after `rows`' last.
    pub truncated: bool,
}

/// Hooks run on every publication (metrics).
pub trait PublishHook: Send + Sync {
    /// `time` was published; `waited` are the wall-clock delays since the admission of each
    /// logical time it made visible; `subscribers` and `lag` describe the live subscriptions.
    fn published(&self, time: Time, waited: &[f64], subscribers: usize, lag: usize);
}

type Observer = Box<dyn FnMut(&Published) + Send>;

/// The shared read-side store of all views.
pub struct ViewStore {
    staged: Vec<Mutex<Vec<(Row, Time, Diff)>>>,
    /// The latest publication; readers load it without waiting for anyone.
    current: ArcSwap<Version>,
    /// Held by the publisher while it builds a version, so publications stay in time order.
    publishing: Mutex<()>,
    subscribers: Mutex<Vec<Subscriber>>,
    history_len: usize,
    subscriber_buffer: usize,
    /// Wall-clock admission of each logical time not yet published.
    admitted: Mutex<VecDeque<(Time, Instant)>>,
    /// The watermarks at the close of each logical time not yet published.
    marks: Mutex<VecDeque<(Time, Watermarks)>>,
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
        let empty = Version {
            published: Published {
                as_of: None,
                views: TABLES.iter().map(|_| OrdMap::new()).collect(),
                ..Published::default()
            },
            ..Version::default()
        };
        ViewStore {
            staged: TABLES.iter().map(|_| Mutex::new(Vec::new())).collect(),
            current: ArcSwap::from_pointee(empty),
            publishing: Mutex::new(()),
            subscribers: Mutex::new(Vec::new()),
            history_len: history.max(1),
            subscriber_buffer: subscriber_buffer.max(1),
            admitted: Mutex::new(VecDeque::new()),
            marks: Mutex::new(VecDeque::new()),
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

    /// The tenants' watermarks over every event admitted at or before `time`, published with
    /// it (the gold export reads them).
    pub fn watermarks(&self, time: Time, marks: Vec<(String, Millis)>) {
        let mut pending = self.marks.lock().unwrap();
        if pending.back().is_none_or(|(t, _)| *t < time) {
            pending.push_back((time, Arc::new(marks)));
        }
    }

    /// Takes `rows` (with the multiplicities given) out of `view`'s live rows: they are in its
    /// gold files now, which hold `view`'s rows of each tenant of `gold` before its time. Not
    /// an update of the view, so neither subscribers nor the history see it.
    pub fn retire(&self, view: ViewId, rows: &[(Row, Diff)], gold: &[(String, Millis)]) {
        let _publishing = self.publishing.lock().unwrap();
        let mut next = Version::clone(&self.current.load());
        next.published.retire(view, rows, gold);
        self.current.store(Arc::new(next));
    }

    /// The published state as a checkpoint holds it, with `retired` taken out as
    /// [`ViewStore::retire`] would (an export the checkpoint commits).
    pub fn save(&self, retired: &[Retired]) -> SavedStore {
        let mut published = self.current.load().published.clone();
        for (view, rows, gold) in retired {
            published.retire(*view, rows, gold);
        }
        SavedStore {
            as_of: published.as_of,
            views: published
                .views
                .iter()
                .map(|rows| rows.iter().map(|(r, n)| (r.clone(), *n)).collect())
                .collect(),
            watermarks: published.watermarks.to_vec(),
            gold: published
                .gold
                .iter()
                .map(|((view, tenant), before)| (view.index(), tenant.clone(), *before))
                .collect(),
        }
    }

    /// Starts from a saved state: published as of its time, with no history before it.
    pub fn restore(&self, saved: SavedStore) {
        let _publishing = self.publishing.lock().unwrap();
        let mut views: Vec<ViewRows> = TABLES.iter().map(|_| OrdMap::new()).collect();
        for (view, rows) in views.iter_mut().zip(saved.views) {
            *view = rows.into_iter().collect();
        }
        let gold = saved
            .gold
            .into_iter()
            .filter_map(|(view, tenant, before)| {
                Some(((ViewId::from_index(view)?, tenant), before))
            })
            .collect();
        let version = Version {
            published: Published {
                as_of: saved.as_of,
                views,
                watermarks: Arc::new(saved.watermarks),
                gold: Arc::new(gold),
            },
            history: imbl::Vector::new(),
            floor: saved.as_of.unwrap_or(0),
        };
        self.current.store(Arc::new(version));
        let (lock, cvar) = &self.progress;
        let mut progress = lock.lock().unwrap();
        if progress.is_none_or(|t| saved.as_of.is_some_and(|s| s > t)) {
            *progress = saved.as_of;
        }
        cvar.notify_all();
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
    /// Only worker 0 publishes, one time after another. The next version is built beside the
    /// current one (sharing its untouched rows) and swapped in; no reader is waited for.
    pub fn publish(&self, time: Time) {
        let _publishing = self.publishing.lock().unwrap();
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
        let mut next = Version::clone(&self.current.load());
        for (view, applied) in updates.iter().enumerate() {
            let rows = &mut next.published.views[view];
            for (row, _, diff) in applied {
                add(rows, row, *diff);
            }
        }
        next.published.as_of = Some(time);
        {
            let mut marks = self.marks.lock().unwrap();
            while marks.front().is_some_and(|(t, _)| *t <= time) {
                next.published.watermarks = marks.pop_front().expect("checked").1;
            }
        }
        let publication = Arc::new(Publication { time, updates });
        next.history.push_back(publication.clone());
        while next.history.len() > self.history_len {
            if let Some(old) = next.history.pop_front() {
                next.floor = old.time;
            }
        }
        let next = Arc::new(next);
        let (lag, subscribers) = {
            let mut subscribers = self.subscribers.lock().unwrap();
            self.current.store(next.clone());
            let lag = deliver(&mut subscribers, &publication);
            (lag, subscribers.len())
        };
        if let Some(observer) = self.observer.lock().unwrap().as_mut() {
            observer(&next.published);
        }
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

    /// The latest publication, to read for as long as the caller likes.
    pub fn version(&self) -> Arc<Version> {
        self.current.load_full()
    }

    /// A read of the published state.
    pub fn read<R>(&self, f: impl FnOnce(&Published) -> R) -> R {
        f(&self.current.load().published)
    }

    /// The published time, if any.
    pub fn as_of(&self) -> Option<Time> {
        self.current.load().published.as_of
    }

    /// The oldest logical time a query can still ask for.
    pub fn oldest(&self) -> Time {
        self.current.load().floor
    }

    /// One page of the rows of `view` under `prefix` as of `as_of`, or the latest published
    /// time. Every row reflects the same input prefix, and so does every later page asked
    /// for at the answer's `as_of`.
    pub fn query(
        &self,
        view: ViewId,
        prefix: &[Cell],
        page: &Page,
        as_of: Option<Time>,
    ) -> Result<Answer, AsOfError> {
        let version = self.current.load_full();
        let latest = version.published.as_of.ok_or(AsOfError::NothingPublished)?;
        let requested = as_of.unwrap_or(latest);
        if requested > latest {
            return Err(AsOfError::NotYetPublished { requested, latest });
        }
        if requested < version.floor {
            return Err(AsOfError::NoLongerRetained {
                requested,
                oldest: version.floor,
            });
        }
        let after = page.after.as_ref();
        let current = version.published.with_prefix(view, prefix, after);
        let (rows, truncated) = if requested == latest {
            take_page(current, page.rows())
        } else {
            // Undo, under the prefix and past the page's start, every update after the
            // requested time: only the retained history is read, not the whole view.
            let mut undo: BTreeMap<&Row, Diff> = BTreeMap::new();
            for publication in version.history.iter().rev() {
                if publication.time <= requested {
                    break;
                }
                for (row, t, diff) in &publication.updates[view.index()] {
                    if *t > requested
                        && row.starts_with(prefix)
                        && after.is_none_or(|after| row > after)
                    {
                        *undo.entry(row).or_insert(0) -= diff;
                    }
                }
            }
            take_page(merge(current, undo), page.rows())
        };
        Ok(Answer {
            as_of: requested,
            rows,
            truncated,
        })
    }

    /// Subscribes to the rows of `view` under `prefix`: the snapshot as of the latest
    /// publication and, through the channel, every publication's changes after it.
    pub fn subscribe(&self, view: ViewId, prefix: &[Cell]) -> Subscription {
        let (sender, changes) = mpsc::channel(self.subscriber_buffer);
        let lagged = Arc::new(AtomicBool::new(false));
        // Taking the version and joining the subscribers under the delivery lock orders this
        // against publications: nothing is missed or doubled.
        let version = {
            let mut subscribers = self.subscribers.lock().unwrap();
            subscribers.push(Subscriber {
                view,
                prefix: prefix.to_vec(),
                sender,
                lagged: lagged.clone(),
            });
            self.current.load_full()
        };
        Subscription {
            as_of: version.published.as_of,
            snapshot: version.published.rows_with_prefix(view, prefix),
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

/// The first rows of `rows` (with their copies) up to `limit`, never splitting one row's
/// copies across pages (a page holds at least one whole row); and whether more follow.
fn take_page<'a>(rows: impl Iterator<Item = (&'a Row, Diff)>, limit: usize) -> (Vec<Row>, bool) {
    let mut rows = rows.filter(|(_, count)| *count > 0).peekable();
    let mut out = Vec::new();
    while let Some(&(row, count)) = rows.peek() {
        // An inconsistent view can hold a row many times; a page holds at most a page of it.
        let copies = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(MAX_PAGE_ROWS);
        if !out.is_empty() && out.len() + copies > limit {
            return (out, true);
        }
        rows.next();
        out.extend(std::iter::repeat_n(row, copies).cloned());
    }
    (out, false)
}

/// `current` (in key order) with `undo` added to it, in key order.
fn merge<'a>(
    current: impl Iterator<Item = (&'a Row, Diff)>,
    undo: BTreeMap<&'a Row, Diff>,
) -> impl Iterator<Item = (&'a Row, Diff)> {
    let mut current = current.peekable();
    let mut undo = undo.into_iter().peekable();
    std::iter::from_fn(move || match (current.peek(), undo.peek()) {
        (None, None) => None,
        (Some(_), None) => current.next(),
        (None, Some(_)) => undo.next(),
        (Some((a, _)), Some((b, _))) => match (*a).cmp(*b) {
            std::cmp::Ordering::Less => current.next(),
            std::cmp::Ordering::Greater => undo.next(),
            std::cmp::Ordering::Equal => {
                let (row, count) = current.next().expect("peeked");
                let (_, diff) = undo.next().expect("peeked");
                Some((row, count + diff))
            }
        },
    })
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
            store.query(V, &[], &Page::first(0), None),
            Err(AsOfError::NothingPublished)
        );
        store.stage(V, &[(row("a", 1), 0, 1), (row("b", 1), 0, 1)]);
        store.publish(0);
        store.stage(V, &[(row("a", 1), 1, -1), (row("a", 2), 1, 1)]);
        store.stage(V, &[(row("a", 3), 2, 1)]);
        store.publish(2);
        let a = [Cell::from("a")];
        assert_eq!(
            store.query(V, &a, &Page::first(0), None).unwrap().rows,
            [row("a", 2), row("a", 3)]
        );
        assert_eq!(
            store.query(V, &a, &Page::first(0), Some(1)).unwrap().rows,
            [row("a", 2)]
        );
        assert_eq!(
            store.query(V, &a, &Page::first(0), Some(0)).unwrap().rows,
            [row("a", 1)]
        );
        let limited = store.query(V, &[], &Page::first(2), Some(2)).unwrap();
        assert!(limited.truncated);
        assert_eq!(limited.rows.len(), 2);
        assert_eq!(
            store.query(V, &a, &Page::first(0), Some(3)),
            Err(AsOfError::NotYetPublished {
                requested: 3,
                latest: 2
            })
        );
        store.publish(3);
        store.publish(4);
        assert_eq!(
            store.query(V, &a, &Page::first(0), Some(1)),
            Err(AsOfError::NoLongerRetained {
                requested: 1,
                oldest: 2
            })
        );
        assert_eq!(
            store
                .query(V, &a, &Page::first(0), Some(2))
                .unwrap()
                .rows
                .len(),
            2
        );
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

    #[test]
    fn pages_continue_after_the_last_row_at_the_same_time() {
        let store = ViewStore::new(8, 4);
        store.stage(V, &(0..25).map(|n| (row("a", n), 0, 1)).collect::<Vec<_>>());
        store.stage(V, &[(row("b", 0), 0, 2)]);
        store.publish(0);
        // Later publications delete and add rows; pages asked for at time 0 must not see them.
        store.stage(V, &[(row("a", 3), 1, -1), (row("a", 30), 1, 1)]);
        store.publish(1);
        for (as_of, want) in [(0, 27), (1, 27)] {
            let mut page = Page::first(10);
            let mut all = Vec::new();
            loop {
                let answer = store.query(V, &[], &page, Some(as_of)).unwrap();
                assert!(answer.rows.len() <= 10);
                all.extend(answer.rows.iter().cloned());
                if !answer.truncated {
                    break;
                }
                page.after = answer.rows.last().cloned();
            }
            let mut whole = store.query(V, &[], &Page::first(100), Some(as_of)).unwrap();
            assert!(!whole.truncated);
            assert_eq!(all.len(), want, "as of {as_of}");
            assert_eq!(all, std::mem::take(&mut whole.rows), "as of {as_of}");
            assert_eq!(all.contains(&row("a", 3)), as_of == 0);
            assert_eq!(all.contains(&row("a", 30)), as_of == 1);
        }
        // A row's two copies are never split across pages.
        let tail = Page {
            limit: 1,
            after: Some(row("a", 9)),
        };
        let answer = store.query(V, &[Cell::from("b")], &tail, None).unwrap();
        assert_eq!(answer.rows, [row("b", 0), row("b", 0)]);
        assert!(!answer.truncated);
        assert_eq!(
            store
                .query(V, &[], &Page::first(0), None)
                .unwrap()
                .rows
                .len(),
            27
        );
    }

    #[test]
    fn publication_never_waits_for_a_reader_holding_a_version() {
        let store = Arc::new(ViewStore::new(8, 4));
        store.stage(V, &[(row("a", 1), 0, 1)]);
        store.publish(0);
        store.read(|held| {
            let publisher = store.clone();
            let (done, published) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                publisher.stage(V, &[(row("a", 1), 1, -1)]);
                publisher.publish(1);
                let _ = done.send(());
            });
            published
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("publication went ahead while a reader held the published state");
            // The reader still sees the version it started with.
            assert_eq!(held.as_of, Some(0));
            assert_eq!(held.rows(V), [row("a", 1)]);
        });
        assert_eq!(store.as_of(), Some(1));
        assert!(store.read(|p| p.rows(V)).is_empty());
    }
}
