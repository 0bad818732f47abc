//! The command-line clients of the API: `weir query`, `weir subscribe`, `weir plugin
//! deploy|list|rollback`. Each call opens a connection, presents the bearer token, and
//! prints rows as an aligned table or as JSON lines.
//!
//! A client speaks only the wire protocol: it shares the API's value conversions and the view
//! schemas, never the pipeline, the store or the registry, so it works against any running
//! weir. The only files it reads are the component and vectors a deploy sends.

use std::io::Write;
use std::path::{Path, PathBuf};

use tonic::transport::Channel;
use tonic::{Request, Status};

use super::api::{from_row, to_value};
use super::proto::{self, plugins_client::PluginsClient, views_client::ViewsClient};
use crate::row::{Cell, ColumnType, Row, view_schema};

/// Why a client command failed. A refused call keeps the server's code and message.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{endpoint} is not an address: {cause}")]
    BadAddress {
        endpoint: String,
        cause: tonic::codegen::http::uri::InvalidUri,
    },
    #[error(
        "cannot reach weir at {endpoint}: {cause} (is `weir run` running? --addr sets the address)"
    )]
    Unreachable {
        endpoint: String,
        cause: tonic::transport::Error,
    },
    #[error("the token must be printable ASCII")]
    BadToken,
    #[error("cannot start the client runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{:?}: {}", .0.code(), .0.message())]
    Refused(Box<Status>),
    #[error("{view} has {key_len} key columns ({columns}); got {got} prefix values")]
    TooManyPrefixValues {
        view: String,
        key_len: usize,
        /// The key columns' names, comma-separated.
        columns: String,
        got: usize,
    },
    #[error("--prefix {value}: {column} is an integer column")]
    NotAnInteger { value: String, column: &'static str },
    #[error("--prefix {value}: {column} is true or false")]
    NotABool { value: String, column: &'static str },
    #[error("--mode {0}: use from_now or retroactive")]
    UnknownMode(String),
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("the server sent an unset value")]
    UnsetValue,
    #[error("cannot write the answer: {0}")]
    WriteAnswer(std::io::Error),
    #[error("cannot write: {0}")]
    Write(std::io::Error),
}

impl ClientError {
    /// The stable, machine-readable code of the variant.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::BadAddress { .. } => "bad_address",
            ClientError::Unreachable { .. } => "unreachable",
            ClientError::BadToken => "bad_token",
            ClientError::Runtime(_) => "client_runtime",
            ClientError::Refused(_) => "refused",
            ClientError::TooManyPrefixValues { .. } => "too_many_prefix_values",
            ClientError::NotAnInteger { .. } => "prefix_not_an_integer",
            ClientError::NotABool { .. } => "prefix_not_a_bool",
            ClientError::UnknownMode(_) => "unknown_mode",
            ClientError::Read { .. } => "read",
            ClientError::UnsetValue => "unset_value",
            ClientError::WriteAnswer(_) => "write_answer",
            ClientError::Write(_) => "write",
        }
    }
}

impl From<Status> for ClientError {
    fn from(status: Status) -> ClientError {
        ClientError::Refused(Box::new(status))
    }
}

/// Where the API is and who is asking.
#[derive(Clone, Debug)]
pub struct Target {
    /// `http://HOST:PORT`, or `HOST:PORT`.
    pub addr: String,
    pub token: Option<String>,
}

impl Target {
    fn endpoint(&self) -> String {
        if self.addr.contains("://") {
            self.addr.clone()
        } else {
            format!("http://{}", self.addr)
        }
    }

    fn request<T>(&self, message: T) -> Result<Request<T>, ClientError> {
        match &self.token {
            Some(token) => bearer(message, token),
            None => Ok(Request::new(message)),
        }
    }

    async fn channel(&self) -> Result<Channel, ClientError> {
        let endpoint = self.endpoint();
        let channel = match Channel::from_shared(endpoint.clone()) {
            Ok(channel) => channel,
            Err(cause) => return Err(ClientError::BadAddress { endpoint, cause }),
        };
        channel
            .connect()
            .await
            .map_err(|cause| ClientError::Unreachable { endpoint, cause })
    }
}

/// A request carrying `authorization: Bearer <token>`.
pub fn bearer<T>(message: T, token: &str) -> Result<Request<T>, ClientError> {
    let mut request = Request::new(message);
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| ClientError::BadToken)?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

fn runtime() -> Result<tokio::runtime::Runtime, ClientError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClientError::Runtime)
}

