//! View state held as one compact record per group, not one arranged record per input.
//!
//! Differential's `reduce` keeps every input record of every group in an arrangement, so a
//! view over a sum holds the whole history it summed. The views whose output is a function of
//! a few running totals (counts and sums per minute, hour, status or sku), or of state that
//! can be closed once no admissible event can change it (sessions), use the operators here
//! instead: each logical time's updates are applied, in time order once the input has passed
//! it, to per-group state on the worker that owns the group, and only the rows that changed are
//! emitted, as retraction and insertion at that time. What they emit is exactly what the
//! `reduce` they replace would; what they keep is bounded by the groups, not the events.
//!
//! Owns [`stateful`] (the keyed, time-ordered operator the others are built on),
//! [`sum_groups`], [`latest`], [`Closing`] (when state past the lateness may go), and the
//! helpers [`changes`] and [`add`]; the views own what their state means.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use differential_dataflow::hashable::Hashable;
use differential_dataflow::{AsCollection, ExchangeData};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::operator::Operator;

use crate::event::Millis;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::cold::{ColdTier, Tiered};
use super::state::{self, Saved, decode, encode};
use super::{Coll, Diff, Key, Time, saturate};

/// The updates of one logical time, as `(record, diff)`; for `step` to consume.
pub(super) type Updates<K, V> = Vec<((K, V), Diff)>;

/// Runs `step` on the updates of each logical time, in time order, once the input frontier
/// has passed that time, on the worker owning each key (records are exchanged by key). `step`
/// owns its state and pushes the output updates of that time.
///
/// Logical times are totally ordered, so "once the frontier has passed it" means every
/// update at or before the time has arrived: the state `step` sees is the accumulation of all
/// earlier times, which is what makes compact state exact.
pub(super) fn stateful<'s, K, V, O, S>(
    input: Coll<'s, (K, V)>,
    name: &str,
    state: S,
    mut step: impl FnMut(&mut S, Updates<K, V>, &mut Vec<(O, Diff)>) + 'static,
) -> Coll<'s, O>
where
    K: ExchangeData + Hash,
    V: ExchangeData,
    O: ExchangeData,
    S: Saved + 'static,
{
    // Registered with the worker, so a checkpoint can save it and a restart start from it.
    let state = state::register(name, state);
    let exchange = Exchange::new(|((k, _), _, _): &((K, V), Time, Diff)| k.hashed());
    input
        .inner
        .unary_frontier(exchange, name, move |_, _| {
            let mut stash: BTreeMap<Time, (Capability<Time>, Updates<K, V>)> = BTreeMap::new();
            let mut out = Vec::new();
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    for (record, time, diff) in data.drain(..) {
                        stash
                            .entry(time)
                            .or_insert_with(|| (cap.delayed(&time, 0), Vec::new()))
                            .1
                            .push((record, diff));
                    }
                });
                while let Some(entry) = stash.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (time, (cap, updates)) = entry.remove_entry();
                    step(&mut state.borrow_mut(), updates, &mut out);
                    let mut session = output.session(&cap);
                    for (record, diff) in out.drain(..) {
                        session.give((record, time, diff));
                    }
                }
            }
        })
        .container::<Vec<_>>()
        .as_collection()
}

/// What turns `old` into `new` (each sorted, with one multiplicity per distinct item): every
/// item whose multiplicity differs, with the difference. The operators that recompute a
/// group's output keep what they last emitted and send only this.
pub(super) fn changes<T: Ord + Clone>(
    old: &[(T, Diff)],
    new: &[(T, Diff)],
    mut emit: impl FnMut(T, Diff),
) {
    let (mut o, mut n) = (old.iter().peekable(), new.iter().peekable());
    loop {
        match (o.peek(), n.peek()) {
            (Some((a, da)), Some((b, db))) if a == b => {
                if da != db {
                    emit(a.clone(), db - da);
                }
                o.next();
                n.next();
            }
            (Some((a, da)), Some((b, _))) if a < b => {
                emit(a.clone(), -da);
                o.next();
            }
            (_, Some((b, db))) => {
                emit(b.clone(), *db);
                n.next();
            }
            (Some((a, da)), None) => {
                emit(a.clone(), -da);
                o.next();
            }
            (None, None) => break,
        }
    }
}

