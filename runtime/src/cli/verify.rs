//! `sluice verify PIPELINE`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Pipeline;

/// Arguments of `sluice verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The pipeline file (its source, plugins and sink are compared).
    pipeline: PathBuf,
    /// Problems to show per table.
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// Also write the report as JSON to this file (with `--follow`: the
    /// latest round).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Re-sync what differs: missing and different rows written again from
    /// the source through the plugins, extra rows deleted; then verify
    /// again.
    #[arg(long, conflicts_with = "follow")]
    repair: bool,
    /// Compare every row of every table, in one snapshot of the source,
    /// without key ranges: nothing is taken from earlier verifies (which
    /// re-check only the ranges whose checksums changed).
    #[arg(long, conflicts_with = "follow")]
    full: bool,
    /// Verify again and again beside a live sync, telling differences
    /// that persist (found in two rounds in a row, the sync's lag waited
    /// out between them) from changes in flight; each round is printed and
    /// reported to the running pipeline's admin API (`/status`, `/metrics`).
    #[arg(long)]
    follow: bool,
    /// With `--follow`: the least time between two rounds' starts.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "30s", requires = "follow")]
    every: std::time::Duration,
    /// With `--follow`: stop after this many rounds (default: until stopped).
    #[arg(long, value_name = "N", requires = "follow", value_parser = clap::value_parser!(u32).range(1..))]
    rounds: Option<u32>,
}

/// Exit 0 when identical, 1 when not. With `--follow`: 0 when the last
/// round found no persistent difference, 1 when it did.
pub(super) fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    if args.follow {
        return follow(&args);
    }
    let pipeline = Pipeline::load(&args.pipeline)?;
    let options = crate::verify::Options {
        samples: args.samples,
        keep_keys: args.repair,
        full: args.full,
    };
    let mut report = crate::verify::verify_with(pipeline.clone(), &options)?;
    print!("{}", report.render());
    let mut repaired = None;
    if args.repair && !report.identical() {
        let r = crate::verify::repair::repair(pipeline.clone(), &report)?;
        print!("{}", r.render());
        println!("verifying again");
        report = crate::verify::verify_with(
            pipeline,
            &crate::verify::Options {
                keep_keys: false,
                ..options
            },
        )?;
        print!("{}", report.render());
        repaired = Some(r);
    }
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "tables": report.tables,
            "pipeline": report.pipeline,
            "repair": repaired,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    Ok(if report.identical() {
        println!("identical");
        ExitCode::SUCCESS
    } else {
        println!("the target differs from the source");
        ExitCode::from(1)
    })
}

fn follow(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let options = crate::verify::follow::Options {
        every: args.every,
        rounds: args.rounds,
        samples: args.samples,
    };
    let last = crate::verify::follow::follow(&args.pipeline, &options, |round| {
        print!("{}", round.render());
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_string_pretty(round)?)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
        }
        Ok(())
    })?;
    Ok(if last.persistent() == 0 {
        println!("no persistent difference");
        ExitCode::SUCCESS
    } else {
        println!(
            "{} persistent difference(s): the target keeps differing from the source",
            last.persistent()
        );
        ExitCode::from(1)
    })
}
