//! Prometheus metrics: what the pipeline admitted and dropped, how fresh the views are, what
//! plugins cost, how the API answers; served as text at `/metrics` (over HTTPS when the run has
//! `[tls]`).
//!
//! One registry per process ([`global`]): the stages that count (admission, the store's
//! publication, the plugin host, the API) write to it wherever they run, and a scrape encodes
//! it. Admission counts are handed over per chunk of events, never per event, so counting
//! stays off the hot path.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::admit::AdmissionStats;
use crate::dataflow::store::PublishHook;
use crate::row::TABLES;
use crate::time::Time;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantType {
    tenant: String,
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViewLabel {
    view: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginTenantLabel {
    plugin: String,
    tenant: String,
}

/// Tenants labelled by name before the rest are folded into `tenant="other"`, unless
/// configured: a producer spraying tenant ids cannot grow the scrape without bound.
pub const DEFAULT_MAX_TENANT_LABELS: usize = 100;

/// The label every tenant past the cap shares.
pub const OTHER_TENANT: &str = "other";

/// The tenants that have a label of their own, first come first served.
#[derive(Debug)]
struct TenantLabels {
    max: usize,
    named: std::collections::BTreeSet<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: String,
    code: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latencies from 100 µs to about 6.5 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// Every metric the process exports.
pub struct Metrics {
    registry: Registry,
    admitted: Family<TenantType, Counter>,
    quarantined: Family<ReasonLabel, Counter>,
    duplicates: Counter,
    read: Counter,
    freshness: HistogramFamily<ViewLabel>,
    logical_time: Gauge,
    plugin_calls: Family<PluginLabel, Counter>,
    plugin_failures: Family<PluginLabel, Counter>,
    plugin_fuel: Family<PluginLabel, Counter>,
    plugin_latency: HistogramFamily<PluginLabel>,
    plugin_disabled: Family<PluginTenantLabel, Gauge>,
    tenant_labels: Mutex<TenantLabels>,
    grpc_latency: HistogramFamily<MethodLabel>,
    subscribers: Gauge,
    subscriber_lag: Gauge,
    subscribers_dropped: Counter,
    cold_moved: Counter,
    cold_revived: Counter,
    gold_rows: Counter,
    gold_files: Counter,
    /// Admission totals already handed over, by the admission that counted them.
    synced: Mutex<BTreeMap<usize, AdmissionStats>>,
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let mut m = Metrics {
            admitted: Family::default(),
            quarantined: Family::default(),
            duplicates: Counter::default(),
            read: Counter::default(),
            freshness: Family::new_with_constructor(latency_histogram),
            logical_time: Gauge::default(),
            plugin_calls: Family::default(),
            plugin_failures: Family::default(),
            plugin_fuel: Family::default(),
            plugin_latency: Family::new_with_constructor(latency_histogram),
            plugin_disabled: Family::default(),
            tenant_labels: Mutex::new(TenantLabels {
                max: DEFAULT_MAX_TENANT_LABELS,
                named: Default::default(),
            }),
            grpc_latency: Family::new_with_constructor(latency_histogram),
            subscribers: Gauge::default(),
            subscriber_lag: Gauge::default(),
            subscribers_dropped: Counter::default(),
            cold_moved: Counter::default(),
            cold_revived: Counter::default(),
            gold_rows: Counter::default(),
            gold_files: Counter::default(),
            synced: Mutex::default(),
            registry: Registry::default(),
        };
        m.registry.register(
            "weir_input_lines",
            "Input lines read by admission",
            m.read.clone(),
        );
        m.registry.register(
            "weir_events_admitted",
            "Valid, new events admitted into the dataflow",
            m.admitted.clone(),
        );
        m.registry.register(
            "weir_events_quarantined",
            "Inputs sent to quarantine, by reason",
            m.quarantined.clone(),
        );
        m.registry.register(
            "weir_events_duplicate",
            "Events dropped as duplicates of an admitted event_id",
            m.duplicates.clone(),
        );
        m.registry.register(
            "weir_view_freshness_seconds",
            "Wall-clock delay from admission to visibility in a view",
            m.freshness.clone(),
        );
        m.registry.register(
            "weir_logical_time",
            "The logical time every view is published at",
            m.logical_time.clone(),
        );
        m.registry.register(
            "weir_plugin_calls",
            "Plugin calls (batches)",
            m.plugin_calls.clone(),
        );
        m.registry.register(
            "weir_plugin_failures",
            "Events a plugin failed on",
            m.plugin_failures.clone(),
        );
        m.registry.register(
            "weir_plugin_fuel",
            "Fuel burnt by a plugin's calls",
            m.plugin_fuel.clone(),
        );
        m.registry.register(
            "weir_plugin_call_seconds",
            "Wall-clock duration of one plugin call",
            m.plugin_latency.clone(),
        );
        m.registry.register(
            "weir_plugin_disabled",
            "1 while a plugin is disabled for a tenant's events after repeated failures",
            m.plugin_disabled.clone(),
        );
        m.registry.register(
            "weir_grpc_request_seconds",
            "gRPC request handling time, by method and status code",
            m.grpc_latency.clone(),
        );
        m.registry.register(
            "weir_subscribers",
            "Live view subscriptions",
            m.subscribers.clone(),
        );
        m.registry.register(
            "weir_subscriber_lag_publications",
            "Publications the slowest subscriber has not yet taken",
            m.subscriber_lag.clone(),
        );
        m.registry.register(
            "weir_subscribers_dropped",
            "Subscriptions dropped because they fell behind",
            m.subscribers_dropped.clone(),
        );
        m.registry.register(
            "weir_cold_entities_moved",
            "Entity states moved from memory to the cold tier (idle for entity_idle)",
            m.cold_moved.clone(),
        );
        m.registry.register(
            "weir_cold_entities_revived",
            "Entity states brought back from the cold tier by an event touching them",
            m.cold_revived.clone(),
        );
        m.registry.register(
            "weir_gold_rows_exported",
            "Rows of the windowed views moved from the live store to the gold files",
            m.gold_rows.clone(),
        );
        m.registry.register(
            "weir_gold_files_written",
            "Gold files written, first exports and merges of later changes alike",
            m.gold_files.clone(),
        );
        m
    }

    /// Rows moved to gold, and the files written for them.
    pub fn count_gold(&self, rows: u64, files: u64) {
        self.gold_rows.inc_by(rows);
        self.gold_files.inc_by(files);
    }

    /// Entity states moved to the cold tier, and brought back from it.
    pub fn count_cold(&self, moved: u64, revived: u64) {
        self.cold_moved.inc_by(moved);
        self.cold_revived.inc_by(revived);
    }

    /// Hands over an admission's running totals; `source` tells admissions apart.
    pub fn sync_admission(&self, source: usize, stats: &AdmissionStats) {
        let mut synced = self.synced.lock().unwrap();
        let last = synced.entry(source).or_default();
        self.read.inc_by(stats.read - last.read);
        self.duplicates.inc_by(stats.duplicates - last.duplicates);
        for (reason, count) in &stats.quarantined {
            let before = last.quarantined.get(reason).copied().unwrap_or(0);
            if *count > before {
                self.quarantined
                    .get_or_create(&ReasonLabel {
                        reason: reason.clone(),
                    })
                    .inc_by(count - before);
            }
        }
        for ((tenant, kind), count) in &stats.admitted_by {
            let key = (tenant.clone(), *kind);
            let before = last.admitted_by.get(&key).copied().unwrap_or(0);
            if *count > before {
                self.admitted
                    .get_or_create(&TenantType {
                        tenant: self.tenant_label(tenant),
                        r#type: (*kind).to_owned(),
                    })
                    .inc_by(count - before);
            }
        }
        *last = stats.clone();
    }

    /// How many tenants get a label of their own (the rest share `tenant="other"`).
    pub fn set_max_tenant_labels(&self, max: usize) {
        self.tenant_labels.lock().unwrap().max = max;
    }

    /// The label `tenant` is counted under: its own while fewer than the cap have one.
    pub fn tenant_label(&self, tenant: &str) -> String {
        let mut labels = self.tenant_labels.lock().unwrap();
        if labels.named.contains(tenant) {
            return tenant.to_owned();
        }
        if labels.named.len() < labels.max && tenant != OTHER_TENANT {
            labels.named.insert(tenant.to_owned());
            return tenant.to_owned();
        }
        OTHER_TENANT.to_owned()
    }

    /// Books whether `plugin` is disabled for `tenant`'s events.
    pub fn plugin_health(&self, plugin: &str, tenant: &str, disabled: bool) {
        let label = PluginTenantLabel {
            plugin: plugin.to_owned(),
            tenant: self.tenant_label(tenant),
        };
        self.plugin_disabled
            .get_or_create(&label)
            .set(i64::from(disabled));
    }

    /// Books one plugin call over `failed` failing events.
    pub fn plugin_call(&self, plugin: &str, failed: u64, fuel: u64, took: Duration) {
        let label = PluginLabel {
            plugin: plugin.to_owned(),
        };
        self.plugin_calls.get_or_create(&label).inc();
        if failed > 0 {
            self.plugin_failures.get_or_create(&label).inc_by(failed);
        }
        self.plugin_fuel.get_or_create(&label).inc_by(fuel);
        self.plugin_latency
            .get_or_create(&label)
            .observe(took.as_secs_f64());
    }

    /// Books one gRPC request.
    pub fn grpc(&self, method: &str, code: tonic::Code, took: Duration) {
        self.grpc_latency
            .get_or_create(&MethodLabel {
                method: method.to_owned(),
                code: format!("{code:?}"),
            })
            .observe(took.as_secs_f64());
    }

    /// A subscription was dropped for falling behind.
    pub fn subscriber_dropped(&self) {
        self.subscribers_dropped.inc();
    }

    /// The exposition in the OpenMetrics text format.
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// The exposition in the Prometheus text format (0.0.4), which every scraper reads.
    pub fn encode(&self) -> String {
        prometheus_text(&self.encode_openmetrics())
    }
}

impl PublishHook for Metrics {
    fn published(&self, time: Time, waited: &[f64], subscribers: usize, lag: usize) {
        self.logical_time.set(time as i64);
        self.subscribers.set(subscribers as i64);
        self.subscriber_lag.set(lag as i64);
        if waited.is_empty() {
            return;
        }
        for view in TABLES {
            let histogram = self.freshness.get_or_create(&ViewLabel {
                view: view.name.to_owned(),
            });
            for w in waited {
                histogram.observe(*w);
            }
        }
    }
}

/// OpenMetrics text as Prometheus text: counter families are named with their `_total`
/// suffix, and the OpenMetrics-only lines (`# EOF`, `# UNIT`) go.
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{tag}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Answers `GET /metrics` (OpenMetrics when the scraper asks for it, Prometheus text
/// otherwise); everything else is 404.
pub async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let wants_openmetrics = request
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let response = if request.uri().path() == "/metrics" {
        let (content_type, body) = if wants_openmetrics {
            (
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                global().encode_openmetrics(),
            )
        } else {
            (
                "text/plain; version=0.0.4; charset=utf-8",
                global().encode(),
            )
        };
        Response::builder()
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
    } else {
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"see /metrics\n")))
    };
    Ok(response.expect("a static response is well-formed"))
}

/// Serves `/metrics` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_connection(stream));
    }
}

/// As [`serve`], HTTPS only: a connection that has not finished the TLS handshake within
/// `handshake` is dropped, so a plaintext or stalled client holds nothing for long.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    config: std::sync::Arc<rustls::ServerConfig>,
    handshake: Duration,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if let Ok(Ok(stream)) = tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                serve_connection(stream).await;
            }
        });
    }
}

async fn serve_connection(stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin) {
    let io = hyper_util::rt::TokioIo::new(stream);
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, hyper::service::service_fn(handle))
        .await;
}
