//! Records and values as JSON, for JSONL files, stdout and dead letters.

use std::borrow::Cow;

use base64::Engine as _;
use serde_json::{Map, Value as Json};
use sluice_codec::{Record, Value};

/// The text PostgreSQL accepts as input for a value (`None` for null):
/// what the sink sends, cast to the column's type.
pub fn value_text(v: &Value<'_>) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => if *b { "true" } else { "false" }.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => float_text(*f),
        Value::Text(s) | Value::Json(s) => s.to_string(),
        Value::Bytes(b) => {
            let mut s = String::with_capacity(2 + b.len() * 2);
            s.push_str("\\x");
            for byte in b.iter() {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
        Value::Timestamp(t) => timestamp_to_rfc3339(*t),
    })
}

/// A float as PostgreSQL reads it (`NaN`, `Infinity`, `-Infinity`).
pub(crate) fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        f.to_string()
    }
}

/// A value as JSON: bytes as base64 text, timestamps as RFC 3339 text, JSON
/// values inline.
pub fn value_to_json(v: &Value<'_>) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Text(s) => Json::String(s.to_string()),
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::Timestamp(t) => Json::String(timestamp_to_rfc3339(*t)),
        Value::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| Json::String(s.to_string())),
    }
}

/// Microseconds since the epoch as RFC 3339 (UTC, microsecond precision).
pub use sluice_codec::json::timestamp_rfc3339 as timestamp_to_rfc3339;

/// A JSON value as a record value: objects and arrays become `Json`.
pub fn json_to_value(j: &Json) -> Value<'static> {
    match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::Text(Cow::Owned(s.clone())),
        other => Value::Json(Cow::Owned(other.to_string())),
    }
}

/// The fields of a record as a JSON object.
pub fn fields_to_json(r: &Record<'_>) -> Map<String, Json> {
    r.fields
        .iter()
        .map(|(n, v)| (n.to_string(), value_to_json(v)))
        .collect()
}

/// The whole record (fields and metadata) as a JSON object.
pub fn record_to_json(r: &Record<'_>) -> Json {
    let mut m = Map::new();
    m.insert("stream".into(), Json::String(r.stream.to_string()));
    m.insert("op".into(), Json::String(r.op.as_str().into()));
    m.insert("position".into(), Json::String(r.position.to_string()));
    if let Some(t) = r.event_time {
        m.insert("event_time".into(), Json::String(timestamp_to_rfc3339(t)));
    }
    if !r.key.is_null() {
        m.insert("key".into(), value_to_json(&r.key));
    }
    if !r.headers.is_empty() {
        let h: Map<String, Json> = r
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    Json::String(String::from_utf8_lossy(v).into_owned()),
                )
            })
            .collect();
        m.insert("headers".into(), Json::Object(h));
    }
    m.insert("fields".into(), Json::Object(fields_to_json(r)));
    Json::Object(m)
}

/// Appends `s` as a JSON string.
pub use sluice_codec::json::write_str;

/// Appends a value as JSON. `Json` values are embedded as they are when
/// they are valid JSON, and written as a string otherwise.
pub use sluice_codec::json::write_value as write_value_json;

/// Appends the fields of a record as one JSON object.
pub use sluice_codec::json::write_fields as write_fields_json;

/// Appends the whole record (metadata and fields) as one JSON object, the
/// same shape as [`record_to_json`].
pub fn write_record_json(out: &mut Vec<u8>, r: &Record<'_>) {
    out.extend_from_slice(b"{\"stream\":");
    write_str(out, &r.stream);
    out.extend_from_slice(b",\"op\":\"");
    out.extend_from_slice(r.op.as_str().as_bytes());
    out.extend_from_slice(b"\",\"position\":");
    write_str(out, &r.position);
    if let Some(t) = r.event_time {
        out.extend_from_slice(b",\"event_time\":");
        write_str(out, &timestamp_to_rfc3339(t));
    }
    if !r.key.is_null() {
        out.extend_from_slice(b",\"key\":");
        write_value_json(out, &r.key);
    }
    if !r.headers.is_empty() {
        out.extend_from_slice(b",\"headers\":{");
        for (i, (n, v)) in r.headers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, n);
            out.push(b':');
            write_str(out, &String::from_utf8_lossy(v));
        }
        out.push(b'}');
    }
    out.extend_from_slice(b",\"fields\":");
    write_fields_json(out, r);
    out.push(b'}');
}

/// The whole record as JSON text.
pub fn record_json_text(r: &Record<'_>) -> String {
    let mut out = Vec::with_capacity(256);
    write_record_json(&mut out, r);
    String::from_utf8(out).unwrap_or_default()
}

