//! `[source] type = "mysql"`: a MySQL or MariaDB database, snapshot then
//! binlog change data capture.

use serde::Deserialize;

/// What a zero or partly zero date (`0000-00-00`, `2024-00-10`), which no
/// other database can hold, becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZeroDates {
    /// A null (what MySQL's own `IS NULL` says of a zero date in a
    /// `NOT NULL` column, and Debezium's default).
    #[default]
    Null,
    /// The row goes to the dead letters with the column named.
    DeadLetter,
}

/// Settings of the MySQL/MariaDB source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSourceConfig {
    /// `mysql://user:password@host:port/database`. Tables named without a
    /// database are in this one.
    pub url: String,
    /// A CA certificate (PEM) to verify the server's certificate with:
    /// connections then require TLS. Without it, `?require_ssl=true` in
    /// `url` requires TLS verified against the public web roots.
    #[serde(default)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Tables to copy and follow: `name` (in the URL's database) or
    /// `database.name`. Each needs a primary key.
    pub tables: Vec<String>,
    /// Copy the tables' rows first (a consistent snapshot); false follows
    /// the binlog from its current end only.
    #[serde(default = "yes")]
    pub snapshot: bool,
    /// Rows per snapshot chunk; a resumed snapshot restarts at the chunk
    /// after the last one the sink committed.
    #[serde(default = "chunk_rows")]
    pub chunk_rows: usize,
    /// The server id this reader registers with (it must differ from every
    /// server's and replica's id). Default: derived from the pipeline name.
    #[serde(default)]
    pub server_id: Option<u32>,
    /// `null` (default) or `dead_letter`: what a zero date becomes.
    #[serde(default)]
    pub zero_dates: ZeroDates,
    /// `evolve` (default), `stop` or `dead_letter`, for all tables or per
    /// table, when a table's columns change (`ALTER TABLE`).
    #[serde(default)]
    pub on_schema_change: Option<crate::schema_policy::SchemaPolicy>,
    /// With `on_schema_change` unset or `evolve`: `stop` (default) stops
    /// at a change that loses values (a column retyped narrower, a key
    /// changed), `continue` carries it on.
    #[serde(default)]
    pub schema_changes: crate::sources::postgres::SchemaChanges,
    /// How long a lost connection is retried (with backoff) before the run
    /// stops, in seconds.
    #[serde(default = "reconnect_for_s")]
    pub reconnect_for_s: u64,
    /// Milliseconds a partial batch waits for more changes.
    #[serde(default = "linger_ms")]
    pub linger_ms: u64,
    /// Stop once the binlog's end at the start of streaming is reached
    /// (`sluice run --until-caught-up`).
    #[serde(default)]
    pub until_caught_up: bool,
}

fn yes() -> bool {
    true
}

fn chunk_rows() -> usize {
    50_000
}

fn reconnect_for_s() -> u64 {
    300
}

fn linger_ms() -> u64 {
    5
}

impl MysqlSourceConfig {
    /// The server id from the pipeline name when none is set: a stable
    /// number in 1 000 000..2 000 000 000, away from the small ids servers
    /// are usually given.
    pub fn apply_defaults(&mut self, pipeline: &str) {
        if self.server_id.is_none() {
            // FNV-1a: stable across builds and platforms.
            let mut h: u32 = 0x811c_9dc5;
            for b in pipeline.bytes() {
                h ^= u32::from(b);
                h = h.wrapping_mul(0x0100_0193);
            }
            self.server_id = Some(1_000_000 + h % 1_999_000_000);
        }
    }
}
