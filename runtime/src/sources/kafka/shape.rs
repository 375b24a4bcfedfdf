//! The shape of each stream (its field names and the kinds of their
//! values) as this run has read it, for `on_schema_change`: JSON messages
//! carry no schema, so the first message of a stream in a run sets its
//! shape, and a later one that brings a field, or a value of another kind
//! in a field (numbers are one kind; `null` fits any), changes it.

use std::collections::{BTreeMap, HashMap};

use sluice_codec::{Record, Value};

/// Field kinds by stream.
#[derive(Debug, Default)]
pub(super) struct Shapes {
    streams: HashMap<String, BTreeMap<String, Option<&'static str>>>,
}

fn kind(v: &Value<'_>) -> Option<&'static str> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(_) => "boolean",
        Value::Int(_) | Value::Float(_) => "number",
        Value::Text(_) => "text",
        Value::Bytes(_) => "bytes",
        Value::Timestamp(_) => "timestamp",
        Value::Json(_) => "JSON",
    })
}

impl Shapes {
    /// How `rec` changes its stream's shape, for a person (empty: it does
    /// not, or it is the stream's first record).
    pub(super) fn changes(&self, rec: &Record<'_>) -> Vec<String> {
        let Some(shape) = self.streams.get(&*rec.stream) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, v) in &rec.fields {
            match (shape.get(&**name), kind(v)) {
                (None, _) => out.push(format!("field `{name}` added")),
                (Some(Some(was)), Some(now)) if *was != now => {
                    out.push(format!("field `{name}` changed from {was} to {now}"))
                }
                _ => {}
            }
        }
        out
    }

    /// Takes `rec`'s fields into its stream's shape.
    pub(super) fn learn(&mut self, rec: &Record<'_>) {
        let shape = self.streams.entry(rec.stream.to_string()).or_default();
        for (name, v) in &rec.fields {
            let k = kind(v);
            let slot = shape.entry(name.to_string()).or_insert(k);
            if slot.is_none() {
                *slot = k;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(fields: &[(&'static str, Value<'static>)]) -> Record<'static> {
        let mut r = Record {
            stream: "orders".into(),
            ..Record::default()
        };
        for (n, v) in fields {
            r.set(*n, v.clone());
        }
        r
    }

    #[test]
    fn the_first_record_sets_the_shape_and_later_ones_change_it() {
        let mut s = Shapes::default();
        let first = rec(&[("id", Value::Int(1)), ("note", Value::Null)]);
        assert!(s.changes(&first).is_empty());
        s.learn(&first);
        // Numbers are one kind, null fits anything, a null field takes
        // its first kind.
        let same = rec(&[("id", Value::Float(1.5)), ("note", Value::Text("x".into()))]);
        assert!(s.changes(&same).is_empty());
        s.learn(&same);
        let changed = rec(&[
            ("id", Value::Text("1".into())),
            ("note", Value::Null),
            ("total", Value::Int(3)),
        ]);
        assert_eq!(
            s.changes(&changed),
            [
                "field `id` changed from number to text",
                "field `total` added"
            ]
        );
        // Fewer fields is not a change.
        assert!(s.changes(&rec(&[("id", Value::Int(2))])).is_empty());
        let other = Record {
            stream: "people".into(),
            ..changed.clone()
        };
        assert!(s.changes(&other).is_empty());
    }
}
