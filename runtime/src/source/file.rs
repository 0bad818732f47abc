//! NDJSON from a file or stdin: one record per non-blank line, numbered from 0.
//!
//! It only reads and numbers lines: it never decodes or judges one (a malformed line is
//! admission's to quarantine), and it cannot seek, so a run on it never checkpoints.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::sync::Arc;
use std::time::Duration;

use super::{Polled, Record, Source, SourceError, numbered};
use crate::event::MAX_INPUT_BYTES;

/// The stream name of NDJSON input (its landed raw files are `input-0-<first>-<last>`).
pub const STREAM: &str = "input";

/// Lines of NDJSON.
pub struct FileSource<'a> {
    reader: Box<dyn BufRead + 'a>,
    what: String,
    stream: Arc<str>,
    next: i64,
}

impl<'a> FileSource<'a> {
    /// Reads `path`, or stdin for `-`.
    pub fn open(path: &str) -> Result<FileSource<'static>, SourceError> {
        let reader: Box<dyn BufRead> = if path == "-" {
            Box::new(BufReader::with_capacity(1 << 20, io::stdin().lock()))
        } else {
            let file = File::open(path).map_err(|source| SourceError::Io {
                what: format!("input file {path}"),
                source,
            })?;
            Box::new(BufReader::with_capacity(1 << 20, file))
        };
        Ok(FileSource::new(reader, path))
    }

    /// Reads NDJSON from `reader`; `what` names it in errors.
    pub fn new(reader: impl BufRead + 'a, what: &str) -> FileSource<'a> {
        FileSource {
            reader: Box::new(reader),
            what: what.to_owned(),
            stream: STREAM.into(),
            next: 0,
        }
    }
}

/// Reads up to `max` lines without their `\n` / `\r\n`; blank lines are skipped.
///
/// A line is kept only up to [`MAX_INPUT_BYTES`] (an oversize line up to that is quarantined
/// whole); the rest of a longer one is read past, never held, so one huge line cannot
/// exhaust memory.
pub fn read_lines(input: &mut impl BufRead, max: usize) -> io::Result<Vec<Vec<u8>>> {
    let mut lines = Vec::with_capacity(max);
    while lines.len() < max {
        let mut line = Vec::new();
        if read_line_capped(input, &mut line, MAX_INPUT_BYTES)? == 0 {
            break;
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            lines.push(line);
        }
    }
    Ok(lines)
}

/// As `read_until(b'\n')`, keeping at most `cap` bytes of the line (and its newline, when
/// the line is shorter); returns the bytes read, kept or not.
fn read_line_capped(input: &mut impl BufRead, line: &mut Vec<u8>, cap: usize) -> io::Result<usize> {
    let mut read = 0;
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(read);
        }
        let (used, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (buf.len(), false),
        };
        let room = cap.saturating_sub(line.len());
        line.extend_from_slice(&buf[..used.min(room)]);
        input.consume(used);
        read += used;
        if done {
            return Ok(read);
        }
    }
}

impl Source for FileSource<'_> {
    fn streams(&self) -> Vec<String> {
        vec![STREAM.to_owned()]
    }

    fn poll(
        &mut self,
        max: usize,
        _wait: Duration,
        out: &mut Vec<Record>,
    ) -> Result<Polled, SourceError> {
        let lines = read_lines(&mut self.reader, max).map_err(|source| SourceError::Io {
            what: self.what.clone(),
            source,
        })?;
        if lines.is_empty() {
            return Ok(Polled::End);
        }
        Ok(numbered(&self.stream, &mut self.next, lines, out))
    }
}
