//! The `sessions` view (SPEC §2.4): each user's page views, adds to cart and orders sorted by
//! time, split into sessions at gaps of more than 30 minutes.
//!
//! Owns the [`Session`] record, the sessionisation, the closing of sessions no admissible
//! event can change (SPEC §2.7) and the view's rows; `conversion_hour` (§2.5) reads the same
//! sessions.
//!
//! It reads only the `(time, kind)` activity `build_selected` gathers (orders included), never
//! a whole event, and knows nothing of hours or conversion: those are `conversion_hour`'s.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::event::Millis;
use crate::row::{Cell, Row};

use super::compact::{Closing, changes, stateful};
use super::route::{ADD_TO_CART, PAGE_VIEW};
use super::state::{Saved, decode, encode};
use super::{Coll, Key, MINUTE_MS};

const SESSION_GAP_MS: Millis = 30 * MINUTE_MS;

/// One session of a user (SPEC §2 `sessions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(super) struct Session {
    pub(super) start: Millis,
    pub(super) end: Millis,
    pub(super) events: i64,
    pub(super) page_views: i64,
    pub(super) add_to_carts: i64,
    pub(super) orders: i64,
}

impl Session {
    /// A session starting at `time`, with nothing counted yet.
    fn starting(time: Millis) -> Session {
        Session {
            start: time,
            end: time,
            events: 0,
            page_views: 0,
            add_to_carts: 0,
            orders: 0,
        }
    }
}

/// A user's activity that can still change a session: `(time, kind)` with its multiplicity,
/// the sessions last emitted for it, and the events of its first open session that are past
/// the lateness, folded into one running session.
#[derive(Default, Serialize, Deserialize)]
struct Hot {
    events: BTreeMap<(Millis, u8), i64>,
    sessions: Vec<Session>,
    /// The first open session's events before the cutoff: no admissible event is before
    /// them, so only their span and counts matter (a user active without a 30-minute gap
    /// keeps one session open for as long as that goes on).
    folded: Option<Session>,
}

impl Hot {
    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.folded.is_none()
    }
}

/// The sessions operator's state: every user with activity not yet closed.
struct Users {
    hot: HashMap<Key, Hot>,
    closing: Closing,
}

impl Saved for Users {
    fn save(&mut self) -> Result<Vec<u8>, String> {
        encode(&(&self.hot, &self.closing))
    }

    fn load(&mut self, bytes: &[u8]) -> Result<(), String> {
        let (hot, closing) = decode(bytes)?;
        self.hot = hot;
        self.closing.load_from(closing);
        Ok(())
    }
}

/// Sweeps for closed sessions run never more often than every this many updates.
const SWEEP_AT_LEAST: usize = 1_024;

/// Sessions from each user's activity: `(time, kind)` of page views, adds to cart and orders.
///
/// With a lateness L, a session whose end is more than 30 minutes before its tenant's
/// `W − L` is closed: every event admitted later has a time of at least `W − L`, so none can
/// join, merge or split it. Its row stays in the view (it is never retracted) and its events
/// leave the operator, so what is held is the activity of the open sessions, not the history.
/// Retroactive transform swaps only re-evaluate events within the lateness, which never
/// belong to a closed session.
pub(super) fn sessions<'s>(
    activity: Coll<'s, (Key, (Millis, u8))>,
    lateness: Option<Millis>,
) -> Coll<'s, (Key, Session)> {
    let users = Users {
        hot: HashMap::new(),
        closing: Closing::new(lateness, SWEEP_AT_LEAST),
    };
    stateful(activity, "Sessions", users, |users, updates, out| {
        let mut touched = HashSet::new();
        for ((key, (time, kind)), diff) in updates {
            users.closing.saw(&key.0, time, diff);
            let hot = users.hot.entry(key.clone()).or_default();
            let count = hot.events.entry((time, kind)).or_insert(0);
            *count += diff as i64;
            if *count == 0 {
                hot.events.remove(&(time, kind));
            }
            touched.insert(key);
        }
        for key in touched {
            let Some(hot) = users.hot.get_mut(&key) else {
                continue;
            };
            let sessions = split(hot.folded, &hot.events);
            let counted = |s: &Vec<Session>| s.iter().map(|s| (*s, 1)).collect::<Vec<_>>();
            changes(
                &counted(&hot.sessions),
                &counted(&sessions),
                |session, diff| {
                    out.push(((key.clone(), session), diff));
                },
            );
            hot.sessions = sessions;
            if hot.is_empty() {
                users.hot.remove(&key);
            }
        }
        if users.closing.sweep_due(users.hot.len()) {
            let closing = &users.closing;
            users.hot.retain(|(tenant, _), hot| {
                close(hot, closing.cutoff(tenant));
                !hot.is_empty()
            });
        }
    })
}

