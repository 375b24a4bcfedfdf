//! PostgreSQL sink: one transaction per batch; per table, one set-based
//! `DELETE` and one `INSERT ... ON CONFLICT DO UPDATE` per column shape
//! (values travel as text arrays and are cast to the column types), or a
//! `COPY` when the rows are new ([`load`]); tables and columns created
//! from the records when allowed.
//!
//! When a statement fails on a value (a cast the column refuses, a
//! constraint), the batch is written again record by record, each in a
//! savepoint: the refused records go to the dead-letter sink with the
//! server's message, the others are committed. A lost connection is
//! retried with backoff (the batch was not committed, so writing it again
//! is safe) for up to `retry_timeout_s`.

mod config;
mod load;
mod plan;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::Client;
use postgres::types::ToSql;
use sluice_codec::{Operation, Record, Value};

pub use config::PostgresSinkConfig;

use super::WriteMode;
use super::{Refused, Sink, SinkCommit, SinkError};
use crate::conventions::{key_columns, key_header};
use crate::declared_types::DeclaredTypes;
use crate::pg::columns::read_columns;
use crate::pg::{self, TableName};
use crate::schema_policy::OnSchemaChange;
use crate::sql::quote_ident;
use plan::{Base, Key, RowOp, Segment, Target};

/// A target table as the sink knows it.
#[derive(Debug, Clone)]
struct TargetTable {
    /// Column name → the type a value (sent as text) is cast to: the
    /// column's type without its modifier, so that assigning the value to
    /// the column checks the modifier (an over-long text is refused, not
    /// cut to fit).
    columns: Vec<(String, String)>,
    /// Key columns (empty: insert only).
    key: Vec<String>,
    /// The table has `INSERT` or `UPDATE` rules (`CREATE RULE`): `COPY`
    /// would not fire them, and PostgreSQL refuses `ON CONFLICT` on it, so
    /// it is written with plain `INSERT` (`mode = "insert"`) or not at all.
    has_rules: bool,
}

impl TargetTable {
    fn type_of(&self, column: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|(n, _)| n == column)
            .map(|(_, t)| t.as_str())
    }
}

/// The PostgreSQL sink.
pub struct PostgresSink {
    config: PostgresSinkConfig,
    client: Option<Client>,
    tables: HashMap<TableName, TargetTable>,
    /// Per table, whether new rows are tried with `COPY`.
    copy_gates: HashMap<TableName, load::CopyGate>,
    at: String,
    declared: Arc<DeclaredTypes>,
}

/// A failure of a batch attempt.
enum Failed {
    /// The connection is gone: reconnect, write the batch again.
    Connection(String),
    /// A statement failed on the data: go record by record.
    Data(String),
    /// The sink cannot go on.
    Fatal(String),
}

impl PostgresSink {
    /// Checks the config (the server is contacted by `open`).
    pub fn new(config: PostgresSinkConfig) -> Result<Self, SinkError> {
        let at = format!("postgres {}", pg::describe_url(&config.url));
        Ok(PostgresSink {
            config,
            client: None,
            tables: HashMap::new(),
            copy_gates: HashMap::new(),
            at,
            declared: Arc::default(),
        })
    }

    fn err(&self, message: impl Into<String>) -> SinkError {
        SinkError::Database {
            path: self.at.clone().into(),
            message: message.into(),
        }
    }

    fn table_name(&self, rec: &Record<'_>) -> Result<TableName, String> {
        let name = self.config.table.as_deref().unwrap_or(&rec.stream);
        if name.is_empty() {
            return Err("the record has no stream name and the sink no `table`".into());
        }
        if name.contains('.') {
            TableName::parse(name)
        } else {
            Ok(TableName {
                schema: self.config.schema.clone(),
                name: name.to_string(),
            })
        }
    }

