//! The `sessions` view (SPEC §2.4): each user's page views, adds to cart and orders sorted by
//! time, split into sessions at gaps of more than 30 minutes.
//!
//! Owns the [`Session`] record, the sessionisation and the view's rows; `conversion_hour`
//! (§2.5) reads the same sessions.
//!
//! It reads only the `(time, kind)` activity `build_selected` gathers (orders included), never
//! a whole event, and knows nothing of hours or conversion: those are `conversion_hour`'s.

use serde::{Deserialize, Serialize};

use crate::event::Millis;
use crate::row::{Cell, Row};

use super::route::{ADD_TO_CART, PAGE_VIEW};
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

/// Sessions from each user's activity: `(time, kind)` of page views, adds to cart and orders.
pub(super) fn sessions<'s>(activity: Coll<'s, (Key, (Millis, u8))>) -> Coll<'s, (Key, Session)> {
    activity.reduce(|_key, input, output| {
        // Values arrive sorted by time: one scan splits them at gaps over 30 minutes.
        let mut current: Option<Session> = None;
        for &(&(time, kind), count) in input {
            let count = count as i64;
            let session = match current.as_mut() {
                Some(s) if time - s.end <= SESSION_GAP_MS => s,
                _ => {
                    if let Some(done) = current.take() {
                        output.push((done, 1));
                    }
                    current.insert(Session {
                        start: time,
                        end: time,
                        events: 0,
                        page_views: 0,
                        add_to_carts: 0,
                        orders: 0,
                    })
                }
            };
            session.end = time;
            session.events += count;
            match kind {
                PAGE_VIEW => session.page_views += count,
                ADD_TO_CART => session.add_to_carts += count,
                _ => session.orders += count,
            }
        }
        output.extend(current.map(|s| (s, 1)));
    })
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
