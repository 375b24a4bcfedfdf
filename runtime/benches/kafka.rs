//! Kafka → plugin → Kafka: records/s for one Sluice instance and for two in
//! one consumer group on this machine, and the consumer lag under a steady
//! produce rate. Starts its own tansu broker with `scripts/kafka.sh` (run
//! `scripts/kafka.sh install` and `scripts/build-plugins.sh` first):
//! `cargo bench -p sluice-runtime --bench kafka`.
//! Environment: `SLUICE_BENCH_RECORDS` (default 300000), `SLUICE_BENCH_RATE`
//! (records/s for the lag run, default 20000), `SLUICE_BENCH_SECONDS` (20).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn script(root: &Path, args: &[&str]) {
    let ok = Command::new("bash")
        .arg(root.join("scripts/kafka.sh"))
        .args(args)
        .status()
        .expect("scripts/kafka.sh")
        .success();
    assert!(ok, "scripts/kafka.sh {args:?} failed");
}

fn producer(brokers: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer")
}

fn produce(p: &BaseProducer, topic: &str, from: u64, n: u64) {
    for i in from..from + n {
        let key = format!("c{}", i % 10_000);
        let value = format!(
            r#"{{"event_id":{i},"cust":"{key}","amount":"{}","note":"  some text to carry  "}}"#,
            i * 3
        );
        let mut rec = BaseRecord::to(topic).key(&key).payload(&value);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    p.poll(Duration::from_millis(5));
                    rec = back;
                }
            }
        }
        p.poll(Duration::ZERO);
    }
}

fn pipeline(
    dir: &Path,
    brokers: &str,
    plugin: &Path,
    group: &str,
    input: &str,
    output: &str,
) -> PathBuf {
    let text = format!(
        r#"name = "bench"
[source]
type = "kafka"
brokers = "{brokers}"
topics = ["{input}"]
group = "{group}"

[[transforms]]
name = "map"
plugin = "{}"
config = {{ rename = {{ cust = "customer" }}, cast = {{ amount = "int" }} }}

[sink]
type = "kafka"
brokers = "{brokers}"
topic = "{output}"

[runtime]
batch_size = 1000
"#,
        plugin.display()
    );
    std::fs::create_dir_all(dir).expect("dir");
    let p = dir.join("pipeline.toml");
    std::fs::write(&p, text).expect("pipeline");
    p
}

/// `written` of a run's JSON summary.
fn written(file: &Path) -> u64 {
    let t = std::fs::read_to_string(file.with_extension("summary.json")).expect("summary");
    let v: serde_json::Value = serde_json::from_str(&t).expect("json");
    v["written"].as_u64().expect("written")
}

/// `written` from a running instance's admin API.
fn status_written(admin: &str) -> Option<u64> {
    let v: serde_json::Value = ureq::get(&format!("http://{admin}/status"))
        .call()
        .ok()?
        .body_mut()
        .read_json()
        .ok()?;
    v["written"].as_u64()
}

