//! Sources: where input lines come from, each with its position.
//!
//! Every source hands the run driver batches of [`Record`]s: a payload (one NDJSON line or one
//! Kafka message, not yet decoded) and where it came from — a stream (a topic, `input` for a
//! file, `generator`), a partition and an offset within it. The position is what the landing
//! zone names its files by and what a checkpoint records, so a source that can [`Source::seek`]
//! resumes exactly where the state it restores ends.
//!
//! A source owns reading only: it never decodes, deduplicates or touches the dataflow.
//!
//! - [`file`]: NDJSON from a file or stdin (the line number is the offset);
//! - [`replay`]: raw events landed earlier, as Parquet;
//! - [`generator`]: the built-in event generator, paced for live runs;
//! - [`kafka`]: every partition of one or more topics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub mod file;
pub mod generator;
pub mod kafka;
pub mod replay;

/// The next offset to read, per `(stream, partition)`.
pub type Offsets = BTreeMap<(String, i32), i64>;

/// One input as a source read it.
#[derive(Clone, Debug)]
pub struct Record {
    /// The stream: a Kafka topic, [`file::STREAM`], [`generator::live::STREAM`].
    pub stream: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
}

/// What a poll found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polled {
    /// This many records were appended (0: none yet; the source is live).
    Records(usize),
    /// The source is exhausted: a bounded run ends.
    End,
}

/// A failure of a source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Replay(#[from] replay::ReplayError),
    #[error(transparent)]
    Kafka(#[from] kafka::KafkaSourceError),
}

impl SourceError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SourceError::Io { .. } => "source_io",
            SourceError::Replay(e) => e.code(),
            SourceError::Kafka(e) => e.code(),
        }
    }
}

/// A source of input lines.
pub trait Source {
    /// The streams this source reads (the landing zone's files of other streams are left
    /// alone on recovery).
    fn streams(&self) -> Vec<String>;

    /// Appends at most `max` records to `out`, waiting at most `wait` for the first.
    fn poll(
        &mut self,
        max: usize,
        wait: Duration,
        out: &mut Vec<Record>,
    ) -> Result<Polled, SourceError>;

    /// Whether the source can resume at recorded offsets, so a run on it can checkpoint.
    fn seekable(&self) -> bool {
        false
    }

    /// Positions the source at `from` (a partition not there starts at its beginning) before
    /// the first poll, waiting for it to be reachable until `stop` is set. Returns `false`
    /// when stopped first.
    fn seek(&mut self, from: &Offsets, stop: &AtomicBool) -> Result<bool, SourceError> {
        let _ = (from, stop);
        Ok(true)
    }

    /// Tells the source how far a durable checkpoint got (Kafka reports it to the consumer
    /// group for lag monitoring).
    fn commit(&mut self, upto: &Offsets) {
        let _ = upto;
    }
}

/// Records of one stream's partition 0 numbered from `next` on, appended to `out`.
pub(crate) fn numbered(
    stream: &Arc<str>,
    next: &mut i64,
    payloads: impl IntoIterator<Item = Vec<u8>>,
    out: &mut Vec<Record>,
) -> Polled {
    let before = out.len();
    for payload in payloads {
        out.push(Record {
            stream: stream.clone(),
            partition: 0,
            offset: *next,
            payload,
        });
        *next += 1;
    }
    Polled::Records(out.len() - before)
}
