use std::borrow::Cow;

use super::*;
use crate::conventions::{KEY_HEADER, TRUNCATE_HEADER};
use crate::sinks::test_support::write_checked;

fn rec(id: i64, name: &str) -> Record<'static> {
    let mut r = Record {
        stream: "people".into(),
        ..Default::default()
    };
    r.set("id", Value::Int(id));
    r.set("name", Value::Text(Cow::Owned(name.to_string())));
    r
}

fn sink(dir: &tempfile::TempDir, toml_extra: &str) -> SqliteSink {
    let path = dir.path().join("out.db");
    let cfg: SqliteSinkConfig = toml::from_str(&format!(
        "path = {:?}\n{toml_extra}",
        path.display().to_string()
    ))
    .expect("cfg");
    let mut s = SqliteSink::new(cfg).expect("sink");
    s.open(None).expect("open");
    s
}

fn rows(dir: &tempfile::TempDir, sql: &str) -> Vec<String> {
    let conn = Connection::open(dir.path().join("out.db")).expect("open");
    let mut stmt = conn.prepare(sql).expect("prepare");
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

#[test]
fn creates_the_table_and_upserts_by_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = sink(&dir, "key = [\"id\"]");
    assert_eq!(
        write_checked(&mut s, &[rec(1, "a"), rec(2, "b")])
            .expect("write")
            .written,
        2
    );
    write_checked(&mut s, &[rec(1, "A")]).expect("repeat absorbed");
    assert_eq!(
        rows(&dir, "SELECT id || name FROM people ORDER BY id"),
        ["1A", "2b"]
    );
}

#[test]
fn deletes_by_key_and_adds_columns_for_new_fields() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = sink(&dir, "key = [\"id\"]");
    write_checked(&mut s, &[rec(1, "a"), rec(2, "b")]).expect("write");
    let mut del = rec(1, "");
    del.op = Operation::Delete;
    let mut wider = rec(3, "c");
    wider.set("email", Value::Text("c@x.io".into()));
    write_checked(&mut s, &[del, wider]).expect("write");
    assert_eq!(
        rows(
            &dir,
            "SELECT id || coalesce(email, '-') FROM people ORDER BY id"
        ),
        ["2-", "3c@x.io"]
    );
}

#[test]
fn refused_records_are_returned_and_the_rest_committed() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let conn = Connection::open(dir.path().join("out.db")).expect("open");
        conn.execute_batch("CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT NOT NULL CHECK (length(name) > 0))").expect("ddl");
    }
    let mut s = sink(&dir, "key = [\"id\"]");
    let mut no_key = rec(0, "x");
    no_key.remove("id");
    let c = write_checked(&mut s, &[rec(1, "a"), rec(2, ""), no_key, rec(3, "c")]).expect("write");
    assert_eq!(c.written, 2);
    assert_eq!(c.refused.len(), 2);
    assert_eq!(c.refused[0].index, 1);
    assert!(
        c.refused[0].reason.contains("CHECK constraint failed"),
        "{}",
        c.refused[0].reason
    );
    assert_eq!(
        c.refused[1],
        crate::sinks::Refused::new(2, "key field `id` is missing or null".to_string())
    );
    assert_eq!(
        rows(&dir, "SELECT name FROM people ORDER BY id"),
        ["a", "c"]
    );
}

#[test]
fn upsert_into_a_table_without_a_unique_key_is_refused_up_front() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let conn = Connection::open(dir.path().join("out.db")).expect("open");
        conn.execute_batch("CREATE TABLE people(id INTEGER, name TEXT)")
            .expect("ddl");
    }
    let mut s = sink(&dir, "key = [\"id\"]");
    let err = write_checked(&mut s, &[rec(1, "a")])
        .expect_err("no unique key")
        .to_string();
    assert!(
        err.contains("table `people` has no PRIMARY KEY or UNIQUE index on (id)"),
        "{err}"
    );
    assert!(
        SqliteSink::new(toml::from_str("path = \"x\"\nmode = \"upsert\"").expect("cfg")).is_err()
    );
}

