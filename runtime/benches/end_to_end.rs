//! Sluice against the same jobs hand-written in plain Rust, in the same run.
//!
//! `cargo bench -p sluice-runtime --bench end_to_end` (after
//! `scripts/build-plugins.sh`). It builds `sluice`, the export generator and
//! `benches/reference` (the jobs hand-written: csv + rusqlite, one thread,
//! no plugins), generates the legacy CRM export (`SLUICE_BENCH_ROWS`,
//! default 1 000 000 rows, Windows-1252, messy), then for each job runs the
//! reference and `sluice run` as child processes, interleaved
//! (`SLUICE_BENCH_ROUNDS`, default 3), and reports the median wall time, CPU
//! time (user + system, from `wait4`) and peak RSS of each, and their
//! ratios. After the last round it checks that both wrote the same rows
//! (every column of every row) and rejected the same records (by line) for
//! the same reasons, each writing them to a JSON-lines file (Sluice's
//! dead-letter sink; the reference's `--rejects`): a faster Sluice that
//! writes something else fails here.
//!
//! Where `scripts/polars.sh` can install polars (from PyPI), the same jobs
//! written as a polars script (`benches/reference/polars_job.py`) run in the
//! same rounds and must give the reference's outputs too.
//!
//! Jobs: `demo` (`examples/legacy-crm/pipeline.toml`, the README's demo),
//! `pattern` (`benches/reference/pattern.toml`: three date formats, money,
//! a regex on the email, dedupe by upsert) and `copy`
//! (`benches/reference/copy.toml`: CSV -> SQLite, no transform).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::types::Value;

/// One run of a child process.
#[derive(Debug, Clone, Copy)]
struct Run {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: u64,
}

/// Runs `cmd` to completion; its wall time, CPU time and peak RSS.
fn measure(cmd: &mut Command) -> (Run, String) {
    let out_path = std::env::temp_dir().join(format!("sluice-e2e-{}.out", std::process::id()));
    let out = std::fs::File::create(&out_path).expect("output file");
    let started = Instant::now();
    // Reaped with wait4 below (for its resource usage), not Child::wait.
    #[allow(clippy::zombie_processes)]
    let child = cmd
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child; status and usage are valid for writes.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert_eq!(r, pid, "wait4 failed");
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed:\n{text}"
    );
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (
        Run {
            wall,
            cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
            max_rss_kib: usage.ru_maxrss as u64,
        },
        text,
    )
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Compares the `customers` tables of two databases row by row, ordered
/// by the first column; returns the number of rows. Streams both (the
/// bench's own memory would otherwise show in its children's peak RSS).
fn same_rows(job: &str, want: &Path, got: &Path) -> usize {
    let (a, b) = (
        rusqlite::Connection::open(want).expect("open db"),
        rusqlite::Connection::open(got).expect("open db"),
    );
    let sql = "SELECT * FROM customers ORDER BY 1";
    let (mut sa, mut sb) = (
        a.prepare(sql).expect("select"),
        b.prepare(sql).expect("select"),
    );
    assert_eq!(
        sa.column_names(),
        sb.column_names(),
        "{job}: the columns differ"
    );
    let n = sa.column_count();
    let (mut ra, mut rb) = (sa.query([]).expect("query"), sb.query([]).expect("query"));
    let mut count = 0;
    loop {
        match (ra.next().expect("row"), rb.next().expect("row")) {
            (None, None) => return count,
            (Some(x), Some(y)) => {
                for i in 0..n {
                    let (vx, vy) = (
                        x.get::<_, Value>(i).expect("value"),
                        y.get::<_, Value>(i).expect("value"),
                    );
                    assert_eq!(vx, vy, "{job}: row {count} column {i} differs");
                }
                count += 1;
            }
            _ => panic!("{job}: the row counts differ (after {count} equal rows)"),
        }
    }
}

/// A fingerprint of the (line, code) of each record in a JSON-lines file
/// of rejects (the reference's `line`, or Sluice's dead letters' `position`
/// = `line N`), the same whatever their order: per code, the count and the
/// wrapping sum and the xor of a hash of each line number. Read as a
/// stream: holding 400k rejects in this process would show in the next
/// child's peak RSS (Linux keeps `ru_maxrss` across the fork and exec).
fn rejects(path: &Path) -> BTreeMap<String, (u64, u64, u64)> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    use std::io::BufRead;
    let file = std::fs::File::open(path).expect("rejects file");
    let mut all: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for l in std::io::BufReader::new(file).lines() {
        let v: serde_json::Value = serde_json::from_str(&l.expect("line")).expect("json line");
        let line = v["line"].as_u64().unwrap_or_else(|| {
            v["position"]
                .as_str()
                .and_then(|p| p.strip_prefix("line "))
                .and_then(|n| n.parse().ok())
                .expect("a line number")
        });
        let mut h = DefaultHasher::new();
        line.hash(&mut h);
        let h = h.finish();
        let e = all
            .entry(v["code"].as_str().expect("code").to_string())
            .or_default();
        *e = (e.0 + 1, e.1.wrapping_add(h), e.2 ^ h);
    }
    all
}

