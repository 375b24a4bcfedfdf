use std::io::Write;

use super::*;
use crate::sources::test_support::collect;

fn source(bytes: &[u8]) -> (tempfile::NamedTempFile, JsonlSource) {
    let mut f = tempfile::Builder::new()
        .suffix(".jsonl")
        .tempfile()
        .expect("tempfile");
    f.write_all(bytes).expect("write");
    let s = JsonlSource::new(JsonlSourceConfig {
        path: f.path().to_path_buf(),
        stream: Some("s".into()),
    })
    .expect("config");
    (f, s)
}

#[test]
fn reads_objects_and_dead_letters_bad_lines_with_line_numbers() {
    let (_f, mut s) = source(b"{\"a\":1}\n\n[1,2]\n{bad\n{\"a\":2,\"n\":{\"x\":true}}\n");
    let c = collect(&mut s, None, 10).expect("reads");
    assert_eq!(c.records.len(), 2);
    assert_eq!(c.records[1].position, "line 5");
    assert_eq!(
        c.records[1].get("n"),
        Some(&sluice_codec::Value::Json("{\"x\":true}".into()))
    );
    let reasons: Vec<(&str, &str)> = c
        .malformed
        .iter()
        .map(|m| (m.position.as_str(), m.reason.as_str()))
        .collect();
    assert_eq!(
        reasons[0],
        ("line 3", "expected a JSON object, found an array")
    );
    assert_eq!(reasons[1].0, "line 4");
    assert!(
        reasons[1].1.starts_with("invalid JSON: "),
        "{}",
        reasons[1].1
    );
}

#[test]
fn resumes_at_the_committed_offset() {
    let (_f, mut s) = source(b"{\"i\":1}\n{\"i\":2}\n{\"i\":3}\n");
    let all = collect(&mut s, None, 1).expect("reads");
    let rest = collect(&mut s, Some(&all.resumes[1]), 1).expect("resumes");
    assert_eq!(rest.records.len(), 1);
    assert_eq!(rest.records[0].get("i"), Some(&sluice_codec::Value::Int(3)));
    assert_eq!(rest.records[0].position, "line 3");
}

#[test]
fn an_unfinished_last_line_is_left_for_later() {
    let (_f, mut s) = source(b"{\"i\":1}\n{\"i\":");
    let c = collect(&mut s, None, 10).expect("reads");
    assert_eq!(c.records.len(), 1);
    assert!(c.malformed.is_empty());
    assert_eq!(c.resumes.last().map(String::as_str), Some("byte=8;line=1"));
}
