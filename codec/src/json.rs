//! JSON documents into batches and batches into JSON documents (feature
//! `json`).
//!
//! A connector that reads a JSON API spends most of its time parsing; inside
//! a WebAssembly sandbox that code runs at about half its native speed. The
//! host offers this decoder to connectors as the `json` import of
//! `wit/connector.wit`, and the Rust SDK calls the same function natively
//! outside the host (a connector's unit tests), so a document decodes to the
//! same records everywhere.
//!
//! [`decode`]: one pass, no tree of values: names and strings are copied
//! from the document straight into the batch. Values map as the SDKs map
//! JSON: `null`, booleans, integers (exact; beyond `i64` as text), other
//! numbers as floats, strings as text, objects and arrays as `json` text
//! (compact).
//!
//! [`encode`] and the `write_*` functions: records as JSON, as Sluice writes
//! them everywhere (JSON lines, dead letters, bulk bodies): bytes as base64
//! text, timestamps as RFC 3339 text (UTC), `json` values inline, floats
//! that are not finite as `null`.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

use base64::Engine as _;

use crate::{BatchReader, BatchWriter, Operation, Record, Value};

/// Where a document's records are and what each record gets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// The member names leading to the array of records (`["data"]`,
    /// `["result", "items"]`); empty: the document itself is the array.
    pub records_at: Vec<String>,
    /// The stream every record gets.
    pub stream: String,
    /// The operation every record gets.
    pub op: Operation,
    /// The member whose value also becomes each record's key.
    pub key_member: Option<String>,
    /// When set, record `i` of the array gets the position `POSITION#i`.
    pub position: Option<String>,
    /// Other values to hand back as JSON text (a next cursor, a next link),
    /// each given by its member names from the top of the document.
    pub members: Vec<Vec<String>>,
}

/// A decoded document.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The records, in the batch encoding.
    pub batch: BatchWriter,
    /// False when the document has no array of records at
    /// [`Layout::records_at`] (a `null` there counts as an empty array).
    pub found: bool,
    /// The JSON text of each of [`Layout::members`], in order; `None` where
    /// the document has no such member.
    pub members: Vec<Option<String>>,
}

/// Why a document did not decode. Each message says where (line, column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON, or cut short (a body that ended early is worth a retry).
    Syntax(String),
    /// JSON, but not of the layout's shape (a record that is not an object,
    /// records that are not an array): retrying reads the same thing.
    Shape(String),
    /// The layout itself is unusable (overlapping paths).
    Layout(String),
    /// The records would take more than the bound given to [`decode`].
    TooLarge(String),
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonError::Syntax(m) | JsonError::Shape(m) | JsonError::TooLarge(m) => f.write_str(m),
            JsonError::Layout(m) => write!(f, "layout: {m}"),
        }
    }
}

impl std::error::Error for JsonError {}

/// Decodes `document` into records as `layout` says, stopping with
/// [`JsonError::TooLarge`] once the batch passes `max_batch_bytes`.
pub fn decode(
    document: &[u8],
    layout: &Layout,
    max_batch_bytes: usize,
) -> Result<Decoded, JsonError> {
    check_layout(layout)?;
    let mut state = State {
        layout,
        writer: BatchWriter::with_capacity(document.len() + document.len() / 4),
        found: false,
        members: vec![None; layout.members.len()],
        max_batch_bytes,
        too_large: false,
        twice: None,
    };
    let mut de = serde_json::Deserializer::from_slice(document);
    let walked = if layout.records_at.is_empty() {
        Records { st: &mut state }.deserialize(&mut de)
    } else {
        let active = (0..=layout.members.len()).collect();
        Walk {
            st: &mut state,
            depth: 0,
            active,
        }
        .deserialize(&mut de)
    };
    let walked = walked.and_then(|()| de.end());
    if state.too_large {
        return Err(JsonError::TooLarge(format!(
            "the records of this document take more than {max_batch_bytes} bytes"
        )));
    }
    if let Some(path) = state.twice {
        return Err(JsonError::Shape(format!("the document has `{path}` twice")));
    }
    walked.map_err(|e| match e.classify() {
        serde_json::error::Category::Data => JsonError::Shape(e.to_string()),
        _ => JsonError::Syntax(e.to_string()),
    })?;
    Ok(Decoded {
        batch: state.writer,
        found: state.found,
        members: state.members,
    })
}

