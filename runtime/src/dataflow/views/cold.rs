//! The cold tier: entity state that no event has touched for `[retention] entity_idle` of its
//! tenant's event time moves out of memory to an embedded store on local disk, and comes back
//! the moment an event touches the entity again.
//!
//! Owns [`ColdTier`] (where, after how long, and what has moved) and [`Tiered`], the map the
//! entity operators keep their records in (each order's state, each payment's events, each
//! user's fraud-feature history). A touch of a key not in memory looks it up on disk first, so
//! a refund or a late cancellation weeks later finds the order as it was: only where a state
//! lives changes, never its value, and every view stays exactly what it would be with all of
//! it in memory.
//!
//! Each operator on each worker has its own file, `<dir>/<operator>-<worker>.redb` (one writer
//! each, nothing shared between workers). The tier holds state the run can rebuild: a start
//! empties the directory, and a recovery rebuilds from the checkpoint's segments what was cold
//! as it does what was hot. redb is a copy-on-write B-tree in one file; moves commit in one
//! transaction per sweep, and a revival removes its record in a transaction that is not
//! synced (nothing needs it to survive a crash).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::event::Millis;

use super::Key;
use super::compact::Closing;
use super::state::{self, Saved};

/// The one table of every file: encoded key to encoded state.
const ENTITIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entities");

/// redb's page cache, per file: the tier is there to keep memory small.
const CACHE_BYTES: usize = 4 << 20;

/// Sweeps for idle entities run once the touches since the last one outnumber the entities
/// in memory (a sweep visits them all), and never more often than every this many touches.
const SWEEP_AT_LEAST: usize = 4_096;

/// A sweep moves at most this many states in one step (redb takes ~15 µs a record here, so
/// about a third of a second); the rest move in the steps after it.
const MOVES_PER_STEP: usize = 20_000;

/// Why the cold tier could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ColdError {
    #[error(
        "cold tier {dir}: {why}: point --out at a writable local directory, or set [retention] entity_idle = \"off\" to keep every entity in memory"
    )]
    Dir { dir: PathBuf, why: String },
}

impl ColdError {
    /// The stable, machine-readable code of the variant.
    pub fn code(&self) -> &'static str {
        match self {
            ColdError::Dir { .. } => "cold_tier_dir",
        }
    }
}

/// Where idle entity state goes and after how long; what has moved, counted over every worker.
#[derive(Clone, Debug)]
pub struct ColdTier {
    dir: PathBuf,
    idle: Millis,
    /// The worker whose operators use this handle ([`ColdTier::for_worker`]).
    worker: usize,
    stats: Arc<ColdStats>,
}

#[derive(Debug, Default)]
struct ColdStats {
    moved: AtomicU64,
    revived: AtomicU64,
}

impl ColdTier {
    /// A tier in `dir` (created if missing, emptied of an earlier run's files) for entities
    /// idle longer than `idle` ms of their tenant's event time.
    pub fn prepare(dir: impl Into<PathBuf>, idle: Millis) -> Result<ColdTier, ColdError> {
        Self::open(dir.into(), idle, true)
    }

    /// The tier in `dir` as an earlier run left it, for a restart from a checkpoint whose
    /// operator states refer to it (each file is rolled back to the checkpoint's savepoint).
    pub fn reopen(dir: impl Into<PathBuf>, idle: Millis) -> Result<ColdTier, ColdError> {
        Self::open(dir.into(), idle, false)
    }

