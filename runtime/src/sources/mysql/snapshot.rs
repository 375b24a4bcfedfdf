//! The snapshot: every row of the tables in one consistent read, in
//! primary-key order and in chunks, with the binlog position of the same
//! point. A resumed snapshot reads from after the last key handed on, in
//! a new consistent read; the binlog is then read from the first one's
//! position, so the changes made between the two are applied again (by
//! key, in order: the target ends the same).

use mysql_async::Value as My;
use mysql_async::prelude::Queryable;
use sluice_codec::Operation;

use super::catalog::{Table, quote};
use super::rows;
use super::values::Origin;
use super::{BinlogPos, KeyPart, MysqlSource, Position};
use crate::sources::{Malformed, SourceContext, SourceError};

/// One snapshot of `tables`.
pub struct Copy<'a> {
    /// The source (settings and connections).
    pub source: &'a MysqlSource,
    /// The tables, in the order they are copied.
    pub tables: &'a [Table],
    /// MariaDB (its snapshot needs no lock).
    pub mariadb: bool,
}

/// Opens a consistent read on `conn` and returns the binlog position it
/// sees: on MariaDB without a lock (`binlog_snapshot_file`), on MySQL with
/// a brief global read lock (which needs the RELOAD privilege).
pub async fn begin(conn: &mut mysql_async::Conn, mariadb: bool) -> Result<BinlogPos, String> {
    let q = |e: mysql_async::Error| e.to_string();
    conn.query_drop("SET time_zone = '+00:00', NAMES utf8mb4, SESSION net_write_timeout = 3600")
        .await
        .map_err(q)?;
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(q)?;
    if mariadb {
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            .await
            .map_err(q)?;
        let rows: Vec<(String, String)> = conn
            .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
            .await
            .map_err(q)?;
        let get = |n: &str| rows.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let file = get("Binlog_snapshot_file").unwrap_or_default();
        let pos: u64 = get("Binlog_snapshot_position")
            .and_then(|p| p.parse().ok())
            .unwrap_or(4);
        if file.is_empty() {
            return Err("the server reports no binlog snapshot position: turn `log_bin` on".into());
        }
        let gtid: Option<String> = conn
            .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file.as_str(), pos))
            .await
            .map_err(q)?;
        Ok(BinlogPos {
            file,
            pos,
            gtid: gtid.unwrap_or_default(),
        })
    } else {
        conn.query_drop("FLUSH TABLES WITH READ LOCK").await.map_err(|e| {
            format!("{e} (a consistent snapshot of MySQL takes a brief global read lock, which needs the RELOAD privilege: GRANT RELOAD ON *.* TO the user)")
        })?;
        let started = async {
            conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await?;
            let row: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
                Ok(r) => r,
                Err(_) => conn.query_first("SHOW BINARY LOG STATUS").await?,
            };
            Ok::<_, mysql_async::Error>(row)
        }
        .await;
        let unlocked = conn.query_drop("UNLOCK TABLES").await;
        let row = started.map_err(q)?;
        unlocked.map_err(q)?;
        let row = row.ok_or("the server reports no binlog position: turn `log_bin` on")?;
        Ok(BinlogPos {
            file: row.get(0).unwrap_or_default(),
            pos: row.get(1).unwrap_or(4),
            gtid: String::new(),
        })
    }
}

/// `SELECT` of one chunk: the rows after `after` in key order.
pub fn chunk_query(t: &Table, after: Option<&[KeyPart]>, limit: usize) -> (String, Vec<My>) {
    let cols: Vec<String> = t.columns.iter().map(|c| quote(&c.name)).collect();
    let key: Vec<String> = t.key.iter().map(|&i| quote(&t.columns[i].name)).collect();
    let mut sql = format!("SELECT {} FROM {}", cols.join(", "), t.quoted());
    let mut params = Vec::new();
    if let Some(after) = after {
        // (k1 > ?) OR (k1 = ? AND k2 > ?) OR ...: each disjunct an index range.
        let mut ors = Vec::with_capacity(key.len());
        for i in 0..key.len().min(after.len()) {
            let mut ands = Vec::with_capacity(i + 1);
            for (j, k) in key.iter().enumerate().take(i) {
                ands.push(format!("{k} = ?"));
                params.push(after[j].value().unwrap_or(My::NULL));
            }
            ands.push(format!("{} > ?", key[i]));
            params.push(after[i].value().unwrap_or(My::NULL));
            ors.push(format!("({})", ands.join(" AND ")));
        }
        sql.push_str(" WHERE ");
        sql.push_str(&ors.join(" OR "));
    }
    sql.push_str(&format!(" ORDER BY {} LIMIT {limit}", key.join(", ")));
    (sql, params)
}

