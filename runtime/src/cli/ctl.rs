//! `sluice ctl`: talk to a running pipeline's admin API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::admin::guard::AdminFile;
use crate::config::Pipeline;

/// Arguments of `sluice ctl`.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// The running pipeline's file: the address of its admin API and the
    /// run's token are read from its state directory.
    #[arg(long, global = true)]
    pipeline: Option<PathBuf>,
    /// The admin API's address, when not read from `--pipeline`
    /// (`sluice run --admin ADDR`; default 127.0.0.1:9464).
    #[arg(long, global = true)]
    admin: Option<String>,
    /// The run's token, when not read from `--pipeline` (it is in
    /// `STATE_DIR/PIPELINE.admin.json`); also `SLUICE_ADMIN_TOKEN`.
    #[arg(long, global = true)]
    token: Option<String>,
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
    /// Print the console's address, with the run's token in its fragment
    /// (the part after `#`, which the browser keeps to itself): open it in
    /// a browser on this machine. The URL is a credential: the token
    /// lets whoever holds it stop or change the run.
    Open,
}

/// The address and token to use.
fn target(args: &CtlArgs) -> anyhow::Result<(String, Option<String>)> {
    let from_file = match &args.pipeline {
        None => None,
        Some(p) => {
            let pipeline = Pipeline::load(p)?;
            let path = AdminFile::path(&pipeline.state_dir, &pipeline.name);
            match AdminFile::read(&path) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                    "cannot reach the admin API of pipeline `{}`: no `{}`, so it is not running with `--admin`",
                    pipeline.name,
                    path.display()
                ),
                Err(e) => bail!("cannot read `{}`: {e}", path.display()),
            }
        }
    };
    let addr = args
        .admin
        .clone()
        .or_else(|| from_file.as_ref().map(|f| f.addr.clone()))
        .unwrap_or_else(|| "127.0.0.1:9464".into());
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var("SLUICE_ADMIN_TOKEN").ok())
        .or(from_file.map(|f| f.token));
    Ok((addr, token))
}

pub(super) fn ctl(args: CtlArgs) -> anyhow::Result<ExitCode> {
    let (admin, token) = target(&args)?;
    let base = format!("http://{admin}");
    let (method, path) = match &args.command {
        CtlCommand::Status => ("GET", "/status".to_string()),
        CtlCommand::Metrics => ("GET", "/metrics".to_string()),
        CtlCommand::Reload => ("POST", "/reload".to_string()),
        CtlCommand::Rollback { transform } => ("POST", format!("/rollback/{transform}")),
        CtlCommand::Promote { transform } => ("POST", format!("/promote/{transform}")),
        CtlCommand::Pause => ("POST", "/pause".to_string()),
        CtlCommand::Resume => ("POST", "/resume".to_string()),
        CtlCommand::Stop => ("POST", "/stop".to_string()),
        CtlCommand::Open => {
            let Some(token) = token else {
                bail!(
                    "no token for the console: give `--pipeline FILE` (the token is read from its state directory), `--token` or SLUICE_ADMIN_TOKEN"
                );
            };
            println!("{}", crate::admin::console_url(&admin, Some(&token)));
            return Ok(ExitCode::SUCCESS);
        }
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into();
    let url = format!("{base}{path}");
    let auth = token.map(|t| format!("Bearer {t}"));
    let response = if method == "GET" {
        let mut r = agent.get(&url);
        if let Some(a) = &auth {
            r = r.header("Authorization", a);
        }
        r.call()
    } else {
        let mut r = agent.post(&url);
        if let Some(a) = &auth {
            r = r.header("Authorization", a);
        }
        r.send_empty()
    }
    .with_context(|| {
        format!("cannot reach the admin API at {base} (is `sluice run --admin {admin}` running?)")
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
