//! PostgreSQL live sync against real servers: each test starts its own
//! PostgreSQL 15 cluster on 127.0.0.1 with `scripts/postgres.sh` (which
//! `scripts/test.sh` installs). A missing server fails the test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A PostgreSQL server of one test, stopped when dropped.
pub struct PgServer {
    dir: tempfile::TempDir,
    pub port: u16,
}

fn script(args: &[&str]) {
    let out = Command::new("bash")
        .arg(root().join("scripts/postgres.sh"))
        .args(args)
        .output()
        .expect("run scripts/postgres.sh");
    assert!(
        out.status.success(),
        "scripts/postgres.sh {args:?} failed (is PostgreSQL 15 installed? `scripts/postgres.sh install`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PgServer {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sluice-pg")
            .tempdir()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        script(&["start", dir.path().to_str().unwrap(), &port.to_string()]);
        let s = PgServer { dir, port };
        s.exec("postgres", "CREATE DATABASE legacy");
        s.exec("postgres", "CREATE DATABASE target");
        s
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres:postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn client(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&self.url(db), postgres::NoTls).unwrap()
    }

    pub fn exec(&self, db: &str, sql: &str) {
        self.client(db).batch_execute(sql).unwrap();
    }

    pub fn count(&self, db: &str, sql: &str) -> i64 {
        match postgres::Client::connect(&self.url(db), postgres::NoTls) {
            Ok(mut c) => c.query_one(sql, &[]).map(|r| r.get(0)).unwrap_or(-1),
            Err(_) => -1,
        }
    }

    /// Turns TLS on (`scripts/postgres.sh tls`): returns the CA file; role
    /// `tls_user` (password `tls`) may connect over TLS only.
    pub fn enable_tls(&self) -> String {
        script(&["tls", self.dir.path().to_str().unwrap()]);
        self.dir.path().join("ca.crt").display().to_string()
    }

    pub fn restart(&self) {
        script(&["restart", self.dir.path().to_str().unwrap()]);
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        script(&["stop", self.dir.path().to_str().unwrap(), "immediate"]);
    }
}

