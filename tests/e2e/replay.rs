//! `sluice replay`: dead letters back through fixed transforms into the
//! sink, each at most once, with what came of them.

use std::process::Output;

use serde_json::Value as Json;

use crate::common::*;
use crate::postgres::{
    PgServer, email_pipeline, seed_customers, signal, spawn_run, verify, wait_for,
};

/// 100 customers, one in five from Spain (refused by `validate` until it
/// allows `ES`), five of those without an email; one unreadable row.
fn customers() -> String {
    let mut csv = String::from("id,email,country\n");
    for i in 1..=100 {
        let country = if i % 5 == 0 { "ES" } else { "FR" };
        let email = if i % 10 == 0 && i % 20 != 0 {
            String::new()
        } else {
            format!("c{i}@example.com")
        };
        csv.push_str(&format!("{i},{email},{country}\n"));
        if i == 50 {
            csv.push_str("oops,this row,has,too many fields\n");
        }
    }
    csv
}

/// The pipeline: CSV → validate (countries allowed, emails required when
/// `email_rule`) → SQLite keyed by id; dead letters in a JSON-lines file.
fn write_pipeline(dir: &Dir, countries: &str, email_rule: &str) {
    let dead = "[dead_letter]\ntype = \"jsonl\"\npath = \"out/dead.jsonl\"";
    write_pipeline_to(dir, countries, email_rule, dead);
}

/// The same, with the dead letters where `dead_letter` says.
fn write_pipeline_to(dir: &Dir, countries: &str, email_rule: &str, dead_letter: &str) {
    dir.write(
        "pipeline.toml",
        format!(
            r#"name = "crm"
[source]
type = "csv"
path = "in/customers.csv"

[[transforms]]
name = "validate"
plugin = "{validate}"
[transforms.config.fields]
country = {{ allowed = [{countries}] }}
{email_rule}

[sink]
type = "sqlite"
path = "out/crm.db"
table = "customers"
key = ["id"]

{dead_letter}
"#,
            validate = plugin("validate").replace('\\', "/"),
        ),
    );
}

fn replay(dir: &Dir, extra: &[&str]) -> (Output, Json) {
    let json = dir.path("replay.json");
    let _ = std::fs::remove_file(&json);
    let out = sluice()
        .arg("replay")
        .arg(dir.path("pipeline.toml"))
        .arg("--json")
        .arg(&json)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "replay failed: {}", stderr(&out));
    let report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (out, report)
}

fn rows(dir: &Dir) -> usize {
    dir.sql("out/crm.db", "SELECT id FROM customers").len()
}

#[test]
fn a_fixed_plugin_replays_its_dead_letters_once_and_the_target_is_complete() {
    let dir = Dir::new();
    dir.write("in/customers.csv", customers());
    write_pipeline(&dir, "\"FR\"", "");
    let (out, summary) = dir.run(&[]);
    let summary = assert_balanced(&out, &summary);
    assert_eq!(summary["written"], 80);
    assert_eq!(summary["dead_lettered"], 21, "20 from Spain, 1 unreadable");
    assert_eq!(rows(&dir), 80);

    // Dry, with the plugin unchanged: all refused again, nothing written,
    // no ledger.
    let (_, r) = replay(&dir, &["--dry-run"]);
    assert_eq!(r["read"], 21);
    assert_eq!(r["selected"], 21);
    assert_eq!(r["not_replayable"], 1, "{r}");
    assert_eq!(r["replayed"], 20);
    assert_eq!(r["written"], 0);
    assert_eq!(r["rejected_again"]["validate: not_allowed"], 20, "{r}");
    assert_eq!(rows(&dir), 80);
    assert!(!dir.path(".sluice/crm.replay.db").exists());

    // The fix: Spain allowed. A filter that matches nothing replays nothing.
    write_pipeline(&dir, "\"FR\", \"ES\"", "");
    let (_, r) = replay(&dir, &["--stage", "map"]);
    assert_eq!(
        (r["selected"].as_u64(), r["replayed"].as_u64()),
        (Some(0), Some(0))
    );
    let (out, r) = replay(&dir, &["--code", "not_allowed"]);
    assert_eq!(r["selected"], 20);
    assert_eq!(r["replayed"], 20);
    assert_eq!(r["written"], 20, "{r}");
    assert_eq!(r["rejected_again"], serde_json::json!({}));
    assert!(
        stderr(&out).contains(&format!("    {:<21} 20\n", "written")),
        "{}",
        stderr(&out)
    );
    assert_eq!(rows(&dir), 100);
    assert_eq!(
        dir.sql("out/crm.db", "SELECT country FROM customers WHERE id = 5"),
        ["ES"]
    );
    // The dead-letter file is what it was: nothing refused again.
    assert_eq!(dir.jsonl("out/dead.jsonl").len(), 21);

    // Again: each dead letter is replayed at most once.
    let (_, r) = replay(&dir, &[]);
    assert_eq!(r["already_replayed"], 20, "{r}");
    assert_eq!(r["not_replayable"], 1);
    assert_eq!(r["replayed"], 0);
    assert_eq!(rows(&dir), 100);

    // A rerun of the pipeline resumes after its checkpoint: nothing is
    // written twice, and the replayed rows stay.
    let (out, summary) = dir.run(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary.unwrap()["records_in"], 0);
    assert_eq!(rows(&dir), 100);
}

