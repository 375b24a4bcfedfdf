//! SQLite sink: batched transactional writes, insert or upsert by key,
//! deletes, tables and columns created from the records, and records the
//! database refuses sent to the dead-letter sink instead of failing the batch.

mod config;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{CachedStatement, Connection, ToSql};
use sluice_codec::{Operation, Record, Value};

pub use config::SqliteSinkConfig;

use super::{Refused, Sink, SinkCommit, SinkError, WriteMode};
use crate::conventions::{
    KEY_HEADER, OLD_KEY_HEADER, UNCHANGED_HEADER, is_truncate, key_columns, key_header, old_key,
    unchanged_columns,
};
use crate::declared_types::{DeclaredTypes, sqlite_type};
use crate::schema_policy::OnSchemaChange;
use crate::sql::{on_conflict, quote_ident};

/// The SQLite sink.
pub struct SqliteSink {
    config: SqliteSinkConfig,
    /// The configured mode; `None`: upsert when a key is known (configured,
    /// or named by the source in `sluice-key`), else insert.
    mode: Option<WriteMode>,
    conn: Option<Connection>,
    /// Known columns per table.
    tables: HashMap<String, Vec<String>>,
    /// The insert statement of the last record written. Records of a
    /// batch usually share their shape, so it is built and prepared once.
    last: Option<Shape>,
    /// `key` of the config, shared without a copy per record.
    config_key: Arc<[String]>,
    /// Key columns by `sluice-key` header value.
    header_keys: HashMap<String, Arc<[String]>>,
    /// Column types the source declares.
    declared: Arc<DeclaredTypes>,
}

/// The table, fields and key of a written record, with the insert
/// statement built for them: a record of the same shape goes straight to
/// that statement, without the per-record checks of [`SqliteSink::write_one`].
struct Shape {
    /// The target table.
    table: String,
    /// The record's field names, in order.
    columns: Vec<String>,
    /// The `INSERT` (with `ON CONFLICT` for an upsert) for them.
    sql: String,
    /// Whether it is an upsert.
    upsert: bool,
    /// The `sluice-key` header value the key came from (`None`: the
    /// configured key, or no key).
    key_header: Option<String>,
    /// Where each key column is among the fields (upsert only).
    key_at: Vec<usize>,
}

impl Shape {
    /// True if `rec`, bound for `table`, is a plain write (no delete, no
    /// moved key, no unchanged columns) with exactly these fields and key.
    fn fits(&self, table: &str, rec: &Record<'_>, config_key: bool) -> bool {
        if rec.op == Operation::Delete || self.table != table {
            return false;
        }
        let mut key_header = None;
        for (n, v) in &rec.headers {
            if n == OLD_KEY_HEADER || n == UNCHANGED_HEADER {
                return false;
            }
            if n == KEY_HEADER {
                key_header = Some(v);
            }
        }
        let key_same = config_key
            || match (&self.key_header, key_header) {
                (None, None) => true,
                (Some(a), Some(b)) => a.as_bytes() == &b[..],
                _ => false,
            };
        key_same
            && self.columns.len() == rec.fields.len()
            && self
                .columns
                .iter()
                .zip(&rec.fields)
                .all(|(c, (n, _))| c == n)
    }
}

struct Sql<'a>(&'a Value<'a>);

impl ToSql for Sql<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            // SQLite stores a NaN REAL as NULL: keep it as text.
            Value::Float(f) if f.is_nan() => ToSqlOutput::Borrowed(ValueRef::Text(b"NaN")),
            Value::Float(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Value::Text(s) | Value::Json(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Timestamp(t) => ToSqlOutput::Owned(rusqlite::types::Value::Text(
                crate::value_json::timestamp_to_rfc3339(*t),
            )),
        })
    }
}

