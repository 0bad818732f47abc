//! The `weir run --config FILE` file: source, pipeline, plugins, serving addresses, TLS and
//! tokens.
//!
//! Every key is known: an unknown key or a bad value stops the start with a message naming
//! it, so a typo never silently falls back to a default. Flags given on the command line win
//! over the file. `weir run` without `--config` uses the demo configuration in
//! `examples/pulsecart/weir.toml`, embedded in the binary, which documents the demo tokens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::serve::{Caller, TokenError, Tokens};
use crate::settings::{DEFAULT_GRPC, DEFAULT_METRICS};

/// The demo configuration `weir run` starts with when given no `--config`.
pub const DEMO: &str = include_str!("../../examples/pulsecart/weir.toml");

/// A parsed and checked configuration file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub pipeline: Pipeline,
    #[serde(default)]
    pub source: Source,
    #[serde(default)]
    pub plugins: Plugins,
    #[serde(default)]
    pub serve: Serve,
    /// Absent: gRPC and metrics are plaintext.
    pub tls: Option<Tls>,
    #[serde(default)]
    pub tenants: Tenants,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub tokens: Vec<Token>,
}

/// SPEC §2.7: what bounds the state a run keeps.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// How far behind its tenant's watermark an event may be and still count (`"1h"`,
    /// `"20m"`, `"90s"`, `"500ms"`, `"2d"`, or `"off"`); later ones are `too_late`.
    pub lateness: Option<String>,
    /// How long an entity (order, payment, user) may go untouched in its tenant's event time
    /// before its state moves to the cold tier on disk (`"30d"` when absent, or `"off"`).
    pub entity_idle: Option<String>,
    /// How far behind its tenant's watermark an hour of a windowed view is still served from
    /// memory; older hours move to `gold/` in the landing zone (`"7d"` when absent, or
    /// `"off"`).
    pub serve: Option<String>,
    /// The event time one gold file spans (`"1h"` when absent; whole minutes dividing a day).
    pub gold_span: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Dataflow worker threads.
    pub workers: Option<u16>,
    /// Live runs: milliseconds per logical time.
    pub tick_ms: Option<u64>,
    /// Bounded runs: input lines per logical time.
    pub epoch_lines: Option<u64>,
    /// Seconds between status lines.
    pub status_secs: Option<u64>,
}

/// Where events come from.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The built-in generator, live.
    #[default]
    Generator,
    /// An NDJSON file (`path`), bounded.
    File,
    /// Kafka topics (`url`), live and durable.
    Kafka,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Source {
    #[serde(default, rename = "type")]
    pub kind: SourceKind,
    /// Generator: events per second.
    pub rate: Option<u64>,
    /// Generator: seed.
    pub seed: Option<u64>,
    /// Generator: tenants.
    pub tenants: Option<u16>,
    /// File: the NDJSON input (`-` for stdin).
    pub path: Option<String>,
    /// Where Parquet outputs go (Kafka: a directory or an `s3://bucket/prefix` URL).
    pub out: Option<PathBuf>,
    /// Kafka: `kafka://HOST:PORT[,HOST:PORT…]/TOPIC[,TOPIC…]`.
    pub url: Option<String>,
    /// Kafka: the consumer group offsets are reported to.
    pub group: Option<String>,
    /// Kafka: where checkpoints go (default `out/checkpoints`).
    pub checkpoint_dir: Option<PathBuf>,
    /// Kafka: seconds between checkpoints.
    pub checkpoint_secs: Option<f64>,
    /// Kafka: seconds between view exports.
    pub export_secs: Option<f64>,
    /// Kafka: events admitted between the checkpoints that hold the run's whole state (the
    /// others hold only the events since); a restart replays at most about this many.
    pub snapshot_events: Option<usize>,
    /// Kafka: stop after the source has been idle this many seconds.
    pub until_idle_secs: Option<f64>,
}

