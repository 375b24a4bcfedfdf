//! How rows go into a table: `COPY ... FROM STDIN` (text format) when there
//! are many and they are expected to be new, else one
//! `INSERT ... SELECT FROM unnest(...)` per column shape, with
//! `ON CONFLICT (key) DO UPDATE` for upserts.
//!
//! Both give a value to the column the same way: its text goes through the
//! input function of the column's type and the column's modifier is then
//! checked (an over-long text is refused, never cut). `COPY` skips the
//! text arrays, the casts and the conflict handling, which is most of the
//! cost of a snapshot; it cannot update a row that exists, so upserts try
//! it inside a savepoint and go back to `INSERT ... ON CONFLICT` for the
//! batch when a key is already there (a resumed snapshot, a target that
//! already holds rows). A table whose copies keep meeting existing keys is
//! not tried again for a while ([`CopyGate`]).
//!
//! `COPY` does not fire rules (`CREATE RULE`): a table with `INSERT` or
//! `UPDATE` rules is written with `INSERT` only (and only in
//! `mode = "insert"`: PostgreSQL refuses `ON CONFLICT` on it). Triggers and
//! constraints run as for `INSERT`.

use std::io::Write;

use postgres::error::SqlState;
use postgres::types::ToSql;
use sluice_codec::Value;

use super::{ApplyError, TargetTable};
use crate::pg::{TableName, copy_text, values};
use crate::sql::{on_conflict, quote_ident};

/// A value to write: a record's, or one read from the table as text.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cell<'r> {
    /// A record's value.
    Value(&'r Value<'r>),
    /// A column's text form (`None`: null).
    Text(Option<String>),
}

impl Cell<'_> {
    /// The text PostgreSQL reads the value from (`None`: null).
    fn text(&self) -> Option<String> {
        match self {
            Cell::Value(v) => values::to_text(v),
            Cell::Text(t) => t.clone(),
        }
    }

    /// Appends the value as a `COPY` text field, without an intermediate
    /// string for text and numbers.
    fn write_copy(&self, out: &mut Vec<u8>) {
        match self {
            Cell::Value(Value::Text(t) | Value::Json(t)) => copy_text::write_field(Some(t), out),
            Cell::Value(Value::Int(i)) => {
                let _ = write!(out, "{i}");
            }
            Cell::Value(Value::Null) => copy_text::write_field(None, out),
            Cell::Value(v) => copy_text::write_field(values::to_text(v).as_deref(), out),
            Cell::Text(t) => copy_text::write_field(t.as_deref(), out),
        }
    }
}

/// A row: column names and values.
pub(super) type Row<'r> = Vec<(&'r str, Cell<'r>)>;

/// Fewer rows than this go in by `INSERT`: a `COPY` costs a round trip
/// more (and an upsert's savepoint another), which only pays off in bulk.
const COPY_MIN_ROWS: usize = 64;

/// How much `COPY` text is written before it is sent.
const COPY_PIECE: usize = 64 * 1024;

/// The longest a table goes without trying `COPY` after a conflict, in
/// batches.
const MAX_SKIP: u32 = 256;

/// Whether a table's new rows are tried with `COPY`: after a copy met an
/// existing key, the next 1, 2, 4, ... up to [`MAX_SKIP`] batches go
/// straight to `INSERT ... ON CONFLICT`; a copy that goes through resets it.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct CopyGate {
    skip: u32,
    backoff: u32,
}

impl CopyGate {
    /// True when this batch should try `COPY` (counts a skipped batch).
    fn open(&mut self) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        true
    }

    /// A copy met an existing key.
    fn conflicted(&mut self) {
        self.backoff = (self.backoff * 2).clamp(1, MAX_SKIP);
        self.skip = self.backoff;
    }

    /// A copy went through.
    fn copied(&mut self) {
        self.backoff = 0;
    }
}

/// Rows of one column shape, column by column.
struct Shape<'r> {
    columns: Vec<&'r str>,
    values: Vec<Vec<Cell<'r>>>,
}

impl Shape<'_> {
    fn rows(&self) -> usize {
        self.values.first().map_or(0, Vec::len)
    }
}

