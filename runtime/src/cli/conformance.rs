//! The connector conformance kit: `sluice plugin test DIR` on a directory
//! with a `connector.toml` runs the connector, built, through the checks
//! every source or sink must pass, each in a fresh pipeline driven as a
//! separate `sluice run` process (so that it can be killed with `kill -9`):
//!
//! - sources: reads everything; resumes after a kill -9 at a random point
//!   with nothing missed; retries transient errors (HTTP 503 and 429
//!   injected by the host); stops cleanly on a fatal one (401 on every
//!   request) and resumes afterwards; a hung request hits its deadline and
//!   the read goes on;
//! - sinks: writes everything (refusals become dead letters); a kill -9
//!   between write and commit leaves each key once; the same fault checks.
//!
//! `DIR/conformance.toml` says how to reach a test system (see
//! docs/connectors.md): an optional `server` command (started afresh for
//! each check; `{port}` is taken from the `:PORT` at the end of the first
//! line it prints), the connector's `config`, `grants` and `limits`, how
//! many `records` a source holds (or a sink is given), the `key` field, and
//! for sinks a `count` command that prints how many records the target holds.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value as Json;

/// `DIR/conformance.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kit {
    /// Starts the system under test; `{dir}` is the connector directory.
    server: Option<Vec<String>>,
    /// Records the source holds, or the kit writes into the sink.
    records: u64,
    /// The field that identifies a record.
    key: String,
    #[serde(default)]
    config: toml::Table,
    #[serde(default)]
    grants: toml::Table,
    #[serde(default)]
    limits: toml::Table,
    /// Sinks: prints the number of records the target holds.
    count: Option<Vec<String>>,
    /// Seconds one run may take (default 300).
    #[serde(default = "d_timeout")]
    timeout_s: u64,
}

fn d_timeout() -> u64 {
    300
}

/// A running test system.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Env {
    kit_text: String,
    dir: PathBuf,
    component: PathBuf,
    sink: bool,
    http: bool,
    cache: PathBuf,
}

/// One fresh check: a scratch directory, a server, the kit with `{port}`.
struct Check {
    tmp: tempfile::TempDir,
    _server: Option<Server>,
    kit: Kit,
}

impl Env {
    fn check(&self) -> anyhow::Result<Check> {
        let mut server = None;
        let mut text = self.kit_text.clone();
        let pre: Kit = toml::from_str(&text.replace("{port}", "0"))?;
        if let Some(cmd) = &pre.server {
            let (prog, args) = cmd.split_first().context("`server` is an empty command")?;
            let mut child = Command::new(prog)
                .args(args)
                .current_dir(&self.dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("cannot start the `server` command `{prog}`"))?;
            let mut line = String::new();
            BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
            let port: u16 = line
                .trim()
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .with_context(|| {
                    format!(
                        "the `server` command's first line should end with `:PORT`; it was {line:?}"
                    )
                })?;
            text = text.replace("{port}", &port.to_string());
            server = Some(Server { child, port });
        }
        let kit: Kit = toml::from_str(&text).context("conformance.toml")?;
        let _ = server.as_ref().map(|s| s.port);
        Ok(Check {
            tmp: tempfile::tempdir()?,
            _server: server,
            kit,
        })
    }

