//! The status line of a live run, every so often.
//!
//! It only reads: the admission counters it is handed and the published views, under the
//! store's read lock, so it never holds the workers back; it writes nothing but that line on
//! stderr.

use std::time::{Duration, Instant};

use crate::admit::AdmissionStats;
use crate::dataflow::store::ViewStore;
use crate::dataflow::views::cold::ColdTier;
use crate::row::ViewId;

pub(super) struct Status {
    every: Duration,
    last: Instant,
    read: u64,
}

impl Status {
    pub(super) fn new(every: Duration) -> Self {
        Status {
            every,
            last: Instant::now(),
            read: 0,
        }
    }

    pub(super) fn tick(
        &mut self,
        stats: &AdmissionStats,
        store: &ViewStore,
        cold: Option<&ColdTier>,
    ) {
        if self.last.elapsed() < self.every {
            return;
        }
        let rate = (stats.read - self.read) as f64 / self.last.elapsed().as_secs_f64();
        self.read = stats.read;
        self.last = Instant::now();
        let alerts = ViewId::FraudAlerts;
        let (as_of, count) = store.read(|p| (p.as_of, p.view(alerts).len()));
        let cold = cold.map_or(String::new(), |c| {
            format!(" | cold moved {} back {}", c.moved(), c.revived())
        });
        eprintln!(
            "weir: {rate:.0} events/s | read {} admitted {} duplicates {} quarantined {} | {} {count} | logical time {}{cold}",
            stats.read,
            stats.admitted,
            stats.duplicates,
            stats.quarantined_total(),
            alerts.name(),
            as_of.map_or_else(|| "-".to_owned(), |t| t.to_string()),
        );
    }
}
