//! Checkpoints: what a restart needs to continue exactly where a durable run left off.
//!
//! A checkpoint records the source offsets, the logical time, the rule versions and
//! deployments in force (uploaded components are kept beside it), the admission counters, and
//! the run's state as of an earlier logical time plus the input since:
//!
//! - a **state** file ([`State`]): every dataflow operator's state on every worker (with a
//!   savepoint of the cold tier's files), the published views, the deduplication ids still
//!   remembered, and the gold files the export at that time writes — what the run holds, which
//!   retention bounds, never its history;
//! - **segments**: the events admitted since that state, with the time each was admitted at,
//!   and the `(tenant_id, event_id)` pairs they claimed; each checkpoint adds one.
//!
//! A restart starts every operator from the state and replays only the segments, so its time
//! and the checkpoint's size are bounded by what retention keeps. A new state is written once
//! the segments since the last one hold enough events (`snapshot_events`) or number
//! [`MAX_SEGMENTS`]; the segments before it, and any state no kept checkpoint names, go.
//!
//! Every file is written with the same commit protocol: write a temporary file, fsync it,
//! rename it into place, fsync the directory. A manifest (`checkpoint-<id>.json`) ends with a
//! hash of its own text and names its segments with their lengths and hashes, so a torn or
//! partial checkpoint — a crash mid-write, a truncated file — fails its checks and is never
//! loaded: the newest one that passes is, with a warning about each one skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::admit::AdmissionStats;
use crate::dataflow::pipeline::DataflowState;
use crate::dataflow::store::SavedStore;
use crate::event::{Event, Millis, TYPE_NAMES};
use crate::output::gold::GoldFile;
use crate::plugins::registry::{SavedRules, fnv1a};
use crate::plugins::transforms::SavedTransforms;
use crate::time::Time;

/// A checkpoint names at most this many segments: the next one writes a state instead.
pub const MAX_SEGMENTS: usize = 64;
/// Complete checkpoints kept; older ones and the segments only they name are removed.
const KEEP: usize = 3;

/// A failure to write or read checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint directory {dir}: {source}")]
    Io {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode checkpoint {id}: {source}")]
    Encode {
        id: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode the state of checkpoint {id}: {why}")]
    EncodeState { id: u64, why: String },
    #[error("checkpoint {dir}: no component {hash} for uploaded rule {name}")]
    MissingComponent {
        dir: String,
        name: String,
        hash: String,
    },
}

impl CheckpointError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            CheckpointError::Io { .. } => "checkpoint_io",
            CheckpointError::Encode { .. } => "checkpoint_encode",
            CheckpointError::EncodeState { .. } => "checkpoint_encode_state",
            CheckpointError::MissingComponent { .. } => "checkpoint_missing_component",
        }
    }
}

/// Why a checkpoint on disk is not loaded (an earlier one is tried instead).
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error("{0}")]
    Read(std::io::Error),
    #[error("segment {file}: {message}")]
    Segment { file: String, message: String },
    #[error(
        "segment {file} has {bytes} bytes and hash {hash}, the manifest says {want_bytes} and {want_hash}"
    )]
    SegmentMismatch {
        file: String,
        bytes: usize,
        hash: String,
        want_bytes: u64,
        want_hash: String,
    },
    #[error("not UTF-8")]
    NotUtf8,
    #[error("no hash line: the file is cut short")]
    CutShort,
    #[error("its hash does not match its text")]
    HashMismatch,
    #[error("{0}")]
    Json(serde_json::Error),
}

impl Unreadable {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Unreadable::Read(_) => "unreadable_io",
            Unreadable::Segment { .. } => "unreadable_segment",
            Unreadable::SegmentMismatch { .. } => "segment_mismatch",
            Unreadable::NotUtf8 => "not_utf8",
            Unreadable::CutShort => "cut_short",
            Unreadable::HashMismatch => "hash_mismatch",
            Unreadable::Json(_) => "bad_json",
        }
    }
}

/// A segment file as its manifest names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    pub file: String,
    pub bytes: u64,
    pub hash: String,
}

