//! The command-line clients of the API: `weir query`, `weir subscribe`, `weir plugin
//! deploy|list|rollback`. Each call opens a connection, presents the bearer token, and
//! prints rows as an aligned table or as JSON lines.
//!
//! A client speaks only the wire protocol: it shares the API's value conversions and the view
//! schemas, never the pipeline, the store or the registry, so it works against any running
//! weir. The only files it reads are the component and vectors a deploy sends, and the TLS
//! certificates and key it is given.

use std::io::Write;
use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
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
        "cannot reach weir at {endpoint}: {} (is `weir run` running? --addr sets the address)",
        with_causes(cause)
    )]
    Unreachable {
        endpoint: String,
        cause: tonic::transport::Error,
    },
    #[error("--ca, --client-cert and --client-key are for an https:// address, not {addr}")]
    TlsWithoutHttps { addr: String },
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("cannot set up TLS for {endpoint}: {}", with_causes(cause))]
    Tls {
        endpoint: String,
        cause: tonic::transport::Error,
    },
    #[error("the token must be printable ASCII")]
    BadToken,
    #[error("cannot start the client runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{:?}: {}{}", .0.code(), .0.message(), causes(&**.0))]
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
            ClientError::TlsWithoutHttps { .. } => "tls_without_https",
            ClientError::NoCertificate { .. } => "no_certificate",
            ClientError::Tls { .. } => "client_tls",
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

/// An error and its causes, `a: b: c`: tonic's transport error says only "transport error"
/// and keeps what went wrong (an untrusted certificate, a reset connection) in its sources.
fn with_causes(error: &dyn std::error::Error) -> String {
    format!("{error}{}", causes(error))
}

/// `: b: c` for an error caused by b, caused by c; a cause whose text its effect already
/// shows is left out.
fn causes(error: &dyn std::error::Error) -> String {
    let mut shown = error.to_string();
    let mut text = String::new();
    let mut cause = error.source();
    while let Some(e) = cause {
        let line = e.to_string();
        if !shown.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        shown = line;
        cause = e.source();
    }
    text
}

/// Where the API is and who is asking.
#[derive(Clone, Debug)]
pub struct Target {
    /// `https://HOST:PORT`, `http://HOST:PORT`, or `HOST:PORT` (https when `tls` names a
    /// file, http otherwise).
    pub addr: String,
    pub token: Option<String>,
    pub tls: ClientTls,
}

/// How an `https://` client checks the server and what it shows it.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// PEM CA certificates to trust instead of the system's roots (a private CA).
    pub ca: Option<PathBuf>,
    /// PEM certificate and key, for a server that asks for one (its `[tls] client_ca`).
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl ClientTls {
    fn is_set(&self) -> bool {
        self.ca.is_some() || self.identity.is_some()
    }

    fn config(&self) -> Result<ClientTlsConfig, ClientError> {
        let config = ClientTlsConfig::new();
        let config = match &self.ca {
            Some(path) => {
                let pem = std::fs::read(path).map_err(read_error(path))?;
                // Otherwise a file of no certificates trusts nothing, and every handshake
                // fails with a message that does not name it.
                use rustls::pki_types::{CertificateDer, pem::PemObject};
                if !CertificateDer::pem_slice_iter(&pem).any(|c| c.is_ok()) {
                    return Err(ClientError::NoCertificate { path: path.clone() });
                }
                config.ca_certificate(Certificate::from_pem(pem))
            }
            None => config.with_enabled_roots(),
        };
        match &self.identity {
            Some((cert, key)) => {
                let cert = std::fs::read(cert).map_err(read_error(cert))?;
                let key = std::fs::read(key).map_err(read_error(key))?;
                Ok(config.identity(Identity::from_pem(cert, key)))
            }
            None => Ok(config),
        }
    }
}

impl Target {
    fn endpoint(&self) -> Result<String, ClientError> {
        if self.addr.contains("://") {
            if self.tls.is_set() && !self.addr.starts_with("https://") {
                return Err(ClientError::TlsWithoutHttps {
                    addr: self.addr.clone(),
                });
            }
            Ok(self.addr.clone())
        } else if self.tls.is_set() {
            Ok(format!("https://{}", self.addr))
        } else {
            Ok(format!("http://{}", self.addr))
        }
    }

    fn request<T>(&self, message: T) -> Result<Request<T>, ClientError> {
        match &self.token {
            Some(token) => bearer(message, token),
            None => Ok(Request::new(message)),
        }
    }

