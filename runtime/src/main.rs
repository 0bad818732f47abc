//! The `weir` command line: `weir run` (live or bounded), `weir gen`, the plugin tools, and
//! the API clients (`weir query`, `weir subscribe`, `weir plugin deploy|list|rollback`).
//!
//! It owns the arguments, the exit code and what reaches the user's screen. Every command is a
//! call into the library (`run::execute`, the generator, the plugin host, `serve::client`), so
//! it must not admit, compute a view or speak gRPC itself.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use weir::config::Config;
use weir::plugins::embedded;
use weir::plugins::set::WasmPlugins;
use weir::plugins::wasm::Limits;
use weir::serve::client;
use weir::settings::{DEFAULT_GRPC, DEFAULT_TENANTS, RunFlags};
use weir::source::generator::{GenConfig, Generator};
use weir::source::kafka::KafkaUrl;

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
    Run(Box<RunFlags>),
    /// Print generated events as NDJSON.
    Gen(GenArgs),
    /// Build and test WebAssembly plugins; deploy, list and roll back rules and transforms on a
    /// running weir.
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
    /// The gRPC address of `weir run`: HOST:PORT, http://HOST:PORT, or https://HOST:PORT for
    /// a run with [tls] (HOST:PORT with --ca or --client-cert is https too).
    #[arg(long, env = "WEIR_ADDR", default_value_t = DEFAULT_GRPC.to_string())]
    addr: String,
    /// Bearer token (see the config's [[tokens]]; the demo admin token is pulsecart-admin-demo).
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM CA certificate(s) to trust for an https address instead of the system's roots
    /// (a private CA).
    #[arg(long, env = "WEIR_CA", value_name = "PEM")]
    ca: Option<PathBuf>,
    /// PEM client certificate, for a run whose [tls] has client_ca (with --client-key).
    #[arg(
        long,
        env = "WEIR_CLIENT_CERT",
        value_name = "PEM",
        requires = "client_key"
    )]
    client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(
        long,
        env = "WEIR_CLIENT_KEY",
        value_name = "PEM",
        requires = "client_cert"
    )]
    client_key: Option<PathBuf>,
}

impl ClientArgs {
    fn target(&self) -> client::Target {
        client::Target {
            addr: self.addr.clone(),
            token: self.token.clone(),
            tls: client::ClientTls {
                ca: self.ca.clone(),
                identity: self.client_cert.clone().zip(self.client_key.clone()),
            },
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
    /// Deploy a rule or transform component (the world is read off it) to a running weir as
    /// a new version of NAME.
    Deploy {
        /// The component.
        wasm: PathBuf,
        /// The rule's name (fraud_alerts.rule) or the transform's.
        #[arg(long)]
        name: String,
        /// Only this tenant's events.
        #[arg(long)]
        tenant: Option<String>,
        /// from_now (events admitted from now on) or retroactive (every retained event; a
        /// transform only on a run that retains history).
        #[arg(long, default_value = "from_now")]
        mode: String,
        /// Test vectors it must pass first (JSON lines).
        #[arg(long)]
        vectors: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List every rule and transform version of a running weir and where it is deployed.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Deploy an earlier version of a rule or transform again (by default the one before the
    /// active one; for a transform, the one its last deploy replaced).
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

#[derive(Args)]
struct GenArgs {
    /// Number of lines to print.
    #[arg(long)]
    events: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = DEFAULT_TENANTS, value_parser = clap::value_parser!(u16).range(1..=1000))]
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

fn run(flags: Box<RunFlags>) -> anyhow::Result<()> {
    let settings = Config::resolve(&flags)?;
    let stop = Arc::new(AtomicBool::new(false));
    if settings.live.is_some() {
        let flag = stop.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("cannot install the Ctrl-C handler")?;
    }
    let result = weir::run::execute(&settings, &stop)?;
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
        let sent = weir::source::kafka::produce(
            &url.brokers,
            topic,
            generator.take(args.events as usize),
        )?;
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