/// Drops the sessions no event at or after `cutoff` can change, with their events, and folds
/// the events before `cutoff` that are left (all in the first open session: a later one
/// starts more than 30 minutes after an end at or after `cutoff − 30 min`).
fn close(hot: &mut Hot, cutoff: Millis) {
    let closed = hot
        .sessions
        .iter()
        .take_while(|s| s.end.saturating_add(SESSION_GAP_MS) < cutoff)
        .count();
    if let Some(last) = closed.checked_sub(1).map(|i| hot.sessions[i]) {
        hot.events = hot.events.split_off(&(last.end.saturating_add(1), 0));
        hot.sessions.drain(..closed);
        // What was folded belonged to the first session, which closed.
        hot.folded = None;
    }
    let recent = hot.events.split_off(&(cutoff, 0));
    let past = std::mem::replace(&mut hot.events, recent);
    for ((time, kind), count) in past {
        let session = hot.folded.get_or_insert(Session::starting(time));
        add_event(session, time, kind, count);
    }
}

/// Counts `count` events of `kind` at `time` (the session's latest so far) in `session`.
fn add_event(session: &mut Session, time: Millis, kind: u8, count: i64) {
    session.end = time;
    session.events += count;
    match kind {
        PAGE_VIEW => session.page_views += count,
        ADD_TO_CART => session.add_to_carts += count,
        _ => session.orders += count,
    }
}

/// One user's sessions, in order, from what was `folded` and then `(time, kind)` and
/// multiplicity in time order: one scan splits them at gaps over 30 minutes.
fn split(folded: Option<Session>, events: &BTreeMap<(Millis, u8), i64>) -> Vec<Session> {
    let mut sessions: Vec<Session> = folded.into_iter().collect();
    for (&(time, kind), &count) in events {
        let session = match sessions.last_mut() {
            Some(s) if time - s.end <= SESSION_GAP_MS => s,
            _ => {
                sessions.push(Session::starting(time));
                sessions.last_mut().expect("just pushed")
            }
        };
        add_event(session, time, kind, count);
    }
    sessions
}

