//! `sluice verify --follow` beside a live sync on real PostgreSQL servers:
//! a difference made by hand persists, changes in flight do not, and each
//! round reaches the running pipeline's status and metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value as Json;

use crate::common::*;
use crate::cutover::start;
use crate::postgres::{PgServer, email_pipeline, seed_customers, signal, wait_for};

#[test]
fn follow_tells_a_persistent_difference_from_changes_in_flight_and_reports_to_the_run() {
    let pg = PgServer::start();
    seed_customers(&pg, 500);
    let dir = Dir::new();
    email_pipeline(
        &dir,
        &pg,
        "sync",
        "{ max_length = 200 }",
        "[runtime]\nbatch_size = 100",
    );
    let run = start(&dir);
    wait_for(60, "the snapshot", || {
        pg.count("target", "SELECT count(*) FROM customers") == 500
    });
    // A difference made by hand in the target.
    pg.exec("target", "UPDATE customers SET name = 'drift' WHERE id = 7");
    // The application changes other rows, each once, while the rounds run.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (url, writing) = (pg.url("legacy"), writing.clone());
        std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let mut id = 100i64;
            while writing.load(Ordering::Relaxed) && id < 500 {
                c.execute(
                    "UPDATE customers SET name = 'app ' || id WHERE id = $1",
                    &[&id],
                )
                .unwrap();
                id += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    let json = dir.path("follow.json");
    let out = sluice()
        .arg("verify")
        .arg(dir.path("pipeline.toml"))
        .args(["--follow", "--every", "2s", "--rounds", "3", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    writing.store(false, Ordering::Relaxed);
    writer.join().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("round 3 ("), "{text}");
    assert!(
        text.contains("persistent: missing or different: key 7\n"),
        "{text}"
    );
    assert!(
        text.contains("1 persistent difference(s): the target keeps differing from the source"),
        "{text}"
    );
    let last: Json = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(last["round"], 3);
    let t = &last["tables"][0];
    assert_eq!(t["table"], "public.customers");
    // Only the row changed by hand persists; the application's changes
    // were in flight at most.
    assert_eq!(t["persistent"], 1, "{last}");
    assert!(t["different"].as_u64() >= Some(1), "{last}");
    assert!(last["lag_seconds"].is_number(), "the lag was read: {last}");

    // The running pipeline shows the last round, and counts it in metrics.
    let pipeline = dir.path("pipeline.toml");
    let (ok, status) = ctl(&pipeline, &["status"]);
    assert!(ok, "{status}");
    let status: Json = serde_json::from_str(&status).unwrap();
    assert_eq!(status["verify"]["round"], 3, "{status}");
    assert_eq!(status["verify"]["tables"][0]["persistent"], 1, "{status}");
    assert_eq!(
        status["verify"]["tables"][0]["persistent_samples"][0],
        "missing or different: key 7"
    );
    let (ok, metrics) = ctl(&pipeline, &["metrics"]);
    assert!(ok, "{metrics}");
    assert!(
        metrics.contains("verify_persistent_differences{table=\"public.customers\"} 1"),
        "{metrics}"
    );

    // Repaired by hand: the next rounds find nothing persistent.
    pg.exec(
        "target",
        "UPDATE customers SET name = 'name 7' WHERE id = 7",
    );
    let out = sluice()
        .arg("verify")
        .arg(&pipeline)
        .args(["--follow", "--every", "1s", "--rounds", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("no persistent difference"));
    signal(&run, libc::SIGTERM);
    assert!(run.wait_with_output().unwrap().status.success());
}
