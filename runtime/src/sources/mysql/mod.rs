//! `[source] type = "mysql"`: a MySQL or MariaDB database. A consistent
//! snapshot of the listed tables in primary-key order (resumable at any
//! batch), then the ROW binlog from the snapshot's position: inserts,
//! updates (with the old key when the key changed), deletes and
//! truncates, checkpointed at transaction ends once the sink committed.
//!
//! The protocol and the binlog's events and row images are read by
//! `mysql_async` (with `mysql_common`'s binlog decoder); this module maps
//! tables, values, positions and schema changes. MariaDB's own GTID events
//! (which `mysql_common` does not know) are read here.

pub mod binlog;
pub mod catalog;
mod config;
mod rows;
pub mod snapshot;
pub mod values;

use serde::{Deserialize, Serialize};

pub use config::{MysqlSourceConfig, ZeroDates};

use super::{Source, SourceContext, SourceError};
use catalog::{Server, Table};

/// A point in the binlog: file and offset, and on MariaDB the GTID
/// position (one GTID per replication domain) at the same point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BinlogPos {
    /// The binlog file (`binlog.000042`).
    pub file: String,
    /// The offset of the next event in it.
    pub pos: u64,
    /// MariaDB's GTID position (`0-1-1234,1-2-7`), empty when unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gtid: String,
}

impl BinlogPos {
    /// Orders positions: by the file's sequence number, then the offset.
    pub fn at_or_after(&self, other: &BinlogPos) -> bool {
        let seq = |f: &str| -> u64 {
            f.rsplit('.')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        (seq(&self.file), self.pos) >= (seq(&other.file), other.pos)
    }
}

impl std::fmt::Display for BinlogPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)?;
        if !self.gtid.is_empty() {
            write!(f, " (GTID {})", self.gtid)?;
        }
        Ok(())
    }
}

/// One value of a key, kept in a checkpoint to resume a snapshot after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v", rename_all = "lowercase")]
pub enum KeyPart {
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A float.
    Float(f32),
    /// A double.
    Double(f64),
    /// Bytes (text keys too), base64.
    Bytes(String),
    /// A date and time.
    Date(u16, u8, u8, u8, u8, u8, u32),
    /// A time.
    Time(bool, u32, u8, u8, u8, u32),
}

impl KeyPart {
    /// The checkpoint form of a protocol value.
    pub fn of(v: &mysql_async::Value) -> Option<KeyPart> {
        use base64::Engine;
        use mysql_async::Value as My;
        Some(match v {
            My::NULL => return None,
            My::Int(i) => KeyPart::Int(*i),
            My::UInt(u) => KeyPart::UInt(*u),
            My::Float(f) => KeyPart::Float(*f),
            My::Double(d) => KeyPart::Double(*d),
            My::Bytes(b) => KeyPart::Bytes(base64::engine::general_purpose::STANDARD.encode(b)),
            My::Date(a, b, c, d, e, f, g) => KeyPart::Date(*a, *b, *c, *d, *e, *f, *g),
            My::Time(a, b, c, d, e, f) => KeyPart::Time(*a, *b, *c, *d, *e, *f),
        })
    }

    /// The protocol value, for a query parameter.
    pub fn value(&self) -> Result<mysql_async::Value, String> {
        use base64::Engine;
        use mysql_async::Value as My;
        Ok(match self {
            KeyPart::Int(i) => My::Int(*i),
            KeyPart::UInt(u) => My::UInt(*u),
            KeyPart::Float(f) => My::Float(*f),
            KeyPart::Double(d) => My::Double(*d),
            KeyPart::Bytes(b) => My::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|e| format!("a key in the checkpoint is not base64: {e}"))?,
            ),
            KeyPart::Date(a, b, c, d, e, f, g) => My::Date(*a, *b, *c, *d, *e, *f, *g),
            KeyPart::Time(a, b, c, d, e, f) => My::Time(*a, *b, *c, *d, *e, *f),
        })
    }
}

/// Where a run stopped: copying a table (after a key), or following the
/// binlog. The snapshot phase keeps the binlog position the changes are
/// read from once every table is copied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "lowercase")]
pub enum Position {
    /// Copying `table`; the rows up to `after` (its key) are handed on.
    Snapshot {
        /// Where the changes are read from after the snapshot.
        binlog: BinlogPos,
        /// The table being copied (`database.name`).
        table: String,
        /// The key of the last row handed on; none: from the start.
        after: Option<Vec<KeyPart>>,
    },
    /// Following the binlog: every change before `binlog` is handed on.
    Stream {
        /// The end of the last transaction handed on.
        binlog: BinlogPos,
    },
}

