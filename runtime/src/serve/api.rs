//! The `weir.v1` services: views (list, query, subscribe) and plugins (deploy, list,
//! rollback), plus gRPC health and server reflection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

use super::AdminRequest;
use super::auth::{Caller, Tokens};
use super::metrics;
use super::proto::{self, plugins_server, value, views_server};
use crate::plugins::registry::{Mode, RuleRegistry, VersionId};
use crate::row::{Cell, ColumnType, Row, TABLES, ViewSchema, view_schema};
use crate::store::{AsOfError, ViewStore};
use crate::views::Time;

/// What the services share.
#[derive(Clone)]
pub struct Api {
    pub store: Arc<ViewStore>,
    pub registry: Arc<RuleRegistry>,
    pub admin: mpsc::UnboundedSender<AdminRequest>,
    pub tokens: Arc<Tokens>,
}

/// Serves gRPC on `listener` until `stopped` fires.
pub async fn serve(listener: tokio::net::TcpListener, api: Api, stopped: oneshot::Receiver<()>) {
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1();
    let reflection = match reflection {
        Ok(service) => service,
        Err(e) => {
            eprintln!("weir: error: gRPC reflection cannot start: {e}");
            return;
        }
    };
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<views_server::ViewsServer<Api>>().await;
    health
        .set_serving::<plugins_server::PluginsServer<Api>>()
        .await;
    let result = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(views_server::ViewsServer::new(api.clone()))
        .add_service(plugins_server::PluginsServer::new(api))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async {
                let _ = stopped.await;
            },
        )
        .await;
    if let Err(e) = result {
        eprintln!("weir: error: the gRPC server stopped: {e}");
    }
}

/// Books a finished request in the metrics and passes its result on.
fn booked<T>(method: &str, started: Instant, result: Result<T, Status>) -> Result<T, Status> {
    let code = match &result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    };
    metrics::global().grpc(method, code, started.elapsed());
    result
}

// --- conversions ---------------------------------------------------------------------------

pub fn to_value(cell: &Cell) -> proto::Value {
    let kind = match cell {
        Cell::Int(v) => value::Kind::Int(*v),
        Cell::Str(v) => value::Kind::Str(v.clone()),
        Cell::Bool(v) => value::Kind::Bool(*v),
    };
    proto::Value { kind: Some(kind) }
}

pub fn to_cell(value: &proto::Value) -> Option<Cell> {
    Some(match value.kind.as_ref()? {
        value::Kind::Int(v) => Cell::Int(*v),
        value::Kind::Str(v) => Cell::Str(v.clone()),
        value::Kind::Bool(v) => Cell::Bool(*v),
    })
}

pub fn to_row(row: &Row) -> proto::Row {
    proto::Row {
        values: row.iter().map(to_value).collect(),
    }
}

pub fn from_row(row: &proto::Row) -> Option<Row> {
    row.values.iter().map(to_cell).collect()
}

fn column_type(ty: ColumnType) -> proto::ColumnType {
    match ty {
        ColumnType::Int => proto::ColumnType::Int,
        ColumnType::Str => proto::ColumnType::String,
        ColumnType::Bool => proto::ColumnType::Bool,
    }
}

fn view_info(view: &ViewSchema) -> proto::ViewInfo {
    let columns = |cols: &[crate::row::Column]| {
        cols.iter()
            .map(|c| proto::Column {
                name: c.name.to_owned(),
                r#type: column_type(c.ty) as i32,
            })
            .collect()
    };
    proto::ViewInfo {
        name: view.name.to_owned(),
        key_columns: columns(view.key_columns()),
        value_columns: columns(view.value_columns()),
    }
}

fn mode(raw: i32) -> Result<Mode, Status> {
    match proto::DeployMode::try_from(raw) {
        Ok(proto::DeployMode::Unspecified | proto::DeployMode::FromNow) => Ok(Mode::FromNow),
        Ok(proto::DeployMode::Retroactive) => Ok(Mode::Retroactive),
        Err(_) => Err(Status::invalid_argument(format!(
            "unknown deploy mode {raw}"
        ))),
    }
}

