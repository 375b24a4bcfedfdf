//! PostgreSQL source: a consistent snapshot of the configured tables, then
//! change data capture from a logical replication slot (`pgoutput`).
//!
//! On a first start the source creates the publication (if missing) and
//! the slot, whose exported snapshot it reads the tables in (keyset chunks
//! of `COPY`, in primary-key order), then streams every change committed
//! after the slot's consistent point. Positions are confirmed to the slot
//! only once the sink has committed them (the pipeline tells the source
//! through [`super::SourceFeedback`]).
//!
//! The resume token says where to go on: `snapshot` (table and last key
//! copied) or `stream` (end of the last transaction wholly committed).
//! A snapshot resumed after a crash reads the rest of the tables in a new
//! snapshot and then streams from the slot's original consistent point:
//! replaying changes onto rows read later is absorbed by keyed upserts, so
//! the target converges to the source. Repeats are possible, loss is not.

pub mod catalog;
mod config;
mod ranges;
pub mod records;
pub mod snapshot;
mod stream;

use serde::{Deserialize, Serialize};

pub use config::{PostgresSourceConfig, SchemaChanges};

use super::{Source, SourceContext, SourceError};
use crate::pg::{self, Lsn, TableName};
use catalog::Table;

/// Where a run resumes (the resume token, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "lowercase")]
enum Position {
    /// Copying tables. Tables before `table` (in config order) are done;
    /// rows of `table` with a key after `after` are still to copy.
    Snapshot {
        /// The slot's consistent point: streaming starts there.
        lsn: String,
        /// The table being copied.
        table: String,
        /// The key (text form) of the last row copied.
        after: Option<Vec<String>>,
        /// With `snapshot_workers`: the table's key ranges and how far
        /// each got (`after` is then unused).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ranges: Option<Vec<ranges::RangeProgress>>,
    },
    /// Streaming: every transaction that ended at or before `lsn` is
    /// committed downstream.
    Stream {
        /// End of the last wholly committed transaction.
        lsn: String,
    },
}

