//! How an event line is built: a JSON object whose field order is fixed, and the header every
//! event starts with.
//!
//! It owns the formatting (field order, timestamps, the occasional non-UTC offset) and none of
//! the content: what a line says is its caller's, breaking one is `malformed`'s, and nothing
//! here checks a line against the event contract.

use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde::Serialize;

use super::catalogue::IdKind;
use super::{Generator, P_OFFSET_TIME};

/// Offsets (seconds east of UTC) used for the non-UTC event times.
const OFFSETS: [i32; 6] = [7_200, 3_600, -18_000, 19_800, 32_400, -10_800];

/// A JSON object under construction: keys in insertion order, values as JSON text. Keeping the
/// values rendered lets malformed lines drop a field or splice in any raw text, and the field
/// order stays fixed whatever features `serde_json` was built with.
#[derive(Default)]
pub(super) struct Line {
    fields: Vec<(&'static str, String)>,
}

impl Line {
    pub(super) fn with<T: Serialize + ?Sized>(mut self, key: &'static str, value: &T) -> Line {
        self.fields.push((key, json(value)));
        self
    }

    pub(super) fn with_opt<T: Serialize + ?Sized>(
        self,
        key: &'static str,
        value: Option<&T>,
    ) -> Line {
        match value {
            Some(v) => self.with(key, v),
            None => self,
        }
    }

    /// Sets `key` to raw JSON text, in place if present.
    pub(super) fn set(&mut self, key: &'static str, raw: String) {
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some(field) => field.1 = raw,
            None => self.fields.push((key, raw)),
        }
    }

    pub(super) fn remove(&mut self, key: &str) {
        self.fields.retain(|(k, _)| *k != key);
    }

    pub(super) fn render(&self) -> String {
        let len: usize = self.fields.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
        let mut out = String::with_capacity(len + 2);
        out.push('{');
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Keys are plain ASCII identifiers: no escaping needed.
            out.push('"');
            out.push_str(key);
            out.push_str("\":");
            out.push_str(value);
        }
        out.push('}');
        out
    }
}

pub(super) fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data always serialises")
}

impl Generator {
    fn format_time(&mut self, ms: i64) -> String {
        let utc =
            DateTime::from_timestamp_millis(ms).expect("simulated time within chrono's range");
        if self.rng.chance(P_OFFSET_TIME) {
            let offset =
                FixedOffset::east_opt(self.rng.pick(&OFFSETS)).expect("offsets are < 24 h");
            utc.with_timezone(&offset)
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        } else {
            utc.to_rfc3339_opts(SecondsFormat::Millis, true)
        }
    }

    /// The fields every event has; consumes an event id.
    pub(super) fn header(&mut self, ti: usize, kind: &'static str, t: i64, version: u8) -> Line {
        let event_id = self.next_id(ti, IdKind::Event);
        let time = self.format_time(t);
        Line::default()
            .with("event_id", &event_id)
            .with("tenant_id", &self.tenants[ti].name)
            .with("type", kind)
            .with("event_time", &time)
            .with("schema_version", &version)
    }

    /// Orders follow their own version rule; other producers were mostly migrated to v2.
    pub(super) fn version(&mut self) -> u8 {
        if self.rng.chance(0.1) { 1 } else { 2 }
    }
}
