//! `sluice verify` by key ranges on real PostgreSQL servers (and a SQLite
//! target): the first verify compares every range, later ones only the
//! ranges whose checksums changed, and every kind of difference is still
//! found; tables that cannot be cut into ranges are compared in full;
//! an interrupted verify goes on where it was.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::Value as Json;

use crate::common::*;
use crate::postgres::{PgServer, catch_up, email_pipeline, seed_customers, signal};

/// `sluice verify` with `args`; exit status and the JSON report's tables
/// by name.
fn verify_json(dir: &Dir, args: &[&str]) -> (bool, Json, String) {
    let json = dir.path("verify.json");
    let _ = std::fs::remove_file(&json);
    let out = sluice()
        .arg("verify")
        .arg(dir.path("pipeline.toml"))
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    let report: Json = serde_json::from_str(
        &std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("no report ({e}): {text}")),
    )
    .unwrap();
    let mut tables = serde_json::Map::new();
    for t in report["tables"].as_array().unwrap() {
        tables.insert(t["table"].as_str().unwrap().to_string(), t.clone());
    }
    (out.status.success(), Json::Object(tables), text)
}

/// The counts two comparisons of the same data must agree on.
fn counts(t: &Json) -> Vec<(String, Json)> {
    [
        "source_rows",
        "expected",
        "target_rows",
        "matching",
        "dead_lettered",
        "dropped",
        "missing",
        "extra",
        "different",
        "expected_checksum",
    ]
    .iter()
    .map(|k| (k.to_string(), t[*k].clone()))
    .collect()
}

