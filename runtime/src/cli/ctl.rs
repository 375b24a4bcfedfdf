//! `sluice ctl`: talk to a running pipeline's admin API.

use std::process::ExitCode;

use anyhow::{Context, bail};

/// Arguments of `sluice ctl`.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// The admin API of the running pipeline (`sluice run --admin ADDR`).
    #[arg(long, default_value = "127.0.0.1:9464", global = true)]
    admin: String,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Debug, clap::Subcommand)]
enum CtlCommand {
    /// Counters, pause state, each transform's versions and last refusal.
    Status,
    /// Prometheus metrics.
    Metrics,
    /// Reload the pipeline file and every plugin (like SIGHUP).
    Reload,
    /// Make the previous version of a transform live again.
    Rollback {
        /// The transform's name.
        transform: String,
    },
    /// Make the shadow of a transform live (at its next batch).
    Promote {
        /// The transform's name.
        transform: String,
    },
    /// Hold back new batches from the source.
    Pause,
    /// Let new batches through again.
    Resume,
    /// Stop gracefully (like SIGTERM).
    Stop,
}

pub(super) fn ctl(args: CtlArgs) -> anyhow::Result<ExitCode> {
    let base = format!("http://{}", args.admin);
    let (method, path) = match &args.command {
        CtlCommand::Status => ("GET", "/status".to_string()),
        CtlCommand::Metrics => ("GET", "/metrics".to_string()),
        CtlCommand::Reload => ("POST", "/reload".to_string()),
        CtlCommand::Rollback { transform } => ("POST", format!("/rollback/{transform}")),
        CtlCommand::Promote { transform } => ("POST", format!("/promote/{transform}")),
        CtlCommand::Pause => ("POST", "/pause".to_string()),
        CtlCommand::Resume => ("POST", "/resume".to_string()),
        CtlCommand::Stop => ("POST", "/stop".to_string()),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into();
    let url = format!("{base}{path}");
    let response = if method == "GET" {
        agent.get(&url).call()
    } else {
        agent.post(&url).send_empty()
    }
    .with_context(|| {
        format!(
            "cannot reach the admin API at {base} (is `sluice run --admin {}` running?)",
            args.admin
        )
    })?;
    let status = response.status();
    let body = response
        .into_body()
        .read_to_string()
        .context("cannot read the admin API's answer")?;
    let pretty = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(body);
    println!("{}", pretty.trim_end());
    if !status.is_success() {
        bail!("the admin API answered {status}");
    }
    Ok(ExitCode::SUCCESS)
}