fn column_type(v: &Value<'_>) -> &'static str {
    match v {
        Value::Null => "",
        Value::Bool(_) | Value::Int(_) => " INTEGER",
        Value::Float(_) => " REAL",
        Value::Text(_) | Value::Json(_) | Value::Timestamp(_) => " TEXT",
        Value::Bytes(_) => " BLOB",
    }
}

/// Why a record whose unchanged values cannot be found is refused.
fn unfillable(table: &str, unchanged: &[String], at: &str) -> String {
    format!(
        "the source did not send column(s) `{}` of table `{table}` because they did not change (values stored out of line), and the target has no row under {at} to keep them from: writing the row would make them null. The row never reached the target (look for an earlier dead letter of it); copy it again (`sluice run --reset` re-reads the tables)",
        unchanged.join("`, `")
    )
}

/// A record the database refused, or a failure of the whole batch.
enum RowError {
    Refused(String),
    /// A field the table has no column for (`on_schema_change = "dead_letter"`).
    SchemaChange(String),
    Fatal(String),
}

impl SqliteSink {
    /// Checks the config (the database is opened by `open`).
    pub fn new(config: SqliteSinkConfig) -> Result<Self, SinkError> {
        let mode = config.mode;
        if mode == Some(WriteMode::Upsert) && config.key.is_empty() {
            return Err(SinkError::Config {
                path: config.path.clone(),
                message: "`mode = \"upsert\"` needs `key = [\"column\", ...]`".into(),
            });
        }
        let config_key: Arc<[String]> = config.key.clone().into();
        Ok(SqliteSink {
            config,
            mode,
            conn: None,
            tables: HashMap::new(),
            last: None,
            config_key,
            header_keys: HashMap::new(),
            declared: Arc::default(),
        })
    }

    /// The key of a record: the configured one, else the columns the source
    /// names in `sluice-key` (PostgreSQL change data capture, also through
    /// Kafka), parsed once per distinct header.
    fn key_of(&mut self, rec: &Record<'_>) -> Arc<[String]> {
        if !self.config_key.is_empty() {
            return self.config_key.clone();
        }
        let Some(header) = key_header(rec) else {
            return self.config_key.clone();
        };
        if let Some(k) = self.header_keys.get(header) {
            return k.clone();
        }
        let k: Arc<[String]> = key_columns(header).into();
        self.header_keys.insert(header.to_string(), k.clone());
        k
    }

    fn db_err(&self, what: &str, e: impl std::fmt::Display) -> SinkError {
        SinkError::Database {
            path: self.config.path.clone(),
            message: format!("{what}: {e}"),
        }
    }

    fn path(&self) -> PathBuf {
        self.config.path.clone()
    }
}

/// Columns of `table`, or `None` if it does not exist.
fn table_columns(conn: &Connection, table: &str) -> rusqlite::Result<Option<Vec<String>>> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", quote_ident(table)))?;
    let cols: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<rusqlite::Result<_>>()?;
    Ok((!cols.is_empty()).then_some(cols))
}

