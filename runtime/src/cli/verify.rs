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
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Re-sync what differs: missing and different rows written again from
    /// the source through the plugins, extra rows deleted; then verify
    /// again.
    #[arg(long)]
    repair: bool,
}

/// Exit 0 when identical, 1 when not.
pub(super) fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let pipeline = Pipeline::load(&args.pipeline)?;
    let mut report =
        crate::verify::verify_keeping_keys(pipeline.clone(), args.samples, args.repair)?;
    print!("{}", report.render());
    let mut repaired = None;
    if args.repair && !report.identical() {
        let r = crate::verify::repair::repair(pipeline.clone(), &report)?;
        print!("{}", r.render());
        println!("verifying again");
        report = crate::verify::verify(pipeline, args.samples)?;
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
