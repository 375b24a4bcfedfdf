//! The fixed-width source through the real binary: the mainframe example
//! (record types, Latin-1, zoned decimals, dead letters), a trailer that
//! disagrees, and a kill -9 mid-file followed by a rerun.

use crate::common::*;
use crate::pipeline::{checkpointed_records, start_and_wait_for_a_checkpoint};

/// The example, copied here (it writes `out/` beside its pipeline).
fn example(dir: &Dir) {
    let from = root().join("examples/mainframe-accounts");
    for f in ["pipeline.toml", "layout.toml", "data/accounts.dat"] {
        dir.write(f, std::fs::read(from.join(f)).unwrap());
    }
}

#[test]
fn the_mainframe_example_types_every_field_and_dead_letters_what_does_not_fit() {
    let dir = Dir::new();
    example(&dir);
    let (out, s) = dir.run(&["--no-progress"]);
    let s = assert_balanced(&out, &s);
    assert_eq!(
        (&s["records_in"], &s["written"], &s["dead_lettered"]),
        (
            &serde_json::json!(12),
            &serde_json::json!(8),
            &serde_json::json!(4)
        )
    );
    assert_eq!(
        dir.sql(
            "out/accounts.db",
            "SELECT account, branch, holder, balance, opened, status FROM accounts ORDER BY account"
        ),
        vec![
            "10001|PAR1|Zoë Lefèvre|123456.70|2012-03-15|A",
            "10002|PAR1|Jürgen Groß|-500.00|2015-06-01|A",
            "10003|LYN2|Ana María Núñez|1200000.01|NULL|A",
            "10004|LYN2|O'Brien & Søn Ltd|0.00|1999-12-31|C",
            "10005|MRS3|Émile Zola|99999.99|2020-02-29|A",
            "10008|PAR1|Chloé Dubois|1000.00|2021-07-07|A",
            "10009|LYN2|Nuño Peña|-0.10|2022-01-01|C",
            "10010|MRS3|Marie-Hélène Côté|314159.22|2019-09-09|A",
        ]
    );
    // The account is an integer column, the rest as declared.
    assert_eq!(
        dir.sql(
            "out/accounts.db",
            "SELECT typeof(account), typeof(balance), typeof(opened) FROM accounts LIMIT 1"
        ),
        vec!["integer|text|text"]
    );
    let rejects: Vec<(String, String, String)> = dir
        .jsonl("out/rejects.jsonl")
        .iter()
        .map(|j| {
            (
                j["position"].as_str().unwrap().to_string(),
                j["message"].as_str().unwrap().to_string(),
                j["raw"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(rejects.len(), 4, "{rejects:?}");
    assert_eq!(
        rejects[0],
        (
            "line 6".to_string(),
            "line 6 has 23 characters; a `detail` record has 57".to_string(),
            "D00010011PAR1Short line".to_string()
        )
    );
    assert_eq!(
        rejects[1].1,
        "line 8, field `opened` (characters 49-56): \"20230230\" is not a date as `%Y%m%d` (input is out of range)"
    );
    assert!(rejects[1].2.contains("Åsa Öberg"), "{:?}", rejects[1]);
    assert_eq!(
        rejects[2].1,
        "line 9, field `account` (characters 2-9): \"0001000X\" is not a number"
    );
    assert_eq!(
        rejects[3].1,
        "line 10 is of no record type in the layout (characters 1-1 are \"X\")"
    );
}

#[test]
fn a_trailer_that_disagrees_stops_the_run_saying_where() {
    let dir = Dir::new();
    example(&dir);
    let data = std::fs::read(dir.path("data/accounts.dat")).unwrap();
    let text = String::from_utf8_lossy(&data).replace("T000000011", "T000000012");
    // Latin-1 bytes kept: only the ASCII trailer changed.
    let mut fixed = data.clone();
    let at = data.windows(10).position(|w| w == b"T000000011").unwrap();
    fixed[at..at + 10].copy_from_slice(b"T000000012");
    assert!(text.contains("T000000012"));
    dir.write("data/accounts.dat", &fixed);
    let (out, _) = dir.run(&["--no-progress"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("line 14: the `trailer` record counts 12 records (field `count`), but 11 were read since the file's start"),
        "{err}"
    );
    // What came before the trailer was handed on and written.
    assert_eq!(
        dir.sql("out/accounts.db", "SELECT count(*) FROM accounts"),
        vec!["8"]
    );
    // A run again stops at the same place, and writes nothing twice.
    let (out, _) = dir.run(&["--no-progress"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("line 14: the `trailer` record counts 12"));
}

#[test]
fn kill_9_mid_file_then_rerun_hands_each_record_on_once_and_the_count_still_holds() {
    let dir = Dir::new();
    let rows = 200_000usize;
    let mut data = String::with_capacity(rows * 40);
    data.push_str("H20241130\n");
    for i in 0..rows {
        data.push_str(&format!(
            "D{i:>9}{:<16}{:>10}\n",
            format!("name {}", i % 977),
            format!("{:09}{}", i % 100_000, ['{', 'A', '}', 'J'][i % 4])
        ));
    }
    data.push_str(&format!("T{rows:>9}\n"));
    dir.write("in/big.dat", data);
    dir.write(
        "pipeline.toml",
        format!(
            r#"[source]
type = "fixed_width"
path = "in/big.dat"

[[source.records]]
name = "header"
when = {{ start = 1, equals = "H" }}
emit = false
fields = [{{ name = "date", start = 2, length = 8, type = "date" }}]

[[source.records]]
name = "detail"
when = {{ start = 1, equals = "D" }}
fields = [
  {{ name = "id", start = 2, length = 9, type = "integer" }},
  {{ name = "name", length = 16 }},
  {{ name = "amount", length = 10, type = "decimal", scale = 2, sign = "overpunch" }},
]

[[source.records]]
name = "trailer"
when = {{ start = 1, equals = "T" }}
emit = false
count = {{ field = "n", of = ["detail"] }}
fields = [{{ name = "n", start = 2, length = 9, type = "integer" }}]

[[transforms]]
name = "tag"
plugin = "{}"
config = {{ mode = "pass", tag = "v1" }}

[sink]
type = "jsonl"
path = "out/big.jsonl"

[runtime]
batch_size = 64
channel_capacity = 1
"#,
            plugin("fixture-misbehave")
        ),
    );
    let mut child = start_and_wait_for_a_checkpoint(&dir);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = checkpointed_records(&dir);
    assert!(
        at_kill > 0 && at_kill < rows as u64,
        "killed at {at_kill} of {rows}: not mid-run"
    );
    let (out, s) = dir.run(&["--no-progress"]);
    let s = assert_balanced(&out, &s);
    assert_eq!(s["records_in"].as_u64().unwrap(), rows as u64 - at_kill);
    let text = std::fs::read_to_string(dir.path("out/big.jsonl")).unwrap();
    let mut n = 0usize;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            v["id"], n as i64,
            "record {n} missing, repeated or out of order"
        );
        // 9 digits and an overpunched tenth: `{` +0, `A` +1, `}` -0, `J` -1.
        let v10 = (n % 100_000) * 10 + [0, 1, 0, 1][n % 4];
        let sign = if n % 4 >= 2 && v10 != 0 { "-" } else { "" };
        let amount = format!("{sign}{}.{:02}", v10 / 100, v10 % 100);
        assert_eq!(v["amount"], amount, "record {n}");
        n += 1;
    }
    assert_eq!(n, rows);
}
