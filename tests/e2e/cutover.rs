//! `sluice cutover`: a live sync on real PostgreSQL servers, judged ready
//! or not ready for the switch, with the evidence.

use std::process::{Child, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value as Json;

use crate::common::*;
use crate::postgres::{PgServer, email_pipeline, seed_customers, signal, wait_for};

fn write_pipeline(dir: &Dir, pg: &PgServer, email_rule: &str) {
    let tail =
        "[dead_letter]\ntype = \"jsonl\"\npath = \"dead.jsonl\"\n\n[runtime]\nbatch_size = 100";
    email_pipeline(dir, pg, "sync", email_rule, tail);
}

/// Runs the pipeline of `dir` with the admin API on a free port.
pub fn start(dir: &Dir) -> Child {
    let addr = format!("127.0.0.1:{}", free_port());
    let child = sluice()
        .arg("run")
        .arg(dir.path("pipeline.toml"))
        .args(["--no-progress", "--admin", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(30, "the admin API", || {
        dir.path(".sluice/sync.admin.json").exists()
    });
    child
}

fn cutover(dir: &Dir, extra: &[&str]) -> (Output, Option<Json>) {
    let json = dir.path("cutover.json");
    let _ = std::fs::remove_file(&json);
    let out = sluice()
        .arg("cutover")
        .arg(dir.path("pipeline.toml"))
        .args(["--max-lag", "2s", "--timeout", "60s", "--json"])
        .arg(&json)
        .args(extra)
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&json)
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap());
    (out, report)
}

#[test]
fn a_live_sync_is_ready_to_cut_over_only_caught_up_verified_and_with_every_dead_letter_replayed() {
    let pg = PgServer::start();
    seed_customers(&pg, 1000);
    let dir = Dir::new();
    write_pipeline(&dir, &pg, "{ required = true }");
    // Not running: nothing to judge.
    let (out, _) = cutover(&dir, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not running with `--admin`"),
        "{}",
        stderr(&out)
    );

    let run = start(&dir);
    // The application keeps writing until the hook pauses it.
    let paused = dir.path("paused");
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (url, paused, writing) = (pg.url("legacy"), paused.clone(), writing.clone());
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let mut id = 100_000i64;
            while writing.load(Ordering::Relaxed) && !paused.exists() {
                c.execute(
                    "INSERT INTO customers VALUES ($1, 'app', 'app@x.org')",
                    &[&id],
                )
                .unwrap();
                id += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    let hook = format!("touch '{}'", paused.display());
    let (out, report) = cutover(&dir, &["--pause-source-writes", &hook]);
    let r = report.unwrap_or_else(|| panic!("no report: {}", stderr(&out)));
    let text = stdout(&out);
    // Caught up, paused, verified identical: but ten dead letters are open.
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(r["ready"], false);
    assert_eq!(r["pause_hook"][1], 0, "{r}");
    assert!(paused.exists());
    assert_eq!(r["lag"]["seconds"], 0.0, "{r}");
    assert!(
        r["verify"]["tables"][0]["missing"] == 0 && r["verify"]["tables"][0]["different"] == 0,
        "{r}"
    );
    assert_eq!(r["open_dead_letters"]["validate: required"], 10, "{r}");
    assert_eq!(
        r["reasons"],
        serde_json::json!([
            "10 dead letters not replayed (`sluice replay`; a record refused for good is a decision to record, not to skip)"
        ])
    );
    assert!(text.contains("NOT READY"), "{text}");
    writing.store(false, Ordering::Relaxed);
    writer.join().unwrap();

    // Fix, replay, sync again: ready.
    signal(&run, libc::SIGTERM);
    assert!(run.wait_with_output().unwrap().status.success());
    write_pipeline(&dir, &pg, "{ max_length = 200 }");
    let out = sluice()
        .arg("replay")
        .arg(dir.path("pipeline.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let run = start(&dir);
    let (out, report) = cutover(&dir, &[]);
    let r = report.unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(r["ready"], true, "{r}");
    assert_eq!(r["open_dead_letters"], serde_json::json!({}));
    assert!(
        text.contains("READY") && text.contains("IDENTICAL"),
        "{text}"
    );
    assert!(text.contains("not paused"), "{text}");
    assert_eq!(
        pg.count("target", "SELECT count(*) FROM customers"),
        pg.count("legacy", "SELECT count(*) FROM customers")
    );
    signal(&run, libc::SIGTERM);
    assert!(run.wait_with_output().unwrap().status.success());
}