impl Position {
    /// The checkpoint token.
    pub fn token(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The parts of a `mysql://` URL worth showing (never the password).
pub fn describe_url(url: &str) -> String {
    match mysql_async::Opts::from_url(url) {
        Ok(o) => format!(
            "{}@{}:{}/{}",
            o.user().unwrap_or("?"),
            o.ip_or_hostname(),
            o.tcp_port(),
            o.db_name().unwrap_or("")
        ),
        Err(_) => "(unparsable url)".into(),
    }
}

/// What went wrong talking to MySQL, in words that say what to do.
pub fn explain(e: &mysql_async::Error, at: &str) -> String {
    use mysql_async::{DriverError, Error, IoError};
    match e {
        Error::Server(s) if s.code == 1045 => format!(
            "MySQL at {at} refused the user and password ({}): check `url`",
            s.message
        ),
        Error::Server(s) if s.code == 1049 => {
            format!("MySQL at {at}: {} (the database in `url`)", s.message)
        }
        Error::Server(s) => format!("MySQL at {at}: error {}: {}", s.code, s.message),
        Error::Io(IoError::Io(io)) if is_tls(io) => format!(
            "TLS with MySQL at {at} failed: {io} (is `tls_ca` the CA that signed the server's certificate, for the host in `url`?)"
        ),
        Error::Io(IoError::Io(io)) => {
            format!("cannot reach MySQL at {at}: {io} (is the server running and listening there?)")
        }
        Error::Io(IoError::Tls(tls)) => format!(
            "TLS with MySQL at {at} failed: {tls} (is `tls_ca` the CA that signed the server's certificate, for the host in `url`?)"
        ),
        Error::Driver(DriverError::ConnectionClosed) => {
            format!("MySQL at {at} closed the connection")
        }
        other => format!("MySQL at {at}: {other}"),
    }
}

/// An I/O error that is rustls refusing the handshake.
fn is_tls(io: &std::io::Error) -> bool {
    io.get_ref()
        .is_some_and(|e| e.downcast_ref::<rustls::Error>().is_some())
}

/// True for errors after which a new connection may succeed (the server
/// restarted, the network dropped): the stream reconnects.
pub fn is_transient(e: &mysql_async::Error) -> bool {
    use mysql_async::{DriverError, Error, IoError};
    match e {
        // A certificate the CA does not vouch for stays so.
        Error::Io(IoError::Io(io)) => !is_tls(io),
        Error::Driver(DriverError::ConnectionClosed) => true,
        // Server shutdown in progress, lost connection, too many connections.
        Error::Server(s) => matches!(s.code, 1053 | 2013 | 1040 | 1927),
        _ => false,
    }
}

/// The MySQL/MariaDB source.
pub struct MysqlSource {
    config: MysqlSourceConfig,
    opts: mysql_async::Opts,
    /// `(database, table)` pairs, as listed.
    names: Vec<(String, String)>,
    at: String,
}

impl MysqlSource {
    /// Checks the settings; connects only when run.
    pub fn new(mut config: MysqlSourceConfig) -> Result<Self, SourceError> {
        let at = format!("mysql {}", describe_url(&config.url));
        let err = |m: String| SourceError::Server {
            at: at.clone(),
            message: m,
        };
        let mut opts = mysql_async::Opts::from_url(&config.url)
            .map_err(|e| err(format!("`url` is not a mysql:// URL: {e}")))?;
        if let Some(ca) = &config.tls_ca {
            if !ca.is_file() {
                return Err(err(format!(
                    "`tls_ca` `{}` is not a file (a PEM CA certificate)",
                    ca.display()
                )));
            }
            // Every connection (catalog, snapshot, binlog) verifies the
            // server against this CA only.
            let ssl = mysql_async::SslOpts::default()
                .with_root_certs(vec![ca.clone().into()])
                .with_disable_built_in_roots(true);
            opts = mysql_async::OptsBuilder::from_opts(opts)
                .ssl_opts(Some(ssl))
                .into();
        }
        if config.tables.is_empty() {
            return Err(err("`tables` is empty: name at least one table".into()));
        }
        if config.chunk_rows == 0 {
            return Err(err("`chunk_rows` must be positive".into()));
        }
        if config.server_id.is_none() {
            config.apply_defaults("sluice");
        }
        let default_db = opts.db_name().map(str::to_string);
        let mut names = Vec::new();
        for t in &config.tables {
            let (db, name) = match t.split_once('.') {
                Some((d, n)) => (d.to_string(), n.to_string()),
                None => match &default_db {
                    Some(d) => (d.clone(), t.clone()),
                    None => {
                        return Err(err(format!(
                            "table `{t}` names no database and `url` has none: write `database.{t}` or end the URL with `/database`"
                        )));
                    }
                },
            };
            if db.is_empty() || name.is_empty() {
                return Err(err(format!("`{t}` is not a table name")));
            }
            names.push((db, name));
        }
        Ok(MysqlSource {
            config,
            opts,
            names,
            at,
        })
    }

    fn err(&self, message: impl Into<String>) -> SourceError {
        SourceError::Server {
            at: self.at.clone(),
            message: message.into(),
        }
    }

    fn runtime(&self) -> Result<tokio::runtime::Runtime, SourceError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| self.err(format!("cannot start the client runtime: {e}")))
    }

