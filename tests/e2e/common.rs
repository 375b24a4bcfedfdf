//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value as Json;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// The directory of built plugins; builds them once per test binary.
pub fn plugins() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new("bash")
                .arg(root().join("scripts/build-plugins.sh"))
                .status()
                .expect("run scripts/build-plugins.sh");
            assert!(status.success(), "scripts/build-plugins.sh failed");
            root().join("build/plugins")
        })
        .clone()
}

/// A plugin file by name (`mapper`, `fixture-misbehave`...).
pub fn plugin(name: &str) -> String {
    plugins().join(format!("{name}.wasm")).display().to_string()
}

/// The `sluice` binary under test.
pub fn sluice() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.env("SLUICE_LOG", "warn");
    c.env_remove("SLUICE_CACHE_DIR");
    c
}

/// A scratch directory for one test.
pub struct Dir {
    pub tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Self {
        Dir {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Runs `sluice run` on `pipeline.toml` here, with a JSON summary.
    /// `sluice check` on the directory's `pipeline.toml`.
    pub fn check(&self) -> Output {
        sluice()
            .arg("check")
            .arg(self.path("pipeline.toml"))
            .output()
            .unwrap()
    }

    pub fn run(&self, extra: &[&str]) -> (Output, Option<Json>) {
        let summary = self.path("summary.json");
        let _ = std::fs::remove_file(&summary);
        let out = sluice()
            .arg("run")
            .arg(self.path("pipeline.toml"))
            .arg("--summary-json")
            .arg(&summary)
            .args(extra)
            .output()
            .unwrap();
        let json = std::fs::read_to_string(&summary)
            .ok()
            .map(|t| serde_json::from_str(&t).unwrap());
        (out, json)
    }

    /// Lines of a JSONL file, parsed.
    pub fn jsonl(&self, rel: &str) -> Vec<Json> {
        match std::fs::read_to_string(self.path(rel)) {
            Ok(t) => t
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Rows of a query on a SQLite file, each row's columns joined by `|`.
    pub fn sql(&self, rel: &str, query: &str) -> Vec<String> {
        let conn = rusqlite::Connection::open(self.path(rel)).unwrap();
        let mut stmt = conn.prepare(query).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            let mut cols = Vec::new();
            for i in 0..n {
                let v: rusqlite::types::Value = r.get(i)?;
                cols.push(match v {
                    rusqlite::types::Value::Null => "NULL".to_string(),
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Real(f) => f.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    rusqlite::types::Value::Blob(b) => format!("{b:?}"),
                });
            }
            Ok(cols.join("|"))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts the run succeeded and that every record is accounted for.
pub fn assert_balanced(out: &Output, summary: &Option<Json>) -> Json {
    assert!(out.status.success(), "sluice run failed: {}", stderr(out));
    let s = summary.clone().expect("a summary was written");
    let n = |k: &str| s[k].as_u64().unwrap();
    assert_eq!(
        n("records_in") + n("expanded"),
        n("written") + n("dropped") + n("dead_lettered"),
        "records do not balance: {s}"
    );
    s
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `sluice ctl --pipeline FILE ...`: the address and token come from the
/// run's admin file.
pub fn ctl(pipeline: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = sluice()
        .arg("ctl")
        .arg("--pipeline")
        .arg(pipeline)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}
