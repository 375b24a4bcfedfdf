//! Plugins on real records: the polyglot bench's cleansing rules
//! (benches/polyglot/README.md: every one of the ten fields of a legacy CRM
//! export row read, cleansed and written) as a Rust, a Python and a
//! JavaScript plugin inside Sluice, beside the same rules run by plain
//! CPython and by Node outside Sluice, CSV parsing included.
//!
//! The export is `legacy-crm generate`'s (varied rows, not a few cycled);
//! the plugins get its rows of ten fields as text in batches of 256, as the
//! CSV source hands them over. Records/s inside Sluice is the time of the
//! plugin calls alone (the batches are encoded beforehand); the plain jobs
//! are timed as whole processes. After the runs the bench checks that every
//! plugin and every plain job gave the same outcome for every row: the same
//! ten values, or the same rejection code and field.
//!
//! Run: `cargo bench -p sluice-runtime --bench polyglot_rules` (after
//! `sluice plugin setup rust python js`). Environment: `SLUICE_BENCH_ROWS`
//! (default 50 000), `SLUICE_BENCH_ROUNDS` (default 3; medians).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use sluice_codec::{BatchWriter, OutcomeRef, OutcomesReader, Record, Value};
use sluice_runtime::plugin::{Grants, Limits, PluginHost, PluginSpec};
use sluice_runtime::toolchain::{self, Language};

const BATCH: usize = 256;
const FIELDS: [&str; 10] = [
    "CUST_NO",
    "FIRST_NAME",
    "LAST_NAME",
    "E_MAIL",
    "PHONE",
    "SIGNUP_DT",
    "BALANCE",
    "COUNTRY",
    "STATUS",
    "NOTES",
];

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// The export's rows of exactly ten fields, decoded from Windows-1252, as
/// records; rows of another width are left out (the plain jobs skip them too).
fn read_export(path: &Path) -> Vec<Record<'static>> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .flexible(true)
        .from_path(path)
        .expect("open the export");
    let mut out = Vec::new();
    let mut row = csv::ByteRecord::new();
    let mut line = 1u64;
    while reader.read_byte_record(&mut row).expect("read the export") {
        line += 1;
        if row.len() != FIELDS.len() {
            continue;
        }
        let mut r = Record {
            stream: "customers".into(),
            position: line.to_string().into(),
            ..Record::default()
        };
        for (name, raw) in FIELDS.iter().zip(row.iter()) {
            let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(raw);
            r.fields
                .push(((*name).into(), Value::Text(text.into_owned().into())));
        }
        out.push(r);
    }
    out
}

fn value_json(v: &Value<'_>) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Int(n) => json!(n),
        Value::Text(t) => json!(t),
        other => json!(format!("unexpected {} value", other.kind())),
    }
}

/// One outcome as the plain jobs write it: `{"ok": [ten values]}` or
/// `{"reject": code, "field": name}`.
fn outcome_json(o: OutcomeRef<'_>, input: &Record<'_>) -> Json {
    match o {
        OutcomeRef::KeepUnchanged => outcome_fields(input),
        OutcomeRef::Keep(bytes) => outcome_fields(&Record::decode(bytes).expect("decode")),
        OutcomeRef::Reject(r) => json!({"reject": r.code, "field": r.field}),
        other => json!({"unexpected": format!("{other:?}")}),
    }
}

fn outcome_fields(r: &Record<'_>) -> Json {
    let names: Vec<&str> = r.fields.iter().map(|(n, _)| n.as_ref()).collect();
    if names != FIELDS {
        return json!({"unexpected fields": names});
    }
    json!({"ok": r.fields.iter().map(|(_, v)| value_json(v)).collect::<Vec<_>>()})
}

