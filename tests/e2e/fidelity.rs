//! Data fidelity of a live sync on a real PostgreSQL 15 server: key moves
//! keep values PostgreSQL does not send, created tables take the source's
//! types, every value class survives snapshot and change stream into
//! PostgreSQL and SQLite, and the slot is left confirmed and can be
//! dropped.

use std::process::Stdio;

use crate::common::*;
use crate::postgres::{PgServer, run_until_caught_up, signal, spawn_run, verify, wait_for};

/// A pipeline of `name` from `legacy` table(s) into `sink` (TOML lines of
/// `[sink]`), with optional transforms.
fn write_pipeline(
    dir: &Dir,
    pg: &PgServer,
    name: &str,
    tables: &str,
    transforms: &str,
    sink: &str,
) {
    dir.write(
        "pipeline.toml",
        format!(
            r#"name = "{name}"
[source]
type = "postgres"
url = "{src}"
tables = [{tables}]

{transforms}

[sink]
{sink}

[dead_letter]
type = "jsonl"
path = "dlq.jsonl"
"#,
            src = pg.url("legacy"),
        ),
    );
}

fn caught_up(dir: &Dir) -> std::process::Output {
    let out = run_until_caught_up(dir);
    assert!(out.status.success(), "run failed: {}", stderr(&out));
    out
}

fn assert_identical(dir: &Dir) -> String {
    let (same, text) = verify(dir);
    assert!(same, "verify: {text}");
    text
}

const BIG: usize = 10_000;

