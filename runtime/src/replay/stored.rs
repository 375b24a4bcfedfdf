//! Dead letters as a dead-letter sink stored them, read back: from a
//! JSON-lines file, a SQLite or PostgreSQL table, or a Kafka topic.

use std::path::Path;

use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::sinks::SinkConfig;

/// One stored dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDeadLetter {
    /// Its identity: a digest of what it says (time, stage, code, position,
    /// stream, record), the same each time the store is read.
    pub id: String,
    /// `rejected`, `plugin_failed`, `malformed_input` or `sink_refused`.
    pub reason: String,
    /// The stage that refused it: a transform's name, `source` or `sink`.
    pub stage: String,
    /// The machine-readable code.
    pub code: String,
    /// The version of the plugin that refused it.
    pub plugin_version: Option<String>,
    /// Where the record came from (`line 12`).
    pub position: String,
    /// The record's stream.
    pub stream: String,
    /// When it was dead-lettered, µs since the epoch (when the store kept it).
    pub time: Option<i64>,
    /// The record as the source gave it (`stream`, `op`, `key`, `headers`,
    /// `fields`), `None` for input the source could not read.
    pub record: Option<Json>,
    /// The dead letter this one is a replay of, when it is.
    pub replay_of: Option<String>,
}

/// Where the dead letters are and what could not be read there.
#[derive(Debug, Default)]
pub struct Read {
    /// The dead letters, in the store's order.
    pub letters: Vec<StoredDeadLetter>,
    /// Entries that are not dead letters, each with where it is and why.
    pub unreadable: Vec<String>,
}

impl StoredDeadLetter {
    /// A dead letter from its fields as JSON (as the JSON-lines and Kafka
    /// sinks write them, and as a table row reads).
    pub fn from_fields(f: &Map<String, Json>) -> Result<Self, String> {
        let text = |name: &str| -> Option<String> {
            match f.get(name) {
                Some(Json::String(s)) => Some(s.clone()),
                Some(Json::Null) | None => None,
                Some(other) => Some(other.to_string()),
            }
        };
        let need = |name: &str| text(name).ok_or_else(|| format!("no `{name}`"));
        let reason = need("reason")?;
        let stage = need("stage")?;
        let code = need("code")?;
        let time = match f.get("time") {
            Some(Json::Number(n)) => n.as_i64(),
            Some(Json::String(s)) => Some(
                chrono::DateTime::parse_from_rfc3339(s)
                    .map_err(|e| format!("`time` `{s}` is not an RFC 3339 time: {e}"))?
                    .timestamp_micros(),
            ),
            _ => None,
        };
        // Embedded as JSON (JSON lines, Kafka, PostgreSQL `jsonb`) or as
        // JSON text (SQLite).
        let record = match f.get("record") {
            Some(Json::String(s)) => Some(
                serde_json::from_str::<Json>(s)
                    .map_err(|e| format!("`record` is not JSON: {e}"))?,
            ),
            Some(Json::Null) | None => None,
            Some(other) => Some(other.clone()),
        };
        let position = text("position").unwrap_or_default();
        let stream = text("stream").unwrap_or_default();
        let mut h = Sha256::new();
        for part in [
            time.map(|t| t.to_string()).unwrap_or_default(),
            stage.clone(),
            code.clone(),
            position.clone(),
            stream.clone(),
            record.as_ref().map(Json::to_string).unwrap_or_default(),
            text("raw").unwrap_or_default(),
        ] {
            h.update(part.as_bytes());
            h.update([0x1f]);
        }
        let id = h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(StoredDeadLetter {
            id,
            reason,
            stage,
            code,
            plugin_version: text("plugin_version"),
            position,
            stream,
            time,
            record,
            replay_of: text("replay_of"),
        })
    }
}

/// The fields of one stored entry: the object itself, or its `fields` when
/// the sink wrote metadata around them (`include_metadata`).
fn fields_of(v: Json) -> Option<Map<String, Json>> {
    let Json::Object(mut o) = v else {
        return None;
    };
    if !o.contains_key("reason")
        && let Some(Json::Object(f)) = o.remove("fields")
    {
        return Some(f);
    }
    Some(o)
}

fn add(out: &mut Read, at: String, v: Json) {
    match fields_of(v).ok_or_else(|| "not a JSON object".to_string()) {
        Ok(f) => match StoredDeadLetter::from_fields(&f) {
            Ok(d) => out.letters.push(d),
            Err(e) => out.unreadable.push(format!("{at}: {e}")),
        },
        Err(e) => out.unreadable.push(format!("{at}: {e}")),
    }
}