/// Checks that both rejected the same records (by line) for the same code.
fn same_rejects(job: &str, want: &Path, got: &Path) {
    assert_eq!(
        rejects(want),
        rejects(got),
        "{job}: the rejected records differ (count, sum and xor of line hashes by code)"
    );
}

/// The reference's `written N dropped N rejected a=1,b=2` line.
fn reference_counts(text: &str) -> (u64, u64, BTreeMap<String, u64>) {
    let line = text
        .lines()
        .find(|l| l.starts_with("written "))
        .expect("counts line");
    let w: Vec<&str> = line.split_whitespace().collect();
    let rejected = w
        .get(5)
        .map(|s| {
            s.split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.parse().expect("count")))
                .collect()
        })
        .unwrap_or_default();
    (
        w[1].parse().expect("written"),
        w[3].parse().expect("dropped"),
        rejected,
    )
}

/// Sluice's summary: written, dropped, dead letters by code.
fn sluice_counts(summary: &Path) -> (u64, u64, BTreeMap<String, u64>) {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(summary).expect("summary")).expect("summary json");
    let mut codes = BTreeMap::new();
    for (k, n) in v["reasons"].as_object().expect("reasons") {
        // "stage: code"
        let code = k.rsplit(": ").next().unwrap_or(k).to_string();
        *codes.entry(code).or_default() += n.as_u64().expect("count");
    }
    (
        v["written"].as_u64().expect("written"),
        v["dropped"].as_u64().expect("dropped"),
        codes,
    )
}

/// The python of the polars environment `scripts/polars.sh` installs, or
/// `None` (said on stderr) when it cannot: the table then has no polars
/// column.
fn polars_python(root: &Path) -> Option<PathBuf> {
    let out = Command::new("bash")
        .arg(root.join("scripts/polars.sh"))
        .stderr(Stdio::inherit())
        .output();
    match out {
        Ok(o) if o.status.success() => Some(PathBuf::from(
            String::from_utf8_lossy(&o.stdout).trim().to_string(),
        )),
        _ => {
            eprintln!("polars could not be installed (scripts/polars.sh): no polars column");
            None
        }
    }
}

