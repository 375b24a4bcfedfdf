//! A Kafka message as a record: the value's JSON members are the fields
//! (or one field `value`), the key is the record key, headers are kept, the
//! message time is the event time, and `topic/partition@offset` is the
//! position. On topics declared a change stream (`change_stream = true`),
//! the headers `sluice-op` and `sluice-stream` (written by the Kafka sink)
//! restore the operation and stream, the other control headers are kept,
//! and a tombstone is a delete; on other topics the control headers are
//! dropped and a tombstone is dead-lettered: an arbitrary producer must not
//! be able to make a sink delete, move or truncate rows.

use std::borrow::Cow;

use rdkafka::message::{BorrowedMessage, Headers, Message};
use sluice_codec::{Operation, Record, Value};

use super::Tp;
use super::config::{KafkaSourceConfig, KeyFormat, ValueFormat};
use crate::conventions::{KEY_HEADER, OLD_KEY_HEADER, TRUNCATE_HEADER, UNCHANGED_HEADER};
use crate::conventions::{OP_HEADER, STREAM_HEADER};
use crate::sources::Malformed;
use crate::value_json::json_to_value;

/// A message read and converted, not yet handed over.
pub(super) struct Pending {
    pub tp: Tp,
    pub offset: i64,
    pub record: Result<Record<'static>, Malformed>,
}

/// Headers that steer what a sink does with a record.
const CONTROL_HEADERS: [&str; 6] = [
    OP_HEADER,
    STREAM_HEADER,
    KEY_HEADER,
    OLD_KEY_HEADER,
    TRUNCATE_HEADER,
    UNCHANGED_HEADER,
];

/// Says once per topic and header that a control header was dropped.
fn ignored_control_header(topic: &str, header: &str) {
    static SEEN: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if seen.len() < 64 && !seen.iter().any(|(t, h)| t == topic && h == header) {
        seen.push((topic.to_string(), header.to_string()));
        tracing::warn!(
            topic,
            header,
            "control header ignored: the topic is not declared a change stream (`change_stream = true`)"
        );
    }
}

fn op_from(name: &[u8]) -> Option<Operation> {
    Some(match name {
        b"insert" => Operation::Insert,
        b"update" => Operation::Update,
        b"delete" => Operation::Delete,
        b"snapshot" => Operation::Snapshot,
        _ => return None,
    })
}

pub(super) fn convert(m: &BorrowedMessage<'_>, config: &KafkaSourceConfig) -> Pending {
    let tp = (m.topic().to_string(), m.partition());
    let position = format!("{}/{}@{}", m.topic(), m.partition(), m.offset());
    let record = build(m, config, &position).map_err(|reason| Malformed {
        record: None,
        position: position.clone(),
        stream: m.topic().to_string(),
        raw: m
            .payload()
            .map(|p| String::from_utf8_lossy(&p[..p.len().min(64 * 1024)]).into_owned())
            .unwrap_or_default(),
        reason,
    });
    Pending {
        tp,
        offset: m.offset(),
        record,
    }
}

fn build(
    m: &BorrowedMessage<'_>,
    config: &KafkaSourceConfig,
    position: &str,
) -> Result<Record<'static>, String> {
    let mut r = Record {
        stream: Cow::Owned(m.topic().to_string()),
        position: Cow::Owned(position.to_string()),
        op: Operation::Insert,
        event_time: m.timestamp().to_millis().map(|ms| ms * 1000),
        ..Default::default()
    };
    if let Some(headers) = m.headers() {
        for h in headers.iter() {
            let value = h.value.unwrap_or_default();
            if !config.change_stream && CONTROL_HEADERS.contains(&h.key) {
                // Every Kafka sink writes `sluice-op: insert`, which asks
                // for nothing: dropped without a word.
                if !(h.key == OP_HEADER && value == b"insert") {
                    ignored_control_header(m.topic(), h.key);
                }
                continue;
            }
            if h.key == OP_HEADER {
                r.op = op_from(value).ok_or_else(|| {
                    format!(
                        "header `{OP_HEADER}` is `{}`: expected insert, update, delete or snapshot",
                        String::from_utf8_lossy(value)
                    )
                })?;
                continue;
            }
            if h.key == STREAM_HEADER {
                r.stream = Cow::Owned(String::from_utf8_lossy(value).into_owned());
                continue;
            }
            r.headers
                .push((Cow::Owned(h.key.to_string()), Cow::Owned(value.to_vec())));
        }
    }
    if let Some(key) = m.key() {
        r.key = match config.key_format {
            KeyFormat::Text => match std::str::from_utf8(key) {
                Ok(t) => Value::Text(Cow::Owned(t.to_string())),
                Err(_) => Value::Bytes(Cow::Owned(key.to_vec())),
            },
            KeyFormat::Bytes => Value::Bytes(Cow::Owned(key.to_vec())),
            KeyFormat::Json => {
                let j: serde_json::Value = serde_json::from_slice(key)
                    .map_err(|e| format!("the key is not JSON (`key_format = \"json\"`): {e}"))?;
                json_to_value(&j)
            }
        };
    }
    match (m.payload(), config.format) {
        // A tombstone: the key was deleted.
        (None, _) if config.change_stream => {
            r.op = Operation::Delete;
        }
        (None, _) => {
            return Err(format!(
                "a message without a value (a tombstone) on topic `{}`, which is not declared a change stream: set `change_stream = true` on the source if a Sluice sink writes it",
                m.topic()
            ));
        }
        (Some(p), ValueFormat::Json) => {
            let j: serde_json::Value =
                serde_json::from_slice(p).map_err(|e| format!("the value is not JSON: {e}"))?;
            let serde_json::Value::Object(obj) = j else {
                return Err(format!(
                    "the value is JSON but not an object (a {}): use `format = \"text\"` to take it whole",
                    kind(&j)
                ));
            };
            r.fields = obj
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k), json_to_value(&v)))
                .collect();
        }
        (Some(p), ValueFormat::Text) => {
            let t =
                std::str::from_utf8(p).map_err(|e| format!("the value is not UTF-8 text: {e}"))?;
            r.fields.push((
                Cow::Borrowed("value"),
                Value::Text(Cow::Owned(t.to_string())),
            ));
        }
        (Some(p), ValueFormat::Bytes) => {
            r.fields
                .push((Cow::Borrowed("value"), Value::Bytes(Cow::Owned(p.to_vec()))));
        }
    }
    if config.metadata_fields {
        r.fields.push((
            Cow::Borrowed("kafka_topic"),
            Value::Text(Cow::Owned(m.topic().to_string())),
        ));
        r.fields.push((
            Cow::Borrowed("kafka_partition"),
            Value::Int(i64::from(m.partition())),
        ));
        r.fields
            .push((Cow::Borrowed("kafka_offset"), Value::Int(m.offset())));
    }
    Ok(r)
}

fn kind(j: &serde_json::Value) -> &'static str {
    match j {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}