    /// The pipeline of a check, with extra limits and injected faults.
    fn pipeline(
        &self,
        c: &Check,
        limits: &[(&str, toml::Value)],
        chaos: Option<(u32, u16, u64)>,
    ) -> anyhow::Result<PathBuf> {
        let mut connector = toml::Table::new();
        connector.insert("type".into(), "wasm".into());
        connector.insert("path".into(), self.component.display().to_string().into());
        connector.insert("config".into(), c.kit.config.clone().into());
        connector.insert("grants".into(), c.kit.grants.clone().into());
        let mut l = c.kit.limits.clone();
        l.entry("retry_initial_ms").or_insert(50.into());
        l.entry("retry_max_ms").or_insert(1000.into());
        for (k, v) in limits {
            l.insert((*k).into(), v.clone());
        }
        connector.insert("limits".into(), l.into());
        if let Some((every, status, delay)) = chaos {
            let mut t = toml::Table::new();
            t.insert("every".into(), i64::from(every).into());
            t.insert("status".into(), i64::from(status).into());
            t.insert("delay_ms".into(), (delay as i64).into());
            connector.insert("chaos".into(), t.into());
        }
        let mut p = toml::Table::new();
        p.insert("name".into(), "conformance".into());
        let mut rt = toml::Table::new();
        rt.insert("cache_dir".into(), self.cache.display().to_string().into());
        rt.insert("batch_size".into(), 100.into());
        p.insert("runtime".into(), rt.into());
        let jsonl = |path: &str| {
            let mut t = toml::Table::new();
            t.insert("type".into(), "jsonl".into());
            t.insert("path".into(), path.into());
            toml::Value::from(t)
        };
        if self.sink {
            let input = c.tmp.path().join("input.jsonl");
            if !input.exists() {
                std::fs::write(&input, sample_records(c.kit.records, &c.kit.key))?;
            }
            let mut src = toml::Table::new();
            src.insert("type".into(), "jsonl".into());
            src.insert("path".into(), "input.jsonl".into());
            src.insert("stream".into(), "records".into());
            src.insert("follow".into(), false.into());
            p.insert("source".into(), src.into());
            p.insert("sink".into(), connector.into());
        } else {
            p.insert("source".into(), connector.into());
            p.insert("sink".into(), jsonl("out.jsonl"));
        }
        p.insert("dead_letter".into(), jsonl("dead.jsonl"));
        let path = c.tmp.path().join("pipeline.toml");
        std::fs::write(&path, toml::to_string(&p)?)?;
        Ok(path)
    }

    fn sluice(&self, c: &Check) -> anyhow::Result<Command> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("run")
            .arg(c.tmp.path().join("pipeline.toml"))
            .current_dir(c.tmp.path())
            .env("SLUICE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Ok(cmd)
    }

    /// Runs the pipeline to its end (or the kit's timeout).
    fn run(&self, c: &Check) -> anyhow::Result<(ExitStatus, String)> {
        let mut child = self.sluice(c)?.spawn()?;
        let stderr = child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut e) = stderr {
                let _ = std::io::Read::read_to_string(&mut e, &mut s);
            }
            s
        });
        let deadline = Instant::now() + Duration::from_secs(c.kit.timeout_s);
        loop {
            if let Some(status) = child.try_wait()? {
                let err = reader.join().unwrap_or_default();
                return Ok((status, err));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the run did not finish within {} s (`timeout_s`)",
                    c.kit.timeout_s
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How far a run got: the source records its checkpoint says are
    /// committed (cheap to read, the same for sources and sinks).
    fn progress(&self, c: &Check) -> u64 {
        crate::pipeline::checkpoint::Checkpoints::open(&c.tmp.path().join(".sluice"))
            .ok()
            .and_then(|s| s.load("conformance").ok().flatten())
            .map_or(0, |cp| cp.records)
    }

    fn count(&self, c: &Check) -> anyhow::Result<u64> {
        let cmd = c
            .kit
            .count
            .as_ref()
            .context("a sink's conformance.toml needs `count`: a command printing how many records the target holds")?;
        let (prog, args) = cmd.split_first().context("`count` is an empty command")?;
        let out = Command::new(prog)
            .args(args)
            .current_dir(&self.dir)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .parse()
            .with_context(|| format!("`count` printed {text:?}, not a number"))
    }

    /// Source: the keys read (with repeats). Sink: none.
    fn keys(&self, c: &Check) -> anyhow::Result<Vec<String>> {
        let text = std::fs::read_to_string(c.tmp.path().join("out.jsonl")).unwrap_or_default();
        let mut keys = Vec::new();
        for line in text.lines() {
            let v: Json = serde_json::from_str(line)?;
            let k = v
                .get(&c.kit.key)
                .or_else(|| v.get("fields").and_then(|f| f.get(&c.kit.key)))
                .with_context(|| format!("a record has no `{}` field: {line}", c.kit.key))?;
            keys.push(k.to_string());
        }
        Ok(keys)
    }

    /// Distinct records the sink refused (dead letters).
    fn refused(&self, c: &Check) -> u64 {
        let text = std::fs::read_to_string(c.tmp.path().join("dead.jsonl")).unwrap_or_default();
        let set: HashSet<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Json>(l).ok())
            .map(|v| v["record"]["fields"][&c.kit.key].to_string())
            .collect();
        set.len() as u64
    }

    /// Checks that everything arrived exactly as a complete run should.
    fn complete(&self, c: &Check) -> anyhow::Result<String> {
        if self.sink {
            let refused = self.refused(c);
            let held = self.count(c)?;
            let want = c.kit.records - refused;
            if held != want {
                bail!(
                    "the target holds {held} records; {want} expected ({} written, {refused} refused): a key is missing or was written twice",
                    c.kit.records
                );
            }
            Ok(format!("{held} held, {refused} refused"))
        } else {
            let keys = self.keys(c)?;
            let set: HashSet<&String> = keys.iter().collect();
            if set.len() as u64 != c.kit.records {
                bail!(
                    "{} distinct records read; the source holds {}",
                    set.len(),
                    c.kit.records
                );
            }
            Ok(format!(
                "{} records, {} read twice",
                set.len(),
                keys.len() - set.len()
            ))
        }
    }
}

