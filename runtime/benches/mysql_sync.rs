//! The MySQL/MariaDB source on a MariaDB this bench starts with
//! `scripts/mariadb.sh`, into SQLite through the mapper plugin, each
//! figure beside a reference measured in the same run on the same data:
//!
//! 1. snapshot rows/s of `SLUICE_BENCH_ROWS` varied rows (default 500k),
//!    beside the `mariadb` client reading the same table (`SELECT *`,
//!    streamed, to /dev/null);
//! 2. binlog changes/s: `SLUICE_BENCH_BURST` changes (default 200k:
//!    inserts, updates and deletes, 100 rows per transaction) written while
//!    the sync is stopped, then caught up (`--until-caught-up`), beside
//!    `mariadb-binlog` decoding the same binlog range from the server;
//! 3. commit-to-commit latency (p50/p99) at a steady rate for
//!    `SLUICE_BENCH_SECS` seconds (default 20): each source row carries
//!    the time it was written, each target row the time it arrived.
//!
//! Run after `scripts/build-plugins.sh`:
//! `cargo bench -p sluice-runtime --bench mysql_sync`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Server {
    root: PathBuf,
    dir: PathBuf,
}

impl Server {
    fn script(&self, args: &[&str]) {
        let ok = Command::new("bash")
            .arg(self.root.join("scripts/mariadb.sh"))
            .args(args)
            .status()
            .expect("scripts/mariadb.sh")
            .success();
        assert!(ok, "scripts/mariadb.sh {args:?} failed");
    }

    fn client(&self) -> Command {
        let mut c = Command::new("mariadb");
        c.arg(format!(
            "--socket={}",
            self.dir.join("mysql.sock").display()
        ))
        .args(["-uroot", "-N", "-B"]);
        c
    }

