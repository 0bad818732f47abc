//! The `weir.v1` services: views (list, query, subscribe) and plugins (deploy, list,
//! rollback of rules and transforms), plus gRPC health and server reflection.
//!
//! It reads only published state and the registry's listing and never drives the pipeline: a
//! deploy is validated and registered here, then handed to the run loop through the admin
//! queue, so no call blocks a worker or changes a view directly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

use super::auth::{Caller, TokenError, TokenId, Tokens};
use super::proto::{self, plugins_server, value, views_server};
use super::{AdminRequest, DeployError};
use crate::dataflow::pipeline::PipelineError;
use crate::dataflow::store::{AsOfError, Page, ViewStore};
use crate::metrics;
use crate::plugins::registry::{Mode, RuleRegistry, VersionId};
use crate::plugins::set::{UploadError, World};
use crate::plugins::transforms::{TransformError, TransformRegistry};
use crate::row::{Cell, ColumnType, Row, TABLES, ViewId, ViewSchema, view_schema};
use crate::time::Time;

/// Every way a call to the API fails. `impl From<ApiError> for Status` is the one place that
/// decides the gRPC code; the message is always the Display text.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("no view named {view:?}; the views are {}", view_names())]
    NoView { view: String },
    #[error("{view} has {key_len} key columns; the prefix has {got} values")]
    PrefixTooLong {
        view: String,
        key_len: usize,
        got: usize,
    },
    #[error("key prefix value for {column} is unset")]
    UnsetPrefixValue { column: &'static str },
    #[error("key prefix value {cell} does not fit column {column} ({ty:?})")]
    PrefixMismatch {
        cell: Cell,
        column: &'static str,
        ty: ColumnType,
    },
    #[error("this token is for tenant {tenant}; it cannot read tenant {other}")]
    OtherTenant { tenant: String, other: Cell },
    #[error(transparent)]
    AsOf(#[from] AsOfError),
    #[error(
        "this subscription to {view} fell behind the publications and was dropped; subscribe again for a fresh snapshot"
    )]
    FellBehind { view: String },
    #[error("the page token is not one this server issued; start again without it")]
    BadPageToken,
    #[error(
        "the page token continues a query of another view or key prefix; pass the view and prefix it was issued for"
    )]
    PageTokenMismatch,
    #[error(
        "this token already holds {open} subscriptions, the most one token may hold; close one first"
    )]
    TooManySubscriptions { open: usize },
    #[error("unknown deploy mode {0}")]
    UnknownMode(i32),
    #[error("a deploy needs the plugin's name")]
    NoRuleName,
    #[error("a deploy needs the component bytes")]
    NoComponent,
    #[error("validation stopped: {0}")]
    ValidationStopped(tokio::task::JoinError),
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error("no rule or transform named {0:?}")]
    NoRule(String),
    #[error("{0:?} names both a rule and a transform; deploy the version wanted instead")]
    AmbiguousName(String),
    #[error("{name} has no version {version}")]
    NoSuchVersion { name: String, version: VersionId },
    #[error("{0} has no earlier version to roll back to")]
    NoEarlierVersion(String),
    #[error("the pipeline has stopped")]
    PipelineGone,
    #[error("the pipeline did not take the deploy within 60 s")]
    DeployTimeout,
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
}