/// A record from its JSON form ([`record_to_json`]): `fields` (required),
/// `stream`, `op`, `position`, `event_time` (RFC 3339), `key`, `headers`
/// (text). Values come back as JSON has them (a timestamp or bytes value
/// as its text), and the fields in the order of their names.
pub fn json_to_record(j: &Json) -> Result<Record<'static>, String> {
    let Json::Object(o) = j else {
        return Err("not a JSON object".into());
    };
    let Some(Json::Object(fields)) = o.get("fields") else {
        return Err("no `fields` object".into());
    };
    let text = |name: &str| o.get(name).and_then(Json::as_str).unwrap_or_default();
    let mut r = object_to_record(fields, text("stream"), text("position").to_string());
    if let Some(op) = o.get("op").and_then(Json::as_str) {
        r.op = sluice_codec::Operation::parse(op).ok_or_else(|| format!("unknown op `{op}`"))?;
    }
    if let Some(t) = o.get("event_time").and_then(Json::as_str) {
        r.event_time = Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| format!("`event_time` `{t}`: {e}"))?
                .timestamp_micros(),
        );
    }
    if let Some(k) = o.get("key") {
        r.key = json_to_value(k);
    }
    if let Some(Json::Object(h)) = o.get("headers") {
        r.headers = h
            .iter()
            .map(|(n, v)| {
                let v = match v {
                    Json::String(s) => s.clone().into_bytes(),
                    other => other.to_string().into_bytes(),
                };
                (Cow::Owned(n.clone()), Cow::Owned(v))
            })
            .collect();
    }
    Ok(r)
}

/// A record whose fields are the members of a JSON object.
pub fn object_to_record(
    obj: &Map<String, Json>,
    stream: &str,
    position: String,
) -> Record<'static> {
    Record {
        stream: Cow::Owned(stream.to_string()),
        position: Cow::Owned(position),
        op: sluice_codec::Operation::Insert,
        fields: obj
            .iter()
            .map(|(k, v)| (Cow::Owned(k.clone()), json_to_value(v)))
            .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_comes_back_from_its_json_form() {
        let mut r = Record {
            stream: "people".into(),
            position: "0/16B3748".into(),
            op: sluice_codec::Operation::Update,
            event_time: Some(1_796_119_200_000_001),
            key: Value::Int(7),
            ..Default::default()
        };
        r.set("id", Value::Int(7));
        r.set("name", Value::Text("Ana".into()));
        r.set("meta", Value::Json(r#"{"a":[1,2]}"#.into()));
        r.headers
            .push(("sluice-old-key".into(), b"{\"id\":6}".to_vec().into()));
        let back = json_to_record(&record_to_json(&r)).expect("record");
        // JSON objects keep no order here: the fields come back by name.
        r.fields.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(back, r);
        assert!(json_to_record(&serde_json::json!({"stream": "s"})).is_err());
        assert!(json_to_record(&serde_json::json!({"fields": {}, "op": "merge"})).is_err());
    }

    #[test]
    fn round_trips_json_objects() {
        let j: Json =
            serde_json::from_str(r#"{"a":1,"b":"x","c":[1,2],"d":null,"e":1.5,"f":true}"#)
                .expect("json");
        let Json::Object(obj) = &j else {
            panic!("object")
        };
        let rec = object_to_record(obj, "s", "line 1".into());
        assert_eq!(Json::Object(fields_to_json(&rec)), j);
    }

    #[test]
    fn the_fast_writer_matches_serde_json() {
        let j: Json = serde_json::from_str(
            r#"{"a":1,"b":"x\"y\n","c":[1,{"d":2}],"d":null,"e":1.5,"f":true}"#,
        )
        .expect("json");
        let Json::Object(obj) = &j else {
            panic!("object")
        };
        let mut rec = object_to_record(obj, "s", "line 1".into());
        rec.key = Value::Int(7);
        let mut out = Vec::new();
        write_record_json(&mut out, &rec);
        let back: Json = serde_json::from_slice(&out).expect("valid JSON");
        assert_eq!(back, record_to_json(&rec));
        let mut bad = Vec::new();
        write_value_json(&mut bad, &Value::Json("{not json".into()));
        assert_eq!(bad, b"\"{not json\"");
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(
            timestamp_to_rfc3339(1_700_000_000_000_000),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            value_to_json(&Value::Bytes(Cow::Borrowed(b"hi"))),
            Json::String("aGk=".into())
        );
    }

    #[test]
    fn a_json_value_with_line_breaks_stays_on_one_line() {
        let mut out = Vec::new();
        let pretty = "{\n  \"a\": [1,\r\n 2],\n  \"s\": \"x\\ny\"\n}";
        write_value_json(&mut out, &Value::Json(pretty.into()));
        let text = String::from_utf8(out).expect("utf-8");
        assert!(!text.contains('\n') && !text.contains('\r'), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(pretty).expect("json")
        );
    }
}