#[test]
fn a_source_truncate_empties_the_table_and_a_key_change_moves_the_row() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = sink(&dir, "key = [\"id\"]");
    write_checked(&mut s, &[rec(1, "a"), rec(2, "b")]).expect("write");
    let mut moved = rec(9, "b2");
    moved.op = Operation::Update;
    moved
        .headers
        .push((OLD_KEY_HEADER.into(), br#"{"id":2}"#.to_vec().into()));
    write_checked(&mut s, &[moved]).expect("write");
    assert_eq!(
        rows(&dir, "SELECT id || name FROM people ORDER BY id"),
        vec!["1a", "9b2"]
    );
    let mut truncate = Record {
        op: Operation::Delete,
        stream: "people".into(),
        ..Default::default()
    };
    truncate
        .headers
        .push((TRUNCATE_HEADER.into(), b"1".to_vec().into()));
    let c = write_checked(&mut s, &[truncate, rec(3, "c")]).expect("write");
    assert!(c.refused.is_empty(), "{:?}", c.refused);
    assert_eq!(rows(&dir, "SELECT id || name FROM people"), vec!["3c"]);
}

#[test]
fn without_a_configured_key_the_key_the_source_names_is_used() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = sink(&dir, "");
    let keyed = |mut r: Record<'static>, op: Operation| {
        r.op = op;
        r.headers.push((KEY_HEADER.into(), b"id".to_vec().into()));
        r
    };
    write_checked(
        &mut s,
        &[
            keyed(rec(1, "a"), Operation::Snapshot),
            keyed(rec(2, "b"), Operation::Snapshot),
            keyed(rec(1, "a2"), Operation::Update),
        ],
    )
    .expect("write");
    let mut moved = keyed(rec(9, "b2"), Operation::Update);
    moved
        .headers
        .push((OLD_KEY_HEADER.into(), br#"{"id":2}"#.to_vec().into()));
    let mut gone = keyed(Record::default(), Operation::Delete);
    gone.stream = "people".into();
    gone.set("id", Value::Int(1));
    let c = write_checked(&mut s, &[moved, gone]).expect("write");
    assert!(c.refused.is_empty(), "{:?}", c.refused);
    assert_eq!(
        rows(&dir, "SELECT id || name FROM people ORDER BY id"),
        vec!["9b2"]
    );
    // The table was created with the source's key as its primary key.
    assert_eq!(
        rows(
            &dir,
            "SELECT name FROM pragma_table_info('people') WHERE pk = 1"
        ),
        vec!["id"]
    );
    // Records without a key, and no key configured: plain inserts.
    let mut other = rec(5, "x");
    other.stream = "log".into();
    write_checked(&mut s, &[other.clone(), other]).expect("write");
    assert_eq!(rows(&dir, "SELECT count(*) || '' FROM log"), vec!["2"]);
}

/// An update of `id` that PostgreSQL sent without the unchanged `big`.
fn update_without_big(id: i64, name: &str, old_id: Option<i64>) -> Record<'static> {
    let mut r = rec(id, name);
    r.op = Operation::Update;
    r.headers.push((
        crate::conventions::UNCHANGED_HEADER.into(),
        br#"["big"]"#.to_vec().into(),
    ));
    if let Some(old) = old_id {
        r.headers.push((
            OLD_KEY_HEADER.into(),
            format!(r#"{{"id":{old}}}"#).into_bytes().into(),
        ));
    }
    r
}

#[test]
fn a_moved_key_keeps_the_values_the_source_did_not_send_even_when_moved_twice_or_re_used() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = sink(&dir, "key = [\"id\"]");
    let mut first = rec(1, "a");
    first.set("big", Value::Text("x".repeat(10_000).into()));
    let mut other = rec(5, "e");
    other.set("big", Value::Text("five".into()));
    write_checked(&mut s, &[first, other]).expect("write");
    // 1 → 2 → 3 in one batch, then 1 re-used by a new row, and 5 moved
    // onto a key whose stale row must not survive.
    let mut re_used = rec(1, "new");
    re_used.set("big", Value::Text("fresh".into()));
    let mut stale = rec(7, "stale");
    stale.set("big", Value::Null);
    write_checked(&mut s, &[stale]).expect("write");
    let c = write_checked(
        &mut s,
        &[
            update_without_big(2, "b", Some(1)),
            update_without_big(3, "c", Some(2)),
            re_used,
            update_without_big(7, "moved", Some(5)),
        ],
    )
    .expect("write");
    assert!(c.refused.is_empty(), "{:?}", c.refused);
    assert_eq!(
        rows(
            &dir,
            "SELECT id || ':' || name || ':' || coalesce(length(big) || '', 'NULL') FROM people ORDER BY id"
        ),
        vec!["1:new:5", "3:c:10000", "7:moved:4"]
    );
}

