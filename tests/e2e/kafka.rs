//! Kafka: consumer-group workers, the Kafka source and sink, against a real
//! Kafka-protocol broker (tansu) that each test starts on 127.0.0.1 with
//! `scripts/kafka.sh` (which `scripts/test.sh` installs). A missing broker
//! fails the test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::common::*;
use crate::postgres::PgServer;

/// A message: key, value, headers (as text).
pub type Msg = (String, String, Vec<(String, String)>);

/// A broker of one test, stopped when dropped.
pub struct Broker {
    dir: tempfile::TempDir,
    pub port: u16,
}

fn script(args: &[&str]) {
    let out = Command::new("bash")
        .arg(root().join("scripts/kafka.sh"))
        .args(args)
        .output()
        .expect("run scripts/kafka.sh");
    assert!(
        out.status.success(),
        "scripts/kafka.sh {args:?} failed (is tansu installed? `scripts/kafka.sh install`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Broker {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sluice-kafka")
            .tempdir()
            .unwrap();
        let port = free_port();
        script(&["start", dir.path().to_str().unwrap(), &port.to_string()]);
        Broker { dir, port }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn topic(&self, name: &str, partitions: u32) {
        script(&[
            "topic",
            &self.port.to_string(),
            name,
            &partitions.to_string(),
        ]);
    }

    pub fn stop(&self) {
        script(&["stop", self.dir.path().to_str().unwrap()]);
    }

    pub fn start_again(&self) {
        script(&[
            "start",
            self.dir.path().to_str().unwrap(),
            &self.port.to_string(),
        ]);
    }

    pub fn producer(&self) -> BaseProducer {
        ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .unwrap()
    }

    /// Produces `(key, value, headers)` messages and waits for them.
    pub fn produce(&self, topic: &str, messages: &[Msg]) {
        let p = self.producer();
        for (k, v, hs) in messages {
            let mut headers = OwnedHeaders::new();
            for (n, hv) in hs {
                headers = headers.insert(Header {
                    key: n,
                    value: Some(hv.as_bytes()),
                });
            }
            let mut rec = BaseRecord::to(topic).key(k).payload(v).headers(headers);
            loop {
                match p.send(rec) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        p.poll(Duration::from_millis(10));
                        rec = back;
                    }
                }
            }
            p.poll(Duration::ZERO);
        }
        p.flush(Duration::from_secs(60)).unwrap();
    }

    /// Every message of a topic: (key, value, headers), by partition then
    /// offset. Reads until nothing came for two seconds (tansu's high
    /// watermark can lag behind a batch of several records).
    pub fn read_all(&self, topic: &str, partitions: i32) -> Vec<Msg> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("group.id", "sluice-test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let mut got: Vec<(i32, i64, Msg)> = Vec::new();
        let mut last = Instant::now();
        while last.elapsed() < Duration::from_secs(2) {
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                let m = m.unwrap();
                last = Instant::now();
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                got.push((
                    m.partition(),
                    m.offset(),
                    (
                        String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                        String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                        headers,
                    ),
                ));
            }
        }
        got.sort_by_key(|(p, o, _)| (*p, *o));
        got.into_iter().map(|(_, _, m)| m).collect()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        script(&["stop", self.dir.path().to_str().unwrap()]);
    }
}

fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn spawn(dir: &Dir) -> Child {
    sluice()
        .arg("run")
        .arg(dir.path("pipeline.toml"))
        .arg("--no-progress")
        .arg("--summary-json")
        .arg(dir.path("summary.json"))
        .env("SLUICE_LOG", "warn,sluice_runtime=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path("stderr.log")).unwrap())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

fn summary(dir: &Dir) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.path("summary.json")).unwrap()).unwrap()
}

fn worker_pipeline(broker: &Broker, pg: &PgServer) -> String {
    format!(
        r#"name = "orders"

[source]
type = "kafka"
brokers = "{brokers}"
topics = ["orders"]

[[transforms]]
name = "map"
plugin = "{mapper}"
config = {{ cast = {{ amount = "int" }} }}

[sink]
type = "postgres"
url = "{url}"
table = "events"
key = ["event_id"]

[runtime]
batch_size = 500
"#,
        brokers = broker.brokers(),
        mapper = plugin("mapper"),
        url = pg.url("target"),
    )
}

