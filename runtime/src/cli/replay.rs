//! `sluice replay`: dead letters back through the current transforms.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Pipeline;
use crate::replay::{Options, replay as run_replay};

/// Arguments of `sluice replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The pipeline file: its dead-letter sink is read, its transforms run,
    /// its sink written.
    pipeline: PathBuf,
    /// Read the dead letters from this JSON-lines file instead of the
    /// pipeline's dead-letter sink.
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
    /// Only dead letters with this code (repeatable).
    #[arg(long = "code", value_name = "CODE")]
    codes: Vec<String>,
    /// Only dead letters from this stage: a transform's name, `source` or
    /// `sink` (repeatable).
    #[arg(long = "stage", value_name = "STAGE")]
    stages: Vec<String>,
    /// Only dead letters of this plugin version (or a prefix of it;
    /// repeatable).
    #[arg(long = "plugin-version", value_name = "VERSION")]
    versions: Vec<String>,
    /// Only dead letters from this time on (RFC 3339, e.g.
    /// `2026-12-01T08:00:00Z`).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only dead letters from before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Run the transforms and report what would happen; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn time(flag: &str, t: &Option<String>) -> anyhow::Result<Option<i64>> {
    t.as_deref()
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| d.timestamp_micros())
                .with_context(|| {
                    format!("`--{flag} {s}`: not an RFC 3339 time (2026-12-01T08:00:00Z)")
                })
        })
        .transpose()
}

pub(super) fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let options = Options {
        from: args.from,
        codes: args.codes,
        stages: args.stages,
        versions: args.versions,
        since: time("since", &args.since)?,
        until: time("until", &args.until)?,
        dry_run: args.dry_run,
    };
    let pipeline = Pipeline::load(&args.pipeline)?;
    let report = run_replay(pipeline, &options)?;
    eprint!("{}", report.render());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
