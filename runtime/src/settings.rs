//! What a `weir run` will do: its flags, merged over the config file, resolved into
//! [`Settings`] with every default named once.
//!
//! Precedence is flag, then config file, then the constant here (or in the module that owns
//! it); `--help` prints the same constants. Resolution checks everything that can be checked
//! before anything starts — the mode is unambiguous, a Kafka run has a landing zone, numbers
//! are positive — so a bad start stops with a message naming what to fix.
//!
//! It only resolves: it opens no source, binds no address, starts no worker and writes no file;
//! [`crate::run::execute`] does that with the [`Settings`] it returns. The only files it reads
//! are the config file and the plugin components and TLS files the configuration names.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Implementation, SourceKind};
use crate::dataflow::store::{DEFAULT_HISTORY, DEFAULT_SUBSCRIBER_BUFFER};
use crate::plugins::PluginFactory;
use crate::plugins::native::NativePlugins;
use crate::plugins::set::WasmPlugins;
use crate::run::{
    CheckpointSettings, DEFAULT_EPOCH_LINES, DEFAULT_SNAPSHOT_EVENTS, DEFAULT_WORKERS, LiveConfig,
    MAX_LAG, RunConfig,
};
use crate::serve::{ServeConfig, TlsIdentity};
use crate::source::kafka::KafkaUrl;

/// Live runs: generated events per second.
pub const DEFAULT_RATE: u64 = 5_000;
/// Live runs: generator seed.
pub const DEFAULT_SEED: u64 = 1;
/// Generated tenants.
pub const DEFAULT_TENANTS: u16 = 4;
/// Live runs: milliseconds per logical time.
pub const DEFAULT_TICK_MS: u64 = 20;
/// SPEC §2.7's default lateness: one hour.
pub const DEFAULT_LATENESS_MS: i64 = 3_600_000;
/// SPEC §2.7's default `entity_idle`: an entity untouched for 30 days of event time goes to
/// the cold tier.
pub const DEFAULT_ENTITY_IDLE_MS: i64 = 30 * 86_400_000;
/// SPEC §2.7's default serve window: hours a week behind the watermark go to gold.
pub const DEFAULT_SERVE_MS: i64 = crate::output::gold::DEFAULT_SERVE_MS;
/// Live runs: seconds between status lines.
pub const DEFAULT_STATUS_SECS: u64 = 5;
/// Kafka runs: seconds between checkpoints.
pub const DEFAULT_CHECKPOINT_SECS: f64 = 5.0;
/// Kafka runs: seconds between view exports.
pub const DEFAULT_EXPORT_SECS: f64 = 60.0;
/// Kafka runs: the consumer group offsets are reported to.
pub const DEFAULT_GROUP: &str = "weir";
/// Live runs: where gRPC answers (and where the CLI clients ask).
pub const DEFAULT_GRPC: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 50051));
/// Live runs: where Prometheus metrics answer.
pub const DEFAULT_METRICS: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9464));

/// Which implementation of the default plugins runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PluginImpl {
    /// The example plugins as sandboxed WebAssembly components (embedded in the binary).
    Wasm,
    /// The native Rust reference implementations.
    Native,
}

