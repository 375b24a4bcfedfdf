//! The example plugin (examples/plugins/) in Rust, Python, JavaScript and C:
//! for each language the build time, component size, cold compile time,
//! cached load time (precompiled artefact on disk), instantiate time (with
//! `init`) and records/s through `process` at batch 256.
//! Run: `cargo bench -p sluice-runtime --bench polyglot` (after
//! `sluice plugin setup`). Environment: `SLUICE_BENCH_SECONDS` (default 3).

use std::path::Path;
use std::time::{Duration, Instant};

use sluice_codec::BatchWriter;
use sluice_runtime::plugin::golden::read_records;
use sluice_runtime::plugin::{Grants, Limits, PluginHost, PluginSpec};
use sluice_runtime::toolchain::{self, Language};

const BATCH: usize = 256;

fn spec(path: &Path, config: &str) -> PluginSpec {
    PluginSpec {
        name: "cleanse".into(),
        path: path.to_path_buf(),
        config_json: config.into(),
        grants: Grants::default(),
        limits: Limits::default(),
        canary: None,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let seconds: f64 = std::env::var("SLUICE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let input = root.join("examples/plugins/cases/configured/input.jsonl");
    let config =
        std::fs::read_to_string(root.join("examples/plugins/cases/configured/config.json"))
            .expect("config");
    let samples = read_records(&input).expect("input");
    let records: Vec<_> = samples.iter().cycle().take(BATCH).cloned().collect();
    let mut w = BatchWriter::default();
    for r in &records {
        w.push(r);
    }
    let batch = w.finish();
    println!(
        "| language | build | size | cold compile | cached load | instantiate + init | records/s (batch {BATCH}) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for lang in Language::ALL {
        let dir = root.join("examples/plugins").join(lang.name());
        let built = toolchain::build(&dir, Some(lang)).expect("build");
        let size = std::fs::metadata(&built.component).expect("size").len();
        let cold = {
            let host = PluginHost::new(None).expect("host");
            let t = Instant::now();
            host.load(spec(&built.component, &config)).expect("load");
            t.elapsed()
        };
        let cache = tempfile::tempdir().expect("tempdir");
        PluginHost::new(Some(cache.path().to_path_buf()))
            .expect("host")
            .load(spec(&built.component, &config))
            .expect("load");
        let host = PluginHost::new(Some(cache.path().to_path_buf())).expect("host");
        let t = Instant::now();
        let plugin = host.load(spec(&built.component, &config)).expect("load");
        let cached = t.elapsed();
        let n_inst = 20;
        let t = Instant::now();
        for _ in 0..n_inst {
            plugin.instantiate().expect("instantiate");
        }
        let inst = t.elapsed() / n_inst;
        let mut instance = plugin.instantiate().expect("instantiate");
        for _ in 0..20 {
            instance.process(&batch).expect("warm-up");
        }
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed().as_secs_f64() < seconds {
            instance.process(&batch).expect("process");
            n += BATCH as u64;
        }
        let rate = n as f64 / t.elapsed().as_secs_f64();
        println!(
            "| {} | {:.1} s | {} KiB | {:.0} ms | {:.1} ms | {:.2} ms | {:.0}k |",
            lang,
            built.took.as_secs_f64(),
            size.div_ceil(1024),
            ms(cold),
            ms(cached),
            ms(inst),
            rate / 1e3
        );
    }
}
