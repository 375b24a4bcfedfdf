//! A batch as set-based statements: per table, the final state of each key
//! (one transaction makes the batch visible at once, so only the final
//! state matters), split where a `TRUNCATE` falls.
//!
//! Values a record does not carry are never written as nulls by accident:
//! an update leaves absent columns as they are; an update that changed the
//! key moves the row, taking every column it does not carry from the row
//! under the old key; and the columns the source names as unchanged but did
//! not send (`sluice-unchanged`) must be found in the target, or the record
//! is refused with the reason.

use sluice_codec::{Operation, Record, Value};

use crate::conventions::{self, OLD_KEY_HEADER, is_truncate, unchanged_columns};
use crate::pg::values;

/// A key: the text forms of the key columns.
pub type Key = Vec<Option<String>>;

/// Where the columns an upsert does not carry come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Base {
    /// The row under this key as it was before the batch (a plain upsert:
    /// columns not carried keep their values).
    Own,
    /// The row under another key as it was before the batch (the key
    /// moved): the row at this key is replaced by it, updated.
    Moved(Key),
    /// None: the row was deleted earlier in the batch and inserted again,
    /// so it is replaced whole.
    Fresh,
}

/// Insert or update one key.
#[derive(Debug, Clone, PartialEq)]
pub struct Upsert<'r> {
    /// The fields (later records' fields win, fields a later record lacks
    /// keep the earlier value).
    pub fields: Vec<(&'r str, &'r Value<'r>)>,
    /// Where the columns `fields` lacks come from.
    pub base: Base,
    /// Columns the source left out as unchanged that no record of the
    /// batch carries: their values must come from the base row.
    pub unchanged: Vec<String>,
}

impl<'r> Upsert<'r> {
    /// Later fields over these; `unchanged` keeps what no field gives.
    fn merge(mut self, later: Upsert<'r>) -> Self {
        for (n, v) in later.fields {
            match self.fields.iter_mut().find(|(o, _)| *o == n) {
                Some(f) => f.1 = v,
                None => self.fields.push((n, v)),
            }
        }
        for u in later.unchanged {
            if !self.unchanged.contains(&u) {
                self.unchanged.push(u);
            }
        }
        let fields = &self.fields;
        self.unchanged
            .retain(|u| !fields.iter().any(|(n, _)| n == u));
        self
    }

    /// True when the base row must be read before writing: to move its
    /// columns, or to make sure the unchanged columns exist.
    pub fn needs_base(&self) -> bool {
        matches!(self.base, Base::Moved(_)) || !self.unchanged.is_empty()
    }
}

/// The final state of one key.
#[derive(Debug, Clone, PartialEq)]
pub enum RowOp<'r> {
    /// Insert or update.
    Upsert(Upsert<'r>),
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
    /// Where each key is in `rows` (every row of a snapshot batch is a
    /// new key: a fast hasher, seeded per process).
    index: foldhash::HashMap<Key, usize>,
}

impl<'r> Segment<'r> {
    /// Applies a record's change of `key` on top of what the batch did to it.
    fn set(&mut self, key: Key, op: RowOp<'r>, record: usize) {
        match self.index.get(&key) {
            Some(&i) => {
                let slot = &mut self.rows[i];
                slot.1 = match (std::mem::replace(&mut slot.1, RowOp::Delete), op) {
                    (RowOp::Upsert(old), RowOp::Upsert(new)) => RowOp::Upsert(old.merge(new)),
                    // Deleted, then written again: the new row replaces
                    // the old one whole.
                    (RowOp::Delete, RowOp::Upsert(mut new)) => {
                        new.base = Base::Fresh;
                        RowOp::Upsert(new)
                    }
                    (_, RowOp::Delete) => RowOp::Delete,
                };
                slot.2 = record;
            }
            None => self.put(key, op, record),
        }
    }

    /// Sets the state of `key`, whatever it was.
    fn put(&mut self, key: Key, op: RowOp<'r>, record: usize) {
        match self.index.get(&key) {
            Some(&i) => self.rows[i] = (key, op, record),
            None => {
                self.index.insert(key.clone(), self.rows.len());
                self.rows.push((key, op, record));
            }
        }
    }

    /// The row under `from` moves to `to`, updated by `change`.
    fn moved(&mut self, from: Key, to: Key, change: Upsert<'r>, record: usize) {
        let before = self
            .index
            .get(&from)
            .map(|&i| std::mem::replace(&mut self.rows[i].1, RowOp::Delete));
        let row = match before {
            // Written earlier in the batch: that row moves, with its own
            // base (a row re-created in the batch has none).
            Some(RowOp::Upsert(prev)) => {
                let base = match &prev.base {
                    Base::Own => Base::Moved(from.clone()),
                    other => other.clone(),
                };
                Upsert {
                    base,
                    ..prev.merge(change)
                }
            }
            Some(RowOp::Delete) | None => Upsert {
                base: Base::Moved(from.clone()),
                ..change
            },
        };
        self.put(from, RowOp::Delete, record);
        self.put(to, RowOp::Upsert(row), record);
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
    let change = Upsert {
        fields: rec.fields.iter().map(|(n, v)| (n.as_ref(), v)).collect(),
        base: Base::Own,
        unchanged: unchanged_columns(rec).map_err(refuse)?,
    };
    match old_key(rec, target.key).map_err(refuse)? {
        Some(old) if old != key => seg.moved(old, key, change, i),
        _ => seg.set(key, RowOp::Upsert(change), i),
    }
    Ok(())
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
    let Some(obj) = conventions::old_key(rec) else {
        return Ok(None);
    };
    let obj = obj?;
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
    use crate::conventions::TRUNCATE_HEADER;

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
            RowOp::Upsert(Upsert {
                fields: vec![
                    ("id", &Value::Int(1)),
                    ("a", &Value::Int(2)),
                    ("b", &Value::Int(1))
                ],
                base: Base::Own,
                unchanged: vec![],
            })
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
        let RowOp::Upsert(u) = &segs[0].rows[1].1 else {
            panic!("an upsert")
        };
        assert_eq!(u.base, Base::Moved(k(3)));
        assert!(u.needs_base());
    }