/// Which implementation runs the default plugins.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Implementation {
    #[default]
    Wasm,
    Native,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Plugins {
    pub implementation: Option<Implementation>,
    /// Components loaded at start, replacing or adding to the defaults.
    #[serde(default)]
    pub load: Vec<PluginFile>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginFile {
    pub name: String,
    /// Relative paths are relative to the config file.
    pub file: PathBuf,
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Serve {
    /// gRPC address.
    pub grpc: Option<String>,
    /// Prometheus address; `"off"` serves no metrics.
    pub metrics: Option<String>,
    /// Publications kept for queries at an earlier `as_of` and for subscribers.
    pub history: Option<usize>,
    /// Publications a subscriber may fall behind before it is dropped.
    pub subscriber_buffer: Option<usize>,
    /// Subscriptions one token may hold open at once.
    pub max_subscriptions_per_token: Option<usize>,
}

/// Which tenants a run accepts, and how many get their own metrics labels.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tenants {
    /// When set, events of any other tenant are quarantined as `unknown_tenant`.
    pub allow: Option<Vec<String>>,
    /// Tenants labelled by name in the metrics; the rest share `tenant="other"`.
    pub metric_labels: Option<usize>,
}

/// TLS on both listeners, gRPC and metrics. The files are read and checked when the run
/// starts; relative paths are relative to the config file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates: when set, both listeners serve only clients presenting a
    /// certificate one of them signed (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub token: String,
    /// The tenant whose rows this token reads.
    pub tenant: Option<String>,
    /// Whether this token is admin (every tenant, plugin administration).
    #[serde(default)]
    pub admin: bool,
}