/// Part of the dataflow's input: admitted events with their admission time, and the
/// deduplication pairs first seen in the same stretch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub events: Vec<(Time, Event)>,
    pub seen: Vec<(String, String)>,
    /// The event time of each pair in `seen`, so dedup can forget it once it is past the
    /// lateness (a segment written before lateness existed has none: its ids are kept).
    #[serde(default)]
    pub seen_ms: Vec<Millis>,
}

impl Segment {
    /// Records the pairs admission claimed.
    pub fn claim(&mut self, claimed: impl IntoIterator<Item = (String, String, Millis)>) {
        self.pad();
        for (tenant, id, time) in claimed {
            self.seen.push((tenant, id));
            self.seen_ms.push(time);
        }
    }

    /// The pairs with their times, taken out of the segment.
    pub fn take_seen(&mut self) -> impl Iterator<Item = (String, String, Millis)> + use<> {
        self.pad();
        let seen = std::mem::take(&mut self.seen);
        let times = std::mem::take(&mut self.seen_ms);
        seen.into_iter()
            .zip(times)
            .map(|((tenant, id), time)| (tenant, id, time))
    }

    fn pad(&mut self) {
        self.seen_ms.resize(self.seen.len(), Millis::MAX);
    }
}

/// The admission counters, as a checkpoint records them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedStats {
    pub read: u64,
    pub admitted: u64,
    pub duplicates: u64,
    pub quarantined: BTreeMap<String, u64>,
    pub admitted_by: Vec<(String, String, u64)>,
}

impl From<&AdmissionStats> for SavedStats {
    fn from(s: &AdmissionStats) -> Self {
        SavedStats {
            read: s.read,
            admitted: s.admitted,
            duplicates: s.duplicates,
            quarantined: s.quarantined.clone(),
            admitted_by: s
                .admitted_by
                .iter()
                .map(|((tenant, kind), n)| (tenant.clone(), (*kind).to_owned(), *n))
                .collect(),
        }
    }
}

impl SavedStats {
    pub fn to_stats(&self) -> AdmissionStats {
        AdmissionStats {
            read: self.read,
            admitted: self.admitted,
            duplicates: self.duplicates,
            quarantined: self.quarantined.clone(),
            admitted_by: self
                .admitted_by
                .iter()
                .filter_map(|(tenant, kind, n)| {
                    let kind = TYPE_NAMES.iter().find(|k| **k == kind.as_str())?;
                    Some(((tenant.clone(), *kind), *n))
                })
                .collect(),
        }
    }
}

/// The run's state at a logical time (the dataflow's `epoch`): what a restart starts from.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub dataflow: DataflowState,
    /// The published views, with the rows the gold export below took out.
    pub store: SavedStore,
    /// The deduplication ids still remembered, with their events' times.
    pub seen: Vec<(String, String, Millis)>,
    /// The gold files the export at this time writes once the checkpoint is committed: a
    /// restart writes them again (idempotently), so gold and the views stay one union.
    pub gold: Vec<GoldFile>,
}

/// A writer that counts and checksums what goes through it.
struct Summed<W> {
    inner: W,
    crc: u32,
    bytes: u64,
}

impl<W: Write> Write for Summed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// One checkpoint's manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub id: u64,
    /// The logical time events admitted after the checkpoint carry; everything it holds was
    /// admitted before it.
    pub epoch: Time,
    /// The next offset to read, per source and partition.
    pub offsets: Vec<(String, i32, i64)>,
    /// The state the segments follow (none: they hold everything since the start).
    #[serde(default)]
    pub state: Option<SegmentRef>,
    pub segments: Vec<SegmentRef>,
    pub rules: SavedRules,
    /// The transforms in force, by name.
    pub transforms: Vec<String>,
    /// Every transform version, and which is in force for whom (a checkpoint of an older
    /// run has none: its configured transforms were all there was).
    #[serde(default)]
    pub transform_versions: SavedTransforms,
    pub stats: SavedStats,
    /// Each tenant's watermark over everything the checkpoint holds (SPEC §2.7).
    #[serde(default)]
    pub watermarks: Vec<(String, Millis)>,
    /// When it was written, epoch milliseconds.
    pub written_ms: i64,
}

