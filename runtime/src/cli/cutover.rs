//! `sluice cutover PIPELINE`: ready to switch to the new system, or not.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::config::Pipeline;

/// Arguments of `sluice cutover`.
#[derive(Debug, clap::Args)]
pub struct CutoverArgs {
    /// The pipeline file of the running sync (`sluice run --admin`).
    pipeline: PathBuf,
    /// The largest lag that counts as caught up (`1s`, `500ms`, `2m`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    max_lag: Duration,
    /// How long to wait for the sync to catch up.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10m")]
    timeout: Duration,
    /// A shell command that stops writes to the source (revoke the
    /// application's login, put it in maintenance...), run once the sync is
    /// within `--max-lag`; the sync must then catch up completely before
    /// the final verify.
    #[arg(long, value_name = "COMMAND")]
    pause_source_writes: Option<String>,
    /// Problems the final verify shows per table.
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// Exit 0 when ready, 1 when not.
pub(super) fn cutover(args: CutoverArgs) -> anyhow::Result<ExitCode> {
    let pipeline = Pipeline::load(&args.pipeline)?;
    let report = crate::cutover::cutover(
        pipeline,
        &crate::cutover::Options {
            max_lag: args.max_lag,
            timeout: args.timeout,
            pause_source_writes: args.pause_source_writes,
            samples: args.samples,
        },
    )?;
    print!("{}", report.render());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    Ok(if report.ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