    fn client(&mut self) -> Result<&mut Client, Failed> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            let c = pg::connect(&self.config.url, "sluice-sink").map_err(|m| {
                if pg::is_retryable_message(&m) {
                    Failed::Connection(m)
                } else {
                    Failed::Fatal(m)
                }
            })?;
            self.client = Some(c);
        }
        self.client
            .as_mut()
            .ok_or_else(|| Failed::Fatal("no connection".into()))
    }

    /// The prepared table a record goes to: `Ok(None)` when there is
    /// nothing to do (a truncate of a table that does not exist),
    /// `Err(reason)` when the record is refused.
    fn target(&mut self, rec: &Record<'_>) -> Result<Result<Option<TableName>, String>, Failed> {
        let name = match self.table_name(rec) {
            Ok(n) => n,
            Err(reason) => return Ok(Err(reason)),
        };
        if crate::conventions::is_truncate(rec)
            && !self.tables.contains_key(&name)
            && self.describe(&name)?.is_none()
        {
            return Ok(Ok(None));
        }
        self.prepare(&name, rec)?;
        Ok(Ok(Some(name)))
    }

    /// Reads (or creates) the target table for `rec`, adding missing
    /// columns when allowed.
    fn prepare(&mut self, name: &TableName, rec: &Record<'_>) -> Result<(), Failed> {
        if !self.tables.contains_key(name) {
            let known = self.describe(name)?;
            let table = match known {
                Some(t) => t,
                None if !self.config.create_table => {
                    return Err(Failed::Fatal(format!(
                        "table `{name}` does not exist and `create_table = false`: create it, or allow the sink to"
                    )));
                }
                None => self.create(name, rec)?,
            };
            if self.mode() == WriteMode::Upsert && table.has_rules {
                return Err(Failed::Fatal(format!(
                    "table `{name}` has INSERT or UPDATE rules (CREATE RULE), and PostgreSQL cannot upsert (`INSERT ... ON CONFLICT`) into such a table: use `mode = \"insert\"`, or turn the rules into triggers"
                )));
            }
            if self.mode() == WriteMode::Upsert && table.key.is_empty() {
                return Err(Failed::Fatal(format!(
                    "table `{name}` has no primary key or unique index on the key, so upserts and deletes cannot find rows: add one, set `key`, or use `mode = \"insert\"`"
                )));
            }
            self.tables.insert(name.clone(), table);
        }
        let missing: Vec<(String, String)> = {
            let t = &self.tables[name];
            rec.fields
                .iter()
                .filter(|(n, _)| t.type_of(n).is_none())
                .map(|(n, v)| (n.to_string(), self.column_type(name, rec, n, v)))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        match self.config.on_schema_change(&name.to_string()) {
            // Refused per record when written.
            OnSchemaChange::DeadLetter => return Ok(()),
            OnSchemaChange::Stop => {
                return Err(Failed::Fatal(format!(
                    "table `{name}` has no column `{}` (a field of stream `{}`) and `on_schema_change = \"stop\"`: add the column, or set `on_schema_change = \"evolve\"` to have it added, then run again (nothing past the last committed batch was written)",
                    missing[0].0, rec.stream
                )));
            }
            OnSchemaChange::Evolve => {}
        }
        let client = self.client()?;
        for (col, ty) in &missing {
            client
                .batch_execute(&format!(
                    "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {ty}",
                    name.quoted(),
                    quote_ident(col)
                ))
                .map_err(|e| {
                    Failed::Fatal(format!("cannot add column `{col}` to `{name}`: {e}"))
                })?;
            tracing::info!(table = %name, column = %col, "added column");
        }
        let fresh = self.describe(name)?;
        if let (Some(mut t), Some(old)) = (fresh, self.tables.get(name)) {
            t.key.clone_from(&old.key);
            self.tables.insert(name.clone(), t);
        }
        Ok(())
    }

    fn mode(&self) -> WriteMode {
        self.config.mode.unwrap_or(WriteMode::Upsert)
    }

    fn describe(&mut self, name: &TableName) -> Result<Option<TargetTable>, Failed> {
        let config_key = self.config.key.clone();
        let client = self.client()?;
        let Some((columns, key)) =
            read_columns(client, name).map_err(|e| Failed::Connection(e.to_string()))?
        else {
            return Ok(None);
        };
        let key = if config_key.is_empty() {
            key.iter().map(|&i| columns[i].name.clone()).collect()
        } else {
            config_key
        };
        let has_rules: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = $1 AND c.relname = $2 AND r.ev_type IN ('2', '3'))",
                &[&name.schema, &name.name],
            )
            .map(|r| r.get(0))
            .map_err(|e| Failed::Connection(e.to_string()))?;
        Ok(Some(TargetTable {
            columns: columns.into_iter().map(|c| (c.name, c.cast_type)).collect(),
            key,
            has_rules,
        }))
    }

    fn create(&mut self, name: &TableName, rec: &Record<'_>) -> Result<TargetTable, Failed> {
        let key: Vec<String> = if !self.config.key.is_empty() {
            self.config.key.clone()
        } else if self.mode() == WriteMode::Insert {
            Vec::new()
        } else {
            key_header(rec).map(key_columns).unwrap_or_default()
        };
        let mut columns: Vec<(String, String)> = rec
            .fields
            .iter()
            .map(|(n, v)| (n.to_string(), self.column_type(name, rec, n, v)))
            .collect();
        for k in &key {
            if !columns.iter().any(|(n, _)| n == k) {
                let ty = self
                    .declared
                    .column(&rec.stream, k)
                    .map_or_else(|| "text".to_string(), |c| c.sql_type);
                columns.push((k.clone(), ty));
            }
        }
        let defs: Vec<String> = columns
            .iter()
            .map(|(n, t)| format!("{} {t}", quote_ident(n)))
            .collect();
        let pk = if key.is_empty() {
            String::new()
        } else {
            format!(
                ", PRIMARY KEY ({})",
                key.iter()
                    .map(|k| quote_ident(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let client = self.client()?;
        if name.schema != "public" {
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {}",
                    quote_ident(&name.schema)
                ))
                .map_err(|e| {
                    Failed::Fatal(format!("cannot create schema `{}`: {e}", name.schema))
                })?;
        }
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {} ({}{pk})",
                name.quoted(),
                defs.join(", ")
            ))
            .map_err(|e| Failed::Fatal(format!("cannot create table `{name}`: {e}")))?;
        tracing::info!(table = %name, columns = columns.len(), key = %key.join(","), "created table");
        // As the catalog has it (the types to cast to, without modifiers).
        let mut table = self.describe(name)?.ok_or_else(|| {
            Failed::Fatal(format!("table `{name}` was created but cannot be found"))
        })?;
        table.key = key;
        Ok(table)
    }

    /// The type of a column created for field `field` of `rec`: the type
    /// the source declares for it, else one that fits its value.
    fn column_type(
        &self,
        table: &TableName,
        rec: &Record<'_>,
        field: &str,
        v: &Value<'_>,
    ) -> String {
        match self.declared.column(&rec.stream, field) {
            Some(c) => {
                if let Some(source) = &c.source_type {
                    tracing::info!(table = %table, column = field, source_type = %source, created_as = %c.sql_type, "the source's column type is one another database may lack (an enum, a composite, an extension's type): created as its text form");
                }
                c.sql_type
            }
            None => sql_type(v).to_string(),
        }
    }

    /// One attempt at the whole batch, set-based.
    fn write_batch(&mut self, records: &[Record<'_>]) -> Result<SinkCommit, Failed> {
        let mut refused = Vec::new();
        // The batch's tables in first-seen order, and each record's place
        // among them: looked up once per run of records of one stream.
        let mut order: Vec<TableName> = Vec::new();
        let mut at: Vec<Option<usize>> = Vec::with_capacity(records.len());
        let mut last: Option<(&str, usize)> = None;
        for (i, rec) in records.iter().enumerate() {
            if let Some((stream, k)) = last
                && stream == rec.stream.as_ref()
                && !crate::conventions::is_truncate(rec)
                && self
                    .tables
                    .get(&order[k])
                    .is_some_and(|t| rec.fields.iter().all(|(n, _)| t.type_of(n).is_some()))
            {
                at.push(Some(k));
                continue;
            }
            last = None;
            match self.target(rec)? {
                Ok(Some(name)) => {
                    let k = match order.iter().position(|o| *o == name) {
                        Some(k) => k,
                        None => {
                            order.push(name);
                            order.len() - 1
                        }
                    };
                    last = Some((rec.stream.as_ref(), k));
                    at.push(Some(k));
                }
                Ok(None) => at.push(None),
                Err(reason) => {
                    refused.push(Refused::new(i, reason));
                    at.push(None);
                }
            }
        }
        // Plan per table.
        let mut plans: Vec<Vec<Segment<'_>>> = order.iter().map(|_| Vec::new()).collect();
        let mut inserts: Vec<Vec<usize>> = order.iter().map(|_| Vec::new()).collect();
        let insert_mode = self.mode() == WriteMode::Insert;
        for (i, rec) in records.iter().enumerate() {
            let Some(k) = at[i] else { continue };
            let name = &order[k];
            let table = &self.tables[name];
            if let Some(r) = lacking_column(name, table, rec, i) {
                refused.push(r);
                continue;
            }
            if insert_mode {
                if rec.op == Operation::Delete {
                    refused.push(Refused::new(
                        i,
                        "a delete cannot be applied in `mode = \"insert\"`".into(),
                    ));
                } else {
                    inserts[k].push(i);
                }
                continue;
            }
            let target = Target { key: &table.key };
            if let Err(r) = plan::add(&mut plans[k], &target, i, rec) {
                refused.push(Refused::new(r.record, r.reason));
            }
        }
        let tables = self.tables.clone();
        let url = self.config.url.clone();
        let mut gates = std::mem::take(&mut self.copy_gates);
        let applied = (|| {
            let client = self.client()?;
            let mut tx = client
                .transaction()
                .map_err(|e| Failed::Connection(e.to_string()))?;
            for (k, name) in order.iter().enumerate() {
                let table = &tables[name];
                if insert_mode {
                    let rows = inserts[k].iter().map(|&i| field_texts(&records[i]));
                    load::insert(&mut tx, name, table, rows).map_err(|e| e.into_failed(&url))?;
                    continue;
                }
                let gate = gates.entry(name.clone()).or_default();
                for seg in &plans[k] {
                    apply_segment(&mut tx, name, table, seg, records, Some(&mut *gate))
                        .map_err(|e| e.into_failed(&url))?;
                }
            }
            tx.commit().map_err(|e| classify(&e, &url))
        })();
        self.copy_gates = gates;
        applied?;
        // Every record not refused counts as written (several updates of
        // one key are one row but several records; a truncate of a table
        // that does not exist writes nothing).
        Ok(SinkCommit {
            written: (records.len() - refused.len()) as u64,
            refused,
            state: None,
        })
    }

    /// The batch record by record, each in a savepoint: refused records are
    /// reported, the rest committed.
    fn write_one_by_one(&mut self, records: &[Record<'_>]) -> Result<SinkCommit, Failed> {
        let mut refused = Vec::new();
        let mut written = 0u64;
        let mut names = Vec::with_capacity(records.len());
        for rec in records {
            names.push(self.target(rec)?);
        }
        let tables = self.tables.clone();
        let insert_mode = self.mode() == WriteMode::Insert;
        let url = self.config.url.clone();
        let client = self.client()?;
        let mut tx = client
            .transaction()
            .map_err(|e| Failed::Connection(e.to_string()))?;
        for (i, rec) in records.iter().enumerate() {
            let name = match &names[i] {
                Ok(Some(n)) => n,
                Ok(None) => {
                    written += 1;
                    continue;
                }
                Err(reason) => {
                    refused.push(Refused::new(i, reason.clone()));
                    continue;
                }
            };
            let Some(table) = tables.get(name) else {
                continue;
            };
            if let Some(r) = lacking_column(name, table, rec, i) {
                refused.push(r);
                continue;
            }
            let mut sp = tx
                .savepoint("one")
                .map_err(|e| Failed::Connection(e.to_string()))?;
            let result: Result<(), String> = (|| {
                if insert_mode {
                    if rec.op == Operation::Delete {
                        return Err("a delete cannot be applied in `mode = \"insert\"`".into());
                    }
                    let rows = std::iter::once(field_texts(rec));
                    return load::insert(&mut sp, name, table, rows)
                        .map_err(|e| e.into_reason(&url));
                }
                let mut segs = Vec::new();
                plan::add(&mut segs, &Target { key: &table.key }, i, rec).map_err(|r| r.reason)?;
                for seg in &segs {
                    apply_segment(&mut sp, name, table, seg, records, None)
                        .map_err(|e| e.into_reason(&url))?;
                }
                Ok(())
            })();
            match result {
                Ok(()) => {
                    sp.commit().map_err(|e| Failed::Connection(e.to_string()))?;
                    written += 1;
                }
                Err(reason) => {
                    sp.rollback()
                        .map_err(|e| Failed::Connection(e.to_string()))?;
                    refused.push(Refused::new(i, reason));
                }
            }
        }
        tx.commit().map_err(|e| Failed::Connection(e.to_string()))?;
        Ok(SinkCommit {
            written,
            refused,
            state: None,
        })
    }
}

fn classify(e: &postgres::Error, url: &str) -> Failed {
    let text = pg::explain(e, url);
    if pg::is_connection_error(e) {
        Failed::Connection(text)
    } else {
        Failed::Data(text)
    }
}

/// The SQL type a column created for `v` gets.
fn sql_type(v: &Value<'_>) -> &'static str {
    match v {
        Value::Null | Value::Text(_) => "text",
        Value::Bool(_) => "boolean",
        Value::Int(_) => "bigint",
        Value::Float(_) => "double precision",
        Value::Bytes(_) => "bytea",
        Value::Timestamp(_) => "timestamptz",
        Value::Json(_) => "jsonb",
    }
}

/// Keys sent as parameters and joined to a table: one text array per key
/// column, `unnest`ed as `d(k0, k1, ...)`, matched to the table `t`.
struct KeyJoin<'k> {
    arrays: Vec<Vec<Option<&'k str>>>,
    /// `unnest($1::text[], ...)`.
    unnest: String,
    /// `k0, k1, ...`.
    aliases: String,
    /// `t."id" = d.k0::bigint AND ...`.
    cond: String,
}

impl<'k> KeyJoin<'k> {
    fn new(table: &TargetTable, keys: impl Iterator<Item = &'k Key>) -> Self {
        let mut arrays: Vec<Vec<Option<&str>>> = vec![Vec::new(); table.key.len()];
        for k in keys {
            for (a, v) in arrays.iter_mut().zip(k.iter()) {
                a.push(v.as_deref());
            }
        }
        let n = table.key.len();
        let params: Vec<String> = (1..=n).map(|i| format!("${i}::text[]")).collect();
        let aliases: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
        let cond: Vec<String> = table
            .key
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let ty = table.type_of(k).unwrap_or("text");
                format!("t.{} = d.k{i}::{ty}", quote_ident(k))
            })
            .collect();
        KeyJoin {
            arrays,
            unnest: format!("unnest({})", params.join(", ")),
            aliases: aliases.join(", "),
            cond: cond.join(" AND "),
        }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.arrays
            .iter()
            .map(|a| a as &(dyn ToSql + Sync))
            .collect()
    }
}

