//! `[source] type = "sqlite"`.

use std::path::PathBuf;

use serde::Deserialize;

/// Reads a SQLite table (in rowid order, resumable by rowid) or the rows of
/// a query (resumable by row count: the query must return rows in a stable
/// order, so give it an `ORDER BY`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSourceConfig {
    /// The database file, relative to the pipeline file.
    pub path: PathBuf,
    /// A table to read. Exactly one of `table` and `query`.
    pub table: Option<String>,
    /// A query to read.
    pub query: Option<String>,
    /// Stream name of the records (default: the table name, or `query`).
    pub stream: Option<String>,
}