/// Why a configuration file (or a flag it could have set) is refused. Each message names the
/// key; a cause is part of the message rather than a separate source, so the chain `weir`
/// prints does not repeat it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read config {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("config {path}: {error}")]
    InFile {
        path: PathBuf,
        error: Box<ConfigFileError>,
    },
    #[error("{0}")]
    Toml(toml::de::Error),
    #[error("{key}: must be at least 1")]
    NotPositive { key: &'static str },
    #[error("{key}: at most {max}")]
    TooLarge { key: &'static str, max: u64 },
    #[error("{key}: must be a positive number of seconds")]
    NotSeconds { key: &'static str },
    #[error("source.path: a file source needs the path of its NDJSON input")]
    FileNeedsPath,
    #[error("source.out: a file source needs an output directory")]
    FileNeedsOut,
    #[error("source.url: a Kafka source needs url = \"kafka://HOST:PORT/TOPIC\"")]
    KafkaNeedsUrl,
    #[error("source.out: a Kafka source needs an output directory or URL")]
    KafkaNeedsOut,
    #[error("source.path: only a file source reads a path (set type = \"file\")")]
    PathWithoutFile,
    #[error("source.url: {0}")]
    KafkaUrl(crate::source::kafka::KafkaSourceError),
    #[error("plugins.load[{index}].name: must not be empty")]
    EmptyPluginName { index: usize },
    #[error("{key}: {value:?} is not a tenant id ([A-Za-z0-9_-], 1 to 64 characters)")]
    TenantId { key: String, value: String },
    #[error("{key}: {value:?} is not an address like 127.0.0.1:50051")]
    Address { key: String, value: String },
    #[error("tokens[{index}]: a token is either for one tenant or admin, not both")]
    TenantAndAdmin { index: usize },
    #[error("tokens[{index}]: set `tenant = \"…\"` or `admin = true`")]
    NoCaller { index: usize },
    #[error("tokens[{index}].token: {error}")]
    Token { index: usize, error: TokenError },
    #[error("{key}: must name a file")]
    EmptyPath { key: &'static str },
    #[error("{key}: {value:?} is not a duration like 1h, 20m, 90s, 500ms or 2d (or off)")]
    Duration { key: String, value: String },
}

impl ConfigFileError {
    /// The stable, machine-readable code of the variant; an error located in a file, or a
    /// token refused, keeps the code of what is wrong.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigFileError::Read { .. } => "config_unreadable",
            ConfigFileError::InFile { error, .. } => error.code(),
            ConfigFileError::Toml(_) => "config_toml",
            ConfigFileError::NotPositive { .. } => "config_not_positive",
            ConfigFileError::TooLarge { .. } => "config_too_large",
            ConfigFileError::NotSeconds { .. } => "config_not_seconds",
            ConfigFileError::FileNeedsPath => "config_file_needs_path",
            ConfigFileError::FileNeedsOut => "config_file_needs_out",
            ConfigFileError::KafkaNeedsUrl => "config_kafka_needs_url",
            ConfigFileError::KafkaNeedsOut => "config_kafka_needs_out",
            ConfigFileError::PathWithoutFile => "config_path_without_file",
            ConfigFileError::KafkaUrl(_) => "config_kafka_url",
            ConfigFileError::EmptyPluginName { .. } => "config_empty_plugin_name",
            ConfigFileError::TenantId { .. } => "config_tenant_id",
            ConfigFileError::Address { .. } => "config_address",
            ConfigFileError::TenantAndAdmin { .. } => "config_tenant_and_admin",
            ConfigFileError::NoCaller { .. } => "config_token_for_nobody",
            ConfigFileError::Token { error, .. } => error.code(),
            ConfigFileError::EmptyPath { .. } => "config_empty_path",
            ConfigFileError::Duration { .. } => "config_duration",
        }
    }
}

impl Config {
    /// Reads and checks `path`; relative plugin paths become relative to its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigFileError::Read {
            path: path.to_owned(),
            cause,
        })?;
        let mut config = Config::parse(&text).map_err(|error| ConfigFileError::InFile {
            path: path.to_owned(),
            error: Box::new(error),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for plugin in &mut config.plugins.load {
            if plugin.file.is_relative() {
                plugin.file = base.join(&plugin.file);
            }
        }
        if let Some(tls) = &mut config.tls {
            for file in [&mut tls.cert, &mut tls.key]
                .into_iter()
                .chain(tls.client_ca.as_mut())
            {
                if file.is_relative() {
                    *file = base.join(&*file);
                }
            }
        }
        Ok(config)
    }

    /// The demo configuration.
    pub fn demo() -> Config {
        match Config::parse(DEMO) {
            Ok(config) => config,
            Err(e) => panic!("the embedded demo config must be valid: {e}"),
        }
    }

    /// Parses and checks a configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigFileError> {
        let config: Config = toml::from_str(text).map_err(ConfigFileError::Toml)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigFileError> {
        if let Some(lateness) = &self.retention.lateness {
            duration_ms("retention.lateness", lateness)?;
        }
        if let Some(idle) = &self.retention.entity_idle {
            duration_ms("retention.entity_idle", idle)?;
        }
        if let Some(serve) = &self.retention.serve {
            duration_ms("retention.serve", serve)?;
        }
        if let Some(span) = &self.retention.gold_span {
            duration_ms("retention.gold_span", span)?;
        }
        let p = &self.pipeline;
        positive("pipeline.workers", p.workers.map(u64::from))?;
        at_most("pipeline.workers", p.workers.map(u64::from), 256)?;
        positive("pipeline.tick_ms", p.tick_ms)?;
        positive("pipeline.epoch_lines", p.epoch_lines)?;
        positive("pipeline.status_secs", p.status_secs)?;
        let s = &self.source;
        positive("source.rate", s.rate)?;
        positive("source.tenants", s.tenants.map(u64::from))?;
        at_most("source.tenants", s.tenants.map(u64::from), 1000)?;
        match s.kind {
            SourceKind::File if s.path.is_none() => return Err(ConfigFileError::FileNeedsPath),
            SourceKind::File if s.out.is_none() => return Err(ConfigFileError::FileNeedsOut),
            SourceKind::Kafka if s.url.is_none() => return Err(ConfigFileError::KafkaNeedsUrl),
            SourceKind::Kafka if s.out.is_none() => return Err(ConfigFileError::KafkaNeedsOut),
            SourceKind::Generator if s.path.is_some() => {
                return Err(ConfigFileError::PathWithoutFile);
            }
            _ => {}
        }
        if let Some(url) = &s.url {
            crate::source::kafka::KafkaUrl::parse(url).map_err(ConfigFileError::KafkaUrl)?;
        }
        for (key, value) in [
            ("source.checkpoint_secs", s.checkpoint_secs),
            ("source.export_secs", s.export_secs),
            ("source.until_idle_secs", s.until_idle_secs),
        ] {
            if value.is_some_and(|v| !(v > 0.0 && v.is_finite())) {
                return Err(ConfigFileError::NotSeconds { key });
            }
        }
        for (i, plugin) in self.plugins.load.iter().enumerate() {
            if plugin.name.is_empty() {
                return Err(ConfigFileError::EmptyPluginName { index: i });
            }
            if let Some(t) = &plugin.tenant {
                tenant_id(&format!("plugins.load[{i}].tenant"), t)?;
            }
        }
        let v = &self.serve;
        if let Some(addr) = &v.grpc {
            address("serve.grpc", addr)?;
        }
        if let Some(addr) = &v.metrics
            && addr != "off"
        {
            address("serve.metrics", addr)?;
        }
        positive("serve.history", v.history.map(|n| n as u64))?;
        positive(
            "serve.subscriber_buffer",
            v.subscriber_buffer.map(|n| n as u64),
        )?;
        positive(
            "serve.max_subscriptions_per_token",
            v.max_subscriptions_per_token.map(|n| n as u64),
        )?;
        for (i, tenant) in self.tenants.allow.iter().flatten().enumerate() {
            tenant_id(&format!("tenants.allow[{i}]"), tenant)?;
        }
        self.tokens()?;
        if let Some(tls) = &self.tls {
            let files = [
                ("tls.cert", Some(&tls.cert)),
                ("tls.key", Some(&tls.key)),
                ("tls.client_ca", tls.client_ca.as_ref()),
            ];
            for (key, file) in files {
                if file.is_some_and(|f| f.as_os_str().is_empty()) {
                    return Err(ConfigFileError::EmptyPath { key });
                }
            }
        }
        Ok(())
    }

    /// The tokens, checked: each is for exactly one tenant or admin, and none repeats.
    pub fn tokens(&self) -> Result<Tokens, ConfigFileError> {
        let mut tokens = Tokens::default();
        for (index, t) in self.tokens.iter().enumerate() {
            let caller = match (&t.tenant, t.admin) {
                (Some(tenant), false) => {
                    tenant_id(&format!("tokens[{index}].tenant"), tenant)?;
                    Caller::Tenant(tenant.clone())
                }
                (None, true) => Caller::Admin,
                (Some(_), true) => return Err(ConfigFileError::TenantAndAdmin { index }),
                (None, false) => return Err(ConfigFileError::NoCaller { index }),
            };
            tokens
                .insert(&t.token, caller)
                .map_err(|error| ConfigFileError::Token { index, error })?;
        }
        Ok(tokens)
    }

    /// The gRPC address (default [`DEFAULT_GRPC`]).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.serve
            .grpc
            .as_deref()
            .and_then(|a| a.parse().ok())
            .unwrap_or(DEFAULT_GRPC)
    }

    /// The metrics address (default [`DEFAULT_METRICS`]), `None` when turned off.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        match self.serve.metrics.as_deref() {
            Some("off") => None,
            Some(a) => a.parse().ok(),
            None => Some(DEFAULT_METRICS),
        }
    }
}