    fn k(i: i64) -> Key {
        vec![Some(i.to_string())]
    }

    fn moved(from: i64, fields: &[(&'static str, Value<'static>)]) -> Record<'static> {
        let mut r = rec(Operation::Update, fields);
        r.headers.push((
            OLD_KEY_HEADER.into(),
            format!(r#"{{"id":{from}}}"#).into_bytes().into(),
        ));
        r
    }

    fn unchanged(mut r: Record<'static>, cols: &str) -> Record<'static> {
        r.headers.push((
            crate::conventions::UNCHANGED_HEADER.into(),
            cols.as_bytes().to_vec().into(),
        ));
        r
    }

    fn plan<'r>(recs: &'r [Record<'r>]) -> Vec<Segment<'r>> {
        let key = vec!["id".to_string()];
        let t = Target { key: &key };
        let mut segs = Vec::new();
        for (i, r) in recs.iter().enumerate() {
            add(&mut segs, &t, i, r).unwrap();
        }
        segs
    }

    fn state<'s, 'r>(seg: &'s Segment<'r>, key: i64) -> &'s RowOp<'r> {
        &seg.rows.iter().find(|(k0, _, _)| *k0 == k(key)).unwrap().1
    }

    #[test]
    fn a_key_moved_twice_in_a_batch_takes_its_values_from_the_first_row() {
        let recs = [
            unchanged(
                moved(1, &[("id", Value::Int(2)), ("a", Value::Int(5))]),
                r#"["big"]"#,
            ),
            unchanged(
                moved(2, &[("id", Value::Int(3)), ("a", Value::Int(6))]),
                r#"["big"]"#,
            ),
        ];
        let segs = plan(&recs);
        assert_eq!(state(&segs[0], 1), &RowOp::Delete);
        assert_eq!(state(&segs[0], 2), &RowOp::Delete);
        let RowOp::Upsert(u) = state(&segs[0], 3) else {
            panic!("an upsert")
        };
        assert_eq!(u.base, Base::Moved(k(1)));
        assert_eq!(u.unchanged, vec!["big".to_string()]);
        assert_eq!(
            u.fields,
            vec![("id", &Value::Int(3)), ("a", &Value::Int(6))]
        );
    }

    #[test]
    fn a_key_re_used_after_a_move_is_a_new_row_and_the_moved_row_keeps_the_old_one() {
        let recs = [
            unchanged(moved(1, &[("id", Value::Int(2))]), r#"["big"]"#),
            rec(
                Operation::Insert,
                &[("id", Value::Int(1)), ("big", Value::Text("new".into()))],
            ),
        ];
        let segs = plan(&recs);
        let RowOp::Upsert(re_used) = state(&segs[0], 1) else {
            panic!("an upsert")
        };
        // Deleted by the move, then inserted: replaced whole.
        assert_eq!(re_used.base, Base::Fresh);
        let RowOp::Upsert(m) = state(&segs[0], 2) else {
            panic!("an upsert")
        };
        // The moved row is read before anything of the batch is written.
        assert_eq!(m.base, Base::Moved(k(1)));
    }

    #[test]
    fn unchanged_columns_given_earlier_in_the_batch_need_no_target_row() {
        let recs = [
            rec(
                Operation::Insert,
                &[("id", Value::Int(1)), ("big", Value::Text("x".into()))],
            ),
            unchanged(
                rec(
                    Operation::Update,
                    &[("id", Value::Int(1)), ("a", Value::Int(2))],
                ),
                r#"["big"]"#,
            ),
        ];
        let segs = plan(&recs);
        let RowOp::Upsert(u) = state(&segs[0], 1) else {
            panic!("an upsert")
        };
        assert!(u.unchanged.is_empty());
        assert!(!u.needs_base());
        // Alone, the update needs its row in the target.
        let alone = [recs[1].clone()];
        let segs = plan(&alone);
        let RowOp::Upsert(u) = state(&segs[0], 1) else {
            panic!("an upsert")
        };
        assert_eq!(u.base, Base::Own);
        assert!(u.needs_base());
    }

    #[test]
    fn a_malformed_unchanged_header_refuses_the_record() {
        let key = vec!["id".to_string()];
        let t = Target { key: &key };
        let r = unchanged(rec(Operation::Update, &[("id", Value::Int(1))]), "big");
        let e = add(&mut Vec::new(), &t, 0, &r).unwrap_err();
        assert!(e.reason.contains("sluice-unchanged"), "{}", e.reason);
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
