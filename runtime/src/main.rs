//! The `weir` command line: `weir run` (live or bounded), `weir gen`, the plugin tools, and
//! the API clients (`weir query`, `weir subscribe`, `weir plugin deploy|list|rollback`).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use weir::config::{Config, Implementation, SourceKind};
use weir::durable::{DurableConfig, run_kafka};
use weir::generator::{GenConfig, Generator};
use weir::kafka::KafkaUrl;
use weir::landing::{Landing, is_landed, raw_files, read_raw};
use weir::plugins::PluginFactory;
use weir::plugins::embedded;
use weir::plugins::native::NativePlugins;
use weir::plugins::set::WasmPlugins;
use weir::plugins::wasm::Limits;
use weir::run::{LiveConfig, RunConfig, Runner, run_live};
use weir::serve::ServeConfig;
use weir::serve::client;
use weir::store::ViewStore;

// The dataflow allocates and frees many small records; glibc malloc spent a third of a
// profiled run in allocation and page faults.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "Streaming runtime for real-time e-commerce analytics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline: live on the built-in generator, or bounded over NDJSON with --input.
    Run(RunArgs),
    /// Print generated events as NDJSON.
    Gen(GenArgs),
    /// Build and test WebAssembly plugins; deploy, list and roll back rules on a running weir.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Query a view of a running weir.
    Query(QueryArgs),
    /// Follow a view's changes on a running weir.
    Subscribe(SubscribeArgs),
}

