//! The `conversion_hour` view (SPEC §2.5): sessions and converted sessions per tenant and
//! hour of the session's start, over the sessions of `sessions` (§2.4).
//!
//! It owns the hourly grouping only: sessions come whole from `sessions`, so it never sees an
//! event or splits activity into sessions itself.

use crate::event::Millis;
use crate::row::{Cell, Row};

use super::compact::sum_groups;
use super::sessions::Session;
use super::{Coll, Key, floor};

const HOUR_MS: Millis = 3_600_000;

pub(super) fn conversion_hour<'s>(sessions: Coll<'s, (Key, Session)>) -> Coll<'s, Row> {
    let hours = sessions.map(|((tenant, _), s)| {
        (
            (tenant, floor(s.start, HOUR_MS)),
            [1, i64::from(s.orders > 0)],
        )
    });
    sum_groups(hours, "ConversionHour").map(|((tenant, hour), [sessions, converted])| {
        vec![
            Cell::Str(tenant),
            Cell::Int(hour),
            Cell::Int(sessions),
            Cell::Int(converted),
        ]
    })
}
