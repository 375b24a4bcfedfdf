//! `sluice slot list | drop PIPELINE`: the replication slots a PostgreSQL
//! source keeps on its server. A slot keeps WAL until the pipeline confirms
//! it, also while no run is going, so the end of a migration drops it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Pipeline;
use crate::pg;
use crate::sources::SourceConfig;
use crate::sources::postgres::catalog;

/// Arguments of `sluice slot`.
#[derive(Debug, clap::Args)]
pub struct SlotArgs {
    #[command(subcommand)]
    command: SlotCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SlotCommand {
    /// The logical replication slots of the pipeline's source database:
    /// whether a run holds them, what they confirmed, the WAL they keep.
    List {
        /// The pipeline file (its `[source]` says which server).
        pipeline: PathBuf,
    },
    /// Drop the pipeline's slot (at the end of a migration, or to start
    /// over with `sluice run --reset`); refused while a run holds it.
    Drop {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Also drop the pipeline's publication.
        #[arg(long)]
        publication: bool,
    },
}

fn source_of(
    path: &std::path::Path,
) -> anyhow::Result<crate::sources::postgres::PostgresSourceConfig> {
    let pipeline = Pipeline::load(path)?;
    match pipeline.config.source {
        SourceConfig::Postgres(c) => Ok(c),
        other => anyhow::bail!(
            "`sluice slot` is for PostgreSQL sources; this pipeline reads `{}`",
            other.kind()
        ),
    }
}

pub(super) fn slot(args: SlotArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        SlotCommand::List { pipeline } => {
            let source = source_of(&pipeline)?;
            let mut client = pg::connect(&source.url, "sluice").map_err(anyhow::Error::msg)?;
            let slots = catalog::list_slots(&mut client).map_err(anyhow::Error::msg)?;
            if slots.is_empty() {
                println!("no logical replication slots in this database");
            }
            for s in &slots {
                let mine = if s.name == source.slot {
                    "  (this pipeline)"
                } else {
                    ""
                };
                let holder = match s.active_pid {
                    Some(pid) => format!("in use by server process {pid}"),
                    None => "idle".into(),
                };
                println!(
                    "{}{mine}\n  {holder}, confirmed {}, keeps {} MiB of WAL",
                    s.name,
                    s.confirmed.as_deref().unwrap_or("-"),
                    s.retained_bytes.unwrap_or(0) >> 20
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        SlotCommand::Drop {
            pipeline,
            publication,
        } => {
            let source = source_of(&pipeline)?;
            let mut client = pg::connect(&source.url, "sluice").map_err(anyhow::Error::msg)?;
            match catalog::slot_state(&mut client, &source.slot).map_err(anyhow::Error::msg)? {
                None => println!("replication slot `{}` does not exist", source.slot),
                Some(_) => {
                    catalog::drop_slot(&mut client, &source.slot).map_err(anyhow::Error::msg)?;
                    println!(
                        "dropped replication slot `{}`: the server no longer keeps WAL for it; a later run of this pipeline needs `--reset` (it copies the tables again)",
                        source.slot
                    );
                }
            }
            if publication {
                client
                    .batch_execute(&format!(
                        "DROP PUBLICATION IF EXISTS {}",
                        crate::sql::quote_ident(&source.publication)
                    ))
                    .with_context(|| format!("cannot drop publication `{}`", source.publication))?;
                println!("dropped publication `{}`", source.publication);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
