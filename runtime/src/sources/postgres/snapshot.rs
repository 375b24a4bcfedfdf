//! The initial snapshot: every table, in primary-key order, in chunks of
//! `COPY (SELECT ... WHERE key > last ORDER BY key LIMIT n)`, all in one
//! repeatable-read transaction at the slot's exported snapshot.
//!
//! A chunk that fails because the connection went away is read again on a
//! new connection, after the last row already handed over; the new
//! transaction cannot import the (gone) exported snapshot, so it reads
//! newer rows, which the change stream then brings up to date (see the
//! module docs of the source).

use std::io::BufRead;
use std::time::Instant;

use sluice_codec::Operation;

use super::catalog::Table;
use super::records::RowBuilder;
use super::stream::SlotKeepAlive;
use super::{Position, PostgresSource};
use crate::pg::{self, Lsn, copy_text, quote_literal};
use crate::sources::{SourceContext, SourceError};
use crate::sql::quote_ident;

/// One snapshot run over `tables`.
pub struct Copy<'a> {
    /// The source (config, messages).
    pub source: &'a PostgresSource,
    /// The tables, in config order.
    pub tables: &'a [Table],
    /// The slot's consistent point.
    pub lsn: Lsn,
}

enum Failure {
    /// The connection went away: reconnect and go on.
    Connection(String),
    /// Anything else stops the run.
    Fatal(SourceError),
    /// The pipeline is stopping.
    Stopped,
}

impl Copy<'_> {
    /// Copies `tables[start..]`, the first of them after key `after`.
    /// `exported`: the slot connection holding the exported snapshot (first
    /// start only).
    pub fn run(
        &self,
        mut exported: Option<SlotKeepAlive>,
        start: usize,
        mut after: Option<Vec<String>>,
        ctx: &mut SourceContext<'_>,
    ) -> Result<(), SourceError> {
        let url = &self.source.config.url;
        let stop_flag = ctx.stop_flag();
        let stop = || stop_flag.load(std::sync::atomic::Ordering::Relaxed);
        let mut client = pg::connect_with_backoff(url, "sluice-snapshot", &stop)
            .map_err(|m| self.source.err(m))?;
        self.begin(&mut client, exported.as_ref())?;
        // The snapshot is imported: the slot connection may go.
        exported.take();
        let started_at = chrono::Utc::now().timestamp_micros();
        let mut copied_total = 0u64;
        for table in &self.tables[start..] {
            let t0 = Instant::now();
            let mut copied = 0u64;
            tracing::info!(table = %table.name, "snapshot: copying");
            loop {
                match self.chunk(
                    &mut client,
                    table,
                    &mut after,
                    started_at,
                    &mut copied,
                    &mut copied_total,
                    ctx,
                ) {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(Failure::Stopped) => return Ok(()),
                    Err(Failure::Fatal(e)) => return Err(e),
                    Err(Failure::Connection(m)) => {
                        tracing::warn!(table = %table.name, error = %m, "snapshot: connection lost; reconnecting and going on after the last row read");
                        ctx.feedback().set_state(format!("reconnecting: {m}"));
                        client = pg::connect_with_backoff(url, "sluice-snapshot", &stop)
                            .map_err(|m| self.source.err(m))?;
                        self.begin(&mut client, None)?;
                    }
                }
            }
            let secs = t0.elapsed().as_secs_f64();
            tracing::info!(
                table = %table.name,
                rows = copied,
                rows_per_s = (copied as f64 / secs.max(1e-9)) as u64,
                "snapshot: table copied"
            );
            after = None;
        }
        // Leave the transaction: the stream takes over.
        let _ = client.batch_execute("COMMIT");
        Ok(())
    }

    pub(super) fn begin(
        &self,
        client: &mut postgres::Client,
        exported: Option<&SlotKeepAlive>,
    ) -> Result<(), SourceError> {
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(|e| self.source.err(pg::explain(&e, &self.source.config.url)))?;
        if let Some(name) = exported.map(SlotKeepAlive::snapshot_name) {
            client
                .batch_execute(&format!("SET TRANSACTION SNAPSHOT {}", quote_literal(name)))
                .map_err(|e| {
                    self.source.err(format!(
                        "cannot import the slot's snapshot `{name}`: {}",
                        pg::explain(&e, &self.source.config.url)
                    ))
                })?;
        }
        Ok(())
    }

    /// Reads one chunk; `Ok(true)` when the table is done.
    #[allow(clippy::too_many_arguments)]
    fn chunk(
        &self,
        client: &mut postgres::Client,
        table: &Table,
        after: &mut Option<Vec<String>>,
        started_at: i64,
        copied: &mut u64,
        copied_total: &mut u64,
        ctx: &mut SourceContext<'_>,
    ) -> Result<bool, Failure> {
        let limit = self.source.config.chunk_rows;
        let sql = chunk_sql(table, after.as_deref(), None, Some(limit));
        let url = &self.source.config.url;
        let fail = |e: postgres::Error| {
            if pg::is_connection_error(&e) {
                Failure::Connection(pg::explain(&e, url))
            } else {
                Failure::Fatal(self.source.err(format!(
                    "snapshot of `{}`: {}",
                    table.name,
                    pg::explain(&e, url)
                )))
            }
        };
        let mut reader = client.copy_out(sql.as_str()).map_err(fail)?;
        let stream = table.name.stream();
        let key_names = table.key_names();
        let builder = RowBuilder {
            stream: &stream,
            key_names: &key_names,
        };
        let position = format!("snapshot@{}", self.lsn);
        let mut rows_in = CopyRows::new(table);
        let mut rows = 0usize;
        loop {
            let fields = match rows_in.next(&mut reader) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                // A broken COPY stream is a lost connection.
                Err(RowError::Read(m)) => return Err(Failure::Connection(m)),
                Err(RowError::Data(m)) => {
                    return Err(Failure::Fatal(self.source.err(format!("snapshot of {m}"))));
                }
            };
            let rec = snapshot_record(table, &builder, fields, &position, Some(started_at));
            let key: Vec<String> = table
                .key
                .iter()
                .map(|&i| fields[i].clone().unwrap_or_default())
                .collect();
            rows += 1;
            *copied += 1;
            *copied_total += 1;
            let full = ctx.push(&rec);
            *after = Some(key);
            if full {
                ctx.set_progress(*copied_total);
                ctx.feedback()
                    .set_state(format!("snapshot {}: {} rows", table.name, copied));
                let token = Position::Snapshot {
                    lsn: self.lsn.to_string(),
                    table: table.name.to_string(),
                    after: after.clone(),
                    ranges: None,
                }
                .token();
                if ctx.flush(&token).is_err() {
                    return Err(Failure::Stopped);
                }
            }
        }
        ctx.set_progress(*copied_total);
        Ok(rows < limit)
    }
}

