//! The dataflow views: SPEC §2 as differential dataflow over the admitted events.
//!
//! Every view is a function of the collection of admitted events, maintained incrementally:
//! a late event is an insertion at a later logical time, and differential recomputes exactly
//! the groups it touches (the user's sessions, the minute's GMV, the device's failure window),
//! emitting retractions for what no longer holds. Most grouped logic runs in keyed operators
//! with compact state (`compact`): one accumulator per total, one record per order or payment,
//! the open sessions' activity and the orders a fraud feature can still read, applied a
//! logical time at a time in time order, so "latest", "sorted by time" and "within a window"
//! are ordinary scans of a group's state and stay exact under any arrival order. A `reduce`
//! would hold every input a group ever had; only the alerts and dead letters (rare verdicts)
//! still use one.
//!
//! Fraud features are computed here, in the core, and handed to the rule plugins; rules are
//! pure functions, so re-running one on a retracted input retracts its alert.
//!
//! This module owns the differential dataflow of the six SPEC §2 views and of the fraud
//! features, from the admitted events and the rule deployments to one update stream of rows
//! per published table ([`ViewStreams`]). It does no I/O, serves nothing and reads no source:
//! the workers that run it, the logical times and the publication live in
//! [`super::pipeline`], the published state in [`super::store`].
//!
//! The tour, in the order the data flows:
//!
//! - here: [`build`] and [`build_selected`], which wire the views together, and the small
//!   helpers several views share (`floor`, `saturate`);
//! - `compact`: the operators that keep one compact record per group instead of every input;
//! - [`cold`]: where the entity records no event has touched for a while go, and come back
//!   from;
//! - `route`: the admitted events split by what reads them, narrowed to the records the
//!   views read (`Order`, `PaymentRec`, session activity);
//! - `orders`: each order's placements, cancellation and status, one compact record per
//!   order, which `gmv_minute` and `inventory` share;
//! - one file per view of SPEC §2: `gmv_minute` (§2.1), `payment_status` (§2.2),
//!   `inventory` (§2.3), `sessions` (§2.4), `conversion_hour` (§2.5) and `fraud_alerts`
//!   (§2.6, with the dead letters of failed rule evaluations);
//! - `features`: the fraud features the core maintains exactly for the rules (§2.6).

use differential_dataflow::VecCollection;

use crate::event::{Event, Millis};
use std::sync::Arc;

use crate::plugins::registry::{Deployment, RuleRegistry};
use crate::row::{Row, ViewId};
use cold::ColdTier;

pub use crate::time::{Diff, Time};

pub mod cold;
mod compact;
mod conversion_hour;
mod features;
mod fraud_alerts;
mod gmv_minute;
mod inventory;
mod orders;
mod payment_status;
mod route;
mod sessions;
pub mod state;

use conversion_hour::conversion_hour;
use fraud_alerts::fraud_alerts;
use gmv_minute::gmv_minute;
use inventory::inventory;
use payment_status::payment_status;
use route::{ORDER, Order, PaymentRec, Routed, route};
use sessions::{session_rows, sessions};

type Coll<'s, D> = VecCollection<'s, Time, D, Diff>;

const MINUTE_MS: Millis = 60_000;

/// `(tenant_id, id)`: the key of most groups.
type Key = (String, String);

/// The update streams as rows, each with its table, in [`ViewId::ALL`] order (that of
/// [`crate::row::TABLES`]): the six views, then the dead letters of failed rule evaluations.
pub struct ViewStreams<'s> {
    pub views: Vec<(ViewId, Coll<'s, Row>)>,
}

fn floor(t: Millis, unit: Millis) -> Millis {
    t.div_euclid(unit) * unit
}

/// What bounds the views' state (SPEC §2.7).
#[derive(Clone, Debug, Default)]
pub struct Retention {
    /// The lateness admission applies (it quarantines events further behind their tenant's
    /// watermark): state no admissible event can change leaves the dataflow.
    pub lateness: Option<Millis>,
    /// Where the entity records idle for a while go (this worker's handle); `None` keeps
    /// them all in memory.
    pub cold: Option<ColdTier>,
}

