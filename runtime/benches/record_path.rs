//! The record path benchmark: records/s through the three first-party
//! plugins chained (the demo's configuration), WASM against the same plugin
//! code compiled natively into this process, per batch size, interleaved in
//! one process run. Run with `cargo bench -p sluice-runtime --bench record_path`
//! after `scripts/build-plugins.sh`.
//!
//! Both paths do the same work around the plugins: encode the batch once
//! (not timed), run each plugin on the encoded batch, and build the next
//! batch from the outcomes (`apply_outcomes`). The difference is only where
//! the plugin code runs: natively, or in its sandboxed WASM instance
//! (copy in and out of linear memory, epoch checks, memory cap).
//!
//! Environment: `SLUICE_BENCH_RECORDS` (default 1000000), `SLUICE_BENCH_ROUNDS` (default 3).

use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_codec::{BatchWriter, Operation, Record, Value};
use sluice_runtime::config::{Pipeline, toml_to_json};
use sluice_runtime::plugin::{
    Candidate, Grants, Limits, PluginHost, PluginSpec, TransformSlot, apply_outcomes,
};
use sluice_sdk::{Config, Transform};

const FIRST: &[&str] = &["josé", "ANNA", "  Jean-Luc", "müller", "Zoë", "björn "];
const LAST: &[&str] = &["GARCÍA", "dupont ", "Schmidt", "  o'neil", "ROSSI", "Nuñez"];
const COUNTRY: &[&str] = &["FR", "fr", "DE", " de", "ES", "XX"];
const STATUS: &[&str] = &["active", "ACTIVE", "inactive", "pending"];
const DATES: &[&str] = &[
    "05/03/2019",
    "2019-03-05",
    "05.03.2019",
    "Mar 05 2019",
    "31/02/2019",
];

fn record(i: usize) -> Record<'static> {
    let p = |xs: &[&str], k: usize| Value::Text(Cow::Owned(xs[(i / k + i) % xs.len()].to_string()));
    let email = match i % 10 {
        0 => format!("user{i}@"),
        1 => format!("  USER{i}@Example.COM "),
        _ => format!("user{i}@example.com"),
    };
    Record {
        op: Operation::Snapshot,
        stream: "customers".into(),
        position: Cow::Owned(format!("line {i}")),
        fields: vec![
            (
                "CUST_NO".into(),
                Value::Text(Cow::Owned(format!(" {i:06}"))),
            ),
            ("FIRST_NAME".into(), p(FIRST, 1)),
            ("LAST_NAME".into(), p(LAST, 3)),
            ("E_MAIL".into(), Value::Text(Cow::Owned(email))),
            ("SIGNUP_DT".into(), p(DATES, 7)),
            (
                "BALANCE".into(),
                Value::Text(Cow::Owned(format!(
                    "{}.{:03},{:02} €",
                    i % 100,
                    i % 1000,
                    i % 100
                ))),
            ),
            ("COUNTRY".into(), p(COUNTRY, 5)),
            ("STATUS".into(), p(STATUS, 11)),
        ],
        ..Default::default()
    }
}

struct Batch {
    data: Vec<u8>,
    spans: Vec<Range<u32>>,
}

fn batches(n: usize, size: usize) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let mut w = BatchWriter::default();
        let mut spans = Vec::new();
        for j in i..(i + size).min(n) {
            let r = record(j);
            let at = w.push(&r);
            spans.push(at as u32..w.byte_len() as u32);
        }
        out.push(Batch {
            data: w.finish(),
            spans,
        });
        i += size;
    }
    out
}

struct Native {
    map: sluice_plugin_mapper::Mapper,
    cleanse: sluice_plugin_cleanse::Cleanse,
    validate: sluice_plugin_validate::Validate,
}

fn run_native(n: &mut Native, batches: &[Batch]) -> (u64, Duration) {
    let start = Instant::now();
    let mut survivors = 0;
    for b in batches {
        let mut data = b.data.clone();
        let mut spans = b.spans.clone();
        for stage in 0..3 {
            if spans.is_empty() {
                break;
            }
            let outcomes = match stage {
                0 => sluice_sdk::run_batch(&mut n.map, &data),
                1 => sluice_sdk::run_batch(&mut n.cleanse, &data),
                _ => sluice_sdk::run_batch(&mut n.validate, &data),
            }
            .expect("native batch");
            let out = apply_outcomes(&data, &spans, &outcomes).expect("outcomes");
            data = out.batch;
            spans = out.spans;
        }
        survivors += spans.len() as u64;
    }
    (survivors, start.elapsed())
}

fn run_wasm(slots: &mut [TransformSlot], batches: &[Batch]) -> (u64, Duration) {
    let start = Instant::now();
    let mut survivors = 0;
    for b in batches {
        let mut data = b.data.clone();
        let mut spans = b.spans.clone();
        for slot in slots.iter_mut() {
            if spans.is_empty() {
                break;
            }
            let out = slot.run(&data, &spans).expect("wasm batch");
            data = out.batch;
            spans = out.spans;
        }
        survivors += spans.len() as u64;
    }
    (survivors, start.elapsed())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let pipeline_path = root.join("examples/legacy-crm/pipeline.toml");
    let pipeline = Pipeline::load(&pipeline_path).expect("the demo pipeline parses");
    let configs: Vec<String> = pipeline
        .config
        .transforms
        .iter()
        .map(|t| toml_to_json(&t.config))
        .collect();
    let plugin_dir = root.join("build/plugins");
    let records: usize = std::env::var("SLUICE_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = std::env::var("SLUICE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);

    let host = PluginHost::new(None).expect("engine");
    let mut slots: Vec<TransformSlot> = ["mapper", "cleanse", "validate"]
        .iter()
        .zip(&configs)
        .map(|(name, cfg)| {
            let path: PathBuf = plugin_dir.join(format!("{name}.wasm"));
            let plugin = host
                .load(PluginSpec {
                    name: name.to_string(),
                    path: path.clone(),
                    config_json: cfg.clone(),
                    grants: Grants::default(),
                    canary: None,
                    limits: Limits {
                        batch_timeout: Duration::from_secs(60),
                        ..Limits::default()
                    },
                })
                .unwrap_or_else(|e| panic!("{e} (run scripts/build-plugins.sh first)"));
            let started = Candidate::restart(Arc::new(plugin)).expect("init");
            TransformSlot::with_instance(started.plugin, started.instance)
        })
        .collect();
    let mut native = Native {
        map: Transform::init(Config::new(configs[0].clone())).expect("map init"),
        cleanse: Transform::init(Config::new(configs[1].clone())).expect("cleanse init"),
        validate: Transform::init(Config::new(configs[2].clone())).expect("validate init"),
    };

    println!(
        "record path: mapper -> cleanse -> validate (demo config), {records} records, {rounds} rounds, median"
    );
    println!(
        "{:>6} {:>14} {:>14} {:>8}",
        "batch", "native rec/s", "wasm rec/s", "ratio"
    );
    for size in [1usize, 64, 256, 1024, 4096] {
        let n = if size == 1 { records / 10 } else { records };
        let input = batches(n, size);
        let (mut nat, mut was) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let (a, t1) = run_native(&mut native, &input);
            let (b, t2) = run_wasm(&mut slots, &input);
            assert_eq!(a, b, "native and wasm disagree on the survivors");
            nat.push(n as f64 / t1.as_secs_f64());
            was.push(n as f64 / t2.as_secs_f64());
        }
        let (nm, wm) = (median(nat), median(was));
        println!("{size:>6} {nm:>14.0} {wm:>14.0} {:>7.2}x", wm / nm);
    }
}