#[test]
fn records_refused_again_go_back_to_the_dead_letter_sink_naming_the_first_rejection() {
    let dir = Dir::new();
    dir.write("in/customers.csv", customers());
    write_pipeline(&dir, "\"FR\"", "");
    let (out, summary) = dir.run(&[]);
    assert_balanced(&out, &summary);
    let first: Vec<Json> = dir.jsonl("out/dead.jsonl");
    assert_eq!(first.len(), 21);

    // A partial fix: Spain allowed, but now an email is required, which
    // five of the twenty lack.
    write_pipeline(&dir, "\"FR\", \"ES\"", "email = { required = true }");
    let (_, r) = replay(&dir, &[]);
    assert_eq!(r["replayed"], 20);
    assert_eq!(r["written"], 15, "{r}");
    assert_eq!(r["rejected_again"]["validate: required"], 5, "{r}");
    assert_eq!(rows(&dir), 95);
    let all = dir.jsonl("out/dead.jsonl");
    assert_eq!(all.len(), 26);
    let again: Vec<&Json> = all[21..].iter().collect();
    // Each names the dead letter it replays, and that is one of the first.
    let sample_ids: Vec<&str> = r["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["outcome"] == "rejected again: validate: required")
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(sample_ids.len(), 5);
    for d in &again {
        assert_eq!(d["code"], "required", "{d}");
        let link = d["replay_of"]
            .as_str()
            .unwrap_or_else(|| panic!("no replay_of in {d}"));
        assert!(
            sample_ids.contains(&link),
            "{link} not among {sample_ids:?}"
        );
    }
    let positions: Vec<&str> = again
        .iter()
        .map(|d| d["position"].as_str().unwrap())
        .collect();
    assert!(positions.contains(&"line 11"), "{positions:?}");

    // After the full fix, the refused-again ones replay (the originals are
    // in the ledger already): the target is complete.
    write_pipeline(&dir, "\"FR\", \"ES\"", "");
    let (_, r) = replay(&dir, &[]);
    assert_eq!(r["already_replayed"], 20, "{r}");
    assert_eq!(r["replayed"], 5);
    assert_eq!(r["written"], 5);
    assert_eq!(rows(&dir), 100);
}

#[test]
fn a_replay_refuses_to_write_while_the_pipeline_runs_and_says_why() {
    let dir = Dir::new();
    dir.write("in/stream.jsonl", "{\"id\": 1, \"country\": \"ES\"}\n");
    dir.write(
        "pipeline.toml",
        format!(
            "name = \"live\"\n[source]\ntype = \"jsonl\"\npath = \"in/stream.jsonl\"\nfollow = true\n\n[[transforms]]\nname = \"validate\"\nplugin = \"{}\"\nconfig = {{ fields = {{ country = {{ allowed = [\"FR\"] }} }} }}\n\n[sink]\ntype = \"jsonl\"\npath = \"out/o.jsonl\"\n\n[dead_letter]\ntype = \"jsonl\"\npath = \"out/dead.jsonl\"\n",
            plugin("validate").replace('\\', "/")
        ),
    );
    let run = spawn_run(&dir);
    wait_for(30, "the dead letter", || {
        dir.jsonl("out/dead.jsonl").len() == 1
    });
    let out = sluice()
        .arg("replay")
        .arg(dir.path("pipeline.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("live.lock"), "{}", stderr(&out));
    // A dry run reads and reports while the run goes on.
    let out = sluice()
        .args(["replay", "--dry-run"])
        .arg(dir.path("pipeline.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("rejected again        1"),
        "{}",
        stderr(&out)
    );
    signal(&run, libc::SIGTERM);
    assert!(run.wait_with_output().unwrap().status.success());
}

#[test]
fn a_live_sync_fixed_by_hot_reload_then_replayed_verifies_identical() {
    let pg = PgServer::start();
    seed_customers(&pg, 2000);
    let dir = Dir::new();
    let tail = format!(
        "[dead_letter]\ntype = \"postgres\"\nurl = \"{}\"\ntable = \"dead_letters\"\n\n[runtime]\nbatch_size = 200\nwatch = true",
        pg.url("target")
    );
    let write = |rule: &str| email_pipeline(&dir, &pg, "cdc", rule, &tail);
    write("{ required = true }");
    let run = spawn_run(&dir);
    wait_for(60, "the snapshot in the target", || {
        pg.count("target", "SELECT count(*) FROM customers") == 1980
    });
    // Live changes without an email are refused too.
    pg.exec(
        "legacy",
        "INSERT INTO customers SELECT i, 'late ' || i, NULL FROM generate_series(3001, 3005) i;",
    );
    wait_for(30, "the late rows dead-lettered", || {
        pg.count("target", "SELECT count(*) FROM dead_letters") == 25
    });
    // The fix, by hot reload: emails are optional from now on.
    write("{ max_length = 200 }");
    wait_for(30, "the fixed version live", || {
        pg.exec(
            "legacy",
            "INSERT INTO customers VALUES ((SELECT max(id) + 1 FROM customers), 'probe', NULL)",
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
        pg.count(
            "target",
            "SELECT count(*) FROM customers WHERE name = 'probe'",
        ) > 0
    });
    signal(&run, libc::SIGTERM);
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The plugin now keeps what it refused (the 25, and the probes sent
    // before the fix was live): the target misses those rows.
    let n = pg.count("target", "SELECT count(*) FROM dead_letters");
    assert!(n >= 25);
    let (same, report) = verify(&dir);
    assert!(
        !same && report.contains(&format!("missing {n}  extra 0")),
        "{report}"
    );

    let (_, r) = replay(&dir, &[]);
    assert_eq!(r["read"], n, "{r}");
    assert_eq!(r["written"], n, "{r}");
    let (same, report) = verify(&dir);
    assert!(same, "{report}");
    assert!(
        report.contains("missing 0  extra 0  different 0"),
        "{report}"
    );
    let (_, r) = replay(&dir, &[]);
    assert_eq!(
        (r["already_replayed"].as_i64(), r["replayed"].as_i64()),
        (Some(n), Some(0))
    );
}

#[test]
fn dead_letters_in_a_kafka_topic_are_read_back_and_replayed_once() {
    let broker = crate::kafka::Broker::start();
    broker.topic("dlq", 2);
    let dir = Dir::new();
    dir.write("in/customers.csv", customers());
    let dead = format!(
        "[dead_letter]\ntype = \"kafka\"\nbrokers = \"{}\"\ntopic = \"dlq\"",
        broker.brokers()
    );
    write_pipeline_to(&dir, "\"FR\"", "", &dead);
    let (out, summary) = dir.run(&[]);
    let summary = assert_balanced(&out, &summary);
    assert_eq!(summary["dead_lettered"], 21);
    assert_eq!(rows(&dir), 80);
    write_pipeline_to(&dir, "\"FR\", \"ES\"", "", &dead);
    let (_, r) = replay(&dir, &[]);
    assert_eq!(r["read"], 21, "{r}");
    assert_eq!(r["unreadable"], serde_json::json!([]), "{r}");
    assert_eq!(r["not_replayable"], 1);
    assert_eq!(r["written"], 20, "{r}");
    assert_eq!(rows(&dir), 100);
    let (_, r) = replay(&dir, &[]);
    assert_eq!(
        (r["already_replayed"].as_u64(), r["replayed"].as_u64()),
        (Some(20), Some(0))
    );
}
