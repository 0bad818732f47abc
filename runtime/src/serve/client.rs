//! The command-line clients of the API: `weir query`, `weir subscribe`, `weir plugin
//! deploy|list|rollback`. Each call opens a connection, presents the bearer token, and
//! prints rows as an aligned table or as JSON lines.

use std::io::Write;
use std::path::Path;

use tonic::transport::Channel;
use tonic::{Request, Status};

use super::api::{from_row, to_value};
use super::proto::{self, plugins_client::PluginsClient, views_client::ViewsClient};
use crate::row::{Cell, ColumnType, Row, view_schema};

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

    fn request<T>(&self, message: T) -> Result<Request<T>, String> {
        match &self.token {
            Some(token) => bearer(message, token),
            None => Ok(Request::new(message)),
        }
    }

    async fn channel(&self) -> Result<Channel, String> {
        let endpoint = self.endpoint();
        Channel::from_shared(endpoint.clone())
            .map_err(|e| format!("{endpoint} is not an address: {e}"))?
            .connect()
            .await
            .map_err(|e| {
                format!("cannot reach weir at {endpoint}: {e} (is `weir run` running? --addr sets the address)")
            })
    }
}

/// A request carrying `authorization: Bearer <token>`.
pub fn bearer<T>(message: T, token: &str) -> Result<Request<T>, String> {
    let mut request = Request::new(message);
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| "the token must be printable ASCII".to_owned())?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the client runtime: {e}"))
}

/// A status as the user should read it.
fn explain(status: Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// Reads `values` as the leading key columns of `view` (by the local schema).
pub fn prefix_values(view: &str, values: &[String]) -> Result<Vec<proto::Value>, String> {
    let Some((_, schema)) = view_schema(view) else {
        return Ok(values
            .iter()
            .map(|v| to_value(&Cell::Str(v.clone())))
            .collect());
    };
    if values.len() > schema.key_len {
        return Err(format!(
            "{view} has {} key columns ({}); got {} prefix values",
            schema.key_len,
            schema
                .key_columns()
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join(", "),
            values.len()
        ));
    }
    values
        .iter()
        .zip(schema.key_columns())
        .map(|(v, column)| {
            let cell = match column.ty {
                ColumnType::Str => Cell::Str(v.clone()),
                ColumnType::Int => {
                    Cell::Int(v.parse().map_err(|_| {
                        format!("--prefix {v}: {} is an integer column", column.name)
                    })?)
                }
                ColumnType::Bool => Cell::Bool(
                    v.parse()
                        .map_err(|_| format!("--prefix {v}: {} is true or false", column.name))?,
                ),
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
) -> Result<u64, String> {
    let request = proto::QueryRequest {
        view: view.to_owned(),
        key_prefix: prefix_values(view, prefix)?,
        limit,
        as_of,
    };
    let response = runtime()?.block_on(async {
        let mut client = ViewsClient::new(target.channel().await?);
        client
            .query(target.request(request)?)
            .await
            .map_err(explain)
    })?;
    let response = response.into_inner();
    let rows: Vec<Row> = response
        .rows
        .iter()
        .map(|r| from_row(r).ok_or_else(|| "the server sent an unset value".to_owned()))
        .collect::<Result<_, _>>()?;
    let names = column_names(view, rows.first().map_or(0, Vec::len));
    let written = if json {
        rows.iter()
            .try_for_each(|row| writeln!(out, "{}", json_row(&names, row)))
    } else {
        write_table(out, &names, &rows)
    };
    written.map_err(|e| format!("cannot write the answer: {e}"))?;
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
) -> Result<(), String> {
    let request = proto::SubscribeRequest {
        view: view.to_owned(),
        key_prefix: prefix_values(view, prefix)?,
    };
    let names = column_names(view, 0);
    runtime()?.block_on(async {
        let mut client = ViewsClient::new(target.channel().await?);
        let mut stream = client
            .subscribe(target.request(request)?)
            .await
            .map_err(explain)?
            .into_inner();
        let mut printed = 0u64;
        let fail = |e: std::io::Error| format!("cannot write: {e}");
        while let Some(message) = stream.message().await.map_err(explain)? {
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

fn mode(mode: &str) -> Result<i32, String> {
    match mode {
        "from_now" => Ok(proto::DeployMode::FromNow as i32),
        "retroactive" => Ok(proto::DeployMode::Retroactive as i32),
        other => Err(format!("--mode {other}: use from_now or retroactive")),
    }
}

/// `weir plugin deploy`: the version and the logical time it took effect at.
pub fn deploy(
    target: &Target,
    file: &Path,
    name: &str,
    tenant: Option<&str>,
    deploy_mode: &str,
    vectors: Option<&Path>,
) -> Result<String, String> {
    let component =
        std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let vectors = match vectors {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
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
            .map_err(explain)
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
) -> Result<String, String> {
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
            .map_err(explain)
    })?;
    let r = r.into_inner();
    Ok(format!(
        "rolled {name} back to version {} ({}) {deploy_mode} at logical time {}",
        r.version, r.hash, r.effective_time
    ))
}

/// `weir plugin list`: one line per version.
pub fn list(target: &Target, out: &mut impl Write) -> Result<(), String> {
    let r = runtime()?.block_on(async {
        let mut client = PluginsClient::new(target.channel().await?);
        client
            .list(target.request(proto::ListPluginsRequest {})?)
            .await
            .map_err(explain)
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
    write_table(out, &names, &rows).map_err(|e| format!("cannot write: {e}"))
}