/// `DELETE` of a set of keys.
fn delete_keys(
    tx: &mut postgres::Transaction<'_>,
    name: &TableName,
    table: &TargetTable,
    keys: &[&Key],
) -> Result<(), postgres::Error> {
    let j = KeyJoin::new(table, keys.iter().copied());
    let sql = format!(
        "DELETE FROM {} t USING {} AS d({}) WHERE {}",
        name.quoted(),
        j.unnest,
        j.aliases,
        j.cond
    );
    tx.execute(sql.as_str(), &j.params())?;
    Ok(())
}

/// Why a segment of a plan could not be applied.
enum ApplyError {
    /// The database refused a statement.
    Db(postgres::Error),
    /// A row cannot be written without losing values (why; the batch is
    /// then written record by record, and the record refused).
    Unfillable(String),
    /// A `COPY` stream broke off (the connection is gone).
    Lost(String),
}

impl From<postgres::Error> for ApplyError {
    fn from(e: postgres::Error) -> Self {
        ApplyError::Db(e)
    }
}

impl ApplyError {
    /// As a failure of the set-based attempt: data errors send the batch
    /// record by record.
    fn into_failed(self, url: &str) -> Failed {
        match self {
            ApplyError::Db(e) => classify(&e, url),
            ApplyError::Unfillable(reason) => Failed::Data(reason),
            ApplyError::Lost(message) => Failed::Connection(message),
        }
    }

