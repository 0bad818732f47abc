//! Serving: the `weir.v1` gRPC API over the published views and the rule registry, and the
//! Prometheus endpoint.
//!
//! The API runs on its own small tokio runtime beside the dataflow and reads only published
//! state ([`ViewStore`]), so a slow client never slows the pipeline. Changes to plugins are the
//! one thing that must happen on the pipeline's own thread (a deploy takes effect at the
//! logical time the source is at): the API validates and registers the component, then hands
//! the deploy to an [`AdminQueue`] that the run loop drains between batches.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::dataflow::pipeline::{Pipeline, PipelineError};
use crate::dataflow::store::ViewStore;
use crate::plugins::registry::{Mode, RuleRegistry, VersionId};
use crate::time::Time;

pub mod api;
pub mod auth;
pub mod client;

pub use api::ApiError;
pub use auth::{Caller, TokenError, Tokens};

/// The generated `weir.v1` types, clients and servers.
pub mod proto {
    tonic::include_proto!("weir.v1");

    /// The encoded descriptors of `weir.v1`, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/weir_v1_descriptor.bin"));
}

/// Where and to whom the API answers.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// gRPC address; port 0 picks a free port (see [`Server::grpc_addr`]).
    pub grpc: SocketAddr,
    /// Prometheus address, if metrics are served.
    pub metrics: Option<SocketAddr>,
    pub tokens: Tokens,
}

/// A deploy waiting for the pipeline's thread.
pub struct AdminRequest {
    pub version: VersionId,
    pub mode: Mode,
    /// The logical time the deploy took effect at.
    pub reply: oneshot::Sender<Result<Time, PipelineError>>,
}

/// Deploys requested through the API, applied by whoever drives the pipeline.
pub struct AdminQueue {
    receiver: mpsc::UnboundedReceiver<AdminRequest>,
}

/// A deploy that took effect and whose caller has not been told yet: a durable run answers
/// only once the checkpoint that holds it is committed, so an acknowledged deploy survives
/// a crash.
pub struct Deployed {
    reply: oneshot::Sender<Result<Time, PipelineError>>,
    at: Time,
}

impl Deployed {
    /// Tells the caller the deploy took effect.
    pub fn acknowledge(self) {
        let _ = self.reply.send(Ok(self.at));
    }
}

impl AdminQueue {
    /// Applies every waiting deploy at the pipeline's current logical time and answers each;
    /// returns how many took effect.
    pub fn drain(&mut self, pipeline: &mut Pipeline) -> usize {
        let applied = self.drain_unacknowledged(pipeline);
        let count = applied.len();
        applied.into_iter().for_each(Deployed::acknowledge);
        count
    }

    /// As [`AdminQueue::drain`], but the deploys that took effect are returned unanswered,
    /// for a durable run to acknowledge once the checkpoint holding them is committed.
    /// Refused ones are answered at once.
    pub fn drain_unacknowledged(&mut self, pipeline: &mut Pipeline) -> Vec<Deployed> {
        let mut applied = Vec::new();
        while let Ok(request) = self.receiver.try_recv() {
            let result = pipeline.deploy_rule(request.version, request.mode);
            if let Ok(at) = &result
                && let Some(v) = pipeline.rules().version(request.version)
            {
                eprintln!(
                    "weir: rule {} version {} ({}) deployed {:?} at logical time {at}",
                    v.name, v.id, v.hash, request.mode
                );
            }
            match result {
                Ok(at) => applied.push(Deployed {
                    reply: request.reply,
                    at,
                }),
                Err(e) => {
                    let _ = request.reply.send(Err(e));
                }
            }
        }
        applied
    }
}

/// Why the API could not start. The OS error is part of each message.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot start the API runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot listen for {what} on {addr}: {cause} (choose another address with {flag})")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        flag: &'static str,
        cause: std::io::Error,
    },
    #[error("cannot listen for {what} on {addr}: {cause}")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("cannot listen for {what}: {cause}")]
    Adopt {
        what: &'static str,
        cause: std::io::Error,
    },
}

impl ServeError {
    /// The stable, machine-readable code of the variant.
    pub fn code(&self) -> &'static str {
        match self {
            ServeError::Runtime(_) => "serve_runtime",
            ServeError::Bind { .. } => "serve_bind",
            ServeError::Listen { .. } => "serve_listen",
            ServeError::Adopt { .. } => "serve_adopt_listener",
        }
    }
}

/// A running API; dropping it stops the servers.
pub struct Server {
    grpc_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Server {
    /// Binds the addresses and starts serving `store` and `registry`; returns the server and
    /// the queue of deploys for the pipeline's driver to drain.
    pub fn start(
        config: &ServeConfig,
        store: Arc<ViewStore>,
        registry: Arc<RuleRegistry>,
    ) -> Result<(Server, AdminQueue), ServeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("weir-serve")
            .enable_all()
            .build()
            .map_err(ServeError::Runtime)?;
        let bind = |addr: SocketAddr, what: &'static str, flag: &'static str| {
            let listener = std::net::TcpListener::bind(addr).map_err(|cause| ServeError::Bind {
                what,
                addr,
                flag,
                cause,
            })?;
            let listen = |cause| ServeError::Listen { what, addr, cause };
            listener.set_nonblocking(true).map_err(listen)?;
            let local = listener.local_addr().map_err(listen)?;
            Ok::<_, ServeError>((listener, local))
        };
        let (grpc, grpc_addr) = bind(config.grpc, "gRPC", "--grpc")?;
        let metrics = config
            .metrics
            .map(|addr| bind(addr, "metrics", "--metrics"))
            .transpose()?;
        let metrics_addr = metrics.as_ref().map(|(_, addr)| *addr);
        store.hook(crate::metrics::global());
        let (sender, receiver) = mpsc::unbounded_channel();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let tokens = Arc::new(config.tokens.clone());
        let services = api::Api {
            store,
            registry,
            admin: sender,
            tokens,
        };
        runtime.block_on(async {
            let grpc =
                tokio::net::TcpListener::from_std(grpc).map_err(|cause| ServeError::Adopt {
                    what: "gRPC",
                    cause,
                })?;
            tokio::spawn(api::serve(grpc, services, stopped));
            if let Some((listener, _)) = metrics {
                let listener = tokio::net::TcpListener::from_std(listener).map_err(|cause| {
                    ServeError::Adopt {
                        what: "metrics",
                        cause,
                    }
                })?;
                tokio::spawn(crate::metrics::serve(listener));
            }
            Ok::<(), ServeError>(())
        })?;
        Ok((
            Server {
                grpc_addr,
                metrics_addr,
                shutdown: Some(shutdown),
                runtime: Some(runtime),
            },
            AdminQueue { receiver },
        ))
    }

    /// The address gRPC answers on.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The address `/metrics` answers on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}
