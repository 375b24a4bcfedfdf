//! `[sink] type = "sqlite"`.

use std::path::PathBuf;

use serde::Deserialize;

use crate::schema_policy::OnSchemaChange;
use crate::sinks::WriteMode;

/// Writes records into a SQLite database: the embedded default target.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSinkConfig {
    /// The database file, relative to the pipeline file (created if absent).
    pub path: PathBuf,
    /// The table; default: each record's stream name.
    pub table: Option<String>,
    /// `insert` or `upsert` (default: `upsert` when `key` is set, else `insert`).
    pub mode: Option<WriteMode>,
    /// The key columns for `upsert` and deletes.
    #[serde(default)]
    pub key: Vec<String>,
    /// Create a missing table from the first record (default true); it
    /// also sets the default of `on_schema_change`.
    #[serde(default = "yes")]
    pub create_table: bool,
    /// A record with a field the table has no column for: `evolve` adds
    /// the column (the default with `create_table`), `stop` stops the
    /// pipeline naming table and column, `dead_letter` refuses the record
    /// with the code `schema_change` (the default without `create_table`).
    /// One policy, or one per table (`{ default = "evolve", orders = "stop" }`).
    #[serde(default)]
    pub on_schema_change: Option<crate::schema_policy::SchemaPolicy>,
}

impl SqliteSinkConfig {
    /// The schema-change policy for the table `table`.
    pub fn on_schema_change(&self, table: &str) -> OnSchemaChange {
        crate::schema_policy::for_sql_sink(self.on_schema_change.as_ref(), self.create_table, table)
    }
}

fn yes() -> bool {
    true
}
