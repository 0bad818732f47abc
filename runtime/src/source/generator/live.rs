//! The built-in generator as a live source: its events at a fixed rate, from now on.
//!
//! It is the only part of the generator that knows the runtime: it adapts the stream to
//! [`Source`] and paces it by the wall clock, which sets the start time and the pace and
//! nothing else of the stream. It cannot seek, so a live run on it never checkpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{GenConfig, Generator};
use crate::source::{Polled, Record, Source, SourceError, numbered};

/// The stream name of generated events.
pub const STREAM: &str = "generator";

/// Generated events, `rate` per second since the first poll.
pub struct GeneratorSource {
    generator: Generator,
    rate: u64,
    started: Option<Instant>,
    /// Whether the last poll handed out everything that was due.
    caught_up: bool,
    stream: Arc<str>,
    next: i64,
}

impl GeneratorSource {
    /// The generator with `seed` and `tenants`, its event times starting now.
    pub fn new(seed: u64, tenants: usize, rate: u64) -> GeneratorSource {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        GeneratorSource {
            generator: Generator::new(GenConfig {
                seed,
                tenants,
                start_ms: now_ms,
            }),
            rate,
            started: None,
            caught_up: false,
            stream: STREAM.into(),
            next: 0,
        }
    }
}

impl Source for GeneratorSource {
    fn streams(&self) -> Vec<String> {
        vec![STREAM.to_owned()]
    }

    /// The events due by now. Once it has caught up, it waits `wait` (a live run's tick)
    /// before the next batch, so events arrive a tick's worth at a time rather than one by
    /// one.
    fn poll(
        &mut self,
        max: usize,
        wait: Duration,
        out: &mut Vec<Record>,
    ) -> Result<Polled, SourceError> {
        if self.caught_up {
            std::thread::sleep(wait);
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        let due = (started.elapsed().as_secs_f64() * self.rate as f64) as i64;
        let n = (due - self.next).clamp(0, max as i64) as usize;
        self.caught_up = n < max;
        let lines = self.generator.by_ref().take(n).map(String::into_bytes);
        Ok(numbered(&self.stream, &mut self.next, lines, out))
    }
}