    /// Runs SQL; the output.
    fn sql(&self, sql: &str) -> String {
        let mut child = self
            .client()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("mariadb");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(sql.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("mariadb");
        assert!(out.status.success(), "SQL failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The binlog's end: file and position.
    fn end(&self) -> (String, u64) {
        let s = self.sql("SHOW MASTER STATUS");
        let mut parts = s.split('\t');
        let file = parts.next().unwrap_or_default().to_string();
        let pos = parts
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(4);
        (file, pos)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.script(&["stop", self.dir.to_str().expect("utf-8")]);
    }
}

fn sqlite_count(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .and_then(|c| c.query_row("SELECT count(*) FROM customers", [], |r| r.get(0)))
        .unwrap_or(0)
}

fn run_until_caught_up(sluice: &str, pipeline: &Path, reset: bool) -> Duration {
    let t = Instant::now();
    let out = Command::new(sluice)
        .args([
            "run",
            pipeline.to_str().expect("utf-8"),
            "--until-caught-up",
            "--no-progress",
        ])
        .args(reset.then_some("--reset"))
        .env("SLUICE_LOG", "warn")
        .output()
        .expect("sluice");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let rows = env_u64("SLUICE_BENCH_ROWS", 500_000);
    let burst = env_u64("SLUICE_BENCH_BURST", 200_000);
    let secs = env_u64("SLUICE_BENCH_SECS", 20);
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let server = Server {
        root: root.clone(),
        dir: tmp.path().join("mariadb"),
    };
    server.script(&[
        "start",
        server.dir.to_str().expect("utf-8"),
        &port.to_string(),
    ]);
    // Varied rows: names of different lengths and scripts (Latin-1 and
    // UTF-8 columns), exact decimals, dates, an enum, JSON.
    let columns = "id, first_name, last_name, email, city, balance, born, status, prefs";
    let values = |from: &str| {
        format!(
            "seq, ELT(1 + seq % 7, 'Ana', 'Zoë', 'Jürgen', 'Françoise', 'Bo', 'Maximilian-Alexander', 'Łukasz'),
             concat(ELT(1 + seq % 5, 'de Sousa', 'Müller', 'O''Brien', 'Núñez', 'Li'), ' ', seq % 977),
             IF(seq % 50 = 0, NULL, concat('user.', seq, '@', ELT(1 + seq % 3, 'example.org', 'mail.example.com', 'x.io'))),
             ELT(1 + seq % 4, 'Köln', 'Genève', 'Zürich', 'Porto'),
             (seq * 7919 % 10000000) / 100 - 20000,
             date '1940-01-01' + INTERVAL (seq * 37 % 25000) DAY,
             ELT(1 + seq % 3, 'prospect', 'active', 'closed'),
             json_object('lang', ELT(1 + seq % 3, 'de', 'fr', 'pt'), 'score', seq % 101, 'tags', json_array(seq % 7, seq % 11))
             FROM {from}"
        )
    };
    server.sql(&format!(
        "CREATE DATABASE legacy; USE legacy;
         CREATE TABLE customers (id bigint PRIMARY KEY, first_name varchar(40), last_name varchar(60),
            email varchar(120), city varchar(40) CHARACTER SET latin1, balance decimal(14,2), born date,
            status enum('prospect','active','closed'), prefs json,
            written_at timestamp(6) NOT NULL DEFAULT current_timestamp(6));
         INSERT INTO customers ({columns}) SELECT {};",
        values(&format!("seq_1_to_{rows}"))
    ));
    let db = tmp.path().join("target.db");
    // The target table with an arrival time, so latency is read off the
    // rows themselves.
    rusqlite::Connection::open(&db)
        .and_then(|c| {
            c.execute_batch(
                "CREATE TABLE customers (id INTEGER PRIMARY KEY, first_name TEXT, surname TEXT, email TEXT,
                    city TEXT, balance TEXT, born TEXT, status TEXT, prefs TEXT, written_at TEXT,
                    arrived TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now')))",
            )
        })
        .expect("target table");
    let pipeline = tmp.path().join("pipeline.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"name = "bench"
[source]
type = "mysql"
url = "mysql://root:root@127.0.0.1:{port}/legacy"
tables = ["customers"]

[[transforms]]
name = "map"
plugin = "{mapper}"
[transforms.config]
rename = {{ last_name = "surname" }}

[sink]
type = "sqlite"
path = "{db}"

[runtime]
batch_size = 1000
"#,
            mapper = root.join("build/plugins/mapper.wasm").display(),
            db = db.display(),
        ),
    )
    .expect("pipeline");
    let sluice = env!("CARGO_BIN_EXE_sluice");

    // 1. Snapshot, twice, each beside the client reading the same rows.
    for round in 1..=2 {
        let t = Instant::now();
        let out = server
            .client()
            .args(["--quick", "-e", "SELECT * FROM legacy.customers"])
            .stdout(Stdio::null())
            .status()
            .expect("mariadb");
        assert!(out.success());
        let reference = t.elapsed();
        rusqlite::Connection::open(&db)
            .and_then(|c| c.execute_batch("DELETE FROM customers"))
            .expect("empty the target");
        let took = run_until_caught_up(sluice, &pipeline, true);
        assert_eq!(sqlite_count(&db), rows as i64, "every row arrived");
        println!(
            "snapshot {round}: {rows} rows in {:.2} s = {:.0} rows/s; the mariadb client reading them: {:.2} s = {:.0} rows/s; ratio {:.2}",
            took.as_secs_f64(),
            rows as f64 / took.as_secs_f64(),
            reference.as_secs_f64(),
            rows as f64 / reference.as_secs_f64(),
            reference.as_secs_f64() / took.as_secs_f64(),
        );
    }

    // 2. A burst of changes written while the sync is stopped: inserts,
    // updates of every column, deletes, 100 rows per transaction.
    let (file, from) = server.end();
    let mut sql = String::from("USE legacy;\n");
    let per_txn = 100u64;
    let mut changes = 0u64;
    let mut next = rows + 1;
    let mut k = 0u64;
    while changes < burst {
        let (lo, hi) = (next, next + per_txn - 1);
        match k % 4 {
            0 | 1 => {
                sql.push_str(&format!(
                    "INSERT INTO customers ({columns}) SELECT {};\n",
                    values(&format!("seq_{lo}_to_{hi}"))
                ));
                next += per_txn;
            }
            2 => {
                let a = (k * 997) % rows.max(per_txn) + 1;
                sql.push_str(&format!(
                    "UPDATE customers SET first_name = concat(first_name, '·'), balance = balance + 1.01, status = 'active', prefs = json_set(prefs, '$.score', 1) WHERE id BETWEEN {a} AND {};\n",
                    a + per_txn - 1
                ));
            }
            _ => {
                let a = (k * 1999) % rows.max(per_txn) + 1;
                sql.push_str(&format!(
                    "DELETE FROM customers WHERE id BETWEEN {a} AND {};\n",
                    a + per_txn - 1
                ));
            }
        }
        changes += per_txn;
        k += 1;
    }
    server.sql(&sql);
    let (end_file, end) = server.end();
    // The reference: the server's own binlog reader decoding the range.
    let t = Instant::now();
    let ok = Command::new("mariadb-binlog")
        .args([
            "--read-from-remote-server",
            "--host=127.0.0.1",
            &format!("--port={port}"),
            "--user=root",
            "--password=root",
            "--base64-output=DECODE-ROWS",
            "--verbose",
            &format!("--start-position={from}"),
            &format!("--stop-position={end}"),
            &file,
        ])
        .args((end_file != file).then_some(end_file.as_str()))
        .stdout(Stdio::null())
        .status()
        .expect("mariadb-binlog")
        .success();
    assert!(ok, "mariadb-binlog failed");
    let reference = t.elapsed();
    let took = run_until_caught_up(sluice, &pipeline, false);
    let binlog_mb = (end - from) as f64 / 1e6;
    println!(
        "binlog catch-up: {changes} changes ({binlog_mb:.0} MB of binlog) in {:.2} s = {:.0} changes/s; mariadb-binlog decoding them: {:.2} s = {:.0} changes/s; ratio {:.2}",
        took.as_secs_f64(),
        changes as f64 / took.as_secs_f64(),
        reference.as_secs_f64(),
        changes as f64 / reference.as_secs_f64(),
        reference.as_secs_f64() / took.as_secs_f64(),
    );

    // 3. Latency at a steady rate: 20 rows per transaction, then 10 ms of
    // sleep, from one client session, while the sync runs.
    let mut run = Command::new(sluice)
        .args(["run", pipeline.to_str().expect("utf-8"), "--no-progress"])
        .env("SLUICE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("sluice");
    std::thread::sleep(Duration::from_secs(2));
    let start_id = next + 1_000_000;
    let txns = secs * 100;
    let mut sql = String::from("USE legacy;\n");
    for i in 0..txns {
        let lo = start_id + i * 20;
        sql.push_str(&format!(
            "INSERT INTO customers ({columns}) SELECT {};\nDO SLEEP(0.01);\n",
            values(&format!("seq_{lo}_to_{}", lo + 19))
        ));
    }
    let t = Instant::now();
    server.sql(&sql);
    let wrote = t.elapsed();
    let want = txns * 20;
    let until = Instant::now() + Duration::from_secs(60);
    let arrived = |db: &Path| -> i64 {
        rusqlite::Connection::open(db)
            .and_then(|c| {
                c.query_row(
                    "SELECT count(*) FROM customers WHERE id >= ?1",
                    [start_id as i64],
                    |r| r.get(0),
                )
            })
            .unwrap_or(0)
    };
    while arrived(&db) < want as i64 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(run.id() as i32, libc::SIGTERM);
    }
    let _ = run.wait();
    let mut lat: Vec<f64> = rusqlite::Connection::open(&db)
        .and_then(|c| {
            let mut st = c.prepare(
                "SELECT (julianday(arrived) - julianday(replace(written_at, 'Z', ''))) * 86400000.0 FROM customers WHERE id >= ?1",
            )?;
            st.query_map([start_id as i64], |r| r.get::<_, f64>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("latencies");
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "latency: {} rows at {:.0} rows/s for {:.1} s, write to arrival: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        want as f64 / wrote.as_secs_f64(),
        wrote.as_secs_f64(),
        q(0.5),
        q(0.99),
        q(1.0)
    );
    drop(server);
}