fn deploy_mode(mode: Mode) -> proto::DeployMode {
    match mode {
        Mode::FromNow => proto::DeployMode::FromNow,
        Mode::Retroactive => proto::DeployMode::Retroactive,
    }
}

impl Api {
    /// The view and the effective key prefix of a read: a tenant's reads are confined to the
    /// tenant's own rows.
    fn scope(
        &self,
        caller: &Caller,
        view: &str,
        prefix: &[proto::Value],
    ) -> Result<(usize, Vec<Cell>), Status> {
        let (index, schema) = view_schema(view).ok_or_else(|| {
            let names: Vec<&str> = TABLES.iter().map(|v| v.name).collect();
            Status::not_found(format!(
                "no view named {view:?}; the views are {}",
                names.join(", ")
            ))
        })?;
        if prefix.len() > schema.key_len {
            return Err(Status::invalid_argument(format!(
                "{view} has {} key columns; the prefix has {} values",
                schema.key_len,
                prefix.len()
            )));
        }
        let mut cells = Vec::with_capacity(prefix.len());
        for (value, column) in prefix.iter().zip(schema.key_columns()) {
            let cell = to_cell(value).ok_or_else(|| {
                Status::invalid_argument(format!("key prefix value for {} is unset", column.name))
            })?;
            let fits = matches!(
                (&cell, column.ty),
                (Cell::Int(_), ColumnType::Int)
                    | (Cell::Str(_), ColumnType::Str)
                    | (Cell::Bool(_), ColumnType::Bool)
            );
            if !fits {
                return Err(Status::invalid_argument(format!(
                    "key prefix value {cell} does not fit column {} ({:?})",
                    column.name, column.ty
                )));
            }
            cells.push(cell);
        }
        if let Caller::Tenant(tenant) = caller {
            match cells.first() {
                None => cells.push(Cell::Str(tenant.clone())),
                Some(Cell::Str(t)) if t == tenant => {}
                Some(other) => {
                    return Err(Status::permission_denied(format!(
                        "this token is for tenant {tenant}; it cannot read tenant {other}"
                    )));
                }
            }
        }
        Ok((index, cells))
    }

    fn query_rows(
        &self,
        request: Request<proto::QueryRequest>,
    ) -> Result<proto::QueryResponse, Status> {
        let caller = self.tokens.authenticate(&request)?;
        let q = request.into_inner();
        let (view, prefix) = self.scope(&caller, &q.view, &q.key_prefix)?;
        let answer = self
            .store
            .query(view, &prefix, q.limit as usize, q.as_of)
            .map_err(|e| match e {
                AsOfError::NothingPublished => Status::unavailable(e.to_string()),
                AsOfError::NotYetPublished { .. } => Status::out_of_range(e.to_string()),
                AsOfError::NoLongerRetained { .. } => Status::failed_precondition(e.to_string()),
            })?;
        Ok(proto::QueryResponse {
            as_of: answer.as_of,
            rows: answer.rows.iter().map(to_row).collect(),
            truncated: answer.truncated,
        })
    }

