//! Whole pipelines: connectors, the three first-party plugins, dead
//! letters, checkpoints, restarts and stops.

use std::io::Write;

use crate::common::*;

const CRM: &[u8] = b"id;name;email;joined;balance;country;status\n\
1;  ZO\xcb  martin ;Zoe@Example.COM ;03/02/2021;1.234,50 \x80;fr;active\n\
2;bob;bob at example.com;2020-01-31;12,00;DE;active\n\
3;carl;carl@example.com;31/02/2021;5;DE;active\n\
4;dana;dana@example.com;2019-12-01;N/A;ES;inactive\n\
5;eve;eve@example.com;2018-05-05;-3,5;XX;active\n\
6;fay;NULL;2018-05-05;1;FR;active\n\
7;gus;gus@example.com;2017-07-07\n\
8;hal;hal@example.com;2016-06-06;(2,00);IT;ACTIVE\n";

fn crm_pipeline(dir: &Dir, sink: &str) {
    dir.write("in/crm.csv", CRM);
    dir.write(
        "pipeline.toml",
        format!(
            r#"
[source]
type = "csv"
path = "in/crm.csv"
delimiter = ";"
encoding = "latin1"

[[transforms]]
name = "map"
plugin = "{map}"
config = {{ rename = {{ name = "full_name" }}, cast = {{ id = "int" }}, drop_when = [{{ field = "status", equals = "inactive" }}], drop = ["status"] }}

[[transforms]]
name = "cleanse"
plugin = "{cleanse}"
[transforms.config]
collapse_whitespace = true
null_tokens = ["NULL", "N/A"]
fields.full_name = {{ case = "title" }}
fields.email = {{ case = "lower" }}
fields.country = {{ case = "upper" }}
fields.joined = {{ date_formats = ["%d/%m/%Y", "%Y-%m-%d"] }}
fields.balance = {{ money = {{ decimal_separator = "," }} }}

[[transforms]]
name = "validate"
plugin = "{validate}"
config = {{ fields = {{ email = {{ required = true, email = true }}, country = {{ allowed = ["FR", "DE", "ES", "IT"] }} }} }}

{sink}

[dead_letter]
type = "jsonl"
path = "out/dead.jsonl"

[runtime]
batch_size = 3
"#,
            map = plugin("mapper"),
            cleanse = plugin("cleanse"),
            validate = plugin("validate"),
        ),
    );
}