/// Varied records for a sink: Unicode, quotes and line breaks, numbers,
/// booleans, nulls, nested JSON.
fn sample_records(n: u64, key: &str) -> String {
    let names = [
        "Ana Silva",
        "Bjørn Øster",
        "Chloé \"Coco\" Dubois",
        "Dmitri\nIvanov",
        "郭伟",
        "",
    ];
    let mut out = String::new();
    for i in 1..=n {
        let v = serde_json::json!({
            key: i,
            "name": names[(i % 6) as usize],
            "email": format!("user{i}@example.com"),
            "amount": (i as f64) * 1.25,
            "active": i % 3 != 0,
            "note": if i % 5 == 0 { Json::Null } else { Json::String(format!("n{i}")) },
            "tags": if i % 7 == 0 { serde_json::json!(["a", {"b": i}]) } else { serde_json::json!([]) },
        });
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out
}

fn random_fraction() -> f64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    0.2 + (u64::from_le_bytes(b) % 600) as f64 / 1000.0
}

/// Runs the kit on the connector in `dir`; prints one line per check.
pub(super) fn run_kit(dir: &Path, kit: Option<&Path>) -> anyhow::Result<bool> {
    let built = crate::toolchain::build(dir, None)?;
    let kind = crate::toolchain::connector_kind(dir)?.context("not a connector")?;
    let kit_path = kit.map_or_else(|| dir.join("conformance.toml"), Path::to_path_buf);
    let kit_text = std::fs::read_to_string(&kit_path).with_context(|| {
        format!(
            "`{}` is missing: it tells the kit how to reach a test system (see docs/connectors.md)",
            kit_path.display()
        )
    })?;
    let dir_abs = std::fs::canonicalize(dir)?;
    let kit_text = kit_text.replace("{dir}", &dir_abs.display().to_string());
    let bytes = std::fs::read(&built.component)?;
    let manifest = crate::connector::package::read_manifest(&bytes)
        .map_err(anyhow::Error::msg)?
        .context("the component has no manifest")?;
    let cache = std::env::temp_dir().join("sluice-conformance-cache");
    std::fs::create_dir_all(&cache)?;
    let env = Env {
        kit_text,
        dir: dir_abs,
        component: std::fs::canonicalize(&built.component)?,
        sink: kind == crate::connector::Kind::Sink,
        http: manifest.capabilities.http,
        cache,
    };
    println!(
        "conformance of {} {} ({} connector)",
        manifest.name, manifest.version, manifest.kind
    );
    let mut failed = 0;
    let mut report = |name: &str, r: anyhow::Result<String>| match r {
        Ok(detail) => println!("ok    {name} ({detail})"),
        Err(e) => {
            failed += 1;
            println!("FAIL  {name}: {e:#}");
        }
    };
    report("reads everything", check_all(&env));
    report(
        "resumes after kill -9 with nothing missed",
        check_kill(&env),
    );
    if env.http {
        report("retries transient errors (503, 429)", check_transient(&env));
        report(
            "stops cleanly on a fatal error, then resumes",
            check_fatal(&env),
        );
        report("a hung request hits its deadline", check_hang(&env));
    } else {
        println!("skip  HTTP fault checks (the manifest asks for no HTTP)");
    }
    if failed == 0 {
        println!("all checks pass");
    } else {
        println!("{failed} check(s) failed");
    }
    Ok(failed == 0)
}