impl Position {
    fn token(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The PostgreSQL source.
pub struct PostgresSource {
    config: PostgresSourceConfig,
    names: Vec<TableName>,
    at: String,
}

impl PostgresSource {
    /// Checks the config (the server is contacted by `check` and `run`).
    pub fn new(config: PostgresSourceConfig) -> Result<Self, SourceError> {
        let at = format!("postgres {}", pg::describe_url(&config.url));
        let mut names = Vec::new();
        for t in &config.tables {
            names.push(TableName::parse(t).map_err(|message| SourceError::Server {
                at: at.clone(),
                message: format!("`tables`: {message}"),
            })?);
        }
        if names.is_empty() {
            return Err(SourceError::Server {
                at,
                message: "`tables` is empty: name at least one table".into(),
            });
        }
        if !(1..=32).contains(&config.snapshot_workers) {
            return Err(SourceError::Server {
                at,
                message: format!(
                    "`snapshot_workers` must be between 1 and 32, not {}",
                    config.snapshot_workers
                ),
            });
        }
        if config.chunk_rows == 0 {
            return Err(SourceError::Server {
                at,
                message: "`chunk_rows` must be positive".into(),
            });
        }
        Ok(PostgresSource { config, names, at })
    }

    fn err(&self, message: impl Into<String>) -> SourceError {
        SourceError::Server {
            at: self.at.clone(),
            message: message.into(),
        }
    }

    fn connect(&self) -> Result<postgres::Client, SourceError> {
        pg::connect(&self.config.url, "sluice").map_err(|m| self.err(m))
    }

    /// Connects and checks everything a run needs; returns the tables.
    fn preflight(&self, client: &mut postgres::Client) -> Result<Vec<Table>, SourceError> {
        let problems = catalog::preflight(client, &self.config);
        if !problems.is_empty() {
            return Err(self.err(problems.join("; ")));
        }
        self.names
            .iter()
            .map(|n| catalog::describe_table(client, n).map_err(|m| self.err(m)))
            .collect()
    }
}

impl Source for PostgresSource {
    fn describe(&self) -> String {
        format!(
            "{} ({})",
            self.at,
            self.names
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    fn size_hint(&mut self) -> Option<u64> {
        // Rows to copy, from the planner's estimate (exact counts would
        // scan every table before the first row moves).
        let mut client = self.connect().ok()?;
        let mut total = 0u64;
        for n in &self.names {
            let row = client
                .query_opt(
                    "SELECT greatest(c.reltuples, 0)::int8 FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = $1 AND c.relname = $2",
                    &[&n.schema, &n.name],
                )
                .ok()??;
            let est: i64 = row.get(0);
            total += est.max(0) as u64;
        }
        (self.config.snapshot && total > 0).then_some(total)
    }

    fn check(&mut self) -> Result<(), SourceError> {
        let mut client = self.connect()?;
        self.preflight(&mut client).map(|_| ())
    }

    fn run(
        &mut self,
        resume: Option<&str>,
        ctx: &mut SourceContext<'_>,
    ) -> Result<(), SourceError> {
        let mut client = self.connect()?;
        let tables = self.preflight(&mut client)?;
        let declared = ctx.feedback().declared_types();
        for t in &tables {
            declared.declare(&t.name.stream(), t.declared_columns());
        }
        catalog::ensure_publication(&mut client, &self.config.publication, &tables)
            .map_err(|m| self.err(m))?;
        let position =
            match resume {
                None => None,
                Some(t) => Some(serde_json::from_str::<Position>(t).map_err(|_| {
                    SourceError::Checkpoint {
                        path: self.at.clone().into(),
                        message: format!("the checkpoint `{t}` is not a PostgreSQL position"),
                    }
                })?),
            };
        let slot = catalog::slot_state(&mut client, &self.config.slot).map_err(|m| self.err(m))?;
        let start_lsn = match position {
            None => {
                // A first start (or --reset): a new slot, read at its
                // exported snapshot.
                if slot.is_some() {
                    tracing::info!(slot = %self.config.slot, "dropping the slot of an earlier run: starting from the beginning");
                    catalog::drop_slot(&mut client, &self.config.slot).map_err(|m| self.err(m))?;
                }
                let created = stream::create_slot(&self.config).map_err(|m| self.err(m))?;
                tracing::info!(slot = %self.config.slot, lsn = %created.lsn, "created the replication slot");
                if self.config.snapshot {
                    let copy = snapshot::Copy {
                        source: self,
                        tables: &tables,
                        lsn: created.lsn,
                    };
                    if self.config.snapshot_workers > 1 {
                        copy.run_parallel(Some(created.keep_alive), 0, None, ctx)?;
                    } else {
                        copy.run(Some(created.keep_alive), 0, None, ctx)?;
                    }
                } else {
                    drop(created.keep_alive);
                }
                created.lsn
            }
            Some(Position::Snapshot {
                lsn,
                table,
                after,
                ranges,
            }) => {
                let lsn: Lsn = lsn.parse().map_err(|m: String| self.err(m))?;
                self.require_slot(slot.as_ref())?;
                let index = tables
                    .iter()
                    .position(|t| t.name.to_string() == table || t.name.stream() == table)
                    .ok_or_else(|| SourceError::Checkpoint {
                        path: self.at.clone().into(),
                        message: format!("the snapshot was copying table `{table}`, which is no longer in `tables`"),
                    })?;
                tracing::info!(table = %table, "resuming the snapshot in a new snapshot; changes since the slot's start are replayed after it");
                let copy = snapshot::Copy {
                    source: self,
                    tables: &tables,
                    lsn,
                };
                match ranges {
                    Some(ranges) => copy.run_parallel(None, index, Some(ranges), ctx)?,
                    // A sequential copy resumed with workers: its rest is one range.
                    None if self.config.snapshot_workers > 1 => copy.run_parallel(
                        None,
                        index,
                        Some(vec![ranges::RangeProgress {
                            after,
                            until: None,
                            done: false,
                        }]),
                        ctx,
                    )?,
                    None => copy.run(None, index, after, ctx)?,
                }
                lsn
            }
            Some(Position::Stream { lsn }) => {
                let lsn: Lsn = lsn.parse().map_err(|m: String| self.err(m))?;
                self.require_slot(slot.as_ref())?;
                lsn
            }
        };
        if ctx.should_stop() {
            return Ok(());
        }
        // The snapshot is over (or was not wanted): from here on the
        // position is the stream's.
        if ctx
            .flush(
                &Position::Stream {
                    lsn: start_lsn.to_string(),
                }
                .token(),
            )
            .is_err()
        {
            return Ok(());
        }
        drop(client);
        stream::Streamer::new(self, &tables, start_lsn).run(ctx)
    }
}

impl PostgresSource {
    fn require_slot(&self, slot: Option<&(String, String)>) -> Result<(), SourceError> {
        match slot {
            Some((plugin, _)) if plugin == "pgoutput" => Ok(()),
            Some((plugin, _)) => Err(self.err(format!(
                "replication slot `{}` uses the output plugin `{plugin}`, not `pgoutput`: choose another `slot`",
                self.config.slot
            ))),
            None => Err(SourceError::Checkpoint {
                path: self.at.clone().into(),
                message: format!(
                    "replication slot `{}` no longer exists, so the changes since the checkpoint cannot be read",
                    self.config.slot
                ),
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