/// True if `table` has a primary key or unique index on exactly `key`.
fn has_unique_key(conn: &Connection, table: &str, key: &[String]) -> rusqlite::Result<bool> {
    let mut want: Vec<&str> = key.iter().map(String::as_str).collect();
    want.sort_unstable();
    let mut pk: Vec<(i64, String)> = conn
        .prepare(&format!("PRAGMA table_info({})", quote_ident(table)))?
        .query_map([], |r| Ok((r.get::<_, i64>(5)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .filter(|(p, _)| *p > 0)
        .collect();
    pk.sort();
    let mut pk: Vec<&str> = pk.iter().map(|(_, n)| n.as_str()).collect();
    pk.sort_unstable();
    if pk == want {
        return Ok(true);
    }
    let indexes: Vec<(String, bool)> = conn
        .prepare(&format!("PRAGMA index_list({})", quote_ident(table)))?
        .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, bool>(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (name, unique) in indexes {
        if !unique {
            continue;
        }
        let mut cols: Vec<String> = conn
            .prepare(&format!("PRAGMA index_info({})", quote_ident(&name)))?
            .query_map([], |r| r.get::<_, String>(2))?
            .collect::<rusqlite::Result<_>>()?;
        cols.sort_unstable();
        if cols == want {
            return Ok(true);
        }
    }
    Ok(false)
}

impl SqliteSink {
    /// The type (affinity, with its leading space) of a column created for
    /// field `field` of `rec`: from the type the source declares for it,
    /// else from its value.
    fn column_type(&self, rec: &Record<'_>, field: &str) -> &'static str {
        match self.declared.column(&rec.stream, field) {
            Some(c) => match sqlite_type(&c.sql_type) {
                "INTEGER" => " INTEGER",
                "REAL" => " REAL",
                "BLOB" => " BLOB",
                _ => " TEXT",
            },
            None => rec.get(field).map_or("", column_type),
        }
    }

    fn prepare_table(
        &mut self,
        conn: &Connection,
        table: &str,
        rec: &Record<'_>,
        key: &[String],
        upsert: bool,
    ) -> Result<(), RowError> {
        let fatal =
            |what: &str, e: rusqlite::Error| RowError::Fatal(format!("{what} `{table}`: {e}"));
        if !self.tables.contains_key(table) {
            match table_columns(conn, table).map_err(|e| fatal("cannot inspect table", e))? {
                Some(cols) => {
                    if upsert
                        && !has_unique_key(conn, table, key)
                            .map_err(|e| fatal("cannot inspect table", e))?
                    {
                        return Err(RowError::Fatal(format!(
                            "table `{table}` has no PRIMARY KEY or UNIQUE index on ({}): upsert needs one; add it or use `mode = \"insert\"`",
                            key.join(", ")
                        )));
                    }
                    self.tables.insert(table.to_string(), cols);
                }
                None if !self.config.create_table => {
                    return Err(RowError::Fatal(format!(
                        "table `{table}` does not exist and `create_table = false`"
                    )));
                }
                None => {
                    let mut cols: Vec<String> =
                        rec.fields.iter().map(|(n, _)| n.to_string()).collect();
                    for k in key {
                        if !cols.contains(k) {
                            cols.push(k.clone());
                        }
                    }
                    let defs: Vec<String> = cols
                        .iter()
                        .map(|c| format!("{}{}", quote_ident(c), self.column_type(rec, c)))
                        .collect();
                    let pk = if key.is_empty() || !upsert {
                        String::new()
                    } else {
                        let k: Vec<String> = key.iter().map(|k| quote_ident(k)).collect();
                        format!(", PRIMARY KEY ({})", k.join(", "))
                    };
                    let sql = format!(
                        "CREATE TABLE {} ({}{pk})",
                        quote_ident(table),
                        defs.join(", ")
                    );
                    conn.execute_batch(&sql).map_err(|e| {
                        RowError::Refused(format!(
                            "cannot create table `{table}` for this record: {e}"
                        ))
                    })?;
                    tracing::info!(table, columns = cols.len(), "created table");
                    self.tables.insert(table.to_string(), cols);
                }
            }
        }
        let known = self.tables.get(table).map(Vec::len).unwrap_or(0);
        let missing: Vec<(String, &'static str)> = {
            let cols = self.tables.get(table);
            // SQLite matches column names without regard to ASCII case:
            // `Email` is the column `email`.
            rec.fields
                .iter()
                .filter(|(n, _)| !cols.is_some_and(|c| c.iter().any(|x| x.eq_ignore_ascii_case(n))))
                .map(|(n, _)| (n.to_string(), self.column_type(rec, n)))
                .collect()
        };
        if !missing.is_empty() {
            match self.config.on_schema_change(table) {
                OnSchemaChange::DeadLetter => {
                    return Err(RowError::SchemaChange(format!(
                        "table `{table}` has no column `{}` (a new field of stream `{}`; `on_schema_change = \"dead_letter\"`): add the column, then `sluice replay --code schema_change`",
                        missing[0].0, rec.stream
                    )));
                }
                OnSchemaChange::Stop => {
                    return Err(RowError::Fatal(format!(
                        "table `{table}` has no column `{}` (a field of stream `{}`) and `on_schema_change = \"stop\"`: add the column, or set `on_schema_change = \"evolve\"` to have it added, then run again (nothing past the last committed batch was written)",
                        missing[0].0, rec.stream
                    )));
                }
                OnSchemaChange::Evolve => {}
            }
            for (name, ty) in missing {
                // A name SQLite refuses (a NUL, two fields differing only
                // in case) is the record's fault: it is refused, the run
                // goes on.
                conn.execute_batch(&format!(
                    "ALTER TABLE {} ADD COLUMN {}{ty}",
                    quote_ident(table),
                    quote_ident(&name)
                ))
                .map_err(|e| {
                    RowError::Refused(format!("cannot add column {name:?} to `{table}`: {e}"))
                })?;
                tracing::info!(table, column = %name, "added column");
                if let Some(c) = self.tables.get_mut(table) {
                    c.push(name);
                }
            }
        }
        let _ = known;
        Ok(())
    }

    fn write_one<'c>(
        &mut self,
        conn: &'c Connection,
        stmt: &mut Option<CachedStatement<'c>>,
        rec: &Record<'_>,
    ) -> Result<(), RowError> {
        let refused = |e: rusqlite::Error| RowError::Refused(e.to_string());
        // Fast path: a record shaped like the last one written.
        if let Some(shape) = &self.last {
            let table = self.config.table.as_deref().unwrap_or(&rec.stream);
            if shape.fits(table, rec, !self.config_key.is_empty()) {
                if let Some(&i) = shape.key_at.iter().find(|&&i| rec.fields[i].1.is_null()) {
                    return Err(RowError::Refused(format!(
                        "key field `{}` is missing or null",
                        rec.fields[i].0
                    )));
                }
                return insert(conn, stmt, &shape.sql, rec).map_err(refused);
            }
        }
        let table = self
            .config
            .table
            .clone()
            .unwrap_or_else(|| rec.stream.to_string());
        if table.is_empty() {
            return Err(RowError::Refused(
                "the record has no stream name and the sink no `table`".into(),
            ));
        }
        let key = self.key_of(rec);
        let upsert = match self.mode {
            Some(m) => m == WriteMode::Upsert,
            None => !key.is_empty(),
        };
        let exists = |this: &Self| -> Result<bool, RowError> {
            Ok(this.tables.contains_key(&table)
                || table_columns(conn, &table)
                    .map_err(|e| RowError::Fatal(e.to_string()))?
                    .is_some())
        };
        // A source TRUNCATE (PostgreSQL change data capture) empties the table.
        if upsert && is_truncate(rec) {
            if exists(self)? {
                conn.execute_batch(&format!("DELETE FROM {}", quote_ident(&table)))
                    .map_err(|e| RowError::Refused(e.to_string()))?;
            }
            return Ok(());
        }
        let unchanged = unchanged_columns(rec).map_err(RowError::Refused)?;
        let key_missing = key.iter().find(|k| rec.get(k).is_none_or(Value::is_null));
        // An update that changed the key moves the row: every column the
        // record does not carry (unchanged values the source did not send,
        // columns only the target has) goes with it.
        if upsert
            && rec.op != Operation::Delete
            && key_missing.is_none()
            && let Some(old) = old_key(rec)
        {
            let old = old.map_err(RowError::Refused)?;
            let old_vals: Vec<Value<'static>> = key
                .iter()
                .map(|k| {
                    old.get(k)
                        .map(crate::value_json::json_to_value)
                        .ok_or_else(|| {
                            RowError::Refused(format!("header `{OLD_KEY_HEADER}` has no `{k}`"))
                        })
                })
                .collect::<Result<_, _>>()?;
            let new_vals = key.iter().filter_map(|k| rec.get(k));
            if old_vals.iter().ne(new_vals) && exists(self)? {
                self.prepare_table(conn, &table, rec, &key, upsert)?;
                let refused = |e: rusqlite::Error| RowError::Refused(e.to_string());
                // Whatever the new key held is gone at the source.
                let new_vals = key.iter().filter_map(|k| rec.get(k));
                self.delete_key(conn, &table, &key, new_vals)
                    .map_err(refused)?;
                if self
                    .update_row(conn, &table, rec, &key, old_vals.iter())
                    .map_err(refused)?
                {
                    return Ok(());
                }
                if !unchanged.is_empty() {
                    return Err(RowError::Refused(unfillable(
                        &table,
                        &unchanged,
                        "the old key",
                    )));
                }
                // Nothing to move: the record is written as a new row.
            }
        }
        if upsert && let Some(k) = key_missing {
            return Err(RowError::Refused(format!(
                "key field `{k}` is missing or null"
            )));
        }
        if rec.op == Operation::Delete && upsert {
            if !self.tables.contains_key(&table)
                && table_columns(conn, &table)
                    .map_err(|e| RowError::Fatal(e.to_string()))?
                    .is_none()
            {
                return Ok(()); // Nothing to delete from.
            }
            let vals = key.iter().filter_map(|k| rec.get(k));
            self.delete_key(conn, &table, &key, vals).map_err(refused)?;
            return Ok(());
        }
        self.prepare_table(conn, &table, rec, &key, upsert)?;
        if upsert && !unchanged.is_empty() {
            // Values left out as unchanged are kept from the row, which
            // must be there: an insert would make them null.
            let vals = key.iter().filter_map(|k| rec.get(k));
            if self
                .update_row(conn, &table, rec, &key, vals)
                .map_err(refused)?
            {
                return Ok(());
            }
            return Err(RowError::Refused(unfillable(
                &table, &unchanged, "this key",
            )));
        }
        let same_shape = self.last.as_ref().is_some_and(|s| {
            s.upsert == upsert && s.fits(&table, rec, !self.config_key.is_empty())
        });
        if !same_shape {
            let sql = self.insert_sql(&table, rec, &key, upsert);
            let key_at = if upsert {
                key.iter()
                    .filter_map(|k| rec.fields.iter().position(|(n, _)| n == k))
                    .collect()
            } else {
                Vec::new()
            };
            *stmt = None;
            self.last = Some(Shape {
                table: table.clone(),
                columns: rec.fields.iter().map(|(n, _)| n.to_string()).collect(),
                sql,
                upsert,
                key_header: if self.config_key.is_empty() {
                    key_header(rec).map(str::to_string)
                } else {
                    None
                },
                key_at,
            });
        }
        let sql = self
            .last
            .as_ref()
            .map(|s| s.sql.as_str())
            .unwrap_or_default();
        insert(conn, stmt, sql, rec).map_err(refused)
    }

    /// Sets the record's fields on the row whose key columns hold `vals`;
    /// false when there is no such row.
    fn update_row<'v>(
        &self,
        conn: &Connection,
        table: &str,
        rec: &Record<'_>,
        key: &[String],
        vals: impl Iterator<Item = &'v Value<'v>>,
    ) -> rusqlite::Result<bool> {
        let n = rec.fields.len();
        let sets: Vec<String> = rec
            .fields
            .iter()
            .enumerate()
            .map(|(i, (c, _))| format!("{} = ?{}", quote_ident(c), i + 1))
            .collect();
        let cond: Vec<String> = key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{} = ?{}", quote_ident(k), n + i + 1))
            .collect();
        let sql = format!(
            "UPDATE {} SET {} WHERE {}",
            quote_ident(table),
            sets.join(", "),
            cond.join(" AND ")
        );
        let fields: Vec<Sql<'_>> = rec.fields.iter().map(|(_, v)| Sql(v)).collect();
        let keys: Vec<Sql<'_>> = vals.map(Sql).collect();
        let refs: Vec<&dyn ToSql> = fields
            .iter()
            .chain(&keys)
            .map(|v| v as &dyn ToSql)
            .collect();
        Ok(conn.prepare_cached(&sql)?.execute(refs.as_slice())? > 0)
    }

    /// Deletes the row whose key columns hold `vals` (in `key` order).
    fn delete_key<'v>(
        &self,
        conn: &Connection,
        table: &str,
        key: &[String],
        vals: impl Iterator<Item = &'v Value<'v>>,
    ) -> rusqlite::Result<()> {
        let cond: Vec<String> = key
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{} = ?{}", quote_ident(k), i + 1))
            .collect();
        let sql = format!(
            "DELETE FROM {} WHERE {}",
            quote_ident(table),
            cond.join(" AND ")
        );
        let vals: Vec<Sql<'_>> = vals.map(Sql).collect();
        let params: Vec<&dyn ToSql> = vals.iter().map(|v| v as &dyn ToSql).collect();
        conn.prepare_cached(&sql)?.execute(params.as_slice())?;
        Ok(())
    }

    fn insert_sql(&self, table: &str, rec: &Record<'_>, key: &[String], upsert: bool) -> String {
        let mut sql = String::with_capacity(64 + rec.fields.len() * 24);
        sql.push_str("INSERT INTO ");
        sql.push_str(&quote_ident(table));
        sql.push_str(" (");
        for (i, (n, _)) in rec.fields.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&quote_ident(n));
        }
        sql.push_str(") VALUES (");
        for i in 0..rec.fields.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("?{}", i + 1));
        }
        sql.push(')');
        if upsert {
            sql.push_str(&on_conflict(
                key,
                rec.fields.iter().map(|(n, _)| n.as_ref()),
            ));
        }
        sql
    }
}

