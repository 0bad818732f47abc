//! Replay: raw events landed earlier (Parquet), read again as input lines.
//!
//! How a team recomputes history after fixing a plugin: the `event` column of every raw file
//! named, in path order, goes through admission and the current plugins like any NDJSON line.
//! The records are numbered like a file's lines, so the replay lands under
//! [`super::file::STREAM`] too.
//!
//! It only reads landed files, never writes or removes one, and trusts nothing it reads: every
//! replayed line is decoded and deduplicated again by admission.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::StringArray;

use super::{Polled, Record, Source, SourceError, file, numbered};

/// Why landed raw files cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{input}: not a usable glob: {message}")]
    Glob { input: String, message: String },
    #[error("{input}: no raw Parquet files there")]
    Empty { input: String },
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path} is not Parquet: {message}")]
    NotParquet { path: String, message: String },
    #[error("{path} has no `event` text column: not a raw landing file")]
    NotRaw { path: String },
}

impl ReplayError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ReplayError::Glob { .. } => "replay_glob",
            ReplayError::Empty { .. } => "replay_empty",
            ReplayError::Read { .. } => "replay_read",
            ReplayError::NotParquet { .. } => "replay_not_parquet",
            ReplayError::NotRaw { .. } => "replay_not_raw",
        }
    }
}

/// The raw Parquet files named by `input`: a landing directory (its `raw/` files), one file,
/// or a glob such as `out/raw/tenant_id=acme/**/*.parquet`; sorted by path.
pub fn raw_files(input: &str) -> Result<Vec<PathBuf>, ReplayError> {
    let path = Path::new(input);
    let pattern = if path.is_dir() {
        let raw = path.join("raw");
        let base = if raw.is_dir() { raw } else { path.to_owned() };
        format!("{}/**/*.parquet", base.display())
    } else {
        input.to_owned()
    };
    let mut files: Vec<PathBuf> = glob::glob(&pattern)
        .map_err(|e| ReplayError::Glob {
            input: input.to_owned(),
            message: e.to_string(),
        })?
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ReplayError::Empty {
            input: input.to_owned(),
        });
    }
    Ok(files)
}

/// Whether `input` names landed Parquet rather than NDJSON.
pub fn is_landed(input: &str) -> bool {
    input != "-"
        && (Path::new(input).is_dir() || input.ends_with(".parquet") || input.contains('*'))
}

/// The events of one raw file, each as its JSON line.
pub fn read_raw(path: &Path) -> Result<Vec<String>, ReplayError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let name = path.display().to_string();
    let read = |message: String| ReplayError::Read {
        path: name.clone(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| read(e.to_string()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| ReplayError::NotParquet {
            path: name.clone(),
            message: e.to_string(),
        })?;
    let mut lines = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| read(e.to_string()))?;
        let column = batch
            .column_by_name("event")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .ok_or_else(|| ReplayError::NotRaw { path: name.clone() })?;
        lines.extend(column.iter().flatten().map(str::to_owned));
    }
    Ok(lines)
}

/// Landed raw files, one after the other.
pub struct ReplaySource {
    files: VecDeque<PathBuf>,
    lines: VecDeque<String>,
    stream: Arc<str>,
    next: i64,
}

impl ReplaySource {
    /// The files `input` names (see [`raw_files`]).
    pub fn open(input: &str) -> Result<ReplaySource, ReplayError> {
        Ok(ReplaySource {
            files: raw_files(input)?.into(),
            lines: VecDeque::new(),
            stream: file::STREAM.into(),
            next: 0,
        })
    }

    /// How many files are left to read.
    pub fn files(&self) -> usize {
        self.files.len()
    }
}

impl Source for ReplaySource {
    fn streams(&self) -> Vec<String> {
        vec![file::STREAM.to_owned()]
    }

    /// A batch never spans two files.
    fn poll(
        &mut self,
        max: usize,
        _wait: Duration,
        out: &mut Vec<Record>,
    ) -> Result<Polled, SourceError> {
        while self.lines.is_empty() {
            let Some(path) = self.files.pop_front() else {
                return Ok(Polled::End);
            };
            self.lines = read_raw(&path)?.into();
        }
        let take = self.lines.len().min(max);
        let payloads = self.lines.drain(..take).map(String::into_bytes);
        Ok(numbered(&self.stream, &mut self.next, payloads, out))
    }
}