/// Reads `values` as the leading key columns of `view` (by the local schema).
pub fn prefix_values(view: &str, values: &[String]) -> Result<Vec<proto::Value>, ClientError> {
    let Some((_, schema)) = view_schema(view) else {
        return Ok(values
            .iter()
            .map(|v| to_value(&Cell::Str(v.clone())))
            .collect());
    };
    if values.len() > schema.key_len {
        return Err(ClientError::TooManyPrefixValues {
            view: view.to_owned(),
            key_len: schema.key_len,
            columns: schema
                .key_columns()
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join(", "),
            got: values.len(),
        });
    }
    values
        .iter()
        .zip(schema.key_columns())
        .map(|(v, column)| {
            let cell = match column.ty {
                ColumnType::Str => Cell::Str(v.clone()),
                ColumnType::Int => Cell::Int(v.parse().map_err(|_| ClientError::NotAnInteger {
                    value: v.clone(),
                    column: column.name,
                })?),
                ColumnType::Bool => Cell::Bool(v.parse().map_err(|_| ClientError::NotABool {
                    value: v.clone(),
                    column: column.name,
                })?),
            };
            Ok(to_value(&cell))
        })
        .collect()
}

fn column_names(view: &str, width: usize) -> Vec<String> {
    match view_schema(view) {
        Some((_, schema)) => schema.columns.iter().map(|c| c.name.to_owned()).collect(),
        None => (0..width).map(|i| format!("c{i}")).collect(),
    }
}

fn json_row(names: &[String], row: &Row) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    for (name, cell) in names.iter().zip(row) {
        let value = match cell {
            Cell::Int(v) => serde_json::Value::from(*v),
            Cell::Str(v) => serde_json::Value::from(v.clone()),
            Cell::Bool(v) => serde_json::Value::from(*v),
        };
        object.insert(name.clone(), value);
    }
    serde_json::Value::Object(object)
}

/// Prints `rows` as an aligned table with a header.
pub fn write_table(out: &mut impl Write, names: &[String], rows: &[Row]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = names.iter().map(String::len).collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(ToString::to_string).collect())
        .collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let line = |values: &[String]| {
        values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(out, "{}", line(names))?;
    for row in &cells {
        writeln!(out, "{}", line(row))?;
    }
    Ok(())
}

/// `weir query`: one answer, as a table or JSON lines. Returns the `as_of` it reflects.
pub fn query(
    target: &Target,
    view: &str,
    prefix: &[String],
    as_of: Option<u64>,
    limit: u32,
    json: bool,
    out: &mut impl Write,
) -> Result<u64, ClientError> {
    let request = proto::QueryRequest {
        view: view.to_owned(),
        key_prefix: prefix_values(view, prefix)?,
        limit,
        as_of,
        page_token: String::new(),
    };
    let response = runtime()?.block_on(async {
        let mut client = ViewsClient::new(target.channel().await?);
        client
            .query(target.request(request)?)
            .await
            .map_err(ClientError::from)
    })?;
    let response = response.into_inner();
    let rows: Vec<Row> = response
        .rows
        .iter()
        .map(|r| from_row(r).ok_or(ClientError::UnsetValue))
        .collect::<Result<_, _>>()?;
    let names = column_names(view, rows.first().map_or(0, Vec::len));
    let written = if json {
        rows.iter()
            .try_for_each(|row| writeln!(out, "{}", json_row(&names, row)))
    } else {
        write_table(out, &names, &rows)
    };
    written.map_err(ClientError::WriteAnswer)?;
    Ok(response.as_of)
}

/// `weir subscribe`: the snapshot, then every change as `+1`/`-1` lines with their time,
/// until the server ends the stream or `max_changes` changes were printed.
pub fn subscribe(
    target: &Target,
    view: &str,
    prefix: &[String],
    json: bool,
    max_changes: Option<u64>,
    out: &mut impl Write,
) -> Result<(), ClientError> {
    let request = proto::SubscribeRequest {
        view: view.to_owned(),
        key_prefix: prefix_values(view, prefix)?,
    };
    let names = column_names(view, 0);
    runtime()?.block_on(async {
        let mut client = ViewsClient::new(target.channel().await?);
        let mut stream = client
            .subscribe(target.request(request)?)
            .await?
            .into_inner();
        let mut printed = 0u64;
        let fail = ClientError::Write;
        while let Some(message) = stream.message().await? {
            use proto::subscribe_response::Kind;
            match message.kind {
                Some(Kind::Snapshot(snapshot)) => {
                    let rows: Vec<Row> = snapshot.rows.iter().filter_map(from_row).collect();
                    if json {
                        for row in &rows {
                            let line = serde_json::json!({"snapshot": snapshot.as_of, "row": json_row(&names, row)});
                            writeln!(out, "{line}").map_err(fail)?;
                        }
                    } else {
                        writeln!(out, "snapshot as of {} ({} rows)", snapshot.as_of, rows.len())
                            .map_err(fail)?;
                        write_table(out, &names, &rows).map_err(fail)?;
                    }
                }
                Some(Kind::Changes(changes)) => {
                    for update in &changes.updates {
                        let Some(row) = update.row.as_ref().and_then(from_row) else {
                            continue;
                        };
                        if json {
                            let line = serde_json::json!({"time": update.time, "diff": update.diff, "row": json_row(&names, &row)});
                            writeln!(out, "{line}").map_err(fail)?;
                        } else {
                            let cells: Vec<String> = row.iter().map(ToString::to_string).collect();
                            writeln!(out, "{:+} @{} {}", update.diff, update.time, cells.join("  "))
                                .map_err(fail)?;
                        }
                        printed += 1;
                        if max_changes.is_some_and(|m| printed >= m) {
                            return out.flush().map_err(fail);
                        }
                    }
                    out.flush().map_err(fail)?;
                }
                None => {}
            }
        }
        Ok(())
    })
}

