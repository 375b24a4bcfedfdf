//! SQLite source: a table in rowid order, or a query.

mod config;

use std::borrow::Cow;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use sluice_codec::{Operation, Record, Value};

pub use config::SqliteSourceConfig;

use super::{Source, SourceContext, SourceError, parse_token};
use crate::sql::quote_ident;

/// The SQLite source.
pub struct SqliteSource {
    config: SqliteSourceConfig,
    stream: String,
}

impl SqliteSource {
    /// Checks the config.
    pub fn new(config: SqliteSourceConfig) -> Result<Self, SourceError> {
        let stream = match (&config.table, &config.query) {
            (Some(t), None) => config.stream.clone().unwrap_or_else(|| t.clone()),
            (None, Some(_)) => config.stream.clone().unwrap_or_else(|| "query".into()),
            _ => {
                return Err(SourceError::Config {
                    path: config.path.clone(),
                    message: "give exactly one of `table` and `query`".into(),
                });
            }
        };
        Ok(SqliteSource { config, stream })
    }

    fn db_err(&self, what: &str) -> impl Fn(rusqlite::Error) -> SourceError + '_ {
        let what = what.to_string();
        move |e| SourceError::Database {
            path: self.config.path.clone(),
            message: format!("{what}: {e}"),
        }
    }

    fn open(&self) -> Result<Connection, SourceError> {
        if !self.config.path.is_file() {
            return Err(SourceError::Config {
                path: self.config.path.clone(),
                message: "the database file does not exist".into(),
            });
        }
        Connection::open_with_flags(
            &self.config.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(self.db_err("cannot open"))
    }
}

fn to_value(v: ValueRef<'_>) -> Value<'static> {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => Value::Text(Cow::Owned(String::from_utf8_lossy(t).into_owned())),
        ValueRef::Blob(b) => Value::Bytes(Cow::Owned(b.to_vec())),
    }
}

impl Source for SqliteSource {
    fn describe(&self) -> String {
        format!("sqlite {}", self.config.path.display())
    }

    fn size_hint(&mut self) -> Option<u64> {
        let table = self.config.table.as_ref()?;
        let conn = self.open().ok()?;
        conn.query_row(
            &format!("SELECT count(*) FROM {}", quote_ident(table)),
            [],
            |r| r.get::<_, i64>(0),
        )
        .ok()
        .map(|n| n as u64)
    }

    fn check(&mut self) -> Result<(), SourceError> {
        let conn = self.open()?;
        let sql = match (&self.config.table, &self.config.query) {
            (Some(t), _) => format!("SELECT * FROM {} LIMIT 0", quote_ident(t)),
            (None, Some(q)) => q.clone(),
            (None, None) => return Ok(()),
        };
        conn.prepare(&sql)
            .map(|_| ())
            .map_err(self.db_err(&format!("cannot prepare `{sql}`")))
    }

    fn run(
        &mut self,
        resume: Option<&str>,
        ctx: &mut SourceContext<'_>,
    ) -> Result<(), SourceError> {
        let conn = self.open()?;
        let (sql, start, by_rowid) = match (&self.config.table, &self.config.query) {
            (Some(t), _) => {
                let after = match resume {
                    None => i64::MIN,
                    Some(tok) => parse_token(tok, &["rowid"])
                        .map(|v| v[0] as i64)
                        .ok_or_else(|| SourceError::Checkpoint {
                            path: self.config.path.clone(),
                            message: format!("the checkpoint `{tok}` is not a rowid position"),
                        })?,
                };
                (
                    format!(
                        "SELECT _rowid_, * FROM {} WHERE _rowid_ > ?1 ORDER BY _rowid_",
                        quote_ident(t)
                    ),
                    after,
                    true,
                )
            }
            (None, Some(q)) => {
                let skip = match resume {
                    None => 0,
                    Some(tok) => {
                        parse_token(tok, &["row"])
                            .map(|v| v[0] as i64)
                            .ok_or_else(|| SourceError::Checkpoint {
                                path: self.config.path.clone(),
                                message: format!("the checkpoint `{tok}` is not a row position"),
                            })?
                    }
                };
                (q.clone(), skip, false)
            }
            (None, None) => {
                return Err(SourceError::Config {
                    path: self.config.path.clone(),
                    message: "give exactly one of `table` and `query`".into(),
                });
            }
        };
        let mut stmt = conn
            .prepare(&sql)
            .map_err(self.db_err(&format!("cannot prepare `{sql}`")))?;
        let offset = usize::from(by_rowid);
        let names: Vec<String> = stmt
            .column_names()
            .iter()
            .skip(offset)
            .map(|s| s.to_string())
            .collect();
        let mut rows = if by_rowid {
            stmt.query([start]).map_err(self.db_err("cannot query"))?
        } else {
            stmt.query([]).map_err(self.db_err("cannot query"))?
        };
        let mut n: u64 = if by_rowid { 0 } else { start as u64 };
        let mut skipped = 0;
        let mut last_rowid = start;
        while let Some(row) = rows.next().map_err(self.db_err("cannot read a row"))? {
            if !by_rowid && skipped < start {
                skipped += 1;
                continue;
            }
            let position = if by_rowid {
                last_rowid = row
                    .get::<_, i64>(0)
                    .map_err(self.db_err("cannot read rowid"))?;
                format!("rowid {last_rowid}")
            } else {
                n += 1;
                format!("row {n}")
            };
            let mut fields = Vec::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                let v = row
                    .get_ref(i + offset)
                    .map_err(self.db_err("cannot read a column"))?;
                fields.push((Cow::Borrowed(name.as_str()), to_value(v)));
            }
            let rec = Record {
                op: Operation::Snapshot,
                stream: Cow::Borrowed(&self.stream),
                position: Cow::Owned(position),
                fields,
                ..Default::default()
            };
            let full = ctx.push(&rec);
            if by_rowid {
                n += 1;
            }
            ctx.set_progress(n);
            let token = if by_rowid {
                format!("rowid={last_rowid}")
            } else {
                format!("row={n}")
            };
            if full && ctx.flush(&token).is_err() {
                return Ok(());
            }
        }
        let token = if by_rowid {
            format!("rowid={last_rowid}")
        } else {
            format!("row={n}")
        };
        let _ = ctx.flush(&token);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
