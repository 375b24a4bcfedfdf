//! A batch as set-based statements: per table, the final state of each key
//! (one transaction makes the batch visible at once, so only the final
//! state matters), split where a `TRUNCATE` falls.

use std::collections::HashMap;

use sluice_codec::{Operation, Record, Value};

use crate::pg::values;
use crate::sources::postgres::records::{OLD_KEY_HEADER, TRUNCATE_HEADER};

/// A key: the text forms of the key columns.
pub type Key = Vec<Option<String>>;

/// The final state of one key.
#[derive(Debug, Clone, PartialEq)]
pub enum RowOp<'r> {
    /// Insert or update with these fields (later records' fields win,
    /// fields a later record lacks keep the earlier value).
    Upsert(Vec<(&'r str, &'r Value<'r>)>),
    /// Delete the row.
    Delete,
}

/// A stretch of a table's changes between truncates.
#[derive(Debug, Default)]
pub struct Segment<'r> {
    /// Empty the table first.
    pub truncate: bool,
    /// Keys in first-seen order with their final state and the index of
    /// the last record that set it.
    pub rows: Vec<(Key, RowOp<'r>, usize)>,
    index: HashMap<Key, usize>,
}

impl<'r> Segment<'r> {
    fn set(&mut self, key: Key, op: RowOp<'r>, record: usize) {
        match self.index.get(&key) {
            Some(&i) => {
                let slot = &mut self.rows[i];
                slot.1 = match (std::mem::replace(&mut slot.1, RowOp::Delete), op) {
                    (RowOp::Upsert(mut old), RowOp::Upsert(new)) => {
                        for (n, v) in new {
                            match old.iter_mut().find(|(o, _)| *o == n) {
                                Some(f) => f.1 = v,
                                None => old.push((n, v)),
                            }
                        }
                        RowOp::Upsert(old)
                    }
                    (_, op) => op,
                };
                slot.2 = record;
            }
            None => {
                self.index.insert(key.clone(), self.rows.len());
                self.rows.push((key, op, record));
            }
        }
    }
}

/// What a record needs to become part of a plan.
pub struct Target<'a> {
    /// The key columns of the record's table.
    pub key: &'a [String],
}

/// Why a record cannot be planned (it goes to the dead-letter sink).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The record's index in the batch.
    pub record: usize,
    /// Why.
    pub reason: String,
}

/// Adds record `i` to `segments` (the table's list).
pub fn add<'r>(
    segments: &mut Vec<Segment<'r>>,
    target: &Target<'_>,
    i: usize,
    rec: &'r Record<'r>,
) -> Result<(), Refusal> {
    let refuse = |reason: String| Refusal { record: i, reason };
    if is_truncate(rec) {
        segments.push(Segment {
            truncate: true,
            ..Default::default()
        });
        return Ok(());
    }
    if segments.is_empty() {
        segments.push(Segment::default());
    }
    let seg = segments
        .last_mut()
        .ok_or_else(|| refuse("internal: no segment".into()))?;
    let key = key_of(rec, target.key).map_err(refuse)?;
    if rec.op == Operation::Delete {
        seg.set(key, RowOp::Delete, i);
        return Ok(());
    }
    if let Some(old) = old_key(rec, target.key).map_err(refuse)?
        && old != key
    {
        seg.set(old, RowOp::Delete, i);
    }
    let fields = rec.fields.iter().map(|(n, v)| (n.as_ref(), v)).collect();
    seg.set(key, RowOp::Upsert(fields), i);
    Ok(())
}

/// True for the record a source `TRUNCATE` gives.
pub fn is_truncate(rec: &Record<'_>) -> bool {
    rec.op == Operation::Delete && rec.headers.iter().any(|(n, _)| n == TRUNCATE_HEADER)
}

/// The key of a record.
pub fn key_of(rec: &Record<'_>, key: &[String]) -> Result<Key, String> {
    key.iter()
        .map(|k| match rec.get(k) {
            None | Some(Value::Null) => Err(format!("key field `{k}` is missing or null")),
            Some(v) => Ok(values::to_text(v)),
        })
        .collect()
}

