//! Where a run's quarantined inputs go while it runs.
//!
//! A bounded run that writes outputs streams them to a Parquet file as they come, a row group
//! at a time, and holds only the first [`KEPT_IN_MEMORY`] for its [`super::RunResult`]: a
//! file of any number of bad lines costs a bounded amount of memory. A bounded run without
//! outputs (the library's) keeps them all; a live run without a landing zone keeps the most
//! recent; a durable run lands them with their offsets (its `Durability` does).

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::admit::Quarantined;
use crate::output::encode;

/// Quarantined inputs a spilling run still hands back in memory.
pub const KEPT_IN_MEMORY: usize = 10_000;

/// Quarantined inputs a live run without a landing zone keeps (the most recent).
pub const RECENT: usize = 100_000;

/// Bytes of raw input those may hold together: oversize inputs run to 100 KB each, and a
/// count alone would let a few thousand of them hold hundreds of megabytes.
pub const RECENT_BYTES: usize = 32 << 20;

/// Records buffered before they are written as one row group.
const ROW_GROUP: usize = 8_192;

/// Why the quarantine file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    #[error("cannot write the quarantine spill file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode the quarantine spill file {path}: {source}")]
    Parquet {
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
}

impl SpillError {
    /// The stable, machine-readable code of the variant.
    pub fn code(&self) -> &'static str {
        match self {
            SpillError::Io { .. } => "quarantine_spill_io",
            SpillError::Parquet { .. } => "quarantine_spill_encode",
        }
    }
}

pub(super) enum Quarantine {
    /// All of them, for the run's result.
    Keep(Vec<Quarantined>),
    /// The most recent ones (a run that never ends, with no landing zone), and the bytes of
    /// raw input they hold: at most [`RECENT`] records and [`RECENT_BYTES`].
    Recent(VecDeque<Quarantined>, usize),
    /// To the landing zone with their offsets, by the `Durability`.
    Landed,
    /// Streamed to a file for the run's `quarantine.parquet`.
    Spill(Box<Spill>),
}

impl Quarantine {
    pub(super) fn put(&mut self, records: impl IntoIterator<Item = Quarantined>) {
        match self {
            Quarantine::Keep(kept) => kept.extend(records),
            Quarantine::Recent(recent, bytes) => {
                for record in records {
                    *bytes += record.raw.len();
                    recent.push_back(record);
                    while recent.len() > RECENT || (*bytes > RECENT_BYTES && recent.len() > 1) {
                        let old = recent.pop_front().expect("more than one");
                        *bytes -= old.raw.len();
                    }
                }
            }
            Quarantine::Landed => {}
            Quarantine::Spill(spill) => spill.put(records),
        }
    }

    /// The records held in memory, and the spill file holding every record if there is one.
    pub(super) fn finish(self) -> Result<(Vec<Quarantined>, Option<SpillFile>), SpillError> {
        match self {
            Quarantine::Keep(kept) => Ok((kept, None)),
            Quarantine::Recent(recent, _) => Ok((recent.into(), None)),
            Quarantine::Landed => Ok((Vec::new(), None)),
            Quarantine::Spill(spill) => {
                let (kept, file) = (*spill).finish()?;
                Ok((kept, Some(file)))
            }
        }
    }
}

/// A quarantine being written to a temporary Parquet file.
pub(super) struct Spill {
    kept: Vec<Quarantined>,
    pending: Vec<Quarantined>,
    writer: Option<ArrowWriter<File>>,
    file: SpillFile,
    /// The first write error; the run reports it when it finishes.
    failed: Option<SpillError>,
}

