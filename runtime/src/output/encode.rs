//! Parquet encoding: view rows and quarantined inputs as Arrow batches and Parquet files.
//!
//! Columns are named and typed exactly as the view schemas say (SPEC §2): strings as UTF-8,
//! integers and epoch-millisecond times as int64, flags as boolean. Each file records the
//! logical time it reflects in its key-value metadata (`weir.as_of`).
//!
//! It owns the byte layout only: where a file goes and when it is written are its callers' to
//! decide, and it never masks or filters what it is given (quarantined inputs arrive already
//! scrubbed).

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::admit::Quarantined;
use crate::row::{Cell, ColumnType, Row, ViewSchema};
use crate::time::Time;

/// A failure to write an output file.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot encode {path} as Parquet: {source}")]
    Parquet {
        path: String,
        source: parquet::errors::ParquetError,
    },
    #[error("cannot build the columns of {path}: {source}")]
    Arrow {
        path: String,
        source: arrow_schema::ArrowError,
    },
}

impl EncodeError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            EncodeError::Io { .. } => "encode_io",
            EncodeError::Parquet { .. } => "encode_parquet",
            EncodeError::Arrow { .. } => "encode_arrow",
        }
    }
}

fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Int => DataType::Int64,
        ColumnType::Str => DataType::Utf8,
        ColumnType::Bool => DataType::Boolean,
    }
}

/// The Arrow schema of a view.
pub fn arrow_schema(view: &ViewSchema) -> Schema {
    Schema::new(
        view.columns
            .iter()
            .map(|c| Field::new(c.name, arrow_type(c.ty), false))
            .collect::<Vec<_>>(),
    )
}

fn column(ty: ColumnType, rows: &[Row], index: usize) -> ArrayRef {
    match ty {
        ColumnType::Int => Arc::new(Int64Array::from_iter_values(rows.iter().map(
            |r| match &r[index] {
                Cell::Int(v) => *v,
                other => panic!("column {index} holds {other:?}, not an integer"),
            },
        ))),
        ColumnType::Str => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| match &r
            [index]
        {
            Cell::Str(v) => v.as_str(),
            other => panic!("column {index} holds {other:?}, not a string"),
        }))),
        ColumnType::Bool => Arc::new(BooleanArray::from_iter(rows.iter().map(|r| {
            match &r[index] {
                Cell::Bool(v) => Some(*v),
                other => panic!("column {index} holds {other:?}, not a boolean"),
            }
        }))),
    }
}

/// Encodes `batch` as a Parquet file (Snappy), recording `as_of` as `weir.as_of`.
pub fn encode(
    batch: &RecordBatch,
    as_of: Option<Time>,
) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let metadata = as_of.map(|t| vec![KeyValue::new("weir.as_of".into(), t.to_string())]);
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(metadata)
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(out)
}

fn write_batch(path: &Path, batch: RecordBatch, as_of: Option<Time>) -> Result<(), EncodeError> {
    let name = path.display().to_string();
    let bytes = encode(&batch, as_of).map_err(|source| EncodeError::Parquet {
        path: name.clone(),
        source,
    })?;
    let io = |source| EncodeError::Io {
        path: name.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // Write beside the target and rename, so a reader never sees a half-written file.
    let tmp = path.with_extension("parquet.tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// One view's rows as columns.
pub fn view_batch(
    view: &ViewSchema,
    rows: &[Row],
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let columns = view
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| column(c.ty, rows, i))
        .collect();
    RecordBatch::try_new(Arc::new(arrow_schema(view)), columns)
}

/// Writes one view's rows to `path`.
pub fn write_view(
    path: &Path,
    view: &ViewSchema,
    rows: &[Row],
    as_of: Option<Time>,
) -> Result<(), EncodeError> {
    let batch = view_batch(view, rows).map_err(|source| EncodeError::Arrow {
        path: path.display().to_string(),
        source,
    })?;
    write_batch(path, batch, as_of)
}

/// Reads rows of `view` back from a Parquet file's bytes (one written by [`view_batch`]'s
/// layout): columns are taken by name, so their order in the file does not matter.
pub fn decode_view(
    view: &ViewSchema,
    bytes: bytes::Bytes,
) -> Result<Vec<Row>, parquet::errors::ParquetError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::errors::ParquetError;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch?;
        let mut columns = Vec::with_capacity(view.columns.len());
        for c in view.columns {
            let array = batch.column_by_name(c.name).ok_or_else(|| {
                ParquetError::General(format!("no column {} of {}", c.name, view.name))
            })?;
            columns.push((c, array.clone()));
        }
        let wrong = |name: &str| ParquetError::General(format!("column {name} has another type"));
        for r in 0..batch.num_rows() {
            let mut row = Vec::with_capacity(columns.len());
            for (c, array) in &columns {
                let any = array.as_any();
                row.push(match c.ty {
                    ColumnType::Int => Cell::Int(
                        any.downcast_ref::<Int64Array>()
                            .ok_or_else(|| wrong(c.name))?
                            .value(r),
                    ),
                    ColumnType::Str => Cell::Str(
                        any.downcast_ref::<StringArray>()
                            .ok_or_else(|| wrong(c.name))?
                            .value(r)
                            .to_owned(),
                    ),
                    ColumnType::Bool => Cell::Bool(
                        any.downcast_ref::<BooleanArray>()
                            .ok_or_else(|| wrong(c.name))?
                            .value(r),
                    ),
                });
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Quarantined inputs as columns (`raw`, `reason`).
pub fn quarantine_batch(records: &[Quarantined]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let schema = Schema::new(vec![
        Field::new("raw", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
    ]);
    let raw = StringArray::from_iter_values(records.iter().map(|q| q.raw.as_str()));
    let reason = StringArray::from_iter_values(records.iter().map(|q| q.reason.as_str()));
    RecordBatch::try_new(Arc::new(schema), vec![Arc::new(raw), Arc::new(reason)])
}
