#![allow(clippy::unwrap_used)]

use std::io::Write;

use super::*;
use crate::sources::test_support::collect;

fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .prefix("accounts")
        .suffix(".dat")
        .tempfile()
        .unwrap();
    f.write_all(bytes).unwrap();
    f
}

fn source(path: &std::path::Path, rest: &str) -> Result<FixedWidthSource, SourceError> {
    let config: FixedWidthConfig = toml::from_str(&format!(
        "path = {:?}\nstream = \"accounts\"\n{rest}",
        path.display().to_string()
    ))
    .unwrap();
    FixedWidthSource::new(config)
}

fn show(v: Option<&Value<'_>>) -> String {
    match v {
        Some(Value::Text(t)) => t.to_string(),
        Some(Value::Int(i)) => i.to_string(),
        Some(Value::Null) => "null".into(),
        other => format!("{other:?}"),
    }
}

/// Header, details and a trailer that counts them, as a bank's export has.
const LAYOUT: &str = r#"
[[records]]
name = "header"
when = { start = 1, equals = "H" }
emit = false
fields = [{ name = "kind", length = 1 }, { name = "run_date", length = 8, type = "date" }]

[[records]]
name = "detail"
when = { start = 1, equals = "D" }
fields = [
  { name = "kind", length = 1 },
  { name = "account", length = 6, type = "integer" },
  { name = "holder", length = 12 },
  { name = "balance", length = 9, type = "decimal", scale = 2, sign = "overpunch" },
  { name = "opened", length = 8, type = "date", null_if = ["00000000"] },
]

[[records]]
name = "trailer"
when = { start = 1, equals = "T" }
emit = false
count = { field = "count", of = ["detail"] }
fields = [{ name = "kind", length = 1 }, { name = "count", length = 6, type = "integer" }]
"#;

/// A detail record: kind, account, holder, balance, opened (36 characters).
fn detail(account: &str, holder: &str, balance: &str, opened: &str) -> String {
    format!("D{account:>6}{holder:<12}{balance:>9}{opened:<8}")
}

#[test]
fn header_details_and_trailer_become_typed_records_and_bad_lines_dead_letters() {
    let text = [
        "H20240131".to_string(),
        detail("000001", "Zoë Smith", "00012345{", "20190101"),
        detail("000002", "Jo Brown", "00000050}", "00000000"),
        detail("00000x", "", "000000000", ""),
        "D000004Short".to_string(),
        "X unknown".to_string(),
        String::new(),
        detail("000006", "Long Record", "000000001", "20190101") + "5 extra",
        "T000005".to_string(),
    ]
    .join("\r\n")
        + "\r\n";
    // In Latin-1, as legacy exports are.
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&text);
    let f = file(&bytes);
    let mut s = source(f.path(), &format!("encoding = \"latin1\"\n{LAYOUT}")).unwrap();
    let c = collect(&mut s, None, 100).unwrap();
    assert_eq!(c.records.len(), 2, "{:?}", c.malformed);
    let r = &c.records[0];
    assert_eq!(r.stream, "accounts");
    assert_eq!(r.position, "line 2");
    assert_eq!(show(r.get("account")), "1");
    assert_eq!(show(r.get("holder")), "Zoë Smith");
    assert_eq!(show(r.get("balance")), "1234.50");
    assert_eq!(show(r.get("opened")), "2019-01-01");
    let r = &c.records[1];
    assert_eq!(show(r.get("balance")), "-5.00");
    assert_eq!(show(r.get("opened")), "null");
    let reasons: Vec<(&str, &str)> = c
        .malformed
        .iter()
        .map(|m| (m.position.as_str(), m.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (
                "line 4",
                "line 4, field `account` (characters 2-7): \"00000x\" is not a number"
            ),
            (
                "line 5",
                "line 5 has 12 characters; a `detail` record has 36"
            ),
            (
                "line 6",
                "line 6 is of no record type in the layout (characters 1-1 are \"X\")"
            ),
            (
                "line 8",
                "line 8 has 43 characters; a `detail` record has 36 (and only spaces may follow)"
            ),
        ]
    );
    assert_eq!(c.malformed[1].raw, "D000004Short");
    // Every detail counts, dead-lettered or not: 5, as the trailer says.
    assert_eq!(
        c.resumes.last().unwrap(),
        &format!("byte={};line=9;counted=0;checked=9", bytes.len())
    );
}

