//! `sluice run PIPELINE`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

use super::progress::Progress;
use crate::config::Pipeline;
use crate::pipeline::{self, RunOptions};

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
    /// Do not show the progress bar.
    #[arg(long)]
    no_progress: bool,
}

/// Installs signal handlers: SIGINT/SIGTERM set `stop` (graceful; a second
/// one exits at once), SIGHUP sets `reload`.
fn handle_signals(stop: Arc<AtomicBool>, reload: Arc<AtomicBool>) {
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
                        reload.store(true, Ordering::Relaxed);
                        continue;
                    }
                }
                count += 1;
                if count == 1 {
                    tracing::warn!("stopping: finishing the batches in flight (signal again to exit at once)");
                    stop.store(true, Ordering::Relaxed);
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
    let pipeline = Pipeline::load(&args.pipeline)?;
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    handle_signals(stop.clone(), reload.clone());
    let prepared = pipeline::prepare(pipeline)?;
    let mut progress = Progress::new(!args.no_progress);
    let summary = pipeline::run(
        prepared,
        &RunOptions {
            reset: args.reset,
            reload,
        },
        stop,
        &mut progress,
    );
    progress.finish();
    let summary = summary?;
    eprint!("{}", summary.render());
    if let Some(path) = &args.summary_json {
        let json = serde_json::to_string_pretty(&summary)?;
        std::fs::write(path, json).with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