    fn subscription(
        &self,
        request: Request<proto::SubscribeRequest>,
    ) -> Result<ReceiverStream<Result<proto::SubscribeResponse, Status>>, Status> {
        let caller = self.tokens.authenticate(&request)?;
        let s = request.into_inner();
        let (view, prefix) = self.scope(&caller, &s.view, &s.key_prefix)?;
        let mut subscription = self.store.subscribe(view, &prefix);
        let (out, stream) = mpsc::channel(16);
        let view_name = s.view;
        tokio::spawn(async move {
            use proto::subscribe_response::Kind;
            let snapshot = proto::SubscribeResponse {
                kind: Some(Kind::Snapshot(proto::Snapshot {
                    as_of: subscription.as_of.unwrap_or(0),
                    rows: subscription.snapshot.iter().map(to_row).collect(),
                })),
            };
            subscription.snapshot = Vec::new();
            if out.send(Ok(snapshot)).await.is_err() {
                return;
            }
            while let Some(changes) = subscription.changes.recv().await {
                let message = proto::SubscribeResponse {
                    kind: Some(Kind::Changes(proto::Changes {
                        updates: changes
                            .updates
                            .iter()
                            .map(|(row, time, diff)| proto::Update {
                                row: Some(to_row(row)),
                                diff: *diff as i64,
                                time: *time,
                            })
                            .collect(),
                        progress: changes.progress,
                    })),
                };
                if out.send(Ok(message)).await.is_err() {
                    // The client went away; dropping the subscription unhooks it.
                    return;
                }
            }
            if subscription.fell_behind() {
                metrics::global().subscriber_dropped();
                let _ = out
                    .send(Err(Status::resource_exhausted(format!(
                        "this subscription to {view_name} fell behind the publications and was dropped; subscribe again for a fresh snapshot"
                    ))))
                    .await;
            }
        });
        Ok(ReceiverStream::new(stream))
    }

    /// Registers nothing: waits for the pipeline to deploy `version` and returns the time.
    async fn apply(&self, version: VersionId, mode: Mode) -> Result<Time, Status> {
        let (reply, answer) = oneshot::channel();
        self.admin
            .send(AdminRequest {
                version,
                mode,
                reply,
            })
            .map_err(|_| Status::unavailable("the pipeline has stopped"))?;
        match tokio::time::timeout(Duration::from_secs(60), answer).await {
            Ok(Ok(Ok(at))) => Ok(at),
            Ok(Ok(Err(e))) => Err(Status::failed_precondition(e)),
            Ok(Err(_)) => Err(Status::unavailable("the pipeline has stopped")),
            Err(_) => Err(Status::deadline_exceeded(
                "the pipeline did not take the deploy within 60 s",
            )),
        }
    }

    async fn deploy_version(
        &self,
        request: Request<proto::DeployRequest>,
    ) -> Result<proto::DeployResponse, Status> {
        self.tokens.authenticate(&request)?.require_admin()?;
        let d = request.into_inner();
        let mode = mode(d.mode)?;
        if d.name.is_empty() {
            return Err(Status::invalid_argument("a deploy needs the rule's name"));
        }
        if d.component.is_empty() {
            return Err(Status::invalid_argument(
                "a deploy needs the component bytes",
            ));
        }
        let (name, vectors, tenant) = (d.name.clone(), d.vectors, d.tenant.clone());
        let component: Arc<[u8]> = d.component.into();
        let bytes = component.clone();
        let validated = tokio::task::spawn_blocking(move || {
            crate::plugins::set::validate_rule(&name, &bytes, &vectors, tenant.as_deref())
        })
        .await
        .map_err(|e| Status::internal(format!("validation stopped: {e}")))?;
        let (name, hash, tenant, maker) = validated.map_err(Status::invalid_argument)?;
        let version =
            self.registry
                .register_uploaded(&name, hash.clone(), tenant, maker, component);
        let at = self.apply(version, mode).await?;
        Ok(proto::DeployResponse {
            version,
            effective_time: at,
            hash,
        })
    }