#[test]
fn unchanged_values_without_a_row_to_keep_them_from_are_refused_not_nulled() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = sink(&dir, "key = [\"id\"]");
    let mut kept = rec(1, "a");
    kept.set("big", Value::Text("x".into()));
    write_checked(&mut s, &[kept]).expect("write");
    let c = write_checked(
        &mut s,
        &[
            update_without_big(1, "a2", None),
            update_without_big(4, "never written", None),
            update_without_big(6, "moved from nothing", Some(40)),
        ],
    )
    .expect("write");
    let refused: Vec<usize> = c.refused.iter().map(|r| r.index).collect();
    assert_eq!(refused, vec![1, 2]);
    assert!(
        c.refused[0].reason.contains("`big`")
            && c.refused[0].reason.contains("no row under this key"),
        "{}",
        c.refused[0].reason
    );
    assert!(
        c.refused[1].reason.contains("the old key"),
        "{}",
        c.refused[1].reason
    );
    assert_eq!(
        rows(&dir, "SELECT id || name || big FROM people ORDER BY id"),
        vec!["1a2x"]
    );
}

#[test]
fn created_columns_take_the_types_the_source_declares() {
    use crate::declared_types::DeclaredColumn;
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = sink(&dir, "key = [\"id\"]");
    let types = Arc::new(DeclaredTypes::default());
    let col = |name: &str, ty: &str| DeclaredColumn {
        name: name.into(),
        sql_type: ty.into(),
        source_type: None,
    };
    types.declare(
        "people",
        vec![
            col("id", "bigint"),
            col("name", "text"),
            col("total", "numeric(12,2)"),
            col("seen", "timestamp with time zone"),
            col("score", "double precision"),
        ],
    );
    s.use_declared_types(types);
    // First values that would mislead a guess: null, and `infinity` text.
    let mut r = rec(1, "a");
    r.set("total", Value::Null);
    r.set("seen", Value::Text("infinity".into()));
    r.set("score", Value::Null);
    r.set("extra", Value::Int(3));
    write_checked(&mut s, &[r]).expect("write");
    assert_eq!(
        rows(
            &dir,
            "SELECT name || ' ' || type FROM pragma_table_info('people') ORDER BY cid"
        ),
        vec![
            "id INTEGER",
            "name TEXT",
            "total TEXT",
            "seen TEXT",
            "score REAL",
            "extra INTEGER"
        ]
    );
}

#[test]
fn field_names_that_collide_or_cannot_be_columns_are_refused_not_fatal() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = sink(&dir, "key = [\"id\"]");
    let mut first = rec(1, "a");
    first.set("email", Value::Text("a@x".into()));
    write_checked(&mut s, &[first]).expect("write");
    // `Email` is the column `email` in SQLite.
    let mut other_case = rec(2, "b");
    other_case.set("Email", Value::Text("b@x".into()));
    let mut nul = rec(3, "c");
    nul.set("bad\0name", Value::Int(1));
    let mut both = rec(4, "d");
    both.set("note", Value::Int(1));
    both.set("NOTE", Value::Int(2));
    let c = write_checked(&mut s, &[other_case, nul, both, rec(5, "e")])
        .expect("the batch is written, not failed");
    let refused: Vec<usize> = c.refused.iter().map(|r| r.index).collect();
    assert_eq!(refused, vec![1, 2], "{:?}", c.refused);
    assert_eq!(c.written, 2);
    assert_eq!(
        rows(
            &dir,
            "SELECT id || name || coalesce(email, '-') FROM people ORDER BY id"
        ),
        vec!["1aa@x", "2bb@x", "5e-"]
    );
}