    fn open(dir: PathBuf, idle: Millis, empty: bool) -> Result<ColdTier, ColdError> {
        let fail = |why: String| ColdError::Dir {
            dir: dir.clone(),
            why,
        };
        std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
        for entry in std::fs::read_dir(&dir).map_err(|e| fail(e.to_string()))? {
            if !empty {
                break;
            }
            let path = entry.map_err(|e| fail(e.to_string()))?.path();
            if path.extension().is_some_and(|x| x == "redb") {
                std::fs::remove_file(&path)
                    .map_err(|e| fail(format!("removing {}: {e}", path.display())))?;
            }
        }
        // Refused now, with a message, rather than by a worker in the middle of the run.
        let probe = dir.join(".writable");
        std::fs::write(&probe, b"").map_err(|e| fail(format!("not writable: {e}")))?;
        let _ = std::fs::remove_file(probe);
        Ok(ColdTier {
            dir,
            idle,
            worker: 0,
            stats: Arc::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long an entity may go untouched (ms of its tenant's event time) before it moves.
    pub fn idle(&self) -> Millis {
        self.idle
    }

    /// Entity states moved to disk so far (one moved twice counts twice).
    pub fn moved(&self) -> u64 {
        self.stats.moved.load(Ordering::Relaxed)
    }

    /// Entity states brought back from disk by an event touching them.
    pub fn revived(&self) -> u64 {
        self.stats.revived.load(Ordering::Relaxed)
    }

    /// This tier as worker `worker`'s operators use it (their own files, the shared counts).
    pub fn for_worker(&self, worker: usize) -> ColdTier {
        ColdTier {
            worker,
            ..self.clone()
        }
    }
}

/// One operator's entity states on one worker: those touched within the idle time in
/// memory, the others on disk (with no tier, all in memory).
pub(super) struct Tiered<S> {
    hot: HashMap<Key, Held<S>>,
    disk: Option<Disk>,
    idle: Closing,
    /// The last sweep stopped at [`MOVES_PER_STEP`]: the next step goes on with it.
    unfinished: bool,
}

#[derive(Serialize, Deserialize)]
struct Held<S> {
    state: S,
    /// The greatest event time of the events that touched it.
    touched: Millis,
}

impl<S: Default + Serialize + DeserializeOwned> Tiered<S> {
    /// The states of operator `name`, moving to `cold` when idle.
    pub(super) fn new(name: &str, cold: Option<&ColdTier>) -> Tiered<S> {
        Tiered {
            hot: HashMap::new(),
            disk: cold.map(|tier| Disk::open(tier, name)),
            idle: Closing::new(cold.map(ColdTier::idle), SWEEP_AT_LEAST),
            unfinished: false,
        }
    }

    /// `key`'s state, brought back from disk if it went cold (a fresh one if it has none),
    /// touched by an event at `time`.
    pub(super) fn touch(&mut self, key: Key, time: Millis) -> &mut S {
        self.idle.saw(&key.0, time, 1);
        let held = match self.hot.entry(key) {
            Entry::Occupied(held) => held.into_mut(),
            Entry::Vacant(missing) => {
                let state = match &mut self.disk {
                    Some(disk) => disk.take(missing.key()).unwrap_or_default(),
                    None => S::default(),
                };
                missing.insert(Held {
                    state,
                    touched: time,
                })
            }
        };
        held.touched = held.touched.max(time);
        &mut held.state
    }

    /// `key`'s state if it is in memory: every key touched since the last sweep is.
    pub(super) fn get(&self, key: &Key) -> Option<&S> {
        self.hot.get(key).map(|held| &held.state)
    }

    pub(super) fn get_mut(&mut self, key: &Key) -> Option<&mut S> {
        self.hot.get_mut(key).map(|held| &mut held.state)
    }

    /// Forgets `key`'s state (it holds nothing any more); a cold key is never in memory too.
    pub(super) fn remove(&mut self, key: &Key) {
        self.hot.remove(key);
    }

    /// The states in memory.
    pub(super) fn len(&self) -> usize {
        self.hot.len()
    }

    /// Keeps the states in memory `keep` says to; the cold ones are left as they are.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Key, &mut S) -> bool) {
        self.hot.retain(|key, held| keep(key, &mut held.state));
    }

    /// Moves the states untouched for longer than the idle time to disk, when a sweep is due.
    pub(super) fn sweep(&mut self) {
        let Some(disk) = &mut self.disk else {
            return;
        };
        if !self.unfinished && !self.idle.sweep_due(self.hot.len()) {
            return;
        }
        let idle = &self.idle;
        // What `extract_if` has not reached when it is dropped stays in memory.
        let moving: Vec<(Key, Held<S>)> = self
            .hot
            .extract_if(|key, held| held.touched < idle.cutoff(&key.0))
            .take(MOVES_PER_STEP)
            .collect();
        self.unfinished = moving.len() == MOVES_PER_STEP;
        disk.put(moving.iter().map(|(key, held)| (key, &held.state)));
    }
}

/// A tier's state as a checkpoint holds it: the states in memory, the sweep's clock, and
/// the savepoint of the file on disk with the hashes of the keys in it.
type SavedTier<S> = (
    Vec<(Key, Held<S>)>,
    Closing,
    bool,
    Option<(u64, Vec<(u64, u32)>)>,
);

impl<S: Default + Serialize + DeserializeOwned> Saved for Tiered<S> {
    fn save(&mut self) -> Result<Vec<u8>, String> {
        let disk = match &mut self.disk {
            Some(disk) => Some((
                disk.savepoint()
                    .map_err(|e| format!("{}: {e}", disk.path.display()))?,
                disk.hashes
                    .iter()
                    .map(|(h, n)| (*h, *n))
                    .collect::<Vec<_>>(),
            )),
            None => None,
        };
        let hot: Vec<(&Key, &Held<S>)> = self.hot.iter().collect();
        state::encode(&(hot, &self.idle, self.unfinished, disk))
    }

    fn load(&mut self, bytes: &[u8]) -> Result<(), String> {
        let (hot, idle, unfinished, disk): SavedTier<S> = state::decode(bytes)?;
        self.hot = hot.into_iter().collect();
        self.idle.load_from(idle);
        self.unfinished = unfinished;
        match (disk, &mut self.disk) {
            (Some((savepoint, hashes)), Some(disk)) => {
                disk.restore(savepoint)
                    .map_err(|e| format!("{}: {e}", disk.path.display()))?;
                disk.hashes = hashes.into_iter().collect();
            }
            (Some(_), None) => {
                return Err(
                    "entities went to the cold tier, and this run has none: set [retention] entity_idle as it was"
                        .into(),
                );
            }
            (None, _) => {}
        }
        Ok(())
    }
}

/// Savepoints a file keeps: one per checkpoint that may still be restored.
const SAVEPOINTS_KEPT: usize = 3;

/// One operator's file on one worker.
struct Disk {
    db: Database,
    path: PathBuf,
    /// How many keys on disk have each hash: most touches of a key not in memory are of new
    /// entities, and this tells them apart without reading the file (a shared hash only
    /// costs a read that finds nothing).
    hashes: HashMap<u64, u32>,
    /// The persistent savepoints of the checkpoints that may still be restored, oldest first.
    savepoints: std::collections::VecDeque<u64>,
    stats: Arc<ColdStats>,
}

impl Disk {
    fn open(tier: &ColdTier, name: &str) -> Disk {
        let path = tier.dir.join(format!("{name}-{}.redb", tier.worker));
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .unwrap_or_else(|e| fail(&path, e));
        let disk = Disk {
            db,
            path,
            hashes: HashMap::new(),
            savepoints: Default::default(),
            stats: tier.stats.clone(),
        };
        // The table exists from the start, so a lookup never has to tell "no table" apart.
        disk.write(Durability::Immediate, |_| Ok(()));
        disk
    }

    /// The state stored for `key`, removed from the file.
    fn take<S: DeserializeOwned>(&mut self, key: &Key) -> Option<S> {
        let key = encode(key);
        let hash = hash(&key);
        if !self.hashes.contains_key(&hash) {
            return None;
        }
        // A read finds out whether it is this key without a write.
        let read = self.db.begin_read().unwrap_or_else(|e| fail(&self.path, e));
        let table = read
            .open_table(ENTITIES)
            .unwrap_or_else(|e| fail(&self.path, e));
        let found = table
            .get(key.as_slice())
            .unwrap_or_else(|e| fail(&self.path, e))
            .is_some();
        drop((table, read));
        if !found {
            return None;
        }
        let mut bytes = Vec::new();
        self.write(Durability::None, |table| {
            if let Some(value) = table.remove(key.as_slice())? {
                bytes = value.value().to_vec();
            }
            Ok(())
        });
        if let Entry::Occupied(mut count) = self.hashes.entry(hash) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
        self.stats.revived.fetch_add(1, Ordering::Relaxed);
        crate::metrics::global().count_cold(0, 1);
        Some(bincode::deserialize(&bytes).unwrap_or_else(|e| fail(&self.path, e)))
    }

    /// Stores every `(key, state)` in one transaction; its sync also frees the pages earlier
    /// revivals released.
    fn put<'a, S: Serialize + 'a>(&mut self, states: impl Iterator<Item = (&'a Key, &'a S)>) {
        let mut hashes = Vec::new();
        let path = &self.path;
        self.write(Durability::Immediate, |table| {
            for (key, state) in states {
                let key = encode(key);
                let value = bincode::serialize(state).unwrap_or_else(|e| fail(path, e));
                // A key is never in memory and on disk at once, so this is a new record.
                table.insert(key.as_slice(), value.as_slice())?;
                hashes.push(hash(&key));
            }
            Ok(())
        });
        self.stats
            .moved
            .fetch_add(hashes.len() as u64, Ordering::Relaxed);
        crate::metrics::global().count_cold(hashes.len() as u64, 0);
        for hash in hashes {
            *self.hashes.entry(hash).or_default() += 1;
        }
    }

    /// A durable savepoint of the file as it is now, for a checkpoint to refer to; the
    /// oldest beyond [`SAVEPOINTS_KEPT`] goes (its pages can then be freed).
    fn savepoint(&mut self) -> Result<u64, redb::Error> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let id = txn.persistent_savepoint()?;
        self.savepoints.push_back(id);
        while self.savepoints.len() > SAVEPOINTS_KEPT {
            let old = self.savepoints.pop_front().expect("more than kept");
            txn.delete_persistent_savepoint(old)?;
        }
        txn.commit()?;
        Ok(id)
    }

    /// Rolls the file back to `savepoint`, forgetting the savepoints of later checkpoints.
    fn restore(&mut self, savepoint: u64) -> Result<(), redb::Error> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let point = txn.get_persistent_savepoint(savepoint)?;
        txn.restore_savepoint(&point)?;
        drop(point);
        let later: Vec<u64> = txn
            .list_persistent_savepoints()?
            .filter(|id| *id != savepoint)
            .collect();
        for id in later {
            txn.delete_persistent_savepoint(id)?;
        }
        txn.commit()?;
        self.savepoints = [savepoint].into();
        Ok(())
    }

    fn write(
        &self,
        durability: Durability,
        apply: impl FnOnce(&mut redb::Table<&[u8], &[u8]>) -> Result<(), redb::StorageError>,
    ) {
        let run = || -> Result<(), redb::Error> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(durability)?;
            {
                let mut table = txn.open_table(ENTITIES)?;
                apply(&mut table)?;
            }
            txn.commit()?;
            Ok(())
        };
        run().unwrap_or_else(|e| fail(&self.path, e));
    }
}

