//! `sluice plugin test [DIR]`: builds the plugin in DIR and runs every test
//! case under `DIR/tests/` (a directory with `input.jsonl`, optional
//! `config.json`/`config.toml` and `expected.jsonl`); or
//! `sluice plugin test PLUGIN.wasm --input FILE [--config FILE] [--expect FILE]`:
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
    /// A plugin directory (built first, then every case in its `tests/`
    /// is run), or a plugin component (`.wasm`, with `--input`).
    #[arg(default_value = ".")]
    plugin: PathBuf,
    /// Sample records, one JSON object per line (with a `.wasm`).
    #[arg(long)]
    input: Option<PathBuf>,
    /// The plugin's config: a `.json` or `.toml` file (default `{}`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Expected outcomes (JSON lines); exit 1 and show the differences if
    /// the actual outcomes differ.
    #[arg(long)]
    expect: Option<PathBuf>,
    /// Write the actual outcomes to the expected file(s) instead of comparing.
    #[arg(long)]
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

/// One test case: input, config and expected outcomes.
struct Case {
    input: PathBuf,
    config: Option<PathBuf>,
    expect: Option<PathBuf>,
}

/// The cases of a plugin directory: `tests/` itself and each directory below
/// it that holds an `input.jsonl`.
fn cases(dir: &Path) -> anyhow::Result<Vec<Case>> {
    let tests = dir.join("tests");
    let mut dirs = vec![tests.clone()];
    if let Ok(entries) = std::fs::read_dir(&tests) {
        let mut subs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        subs.sort();
        dirs.extend(subs);
    }
    let found: Vec<Case> = dirs
        .into_iter()
        .filter(|d| d.join("input.jsonl").is_file())
        .map(|d| Case {
            input: d.join("input.jsonl"),
            config: ["config.json", "config.toml"]
                .iter()
                .map(|n| d.join(n))
                .find(|p| p.is_file()),
            expect: Some(d.join("expected.jsonl")),
        })
        .collect();
    if found.is_empty() {
        bail!(
            "`{}` has no test case: add `tests/input.jsonl` (sample records) and `tests/expected.jsonl` (create it with `--update`)",
            dir.display()
        );
    }
    Ok(found)
}

pub(super) fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let cache = std::env::var_os("SLUICE_CACHE_DIR").map(PathBuf::from);
    let host = PluginHost::new(cache)?;
    if args.plugin.is_dir() {
        if args.input.is_some() {
            bail!(
                "`--input` goes with a `.wasm` component; a plugin directory runs the cases in its `tests/`"
            );
        }
        let built = crate::toolchain::build(&args.plugin, None)?;
        eprintln!(
            "built {} plugin `{}` in {:.1}s",
            built.lang,
            built.name,
            built.took.as_secs_f64()
        );
        let mut failed = 0;
        let all = cases(&args.plugin)?;
        for case in &all {
            eprintln!(
                "case {}:",
                case.input.parent().unwrap_or(&args.plugin).display()
            );
            if !run_case(&host, &built.component, case, args.update, args.batch_size)? {
                failed += 1;
            }
        }
        if failed > 0 {
            eprintln!("FAIL: {failed} of {} cases", all.len());
            return Ok(ExitCode::FAILURE);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(input) = args.input.clone() else {
        bail!(
            "`{}` is a component: pass `--input FILE` (sample records), or give a plugin directory",
            args.plugin.display()
        );
    };
    let case = Case {
        input,
        config: args.config.clone(),
        expect: args.expect.clone(),
    };
    if args.expect.is_none() {
        // Print the outcomes.
        return Ok(
            if run_case(&host, &args.plugin, &case, false, args.batch_size)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            },
        );
    }
    Ok(
        if run_case(&host, &args.plugin, &case, args.update, args.batch_size)? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// Runs one case; false when the outcomes differ from the expected ones.
fn run_case(
    host: &PluginHost,
    component: &Path,
    case: &Case,
    update: bool,
    batch_size: usize,
) -> anyhow::Result<bool> {
    let config_json = read_config(case.config.as_deref())?;
    let records = read_records(&case.input).map_err(anyhow::Error::msg)?;
    let name = component
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let plugin = host.load(PluginSpec {
        name,
        path: component.to_path_buf(),
        config_json,
        grants: Grants::default(),
        limits: Limits::default(),
        canary: None,
    })?;
    let mut instance = plugin.instantiate()?;
    let actual =
        run_records(&plugin, &mut instance, &records, batch_size).map_err(anyhow::Error::msg)?;
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
    let Some(expect) = &case.expect else {
        print!("{text}");
        return Ok(true);
    };
    if update {
        std::fs::write(expect, &text)
            .with_context(|| format!("cannot write `{}`", expect.display()))?;
        eprintln!("wrote {} outcomes to {}", actual.len(), expect.display());
        return Ok(true);
    }
    if !expect.is_file() {
        bail!(
            "`{}` does not exist: run with `--update` to write the current outcomes to it, then check them",
            expect.display()
        );
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
        return Ok(false);
    }
    eprintln!("ok: {} outcomes match {}", actual.len(), expect.display());
    Ok(true)
}