#[test]
fn key_moves_keep_values_postgres_did_not_send_into_postgres_and_sqlite() {
    let pg = PgServer::start();
    // `big` is stored out of line (EXTERNAL: not compressed) above ~2 kB,
    // and then not sent by PostgreSQL when an update leaves it unchanged.
    pg.exec(
        "legacy",
        &format!(
            "CREATE TABLE t (id bigint PRIMARY KEY, big text, small text, tag text);
             ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL;
             INSERT INTO t SELECT i, CASE WHEN i = 2 THEN repeat('s', 100) ELSE repeat(chr(96 + i::int), {BIG}) END, 'small' || i, 'tag' FROM generate_series(1, 6) i;"
        ),
    );
    let validate = format!(
        "[[transforms]]\nname = \"validate\"\nplugin = \"{}\"\n[transforms.config.fields]\ntag = {{ required = true }}\n",
        plugin("validate").replace('\\', "/")
    );
    let into_pg = Dir::new();
    write_pipeline(
        &into_pg,
        &pg,
        "moves_pg",
        "\"t\"",
        &validate,
        &format!("type = \"postgres\"\nurl = \"{}\"", pg.url("target")),
    );
    let into_sqlite = Dir::new();
    write_pipeline(
        &into_sqlite,
        &pg,
        "moves_sqlite",
        "\"t\"",
        &validate,
        "type = \"sqlite\"\npath = \"out.db\"",
    );
    caught_up(&into_pg);
    caught_up(&into_sqlite);
    // A row the plugins refuse on insert (no tag): its later update cannot
    // find the big value anywhere.
    pg.exec(
        "legacy",
        &format!("INSERT INTO t VALUES (7, repeat('g', {BIG}), 's7', NULL)"),
    );
    caught_up(&into_pg);
    caught_up(&into_sqlite);
    pg.exec(
        "legacy",
        "BEGIN;
         UPDATE t SET id = 11 WHERE id = 1;                       -- big out of line, not sent
         UPDATE t SET id = 12 WHERE id = 2;                       -- big inline, sent
         UPDATE t SET id = 13 WHERE id = 3; UPDATE t SET id = 23 WHERE id = 13;  -- moved twice
         UPDATE t SET id = 14 WHERE id = 4; INSERT INTO t VALUES (4, 'fresh', 'new', 'tag');  -- key re-used
         UPDATE t SET tag = 'x' WHERE id = 5;                      -- plain update, big not sent
         UPDATE t SET tag = 'now' WHERE id = 7;                    -- big not sent, no row in the target
         COMMIT;
         UPDATE t SET id = 15 WHERE id = 5;                        -- moved after an update without big",
    );
    caught_up(&into_pg);
    caught_up(&into_sqlite);
    let expected = vec![
        format!("4|5|new"),
        format!("6|{BIG}|small6"),
        format!("11|{BIG}|small1"),
        "12|100|small2".to_string(),
        format!("14|{BIG}|small4"),
        format!("15|{BIG}|small5"),
        format!("23|{BIG}|small3"),
    ];
    let mut c = pg.client("target");
    let in_pg: Vec<String> = c
        .query(
            "SELECT id::text || '|' || coalesce(length(big)::text, 'NULL') || '|' || small FROM t ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(in_pg, expected);
    let in_sqlite = into_sqlite.sql(
        "out.db",
        "SELECT id || '|' || coalesce(length(big), 'NULL') || '|' || small FROM t ORDER BY id",
    );
    assert_eq!(in_sqlite, expected);
    // The update of row 7 is dead-lettered by the sink with the reason.
    for dir in [&into_pg, &into_sqlite] {
        let refused: Vec<_> = dir
            .jsonl("dlq.jsonl")
            .into_iter()
            .filter(|d| d["stage"] == "sink")
            .collect();
        assert_eq!(refused.len(), 1, "{refused:?}");
        let msg = refused[0]["message"].as_str().unwrap();
        assert!(
            msg.contains("`big`") && msg.contains("did not change"),
            "{msg}"
        );
        // Both sides compared: the refused row is accounted, not missing.
        let text = assert_identical(dir);
        assert!(text.contains("IDENTICAL"), "{text}");
    }
}

/// A value too long for the target column is refused with the server's
/// reason, never cut to fit: a text cast to `varchar(3)` is cut silently,
/// assigned to a `varchar(3)` column it is refused. Snapshot rows, streamed
/// rows and keys alike.
#[test]
fn over_long_values_are_dead_lettered_not_cut_to_fit_the_target_column() {
    let pg = PgServer::start();
    pg.exec(
        "legacy",
        "CREATE TABLE w (id text PRIMARY KEY, code text, bits text, ch text);
         INSERT INTO w VALUES ('a', 'abc', '101', 'ab'), ('b', 'abcdef', '101', 'ab'),
                              ('c', 'abc', '10101', 'ab'), ('d', 'abc', '101', 'abc'),
                              ('eeee', 'abc', '101', 'ab');",
    );
    pg.exec(
        "target",
        "CREATE TABLE w (id varchar(3) PRIMARY KEY, code varchar(3), bits bit(3), ch char(2))",
    );
    let dir = Dir::new();
    write_pipeline(
        &dir,
        &pg,
        "too_long",
        "\"w\"",
        "",
        &format!("type = \"postgres\"\nurl = \"{}\"", pg.url("target")),
    );
    caught_up(&dir);
    // The same through the change stream, and an update that would make a
    // kept row's value too long.
    pg.exec(
        "legacy",
        "INSERT INTO w VALUES ('f', 'xyz', '111', 'xy'), ('g', 'wxyz', '111', 'xy');
         UPDATE w SET code = 'abcd' WHERE id = 'a';",
    );
    caught_up(&dir);
    let rows: Vec<String> = pg
        .client("target")
        .query(
            "SELECT id || '|' || code || '|' || bits::text || '|' || ch FROM w ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, ["a|abc|101|ab", "f|xyz|111|xy"]);
    let refused: Vec<(String, String)> = dir
        .jsonl("dlq.jsonl")
        .into_iter()
        .map(|d| {
            (
                d["record"]["key"].as_str().unwrap_or_default().to_string(),
                d["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let keys: Vec<&str> = refused.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["b", "c", "d", "eeee", "g", "a"], "{refused:?}");
    for (key, message) in &refused {
        let why = match key.as_str() {
            "c" => "bit string length 5 does not match type bit(3)",
            "d" => "value too long for type character(2)",
            _ => "value too long for type character varying(3)",
        };
        assert!(message.contains(why), "{key}: {message}");
    }
}

/// Snapshot batches go into PostgreSQL by `COPY` when their rows are new,
/// with every value class intact (tabs, line breaks, backslashes, `\N` as
/// text, arrays, bytea); a batch that meets keys the target already holds
/// goes by `INSERT ... ON CONFLICT` instead and overwrites them; a table
/// with rules is never copied into (`COPY` would not fire them): it takes
/// plain inserts, and an upsert into it stops at the start with the reason
/// (PostgreSQL refuses `ON CONFLICT` there).
#[test]
fn snapshots_go_in_by_copy_keep_every_value_and_fall_back_over_existing_rows() {
    let pg = PgServer::start();
    pg.exec("legacy", TYPES_DDL);
    for i in 0..50 {
        pg.exec("legacy", &type_rows(1 + 4 * i));
    }
    pg.exec(
        "legacy",
        "CREATE TABLE fresh AS SELECT * FROM v; ALTER TABLE fresh ADD PRIMARY KEY (id);
         CREATE TABLE ruled (id bigint PRIMARY KEY, note text);
         INSERT INTO ruled SELECT i, 'n' || i FROM generate_series(1, 150) i;",
    );
    // The target: `v` already holds some keys (stale values); every table
    // notes the statements that wrote it; `ruled` has a rule.
    pg.exec("target", TYPES_DDL);
    pg.exec(
        "target",
        "CREATE TABLE fresh AS SELECT * FROM v; ALTER TABLE fresh ADD PRIMARY KEY (id);
         CREATE TABLE ruled (id bigint PRIMARY KEY, note text);
         CREATE TABLE audit (id bigint);
         CREATE RULE log AS ON INSERT TO ruled DO ALSO INSERT INTO audit VALUES (NEW.id);
         INSERT INTO v (id, t) SELECT i, 'stale' FROM generate_series(1, 200, 7) i;
         CREATE TABLE seen (tbl text, statement text);
         CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN INSERT INTO seen VALUES (TG_TABLE_NAME, split_part(current_query(), ' ', 1)); RETURN NULL; END $$;
         CREATE TRIGGER n AFTER INSERT ON v FOR EACH STATEMENT EXECUTE FUNCTION note();
         CREATE TRIGGER n AFTER INSERT ON fresh FOR EACH STATEMENT EXECUTE FUNCTION note();
         CREATE TRIGGER n AFTER INSERT ON ruled FOR EACH STATEMENT EXECUTE FUNCTION note();",
    );
    let dir = Dir::new();
    write_pipeline(
        &dir,
        &pg,
        "copy_in",
        // Batches of 256: `fresh` (200 rows) in one copy; then `v`, whose
        // second batch tries a copy that meets the stale keys.
        "\"fresh\", \"v\"",
        "",
        &format!("type = \"postgres\"\nurl = \"{}\"", pg.url("target")),
    );
    caught_up(&dir);
    let ruled = Dir::new();
    write_pipeline(
        &ruled,
        &pg,
        "ruled_upsert",
        "\"ruled\"",
        "",
        &format!("type = \"postgres\"\nurl = \"{}\"", pg.url("target")),
    );
    let out = run_until_caught_up(&ruled);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("table `public.ruled` has INSERT or UPDATE rules")
            && stderr(&out).contains("mode = \"insert\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(pg.count("target", "SELECT count(*) FROM ruled"), 0);
    let ruled = Dir::new();
    write_pipeline(
        &ruled,
        &pg,
        "ruled_insert",
        "\"ruled\"",
        "",
        &format!(
            "type = \"postgres\"\nurl = \"{}\"\nmode = \"insert\"",
            pg.url("target")
        ),
    );
    caught_up(&ruled);
    assert!(ruled.jsonl("dlq.jsonl").is_empty());
    let text_of = |db: &str, table: &str| -> Vec<String> {
        pg.client(db)
            .query(
                &format!("SELECT {table}::text FROM {table} ORDER BY id"),
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    for table in ["v", "fresh", "ruled"] {
        let source = text_of("legacy", table);
        assert_eq!(source.len(), if table == "ruled" { 150 } else { 200 });
        assert_eq!(text_of("target", table), source, "{table}");
    }
    let seen = |table: &str| -> Vec<String> {
        pg.client("target")
            .query(
                "SELECT DISTINCT statement FROM seen WHERE tbl = $1 ORDER BY 1",
                &[&table],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    assert_eq!(seen("fresh"), ["COPY"]);
    assert_eq!(seen("v"), ["INSERT"]);
    assert_eq!(seen("ruled"), ["INSERT"]);
    assert_eq!(pg.count("target", "SELECT count(*) FROM audit"), 150);
    assert!(dir.jsonl("dlq.jsonl").is_empty());
}

/// Every built-in type class, with edge values; `{id}` is the key.
const TYPES_DDL: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE v (
  id bigint PRIMARY KEY, i2 smallint, i4 integer, n numeric(12,2), nbig numeric, f8 double precision,
  f4 real, t text, vc varchar(20), b bytea, bo boolean, d date, ts timestamp, tstz timestamptz,
  tm time, tmtz timetz, iv interval, u uuid, j json, jb jsonb, arr integer[], tarr text[],
  e mood, dom posint, big text);
ALTER TABLE v ALTER COLUMN big SET STORAGE EXTERNAL;";

fn type_rows(from: i64) -> String {
    let a = from;
    let (b, c, d) = (from + 1, from + 2, from + 3);
    format!(
        "INSERT INTO v VALUES
 ({a}, -32768, 2147483647, 1234567890.12, 123456789012345678901234567890123456789.123456789, 1.7976931348623157e308,
  3.4e38, E'tab\\tCR\\rLF\\nU+2028\\u2028 \\\\N', '', '\\x00ff10', true, '0044-03-15 BC', '2024-02-29 23:59:59.999999',
  'infinity', '24:00:00', '12:00:00+05:30', '1 year 2 mons -3 days 04:05:06.7', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{{\"n\": 123456789012345678901234567890, \"x\": null}}', '{{\"b\": [1, 2], \"a\": \"é\"}}', '{{1,NULL,3}}', '{{\"a,b\",\"\",NULL}}',
  'happy', 7, repeat('B', 10000)),
 ({b}, 0, 0, 0.00, 'NaN', 'Infinity', '-Infinity', '\\N', NULL, '\\x', false, 'infinity', '-infinity',
  '-infinity', '00:00:00', '00:00:00-12', '0', '00000000-0000-0000-0000-000000000000',
  'null', 'null', '{{}}', '{{}}', 'sad', 1, 'short'),
 ({c}, NULL, NULL, NULL, NULL, 'NaN', '-0', '', 'x', NULL, NULL, NULL, NULL,
  '1900-01-01 00:00:00+00', NULL, NULL, NULL, NULL, '[]', '{{}}', NULL, NULL, NULL, NULL, NULL),
 ({d}, 1, -1, -0.01, -99999999999999999999999999999999999999.9, 5e-324, 1.17549435e-38, 'ünïcødé ✓ 😀', 'varchar', '\\xdeadbeef', true,
  '2000-01-01', '1970-01-01 00:00:00', '2262-04-11 23:47:16.854775+00', '23:59:59.999999', '23:59:59+14', '-178000000 years',
  'ffffffff-ffff-ffff-ffff-ffffffffffff', '[1.0, 1e400]', '{{\"big\": 1e400}}', '{{-2147483648}}', '{{\"{{}}\",\"\\\\\"}}',
  'ok', 2147483647, repeat('x', 3000));"
    )
}

#[test]
fn every_value_class_survives_snapshot_and_change_stream_into_postgres_and_sqlite() {
    let pg = PgServer::start();
    pg.exec("legacy", TYPES_DDL);
    pg.exec("legacy", &type_rows(1));
    pg.exec("postgres", "CREATE DATABASE target2");
    // A target table created beforehand, with the source's own types.
    pg.exec("target2", TYPES_DDL);
    let sinks = [
        (
            "types_auto",
            format!("type = \"postgres\"\nurl = \"{}\"", pg.url("target")),
        ),
        (
            "types_pre",
            format!("type = \"postgres\"\nurl = \"{}\"", pg.url("target2")),
        ),
        (
            "types_sqlite",
            "type = \"sqlite\"\npath = \"out.db\"".to_string(),
        ),
    ];
    let dirs: Vec<Dir> = sinks
        .iter()
        .map(|(name, sink)| {
            let d = Dir::new();
            write_pipeline(&d, &pg, name, "\"v\"", "", sink);
            d
        })
        .collect();
    for d in &dirs {
        caught_up(d);
    }
    // The same values again through the change stream, then updates that
    // leave the big value out, a key move, and a delete.
    pg.exec("legacy", &type_rows(101));
    pg.exec(
        "legacy",
        "UPDATE v SET t = 'changed', n = n + 1 WHERE id IN (1, 101);
         UPDATE v SET id = 200 WHERE id = 102;
         UPDATE v SET id = 201, i4 = 5 WHERE id = 101;
         DELETE FROM v WHERE id = 103;",
    );
    for d in &dirs {
        caught_up(d);
        let text = assert_identical(d);
        assert!(
            text.contains("source 7") || text.contains("expected 7"),
            "{text}"
        );
    }
    // The auto-created table took the source's types, not the first values'.
    let mut c = pg.client("target");
    let types: Vec<String> = c
        .query(
            "SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = 'v'::regclass AND attnum > 0 ORDER BY attnum",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        types,
        [
            "id bigint",
            "i2 smallint",
            "i4 integer",
            "n numeric(12,2)",
            "nbig numeric",
            "f8 double precision",
            "f4 real",
            "t text",
            "vc character varying(20)",
            "b bytea",
            "bo boolean",
            "d date",
            "ts timestamp without time zone",
            "tstz timestamp with time zone",
            "tm time without time zone",
            "tmtz time with time zone",
            "iv interval",
            "u uuid",
            "j json",
            "jb jsonb",
            "arr integer[]",
            "tarr text[]",
            "e text",
            "dom integer",
            "big text",
        ]
    );
    // And the values are the source's, compared as text by PostgreSQL.
    let text_of = |db: &str| -> Vec<String> {
        pg.client(db)
            .query("SELECT v::text FROM v ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let source = text_of("legacy");
    assert_eq!(text_of("target"), source);
    assert_eq!(text_of("target2"), source);
    // SQLite: the documented affinities.
    let sqlite_types = dirs[2].sql(
        "out.db",
        "SELECT name || ' ' || type FROM pragma_table_info('v') WHERE name IN ('id', 'n', 'f8', 'b', 'bo', 'tstz', 'e')",
    );
    assert_eq!(
        sqlite_types,
        [
            "id INTEGER",
            "n TEXT",
            "f8 REAL",
            "b BLOB",
            "bo INTEGER",
            "tstz TEXT",
            "e TEXT"
        ]
    );
    assert_eq!(
        dirs[2].sql("out.db", "SELECT n || '|' || nbig FROM v WHERE id = 1"),
        ["1234567891.12|123456789012345678901234567890123456789.123456789"]
    );
}

#[test]
fn the_slot_is_confirmed_at_exit_lag_reads_zero_and_a_finished_migration_drops_it() {
    let pg = PgServer::start();
    pg.exec(
        "legacy",
        "CREATE TABLE c (id bigint PRIMARY KEY, name text);
         INSERT INTO c SELECT i, 'n' || i FROM generate_series(1, 1000) i;",
    );
    let dir = Dir::new();
    // No password in the url: PGPASSWORD gives it, as to psql.
    let url = format!("postgres://postgres@127.0.0.1:{}/legacy", pg.port);
    dir.write(
        "pipeline.toml",
        format!(
            "name = \"slots\"\n[source]\ntype = \"postgres\"\nurl = \"{url}\"\ntables = [\"c\"]\n\n[sink]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n"
        ),
    );
    let run = |args: &[&str]| {
        sluice()
            .env("PGPASSWORD", "postgres")
            .env("SLUICE_LOG", "info")
            .arg("run")
            .arg(dir.path("pipeline.toml"))
            .args(args)
            .args(["--no-progress", "--summary-json"])
            .arg(dir.path("summary.json"))
            .output()
            .unwrap()
    };
    let out = run(&["--until-caught-up"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Log lines to a pipe carry no colour codes.
    assert!(!stderr(&out).contains('\u{1b}'), "{}", stderr(&out));
    // Changes, with WAL written meanwhile by another database.
    pg.exec(
        "postgres",
        "CREATE TABLE noise AS SELECT i, md5(i::text) FROM generate_series(1, 100000) i",
    );
    let before: String = pg
        .client("legacy")
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .unwrap()
        .get(0);
    pg.exec(
        "legacy",
        "UPDATE c SET id = 5000 WHERE id = 5; DELETE FROM c WHERE id = 6; UPDATE c SET name = 'x' WHERE id = 7;",
    );
    let out = run(&["--until-caught-up"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["lag"]["bytes"], 0, "{summary}");
    // The slot has what the target committed: the server keeps no WAL
    // for changes already written.
    let confirmed_past_the_changes: bool = pg
        .client("legacy")
        .query_one(
            "SELECT confirmed_flush_lsn > $1::text::pg_lsn FROM pg_replication_slots WHERE slot_name = 'sluice_slots'",
            &[&before],
        )
        .unwrap()
        .get(0);
    assert!(confirmed_past_the_changes);
    // A change stream into JSON lines keeps operations and old keys.
    let lines = dir.jsonl("out.jsonl");
    let ops: Vec<&str> = lines[1000..]
        .iter()
        .map(|l| l["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["update", "delete", "update"], "{lines:?}");
    assert_eq!(lines[1001]["key"], 6);
    assert!(lines[1000]["headers"]["sluice-old-key"].is_string());

    // A second run while one streams: refused by the run lock with the
    // same state directory, and by the slot from another one (another
    // machine), told plainly, with the holder.
    let elsewhere = Dir::new();
    elsewhere.write(
        "pipeline.toml",
        std::fs::read_to_string(dir.path("pipeline.toml"))
            .unwrap()
            .replace(
                "path = \"out.jsonl\"",
                &format!(
                    "path = {:?}",
                    elsewhere.path("out.jsonl").display().to_string()
                ),
            ),
    );
    let mut first = sluice()
        .env("PGPASSWORD", "postgres")
        .arg("run")
        .arg(dir.path("pipeline.toml"))
        .arg("--no-progress")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(30, "the first run to hold the slot", || {
        pg.count(
            "legacy",
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'sluice_slots' AND active",
        ) == 1
    });
    let second = run(&[]);
    assert!(!second.status.success());
    let err = stderr(&second);
    assert!(err.contains("already running"), "{err}");
    let second = sluice()
        .env("PGPASSWORD", "postgres")
        .arg("run")
        .arg(elsewhere.path("pipeline.toml"))
        .arg("--no-progress")
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = stderr(&second);
    assert!(
        err.contains("another run of this pipeline") && err.contains("server process"),
        "{err}"
    );
    assert!(!err.contains("Transient"), "{err}");
    signal(&first, libc::SIGTERM);
    assert!(first.wait().unwrap().success());

    // The end of the migration: list, then drop the slot and publication.
    let list = sluice()
        .env("PGPASSWORD", "postgres")
        .args(["slot", "list"])
        .arg(dir.path("pipeline.toml"))
        .output()
        .unwrap();
    assert!(list.status.success(), "{}", stderr(&list));
    assert!(
        stdout(&list).contains("sluice_slots  (this pipeline)"),
        "{}",
        stdout(&list)
    );
    let dropped = sluice()
        .env("PGPASSWORD", "postgres")
        .args(["slot", "drop", "--publication"])
        .arg(dir.path("pipeline.toml"))
        .output()
        .unwrap();
    assert!(dropped.status.success(), "{}", stderr(&dropped));
    assert_eq!(
        pg.count("legacy", "SELECT count(*) FROM pg_replication_slots"),
        0
    );
    assert_eq!(pg.count("legacy", "SELECT count(*) FROM pg_publication"), 0);
}

#[test]
fn a_long_run_confirms_committed_changes_within_seconds() {
    let pg = PgServer::start();
    pg.exec(
        "legacy",
        "CREATE TABLE c (id bigint PRIMARY KEY, name text); INSERT INTO c VALUES (1, 'a');",
    );
    let dir = Dir::new();
    write_pipeline(
        &dir,
        &pg,
        "confirm",
        "\"c\"",
        "",
        "type = \"sqlite\"\npath = \"out.db\"",
    );
    let mut child = spawn_run(&dir);
    wait_for(60, "the snapshot", || {
        std::fs::metadata(dir.path("out.db")).is_ok()
            && dir.sql(
                "out.db",
                "SELECT count(*) FROM sqlite_master WHERE name = 'c'",
            ) == ["1"]
            && dir.sql("out.db", "SELECT count(*) FROM c") == ["1"]
    });
    let lsn: String = pg
        .client("legacy")
        .query_one(
            "INSERT INTO c VALUES (2, 'b') RETURNING pg_current_wal_lsn()::text",
            &[],
        )
        .unwrap()
        .get(0);
    // Confirmed while streaming, well before wal_sender_timeout / 2 (30 s).
    wait_for(10, "the slot to confirm the insert", || {
        pg.count(
            "legacy",
            &format!(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'sluice_confirm' AND confirmed_flush_lsn >= '{lsn}'::pg_lsn"
            ),
        ) == 1
    });
    signal(&child, libc::SIGTERM);
    assert!(child.wait().unwrap().success());
}

#[test]
fn tls_to_postgres_for_source_sink_and_verify_with_every_sslmode() {
    let pg = PgServer::start();
    let ca = pg.enable_tls();
    pg.exec(
        "legacy",
        "CREATE TABLE c (id bigint PRIMARY KEY, name text);
         INSERT INTO c SELECT i, 'n' || i FROM generate_series(1, 100) i;",
    );
    let url = |host: &str, db: &str, mode: &str| {
        format!(
            "postgres://tls_user:tls@{host}:{}/{db}?sslmode={mode}&sslrootcert={ca}",
            pg.port
        )
    };
    let dir = Dir::new();
    let write = |source: &str| {
        dir.write(
            "pipeline.toml",
            format!(
                "name = \"tls\"\n[source]\ntype = \"postgres\"\nurl = \"{source}\"\ntables = [\"c\"]\n\n[sink]\ntype = \"postgres\"\nurl = \"{}\"\n",
                url("127.0.0.1", "target", "require")
            ),
        );
    };
    // The certificate names `localhost`: verify-full there, snapshot and
    // change stream (the replication connection too) over TLS.
    write(&url("localhost", "legacy", "verify-full"));
    caught_up(&dir);
    pg.exec(
        "legacy",
        "UPDATE c SET name = 'changed' WHERE id < 10; DELETE FROM c WHERE id = 50;",
    );
    caught_up(&dir);
    assert_identical(&dir);
    assert_eq!(
        pg.count("target", "SELECT count(*) FROM c WHERE name = 'changed'"),
        9
    );
    let check = |source: &str| {
        write(source);
        let out = dir.check();
        (out.status.success(), stderr(&out) + &stdout(&out))
    };
    // verify-full refuses a certificate for another name; verify-ca takes it.
    let (ok, text) = check(&url("127.0.0.1", "legacy", "verify-full"));
    assert!(!ok && text.contains("certificate"), "{text}");
    let (ok, text) = check(&url("127.0.0.1", "legacy", "verify-ca"));
    assert!(ok, "{text}");
    // A CA that did not sign the server's certificate.
    let (ok, text) = check(
        &url("localhost", "legacy", "verify-full")
            .replace(&ca, "/etc/ssl/certs/ca-certificates.crt"),
    );
    assert!(!ok && text.contains("certificate"), "{text}");
    // The server refuses this user without TLS, and says so.
    let (ok, text) = check(&url("127.0.0.1", "legacy", "disable"));
    assert!(!ok && text.contains("no encryption"), "{text}");
}