fn hash(encoded: &[u8]) -> u64 {
    crate::plugins::registry::fnv1a(encoded)
}

fn encode(key: &Key) -> Vec<u8> {
    bincode::serialize(key).expect("a pair of strings encodes")
}

/// The tier's disk failed under a running worker: the state it holds cannot be given up, so
/// the worker stops with the reason and the run ends with it (a restart rebuilds the tier).
fn fail(path: &Path, error: impl std::fmt::Display) -> ! {
    panic!("cold tier {}: {error}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weir-cold-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn key(tenant: &str, id: &str) -> Key {
        (tenant.to_owned(), id.to_owned())
    }

    #[test]
    fn an_idle_state_moves_to_disk_and_comes_back_as_it_was() {
        let dir = scratch("roundtrip");
        let tier = ColdTier::prepare(&dir, 1_000).unwrap();
        let mut states: Tiered<Vec<(String, i64)>> = Tiered::new("test", Some(&tier));
        states
            .touch(key("acme", "o1"), 0)
            .push(("placed".into(), 1));
        states
            .touch(key("globex", "o1"), 0)
            .push(("other".into(), 2));
        // Enough later touches of acme for a sweep: o1 is 10 s behind acme's clock.
        for i in 0..SWEEP_AT_LEAST {
            states.touch(key("acme", &format!("o{}", i + 2)), 10_000);
        }
        states.sweep();
        assert_eq!(tier.moved(), 1, "only acme's o1 is idle");
        assert!(states.get(&key("acme", "o1")).is_none());
        // globex's clock never moved: its o1 stays, whatever acme's time says.
        assert!(states.get(&key("globex", "o1")).is_some());
        let back = states.touch(key("acme", "o1"), 10_000);
        assert_eq!(back, &vec![("placed".to_owned(), 1)]);
        assert_eq!(tier.revived(), 1);
        // Revived means removed from disk: a state is in one place.
        states.remove(&key("acme", "o1"));
        assert!(states.touch(key("acme", "o1"), 10_000).is_empty());
        assert_eq!(tier.revived(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_large_sweep_moves_a_steps_worth_at_a_time_and_finishes_in_the_next_steps() {
        let dir = scratch("large");
        let tier = ColdTier::prepare(&dir, 1_000).unwrap();
        let mut states: Tiered<u64> = Tiered::new("test", Some(&tier));
        let idle = MOVES_PER_STEP + MOVES_PER_STEP / 2;
        for i in 0..idle {
            *states.touch(key("acme", &format!("old{i}")), 0) = i as u64;
        }
        for i in 0..idle + SWEEP_AT_LEAST {
            states.touch(key("acme", &format!("new{i}")), 10_000);
        }
        states.sweep();
        assert_eq!(tier.moved(), MOVES_PER_STEP as u64);
        // The next step goes on without waiting for the next sweep to be due.
        states.sweep();
        assert_eq!(tier.moved(), idle as u64);
        states.sweep();
        assert_eq!(tier.moved(), idle as u64);
        assert_eq!(states.len(), idle + SWEEP_AT_LEAST);
        assert_eq!(*states.touch(key("acme", "old7"), 10_000), 7);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_start_empties_the_tier_of_an_earlier_run() {
        let dir = scratch("start");
        let tier = ColdTier::prepare(&dir, 0).unwrap();
        let mut states: Tiered<u64> = Tiered::new("test", Some(&tier));
        *states.touch(key("acme", "a"), 0) = 7;
        for i in 0..SWEEP_AT_LEAST {
            states.touch(key("acme", &format!("b{i}")), 5);
        }
        states.sweep();
        assert!(tier.moved() >= 1);
        drop(states);
        let again = ColdTier::prepare(&dir, 0).unwrap();
        let mut states: Tiered<u64> = Tiered::new("test", Some(&again));
        assert_eq!(*states.touch(key("acme", "a"), 0), 0);
        assert_eq!(again.revived(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_saved_tier_comes_back_as_it_was_saved_whatever_moved_after() {
        let dir = scratch("saved");
        let tier = ColdTier::prepare(&dir, 1_000).unwrap();
        let mut states: Tiered<u64> = Tiered::new("test", Some(&tier));
        *states.touch(key("acme", "a"), 0) = 7;
        *states.touch(key("acme", "hot"), 0) = 1;
        for i in 0..SWEEP_AT_LEAST {
            states.touch(key("acme", &format!("b{i}")), 5_000);
        }
        states.sweep();
        *states.touch(key("acme", "hot"), 5_000) = 2;
        assert!(states.get(&key("acme", "a")).is_none(), "a went cold");
        let saved = states.save().unwrap();
        // After the save: a is revived and changed, hot goes cold, and the file moves on.
        *states.touch(key("acme", "a"), 9_000) = 8;
        for i in 0..2 * SWEEP_AT_LEAST {
            states.touch(key("acme", &format!("c{i}")), 20_000);
        }
        states.sweep();
        drop(states);

        let again = ColdTier::reopen(&dir, 1_000).unwrap();
        let mut restored: Tiered<u64> = Tiered::new("test", Some(&again));
        restored.load(&saved).unwrap();
        assert_eq!(*restored.touch(key("acme", "hot"), 20_000), 2);
        assert_eq!(
            *restored.touch(key("acme", "a"), 20_000),
            7,
            "as it was saved, from disk"
        );
        assert_eq!(again.revived(), 1);
        assert!(
            restored.get(&key("acme", "c0")).is_none(),
            "nothing of after the save"
        );
        // Saved again and restored again: the savepoints of later saves do not pile up.
        for _ in 0..5 {
            restored.save().unwrap();
        }
        drop(restored);
        let tier = ColdTier::prepare(&dir, 1_000).unwrap();
        let mut fresh: Tiered<u64> = Tiered::new("test", Some(&tier));
        let gone = fresh.load(&saved).unwrap_err();
        assert!(
            gone.contains("test-0.redb"),
            "a fresh start has emptied the tier: the save refers to what is gone ({gone})"
        );
        let mut none: Tiered<u64> = Tiered::new("test", None);
        assert!(none.load(&saved).unwrap_err().contains("entity_idle"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unwritable_directory_is_refused_with_what_to_do() {
        let file = scratch("file");
        std::fs::write(&file, b"not a directory").unwrap();
        let e = ColdTier::prepare(&file, 0).unwrap_err();
        assert_eq!(e.code(), "cold_tier_dir");
        assert!(e.to_string().contains("entity_idle = \"off\""), "{e}");
        let _ = std::fs::remove_file(&file);
    }
}