fn read_jsonl(path: &Path) -> Vec<Json> {
    std::fs::read_to_string(path)
        .expect("read the plain job's output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The first difference between two outcome lists, if any.
fn first_difference(a: &[Json], b: &[Json]) -> Option<String> {
    if a.len() != b.len() {
        return Some(format!("{} outcomes against {}", a.len(), b.len()));
    }
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .map(|i| format!("row {}: {} against {}", i + 1, a[i], b[i]))
}

struct Plain {
    name: &'static str,
    rate: f64,
    outcomes: Vec<Json>,
}

/// Runs a plain job `rounds` times; its records/s (median wall) and outcomes.
fn plain(name: &'static str, program: &str, script: &Path, export: &Path, rounds: usize) -> Plain {
    let out = export.with_extension(format!("{name}.jsonl"));
    let mut walls = Vec::new();
    let mut rows = 0usize;
    for _ in 0..rounds {
        let t = Instant::now();
        let run = Command::new(program)
            .arg(script)
            .arg(export)
            .arg(&out)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        walls.push(t.elapsed());
        assert!(
            run.status.success(),
            "{program} {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&run.stderr)
        );
        rows = String::from_utf8_lossy(&run.stdout)
            .trim()
            .parse()
            .expect("the plain job prints its row count");
    }
    Plain {
        name,
        rate: rows as f64 / median(walls).as_secs_f64(),
        outcomes: read_jsonl(&out),
    }
}

fn main() {
    let root: PathBuf = support::root();
    let env_num = support::env_num;
    let rows_n = env_num("SLUICE_BENCH_ROWS", 50_000);
    let rounds = env_num("SLUICE_BENCH_ROUNDS", 3).max(1);
    let bin = support::build(&root, &["sluice-example-legacy-crm"]);
    let work = tempfile::tempdir().expect("tempdir");
    let export = work.path().join("customers.csv");
    support::generate_export(&bin, rows_n, &export);
    let records = read_export(&export);
    let batches: Vec<Vec<u8>> = records
        .chunks(BATCH)
        .map(|chunk| {
            let mut w = BatchWriter::default();
            for r in chunk {
                w.push(r);
            }
            w.finish()
        })
        .collect();
    let bench = root.join("benches/polyglot");

    let mut plains = vec![plain(
        "CPython",
        "python3",
        &bench.join("plain/plain.py"),
        &export,
        rounds,
    )];
    match which::which("node") {
        Ok(_) => plains.push(plain(
            "Node",
            "node",
            &bench.join("plain/plain.mjs"),
            &export,
            rounds,
        )),
        Err(_) => eprintln!("node is not installed: the plain JavaScript job is left out"),
    }
    let reference = &plains[0].outcomes;
    for p in &plains[1..] {
        if let Some(d) = first_difference(reference, &p.outcomes) {
            panic!("{} and {} differ: {d}", plains[0].name, p.name);
        }
    }

    let cache = tempfile::tempdir().expect("cache dir");
    let host = PluginHost::new(Some(cache.path().to_path_buf())).expect("host");
    let mut rows = Vec::new();
    for lang in [Language::Rust, Language::Python, Language::Js] {
        let built = toolchain::build(&bench.join(lang.name()), Some(lang)).expect("build");
        let plugin = host
            .load(PluginSpec {
                name: "cleanse".into(),
                path: built.component.clone(),
                config_json: "{}".into(),
                grants: Grants::default(),
                limits: Limits::default(),
                canary: None,
            })
            .expect("load");
        let mut instance = plugin.instantiate().expect("instantiate");
        instance.process(&batches[0]).expect("warm-up");
        let mut times = Vec::new();
        let mut outcomes = Vec::new();
        for round in 0..rounds {
            let mut results = Vec::with_capacity(batches.len());
            let t = Instant::now();
            for b in &batches {
                results.push(instance.process(b).expect("process"));
            }
            times.push(t.elapsed());
            if round == 0 {
                for (result, chunk) in results.iter().zip(records.chunks(BATCH)) {
                    let mut reader = OutcomesReader::new(result).expect("outcomes");
                    for r in chunk {
                        let o = reader
                            .next_outcome()
                            .expect("outcome")
                            .expect("one per record");
                        outcomes.push(outcome_json(o, r));
                    }
                }
            }
        }
        if let Some(d) = first_difference(reference, &outcomes) {
            panic!("the {lang} plugin and plain {} differ: {d}", plains[0].name);
        }
        rows.push((lang, records.len() as f64 / median(times).as_secs_f64()));
    }
    let kept = reference.iter().filter(|o| o.get("ok").is_some()).count();
    println!(
        "{} rows of ten fields ({} kept, {} rejected), batch {BATCH}, median of {rounds}; outcomes identical across all runs",
        records.len(),
        kept,
        records.len() - kept
    );
    print!("| | records/s |");
    for p in &plains {
        print!(" / plain {} |", p.name);
    }
    println!();
    println!("|---|---:|{}", "---:|".repeat(plains.len()));
    for p in &plains {
        print!(
            "| plain {} (CSV parsing included) | {:.1}k |",
            p.name,
            p.rate / 1e3
        );
        for q in &plains {
            print!(" {:.2}× |", p.rate / q.rate);
        }
        println!();
    }
    for (lang, rate) in rows {
        print!("| {lang} plugin in Sluice | {:.1}k |", rate / 1e3);
        for q in &plains {
            print!(" {:.2}× |", rate / q.rate);
        }
        println!();
    }
}
