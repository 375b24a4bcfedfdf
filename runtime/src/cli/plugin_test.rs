//! `sluice plugin test PLUGIN --input FILE [--config FILE] [--expect FILE]`:
//! the plugin author's inner loop, and golden-file tests.
//!
//! Input: JSON lines, each an object of fields, or an envelope
//! `{"fields": {...}, "stream": "...", "op": "update", "key": ...}`.
//! Output: one JSON line per input record:
//! `{"outcome":"keep","record":{...}}`, `{"outcome":"emit","records":[...]}`,
//! `{"outcome":"drop"}`, `{"outcome":"reject","code":...,"field":...,"message":...}`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::Value as Json;

use crate::config::toml_to_json;
use crate::plugin::golden::{differences, read_outcomes, read_records, run_records};
use crate::plugin::{Grants, Limits, PluginHost, PluginSpec};

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

pub(super) fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let config_json = read_config(args.config.as_deref())?;
    let records = read_records(&args.input).map_err(anyhow::Error::msg)?;
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
        canary: None,
    })?;
    let mut instance = plugin.instantiate()?;
    let actual = run_records(&plugin, &mut instance, &records, args.batch_size)
        .map_err(anyhow::Error::msg)?;
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
    let want = read_outcomes(expect).map_err(anyhow::Error::msg)?;
    let diffs = differences(&actual, &want);
    for (i, w, a) in &diffs {
        eprintln!(
            "record {} ({}):",
            i + 1,
            records.get(*i).map_or("-", |r| r.position.as_ref())
        );
        eprintln!(
            "  expected: {}",
            w.as_ref().map_or("(nothing)".into(), Json::to_string)
        );
        eprintln!(
            "  actual:   {}",
            a.as_ref().map_or("(nothing)".into(), Json::to_string)
        );
    }
    let differ = diffs.len();
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