/// Runs the insert `sql` for `rec`, through `stmt` when it is already
/// prepared (the caller drops it when `sql` changes).
fn insert<'c>(
    conn: &'c Connection,
    stmt: &mut Option<CachedStatement<'c>>,
    sql: &str,
    rec: &Record<'_>,
) -> rusqlite::Result<()> {
    let stmt = match stmt {
        Some(s) => s,
        None => stmt.insert(conn.prepare_cached(sql)?),
    };
    stmt.execute(rusqlite::params_from_iter(
        rec.fields.iter().map(|(_, v)| Sql(v)),
    ))?;
    Ok(())
}

impl Sink for SqliteSink {
    fn describe(&self) -> String {
        format!("sqlite {}", self.config.path.display())
    }

    fn use_declared_types(&mut self, types: Arc<DeclaredTypes>) {
        self.declared = types;
    }

    fn open(&mut self, _state: Option<&str>) -> Result<(), SinkError> {
        if let Some(parent) = self.config.path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| SinkError::Io {
                path: self.path(),
                what: "cannot create the directory",
                source,
            })?;
        }
        let conn =
            Connection::open(&self.config.path).map_err(|e| self.db_err("cannot open", e))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(|e| self.db_err("cannot configure", e))?;
        conn.set_prepared_statement_cache_capacity(128);
        self.conn = Some(conn);
        Ok(())
    }

    fn write(&mut self, records: &[Record<'_>]) -> Result<SinkCommit, SinkError> {
        let conn = self.conn.take().ok_or_else(|| SinkError::Config {
            path: self.path(),
            message: "write before open".into(),
        })?;
        let result = self.write_batch(&conn, records);
        self.conn = Some(conn);
        result
    }
}