/// A finished spill file (`raw`, `reason`), removed when dropped.
#[derive(Debug)]
pub struct SpillFile {
    pub path: PathBuf,
    /// Records it holds.
    pub records: u64,
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Spill {
    pub(super) fn new() -> Spill {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "weir-quarantine-{}-{}.parquet",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        Spill {
            kept: Vec::new(),
            pending: Vec::new(),
            writer: None,
            file: SpillFile { path, records: 0 },
            failed: None,
        }
    }

    fn put(&mut self, records: impl IntoIterator<Item = Quarantined>) {
        for record in records {
            if self.kept.len() < KEPT_IN_MEMORY {
                self.kept.push(record.clone());
            }
            self.pending.push(record);
            if self.pending.len() >= ROW_GROUP {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() || self.failed.is_some() {
            self.pending.clear();
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        if let Err(e) = self.write(&pending) {
            self.failed = Some(e);
        }
    }

    fn write(&mut self, records: &[Quarantined]) -> Result<(), SpillError> {
        let path = self.file.path.display().to_string();
        let parquet = |source| SpillError::Parquet {
            path: path.clone(),
            source,
        };
        let batch = encode::quarantine_batch(records)
            .map_err(|e| parquet(parquet::errors::ParquetError::External(Box::new(e))))?;
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => {
                let file = File::create(&self.file.path).map_err(|source| SpillError::Io {
                    path: path.clone(),
                    source,
                })?;
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .build();
                let writer =
                    ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(parquet)?;
                self.writer.insert(writer)
            }
        };
        writer.write(&batch).map_err(parquet)?;
        // Each batch becomes its own row group, so memory stays at one batch.
        writer.flush().map_err(parquet)?;
        self.file.records += records.len() as u64;
        Ok(())
    }

    fn finish(mut self) -> Result<(Vec<Quarantined>, SpillFile), SpillError> {
        self.flush();
        if self.writer.is_none() && self.failed.is_none() {
            // Nothing was quarantined: an empty file of the same columns.
            self.failed = self.write(&[]).err();
        }
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if let Some(writer) = self.writer.take() {
            let path = self.file.path.display().to_string();
            writer
                .close()
                .map_err(|source| SpillError::Parquet { path, source })?;
        }
        let kept = std::mem::take(&mut self.kept);
        let file = SpillFile {
            path: std::mem::take(&mut self.file.path),
            records: self.file.records,
        };
        Ok((kept, file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize) -> Quarantined {
        Quarantined {
            raw: format!("line {n}"),
            reason: "invalid_json".into(),
        }
    }

    #[test]
    fn a_live_run_keeps_the_most_recent_within_a_count_and_a_byte_cap() {
        let mut quarantine = Quarantine::Recent(VecDeque::new(), 0);
        quarantine.put((0..RECENT + 5).map(record));
        let (kept, _) = quarantine.finish().unwrap();
        assert_eq!(kept.len(), RECENT);
        assert_eq!(kept[0], record(5));
        // Oversize inputs are held by bytes: the newest that fit, and always the last one.
        let big = |n: usize| Quarantined {
            raw: format!("{n:0>50000}{}", "0".repeat(50_000)),
            reason: "oversize".into(),
        };
        let mut quarantine = Quarantine::Recent(VecDeque::new(), 0);
        quarantine.put((0..1_000).map(big));
        quarantine.put([record(7)]);
        let (kept, _) = quarantine.finish().unwrap();
        let bytes: usize = kept.iter().map(|q| q.raw.len()).sum();
        assert!(bytes <= RECENT_BYTES && bytes > RECENT_BYTES - 100_000);
        assert_eq!(kept.last(), Some(&record(7)));
        assert_eq!(kept[kept.len() - 2], big(999));
        let mut quarantine = Quarantine::Recent(VecDeque::new(), 0);
        quarantine.put([Quarantined {
            raw: "x".repeat(RECENT_BYTES + 1),
            reason: "oversize".into(),
        }]);
        assert_eq!(quarantine.finish().unwrap().0.len(), 1);
    }

    #[test]
    fn a_spill_keeps_a_bounded_prefix_in_memory_and_every_record_in_its_file() {
        let mut quarantine = Quarantine::Spill(Box::new(Spill::new()));
        let total = KEPT_IN_MEMORY + 3 * ROW_GROUP + 17;
        quarantine.put((0..total).map(record));
        let (kept, file) = quarantine.finish().unwrap();
        let file = file.expect("a spilling quarantine has a file");
        assert_eq!(kept.len(), KEPT_IN_MEMORY);
        assert_eq!(kept[KEPT_IN_MEMORY - 1], record(KEPT_IN_MEMORY - 1));
        assert_eq!(file.records, total as u64);
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            File::open(&file.path).unwrap(),
        )
        .unwrap();
        assert!(reader.metadata().num_row_groups() > 1);
        let mut raws = Vec::new();
        for batch in reader.build().unwrap() {
            let batch = batch.unwrap();
            let raw = batch
                .column(0)
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap();
            raws.extend(raw.iter().map(|r| r.unwrap().to_owned()));
        }
        assert_eq!(raws.len(), total);
        assert_eq!(raws[total - 1], format!("line {}", total - 1));
        let path = file.path.clone();
        drop(file);
        assert!(!path.exists(), "the spill file is removed once landed");
    }
}
