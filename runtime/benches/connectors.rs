//! Connector plugins against the same work written natively in the host,
//! in the same run, against the same local HTTP server:
//!
//! - source: the HTTP API source (WASM, Rust) reading 100 000 varied
//!   customers in pages of 500, against a native loop doing the same work
//!   (ureq, then the decoder the connector asks the host for,
//!   `sluice_codec::json`: every field of every record into a batch);
//! - sink: the HTTP bulk sink (WASM, Python; it asks the host to write the
//!   JSON body, `sluice_sdk.jsonio`) POSTing them in batches of 500 with
//!   idempotency keys, and the same sink written in Rust
//!   (`benches/bulk-sink-rust`, building the body with serde_json in the
//!   guest), against a native loop (the same body written by the host's
//!   own JSON writer, POSTed with ureq);
//! - per-call overhead of each world: a 1-record poll of the fixture source
//!   (no I/O), and a 1-record bulk write minus a native 1-record POST.
//!
//! The server is axum in this process, on its own threads, serving
//! pre-rendered pages so that it costs the same for both sides.
//! Run: `cargo bench -p sluice-runtime --bench connectors` after
//! `sluice plugin setup python`. `SLUICE_BENCH_ROUNDS` (default 3).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use sluice_codec::{Operation, Record, Value};
use sluice_runtime::connector::ConnectorConfig;
use sluice_runtime::connector::sink::{WasmSink, idempotency_keys};
use sluice_runtime::connector::source::WasmSource;
use sluice_runtime::sinks::Sink;
use sluice_runtime::sources::{Source, SourceBatch, SourceContext, SourceFeedback};

const RECORDS: u64 = 100_000;
const PAGE: u64 = 500;

fn customer(i: u64) -> serde_json::Value {
    let first = [
        "Ana", "Bjørn", "Chloé", "Dmitri", "Eéva", "Fatima", "Guo", "Hiro", "Ines", "José",
    ];
    let last = [
        "Silva", "Øster", "Dubois", "Ivanov", "Kovács", "Haddad", "Wei", "Tanaka", "O'Neil",
        "Núñez",
    ];
    let (f, l) = (first[(i % 10) as usize], last[((i / 10) % 10) as usize]);
    let country = ["PT", "NO", "FR", "RU", "HU", "MA", "CN", "JP", "IE", "ES"][(i % 10) as usize];
    serde_json::json!({
        "id": i,
        "name": format!("{f} {l}"),
        "email": format!("{}.{}{i}@example.com", f.to_lowercase(), l.to_lowercase()),
        "country": country,
        "balance": format!("{:.2}", ((i * 7919) % 100_000) as f64 / 100.0),
        "active": !i.is_multiple_of(3),
        "created_at": format!("20{:02}-{:02}-{:02}T{:02}:00:00Z", 10 + i % 15, 1 + i % 12, 1 + i % 28, i % 24),
        "tags": if i.is_multiple_of(50) { serde_json::json!(["vip"]) } else { serde_json::json!([]) },
        "notes": if i.is_multiple_of(4) { serde_json::Value::String(format!("line one\nline \"two\" {i}")) } else { serde_json::Value::Null },
    })
}

/// Starts the server; returns its port.
fn serve() -> u16 {
    use axum::routing::{get, post};
    let pages: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..RECORDS / PAGE)
            .map(|p| {
                let items: Vec<_> = (p * PAGE + 1..=(p + 1) * PAGE).map(customer).collect();
                let next = if (p + 1) * PAGE < RECORDS {
                    serde_json::Value::String(((p + 1) * PAGE).to_string())
                } else {
                    serde_json::Value::Null
                };
                serde_json::to_vec(&serde_json::json!({"data": items, "next_cursor": next}))
                    .expect("json")
            })
            .collect(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let app = axum::Router::new()
                .route(
                    "/customers",
                    get(move |uri: axum::http::Uri| {
                        let pages = pages.clone();
                        async move {
                            let after: u64 = uri
                                .query()
                                .unwrap_or("")
                                .split('&')
                                .find_map(|kv| kv.strip_prefix("cursor="))
                                .and_then(|c| c.parse().ok())
                                .unwrap_or(0);
                            pages[(after / PAGE) as usize].clone()
                        }
                    }),
                )
                .route(
                    "/bulk",
                    post(|body: axum::body::Bytes| async move {
                        // Counts the records (a real endpoint reads them).
                        let v: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let n = v["records"].as_array().map_or(0, Vec::len);
                        let results: Vec<_> = (0..n)
                            .map(|i| serde_json::json!({"index": i, "status": "ok"}))
                            .collect();
                        serde_json::to_vec(&serde_json::json!({ "results": results }))
                            .unwrap_or_default()
                    }),
                );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr").port())
                .expect("send");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    rx.recv().expect("port")
}

