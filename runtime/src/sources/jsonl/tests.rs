use std::io::Write;

use super::*;
use crate::sources::test_support::collect;

fn source(bytes: &[u8]) -> (tempfile::NamedTempFile, JsonlSource) {
    source_max(bytes, 1 << 20)
}

fn source_max(bytes: &[u8], max_record_bytes: u64) -> (tempfile::NamedTempFile, JsonlSource) {
    let mut f = tempfile::Builder::new()
        .suffix(".jsonl")
        .tempfile()
        .expect("tempfile");
    f.write_all(bytes).expect("write");
    let s = JsonlSource::new(JsonlSourceConfig {
        path: f.path().to_path_buf(),
        stream: Some("s".into()),
        follow: false,
        max_record_bytes,
    })
    .expect("config");
    (f, s)
}

#[test]
fn a_line_longer_than_max_record_bytes_is_dead_lettered_in_bounded_memory() {
    let mut input = b"{\"i\":1}\n{\"big\":\"".to_vec();
    input.extend(std::iter::repeat_n(b'x', 3 << 20));
    input.extend_from_slice(b"\"}\n{\"i\":3}\n");
    let (_f, mut s) = source_max(&input, 1 << 20);
    let c = collect(&mut s, None, 10).expect("reads");
    let got: Vec<&str> = c.records.iter().map(|r| r.position.as_ref()).collect();
    assert_eq!(got, ["line 1", "line 3"]);
    assert_eq!(c.malformed.len(), 1);
    let m = &c.malformed[0];
    assert_eq!(m.position, "line 2");
    assert!(
        m.reason.contains("more than `max_record_bytes` (1048576)"),
        "{}",
        m.reason
    );
    assert_eq!(m.raw.len(), 64 << 10);
    // Resuming after it starts at the next line.
    let rest = collect(&mut s, Some(c.resumes.last().expect("a resume")), 10).expect("resumes");
    assert!(rest.records.is_empty() && rest.malformed.is_empty());
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

#[test]
fn follows_appended_lines_until_stopped() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    let mut f = tempfile::Builder::new()
        .suffix(".jsonl")
        .tempfile()
        .expect("tempfile");
    f.write_all(b"{\"i\":1}\n{\"i\":").expect("write");
    let path = f.path().to_path_buf();
    let mut s = JsonlSource::new(JsonlSourceConfig {
        path,
        stream: None,
        follow: true,
        max_record_bytes: 1 << 20,
    })
    .expect("config");
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (stop2, seen2) = (stop.clone(), seen.clone());
    let reader = std::thread::spawn(move || {
        let progress = AtomicU64::new(0);
        let paused = AtomicBool::new(false);
        let feedback = crate::sources::SourceFeedback::default();
        let mut send = |b: crate::sources::SourceBatch| {
            seen2.lock().expect("lock").push(b.spans.len());
            Ok(())
        };
        let mut ctx = crate::sources::SourceContext::new(
            10,
            1 << 20,
            &mut send,
            &stop2,
            &paused,
            &progress,
            &feedback,
        );
        s.run(None, &mut ctx)
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    f.write_all(b"2}\n{\"i\":3}\n").expect("append");
    f.flush().expect("flush");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen.lock().expect("lock").iter().sum::<usize>() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "appended lines not read"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("join").expect("source ok");
    assert_eq!(seen.lock().expect("lock").iter().sum::<usize>(), 3);
}
