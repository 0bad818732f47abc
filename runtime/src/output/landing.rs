//! The landing zone: raw events, quarantine and view exports as Parquet, in a local
//! directory or an S3-compatible object store.
//!
//! ```text
//! raw/tenant_id=<T>/date=<YYYY-MM-DD>/<source>-<partition>-<first>-<last>.parquet
//! quarantine/<source>-<partition>-<first>-<last>.parquet
//! views/<view>.parquet
//! gold/<view>/tenant_id=<T>/date=<YYYY-MM-DD>/<HHMM>.parquet   (see `output::gold`)
//! ```
//!
//! Raw files hold every decoded, deduplicated event (card data already masked) before any
//! plugin ran — what a replay reprocesses. A file's name is the source partition and the
//! offset range it covers, so the same range written again replaces the file instead of adding
//! a second copy; and a range past the newest checkpoint (written before a crash, never
//! committed) is found by its name and removed on recovery, before it is consumed again.
//! View exports carry the logical time they reflect in their metadata (`weir.as_of`).
//!
//! A call that lands a file returns once the file is durable: on S3 once the store
//! acknowledged the object; on a local filesystem once the file is fsynced, renamed into place
//! and its directory (and every directory made for it) fsynced. Removals of uncommitted files
//! are fsynced too, before the run reads their offsets again: a removal a power cut undid
//! would bring back a range the next checkpoint covers differently.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use futures_util::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::admit::Quarantined;
use crate::event::Event;
use crate::output::{create_dir_all_synced, encode, sync_dir};
use crate::row::{Row, ViewSchema};
use crate::source::Offsets;
use crate::time::Time;

/// A failure of the landing zone.
#[derive(Debug, thiserror::Error)]
pub enum LandingError {
    #[error("landing zone {target}: {source}")]
    Store {
        target: String,
        #[source]
        source: object_store::Error,
    },
    #[error("landing zone {target}: {message}")]
    Open { target: String, message: String },
    #[error("landing zone {target}: cannot fsync {path}: {source}")]
    Sync {
        target: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode {path} as Parquet: {source}")]
    Encode {
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("cannot build the columns of {path}: {source}")]
    Arrow {
        path: String,
        #[source]
        source: arrow_schema::ArrowError,
    },
}

impl LandingError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            LandingError::Store { .. } => "landing_store",
            LandingError::Open { .. } => "landing_open",
            LandingError::Sync { .. } => "landing_sync",
            LandingError::Encode { .. } => "landing_encode",
            LandingError::Arrow { .. } => "landing_arrow",
        }
    }
}

/// Milliseconds in a day: raw files are partitioned by the UTC date of their events.
const DAY_MS: i64 = 86_400_000;

/// How many files a landing writes at once.
const PUTS_AT_ONCE: usize = 16;

/// A landing zone.
pub struct Landing {
    store: Arc<dyn ObjectStore>,
    root: Path,
    target: String,
    local: Option<Local>,
    runtime: tokio::runtime::Runtime,
}

/// A landing zone on the local filesystem.
#[derive(Clone)]
struct Local {
    dir: PathBuf,
    /// The landing's store, kept typed to find the file behind an object's path.
    fs: Arc<LocalFileSystem>,
}

