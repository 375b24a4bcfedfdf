//! Rows and changes as records: one shape for the snapshot and the stream.
//!
//! - `stream`: the table (`orders`, or `crm.orders` outside `public`);
//! - `op`: `snapshot`, `insert`, `update`, `delete`;
//! - `position`: the change's LSN (`snapshot@LSN` for snapshot rows);
//! - `event_time`: the commit time (the snapshot's start for its rows);
//! - `key`: the primary key value (a JSON array of texts when composite);
//! - headers: `sluice-key` (the key column names, comma-separated),
//!   `sluice-old-key` (JSON object of the old key, when an update changed
//!   the key), `sluice-truncate` (on the delete record a `TRUNCATE` gives),
//!   `sluice-unchanged` (JSON array of the columns an update does not carry
//!   because PostgreSQL did not send them: unchanged values stored out of
//!   line, "TOASTed");
//! - fields: the columns (a delete carries only the key; an update omits
//!   the columns `sluice-unchanged` lists: a sink keeps their current
//!   values, and moves them with the row when the key changed).

use std::borrow::Cow;

use sluice_codec::{Operation, Record, Value};

use crate::conventions::KEY_HEADER;

use crate::pg::values;

/// Builds a record from column names, type OIDs and text values.
pub struct RowBuilder<'a> {
    /// The record's stream (table).
    pub stream: &'a str,
    /// `sluice-key` header value.
    pub key_names: &'a str,
}

impl<'a> RowBuilder<'a> {
    /// A record from `(name, type oid, text)` columns, borrowing them;
    /// `key_positions` lists the positions of the key columns among them.
    pub fn record<'c>(
        &self,
        op: Operation,
        position: &'c str,
        event_time: Option<i64>,
        columns: impl Iterator<Item = (&'c str, u32, Option<&'c str>)>,
        key_positions: &[usize],
    ) -> Record<'c>
    where
        'a: 'c,
    {
        let fields: Vec<(Cow<'c, str>, Value<'c>)> = columns
            .map(|(name, oid, text)| {
                let v = text.map_or(Value::Null, |t| values::from_text(oid, t));
                (Cow::Borrowed(name), v)
            })
            .collect();
        let key = key_value(&fields, key_positions);
        Record {
            op,
            stream: Cow::Borrowed(self.stream),
            position: Cow::Borrowed(position),
            event_time,
            key,
            headers: vec![(
                Cow::Borrowed(KEY_HEADER),
                Cow::Borrowed(self.key_names.as_bytes()),
            )],
            fields,
        }
    }
}

pub use crate::conventions::key_value;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builds_typed_records_with_key_and_headers() {
        let b = RowBuilder {
            stream: "orders",
            key_names: "id",
        };
        let rec = b.record(
            Operation::Insert,
            "0/16B3748",
            Some(5),
            [
                ("id", values::oid::INT8, Some("7")),
                ("note", 25, None),
                ("total", 1700, Some("12.50")),
            ]
            .into_iter(),
            &[0],
        );
        assert_eq!(rec.key, Value::Int(7));
        assert_eq!(rec.get("note"), Some(&Value::Null));
        assert_eq!(rec.get("total"), Some(&Value::Text("12.50".into())));
        assert_eq!(rec.headers[0].1.as_ref(), b"id");
    }

    #[test]
    fn composite_keys_are_json_arrays() {
        let fields = vec![
            (Cow::Borrowed("a"), Value::Int(1)),
            (Cow::Borrowed("b"), Value::Text("x".into())),
        ];
        assert_eq!(
            key_value(&fields, &[0, 1]),
            Value::Json("[\"1\",\"x\"]".into())
        );
    }
}
