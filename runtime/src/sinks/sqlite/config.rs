//! `[sink] type = "sqlite"`.

use std::path::PathBuf;

use serde::Deserialize;

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
    /// Create a missing table from the first record, and add columns for
    /// new fields (default true).
    #[serde(default = "yes")]
    pub create_table: bool,
}

fn yes() -> bool {
    true
}
