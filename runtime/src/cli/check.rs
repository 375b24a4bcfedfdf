//! `sluice check PIPELINE`: every problem at once.

use std::path::Path;
use std::process::ExitCode;

use crate::config::Pipeline;
use crate::pipeline::dead_letter_config;
use crate::plugin::{Candidate, PluginHost, plugin_specs};
use crate::{sinks, sources};

pub(super) fn check(path: &Path) -> anyhow::Result<ExitCode> {
    let pipeline = match Pipeline::load(path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("FAIL  {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut problems = 0;
    let mut report = |what: String, result: Result<String, String>| match result {
        Ok(detail) => println!("ok    {what}{detail}"),
        Err(e) => {
            problems += 1;
            println!("FAIL  {what}: {e}");
        }
    };
    report(
        format!("pipeline `{}` ({})", pipeline.name, path.display()),
        Ok(String::new()),
    );
    let source = sources::build(&pipeline.config.source);
    match source {
        Ok(mut s) => {
            let desc = s.describe();
            report(
                format!("source {desc}"),
                s.check().map(|()| String::new()).map_err(|e| e.to_string()),
            );
        }
        Err(e) => report(
            format!("source {}", pipeline.config.source.kind()),
            Err(e.to_string()),
        ),
    }
    match PluginHost::new(Some(pipeline.cache_dir.clone())) {
        Ok(host) => {
            for spec in plugin_specs(&pipeline) {
                let name = spec.name.clone();
                let grants = spec.grants.describe();
                // The path a run and a reload take: load, canary, start.
                let result = Candidate::build(&host, &spec).map(|c| {
                    format!(
                        " ({}, {} KiB, grants: {grants})",
                        c.plugin.version(),
                        c.plugin.size / 1024
                    )
                });
                report(
                    format!("transform `{name}`"),
                    result.map_err(|e| e.to_string()),
                );
            }
        }
        Err(e) => report("plugin host".into(), Err(e.to_string())),
    }
    for (what, cfg) in [
        ("sink", pipeline.config.sink.clone()),
        ("dead-letter sink", dead_letter_config(&pipeline)),
    ] {
        let result = sinks::build(&cfg)
            .map(|s| format!(" {}", s.describe()))
            .map_err(|e| e.to_string());
        report(what.to_string(), result);
    }
    if problems == 0 {
        println!("pipeline is ready");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{problems} problem(s)");
        Ok(ExitCode::FAILURE)
    }
}
