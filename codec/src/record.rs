//! The record data model: values, records, rejections.

use std::borrow::Cow;

use crate::read::Reader;
use crate::{DecodeError, write};

/// What happened at the source to produce a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Operation {
    /// A new row or message.
    #[default]
    Insert,
    /// A change to an existing row.
    Update,
    /// A deleted row; the record carries its key.
    Delete,
    /// A row read by a snapshot or a bulk file read.
    Snapshot,
}

impl Operation {
    /// The wire tag of this operation.
    pub fn tag(self) -> u8 {
        match self {
            Operation::Insert => 0,
            Operation::Update => 1,
            Operation::Delete => 2,
            Operation::Snapshot => 3,
        }
    }

    /// The operation for a wire tag.
    pub fn from_tag(tag: u8) -> Option<Self> {
        Some(match tag {
            0 => Operation::Insert,
            1 => Operation::Update,
            2 => Operation::Delete,
            3 => Operation::Snapshot,
            _ => return None,
        })
    }

    /// The lowercase name used in JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Snapshot => "snapshot",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "insert" => Operation::Insert,
            "update" => Operation::Update,
            "delete" => Operation::Delete,
            "snapshot" => Operation::Snapshot,
            _ => return None,
        })
    }
}

/// One typed value. Text and bytes borrow from the buffer they were decoded
/// from until changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value<'a> {
    /// No value.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// UTF-8 text.
    Text(Cow<'a, str>),
    /// Raw bytes.
    Bytes(Cow<'a, [u8]>),
    /// Microseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// A JSON object or array, as JSON text.
    Json(Cow<'a, str>),
}

impl<'a> Value<'a> {
    pub(crate) const NULL: u8 = 0;
    pub(crate) const BOOL: u8 = 1;
    pub(crate) const INT: u8 = 2;
    pub(crate) const FLOAT: u8 = 3;
    pub(crate) const TEXT: u8 = 4;
    pub(crate) const BYTES: u8 = 5;
    pub(crate) const TIMESTAMP: u8 = 6;
    pub(crate) const JSON: u8 = 7;

    /// The text of a `Text` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// True for `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The name of the value's type, as used in messages: `text`, `int`...
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Timestamp(_) => "timestamp",
            Value::Json(_) => "json",
        }
    }

    /// A copy that owns its data.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            Value::Int(i) => Value::Int(i),
            Value::Float(f) => Value::Float(f),
            Value::Text(s) => Value::Text(Cow::Owned(s.into_owned())),
            Value::Bytes(b) => Value::Bytes(Cow::Owned(b.into_owned())),
            Value::Timestamp(t) => Value::Timestamp(t),
            Value::Json(s) => Value::Json(Cow::Owned(s.into_owned())),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let tag = r.u8()?;
        Ok(match tag {
            Self::NULL => Value::Null,
            Self::BOOL => Value::Bool(r.u8()? != 0),
            Self::INT => Value::Int(r.i64()?),
            Self::FLOAT => Value::Float(f64::from_bits(r.i64()? as u64)),
            Self::TEXT => Value::Text(Cow::Borrowed(r.str()?)),
            Self::BYTES => Value::Bytes(Cow::Borrowed(r.bytes()?)),
            Self::TIMESTAMP => Value::Timestamp(r.i64()?),
            Self::JSON => Value::Json(Cow::Borrowed(r.str()?)),
            _ => return Err(r.error("unknown value tag")),
        })
    }

    pub(crate) fn skip(r: &mut Reader<'a>) -> Result<(), DecodeError> {
        let tag = r.u8()?;
        match tag {
            Self::NULL => {}
            Self::BOOL => {
                r.u8()?;
            }
            Self::INT | Self::FLOAT | Self::TIMESTAMP => {
                r.i64()?;
            }
            Self::TEXT | Self::JSON => {
                r.str()?;
            }
            Self::BYTES => {
                r.bytes()?;
            }
            _ => return Err(r.error("unknown value tag")),
        }
        Ok(())
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(Self::NULL),
            Value::Bool(b) => {
                out.push(Self::BOOL);
                out.push(u8::from(*b));
            }
            Value::Int(i) => {
                out.push(Self::INT);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Value::Float(f) => {
                out.push(Self::FLOAT);
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            Value::Text(s) => {
                out.push(Self::TEXT);
                write::str(out, s);
            }
            Value::Bytes(b) => {
                out.push(Self::BYTES);
                write::bytes(out, b);
            }
            Value::Timestamp(t) => {
                out.push(Self::TIMESTAMP);
                out.extend_from_slice(&t.to_le_bytes());
            }
            Value::Json(s) => {
                out.push(Self::JSON);
                write::str(out, s);
            }
        }
    }
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<f64> for Value<'_> {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<String> for Value<'_> {
    fn from(v: String) -> Self {
        Value::Text(Cow::Owned(v))
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(Cow::Borrowed(v))
    }
}

/// One record: key, fields, headers and metadata.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record<'a> {
    /// The source operation.
    pub op: Operation,
    /// The stream or table name.
    pub stream: Cow<'a, str>,
    /// The source position (opaque to plugins).
    pub position: Cow<'a, str>,
    /// When the event happened at the source, in microseconds since the epoch.
    pub event_time: Option<i64>,
    /// The record key, or `Null`.
    pub key: Value<'a>,
    /// Headers: names may repeat.
    pub headers: Vec<(Cow<'a, str>, Cow<'a, [u8]>)>,
    /// Named fields in order; names are unique.
    pub fields: Vec<(Cow<'a, str>, Value<'a>)>,
}