impl ApiError {
    /// The stable, machine-readable code of the variant; a wrapped error keeps its own.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Token(e) => e.code(),
            ApiError::NoView { .. } => "no_view",
            ApiError::PrefixTooLong { .. } => "prefix_too_long",
            ApiError::UnsetPrefixValue { .. } => "unset_prefix_value",
            ApiError::PrefixMismatch { .. } => "prefix_mismatch",
            ApiError::OtherTenant { .. } => "other_tenant",
            ApiError::AsOf(AsOfError::NothingPublished) => "nothing_published",
            ApiError::AsOf(AsOfError::NotYetPublished { .. }) => "not_yet_published",
            ApiError::AsOf(AsOfError::NoLongerRetained { .. }) => "no_longer_retained",
            ApiError::FellBehind { .. } => "fell_behind",
            ApiError::BadPageToken => "bad_page_token",
            ApiError::PageTokenMismatch => "page_token_mismatch",
            ApiError::TooManySubscriptions { .. } => "too_many_subscriptions",
            ApiError::UnknownMode(_) => "unknown_mode",
            ApiError::NoRuleName => "no_rule_name",
            ApiError::NoComponent => "no_component",
            ApiError::ValidationStopped(_) => "validation_stopped",
            ApiError::Upload(e) => e.code(),
            ApiError::NoRule(_) => "no_rule",
            ApiError::AmbiguousName(_) => "ambiguous_name",
            ApiError::NoSuchVersion { .. } => "no_such_version",
            ApiError::NoEarlierVersion(_) => "no_earlier_version",
            ApiError::PipelineGone => "pipeline_gone",
            ApiError::DeployTimeout => "deploy_timeout",
            ApiError::Pipeline(e) => e.code(),
            ApiError::Deploy(e) => e.code(),
        }
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        let code = match &error {
            ApiError::Token(TokenError::NotAdmin(_)) | ApiError::OtherTenant { .. } => {
                Code::PermissionDenied
            }
            // Empty and repeated tokens are refused when the configuration is read; a request
            // cannot make them.
            ApiError::Token(_) => Code::Unauthenticated,
            ApiError::NoView { .. }
            | ApiError::NoRule(_)
            | ApiError::NoSuchVersion { .. }
            | ApiError::Deploy(DeployError::Transform(TransformError::NoVersion(_))) => {
                Code::NotFound
            }
            ApiError::PrefixTooLong { .. }
            | ApiError::UnsetPrefixValue { .. }
            | ApiError::PrefixMismatch { .. }
            | ApiError::UnknownMode(_)
            | ApiError::BadPageToken
            | ApiError::PageTokenMismatch
            | ApiError::NoRuleName
            | ApiError::NoComponent
            | ApiError::AmbiguousName(_)
            | ApiError::Upload(_) => Code::InvalidArgument,
            ApiError::AsOf(AsOfError::NothingPublished) | ApiError::PipelineGone => {
                Code::Unavailable
            }
            ApiError::AsOf(AsOfError::NotYetPublished { .. }) => Code::OutOfRange,
            ApiError::AsOf(AsOfError::NoLongerRetained { .. })
            | ApiError::NoEarlierVersion(_)
            | ApiError::Pipeline(_)
            | ApiError::Deploy(_) => Code::FailedPrecondition,
            ApiError::FellBehind { .. } | ApiError::TooManySubscriptions { .. } => {
                Code::ResourceExhausted
            }
            ApiError::ValidationStopped(_) => Code::Internal,
            ApiError::DeployTimeout => Code::DeadlineExceeded,
        };
        Status::new(code, error.to_string())
    }
}

fn view_names() -> String {
    let names: Vec<&str> = TABLES.iter().map(|v| v.name).collect();
    names.join(", ")
}

/// What the services share.
#[derive(Clone)]
pub struct Api {
    pub store: Arc<ViewStore>,
    pub registry: Arc<RuleRegistry>,
    pub transforms: Arc<TransformRegistry>,
    pub admin: mpsc::UnboundedSender<AdminRequest>,
    pub tokens: Arc<Tokens>,
    pub subscriptions: Arc<SubscriptionLimit>,
}

/// Subscriptions open at most per token by default: enough for a dashboard's panels, few
/// enough that one client cannot make every publication deliver to thousands of streams.
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_TOKEN: usize = 64;

/// The open subscriptions of each token, against a cap.
#[derive(Debug)]
pub struct SubscriptionLimit {
    max: usize,
    open: Mutex<HashMap<TokenId, usize>>,
}

