//! The record a plugin sees: typed getters and setters over the batch buffer.

use std::borrow::Cow;

use sluice_codec as codec;
pub use sluice_codec::{Operation, Value};

/// One record. Names and text borrow from the batch buffer until changed, so
/// reading a record allocates nothing per field.
///
/// The SDK notices changes: a record kept unchanged is not re-encoded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record<'a> {
    inner: codec::Record<'a>,
    changed: bool,
}

impl<'a> Record<'a> {
    /// An empty record for `stream`, to emit beside or instead of an input.
    pub fn new(stream: impl Into<Cow<'a, str>>) -> Self {
        Record {
            inner: codec::Record {
                stream: stream.into(),
                ..Default::default()
            },
            changed: true,
        }
    }

    /// Wraps a decoded record.
    pub fn from_codec(inner: codec::Record<'a>) -> Self {
        Record {
            inner,
            changed: false,
        }
    }

    /// The underlying data model record.
    pub fn as_codec(&self) -> &codec::Record<'a> {
        &self.inner
    }

    /// Unwraps the data model record.
    pub fn into_codec(self) -> codec::Record<'a> {
        self.inner
    }

    /// True if a setter was called since the record was decoded.
    pub fn is_changed(&self) -> bool {
        self.changed
    }

    /// The value of `field`, if present.
    pub fn get(&self, field: &str) -> Option<&Value<'a>> {
        self.inner.get(field)
    }

    /// True if the record has `field` (even if it is null).
    pub fn has(&self, field: &str) -> bool {
        self.inner.get(field).is_some()
    }

    /// The text of `field` if it is text.
    pub fn get_str(&self, field: &str) -> Option<&str> {
        self.inner.get(field).and_then(Value::as_str)
    }

    /// The integer in `field` if it is an integer.
    pub fn get_i64(&self, field: &str) -> Option<i64> {
        match self.inner.get(field) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// The number in `field` if it is a float or an integer.
    pub fn get_f64(&self, field: &str) -> Option<f64> {
        match self.inner.get(field) {
            Some(Value::Float(f)) => Some(*f),
            Some(Value::Int(i)) => Some(*i as f64),
            _ => None,
        }
    }

    /// The boolean in `field` if it is a boolean.
    pub fn get_bool(&self, field: &str) -> Option<bool> {
        match self.inner.get(field) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// True if `field` is absent or null.
    pub fn is_null(&self, field: &str) -> bool {
        self.inner.get(field).is_none_or(Value::is_null)
    }

    /// Sets `field` to `value`, adding the field at the end if absent.
    pub fn set(&mut self, field: impl Into<Cow<'a, str>>, value: impl Into<Value<'a>>) {
        self.changed = true;
        self.inner.set(field, value.into());
    }

    /// Sets `field` to null.
    pub fn set_null(&mut self, field: impl Into<Cow<'a, str>>) {
        self.set(field, Value::Null);
    }

    /// Removes `field`; returns its value if it was present.
    pub fn remove(&mut self, field: &str) -> Option<Value<'a>> {
        let v = self.inner.remove(field);
        if v.is_some() {
            self.changed = true;
        }
        v
    }

    /// Renames `from` to `to` in place (keeping its position). Replaces an
    /// existing `to`. Returns false if `from` is absent.
    pub fn rename(&mut self, from: &str, to: impl Into<Cow<'a, str>>) -> bool {
        let Some(i) = self.inner.fields.iter().position(|(n, _)| n == from) else {
            return false;
        };
        let to = to.into();
        self.changed = true;
        if let Some(j) = self.inner.fields.iter().position(|(n, _)| *n == to)
            && j != i
        {
            let value = self.inner.fields.remove(i).1;
            let j = if j > i { j - 1 } else { j };
            self.inner.fields[j].1 = value;
        } else {
            self.inner.fields[i].0 = to;
        }
        true
    }

    /// Iterates over field names and values in order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &Value<'a>)> {
        self.inner.fields.iter().map(|(n, v)| (n.as_ref(), v))
    }

    /// Mutable access to all fields (marks the record changed).
    pub fn fields_mut(&mut self) -> &mut Vec<(Cow<'a, str>, Value<'a>)> {
        self.changed = true;
        &mut self.inner.fields
    }

    /// Mutable access to one field's value (marks the record changed if present).
    pub fn get_mut(&mut self, field: &str) -> Option<&mut Value<'a>> {
        let v = self.inner.get_mut(field);
        if v.is_some() {
            self.changed = true;
        }
        v
    }

    /// The stream or table name.
    pub fn stream(&self) -> &str {
        &self.inner.stream
    }

    /// Routes the record to another stream or table.
    pub fn set_stream(&mut self, stream: impl Into<Cow<'a, str>>) {
        self.changed = true;
        self.inner.stream = stream.into();
    }

    /// The source operation.
    pub fn op(&self) -> Operation {
        self.inner.op
    }

    /// Changes the operation.
    pub fn set_op(&mut self, op: Operation) {
        self.changed = true;
        self.inner.op = op;
    }

    /// The record key (`Value::Null` if none).
    pub fn key(&self) -> &Value<'a> {
        &self.inner.key
    }

    /// Sets the record key.
    pub fn set_key(&mut self, key: impl Into<Value<'a>>) {
        self.changed = true;
        self.inner.key = key.into();
    }

    /// The source position (read-only: the host keeps the original).
    pub fn position(&self) -> &str {
        &self.inner.position
    }

    /// When the event happened at the source, in µs since the Unix epoch.
    pub fn event_time(&self) -> Option<i64> {
        self.inner.event_time
    }

    /// Sets the source position. Source connectors give each record its
    /// position in their system (a transform's change is ignored: the host
    /// keeps the original).
    pub fn set_position(&mut self, position: impl Into<Cow<'a, str>>) {
        self.changed = true;
        self.inner.position = position.into();
    }

    /// Sets when the event happened, in µs since the Unix epoch.
    pub fn set_event_time(&mut self, micros: Option<i64>) {
        self.changed = true;
        self.inner.event_time = micros;
    }

    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.inner
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_ref())
    }

    /// Adds a header (names may repeat).
    pub fn add_header(&mut self, name: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, [u8]>>) {
        self.changed = true;
        self.inner.headers.push((name.into(), value.into()));
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.inner.fields.len()
    }

    /// True if the record has no field.
    pub fn is_empty(&self) -> bool {
        self.inner.fields.is_empty()
    }
}
