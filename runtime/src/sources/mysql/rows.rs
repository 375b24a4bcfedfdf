//! A table row (snapshot or binlog image) as a record.

use std::borrow::Cow;

use mysql_async::Value as My;
use sluice_codec::{Operation, Record, Value};

use super::ZeroDates;
use super::catalog::Table;
use super::values::{self, Bad, Origin};
use crate::conventions::KEY_HEADER;

/// A row as a record, and why it must be a dead letter instead, if so.
pub struct Built<'t> {
    /// The record (a value that could not be read is null in it).
    pub record: Record<'t>,
    /// What was wrong with the row, naming the column.
    pub bad: Option<String>,
}

/// Builds the record of one row image; `values` are in table order.
pub fn record<'t>(
    t: &'t Table,
    op: Operation,
    position: String,
    event_time: Option<i64>,
    row: &[My],
    from: Origin,
    zero: ZeroDates,
) -> Built<'t> {
    let mut bad = None;
    let mut fields = Vec::with_capacity(t.columns.len());
    for (c, v) in t.columns.iter().zip(row) {
        let value = match values::convert(c, v, from) {
            Ok(v) => v,
            Err(Bad::ZeroDate) if zero == ZeroDates::Null => Value::Null,
            Err(Bad::ZeroDate) => {
                bad.get_or_insert_with(|| {
                    format!(
                        "column `{}` holds a zero date, which `zero_dates = \"dead_letter\"` sends here",
                        c.name
                    )
                });
                Value::Null
            }
            Err(Bad::Invalid(why)) => {
                bad.get_or_insert_with(|| {
                    format!("column `{}` ({}): {why}", c.name, c.column_type)
                });
                Value::Null
            }
        };
        fields.push((Cow::Borrowed(c.name.as_str()), value));
    }
    let key = crate::conventions::key_value(&fields, &t.key);
    Built {
        record: Record {
            op,
            stream: Cow::Borrowed(t.stream.as_str()),
            position: Cow::Owned(position),
            event_time,
            key,
            headers: vec![(
                Cow::Borrowed(KEY_HEADER),
                Cow::Borrowed(t.key_names.as_bytes()),
            )],
            fields,
        },
        bad,
    }
}
