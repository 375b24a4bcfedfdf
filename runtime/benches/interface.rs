//! What the shape of the WASM boundary costs: the same transform (in
//! `benches/interface/guest`) called with typed WIT records (`list<rec>`,
//! each field `{name: string, value: variant}`) and with one Sluice batch
//! buffer (`list<u8>`), against the same logic natively, per batch size,
//! interleaved in one process run.
//!
//! This bench has its own bindings for its own benchmark-only world
//! (`benches/interface/wit`); the plugin contract's bindings stay in
//! `runtime/src/plugin/bindings.rs`. Run after `scripts/build-plugins.sh`:
//! `cargo bench -p sluice-runtime --bench interface`.

#![allow(missing_docs, reason = "bindgen output for a benchmark-only world")]

use std::borrow::Cow;
use std::path::Path;
use std::time::{Duration, Instant};

use sluice_bench_interface_guest::logic::{Decision, decide};
use sluice_codec::{BatchWriter, OutcomesReader, Record, Value};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "../benches/interface/wit",
    world: "iface",
});

use exports::sluice_bench::iface::typed::{Field, Outcome, Rec, Val};

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

const NAMES: [&str; 8] = [
    "id", "first", "last", "email", "signup", "balance", "country", "status",
];

fn values(i: usize) -> [String; 8] {
    [
        i.to_string(),
        ["Ana", "Bob", "Zoë"][i % 3].to_string(),
        ["García", "Smith", "Rossi"][i % 3].to_string(),
        match i % 10 {
            0 => format!("user{i}.example.com"),
            1 => format!("  USER{i}@Example.COM "),
            _ => format!("user{i}@example.com"),
        },
        "2019-03-05".to_string(),
        format!("{}", i * 7 % 100_000),
        ["fr", "DE", "es"][i % 3].to_string(),
        ["active", "inactive", "pending", "active"][i % 4].to_string(),
    ]
}

fn typed_rec(i: usize) -> Rec {
    Rec {
        fields: NAMES
            .iter()
            .zip(values(i))
            .map(|(n, v)| Field {
                name: n.to_string(),
                value: Val::Text(v),
            })
            .collect(),
    }
}

fn native(batch: &[Rec]) -> usize {
    let mut kept = 0;
    for rec in batch {
        let get = |n: &str| {
            rec.fields
                .iter()
                .find(|f| f.name == n)
                .and_then(|f| match &f.value {
                    Val::Text(t) => Some(t.as_str()),
                    _ => None,
                })
        };
        match decide(get("status"), get("email"), get("country")) {
            Decision::Keep(None, None) => kept += 1,
            Decision::Keep(e, c) => {
                let mut out = rec.clone();
                for f in &mut out.fields {
                    if f.name == "email"
                        && let Some(e) = &e
                    {
                        f.value = Val::Text(e.clone());
                    }
                    if f.name == "country"
                        && let Some(c) = &c
                    {
                        f.value = Val::Text(c.clone());
                    }
                }
                std::hint::black_box(&out);
                kept += 1;
            }
            _ => {}
        }
    }
    kept
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm = root.join("build/plugins/bench-interface-guest.wasm");
    let records: usize = std::env::var("SLUICE_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300_000);
    let rounds: usize = std::env::var("SLUICE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);

    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    let engine = Engine::new(&config).expect("engine");
    let component = Component::from_file(&engine, &wasm).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run scripts/build-plugins.sh first)",
            wasm.display()
        )
    });
    let mut linker: Linker<State> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("wasi");
    let mut store = Store::new(
        &engine,
        State {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        },
    );
    store.set_epoch_deadline(u64::MAX / 2);
    let iface = Iface::instantiate(&mut store, &component, &linker).expect("instantiate");

    println!(
        "interface: 8 text fields per record, {records} records, {rounds} rounds, median; ratio = native time / wasm time"
    );
    println!(
        "{:>6} {:>14} {:>14} {:>14} {:>8} {:>8}",
        "batch", "native rec/s", "typed rec/s", "buffer rec/s", "typed", "buffer"
    );
    for size in [1usize, 16, 256, 4096] {
        let n = if size == 1 { records / 10 } else { records };
        let typed_batches: Vec<Vec<Rec>> = (0..n)
            .step_by(size)
            .map(|s| (s..(s + size).min(n)).map(typed_rec).collect())
            .collect();
        let buffer_batches: Vec<Vec<u8>> = typed_batches
            .iter()
            .map(|b| {
                let mut w = BatchWriter::default();
                for r in b {
                    let rec = Record {
                        stream: Cow::Borrowed("t"),
                        fields: r
                            .fields
                            .iter()
                            .map(|f| {
                                let Val::Text(t) = &f.value else {
                                    unreachable!("all text")
                                };
                                (
                                    Cow::Borrowed(f.name.as_str()),
                                    Value::Text(Cow::Borrowed(t.as_str())),
                                )
                            })
                            .collect(),
                        ..Default::default()
                    };
                    w.push(&rec);
                }
                w.finish()
            })
            .collect();
        let (mut tn, mut tt, mut tb) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let t = Instant::now();
            let mut kept_native = 0;
            for b in &typed_batches {
                kept_native += native(b);
            }
            tn.push(t.elapsed());
            let t = Instant::now();
            let mut kept_typed = 0;
            for b in &typed_batches {
                let out = iface
                    .sluice_bench_iface_typed()
                    .call_process(&mut store, b)
                    .expect("typed call");
                kept_typed += out
                    .iter()
                    .filter(|o| matches!(o, Outcome::Keep(_) | Outcome::KeepUnchanged))
                    .count();
            }
            tt.push(t.elapsed());
            let t = Instant::now();
            let mut kept_buffer = 0;
            for b in &buffer_batches {
                let out = iface
                    .sluice_bench_iface_buffer()
                    .call_process(&mut store, b)
                    .expect("buffer call");
                let mut r = OutcomesReader::new(&out).expect("outcomes");
                while let Some(o) = r.next_outcome().expect("outcome") {
                    if matches!(
                        o,
                        sluice_codec::OutcomeRef::Keep(_) | sluice_codec::OutcomeRef::KeepUnchanged
                    ) {
                        kept_buffer += 1;
                    }
                }
            }
            tb.push(t.elapsed());
            assert_eq!(
                (kept_native, kept_native),
                (kept_typed, kept_buffer),
                "the three paths disagree"
            );
        }
        let med = |mut v: Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let (a, b, c) = (med(tn), med(tt), med(tb));
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        println!(
            "{size:>6} {:>14.0} {:>14.0} {:>14.0} {:>7.2}x {:>7.2}x",
            rate(a),
            rate(b),
            rate(c),
            a.as_secs_f64() / b.as_secs_f64(),
            a.as_secs_f64() / c.as_secs_f64()
        );
    }
}