const EVENTS: i64 = 200_000;
const CUSTOMERS: i64 = 2_000;

fn event(i: i64) -> Msg {
    let cust = format!("c{}", i % CUSTOMERS);
    let value = format!(
        r#"{{"event_id":{i},"cust":"{cust}","seq":{},"amount":"{}"}}"#,
        i / CUSTOMERS,
        i * 3
    );
    (cust, value, vec![])
}

#[test]
fn three_workers_share_a_topic_and_a_kill_9_loses_nothing_and_keeps_per_key_order() {
    let broker = Broker::start();
    broker.topic("orders", 6);
    let pg = PgServer::start();
    // `arrival` is set once, on a row's first write: it records the order
    // in which each customer's events reached the target.
    pg.exec(
        "target",
        "CREATE TABLE events (event_id bigint PRIMARY KEY, cust text, seq bigint, amount bigint, arrival bigserial)",
    );
    let dirs: Vec<Dir> = (0..4).map(|_| Dir::new()).collect();
    for d in &dirs {
        d.write("pipeline.toml", worker_pipeline(&broker, &pg));
    }
    let mut workers: Vec<Child> = dirs[..3].iter().map(spawn).collect();
    // Produce while the workers run.
    let producing = {
        let brokers = broker.brokers();
        std::thread::spawn(move || {
            let b = Broker {
                dir: tempfile::tempdir().unwrap(),
                port: brokers.rsplit(':').next().unwrap().parse().unwrap(),
            };
            for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(20_000) {
                let msgs: Vec<_> = chunk.iter().map(|i| event(*i)).collect();
                b.produce("orders", &msgs);
            }
            std::mem::forget(b); // not ours to stop
        })
    };
    let count = || pg.count("target", "SELECT count(*) FROM events");
    wait_for(120, "a third of the events", || count() >= EVENTS / 3);
    // kill -9 one worker mid-stream, start another.
    signal(&workers[1], libc::SIGKILL);
    workers[1].wait().unwrap();
    workers.push(spawn(&dirs[3]));
    producing.join().unwrap();
    wait_for(240, "every event in the target", || count() == EVENTS);
    // Per customer, events reached the target in `seq` order.
    let out_of_order = pg.count(
        "target",
        "SELECT count(*) FROM (SELECT seq, lag(seq) OVER (PARTITION BY cust ORDER BY arrival) AS prev FROM events) t WHERE prev > seq",
    );
    assert_eq!(out_of_order, 0);
    assert_eq!(
        pg.count(
            "target",
            "SELECT count(DISTINCT cust) FROM events WHERE seq = 99"
        ),
        CUSTOMERS
    );
    for (i, w) in workers.iter_mut().enumerate() {
        if i == 1 {
            continue;
        }
        signal(w, libc::SIGTERM);
        let status = w.wait().unwrap();
        let log =
            std::fs::read_to_string(dirs[if i == 3 { 3 } else { i }].path("stderr.log")).unwrap();
        assert!(status.success(), "worker {i}: {log}");
    }
    // The work was shared: at least three of the four wrote records.
    let busy = [0usize, 2, 3]
        .iter()
        .filter(|i| summary(&dirs[**i])["written"].as_u64().unwrap_or(0) > 0)
        .count();
    assert!(busy >= 2, "the partitions were not shared");
    for i in [0usize, 2, 3] {
        assert_eq!(summary(&dirs[i])["dead_lettered"], 0);
    }
}