impl SubscriptionLimit {
    pub fn new(max: usize) -> SubscriptionLimit {
        SubscriptionLimit {
            max: max.max(1),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Books one more subscription for `token`, released when the returned guard drops.
    fn open(self: &Arc<Self>, token: TokenId) -> Result<OpenSubscription, ApiError> {
        let mut open = self.open.lock().unwrap();
        let count = open.entry(token).or_insert(0);
        if *count >= self.max {
            return Err(ApiError::TooManySubscriptions { open: *count });
        }
        *count += 1;
        Ok(OpenSubscription {
            limit: self.clone(),
            token,
        })
    }
}

struct OpenSubscription {
    limit: Arc<SubscriptionLimit>,
    token: TokenId,
}

impl Drop for OpenSubscription {
    fn drop(&mut self) {
        let mut open = self.limit.open.lock().unwrap();
        if let Some(count) = open.get_mut(&self.token) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.token);
            }
        }
    }
}

/// Where a query page stops and what it belongs to. Opaque to clients (hex of JSON): it is
/// checked against the request it comes back with, so it cannot widen a tenant's scope —
/// the prefix is the tenant-scoped one and `after` is only a lower bound inside it.
#[derive(serde::Serialize, serde::Deserialize)]
struct PageToken {
    view: String,
    as_of: Time,
    prefix: Row,
    after: Row,
}

impl PageToken {
    fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a page token serialises");
        json.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn decode(text: &str) -> Result<PageToken, ApiError> {
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or(ApiError::BadPageToken)?;
        serde_json::from_slice(&bytes).map_err(|_| ApiError::BadPageToken)
    }
}

/// Serves gRPC on `listener` with `server` (plain, or with TLS set up) until `stopped` fires.
pub async fn serve(
    server: tonic::transport::Server,
    listener: tokio::net::TcpListener,
    api: Api,
    stopped: oneshot::Receiver<()>,
) {
    let mut server = server;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // Both protocol versions: Python's grpc_reflection, Postman and older grpcurl speak only
    // v1alpha.
    let (reflection, reflection_alpha) =
        match (reflection().build_v1(), reflection().build_v1alpha()) {
            (Ok(v1), Ok(v1alpha)) => (v1, v1alpha),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("weir: error: gRPC reflection cannot start: {e}");
                return;
            }
        };
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<views_server::ViewsServer<Api>>().await;
    health
        .set_serving::<plugins_server::PluginsServer<Api>>()
        .await;
    let result = server
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
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