/// Adds `diff` to `item`'s multiplicity in a multiset kept as a sorted `Vec` (the few events
/// of one entity: a `Vec` costs their size, a map a node per entity), dropping it at zero.
pub(super) fn add<T: Ord>(set: &mut Vec<(T, Diff)>, item: T, diff: Diff) {
    match set.binary_search_by(|(t, _)| t.cmp(&item)) {
        Ok(at) => {
            set[at].1 += diff;
            if set[at].1 == 0 {
                set.remove(at);
            }
        }
        Err(at) if diff != 0 => set.insert(at, (item, diff)),
        Err(_) => {}
    }
}

/// The greatest value of each key by the value's own order ("latest" when values start with
/// `(event_time, event_id)`), from the key's values kept as a sorted multiset: what a `reduce`
/// keeping the last value gives, without its input and output arrangements.
/// A key's values go `cold` when no event has touched it for a while (`time` reads a value's
/// event time).
pub(super) fn latest<'s, V>(
    records: Coll<'s, (Key, V)>,
    name: &str,
    time: fn(&V) -> Millis,
    cold: Option<&ColdTier>,
) -> Coll<'s, (Key, V)>
where
    V: ExchangeData,
{
    stateful(
        records,
        name,
        Tiered::<Vec<(V, Diff)>>::new(name, cold),
        move |groups, updates, out| {
            let mut before: HashMap<Key, Option<V>> = HashMap::new();
            for ((key, value), diff) in updates {
                let values = groups.touch(key.clone(), time(&value));
                before
                    .entry(key)
                    .or_insert_with(|| last_present(values).cloned());
                add(values, value, diff);
            }
            for (key, old) in before {
                let values = groups.get(&key);
                let new = values.and_then(|v| last_present(v)).cloned();
                if values.is_some_and(Vec::is_empty) {
                    groups.remove(&key);
                }
                replace(key, old, new, out);
            }
            groups.sweep();
        },
    )
}

/// Each key's values, as a sorted multiset, on one worker.
struct Values<K, V>(HashMap<K, Vec<(V, Diff)>>);

impl<K, V> Saved for Values<K, V>
where
    K: Serialize + DeserializeOwned + Eq + Hash,
    V: Serialize + DeserializeOwned,
{
    fn save(&mut self) -> Result<Vec<u8>, String> {
        encode(&self.0)
    }

    fn load(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.0 = decode(bytes)?;
        Ok(())
    }
}

/// The least value of each key present (the earliest, when values start with a time): what a
/// `reduce` keeping its first input gives, in state a checkpoint can hold.
pub(super) fn least<'s, K, V>(records: Coll<'s, (K, V)>, name: &str) -> Coll<'s, (K, V)>
where
    K: ExchangeData + Hash,
    V: ExchangeData,
{
    stateful(
        records,
        name,
        Values(HashMap::new()),
        |Values(groups), updates, out| {
            let mut before: HashMap<K, Option<V>> = HashMap::new();
            for ((key, value), diff) in updates {
                let values: &mut Vec<(V, Diff)> = groups.entry(key.clone()).or_default();
                before
                    .entry(key)
                    .or_insert_with(|| first_present(values).cloned());
                add(values, value, diff);
            }
            for (key, old) in before {
                let values = groups.get(&key);
                let new = values.and_then(|v| first_present(v)).cloned();
                if values.is_some_and(Vec::is_empty) {
                    groups.remove(&key);
                }
                replace(key, old, new, out);
            }
        },
    )
}

/// The least value held with a positive multiplicity.
fn first_present<V>(values: &[(V, Diff)]) -> Option<&V> {
    values.iter().find(|(_, n)| *n > 0).map(|(v, _)| v)
}

/// The greatest value held with a positive multiplicity.
fn last_present<V>(values: &[(V, Diff)]) -> Option<&V> {
    values.iter().rev().find(|(_, n)| *n > 0).map(|(v, _)| v)
}

/// Emits what turns a key's `old` row into its `new` one, if they differ.
fn replace<K, V: PartialEq>(key: K, old: Option<V>, new: Option<V>, out: &mut Vec<((K, V), Diff)>)
where
    K: Clone,
{
    if old == new {
        return;
    }
    if let Some(old) = old {
        out.push(((key.clone(), old), -1));
    }
    if let Some(new) = new {
        out.push(((key, new), 1));
    }
}

/// What an operator that closes state past the lateness (SPEC §2.7) knows of time: the
/// greatest event time it has seen per tenant — never ahead of the tenant's watermark, so
/// whatever is before it minus the lateness is before every event still to be admitted —
/// and when its next amortised sweep is due.
#[derive(Serialize, Deserialize)]
pub(super) struct Closing {
    lateness: Option<Millis>,
    seen: HashMap<String, Millis>,
    since_sweep: usize,
    floor: usize,
}