/// The columns of a raw file.
pub fn raw_schema() -> Schema {
    Schema::new(vec![
        Field::new("tenant_id", DataType::Utf8, false),
        Field::new("event_id", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("event_time_ms", DataType::Int64, false),
        Field::new("partition", DataType::Int64, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("event", DataType::Utf8, false),
    ])
}

fn quarantine_schema() -> Schema {
    Schema::new(vec![
        Field::new("raw", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("partition", DataType::Int64, false),
        Field::new("offset", DataType::Int64, false),
    ])
}

/// The `(source, partition, first offset)` a landed file's name says it covers.
fn range_of(name: &str) -> Option<(&str, i32, i64)> {
    let stem = name.strip_suffix(".parquet")?;
    let mut parts = stem.rsplitn(4, '-');
    let _last: i64 = parts.next()?.parse().ok()?;
    let first: i64 = parts.next()?.parse().ok()?;
    let partition: i32 = parts.next()?.parse().ok()?;
    Some((parts.next()?, partition, first))
}

impl Landing {
    /// Opens a local directory (or `file://` URL), or an object store by URL
    /// (`s3://bucket/prefix`), configured by the `AWS_*` variables of the environment:
    /// `AWS_ENDPOINT` (e.g. `http://127.0.0.1:9000` for MinIO or s3s-fs), `AWS_ALLOW_HTTP`,
    /// `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ….
    pub fn open(target: &str) -> Result<Landing, LandingError> {
        let options = std::env::vars()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v));
        Self::open_with(target, options)
    }

    /// As [`Landing::open`], with the object store configured by `options` alone (keys as
    /// `object_store` names them, e.g. `aws_endpoint`), not by the environment.
    pub fn open_with(
        target: &str,
        options: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Landing, LandingError> {
        let open_error = |message: String| LandingError::Open {
            target: target.to_owned(),
            message,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| open_error(format!("cannot start its I/O runtime: {e}")))?;
        let url = if target.contains("://") {
            Some(url::Url::parse(target).map_err(|e| open_error(e.to_string()))?)
        } else {
            None
        };
        let (store, root, local): (Arc<dyn ObjectStore>, Path, Option<Local>) = match url {
            Some(url) if url.scheme() != "file" => {
                let (store, root) = object_store::parse_url_opts(&url, options)
                    .map_err(|e| open_error(format!("not a usable store URL: {e}")))?;
                (Arc::from(store), root, None)
            }
            // A `file://` URL is a local directory, opened as one so it is fsynced as one.
            url => {
                let dir = match url {
                    Some(url) => url
                        .to_file_path()
                        .map_err(|()| open_error("not a local path".into()))?,
                    None => PathBuf::from(target),
                };
                create_dir_all_synced(&dir)
                    .map_err(|e| open_error(format!("cannot create the directory: {e}")))?;
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|source| LandingError::Store {
                        target: target.to_owned(),
                        source,
                    })?
                    .with_fsync(true);
                let fs = Arc::new(fs);
                (fs.clone(), Path::default(), Some(Local { dir, fs }))
            }
        };
        Ok(Landing {
            store,
            root,
            target: target.to_owned(),
            local,
            runtime,
        })
    }

    /// The same landing zone, with an I/O runtime of its own: for a thread that lands while
    /// this one goes on.
    pub fn another(&self) -> Result<Landing, LandingError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LandingError::Open {
                target: self.target.clone(),
                message: format!("cannot start its I/O runtime: {e}"),
            })?;
        Ok(Landing {
            store: self.store.clone(),
            root: self.root.clone(),
            target: self.target.clone(),
            local: self.local.clone(),
            runtime,
        })
    }

    /// The directory, when the landing zone is local.
    pub fn local_dir(&self) -> Option<&FsPath> {
        self.local.as_ref().map(|l| l.dir.as_path())
    }

    fn path(&self, relative: &str) -> Path {
        relative
            .split('/')
            .fold(self.root.clone(), |path, part| path.join(part))
    }

    fn store_error(&self, source: object_store::Error) -> LandingError {
        LandingError::Store {
            target: self.target.clone(),
            source,
        }
    }

    fn put(
        &self,
        relative: &str,
        batch: RecordBatch,
        as_of: Option<Time>,
    ) -> Result<(), LandingError> {
        self.put_all(vec![(relative.to_owned(), batch)], as_of)
    }

    /// Encodes and puts several files, [`PUTS_AT_ONCE`] at a time: their writes (and a local
    /// store's fsyncs) overlap, so a range that lands as one file per tenant waits for about
    /// one write per chunk, not one per tenant.
    ///
    /// Local puts write a staged file, fsync it, rename it into place and fsync the
    /// directories whose entries changed; S3 puts are atomic, and durable once answered.
    fn put_all(
        &self,
        files: Vec<(String, RecordBatch)>,
        as_of: Option<Time>,
    ) -> Result<(), LandingError> {
        let mut files = files.into_iter().peekable();
        while files.peek().is_some() {
            let mut puts = tokio::task::JoinSet::new();
            for (relative, batch) in files.by_ref().take(PUTS_AT_ONCE) {
                let bytes =
                    encode::encode(&batch, as_of).map_err(|source| LandingError::Encode {
                        path: relative.clone(),
                        source,
                    })?;
                let (store, path) = (self.store.clone(), self.path(&relative));
                puts.spawn_on(
                    async move { store.put(&path, PutPayload::from(bytes)).await },
                    self.runtime.handle(),
                );
            }
            self.runtime.block_on(async {
                while let Some(put) = puts.join_next().await {
                    put.map_err(|source| {
                        self.store_error(object_store::Error::JoinError { source })
                    })?
                    .map_err(|e| self.store_error(e))?;
                }
                Ok::<_, LandingError>(())
            })?;
        }
        Ok(())
    }

    fn batch(
        path: &str,
        schema: Schema,
        columns: Vec<ArrayRef>,
    ) -> Result<RecordBatch, LandingError> {
        RecordBatch::try_new(Arc::new(schema), columns).map_err(|source| LandingError::Arrow {
            path: path.to_owned(),
            source,
        })
    }

    /// Lands the raw events of one source partition's offset range `[first, last]`, one
    /// file per tenant and event date. Returns the files written.
    pub fn write_raw(
        &self,
        source: &str,
        partition: i32,
        (first, last): (i64, i64),
        events: &[(i64, Event)],
    ) -> Result<usize, LandingError> {
        // Grouped by day number, formatted once per file.
        let mut groups: BTreeMap<(&str, i64), Vec<&(i64, Event)>> = BTreeMap::new();
        for entry in events {
            groups
                .entry((
                    entry.1.tenant_id.as_str(),
                    entry.1.event_time_ms.div_euclid(DAY_MS),
                ))
                .or_default()
                .push(entry);
        }
        let mut files = Vec::with_capacity(groups.len());
        for (&(tenant, day), rows) in &groups {
            let start = day.checked_mul(DAY_MS);
            let date = start
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map_or_else(
                    || "unknown".to_owned(),
                    |t| t.format("%Y-%m-%d").to_string(),
                );
            let name = format!(
                "raw/tenant_id={tenant}/date={date}/{source}-{partition}-{first}-{last}.parquet"
            );
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.1.tenant_id.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.1.event_id.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.1.body.type_name()),
                )),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|r| r.1.event_time_ms),
                )),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|_| i64::from(partition)),
                )),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.1.to_wire_json()),
                )),
            ];
            let batch = Self::batch(&name, raw_schema(), columns)?;
            files.push((name, batch));
        }
        self.put_all(files, None)?;
        Ok(groups.len())
    }

    /// Lands the rejected inputs of one source partition's offset range.
    pub fn write_quarantine(
        &self,
        source: &str,
        partition: i32,
        (first, last): (i64, i64),
        records: &[(i64, Quarantined)],
    ) -> Result<(), LandingError> {
        if records.is_empty() {
            return Ok(());
        }
        let name = format!("quarantine/{source}-{partition}-{first}-{last}.parquet");
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                records.iter().map(|r| r.1.raw.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                records.iter().map(|r| r.1.reason.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(
                records.iter().map(|_| i64::from(partition)),
            )),
            Arc::new(Int64Array::from_iter_values(records.iter().map(|r| r.0))),
        ];
        self.put(
            &name,
            Self::batch(&name, quarantine_schema(), columns)?,
            None,
        )
    }

    /// Exports a view as `views/<view>.parquet`, replacing the previous export.
    pub fn write_view(
        &self,
        view: &ViewSchema,
        rows: &[Row],
        as_of: Option<Time>,
    ) -> Result<(), LandingError> {
        self.write_table(&format!("views/{}.parquet", view.name), view, rows, as_of)
    }

    /// Writes a table's rows to `relative` (a path inside the landing zone).
    pub fn write_table(
        &self,
        relative: &str,
        view: &ViewSchema,
        rows: &[Row],
        as_of: Option<Time>,
    ) -> Result<(), LandingError> {
        let batch = encode::view_batch(view, rows).map_err(|source| LandingError::Arrow {
            path: relative.to_owned(),
            source,
        })?;
        self.put(relative, batch, as_of)
    }

    /// Lands the Parquet file at `local` as `relative` (a quarantine spilled while the run
    /// went): read once, when the run ends, at its compressed size.
    pub fn write_file(&self, relative: &str, local: &FsPath) -> Result<(), LandingError> {
        let bytes = std::fs::read(local).map_err(|source| LandingError::Sync {
            target: self.target.clone(),
            path: local.display().to_string(),
            source,
        })?;
        let path = self.path(relative);
        self.runtime
            .block_on(self.store.put(&path, PutPayload::from(bytes)))
            .map_err(|e| self.store_error(e))?;
        Ok(())
    }

    /// Writes quarantined inputs (`raw`, `reason`) to `relative`.
    pub fn write_quarantined(
        &self,
        relative: &str,
        records: &[Quarantined],
    ) -> Result<(), LandingError> {
        let batch = encode::quarantine_batch(records).map_err(|source| LandingError::Arrow {
            path: relative.to_owned(),
            source,
        })?;
        self.put(relative, batch, None)
    }

    /// Every file under `prefix`, as paths inside the landing zone (`gold/…/0700.parquet`).
    pub fn files(&self, prefix: &str) -> Result<Vec<String>, LandingError> {
        Ok(self
            .list(prefix)?
            .into_iter()
            .filter_map(|path| {
                path.prefix_match(&self.root)
                    .map(|parts| parts.map(|p| p.as_ref().to_owned()).collect::<Vec<_>>())
            })
            .map(|parts| parts.join("/"))
            .collect())
    }

    /// Reads the rows of `view` back from the file at `relative`; `None` if there is none.
    pub fn read_view_rows(
        &self,
        relative: &str,
        view: &ViewSchema,
    ) -> Result<Option<Vec<Row>>, LandingError> {
        let path = self.path(relative);
        let bytes = self.runtime.block_on(async {
            match self.store.get(&path).await {
                Ok(got) => got.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        let Some(bytes) = bytes.map_err(|e| self.store_error(e))? else {
            return Ok(None);
        };
        encode::decode_view(view, bytes)
            .map(Some)
            .map_err(|source| LandingError::Encode {
                path: relative.to_owned(),
                source,
            })
    }

    /// Removes the file at `relative` (durably, on a local filesystem); gone already is fine.
    pub fn remove(&self, relative: &str) -> Result<(), LandingError> {
        let path = self.path(relative);
        match self.runtime.block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.store_error(e)),
        }
        if let Some(local) = &self.local {
            let file = local
                .fs
                .path_to_filesystem(&path)
                .map_err(|e| self.store_error(e))?;
            if let Some(dir) = file.parent().filter(|d| d.exists()) {
                sync_dir(dir).map_err(|source| LandingError::Sync {
                    target: self.target.clone(),
                    path: dir.display().to_string(),
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// Removes the half-written files a local put leaves under `prefix` when the process
    /// dies before renaming them into place (`object_store` stages a put beside its target
    /// as `<name>#<n>`, which no listing shows). Returns how many there were.
    pub fn remove_staged(&self, prefix: &str) -> Result<usize, LandingError> {
        let Some(local) = &self.local else {
            return Ok(0);
        };
        let mut removed = 0;
        let mut dirs = vec![local.dir.join(prefix)];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut here = 0;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if entry.file_name().to_string_lossy().contains('#')
                    && std::fs::remove_file(&path).is_ok()
                {
                    here += 1;
                }
            }
            if here > 0 {
                sync_dir(&dir).map_err(|source| LandingError::Sync {
                    target: self.target.clone(),
                    path: dir.display().to_string(),
                    source,
                })?;
                removed += here;
            }
        }
        Ok(removed)
    }

    fn list(&self, prefix: &str) -> Result<Vec<Path>, LandingError> {
        let prefix = self.path(prefix);
        let listed: Vec<_> = self
            .runtime
            .block_on(self.store.list(Some(&prefix)).try_collect::<Vec<_>>())
            .map_err(|e| self.store_error(e))?;
        Ok(listed.into_iter().map(|meta| meta.location).collect())
    }

    /// Removes the raw and quarantine files of ranges the checkpoint `committed` does not
    /// cover: written before a crash, they will be consumed and written again. `sources`
    /// names the sources this run reads (files of other sources are left alone). Returns how
    /// many were removed.
    pub fn remove_uncommitted(
        &self,
        sources: &[String],
        committed: &Offsets,
    ) -> Result<usize, LandingError> {
        let mut removed = 0;
        let mut emptied = BTreeSet::new();
        for prefix in ["raw", "quarantine"] {
            for path in self.list(prefix)? {
                let Some(name) = path.filename() else {
                    continue;
                };
                let Some((source, partition, first)) = range_of(name) else {
                    continue;
                };
                if !sources.iter().any(|s| s == source) {
                    continue;
                }
                let next = committed
                    .get(&(source.to_owned(), partition))
                    .copied()
                    .unwrap_or(i64::MIN);
                if first >= next {
                    self.runtime
                        .block_on(self.store.delete(&path))
                        .map_err(|e| self.store_error(e))?;
                    removed += 1;
                    if let Some(local) = &self.local {
                        let file = local
                            .fs
                            .path_to_filesystem(&path)
                            .map_err(|e| self.store_error(e))?;
                        emptied.extend(file.parent().map(FsPath::to_path_buf));
                    }
                }
            }
        }
        // `object_store` fsyncs what it writes, not what it deletes.
        for dir in emptied {
            sync_dir(&dir).map_err(|source| LandingError::Sync {
                target: self.target.clone(),
                path: dir.display().to_string(),
                source,
            })?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_give_their_range_back() {
        assert_eq!(
            range_of("orders-v2-3-100-199.parquet"),
            Some(("orders-v2", 3, 100))
        );
        assert_eq!(range_of("input-0-0-9.parquet"), Some(("input", 0, 0)));
        assert_eq!(range_of("notes.parquet"), None);
        assert_eq!(range_of("a-1-2-3.txt"), None);
    }

    fn rows_in(file: &FsPath) -> usize {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
            .unwrap()
            .build()
            .unwrap();
        reader.map(|batch| batch.unwrap().num_rows()).sum()
    }

    /// Every file under `dir`, relative to it.
    fn files_under(dir: &FsPath) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(next) = pending.pop() {
            for entry in std::fs::read_dir(&next).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let relative = path.strip_prefix(dir).unwrap();
                    found.push(relative.to_string_lossy().into_owned());
                }
            }
        }
        found.sort();
        found
    }

    // The fsyncs themselves cannot be observed short of cutting the power; this proves what
    // the durable write path leaves: whole files under their final names, in directories it
    // made, and no staged copy beside them.
    #[test]
    fn landed_files_are_whole_under_their_names_with_no_staged_copy_left() {
        let base = std::env::temp_dir().join(format!("weir-landing-whole-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("not").join("there").join("yet");
        let landing = Landing::open(dir.to_str().unwrap()).unwrap();
        let event = |tenant: &str, id: &str| {
            let line = format!(
                r#"{{"event_id":"{id}","tenant_id":"{tenant}","type":"page_view","event_time":"2026-11-21T07:00:00Z","schema_version":1,"user_id":"u","url":"/"}}"#
            );
            crate::admit::decode::decode(line.as_bytes()).unwrap()
        };
        let events: Vec<(i64, Event)> = (0..500)
            .map(|i| {
                (
                    i,
                    event(if i % 2 == 0 { "acme" } else { "globex" }, &format!("e{i}")),
                )
            })
            .collect();
        assert_eq!(landing.write_raw("t", 0, (0, 499), &events).unwrap(), 2);
        let bad = Quarantined {
            raw: "{".into(),
            reason: "invalid_json".into(),
        };
        landing
            .write_quarantine("t", 0, (0, 499), &[(7, bad.clone()), (9, bad.clone())])
            .unwrap();
        let view = crate::row::ViewId::GmvMinute.schema();
        let row = vec![
            crate::row::Cell::from("acme"),
            crate::row::Cell::from("EUR"),
            crate::row::Cell::Int(0),
            crate::row::Cell::Int(1),
            crate::row::Cell::Int(100),
            crate::row::Cell::Int(0),
            crate::row::Cell::Int(100),
        ];
        landing.write_view(view, &[], Some(1)).unwrap();
        // Replaced in place: the second export is the one left.
        landing
            .write_view(view, &[row.clone(), row], Some(2))
            .unwrap();
        landing
            .write_quarantined("quarantine.parquet", &[bad])
            .unwrap();

        let raw_acme = "raw/tenant_id=acme/date=2026-11-21/t-0-0-499.parquet";
        let raw_globex = "raw/tenant_id=globex/date=2026-11-21/t-0-0-499.parquet";
        assert_eq!(
            files_under(&dir),
            [
                "quarantine.parquet",
                "quarantine/t-0-0-499.parquet",
                raw_acme,
                raw_globex,
                "views/gmv_minute.parquet",
            ]
        );
        assert_eq!(rows_in(&dir.join(raw_acme)), 250);
        assert_eq!(rows_in(&dir.join(raw_globex)), 250);
        assert_eq!(rows_in(&dir.join("quarantine/t-0-0-499.parquet")), 2);
        assert_eq!(rows_in(&dir.join("views/gmv_minute.parquet")), 2);
        assert_eq!(rows_in(&dir.join("quarantine.parquet")), 1);
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_file_url_lands_as_a_local_directory() {
        let dir = std::env::temp_dir().join(format!("weir-landing-url-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = url::Url::from_directory_path(&dir).unwrap();
        let landing = Landing::open(url.as_str()).unwrap();
        // Opened as a directory (and so written with fsync), not as a generic store.
        assert_eq!(landing.local_dir(), Some(dir.as_path()));
        landing
            .write_view(crate::row::ViewId::Inventory.schema(), &[], None)
            .unwrap();
        assert!(dir.join("views/inventory.parquet").is_file());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn uncommitted_ranges_are_removed_and_committed_ones_kept() {
        let dir = std::env::temp_dir().join(format!("weir-landing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let landing = Landing::open(dir.to_str().unwrap()).unwrap();
        let event = crate::admit::decode::decode(
            br#"{"event_id":"e1","tenant_id":"acme","type":"page_view","event_time":"2026-11-21T07:00:00Z","schema_version":1,"user_id":"u","url":"/"}"#,
        )
        .unwrap();
        let bad = Quarantined {
            raw: "{".into(),
            reason: "invalid_json".into(),
        };
        landing
            .write_raw("t", 0, (0, 9), &[(3, event.clone())])
            .unwrap();
        landing
            .write_raw("t", 0, (10, 19), &[(12, event.clone())])
            .unwrap();
        landing
            .write_raw("other", 0, (10, 19), &[(12, event)])
            .unwrap();
        landing
            .write_quarantine("t", 1, (5, 6), &[(5, bad)])
            .unwrap();
        let committed: Offsets = [(("t".to_owned(), 0), 10)].into();
        let removed = landing
            .remove_uncommitted(&["t".to_owned()], &committed)
            .unwrap();
        // (t, 0, 10..19) is past the checkpoint; (t, 1) has no committed offset at all.
        assert_eq!(removed, 2);
        let files = crate::source::replay::raw_files(dir.to_str().unwrap()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["other-0-10-19.parquet", "t-0-0-9.parquet"]);
        let lines = crate::source::replay::read_raw(&files[1]).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(
            crate::admit::decode::decode(lines[0].as_bytes())
                .unwrap()
                .event_id,
            "e1"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
