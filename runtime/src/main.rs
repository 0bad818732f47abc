//! The `weir` command line: `weir run` (live or bounded) and `weir gen`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use weir::generator::{GenConfig, Generator};
use weir::plugins::PluginFactory;
use weir::plugins::embedded;
use weir::plugins::native::NativePlugins;
use weir::plugins::set::WasmPlugins;
use weir::plugins::wasm::Limits;
use weir::run::{LiveConfig, RunConfig, run_bounded, run_live};

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
    /// Build and test WebAssembly plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
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
    /// NDJSON input file, or `-` for stdin; makes the run bounded.
    #[arg(long)]
    input: Option<String>,
    /// Output directory for views/*.parquet and quarantine.parquet (required with --input).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Dataflow worker threads.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// Bounded runs: input lines per logical time.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    epoch_lines: u64,
    /// Live runs: generated events per second.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,
    /// Live runs: generator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Live runs: number of generated tenants.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1000))]
    tenants: u16,
    /// Live runs: milliseconds per logical time.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    tick_ms: u64,
    /// Live runs: seconds between status lines.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    status_secs: u64,
    /// Which implementation of the default plugins runs.
    #[arg(long, value_enum, default_value_t = PluginImpl::Wasm)]
    plugins: PluginImpl,
    /// Replace or add a plugin: NAME=FILE.wasm (repeatable; the world is read off the file).
    #[arg(long = "plugin", value_name = "NAME=FILE")]
    plugin: Vec<String>,
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
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Run(args) => run(args),
        Command::Gen(args) => generate(args),
        Command::Plugin(command) => plugin(command),
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

fn plugin_set(args: &RunArgs) -> anyhow::Result<Arc<dyn PluginFactory>> {
    if args.plugins == PluginImpl::Native {
        if !args.plugin.is_empty() {
            bail!("--plugin needs the WebAssembly plugins; drop --plugins native");
        }
        return Ok(Arc::new(NativePlugins));
    }
    let mut set = WasmPlugins::defaults()?;
    for spec in &args.plugin {
        let Some((name, file)) = spec.split_once('=') else {
            bail!("--plugin {spec}: expected NAME=FILE.wasm");
        };
        let bytes =
            std::fs::read(file).with_context(|| format!("--plugin {spec}: cannot read {file}"))?;
        let world = set.add(name, &bytes, None)?;
        eprintln!("weir: plugin {name} ({world:?}) from {file}");
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
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = RunConfig {
        workers: usize::from(args.workers),
        epoch_lines: args.epoch_lines as usize,
        lockstep: false,
        plugins: plugin_set(&args)?,
    };
    let result = match &args.input {
        Some(input) => {
            if args.out.is_none() {
                bail!("a bounded run (--input) needs --out DIR for its Parquet outputs");
            }
            let reader: Box<dyn BufRead> = if input == "-" {
                Box::new(BufReader::with_capacity(1 << 20, io::stdin().lock()))
            } else {
                let file =
                    File::open(input).with_context(|| format!("cannot read input file {input}"))?;
                Box::new(BufReader::with_capacity(1 << 20, file))
            };
            run_bounded(&config, reader).context("reading the input failed")?
        }
        None => {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
                .context("cannot install the Ctrl-C handler")?;
            eprintln!(
                "weir: live on the built-in generator at {} events/s with {} workers; Ctrl-C stops",
                args.rate, args.workers
            );
            let live = LiveConfig {
                run: config,
                rate: args.rate,
                seed: args.seed,
                tenants: usize::from(args.tenants),
                tick: Duration::from_millis(args.tick_ms),
                status_every: Duration::from_secs(args.status_secs),
            };
            run_live(&live, &stop)?
        }
    };
    if let Some(out) = &args.out {
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