fn mode(mode: &str) -> Result<i32, ClientError> {
    match mode {
        "from_now" => Ok(proto::DeployMode::FromNow as i32),
        "retroactive" => Ok(proto::DeployMode::Retroactive as i32),
        other => Err(ClientError::UnknownMode(other.to_owned())),
    }
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError {
    let path = path.to_owned();
    move |cause| ClientError::Read { path, cause }
}

/// `weir plugin deploy`: the version and the logical time it took effect at.
pub fn deploy(
    target: &Target,
    file: &Path,
    name: &str,
    tenant: Option<&str>,
    deploy_mode: &str,
    vectors: Option<&Path>,
) -> Result<String, ClientError> {
    let component = std::fs::read(file).map_err(read_error(file))?;
    let vectors = match vectors {
        Some(path) => std::fs::read_to_string(path).map_err(read_error(path))?,
        None => String::new(),
    };
    let request = proto::DeployRequest {
        name: name.to_owned(),
        component,
        vectors,
        tenant: tenant.map(str::to_owned),
        mode: mode(deploy_mode)?,
    };
    let r = runtime()?.block_on(async {
        let mut client = PluginsClient::new(target.channel().await?);
        client
            .deploy(target.request(request)?)
            .await
            .map_err(ClientError::from)
    })?;
    let r = r.into_inner();
    Ok(format!(
        "deployed {name} version {} ({}) {deploy_mode} at logical time {}",
        r.version, r.hash, r.effective_time
    ))
}

/// `weir plugin rollback`.
pub fn rollback(
    target: &Target,
    name: &str,
    version: Option<u64>,
    deploy_mode: &str,
) -> Result<String, ClientError> {
    let request = proto::RollbackRequest {
        name: name.to_owned(),
        version,
        mode: mode(deploy_mode)?,
    };
    let r = runtime()?.block_on(async {
        let mut client = PluginsClient::new(target.channel().await?);
        client
            .rollback(target.request(request)?)
            .await
            .map_err(ClientError::from)
    })?;
    let r = r.into_inner();
    Ok(format!(
        "rolled {name} back to version {} ({}) {deploy_mode} at logical time {}",
        r.version, r.hash, r.effective_time
    ))
}

/// `weir plugin list`: one line per version.
pub fn list(target: &Target, out: &mut impl Write) -> Result<(), ClientError> {
    let r = runtime()?.block_on(async {
        let mut client = PluginsClient::new(target.channel().await?);
        client
            .list(target.request(proto::ListPluginsRequest {})?)
            .await
            .map_err(ClientError::from)
    })?;
    let names: Vec<String> = ["name", "version", "hash", "tenant", "active", "deployed"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let rows: Vec<Row> = r
        .into_inner()
        .versions
        .into_iter()
        .map(|v| {
            let deployed: Vec<String> = v
                .deployed
                .iter()
                .map(|d| {
                    let mode = if d.mode == proto::DeployMode::Retroactive as i32 {
                        "retroactive"
                    } else {
                        "from_now"
                    };
                    format!("{}@{}", mode, d.time)
                })
                .collect();
            let mut active = if v.active { "yes" } else { "no" }.to_owned();
            if let Some(t) = v.disabled_at {
                active = format!("disabled@{t}");
            }
            vec![
                Cell::Str(v.name),
                Cell::Int(v.version as i64),
                Cell::Str(v.hash),
                Cell::Str(v.tenant.unwrap_or_else(|| "*".into())),
                Cell::Str(active),
                Cell::Str(deployed.join(",")),
            ]
        })
        .collect();
    write_table(out, &names, &rows).map_err(ClientError::Write)
}
