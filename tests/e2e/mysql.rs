//! MySQL/MariaDB source against real servers: each test starts its own
//! MariaDB on 127.0.0.1 with `scripts/mariadb.sh` (which `scripts/test.sh`
//! installs). A missing server fails the test.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::*;
use crate::postgres::{
    PgServer, catch_up, run_until_caught_up, signal, spawn_run, verify, wait_for,
};

/// A MariaDB server of one test, stopped when dropped.
pub struct MariaDb {
    dir: tempfile::TempDir,
    pub port: u16,
}

fn script(args: &[&str]) {
    let out = Command::new("bash")
        .arg(root().join("scripts/mariadb.sh"))
        .args(args)
        .output()
        .expect("run scripts/mariadb.sh");
    assert!(
        out.status.success(),
        "scripts/mariadb.sh {args:?} failed (is MariaDB installed? `scripts/mariadb.sh install`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl MariaDb {
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// A server with extra settings in its configuration.
    pub fn start_with(extra: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sluice-mariadb")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("extra.cnf"), extra).unwrap();
        let port = free_port();
        script(&["start", dir.path().to_str().unwrap(), &port.to_string()]);
        let s = MariaDb { dir, port };
        s.sql("", "CREATE DATABASE legacy");
        s
    }

    pub fn url(&self, db: &str) -> String {
        format!("mysql://root:root@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL as root on the server's socket; the output, tab-separated.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let mut child = Command::new("mariadb")
            .arg(format!(
                "--socket={}",
                self.dir.path().join("mysql.sock").display()
            ))
            .args(["-uroot", "-N", "-B"])
            .args((!db.is_empty()).then_some(db))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the mariadb client");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "SQL failed: {}\n{}",
            stderr(&out),
            sql.chars().take(500).collect::<String>()
        );
        stdout(&out)
    }

    pub fn count(&self, db: &str, sql: &str) -> i64 {
        self.sql(db, sql).trim().parse().unwrap_or(-1)
    }

    pub fn restart(&self) {
        script(&["restart", self.dir.path().to_str().unwrap()]);
    }

    /// Turns TLS on (`scripts/mariadb.sh tls`): returns the CA file; user
    /// `tls_user` (password `tls`) may connect over TLS only.
    pub fn enable_tls(&self) -> String {
        script(&["tls", self.dir.path().to_str().unwrap()]);
        self.dir.path().join("ca.crt").display().to_string()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        script(&["stop", self.dir.path().to_str().unwrap(), "kill"]);
    }
}

/// `customers`: `n` rows with a text, a latin1 text, a decimal and a
/// timestamp, keyed by id.
fn seed(db: &MariaDb, n: i64) {
    db.sql(
        "legacy",
        &format!(
            "CREATE TABLE customers (id bigint PRIMARY KEY, name varchar(80), city varchar(40) CHARACTER SET latin1,
                balance decimal(14,2), signup datetime(6), active tinyint(1), meta json);
             INSERT INTO customers SELECT seq, concat('name ', seq), IF(seq % 3 = 0, 'Zürich', 'Köln'),
                seq * 1.25, timestamp '2020-01-01 00:00:00' + INTERVAL seq MINUTE, seq % 2, json_object('i', seq)
             FROM seq_1_to_{n};"
        ),
    );
}

/// Inserts, updates (every 50th changing a key), deletes, in small
/// transactions, as one client session.
fn write_load(db: &MariaDb, from: i64, rounds: i64) {
    let mut sql = String::new();
    for r in 0..rounds {
        let id = from + r;
        sql.push_str(&format!(
            "BEGIN;
             INSERT INTO customers VALUES ({id}, 'new {id}', 'Genève', 1.5, now(6), 1, '{{}}');
             UPDATE customers SET name = concat('upd ', id), balance = balance + 1 WHERE id = {u};
             DELETE FROM customers WHERE id = {d};
             COMMIT;\n",
            u = r * 7 + 3,
            d = r * 11 + 5,
        ));
        if r % 50 == 0 {
            sql.push_str(&format!(
                "UPDATE customers SET id = {} WHERE id = {};\n",
                from + rounds + r,
                r * 13 + 2
            ));
        }
    }
    db.sql("legacy", &sql);
}

