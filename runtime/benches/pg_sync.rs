//! PostgreSQL live sync through the three first-party plugins into
//! PostgreSQL, on a server this bench starts with `scripts/postgres.sh`
//! (source and target databases on the same server, as on one machine):
//!
//! 1. snapshot rows/s of a table of `SLUICE_BENCH_ROWS` rows (default 500k);
//! 2. streaming changes/s: a burst of `SLUICE_BENCH_BURST` inserts (default
//!    200k, 100 per transaction) caught up by a running sync;
//! 3. commit-to-commit latency (p50/p99) under a steady 5k changes/s for
//!    `SLUICE_BENCH_SECS` seconds (default 20): each source row carries its
//!    insert time, each target row the time it arrived (a column default).
//!
//! Run after `scripts/build-plugins.sh`: `cargo bench -p sluice-runtime --bench pg_sync`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn script(root: &Path, args: &[&str]) {
    let ok = Command::new("bash")
        .arg(root.join("scripts/postgres.sh"))
        .args(args)
        .status()
        .expect("scripts/postgres.sh")
        .success();
    assert!(ok, "scripts/postgres.sh {args:?} failed");
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let rows = env_u64("SLUICE_BENCH_ROWS", 500_000);
    let burst = env_u64("SLUICE_BENCH_BURST", 200_000);
    let secs = env_u64("SLUICE_BENCH_SECS", 20);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let data = dir.path().join("pg");
    script(
        &root,
        &["start", data.to_str().expect("utf-8"), &port.to_string()],
    );
    let url = |db: &str| format!("postgres://postgres:postgres@127.0.0.1:{port}/{db}");
    let mut admin = postgres::Client::connect(&url("postgres"), postgres::NoTls).expect("connect");
    admin.batch_execute("CREATE DATABASE legacy").expect("db");
    admin.batch_execute("CREATE DATABASE target").expect("db");
    let mut src = postgres::Client::connect(&url("legacy"), postgres::NoTls).expect("connect");
    src.batch_execute(&format!(
        "CREATE TABLE customers (id bigint PRIMARY KEY, first_name text, last_name text, email text,
            country text, balance text, written_at timestamptz DEFAULT clock_timestamp());
         INSERT INTO customers (id, first_name, last_name, email, country, balance)
         SELECT i, '  ana  ', 'DE SOUSA', 'Ana.' || i || '@Example.org', 'fr', '1.234,50'
         FROM generate_series(1, {rows}) i;
         ANALYZE customers;"
    ))
    .expect("seed");
    let mut dst = postgres::Client::connect(&url("target"), postgres::NoTls).expect("connect");
    dst.batch_execute(
        "CREATE TABLE customers (id bigint PRIMARY KEY, first_name text, last_name text, email text,
            country text, balance_cents bigint, written_at timestamptz, arrived timestamptz DEFAULT clock_timestamp())",
    )
    .expect("target");
    let plugin = |n: &str| {
        root.join(format!("build/plugins/{n}.wasm"))
            .display()
            .to_string()
    };
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"name = "bench"
[source]
type = "postgres"
url = "{src}"
tables = ["customers"]

[[transforms]]
name = "map"
plugin = "{mapper}"
[transforms.config]
rename = {{ balance = "balance_cents" }}

[[transforms]]
name = "cleanse"
plugin = "{cleanse}"
[transforms.config]
collapse_whitespace = true
[transforms.config.fields]
first_name = {{ case = "title" }}
last_name = {{ case = "title" }}
email = {{ case = "lower" }}
country = {{ case = "upper" }}
balance_cents = {{ money = {{ decimal_separator = "," }} }}

[[transforms]]
name = "validate"
plugin = "{validate}"
[transforms.config.fields]
email = {{ required = true, email = true }}
country = {{ required = true }}

[sink]
type = "postgres"
url = "{dst}"