fn positive(key: &'static str, value: Option<u64>) -> Result<(), ConfigFileError> {
    if value == Some(0) {
        return Err(ConfigFileError::NotPositive { key });
    }
    Ok(())
}

fn at_most(key: &'static str, value: Option<u64>, max: u64) -> Result<(), ConfigFileError> {
    if value.is_some_and(|v| v > max) {
        return Err(ConfigFileError::TooLarge { key, max });
    }
    Ok(())
}

/// Parses an address flag or config value, naming `key` when it is not one.
pub fn address(key: &str, value: &str) -> Result<SocketAddr, ConfigFileError> {
    value.parse().map_err(|_| ConfigFileError::Address {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

fn tenant_id(key: &str, value: &str) -> Result<(), ConfigFileError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ConfigFileError::TenantId {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// A positive duration in milliseconds (`"1h"`, `"20m"`, `"90s"`, `"500ms"`, `"2d"`), or
/// `None` for `"off"`; `key` names the setting in the message.
pub fn duration_ms(key: &str, value: &str) -> Result<Option<i64>, ConfigFileError> {
    if value == "off" {
        return Ok(None);
    }
    let bad = || ConfigFileError::Duration {
        key: key.to_owned(),
        value: value.to_owned(),
    };
    let split = value.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = value.split_at(split);
    let per: i64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    let n: i64 = n.parse().map_err(|_| bad())?;
    match n.checked_mul(per) {
        Some(ms) if ms > 0 => Ok(Some(ms)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_config_is_valid_and_has_an_admin() {
        let config = Config::demo();
        let tokens = config.tokens().unwrap();
        assert!(!tokens.is_empty());
        assert!(config.tokens.iter().any(|t| t.admin));
        assert_eq!(config.grpc_addr().port(), 50051);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let cases = [
            ("[serve]\ngrpc_addr = \"127.0.0.1:1\"\n", "grpc_addr"),
            ("[serve]\ngrpc = \"localhost\"\n", "serve.grpc"),
            ("[source]\nrate = 0\n", "source.rate"),
            ("[source]\nrate = \"fast\"\n", "rate"),
            ("[source]\ntype = \"kafkaa\"\n", "kafkaa"),
            ("[[tokens]]\ntoken = \"x\"\n", "tokens[0]"),
            (
                "[[tokens]]\ntoken = \"x\"\ntenant = \"a b\"\n",
                "tokens[0].tenant",
            ),
            (
                "[[tokens]]\ntoken = \"x\"\nadmin = true\n[[tokens]]\ntoken = \"x\"\ntenant = \"a\"\n",
                "tokens[1].token",
            ),
            ("[pipeline]\nworkers = 0\n", "pipeline.workers"),
            ("colour = \"blue\"\n", "colour"),
            ("[tls]\ncert = \"c.pem\"\n", "key"),
            ("[tls]\ncert = \"c.pem\"\nkey = \"\"\n", "tls.key"),
            (
                "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nca = \"x\"\n",
                "ca",
            ),
        ];
        for (text, named) in cases {
            let err = Config::parse(text).expect_err(text).to_string();
            assert!(err.contains(named), "{text:?} gave {err:?}");
        }
    }

    #[test]
    fn durations_take_a_unit_and_off() {
        assert_eq!(duration_ms("k", "1h").unwrap(), Some(3_600_000));
        assert_eq!(duration_ms("k", "20m").unwrap(), Some(1_200_000));
        assert_eq!(duration_ms("k", "500ms").unwrap(), Some(500));
        assert_eq!(duration_ms("k", "2d").unwrap(), Some(172_800_000));
        assert_eq!(duration_ms("k", "off").unwrap(), None);
        for bad in [
            "",
            "1",
            "h",
            "0s",
            "-1h",
            "1.5h",
            "1 h",
            "99999999999999999d",
        ] {
            let e = duration_ms("retention.lateness", bad).unwrap_err();
            assert!(
                e.to_string().starts_with("retention.lateness: "),
                "{bad}: {e}"
            );
        }
    }
}
