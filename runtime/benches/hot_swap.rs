//! Hot reload under load: 100 swaps of a transform while records stream
//! through a running pipeline. For each swap: the time from the pipeline
//! file being complete (renamed into place, as editors do) to the new
//! version being live, and the pause of the record path at the swap.
//! Run after `scripts/build-plugins.sh`:
//! `cargo bench -p sluice-runtime --bench hot_swap`.
//!
//! Environment: `SLUICE_BENCH_SWAPS` (default 100).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice_runtime::config::Pipeline;
use sluice_runtime::pipeline::{self, Control, Quiet, RunOptions};

fn pipeline_text(plugin: &Path, tag: usize) -> String {
    format!(
        "[source]\ntype = \"jsonl\"\npath = \"in.jsonl\"\nfollow = true\n\n[[transforms]]\nname = \"tagger\"\nplugin = \"{}\"\nconfig = {{ mode = \"pass\", tag = \"v{tag}\" }}\n\n[sink]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n\n[runtime]\nbatch_size = 64\n",
        plugin.display()
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let plugin = root.join("build/plugins/fixture-misbehave.wasm");
    assert!(plugin.is_file(), "run scripts/build-plugins.sh first");
    let swaps: usize = std::env::var("SLUICE_BENCH_SWAPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pipeline.toml");
    std::fs::write(dir.path().join("in.jsonl"), "").expect("input");
    std::fs::write(&file, pipeline_text(&plugin, 0)).expect("pipeline");
    let prepared =
        pipeline::prepare(Pipeline::load(&file).expect("pipeline parses")).expect("prepare");
    let control = Arc::new(Control::new());

    // Load: a writer appending records for as long as the bench runs.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (writing, path) = (writing.clone(), dir.path().join("in.jsonl"));
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .expect("open");
            let mut i = 0u64;
            while writing.load(Ordering::Relaxed) {
                let mut chunk = String::new();
                for _ in 0..200 {
                    chunk.push_str(&format!("{{\"i\":{i}}}\n"));
                    i += 1;
                }
                f.write_all(chunk.as_bytes()).expect("append");
                std::thread::sleep(Duration::from_millis(5));
            }
            i
        })
    };
    let run = {
        let control = control.clone();
        std::thread::spawn(move || {
            pipeline::run(prepared, &RunOptions::default(), control, &mut Quiet)
        })
    };
    std::thread::sleep(Duration::from_millis(500));

    let mut to_live = Vec::new();
    for k in 1..=swaps {
        let tmp = dir.path().join("pipeline.toml.tmp");
        std::fs::write(&tmp, pipeline_text(&plugin, k)).expect("write");
        std::fs::rename(&tmp, &file).expect("rename");
        let complete = Instant::now();
        let deadline = complete + Duration::from_secs(10);
        loop {
            let live_at = control
                .stats
                .swaps
                .lock()
                .expect("lock")
                .get(k - 1)
                .map(|s| s.at);
            if let Some(at) = live_at {
                to_live.push(at.saturating_duration_since(complete));
                break;
            }
            assert!(Instant::now() < deadline, "swap {k} never went live");
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    writing.store(false, Ordering::Relaxed);
    let written = writer.join().expect("writer");
    std::thread::sleep(Duration::from_millis(500));
    control.stop.store(true, Ordering::Relaxed);
    let summary = run.join().expect("run thread").expect("run");
    let mut pauses: Vec<Duration> = control
        .stats
        .swaps
        .lock()
        .expect("lock")
        .iter()
        .map(|s| s.pause)
        .collect();
    pauses.sort();
    to_live.sort();
    println!(
        "hot swap: {swaps} swaps under load ({written} records written, {} read, batch 64)",
        summary.records_in
    );
    println!("{:<32} {:>10} {:>10} {:>10}", "", "p50", "p99", "max");
    let row = |name: &str, v: &[Duration]| {
        println!(
            "{name:<32} {:>10.3?} {:>10.3?} {:>10.3?}",
            percentile(v, 0.5),
            percentile(v, 0.99),
            v[v.len() - 1]
        )
    };
    row("file complete -> version live", &to_live);
    row("pause of the record path", &pauses);
}