fn to_value(v: &serde_json::Value) -> Value<'static> {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map_or_else(|| Value::Float(n.as_f64().unwrap_or(0.0)), Value::Int),
        serde_json::Value::String(s) => Value::Text(s.clone().into()),
        other => Value::Json(other.to_string().into()),
    }
}

/// The paging loop written natively: the same work as the connector.
fn native_source(port: u16, fresh_connections: bool) -> u64 {
    let mut agent = ureq::Agent::new_with_defaults();
    let mut cursor: Option<String> = None;
    let mut n = 0;
    loop {
        let mut url = format!("http://127.0.0.1:{port}/customers?limit={PAGE}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        if fresh_connections {
            agent = ureq::Agent::new_with_defaults();
        }
        let body = agent
            .get(&url)
            .call()
            .expect("get")
            .body_mut()
            .read_to_vec()
            .expect("body");
        // As the connector does: the host's decoder, record `i` of the page
        // read from position `P` at `P#i`, the cursor from the page.
        let layout = sluice_codec::json::Layout {
            records_at: vec!["data".into()],
            stream: "customers".into(),
            op: Operation::Snapshot,
            key_member: Some("id".into()),
            position: Some(match &cursor {
                Some(c) => format!("page:{c}"),
                None => "start".into(),
            }),
            members: vec![vec!["next_cursor".into()]],
        };
        let page = sluice_codec::json::decode(&body, &layout, usize::MAX).expect("json");
        let next = match page.members.into_iter().next().flatten() {
            Some(t) => match serde_json::from_str::<serde_json::Value>(&t).expect("cursor") {
                serde_json::Value::String(c) if !c.is_empty() => Some(c),
                _ => None,
            },
            None => None,
        };
        n += page.batch.len() as u64;
        std::hint::black_box(page.batch.finish());
        match next {
            Some(c) => cursor = Some(c),
            None => return n,
        }
    }
}

fn connector(root: &Path, toml_text: &str) -> ConnectorConfig {
    let mut c: ConnectorConfig = toml::from_str(toml_text).expect("config");
    c.resolve_paths(root);
    c.cache_dir = Some(std::env::temp_dir().join("sluice-bench-cache"));
    c
}

/// Reads everything through a WASM source; returns the records and polls.
fn run_source(source: &mut WasmSource, batch: usize) -> (u64, u64) {
    let count = AtomicU64::new(0);
    let batches = AtomicU64::new(0);
    let feedback = SourceFeedback::default();
    // Each batch counts as committed at once (no sink here).
    let mut send = |b: SourceBatch| {
        count.fetch_add(b.spans.len() as u64, std::sync::atomic::Ordering::Relaxed);
        batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        feedback.set_committed(&b.resume);
        Ok(())
    };
    let (stop, paused, progress) = (
        AtomicBool::new(false),
        AtomicBool::new(false),
        AtomicU64::new(0),
    );
    let mut ctx = SourceContext::new(
        batch,
        64 << 20,
        &mut send,
        &stop,
        &paused,
        &progress,
        &feedback,
    );
    source.run(None, &mut ctx).expect("run");
    (count.into_inner(), batches.into_inner())
}

fn records(n: u64) -> Vec<Record<'static>> {
    (1..=n)
        .map(|i| {
            let item = customer(i);
            let mut r = Record {
                op: Operation::Snapshot,
                stream: "customers".into(),
                position: format!("{i}").into(),
                ..Default::default()
            };
            for (k, v) in item.as_object().expect("object") {
                r.set(k.clone(), to_value(v));
            }
            r
        })
        .collect()
}