fn pipeline(dir: &Dir, src: &str, sink: &str, extra_source: &str, batch: usize) {
    dir.write(
        "pipeline.toml",
        format!(
            r#"name = "mysql-cdc"
[source]
type = "mysql"
url = "{src}"
tables = ["customers"]
chunk_rows = 5000
{extra_source}

[[transforms]]
name = "map"
plugin = "{mapper}"
[transforms.config]
rename = {{ name = "full_name" }}

{sink}

[dead_letter]
type = "jsonl"
path = "dlq.jsonl"

[runtime]
batch_size = {batch}
"#,
            mapper = plugin("mapper").replace('\\', "/"),
        ),
    );
}

fn sqlite_sink() -> &'static str {
    "[sink]\ntype = \"sqlite\"\npath = \"target.db\"\ncreate_table = true"
}

fn sqlite_count(dir: &Dir, sql: &str) -> i64 {
    if !dir.path("target.db").exists() {
        return 0;
    }
    let conn = rusqlite::Connection::open(dir.path("target.db")).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap_or(0)
}

#[test]
fn snapshot_under_writes_then_catch_up_into_postgres_verifies_identical() {
    let my = MariaDb::start();
    let pg = PgServer::start();
    seed(&my, 60_000);
    let dir = Dir::new();
    pipeline(
        &dir,
        &my.url("legacy"),
        &format!(
            "[sink]\ntype = \"postgres\"\nurl = \"{}\"",
            pg.url("target")
        ),
        "",
        1000,
    );
    let run = spawn_run(&dir);
    // Writes while the snapshot and then the stream run.
    write_load(&my, 1_000_000, 600);
    wait_for(90, "the writes to reach the target", || {
        pg.count(
            "target",
            "SELECT count(*) FROM customers WHERE id >= 1000000",
        ) > 0
    });
    signal(&run, libc::SIGTERM);
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    write_load(&my, 2_000_000, 100);
    catch_up(&dir);
    let (same, report) = verify(&dir);
    assert!(same, "{report}");
    assert!(
        report.contains("missing 0  extra 0  different 0"),
        "{report}"
    );
    assert_eq!(
        my.count("legacy", "SELECT count(*) FROM customers"),
        pg.count("target", "SELECT count(*) FROM customers")
    );
    // Declared types, and values exact through both paths.
    assert_eq!(
        pg.count(
            "target",
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'customers'
               AND ((column_name = 'balance' AND data_type = 'numeric' AND numeric_scale = 2)
                 OR (column_name = 'signup' AND data_type = 'timestamp without time zone')
                 OR (column_name = 'meta' AND data_type = 'jsonb'))"
        ),
        3
    );
    assert_eq!(
        pg.count(
            "target",
            "SELECT count(*) FROM customers WHERE city = 'Zürich' AND id <= 60000"
        ),
        my.count(
            "legacy",
            "SELECT count(*) FROM customers WHERE city = 'Zürich' AND id <= 60000"
        )
    );
    // A key moved by an update left no row under its old key.
    assert_eq!(
        pg.count("target", "SELECT count(*) FROM customers WHERE id = 2"),
        0
    );
    assert_eq!(
        pg.count(
            "target",
            "SELECT count(*) FROM customers WHERE id = 1000600"
        ),
        1
    );
}