/// Reads every row of every table of `config` in one consistent snapshot,
/// as records (what `sluice verify` compares with the target). Calls `each`
/// with each table and then its rows.
pub fn read_tables(
    config: &super::PostgresSourceConfig,
    each: &mut dyn FnMut(&Table, sluice_codec::Record<'_>) -> Result<(), String>,
) -> Result<Vec<Table>, String> {
    let mut client = pg::connect(&config.url, "sluice-verify")?;
    let mut tables = Vec::new();
    for t in &config.tables {
        let name = pg::TableName::parse(t)?;
        tables.push(super::catalog::describe_table(&mut client, &name)?);
    }
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .map_err(|e| pg::explain(&e, &config.url))?;
    // Every row in no particular order: verify buckets them by key.
    for table in &tables {
        read_where(&mut client, table, "TRUE", &mut |rec| each(table, rec))?;
    }
    let _ = client.batch_execute("COMMIT");
    Ok(tables)
}

/// Reads the rows of `table` that `filter` (an SQL condition) selects, as
/// `snapshot` records with position `verify`, in no particular order, on
/// `client` (in whatever transaction it is in): what `sluice verify`
/// re-checks of one key range.
pub fn read_where(
    client: &mut postgres::Client,
    table: &Table,
    filter: &str,
    each: &mut dyn FnMut(sluice_codec::Record<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let cols = table
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "COPY (SELECT {cols} FROM {} WHERE {filter}) TO STDOUT",
        table.name.quoted()
    );
    let mut reader = client
        .copy_out(sql.as_str())
        .map_err(|e| format!("reading `{}`: {e}", table.name))?;
    let stream = table.name.stream();
    let key_names = table.key_names();
    let builder = RowBuilder {
        stream: &stream,
        key_names: &key_names,
    };
    let mut rows_in = CopyRows::new(table);
    while let Some(fields) = rows_in
        .next(&mut reader)
        .map_err(|(RowError::Read(m) | RowError::Data(m))| format!("reading {m}"))?
    {
        each(snapshot_record(table, &builder, fields, "verify", None))?;
    }
    Ok(())
}

/// Why a `COPY` row could not be read: the stream broke (`Read`), or the
/// row is not what the table says (`Data`). Both name the table.
pub(super) enum RowError {
    Read(String),
    Data(String),
}

/// Reads the rows of one table's `COPY` text output, reusing its buffers.
pub(super) struct CopyRows<'t> {
    table: &'t Table,
    line: Vec<u8>,
    fields: Vec<Option<String>>,
}

impl<'t> CopyRows<'t> {
    pub(super) fn new(table: &'t Table) -> Self {
        CopyRows {
            table,
            line: Vec::with_capacity(256),
            fields: Vec::with_capacity(table.columns.len()),
        }
    }

