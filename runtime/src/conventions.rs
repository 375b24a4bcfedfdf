//! The record conventions every connector shares: the names of the
//! headers Sluice gives records (and the dead-letter stream), and the one
//! parser or builder of each. Sources set them, sinks read them; neither
//! defines them.
//!
//! - `sluice-key`: the key column names, comma-separated (PostgreSQL
//!   change data capture, also through Kafka);
//! - `sluice-old-key`: a JSON object of the old key, on an update that
//!   changed the key;
//! - `sluice-truncate`: on the delete record a `TRUNCATE` gives;
//! - `sluice-unchanged`: a JSON array of the columns an update leaves out
//!   because the source did not send their unchanged values;
//! - `sluice-op`, `sluice-stream`: a record's operation and stream in a
//!   Kafka message;
//! - `sluice-version-TRANSFORM`: the version of each transform that made
//!   a record;
//! - `sluice-dlq-FIELD`: a dead letter's reason, code... as Kafka headers.

use sluice_codec::{Operation, Record};

/// Header naming the key columns.
pub const KEY_HEADER: &str = "sluice-key";
/// Header with the old key of an update that changed it.
pub const OLD_KEY_HEADER: &str = "sluice-old-key";
/// Header marking the record of a `TRUNCATE`.
pub const TRUNCATE_HEADER: &str = "sluice-truncate";
/// Header listing (as a JSON array) the columns an update leaves out
/// because their values did not change and the source did not send them.
pub const UNCHANGED_HEADER: &str = "sluice-unchanged";
/// Header carrying the record's operation (`insert`, `update`, `delete`,
/// `snapshot`), so that a change stream keeps its meaning through a topic.
pub const OP_HEADER: &str = "sluice-op";
/// Header carrying the record's stream (a table name) when it is not the
/// topic's name.
pub const STREAM_HEADER: &str = "sluice-stream";
/// The stream of dead letters (`DeadLetter::to_record`).
pub const DEAD_LETTER_STREAM: &str = "dead_letters";

/// The key value of a record: the one key field, or for a composite key a
/// JSON array of the text forms of its fields (`["7","eu"]`), the same for
/// every source.
pub fn key_value<'c>(
    fields: &[(std::borrow::Cow<'c, str>, sluice_codec::Value<'c>)],
    positions: &[usize],
) -> sluice_codec::Value<'c> {
    use sluice_codec::Value;
    match positions {
        [one] => fields
            .get(*one)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null),
        many => {
            let parts: Vec<serde_json::Value> = many
                .iter()
                .map(|&i| {
                    fields
                        .get(i)
                        .and_then(|(_, v)| crate::value_json::value_text(v))
                        .map_or(serde_json::Value::Null, serde_json::Value::String)
                })
                .collect();
            Value::Json(std::borrow::Cow::Owned(
                serde_json::Value::Array(parts).to_string(),
            ))
        }
    }
}

/// The value of header `name` of `rec`, if it has one.
pub fn header<'r>(rec: &'r Record<'_>, name: &str) -> Option<&'r [u8]> {
    rec.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_ref())
}

/// The `sluice-key` header of a record (the key column names,
/// comma-separated), if it has one.
pub fn key_header<'r>(rec: &'r Record<'_>) -> Option<&'r str> {
    header(rec, KEY_HEADER).and_then(|v| std::str::from_utf8(v).ok())
}

/// The column names of a `sluice-key` header value (empty names left out).
pub fn key_columns(header: &str) -> Vec<String> {
    header
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// The columns a record's `sluice-unchanged` header lists (empty without
/// the header).
pub fn unchanged_columns(rec: &Record<'_>) -> Result<Vec<String>, String> {
    match header(rec, UNCHANGED_HEADER) {
        None => Ok(Vec::new()),
        Some(raw) => serde_json::from_slice(raw).map_err(|e| {
            format!("header `{UNCHANGED_HEADER}` is not a JSON array of column names: {e}")
        }),
    }
}

/// True for the delete record of a source `TRUNCATE`.
pub fn is_truncate(rec: &Record<'_>) -> bool {
    rec.op == Operation::Delete && header(rec, TRUNCATE_HEADER).is_some()
}

/// The old key of an update that changed its key (`sluice-old-key`), by
/// column: `None` without the header, an error when it is not a JSON
/// object.
pub fn old_key(
    rec: &Record<'_>,
) -> Option<Result<serde_json::Map<String, serde_json::Value>, String>> {
    header(rec, OLD_KEY_HEADER).map(|raw| {
        serde_json::from_slice(raw)
            .map_err(|e| format!("header `{OLD_KEY_HEADER}` is not a JSON object: {e}"))
    })
}

/// The name of the header that carries the version of transform
/// `transform` (`sluice-version-TRANSFORM`).
pub fn version_header(transform: &str) -> String {
    format!("sluice-version-{transform}")
}

/// The name of the Kafka header that carries field `field` of a dead
/// letter (`sluice-dlq-FIELD`).
pub fn dead_letter_header(field: &str) -> String {
    format!("sluice-dlq-{field}")
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn with(headers: &[(&'static str, &'static [u8])], op: Operation) -> Record<'static> {
        Record {
            op,
            headers: headers
                .iter()
                .map(|(n, v)| (Cow::Borrowed(*n), Cow::Borrowed(*v)))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn each_header_has_one_reader() {
        let r = with(
            &[
                (KEY_HEADER, b"id,,region"),
                (UNCHANGED_HEADER, br#"["big"]"#),
                (OLD_KEY_HEADER, br#"{"id":1}"#),
            ],
            Operation::Update,
        );
        assert_eq!(key_header(&r), Some("id,,region"));
        // An empty name (a doubled comma) is no column.
        assert_eq!(key_columns("id,,region"), ["id", "region"]);
        assert_eq!(unchanged_columns(&r), Ok(vec!["big".to_string()]));
        assert_eq!(
            old_key(&r).and_then(Result::ok).map(|m| m["id"].clone()),
            Some(serde_json::json!(1))
        );
        assert!(!is_truncate(&r));
        assert!(is_truncate(&with(
            &[(TRUNCATE_HEADER, b"1")],
            Operation::Delete
        )));
        // Only a delete truncates.
        assert!(!is_truncate(&with(
            &[(TRUNCATE_HEADER, b"1")],
            Operation::Insert
        )));
        let bad = with(
            &[(UNCHANGED_HEADER, b"big"), (OLD_KEY_HEADER, b"[1]")],
            Operation::Update,
        );
        assert!(unchanged_columns(&bad).is_err_and(|e| e.contains(UNCHANGED_HEADER)));
        assert!(old_key(&bad).is_some_and(|r| r.is_err()));
        assert_eq!(version_header("cleanse"), "sluice-version-cleanse");
        assert_eq!(dead_letter_header("code"), "sluice-dlq-code");
    }
}