#[test]
fn kill_9_during_snapshot_and_during_streaming_then_a_server_restart_loses_nothing() {
    let my = MariaDb::start();
    seed(&my, 150_000);
    let dir = Dir::new();
    pipeline(&dir, &my.url("legacy"), sqlite_sink(), "", 200);
    // 1. Killed in the middle of the snapshot.
    let run = spawn_run(&dir);
    wait_for(60, "part of the snapshot", || {
        sqlite_count(&dir, "SELECT count(*) FROM customers") > 20_000
    });
    signal(&run, libc::SIGKILL);
    run.wait_with_output().unwrap();
    let copied = sqlite_count(&dir, "SELECT count(*) FROM customers");
    assert!(
        copied < 149_000,
        "the kill came during the snapshot ({copied} rows)"
    );
    write_load(&my, 1_000_000, 200);
    // 2. Restarted; killed again while streaming.
    let run = spawn_run(&dir);
    wait_for(90, "the stream to start", || {
        sqlite_count(&dir, "SELECT count(*) FROM customers WHERE id >= 1000000") > 0
    });
    write_load(&my, 3_000_000, 200);
    signal(&run, libc::SIGKILL);
    run.wait_with_output().unwrap();
    write_load(&my, 4_000_000, 50);
    // 3. Running while the server restarts: it reconnects and goes on.
    let run = spawn_run(&dir);
    wait_for(60, "the stream to catch up", || {
        sqlite_count(
            &dir,
            "SELECT count(*) FROM customers WHERE id BETWEEN 4000000 AND 4000049",
        ) == 50
    });
    my.restart();
    write_load(&my, 5_000_000, 30);
    wait_for(60, "the writes after the restart", || {
        sqlite_count(
            &dir,
            "SELECT count(*) FROM customers WHERE id BETWEEN 5000000 AND 5000029",
        ) == 30
    });
    signal(&run, libc::SIGTERM);
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("reconnecting"),
        "the restart was noticed: {}",
        stderr(&out)
    );
    catch_up(&dir);
    let (same, report) = verify(&dir);
    assert!(same, "{report}");
    assert_eq!(
        my.count("legacy", "SELECT count(*) FROM customers"),
        sqlite_count(&dir, "SELECT count(*) FROM customers")
    );
}

/// One row of every type, read by the snapshot (id 1) and from the binlog
/// (id 2, the same values): both land the same, exactly.
#[test]
fn every_type_round_trips_the_same_from_the_snapshot_and_the_binlog() {
    let my = MariaDb::start();
    let pg = PgServer::start();
    my.sql(
        "legacy",
        "CREATE TABLE kinds (id int PRIMARY KEY, u bigint unsigned, ti tinyint unsigned, m mediumint,
            d decimal(30,10), f float, g double, dt date, dtm datetime(6), ts timestamp(3) NULL, tm time(2), y year,
            name varchar(20), l1 varchar(20) CHARACTER SET latin1, bin binary(4), vb varbinary(8), bl blob,
            b bit(10), e enum('red','green','blue'), s set('a','b','c'), j json, zd date);
         SET sql_mode = '';
         INSERT INTO kinds VALUES (1, 18446744073709551615, 255, -8388608, -12345678901234567890.0123456789,
            1.1, 0.1, '2024-02-29', '2024-01-02 03:04:05.000001', '2024-01-02 03:04:05.678', '-838:59:59.99', 0,
            'naïve ☃', 'Grüße €', 'ab', x'00ff10', x'deadbeef', b'1010000001', 'green', 'a,c',
            '{\"k\": [1, 2.5, \"x\"], \"n\": null}', '0000-00-00');",
    );
    let dir = Dir::new();
    dir.write(
        "pipeline.toml",
        format!(
            r#"name = "kinds"
[source]
type = "mysql"
url = "{src}"
tables = ["kinds"]

[sink]
type = "postgres"
url = "{dst}"

[dead_letter]
type = "jsonl"
path = "dlq.jsonl"
"#,
            src = my.url("legacy"),
            dst = pg.url("target"),
        ),
    );
    catch_up(&dir);
    my.sql(
        "legacy",
        "SET sql_mode = ''; INSERT INTO kinds SELECT 2, u, ti, m, d, f, g, dt, dtm, ts, tm, y, name, l1, bin, vb, bl, b, e, s, j, zd FROM kinds WHERE id = 1;",
    );
    catch_up(&dir);
    let row = |id: i32| -> Vec<String> {
        let mut c = pg.client("target");
        let r = c
            .query_one(
                "SELECT u::text, ti::text, m::text, d::text, f::text, g::text, dt::text, dtm::text, (ts AT TIME ZONE 'UTC')::text,
                        tm::text, y::text, name, l1, encode(bin, 'hex'), encode(vb, 'hex'), encode(bl, 'hex'),
                        b::text, e, s, j::text, coalesce(zd::text, 'NULL')
                 FROM kinds WHERE id = $1",
                &[&id],
            )
            .unwrap();
        (0..21).map(|i| r.get::<_, String>(i)).collect()
    };
    let want: Vec<String> = [
        "18446744073709551615",
        "255",
        "-8388608",
        "-12345678901234567890.0123456789",
        "1.1",
        "0.1",
        "2024-02-29",
        "2024-01-02 03:04:05.000001",
        "2024-01-02 03:04:05.678",
        "-838:59:59.99",
        "0",
        "naïve ☃",
        "Grüße €",
        "61620000",
        "00ff10",
        "deadbeef",
        "1010000001",
        "green",
        "a,c",
        r#"{"k": [1, 2.5, "x"], "n": null}"#,
        "NULL",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let snap = row(1);
    let streamed = row(2);
    for (i, w) in want.iter().enumerate() {
        assert_eq!(&snap[i], w, "snapshot column {i}");
    }
    assert_eq!(snap, streamed, "the binlog row reads as the snapshot row");
    assert_eq!(
        pg.count(
            "target",
            "SELECT count(*) FROM kinds WHERE ts = timestamptz '2024-01-02 03:04:05.678+00'"
        ),
        2
    );
    // The zero date became null (the default); nothing was dead-lettered.
    assert!(dir.jsonl("dlq.jsonl").is_empty());
}