/// The flags of `weir run`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RunFlags {
    /// TOML config file (see examples/pulsecart/weir.toml, which plain `weir run` uses);
    /// flags win over it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// NDJSON input file (`-` for stdin), or landed raw Parquet to replay (a landing
    /// directory or a glob); makes the run bounded.
    #[arg(long)]
    pub input: Option<String>,
    /// Kafka topics to consume: kafka://HOST:PORT[,HOST:PORT…]/TOPIC[,TOPIC…].
    #[arg(long)]
    pub source: Option<String>,
    /// Output: views/*.parquet, quarantine and the raw landing zone; a directory or an
    /// s3://bucket/prefix URL, configured by AWS_* variables (required with --input and
    /// --source).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Kafka runs: where checkpoints go [default: OUT/checkpoints].
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    #[arg(long, help = format!("Kafka runs: seconds between checkpoints [default: {DEFAULT_CHECKPOINT_SECS}]"))]
    pub checkpoint_secs: Option<f64>,
    #[arg(long, help = format!("Kafka runs: seconds between view exports to OUT/views [default: {DEFAULT_EXPORT_SECS}]"))]
    pub export_secs: Option<f64>,
    #[arg(long, help = format!("Kafka runs: events between the checkpoints that save the run's state; a restart replays at most about this many [default: {DEFAULT_SNAPSHOT_EVENTS}]"))]
    pub snapshot_events: Option<usize>,
    #[arg(long, help = format!("Kafka runs: the consumer group offsets are reported to [default: {DEFAULT_GROUP}]"))]
    pub group: Option<String>,
    /// Kafka runs: stop after no message has come for this many seconds, writing the final
    /// outputs.
    #[arg(long)]
    pub until_idle: Option<f64>,
    /// Kafka runs: a partition whose checkpointed offset it no longer holds (the topic was
    /// recreated, truncated, or aged out) is read from its earliest offset instead of
    /// stopping the run.
    #[arg(long)]
    pub reset_offsets: bool,
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256),
        help = format!("Dataflow worker threads [default: {DEFAULT_WORKERS}]"))]
    pub workers: Option<u16>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..),
        help = format!("Bounded runs: input lines per logical time [default: {DEFAULT_EPOCH_LINES}]"))]
    pub epoch_lines: Option<u64>,
    /// How far behind its tenant's watermark an event may be and still count: 1h, 20m, 90s,
    /// 500ms, 2d, or off; later events are quarantined as too_late [default: 1h; a replay of
    /// landed files: off].
    #[arg(long)]
    pub lateness: Option<String>,
    /// How long an order, payment or user may go untouched (in its tenant's event time)
    /// before its state moves from memory to the cold tier on disk (under --out, else the
    /// temporary directory), to come back when an event touches it: 30d, 10m, ..., or off
    /// [default: 30d].
    #[arg(long)]
    pub entity_idle: Option<String>,
    /// How far behind its tenant's watermark an hour of gmv_minute, sessions and
    /// conversion_hour stays in memory; older hours are exported to gold/ under --out and
    /// leave memory (the view is gold plus what is served): 7d, 12h, ..., or off [default:
    /// 7d; only with --out].
    #[arg(long)]
    pub serve_window: Option<String>,
    /// The event time one gold file spans: whole minutes that divide a day (1h, 30m, 5m)
    /// [default: 1h].
    #[arg(long)]
    pub gold_span: Option<String>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..),
        help = format!("Live runs: generated events per second [default: {DEFAULT_RATE}]"))]
    pub rate: Option<u64>,
    #[arg(long, help = format!("Live runs: generator seed [default: {DEFAULT_SEED}]"))]
    pub seed: Option<u64>,
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000),
        help = format!("Live runs: number of generated tenants [default: {DEFAULT_TENANTS}]"))]
    pub tenants: Option<u16>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..),
        help = format!("Live runs: milliseconds per logical time [default: {DEFAULT_TICK_MS}]"))]
    pub tick_ms: Option<u64>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..),
        help = format!("Live runs: seconds between status lines [default: {DEFAULT_STATUS_SECS}]"))]
    pub status_secs: Option<u64>,
    /// Which implementation of the default plugins runs [default: wasm].
    #[arg(long, value_enum)]
    pub plugins: Option<PluginImpl>,
    /// Replace or add a plugin: NAME=FILE.wasm (repeatable; the world is read off the file).
    #[arg(long = "plugin", value_name = "NAME=FILE")]
    pub plugin: Vec<String>,
    #[arg(long, help = format!("Live runs: gRPC address (port 0 picks one) [default: {DEFAULT_GRPC}]"))]
    pub grpc: Option<String>,
    #[arg(long, help = format!("Live runs: Prometheus address, or `off` [default: {DEFAULT_METRICS}]"))]
    pub metrics: Option<String>,
    /// Write the run's addresses as JSON to this file once it serves (for scripts and
    /// tests: `{"grpc": "127.0.0.1:50051", "metrics": "127.0.0.1:9464"}`).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

/// What feeds a run.
#[derive(Clone, Debug)]
pub enum Input {
    /// NDJSON from a file, or stdin for `-`.
    File(String),
    /// Landed raw Parquet: a landing directory, one file or a glob.
    Replay(String),
    /// The built-in generator, live.
    Generator {
        rate: u64,
        seed: u64,
        tenants: usize,
    },
    /// Kafka topics, live and durable.
    Kafka {
        url: KafkaUrl,
        group: String,
        reset_offsets: bool,
    },
}

