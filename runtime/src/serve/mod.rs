//! Serving: the `weir.v1` gRPC API over the published views and the rule registry, and the
//! Prometheus endpoint.
//!
//! The API runs on its own small tokio runtime beside the dataflow and reads only published
//! state ([`ViewStore`]), so a slow client never slows the pipeline. Changes to plugins are the
//! one thing that must happen on the pipeline's own thread (a deploy takes effect at the
//! logical time the source is at): the API validates and registers the component (a rule or a
//! transform, by its world), then hands the deploy to an [`AdminQueue`] that the run loop
//! drains between batches ([`Deploys`]: rules into the dataflow, transforms into admission).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::dataflow::pipeline::{Pipeline, PipelineError};
use crate::dataflow::store::ViewStore;
use crate::plugins::registry::{Mode, RuleRegistry, Split, VersionId};
use crate::plugins::set::World;
use crate::plugins::transforms::{TransformError, TransformRegistry};
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
    /// TLS on both listeners; `None` serves plaintext.
    pub tls: Option<TlsIdentity>,
    /// Subscriptions one token may hold open at once.
    pub max_subscriptions_per_token: usize,
}

/// A deploy waiting for the pipeline's thread.
pub struct AdminRequest {
    /// Whether `version` is a rule's or a transform's.
    pub world: World,
    pub version: VersionId,
    pub mode: Mode,
    /// The logical time the deploy took effect at.
    pub reply: oneshot::Sender<Result<Time, DeployError>>,
}

/// Why the run refused a deploy it was handed; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Transform(#[from] TransformError),
    #[error(
        "transforms run in admission, which this pipeline is driven without: deploy them to a run (Driver)"
    )]
    NoAdmission,
}

impl DeployError {
    /// The stable, machine-readable code of the variant; a wrapped error keeps its own.
    pub fn code(&self) -> &'static str {
        match self {
            DeployError::Pipeline(e) => e.code(),
            DeployError::Transform(e) => e.code(),
            DeployError::NoAdmission => "no_admission",
        }
    }
}

/// What applies deploys on the pipeline's thread, at its current logical time: a bare
/// pipeline deploys rules; a run driver rules and transforms.
pub trait Deploys {
    fn deploy_rule(&mut self, version: VersionId, mode: Mode) -> Result<Time, DeployError>;
    fn deploy_transform(&mut self, version: VersionId, mode: Mode) -> Result<Time, DeployError>;
}

impl Deploys for Pipeline {
    fn deploy_rule(&mut self, version: VersionId, mode: Mode) -> Result<Time, DeployError> {
        deploy_rule_logged(self, version, mode, None)
    }

    fn deploy_transform(&mut self, _: VersionId, _: Mode) -> Result<Time, DeployError> {
        Err(DeployError::NoAdmission)
    }
}

/// Deploys a rule version (see [`Pipeline::deploy_rule`]) and says so on stderr.
pub(crate) fn deploy_rule_logged(
    pipeline: &mut Pipeline,
    version: VersionId,
    mode: Mode,
    split: Option<Split>,
) -> Result<Time, DeployError> {
    let at = pipeline.deploy_rule(version, mode, split)?;
    if let Some(v) = pipeline.rules().version(version) {
        eprintln!(
            "weir: rule {} version {} ({}) deployed {mode:?} at logical time {at}",
            v.name, v.id, v.hash
        );
    }
    Ok(at)
}

/// Deploys requested through the API, applied by whoever drives the pipeline.
pub struct AdminQueue {
    receiver: mpsc::UnboundedReceiver<AdminRequest>,
}

/// A deploy that took effect and whose caller has not been told yet: a durable run answers
/// only once the checkpoint that holds it is committed, so an acknowledged deploy survives
/// a crash.
pub struct Deployed {
    reply: oneshot::Sender<Result<Time, DeployError>>,
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
    pub fn drain(&mut self, target: &mut impl Deploys) -> usize {
        let applied = self.drain_unacknowledged(target);
        let count = applied.len();
        applied.into_iter().for_each(Deployed::acknowledge);
        count
    }