#[test]
fn later_verifies_recheck_only_changed_ranges_and_still_find_every_difference() {
    let pg = PgServer::start();
    // 35 000 rows: ranges (..5000], (5000..10000], ... (30000..).
    seed_customers(&pg, 35_000);
    let dir = Dir::new();
    email_pipeline(
        &dir,
        &pg,
        "ranges",
        "{ required = true, max_length = 200 }",
        "",
    );
    catch_up(&dir);

    let (same, first, text) = verify_json(&dir, &[]);
    assert!(same, "{text}");
    let t = &first["public.customers"];
    assert_eq!(t["method"], "ranges", "{text}");
    assert_eq!(t["ranges"], 7, "{text}");
    assert_eq!(t["ranges_rechecked"], 7, "{text}");
    assert_eq!(t["rows_rechecked"], 35_000, "{text}");
    assert_eq!(t["source_rows"], 35_000, "{text}");
    // Every 100th customer has no email: the plugin rejects it.
    assert_eq!(t["dead_lettered"], 350, "{text}");
    assert_eq!(t["matching"], 34_650, "{text}");
    assert!(text.contains("7 ranges, 7 compared row by row"), "{text}");
    let baseline = dir.path(".sluice/ranges.verify.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&baseline).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the baseline holds key values");
    }

    // Nothing changed: nothing is read row by row, and the report is the
    // same, checksums included.
    let (same, second, text) = verify_json(&dir, &[]);
    assert!(same, "{text}");
    let t2 = &second["public.customers"];
    assert_eq!(t2["ranges_rechecked"], 0, "{text}");
    assert_eq!(t2["rows_rechecked"], 0, "{text}");
    assert_eq!(counts(t2), counts(t));
    // The full comparison, in one snapshot, agrees.
    let (same, full, text) = verify_json(&dir, &["--full"]);
    assert!(same, "{text}");
    assert_eq!(full["public.customers"]["method"], "full");
    assert_eq!(counts(&full["public.customers"]), counts(t));

    // Differences in the first and the last range only: a row changed and
    // one deleted by hand in the target, one added there, and a source
    // change the sync has not carried.
    pg.exec(
        "target",
        "UPDATE customers SET name = 'drift' WHERE id = 5;
         DELETE FROM customers WHERE id = 7;
         INSERT INTO customers (id, name, email) VALUES (1000000, 'stray', 's@x.org');",
    );
    pg.exec(
        "legacy",
        "UPDATE customers SET name = 'moved on' WHERE id = 34999",
    );
    let (same, third, text) = verify_json(&dir, &["--samples", "10"]);
    assert!(!same, "{text}");
    let t3 = &third["public.customers"];
    assert_eq!(t3["ranges_rechecked"], 2, "{text}");
    assert_eq!(t3["rows_rechecked"], 10_000, "{text}");
    assert_eq!(
        (&t3["different"], &t3["missing"], &t3["extra"]),
        (&Json::from(2), &Json::from(1), &Json::from(1)),
        "{text}"
    );
    for sample in [
        "different key 5: name: expected \"name 5\" found \"drift\"",
        "missing  key 7",
        "extra    key 1000000",
        "different key 34999: name: expected \"moved on\" found \"name 34999\"",
    ] {
        assert!(text.contains(sample), "{sample} in {text}");
    }
    let (_, full, text) = verify_json(&dir, &["--full"]);
    assert_eq!(
        counts(&full["public.customers"])[..9],
        counts(t3)[..9],
        "{text}"
    );

    // Repair, then: identical, and only the repaired ranges were read.
    let out = sluice()
        .arg("verify")
        .arg(dir.path("pipeline.toml"))
        .arg("--repair")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (same, fourth, text) = verify_json(&dir, &[]);
    assert!(same, "{text}");
    assert_eq!(fourth["public.customers"]["ranges_rechecked"], 0, "{text}");

    // Rows appended at the end of the key space: the last range grows past
    // its bound and is cut again; only its pieces are read.
    pg.exec(
        "legacy",
        "INSERT INTO customers SELECT i, 'name ' || i, 'u' || i || '@x.org' FROM generate_series(35001, 80000) i",
    );
    catch_up(&dir);
    let (same, fifth, text) = verify_json(&dir, &[]);
    assert!(same, "{text}");
    let t5 = &fifth["public.customers"];
    assert_eq!(t5["ranges"], 16, "{text}");
    assert_eq!(t5["ranges_rechecked"], 10, "{text}");
    assert_eq!(t5["rows_rechecked"], 50_000, "{text}");
    assert_eq!(t5["source_rows"], 80_000, "{text}");

    // Another plugin setting: what the target should hold may differ, so
    // every range is compared again.
    email_pipeline(
        &dir,
        &pg,
        "ranges",
        "{ required = true, max_length = 300 }",
        "",
    );
    let (same, sixth, text) = verify_json(&dir, &[]);
    assert!(same, "{text}");
    assert_eq!(sixth["public.customers"]["ranges_rechecked"], 16, "{text}");

    // A broken baseline file is not trusted: every range again.
    std::fs::write(&baseline, "{ broken").unwrap();
    let (same, seventh, text) = verify_json(&dir, &[]);
    assert!(same, "{text}");
    assert_eq!(
        seventh["public.customers"]["ranges_rechecked"], 16,
        "{text}"
    );
}