#[test]
fn migrates_a_messy_latin1_csv_into_sqlite_and_explains_every_reject() {
    let dir = Dir::new();
    crm_pipeline(
        &dir,
        "[sink]\ntype = \"sqlite\"\npath = \"out/crm.db\"\ntable = \"customers\"\nkey = [\"id\"]",
    );
    let (out, summary) = dir.run(&[]);
    let s = assert_balanced(&out, &summary);
    assert_eq!(
        (
            s["records_in"].as_u64(),
            s["written"].as_u64(),
            s["dropped"].as_u64(),
            s["dead_lettered"].as_u64()
        ),
        (Some(8), Some(2), Some(1), Some(5)),
        "{s}"
    );
    assert_eq!(
        dir.sql(
            "out/crm.db",
            "SELECT id, full_name, email, joined, balance, country FROM customers ORDER BY id"
        ),
        [
            "1|Zoë Martin|zoe@example.com|2021-02-03|123450|FR",
            "8|Hal|hal@example.com|2016-06-06|-200|IT"
        ]
    );
    let dead = dir.jsonl("out/dead.jsonl");
    let summary_of = |d: &serde_json::Value| {
        format!(
            "{} {} {} {} {}",
            d["position"].as_str().unwrap(),
            d["reason"].as_str().unwrap(),
            d["stage"].as_str().unwrap(),
            d["code"].as_str().unwrap(),
            d["field"].as_str().unwrap_or("-")
        )
    };
    let mut got: Vec<String> = dead.iter().map(summary_of).collect();
    got.sort();
    assert_eq!(
        got,
        [
            "line 3 rejected validate invalid_email email",
            "line 4 rejected cleanse invalid_date joined",
            "line 6 rejected validate not_allowed country",
            "line 7 rejected validate required email",
            "line 8 malformed_input source malformed -",
        ]
    );
    let bad_row = dead.iter().find(|d| d["position"] == "line 8").unwrap();
    assert_eq!(bad_row["message"], "row has 4 fields, the header has 7");
    assert_eq!(bad_row["raw"], "7;gus;gus@example.com;2017-07-07");
    let rejected = dead.iter().find(|d| d["position"] == "line 3").unwrap();
    assert_eq!(
        rejected["record"]["fields"]["email"], "bob at example.com",
        "the original record is kept"
    );
    assert_eq!(rejected["plugin_version"].as_str().unwrap().len(), 12);
    assert!(rejected["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn profile_shows_each_stage_in_order_with_its_parts() {
    let dir = Dir::new();
    crm_pipeline(
        &dir,
        "[sink]\ntype = \"sqlite\"\npath = \"out/crm.db\"\ntable = \"customers\"\nkey = [\"id\"]",
    );
    let (out, summary) = dir.run(&["--profile", "--no-progress"]);
    let s = assert_balanced(&out, &summary);
    let stages = s["profile"]["stages"].as_array().unwrap();
    let names: Vec<&str> = stages
        .iter()
        .map(|st| st["stage"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["source", "map", "cleanse", "validate", "sink"]);
    let parts = |i: usize| -> Vec<String> {
        stages[i]["work_ms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[0].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(parts(0), ["read, decode, encode"]);
    assert_eq!(parts(2), ["plugin", "apply"]);
    assert_eq!(parts(4), ["decode", "write", "dead letters", "checkpoint"]);
    // Each plugin's call time is the one the summary reports for it.
    for (i, p) in s["plugins"].as_array().unwrap().iter().enumerate() {
        let plugin_ms = stages[i + 1]["work_ms"][0][1].as_f64().unwrap();
        let busy = p["busy_ms"].as_u64().unwrap() as f64;
        assert!((plugin_ms - busy).abs() < 1.0, "{plugin_ms} vs {busy}");
    }
    for st in stages {
        for v in [&st["waiting_for_input_ms"], &st["waiting_for_output_ms"]] {
            assert!(v.as_f64().unwrap() >= 0.0, "{st}");
        }
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let table: Vec<&str> = err
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("profile"))
        .collect();
    assert_eq!(table.len(), 7, "{err}");
    for (line, name) in table[2..].iter().zip(&names) {
        assert!(line.trim_start().starts_with(name), "{err}");
    }
    // Without --profile, no table (the JSON summary has it either way).
    let (out, summary) = dir.run(&["--reset", "--no-progress"]);
    assert!(summary.unwrap()["profile"]["stages"].is_array());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("profile ("));
}

#[test]
fn a_rerun_resumes_after_the_checkpoint_and_reset_starts_over() {
    let dir = Dir::new();
    dir.write(
        "in/n.jsonl",
        (1..=5)
            .map(|i| format!("{{\"i\":{i}}}\n"))
            .collect::<String>(),
    );
    dir.write("pipeline.toml", "[source]\ntype = \"jsonl\"\npath = \"in/n.jsonl\"\n[sink]\ntype = \"jsonl\"\npath = \"out/n.jsonl\"\n[runtime]\nbatch_size = 2\n");
    let (out, s) = dir.run(&[]);
    assert_eq!(assert_balanced(&out, &s)["written"], 5);
    // Nothing new: nothing read.
    let (out, s) = dir.run(&[]);
    assert_eq!(assert_balanced(&out, &s)["records_in"], 0);
    // Appended lines are read, once.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path("in/n.jsonl"))
        .unwrap();
    writeln!(f, "{{\"i\":6}}").unwrap();
    let (out, s) = dir.run(&[]);
    assert_eq!(assert_balanced(&out, &s)["records_in"], 1);
    let seen: Vec<i64> = dir
        .jsonl("out/n.jsonl")
        .iter()
        .map(|v| v["i"].as_i64().unwrap())
        .collect();
    assert_eq!(seen, [1, 2, 3, 4, 5, 6]);
    let (out, s) = dir.run(&["--reset"]);
    assert_eq!(assert_balanced(&out, &s)["records_in"], 6);
}

#[test]
fn reads_a_sqlite_table_into_stdout() {
    let dir = Dir::new();
    {
        let conn = rusqlite::Connection::open(dir.path("legacy.db")).unwrap();
        conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL); INSERT INTO t VALUES (1,'a',0.5),(2,NULL,2);").unwrap();
    }
    dir.write("pipeline.toml", "[source]\ntype = \"sqlite\"\npath = \"legacy.db\"\ntable = \"t\"\n[sink]\ntype = \"stdout\"\n");
    let (out, s) = dir.run(&["--no-progress"]);
    assert_balanced(&out, &s);
    assert_eq!(
        stdout(&out),
        "{\"id\":1,\"name\":\"a\",\"score\":0.5}\n{\"id\":2,\"name\":null,\"score\":2.0}\n"
    );
}

fn big_pipeline(dir: &Dir, rows: usize) {
    let mut csv = String::from("id,name\n");
    for i in 0..rows {
        csv.push_str(&format!("{i},name {i}\n"));
    }
    dir.write("in/big.csv", csv);
    dir.write(
        "pipeline.toml",
        format!(
            "[source]\ntype = \"csv\"\npath = \"in/big.csv\"\n\n[[transforms]]\nname = \"tag\"\nplugin = \"{}\"\nconfig = {{ mode = \"pass\", tag = \"v1\" }}\n\n[sink]\ntype = \"jsonl\"\npath = \"out/big.jsonl\"\n\n[runtime]\nbatch_size = 64\nchannel_capacity = 1\n",
            plugin("fixture-misbehave")
        ),
    );
}

fn assert_each_id_once_in_order(dir: &Dir, rows: usize) {
    let text = std::fs::read_to_string(dir.path("out/big.jsonl")).unwrap();
    let mut expected = 0usize;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            v["id"],
            expected.to_string(),
            "record {expected} missing, repeated or out of order"
        );
        assert_eq!(v["tag"], "v1");
        expected += 1;
    }
    assert_eq!(expected, rows);
}

pub(crate) fn checkpointed_records(dir: &Dir) -> u64 {
    let Ok(conn) = rusqlite::Connection::open_with_flags(
        dir.path(".sluice/checkpoints.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return 0;
    };
    conn.query_row("SELECT records FROM checkpoints", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_or(0, |n| n as u64)
}

pub(crate) fn start_and_wait_for_a_checkpoint(dir: &Dir) -> std::process::Child {
    let child = sluice()
        .arg("run")
        .arg(dir.path("pipeline.toml"))
        .arg("--no-progress")
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while checkpointed_records(dir) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint after 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child
}

#[test]
fn kill_9_mid_run_then_rerun_writes_each_record_exactly_once() {
    let dir = Dir::new();
    let rows = 300_000;
    big_pipeline(&dir, rows);
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
    assert_each_id_once_in_order(&dir, rows);
}

#[test]
fn sigterm_stops_gracefully_and_a_rerun_finishes_the_job() {
    let dir = Dir::new();
    let rows = 300_000;
    big_pipeline(&dir, rows);
    let child = start_and_wait_for_a_checkpoint(&dir);
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "graceful stop exits 0: {}",
        stderr(&out)
    );
    let first = checkpointed_records(&dir);
    let (out, s) = dir.run(&["--no-progress"]);
    let s = assert_balanced(&out, &s);
    assert_eq!(s["records_in"].as_u64().unwrap() + first, rows as u64);
    assert_each_id_once_in_order(&dir, rows);
}

#[test]
fn dead_letters_can_go_to_a_sqlite_table() {
    let dir = Dir::new();
    crm_pipeline(&dir, "[sink]\ntype = \"jsonl\"\npath = \"out/ok.jsonl\"");
    let text = std::fs::read_to_string(dir.path("pipeline.toml"))
        .unwrap()
        .replace(
            "[dead_letter]\ntype = \"jsonl\"\npath = \"out/dead.jsonl\"",
            "[dead_letter]\ntype = \"sqlite\"\npath = \"out/dead.db\"",
        );
    dir.write("pipeline.toml", text);
    let (out, s) = dir.run(&[]);
    assert_eq!(assert_balanced(&out, &s)["dead_lettered"], 5);
    assert_eq!(
        dir.sql("out/dead.db", "SELECT position, reason, stage, code, coalesce(field, '-') FROM dead_letters ORDER BY position"),
        [
            "line 3|rejected|validate|invalid_email|email",
            "line 4|rejected|cleanse|invalid_date|joined",
            "line 6|rejected|validate|not_allowed|country",
            "line 7|rejected|validate|required|email",
            "line 8|malformed_input|source|malformed|-",
        ]
    );
    let record = dir.sql(
        "out/dead.db",
        "SELECT json_extract(record, '$.fields.email') FROM dead_letters WHERE position = 'line 3'",
    );
    assert_eq!(record, ["bob at example.com"]);
}

#[test]
fn every_output_names_the_versions_that_made_it() {
    let dir = Dir::new();
    dir.write("in/r.jsonl", "{\"i\":1}\n{\"i\":2}\n");
    dir.write(
        "pipeline.toml",
        format!(
            "[source]\ntype = \"jsonl\"\npath = \"in/r.jsonl\"\n\n[[transforms]]\nname = \"a\"\nplugin = \"{p}\"\nconfig = {{ mode = \"pass\" }}\n\n[[transforms]]\nname = \"b\"\nplugin = \"{p}\"\nconfig = {{ mode = \"pass\", tag = \"x\" }}\n\n[sink]\ntype = \"jsonl\"\npath = \"out/o.jsonl\"\ninclude_metadata = true\n",
            p = plugin("fixture-misbehave")
        ),
    );
    let (out, s) = dir.run(&[]);
    let s = assert_balanced(&out, &s);
    let (va, vb) = (
        s["plugins"][0]["version"].clone(),
        s["plugins"][1]["version"].clone(),
    );
    assert_ne!(va, vb, "another config is another version");
    for rec in dir.jsonl("out/o.jsonl") {
        assert_eq!(rec["headers"]["sluice-version-a"], va, "{rec}");
        assert_eq!(rec["headers"]["sluice-version-b"], vb, "{rec}");
        assert_eq!(rec["fields"]["tag"], "x");
    }
}

#[test]
fn a_run_report_is_one_html_file_with_the_counts_and_why_records_were_refused() {
    let dir = Dir::new();
    crm_pipeline(
        &dir,
        "[sink]\ntype = \"sqlite\"\npath = \"out/crm.db\"\ntable = \"customers\"\nkey = [\"id\"]",
    );
    let report = dir.path("report.html");
    let (out, summary) = dir.run(&["--report", report.to_str().unwrap()]);
    assert_balanced(&out, &summary);
    let page = std::fs::read_to_string(&report).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    for want in [
        "<b>8</b>",
        "<b>2</b>",
        "<b>5</b>",
        "Every record is accounted for",
        "validate: invalid_email",
        "line 3, field <code>email</code>",
        "source: malformed",
        "row has 4 fields, the header has 7",
        "cleanse: invalid_date",
    ] {
        assert!(page.contains(want), "missing {want:?} in\n{page}");
    }
    // The summary JSON carries the same examples.
    let s = summary.unwrap();
    assert_eq!(
        s["examples"]["validate: invalid_email"][0]["position"],
        "line 3"
    );
    // Nothing to fetch: it opens offline.
    assert!(!page.contains("src=") && !page.contains("href="));
}