    /// As [`AdminQueue::drain`], but the deploys that took effect are returned unanswered,
    /// for a durable run to acknowledge once the checkpoint holding them is committed.
    /// Refused ones are answered at once.
    pub fn drain_unacknowledged(&mut self, target: &mut impl Deploys) -> Vec<Deployed> {
        let mut applied = Vec::new();
        while let Ok(request) = self.receiver.try_recv() {
            let result = match request.world {
                World::Rule => target.deploy_rule(request.version, request.mode),
                World::Transform => target.deploy_transform(request.version, request.mode),
            };
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
    #[error("cannot set up TLS for gRPC: {0}")]
    Tls(tonic::transport::Error),
}

impl ServeError {
    /// The stable, machine-readable code of the variant.
    pub fn code(&self) -> &'static str {
        match self {
            ServeError::Runtime(_) => "serve_runtime",
            ServeError::Bind { .. } => "serve_bind",
            ServeError::Listen { .. } => "serve_listen",
            ServeError::Adopt { .. } => "serve_adopt_listener",
            ServeError::Tls(_) => "serve_tls",
        }
    }
}

/// How long a client may take over the TLS handshake: past it the connection is dropped, so a
/// stalled or plaintext client holds nothing for long.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS files are refused. Each message names the config key, the file and what is
/// wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: cannot read {}: {cause}", path.display())]
    Read {
        key: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{key}: {} is not valid PEM: {cause}", path.display())]
    Pem {
        key: &'static str,
        path: PathBuf,
        cause: rustls::pki_types::pem::Error,
    },
    #[error("{key}: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { key: &'static str, path: PathBuf },
    #[error(
        "tls.key: {} holds no PEM private key (PKCS#8, PKCS#1 or SEC1: -----BEGIN PRIVATE KEY-----)",
        path.display()
    )]
    NoKey { path: PathBuf },
    #[error(
        "tls.key: {} is not the private key of the certificate in {}",
        key.display(),
        cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error(
        "tls: the certificate in {} with the key in {} is refused: {cause}",
        cert.display(),
        key.display()
    )]
    Refused {
        cert: PathBuf,
        key: PathBuf,
        cause: rustls::Error,
    },
    #[error("tls.client_ca: {} is refused as a CA: {cause}", path.display())]
    ClientCa { path: PathBuf, cause: String },
}

impl TlsError {
    /// The stable, machine-readable code of the variant.
    pub fn code(&self) -> &'static str {
        match self {
            TlsError::Read { .. } => "tls_unreadable",
            TlsError::Pem { .. } => "tls_not_pem",
            TlsError::NoCertificate { .. } => "tls_no_certificate",
            TlsError::NoKey { .. } => "tls_no_key",
            TlsError::KeyMismatch { .. } => "tls_key_mismatch",
            TlsError::Refused { .. } => "tls_refused",
            TlsError::ClientCa { .. } => "tls_client_ca",
        }
    }
}

/// The server's TLS identity, read and checked once when the run starts, so a bad file stops
/// the start rather than every handshake.
#[derive(Clone)]
pub struct TlsIdentity {
    cert: PathBuf,
    client_ca: Option<PathBuf>,
    grpc: tonic::transport::ServerTlsConfig,
    metrics: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsIdentity {
    // The key is a secret: name the files, never what they hold.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert", &self.cert)
            .field("client_ca", &self.client_ca)
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Reads the certificate chain and key (and the client CA, for mutual TLS) and checks that
    /// they parse and that the key is the certificate's.
    pub fn load(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Self, TlsError> {
        use rustls::pki_types::pem::{self, PemObject};
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let read = |name: &'static str, path: &Path| {
            std::fs::read(path).map_err(|cause| TlsError::Read {
                key: name,
                path: path.to_owned(),
                cause,
            })
        };
        let certificates = |name: &'static str, path: &Path, bytes: &[u8]| {
            let chain = CertificateDer::pem_slice_iter(bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|cause| TlsError::Pem {
                    key: name,
                    path: path.to_owned(),
                    cause,
                })?;
            if chain.is_empty() {
                return Err(TlsError::NoCertificate {
                    key: name,
                    path: path.to_owned(),
                });
            }
            Ok(chain)
        };
        let cert_pem = read("tls.cert", cert)?;
        let chain = certificates("tls.cert", cert, &cert_pem)?;
        let key_pem = read("tls.key", key)?;
        let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|cause| match cause {
            pem::Error::NoItemsFound => TlsError::NoKey {
                path: key.to_owned(),
            },
            cause => TlsError::Pem {
                key: "tls.key",
                path: key.to_owned(),
                cause,
            },
        })?;