    async fn rollback_version(
        &self,
        request: Request<proto::RollbackRequest>,
    ) -> Result<proto::DeployResponse, Status> {
        self.tokens.authenticate(&request)?.require_admin()?;
        let r = request.into_inner();
        let mode = mode(r.mode)?;
        let versions: Vec<_> = self
            .registry
            .list()
            .into_iter()
            .filter(|v| v.name == r.name)
            .collect();
        if versions.is_empty() {
            return Err(Status::not_found(format!("no rule named {:?}", r.name)));
        }
        let target = match r.version {
            Some(id) => versions
                .iter()
                .find(|v| v.id == id)
                .ok_or_else(|| Status::not_found(format!("rule {} has no version {id}", r.name)))?,
            None => {
                let active = self
                    .registry
                    .active()
                    .into_iter()
                    .find(|d| d.name == r.name && d.until == Time::MAX)
                    .map(|d| d.version);
                let mut history: Vec<(Time, VersionId)> = versions
                    .iter()
                    .flat_map(|v| v.deployed.iter().map(move |(t, _)| (*t, v.id)))
                    .collect();
                history.sort();
                let previous = history
                    .iter()
                    .rev()
                    .find(|(_, id)| Some(*id) != active)
                    .map(|(_, id)| *id)
                    .ok_or_else(|| {
                        Status::failed_precondition(format!(
                            "rule {} has no earlier version to roll back to",
                            r.name
                        ))
                    })?;
                versions
                    .iter()
                    .find(|v| v.id == previous)
                    .expect("the id comes from this list")
            }
        };
        let at = self.apply(target.id, mode).await?;
        Ok(proto::DeployResponse {
            version: target.id,
            effective_time: at,
            hash: target.hash.clone(),
        })
    }

    fn list_versions(
        &self,
        request: Request<proto::ListPluginsRequest>,
    ) -> Result<proto::ListPluginsResponse, Status> {
        self.tokens.authenticate(&request)?.require_admin()?;
        let active = self.registry.active();
        let versions = self
            .registry
            .list()
            .into_iter()
            .map(|v| proto::PluginVersion {
                active: active
                    .iter()
                    .any(|d| d.version == v.id && d.until == Time::MAX),
                deployed: v
                    .deployed
                    .iter()
                    .map(|(time, mode)| proto::Deployed {
                        time: *time,
                        mode: deploy_mode(*mode) as i32,
                    })
                    .collect(),
                name: v.name,
                version: v.id,
                hash: v.hash,
                tenant: v.tenant,
                disabled_at: v.disabled_at,
            })
            .collect();
        Ok(proto::ListPluginsResponse { versions })
    }
}

#[tonic::async_trait]
impl views_server::Views for Api {
    async fn list_views(
        &self,
        request: Request<proto::ListViewsRequest>,
    ) -> Result<Response<proto::ListViewsResponse>, Status> {
        let started = Instant::now();
        let result = self
            .tokens
            .authenticate(&request)
            .map(|_| proto::ListViewsResponse {
                views: TABLES.iter().map(view_info).collect(),
            });
        booked("ListViews", started, result).map(Response::new)
    }

    async fn query(
        &self,
        request: Request<proto::QueryRequest>,
    ) -> Result<Response<proto::QueryResponse>, Status> {
        let started = Instant::now();
        booked("Query", started, self.query_rows(request)).map(Response::new)
    }

    type SubscribeStream = ReceiverStream<Result<proto::SubscribeResponse, Status>>;

    async fn subscribe(
        &self,
        request: Request<proto::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let started = Instant::now();
        booked("Subscribe", started, self.subscription(request)).map(Response::new)
    }
}

#[tonic::async_trait]
impl plugins_server::Plugins for Api {
    async fn deploy(
        &self,
        request: Request<proto::DeployRequest>,
    ) -> Result<Response<proto::DeployResponse>, Status> {
        let started = Instant::now();
        let result = self.deploy_version(request).await;
        booked("Deploy", started, result).map(Response::new)
    }

    async fn list(
        &self,
        request: Request<proto::ListPluginsRequest>,
    ) -> Result<Response<proto::ListPluginsResponse>, Status> {
        let started = Instant::now();
        booked("List", started, self.list_versions(request)).map(Response::new)
    }

    async fn rollback(
        &self,
        request: Request<proto::RollbackRequest>,
    ) -> Result<Response<proto::DeployResponse>, Status> {
        let started = Instant::now();
        let result = self.rollback_version(request).await;
        booked("Rollback", started, result).map(Response::new)
    }
}
