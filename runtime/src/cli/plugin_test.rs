//! `sluice plugin test PLUGIN --input FILE [--config FILE] [--expect FILE]`:
//! the plugin author's inner loop, and golden-file tests.
//!
//! Input: JSON lines, each an object of fields, or an envelope
//! `{"fields": {...}, "stream": "...", "op": "update", "key": ...}`.
//! Output: one JSON line per input record:
//! `{"outcome":"keep","record":{...}}`, `{"outcome":"emit","records":[...]}`,
//! `{"outcome":"drop"}`, `{"outcome":"reject","code":...,"field":...,"message":...}`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::{Map, Value as Json, json};
use sluice_codec::{BatchWriter, Operation, OutcomeRef, OutcomesReader, Record};

use crate::config::toml_to_json;
use crate::plugin::{Grants, Limits, PluginHost, PluginSpec};
use crate::value_json::{fields_to_json, json_to_value, object_to_record};

/// Arguments of `sluice plugin test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The plugin component (`.wasm`).
    plugin: PathBuf,
    /// Sample records, one JSON object per line.
    #[arg(long)]
    input: PathBuf,
    /// The plugin's config: a `.json` or `.toml` file (default `{}`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Expected outcomes (JSON lines); exit 1 and show the differences if
    /// the actual outcomes differ.
    #[arg(long)]
    expect: Option<PathBuf>,
    /// Write the actual outcomes to the `--expect` file instead of comparing.
    #[arg(long, requires = "expect")]
    update: bool,
    /// Records per batch.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
}