impl Copy<'_> {
    /// Copies the tables from `index` (after `after` in it) and returns the
    /// binlog position to follow from: `existing` when resuming, else the
    /// snapshot's own.
    pub async fn run(
        self,
        existing: Option<BinlogPos>,
        index: usize,
        mut after: Option<Vec<KeyPart>>,
        ctx: &mut SourceContext<'_>,
    ) -> Result<BinlogPos, SourceError> {
        let source = self.source;
        let mut conn = source.connect().await?;
        let seen = begin(&mut conn, self.mariadb)
            .await
            .map_err(|m| source.err(format!("cannot start the snapshot: {m}")))?;
        let binlog = existing.unwrap_or(seen);
        tracing::info!(binlog = %binlog, "snapshot started; changes are read from this binlog position after it");
        let chunk = source.config.chunk_rows;
        let zero = source.config.zero_dates;
        let mut total = 0u64;
        for (i, t) in self.tables.iter().enumerate().skip(index) {
            let table = format!("{}.{}", t.database, t.name);
            let mut copied = 0u64;
            loop {
                let (sql, params) = chunk_query(t, after.as_deref(), chunk);
                let mut n = 0usize;
                let mut stopped = false;
                let mut result = conn
                    .exec_iter(sql.as_str(), params)
                    .await
                    .map_err(|e| source.err(format!("reading `{table}`: {e}")))?;
                result
                    .for_each(|row| {
                        if stopped {
                            return;
                        }
                        n += 1;
                        copied += 1;
                        let values = row.unwrap();
                        let key: Vec<KeyPart> = t
                            .key
                            .iter()
                            .filter_map(|&i| values.get(i).and_then(KeyPart::of))
                            .collect();
                        let built = rows::record(
                            t,
                            Operation::Snapshot,
                            format!("{table}#{copied}"),
                            None,
                            &values,
                            Origin::Snapshot,
                            zero,
                        );
                        let full = match built.bad {
                            None => ctx.push(&built.record),
                            Some(reason) => ctx.push_malformed(Malformed {
                                position: built.record.position.to_string(),
                                stream: t.stream.clone(),
                                raw: crate::value_json::record_json_text(&built.record),
                                reason,
                                record: None,
                            }),
                        };
                        after = Some(key);
                        if full {
                            let token = Position::Snapshot {
                                binlog: binlog.clone(),
                                table: table.clone(),
                                after: after.clone(),
                            }
                            .token();
                            if ctx.flush(&token).is_err() {
                                stopped = true;
                            }
                        }
                    })
                    .await
                    .map_err(|e| source.err(format!("reading `{table}`: {e}")))?;
                drop(result);
                total += n as u64;
                ctx.set_progress(total);
                if stopped || ctx.should_stop() {
                    return Ok(binlog);
                }
                if n < chunk {
                    break;
                }
            }
            tracing::info!(table = %table, rows = copied, "table copied");
            after = None;
            // The next table starts with nothing handed on.
            let token = match self.tables.get(i + 1) {
                Some(n) => Position::Snapshot {
                    binlog: binlog.clone(),
                    table: format!("{}.{}", n.database, n.name),
                    after: None,
                },
                None => Position::Stream {
                    binlog: binlog.clone(),
                },
            }
            .token();
            if ctx.flush(&token).is_err() {
                return Ok(binlog);
            }
        }
        let _ = conn.query_drop("COMMIT").await;
        let _ = conn.disconnect().await;
        Ok(binlog)
    }
}

/// Receives each row of [`read_tables`]: the record, and why the source
/// would dead-letter it instead, if so.
pub type EachRow<'f> =
    dyn FnMut(sluice_codec::Record<'_>, Option<String>) -> Result<(), String> + 'f;

/// Reads every row of `tables` in one consistent read, as records (what
/// `sluice verify` compares with the target). Rows that cannot be read
/// come with the reason.
pub async fn read_tables(
    source: &MysqlSource,
    tables: &[Table],
    mariadb: bool,
    each: &mut EachRow<'_>,
) -> Result<(), SourceError> {
    let mut conn = source.connect().await?;
    begin(&mut conn, mariadb)
        .await
        .map_err(|m| source.err(format!("cannot start a consistent read: {m}")))?;
    let zero = source.config.zero_dates;
    for t in tables {
        let table = format!("{}.{}", t.database, t.name);
        let (sql, _) = chunk_query(t, None, usize::MAX);
        let mut failed = None;
        let mut n = 0u64;
        let mut result = conn
            .exec_iter(sql.as_str(), ())
            .await
            .map_err(|e| source.err(format!("reading `{table}`: {e}")))?;
        result
            .for_each(|row| {
                if failed.is_some() {
                    return;
                }
                n += 1;
                let values = row.unwrap();
                let built = rows::record(
                    t,
                    Operation::Snapshot,
                    format!("{table}#{n}"),
                    None,
                    &values,
                    Origin::Snapshot,
                    zero,
                );
                if let Err(e) = each(built.record, built.bad) {
                    failed = Some(e);
                }
            })
            .await
            .map_err(|e| source.err(format!("reading `{table}`: {e}")))?;
        drop(result);
        if let Some(e) = failed {
            return Err(source.err(e));
        }
    }
    let _ = conn.query_drop("COMMIT").await;
    let _ = conn.disconnect().await;
    Ok(())
}
