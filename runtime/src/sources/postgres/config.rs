//! `[source] type = "postgres"`.

use serde::Deserialize;

/// What to do when a table's columns change under a running sync in a way
/// Sluice cannot carry on its own (a key change, a type changed to another
/// kind). Added and dropped columns and widened types are always carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaChanges {
    /// Stop the pipeline with a message naming the table and column; the
    /// position stays before the change (default).
    #[default]
    Stop,
    /// Log the change and carry on (after the target and the plugins were
    /// adapted to it).
    Continue,
}

/// Reads PostgreSQL tables: a consistent snapshot of their rows, then every
/// change (logical replication with the built-in `pgoutput` plugin).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceConfig {
    /// Connection string: `postgres://user:password@host:port/database`
    /// (`${VAR}` is replaced from the environment). The user needs the
    /// `REPLICATION` attribute and `SELECT` on the tables; creating the
    /// publication needs ownership of the tables (or create it beforehand).
    pub url: String,
    /// The tables: `table` (schema `public`) or `schema.table`. Each needs
    /// a primary key.
    pub tables: Vec<String>,
    /// The logical replication slot (default `sluice_PIPELINE`).
    #[serde(default)]
    pub slot: String,
    /// The publication (default `sluice_PIPELINE`); created for `tables` if
    /// missing.
    #[serde(default)]
    pub publication: String,
    /// Copy the tables' current rows before streaming changes (default
    /// true). With false, only changes made after the first start are read.
    #[serde(default = "yes")]
    pub snapshot: bool,
    /// Rows per snapshot query (default 50000).
    #[serde(default = "chunk_rows")]
    pub chunk_rows: usize,
    /// Copy each table in this many primary-key ranges at once, each on a
    /// connection of its own, all in the same snapshot (default 1, at most
    /// 32). Each range's progress is checkpointed, so a restart goes on
    /// where each range was.
    #[serde(default = "snapshot_workers")]
    pub snapshot_workers: usize,
    /// How long to wait for more changes before handing over a partial
    /// batch, in milliseconds (default 5): the latency floor of the stream.
    #[serde(default = "linger_ms")]
    pub linger_ms: u64,
    /// `stop` (default) or `continue` on a schema change Sluice cannot
    /// carry by itself, under `on_schema_change = "evolve"`.
    #[serde(default)]
    pub schema_changes: SchemaChanges,
    /// What a change to a table's columns during the stream does:
    /// `evolve` (default: added and dropped columns and widened types flow
    /// on; a key change or a type changed to another kind stops unless
    /// `schema_changes = "continue"`), `stop` (any change stops the
    /// pipeline before it, naming table and column) or `dead_letter` (the
    /// table's rows after the change go to the dead-letter sink with the
    /// code `schema_change` until the next run; the other tables flow).
    /// One policy, or one per table (`{ default = "evolve", orders = "stop" }`).
    #[serde(default)]
    pub on_schema_change: Option<crate::schema_policy::SchemaPolicy>,
    /// End the run once the target has caught up with the source (every
    /// change committed before the stream started is written) instead of
    /// streaming forever. `sluice run --until-caught-up` sets it.
    #[serde(default)]
    pub until_caught_up: bool,
    /// Warn (in the log, `/status`, metrics and the summary) when the
    /// replication slot keeps more than this many MiB of WAL on the server
    /// (default 1024). A slot keeps WAL until the pipeline confirms it, also
    /// while no run is going: drop it at the end of a migration
    /// (`sluice slot drop PIPELINE`).
    #[serde(default = "slot_warn_mb")]
    pub slot_warn_mb: u64,
}

fn slot_warn_mb() -> u64 {
    1024
}

fn yes() -> bool {
    true
}

fn chunk_rows() -> usize {
    50_000
}

fn snapshot_workers() -> usize {
    1
}

fn linger_ms() -> u64 {
    5
}

impl PostgresSourceConfig {
    /// Default slot and publication names from the pipeline name.
    pub fn apply_defaults(&mut self, pipeline: &str) {
        let base: String = format!("sluice_{pipeline}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(63)
            .collect();
        if self.slot.is_empty() {
            self.slot = base.clone();
        }
        if self.publication.is_empty() {
            self.publication = base;
        }
    }
}