#[test]
fn zero_dates_can_go_to_the_dead_letters_and_truncate_empties_the_target() {
    let my = MariaDb::start();
    my.sql(
        "legacy",
        "CREATE TABLE events (id int PRIMARY KEY, happened date);
         SET sql_mode = '';
         INSERT INTO events VALUES (1, '2024-05-01'), (2, '0000-00-00'), (3, '2024-00-10');",
    );
    let dir = Dir::new();
    dir.write(
        "pipeline.toml",
        format!(
            r#"name = "zero"
[source]
type = "mysql"
url = "{src}"
tables = ["events"]
zero_dates = "dead_letter"

[sink]
type = "sqlite"
path = "target.db"
create_table = true

[dead_letter]
type = "jsonl"
path = "dlq.jsonl"
"#,
            src = my.url("legacy"),
        ),
    );
    catch_up(&dir);
    assert_eq!(
        dir.sql("target.db", "SELECT id, happened FROM events"),
        vec!["1|2024-05-01"]
    );
    let dlq = dir.jsonl("dlq.jsonl");
    assert_eq!(dlq.len(), 2, "{dlq:?}");
    let text = dlq[0].to_string();
    assert!(
        text.contains("happened") && text.contains("zero date"),
        "{text}"
    );
    my.sql(
        "legacy",
        "SET sql_mode = ''; INSERT INTO events VALUES (4, '0000-00-00'), (5, '2025-01-01');",
    );
    catch_up(&dir);
    assert_eq!(dir.jsonl("dlq.jsonl").len(), 3);
    my.sql(
        "legacy",
        "TRUNCATE TABLE events; INSERT INTO events VALUES (9, '2026-01-01');",
    );
    catch_up(&dir);
    assert_eq!(
        dir.sql("target.db", "SELECT id, happened FROM events"),
        vec!["9|2026-01-01"]
    );
}

