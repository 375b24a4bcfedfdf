//! `sluice run PIPELINE`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;

use super::progress::Progress;
use crate::config::Pipeline;
use crate::pipeline::{self, Control, RunOptions};

/// Arguments of `sluice run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The pipeline file.
    pipeline: PathBuf,
    /// Forget the checkpoint and read the source from the beginning.
    #[arg(long)]
    reset: bool,
    /// Also write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<PathBuf>,
    /// Also write a self-contained HTML report of the run to this file
    /// (counts, dead letters by reason with examples, throughput over time,
    /// time per stage, plugin versions).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// For sources that follow their input (PostgreSQL change data capture,
    /// JSONL with `follow`): end once everything the source had when the
    /// run started is written, instead of waiting for more.
    #[arg(long)]
    until_caught_up: bool,
    /// Do not show the progress bar.
    #[arg(long)]
    no_progress: bool,
    /// After the summary, show where the time went: each stage's own work
    /// (by part: source read, plugin call, sink write, checkpoint...) and
    /// its time waiting for the stages around it.
    #[arg(long)]
    profile: bool,
    /// Serve the admin API on this address (`127.0.0.1:9464`); overrides
    /// `runtime.admin`.
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
}

/// Installs signal handlers: SIGINT/SIGTERM set `stop` (graceful; a second
/// one exits at once), SIGHUP sets `reload`.
fn handle_signals(control: Arc<Control>) {
    let spawned = std::thread::Builder::new().name("sluice-signals".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut hup)) =
                (signal(SignalKind::terminate()), signal(SignalKind::hangup()))
            else {
                return;
            };
            let mut count = 0;
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                    _ = hup.recv() => {
                        control.reload.store(true, Ordering::Relaxed);
                        continue;
                    }
                }
                count += 1;
                if count == 1 {
                    tracing::warn!("stopping: finishing the batches in flight (signal again to exit at once)");
                    control.stop.store(true, Ordering::Relaxed);
                } else {
                    std::process::exit(130);
                }
            }
        });
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot install signal handlers");
    }
}

pub(super) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut pipeline = Pipeline::load(&args.pipeline)?;
    let _lock = crate::pipeline::run_lock::acquire(&pipeline.state_dir, &pipeline.name)
        .map_err(anyhow::Error::msg)?;
    if args.until_caught_up {
        pipeline.config.source.set_until_caught_up();
    }
    let control = Arc::new(Control::new());
    handle_signals(control.clone());
    let admin_addr = args
        .admin
        .clone()
        .or_else(|| pipeline.config.runtime.admin.clone());
    #[cfg(not(feature = "admin"))]
    if let Some(addr) = admin_addr {
        anyhow::bail!(
            "the admin API ({addr}: `--admin` or `runtime.admin`) is not in this sluice: it was built without the cargo feature `admin` (on by default)"
        );
    }
    #[cfg(feature = "admin")]
    let metrics = {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).ok().map(|()| handle)
    };
    #[cfg(feature = "admin")]
    let _admin = match &admin_addr {
        Some(addr) => Some(
            crate::admin::start(
                addr,
                control.clone(),
                pipeline.name.clone(),
                metrics,
                &pipeline.state_dir,
            )
            .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    // The console's address. With the token only on a terminal: output
    // that goes to a file or a log collector is often read by others.
    #[cfg(feature = "admin")]
    if let Some(admin) = &_admin {
        use std::io::IsTerminal;
        if std::io::stderr().is_terminal() {
            eprintln!(
                "console: {}",
                crate::admin::console_url(&admin.addr.to_string(), Some(&admin.token))
            );
        } else {
            eprintln!(
                "console: {}  (`sluice ctl open --pipeline {}` prints it with this run's token)",
                crate::admin::console_url(&admin.addr.to_string(), None),
                args.pipeline.display()
            );
        }
    }
    let prepared = pipeline::prepare(pipeline)?;
    let mut progress = Progress::new(!args.no_progress);
    let summary = pipeline::run(
        prepared,
        &RunOptions { reset: args.reset },
        control.clone(),
        &mut progress,
    );
    progress.finish();
    let summary = summary?;
    eprint!("{}", summary.render());
    if args.profile {
        eprint!("{}", summary.profile.render());
    }
    if let Some(path) = &args.summary_json {
        let json = serde_json::to_string_pretty(&summary)?;
        std::fs::write(path, json).with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    if let Some(path) = &args.report {
        std::fs::write(path, crate::report::render(&summary))
            .with_context(|| format!("cannot write the report `{}`", path.display()))?;
        eprintln!("report: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
