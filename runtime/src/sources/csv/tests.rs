use std::io::Write;

use super::*;
use crate::sources::test_support::collect;

fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(".csv")
        .tempfile()
        .expect("tempfile");
    f.write_all(bytes).expect("write");
    f
}

fn config(path: &std::path::Path) -> CsvConfig {
    toml::from_str(&format!("path = {:?}", path.display().to_string())).expect("config")
}

fn text<'a>(r: &'a Record<'_>, f: &str) -> &'a str {
    r.get(f).and_then(Value::as_str).unwrap_or("<none>")
}

#[test]
fn reads_quoted_fields_and_sends_wrong_width_rows_to_dead_letter() {
    let f = file(
        b"id,name,note\n1,\"Smith, Jo\",\"said \"\"hi\"\"\"\n2,only-two\n3,\"multi\nline\",x\n",
    );
    let mut s = CsvSource::new(config(f.path())).expect("config ok");
    let c = collect(&mut s, None, 100).expect("reads");
    assert_eq!(c.records.len(), 2);
    assert_eq!(text(&c.records[0], "name"), "Smith, Jo");
    assert_eq!(text(&c.records[0], "note"), "said \"hi\"");
    assert_eq!(text(&c.records[1], "name"), "multi\nline");
    assert_eq!(c.records[1].position, "line 4");
    assert_eq!(
        c.malformed,
        vec![Malformed {
            record: None,
            position: "line 3".into(),
            stream: c.records[0].stream.to_string(),
            raw: "2,only-two".into(),
            reason: "row has 2 fields, the header has 3".into(),
        }]
    );
}

#[test]
fn decodes_latin1_and_windows_1252() {
    // "Zoë" and "€5" in Windows-1252: ë = 0xEB, € = 0x80.
    let f = file(b"name;price\nZo\xeb;\x805\n");
    let mut cfg = config(f.path());
    cfg.delimiter = ";".into();
    cfg.encoding = "windows-1252".into();
    let mut s = CsvSource::new(cfg).expect("config ok");
    let c = collect(&mut s, None, 10).expect("reads");
    assert_eq!(text(&c.records[0], "name"), "Zoë");
    assert_eq!(text(&c.records[0], "price"), "€5");
}

#[test]
fn invalid_utf8_is_dead_lettered_with_a_hint() {
    let f = file(b"name\nZo\xeb\nok\n");
    let mut s = CsvSource::new(config(f.path())).expect("config ok");
    let c = collect(&mut s, None, 10).expect("reads");
    assert_eq!(c.records.len(), 1);
    assert_eq!(c.malformed.len(), 1);
    assert!(
        c.malformed[0].reason.contains("set `encoding`"),
        "{}",
        c.malformed[0].reason
    );
}

#[test]
fn resumes_after_the_last_committed_batch_without_repeats() {
    let f = file(b"\xef\xbb\xbfid\n1\n2\n3\n4\n5\n");
    let mut s = CsvSource::new(config(f.path())).expect("config ok");
    let all = collect(&mut s, None, 2).expect("reads");
    assert!(
        all.records[0].get("id").is_some(),
        "BOM stripped from the first header"
    );
    let after_first = all.resumes[0].clone();
    let rest = collect(&mut s, Some(&after_first), 2).expect("resumes");
    let ids: Vec<&str> = rest.records.iter().map(|r| text(r, "id")).collect();
    assert_eq!(ids, ["3", "4", "5"]);
    assert_eq!(rest.records[0].position, "line 4");
}

#[test]
fn refuses_a_checkpoint_past_the_end_of_a_changed_file() {
    let f = file(b"id\n1\n");
    let mut s = CsvSource::new(config(f.path())).expect("config ok");
    let err = collect(&mut s, Some("byte=999;line=9;row=9"), 2)
        .err()
        .expect("error");
    assert!(
        err.to_string()
            .contains("the checkpoint is at byte 999 but the file has 5 bytes"),
        "{err}"
    );
}

#[test]
fn config_errors_say_what_to_do() {
    let mut cfg = config(std::path::Path::new("/x.csv"));
    cfg.encoding = "klingon".into();
    assert!(
        CsvSource::new(cfg.clone())
            .err()
            .expect("err")
            .to_string()
            .contains("unknown `encoding` \"klingon\"")
    );
    cfg.encoding = "utf-16".into();
    assert!(
        CsvSource::new(cfg.clone())
            .err()
            .expect("err")
            .to_string()
            .contains("UTF-16 files are not supported")
    );
    cfg.encoding = "utf-8".into();
    cfg.delimiter = "||".into();
    assert!(
        CsvSource::new(cfg.clone())
            .err()
            .expect("err")
            .to_string()
            .contains("`delimiter` must be one ASCII character")
    );
    let f = file(b"a,a\n1,2\n");
    let mut s = CsvSource::new(config(f.path())).expect("config ok");
    let err = collect(&mut s, None, 2).err().expect("duplicate");
    assert!(
        err.to_string()
            .contains("column `a` appears twice (columns 1 and 2)"),
        "{err}"
    );
}