    fn server_id(&self) -> u32 {
        self.config.server_id.unwrap_or(1_000_001)
    }

    /// A new connection, with a clear error.
    pub async fn connect(&self) -> Result<mysql_async::Conn, SourceError> {
        let opts = mysql_async::OptsBuilder::from_opts(self.opts.clone())
            .prefer_socket(false)
            .wait_timeout(Some(28_800));
        mysql_async::Conn::new(opts)
            .await
            .map_err(|e| self.err(explain(&e, &describe_url(&self.config.url))))
    }

    /// The stream name of a table: bare in the URL's database.
    fn stream_of(&self, db: &str, name: &str) -> String {
        if self.opts.db_name() == Some(db) {
            name.to_string()
        } else {
            format!("{db}.{name}")
        }
    }

    /// Preflight and the tables' descriptions.
    async fn prepare(
        &self,
        conn: &mut mysql_async::Conn,
    ) -> Result<(Server, Vec<Table>), SourceError> {
        let server = catalog::preflight(conn, self.server_id())
            .await
            .map_err(|problems| self.err(problems.join("; ")))?;
        let tables = self.describe_tables(conn, server.mariadb).await?;
        Ok((server, tables))
    }

    async fn describe_tables(
        &self,
        conn: &mut mysql_async::Conn,
        mariadb: bool,
    ) -> Result<Vec<Table>, SourceError> {
        let mut tables = Vec::with_capacity(self.names.len());
        for (db, name) in &self.names {
            let t = catalog::describe(conn, db, name, self.stream_of(db, name), mariadb)
                .await
                .map_err(|m| self.err(m))?;
            tables.push(t);
        }
        Ok(tables)
    }

    /// The binlog's current end.
    async fn master_position(
        &self,
        conn: &mut mysql_async::Conn,
        mariadb: bool,
    ) -> Result<BinlogPos, SourceError> {
        use mysql_async::prelude::Queryable;
        let row: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
            Ok(r) => r,
            // MySQL 8.4 renamed it.
            Err(_) => conn
                .query_first("SHOW BINARY LOG STATUS")
                .await
                .map_err(|e| self.err(format!("cannot read the binlog position: {e}")))?,
        };
        let row = row.ok_or_else(|| {
            self.err("the server reports no binlog position (SHOW MASTER STATUS is empty): turn `log_bin` on")
        })?;
        let file: String = row.get(0).unwrap_or_default();
        let pos: u64 = row.get(1).unwrap_or(4);
        let gtid = if mariadb {
            conn.query_first::<String, _>("SELECT @@gtid_binlog_pos")
                .await
                .ok()
                .flatten()
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(BinlogPos { file, pos, gtid })
    }
}

