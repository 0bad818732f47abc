//! The read side: every view's rows as of one consistent logical time.
//!
//! Workers push each view's updates here as they produce them (`stage`); nothing staged is
//! visible. When the dataflow's frontier shows that every view has absorbed all input up to
//! time `T`, the updates at or before `T` are applied together and `as_of` becomes `T`
//! (`publish`). A reader therefore never sees one view ahead of another, and readers take a
//! read lock on published state only: they never stop the workers.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, RwLock};

use crate::row::{Row, TABLES};
use crate::views::{Diff, Time};

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
    pub fn rows(&self, view: usize) -> Vec<Row> {
        let mut out = Vec::new();
        for (row, count) in &self.views[view] {
            for _ in 0..(*count).max(0) {
                out.push(row.clone());
            }
        }
        out
    }

    /// Rows whose leading columns equal `prefix`, in key order.
    pub fn rows_with_prefix(&self, view: usize, prefix: &[crate::row::Cell]) -> Vec<Row> {
        let start: Row = prefix.to_vec();
        self.views[view]
            .range(start..)
            .take_while(|(row, _)| row.starts_with(prefix))
            .filter(|(_, count)| **count > 0)
            .map(|(row, _)| row.clone())
            .collect()
    }
}

type Observer = Box<dyn FnMut(&Published) + Send>;

/// The shared read-side store of all views.
pub struct ViewStore {
    staged: Vec<Mutex<Vec<(Row, Time, Diff)>>>,
    published: RwLock<Published>,
    /// Signalled on every publication, for callers waiting on a time.
    progress: (Mutex<Option<Time>>, Condvar),
    observer: Mutex<Option<Observer>>,
}

impl Default for ViewStore {
    fn default() -> Self {
        ViewStore {
            staged: TABLES.iter().map(|_| Mutex::new(Vec::new())).collect(),
            published: RwLock::new(Published {
                as_of: None,
                views: TABLES.iter().map(|_| BTreeMap::new()).collect(),
            }),
            progress: (Mutex::new(None), Condvar::new()),
            observer: Mutex::new(None),
        }
    }
}

impl ViewStore {
    /// Registers a callback run on every publication, with the newly published state.
    pub fn observe(&self, observer: impl FnMut(&Published) + Send + 'static) {
        *self.observer.lock().unwrap() = Some(Box::new(observer));
    }

    /// Hands over updates a worker produced for `view`; they stay invisible until published.
    pub fn stage(&self, view: usize, updates: &[(Row, Time, Diff)]) {
        self.staged[view].lock().unwrap().extend_from_slice(updates);
    }

    /// Makes every staged update at or before `time` visible, all views at once.
    pub fn publish(&self, time: Time) {
        let mut published = self.published.write().unwrap();
        if published.as_of.is_some_and(|t| t >= time) {
            return;
        }
        for (view, staged) in self.staged.iter().enumerate() {
            let mut staged = staged.lock().unwrap();
            let state = &mut published.views[view];
            staged.retain(|(row, t, diff)| {
                if *t > time {
                    return true;
                }
                let count = state.entry(row.clone()).or_insert(0);
                *count += diff;
                if *count == 0 {
                    state.remove(row);
                }
                false
            });
        }
        published.as_of = Some(time);
        if let Some(observer) = self.observer.lock().unwrap().as_mut() {
            observer(&published);
        }
        drop(published);
        let (lock, cvar) = &self.progress;
        *lock.lock().unwrap() = Some(time);
        cvar.notify_all();
    }

    /// A read of the published state.
    pub fn read<R>(&self, f: impl FnOnce(&Published) -> R) -> R {
        f(&self.published.read().unwrap())
    }

    /// The published time, if any.
    pub fn as_of(&self) -> Option<Time> {
        self.published.read().unwrap().as_of
    }

    /// Blocks until `time` is published.
    pub fn wait_for(&self, time: Time) {
        let (lock, cvar) = &self.progress;
        let mut current = lock.lock().unwrap();
        while current.is_none_or(|t| t < time) {
            current = cvar.wait(current).unwrap();
        }
    }
}
