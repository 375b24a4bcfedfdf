use super::*;
use crate::sources::test_support::collect;

fn db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("legacy.db");
    let conn = Connection::open(&path).expect("open");
    conn.execute_batch(
        "CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT, score REAL, pic BLOB);
         INSERT INTO people VALUES (1,'a',1.5,NULL),(2,'b',NULL,x'00ff'),(5,'c',3,NULL);",
    )
    .expect("setup");
    (dir, path)
}

#[test]
fn reads_a_table_in_rowid_order_and_resumes() {
    let (_d, path) = db();
    let mut s = SqliteSource::new(SqliteSourceConfig {
        path,
        table: Some("people".into()),
        query: None,
        stream: None,
    })
    .expect("config");
    assert_eq!(s.size_hint(), Some(3));
    let all = collect(&mut s, None, 2).expect("reads");
    assert_eq!(all.records.len(), 3);
    assert_eq!(all.records[0].stream, "people");
    assert_eq!(
        all.records[1].get("pic"),
        Some(&Value::Bytes(Cow::Owned(vec![0, 255])))
    );
    assert_eq!(all.records[2].position, "rowid 5");
    assert_eq!(all.resumes[0], "rowid=2");
    let rest = collect(&mut s, Some("rowid=2"), 2).expect("resumes");
    assert_eq!(rest.records.len(), 1);
    assert_eq!(rest.records[0].get("id"), Some(&Value::Int(5)));
}

#[test]
fn reads_a_query_and_resumes_by_row_count() {
    let (_d, path) = db();
    let mut s = SqliteSource::new(SqliteSourceConfig {
        path,
        table: None,
        query: Some("SELECT id, upper(name) AS n FROM people ORDER BY id DESC".into()),
        stream: Some("p".into()),
    })
    .expect("config");
    let rest = collect(&mut s, Some("row=1"), 10).expect("reads");
    let ids: Vec<_> = rest.records.iter().map(|r| r.get("id").cloned()).collect();
    assert_eq!(ids, [Some(Value::Int(2)), Some(Value::Int(1))]);
    assert_eq!(rest.records[0].position, "row 2");
}

#[test]
fn bad_config_and_missing_things_are_clear() {
    let (_d, path) = db();
    let both = SqliteSource::new(SqliteSourceConfig {
        path: path.clone(),
        table: Some("a".into()),
        query: Some("b".into()),
        stream: None,
    });
    assert!(
        both.err()
            .expect("err")
            .to_string()
            .ends_with("give exactly one of `table` and `query`")
    );
    let mut s = SqliteSource::new(SqliteSourceConfig {
        path,
        table: Some("nope".into()),
        query: None,
        stream: None,
    })
    .expect("cfg");
    let err = collect(&mut s, None, 2)
        .err()
        .expect("missing table")
        .to_string();
    assert!(err.contains("no such table: nope"), "{err}");
}