fn main() {
    let root: PathBuf = support::root();
    let env_num = support::env_num;
    let rows_n = env_num("SLUICE_BENCH_ROWS", 1_000_000);
    let rounds = env_num("SLUICE_BENCH_ROUNDS", 3).max(1);
    let plugins = root.join("build/plugins");
    for p in ["mapper", "cleanse", "validate"] {
        assert!(
            plugins.join(format!("{p}.wasm")).is_file(),
            "build/plugins/{p}.wasm is missing: run scripts/build-plugins.sh first"
        );
    }
    let bin = support::build(
        &root,
        &[
            "sluice-runtime",
            "sluice-example-legacy-crm",
            "sluice-bench-reference",
        ],
    );
    let polars = polars_python(&root);
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("data/customers.csv");
    let out = support::generate_export(&bin, rows_n, &data);
    eprint!("{out}");

    let jobs = [
        ("demo", root.join("examples/legacy-crm/pipeline.toml")),
        ("pattern", root.join("benches/reference/pattern.toml")),
        ("copy", root.join("benches/reference/copy.toml")),
    ];
    let mut table = Vec::new();
    let mut polars_table = Vec::new();
    for (job, pipeline) in &jobs {
        // The job's directory: its pipeline, the shared export, outputs.
        let dir = work.path().join(job);
        std::fs::create_dir_all(&dir).expect("job dir");
        let text = std::fs::read_to_string(pipeline)
            .expect("pipeline")
            .replace("../../build/plugins/", &format!("{}/", plugins.display()))
            .replace("data/customers.csv", &data.display().to_string());
        std::fs::write(dir.join("pipeline.toml"), text).expect("write pipeline");
        let sluice = |dir: &Path| {
            let _ = std::fs::remove_dir_all(dir.join("out"));
            let mut c = Command::new(bin.join("sluice"));
            c.current_dir(dir)
                .args(["run", "pipeline.toml", "--reset", "--no-progress"])
                .args(["--summary-json", "summary.json"]);
            measure(&mut c)
        };
        let reference = |dir: &Path| {
            let db = dir.join("reference.db");
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
            }
            let mut c = Command::new(bin.join("sluice-bench-reference"));
            c.args(["--job", job, "--input"])
                .arg(&data)
                .arg("--db")
                .arg(&db)
                .arg("--rejects")
                .arg(dir.join("reference-rejects.jsonl"));
            measure(&mut c)
        };
        let polars_job = |python: &Path| {
            let db = dir.join("polars.db");
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
            }
            let mut c = Command::new(python);
            c.arg(root.join("benches/reference/polars_job.py"))
                .args(["--job", job, "--input"])
                .arg(&data)
                .arg("--db")
                .arg(&db)
                .arg("--rejects")
                .arg(dir.join("polars-rejects.jsonl"));
            measure(&mut c)
        };
        // Warm up: the plugins' compiled code is cached after the first run.
        sluice(&dir);
        let (mut r_runs, mut s_runs, mut p_runs) = (vec![], vec![], vec![]);
        let (mut r_text, mut p_text) = (String::new(), String::new());
        for _ in 0..rounds {
            let (r, t) = reference(&dir);
            r_runs.push(r);
            r_text = t;
            if let Some(python) = &polars {
                let (p, t) = polars_job(python);
                p_runs.push(p);
                p_text = t;
            }
            s_runs.push(sluice(&dir).0);
        }
        if polars.is_some() {
            // The polars script did the same job: the same rows and rejects.
            same_rows(job, &dir.join("reference.db"), &dir.join("polars.db"));
            assert_eq!(
                reference_counts(&r_text),
                reference_counts(&p_text),
                "{job}: polars wrote, dropped or rejected other counts"
            );
            same_rejects(
                job,
                &dir.join("reference-rejects.jsonl"),
                &dir.join("polars-rejects.jsonl"),
            );
        }
        // The same rows, the same rejects.
        same_rows(job, &dir.join("reference.db"), &dir.join("out/crm.db"));
        let (rc, sc) = (
            reference_counts(&r_text),
            sluice_counts(&dir.join("summary.json")),
        );
        assert_eq!(rc, sc, "{job}: written, dropped or rejects differ");
        same_rejects(
            job,
            &dir.join("reference-rejects.jsonl"),
            &dir.join("out/rejects.jsonl"),
        );
        let wall = |v: &[Run]| median(v.iter().map(|r| r.wall).collect());
        let cpu = |v: &[Run]| median(v.iter().map(|r| r.cpu).collect());
        let rss = |v: &[Run]| v.iter().map(|r| r.max_rss_kib).max().unwrap_or(0);
        table.push((
            job.to_string(),
            wall(&r_runs),
            wall(&s_runs),
            cpu(&r_runs),
            cpu(&s_runs),
            rss(&r_runs),
            rss(&s_runs),
        ));
        if !p_runs.is_empty() {
            polars_table.push((
                job.to_string(),
                wall(&p_runs),
                wall(&s_runs),
                cpu(&p_runs),
                cpu(&s_runs),
                rss(&p_runs),
            ));
        }
    }
    println!(
        "{rows_n} rows, median of {rounds} interleaved rounds; outputs identical row by row, the same records rejected for the same codes (both write them to a JSON-lines file)\n"
    );
    println!(
        "| job | reference wall | Sluice wall | wall ratio | reference CPU | Sluice CPU | CPU ratio | Sluice rec/s | peak RSS reference / Sluice |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (job, rw, sw, rc, sc, rr, sr) in &table {
        println!(
            "| {job} | {:.2} s | {:.2} s | {:.2}× | {:.2} s | {:.2} s | {:.2}× | {:.0}k | {} / {} MiB |",
            rw.as_secs_f64(),
            sw.as_secs_f64(),
            sw.as_secs_f64() / rw.as_secs_f64(),
            rc.as_secs_f64(),
            sc.as_secs_f64(),
            sc.as_secs_f64() / rc.as_secs_f64(),
            rows_n as f64 / sw.as_secs_f64() / 1000.0,
            rr / 1024,
            sr / 1024,
        );
    }
    if !polars_table.is_empty() {
        println!(
            "\nThe same jobs as a polars script (benches/reference/polars_job.py, polars 2.1.0), same rounds; its outputs identical to the reference's\n"
        );
        println!(
            "| job | polars wall | Sluice wall | Sluice / polars wall | polars CPU | Sluice CPU | Sluice / polars CPU | polars peak RSS |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for (job, pw, sw, pc, sc, pr) in &polars_table {
            println!(
                "| {job} | {:.2} s | {:.2} s | {:.2}× | {:.2} s | {:.2} s | {:.2}× | {} MiB |",
                pw.as_secs_f64(),
                sw.as_secs_f64(),
                sw.as_secs_f64() / pw.as_secs_f64(),
                pc.as_secs_f64(),
                sc.as_secs_f64(),
                sc.as_secs_f64() / pc.as_secs_f64(),
                pr / 1024,
            );
        }
    }
}