#[test]
fn a_broker_restart_under_load_reconnects_and_goes_on() {
    let broker = Broker::start();
    broker.topic("events", 3);
    let dir = Dir::new();
    dir.write(
        "pipeline.toml",
        format!(
            "[source]\ntype = \"kafka\"\nbrokers = \"{}\"\ntopics = [\"events\"]\n\n[sink]\ntype = \"jsonl\"\npath = \"out/events.jsonl\"\n",
            broker.brokers()
        ),
    );
    let mut worker = spawn(&dir);
    let lines = || {
        std::fs::read_to_string(dir.path("out/events.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let batch = |from: i64, n: i64| -> Vec<_> {
        (from..from + n)
            .map(|i| (format!("k{i}"), format!("{{\"i\":{i}}}"), vec![]))
            .collect()
    };
    broker.produce("events", &batch(0, 1000));
    wait_for(60, "the first 1000 records", || lines() == 1000);
    // The broker goes away and comes back. Its storage is memory: it comes
    // back empty, without the group's committed offsets, so the rejoined
    // group reads the recreated topic from its start (a broker that keeps
    // its log and offsets resumes at the committed offsets instead).
    broker.stop();
    std::thread::sleep(Duration::from_secs(3));
    broker.start_again();
    broker.topic("events", 3);
    broker.produce("events", &batch(1000, 3000));
    wait_for(90, "the records produced after the restart", || {
        lines() == 4000
    });
    signal(&worker, libc::SIGTERM);
    assert!(worker.wait().unwrap().success());
    let ids: std::collections::BTreeSet<i64> = dir
        .jsonl("out/events.jsonl")
        .iter()
        .map(|v| v["i"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 4000);
    let log = std::fs::read_to_string(dir.path("stderr.log")).unwrap();
    assert!(log.contains("is a broker running at"), "{log}");
    assert!(
        log.contains("the brokers are back: joining the group again"),
        "{log}"
    );
}

#[test]
fn control_headers_from_a_topic_not_declared_a_change_stream_are_ignored() {
    let broker = Broker::start();
    broker.topic("orders", 1);
    let control = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    broker.produce(
        "orders",
        &[
            ("k1".into(), r#"{"id":1,"v":"a"}"#.into(), vec![]),
            ("k2".into(), r#"{"id":2,"v":"b"}"#.into(), vec![]),
            // Any producer could write these: a delete, a truncate, a key move.
            (
                "k1".into(),
                r#"{"id":1,"v":"x"}"#.into(),
                control(&[("sluice-op", "delete"), ("sluice-key", "id")]),
            ),
            (
                "k3".into(),
                r#"{"id":3,"v":"c"}"#.into(),
                control(&[("sluice-op", "delete"), ("sluice-truncate", "1")]),
            ),
            (
                "k4".into(),
                r#"{"id":4,"v":"d"}"#.into(),
                control(&[
                    ("sluice-old-key", r#"{"id":2}"#),
                    ("sluice-stream", "other"),
                ]),
            ),
        ],
    );
    // A tombstone for k2.
    let p = broker.producer();
    p.send(BaseRecord::<str, str>::to("orders").key("k2"))
        .map_err(|(e, _)| e)
        .unwrap();
    p.flush(Duration::from_secs(30)).unwrap();
    let dir = Dir::new();
    dir.write(
        "pipeline.toml",
        format!(
            "[source]\ntype = \"kafka\"\nbrokers = \"{}\"\ntopics = [\"orders\"]\n\n[sink]\ntype = \"sqlite\"\npath = \"out.db\"\ntable = \"orders\"\nkey = [\"id\"]\n\n[dead_letter]\ntype = \"jsonl\"\npath = \"dlq.jsonl\"\n",
            broker.brokers()
        ),
    );
    let out = sluice()
        .arg("run")
        .arg(dir.path("pipeline.toml"))
        .args(["--until-caught-up", "--no-progress"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("control header ignored"),
        "{}",
        stderr(&out)
    );
    // Nothing deleted, truncated or moved: every message is an upsert.
    assert_eq!(
        dir.sql("out.db", "SELECT id || v FROM orders ORDER BY id"),
        ["1x", "2b", "3c", "4d"]
    );
    let dead = dir.jsonl("dlq.jsonl");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0]["message"].as_str().unwrap().contains("tombstone"),
        "{dead:?}"
    );
}

#[test]
fn kafka_to_kafka_keeps_keys_and_headers_and_dead_letters_to_a_topic_with_the_reason() {
    let broker = Broker::start();
    for (t, n) in [("raw", 1), ("clean", 3), ("dlq", 1)] {
        broker.topic(t, n);
    }
    let mut msgs: Vec<Msg> = (1..=8)
        .map(|i| {
            (
                format!("k{i}"),
                format!("{{\"i\":{i},\"poison\":{}}}", i == 3),
                vec![("trace-id".to_string(), format!("t{i}"))],
            )
        })
        .collect();
    // Too large for the sink's `message.max.bytes`.
    msgs.push((
        "k9".into(),
        format!(
            "{{\"i\":9,\"poison\":false,\"blob\":\"{}\"}}",
            "x".repeat(5000)
        ),
        vec![],
    ));
    msgs.push(("k10".into(), "not json".into(), vec![]));
    broker.produce("raw", &msgs);
    let dir = Dir::new();
    dir.write(
        "pipeline.toml",
        format!(
            r#"[source]
type = "kafka"
brokers = "{b}"
topics = ["raw"]

[[transforms]]
name = "fragile"
plugin = "{p}"
config = {{ mode = "trap_on_poison" }}

[sink]
type = "kafka"
brokers = "{b}"
topic = "clean"
options = {{ "message.max.bytes" = "4000" }}

[dead_letter]
type = "kafka"
brokers = "{b}"
topic = "dlq"

[runtime]
batch_size = 2
"#,
            b = broker.brokers(),
            p = plugin("fixture-misbehave")
        ),
    );
    let out = sluice()
        .arg("run")
        .arg(dir.path("pipeline.toml"))
        .args(["--no-progress", "--until-caught-up", "--summary-json"])
        .arg(dir.path("summary.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(&dir);
    assert_eq!(
        (
            s["records_in"].as_u64(),
            s["written"].as_u64(),
            s["dead_lettered"].as_u64()
        ),
        (Some(10), Some(6), Some(4)),
        "{s}"
    );
    let clean = broker.read_all("clean", 3);
    let mut keys: Vec<&str> = clean.iter().map(|(k, _, _)| k.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["k1", "k2", "k5", "k6", "k7", "k8"]);
    for (k, v, h) in &clean {
        let i = k[1..].to_string();
        assert!(v.contains(&format!("\"i\":{i}")), "{v}");
        assert!(h.contains(&("trace-id".into(), format!("t{i}"))), "{h:?}");
        assert!(h.contains(&("sluice-op".into(), "insert".into())), "{h:?}");
    }
    let dlq = broker.read_all("dlq", 1);
    let header = |h: &[(String, String)], n: &str| {
        h.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut seen: Vec<(String, String)> = dlq
        .iter()
        .map(|(_, _, h)| {
            (
                header(h, "sluice-dlq-position"),
                header(h, "sluice-dlq-reason"),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("raw/0@2".to_string(), "plugin_failed".to_string()),
            ("raw/0@3".into(), "plugin_failed".into()),
            ("raw/0@8".into(), "sink_refused".into()),
            ("raw/0@9".into(), "malformed_input".into()),
        ],
        "{s}\n{}",
        stderr(&out)
    );
    assert_eq!(
        seen,
        [
            ("raw/0@2".to_string(), "plugin_failed".to_string()),
            ("raw/0@3".into(), "plugin_failed".into()),
            ("raw/0@8".into(), "sink_refused".into()),
            ("raw/0@9".into(), "malformed_input".into()),
        ]
    );
    let big = dlq
        .iter()
        .find(|(_, _, h)| header(h, "sluice-dlq-reason") == "sink_refused")
        .unwrap();
    assert!(
        header(&big.2, "sluice-dlq-message").contains("larger than the broker or producer accepts"),
        "{:?}",
        big.2
    );
}

#[test]
fn unknown_topics_and_unreachable_brokers_say_what_to_do() {
    let broker = Broker::start();
    broker.topic("exists", 1);
    let dir = Dir::new();
    let run = |source_brokers: &str, topic: &str, sink: &str| {
        dir.write(
            "pipeline.toml",
            format!(
                "[source]\ntype = \"kafka\"\nbrokers = \"{source_brokers}\"\ntopics = [\"{topic}\"]\n\n{sink}\n"
            ),
        );
        let started = Instant::now();
        let out = sluice()
            .arg("run")
            .arg(dir.path("pipeline.toml"))
            .args(["--no-progress", "--until-caught-up"])
            .output()
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(40));
        (out.status.success(), stderr(&out))
    };
    let jsonl = "[sink]\ntype = \"jsonl\"\npath = \"out.jsonl\"";
    let (ok, err) = run(&broker.brokers(), "nope", jsonl);
    assert!(!ok);
    assert!(
        err.contains("topic `nope` does not exist (topics on the brokers: exists)"),
        "{err}"
    );
    let dead = format!("127.0.0.1:{}", free_port());
    let (ok, err) = run(&dead, "exists", jsonl);
    assert!(!ok);
    assert!(
        err.contains("cannot reach the Kafka brokers")
            && err.contains(&format!("is a broker running at `{dead}`?")),
        "{err}"
    );
    let (ok, err) = run(
        &broker.brokers(),
        "exists",
        &format!("[sink]\ntype = \"kafka\"\nbrokers = \"{dead}\"\ntopic = \"x\""),
    );
    assert!(!ok);
    assert!(err.contains("cannot reach the Kafka brokers"), "{err}");
    // A config Sluice refuses before connecting.
    dir.write(
        "pipeline.toml",
        format!(
            "[source]\ntype = \"kafka\"\nbrokers = \"{}\"\ntopics = [\"exists\"]\noptions = {{ \"enable.auto.commit\" = \"true\" }}\n\n{jsonl}\n",
            broker.brokers()
        ),
    );
    let out = dir.check();
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("option `enable.auto.commit` is set by Sluice"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn postgres_cdc_through_a_topic_into_postgres_keeps_updates_deletes_and_tables() {
    let broker = Broker::start();
    broker.topic("cdc", 3);
    let pg = PgServer::start();
    pg.exec(
        "legacy",
        "CREATE TABLE customers (id bigint PRIMARY KEY, name text, email text);
         INSERT INTO customers SELECT i, 'name ' || i, 'u' || i || '@x.org' FROM generate_series(1, 2000) i;",
    );
    let capture = Dir::new();
    capture.write(
        "pipeline.toml",
        format!(
            "name = \"capture\"\n[source]\ntype = \"postgres\"\nurl = \"{}\"\ntables = [\"customers\"]\n\n[sink]\ntype = \"kafka\"\nbrokers = \"{}\"\ntopic = \"cdc\"\n",
            pg.url("legacy"),
            broker.brokers()
        ),
    );
    let apply = Dir::new();
    apply.write(
        "pipeline.toml",
        format!(
            "name = \"apply\"\n[source]\ntype = \"kafka\"\nbrokers = \"{}\"\ntopics = [\"cdc\"]\nkey_format = \"json\"\nchange_stream = true\n\n[[transforms]]\nname = \"map\"\nplugin = \"{}\"\nconfig = {{ rename = {{ name = \"full_name\" }} }}\n\n[sink]\ntype = \"postgres\"\nurl = \"{}\"\n",
            broker.brokers(),
            plugin("mapper"),
            pg.url("target")
        ),
    );
    let mut a = spawn(&capture);
    let mut b = spawn(&apply);
    let target = |sql: &str| pg.count("target", sql);
    wait_for(120, "the snapshot in the target", || {
        target("SELECT count(*) FROM public.customers") == 2000
    });
    // Live changes: updates, deletes, inserts, a key change.
    pg.exec(
        "legacy",
        "UPDATE customers SET email = 'new' || id || '@y.org' WHERE id % 3 = 0;
         DELETE FROM customers WHERE id % 7 = 0;
         INSERT INTO customers SELECT i, 'late ' || i, NULL FROM generate_series(2001, 2300) i;
         UPDATE customers SET id = 5000 WHERE id = 1;",
    );
    let expected = pg.count("legacy", "SELECT count(*) FROM customers");
    let fingerprint = "SELECT ('x' || substr(md5(string_agg(id || ':' || coalesce(email, '-'), ',' ORDER BY id)), 1, 15))::bit(60)::bigint FROM customers";
    let want = pg.count("legacy", fingerprint);
    wait_for(120, "the changes in the target", || {
        target("SELECT count(*) FROM public.customers") == expected && target(fingerprint) == want
    });
    assert_eq!(
        target("SELECT count(*) FROM public.customers WHERE full_name LIKE 'late %'"),
        300
    );
    assert_eq!(
        target("SELECT count(*) FROM public.customers WHERE id = 1"),
        0
    );
    for (c, d) in [(&mut a, &capture), (&mut b, &apply)] {
        signal(c, libc::SIGTERM);
        let ok = c.wait().unwrap().success();
        assert!(
            ok,
            "{}",
            std::fs::read_to_string(d.path("stderr.log")).unwrap()
        );
    }
}

#[test]
fn a_message_of_another_shape_is_dead_lettered_or_stops_the_run_as_on_schema_change_says() {
    let broker = Broker::start();
    broker.topic("orders", 1);
    let msg = |k: &str, v: &str| -> Msg { (k.into(), v.into(), vec![]) };
    // One message per produce: tansu reports the high watermark of a
    // partition at the start of its last batch, and the second run below
    // starts in the middle of what was produced.
    for m in [
        msg("1", r#"{"id":1,"v":"a","note":null}"#),
        msg("2", r#"{"id":2,"v":"b","note":"n"}"#),
        // A field the topic has not carried, then a value of another kind.
        msg("3", r#"{"id":3,"v":"c","tier":"gold","score":1}"#),
        msg("4", r#"{"id":4,"v":4}"#),
        // Numbers are one kind; a field may be left out.
        msg("5", r#"{"id":5,"v":"e","score":2.5}"#),
    ] {
        broker.produce("orders", &[m]);
    }
    let dir = Dir::new();
    let write = |policy: &str| {
        dir.write(
            "pipeline.toml",
            format!(
                "name = \"shape\"\n[source]\ntype = \"kafka\"\nbrokers = \"{}\"\ntopics = [\"orders\"]\non_schema_change = {policy}\n\n[sink]\ntype = \"sqlite\"\npath = \"out.db\"\ntable = \"orders\"\nkey = [\"id\"]\n\n[dead_letter]\ntype = \"jsonl\"\npath = \"dlq.jsonl\"\n",
                broker.brokers()
            ),
        );
    };
    let run = || {
        sluice()
            .arg("run")
            .arg(dir.path("pipeline.toml"))
            .args(["--until-caught-up", "--no-progress"])
            .output()
            .unwrap()
    };
    // stop: the first two flow, the run stops at offset 2 naming the field.
    write(r#""stop""#);
    let out = run();
    let e = stderr(&out);
    assert!(!out.status.success(), "{e}");
    assert!(
        e.contains("topic `orders` changed shape at orders/0@2 (field `score` added; field `tier` added) and `on_schema_change = \"stop\"`"),
        "{e}"
    );
    assert_eq!(
        dir.sql("out.db", "SELECT CAST(id AS TEXT) FROM orders ORDER BY id"),
        ["1", "2"]
    );
    // dead_letter: the next run reads from offset 2; its first message sets
    // the shape, so the next one (a number in `v`) is held back.
    write(r#"{ orders = "dead_letter" }"#);
    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        dir.sql("out.db", "SELECT CAST(id AS TEXT) FROM orders ORDER BY id"),
        ["1", "2", "3", "5"]
    );
    let dead = dir.jsonl("dlq.jsonl");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["code"], "schema_change");
    assert_eq!(dead[0]["record"]["fields"]["v"], 4);
    assert!(
        dead[0]["message"]
            .as_str()
            .unwrap()
            .contains("(field `v` changed from text to number)"),
        "{dead:?}"
    );
}