/// Reads every row of the tables of `config` in one consistent read, as
/// the snapshot hands them on (`sluice verify`). Rows the source would
/// dead-letter (zero dates under `zero_dates = "dead_letter"`, text not
/// valid in its character set) are left out and counted in the answer.
/// Returns the tables' streams and that count.
///
/// The client runs on a thread of its own and hands rows over a bounded
/// channel, so `each` may use clients that run their own runtime (the
/// PostgreSQL target's).
pub fn read_all(
    config: &MysqlSourceConfig,
    each: &mut dyn FnMut(sluice_codec::Record<'_>) -> Result<(), String>,
) -> Result<(Vec<String>, u64), String> {
    let source = MysqlSource::new(config.clone()).map_err(|e| e.to_string())?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<sluice_codec::Record<'static>>(4096);
    let reader = std::thread::spawn(move || -> Result<(Vec<String>, u64), String> {
        let rt = source.runtime().map_err(|e| e.to_string())?;
        rt.block_on(async {
            let mut conn = source.connect().await.map_err(|e| e.to_string())?;
            let version: Option<String> = {
                use mysql_async::prelude::Queryable;
                conn.query_first("SELECT @@version")
                    .await
                    .map_err(|e| explain(&e, &describe_url(&source.config.url)))?
            };
            let mariadb = version.is_some_and(|v| v.to_ascii_lowercase().contains("mariadb"));
            let tables = source
                .describe_tables(&mut conn, mariadb)
                .await
                .map_err(|e| e.to_string())?;
            drop(conn);
            let mut left_out = 0u64;
            snapshot::read_tables(&source, &tables, mariadb, &mut |rec, bad| {
                if bad.is_some() {
                    left_out += 1;
                    return Ok(());
                }
                tx.send(rec.into_owned())
                    .map_err(|_| "verify stopped reading".to_string())
            })
            .await
            .map_err(|e| e.to_string())?;
            Ok((tables.into_iter().map(|t| t.stream).collect(), left_out))
        })
    });
    let mut failed = None;
    for rec in rx.iter() {
        if let Err(e) = each(rec) {
            failed = Some(e);
            break;
        }
    }
    // Dropping the receiver ends the reader's sends.
    drop(rx);
    let read = reader
        .join()
        .map_err(|_| "the MySQL reader thread panicked".to_string())?;
    if let Some(e) = failed {
        return Err(e);
    }
    read
}

impl Source for MysqlSource {
    fn describe(&self) -> String {
        format!(
            "{} ({})",
            self.at,
            self.names
                .iter()
                .map(|(d, n)| format!("{d}.{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    fn size_hint(&mut self) -> Option<u64> {
        use mysql_async::prelude::Queryable;
        if !self.config.snapshot {
            return None;
        }
        let rt = self.runtime().ok()?;
        rt.block_on(async {
            let mut conn = self.connect().await.ok()?;
            let mut total = 0u64;
            for (db, name) in &self.names {
                let n: Option<u64> = conn
                    .exec_first(
                        "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                        (db, name),
                    )
                    .await
                    .ok()
                    .flatten();
                total += n.unwrap_or(0);
            }
            let _ = conn.disconnect().await;
            (total > 0).then_some(total)
        })
    }

    fn check(&mut self) -> Result<(), SourceError> {
        let rt = self.runtime()?;
        rt.block_on(async {
            let mut conn = self.connect().await?;
            self.prepare(&mut conn).await?;
            let _ = conn.disconnect().await;
            Ok(())
        })
    }

    fn run(
        &mut self,
        resume: Option<&str>,
        ctx: &mut SourceContext<'_>,
    ) -> Result<(), SourceError> {
        let rt = self.runtime()?;
        let position =
            match resume {
                None => None,
                Some(t) => Some(serde_json::from_str::<Position>(t).map_err(|_| {
                    SourceError::Checkpoint {
                        path: self.at.clone().into(),
                        message: format!("the checkpoint `{t}` is not a MySQL position"),
                    }
                })?),
            };
        rt.block_on(async {
            let mut conn = self.connect().await?;
            let (server, tables) = self.prepare(&mut conn).await?;
            let declared = ctx.feedback().declared_types();
            for t in &tables {
                declared.declare(&t.stream, t.declared_columns());
            }
            let start = match position {
                None if self.config.snapshot => {
                    drop(conn);
                    snapshot::Copy {
                        source: self,
                        tables: &tables,
                        mariadb: server.mariadb,
                    }
                    .run(None, 0, None, ctx)
                    .await?
                }
                None => {
                    let at = self.master_position(&mut conn, server.mariadb).await?;
                    tracing::info!(binlog = %at, "following the binlog from its current end (snapshot = false)");
                    drop(conn);
                    at
                }
                Some(Position::Snapshot {
                    binlog,
                    table,
                    after,
                }) => {
                    drop(conn);
                    let index = tables
                        .iter()
                        .position(|t| format!("{}.{}", t.database, t.name) == table)
                        .ok_or_else(|| SourceError::Checkpoint {
                            path: self.at.clone().into(),
                            message: format!(
                                "the snapshot was copying table `{table}`, which is no longer in `tables`"
                            ),
                        })?;
                    tracing::info!(table = %table, "resuming the snapshot in a new one; the changes since the first one's binlog position are read after it");
                    snapshot::Copy {
                        source: self,
                        tables: &tables,
                        mariadb: server.mariadb,
                    }
                    .run(Some(binlog), index, after, ctx)
                    .await?
                }
                Some(Position::Stream { binlog }) => {
                    drop(conn);
                    binlog
                }
            };
            if ctx.should_stop() {
                return Ok(());
            }
            if ctx
                .flush(
                    &Position::Stream {
                        binlog: start.clone(),
                    }
                    .token(),
                )
                .is_err()
            {
                return Ok(());
            }
            binlog::Streamer::new(self, server, tables, start)
                .run(ctx)
                .await
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
