//! `[sink] type = "postgres"`.

use serde::Deserialize;

use crate::schema_policy::OnSchemaChange;
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
    /// Create missing tables, typed from the records' values (default
    /// true); it also sets the default of `on_schema_change`.
    #[serde(default = "yes")]
    pub create_table: bool,
    /// A record with a field the target table has no column for:
    /// `evolve` adds the column (the default with `create_table`), `stop`
    /// stops the pipeline naming table and column, `dead_letter` refuses the
    /// record with the code `schema_change` (the default without
    /// `create_table`). One policy, or one per table (`{ default = "evolve",
    /// orders = "stop" }`).
    #[serde(default)]
    pub on_schema_change: Option<crate::schema_policy::SchemaPolicy>,
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

impl PostgresSinkConfig {
    /// The schema-change policy for the target table `table`.
    pub fn on_schema_change(&self, table: &str) -> OnSchemaChange {
        crate::schema_policy::for_sql_sink(self.on_schema_change.as_ref(), self.create_table, table)
    }
}