#[test]
fn schema_changes_flow_or_stop_as_on_schema_change_says() {
    let my = MariaDb::start();
    my.sql(
        "legacy",
        "CREATE TABLE items (id int PRIMARY KEY, name varchar(20));
         INSERT INTO items VALUES (1, 'a');",
    );
    let dir = Dir::new();
    let write = |policy: &str| {
        dir.write(
            "pipeline.toml",
            format!(
                r#"name = "drift"
[source]
type = "mysql"
url = "{src}"
tables = ["items"]
{policy}

[sink]
type = "sqlite"
path = "target.db"
create_table = true
"#,
                src = my.url("legacy"),
            ),
        );
    };
    write("");
    catch_up(&dir);
    // An added column flows on.
    my.sql(
        "legacy",
        "ALTER TABLE items ADD COLUMN qty int; INSERT INTO items VALUES (2, 'b', 7);",
    );
    catch_up(&dir);
    assert_eq!(
        dir.sql("target.db", "SELECT id, name, qty FROM items ORDER BY id"),
        vec!["1|a|NULL", "2|b|7"]
    );
    // A narrowing change made while the sync runs stops it by default,
    // naming table and column. (A run judges changes against the table as
    // it found it at its start.)
    let run = spawn_run(&dir);
    my.sql("legacy", "INSERT INTO items VALUES (3, 'c', 1);");
    wait_for(30, "row 3", || {
        dir.sql("target.db", "SELECT count(*) FROM items WHERE id = 3") == vec!["1"]
    });
    my.sql(
        "legacy",
        "ALTER TABLE items MODIFY qty smallint; INSERT INTO items VALUES (4, 'd', 2);",
    );
    let out = run.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("legacy.items") && err.contains("`qty`") && err.contains("schema_changes"),
        "{err}"
    );
    // What came before the change was handed on; after it, nothing.
    assert_eq!(
        dir.sql("target.db", "SELECT id FROM items ORDER BY id"),
        vec!["1", "2", "3"]
    );
    write("schema_changes = \"continue\"");
    catch_up(&dir);
    assert_eq!(
        dir.sql("target.db", "SELECT id, qty FROM items WHERE id = 4"),
        vec!["4|2"]
    );
    // `on_schema_change = "stop"` stops at any change, even an added column.
    write("on_schema_change = \"stop\"");
    let run = spawn_run(&dir);
    my.sql("legacy", "INSERT INTO items VALUES (5, 'e', 3);");
    wait_for(30, "row 5", || {
        dir.sql("target.db", "SELECT count(*) FROM items WHERE id = 5") == vec!["1"]
    });
    my.sql(
        "legacy",
        "ALTER TABLE items ADD COLUMN note text; INSERT INTO items VALUES (6, 'f', 3, 'x');",
    );
    let out = run.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("column `note` added") && err.contains("on_schema_change = \"stop\""),
        "{err}"
    );
    // Columns added while the sync was stopped: the rows written before
    // the change are read with the columns they had.
    write("");
    my.sql(
        "legacy",
        "INSERT INTO items VALUES (7, 'g', 4, 'y'); ALTER TABLE items ADD COLUMN price decimal(8,2); INSERT INTO items VALUES (8, 'h', 5, 'z', 9.5);",
    );
    catch_up(&dir);
    assert_eq!(
        dir.sql(
            "target.db",
            "SELECT id, note, price FROM items WHERE id >= 6 ORDER BY id"
        ),
        vec!["6|x|NULL", "7|y|NULL", "8|z|9.50"]
    );
}