/// Groups rows by their column names (in order), keeping first-seen order.
fn shapes<'r>(rows: impl IntoIterator<Item = Row<'r>>) -> Vec<Shape<'r>> {
    let mut shapes: Vec<Shape<'r>> = Vec::new();
    for fields in rows {
        let at = match shapes.iter().position(|s| {
            s.columns.len() == fields.len()
                && s.columns.iter().zip(&fields).all(|(a, (b, _))| a == b)
        }) {
            Some(at) => at,
            None => {
                shapes.push(Shape {
                    columns: fields.iter().map(|(n, _)| *n).collect(),
                    values: vec![Vec::new(); fields.len()],
                });
                shapes.len() - 1
            }
        };
        for (a, (_, v)) in shapes[at].values.iter_mut().zip(fields) {
            a.push(v);
        }
    }
    shapes
}

/// Inserts rows with no conflict check (`mode = "insert"`, or a table
/// without a key): a key that exists is an error of the batch.
pub(super) fn insert<'r>(
    tx: &mut postgres::Transaction<'_>,
    name: &TableName,
    table: &TargetTable,
    rows: impl IntoIterator<Item = Row<'r>>,
) -> Result<(), ApplyError> {
    for shape in shapes(rows) {
        if shape.rows() >= COPY_MIN_ROWS && !table.has_rules {
            copy_in(tx, name, &shape)?;
        } else {
            run_insert(tx, name, table, &shape, false)?;
        }
    }
    Ok(())
}

/// Upserts rows by the table's key. `fresh`: the rows are expected to be
/// new (snapshot rows, inserts), so `COPY` is tried first when the gate is
/// open; `None` when some are updates.
pub(super) fn upsert<'r>(
    tx: &mut postgres::Transaction<'_>,
    name: &TableName,
    table: &TargetTable,
    rows: impl IntoIterator<Item = Row<'r>>,
    fresh: Option<&mut CopyGate>,
) -> Result<(), ApplyError> {
    let shapes = shapes(rows);
    if table.key.is_empty() {
        // Nothing to conflict on: an upsert is an insert.
        for shape in &shapes {
            run_insert(tx, name, table, shape, false)?;
        }
        return Ok(());
    }
    let total: usize = shapes.iter().map(Shape::rows).sum();
    if let Some(gate) = fresh
        && total >= COPY_MIN_ROWS
        && !table.has_rules
        && gate.open()
    {
        tx.batch_execute("SAVEPOINT sluice_copy")?;
        match shapes.iter().try_for_each(|s| copy_in(tx, name, s)) {
            Ok(()) => {
                tx.batch_execute("RELEASE SAVEPOINT sluice_copy")?;
                gate.copied();
                return Ok(());
            }
            Err(ApplyError::Db(e)) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT sluice_copy")?;
                gate.conflicted();
                tracing::debug!(table = %name, rows = total, "COPY met a key the table holds: upserting the batch instead");
            }
            Err(e) => return Err(e),
        }
    }
    for shape in &shapes {
        run_insert(tx, name, table, shape, true)?;
    }
    Ok(())
}

/// `COPY name (columns) FROM STDIN` of one shape's rows.
fn copy_in(
    tx: &mut postgres::Transaction<'_>,
    name: &TableName,
    shape: &Shape<'_>,
) -> Result<(), ApplyError> {
    let rows = shape.rows();
    if shape.columns.is_empty() || rows == 0 {
        return Ok(());
    }
    let columns: Vec<String> = shape.columns.iter().map(|c| quote_ident(c)).collect();
    let sql = format!("COPY {} ({}) FROM STDIN", name.quoted(), columns.join(", "));
    let mut writer = tx.copy_in(sql.as_str())?;
    // Sent in pieces as they are written, so that the server parses and
    // inserts the first rows while the next are being written.
    let mut text = Vec::with_capacity(COPY_PIECE + 4096);
    for r in 0..rows {
        for (c, column) in shape.values.iter().enumerate() {
            if c > 0 {
                text.push(b'\t');
            }
            column[r].write_copy(&mut text);
        }
        text.push(b'\n');
        if text.len() >= COPY_PIECE || r + 1 == rows {
            send(&mut writer, &text, name)?;
            text.clear();
        }
    }
    writer.finish()?;
    Ok(())
}

/// Writes `text` to a `COPY`; a broken stream abandons it (unfinished).
fn send(
    writer: &mut postgres::CopyInWriter<'_>,
    text: &[u8],
    name: &TableName,
) -> Result<(), ApplyError> {
    writer.write_all(text).map_err(|e| {
        // The writer wraps the client's error.
        match e
            .into_inner()
            .map(|inner| inner.downcast::<postgres::Error>())
        {
            Some(Ok(db)) => ApplyError::Db(*db),
            Some(Err(other)) => ApplyError::Lost(format!("COPY into `{name}`: {other}")),
            None => ApplyError::Lost(format!("COPY into `{name}` broke off")),
        }
    })
}