/// Reads a JSON-lines dead-letter file (a missing file holds none).
pub fn read_jsonl(path: &Path) -> Result<Read, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::default()),
        Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
    };
    let mut out = Read::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{}:{}", path.display(), i + 1);
        match serde_json::from_str::<Json>(line) {
            Ok(v) => add(&mut out, at, v),
            Err(e) => out.unreadable.push(format!("{at}: not JSON: {e}")),
        }
    }
    Ok(out)
}

/// Reads a SQLite dead-letter table (a missing table holds none).
pub fn read_sqlite(path: &Path, table: &str) -> Result<Read, String> {
    let cannot = |e: rusqlite::Error| format!("cannot read `{table}` in `{}`: {e}", path.display());
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(cannot)?;
    let exists: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .map_err(cannot)?;
    let mut out = Read::default();
    if !exists {
        return Ok(out);
    }
    let mut stmt = conn
        .prepare(&format!(
            "SELECT * FROM \"{}\" ORDER BY rowid",
            table.replace('"', "\"\"")
        ))
        .map_err(cannot)?;
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let mut rows = stmt.query([]).map_err(cannot)?;
    let mut n = 0;
    while let Some(row) = rows.next().map_err(cannot)? {
        n += 1;
        let mut f = Map::new();
        for (i, name) in names.iter().enumerate() {
            let v: rusqlite::types::Value = row.get(i).map_err(cannot)?;
            f.insert(
                name.clone(),
                match v {
                    rusqlite::types::Value::Null => Json::Null,
                    rusqlite::types::Value::Integer(i) => Json::from(i),
                    rusqlite::types::Value::Real(x) => Json::from(x),
                    rusqlite::types::Value::Text(t) => Json::String(t),
                    rusqlite::types::Value::Blob(b) => {
                        Json::String(String::from_utf8_lossy(&b).into_owned())
                    }
                },
            );
        }
        add(
            &mut out,
            format!("{} table {table} row {n}", path.display()),
            Json::Object(f),
        );
    }
    Ok(out)
}

/// Reads a PostgreSQL dead-letter table (a missing table holds none).
#[cfg(feature = "postgres")]
pub fn read_postgres(url: &str, schema: &str, table: &str) -> Result<Read, String> {
    let mut client = crate::pg::connect(url, "sluice replay")?;
    let exists: bool = client
        .query_one(
            "SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
            &[&schema, &table],
        )
        .map_err(|e| format!("cannot look for the dead-letter table {schema}.{table}: {e}"))?
        .get(0);
    let mut out = Read::default();
    if !exists {
        return Ok(out);
    }
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let rows = client
        .query(
            &format!(
                "SELECT row_to_json(t)::text FROM {}.{} t",
                q(schema),
                q(table)
            ),
            &[],
        )
        .map_err(|e| format!("cannot read the dead-letter table {schema}.{table}: {e}"))?;
    for (i, row) in rows.iter().enumerate() {
        let text: String = row.get(0);
        let at = format!("{schema}.{table} row {}", i + 1);
        match serde_json::from_str::<Json>(&text) {
            Ok(v) => add(&mut out, at, v),
            Err(e) => out.unreadable.push(format!("{at}: {e}")),
        }
    }
    Ok(out)
}

/// Reads a Kafka dead-letter topic from its start to its end now.
#[cfg(feature = "kafka")]
pub fn read_kafka(
    brokers: &str,
    topic: &str,
    options: &std::collections::BTreeMap<String, String>,
) -> Result<Read, String> {
    use std::time::{Duration, Instant};

    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};

    let mut c = crate::kafka::client_config(brokers, options);
    c.set("group.id", "sluice-replay")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = c.create().map_err(|e| {
        format!(
            "cannot read the dead-letter topic `{topic}`: {}",
            crate::kafka::explain(&e, brokers)
        )
    })?;
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| {
            format!(
                "cannot read the dead-letter topic `{topic}`: {}",
                crate::kafka::explain(&e, brokers)
            )
        })?;
    let mut out = Read::default();
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Ok(out);
    };
    // Every partition from its start, up to where its high watermark says
    // it ends, then until the topic has been quiet for a second: a
    // watermark can lag behind the last messages a producer had confirmed.
    let mut list = TopicPartitionList::new();
    let mut ends = std::collections::HashMap::new();
    for p in t.partitions() {
        list.add_partition_offset(topic, p.id(), Offset::Beginning)
            .map_err(|e| e.to_string())?;
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .map_err(|e| {
                format!(
                    "cannot read the dead-letter topic `{topic}`: {}",
                    crate::kafka::explain(&e, brokers)
                )
            })?;
        if high > low {
            ends.insert(p.id(), high);
        }
    }
    consumer.assign(&list).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let quiet = Duration::from_secs(1);
    let mut last = Instant::now();
    while !ends.is_empty() || last.elapsed() < quiet {
        if Instant::now() > deadline {
            return Err(format!(
                "reading the dead-letter topic `{topic}` took more than two minutes: partitions {:?} not read to their end",
                ends.keys().collect::<Vec<_>>()
            ));
        }
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.map_err(|e| format!("cannot read the dead-letter topic `{topic}`: {e}"))?;
        last = Instant::now();
        let at = format!("{topic}[{}]@{}", m.partition(), m.offset());
        if let Some(end) = ends.get(&m.partition())
            && m.offset() + 1 >= *end
        {
            ends.remove(&m.partition());
        }
        match m.payload().map(serde_json::from_slice::<Json>) {
            Some(Ok(v)) => add(&mut out, at, v),
            Some(Err(e)) => out.unreadable.push(format!("{at}: not JSON: {e}")),
            None => out.unreadable.push(format!("{at}: no payload")),
        }
    }
    Ok(out)
}

