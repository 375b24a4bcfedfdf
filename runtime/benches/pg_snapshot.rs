//! PostgreSQL → PostgreSQL snapshot with no plugins, against a `COPY` pipe
//! between the same two databases, in the same run:
//!
//! ```text
//! psql -c 'COPY t TO STDOUT' legacy | psql -c 'COPY t FROM STDIN' target
//! ```
//!
//! The table has `SLUICE_BENCH_ROWS` rows (default 1M) of a bigint key,
//! text, numeric, timestamptz and jsonb, all varied. Each round empties the
//! target and times the pipe, then Sluice at batch 1000 (the default) and
//! 10000, and at 10000 with the table read in 2 and 4 key ranges at once
//! (`snapshot_workers`); the target must then hold exactly the source's rows (compared by
//! PostgreSQL, as text). `SLUICE_BENCH_ROUNDS` rounds (default 3); the
//! median of each is reported with its ratio to the pipe's.
//! `SLUICE_BENCH_BASELINE=PATH` also times another `sluice` binary (an
//! earlier build) at batch 1000 in each round, for a before/after in the
//! same run.
//!
//! Run: `cargo bench -p sluice-runtime --bench pg_snapshot`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The whole table as PostgreSQL prints it, hashed.
fn digest(c: &mut postgres::Client) -> String {
    c.query_one(
        "SELECT count(*)::text || ' ' || md5(string_agg(t::text, E'\\n' ORDER BY id)) FROM t",
        &[],
    )
    .map(|r| r.get(0))
    .expect("digest")
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let rows = env_u64("SLUICE_BENCH_ROWS", 1_000_000);
    let rounds = env_u64("SLUICE_BENCH_ROUNDS", 3).max(1);
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
    let ddl = "CREATE TABLE t (id bigint PRIMARY KEY, name text, amount numeric(12,2), at timestamptz, doc jsonb)";
    let mut src = postgres::Client::connect(&url("legacy"), postgres::NoTls).expect("connect");
    src.batch_execute(&format!(
        "{ddl};
         INSERT INTO t SELECT i, 'name ' || md5(i::text), (i::bigint * 7919 % 10000000) / 100.0,
                timestamptz '2020-01-01 00:00:00+00' + i * interval '37 seconds' + (i % 1000) * interval '1 microsecond',
                jsonb_build_object('i', i, 'tag', 'x' || (i % 97), 'ok', i % 2 = 0, 'note', CASE WHEN i % 10 = 0 THEN E'tab\\there' END)
         FROM generate_series(1, {rows}) i;
         ANALYZE t;"
    ))
    .expect("seed");
    let want = digest(&mut src);
    let mut dst = postgres::Client::connect(&url("target"), postgres::NoTls).expect("connect");
    dst.batch_execute(ddl).expect("target");

    let sluice = env!("CARGO_BIN_EXE_sluice").to_string();
    let baseline = std::env::var("SLUICE_BENCH_BASELINE").ok();
    // (label, binary, batch size, snapshot workers)
    let mut runs: Vec<(String, String, usize, usize)> = vec![
        ("Sluice, batch 1000".into(), sluice.clone(), 1000, 1),
        ("Sluice, batch 10000".into(), sluice.clone(), 10_000, 1),
        (
            "Sluice, batch 10000, 2 workers".into(),
            sluice.clone(),
            10_000,
            2,
        ),
        (
            "Sluice, batch 10000, 4 workers".into(),
            sluice.clone(),
            10_000,
            4,
        ),
    ];
    if let Some(b) = &baseline {
        runs.push((format!("baseline {b}, batch 1000"), b.clone(), 1000, 1));
    }
    let pipelines: Vec<((usize, usize), PathBuf)> = [(1000usize, 1usize), (10_000, 1), (10_000, 2), (10_000, 4)]
        .iter()
        .map(|&(batch, workers)| {
            let p = dir.path().join(format!("snapshot-{batch}-{workers}.toml"));
            // Left out at 1, so that a baseline from before the key exists reads it.
            let workers_line = if workers > 1 {
                format!("snapshot_workers = {workers}\n")
            } else {
                String::new()
            };
            std::fs::write(
                &p,
                format!(
                    "name = \"snapshot{batch}w{workers}\"\n[source]\ntype = \"postgres\"\nurl = \"{}\"\ntables = [\"t\"]\n{workers_line}\n[sink]\ntype = \"postgres\"\nurl = \"{}\"\n\n[runtime]\nbatch_size = {batch}\n",
                    url("legacy"),
                    url("target")
                ),
            )
            .expect("pipeline");
            ((batch, workers), p)
        })
        .collect();
    let psql = |db: &str, sql: &str| {
        format!("{PG_BIN}/psql -X -q -h 127.0.0.1 -p {port} -U postgres -d {db} -c '{sql}'")
    };
    let pipe = format!(
        "set -o pipefail; {} | {}",
        psql("legacy", "COPY t TO STDOUT"),
        psql("target", "COPY t FROM STDIN")
    );
    let empty = |dst: &mut postgres::Client| {
        dst.batch_execute("TRUNCATE t; CHECKPOINT")
            .expect("truncate");
    };

    println!(
        "PostgreSQL -> PostgreSQL, {rows} rows (bigint key, text, numeric, timestamptz, jsonb), no plugins, one server, {rounds} round(s)"
    );
    let mut pipe_times = Vec::new();
    let mut sluice_times: Vec<Vec<Duration>> = vec![Vec::new(); runs.len()];
    for round in 1..=rounds {
        empty(&mut dst);
        let t = Instant::now();
        let ok = Command::new("bash")
            .args(["-c", &pipe])
            .env("PGPASSWORD", "postgres")
            .status()
            .expect("bash")
            .success();
        let took = t.elapsed();
        assert!(ok, "the COPY pipe failed");
        assert_eq!(digest(&mut dst), want, "the COPY pipe copied the table");
        println!("  round {round}: COPY pipe {:.2} s", took.as_secs_f64());
        pipe_times.push(took);
        for (i, (label, binary, batch, workers)) in runs.iter().enumerate() {
            let Some((_, p)) = pipelines.iter().find(|(k, _)| *k == (*batch, *workers)) else {
                continue;
            };
            empty(&mut dst);
            let t = Instant::now();
            let out = Command::new(binary)
                .args([
                    "run",
                    p.to_str().expect("utf-8"),
                    "--until-caught-up",
                    "--no-progress",
                    "--reset",
                ])
                .env("SLUICE_LOG", "warn")
                .output()
                .expect("sluice");
            let took = t.elapsed();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(digest(&mut dst), want, "Sluice copied the table exactly");
            println!(
                "  round {round}: {label}: {:.2} s ({:.2}x the pipe's speed)",
                took.as_secs_f64(),
                pipe_times[pipe_times.len() - 1].as_secs_f64() / took.as_secs_f64()
            );
            sluice_times[i].push(took);
        }
    }
    let pipe = median(pipe_times);
    println!(
        "median: COPY pipe {:.2} s = {:.0} rows/s",
        pipe.as_secs_f64(),
        rows as f64 / pipe.as_secs_f64()
    );
    for ((label, _, _, _), times) in runs.iter().zip(sluice_times) {
        let m = median(times);
        println!(
            "median: {label}: {:.2} s = {:.0} rows/s = {:.2}x the pipe's speed",
            m.as_secs_f64(),
            rows as f64 / m.as_secs_f64(),
            pipe.as_secs_f64() / m.as_secs_f64()
        );
    }
    script(&root, &["stop", data.to_str().expect("utf-8"), "immediate"]);
}
