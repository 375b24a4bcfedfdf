//! `on_schema_change` (`evolve`, `stop`, `dead_letter`) on real PostgreSQL
//! servers: a column added at the source during a live sync, seen by the
//! source's policy and by the sink's.

use serde_json::Value as Json;

use crate::common::*;
use crate::postgres::{PgServer, catch_up, run_until_caught_up, seed_customers, verify};

/// `customers` from `legacy` into `target`, with `source` and `sink`
/// lines added to those sections, dead letters in `dlq.jsonl`.
fn write_pipeline(dir: &Dir, pg: &PgServer, source: &str, sink: &str) {
    dir.write(
        "pipeline.toml",
        format!(
            r#"name = "drift"
[source]
type = "postgres"
url = "{src}"
tables = ["customers"]
{source}

[sink]
type = "postgres"
url = "{dst}"
{sink}

[dead_letter]
type = "jsonl"
path = "dlq.jsonl"
"#,
            src = pg.url("legacy"),
            dst = pg.url("target"),
        ),
    );
}

fn schema_changes(dir: &Dir) -> Vec<Json> {
    dir.jsonl("dlq.jsonl")
        .into_iter()
        .filter(|d| d["code"] == "schema_change")
        .collect()
}

fn replay(dir: &Dir) -> std::process::Output {
    sluice()
        .args(["replay", "--code", "schema_change"])
        .arg(dir.path("pipeline.toml"))
        .output()
        .unwrap()
}

/// The change made in every test: row 11 before it, then a new column,
/// row 12 with it and an update of row 5.
const CHANGE: &str = "INSERT INTO customers VALUES (11, 'before', 'b@x.org');
     ALTER TABLE customers ADD COLUMN tier text;
     INSERT INTO customers VALUES (12, 'after', 'a@x.org', 'gold');
     UPDATE customers SET name = 'five', tier = 'silver' WHERE id = 5;";

#[test]
fn dead_letter_at_the_source_holds_the_changed_table_back_until_the_next_run_then_replay_writes_it()
{
    let pg = PgServer::start();
    seed_customers(&pg, 10);
    let dir = Dir::new();
    write_pipeline(
        &dir,
        &pg,
        r#"on_schema_change = { customers = "dead_letter" }"#,
        "",
    );
    catch_up(&dir);
    pg.exec("legacy", CHANGE);
    catch_up(&dir);
    // Row 11 came before the change; 12 and the update of 5 are held back.
    assert_eq!(pg.count("target", "SELECT count(*) FROM customers"), 11);
    assert_eq!(
        pg.count(
            "target",
            "SELECT count(*) FROM customers WHERE name = 'five'"
        ),
        0
    );
    let held = schema_changes(&dir);
    assert_eq!(held.len(), 2, "{held:?}");
    for d in &held {
        assert_eq!(d["reason"], "schema_change");
        assert_eq!(d["stage"], "source");
        let m = d["message"].as_str().unwrap();
        assert!(
            m.starts_with("table `public.customers` changed at the source (column `tier` added) and `on_schema_change = \"dead_letter\"`"),
            "{m}"
        );
        assert!(d["record"]["fields"].is_object(), "the record is kept: {d}");
    }
    // The next run takes the table as it is now: a new row flows, and the
    // sink adds the column (its own policy: `evolve`).
    pg.exec(
        "legacy",
        "INSERT INTO customers VALUES (13, 'later', 'l@x.org', 'bronze')",
    );
    catch_up(&dir);
    assert_eq!(
        pg.count(
            "target",
            "SELECT count(*) FROM customers WHERE id = 13 AND tier = 'bronze'"
        ),
        1
    );
    assert_eq!(schema_changes(&dir).len(), 2);
    // What was held back is replayed once, and the target is then the source.
    let out = replay(&dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        pg.count("target", "SELECT count(*) FROM customers WHERE (id = 12 AND tier = 'gold') OR (id = 5 AND name = 'five' AND tier = 'silver')"),
        2
    );
    let (same, report) = verify(&dir);
    assert!(same, "{report}");
}

/// Syncs 10 customers with `source` and `sink` lines, makes [`CHANGE`],
/// then runs until caught up, which must fail: what it printed.
fn sync_then_fail_on_the_change(pg: &PgServer, dir: &Dir, source: &str, sink: &str) -> String {
    seed_customers(pg, 10);
    write_pipeline(dir, pg, source, sink);
    catch_up(dir);
    pg.exec("legacy", CHANGE);
    let out = run_until_caught_up(dir);
    let e = stderr(&out);
    assert!(!out.status.success(), "{e}");
    e
}

#[test]
fn stop_at_the_source_stops_before_the_change_and_evolve_carries_it_on() {
    let pg = PgServer::start();
    let dir = Dir::new();
    let e = sync_then_fail_on_the_change(&pg, &dir, r#"on_schema_change = "stop""#, "");
    assert!(
        e.contains("table `public.customers` changed at the source (column `tier` added) and `on_schema_change = \"stop\"`"),
        "{e}"
    );
    assert!(e.contains("the position is kept before the change"), "{e}");
    assert_eq!(pg.count("target", "SELECT count(*) FROM customers"), 11);
    assert!(schema_changes(&dir).is_empty());
    // Evolve: the same run goes on from before the change; nothing is lost.
    write_pipeline(&dir, &pg, r#"on_schema_change = "evolve""#, "");
    catch_up(&dir);
    let (same, report) = verify(&dir);
    assert!(same, "{report}");
    assert_eq!(
        pg.count(
            "target",
            "SELECT count(*) FROM customers WHERE id = 12 AND tier = 'gold'"
        ),
        1
    );
}

#[test]
fn the_sink_s_policy_stops_or_dead_letters_a_field_the_target_has_no_column_for() {
    let pg = PgServer::start();
    let dir = Dir::new();
    let e = sync_then_fail_on_the_change(&pg, &dir, "", r#"on_schema_change = "stop""#);
    assert!(
        e.contains("table `public.customers` has no column `tier` (a field of stream `customers`) and `on_schema_change = \"stop\"`"),
        "{e}"
    );
    assert_eq!(
        pg.count("target", "SELECT count(*) FROM customers WHERE id = 12"),
        0
    );
    // dead_letter: the rows with the field are refused with the code, the
    // rest written; once the column exists, replay writes them.
    write_pipeline(
        &dir,
        &pg,
        "",
        r#"on_schema_change = { default = "evolve", "public.customers" = "dead_letter" }"#,
    );
    catch_up(&dir);
    assert_eq!(pg.count("target", "SELECT count(*) FROM customers"), 11);
    let held = schema_changes(&dir);
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(held.iter().all(|d| d["stage"] == "sink"), "{held:?}");
    assert!(
        held[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("table `public.customers` has no column `tier`"),
        "{held:?}"
    );
    pg.exec("target", "ALTER TABLE customers ADD COLUMN tier text");
    let out = replay(&dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let (same, report) = verify(&dir);
    assert!(same, "{report}");
}