#[test]
fn a_wrong_trailer_count_or_a_missing_trailer_is_an_error_that_says_where() {
    let f = file(b"H20240131\nD000001A           000000001          \nT000002\n");
    let mut s = source(f.path(), LAYOUT).unwrap();
    let e = collect(&mut s, None, 100).err().unwrap().to_string();
    assert!(
        e.contains("line 3: the `trailer` record counts 2 records (field `count`), but 1 were read since the file's start"),
        "{e}"
    );
    let f = file(b"H20240131\nD000001A           000000001          \n");
    let mut s = source(f.path(), LAYOUT).unwrap();
    let e = collect(&mut s, None, 100).err().unwrap().to_string();
    assert!(e.contains("the file ends after 1 counted records with no record to count them (line 2 is the last): it was cut short"), "{e}");
}

#[test]
fn a_resumed_run_goes_on_after_the_last_record_and_keeps_counting() {
    let mut data = b"H20240131\n".to_vec();
    for i in 1..=25 {
        data.extend_from_slice(format!("D{i:06}name{i:<8}00000{i:03}A20200101\n").as_bytes());
    }
    data.extend_from_slice(b"T000025\n");
    let f = file(&data);
    let mut s = source(f.path(), LAYOUT).unwrap();
    let all = collect(&mut s, None, 10).unwrap();
    assert_eq!(all.records.len(), 25);
    // Resume after the first batch: the rest, and the count still holds.
    let token = all.resumes[0].clone();
    assert!(
        token.starts_with("byte=") && token.contains(";counted=10;"),
        "{token}"
    );
    let rest = collect(&mut s, Some(&token), 10).unwrap();
    assert_eq!(rest.records.len(), 15);
    assert_eq!(rest.records[0].position, "line 12");
    assert_eq!(show(rest.records[0].get("account")), "11");
    let e = collect(&mut s, Some("byte=999999;line=3;counted=0;checked=0"), 10)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("the checkpoint is at byte 999999"), "{e}");
}

#[test]
fn fixed_length_records_without_line_breaks_and_one_layout() {
    let f = file(b"0001Ann  +000120002Bob  -000050003Cy");
    let mut s = source(
        f.path(),
        r#"record_length = 15
fields = [
  { name = "id", length = 4, type = "integer" },
  { name = "name", length = 5 },
  { name = "amount", length = 6, type = "integer", scale = 1 },
]"#,
    )
    .unwrap();
    let c = collect(&mut s, None, 100).unwrap();
    assert_eq!(c.records.len(), 2);
    assert_eq!(show(c.records[0].get("amount")), "1.2");
    assert_eq!(show(c.records[1].get("amount")), "-0.5");
    assert_eq!(c.records[1].position, "line 2");
    assert_eq!(c.malformed.len(), 1);
    assert_eq!(
        c.malformed[0].reason,
        "the file ends with a partial record of 6 bytes (`record_length` is 15)"
    );
}

#[test]
fn configuration_mistakes_are_named() {
    let f = file(b"x\n");
    for (rest, says) in [
        ("", "give the layout once"),
        (
            "layout = \"/nonexistent/layout.toml\"",
            "cannot read the layout `/nonexistent/layout.toml`",
        ),
        (
            "encoding = \"cp037\"\nfields = [{ name = \"a\", length = 1 }]",
            "EBCDIC code pages are not supported",
        ),
        (
            "encoding = \"klingon\"\nfields = [{ name = \"a\", length = 1 }]",
            "unknown `encoding` \"klingon\"",
        ),
        (
            "record_length = 0\nfields = [{ name = \"a\", length = 1 }]",
            "`record_length` must be at least 1",
        ),
        (
            "fields = [{ name = \"a\", length = 1, start = 0 }]",
            "layout: record type `record`, field `a`: `start` is 1-based",
        ),
    ] {
        let e = source(f.path(), rest).err().unwrap().to_string();
        assert!(e.contains(says), "{e} should say {says}");
    }
    // A layout file.
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout.toml");
    std::fs::write(
        &layout,
        "fields = [{ name = \"a\", length = 1 }, { name = \"b\", length = 2, type = \"integer\" }]",
    )
    .unwrap();
    let f = file(b"x42\ny 7\n");
    let mut s = source(
        f.path(),
        &format!("layout = {:?}", layout.display().to_string()),
    )
    .unwrap();
    let c = collect(&mut s, None, 100).unwrap();
    assert_eq!(show(c.records[1].get("b")), "7");
}

#[test]
fn a_utf8_byte_order_mark_is_not_part_of_the_first_record() {
    let f = file("\u{feff}0001Zoë  \n0002Åsa  \n".as_bytes());
    let mut s = source(
        f.path(),
        r#"fields = [{ name = "id", length = 4, type = "integer" }, { name = "name", length = 5 }]"#,
    )
    .unwrap();
    let c = collect(&mut s, None, 100).unwrap();
    assert!(c.malformed.is_empty(), "{:?}", c.malformed);
    assert_eq!(show(c.records[0].get("id")), "1");
    assert_eq!(show(c.records[1].get("name")), "Åsa");
}