/// A checkpoint, its state and the segments it names, read back and checked.
pub struct Loaded {
    pub checkpoint: Checkpoint,
    pub state: Option<State>,
    pub segments: Vec<Segment>,
}

/// The checkpoints of one durable run.
pub struct Checkpoints {
    dir: PathBuf,
}

fn manifest_name(id: u64) -> String {
    format!("checkpoint-{id:010}.json")
}

/// The checksum a manifest and its segment references carry: CRC-32C, which catches every
/// burst error up to 32 bits and every odd number of flipped bits, where FNV-1a (what
/// checkpoints carried before) only hashes.
fn checksum(bytes: &[u8]) -> String {
    format!("crc32c:{:08x}", crc32c::crc32c(bytes))
}

/// Whether `bytes` match a recorded checksum: CRC-32C, or a bare FNV-1a of a checkpoint
/// written before checksums were CRC-32C (so an upgrade still recovers from it).
fn matches(bytes: &[u8], recorded: &str) -> bool {
    match recorded.strip_prefix("crc32c:") {
        Some(_) => checksum(bytes) == recorded,
        None => format!("{:016x}", fnv1a(bytes)) == recorded,
    }
}

impl Checkpoints {
    pub fn open(dir: &Path) -> Result<Checkpoints, CheckpointError> {
        let checkpoints = Checkpoints {
            dir: dir.to_owned(),
        };
        // Its own entry fsynced too: a committed checkpoint in a directory a power cut
        // forgot would be no checkpoint.
        crate::output::create_dir_all_synced(dir).map_err(|e| checkpoints.io(e))?;
        Ok(checkpoints)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(&self, source: std::io::Error) -> CheckpointError {
        CheckpointError::Io {
            dir: self.dir.display().to_string(),
            source,
        }
    }

    /// Write, fsync, rename, fsync the directory: the file is either wholly there or absent.
    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), CheckpointError> {
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut file = File::create(&tmp).map_err(|e| self.io(e))?;
        file.write_all(bytes).map_err(|e| self.io(e))?;
        file.sync_all().map_err(|e| self.io(e))?;
        drop(file);
        std::fs::rename(&tmp, self.dir.join(name)).map_err(|e| self.io(e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io(e))
    }

    /// The manifests present, newest first.
    fn manifests(&self) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| self.io(e))? {
            let entry = entry.map_err(|e| self.io(e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name
                .strip_prefix("checkpoint-")
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                found.push((id, entry.path()));
            }
        }
        found.sort_by_key(|m| std::cmp::Reverse(m.0));
        Ok(found)
    }

    /// The highest checkpoint id on disk, complete or not (a new one must not reuse it).
    pub fn highest_id(&self) -> Result<u64, CheckpointError> {
        Ok(self.manifests()?.first().map_or(0, |m| m.0))
    }

    /// The newest checkpoint that reads back whole, with its segments; each one skipped on
    /// the way is reported on stderr.
    pub fn latest(&self) -> Result<Option<Loaded>, CheckpointError> {
        for (_, path) in self.manifests()? {
            match self.load(&path) {
                Ok(loaded) => return Ok(Some(loaded)),
                Err(why) => eprintln!(
                    "weir: warning: checkpoint {} is unreadable ({why}); trying an earlier one",
                    path.display()
                ),
            }
        }
        Ok(None)
    }

    fn load(&self, path: &Path) -> Result<Loaded, Unreadable> {
        let text = std::fs::read(path).map_err(Unreadable::Read)?;
        let checkpoint = Self::check_manifest(&text)?;
        let state = match &checkpoint.state {
            Some(r) => {
                let bytes = self.read_checked(r)?;
                Some(
                    bincode::deserialize(&bytes).map_err(|e| Unreadable::Segment {
                        file: r.file.clone(),
                        message: e.to_string(),
                    })?,
                )
            }
            None => None,
        };
        let mut segments = Vec::with_capacity(checkpoint.segments.len());
        for r in &checkpoint.segments {
            let bytes = self.read_checked(r)?;
            let segment: Segment =
                serde_json::from_slice(&bytes).map_err(|e| Unreadable::Segment {
                    file: r.file.clone(),
                    message: e.to_string(),
                })?;
            segments.push(segment);
        }
        Ok(Loaded {
            checkpoint,
            state,
            segments,
        })
    }