impl Closing {
    /// Sweeps run once the updates since the last one outnumber what is held (a sweep visits
    /// all of it), and never more often than every `floor` updates.
    pub(super) fn new(lateness: Option<Millis>, floor: usize) -> Closing {
        Closing {
            lateness,
            seen: HashMap::new(),
            since_sweep: 0,
            floor,
        }
    }

    /// An update of `tenant`'s at event time `time`; insertions raise what was seen.
    pub(super) fn saw(&mut self, tenant: &str, time: Millis, diff: Diff) {
        self.since_sweep += 1;
        if diff > 0 {
            match self.seen.get_mut(tenant) {
                Some(seen) => *seen = (*seen).max(time),
                None => {
                    self.seen.insert(tenant.to_owned(), time);
                }
            }
        }
    }

    /// Whether a sweep over `held` groups is due (never without a lateness); starts the
    /// count again when it is.
    pub(super) fn sweep_due(&mut self, held: usize) -> bool {
        let due = self.lateness.is_some() && self.since_sweep >= held.max(self.floor);
        if due {
            self.since_sweep = 0;
        }
        due
    }

    /// Takes over a saved clock; the lateness and the sweep floor stay this run's.
    pub(super) fn load_from(&mut self, saved: Closing) {
        self.seen = saved.seen;
        self.since_sweep = saved.since_sweep;
    }

    /// Events of `tenant` before this time can no longer be admitted.
    pub(super) fn cutoff(&self, tenant: &str) -> Millis {
        match (self.lateness, self.seen.get(tenant)) {
            (Some(lateness), Some(seen)) => seen.saturating_sub(lateness),
            _ => Millis::MIN,
        }
    }
}

/// A group's running totals: how many records it holds and the exact sums of their columns.
struct Totals<const N: usize> {
    records: i128,
    sums: [i128; N],
}

/// The totals of every group on one worker.
struct Sums<K, const N: usize>(HashMap<K, Totals<N>>);

impl<K, const N: usize> Saved for Sums<K, N>
where
    K: Serialize + DeserializeOwned + Eq + Hash,
{
    fn save(&mut self) -> Result<Vec<u8>, String> {
        let groups: Vec<(&K, i128, &[i128])> = self
            .0
            .iter()
            .map(|(key, t)| (key, t.records, t.sums.as_slice()))
            .collect();
        encode(&groups)
    }

    fn load(&mut self, bytes: &[u8]) -> Result<(), String> {
        let groups: Vec<(K, i128, Vec<i128>)> = decode(bytes)?;
        self.0 = groups
            .into_iter()
            .map(|(key, records, sums)| {
                let sums = <[i128; N]>::try_from(sums)
                    .map_err(|s| format!("{} sums where the view has {N}", s.len()))?;
                Ok((key, Totals { records, sums }))
            })
            .collect::<Result<_, String>>()?;
        Ok(())
    }
}

impl<const N: usize> Totals<N> {
    /// The group's row, if it holds any record.
    fn row(&self) -> Option<[i64; N]> {
        (self.records > 0).then(|| self.sums.map(saturate))
    }
}

/// Per group `K`, the sums of the records' columns, present while the group holds a record:
/// what a `reduce` summing every column gives, from one accumulator per group.
pub(super) fn sum_groups<'s, K, const N: usize>(
    records: Coll<'s, (K, [i64; N])>,
    name: &str,
) -> Coll<'s, (K, [i64; N])>
where
    K: ExchangeData + Hash,
    [i64; N]: ExchangeData,
{
    stateful(
        records,
        name,
        Sums(HashMap::<K, Totals<N>>::new()),
        |Sums(groups), updates, out| {
            let mut before: HashMap<K, Option<[i64; N]>> = HashMap::new();
            for ((key, values), diff) in updates {
                let totals = groups.entry(key.clone()).or_insert(Totals {
                    records: 0,
                    sums: [0; N],
                });
                before.entry(key).or_insert_with(|| totals.row());
                totals.records += diff as i128;
                for (sum, value) in totals.sums.iter_mut().zip(values) {
                    *sum += i128::from(value) * diff as i128;
                }
            }
            for (key, old) in before {
                let new = groups.get(&key).and_then(Totals::row);
                if new.is_none() {
                    groups.remove(&key);
                }
                replace(key, old, new, out);
            }
        },
    )
}
