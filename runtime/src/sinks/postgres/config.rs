//! `[sink] type = "postgres"`.

use serde::Deserialize;

use crate::sinks::WriteMode;

/// Writes records into PostgreSQL tables: batched, one transaction per
/// batch, upserts and deletes by key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSinkConfig {
    /// Connection string: `postgres://user:password@host:port/database`
    /// (`${VAR}` is replaced from the environment).
    pub url: String,
    /// The table (`table` or `schema.table`); default: each record's stream
    /// name (`orders`, `crm.orders`).
    pub table: Option<String>,
    /// The schema of tables named without one (default `public`).
    #[serde(default = "public")]
    pub schema: String,
    /// `upsert` (default when a key is known) or `insert`.
    pub mode: Option<WriteMode>,
    /// Key columns; default: the table's primary key, or for a table Sluice
    /// creates, the key the source names (the `sluice-key` header).
    #[serde(default)]
    pub key: Vec<String>,
    /// Create missing tables and add missing columns, typed from the
    /// records' values (default true).
    #[serde(default = "yes")]
    pub create_table: bool,
    /// How long to keep retrying while the server is unreachable before the
    /// pipeline stops, in seconds (default 300). Nothing is lost either
    /// way: the batch is written again after a restart.
    #[serde(default = "retry_timeout_s")]
    pub retry_timeout_s: u64,
}

fn public() -> String {
    "public".into()
}

fn yes() -> bool {
    true
}

fn retry_timeout_s() -> u64 {
    300
}