fn finished(status: ExitStatus, err: &str) -> anyhow::Result<()> {
    if !status.success() {
        let last: Vec<&str> = err.lines().rev().take(3).collect();
        bail!(
            "the run failed: {}",
            last.into_iter().rev().collect::<Vec<_>>().join(" | ")
        );
    }
    Ok(())
}

fn check_all(env: &Env) -> anyhow::Result<String> {
    let c = env.check()?;
    env.pipeline(&c, &[], None)?;
    let (status, err) = env.run(&c)?;
    finished(status, &err)?;
    env.complete(&c)
}

fn check_kill(env: &Env) -> anyhow::Result<String> {
    let c = env.check()?;
    env.pipeline(&c, &[], None)?;
    // The kill lands once a random share (20-80 %) of the records is
    // committed.
    let target = ((c.kit.records as f64) * random_fraction()) as u64;
    let mut child = env.sluice(&c)?.stderr(Stdio::null()).spawn()?;
    let deadline = Instant::now() + Duration::from_secs(c.kit.timeout_s);
    let mut killed_at = None;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            break;
        }
        if env.progress(&c) >= target.max(1) {
            child.kill()?;
            let _ = child.wait();
            killed_at = Some(env.progress(&c));
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    let inconclusive = |when: String| {
        anyhow::anyhow!(
            "inconclusive: {when}, so nothing was resumed; give the test system more `records`, or make it slower"
        )
    };
    let killed_at = match killed_at {
        None => return Err(inconclusive("the run ended before the kill".into())),
        Some(p) if p >= c.kit.records => {
            return Err(inconclusive(format!(
                "all {p} records were through at the kill"
            )));
        }
        Some(p) => p,
    };
    let (status, err) = env.run(&c)?;
    finished(status, &err)?;
    let detail = env.complete(&c)?;
    Ok(format!(
        "killed at {killed_at} of {}; then {detail}",
        c.kit.records
    ))
}

fn check_transient(env: &Env) -> anyhow::Result<String> {
    let c = env.check()?;
    env.pipeline(&c, &[], Some((3, 503, 0)))?;
    let (status, err) = env.run(&c)?;
    finished(status, &err)?;
    let first = env.complete(&c)?;
    let c = env.check()?;
    env.pipeline(&c, &[], Some((4, 429, 0)))?;
    let (status, err) = env.run(&c)?;
    finished(status, &err)?;
    Ok(format!(
        "503 on every 3rd request: {first}; 429 on every 4th: {}",
        env.complete(&c)?
    ))
}

fn check_fatal(env: &Env) -> anyhow::Result<String> {
    let c = env.check()?;
    env.pipeline(&c, &[("max_retries", 3.into())], Some((1, 401, 0)))?;
    let started = Instant::now();
    let (status, err) = env.run(&c)?;
    if status.success() {
        bail!("the run succeeded although every request was answered 401");
    }
    if err.contains("panicked") || err.contains("trapped") {
        bail!(
            "the connector crashed instead of reporting the error: {}",
            err.lines().last().unwrap_or("")
        );
    }
    let took = started.elapsed();
    env.pipeline(&c, &[], None)?;
    let (status, err) = env.run(&c)?;
    finished(status, &err)?;
    Ok(format!(
        "stopped in {:.1} s; then {}",
        took.as_secs_f64(),
        env.complete(&c)?
    ))
}

fn check_hang(env: &Env) -> anyhow::Result<String> {
    let c = env.check()?;
    env.pipeline(
        &c,
        &[("request_timeout_ms", 1000.into())],
        Some((5, 0, 3_600_000)),
    )?;
    let started = Instant::now();
    let (status, err) = env.run(&c)?;
    finished(status, &err)?;
    Ok(format!(
        "every 5th request stalled, cut at 1 s: {} in {:.1} s",
        env.complete(&c)?,
        started.elapsed().as_secs_f64()
    ))
}