impl<'a> Record<'a> {
    /// Decodes one record from its bytes (as sliced out of a batch).
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let rec = Self::decode_from(&mut r)?;
        r.finish()?;
        Ok(rec)
    }

    fn decode_from(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let op = Operation::from_tag(r.u8()?).ok_or_else(|| r.error("unknown operation tag"))?;
        let stream = Cow::Borrowed(r.str()?);
        let position = Cow::Borrowed(r.str()?);
        let event_time = match r.u8()? {
            0 => None,
            1 => Some(r.i64()?),
            _ => return Err(r.error("bad event-time flag")),
        };
        let key = Value::decode(r)?;
        let n_headers = r.count()?;
        let mut headers = Vec::with_capacity(n_headers);
        for _ in 0..n_headers {
            headers.push((Cow::Borrowed(r.str()?), Cow::Borrowed(r.bytes()?)));
        }
        let n_fields = r.count()?;
        let mut fields = Vec::with_capacity(n_fields);
        for _ in 0..n_fields {
            let name = Cow::Borrowed(r.str()?);
            fields.push((name, Value::decode(r)?));
        }
        Ok(Record {
            op,
            stream,
            position,
            event_time,
            key,
            headers,
            fields,
        })
    }

    /// The stream and position of an encoded record, read without decoding
    /// the rest.
    pub fn peek_stream_position(bytes: &'a [u8]) -> Result<(&'a str, &'a str), DecodeError> {
        let mut r = Reader::new(bytes);
        r.u8()?;
        let stream = r.str()?;
        let position = r.str()?;
        Ok((stream, position))
    }

    /// Checks that `bytes` hold exactly one well-formed record (valid UTF-8
    /// everywhere), without allocating.
    pub fn validate(bytes: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader::new(bytes);
        Operation::from_tag(r.u8()?).ok_or_else(|| r.error("unknown operation tag"))?;
        r.str()?;
        r.str()?;
        match r.u8()? {
            0 => {}
            1 => {
                r.i64()?;
            }
            _ => return Err(r.error("bad event-time flag")),
        }
        Value::skip(&mut r)?;
        for _ in 0..r.count()? {
            r.str()?;
            r.bytes()?;
        }
        for _ in 0..r.count()? {
            r.str()?;
            Value::skip(&mut r)?;
        }
        r.finish()
    }

    /// Appends the encoding of this record (without its length prefix).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.op.tag());
        write::str(out, &self.stream);
        write::str(out, &self.position);
        match self.event_time {
            None => out.push(0),
            Some(t) => {
                out.push(1);
                out.extend_from_slice(&t.to_le_bytes());
            }
        }
        self.key.encode(out);
        write::count(out, self.headers.len());
        for (name, value) in &self.headers {
            write::str(out, name);
            write::bytes(out, value);
        }
        write::count(out, self.fields.len());
        for (name, value) in &self.fields {
            write::str(out, name);
            value.encode(out);
        }
    }

    /// The value of field `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Value<'a>> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// A mutable reference to the value of field `name`, if present.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Value<'a>> {
        self.fields
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Sets field `name`, replacing its value or appending it.
    pub fn set(&mut self, name: impl Into<Cow<'a, str>>, value: Value<'a>) {
        let name = name.into();
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.fields.push((name, value)),
        }
    }

    /// Removes field `name` and returns its value.
    pub fn remove(&mut self, name: &str) -> Option<Value<'a>> {
        let i = self.fields.iter().position(|(n, _)| n == name)?;
        Some(self.fields.remove(i).1)
    }

    /// A copy that owns all its data.
    pub fn into_owned(self) -> Record<'static> {
        Record {
            op: self.op,
            stream: Cow::Owned(self.stream.into_owned()),
            position: Cow::Owned(self.position.into_owned()),
            event_time: self.event_time,
            key: self.key.into_owned(),
            headers: self
                .headers
                .into_iter()
                .map(|(n, v)| (Cow::Owned(n.into_owned()), Cow::Owned(v.into_owned())))
                .collect(),
            fields: self
                .fields
                .into_iter()
                .map(|(n, v)| (Cow::Owned(n.into_owned()), v.into_owned()))
                .collect(),
        }
    }
}

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection<'a> {
    /// Machine-readable code in snake_case.
    pub code: Cow<'a, str>,
    /// The field at fault, if one is.
    pub field: Option<Cow<'a, str>>,
    /// A message a person can act on.
    pub message: Cow<'a, str>,
}