    async fn channel(&self) -> Result<Channel, ClientError> {
        let endpoint = self.endpoint()?;
        let mut channel = match Channel::from_shared(endpoint.clone()) {
            Ok(channel) => channel,
            Err(cause) => return Err(ClientError::BadAddress { endpoint, cause }),
        };
        if endpoint.starts_with("https://") {
            channel = match channel.tls_config(self.tls.config()?) {
                Ok(channel) => channel,
                Err(cause) => return Err(ClientError::Tls { endpoint, cause }),
            };
        }
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

/// The largest answer message the CLI takes: a page is bounded by the server, but a
/// subscription's snapshot is one message as big as the rows under its prefix.
const MAX_MESSAGE_BYTES: usize = 256 << 20;

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
    let mut request = proto::QueryRequest {
        view: view.to_owned(),
        key_prefix: prefix_values(view, prefix)?,
        limit,
        as_of,
        page_token: String::new(),
    };
    // `--limit 0` reads the whole view, a page at a time, all pages at the first page's time.
    let mut rows: Vec<Row> = Vec::new();
    let mut gold = Vec::new();
    let as_of = runtime()?.block_on(async {
        let mut client =
            ViewsClient::new(target.channel().await?).max_decoding_message_size(MAX_MESSAGE_BYTES);
        loop {
            let page = client
                .query(target.request(request.clone())?)
                .await
                .map_err(ClientError::from)?
                .into_inner();
            for row in &page.rows {
                rows.push(from_row(row).ok_or(ClientError::UnsetValue)?);
            }
            if gold.is_empty() {
                gold = page.gold;
            }
            let wanted = limit != 0 && rows.len() >= limit as usize;
            if page.next_page_token.is_empty() || wanted {
                rows.truncate(if limit == 0 {
                    usize::MAX
                } else {
                    limit as usize
                });
                return Ok::<_, ClientError>(page.as_of);
            }
            request.page_token = page.next_page_token;
            request.limit = if limit == 0 {
                0
            } else {
                limit - rows.len() as u32
            };
        }
    })?;
    let names = column_names(view, rows.first().map_or(0, Vec::len));
    let written = if json {
        rows.iter()
            .try_for_each(|row| writeln!(out, "{}", json_row(&names, row)))
    } else {
        write_table(out, &names, &rows)
    };
    written.map_err(ClientError::WriteAnswer)?;
    // On stderr, so a script reading the rows is not confused by it.
    for part in &gold {
        let before = chrono::DateTime::from_timestamp_millis(part.before_ms)
            .map_or_else(|| part.before_ms.to_string(), |t| t.to_rfc3339());
        eprintln!(
            "weir: {}'s rows before {before} are in the landing zone's {} (the view is those and the rows above)",
            part.tenant_id, part.location
        );
    }
    Ok(as_of)
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
        let mut client = ViewsClient::new(target.channel().await?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
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
        "deployed {name} version {} ({}) {deploy_mode} at logical time {} ({})",
        r.version,
        r.hash,
        r.effective_time,
        kind_name(r.kind)
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
        "rolled {name} back to version {} ({}) {deploy_mode} at logical time {} ({})",
        r.version,
        r.hash,
        r.effective_time,
        kind_name(r.kind)
    ))
}

/// `rule` or `transform`, as `weir plugin` prints a version's kind.
fn kind_name(kind: i32) -> &'static str {
    match proto::PluginKind::try_from(kind) {
        Ok(proto::PluginKind::Transform) => "transform",
        Ok(proto::PluginKind::Rule) => "rule",
        _ => "unknown",
    }
}

/// `weir plugin list`: one line per version, rules and transforms (the `kind` column; each
/// kind numbers its versions on its own).
pub fn list(target: &Target, out: &mut impl Write) -> Result<(), ClientError> {
    let r = runtime()?.block_on(async {
        let mut client = PluginsClient::new(target.channel().await?);
        client
            .list(target.request(proto::ListPluginsRequest {})?)
            .await
            .map_err(ClientError::from)
    })?;
    let names: Vec<String> = [
        "name", "version", "hash", "tenant", "active", "deployed", "kind",
    ]
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
            for d in &v.disabled_for {
                active.push_str(&format!(",disabled:{}@{}", d.tenant, d.time));
            }
            for tenant in &v.disabled_tenants {
                active.push_str(&format!(",disabled:{tenant}"));
            }
            vec![
                Cell::Str(v.name),
                Cell::Int(v.version as i64),
                Cell::Str(v.hash),
                Cell::Str(v.tenant.unwrap_or_else(|| "*".into())),
                Cell::Str(active),
                Cell::Str(deployed.join(",")),
                Cell::Str(kind_name(v.kind).to_owned()),
            ]
        })
        .collect();
    write_table(out, &names, &rows).map_err(ClientError::Write)
}