/// Waits until `f` is true (panics after `secs`).
pub fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The legacy table: `n` customers, every 1000th without an email (the
/// validate plugin rejects those).
fn seed(pg: &PgServer, n: i64) {
    pg.exec(
        "legacy",
        &format!(
            "CREATE TABLE customers (id bigint PRIMARY KEY, name text, email text, balance numeric(12,2), signup timestamptz, active boolean, meta jsonb);
             INSERT INTO customers SELECT i, 'name ' || i, CASE WHEN i % 1000 = 0 THEN NULL ELSE 'u' || i || '@x.org' END,
                i * 1.5, timestamptz '2020-01-01 00:00:00+00' + (i || ' minutes')::interval, i % 2 = 0, jsonb_build_object('i', i)
             FROM generate_series(1, {n}) i;"
        ),
    );
}

fn pipeline(dir: &Dir, pg: &PgServer, extra_source: &str, batch: usize) {
    dir.write(
        "pipeline.toml",
        format!(
            r#"name = "cdc"
[source]
type = "postgres"
url = "{src}"
tables = ["customers"]
chunk_rows = 5000
{extra_source}

[[transforms]]
name = "map"
plugin = "{mapper}"
[transforms.config]
rename = {{ name = "full_name" }}

[[transforms]]
name = "validate"
plugin = "{validate}"
[transforms.config.fields]
email = {{ required = true }}

[sink]
type = "postgres"
url = "{dst}"

[dead_letter]
type = "jsonl"
path = "dlq.jsonl"

[runtime]
batch_size = {batch}
"#,
            src = pg.url("legacy"),
            dst = pg.url("target"),
            mapper = plugin("mapper").replace('\\', "/"),
            validate = plugin("validate").replace('\\', "/"),
        ),
    );
}

/// The `customers` table of the workflow tests: `n` rows, every 100th
/// without an email.
pub fn seed_customers(pg: &PgServer, n: i64) {
    pg.exec(
        "legacy",
        &format!(
            "CREATE TABLE customers (id bigint PRIMARY KEY, name text, email text);
             INSERT INTO customers SELECT i, 'name ' || i, CASE WHEN i % 100 = 0 THEN NULL ELSE 'u' || i || '@x.org' END
             FROM generate_series(1, {n}) i;"
        ),
    );
}

/// A sync of `customers` through `validate` with `email = RULE`, into the
/// target database; `tail` is the rest of the file (dead letters, runtime).
pub fn email_pipeline(dir: &Dir, pg: &PgServer, name: &str, rule: &str, tail: &str) {
    dir.write(
        "pipeline.toml",
        format!(
            r#"name = "{name}"
[source]
type = "postgres"
url = "{src}"
tables = ["customers"]

[[transforms]]
name = "validate"
plugin = "{validate}"
[transforms.config.fields]
email = {rule}

[sink]
type = "postgres"
url = "{dst}"

{tail}
"#,
            src = pg.url("legacy"),
            dst = pg.url("target"),
            validate = plugin("validate").replace('\\', "/"),
        ),
    );
}

pub fn spawn_run(dir: &Dir) -> Child {
    sluice()
        .arg("run")
        .arg(dir.path("pipeline.toml"))
        .arg("--no-progress")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn signal(child: &Child, sig: i32) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

pub fn verify(dir: &Dir) -> (bool, String) {
    let out = sluice()
        .arg("verify")
        .arg(dir.path("pipeline.toml"))
        .output()
        .unwrap();
    (
        out.status.success(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

pub fn run_until_caught_up(dir: &Dir) -> std::process::Output {
    sluice()
        .arg("run")
        .arg(dir.path("pipeline.toml"))
        .arg("--until-caught-up")
        .arg("--no-progress")
        .output()
        .unwrap()
}

pub fn catch_up(dir: &Dir) {
    let out = run_until_caught_up(dir);
    assert!(
        out.status.success(),
        "catch-up run failed: {}",
        stderr(&out)
    );
}

/// Inserts, updates (one changing a key), deletes in small transactions.
fn write_load(pg: &PgServer, from: i64, rounds: i64) {
    let mut c = pg.client("legacy");
    for r in 0..rounds {
        let id = from + r;
        c.batch_execute(&format!(
            "BEGIN;
             INSERT INTO customers VALUES ({id}, 'new {id}', 'n{id}@x.org', 1, now(), true, '{{}}');
             UPDATE customers SET name = 'upd ' || id, balance = balance + 1 WHERE id = {u};
             DELETE FROM customers WHERE id = {d};
             COMMIT;",
            u = r * 7 + 3,
            d = r * 11 + 5,
        ))
        .unwrap();
        if r % 50 == 0 {
            c.batch_execute(&format!(
                "UPDATE customers SET id = {} WHERE id = {}",
                from + rounds + r,
                r * 13 + 2
            ))
            .unwrap();
        }
    }
}

#[test]
fn snapshot_under_writes_then_catch_up_verifies_identical_and_accounts_rejects() {
    let pg = PgServer::start();
    seed(&pg, 100_000);
    let dir = Dir::new();
    pipeline(&dir, &pg, "", 1000);
    let run = spawn_run(&dir);
    // Writes while the snapshot and then the stream run.
    write_load(&pg, 1_000_000, 600);
    wait_for(60, "the snapshot to reach the target", || {
        pg.count("target", "SELECT count(*) FROM customers WHERE id > 999000") > 0
    });
    signal(&run, libc::SIGTERM);
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    write_load(&pg, 2_000_000, 100);
    catch_up(&dir);
    let (same, report) = verify(&dir);
    assert!(same, "{report}");
    // Rows without an email are rejected, dead-lettered, accounted for.
    let no_email = pg.count(
        "legacy",
        "SELECT count(*) FROM customers WHERE email IS NULL",
    );
    assert!(no_email > 90);
    assert!(
        report.contains(&format!("dead-lettered {no_email} ")),
        "{report}"
    );
    assert!(
        report.contains("missing 0  extra 0  different 0"),
        "{report}"
    );
    let dlq = dir.jsonl("dlq.jsonl");
    assert!(!dlq.is_empty());
    let d = &dlq[0];
    let text = d.to_string();
    assert!(text.contains("customers"), "the table: {text}");
    assert!(text.contains("required"), "the reason: {text}");
    // The position is the LSN (or the snapshot's LSN for snapshot rows).
    let pos = d["position"]
        .as_str()
        .or(d["fields"]["position"].as_str())
        .unwrap_or_default();
    assert!(pos.contains('/'), "an LSN position: {text}");
    // The renamed column made it.
    assert_eq!(
        pg.count(
            "target",
            "SELECT count(*) FROM customers WHERE full_name = 'name 1'"
        ),
        1
    );
}

#[test]
fn kill_9_during_snapshot_and_during_streaming_loses_nothing() {
    let pg = PgServer::start();
    seed(&pg, 150_000);
    let dir = Dir::new();
    pipeline(&dir, &pg, "", 200);
    // 1. Killed in the middle of the snapshot.
    let mut run = spawn_run(&dir);
    wait_for(60, "part of the snapshot", || {
        pg.count("target", "SELECT count(*) FROM customers") > 20_000
    });
    let copied = pg.count("target", "SELECT count(*) FROM customers");
    signal(&run, libc::SIGKILL);
    run.wait().unwrap();
    assert!(
        copied < 149_000,
        "the kill came during the snapshot ({copied} rows)"
    );
    write_load(&pg, 1_000_000, 200);
    // 2. Restarted; killed again while streaming.
    let mut run = spawn_run(&dir);
    wait_for(90, "the stream to start", || {
        pg.count(
            "target",
            "SELECT count(*) FROM customers WHERE id >= 1000000",
        ) > 0
    });
    write_load(&pg, 3_000_000, 200);
    signal(&run, libc::SIGKILL);
    run.wait().unwrap();
    write_load(&pg, 4_000_000, 50);
    catch_up(&dir);
    let (same, report) = verify(&dir);
    assert!(same, "{report}");
}

#[test]
fn a_snapshot_in_parallel_key_ranges_killed_midway_resumes_each_range_and_verifies_identical() {
    let pg = PgServer::start();
    seed(&pg, 150_000);
    // A second table with a composite key of text and int, split on both.
    pg.exec(
        "legacy",
        "CREATE TABLE orders (region text, id int, total numeric(10,2), PRIMARY KEY (region, id));
         INSERT INTO orders SELECT (ARRAY['eu','us','apac','latam'])[1 + i % 4], i, i * 0.25
         FROM generate_series(1, 40000) i;",
    );
    let dir = Dir::new();
    dir.write(
        "pipeline.toml",
        format!(
            r#"name = "parallel"
[source]
type = "postgres"
url = "{src}"
tables = ["customers", "orders"]
chunk_rows = 2000
snapshot_workers = 3

[sink]
type = "postgres"
url = "{dst}"

[dead_letter]
type = "jsonl"
path = "dlq.jsonl"

[runtime]
batch_size = 200
"#,
            src = pg.url("legacy"),
            dst = pg.url("target"),
        ),
    );
    let run = sluice()
        .arg("run")
        .arg(dir.path("pipeline.toml"))
        .arg("--no-progress")
        .env("SLUICE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(60, "part of the snapshot", || {
        pg.count("target", "SELECT count(*) FROM customers") > 20_000
    });
    signal(&run, libc::SIGKILL);
    let first = stderr(&run.wait_with_output().unwrap());
    let copied = pg.count("target", "SELECT count(*) FROM customers");
    assert!(
        copied < 149_000,
        "the kill came during the snapshot ({copied} rows)"
    );
    // Every worker read in the slot's snapshot.
    assert!(first.contains("copying in key ranges"), "{first}");
    assert!(!first.contains("cannot be imported"), "{first}");
    write_load(&pg, 1_000_000, 100);
    // The restart goes on in each range where it was, then streams.
    let out = sluice()
        .arg("run")
        .arg(dir.path("pipeline.toml"))
        .args(["--until-caught-up", "--no-progress"])
        .env("SLUICE_LOG", "info")
        .output()
        .unwrap();
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("copying in key ranges") && log.contains("ranges=3"),
        "{log}"
    );
    assert!(!log.contains("cannot be imported"), "{log}");
    let (same, report) = verify(&dir);
    assert!(same, "{report}");
    assert_eq!(pg.count("target", "SELECT count(*) FROM orders"), 40_000);
    assert!(dir.jsonl("dlq.jsonl").is_empty(), "no dead letters");
}

#[test]
fn a_postgres_restart_under_a_running_sync_reconnects_and_catches_up() {
    let pg = PgServer::start();
    seed(&pg, 1_000);
    let dir = Dir::new();
    pipeline(&dir, &pg, "", 100);
    let run = spawn_run(&dir);
    wait_for(30, "the snapshot", || {
        pg.count("target", "SELECT count(*) FROM customers") == 999
    });
    pg.exec(
        "legacy",
        "INSERT INTO customers VALUES (5001, 'a', 'a@x.org', 1, now(), true, '{}')",
    );
    pg.restart();
    pg.exec(
        "legacy",
        "INSERT INTO customers VALUES (5002, 'b', 'b@x.org', 1, now(), true, '{}')",
    );
    wait_for(90, "the changes after the restart", || {
        pg.count(
            "target",
            "SELECT count(*) FROM customers WHERE id IN (5001, 5002)",
        ) == 2
    });
    signal(&run, libc::SIGTERM);
    let out = run.wait_with_output().unwrap();
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("reconnecting"), "the loss is logged: {log}");
    let (same, report) = verify(&dir);
    assert!(same, "{report}");
}

#[test]
fn an_incompatible_type_change_stops_with_table_and_column_and_keeps_the_position() {
    let pg = PgServer::start();
    seed(&pg, 10);
    let dir = Dir::new();
    pipeline(&dir, &pg, "", 100);
    catch_up(&dir);
    pg.exec(
        "legacy",
        "INSERT INTO customers VALUES (11, 'x', 'x@x.org', 1, now(), true, '{}');
         ALTER TABLE customers ALTER COLUMN active TYPE text;
         INSERT INTO customers VALUES (12, 'y', 'y@x.org', 1, now(), 'yes', '{}');",
    );
    let out = run_until_caught_up(&dir);
    let e = stderr(&out);
    assert!(!out.status.success());
    assert!(
        e.contains("`public.customers` column `active` changed type"),
        "{e}"
    );
    // Row 11 came before the change and is written; 12 is not.
    assert_eq!(
        pg.count("target", "SELECT count(*) FROM customers WHERE id = 11"),
        1
    );
    assert_eq!(
        pg.count("target", "SELECT count(*) FROM customers WHERE id = 12"),
        0
    );
    // After adapting the target, `continue` carries on from the same place.
    pg.exec(
        "target",
        "ALTER TABLE customers ALTER COLUMN active TYPE text",
    );
    pipeline(&dir, &pg, "schema_changes = \"continue\"", 100);
    catch_up(&dir);
    assert_eq!(
        pg.count("target", "SELECT count(*) FROM customers WHERE id = 12"),
        1
    );
}

#[test]
fn bad_credentials_tables_rights_and_wal_level_say_what_to_do() {
    let pg = PgServer::start();
    seed(&pg, 3);
    pg.exec(
        "legacy",
        "CREATE ROLE plain LOGIN PASSWORD 'pw'; GRANT SELECT ON customers TO plain;",
    );
    let dir = Dir::new();
    let check = |source_url: &str, tables: &str| -> String {
        dir.write(
            "p.toml",
            format!(
                "name = \"bad\"\n[source]\ntype = \"postgres\"\nurl = \"{source_url}\"\ntables = [{tables}]\n[sink]\ntype = \"stdout\"\n"
            ),
        );
        let out = sluice()
            .arg("run")
            .arg(dir.path("p.toml"))
            .arg("--no-progress")
            .output()
            .unwrap();
        assert!(!out.status.success());
        stderr(&out)
    };
    let wrong = pg
        .url("legacy")
        .replace("postgres:postgres@", "postgres:nope@");
    let e = check(&wrong, "\"customers\"");
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(e.contains("check the user and password"), "{e}");
    assert!(!e.contains("nope"), "no password in messages: {e}");
    let e = check(&pg.url("legacy"), "\"nosuch\"");
    assert!(e.contains("table `public.nosuch` does not exist"), "{e}");
    let plain = pg.url("legacy").replace("postgres:postgres@", "plain:pw@");
    let e = check(&plain, "\"customers\"");
    assert!(e.contains("may not use logical replication"), "{e}");
    assert!(e.contains("ALTER ROLE \"plain\" REPLICATION"), "{e}");
    pg.exec("legacy", "ALTER ROLE plain REPLICATION");
    let e = check(&plain, "\"customers\"");
    assert!(
        e.contains("CREATE PUBLICATION"),
        "a table owner must create it: {e}"
    );
    pg.exec("postgres", "ALTER SYSTEM SET wal_level = replica");
    pg.restart();
    let e = check(&pg.url("legacy"), "\"customers\"");
    assert!(e.contains("`wal_level` is `replica`"), "{e}");
    assert!(e.contains("wal_level = logical"), "{e}");
    // A server that is not there.
    let e = check(
        "postgres://postgres:postgres@127.0.0.1:1/legacy",
        "\"customers\"",
    );
    assert!(e.contains("connection refused"), "{e}");
}

#[test]
fn verify_repair_rewrites_missing_and_different_rows_and_deletes_extra_ones() {
    let pg = PgServer::start();
    seed(&pg, 3000);
    let dir = Dir::new();
    pipeline(&dir, &pg, "", 500);
    catch_up(&dir);
    assert!(verify(&dir).0);
    // The target drifts: rows lost, rows changed by hand, rows that were
    // never in the source.
    pg.exec(
        "target",
        "DELETE FROM customers WHERE id IN (1, 2, 3, 4, 5);
         UPDATE customers SET full_name = 'tampered', balance = 0 WHERE id IN (10, 11, 12);
         INSERT INTO customers (id, full_name) VALUES (900001, 'ghost'), (900002, 'ghost');",
    );
    let (same, report) = verify(&dir);
    assert!(!same, "{report}");
    assert!(
        report.contains("missing 5  extra 2  different 3"),
        "{report}"
    );

    let json = dir.path("repair.json");
    let out = sluice()
        .arg("verify")
        .arg(dir.path("pipeline.toml"))
        .arg("--repair")
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("REPAIRED public.customers: written 8  deleted 2  not found 0  refused 0"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("identical"), "{text}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["repair"]["tables"][0]["written"], 8, "{r}");
    assert_eq!(r["tables"][0]["missing"], 0, "{r}");
    // Written as the sync writes them: typed values, through the plugins.
    assert_eq!(
        pg.count(
            "target",
            "SELECT count(*) FROM customers WHERE id IN (1, 10) AND full_name = 'name ' || id AND balance = id * 1.5 AND signup = timestamptz '2020-01-01 00:00:00+00' + (id || ' minutes')::interval"
        ),
        2
    );
    assert_eq!(
        pg.count("target", "SELECT count(*) FROM customers WHERE id > 900000"),
        0
    );
    assert!(verify(&dir).0);
}