#[test]
fn text_keys_and_a_sqlite_target_use_ranges_and_other_keys_are_compared_in_full() {
    let pg = PgServer::start();
    pg.exec(
        "legacy",
        "CREATE TABLE customers (id bigint PRIMARY KEY, name text, joined timestamptz);
         INSERT INTO customers SELECT i, 'name ' || i, timestamptz '2020-01-01' + i * interval '1 minute'
           FROM generate_series(1, 25000) i;
         CREATE TABLE codes (code text PRIMARY KEY, label text);
         INSERT INTO codes SELECT 'k''' || lpad(i::text, 6, '0') || CASE WHEN i % 3 = 0 THEN ' é' ELSE '' END, 'label ' || i
           FROM generate_series(1, 12000) i;
         CREATE TABLE prices (id numeric PRIMARY KEY, amount numeric(12,2));
         INSERT INTO prices SELECT i / 10.0, i FROM generate_series(1, 500) i;",
    );
    let dir = Dir::new();
    dir.write(
        "pipeline.toml",
        format!(
            r#"name = "to_sqlite"
[source]
type = "postgres"
url = "{src}"
tables = ["customers", "codes", "prices"]

[sink]
type = "sqlite"
path = "out/crm.db"
"#,
            src = pg.url("legacy"),
        ),
    );
    catch_up(&dir);
    let (same, first, text) = verify_json(&dir, &[]);
    assert!(same, "{text}");
    assert_eq!(first["customers"]["method"], "ranges", "{text}");
    assert_eq!(first["customers"]["ranges"], 5, "{text}");
    assert_eq!(first["codes"]["method"], "ranges", "{text}");
    assert_eq!(first["codes"]["ranges"], 3, "{text}");
    assert_eq!(first["prices"]["method"], "full", "{text}");
    assert!(
        first["prices"]["full_because"]
            .as_str()
            .unwrap()
            .contains("key column `id` is of type numeric"),
        "{text}"
    );
    assert!(
        text.contains("every row compared: key column `id` is of type numeric"),
        "{text}"
    );

    let (same, second, text) = verify_json(&dir, &[]);
    assert!(same, "{text}");
    assert_eq!(second["customers"]["ranges_rechecked"], 0, "{text}");
    assert_eq!(second["codes"]["ranges_rechecked"], 0, "{text}");
    assert_eq!(counts(&second["codes"]), counts(&first["codes"]));

    // Hand changes in the SQLite file, one per table.
    let db = rusqlite::Connection::open(dir.path("out/crm.db")).unwrap();
    db.execute_batch(
        "UPDATE customers SET name = 'drift' WHERE id = 12345;
         DELETE FROM codes WHERE code = 'k''011999';
         UPDATE prices SET amount = 1 WHERE rowid = 50;",
    )
    .unwrap();
    drop(db);
    let (same, third, text) = verify_json(&dir, &[]);
    assert!(!same, "{text}");
    assert_eq!(third["customers"]["different"], 1, "{text}");
    assert_eq!(third["customers"]["ranges_rechecked"], 1, "{text}");
    assert_eq!(third["codes"]["missing"], 1, "{text}");
    assert_eq!(third["codes"]["ranges_rechecked"], 1, "{text}");
    assert_eq!(third["prices"]["different"], 1, "{text}");
    assert!(text.contains("missing  key k'011999"), "{text}");
}

#[test]
fn an_interrupted_verify_goes_on_with_the_ranges_it_had_compared() {
    let pg = PgServer::start();
    for db in ["legacy", "target"] {
        pg.exec(
            db,
            "CREATE TABLE events (id bigint PRIMARY KEY, kind text, body text, at timestamptz);
             INSERT INTO events SELECT i, 'k' || (i % 13), md5(i::text) || repeat('x', i % 50), timestamptz '2021-06-01' + i * interval '1 second'
               FROM generate_series(1, 600000) i;",
        );
    }
    let dir = Dir::new();
    dir.write(
        "pipeline.toml",
        format!(
            r#"name = "resume"
[source]
type = "postgres"
url = "{src}"
tables = ["events"]

[sink]
type = "postgres"
url = "{dst}"
"#,
            src = pg.url("legacy"),
            dst = pg.url("target"),
        ),
    );
    // Killed (no chance to clean up) once it has said how far it got: the
    // ranges compared by then are kept.
    let mut child = sluice()
        .env("SLUICE_LOG", "info")
        .arg("verify")
        .arg(dir.path("pipeline.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("verify ended before it reported progress: {seen:?}");
        };
        let progress = line.contains("verify: comparing ranges");
        seen.push(line);
        if progress {
            break;
        }
    }
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();

    let (same, report, text) = verify_json(&dir, &[]);
    assert!(same, "{text}");
    let t = &report["public.events"];
    assert_eq!(t["ranges"], 120, "{text}");
    let rechecked = t["ranges_rechecked"].as_u64().unwrap();
    assert!(
        rechecked < 120,
        "the second verify compared {rechecked} of 120 ranges again: {text}"
    );
    assert_eq!(t["matching"], 600_000, "{text}");
}