/// A resolved `weir run`.
#[derive(Clone)]
pub struct Settings {
    pub run: RunConfig,
    pub input: Input,
    /// Where outputs go: a directory, or an object store URL.
    pub out: Option<String>,
    /// Set for runs that do not end by themselves (the generator, Kafka).
    pub live: Option<LiveConfig>,
    /// Kafka runs: checkpoints.
    pub checkpoints: Option<CheckpointSettings>,
    pub ready_file: Option<PathBuf>,
    /// `[tenants] allow`: when set, only these tenants' events are admitted.
    pub allowed_tenants: Option<Vec<String>>,
    /// Tenants labelled by name in the metrics.
    pub tenant_labels: usize,
    /// Where idle entity state goes; `None` keeps it all in memory.
    pub cold: Option<ColdSettings>,
    /// When the windowed views' closed spans move to gold (with `out`); `None` keeps them.
    pub gold: Option<GoldSettings>,
}

/// The gold export a run with a landing zone starts (see [`crate::output::gold`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoldSettings {
    /// ms behind its tenant's watermark a span of event time is still served from memory.
    pub serve: i64,
    /// Minutes of event time per gold file.
    pub span_minutes: u32,
}

/// The cold tier a run prepares at start (see [`crate::dataflow::views::cold`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ColdSettings {
    pub dir: PathBuf,
    /// ms of a tenant's event time an entity may go untouched before it moves.
    pub idle: i64,
}

/// Why a `weir run` cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigFileError),
    #[error(transparent)]
    Kafka(#[from] crate::source::kafka::KafkaSourceError),
    #[error("--input {input} and the Kafka source {url}: a run reads one source")]
    TwoSources { input: String, url: String },
    #[error(
        "a Kafka run needs --out DIR (or an s3:// URL) for its landing zone, views and checkpoints"
    )]
    KafkaNeedsOut,
    #[error("a bounded run (--input) needs --out DIR for its Parquet outputs")]
    BoundedNeedsOut,
    #[error(
        "--out {out} is an object store: give --checkpoint-dir DIR, a local directory for checkpoints"
    )]
    CheckpointsNeedDir { out: String },
    #[error("{flag}: {value} is not a positive number of seconds")]
    Seconds { flag: String, value: f64 },
    #[error("{key} = {value}: a gold file spans whole minutes that divide a day (1h, 30m, 5m)")]
    GoldSpan { key: String, value: String },
    #[error("--plugin {0}: expected NAME=FILE.wasm")]
    PluginSpec(String),
    #[error("loading plugin components needs the WebAssembly plugins; drop --plugins native")]
    NativeWithComponents,
    #[error("plugin {name}: cannot read {file}: {source}")]
    PluginFile {
        name: String,
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Plugin(#[from] crate::plugins::set::ConfigError),
    #[error("cannot make an admin token: {0}")]
    Random(String),
    #[error("cannot write the admin token to {path}: {source}")]
    TokenFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::serve::TlsError),
}

impl SettingsError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SettingsError::Config(e) => e.code(),
            SettingsError::Kafka(e) => e.code(),
            SettingsError::TwoSources { .. } => "two_sources",
            SettingsError::KafkaNeedsOut => "kafka_needs_out",
            SettingsError::BoundedNeedsOut => "bounded_needs_out",
            SettingsError::CheckpointsNeedDir { .. } => "checkpoints_need_dir",
            SettingsError::Seconds { .. } => "bad_seconds",
            SettingsError::GoldSpan { .. } => "bad_gold_span",
            SettingsError::PluginSpec(_) => "plugin_spec",
            SettingsError::NativeWithComponents => "native_with_components",
            SettingsError::PluginFile { .. } => "plugin_file",
            SettingsError::Plugin(e) => e.code(),
            SettingsError::Random(_) => "random",
            SettingsError::TokenFile { .. } => "token_file",
            SettingsError::Tls(e) => e.code(),
        }
    }
}

/// Minutes per gold file from a duration: whole minutes that divide a day.
fn gold_span(key: &str, value: &str) -> Result<u32, SettingsError> {
    let bad = || SettingsError::GoldSpan {
        key: key.to_owned(),
        value: value.to_owned(),
    };
    let ms = crate::config::duration_ms(key, value)?.ok_or_else(bad)?;
    match u32::try_from(ms / 60_000) {
        Ok(minutes) if ms % 60_000 == 0 && minutes > 0 && 1_440 % minutes == 0 => Ok(minutes),
        _ => Err(bad()),
    }
}