/// The rows of the `sessions` view.
pub(super) fn session_rows<'s>(sessions: Coll<'s, (Key, Session)>) -> Coll<'s, Row> {
    sessions.map(|((tenant, user), s)| {
        vec![
            Cell::Str(tenant),
            Cell::Str(user),
            Cell::Int(s.start),
            Cell::Int(s.end),
            Cell::Int(s.events),
            Cell::Int(s.page_views),
            Cell::Int(s.add_to_carts),
            Cell::Int(s.orders),
            Cell::Bool(s.orders > 0),
        ]
    })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use differential_dataflow::input::Input;

    use super::*;
    use crate::time::{Diff, Time};

    type Activity = (Key, (Millis, u8));

    /// The sessions a dataflow holds at the end, with their multiplicities, after each batch
    /// of `epochs` was admitted at its own logical time.
    fn final_sessions(
        epochs: &[Vec<Activity>],
        lateness: Option<Millis>,
    ) -> BTreeMap<(Key, Session), Diff> {
        let epochs = epochs.to_vec();
        timely::execute_directly(move |worker| {
            let held = Rc::new(RefCell::new(BTreeMap::new()));
            let sink = held.clone();
            let mut input = worker.dataflow::<Time, _, _>(|scope| {
                let (input, activity) = scope.new_collection();
                sessions(activity, lateness).inspect(move |(record, _, diff)| {
                    *sink.borrow_mut().entry(record.clone()).or_insert(0) += diff;
                });
                input
            });
            for (epoch, batch) in epochs.into_iter().enumerate() {
                input.advance_to(epoch as Time);
                for activity in batch {
                    input.insert(activity);
                }
            }
            input.close();
            while worker.step() {}
            let mut held = held.borrow().clone();
            held.retain(|_, diff| *diff != 0);
            held
        })
    }

    /// Activity of a few users of two tenants whose clocks move on, with events up to
    /// `2 × lateness` behind: those more than `lateness` behind their tenant's watermark are
    /// left out, as admission quarantines them.
    fn activity(lateness: Millis, epochs: usize, per_epoch: usize) -> Vec<Vec<Activity>> {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        let mut watermarks: HashMap<String, Millis> = HashMap::new();
        (0..epochs)
            .map(|epoch| {
                let before = watermarks.clone();
                let batch: Vec<Activity> = (0..per_epoch)
                    .filter_map(|_| {
                        let tenant = format!("t{}", next(2));
                        let user = format!("u{}", next(300));
                        let now = epoch as Millis * 5 * MINUTE_MS;
                        let time = now - next(2 * lateness as u64) as Millis;
                        let kind = next(3) as u8;
                        if before.get(&tenant).is_some_and(|w| time < w - lateness) {
                            return None;
                        }
                        let w = watermarks.entry(tenant.clone()).or_insert(time);
                        *w = (*w).max(time);
                        Some(((tenant, user), (time, kind)))
                    })
                    .collect();
                batch
            })
            .collect()
    }

    #[test]
    fn closing_sessions_no_admissible_event_can_change_keeps_every_row() {
        let lateness = 20 * MINUTE_MS;
        let epochs = activity(lateness, 400, 60);
        let open = final_sessions(&epochs, None);
        let closing = final_sessions(&epochs, Some(lateness));
        assert!(open.len() > 1_000, "{} sessions", open.len());
        assert!(open.values().all(|diff| *diff == 1));
        assert_eq!(closing, open);
    }

    #[test]
    fn a_closed_session_leaves_with_its_events_and_the_open_ones_stay() {
        let session = |start, end| Session {
            start,
            end,
            events: 1,
            page_views: 1,
            add_to_carts: 0,
            orders: 0,
        };
        let mut hot = Hot::default();
        for time in [0, 10 * MINUTE_MS, 50 * MINUTE_MS, 60 * MINUTE_MS] {
            hot.events.insert((time, PAGE_VIEW), 1);
        }
        hot.sessions = split(None, &hot.events);
        assert_eq!(hot.sessions.len(), 2);
        // An event at 40 min would still join the first session (a gap of exactly 30 min).
        close(&mut hot, 40 * MINUTE_MS);
        assert_eq!(hot.sessions.len(), 2);
        close(&mut hot, 40 * MINUTE_MS + 1);
        assert_eq!(hot.sessions[0].start, 50 * MINUTE_MS);
        assert_eq!(hot.sessions.len(), 1);
        assert_eq!(hot.events.len(), 2);
        // Past 50 min, the open session's first event folds; the session is the same.
        close(&mut hot, 55 * MINUTE_MS);
        assert_eq!(hot.events.len(), 1);
        assert_eq!(
            hot.folded.map(|s| (s.start, s.end)),
            Some((50 * MINUTE_MS, 50 * MINUTE_MS))
        );
        assert_eq!(split(hot.folded, &hot.events), hot.sessions);
        // A user active without a gap holds only the events within the lateness.
        let mut busy = Hot::default();
        for minute in 0..1_000 {
            busy.events.insert((minute * MINUTE_MS, PAGE_VIEW), 1);
            busy.sessions = split(busy.folded, &busy.events);
            close(&mut busy, (minute - 10) * MINUTE_MS);
        }
        assert_eq!(busy.sessions.len(), 1);
        assert_eq!(busy.sessions[0].events, 1_000);
        assert!(busy.events.len() <= 11, "{} events held", busy.events.len());
        let mut seen = Vec::new();
        changes(
            &[(session(0, 1), 1), (session(5, 6), 1), (session(9, 9), 1)],
            &[
                (session(0, 1), 1),
                (session(3, 4), 1),
                (session(7, 8), 1),
                (session(9, 9), 3),
            ],
            |s, d| seen.push((s.start, d)),
        );
        seen.sort();
        assert_eq!(seen, [(3, 1), (5, -1), (7, 1), (9, 2)]);
    }
}