#[test]
fn preflight_failures_say_what_to_do() {
    let my = MariaDb::start();
    my.sql(
        "legacy",
        "CREATE TABLE keyed (id int PRIMARY KEY, v int);
         CREATE TABLE unkeyed (v int);
         CREATE USER 'reader'@'127.0.0.1' IDENTIFIED BY 'pw';
         GRANT SELECT ON legacy.* TO 'reader'@'127.0.0.1';",
    );
    let dir = Dir::new();
    let check = |url: &str, tables: &str| -> String {
        dir.write(
            "pipeline.toml",
            format!(
                r#"name = "pre"
[source]
type = "mysql"
url = "{url}"
tables = [{tables}]

[sink]
type = "sqlite"
path = "target.db"
"#
            ),
        );
        let out = dir.check();
        assert!(!out.status.success(), "check passed for {url} {tables}");
        format!("{}{}", stdout(&out), stderr(&out))
    };
    let e = check(&my.url("legacy"), "\"unkeyed\"");
    assert!(
        e.contains("`legacy.unkeyed` has no primary key") && e.contains("ADD PRIMARY KEY"),
        "{e}"
    );
    let e = check(&my.url("legacy"), "\"missing\"");
    assert!(e.contains("`legacy.missing` does not exist"), "{e}");
    let e = check(
        &format!("mysql://root:wrong@127.0.0.1:{}/legacy", my.port),
        "\"keyed\"",
    );
    assert!(
        e.contains("refused the user and password") && !e.contains("wrong"),
        "{e}"
    );
    let e = check(
        &format!("mysql://reader:pw@127.0.0.1:{}/legacy", my.port),
        "\"keyed\"",
    );
    assert!(
        e.contains("REPLICATION SLAVE") && e.contains("BINLOG MONITOR"),
        "{e}"
    );
    my.sql("", "SET GLOBAL binlog_format = 'STATEMENT'");
    let e = check(&my.url("legacy"), "\"keyed\"");
    assert!(e.contains("`binlog_format` is STATEMENT, not ROW"), "{e}");
    my.sql(
        "",
        "SET GLOBAL binlog_format = 'ROW'; SET GLOBAL binlog_row_image = 'MINIMAL'",
    );
    let e = check(&my.url("legacy"), "\"keyed\"");
    assert!(e.contains("`binlog_row_image` is MINIMAL, not FULL"), "{e}");
    my.sql("", "SET GLOBAL binlog_row_image = 'FULL'");
    // The server gone.
    let port = free_port();
    let e = check(
        &format!("mysql://root:root@127.0.0.1:{port}/legacy"),
        "\"keyed\"",
    );
    assert!(
        e.contains("cannot reach MySQL") && e.contains("is the server running"),
        "{e}"
    );
    // Binary logging off.
    let off = MariaDb::start_with("skip-log-bin\n");
    off.sql("legacy", "CREATE TABLE keyed (id int PRIMARY KEY)");
    let e = check(&off.url("legacy"), "\"keyed\"");
    assert!(e.contains("the binary log is off"), "{e}");
}

#[test]
fn a_purged_binlog_is_a_clear_error_that_says_to_copy_again() {
    let my = MariaDb::start();
    my.sql(
        "legacy",
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);",
    );
    let dir = Dir::new();
    dir.write(
        "pipeline.toml",
        format!(
            r#"name = "purged"
[source]
type = "mysql"
url = "{src}"
tables = ["t"]

[sink]
type = "sqlite"
path = "target.db"
create_table = true
"#,
            src = my.url("legacy"),
        ),
    );
    catch_up(&dir);
    my.sql(
        "legacy",
        "INSERT INTO t VALUES (2); FLUSH BINARY LOGS; INSERT INTO t VALUES (3); FLUSH BINARY LOGS;",
    );
    let last = my.sql("", "SHOW MASTER STATUS");
    let file = last.split('\t').next().unwrap().to_string();
    // The server keeps a file until its transactions are checkpointed.
    wait_for(30, "the purge", || {
        my.sql("", &format!("PURGE BINARY LOGS TO '{file}'"));
        my.sql("", "SHOW BINARY LOGS").lines().count() == 1
    });
    let out = sluice()
        .arg("run")
        .arg(dir.path("pipeline.toml"))
        .arg("--until-caught-up")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("is no longer on the server") && err.contains("--reset"),
        "{err}"
    );
    // --reset copies again.
    let out = sluice()
        .arg("run")
        .arg(dir.path("pipeline.toml"))
        .arg("--until-caught-up")
        .arg("--reset")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        dir.sql("target.db", "SELECT id FROM t ORDER BY id"),
        vec!["1", "2", "3"]
    );
}

