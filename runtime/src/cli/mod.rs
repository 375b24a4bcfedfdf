//! The `sluice` command line: `run`, `check`, `verify`, `slot`, `ctl`,
//! `plugin new | build | setup | test | inspect | keygen | sign | verify`
//! (`verify` and `slot` need the `postgres` feature, `ctl` `admin`,
//! `plugin new | build | setup` `toolchain`).

mod check;
#[cfg(feature = "toolchain")]
mod conformance;
#[cfg(feature = "toolchain")]
mod connector_new;
#[cfg(feature = "admin")]
mod ctl;
#[cfg(all(feature = "postgres", feature = "admin"))]
mod cutover;
#[cfg(feature = "toolchain")]
mod plugin_build;
#[cfg(feature = "toolchain")]
mod plugin_new;
mod plugin_sign;
mod plugin_test;
mod progress;
mod replay;
mod run;
#[cfg(feature = "postgres")]
mod slot;
#[cfg(feature = "postgres")]
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sluice: live data migration through sandboxed WebAssembly transforms.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline until its source is exhausted (or Ctrl-C: a graceful
    /// stop that commits what is in flight).
    Run(run::RunArgs),
    /// Parse a pipeline, load and start every plugin, open the connectors,
    /// and report every problem found.
    Check {
        /// The pipeline file.
        pipeline: PathBuf,
    },
    /// Plugin author tools.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Run dead letters again through the pipeline's current transforms
    /// into its sink (after a fix), each at most once.
    Replay(replay::ReplayArgs),
    /// Control a running pipeline through its admin API.
    #[cfg(feature = "admin")]
    Ctl(ctl::CtlArgs),
    /// Compare the target with the source (PostgreSQL source; PostgreSQL or
    /// SQLite target), running the source rows through the same plugins.
    #[cfg(feature = "postgres")]
    Verify(verify::VerifyArgs),
    /// Cut-over readiness of a running live sync: wait until caught up
    /// within a bound, optionally pause source writes, verify, count the
    /// dead letters not replayed; ready (exit 0) or not (exit 1).
    #[cfg(all(feature = "postgres", feature = "admin"))]
    Cutover(cutover::CutoverArgs),
    /// The replication slots of a PostgreSQL source: list them, or drop
    /// the pipeline's at the end of a migration.
    #[cfg(feature = "postgres")]
    Slot(slot::SlotArgs),
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Create a plugin (Rust, Python, JavaScript or C) that builds and
    /// passes its own sample test as generated.
    #[cfg(feature = "toolchain")]
    New(plugin_new::NewArgs),
    /// Build the plugin in a directory into `DIR/build/NAME.wasm`
    /// (the language is told from its files).
    #[cfg(feature = "toolchain")]
    Build(plugin_build::BuildArgs),
    /// Install the pinned tools that building plugins of a language needs.
    #[cfg(feature = "toolchain")]
    Setup(plugin_build::SetupArgs),
    /// Run a plugin on sample records and show (or compare) the outcomes.
    Test(plugin_test::TestArgs),
    /// Show what a component is: its world, its manifest (name, version,
    /// requested capabilities, config keys) and its signature.
    Inspect(plugin_sign::InspectArgs),
    /// Make an ed25519 key pair for signing plugins.
    Keygen(plugin_sign::KeygenArgs),
    /// Sign a component: writes `FILE.sig`.
    Sign(plugin_sign::SignArgs),
    /// Check a component's signature (`FILE.sig`), optionally against keys.
    Verify(plugin_sign::VerifyArgs),
}

/// What this build leaves out, for `--help` (`None`: everything is in).
fn built_without() -> Option<String> {
    let left_out: Vec<&str> = [
        (
            cfg!(feature = "postgres"),
            "postgres (PostgreSQL source and sink, `verify`, `slot`, `cutover`)",
        ),
        (cfg!(feature = "kafka"), "kafka (Kafka source and sink)"),
        (cfg!(feature = "admin"), "admin (the admin API, `ctl`)"),
        (
            cfg!(feature = "toolchain"),
            "toolchain (`plugin new`, `plugin build`, `plugin setup`, testing a plugin directory)",
        ),
    ]
    .into_iter()
    .filter(|(on, _)| !on)
    .map(|(_, what)| what)
    .collect();
    (!left_out.is_empty()).then(|| {
        format!(
            "This sluice was built without the cargo features: {}.",
            left_out.join("; ")
        )
    })
}

fn init_logging() {
    let filter = std::env::var("SLUICE_LOG")
        .ok()
        .and_then(|s| tracing_subscriber::EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("warn,sluice_runtime=info"));
    // Colours only on a terminal: a log file or a pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Entry point of the `sluice` binary.
pub fn main() -> ExitCode {
    let cli = {
        use clap::{CommandFactory, FromArgMatches};
        let mut command = Cli::command();
        if let Some(note) = built_without() {
            command = command.after_help(note);
        }
        match Cli::from_arg_matches(&command.get_matches()) {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        }
    };
    init_logging();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check { pipeline } => check::check(&pipeline),
        #[cfg(feature = "toolchain")]
        Command::Plugin(PluginCommand::New(args)) => plugin_new::new(args),
        Command::Plugin(PluginCommand::Test(args)) => plugin_test::test(args),
        #[cfg(feature = "toolchain")]
        Command::Plugin(PluginCommand::Build(args)) => plugin_build::build(args),
        #[cfg(feature = "toolchain")]
        Command::Plugin(PluginCommand::Setup(args)) => plugin_build::setup(args),
        Command::Plugin(PluginCommand::Inspect(args)) => plugin_sign::inspect(args),
        Command::Plugin(PluginCommand::Keygen(args)) => plugin_sign::keygen(args),
        Command::Plugin(PluginCommand::Sign(args)) => plugin_sign::sign(args),
        Command::Plugin(PluginCommand::Verify(args)) => plugin_sign::verify(args),
        #[cfg(feature = "admin")]
        Command::Ctl(args) => ctl::ctl(args),
        Command::Replay(args) => replay::replay(args),
        #[cfg(feature = "postgres")]
        Command::Verify(args) => verify::verify(args),
        #[cfg(all(feature = "postgres", feature = "admin"))]
        Command::Cutover(args) => cutover::cutover(args),
        #[cfg(feature = "postgres")]
        Command::Slot(args) => slot::slot(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