[runtime]
batch_size = 1000
"#,
            src = url("legacy"),
            dst = url("target"),
            mapper = plugin("mapper"),
            cleanse = plugin("cleanse"),
            validate = plugin("validate"),
        ),
    )
    .expect("pipeline");
    let sluice = env!("CARGO_BIN_EXE_sluice");

    // 1. Snapshot.
    let t = Instant::now();
    let out = Command::new(sluice)
        .args([
            "run",
            pipeline.to_str().expect("utf-8"),
            "--until-caught-up",
            "--no-progress",
        ])
        .env("SLUICE_LOG", "warn")
        .output()
        .expect("sluice");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snap = t.elapsed();
    let count = |c: &mut postgres::Client| -> i64 {
        c.query_one("SELECT count(*) FROM customers", &[])
            .map(|r| r.get(0))
            .unwrap_or(0)
    };
    assert_eq!(count(&mut dst), rows as i64, "every row arrived");
    println!(
        "snapshot: {rows} rows in {:.2} s = {:.0} rows/s (mapper, cleanse, validate, into PostgreSQL)",
        snap.as_secs_f64(),
        rows as f64 / snap.as_secs_f64()
    );

    // 2. Streaming burst.
    let mut run = Command::new(sluice)
        .args(["run", pipeline.to_str().expect("utf-8"), "--no-progress"])
        .env("SLUICE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("sluice");
    std::thread::sleep(Duration::from_secs(2));
    let base = rows as i64 + 1;
    let t = Instant::now();
    let per_txn = 100i64;
    let mut next = base;
    while next < base + burst as i64 {
        src.batch_execute(&format!(
            "INSERT INTO customers (id, first_name, last_name, email, country, balance)
             SELECT i, 'bo', 'li', 'b' || i || '@x.org', 'de', '5,00' FROM generate_series({next}, {}) i",
            next + per_txn - 1
        ))
        .expect("burst");
        next += per_txn;
    }
    let written = t.elapsed();
    let want = rows as i64 + (next - base);
    while count(&mut dst) < want {
        std::thread::sleep(Duration::from_millis(20));
    }
    let caught = t.elapsed();
    println!(
        "streaming: {} inserts ({per_txn}/txn) written in {:.2} s, caught up after {:.2} s = {:.0} changes/s",
        next - base,
        written.as_secs_f64(),
        caught.as_secs_f64(),
        (next - base) as f64 / caught.as_secs_f64()
    );

    // 3. Latency at a steady 5k changes/s (50 rows every 10 ms). The
    // writer commits synchronously, as an application does: the server's
    // `synchronous_commit = off` (set for test speed) would delay the WAL
    // that logical decoding may read by up to `wal_writer_delay`.
    src.batch_execute("SET synchronous_commit = on")
        .expect("session");
    let start_id = next;
    let t = Instant::now();
    let mut tick = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        src.batch_execute(&format!(
            "INSERT INTO customers (id, first_name, last_name, email, country, balance)
             SELECT i, 'cy', 'ro', 'c' || i || '@x.org', 'es', '1,00' FROM generate_series({next}, {}) i",
            next + 49
        ))
        .expect("steady");
        next += 50;
        tick += Duration::from_millis(10);
        if let Some(d) = tick.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    let rate = (next - start_id) as f64 / t.elapsed().as_secs_f64();
    let want = rows as i64 + (next - base);
    while count(&mut dst) < want {
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe_kill(run.id());
    let _ = run.wait();
    let lat: Vec<f64> = dst
        .query(
            "SELECT extract(epoch FROM arrived - written_at)::float8 * 1000 FROM customers WHERE id >= $1 ORDER BY 1",
            &[&start_id],
        )
        .expect("latency")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
    println!(
        "latency at {rate:.0} changes/s over {secs} s ({} rows): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        p(0.5),
        p(0.99),
        p(1.0)
    );
    script(&root, &["stop", data.to_str().expect("utf-8"), "immediate"]);
}

fn unsafe_kill(pid: u32) {
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
}