/// `examples/mysql-sync` as its README runs it, into SQLite and into
/// PostgreSQL, on servers of the test's own.
#[test]
fn the_mysql_sync_example_copies_streams_and_verifies_into_sqlite_and_postgres() {
    let my = MariaDb::start();
    let pg = PgServer::start();
    let ex = root().join("examples/mysql-sync");
    my.sql("", &std::fs::read_to_string(ex.join("seed.sql")).unwrap());
    let dir = Dir::new();
    let plugins = plugins();
    for f in ["to-sqlite.toml", "to-postgres.toml"] {
        let text = std::fs::read_to_string(ex.join(f))
            .unwrap()
            .replace("../../build/plugins", &plugins.display().to_string());
        dir.write(f, text);
    }
    let run = |f: &str| {
        let out = sluice()
            .arg("run")
            .arg(dir.path(f))
            .args(["--until-caught-up", "--no-progress"])
            .env("LEGACY_URL", my.url("shop"))
            .env("TARGET_URL", pg.url("target"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{f}: {}", stderr(&out));
    };
    let verify = |f: &str| {
        let out = sluice()
            .arg("verify")
            .arg(dir.path(f))
            .env("LEGACY_URL", my.url("shop"))
            .env("TARGET_URL", pg.url("target"))
            .output()
            .unwrap();
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(out.status.success(), "{f}: {text}");
        text
    };
    for f in ["to-sqlite.toml", "to-postgres.toml"] {
        run(f);
    }
    my.sql(
        "shop",
        "UPDATE customers SET name = 'Zoë Ångström' WHERE id = 7; UPDATE orders SET number = 99 WHERE customer_id = 1 AND number = 0; DELETE FROM customers WHERE id = 8",
    );
    for f in ["to-sqlite.toml", "to-postgres.toml"] {
        run(f);
        let report = verify(f);
        assert_eq!(report.matches("IDENTICAL").count(), 2, "{report}");
    }
    assert_eq!(
        dir.sql(
            "out/shop.db",
            "SELECT full_name, status, channels, born FROM customers WHERE id IN (7, 9) ORDER BY id"
        ),
        vec![
            "Zoë Ångström|active|phone|1950-04-02",
            "Françoise 9|prospect|mail|1950-04-28"
        ]
    );
    assert_eq!(
        dir.sql(
            "out/shop.db",
            "SELECT count(*) FROM orders WHERE customer_id = 1 AND number IN (0, 99)"
        ),
        vec!["1"]
    );
    // 8 zero dates and 6 refused emails, in each pipeline's dead letters.
    for f in ["out/rejects-sqlite.jsonl", "out/rejects-postgres.jsonl"] {
        let dlq = dir.jsonl(f);
        assert_eq!(dlq.len(), 14, "{f}");
        assert_eq!(
            dlq.iter()
                .filter(|d| d.to_string().contains("zero date"))
                .count(),
            8
        );
    }
    assert_eq!(
        pg.count(
            "target",
            "SELECT count(*) FROM customers WHERE full_name = 'Zoë Ångström' AND balance = 2.59"
        ),
        1
    );
}

#[test]
fn tls_with_a_private_ca_carries_snapshot_and_binlog_and_a_wrong_ca_is_refused() {
    let my = MariaDb::start();
    let ca = my.enable_tls();
    my.sql(
        "legacy",
        "CREATE TABLE t (id int PRIMARY KEY, v varchar(10)); INSERT INTO t VALUES (1, 'a');",
    );
    let dir = Dir::new();
    let url = format!("mysql://tls_user:tls@127.0.0.1:{}/legacy", my.port);
    let write = |tls: &str| {
        dir.write(
            "pipeline.toml",
            format!(
                r#"name = "tls"
[source]
type = "mysql"
url = "{url}"
tables = ["t"]
{tls}

[sink]
type = "sqlite"
path = "target.db"
create_table = true
"#
            ),
        );
    };
    // Without TLS, the user is refused by the server.
    write("");
    let out = run_until_caught_up(&dir);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("refused the user and password"),
        "{}",
        stderr(&out)
    );
    // Another CA: the certificate is not trusted.
    let other_ca = MariaDb::start();
    let wrong = other_ca.enable_tls();
    write(&format!("tls_ca = \"{wrong}\""));
    let out = run_until_caught_up(&dir);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("TLS with MySQL"), "{}", stderr(&out));
    // The right CA: snapshot and binlog over TLS.
    write(&format!("tls_ca = \"{ca}\""));
    catch_up(&dir);
    my.sql(
        "legacy",
        "INSERT INTO t VALUES (2, 'b'); UPDATE t SET v = 'z' WHERE id = 1;",
    );
    catch_up(&dir);
    assert_eq!(
        dir.sql("target.db", "SELECT id, v FROM t ORDER BY id"),
        vec!["1|z", "2|b"]
    );
}