#[test]
fn a_row_longer_than_max_record_bytes_is_dead_lettered_and_reading_goes_on() {
    // Row 2 has a quote that is never closed: without a limit it would
    // swallow the rest of the file into one field.
    let mut input = b"id,name\n1,a\n2,\"open quote\n".to_vec();
    for i in 3..40_000 {
        input.extend_from_slice(format!("{i},row {i}\n").as_bytes());
    }
    let f = file(&input);
    let mut c = config(f.path());
    c.max_record_bytes = 64 << 10;
    let mut s = CsvSource::new(c).expect("config ok");
    let got = collect(&mut s, None, 1000).expect("reads");
    assert_eq!(got.records[0].position, "line 2");
    assert_eq!(
        got.malformed.len(),
        1,
        "{:?}",
        got.malformed.first().map(|m| &m.reason)
    );
    let m = &got.malformed[0];
    assert_eq!(m.position, "line 3");
    assert!(
        m.reason.contains("longer than `max_record_bytes` (65536)"),
        "{}",
        m.reason
    );
    assert!(m.raw.starts_with("2,\"open quote"), "{}", &m.raw[..20]);
    // Reading went on past the limit, with the right line numbers.
    let after: Vec<_> = got.records[1..].iter().collect();
    assert!(after.len() > 30_000, "{}", after.len());
    let first = after[0];
    let id: u64 = text(first, "id").parse().expect("an id");
    assert_eq!(first.position, format!("line {}", id + 1));
    assert_eq!(text(after.last().expect("rows"), "id"), "39999");
}

/// Each record's and dead letter's line, as `(line, id or raw)`.
fn lines_of(c: &crate::sources::test_support::Collected) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = c
        .records
        .iter()
        .map(|r| (r.position.to_string(), text(r, "id").to_string()))
        .chain(
            c.malformed
                .iter()
                .map(|m| (m.position.clone(), format!("bad {}", m.raw))),
        )
        .collect();
    v.sort_by_key(|(l, _)| l.trim_start_matches("line ").parse::<u64>().unwrap_or(0));
    v
}

#[test]
fn line_numbers_are_the_file_s_with_windows_line_breaks_too() {
    // The csv crate counts a row after `\r\n` on the line before it
    // (BurntSushi/rust-csv#395): every dead letter of a Windows export
    // pointed one line up.
    let unix = "id;name\n1;a\n2\n\n3;\"two\nlines\"\n4;d\n5;e";
    let windows = unix.replace('\n', "\r\n");
    let want = vec![
        ("line 2".to_string(), "1".to_string()),
        ("line 3".to_string(), "bad 2".to_string()),
        ("line 5".to_string(), "3".to_string()),
        ("line 7".to_string(), "4".to_string()),
        ("line 8".to_string(), "5".to_string()),
    ];
    for input in [unix.to_string(), windows] {
        let f = file(input.as_bytes());
        let mut c = config(f.path());
        c.delimiter = ";".into();
        let mut s = CsvSource::new(c).expect("config ok");
        let all = collect(&mut s, None, 2).expect("reads");
        assert_eq!(lines_of(&all), want, "{input:?}");
        // Resumed after the first batch, the lines go on right.
        let rest = collect(&mut s, Some(&all.resumes[0]), 2).expect("resumes");
        assert_eq!(lines_of(&rest), want[2..], "{input:?}");
    }
}

#[test]
fn a_too_long_row_of_a_windows_export_is_dead_lettered_at_its_own_line() {
    let mut input = b"id,name\r\n1,a\r\n2,\"open quote\r\n".to_vec();
    for i in 3..2_000 {
        input.extend_from_slice(format!("{i},row {i}\r\n").as_bytes());
    }
    let f = file(&input);
    let mut c = config(f.path());
    c.max_record_bytes = 4 << 10;
    let mut s = CsvSource::new(c).expect("config ok");
    let got = collect(&mut s, None, 100).expect("reads");
    assert_eq!(got.records[0].position, "line 2");
    assert_eq!(got.malformed[0].position, "line 3");
    assert!(got.malformed[0].reason.contains("starting at line 3"));
    let first = &got.records[1];
    let id: u64 = text(first, "id").parse().expect("an id");
    assert_eq!(first.position, format!("line {}", id + 1));
    let last = got.records.last().expect("rows");
    assert_eq!(
        (text(last, "id"), last.position.as_ref()),
        ("1999", "line 2000")
    );
}

#[test]
fn line_breaks_far_behind_are_counted_not_kept() {
    // A quoted field of 600 000 line breaks, then rows: the lines stay
    // right and the reader keeps only the recent line breaks.
    let mut input = b"id,note\r\n1,\"".to_vec();
    input.extend(std::iter::repeat_n(b'\n', 600_000));
    input.extend_from_slice(b"\"\r\n2,b\r\n3,c\r\n");
    let f = file(&input);
    let mut s = CsvSource::new(config(f.path())).expect("config ok");
    let got = collect(&mut s, None, 10).expect("reads");
    let lines: Vec<&str> = got.records.iter().map(|r| r.position.as_ref()).collect();
    assert_eq!(lines, ["line 2", "line 600003", "line 600004"]);

    let mut capped = CsvSource::new(config(f.path()))
        .expect("config ok")
        .open()
        .expect("opens");
    let mut buf = vec![0u8; 64 << 10];
    while capped.read(&mut buf).expect("reads") > 0 {
        assert!(capped.newlines.len() as u64 <= SETTLED_BEHIND + (64 << 10));
    }
    assert_eq!(capped.newlines_before(u64::MAX), 600_004);
}