/// Books a finished request in the metrics and answers it.
fn booked<T>(
    method: &str,
    started: Instant,
    result: Result<T, ApiError>,
) -> Result<Response<T>, Status> {
    let result = result.map(Response::new).map_err(Status::from);
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

fn mode(raw: i32) -> Result<Mode, ApiError> {
    match proto::DeployMode::try_from(raw) {
        Ok(proto::DeployMode::Unspecified | proto::DeployMode::FromNow) => Ok(Mode::FromNow),
        Ok(proto::DeployMode::Retroactive) => Ok(Mode::Retroactive),
        Err(_) => Err(ApiError::UnknownMode(raw)),
    }
}

fn deploy_mode(mode: Mode) -> proto::DeployMode {
    match mode {
        Mode::FromNow => proto::DeployMode::FromNow,
        Mode::Retroactive => proto::DeployMode::Retroactive,
    }
}

fn plugin_kind(world: World) -> proto::PluginKind {
    match world {
        World::Rule => proto::PluginKind::Rule,
        World::Transform => proto::PluginKind::Transform,
    }
}

fn deployed_at(deployed: &[(Time, Mode)]) -> Vec<proto::Deployed> {
    deployed
        .iter()
        .map(|(time, mode)| proto::Deployed {
            time: *time,
            mode: deploy_mode(*mode) as i32,
        })
        .collect()
}

impl Api {
    /// The view and the effective key prefix of a read: a tenant's reads are confined to the
    /// tenant's own rows.
    fn scope(
        &self,
        caller: &Caller,
        view: &str,
        prefix: &[proto::Value],
    ) -> Result<(ViewId, Vec<Cell>), ApiError> {
        let (id, schema) = view_schema(view).ok_or_else(|| ApiError::NoView {
            view: view.to_owned(),
        })?;
        if prefix.len() > schema.key_len {
            return Err(ApiError::PrefixTooLong {
                view: view.to_owned(),
                key_len: schema.key_len,
                got: prefix.len(),
            });
        }
        let mut cells = Vec::with_capacity(prefix.len());
        for (value, column) in prefix.iter().zip(schema.key_columns()) {
            let cell = to_cell(value).ok_or(ApiError::UnsetPrefixValue {
                column: column.name,
            })?;
            let fits = matches!(
                (&cell, column.ty),
                (Cell::Int(_), ColumnType::Int)
                    | (Cell::Str(_), ColumnType::Str)
                    | (Cell::Bool(_), ColumnType::Bool)
            );
            if !fits {
                return Err(ApiError::PrefixMismatch {
                    cell,
                    column: column.name,
                    ty: column.ty,
                });
            }
            cells.push(cell);
        }
        if let Caller::Tenant(tenant) = caller {
            match cells.first() {
                None => cells.push(Cell::Str(tenant.clone())),
                Some(Cell::Str(t)) if t == tenant => {}
                Some(other) => {
                    return Err(ApiError::OtherTenant {
                        tenant: tenant.clone(),
                        other: other.clone(),
                    });
                }
            }
        }
        Ok((id, cells))
    }

    fn query_rows(
        &self,
        request: Request<proto::QueryRequest>,
    ) -> Result<proto::QueryResponse, ApiError> {
        let caller = self.tokens.authenticate(&request)?;
        let q = request.into_inner();
        let (view, prefix) = self.scope(&caller, &q.view, &q.key_prefix)?;
        let (as_of, after) = if q.page_token.is_empty() {
            (q.as_of, None)
        } else {
            let token = PageToken::decode(&q.page_token)?;
            if token.view != q.view || token.prefix != prefix {
                return Err(ApiError::PageTokenMismatch);
            }
            (Some(token.as_of), Some(token.after))
        };
        let page = Page {
            limit: q.limit as usize,
            after,
        };
        let answer = self.store.query(view, &prefix, &page, as_of)?;
        let tenant = match prefix.first() {
            Some(Cell::Str(tenant)) => Some(tenant.as_str()),
            _ => None,
        };
        let gold = self.store.read(|p| {
            p.gold
                .iter()
                .filter(|((v, t), _)| *v == view && tenant.is_none_or(|tenant| tenant == t))
                .map(|((v, t), before)| proto::GoldPart {
                    tenant_id: t.clone(),
                    before_ms: *before,
                    location: format!("gold/{}/tenant_id={t}/", v.name()),
                })
                .collect()
        });
        let next_page_token = match answer.rows.last() {
            Some(last) if answer.truncated => PageToken {
                view: q.view,
                as_of: answer.as_of,
                prefix,
                after: last.clone(),
            }
            .encode(),
            _ => String::new(),
        };
        Ok(proto::QueryResponse {
            as_of: answer.as_of,
            rows: answer.rows.iter().map(to_row).collect(),
            truncated: answer.truncated,
            next_page_token,
            gold,
        })
    }

    fn subscription(
        &self,
        request: Request<proto::SubscribeRequest>,
    ) -> Result<ReceiverStream<Result<proto::SubscribeResponse, Status>>, ApiError> {
        let (caller, token) = self.tokens.identify(&request)?;
        let s = request.into_inner();
        let (view, prefix) = self.scope(&caller, &s.view, &s.key_prefix)?;
        let open = self.subscriptions.open(token)?;
        let mut subscription = self.store.subscribe(view, &prefix);
        let (out, stream) = mpsc::channel(16);
        let view_name = s.view;
        tokio::spawn(async move {
            // Held until the stream ends, however it ends.
            let _open = open;
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
            loop {
                // A client that went away frees its slot now, not at the next publication.
                let changes = tokio::select! {
                    changes = subscription.changes.recv() => changes,
                    () = out.closed() => return,
                };
                let Some(changes) = changes else { break };
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
                let fell_behind = ApiError::FellBehind { view: view_name };
                let _ = out.send(Err(fell_behind.into())).await;
            }
        });
        Ok(ReceiverStream::new(stream))
    }

    /// Registers nothing: waits for the pipeline to deploy `version` and returns the time.
    async fn apply(&self, world: World, version: VersionId, mode: Mode) -> Result<Time, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.admin
            .send(AdminRequest {
                world,
                version,
                mode,
                reply,
            })
            .map_err(|_| ApiError::PipelineGone)?;
        match tokio::time::timeout(Duration::from_secs(60), answer).await {
            Ok(Ok(deployed)) => Ok(deployed?),
            Ok(Err(_)) => Err(ApiError::PipelineGone),
            Err(_) => Err(ApiError::DeployTimeout),
        }
    }

    async fn deploy_version(
        &self,
        request: Request<proto::DeployRequest>,
    ) -> Result<proto::DeployResponse, ApiError> {
        self.tokens.authenticate(&request)?.require_admin()?;
        let d = request.into_inner();
        let mode = mode(d.mode)?;
        if d.name.is_empty() {
            return Err(ApiError::NoRuleName);
        }
        if d.component.is_empty() {
            return Err(ApiError::NoComponent);
        }
        let (rules, transforms) = (self.registry.clone(), self.transforms.clone());
        // Compiling the component and running its vectors is CPU work: off the async threads.
        let uploaded = tokio::task::spawn_blocking(move || {
            crate::plugins::set::upload(
                &rules,
                &transforms,
                &d.name,
                d.component.into(),
                &d.vectors,
                d.tenant.as_deref(),
            )
        })
        .await
        .map_err(ApiError::ValidationStopped)?;
        let uploaded = uploaded?;
        let at = self.apply(uploaded.world, uploaded.version, mode).await?;
        Ok(proto::DeployResponse {
            version: uploaded.version,
            effective_time: at,
            hash: uploaded.hash,
            kind: plugin_kind(uploaded.world) as i32,
        })
    }

    /// Rolls transform `name` back to `version`, or by default undoes its last deploy.
    async fn rollback_transform(
        &self,
        name: String,
        version: Option<VersionId>,
        mode: Mode,
    ) -> Result<proto::DeployResponse, ApiError> {
        let id = match version {
            Some(id) => id,
            None => self
                .transforms
                .previous(&name)
                .ok_or_else(|| ApiError::NoEarlierVersion(name.clone()))?,
        };
        let target = self
            .transforms
            .version(id)
            .filter(|v| v.name == name)
            .ok_or(ApiError::NoSuchVersion { name, version: id })?;
        let at = self.apply(World::Transform, id, mode).await?;
        Ok(proto::DeployResponse {
            version: id,
            effective_time: at,
            hash: target.hash,
            kind: proto::PluginKind::Transform as i32,
        })
    }

    async fn rollback_version(
        &self,
        request: Request<proto::RollbackRequest>,
    ) -> Result<proto::DeployResponse, ApiError> {
        self.tokens.authenticate(&request)?.require_admin()?;
        let r = request.into_inner();
        let mode = mode(r.mode)?;
        let versions: Vec<_> = self
            .registry
            .list()
            .into_iter()
            .filter(|v| v.name == r.name)
            .collect();
        let is_transform = self.transforms.list().iter().any(|v| v.name == r.name);
        match (versions.is_empty(), is_transform) {
            (true, false) => return Err(ApiError::NoRule(r.name)),
            (true, true) => return self.rollback_transform(r.name, r.version, mode).await,
            (false, true) => return Err(ApiError::AmbiguousName(r.name)),
            (false, false) => {}
        }
        let target = match r.version {
            Some(id) => {
                versions
                    .iter()
                    .find(|v| v.id == id)
                    .ok_or_else(|| ApiError::NoSuchVersion {
                        name: r.name.clone(),
                        version: id,
                    })?
            }
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
                    .ok_or_else(|| ApiError::NoEarlierVersion(r.name.clone()))?;
                versions
                    .iter()
                    .find(|v| v.id == previous)
                    .expect("the id comes from this list")
            }
        };
        let at = self.apply(World::Rule, target.id, mode).await?;
        Ok(proto::DeployResponse {
            version: target.id,
            effective_time: at,
            hash: target.hash.clone(),
            kind: proto::PluginKind::Rule as i32,
        })
    }

    fn list_versions(
        &self,
        request: Request<proto::ListPluginsRequest>,
    ) -> Result<proto::ListPluginsResponse, ApiError> {
        self.tokens.authenticate(&request)?.require_admin()?;
        let active = self.registry.active();
        let mut versions: Vec<proto::PluginVersion> = self
            .registry
            .list()
            .into_iter()
            .map(|v| proto::PluginVersion {
                disabled_tenants: Vec::new(),
                kind: proto::PluginKind::Rule as i32,
                active: active
                    .iter()
                    .any(|d| d.version == v.id && d.until == Time::MAX),
                deployed: deployed_at(&v.deployed),
                name: v.name,
                version: v.id,
                hash: v.hash,
                tenant: v.tenant,
                disabled_at: v.disabled_at,
                disabled_for: v
                    .disabled_for
                    .into_iter()
                    .map(|(tenant, time)| proto::DisabledFor { tenant, time })
                    .collect(),
            })
            .collect();
        let in_force = self.transforms.in_force();
        let disabled = self
            .transforms
            .engine()
            .map(|engine| engine.disabled())
            .unwrap_or_default();
        versions.extend(self.transforms.list().into_iter().map(|v| {
            // A tenant's events reach the tenant's own version if one is in force, else the
            // global one; health is kept per (name, tenant) either way.
            let judges = |tenant: &str| match &v.tenant {
                Some(own) => own == tenant,
                None => !in_force
                    .iter()
                    .any(|f| f.name == v.name && f.tenant.as_deref() == Some(tenant)),
            };
            let is_in_force = in_force.iter().any(|f| f.version == v.id);
            let disabled_tenants = disabled
                .iter()
                .filter(|(name, tenant)| is_in_force && *name == v.name && judges(tenant))
                .map(|(_, tenant)| tenant.clone())
                .collect();
            proto::PluginVersion {
                disabled_tenants,
                kind: proto::PluginKind::Transform as i32,
                active: is_in_force,
                deployed: deployed_at(&v.deployed),
                name: v.name,
                version: v.id,
                hash: v.hash,
                tenant: v.tenant,
                // Admission stops calling a disabled transform at once: it has no logical time
                // to give, so it is listed by tenant (`disabled_tenants`).
                disabled_at: None,
                disabled_for: Vec::new(),
            }
        }));
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
            })
            .map_err(ApiError::from);
        booked("ListViews", started, result)
    }

    async fn query(
        &self,
        request: Request<proto::QueryRequest>,
    ) -> Result<Response<proto::QueryResponse>, Status> {
        let started = Instant::now();
        booked("Query", started, self.query_rows(request))
    }

    type SubscribeStream = ReceiverStream<Result<proto::SubscribeResponse, Status>>;

    async fn subscribe(
        &self,
        request: Request<proto::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let started = Instant::now();
        booked("Subscribe", started, self.subscription(request))
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
        booked("Deploy", started, result)
    }

    async fn list(
        &self,
        request: Request<proto::ListPluginsRequest>,
    ) -> Result<Response<proto::ListPluginsResponse>, Status> {
        let started = Instant::now();
        booked("List", started, self.list_versions(request))
    }

    async fn rollback(
        &self,
        request: Request<proto::RollbackRequest>,
    ) -> Result<Response<proto::DeployResponse>, Status> {
        let started = Instant::now();
        let result = self.rollback_version(request).await;
        booked("Rollback", started, result)
    }
}