fn spawn(file: &Path, until_caught_up: bool, admin: Option<&str>) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.arg("run").arg(file).arg("--no-progress");
    c.arg("--summary-json")
        .arg(file.with_extension("summary.json"));
    if until_caught_up {
        c.arg("--until-caught-up");
    }
    if let Some(a) = admin {
        c.arg("--admin").arg(a);
    }
    c.env("SLUICE_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sluice")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let plugin = root.join("build/plugins/mapper.wasm");
    assert!(plugin.is_file(), "run scripts/build-plugins.sh first");
    let n: u64 = env_or("SLUICE_BENCH_RECORDS", 300_000);
    let rate: u64 = env_or("SLUICE_BENCH_RATE", 20_000);
    let seconds: u64 = env_or("SLUICE_BENCH_SECONDS", 20);
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let bdir = tmp.path().join("broker");
    script(
        &root,
        &["start", bdir.to_str().expect("utf-8"), &port.to_string()],
    );
    let brokers = format!("127.0.0.1:{port}");
    for t in ["in", "out1", "out2", "lagin", "lagout"] {
        script(&root, &["topic", &port.to_string(), t, "6"]);
    }
    let p = producer(&brokers);
    produce(&p, "in", 0, n);
    p.flush(Duration::from_secs(120)).expect("flush");
    println!("{n} records of ~110 bytes, 6 partitions, Kafka -> mapper -> Kafka, batch 1000\n");

    // One instance: wall time, and the time from its first written record
    // (without the group join).
    let f = pipeline(
        &tmp.path().join("one"),
        &brokers,
        &plugin,
        "g1",
        "in",
        "out1",
    );
    let admin = format!("127.0.0.1:{}", free_port());
    let t = Instant::now();
    let mut child = spawn(&f, true, Some(&admin));
    let mut first: Option<Instant> = None;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if first.is_none() && status_written(&admin).is_some_and(|w| w > 0) {
            first = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let one = t.elapsed();
    assert_eq!(written(&f), n);
    let steady = first.map_or(one, |f| f.elapsed());
    println!(
        "one instance:  {:.1} s, {:.0} records/s; from the first record written: {:.1} s, {:.0} records/s",
        one.as_secs_f64(),
        n as f64 / one.as_secs_f64(),
        steady.as_secs_f64(),
        n as f64 / steady.as_secs_f64()
    );

    // Two instances, one group.
    let a = pipeline(&tmp.path().join("a"), &brokers, &plugin, "g2", "in", "out2");
    let b = pipeline(&tmp.path().join("b"), &brokers, &plugin, "g2", "in", "out2");
    let t = Instant::now();
    let (admin_a, admin_b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let (mut ca, mut cb) = (
        spawn(&a, true, Some(&admin_a)),
        spawn(&b, true, Some(&admin_b)),
    );
    let mut first: Option<Instant> = None;
    let (mut done_a, mut done_b) = (None, None);
    while done_a.is_none() || done_b.is_none() {
        if done_a.is_none() {
            done_a = ca.try_wait().expect("wait");
        }
        if done_b.is_none() {
            done_b = cb.try_wait().expect("wait");
        }
        if first.is_none()
            && [&admin_a, &admin_b]
                .iter()
                .any(|ad| status_written(ad).is_some_and(|w| w > 0))
        {
            first = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(done_a.is_some_and(|s| s.success()) && done_b.is_some_and(|s| s.success()));
    let two = t.elapsed();
    let steady = first.map_or(two, |f| f.elapsed());
    let (wa, wb) = (written(&a), written(&b));
    println!(
        "two instances: {:.1} s, {:.0} records/s; from the first record written: {:.1} s, {:.0} records/s (written {wa} + {wb}; {} more than read once)",
        two.as_secs_f64(),
        n as f64 / two.as_secs_f64(),
        steady.as_secs_f64(),
        n as f64 / steady.as_secs_f64(),
        (wa + wb) as i64 - n as i64
    );

    // Lag under a steady rate.
    let f = pipeline(
        &tmp.path().join("lag"),
        &brokers,
        &plugin,
        "g3",
        "lagin",
        "lagout",
    );
    let admin = format!("127.0.0.1:{}", free_port());
    let mut worker = spawn(&f, false, Some(&admin));
    std::thread::sleep(Duration::from_secs(6));
    let start = Instant::now();
    let mut produced = 0u64;
    let mut lags = Vec::new();
    let mut next_sample = Duration::from_secs(1);
    while start.elapsed() < Duration::from_secs(seconds) {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        if due > produced {
            produce(&p, "lagin", produced, due - produced);
            produced = due;
        }
        p.poll(Duration::from_millis(1));
        if start.elapsed() >= next_sample {
            next_sample += Duration::from_secs(1);
            p.flush(Duration::from_secs(10)).expect("flush");
            if let Some(w) = status_written(&admin) {
                lags.push((produced as i64 - w as i64).max(0));
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = worker.kill();
    let _ = worker.wait();
    lags.sort_unstable();
    let pct = |q: f64| lags[((lags.len() - 1) as f64 * q).round() as usize];
    println!(
        "lag at {rate} records/s for {seconds} s (records produced but not yet written, sampled each second): p50 {} max {} ({:.0} ms of input at p50)",
        pct(0.5),
        pct(1.0),
        pct(0.5) as f64 / rate as f64 * 1000.0
    );
    script(&root, &["stop", bdir.to_str().expect("utf-8")]);
}
