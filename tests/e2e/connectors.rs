//! Connector plugins: the HTTP API source (Rust) and the HTTP bulk sink
//! (Python) against a real HTTP server on loopback (tests/servers/
//! legacy_crm.py, a separate process) that throttles, fails, stalls and
//! restarts; capability, manifest and signature refusals; a connector that
//! misbehaves on purpose (tests/fixtures/broken-source).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::common::*;

/// Builds a connector directory once per test binary; returns the component.
pub fn connector(rel: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let map = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().unwrap();
    if let Some(p) = map.get(rel) {
        return p.clone();
    }
    let dir = root().join(rel);
    let out = sluice()
        .args(["plugin", "build"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "building {rel}: {}", stderr(&out));
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let wasm = dir.join("build").join(format!("{name}.wasm"));
    assert!(wasm.is_file(), "{} missing", wasm.display());
    map.insert(rel.to_string(), wasm.clone());
    wasm
}

/// A shared cache of compiled components (the Python sink takes seconds to
/// compile; every test would compile it again in its own state directory).
fn cache_dir() -> String {
    let d = root().join("build/test-connector-cache");
    std::fs::create_dir_all(&d).unwrap();
    d.display().to_string()
}

/// The legacy CRM server, a child process on 127.0.0.1.
pub struct Crm {
    child: Child,
    pub port: u16,
    args: Vec<String>,
}

impl Crm {
    pub fn start(args: &[&str]) -> Crm {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Crm::spawn(0, args)
    }

    fn spawn(port: u16, args: Vec<String>) -> Crm {
        let mut child = Command::new("python3")
            .arg(root().join("tests/servers/legacy_crm.py"))
            .arg("--port")
            .arg(port.to_string())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs tests/servers/legacy_crm.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("legacy_crm.py said {line:?}"));
        Crm { child, port, args }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server and starts it again on the same port.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(500));
        let args = self.args.clone();
        let port = self.port;
        *self = Crm::spawn(port, args);
    }

    pub fn get(&self, path: &str) -> Json {
        let body = ureq::get(&self.url(path))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Crm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TOKEN: &str = "crm-token-5f1d2c";

fn source_toml(crm: &Crm, page_size: u32, extra_limits: &str) -> String {
    format!(
        r#"
[source]
type = "wasm"
path = "{source}"
config = {{ url = "{url}", page_size = {page_size} }}
limits = {{ retry_initial_ms = 50, retry_max_ms = 1000{extra_limits} }}

[source.grants]
http = ["{origin}"]
secrets = {{ api_token = {{ env = "CRM_TOKEN" }} }}
auth = {{ "{origin}" = {{ secret = "api_token", scheme = "Bearer" }} }}
"#,
        source = connector("connectors/http-api-source").display(),
        url = crm.url("/customers"),
        origin = crm.origin(),
    )
}

fn sqlite_sink() -> &'static str {
    "[sink]\ntype = \"sqlite\"\npath = \"out.db\"\ntable = \"customers\"\nkey = [\"id\"]\n"
}

fn run_with_token(d: &Dir) -> (std::process::Output, Option<Json>) {
    let summary = d.path("summary.json");
    let _ = std::fs::remove_file(&summary);
    let out = sluice()
        .arg("run")
        .arg(d.path("pipeline.toml"))
        .arg("--summary-json")
        .arg(&summary)
        .env("CRM_TOKEN", TOKEN)
        .output()
        .unwrap();
    let json = std::fs::read_to_string(&summary)
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap());
    (out, json)
}