/// Reads the dead letters a dead-letter sink stored.
pub fn read(config: &SinkConfig) -> Result<Read, String> {
    let table = |t: &Option<String>| {
        t.clone()
            .unwrap_or_else(|| crate::conventions::DEAD_LETTER_STREAM.to_string())
    };
    match config {
        SinkConfig::Jsonl(c) => read_jsonl(&c.path),
        SinkConfig::Sqlite(c) => read_sqlite(&c.path, &table(&c.table)),
        #[cfg(feature = "postgres")]
        SinkConfig::Postgres(c) => read_postgres(&c.url, &c.schema, &table(&c.table)),
        #[cfg(feature = "kafka")]
        SinkConfig::Kafka(c) => read_kafka(&c.brokers, &c.topic, &c.options),
        SinkConfig::Stdout(_) | SinkConfig::Wasm(_) => Err(
            "dead letters cannot be read back from a `stdout` or `wasm` dead-letter sink: replay reads JSON lines, SQLite, PostgreSQL and Kafka (`--from FILE` reads a JSON-lines copy)".into(),
        ),
        #[allow(unreachable_patterns)]
        _ => Err("this dead-letter sink's connector is not in this sluice (cargo features `postgres`, `kafka`)".into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_reads_the_same_from_json_lines_with_or_without_metadata_and_from_sqlite() {
        let fields = serde_json::json!({
            "reason": "rejected", "stage": "validate", "plugin_version": "abc",
            "code": "invalid_email", "field": "email", "message": "no",
            "position": "line 3", "stream": "people", "time": "2026-12-01T10:00:00.000001Z",
            "record": {"stream": "people", "op": "insert", "position": "line 3", "fields": {"id": 3, "email": "x"}},
            "input": null, "raw": null
        });
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.jsonl");
        let wrapped = dir.path().join("wrapped.jsonl");
        std::fs::write(
            &plain,
            format!("{fields}\n\nnot json\n{{\"reason\":\"rejected\"}}\n"),
        )
        .unwrap();
        std::fs::write(
            &wrapped,
            format!(
                "{}\n",
                serde_json::json!({"stream": "dead_letters", "fields": fields})
            ),
        )
        .unwrap();
        let a = read_jsonl(&plain).unwrap();
        let b = read_jsonl(&wrapped).unwrap();
        assert_eq!(a.letters.len(), 1);
        assert_eq!(a.letters, b.letters);
        let d = &a.letters[0];
        assert_eq!(d.time, Some(1_796_119_200_000_001));
        assert_eq!(d.record.as_ref().unwrap()["fields"]["id"], 3);
        assert_eq!(d.id.len(), 32);
        // Where each bad entry is, and why.
        assert_eq!(a.unreadable.len(), 2, "{:?}", a.unreadable);
        assert!(
            a.unreadable[0].contains("plain.jsonl:3: not JSON"),
            "{:?}",
            a.unreadable
        );
        assert!(
            a.unreadable[1].contains("plain.jsonl:4: no `stage`"),
            "{:?}",
            a.unreadable
        );

        // SQLite keeps the record as JSON text and the time as text.
        let db = dir.path().join("dlq.db");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE dead_letters (reason TEXT, stage TEXT, plugin_version TEXT, code TEXT, field TEXT, message TEXT, position TEXT, stream TEXT, time TEXT, record TEXT, input TEXT, raw TEXT)",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO dead_letters VALUES ('rejected', 'validate', 'abc', 'invalid_email', 'email', 'no', 'line 3', 'people', '2026-12-01T10:00:00.000001Z', ?1, NULL, NULL)",
            [fields["record"].to_string()],
        )
        .unwrap();
        let c = read_sqlite(&db, "dead_letters").unwrap();
        assert_eq!(c.letters, a.letters, "the same dead letter, the same id");
        assert!(read_sqlite(&db, "missing").unwrap().letters.is_empty());
        assert!(
            read_jsonl(&dir.path().join("none.jsonl"))
                .unwrap()
                .letters
                .is_empty()
        );
    }
}