    /// A file a manifest names, if it is whole: the length and checksum recorded.
    fn read_checked(&self, r: &SegmentRef) -> Result<Vec<u8>, Unreadable> {
        let bytes = std::fs::read(self.dir.join(&r.file)).map_err(|e| Unreadable::Segment {
            file: r.file.clone(),
            message: e.to_string(),
        })?;
        if bytes.len() as u64 != r.bytes || !matches(&bytes, &r.hash) {
            return Err(Unreadable::SegmentMismatch {
                file: r.file.clone(),
                bytes: bytes.len(),
                hash: checksum(&bytes),
                want_bytes: r.bytes,
                want_hash: r.hash.clone(),
            });
        }
        Ok(bytes)
    }

    /// A manifest is its JSON, a newline, and `crc32c:<checksum of the JSON>` (or, written by
    /// an earlier version, `fnv1a:<hash>`).
    fn check_manifest(text: &[u8]) -> Result<Checkpoint, Unreadable> {
        let text = std::str::from_utf8(text).map_err(|_| Unreadable::NotUtf8)?;
        let (body, trailer) = text
            .trim_end()
            .rsplit_once('\n')
            .ok_or(Unreadable::CutShort)?;
        let recorded = match trailer.strip_prefix("fnv1a:") {
            Some(legacy) => legacy,
            None if trailer.starts_with("crc32c:") => trailer,
            None => return Err(Unreadable::CutShort),
        };
        if !matches(body.as_bytes(), recorded) {
            return Err(Unreadable::HashMismatch);
        }
        serde_json::from_str(body).map_err(Unreadable::Json)
    }

    /// Writes a segment for checkpoint `id`.
    pub fn write_segment(&self, id: u64, segment: &Segment) -> Result<SegmentRef, CheckpointError> {
        let bytes =
            serde_json::to_vec(segment).map_err(|source| CheckpointError::Encode { id, source })?;
        let file = format!("segment-{id:010}.json");
        self.write_atomic(&file, &bytes)?;
        Ok(SegmentRef {
            file,
            bytes: bytes.len() as u64,
            hash: checksum(&bytes),
        })
    }