/// The bulk loop written natively: the same JSON body, one POST per batch.
fn native_sink(port: u16, records: &[Record<'static>]) {
    let agent = ureq::Agent::new_with_defaults();
    let url = format!("http://127.0.0.1:{port}/bulk");
    for chunk in records.chunks(PAGE as usize) {
        let keys = idempotency_keys(chunk);
        // The host's own writer (what `jsonio.encode` asks it for), no tree.
        use sluice_runtime::value_json::{write_fields_json, write_str};
        let mut text = Vec::with_capacity(256 * chunk.len());
        text.extend_from_slice(b"{\"records\":[");
        for (i, (r, k)) in chunk.iter().zip(&keys).enumerate() {
            if i > 0 {
                text.push(b',');
            }
            text.extend_from_slice(b"{\"key\":");
            write_str(&mut text, k);
            text.extend_from_slice(b",\"record\":");
            write_fields_json(&mut text, r);
            text.push(b'}');
        }
        text.extend_from_slice(b"]}");
        let mut resp = agent
            .post(&url)
            .header("content-type", "application/json")
            .send(text)
            .expect("post");
        let v: serde_json::Value =
            serde_json::from_slice(&resp.body_mut().read_to_vec().expect("body")).expect("json");
        assert_eq!(v["results"].as_array().map(Vec::len), Some(chunk.len()));
    }
}

fn main() {
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("root");
    let rounds: usize = std::env::var("SLUICE_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    for dir in [
        "connectors/http-api-source",
        "connectors/http-bulk-sink",
        "benches/bulk-sink-rust",
        "tests/fixtures/broken-source",
    ] {
        sluice_runtime::toolchain::build(&root.join(dir), None).expect("build");
    }
    let port = serve();
    let source_cfg = connector(
        &root,
        &format!(
            "path = \"connectors/http-api-source/build/http-api-source.wasm\"\nconfig = {{ url = \"http://127.0.0.1:{port}/customers\", page_size = {PAGE} }}\n[grants]\nhttp = [\"http://127.0.0.1:{port}\"]\n"
        ),
    );
    let sink_cfg = connector(
        &root,
        &format!(
            "path = \"connectors/http-bulk-sink/build/http-bulk-sink.wasm\"\nconfig = {{ url = \"http://127.0.0.1:{port}/bulk\" }}\n[grants]\nhttp = [\"http://127.0.0.1:{port}\"]\n"
        ),
    );
    let rust_sink_cfg = connector(
        &root,
        &format!(
            "path = \"benches/bulk-sink-rust/build/bench-bulk-sink.wasm\"\nconfig = {{ url = \"http://127.0.0.1:{port}/bulk\" }}\n[grants]\nhttp = [\"http://127.0.0.1:{port}\"]\n"
        ),
    );
    let input = records(RECORDS);
    let (mut nat_src, mut wasm_src, mut nat_sink, mut wasm_sink) = (vec![], vec![], vec![], vec![]);
    let mut nat_fresh = vec![];
    let mut source = WasmSource::new(source_cfg).expect("source");
    let mut sink = WasmSink::new(sink_cfg).expect("sink");
    sink.open(None).expect("open");
    let mut rust_sink = WasmSink::new(rust_sink_cfg).expect("rust sink");
    rust_sink.open(None).expect("open");
    let mut wasm_rust_sink = vec![];
    // Warm up (compile caches, connections).
    native_source(port, false);
    run_source(&mut source, PAGE as usize);
    for _ in 0..rounds {
        let t = Instant::now();
        assert_eq!(native_source(port, false), RECORDS);
        nat_src.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(native_source(port, true), RECORDS);
        nat_fresh.push(t.elapsed());
        let t = Instant::now();
        let (n, _) = run_source(&mut source, PAGE as usize);
        assert_eq!(n, RECORDS);
        wasm_src.push(t.elapsed());
        let t = Instant::now();
        native_sink(port, &input);
        nat_sink.push(t.elapsed());
        let t = Instant::now();
        for chunk in input.chunks(PAGE as usize) {
            let c = sink.write(chunk).expect("write");
            assert_eq!(c.written, chunk.len() as u64);
        }
        wasm_sink.push(t.elapsed());
        let t = Instant::now();
        for chunk in input.chunks(PAGE as usize) {
            let c = rust_sink.write(chunk).expect("write");
            assert_eq!(c.written, chunk.len() as u64);
        }
        wasm_rust_sink.push(t.elapsed());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let rate = |d: Duration| RECORDS as f64 / d.as_secs_f64();
    let (ns, ws, nk, wk) = (
        median(&mut nat_src),
        median(&mut wasm_src),
        median(&mut nat_sink),
        median(&mut wasm_sink),
    );
    println!("{RECORDS} records, pages/batches of {PAGE}, median of {rounds} interleaved rounds\n");
    println!("| | native loop | WASM connector | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| source: HTTP API (Rust) | {:.0}k rec/s | {:.0}k rec/s | {:.2}× |",
        rate(ns) / 1e3,
        rate(ws) / 1e3,
        rate(ws) / rate(ns)
    );
    let nf = median(&mut nat_fresh);
    println!(
        "| source, native loop opening a new connection per page | {:.0}k rec/s | | {:.2}× of native |",
        rate(nf) / 1e3,
        rate(nf) / rate(ns)
    );
    println!(
        "| sink: HTTP bulk (Python) | {:.0}k rec/s | {:.0}k rec/s | {:.2}× |",
        rate(nk) / 1e3,
        rate(wk) / 1e3,
        rate(wk) / rate(nk)
    );
    let wr = median(&mut wasm_rust_sink);
    println!(
        "| sink: HTTP bulk (the same in Rust) | {:.0}k rec/s | {:.0}k rec/s | {:.2}× |",
        rate(nk) / 1e3,
        rate(wr) / 1e3,
        rate(wr) / rate(nk)
    );

    // Per-call overhead. Source: 1-record polls of the fixture (no I/O).
    let polls = 20_000u64;
    let mut fixture = WasmSource::new(connector(
        &root,
        &format!("path = \"tests/fixtures/broken-source/build/broken-source.wasm\"\nconfig = {{ records = {polls} }}\n"),
    ))
    .expect("fixture");
    run_source(&mut fixture, 1);
    let t = Instant::now();
    let (n, calls) = run_source(&mut fixture, 1);
    let per_poll = t.elapsed() / calls.max(1) as u32;
    assert_eq!(n, polls);
    // Sink: a 1-record write + commit, minus a native 1-record POST.
    let one = &input[..1];
    let calls = 300;
    let t = Instant::now();
    for _ in 0..calls {
        native_sink(port, one);
    }
    let native_one = t.elapsed() / calls;
    let t = Instant::now();
    for _ in 0..calls {
        sink.write(one).expect("write");
    }
    let wasm_one = t.elapsed() / calls;
    let t = Instant::now();
    for _ in 0..calls {
        rust_sink.write(one).expect("write");
    }
    let rust_one = t.elapsed() / calls;
    println!("\n| per call | time |");
    println!("|---|---|");
    println!(
        "| source `poll` of 1 record (fixture, no I/O), host side included | {:.1} µs |",
        per_poll.as_secs_f64() * 1e6
    );
    println!(
        "| sink `write` + `commit` of 1 record (Python, HTTP) | {:.0} µs |",
        wasm_one.as_secs_f64() * 1e6
    );
    println!(
        "| the same POST natively | {:.0} µs |",
        native_one.as_secs_f64() * 1e6
    );
    println!(
        "| sink world + Python overhead per call | {:.0} µs |",
        (wasm_one.saturating_sub(native_one)).as_secs_f64() * 1e6
    );
    println!(
        "| sink `write` + `commit` of 1 record (the Rust sink, HTTP) | {:.0} µs |",
        rust_one.as_secs_f64() * 1e6
    );
    println!(
        "| sink world overhead per call (Rust) | {:.0} µs |",
        (rust_one.saturating_sub(native_one)).as_secs_f64() * 1e6
    );
}