/// How a client reaches the API.
#[derive(Args)]
struct ClientArgs {
    /// The gRPC address of `weir run`.
    #[arg(long, env = "WEIR_ADDR", default_value = "127.0.0.1:50051")]
    addr: String,
    /// Bearer token (see the config's [[tokens]]; the demo admin token is pulsecart-admin-demo).
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl ClientArgs {
    fn target(&self) -> weir::serve::client::Target {
        weir::serve::client::Target {
            addr: self.addr.clone(),
            token: self.token.clone(),
        }
    }
}

#[derive(Args)]
struct QueryArgs {
    /// The view (gmv_minute, payment_status, inventory, sessions, conversion_hour, fraud_alerts).
    view: String,
    /// Leading key column values (repeat for more columns), e.g. --prefix acme --prefix EUR.
    #[arg(long)]
    prefix: Vec<String>,
    /// Answer as of this logical time (recent times only); the latest when absent.
    #[arg(long)]
    as_of: Option<u64>,
    /// At most this many rows (0: all).
    #[arg(long, default_value_t = 0)]
    limit: u32,
    /// JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
struct SubscribeArgs {
    view: String,
    #[arg(long)]
    prefix: Vec<String>,
    /// JSON lines instead of text.
    #[arg(long)]
    json: bool,
    /// Stop after this many changes.
    #[arg(long)]
    count: Option<u64>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Build a plugin crate (see plugin-sdk) into a component.
    Build {
        /// The plugin crate's directory.
        dir: PathBuf,
        /// Where to write the component (default: <crate name>.wasm in the current directory).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Run a component against test vectors, with no pipeline.
    Test {
        /// The component.
        wasm: PathBuf,
        /// JSON lines of inputs and expected outputs.
        vectors: PathBuf,
        /// The plugin's name (default: the file name without .wasm).
        #[arg(long)]
        name: Option<String>,
    },
    /// Deploy a rule component to a running weir as a new version of NAME.
    Deploy {
        /// The component.
        wasm: PathBuf,
        /// The rule's name (fraud_alerts.rule).
        #[arg(long)]
        name: String,
        /// Only this tenant's events.
        #[arg(long)]
        tenant: Option<String>,
        /// from_now (events admitted from now on) or retroactive (every retained event).
        #[arg(long, default_value = "from_now")]
        mode: String,
        /// Test vectors it must pass first (JSON lines).
        #[arg(long)]
        vectors: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List every rule version of a running weir and where it is deployed.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Deploy an earlier version of a rule again (by default the one before the active one).
    Rollback {
        name: String,
        #[arg(long)]
        version: Option<u64>,
        #[arg(long, default_value = "from_now")]
        mode: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PluginImpl {
    /// The example plugins as sandboxed WebAssembly components (embedded in the binary).
    Wasm,
    /// The native Rust reference implementations.
    Native,
}

#[derive(Args)]
struct RunArgs {
    /// TOML config file (see examples/pulsecart/weir.toml, which plain `weir run` uses);
    /// flags win over it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// NDJSON input file (`-` for stdin), or landed raw Parquet to replay (a landing
    /// directory or a glob); makes the run bounded.
    #[arg(long)]
    input: Option<String>,
    /// Kafka topics to consume: kafka://HOST:PORT[,HOST:PORT…]/TOPIC[,TOPIC…].
    #[arg(long)]
    source: Option<String>,
    /// Output: views/*.parquet, quarantine and the raw landing zone; a directory, or for
    /// Kafka runs also an s3://bucket/prefix URL (required with --input and --source).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Kafka runs: where checkpoints go [default: OUT/checkpoints].
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Kafka runs: seconds between checkpoints [default: 5].
    #[arg(long)]
    checkpoint_secs: Option<f64>,
    /// Kafka runs: seconds between view exports to OUT/views [default: 60].
    #[arg(long)]
    export_secs: Option<f64>,
    /// Kafka runs: the consumer group offsets are reported to [default: weir].
    #[arg(long)]
    group: Option<String>,
    /// Kafka runs: stop after no message has come for this many seconds, writing the final
    /// outputs.
    #[arg(long)]
    until_idle: Option<f64>,
    /// Dataflow worker threads [default: 2].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: Option<u16>,
    /// Bounded runs: input lines per logical time [default: 20000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    epoch_lines: Option<u64>,
    /// Live runs: generated events per second [default: 5000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    rate: Option<u64>,
    /// Live runs: generator seed [default: 1].
    #[arg(long)]
    seed: Option<u64>,
    /// Live runs: number of generated tenants [default: 4].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1000))]
    tenants: Option<u16>,
    /// Live runs: milliseconds per logical time [default: 20].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    tick_ms: Option<u64>,
    /// Live runs: seconds between status lines [default: 5].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    status_secs: Option<u64>,
    /// Which implementation of the default plugins runs [default: wasm].
    #[arg(long, value_enum)]
    plugins: Option<PluginImpl>,
    /// Replace or add a plugin: NAME=FILE.wasm (repeatable; the world is read off the file).
    #[arg(long = "plugin", value_name = "NAME=FILE")]
    plugin: Vec<String>,
    /// Live runs: gRPC address (port 0 picks one) [default: 127.0.0.1:50051].
    #[arg(long)]
    grpc: Option<String>,
    /// Live runs: Prometheus address, or `off` [default: 127.0.0.1:9464].
    #[arg(long)]
    metrics: Option<String>,
}

#[derive(Args)]
struct GenArgs {
    /// Number of lines to print.
    #[arg(long)]
    events: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1000))]
    tenants: u16,
    /// Produce to Kafka (kafka://HOST:PORT/TOPIC) instead of printing, keyed by order_id or
    /// user_id so each order's and user's events stay in order within a partition.
    #[arg(long)]
    to: Option<String>,
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Run(args) => run(args),
        Command::Gen(args) => generate(args),
        Command::Plugin(command) => plugin(command),
        Command::Query(args) => query(args),
        Command::Subscribe(args) => subscribe(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The message and its causes, never a backtrace: this is the user's screen.
        Err(error) => {
            eprintln!("weir: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn plugin_set(
    implementation: PluginImpl,
    specs: &[String],
    config: &Config,
) -> anyhow::Result<Arc<dyn PluginFactory>> {
    let mut loads: Vec<(String, PathBuf, Option<String>)> = config
        .plugins
        .load
        .iter()
        .map(|p| (p.name.clone(), p.file.clone(), p.tenant.clone()))
        .collect();
    for spec in specs {
        let Some((name, file)) = spec.split_once('=') else {
            bail!("--plugin {spec}: expected NAME=FILE.wasm");
        };
        loads.push((name.to_owned(), PathBuf::from(file), None));
    }
    if implementation == PluginImpl::Native {
        if !loads.is_empty() {
            bail!("loading plugin components needs the WebAssembly plugins; drop --plugins native");
        }
        return Ok(Arc::new(NativePlugins));
    }
    let mut set = WasmPlugins::defaults()?;
    for (name, file, tenant) in loads {
        let bytes = std::fs::read(&file)
            .with_context(|| format!("plugin {name}: cannot read {}", file.display()))?;
        let world = set.add(&name, &bytes, tenant.as_deref())?;
        eprintln!("weir: plugin {name} ({world:?}) from {}", file.display());
    }
    Ok(Arc::new(set))
}

fn plugin(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Build { dir, out } => {
            let bytes = embedded::build_crate(&dir).map_err(anyhow::Error::msg)?;
            let out = out.unwrap_or_else(|| {
                let name = dir
                    .file_name()
                    .map_or("plugin".into(), |n| n.to_string_lossy().into_owned());
                PathBuf::from(format!("{name}.wasm"))
            });
            std::fs::write(&out, &bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!("weir: wrote {} ({} bytes)", out.display(), bytes.len());
            Ok(())
        }
        PluginCommand::Test {
            wasm,
            vectors,
            name,
        } => {
            let name = name.unwrap_or_else(|| {
                wasm.file_stem()
                    .map_or("plugin".into(), |n| n.to_string_lossy().into_owned())
            });
            let bytes =
                std::fs::read(&wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
            let lines = std::fs::read_to_string(&vectors)
                .with_context(|| format!("cannot read {}", vectors.display()))?;
            let mut set = WasmPlugins::new(Limits::default())?;
            let world = set.add(&name, &bytes, None)?;
            let report =
                weir::plugins::vectors::check(&set, &name, &lines).map_err(anyhow::Error::msg)?;
            for failure in &report.failures {
                eprintln!("FAIL {failure}");
            }
            eprintln!(
                "{name} ({world:?}): {} passed, {} failed",
                report.passed,
                report.failures.len()
            );
            if !report.ok() {
                bail!("{name} failed its vectors");
            }
            Ok(())
        }
        PluginCommand::Deploy {
            wasm,
            name,
            tenant,
            mode,
            vectors,
            client,
        } => {
            let done = client::deploy(
                &client.target(),
                &wasm,
                &name,
                tenant.as_deref(),
                &mode,
                vectors.as_deref(),
            )
            .map_err(anyhow::Error::msg)?;
            println!("{done}");
            Ok(())
        }
        PluginCommand::List { client } => {
            client::list(&client.target(), &mut io::stdout().lock()).map_err(anyhow::Error::msg)
        }
        PluginCommand::Rollback {
            name,
            version,
            mode,
            client,
        } => {
            let done = client::rollback(&client.target(), &name, version, &mode)
                .map_err(anyhow::Error::msg)?;
            println!("{done}");
            Ok(())
        }
    }
}

fn query(args: QueryArgs) -> anyhow::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    let as_of = client::query(
        &args.client.target(),
        &args.view,
        &args.prefix,
        args.as_of,
        args.limit,
        args.json,
        &mut out,
    )
    .map_err(anyhow::Error::msg)?;
    out.flush().context("cannot write to stdout")?;
    eprintln!("weir: {} as of logical time {as_of}", args.view);
    Ok(())
}

fn subscribe(args: SubscribeArgs) -> anyhow::Result<()> {
    client::subscribe(
        &args.client.target(),
        &args.view,
        &args.prefix,
        args.json,
        args.count,
        &mut io::stdout().lock(),
    )
    .map_err(anyhow::Error::msg)
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path).map_err(anyhow::Error::msg)?,
        None => Config::demo(),
    };
    let (p, src) = (&config.pipeline, &config.source);
    let implementation = args.plugins.unwrap_or(match config.plugins.implementation {
        Some(Implementation::Native) => PluginImpl::Native,
        _ => PluginImpl::Wasm,
    });
    let run_config = RunConfig {
        workers: usize::from(args.workers.or(p.workers).unwrap_or(2)),
        epoch_lines: args.epoch_lines.or(p.epoch_lines).unwrap_or(20_000) as usize,
        lockstep: false,
        plugins: plugin_set(implementation, &args.plugin, &config)?,
    };
    let input = args.input.clone().or_else(|| match src.kind {
        SourceKind::File => src.path.clone(),
        _ => None,
    });
    let kafka = args.source.clone().or_else(|| match src.kind {
        SourceKind::Kafka => src.url.clone(),
        _ => None,
    });
    let out = args.out.clone().or_else(|| src.out.clone());
    let serve_config = || -> anyhow::Result<ServeConfig> {
        let grpc = match &args.grpc {
            Some(a) => weir::config::address("--grpc", a).map_err(anyhow::Error::msg)?,
            None => config.grpc_addr(),
        };
        let metrics = match args.metrics.as_deref() {
            Some("off") => None,
            Some(a) => Some(weir::config::address("--metrics", a).map_err(anyhow::Error::msg)?),
            None => config.metrics_addr(),
        };
        let tokens = config.tokens().map_err(anyhow::Error::msg)?;
        Ok(ServeConfig {
            grpc,
            metrics,
            tokens,
        })
    };
    let stop_on_ctrl_c = || -> anyhow::Result<Arc<AtomicBool>> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("cannot install the Ctrl-C handler")?;
        Ok(stop)
    };
    let tick = Duration::from_millis(args.tick_ms.or(p.tick_ms).unwrap_or(20));
    let status_every = Duration::from_secs(args.status_secs.or(p.status_secs).unwrap_or(5));
    let history = config.serve.history.unwrap_or(weir::store::DEFAULT_HISTORY);
    let subscriber_buffer = config.serve.subscriber_buffer.unwrap_or(1024);
    if let (Some(url), Some(_)) = (&kafka, &input) {
        bail!(
            "--input {} and the Kafka source {url}: a run reads one source",
            input.unwrap_or_default()
        );
    }
    if let Some(url) = kafka {
        let source = KafkaUrl::parse(&url)?;
        let Some(out) = out else {
            bail!(
                "a Kafka run needs --out DIR (or an s3:// URL) for its landing zone, views and checkpoints"
            );
        };
        let out = out.to_string_lossy().into_owned();
        let checkpoint_dir = match args
            .checkpoint_dir
            .clone()
            .or_else(|| src.checkpoint_dir.clone())
        {
            Some(dir) => dir,
            None if out.contains("://") => {
                bail!(
                    "--out {out} is an object store: give --checkpoint-dir DIR, a local directory for checkpoints"
                )
            }
            None => PathBuf::from(&out).join("checkpoints"),
        };
        let seconds = |flag: &str, value: Option<f64>, default: f64| -> anyhow::Result<Duration> {
            let v = value.unwrap_or(default);
            if !(v > 0.0 && v.is_finite()) {
                bail!("{flag}: {v} is not a positive number of seconds");
            }
            Ok(Duration::from_secs_f64(v))
        };
        let durable = DurableConfig {
            run: run_config,
            source: source.clone(),
            group: args
                .group
                .clone()
                .or_else(|| src.group.clone())
                .unwrap_or_else(|| "weir".into()),
            out: out.clone(),
            checkpoint_dir,
            checkpoint_every: seconds(
                "--checkpoint-secs",
                args.checkpoint_secs.or(src.checkpoint_secs),
                5.0,
            )?,
            export_every: seconds("--export-secs", args.export_secs.or(src.export_secs), 60.0)?,
            until_idle: args
                .until_idle
                .or(src.until_idle_secs)
                .map(|v| seconds("--until-idle", Some(v), 1.0))
                .transpose()?,
            tick,
            status_every,
            serve: Some(serve_config()?),
            history,
            subscriber_buffer,
        };
        let stop = stop_on_ctrl_c()?;
        eprintln!(
            "weir: reading {} from {} with {} workers; landing in {out}; Ctrl-C stops",
            source.topics.join(","),
            source.brokers,
            durable.run.workers
        );
        let result = run_kafka(&durable, &stop)?;
        eprintln!(
            "weir: wrote {out}/views/*.parquet; raw events and quarantine in {out}/raw and {out}/quarantine"
        );
        eprint!("{}", result.summary());
        return Ok(());
    }
    let result = match &input {
        Some(input) => {
            let Some(out) = &out else {
                bail!("a bounded run (--input) needs --out DIR for its Parquet outputs");
            };
            let landing = Landing::open(&out.to_string_lossy())?;
            let mut runner = Runner::start(&run_config, Arc::new(ViewStore::default()))?;
            runner.land_into(landing)?;
            if is_landed(input) {
                let files = raw_files(input).map_err(anyhow::Error::msg)?;
                eprintln!(
                    "weir: replaying {} landed raw files from {input}",
                    files.len()
                );
                for file in files {
                    let lines = read_raw(&file).map_err(anyhow::Error::msg)?;
                    for chunk in lines.chunks(1024) {
                        runner.feed(chunk);
                    }
                }
            } else {
                let mut reader: Box<dyn BufRead> = if input == "-" {
                    Box::new(BufReader::with_capacity(1 << 20, io::stdin().lock()))
                } else {
                    let file = File::open(input)
                        .with_context(|| format!("cannot read input file {input}"))?;
                    Box::new(BufReader::with_capacity(1 << 20, file))
                };
                runner
                    .feed_all(&mut reader)
                    .context("reading the input failed")?;
            }
            runner.finish_landed()?
        }
        None => {
            let stop = stop_on_ctrl_c()?;
            let rate = args.rate.or(src.rate).unwrap_or(5_000);
            eprintln!(
                "weir: live on the built-in generator at {rate} events/s with {} workers; Ctrl-C stops",
                run_config.workers
            );
            let live = LiveConfig {
                run: run_config,
                rate,
                seed: args.seed.or(src.seed).unwrap_or(1),
                tenants: usize::from(args.tenants.or(src.tenants).unwrap_or(4)),
                tick,
                status_every,
                serve: Some(serve_config()?),
                history,
                subscriber_buffer,
            };
            run_live(&live, &stop)?
        }
    };
    if let Some(out) = &out {
        result
            .write_outputs(out)
            .with_context(|| format!("cannot write outputs to {}", out.display()))?;
        eprintln!(
            "weir: wrote {}/views/*.parquet and quarantine.parquet",
            out.display()
        );
    }
    eprint!("{}", result.summary());
    Ok(())
}

fn generate(args: GenArgs) -> anyhow::Result<()> {
    let generator = Generator::new(GenConfig {
        seed: args.seed,
        tenants: usize::from(args.tenants),
        start_ms: GenConfig::DEFAULT_START_MS,
    });
    if let Some(to) = &args.to {
        let url = KafkaUrl::parse(to)?;
        let [topic] = url.topics.as_slice() else {
            bail!("--to {to}: name one topic to produce to");
        };
        let sent = weir::kafka::produce(&url.brokers, topic, generator.take(args.events as usize))?;
        eprintln!("weir: produced {sent} events to {topic} at {}", url.brokers);
        return Ok(());
    }
    let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
    for line in generator.take(args.events as usize) {
        if let Err(e) = writeln!(out, "{line}") {
            // A closed pipe (`weir gen | head`) is a normal way to stop.
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e).context("cannot write to stdout");
        }
    }
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e).context("cannot write to stdout"),
        _ => Ok(()),
    }
}