/// Where a run without configured tokens keeps the admin token it made.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// A fresh random admin token, written to `dir/admin-token` readable by its owner alone: a
/// run that names no tokens still serves, to whoever can read that file.
fn generated_admin(dir: &std::path::Path) -> Result<crate::serve::Tokens, SettingsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| SettingsError::Random(e.to_string()))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(ADMIN_TOKEN_FILE);
    let write = |path: &std::path::Path| {
        std::fs::create_dir_all(dir)?;
        let _ = std::fs::remove_file(path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(token.as_bytes())?;
        file.sync_all()
    };
    write(&path).map_err(|source| SettingsError::TokenFile {
        path: path.display().to_string(),
        source,
    })?;
    eprintln!(
        "weir: no tokens configured: made an admin token, in {} (readable by this user only)",
        path.display()
    );
    let mut tokens = crate::serve::Tokens::default();
    tokens
        .insert(&token, crate::serve::Caller::Admin)
        .map_err(|error| crate::config::ConfigFileError::Token { index: 0, error })?;
    Ok(tokens)
}

fn seconds(flag: &str, value: f64) -> Result<Duration, SettingsError> {
    if !(value > 0.0 && value.is_finite()) {
        return Err(SettingsError::Seconds {
            flag: flag.to_owned(),
            value,
        });
    }
    Ok(Duration::from_secs_f64(value))
}

impl Config {
    /// Loads the config file the flags name (or the embedded demo) and merges the flags over
    /// it.
    pub fn resolve(flags: &RunFlags) -> Result<Settings, SettingsError> {
        match &flags.config {
            Some(path) => Config::load(path)?.merge(flags, false),
            None => Config::demo().merge(flags, true),
        }
    }

