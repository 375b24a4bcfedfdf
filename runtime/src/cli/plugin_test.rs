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
    /// With a plugin directory: test again whenever one of its files
    /// changes, until interrupted (the edit-test loop).
    #[arg(long)]
    watch: bool,
    /// With a connector directory: the conformance kit's settings (default
    /// `DIR/conformance.toml`).
    #[arg(long)]
    kit: Option<PathBuf>,
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
#[cfg(feature = "toolchain")]
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
    if args.plugin.is_dir() {
        return test_directory(&args);
    }
    if args.watch {
        bail!("`--watch` needs a plugin directory (it rebuilds the plugin when its files change)");
    }
    let cache = std::env::var_os("SLUICE_CACHE_DIR").map(PathBuf::from);
    let host = PluginHost::new(cache)?;
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
    if args.update && args.expect.is_none() {
        bail!("`--update` writes the `--expect FILE`: give it");
    }
    // Without `--expect` the outcomes are printed.
    let ok = run_case(&host, &args.plugin, &case, args.update, args.batch_size)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A plugin directory: built, then its cases run (or its conformance kit,
/// for a connector). Building needs the plugin toolchain.
#[cfg(not(feature = "toolchain"))]
fn test_directory(args: &TestArgs) -> anyhow::Result<ExitCode> {
    bail!(
        "`{}` is a directory: building a plugin needs the plugin toolchain, which this sluice was built without (cargo feature `toolchain`, on by default); give a built component: `sluice plugin test PLUGIN.wasm --input FILE`",
        args.plugin.display()
    )
}

/// A plugin directory: built, then its cases run (or its conformance kit,
/// for a connector).
#[cfg(feature = "toolchain")]
fn test_directory(args: &TestArgs) -> anyhow::Result<ExitCode> {
    // A connector's directory: the conformance kit.
    if args.plugin.join(crate::toolchain::MANIFEST_FILE).is_file() {
        if args.input.is_some() || args.update || args.watch {
            bail!(
                "`{}` is a connector (it has a connector.toml): `sluice plugin test` runs the conformance kit on it, without --input, --update or --watch",
                args.plugin.display()
            );
        }
        let ok = super::conformance::run_kit(&args.plugin, args.kit.as_deref())?;
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let cache = std::env::var_os("SLUICE_CACHE_DIR").map(PathBuf::from);
    let host = PluginHost::new(cache)?;
    if args.input.is_some() {
        bail!(
            "`--input` goes with a `.wasm` component; a plugin directory runs the cases in its `tests/`"
        );
    }
    if args.watch {
        if args.update {
            bail!(
                "`--watch` and `--update` do not go together: accept outcomes with a single `--update` run"
            );
        }
        return watch(&host, &args.plugin, args.batch_size);
    }
    let ok = test_dir(&host, &args.plugin, args.update, args.batch_size)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Builds the plugin in `dir` and runs its cases; false when one differs.
#[cfg(feature = "toolchain")]
fn test_dir(
    host: &PluginHost,
    dir: &Path,
    update: bool,
    batch_size: usize,
) -> anyhow::Result<bool> {
    let built = crate::toolchain::build(dir, None)?;
    eprintln!(
        "built {} plugin `{}` in {:.1}s",
        built.lang,
        built.name,
        built.took.as_secs_f64()
    );
    let mut failed = 0;
    let all = cases(dir)?;
    for case in &all {
        eprintln!("case {}:", case.input.parent().unwrap_or(dir).display());
        if !run_case(host, &built.component, case, update, batch_size)? {
            failed += 1;
        }
    }
    if failed > 0 {
        eprintln!("FAIL: {failed} of {} cases", all.len());
    }
    Ok(failed == 0)
}

/// `--watch`: test, then test again whenever a file of the plugin changes
/// (not its `build/`), until interrupted.
#[cfg(feature = "toolchain")]
fn watch(host: &PluginHost, dir: &Path, batch_size: usize) -> anyhow::Result<ExitCode> {
    use notify_debouncer_full::new_debouncer;
    use notify_debouncer_full::notify::event::ModifyKind;
    use notify_debouncer_full::notify::{EventKind, RecursiveMode};

    let root = std::path::absolute(dir).with_context(|| format!("`{}`", dir.display()))?;
    let ignored = |p: &Path| {
        p.strip_prefix(&root).is_ok_and(|rel| {
            rel.components().any(|c| {
                let c = c.as_os_str().to_string_lossy();
                c == "build" || c == "target" || c == "node_modules" || c.starts_with('.')
            }) || rel.extension().is_some_and(|e| e == "pyc")
        })
    };
    let (tx, events) = std::sync::mpsc::channel();
    let mut debouncer = new_debouncer(std::time::Duration::from_millis(300), None, move |r| {
        let _ = tx.send(r);
    })
    .context("cannot watch the plugin's files")?;
    debouncer
        .watch(&root, RecursiveMode::Recursive)
        .with_context(|| format!("cannot watch `{}`", root.display()))?;
    loop {
        match test_dir(host, dir, false, batch_size) {
            Ok(true) => eprintln!("PASS"),
            Ok(false) => {}
            Err(e) => eprintln!("error: {e:#}"),
        }
        eprintln!("watching {} for changes (Ctrl-C to stop)", root.display());
        // Wait for a change outside the build outputs, then let the burst
        // of writes settle.
        loop {
            let Ok(batch) = events.recv() else {
                return Ok(ExitCode::SUCCESS);
            };
            // Reading files (the build reads the sources) is not a change.
            let changes = |k: &EventKind| {
                matches!(
                    k,
                    EventKind::Create(_)
                        | EventKind::Remove(_)
                        | EventKind::Modify(
                            ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any
                        )
                )
            };
            let relevant = batch.is_ok_and(|evs| {
                evs.iter()
                    .any(|e| changes(&e.event.kind) && e.event.paths.iter().any(|p| !ignored(p)))
            });
            if relevant {
                while events.try_recv().is_ok() {}
                break;
            }
        }
    }
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