fn read_config(path: Option<&Path>) -> anyhow::Result<String> {
    let Some(path) = path else {
        return Ok("{}".into());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    if path.extension().is_some_and(|e| e == "toml") {
        let table: toml::Table = toml::from_str(&text)
            .with_context(|| format!("`{}` is not valid TOML", path.display()))?;
        Ok(toml_to_json(&table))
    } else {
        let v: Json = serde_json::from_str(&text)
            .with_context(|| format!("`{}` is not valid JSON", path.display()))?;
        if !v.is_object() {
            bail!("`{}` must hold a JSON object", path.display());
        }
        Ok(v.to_string())
    }
}

/// Reads the sample records.
fn read_input(path: &Path) -> anyhow::Result<Vec<Record<'static>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    let stream = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Json = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not valid JSON", path.display(), i + 1))?;
        let Json::Object(obj) = v else {
            bail!("{}:{}: expected a JSON object", path.display(), i + 1);
        };
        let position = format!("line {}", i + 1);
        let rec = match obj.get("fields") {
            Some(Json::Object(fields)) => {
                let mut r = object_to_record(fields, &stream, position);
                if let Some(s) = obj.get("stream").and_then(Json::as_str) {
                    r.stream = Cow::Owned(s.to_string());
                }
                if let Some(op) = obj.get("op").and_then(Json::as_str) {
                    r.op = Operation::parse(op).with_context(|| {
                        format!("{}:{}: unknown op `{op}`", path.display(), i + 1)
                    })?;
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

fn record_json(r: &Record<'_>, input: &Record<'_>) -> Json {
    let mut m = Map::new();
    m.insert("record".into(), Json::Object(fields_to_json(r)));
    if r.stream != input.stream {
        m.insert("stream".into(), Json::String(r.stream.to_string()));
    }
    if r.op != input.op {
        m.insert("op".into(), Json::String(r.op.as_str().into()));
    }
    Json::Object(m)
}

fn outcome_json(o: OutcomeRef<'_>, input: &Record<'_>) -> anyhow::Result<Json> {
    Ok(match o {
        OutcomeRef::KeepUnchanged => {
            let mut v = record_json(input, input);
            v["outcome"] = json!("keep");
            v
        }
        OutcomeRef::Keep(bytes) => {
            let r = Record::decode(bytes).context("the plugin returned a malformed record")?;
            let mut v = record_json(&r, input);
            v["outcome"] = json!("keep");
            v
        }
        OutcomeRef::Emit(recs) => {
            let mut list = Vec::new();
            for bytes in recs {
                let r = Record::decode(bytes).context("the plugin emitted a malformed record")?;
                list.push(record_json(&r, input));
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

pub(super) fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let config_json = read_config(args.config.as_deref())?;
    let records = read_input(&args.input)?;
    let cache = std::env::var_os("SLUICE_CACHE_DIR").map(PathBuf::from);
    let host = PluginHost::new(cache)?;
    let name = args
        .plugin
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let plugin = host.load(PluginSpec {
        name,
        path: args.plugin.clone(),
        config_json,
        grants: Grants::default(),
        limits: Limits::default(),
    })?;
    let mut instance = plugin.instantiate()?;
    let mut actual: Vec<Json> = Vec::with_capacity(records.len());
    for chunk in records.chunks(args.batch_size.max(1)) {
        let mut w = BatchWriter::default();
        for r in chunk {
            w.push(r);
        }
        let outcomes = instance.process(&w.finish()).map_err(|e| {
            anyhow::anyhow!("plugin `{}` ({}) {e}", plugin.name(), plugin.version())
        })?;
        let mut reader =
            OutcomesReader::new(&outcomes).context("the plugin returned unreadable outcomes")?;
        if reader.remaining() != chunk.len() {
            bail!(
                "the plugin returned {} outcomes for {} records",
                reader.remaining(),
                chunk.len()
            );
        }
        for r in chunk {
            let o = reader
                .next_outcome()
                .context("the plugin returned unreadable outcomes")?;
            let Some(o) = o else { bail!("missing outcome") };
            actual.push(outcome_json(o, r)?);
        }
    }
    let text: String = actual.iter().map(|v| format!("{v}\n")).collect();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for v in &actual {
        let key = match (v["outcome"].as_str(), v["code"].as_str()) {
            (Some("reject"), Some(code)) => format!("reject {code}"),
            (Some(o), _) => o.to_string(),
            _ => "?".into(),
        };
        *counts.entry(key).or_default() += 1;
    }
    let tally: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    eprintln!(
        "{} records through `{}` ({}): {}",
        records.len(),
        plugin.name(),
        plugin.version(),
        tally.join(", ")
    );
    let Some(expect) = &args.expect else {
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    };
    if args.update {
        std::fs::write(expect, &text)
            .with_context(|| format!("cannot write `{}`", expect.display()))?;
        eprintln!("wrote {} outcomes to {}", actual.len(), expect.display());
        return Ok(ExitCode::SUCCESS);
    }
    let want_text = std::fs::read_to_string(expect)
        .with_context(|| format!("cannot read `{}`", expect.display()))?;
    let mut want = Vec::new();
    for (i, line) in want_text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        want.push(
            serde_json::from_str::<Json>(line)
                .with_context(|| format!("{}:{}: not valid JSON", expect.display(), i + 1))?,
        );
    }
    let mut differ = 0;
    for i in 0..actual.len().max(want.len()) {
        let (a, w) = (actual.get(i), want.get(i));
        if a != w {
            differ += 1;
            eprintln!(
                "record {} ({}):",
                i + 1,
                records.get(i).map_or("-", |r| r.position.as_ref())
            );
            eprintln!(
                "  expected: {}",
                w.map_or("(nothing)".into(), Json::to_string)
            );
            eprintln!(
                "  actual:   {}",
                a.map_or("(nothing)".into(), Json::to_string)
            );
        }
    }
    if differ > 0 {
        eprintln!(
            "FAIL: {differ} of {} outcomes differ from {} (rerun with --update to accept them)",
            actual.len().max(want.len()),
            expect.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    eprintln!("ok: {} outcomes match {}", actual.len(), expect.display());
    Ok(ExitCode::SUCCESS)
}