    /// The flags over this config, every default filled in. With `demo` (the embedded demo
    /// config), its published tokens serve only the demo itself: a run on the generator.
    pub fn merge(&self, flags: &RunFlags, demo: bool) -> Result<Settings, SettingsError> {
        let (p, src) = (&self.pipeline, &self.source);
        let implementation = flags.plugins.unwrap_or(match self.plugins.implementation {
            Some(Implementation::Native) => PluginImpl::Native,
            _ => PluginImpl::Wasm,
        });
        let run = RunConfig {
            workers: flags
                .workers
                .or(p.workers)
                .map_or(DEFAULT_WORKERS, usize::from),
            epoch_lines: flags
                .epoch_lines
                .or(p.epoch_lines)
                .map_or(DEFAULT_EPOCH_LINES, |n| n as usize),
            lockstep: false,
            plugins: self.plugin_set(implementation, &flags.plugin)?,
            lateness: match (&flags.lateness, &self.retention.lateness) {
                (Some(flag), _) => crate::config::duration_ms("--lateness", flag)?,
                (None, Some(set)) => crate::config::duration_ms("retention.lateness", set)?,
                (None, None) => Some(DEFAULT_LATENESS_MS),
            },
            cold: None,
        };
        let input = flags.input.clone().or_else(|| match src.kind {
            SourceKind::File => src.path.clone(),
            _ => None,
        });
        let kafka = flags.source.clone().or_else(|| match src.kind {
            SourceKind::Kafka => src.url.clone(),
            _ => None,
        });
        let out = flags
            .out
            .clone()
            .or_else(|| src.out.clone())
            .map(|o| o.to_string_lossy().into_owned());
        let on_generator = flags.source.is_none()
            && flags.input.is_none()
            && matches!(src.kind, SourceKind::Generator);
        // Beside the checkpoints (local and private, never the landing zone a warehouse
        // reads), or in the temporary directory of a run that has none.
        let token_dir = flags
            .checkpoint_dir
            .clone()
            .or_else(|| src.checkpoint_dir.clone())
            .or_else(|| {
                let local = out
                    .as_deref()
                    .filter(|o| kafka.is_some() && !o.contains("://"));
                local.map(|o| PathBuf::from(o).join("checkpoints"))
            })
            .unwrap_or_else(std::env::temp_dir);
        let idle = match (&flags.entity_idle, &self.retention.entity_idle) {
            (Some(flag), _) => crate::config::duration_ms("--entity-idle", flag)?,
            (None, Some(set)) => crate::config::duration_ms("retention.entity_idle", set)?,
            (None, None) => Some(DEFAULT_ENTITY_IDLE_MS),
        };
        // Local and private, like the checkpoints: under a local --out, else in the
        // temporary directory (a start empties it either way).
        let cold = idle.map(|idle| ColdSettings {
            dir: out
                .as_deref()
                .filter(|o| !o.contains("://"))
                .map(|o| PathBuf::from(o).join("cold"))
                .unwrap_or_else(|| {
                    std::env::temp_dir().join(format!("weir-cold-{}", std::process::id()))
                }),
            idle,
        });
        let serve_window = match (&flags.serve_window, &self.retention.serve) {
            (Some(flag), _) => crate::config::duration_ms("--serve-window", flag)?,
            (None, Some(set)) => crate::config::duration_ms("retention.serve", set)?,
            (None, None) => Some(DEFAULT_SERVE_MS),
        };
        let span_minutes = match (&flags.gold_span, &self.retention.gold_span) {
            (Some(flag), _) => gold_span("--gold-span", flag)?,
            (None, Some(set)) => gold_span("retention.gold_span", set)?,
            (None, None) => (crate::output::gold::BUCKET_MS / 60_000) as u32,
        };
        let gold = serve_window.map(|serve| GoldSettings {
            serve,
            span_minutes,
        });
        let serve = || -> Result<ServeConfig, SettingsError> {
            // First, so a refused certificate leaves no generated token file behind.
            let tls = self.tls_identity()?;
            let tokens = match self.tokens()? {
                tokens if demo && on_generator => {
                    eprintln!(
                        "weir: demo: the tokens of examples/pulsecart/weir.toml are active (pulsecart-admin-demo is admin); any other run uses the tokens of its --config"
                    );
                    tokens
                }
                tokens if !demo && !tokens.is_empty() => tokens,
                _ => generated_admin(&token_dir)?,
            };
            let grpc = match &flags.grpc {
                Some(a) => crate::config::address("--grpc", a)?,
                None => self.grpc_addr(),
            };
            let metrics = match flags.metrics.as_deref() {
                Some("off") => None,
                Some(a) => Some(crate::config::address("--metrics", a)?),
                None => self.metrics_addr(),
            };
            Ok(ServeConfig {
                grpc,
                metrics,
                tokens,
                tls,
                max_subscriptions_per_token: self
                    .serve
                    .max_subscriptions_per_token
                    .unwrap_or(crate::serve::api::DEFAULT_MAX_SUBSCRIPTIONS_PER_TOKEN),
            })
        };
        let live = |until_idle: Option<Duration>, max_lag: Option<u64>| {
            Ok::<_, SettingsError>(LiveConfig {
                tick: Duration::from_millis(flags.tick_ms.or(p.tick_ms).unwrap_or(DEFAULT_TICK_MS)),
                status_every: Duration::from_secs(
                    flags
                        .status_secs
                        .or(p.status_secs)
                        .unwrap_or(DEFAULT_STATUS_SECS),
                ),
                serve: Some(serve()?),
                history: self.serve.history.unwrap_or(DEFAULT_HISTORY),
                subscriber_buffer: self
                    .serve
                    .subscriber_buffer
                    .unwrap_or(DEFAULT_SUBSCRIBER_BUFFER),
                until_idle,
                max_lag,
            })
        };
        let ready_file = flags.ready_file.clone();
        let allowed_tenants = self.tenants.allow.clone();
        let tenant_labels = self
            .tenants
            .metric_labels
            .unwrap_or(crate::metrics::DEFAULT_MAX_TENANT_LABELS);
        match (kafka, input) {
            (Some(url), Some(input)) => Err(SettingsError::TwoSources { input, url }),
            (Some(url), None) => {
                let url = KafkaUrl::parse(&url)?;
                let out = out.ok_or(SettingsError::KafkaNeedsOut)?;
                let dir = match flags
                    .checkpoint_dir
                    .clone()
                    .or_else(|| src.checkpoint_dir.clone())
                {
                    Some(dir) => dir,
                    None if out.contains("://") => {
                        return Err(SettingsError::CheckpointsNeedDir { out });
                    }
                    None => PathBuf::from(&out).join("checkpoints"),
                };
                let checkpoints = CheckpointSettings {
                    dir,
                    every: seconds(
                        "--checkpoint-secs",
                        flags
                            .checkpoint_secs
                            .or(src.checkpoint_secs)
                            .unwrap_or(DEFAULT_CHECKPOINT_SECS),
                    )?,
                    export_every: seconds(
                        "--export-secs",
                        flags
                            .export_secs
                            .or(src.export_secs)
                            .unwrap_or(DEFAULT_EXPORT_SECS),
                    )?,
                    snapshot_events: flags
                        .snapshot_events
                        .or(src.snapshot_events)
                        .unwrap_or(DEFAULT_SNAPSHOT_EVENTS)
                        .max(1),
                };
                let until_idle = flags
                    .until_idle
                    .or(src.until_idle_secs)
                    .map(|v| seconds("--until-idle", v))
                    .transpose()?;
                let group = flags
                    .group
                    .clone()
                    .or_else(|| src.group.clone())
                    .unwrap_or_else(|| DEFAULT_GROUP.into());
                Ok(Settings {
                    run,
                    input: Input::Kafka {
                        url,
                        group,
                        reset_offsets: flags.reset_offsets,
                    },
                    out: Some(out),
                    live: Some(live(until_idle, Some(MAX_LAG))?),
                    checkpoints: Some(checkpoints),
                    ready_file,
                    allowed_tenants: allowed_tenants.clone(),
                    tenant_labels,
                    cold: cold.clone(),
                    gold,
                })
            }
            (None, Some(input)) => {
                let out = out.ok_or(SettingsError::BoundedNeedsOut)?;
                let (input, run) = if crate::source::replay::is_landed(&input) {
                    // A replay is a backfill of events admitted once already: none is late
                    // unless the flag says so.
                    let lateness = match &flags.lateness {
                        Some(flag) => crate::config::duration_ms("--lateness", flag)?,
                        None => None,
                    };
                    (Input::Replay(input), RunConfig { lateness, ..run })
                } else {
                    (Input::File(input), run)
                };
                Ok(Settings {
                    run,
                    input,
                    out: Some(out),
                    live: None,
                    checkpoints: None,
                    ready_file,
                    allowed_tenants: allowed_tenants.clone(),
                    tenant_labels,
                    cold: cold.clone(),
                    gold,
                })
            }
            (None, None) => Ok(Settings {
                run,
                input: Input::Generator {
                    rate: flags.rate.or(src.rate).unwrap_or(DEFAULT_RATE),
                    seed: flags.seed.or(src.seed).unwrap_or(DEFAULT_SEED),
                    tenants: usize::from(flags.tenants.or(src.tenants).unwrap_or(DEFAULT_TENANTS)),
                },
                out,
                live: Some(live(None, None)?),
                checkpoints: None,
                ready_file,
                allowed_tenants,
                tenant_labels,
                cold,
                gold,
            }),
        }
    }