/// `INSERT ... SELECT FROM unnest(text arrays)` of one shape's rows, each
/// value cast to its column's type (without modifier); with `upsert`,
/// `ON CONFLICT (key) DO UPDATE` of the columns the shape carries.
fn run_insert(
    tx: &mut postgres::Transaction<'_>,
    name: &TableName,
    table: &TargetTable,
    shape: &Shape<'_>,
    upsert: bool,
) -> Result<(), ApplyError> {
    let cols = &shape.columns;
    if cols.is_empty() {
        return Ok(());
    }
    let quoted: Vec<String> = cols.iter().map(|c| quote_ident(c)).collect();
    let aliases: Vec<String> = (0..cols.len()).map(|i| format!("c{i}")).collect();
    let select: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("d.c{i}::{}", table.type_of(c).unwrap_or("text")))
        .collect();
    let params: Vec<String> = (1..=cols.len()).map(|i| format!("${i}::text[]")).collect();
    let mut sql = format!(
        "INSERT INTO {} ({}) SELECT {} FROM unnest({}) AS d({})",
        name.quoted(),
        quoted.join(", "),
        select.join(", "),
        params.join(", "),
        aliases.join(", ")
    );
    if upsert && !table.key.is_empty() {
        sql.push_str(&on_conflict(&table.key, cols.iter().copied()));
    }
    let arrays: Vec<Vec<Option<String>>> = shape
        .values
        .iter()
        .map(|column| column.iter().map(Cell::text).collect())
        .collect();
    let refs: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
    tx.execute(sql.as_str(), &refs)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rows_group_by_shape_in_first_seen_order() {
        let t = |v: &str| Cell::Text(Some(v.into()));
        let rows: Vec<Row<'_>> = vec![
            vec![("id", t("1")), ("a", Cell::Text(None))],
            vec![("id", t("2"))],
            vec![("id", t("3")), ("a", t("x"))],
            vec![("a", t("y")), ("id", t("4"))],
        ];
        let s = shapes(rows);
        let got: Vec<(Vec<&str>, usize)> =
            s.iter().map(|s| (s.columns.clone(), s.rows())).collect();
        assert_eq!(
            got,
            [(vec!["id", "a"], 2), (vec!["id"], 1), (vec!["a", "id"], 1)]
        );
        assert_eq!(s[0].values[1], [Cell::Text(None), t("x")]);
    }

    #[test]
    fn cells_write_the_text_postgres_reads() {
        let values = [
            Value::Int(-42),
            Value::Text("a\tb\\".into()),
            Value::Json("{\"k\": \"\\n\"}".into()),
            Value::Null,
            Value::Bool(true),
            Value::Bytes(vec![0, 255].into()),
            Value::Float(1.5),
            Value::Timestamp(1_704_164_645_500_000),
        ];
        let mut line = Vec::new();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                line.push(b'\t');
            }
            Cell::Value(v).write_copy(&mut line);
        }
        assert_eq!(
            String::from_utf8(line.clone()).unwrap(),
            "-42\ta\\tb\\\\\t{\"k\": \"\\\\n\"}\t\\N\ttrue\t\\\\x00ff\t1.5\t2024-01-02T03:04:05.500Z"
        );
        // Read back, each field is the text the unnest path sends.
        let mut fields = Vec::new();
        copy_text::parse_row(&line, &mut fields).unwrap();
        let texts: Vec<Option<String>> = values.iter().map(|v| Cell::Value(v).text()).collect();
        assert_eq!(fields, texts);
    }

    #[test]
    fn a_conflict_closes_the_gate_for_longer_each_time_and_a_copy_resets_it() {
        let mut g = CopyGate::default();
        assert!(g.open());
        g.conflicted();
        assert!(!g.open());
        assert!(g.open());
        g.conflicted();
        let closed = (0..10).take_while(|_| !g.open()).count();
        assert_eq!(closed, 2);
        for _ in 0..20 {
            g.conflicted();
        }
        let closed = (0..1000).take_while(|_| !g.open()).count();
        assert_eq!(closed, MAX_SKIP as usize);
        g.copied();
        g.conflicted();
        let closed = (0..10).take_while(|_| !g.open()).count();
        assert_eq!(closed, 1);
    }
}
