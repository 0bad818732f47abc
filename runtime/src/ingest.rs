//! Admission: raw lines in, valid deduplicated events out, everything else to quarantine.
//!
//! The stage between a source and the dataflow: decode and validate ([`crate::decode`],
//! which also masks card data), drop repeated `(tenant_id, event_id)` pairs keeping the first
//! in input order, and run the transform plugins. Admission is sequential, so "first in input
//! order" is simply the first one this stage sees.

use std::collections::{BTreeMap, HashSet};

use crate::decode::{self, Reason};
use crate::event::Event;
use crate::plugins::Transform;

/// An input that was not admitted: the (card-scrubbed) input and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    pub raw: String,
    pub reason: String,
}

/// Counters of what admission did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// Input lines seen.
    pub read: u64,
    /// Events that passed validation and dedup and entered the dataflow.
    pub admitted: u64,
    /// Valid copies of an event already admitted.
    pub duplicates: u64,
    /// Quarantined inputs by reason.
    pub quarantined: BTreeMap<String, u64>,
    /// Admitted events by type.
    pub by_type: BTreeMap<&'static str, u64>,
}

impl AdmissionStats {
    pub fn quarantined_total(&self) -> u64 {
        self.quarantined.values().sum()
    }
}

/// Where quarantined inputs go.
pub trait QuarantineSink: Send {
    fn put(&mut self, record: Quarantined);
}

impl QuarantineSink for Vec<Quarantined> {
    fn put(&mut self, record: Quarantined) {
        self.push(record);
    }
}

/// The admission stage.
pub struct Admission<Q: QuarantineSink> {
    seen: HashSet<(String, String)>,
    transforms: Vec<Box<dyn Transform>>,
    stats: AdmissionStats,
    quarantine: Q,
}

impl<Q: QuarantineSink> Admission<Q> {
    pub fn new(transforms: Vec<Box<dyn Transform>>, quarantine: Q) -> Self {
        Admission {
            seen: HashSet::new(),
            transforms,
            stats: AdmissionStats::default(),
            quarantine,
        }
    }

    pub fn stats(&self) -> &AdmissionStats {
        &self.stats
    }

    pub fn quarantine(&self) -> &Q {
        &self.quarantine
    }

    pub fn into_quarantine(self) -> Q {
        self.quarantine
    }

    fn reject(&mut self, raw: &[u8], reason: Reason) {
        let reason = reason.to_string();
        *self.stats.quarantined.entry(reason.clone()).or_default() += 1;
        self.quarantine.put(Quarantined {
            raw: decode::scrub(raw),
            reason,
        });
    }

    /// Admits a batch of lines, returning the events that enter the dataflow.
    pub fn admit<L: AsRef<[u8]>>(&mut self, lines: &[L]) -> Vec<Event> {
        let mut events = Vec::with_capacity(lines.len());
        // The line each event came from, so a plugin failure can quarantine it whole.
        let mut origin = Vec::with_capacity(lines.len());
        for (index, line) in lines.iter().enumerate() {
            let line = line.as_ref();
            self.stats.read += 1;
            match decode::decode(line) {
                Ok(event) => {
                    let key = (event.tenant_id.clone(), event.event_id.clone());
                    if self.seen.insert(key) {
                        events.push(event);
                        origin.push(index);
                    } else {
                        self.stats.duplicates += 1;
                    }
                }
                Err(reason) => self.reject(line, reason),
            }
        }
        for t in 0..self.transforms.len() {
            let results = self.transforms[t].apply(std::mem::take(&mut events));
            let mut next_origin = Vec::with_capacity(origin.len());
            for (result, &index) in results.into_iter().zip(&origin) {
                match result {
                    Ok(out) => {
                        next_origin.extend(std::iter::repeat_n(index, out.len()));
                        events.extend(out);
                    }
                    Err(error) => {
                        let reason = Reason::PluginError {
                            plugin: self.transforms[t].name().to_owned(),
                            kind: error.code().to_owned(),
                        };
                        self.reject(lines[index].as_ref(), reason);
                    }
                }
            }
            origin = next_origin;
        }
        for event in &events {
            *self
                .stats
                .by_type
                .entry(event.body.type_name())
                .or_default() += 1;
        }
        self.stats.admitted += events.len() as u64;
        events
    }
}