    /// The `[tls]` certificate and key, read and checked, if the config has them.
    fn tls_identity(&self) -> Result<Option<TlsIdentity>, SettingsError> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        let identity = TlsIdentity::load(&tls.cert, &tls.key, tls.client_ca.as_deref())?;
        match identity.client_ca() {
            Some(ca) => eprintln!(
                "weir: TLS on gRPC and metrics with {}; clients need a certificate signed by {}",
                identity.cert().display(),
                ca.display()
            ),
            None => eprintln!(
                "weir: TLS on gRPC and metrics with {}",
                identity.cert().display()
            ),
        }
        Ok(Some(identity))
    }

    /// The plugins a run starts with: the defaults in `implementation`, then the components
    /// the config and `--plugin NAME=FILE` flags load.
    fn plugin_set(
        &self,
        implementation: PluginImpl,
        specs: &[String],
    ) -> Result<Arc<dyn PluginFactory>, SettingsError> {
        let mut loads: Vec<(String, PathBuf, Option<String>)> = self
            .plugins
            .load
            .iter()
            .map(|p| (p.name.clone(), p.file.clone(), p.tenant.clone()))
            .collect();
        for spec in specs {
            let Some((name, file)) = spec.split_once('=') else {
                return Err(SettingsError::PluginSpec(spec.clone()));
            };
            loads.push((name.to_owned(), PathBuf::from(file), None));
        }
        if implementation == PluginImpl::Native {
            if !loads.is_empty() {
                return Err(SettingsError::NativeWithComponents);
            }
            return Ok(Arc::new(NativePlugins));
        }
        let mut set = WasmPlugins::defaults()?;
        for (name, file, tenant) in loads {
            let bytes = std::fs::read(&file).map_err(|source| SettingsError::PluginFile {
                name: name.clone(),
                file: file.display().to_string(),
                source,
            })?;
            let world = set.add(&name, &bytes, tenant.as_deref())?;
            eprintln!("weir: plugin {name} ({world:?}) from {}", file.display());
        }
        Ok(Arc::new(set))
    }
}