#[test]
fn records_shaped_like_the_last_one_are_still_checked_one_by_one() {
    // Records of one shape go straight to the prepared insert; what the
    // general path checks must still hold for each of them.
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = sink(&dir, "key = [\"id\"]");
    let mut null_key = rec(0, "n");
    null_key.set("id", Value::Null);
    let mut unchanged = rec(2, "u");
    unchanged
        .headers
        .push((UNCHANGED_HEADER.into(), br#"["big"]"#.to_vec().into()));
    let mut del = rec(1, "");
    del.op = Operation::Delete;
    let mut other_table = rec(7, "t");
    other_table.stream = "elsewhere".into();
    let c = write_checked(
        &mut s,
        &[
            rec(1, "a"),
            null_key,
            rec(2, "b"),
            unchanged,
            rec(3, "c"),
            del,
            rec(4, "d"),
        ],
    )
    .expect("write");
    // The null key is refused alone; the record with unchanged columns
    // updates the row of key 2 (kept: `big` is not a column here, and
    // the row exists); the delete removes key 1.
    assert_eq!(
        c.refused
            .iter()
            .map(|r| (r.index, r.reason.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "key field `id` is missing or null")]
    );
    assert_eq!(c.written, 6);
    assert_eq!(
        rows(&dir, "SELECT id || name FROM people ORDER BY id"),
        ["2u", "3c", "4d"]
    );
    // A configured `table` takes every stream; without one, the stream
    // names the table even when the fields are the same.
    let dir2 = tempfile::tempdir().expect("tmp");
    let mut s2 = sink(&dir2, "key = [\"id\"]");
    write_checked(&mut s2, &[rec(1, "a"), other_table, rec(2, "b")]).expect("write");
    let conn = Connection::open(dir2.path().join("out.db")).expect("open");
    let count = |t: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .expect("count")
    };
    assert_eq!((count("people"), count("elsewhere")), (2, 1));
}

#[test]
fn a_new_field_follows_on_schema_change() {
    let wider = |id: i64| {
        let mut r = rec(id, "w");
        r.set("email", Value::Text("w@x.io".into()));
        r
    };
    // dead_letter: the wider record is refused with the code, the rest written.
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = sink(
        &dir,
        "key = [\"id\"]\non_schema_change = { people = \"dead_letter\" }",
    );
    write_checked(&mut s, &[rec(1, "a")]).expect("write");
    let c = write_checked(&mut s, &[rec(2, "b"), wider(3), rec(4, "d")]).expect("write");
    assert_eq!(c.written, 2);
    assert_eq!(c.refused.len(), 1);
    assert_eq!(c.refused[0].index, 1);
    assert_eq!(c.refused[0].code.as_deref(), Some("schema_change"));
    assert!(
        c.refused[0]
            .reason
            .starts_with("table `people` has no column `email` (a new field of stream `people`; `on_schema_change = \"dead_letter\"`)"),
        "{}",
        c.refused[0].reason
    );
    assert_eq!(
        rows(&dir, "SELECT CAST(id AS TEXT) FROM people ORDER BY id"),
        ["1", "2", "4"]
    );
    assert_eq!(
        rows(
            &dir,
            "SELECT CAST(count(*) AS TEXT) FROM pragma_table_info('people')"
        ),
        ["2"]
    );

    // stop: the batch fails as a whole, naming table and column; nothing of it is written.
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = sink(&dir, "key = [\"id\"]\non_schema_change = \"stop\"");
    write_checked(&mut s, &[rec(1, "a")]).expect("write");
    let e = write_checked(&mut s, &[rec(2, "b"), wider(3)])
        .expect_err("stops")
        .to_string();
    assert!(
        e.contains("table `people` has no column `email` (a field of stream `people`) and `on_schema_change = \"stop\"`"),
        "{e}"
    );
    assert_eq!(
        rows(&dir, "SELECT CAST(id AS TEXT) FROM people ORDER BY id"),
        ["1"]
    );

    // Without create_table the default is dead_letter; evolve can be asked for.
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = sink(&dir, "key = [\"id\"]");
    write_checked(&mut s, &[rec(1, "a")]).expect("write");
    drop(s);
    let mut s = sink(&dir, "key = [\"id\"]\ncreate_table = false");
    let c = write_checked(&mut s, &[wider(2)]).expect("write");
    assert_eq!(c.refused[0].code.as_deref(), Some("schema_change"));
    drop(s);
    let mut s = sink(
        &dir,
        "key = [\"id\"]\ncreate_table = false\non_schema_change = \"evolve\"",
    );
    assert_eq!(
        write_checked(&mut s, &[wider(2)]).expect("write").written,
        1
    );
    assert_eq!(
        rows(
            &dir,
            "SELECT id || coalesce(email, '-') FROM people ORDER BY id"
        ),
        ["1-", "2w@x.io"]
    );
}