#[test]
fn http_api_source_reads_100k_records_through_throttling_errors_stalls_and_a_server_restart() {
    let mut crm = Crm::start(&[
        "--records",
        "100000",
        "--token",
        TOKEN,
        "--throttle-every",
        "9",
        "--fail-every",
        "7",
        "--slow-every",
        "13",
        "--slow-seconds",
        "1",
    ]);
    let d = Dir::new();
    d.write(
        "pipeline.toml",
        format!(
            "name = \"crm\"\n[runtime]\ncache_dir = \"{}\"\n{}{}",
            cache_dir(),
            source_toml(&crm, 1000, ""),
            sqlite_sink()
        ),
    );
    let summary = d.path("summary.json");
    let child = sluice()
        .arg("run")
        .arg(d.path("pipeline.toml"))
        .arg("--summary-json")
        .arg(&summary)
        .env("CRM_TOKEN", TOKEN)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Restart the server once a third of the pages are in.
    let started = Instant::now();
    loop {
        let n = std::fs::metadata(d.path("out.db"))
            .ok()
            .map(|_| {
                rusqlite::Connection::open(d.path("out.db"))
                    .and_then(|c| {
                        c.query_row("select count(*) from customers", [], |r| r.get::<_, i64>(0))
                    })
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        if n >= 30_000 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    crm.restart();
    let out = child.wait_with_output().unwrap();
    let json = std::fs::read_to_string(&summary)
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap());
    let s = assert_balanced(&out, &json);
    assert_eq!(s["records_in"], 100_000, "{s}");
    assert_eq!(s["written"], 100_000, "{s}");
    let err = stderr(&out);
    assert!(err.contains("rate limited (429)"), "{err}");
    assert!(err.contains("server error 500"), "{err}");
    assert!(
        !err.contains(TOKEN),
        "the token must never appear in the log"
    );
    assert_eq!(
        d.sql(
            "out.db",
            "select count(*), count(distinct id), min(id), max(id) from customers"
        ),
        vec!["100000|100000|1|100000"]
    );
    // Values arrive as the API sent them (a refused-looking email, text with
    // a line break and quotes, JSON arrays, null).
    assert_eq!(
        d.sql(
            "out.db",
            "select name, email, country, balance, active, tags, notes from customers where id in (97, 100) order by id"
        ),
        vec![
            "Hiro Núñez|Hiro Núñez|ES|681.43|1|[]|NULL",
            "Ana Silva|ana.silva100@example.com|NO|919.00|1|[\"vip\"]|line one\nline \"two\" 100"
        ]
    );
}

#[test]
fn kill_9_of_the_host_resumes_at_the_first_uncommitted_page() {
    let crm = Crm::start(&[
        "--records",
        "20000",
        "--token",
        TOKEN,
        "--slow-every",
        "1",
        "--slow-seconds",
        "0.15",
    ]);
    let d = Dir::new();
    d.write(
        "pipeline.toml",
        format!(
            "name = \"crm\"\n[runtime]\ncache_dir = \"{}\"\n{}{}",
            cache_dir(),
            source_toml(&crm, 200, ""),
            sqlite_sink()
        ),
    );
    let mut child = sluice()
        .arg("run")
        .arg(d.path("pipeline.toml"))
        .env("CRM_TOKEN", TOKEN)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let n = rusqlite::Connection::open(d.path("out.db"))
            .and_then(|c| c.query_row("select count(*) from customers", [], |r| r.get::<_, i64>(0)))
            .unwrap_or(0);
        if n >= 4_000 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    // kill -9: no chance to commit or confirm anything more.
    child.kill().unwrap();
    child.wait().unwrap();
    let before = crm.get("/log")["cursors"].as_array().unwrap().len();
    let (out, summary) = run_with_token(&d);
    let s = assert_balanced(&out, &summary);
    let cursors = crm.get("/log")["cursors"].as_array().unwrap().clone();
    // The second run started from a cursor, not from the first page.
    let first_again = &cursors[before];
    assert!(
        first_again
            .as_str()
            .is_some_and(|c| c.parse::<u64>().unwrap() >= 3_000),
        "resumed at {first_again}"
    );
    // Pages read twice: at most the few in flight at the kill.
    assert!(cursors.len() <= 100 + 10, "{} requests", cursors.len());
    assert!(s["records_in"].as_u64().unwrap() < 20_000, "{s}");
    assert_eq!(
        d.sql(
            "out.db",
            "select count(*), count(distinct id), min(id), max(id) from customers"
        ),
        vec!["20000|20000|1|20000"]
    );
}

#[test]
fn http_bulk_sink_in_python_stores_each_key_once_and_dead_letters_refusals_across_a_kill_9() {
    let crm = Crm::start(&["--records", "30000", "--token", TOKEN]);
    let store = Dir::new();
    let bulk = Crm::start(&[
        "--token",
        TOKEN,
        "--store",
        &store.path("bulk.jsonl").display().to_string(),
        "--fail-every",
        "5",
        "--slow-every",
        "11",
        "--slow-seconds",
        "0.3",
    ]);
    let d = Dir::new();
    d.write(
        "pipeline.toml",
        format!(
            r#"name = "to-bulk"
[runtime]
cache_dir = "{cache}"
batch_size = 500
{source}
[sink]
type = "wasm"
path = "{sink}"
config = {{ url = "{url}" }}
limits = {{ retry_initial_ms = 50, retry_max_ms = 500 }}

[sink.grants]
http = ["{origin}"]
secrets = {{ api_token = {{ env = "CRM_TOKEN" }} }}
auth = {{ "{origin}" = {{ secret = "api_token" }} }}

[dead_letter]
type = "jsonl"
path = "dead.jsonl"
"#,
            cache = cache_dir(),
            source = source_toml(&crm, 500, ""),
            sink = connector("connectors/http-bulk-sink").display(),
            url = bulk.url("/bulk"),
            origin = bulk.origin(),
        ),
    );
    let mut child = sluice()
        .arg("run")
        .arg(d.path("pipeline.toml"))
        .env("CRM_TOKEN", TOKEN)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while bulk.get("/bulk/stats")["received"].as_u64().unwrap() < 8_000 {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Between a write and its commit, most likely: the batch comes again.
    child.kill().unwrap();
    child.wait().unwrap();
    let (out, summary) = run_with_token(&d);
    let s = assert_balanced(&out, &summary);
    let stats = bulk.get("/bulk/stats");
    // Every record id%97==0 has no valid email: 309 of 30 000.
    let refused = (1..=30_000u64).filter(|i| i % 97 == 0).count() as u64;
    assert_eq!(
        stats["stored"].as_u64().unwrap(),
        30_000 - refused,
        "{stats}"
    );
    // Keys are stable across the kill: the store holds each record once.
    let dump = bulk.get("/bulk/dump");
    let ids: HashSet<u64> = dump["records"]
        .as_object()
        .unwrap()
        .values()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len() as u64, 30_000 - refused);
    // Dead letters: each refused record at least once (a batch replayed
    // after the kill refuses its records again), with the endpoint's reason.
    let dead = d.jsonl("dead.jsonl");
    let dead_ids: HashSet<u64> = dead
        .iter()
        .map(|l| l["record"]["fields"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(dead_ids.len() as u64, refused, "{s}");
    assert!(
        dead[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid_email: email "),
        "{}",
        dead[0]
    );
    // The vendor's code is the dead letter's code, with the connector's
    // version beside it, so refusals can be counted and replayed by code.
    assert_eq!(dead[0]["reason"], "sink_refused", "{}", dead[0]);
    assert_eq!(dead[0]["stage"], "sink");
    assert_eq!(dead[0]["code"], "invalid_email", "{}", dead[0]);
    let version = dead[0]["plugin_version"].as_str().unwrap();
    assert!(
        version.len() == 12 && version.bytes().all(|b| b.is_ascii_hexdigit()),
        "{version}"
    );
    let err = stderr(&out);
    assert!(!err.contains(TOKEN));
}

fn broken(d: &Dir, mode: &str, extra: &str) -> (std::process::Output, Option<Json>) {
    d.write(
        "pipeline.toml",
        format!(
            r#"name = "broken"
[source]
type = "wasm"
path = "{path}"
config = {{ mode = "{mode}", records = 500, at = 200 }}
limits = {{ call_timeout_ms = 1000, retry_initial_ms = 20, max_crashes = 2, max_retries = 5 }}
[source.grants]
secrets = {{ token = "hunter2-secret-value" }}
{extra}
[sink]
type = "jsonl"
path = "out.jsonl"
"#,
            path = connector("tests/fixtures/broken-source").display(),
        ),
    );
    d.run(&[])
}

#[test]
fn a_misbehaving_connector_stops_with_a_clear_error_and_keeps_its_position() {
    let cases = [
        ("trap_after", "trapped: plugin panicked"),
        ("hang", "exceeded its deadline of 1000 ms"),
        ("malformed", "returned a malformed batch"),
        ("fatal", "the upstream account was closed; stopped"),
    ];
    for (mode, says) in cases {
        let d = Dir::new();
        let (out, _) = broken(&d, mode, "");
        assert!(!out.status.success(), "{mode}");
        let err = stderr(&out);
        assert!(
            err.contains("source connector `broken-source`") && err.contains(says),
            "{mode}: {err}"
        );
        // The 200 records before the failure were committed, the position kept.
        assert_eq!(d.jsonl("out.jsonl").len(), 200, "{mode}");
        // A run with the fault gone resumes there: 300 more, none again.
        let fixed = std::fs::read_to_string(d.path("pipeline.toml"))
            .unwrap()
            .replace(&format!("mode = \"{mode}\""), "mode = \"ok\"");
        d.write("pipeline.toml", fixed);
        let (out, summary) = d.run(&[]);
        let s = assert_balanced(&out, &summary);
        assert_eq!(s["records_in"], 300, "{mode}: {s}");
        let ns: Vec<u64> = d
            .jsonl("out.jsonl")
            .iter()
            .map(|r| r["n"].as_u64().unwrap())
            .collect();
        assert_eq!(ns, (1..=500).collect::<Vec<_>>(), "{mode}");
    }
    // A contract broken on every poll: no record is ever handed over.
    let d = Dir::new();
    let (out, _) = broken(&d, "no_position", "");
    assert!(stderr(&out).contains("returned records without a position"));
    assert!(d.jsonl("out.jsonl").is_empty());
    // Transient errors are retried, and the run completes.
    let d = Dir::new();
    let (out, summary) = broken(&d, "transient", "");
    let s = assert_balanced(&out, &summary);
    assert_eq!(s["written"], 500);
    assert!(stderr(&out).contains("transient error, retrying: upstream busy"));
    // A log flood is cut at the budget.
    let d = Dir::new();
    let (out, summary) = broken(&d, "log_flood", "");
    assert_balanced(&out, &summary);
    assert!(stderr(&out).contains("plugin log lines dropped"));
    assert!(stderr(&out).lines().count() < 2_000);
}

#[test]
fn secrets_never_reach_the_log_or_the_error() {
    let d = Dir::new();
    let (out, _) = broken(&d, "leak_secret", "");
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("the token is ***"), "{err}");
    assert!(err.contains("refused with token ***"), "{err}");
    assert!(!err.contains("hunter2-secret-value"), "{err}");
    // An unset variable is named, and nothing starts.
    let d = Dir::new();
    d.write(
        "pipeline.toml",
        format!(
            "name = \"s\"\n[source]\ntype = \"wasm\"\npath = \"{}\"\n[source.grants]\nsecrets = {{ token = {{ env = \"SLUICE_TEST_UNSET_TOKEN\" }} }}\n[sink]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n",
            connector("tests/fixtures/broken-source").display()
        ),
    );
    let (out, _) = d.run(&[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains("secret `token`: environment variable `SLUICE_TEST_UNSET_TOKEN` is not set"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn requests_to_origins_not_granted_are_refused_and_named() {
    let crm = Crm::start(&["--records", "10"]);
    let other = Crm::start(&["--records", "10"]);
    // The connector asks for a URL on a server it was not granted.
    let d = Dir::new();
    d.write(
        "pipeline.toml",
        format!(
            r#"name = "evil"
[source]
type = "wasm"
path = "{path}"
config = {{ mode = "http_to", url = "{url}" }}
limits = {{ max_crashes = 0 }}
[source.grants]
http = ["{granted}"]
[sink]
type = "jsonl"
path = "out.jsonl"
"#,
            path = connector("tests/fixtures/broken-source").display(),
            url = other.url("/customers"),
            granted = crm.origin(),
        ),
    );
    let (out, _) = d.run(&[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "GET {}: origin {} is not granted",
            other.url("/customers"),
            other.origin()
        )),
        "{err}"
    );
    // Nothing reached the other server.
    assert!(other.get("/log")["cursors"].as_array().unwrap().is_empty());
    // The same through `wasi:http/outgoing-handler` itself (a vendor's own
    // HTTP client): refused where not granted, answered where granted.
    for (url, expect) in [
        (
            other.url("/customers"),
            format!(
                "GET {}: origin {} is not granted",
                other.url("/customers"),
                other.origin()
            ),
        ),
        (crm.url("/customers"), "wasi:http answered 200".to_string()),
    ] {
        let text = std::fs::read_to_string(d.path("pipeline.toml"))
            .unwrap()
            .replace("mode = \"http_to\"", "mode = \"wasi_http_to\"")
            .replace(&other.url("/customers"), &url);
        let d2 = Dir::new();
        d2.write("pipeline.toml", text);
        let (out, _) = d2.run(&[]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains(&expect), "{expect}: {err}");
    }
    assert!(other.get("/log")["cursors"].as_array().unwrap().is_empty());
    // The manifest asks for HTTP; a pipeline that grants none is refused by
    // `sluice check`, which names the setting.
    let d = Dir::new();
    d.write(
        "pipeline.toml",
        format!(
            "name = \"c\"\n[source]\ntype = \"wasm\"\npath = \"{}\"\nconfig = {{ url = \"{}\" }}\n[sink]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n",
            connector("connectors/http-api-source").display(),
            crm.url("/customers")
        ),
    );
    let out = d.check();
    assert!(!out.status.success());
    assert!(
        stdout(&out)
            .contains("it needs outbound HTTP: grant the origins it may call in `grants.http"),
        "{}",
        stdout(&out)
    );
    // A config key the manifest does not know, and a missing required one.
    let text = std::fs::read_to_string(d.path("pipeline.toml"))
        .unwrap()
        .replace("config = { url", "config = { pgae_size = 3, nope")
        .replace(
            "[sink]",
            &format!("[source.grants]\nhttp = [\"{}\"]\n[sink]", crm.origin()),
        );
    d.write("pipeline.toml", text);
    let out = d.check();
    let err = stdout(&out);
    assert!(err.contains("its config needs `url`"), "{err}");
    assert!(err.contains("its config has no key `pgae_size`"), "{err}");
}

#[test]
fn only_connectors_signed_by_a_trusted_key_run_when_keys_are_required() {
    let d = Dir::new();
    let wasm = d.path("src.wasm");
    std::fs::copy(connector("tests/fixtures/broken-source"), &wasm).unwrap();
    for name in ["vendor", "stranger"] {
        let out = sluice()
            .args(["plugin", "keygen"])
            .arg(d.path(name))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let vendor_pub = std::fs::read_to_string(d.path("vendor.pub")).unwrap();
    let pipeline = |keys: &str| {
        format!(
            "name = \"signed\"\n[source]\ntype = \"wasm\"\npath = \"src.wasm\"\ntrusted_keys = [{keys}]\nconfig = {{ records = 10 }}\n[sink]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n"
        )
    };
    d.write("pipeline.toml", pipeline("\"file:vendor.pub\""));
    // Unsigned: refused.
    let (out, _) = d.run(&[]);
    assert!(
        stderr(&out).contains("is not signed (no `"),
        "{}",
        stderr(&out)
    );
    // Signed by a stranger: refused, naming the key.
    let sign = |key: &str| {
        let out = sluice()
            .args(["plugin", "sign"])
            .arg(&wasm)
            .arg("--key")
            .arg(d.path(key))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    };
    sign("stranger.key");
    let (out, _) = d.run(&[]);
    assert!(
        stderr(&out).contains("which is not one of the pipeline's `trusted_keys`"),
        "{}",
        stderr(&out)
    );
    // Signed by the vendor: runs (the key given inline this time).
    sign("vendor.key");
    d.write(
        "pipeline.toml",
        pipeline(&format!("\"{}\"", vendor_pub.trim())),
    );
    let (out, summary) = d.run(&[]);
    assert_balanced(&out, &summary);
    let out = sluice()
        .args(["plugin", "verify"])
        .arg(&wasm)
        .arg("--key")
        .arg(d.path("vendor.pub"))
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("valid signature by"),
        "{}",
        stderr(&out)
    );
    // One byte changed after signing: refused.
    let mut bytes = std::fs::read(&wasm).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&wasm, bytes).unwrap();
    let (out, _) = d.run(&[]);
    assert!(
        stderr(&out).contains("the file was changed after it was signed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn inspect_shows_the_world_the_manifest_and_what_it_asks_for() {
    let out = sluice()
        .args(["plugin", "inspect", "--json"])
        .arg(connector("connectors/http-api-source"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "source connector (world `source-connector`)");
    assert_eq!(v["manifest"]["name"], "http-api-source");
    assert_eq!(v["manifest"]["capabilities"]["http"], true);
    assert_eq!(v["manifest"]["config"]["url"]["required"], true);
    assert_eq!(v["signature"], "unsigned");
    assert!(
        v["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "sluice:plugin/http-client@0.1.0"),
        "{v}"
    );
    // A transform is told apart.
    let out = sluice()
        .args(["plugin", "inspect"])
        .arg(plugin("mapper"))
        .output()
        .unwrap();
    assert!(stdout(&out).contains("kind:      transform (world `transformer`)"));
    assert!(stdout(&out).contains("manifest:  none"));
    // A transform configured as a source is refused, naming what it exports.
    let d = Dir::new();
    d.write(
        "pipeline.toml",
        format!(
            "name = \"x\"\n[source]\ntype = \"wasm\"\npath = \"{}\"\n[sink]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n",
            plugin("mapper")
        ),
    );
    let out = d.check();
    assert!(
        stdout(&out).contains(
            "does not export `sluice:plugin/source@0.1.x` (it exports `sluice:plugin/transform@0.1.0`)"
        ),
        "{}",
        stdout(&out)
    );
    // A sink configured as a source is refused before it runs.
    let d = Dir::new();
    d.write(
        "pipeline.toml",
        format!(
            "name = \"x\"\n[source]\ntype = \"wasm\"\npath = \"{}\"\n[sink]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n",
            connector("connectors/http-bulk-sink").display()
        ),
    );
    let out = d.check();
    assert!(
        stdout(&out)
            .contains("is a sink connector (http-bulk-sink 1.0.0), configured as the source"),
        "{}",
        stdout(&out)
    );
}

/// `bytes` (a component) with one more custom section: the same code, a
/// new version (another content hash).
fn new_version(bytes: &[u8], tag: &str) -> Vec<u8> {
    let mut section = vec![tag.len() as u8];
    section.extend_from_slice(tag.as_bytes());
    section.extend_from_slice(b"v2");
    let mut out = bytes.to_vec();
    out.push(0);
    out.push(section.len() as u8);
    out.extend_from_slice(&section);
    out
}

#[test]
fn a_new_source_version_goes_live_between_polls_and_a_broken_one_is_refused() {
    let crm = Crm::start(&[
        "--records",
        "20000",
        "--slow-every",
        "1",
        "--slow-seconds",
        "0.1",
    ]);
    let d = Dir::new();
    let wasm = d.path("source.wasm");
    let original = std::fs::read(connector("connectors/http-api-source")).unwrap();
    std::fs::write(&wasm, &original).unwrap();
    d.write(
        "pipeline.toml",
        format!(
            r#"name = "swap"
[runtime]
cache_dir = "{cache}"
[source]
type = "wasm"
path = "source.wasm"
config = {{ url = "{url}", page_size = 200 }}
[source.grants]
http = ["{origin}"]
{sink}"#,
            cache = cache_dir(),
            url = crm.url("/customers"),
            origin = crm.origin(),
            sink = sqlite_sink(),
        ),
    );
    let summary = d.path("summary.json");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = sluice()
        .env("SLUICE_LOG", "info")
        .arg("run")
        .arg(d.path("pipeline.toml"))
        .arg("--summary-json")
        .arg(&summary)
        .args(["--admin", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `/status` through `sluice ctl`: the connector's panel.
    let status = || -> Json {
        let out = sluice()
            .args(["ctl", "--pipeline"])
            .arg(d.path("pipeline.toml"))
            .arg("status")
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Json::Null)
    };
    let pages = |n: usize| {
        let started = Instant::now();
        while crm.get("/log")["cursors"].as_array().unwrap().len() < n {
            assert!(started.elapsed() < Duration::from_secs(60), "no progress");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    pages(15);
    let first = status();
    let c = &first["connectors"][0];
    assert_eq!(c["kind"], "source", "{first}");
    assert_eq!(c["name"], "source", "{first}");
    assert_eq!(c["package"], "http-api-source 1.0.0", "{first}");
    assert_eq!(c["state"], "reading", "{first}");
    assert!(c["http_requests"].as_u64().unwrap() >= 15, "{first}");
    assert_eq!(c["http_denied"], 0, "{first}");
    let v1 = c["version"].as_str().unwrap().to_string();
    // A broken candidate (a truncated file): refused, the live one goes on.
    std::fs::write(&wasm, &original[..original.len() / 2]).unwrap();
    pages(30);
    // A good one: goes live, reading on from where the old one stopped.
    std::fs::write(&wasm, new_version(&original, "test")).unwrap();
    let started = Instant::now();
    let swapped = loop {
        let st = status();
        let swaps = st["connectors"][0]["swaps"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if swaps.iter().any(|s| s["live"] == true) {
            break st;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no swap in {st}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let c = &swapped["connectors"][0];
    let swaps = c["swaps"].as_array().unwrap();
    assert_eq!(swaps.len(), 2, "{swapped}");
    assert_eq!(swaps[0]["live"], false);
    assert_eq!(swaps[0]["from"], v1.as_str());
    assert!(
        swaps[0]["error"].as_str().unwrap().contains("source.wasm"),
        "{swapped}"
    );
    assert_eq!(swaps[1]["live"], true);
    assert_eq!(swaps[1]["from"], v1.as_str());
    assert_eq!(swaps[1]["to"], c["version"]);
    assert_ne!(c["version"], v1.as_str());
    let out = child.wait_with_output().unwrap();
    let json = std::fs::read_to_string(&summary)
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap());
    let s = assert_balanced(&out, &json);
    assert_eq!(s["written"], 20_000, "{s}");
    let err = stderr(&out);
    assert!(
        err.contains("new connector version refused, the live one goes on"),
        "{err}"
    );
    assert!(err.contains("connector swapped"), "{err}");
    // No page read twice, none skipped.
    let cursors = crm.get("/log")["cursors"].as_array().unwrap().clone();
    assert_eq!(cursors.len(), 100, "{cursors:?}");
    let distinct: HashSet<String> = cursors.iter().map(|c| c.to_string()).collect();
    assert_eq!(distinct.len(), 100);
    assert_eq!(
        d.sql(
            "out.db",
            "select count(*), count(distinct id) from customers"
        ),
        vec!["20000|20000"]
    );
}

/// `sluice plugin test DIR [--kit FILE]`: the conformance kit.
fn conformance(rel: &str, kit: Option<&std::path::Path>) -> std::process::Output {
    connector(rel);
    let mut cmd = sluice();
    cmd.args(["plugin", "test"]).arg(root().join(rel));
    if let Some(k) = kit {
        cmd.arg("--kit").arg(k);
    }
    cmd.output().unwrap()
}

#[test]
fn the_conformance_kit_passes_on_both_example_connectors() {
    for (rel, checks) in [
        ("connectors/http-api-source", 5),
        ("connectors/http-bulk-sink", 5),
    ] {
        let out = conformance(rel, None);
        let text = stdout(&out);
        assert!(out.status.success(), "{rel}: {text}{}", stderr(&out));
        assert_eq!(
            text.lines().filter(|l| l.starts_with("ok    ")).count(),
            checks,
            "{text}"
        );
        assert!(
            text.contains("resumes after kill -9 with nothing missed (killed at "),
            "{text}"
        );
        assert!(text.ends_with("all checks pass\n"), "{text}");
    }
}

#[test]
fn the_conformance_kit_fails_a_source_that_skips_a_record_on_resume() {
    let d = Dir::new();
    let kit = std::fs::read_to_string(root().join("tests/fixtures/broken-source/conformance.toml"))
        .unwrap();
    let ok = conformance("tests/fixtures/broken-source", None);
    assert!(ok.status.success(), "{}", stdout(&ok));
    let broken = d.write(
        "kit.toml",
        kit.replace("mode = \"ok\"", "mode = \"skip_on_resume\""),
    );
    let out = conformance("tests/fixtures/broken-source", Some(&broken));
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("ok    reads everything (5000 records, 0 read twice)"),
        "{text}"
    );
    assert!(
        text.contains("FAIL  resumes after kill -9 with nothing missed: 4999 distinct records read; the source holds 5000"),
        "{text}"
    );
    // Duplicates after a resume are allowed (at-least-once), and counted.
    let dup = d.write(
        "dup.toml",
        kit.replace("mode = \"ok\"", "mode = \"forget_resume\""),
    );
    let out = conformance("tests/fixtures/broken-source", Some(&dup));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let resumed = text
        .lines()
        .find(|l| l.starts_with("ok    resumes after kill -9"))
        .unwrap();
    assert!(
        resumed.contains("killed at ") && !resumed.contains(", 0 read twice"),
        "{text}"
    );
}

#[test]
fn connector_templates_build_and_pass_the_conformance_kit_as_generated() {
    let d = Dir::new();
    for (kind, lang) in [
        ("source", "rust"),
        ("sink", "rust"),
        ("source", "python"),
        ("sink", "python"),
        ("source", "js"),
        ("sink", "js"),
    ] {
        let name = format!("my-{kind}-{lang}");
        let out = sluice()
            .args([
                "plugin", "new", &name, "--kind", kind, "--lang", lang, "--path",
            ])
            .arg(d.path(&name))
            .arg("--sdk")
            .arg(root().join("sdk/rust"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let out = sluice()
            .args(["plugin", "test"])
            .arg(d.path(&name))
            .output()
            .unwrap();
        let text = stdout(&out);
        assert!(
            out.status.success(),
            "{kind} {lang}: {text}{}",
            stderr(&out)
        );
        assert_eq!(
            text.lines().filter(|l| l.starts_with("ok    ")).count(),
            5,
            "{text}"
        );
    }
    let out = sluice()
        .args([
            "plugin", "new", "x", "--kind", "source", "--lang", "c", "--path",
        ])
        .arg(d.path("x"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("connectors can be written in Rust, Python or JavaScript, not c yet"),
        "{}",
        stderr(&out)
    );
}

/// A bulk sink written in JavaScript, as a vendor would: the token from a
/// secret, refusals from the endpoint as dead letters with its code, the
/// secret never in a dead letter or the log.
#[test]
fn a_javascript_sink_authenticates_with_a_secret_and_dead_letters_refusals() {
    let crm = Crm::start(&["--token", TOKEN]);
    let d = Dir::new();
    let out = sluice()
        .args([
            "plugin", "new", "js-bulk", "--kind", "sink", "--lang", "js", "--path",
        ])
        .arg(d.path("js-bulk"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    d.write(
        "js-bulk/plugin.js",
        r#"import { InvalidConfig } from "sluice-sdk";
import { Fatal, Refusal, Transient, secret } from "sluice-sdk/connector.js";
import * as http from "sluice-sdk/http.js";

export default class Bulk {
  open(config) {
    if (typeof config.url !== "string") throw new InvalidConfig("`url`: give the bulk endpoint");
    this.url = config.url;
    const token = secret("token");
    if (token === null) throw new InvalidConfig("the pipeline grants no secret `token`");
    this.headers = { "content-type": "application/json", authorization: `Bearer ${token}` };
    console.warn(`writing with token ${token}`);
  }
  write(records, keys) {
    const body = JSON.stringify({ records: records.map((r, i) => ({ key: keys[i], record: r })) });
    const resp = http.request("POST", this.url, { headers: this.headers, body });
    if (resp.status === 429 || resp.status >= 500) throw new Transient(`${this.url} answered ${resp.status}`);
    if (resp.status !== 200) throw new Fatal(`${this.url} answered ${resp.status}`);
    return resp
      .json()
      .results.filter((r) => r.status !== "ok")
      .map((r) => new Refusal(r.index, r.code, `${r.message} (sent with ${secret("token")})`));
  }
}
"#,
    );
    let out = sluice()
        .args(["plugin", "build"])
        .arg(d.path("js-bulk"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut input = String::new();
    for id in 1..=3000 {
        let email = if id % 10 == 0 {
            "nobody".to_string()
        } else {
            format!("c{id}@example.com")
        };
        input.push_str(&format!(
            "{{\"id\":{id},\"name\":\"Zoë {id}\",\"email\":\"{email}\",\"big\":{}}}\n",
            9_007_199_254_740_993i64 + id
        ));
    }
    d.write("in.jsonl", input);
    d.write(
        "pipeline.toml",
        format!(
            r#"name = "js-sink"
[source]
type = "jsonl"
path = "in.jsonl"
[sink]
type = "wasm"
path = "js-bulk/build/js-bulk.wasm"
config = {{ url = "{url}" }}
[sink.grants]
http = ["{origin}"]
secrets = {{ token = {{ env = "CRM_TOKEN" }} }}
[dead_letter]
type = "jsonl"
path = "dead.jsonl"
"#,
            url = crm.url("/bulk"),
            origin = crm.origin()
        ),
    );
    let (out, summary) = run_with_token(&d);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary.unwrap();
    assert_eq!(s["records_in"], 3000, "{s}");
    assert_eq!(s["written"], 2700, "{s}");
    assert_eq!(s["dead_lettered"], 300, "{s}");
    let stats = crm.get("/bulk/stats");
    assert_eq!(stats["stored"], 2700, "{stats}");
    assert_eq!(stats["refused"], 300, "{stats}");
    // Every field arrived as written (the big integer as text, not rounded).
    let dump = crm.get("/bulk/dump");
    let one = dump["records"]
        .as_object()
        .unwrap()
        .values()
        .find(|r| r["id"] == 7)
        .unwrap_or_else(|| panic!("{dump}"));
    assert_eq!(one["name"], "Zoë 7");
    assert_eq!(one["big"], "9007199254741000");
    let dead = d.jsonl("dead.jsonl");
    assert_eq!(dead.len(), 300);
    assert_eq!(dead[0]["code"], "invalid_email", "{}", dead[0]);
    assert_eq!(dead[0]["stage"], "sink");
    let message = dead[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("invalid_email: email 'nobody' is not an address (sent with ***)"),
        "{message}"
    );
    let all = format!(
        "{}{}",
        stderr(&out),
        std::fs::read_to_string(d.path("dead.jsonl")).unwrap()
    );
    assert!(!all.contains(TOKEN), "{all}");
    assert!(
        stderr(&out).contains("writing with token ***"),
        "{}",
        stderr(&out)
    );
}

/// HTTPS through the host: an API behind a private CA is refused with a
/// certificate error until the pipeline trusts that CA (`grants.tls_ca`).
#[test]
fn https_to_a_private_ca_needs_the_ca_granted() {
    let d = Dir::new();
    let sh = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(d.path(""))
            .output()
            .expect("openssl is installed");
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    sh(&[
        "req",
        "-new",
        "-x509",
        "-days",
        "2",
        "-nodes",
        "-subj",
        "/CN=sluice test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    sh(&[
        "req",
        "-new",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    d.write("san.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
    sh(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-days",
        "2",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-extfile",
        "san.ext",
    ]);
    let cert = d.path("server.crt").display().to_string();
    let key = d.path("server.key").display().to_string();
    let crm = Crm::start(&["--records", "1200", "--tls-cert", &cert, "--tls-key", &key]);
    let origin = format!("https://localhost:{}", crm.port);
    let pipeline = |ca: &str| {
        format!(
            r#"name = "tls"
[source]
type = "wasm"
path = "{source}"
config = {{ url = "{origin}/customers", page_size = 100 }}
limits = {{ retry_initial_ms = 50, retry_max_ms = 100, max_retries = 2 }}
[source.grants]
http = ["{origin}"]
{ca}
{sink}"#,
            source = connector("connectors/http-api-source").display(),
            sink = sqlite_sink(),
        )
    };
    // Not trusted: the handshake fails, the error says why.
    d.write("pipeline.toml", pipeline(""));
    let (out, _) = d.run(&[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("TLS handshake failed") && err.contains("UnknownIssuer"),
        "{err}"
    );
    assert!(err.contains("gave up after 2 transient errors"), "{err}");
    // The CA granted: every record arrives over HTTPS.
    d.write("pipeline.toml", pipeline("tls_ca = \"ca.crt\""));
    let (out, summary) = d.run(&[]);
    let s = assert_balanced(&out, &summary);
    assert_eq!(s["written"], 1200, "{s}");
    assert_eq!(
        d.sql("out.db", "select count(distinct id) from customers"),
        vec!["1200"]
    );
    // A file that is not a CA certificate is refused before anything runs.
    d.write("pipeline.toml", pipeline("tls_ca = \"san.ext\""));
    let (out, _) = d.run(&["--reset"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("holds no certificate"),
        "{}",
        stderr(&out)
    );
}