    /// The next row's fields (`None` at the end).
    pub(super) fn next(
        &mut self,
        reader: &mut impl BufRead,
    ) -> Result<Option<&[Option<String>]>, RowError> {
        let name = &self.table.name;
        self.line.clear();
        let n = reader
            .read_until(b'\n', &mut self.line)
            .map_err(|e| RowError::Read(format!("`{name}`: {e}")))?;
        if n == 0 {
            return Ok(None);
        }
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        }
        copy_text::parse_row(&self.line, &mut self.fields)
            .map_err(|m| RowError::Data(format!("`{name}`: {m}")))?;
        if self.fields.len() != self.table.columns.len() {
            return Err(RowError::Data(format!(
                "`{name}`: a row has {} columns, the table {}: did the table change during the snapshot?",
                self.fields.len(),
                self.table.columns.len()
            )));
        }
        Ok(Some(&self.fields))
    }
}

/// A row of `table` as a `snapshot` record, borrowing its fields.
pub(super) fn snapshot_record<'r>(
    table: &'r Table,
    builder: &RowBuilder<'r>,
    fields: &'r [Option<String>],
    position: &'r str,
    event_time: Option<i64>,
) -> sluice_codec::Record<'r> {
    builder.record(
        Operation::Snapshot,
        position,
        event_time,
        table
            .columns
            .iter()
            .zip(fields)
            .map(|(c, v)| (c.name.as_str(), c.type_oid, v.as_deref())),
        &table.key,
    )
}

/// The key literals of `values` for `table`'s key columns: `('a'::text, '5'::bigint)`.
fn key_literals(table: &Table, values: &[String]) -> String {
    table
        .key
        .iter()
        .zip(values)
        .map(|(&i, v)| format!("{}::{}", quote_literal(v), table.columns[i].type_name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The key columns of `table`, quoted: `"region", "id"`.
pub(crate) fn key_columns(table: &Table) -> String {
    table
        .key
        .iter()
        .map(|&i| quote_ident(&table.columns[i].name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `COPY` of one chunk of `table`: keys after `after` and up to
/// `until` (included), in key order.
pub(super) fn chunk_sql(
    table: &Table,
    after: Option<&[String]>,
    until: Option<&[String]>,
    limit: Option<usize>,
) -> String {
    let cols = table
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let key_cols = key_columns(table);
    let mut conditions = Vec::new();
    if let Some(values) = after.filter(|v| v.len() == table.key.len()) {
        conditions.push(format!("({key_cols}) > ({})", key_literals(table, values)));
    }
    if let Some(values) = until.filter(|v| v.len() == table.key.len()) {
        conditions.push(format!("({key_cols}) <= ({})", key_literals(table, values)));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let limit = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
    format!(
        "COPY (SELECT {cols} FROM {}{filter} ORDER BY {key_cols}{limit}) TO STDOUT",
        table.name.quoted()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pg::TableName;
    use crate::pg::columns::Column;

    #[test]
    fn chunks_continue_after_the_last_key() {
        let t = Table {
            name: TableName::parse("crm.orders").unwrap(),
            columns: vec![
                Column {
                    name: "region".into(),
                    type_oid: 25,
                    type_name: "text".into(),
                    portable_type: "text".into(),
                    cast_type: "pg_catalog.text".into(),
                },
                Column {
                    name: "id".into(),
                    type_oid: 20,
                    type_name: "bigint".into(),
                    portable_type: "bigint".into(),
                    cast_type: "pg_catalog.int8".into(),
                },
            ],
            key: vec![0, 1],
        };
        assert_eq!(
            chunk_sql(&t, None, None, Some(10)),
            "COPY (SELECT \"region\", \"id\" FROM \"crm\".\"orders\" ORDER BY \"region\", \"id\" LIMIT 10) TO STDOUT"
        );
        assert_eq!(
            chunk_sql(&t, Some(&["o'n".into(), "5".into()]), None, Some(10)),
            "COPY (SELECT \"region\", \"id\" FROM \"crm\".\"orders\" WHERE (\"region\", \"id\") > ('o''n'::text, '5'::bigint) ORDER BY \"region\", \"id\" LIMIT 10) TO STDOUT"
        );
        // A worker's range: after its lower bound, up to its upper one.
        assert_eq!(
            chunk_sql(
                &t,
                Some(&["eu".into(), "5".into()]),
                Some(&["us".into(), "9".into()]),
                Some(10)
            ),
            "COPY (SELECT \"region\", \"id\" FROM \"crm\".\"orders\" WHERE (\"region\", \"id\") > ('eu'::text, '5'::bigint) AND (\"region\", \"id\") <= ('us'::text, '9'::bigint) ORDER BY \"region\", \"id\" LIMIT 10) TO STDOUT"
        );
        assert_eq!(
            chunk_sql(&t, None, Some(&["us".into(), "9".into()]), None),
            "COPY (SELECT \"region\", \"id\" FROM \"crm\".\"orders\" WHERE (\"region\", \"id\") <= ('us'::text, '9'::bigint) ORDER BY \"region\", \"id\") TO STDOUT"
        );
    }
}