    /// Writes the state for checkpoint `id`, encoded straight into the file (a state is as
    /// large as what the run holds: it is never copied whole in memory).
    pub fn write_state(&self, id: u64, state: &State) -> Result<SegmentRef, CheckpointError> {
        let file = format!("state-{id:010}.bin");
        let tmp = self.dir.join(format!("{file}.tmp"));
        let out = File::create(&tmp).map_err(|e| self.io(e))?;
        let mut w = Summed {
            inner: std::io::BufWriter::with_capacity(1 << 20, out),
            crc: 0,
            bytes: 0,
        };
        bincode::serialize_into(&mut w, state).map_err(|e| match *e {
            bincode::ErrorKind::Io(e) => self.io(e),
            e => CheckpointError::EncodeState {
                id,
                why: e.to_string(),
            },
        })?;
        let (crc, bytes) = (w.crc, w.bytes);
        let out = w.inner.into_inner().map_err(|e| self.io(e.into_error()))?;
        out.sync_all().map_err(|e| self.io(e))?;
        drop(out);
        std::fs::rename(&tmp, self.dir.join(&file)).map_err(|e| self.io(e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io(e))?;
        Ok(SegmentRef {
            file,
            bytes,
            hash: format!("crc32c:{crc:08x}"),
        })
    }

    /// Commits `checkpoint` (its segments must be written), then removes what no kept
    /// checkpoint needs.
    pub fn commit(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let body = serde_json::to_string(checkpoint).map_err(|source| CheckpointError::Encode {
            id: checkpoint.id,
            source,
        })?;
        let text = format!("{body}\n{}\n", checksum(body.as_bytes()));
        self.write_atomic(&manifest_name(checkpoint.id), text.as_bytes())?;
        self.prune();
        Ok(())
    }

    /// Best effort: a file left behind costs disk, never correctness.
    fn prune(&self) {
        let Ok(manifests) = self.manifests() else {
            return;
        };
        let mut needed = BTreeSet::new();
        for (_, path) in manifests.iter().take(KEEP) {
            if let Ok(text) = std::fs::read(path)
                && let Ok(c) = Self::check_manifest(&text)
            {
                needed.extend(c.segments.into_iter().chain(c.state).map(|s| s.file));
            }
        }
        for (_, path) in manifests.iter().skip(KEEP) {
            let _ = std::fs::remove_file(path);
        }
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale_segment = (name.starts_with("segment-") || name.starts_with("state-"))
                && !needed.contains(&name);
            if stale_segment || name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn component_name(hash: &str) -> String {
        format!("component-{hash}.wasm")
    }

    /// Keeps an uploaded rule or transform component (once per content hash).
    pub fn save_component(&self, hash: &str, bytes: &[u8]) -> Result<(), CheckpointError> {
        let name = Self::component_name(hash);
        if self.dir.join(&name).exists() {
            return Ok(());
        }
        self.write_atomic(&name, bytes)
    }

    /// An uploaded rule or transform component kept earlier.
    pub fn component(&self, name: &str, hash: &str) -> Result<Vec<u8>, CheckpointError> {
        std::fs::read(self.dir.join(Self::component_name(hash))).map_err(|_| {
            CheckpointError::MissingComponent {
                dir: self.dir.display().to_string(),
                name: name.to_owned(),
                hash: hash.to_owned(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weir-ckpt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn event(id: &str) -> Event {
        crate::admit::decode::decode(
            format!(
                r#"{{"event_id":"{id}","tenant_id":"acme","type":"page_view","event_time":"2026-11-21T07:00:00Z","schema_version":1,"user_id":"u","url":"/"}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn commit(c: &Checkpoints, id: u64, previous: &[SegmentRef]) -> Checkpoint {
        let segment = Segment {
            events: vec![(id, event(&format!("e{id}")))],
            seen: vec![("acme".into(), format!("e{id}"))],
            seen_ms: vec![id as i64],
        };
        let mut segments = previous.to_vec();
        segments.push(c.write_segment(id, &segment).unwrap());
        let checkpoint = Checkpoint {
            id,
            epoch: id * 10,
            offsets: vec![("t".into(), 0, id as i64 * 100)],
            state: None,
            segments,
            rules: SavedRules::default(),
            transforms: vec!["normalize-payments".into()],
            transform_versions: SavedTransforms::default(),
            stats: SavedStats::default(),
            watermarks: vec![("acme".into(), id as i64)],
            written_ms: 0,
        };
        c.commit(&checkpoint).unwrap();
        checkpoint
    }

    #[test]
    fn the_newest_whole_checkpoint_is_loaded_with_all_its_segments() {
        let dir = scratch("whole");
        let c = Checkpoints::open(&dir).unwrap();
        assert!(c.latest().unwrap().is_none());
        let first = commit(&c, 1, &[]);
        let second = commit(&c, 2, &first.segments);
        let loaded = c.latest().unwrap().unwrap();
        assert_eq!(loaded.checkpoint, second);
        let ids: Vec<_> = loaded
            .segments
            .iter()
            .flat_map(|s| s.events.iter().map(|e| e.1.event_id.clone()))
            .collect();
        assert_eq!(ids, ["e1", "e2"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_manifest_or_segment_falls_back_to_the_previous_checkpoint() {
        let dir = scratch("torn");
        let c = Checkpoints::open(&dir).unwrap();
        let first = commit(&c, 1, &[]);
        let second = commit(&c, 2, &first.segments);
        // A manifest cut short.
        let newest = dir.join(manifest_name(2));
        let text = std::fs::read(&newest).unwrap();
        std::fs::write(&newest, &text[..text.len() / 2]).unwrap();
        assert_eq!(c.latest().unwrap().unwrap().checkpoint, first);
        // A whole manifest whose newest segment is damaged.
        std::fs::write(&newest, &text).unwrap();
        assert_eq!(c.latest().unwrap().unwrap().checkpoint, second);
        let segment = dir.join(&second.segments[1].file);
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&segment, &bytes).unwrap();
        assert_eq!(c.latest().unwrap().unwrap().checkpoint, first);
        // Nothing whole at all.
        std::fs::write(dir.join(manifest_name(1)), b"{").unwrap();
        assert!(c.latest().unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_segment_from_before_lateness_keeps_its_ids_for_good() {
        let old = r#"{"events":[],"seen":[["acme","e1"],["acme","e2"]]}"#;
        let mut segment: Segment = serde_json::from_str(old).unwrap();
        segment.claim([("acme".to_owned(), "e3".to_owned(), 7)]);
        let seen: Vec<_> = segment.take_seen().collect();
        assert_eq!(
            seen,
            [
                ("acme".to_owned(), "e1".to_owned(), Millis::MAX),
                ("acme".to_owned(), "e2".to_owned(), Millis::MAX),
                ("acme".to_owned(), "e3".to_owned(), 7),
            ]
        );
    }

    #[test]
    fn a_state_ends_the_segments_before_it_and_old_files_go() {
        let dir = scratch("state");
        let c = Checkpoints::open(&dir).unwrap();
        let first = commit(&c, 1, &[]);
        let second = commit(&c, 2, &first.segments);
        // Checkpoint 3 holds the state as of its time: no segment before it is needed.
        let state = State {
            seen: vec![("acme".into(), "e1".into(), 1)],
            ..State::default()
        };
        let mut third = second.clone();
        third.id = 3;
        third.state = Some(c.write_state(3, &state).unwrap());
        third.segments = Vec::new();
        c.commit(&third).unwrap();
        let mut last = third.clone();
        for id in 4..=6 {
            let segments = last.segments.clone();
            let mut next = commit(&c, id, &segments);
            next.state = third.state.clone();
            c.commit(&next).unwrap();
            last = next;
        }
        let loaded = c.latest().unwrap().unwrap();
        assert_eq!(loaded.checkpoint, last);
        assert_eq!(loaded.state.unwrap().seen, state.seen);
        let ids: Vec<_> = loaded
            .segments
            .iter()
            .flat_map(|s| s.events.iter().map(|e| e.1.event_id.clone()))
            .collect();
        assert_eq!(ids, ["e4", "e5", "e6"], "only the events since the state");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("segment-") || n.starts_with("state-"))
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                "segment-0000000004.json",
                "segment-0000000005.json",
                "segment-0000000006.json",
                "state-0000000003.bin"
            ],
            "the segments before the state went with the checkpoints that named them"
        );
        // A damaged state is caught like a damaged segment: the checkpoint is not loaded.
        let file = dir.join(&third.state.unwrap().file);
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        assert!(c.latest().unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn manifests_carry_crc32c_and_checkpoints_with_fnv1a_still_load() {
        let dir = scratch("crc");
        let c = Checkpoints::open(&dir).unwrap();
        let first = commit(&c, 1, &[]);
        let text = std::fs::read_to_string(dir.join(manifest_name(1))).unwrap();
        let trailer = text.trim_end().rsplit_once('\n').unwrap().1;
        assert!(trailer.starts_with("crc32c:"), "{trailer}");
        assert!(first.segments[0].hash.starts_with("crc32c:"));
        // Two flipped bits in the manifest's JSON are caught.
        let mut damaged = text.clone().into_bytes();
        damaged[3] ^= 0b0100;
        damaged[7] ^= 0b0100;
        assert!(matches!(
            Checkpoints::check_manifest(&damaged),
            Err(Unreadable::HashMismatch | Unreadable::Json(_))
        ));
        // A checkpoint an earlier version wrote: FNV-1a for the manifest and its segment.
        let mut legacy = first.clone();
        let bytes = std::fs::read(dir.join(&legacy.segments[0].file)).unwrap();
        legacy.segments[0].hash = format!("{:016x}", fnv1a(&bytes));
        let body = serde_json::to_string(&legacy).unwrap();
        let text = format!("{body}\nfnv1a:{:016x}\n", fnv1a(body.as_bytes()));
        std::fs::write(dir.join(manifest_name(1)), text).unwrap();
        assert_eq!(c.latest().unwrap().unwrap().checkpoint, legacy);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