/// No path may be empty (a member) or lead into another.
fn check_layout(layout: &Layout) -> Result<(), JsonError> {
    let mut paths: Vec<&[String]> = vec![&layout.records_at];
    for m in &layout.members {
        if m.is_empty() {
            return Err(JsonError::Layout("a member's path is empty".into()));
        }
        paths.push(m);
    }
    for (i, a) in paths.iter().enumerate() {
        for b in &paths[i + 1..] {
            let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
            let overlaps = if i == 0 {
                // Records at the top: members cannot be found, but do not clash.
                !short.is_empty() && long.starts_with(short)
            } else {
                long.starts_with(short) && short.len() < long.len()
            };
            if overlaps {
                return Err(JsonError::Layout(format!(
                    "`{}` lies inside `{}`",
                    long.join("."),
                    short.join(".")
                )));
            }
        }
    }
    Ok(())
}

struct State<'l> {
    layout: &'l Layout,
    writer: BatchWriter,
    found: bool,
    members: Vec<Option<String>>,
    max_batch_bytes: usize,
    too_large: bool,
    /// A path met twice (records or a member).
    twice: Option<String>,
}

impl State<'_> {
    /// Target 0 is the records, target `t > 0` is member `t - 1`.
    fn path(&self, t: usize) -> &[String] {
        if t == 0 {
            &self.layout.records_at
        } else {
            &self.layout.members[t - 1]
        }
    }
}