/// The old key of an update that changed its key (`sluice-old-key`).
pub fn old_key(rec: &Record<'_>, key: &[String]) -> Result<Option<Key>, String> {
    let Some((_, raw)) = rec.headers.iter().find(|(n, _)| n == OLD_KEY_HEADER) else {
        return Ok(None);
    };
    let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(raw)
        .map_err(|e| format!("header `{OLD_KEY_HEADER}` is not a JSON object: {e}"))?;
    key.iter()
        .map(|k| match obj.get(k) {
            None => Err(format!(
                "header `{OLD_KEY_HEADER}` has no `{k}` (was the key field renamed by a plugin?)"
            )),
            Some(j) => Ok(values::to_text(&crate::value_json::json_to_value(j))),
        })
        .collect::<Result<Key, String>>()
        .map(Some)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn rec(op: Operation, fields: &[(&'static str, Value<'static>)]) -> Record<'static> {
        Record {
            op,
            stream: "t".into(),
            position: "".into(),
            event_time: None,
            key: Value::Null,
            headers: vec![],
            fields: fields
                .iter()
                .map(|(n, v)| (Cow::Borrowed(*n), v.clone()))
                .collect(),
        }
    }

    #[test]
    fn keeps_the_final_state_of_each_key() {
        let key = vec!["id".to_string()];
        let t = Target { key: &key };
        let recs = [
            rec(
                Operation::Insert,
                &[
                    ("id", Value::Int(1)),
                    ("a", Value::Int(1)),
                    ("b", Value::Int(1)),
                ],
            ),
            rec(
                Operation::Update,
                &[("id", Value::Int(1)), ("a", Value::Int(2))],
            ),
            rec(
                Operation::Insert,
                &[("id", Value::Int(2)), ("a", Value::Int(5))],
            ),
            rec(Operation::Delete, &[("id", Value::Int(2))]),
        ];
        let mut segs = Vec::new();
        for (i, r) in recs.iter().enumerate() {
            add(&mut segs, &t, i, r).unwrap();
        }
        assert_eq!(segs.len(), 1);
        let rows = &segs[0].rows;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, vec![Some("1".to_string())]);
        assert_eq!(
            rows[0].1,
            RowOp::Upsert(vec![
                ("id", &Value::Int(1)),
                ("a", &Value::Int(2)),
                ("b", &Value::Int(1))
            ])
        );
        assert_eq!(rows[0].2, 1);
        assert_eq!(rows[1].1, RowOp::Delete);
    }

    #[test]
    fn a_key_change_deletes_the_old_row() {
        let key = vec!["id".to_string()];
        let t = Target { key: &key };
        let mut r = rec(
            Operation::Update,
            &[("id", Value::Int(9)), ("a", Value::Int(1))],
        );
        r.headers
            .push((OLD_KEY_HEADER.into(), br#"{"id":3}"#.to_vec().into()));
        let mut segs = Vec::new();
        add(&mut segs, &t, 0, &r).unwrap();
        assert_eq!(segs[0].rows[0].0, vec![Some("3".to_string())]);
        assert_eq!(segs[0].rows[0].1, RowOp::Delete);
        assert_eq!(segs[0].rows[1].0, vec![Some("9".to_string())]);
    }

    #[test]
    fn a_truncate_starts_a_new_segment() {
        let key = vec!["id".to_string()];
        let t = Target { key: &key };
        let a = rec(Operation::Insert, &[("id", Value::Int(1))]);
        let mut tr = rec(Operation::Delete, &[]);
        tr.headers
            .push((TRUNCATE_HEADER.into(), b"1".to_vec().into()));
        let mut segs = Vec::new();
        add(&mut segs, &t, 0, &a).unwrap();
        add(&mut segs, &t, 1, &tr).unwrap();
        add(&mut segs, &t, 2, &a).unwrap();
        assert_eq!(segs.len(), 2);
        assert!(segs[1].truncate);
        assert_eq!(segs[1].rows.len(), 1);
    }

    #[test]
    fn refuses_records_without_their_key() {
        let key = vec!["id".to_string()];
        let t = Target { key: &key };
        let r = rec(Operation::Insert, &[("a", Value::Int(1))]);
        let mut segs = Vec::new();
        let e = add(&mut segs, &t, 4, &r).unwrap_err();
        assert_eq!(e.record, 4);
        assert!(e.reason.contains("key field `id` is missing"));
    }
}