        let refused = |cause| match cause {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                TlsError::KeyMismatch {
                    cert: cert.to_owned(),
                    key: key.to_owned(),
                }
            }
            cause => TlsError::Refused {
                cert: cert.to_owned(),
                key: key.to_owned(),
                cause,
            },
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(refused)?;
        let mut grpc = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(&cert_pem, &key_pem))
            .timeout(TLS_HANDSHAKE_TIMEOUT);
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let ca_pem = read("tls.client_ca", path)?;
                let refused = |cause: String| TlsError::ClientCa {
                    path: path.to_owned(),
                    cause,
                };
                let mut roots = rustls::RootCertStore::empty();
                for ca in certificates("tls.client_ca", path, &ca_pem)? {
                    roots.add(ca).map_err(|e| refused(e.to_string()))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| refused(e.to_string()))?;
                grpc = grpc.client_ca_root(tonic::transport::Certificate::from_pem(&ca_pem));
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut metrics = builder.with_single_cert(chain, private).map_err(refused)?;
        metrics.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsIdentity {
            cert: cert.to_owned(),
            client_ca: client_ca.map(Path::to_owned),
            grpc,
            metrics: Arc::new(metrics),
        })
    }

    /// The certificate chain's file.
    pub fn cert(&self) -> &Path {
        &self.cert
    }

    /// The client CA's file, when clients must present a certificate.
    pub fn client_ca(&self) -> Option<&Path> {
        self.client_ca.as_deref()
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
    /// the queue of deploys for the pipeline's driver to drain. Transforms uploaded to it
    /// are refused by a bare pipeline's [`Deploys`]; see [`Server::start_with_transforms`].
    pub fn start(
        config: &ServeConfig,
        store: Arc<ViewStore>,
        registry: Arc<RuleRegistry>,
    ) -> Result<(Server, AdminQueue), ServeError> {
        Server::start_with_transforms(config, store, registry, Arc::default())
    }

    /// As [`Server::start`], with the run's transform versions too: the API deploys, lists
    /// and rolls back transforms, and the driver draining the queue swaps them into
    /// admission.
    pub fn start_with_transforms(
        config: &ServeConfig,
        store: Arc<ViewStore>,
        registry: Arc<RuleRegistry>,
        transforms: Arc<TransformRegistry>,
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
        let grpc_tls = match &config.tls {
            Some(tls) => {
                // tonic's acceptor takes rustls's process-wide provider: make it the one rustls
                // is built with, whatever else a later dependency enables.
                let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
                let server = tonic::transport::Server::builder()
                    .tls_config(tls.grpc.clone())
                    .map_err(ServeError::Tls)?;
                Some(server)
            }
            None => None,
        };
        store.hook(crate::metrics::global());
        let (sender, receiver) = mpsc::unbounded_channel();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let tokens = Arc::new(config.tokens.clone());
        let services = api::Api {
            store,
            registry,
            transforms,
            admin: sender,
            tokens,
            subscriptions: Arc::new(api::SubscriptionLimit::new(
                config.max_subscriptions_per_token,
            )),
        };
        runtime.block_on(async {
            let grpc =
                tokio::net::TcpListener::from_std(grpc).map_err(|cause| ServeError::Adopt {
                    what: "gRPC",
                    cause,
                })?;
            // With TLS the server comes configured (a bad identity was refused above).
            let server = grpc_tls.unwrap_or_else(tonic::transport::Server::builder);
            tokio::spawn(api::serve(server, grpc, services, stopped));
            if let Some((listener, _)) = metrics {
                let listener = tokio::net::TcpListener::from_std(listener).map_err(|cause| {
                    ServeError::Adopt {
                        what: "metrics",
                        cause,
                    }
                })?;
                match &config.tls {
                    Some(tls) => tokio::spawn(crate::metrics::serve_tls(
                        listener,
                        tls.metrics.clone(),
                        TLS_HANDSHAKE_TIMEOUT,
                    )),
                    None => tokio::spawn(crate::metrics::serve(listener)),
                };
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