/// An object at `depth` of the document, on the way to the targets in `active`.
struct Walk<'s, 'l> {
    st: &'s mut State<'l>,
    depth: usize,
    active: Vec<usize>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let depth = self.depth;
        while let Some(key) = map.next_key_seed(Text)? {
            let st = &mut *self.st;
            let mut here = None;
            let mut deeper = Vec::new();
            for &t in &self.active {
                let path = st.path(t);
                if path.get(depth).is_some_and(|p| *p == key) {
                    if path.len() == depth + 1 {
                        here = Some(t);
                    } else {
                        deeper.push(t);
                    }
                }
            }
            match here {
                Some(0) => {
                    if st.found {
                        st.twice = Some(st.layout.records_at.join("."));
                        return Err(A::Error::custom("a path appears twice"));
                    }
                    map.next_value_seed(Records { st })?;
                }
                Some(t) => {
                    let raw: Box<serde_json::value::RawValue> = map.next_value()?;
                    let slot = &mut st.members[t - 1];
                    if slot.is_some() {
                        st.twice = Some(st.layout.members[t - 1].join("."));
                        return Err(A::Error::custom("a path appears twice"));
                    }
                    *slot = Some(raw.get().to_string());
                }
                None if !deeper.is_empty() => map.next_value_seed(Walk {
                    st,
                    depth: depth + 1,
                    active: deeper,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    // A path through something that is not an object leads nowhere: the
    // targets beyond it are absent.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
}

/// The array of records (or `null`: none).
struct Records<'s, 'l> {
    st: &'s mut State<'l>,
}

impl<'de> DeserializeSeed<'de> for Records<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Records<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of records (JSON objects)")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.st.found = true;
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let st = self.st;
        st.found = true;
        let layout = st.layout;
        let mut position = String::new();
        let base = layout.position.as_ref().map(|p| {
            position.push_str(p);
            position.push('#');
            position.len()
        });
        let mut i = 0usize;
        loop {
            let record = OneRecord {
                key_member: layout.key_member.as_deref(),
                record: Record {
                    op: layout.op,
                    stream: Cow::Borrowed(&layout.stream),
                    ..Record::default()
                },
            };
            let Some(mut r) = seq.next_element_seed(record)? else {
                return Ok(());
            };
            if let Some(base) = base {
                position.truncate(base);
                // Writing into a String cannot fail.
                let _ = write!(position, "{i}");
                r.position = Cow::Borrowed(position.as_str());
            }
            st.writer.push(&r);
            if st.writer.byte_len() > st.max_batch_bytes {
                st.too_large = true;
                return Err(A::Error::custom("too large"));
            }
            i += 1;
        }
    }
}

/// One record: a JSON object whose members become fields.
struct OneRecord<'n, 'a> {
    key_member: Option<&'n str>,
    record: Record<'a>,
}

impl<'a, 'de: 'a> DeserializeSeed<'de> for OneRecord<'_, 'a> {
    type Value = Record<'a>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Record<'a>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'a, 'de: 'a> Visitor<'de> for OneRecord<'_, 'a> {
    type Value = Record<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a record (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Record<'a>, A::Error> {
        while let Some(k) = map.next_key_seed(Text)? {
            let v = map.next_value_seed(Field)?;
            if self.key_member == Some(&*k) {
                self.record.key = v.clone();
            }
            self.record.set(k, v);
        }
        Ok(self.record)
    }
}

/// A member name, borrowed from the document unless it had escapes.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

/// A field's value. Integers stay exact (beyond `i64`: as text), arrays
/// and objects are kept as compact JSON text.
struct Field;

impl<'de> DeserializeSeed<'de> for Field {
    type Value = Value<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Field {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or_else(|_| Value::Text(v.to_string().into()), Value::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Value::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Value::Text(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Value::Text(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let v = serde_json::Value::deserialize(SeqAccessDeserializer::new(seq))?;
        Ok(Value::Json(v.to_string().into()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let v = serde_json::Value::deserialize(MapAccessDeserializer::new(map))?;
        Ok(Value::Json(v.to_string().into()))
    }
}

/// How [`encode`] writes records: each record is one object of an array.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encoding {
    /// The member of a top-level object that holds the array
    /// (`{"records": [...]}`); `None`: the document is the array.
    pub envelope: Option<String>,
    /// The member of each element that holds the record's idempotency key.
    pub key_member: Option<String>,
    /// The member of each element that holds the record's fields as an
    /// object; `None`: the fields are the element's own members.
    pub fields_member: Option<String>,
}

/// The records of `batch` as one JSON document, at most `max_bytes` long.
/// `keys` holds one key per record when [`Encoding::key_member`] is set.
pub fn encode(
    batch: &[u8],
    keys: &[String],
    encoding: &Encoding,
    max_bytes: usize,
) -> Result<Vec<u8>, JsonError> {
    let shape = |e: crate::DecodeError| JsonError::Shape(format!("the batch does not decode: {e}"));
    let mut reader = BatchReader::new(batch).map_err(shape)?;
    if encoding.key_member.is_some() && keys.len() != reader.remaining() {
        return Err(JsonError::Layout(format!(
            "{} idempotency keys for {} records",
            keys.len(),
            reader.remaining()
        )));
    }
    let mut out = Vec::with_capacity(batch.len() + batch.len() / 2 + 64);
    if let Some(env) = &encoding.envelope {
        out.push(b'{');
        write_str(&mut out, env);
        out.push(b':');
    }
    out.push(b'[');
    let mut i = 0;
    while let Some(record) = reader.next_record().map_err(shape)? {
        if i > 0 {
            out.push(b',');
        }
        match (&encoding.key_member, &encoding.fields_member) {
            (None, None) => write_fields(&mut out, &record),
            (key, fields) => {
                out.push(b'{');
                if let Some(k) = key {
                    write_str(&mut out, k);
                    out.push(b':');
                    write_str(&mut out, &keys[i]);
                }
                if let Some(f) = fields {
                    if key.is_some() {
                        out.push(b',');
                    }
                    write_str(&mut out, f);
                    out.push(b':');
                    write_fields(&mut out, &record);
                } else {
                    for (name, value) in &record.fields {
                        if out.last() != Some(&b'{') {
                            out.push(b',');
                        }
                        write_str(&mut out, name);
                        out.push(b':');
                        write_value(&mut out, value);
                    }
                }
                out.push(b'}');
            }
        }
        if out.len() > max_bytes {
            return Err(JsonError::TooLarge(format!(
                "the JSON of this batch takes more than {max_bytes} bytes"
            )));
        }
        i += 1;
    }
    out.push(b']');
    if encoding.envelope.is_some() {
        out.push(b'}');
    }
    Ok(out)
}

/// Appends `s` as a JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends a value as JSON. `Json` values are embedded as they are when
/// they are valid JSON (line breaks between tokens as spaces, so that the
/// value stays on one line), and written as a string otherwise.
pub fn write_value(out: &mut Vec<u8>, v: &Value<'_>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => {
            let _ = serde_json::to_writer(&mut *out, i);
        }
        Value::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => {
                let _ = serde_json::to_writer(&mut *out, &n);
            }
            None => out.extend_from_slice(b"null"),
        },
        Value::Text(s) => write_str(out, s),
        Value::Bytes(b) => write_str(out, &base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Timestamp(t) => write_str(out, &timestamp_rfc3339(*t)),
        Value::Json(s) => {
            if serde_json::from_str::<&serde_json::value::RawValue>(s).is_ok() {
                // Valid JSON has raw line breaks only as whitespace between
                // tokens (inside strings they are escaped).
                let s = s.trim().as_bytes();
                let at = out.len();
                out.extend_from_slice(s);
                if memchr::memchr2(b'\n', b'\r', s).is_some() {
                    for b in &mut out[at..] {
                        if *b == b'\n' || *b == b'\r' {
                            *b = b' ';
                        }
                    }
                }
            } else {
                write_str(out, s);
            }
        }
    }
}

/// Appends the fields of a record as one JSON object.
pub fn write_fields(out: &mut Vec<u8>, r: &Record<'_>) {
    out.push(b'{');
    for (i, (name, value)) in r.fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        write_value(out, value);
    }
    out.push(b'}');
}

/// Microseconds since the epoch as RFC 3339 text (UTC; fractions of a
/// second in 3 or 6 digits, none when whole); out of range: the number.
pub fn timestamp_rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros).map_or_else(
        || micros.to_string(),
        |d| d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::BatchReader;

    fn layout(records_at: &[&str]) -> Layout {
        Layout {
            records_at: records_at.iter().map(|s| s.to_string()).collect(),
            stream: "customers".into(),
            op: Operation::Snapshot,
            key_member: Some("id".into()),
            position: Some("page:c2".into()),
            members: vec![vec!["next_cursor".into()]],
        }
    }

    fn records(d: Decoded) -> Vec<Record<'static>> {
        let bytes = d.batch.finish();
        let mut r = BatchReader::new(&bytes).unwrap();
        let mut out = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            out.push(rec.into_owned());
        }
        out
    }

    #[test]
    fn a_page_becomes_records_with_every_value_kept() {
        let body = br#"{"total": 2, "data": [
            {"id": 1, "name": "Zo\u00eb \"Z\"", "score": 9.5, "vip": true, "tags": ["a", {"b": 1}],
             "big": 18446744073709551615, "neg": -9223372036854775808, "none": null, "addr": {"city": "Li\u00e8ge"}},
            {"id": "k-2", "name": "line\nbreak"}
        ], "next_cursor": "c3"}"#;
        let d = decode(body, &layout(&["data"]), usize::MAX).unwrap();
        assert!(d.found);
        assert_eq!(d.members, vec![Some("\"c3\"".to_string())]);
        let rs = records(d);
        assert_eq!(rs.len(), 2);
        let a = &rs[0];
        assert_eq!(a.op, Operation::Snapshot);
        assert_eq!(a.stream, "customers");
        assert_eq!(a.position, "page:c2#0");
        assert_eq!(a.key, Value::Int(1));
        assert_eq!(a.get("name"), Some(&Value::Text("Zoë \"Z\"".into())));
        assert_eq!(a.get("score"), Some(&Value::Float(9.5)));
        assert_eq!(a.get("vip"), Some(&Value::Bool(true)));
        assert_eq!(a.get("tags"), Some(&Value::Json(r#"["a",{"b":1}]"#.into())));
        assert_eq!(
            a.get("big"),
            Some(&Value::Text("18446744073709551615".into()))
        );
        assert_eq!(a.get("neg"), Some(&Value::Int(i64::MIN)));
        assert_eq!(a.get("none"), Some(&Value::Null));
        assert_eq!(
            a.get("addr"),
            Some(&Value::Json(r#"{"city":"Liège"}"#.into()))
        );
        let names: Vec<&str> = a.fields.iter().map(|(n, _)| &**n).collect();
        assert_eq!(
            names,
            [
                "id", "name", "score", "vip", "tags", "big", "neg", "none", "addr"
            ]
        );
        assert_eq!(rs[1].key, Value::Text("k-2".into()));
        assert_eq!(rs[1].position, "page:c2#1");
        assert_eq!(rs[1].get("name"), Some(&Value::Text("line\nbreak".into())));
    }

    #[test]
    fn records_and_members_are_found_at_any_depth() {
        let body = br#"{"meta": {"paging": {"next": "https://x/p?c=9", "n": [1]}}, "result": {"items": [{"id": 7}]}}"#;
        let l = Layout {
            records_at: vec!["result".into(), "items".into()],
            members: vec![
                vec!["meta".into(), "paging".into(), "next".into()],
                vec!["meta".into(), "paging".into(), "n".into()],
                vec!["meta".into(), "absent".into()],
            ],
            ..layout(&[])
        };
        let d = decode(body, &l, usize::MAX).unwrap();
        assert_eq!(
            d.members,
            vec![Some("\"https://x/p?c=9\"".into()), Some("[1]".into()), None]
        );
        assert_eq!(records(d)[0].key, Value::Int(7));
    }

    #[test]
    fn a_document_that_is_the_array_and_a_null_or_missing_array() {
        let d = decode(br#"[{"id": 1}, {"id": 2}]"#, &layout(&[]), usize::MAX).unwrap();
        assert_eq!(records(d).len(), 2);
        let d = decode(br#"{"data": null}"#, &layout(&["data"]), usize::MAX).unwrap();
        assert!(d.found);
        assert_eq!(d.batch.len(), 0);
        let d = decode(br#"{"other": []}"#, &layout(&["data"]), usize::MAX).unwrap();
        assert!(!d.found);
        // A path through a non-object leads nowhere.
        let d = decode(br#"{"data": 5}"#, &layout(&["data", "items"]), usize::MAX).unwrap();
        assert!(!d.found);
    }

    #[test]
    fn a_wrong_shape_is_told_apart_from_a_cut_body() {
        for (body, shape) in [
            (&br#"{"data": [{"id": 1}, "x"]}"#[..], true),
            (br#"{"data": {"id": 1}}"#, true),
            (br#"[1]"#, true),
            (br#"{"data": [{"id": 1}"#, false),
            (br#"{"data": []} trailing"#, false),
            (br#"{"data": [], "data": []}"#, true),
            (br#"<html>"#, false),
        ] {
            let l = if body.starts_with(b"[") {
                layout(&[])
            } else {
                layout(&["data"])
            };
            let e = decode(body, &l, usize::MAX).unwrap_err();
            let is_shape = matches!(e, JsonError::Shape(_));
            assert_eq!(is_shape, shape, "{}: {e:?}", String::from_utf8_lossy(body));
        }
        let e = decode(
            br#"{"data": [], "data": []}"#,
            &layout(&["data"]),
            usize::MAX,
        )
        .unwrap_err();
        assert_eq!(e, JsonError::Shape("the document has `data` twice".into()));
        let e = decode(br#"{"data": ["x"]}"#, &layout(&["data"]), usize::MAX).unwrap_err();
        assert!(
            e.to_string().contains("expected a record (a JSON object)"),
            "{e}"
        );
        assert!(e.to_string().contains("line 1 column"), "{e}");
    }

    #[test]
    fn the_batch_bound_holds() {
        let body = format!("[{}]", vec![r#"{"a": "0123456789"}"#; 1000].join(","));
        let e = decode(body.as_bytes(), &layout(&[]), 4096).unwrap_err();
        assert!(matches!(e, JsonError::TooLarge(_)), "{e:?}");
        assert!(decode(body.as_bytes(), &layout(&[]), 1 << 20).is_ok());
    }

    #[test]
    fn overlapping_paths_are_refused() {
        let l = Layout {
            members: vec![vec!["data".into(), "x".into()]],
            ..layout(&["data"])
        };
        assert!(matches!(
            decode(b"{}", &l, 1 << 20),
            Err(JsonError::Layout(_))
        ));
        let l = Layout {
            members: vec![vec![]],
            ..layout(&["data"])
        };
        assert!(matches!(
            decode(b"{}", &l, 1 << 20),
            Err(JsonError::Layout(_))
        ));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let body = format!(
            "{{\"data\": [{{\"a\": {}{}}}]}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let e = decode(body.as_bytes(), &layout(&["data"]), usize::MAX).unwrap_err();
        assert!(e.to_string().contains("recursion limit"), "{e}");
    }

    fn batch_to_encode() -> Vec<u8> {
        let mut w = BatchWriter::default();
        let mut a = Record {
            stream: "c".into(),
            ..Record::default()
        };
        a.set("id", Value::Int(1));
        a.set("name", Value::Text("Zoë \"Z\"\n".into()));
        a.set("raw", Value::Bytes(b"\x00\xff".as_slice().into()));
        a.set("at", Value::Timestamp(1_700_000_000_123_456));
        a.set("ms", Value::Timestamp(1_700_000_000_123_000));
        a.set("tags", Value::Json("[1,\n {\"b\": 2}]".into()));
        a.set("bad", Value::Json("{not json".into()));
        a.set("nan", Value::Float(f64::NAN));
        a.set("f", Value::Float(1.5));
        a.set("none", Value::Null);
        w.push(&a);
        w.push(&Record::default());
        w.finish()
    }

    fn enc(envelope: Option<&str>, key: Option<&str>, fields: Option<&str>) -> Encoding {
        Encoding {
            envelope: envelope.map(str::to_string),
            key_member: key.map(str::to_string),
            fields_member: fields.map(str::to_string),
        }
    }

    fn text(r: Result<Vec<u8>, JsonError>) -> String {
        String::from_utf8(r.unwrap()).unwrap()
    }

    const FIELDS: &str = r#""id":1,"name":"Zoë \"Z\"\n","raw":"AP8=","at":"2023-11-14T22:13:20.123456Z","ms":"2023-11-14T22:13:20.123Z","tags":[1,  {"b": 2}],"bad":"{not json","nan":null,"f":1.5,"none":null"#;

    #[test]
    fn a_batch_becomes_every_shape_of_document() {
        let keys = vec!["k1".to_string(), "k2".to_string()];
        let b = batch_to_encode();
        let max = usize::MAX;
        assert_eq!(
            text(encode(&b, &[], &enc(None, None, None), max)),
            format!("[{{{FIELDS}}},{{}}]")
        );
        assert_eq!(
            text(encode(
                &b,
                &keys,
                &enc(Some("records"), Some("key"), Some("record")),
                max
            )),
            format!(
                r#"{{"records":[{{"key":"k1","record":{{{FIELDS}}}}},{{"key":"k2","record":{{}}}}]}}"#
            )
        );
        assert_eq!(
            text(encode(&b, &keys, &enc(None, Some("_id"), None), max)),
            format!(r#"[{{"_id":"k1",{FIELDS}}},{{"_id":"k2"}}]"#)
        );
        assert_eq!(
            text(encode(&b, &keys, &enc(None, None, Some("doc")), max)),
            format!(r#"[{{"doc":{{{FIELDS}}}}},{{"doc":{{}}}}]"#)
        );
        // What it writes is JSON, and decodes back to the same values.
        let doc = text(encode(&b, &keys, &enc(Some("r"), Some("k"), None), max));
        let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(v["r"][0]["tags"][1]["b"], 2);
        assert_eq!(v["r"][1], serde_json::json!({"k": "k2"}));
        let back = decode(
            doc.as_bytes(),
            &Layout {
                records_at: vec!["r".into()],
                ..Layout::default()
            },
            max,
        )
        .unwrap();
        let rs = records(back);
        assert_eq!(rs[0].get("name"), Some(&Value::Text("Zoë \"Z\"\n".into())));
        assert_eq!(rs[0].get("f"), Some(&Value::Float(1.5)));
    }

    #[test]
    fn a_bad_batch_or_wrong_keys_are_errors_naming_them() {
        let b = batch_to_encode();
        let e = encode(
            &b,
            &["one".into()],
            &enc(None, Some("key"), None),
            usize::MAX,
        )
        .unwrap_err();
        assert_eq!(
            e,
            JsonError::Layout("1 idempotency keys for 2 records".into())
        );
        let e = encode(&b[..b.len() - 3], &[], &enc(None, None, None), usize::MAX).unwrap_err();
        assert!(
            matches!(e, JsonError::Shape(ref m) if m.starts_with("the batch does not decode")),
            "{e:?}"
        );
        let e = encode(&[], &[], &enc(None, None, None), usize::MAX).unwrap_err();
        assert!(matches!(e, JsonError::Shape(_)), "{e:?}");
        let e = encode(&b, &[], &enc(None, None, None), 10).unwrap_err();
        assert!(matches!(e, JsonError::TooLarge(_)), "{e:?}");
    }
}
