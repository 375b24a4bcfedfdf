//! Sample records in, outcomes out, as JSON lines: the format of
//! `sluice plugin test` golden files and of canary records.
//!
//! Input: one JSON object of fields per line, or an envelope
//! `{"fields": {...}, "stream": "...", "op": "update", "key": ...}`.
//! An outcome's record shows `stream`, `op`, `key` and `headers` when the
//! plugin changed them.
//! Outcomes: `{"outcome":"keep","record":{...}}`,
//! `{"outcome":"emit","records":[...]}`, `{"outcome":"drop"}`,
//! `{"outcome":"reject","code":...,"field":...,"message":...}`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value as Json, json};
use sluice_codec::{BatchWriter, Operation, OutcomeRef, OutcomesReader, Record};

use super::{LoadedPlugin, PluginInstance};
use crate::value_json::{fields_to_json, json_to_value, object_to_record};

/// Records with expected outcomes that a candidate version must reproduce
/// before it goes live (`[transforms.canary]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    /// Input records (JSON lines), relative to the pipeline file.
    pub input: PathBuf,
    /// Expected outcomes (JSON lines), one per input record.
    pub expect: PathBuf,
}

/// Reads sample records from a JSON-lines file.
pub fn read_records(path: &Path) -> Result<Vec<Record<'static>>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let stream = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: Json =
            serde_json::from_str(line).map_err(|e| format!("{}: not valid JSON: {e}", at()))?;
        let Json::Object(obj) = v else {
            return Err(format!("{}: expected a JSON object", at()));
        };
        let position = format!("line {}", i + 1);
        let rec = match obj.get("fields") {
            Some(Json::Object(fields)) => {
                let mut r = object_to_record(fields, &stream, position);
                if let Some(s) = obj.get("stream").and_then(Json::as_str) {
                    r.stream = Cow::Owned(s.to_string());
                }
                if let Some(op) = obj.get("op").and_then(Json::as_str) {
                    r.op = Operation::parse(op)
                        .ok_or_else(|| format!("{}: unknown op `{op}`", at()))?;
                }
                if let Some(k) = obj.get("key") {
                    r.key = json_to_value(k);
                }
                r
            }
            _ => object_to_record(&obj, &stream, position),
        };
        out.push(rec);
    }
    Ok(out)
}

/// Reads expected outcomes from a JSON-lines file.
pub fn read_outcomes(path: &Path) -> Result<Vec<Json>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| format!("{}:{}: not valid JSON: {e}", path.display(), i + 1))
        })
        .collect()
}

fn record_json(r: &Record<'_>, input: &Record<'_>) -> Json {
    let mut m = Map::new();
    m.insert("record".into(), Json::Object(fields_to_json(r)));
    if r.stream != input.stream {
        m.insert("stream".into(), Json::String(r.stream.to_string()));
    }
    if r.op != input.op {
        m.insert("op".into(), Json::String(r.op.as_str().into()));
    }
    if r.key != input.key {
        m.insert("key".into(), crate::value_json::value_to_json(&r.key));
    }
    if r.headers != input.headers {
        // Text headers as text, others as base64.
        let headers = r
            .headers
            .iter()
            .map(|(name, value)| {
                let value = match std::str::from_utf8(value) {
                    Ok(t) => Json::String(t.to_string()),
                    Err(_) => {
                        use base64::Engine as _;
                        json!({ "base64": base64::engine::general_purpose::STANDARD.encode(value) })
                    }
                };
                json!([name, value])
            })
            .collect();
        m.insert("headers".into(), Json::Array(headers));
    }
    Json::Object(m)
}

fn outcome_json(o: OutcomeRef<'_>, input: &Record<'_>) -> Result<Json, String> {
    let decode = |bytes| {
        Record::decode(bytes).map_err(|e| format!("the plugin returned a malformed record: {e}"))
    };
    Ok(match o {
        OutcomeRef::KeepUnchanged => {
            let mut v = record_json(input, input);
            v["outcome"] = json!("keep");
            v
        }
        OutcomeRef::Keep(bytes) => {
            let mut v = record_json(&decode(bytes)?, input);
            v["outcome"] = json!("keep");
            v
        }
        OutcomeRef::Emit(recs) => {
            let mut list = Vec::new();
            for bytes in recs {
                list.push(record_json(&decode(bytes)?, input));
            }
            json!({"outcome": "emit", "records": list})
        }
        OutcomeRef::Drop => json!({"outcome": "drop"}),
        OutcomeRef::Reject(r) => json!({
            "outcome": "reject",
            "code": r.code,
            "field": r.field,
            "message": r.message,
        }),
    })
}

/// Runs `records` through `instance` in batches and returns one outcome
/// per record, as JSON.
pub fn run_records(
    plugin: &LoadedPlugin,
    instance: &mut PluginInstance,
    records: &[Record<'_>],
    batch_size: usize,
) -> Result<Vec<Json>, String> {
    let mut actual = Vec::with_capacity(records.len());
    for chunk in records.chunks(batch_size.max(1)) {
        let mut w = BatchWriter::default();
        for r in chunk {
            w.push(r);
        }
        let outcomes = instance
            .process(&w.finish())
            .map_err(|e| format!("plugin `{}` ({}) {e}", plugin.name(), plugin.version()))?;
        let mut reader = OutcomesReader::new(&outcomes)
            .map_err(|e| format!("the plugin returned unreadable outcomes: {e}"))?;
        if reader.remaining() != chunk.len() {
            return Err(format!(
                "the plugin returned {} outcomes for {} records",
                reader.remaining(),
                chunk.len()
            ));
        }
        for r in chunk {
            let o = reader
                .next_outcome()
                .map_err(|e| format!("the plugin returned unreadable outcomes: {e}"))?
                .ok_or("missing outcome")?;
            actual.push(outcome_json(o, r)?);
        }
    }
    Ok(actual)
}

/// The outcomes that differ: (index, expected, actual).
pub fn differences(actual: &[Json], expected: &[Json]) -> Vec<(usize, Option<Json>, Option<Json>)> {
    (0..actual.len().max(expected.len()))
        .filter(|&i| actual.get(i) != expected.get(i))
        .map(|i| (i, expected.get(i).cloned(), actual.get(i).cloned()))
        .collect()
}

/// Runs the canary records on a fresh instance of `plugin` (never the live
/// one) and checks every outcome.
pub fn check_canary(plugin: &LoadedPlugin, canary: &Canary) -> Result<usize, String> {
    let records = read_records(&canary.input)?;
    let expected = read_outcomes(&canary.expect)?;
    let mut instance = plugin.instantiate().map_err(|e| e.to_string())?;
    let actual = run_records(plugin, &mut instance, &records, 256)?;
    match differences(&actual, &expected).first() {
        None => Ok(records.len()),
        Some((i, want, got)) => Err(format!(
            "canary record {} of `{}` differs: expected {}, got {}",
            i + 1,
            canary.input.display(),
            want.as_ref().map_or("nothing".into(), Json::to_string),
            got.as_ref().map_or("nothing".into(), Json::to_string)
        )),
    }
}