    /// As the reason a record is refused.
    fn into_reason(self, url: &str) -> String {
        match self {
            ApplyError::Db(e) => pg::explain(&e, url),
            ApplyError::Unfillable(reason) | ApplyError::Lost(reason) => reason,
        }
    }
}

/// Applies one segment of a table's plan: truncate; the rows that moved or
/// keep unchanged values read as they are; deletes (rows moved away,
/// deleted, or replaced whole); then upserts. `gate`: whether the upserts
/// may be tried with `COPY` when every one comes from a snapshot row or an
/// insert (`records` are the batch's, which the plan's rows index).
fn apply_segment(
    tx: &mut postgres::Transaction<'_>,
    name: &TableName,
    table: &TargetTable,
    seg: &Segment<'_>,
    records: &[Record<'_>],
    gate: Option<&mut load::CopyGate>,
) -> Result<(), ApplyError> {
    if seg.truncate {
        tx.batch_execute(&format!("TRUNCATE {}", name.quoted()))?;
    }
    let base_key = |key: &'_ Key, base: &'_ Base| -> Option<Key> {
        match base {
            Base::Own => Some(key.clone()),
            Base::Moved(from) => Some(from.clone()),
            Base::Fresh => None,
        }
    };
    let wanted: Vec<Key> = seg
        .rows
        .iter()
        .filter_map(|(key, op, _)| match op {
            RowOp::Upsert(u) if u.needs_base() => base_key(key, &u.base),
            _ => None,
        })
        .collect();
    let bases = if wanted.is_empty() {
        HashMap::new()
    } else {
        read_rows(tx, name, table, &wanted)?
    };
    let mut deletes: Vec<&Key> = Vec::new();
    let mut upserts: Vec<load::Row<'_>> = Vec::new();
    let mut fresh = true;
    for (key, op, last) in &seg.rows {
        let u = match op {
            RowOp::Delete => {
                deletes.push(key);
                continue;
            }
            RowOp::Upsert(u) => u,
        };
        fresh &= matches!(
            records.get(*last).map(|r| r.op),
            Some(Operation::Snapshot | Operation::Insert)
        );
        if u.base != Base::Own {
            // Moved here or re-created: whatever this key held goes.
            deletes.push(key);
        }
        let mut row: load::Row<'_> = u
            .fields
            .iter()
            .map(|(n, v)| (*n, load::Cell::Value(v)))
            .collect();
        // Only rows that moved or keep unchanged values have a base to look
        // up (no key copied for the others: every snapshot row).
        let base = match (&u.base, u.needs_base()) {
            (_, false) | (Base::Fresh, true) => None,
            (Base::Own, true) => bases.get(key),
            (Base::Moved(from), true) => bases.get(from),
        };
        match base {
            Some(old) if matches!(u.base, Base::Moved(_)) => {
                // The row moves with every column the record does not carry.
                for ((col, _), v) in table.columns.iter().zip(old) {
                    if !row.iter().any(|(n, _)| *n == col.as_str()) {
                        row.push((col.as_str(), load::Cell::Text(v.clone())));
                    }
                }
            }
            Some(_) => {} // Its own row exists: the upsert keeps the rest.
            None if !u.unchanged.is_empty() => {
                return Err(ApplyError::Unfillable(unfillable(
                    name,
                    key,
                    &u.base,
                    &u.unchanged,
                )));
            }
            None => {}
        }
        upserts.push(row);
    }
    if !deletes.is_empty() {
        delete_keys(tx, name, table, &deletes)?;
    }
    load::upsert(tx, name, table, upserts, gate.filter(|_| fresh))
}

/// Why a row whose unchanged values cannot be found is refused.
fn unfillable(name: &TableName, key: &Key, base: &Base, unchanged: &[String]) -> String {
    let show = |k: &Key| {
        k.iter()
            .map(|v| v.as_deref().unwrap_or("null"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let at = match base {
        Base::Moved(from) => format!("under the old key ({})", show(from)),
        _ => format!("under key ({})", show(key)),
    };
    format!(
        "the source did not send column(s) `{}` of table `{name}` because they did not change (values stored out of line), and the target has no row {at} to keep them from: writing the row would make them null. The row never reached the target (look for an earlier dead letter of it); copy it again (`sluice run --reset` re-reads the tables)",
        unchanged.join("`, `")
    )
}

/// The rows under `keys` (every column as text, in the table's column
/// order), by key; keys without a row are absent.
fn read_rows(
    tx: &mut postgres::Transaction<'_>,
    name: &TableName,
    table: &TargetTable,
    keys: &[Key],
) -> Result<HashMap<Key, Vec<Option<String>>>, postgres::Error> {
    let j = KeyJoin::new(table, keys.iter());
    let select: Vec<String> = table
        .columns
        .iter()
        .map(|(c, _)| format!("t.{}::text", quote_ident(c)))
        .collect();
    let sql = format!(
        "SELECT d.n, {} FROM {} WITH ORDINALITY AS d({}, n) JOIN {} t ON {}",
        select.join(", "),
        j.unnest,
        j.aliases,
        name.quoted(),
        j.cond
    );
    let refs = j.params();
    let mut out = HashMap::new();
    for row in tx.query(sql.as_str(), &refs)? {
        let n: i64 = row.get(0);
        let Some(key) = usize::try_from(n - 1).ok().and_then(|i| keys.get(i)) else {
            continue;
        };
        let values = (0..table.columns.len())
            .map(|i| row.get::<_, Option<String>>(i + 1))
            .collect();
        out.insert(key.clone(), values);
    }
    Ok(out)
}

/// A record's fields as text, as the plan writes them.
/// The refusal of a record with a field `table` has no column for (left
/// there by `on_schema_change = "dead_letter"`).
fn lacking_column(
    name: &TableName,
    table: &TargetTable,
    rec: &Record<'_>,
    index: usize,
) -> Option<Refused> {
    let (bad, _) = rec
        .fields
        .iter()
        .find(|(n, _)| table.type_of(n).is_none())?;
    Some(Refused::schema_change(
        index,
        format!(
            "table `{name}` has no column `{bad}` (a new field of stream `{}`; `on_schema_change = \"dead_letter\"`): add the column, then `sluice replay --code schema_change`",
            rec.stream
        ),
    ))
}

fn field_texts<'r>(rec: &'r Record<'r>) -> load::Row<'r> {
    rec.fields
        .iter()
        .map(|(n, v)| (n.as_ref(), load::Cell::Value(v)))
        .collect()
}

impl Sink for PostgresSink {
    fn describe(&self) -> String {
        self.at.clone()
    }

    fn use_declared_types(&mut self, types: Arc<DeclaredTypes>) {
        self.declared = types;
    }

    fn open(&mut self, _state: Option<&str>) -> Result<(), SinkError> {
        // Nothing to undo: a batch is one transaction, committed or not.
        match self.client() {
            Ok(_) => Ok(()),
            Err(Failed::Connection(m) | Failed::Data(m) | Failed::Fatal(m)) => Err(self.err(m)),
        }
    }

    fn write(&mut self, records: &[Record<'_>]) -> Result<SinkCommit, SinkError> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(200);
        loop {
            let attempt = match self.write_batch(records) {
                Err(Failed::Data(why)) => {
                    tracing::debug!(error = %why, "batch refused as a whole; writing it record by record");
                    self.write_one_by_one(records)
                }
                other => other,
            };
            match attempt {
                Ok(c) => return Ok(c),
                Err(Failed::Fatal(m)) => return Err(self.err(m)),
                Err(Failed::Data(m)) => return Err(self.err(m)),
                Err(Failed::Connection(m)) => {
                    self.client = None;
                    if started.elapsed() >= Duration::from_secs(self.config.retry_timeout_s) {
                        return Err(self.err(format!(
                            "{m}; gave up after {} s (`retry_timeout_s`): the batch is written again after a restart",
                            self.config.retry_timeout_s
                        )));
                    }
                    tracing::warn!(error = %m, retry_in_ms = delay.as_millis() as u64, "sink connection lost; writing the batch again");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn created_columns_follow_the_value_types() {
        assert_eq!(sql_type(&Value::Int(1)), "bigint");
        assert_eq!(sql_type(&Value::Timestamp(0)), "timestamptz");
        assert_eq!(sql_type(&Value::Json("{}".into())), "jsonb");
        assert_eq!(sql_type(&Value::Null), "text");
    }
}