impl SqliteSink {
    fn write_batch(
        &mut self,
        conn: &Connection,
        records: &[Record<'_>],
    ) -> Result<SinkCommit, SinkError> {
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.db_err("cannot begin", e))?;
        // Fast path: the whole batch in one transaction.
        let mut failed = None;
        let mut stmt = None;
        for (i, r) in records.iter().enumerate() {
            if let Err(e) = self.write_one(conn, &mut stmt, r) {
                failed = Some((i, e));
                break;
            }
        }
        drop(stmt);
        match failed {
            None => {
                conn.execute_batch("COMMIT")
                    .map_err(|e| self.db_err("cannot commit", e))?;
                return Ok(SinkCommit {
                    written: records.len() as u64,
                    ..Default::default()
                });
            }
            Some((_, RowError::Fatal(m))) => {
                let _ = conn.execute_batch("ROLLBACK");
                self.tables.clear();
                self.last = None;
                return Err(SinkError::Database {
                    path: self.path(),
                    message: m,
                });
            }
            Some((_, RowError::Refused(_) | RowError::SchemaChange(_))) => {
                let _ = conn.execute_batch("ROLLBACK");
                self.tables.clear();
                self.last = None;
            }
        }
        // Slow path: one savepoint per record to find the refused ones.
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.db_err("cannot begin", e))?;
        let mut commit = SinkCommit::default();
        let mut stmt = None;
        for (i, r) in records.iter().enumerate() {
            conn.execute_batch("SAVEPOINT rec")
                .map_err(|e| self.db_err("cannot savepoint", e))?;
            match self.write_one(conn, &mut stmt, r) {
                Ok(()) => {
                    conn.execute_batch("RELEASE rec")
                        .map_err(|e| self.db_err("cannot release", e))?;
                    commit.written += 1;
                }
                Err(e @ (RowError::Refused(_) | RowError::SchemaChange(_))) => {
                    conn.execute_batch("ROLLBACK TO rec; RELEASE rec")
                        .map_err(|e| self.db_err("cannot roll back", e))?;
                    self.tables.clear();
                    self.last = None;
                    commit.refused.push(match e {
                        RowError::SchemaChange(m) => Refused::schema_change(i, m),
                        RowError::Refused(m) | RowError::Fatal(m) => Refused::new(i, m),
                    });
                }
                Err(RowError::Fatal(m)) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    self.tables.clear();
                    self.last = None;
                    return Err(SinkError::Database {
                        path: self.path(),
                        message: m,
                    });
                }
            }
        }
        drop(stmt);
        conn.execute_batch("COMMIT")
            .map_err(|e| self.db_err("cannot commit", e))?;
        Ok(commit)
    }
}

#[cfg(test)]
mod tests;