/// Builds every view over `admitted` (events with the logical time they were admitted at);
/// fraud rules are judged by the versions `deployments` names, looked up in `rules`;
/// `retention` says what state may leave memory.
pub fn build<'s>(
    admitted: Coll<'s, (Time, Event)>,
    deployments: Coll<'s, Deployment>,
    rules: Arc<RuleRegistry>,
    retention: &Retention,
) -> ViewStreams<'s> {
    build_selected(admitted, deployments, rules, retention, |_| true)
}

/// As [`build`], with only the tables `want` picks and the operators they need; the others
/// stay empty. The per-view benchmarks measure each view's own incremental cost this way.
pub fn build_selected<'s>(
    admitted: Coll<'s, (Time, Event)>,
    deployments: Coll<'s, Deployment>,
    rules: Arc<RuleRegistry>,
    retention: &Retention,
    want: impl Fn(ViewId) -> bool,
) -> ViewStreams<'s> {
    let (lateness, cold) = (retention.lateness, retention.cold.as_ref());
    let (w_gmv, w_payments, w_inventory, w_sessions, w_conversion, w_alerts) = (
        want(ViewId::GmvMinute),
        want(ViewId::PaymentStatus),
        want(ViewId::Inventory),
        want(ViewId::Sessions),
        want(ViewId::ConversionHour),
        want(ViewId::FraudAlerts) || want(ViewId::DeadLetters),
    );
    let [orders, payments, cancels, adjustments, activity] = route(admitted);
    // The tables not wanted stay empty; they hang off the rarest events.
    let nothing = cancels.clone();
    let empty = || nothing.clone().flat_map(|_| None::<Row>);
    let orders: Coll<'s, (Key, Order)> = orders.flat_map(|r| match r {
        Routed::Order(key, order) => Some((key, order)),
        _ => None,
    });
    let payments: Coll<'s, (String, PaymentRec)> = payments.flat_map(|r| match r {
        Routed::Payment(tenant, payment) => Some((tenant, payment)),
        _ => None,
    });
    let cancels: Coll<'s, Key> = cancels.flat_map(|r| match r {
        Routed::Cancel(key) => Some(key),
        _ => None,
    });
    let adjustments: Coll<'s, (Key, i64)> = adjustments.flat_map(|r| match r {
        Routed::Adjustment(key, delta) => Some((key, delta)),
        _ => None,
    });
    // An order is session activity of its user too.
    let activity: Coll<'s, (Key, (Millis, u8))> = activity
        .flat_map(|r| match r {
            Routed::Activity(key, what) => Some((key, what)),
            _ => None,
        })
        .concat(
            orders
                .clone()
                .map(|((tenant, _), o)| ((tenant, o.user_id), (o.time, ORDER))),
        );

    let placed = if w_gmv || w_inventory {
        orders::orders(orders.clone(), cancels, payments.clone(), cold)
    } else {
        orders.clone().flat_map(|_| None)
    };

    let gmv = if w_gmv {
        gmv_minute(placed.clone())
    } else {
        empty()
    };
    let payment_status = if w_payments {
        payment_status(payments.clone(), cold)
    } else {
        empty()
    };
    let inventory = if w_inventory {
        inventory(adjustments, placed)
    } else {
        empty()
    };
    let sessions = (w_sessions || w_conversion).then(|| sessions(activity, lateness));
    let conversion = match &sessions {
        Some(sessions) if w_conversion => conversion_hour(sessions.clone()),
        _ => empty(),
    };
    let (alerts, dead_letters) = if w_alerts {
        fraud_alerts(orders, payments, deployments, rules, lateness, cold)
    } else {
        (empty(), empty())
    };

    let session_rows = match sessions {
        Some(sessions) if w_sessions => session_rows(sessions),
        _ => empty(),
    };
    ViewStreams {
        views: vec![
            (ViewId::GmvMinute, gmv),
            (ViewId::PaymentStatus, payment_status),
            (ViewId::Inventory, inventory),
            (ViewId::Sessions, session_rows),
            (ViewId::ConversionHour, conversion),
            (ViewId::FraudAlerts, alerts),
            (ViewId::DeadLetters, dead_letters),
        ],
    }
}

/// An exact sum, as the `i64` a view column holds: past `i64::MAX` (over 9,000 orders of the
/// largest admissible total in one group) it stays at the bound rather than wrapping or
/// stopping the worker.
pub(super) fn saturate(sum: i128) -> i64 {
    i64::try_from(sum).unwrap_or(if sum < 0 { i64::MIN } else { i64::MAX })
}
