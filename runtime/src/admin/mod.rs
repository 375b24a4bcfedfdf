//! The admin HTTP API of a running pipeline, on a local port:
//!
//! | method and path | what it does |
//! |---|---|
//! | `GET /` | the console: a live page of the run ([`console`]) |
//! | `GET /events` | the console's feed: the status, counters and new dead letters every second (server-sent events; token needed) |
//! | `GET /status` | pipeline counters, pause state, each transform's live and kept versions, records per version, the last refused candidate |
//! | `GET /metrics` | Prometheus text: the shared metric names (`records_in_total`, `records_out_total`, `records_rejected_total`, `errors_total{stage}`...) |
//! | `POST /reload` | reload the pipeline file and every plugin (like SIGHUP) |
//! | `POST /rollback/{transform}` | make the previous version of a transform live again (between two batches; answers with the version now live) |
//! | `POST /promote/{transform}` | make the transform's shadow live (between two batches; answers with its version) |
//! | `POST /pause`, `POST /resume` | hold back / let through new batches from the source |
//! | `POST /stop` | stop gracefully (like SIGTERM) |
//! | `POST /verify` | a round of `sluice verify --follow` reports here: it shows in `/status` (`verify`) and `/metrics` (`verify_differences`, `verify_persistent_differences` by table) |
//!
//! `sluice ctl` calls it. Requests that change something need the run's
//! token, and on loopback only the loopback address may be named in `Host`
//! and `Origin` ([`guard`]: what a browser page or another local user can
//! and cannot do). The address and token are in
//! `STATE_DIR/PIPELINE.admin.json` (mode 0600) while the run lasts.

pub mod client;
mod console;
pub mod guard;

use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::pipeline::Control;

/// A running admin server; stops when dropped.
pub struct AdminServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// This run's token.
    pub token: String,
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
    file: PathBuf,
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The console's URL for an API listening on `addr` (a wildcard address is
/// reached on loopback), with `token` in the fragment: the part after `#`,
/// which a browser never sends to the server.
pub fn console_url(addr: &str, token: Option<&str>) -> String {
    let host = match addr.parse::<SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        _ => addr.to_string(),
    };
    match token {
        Some(t) => format!("http://{host}/#token={t}"),
        None => format!("http://{host}/"),
    }
}

#[derive(Clone)]
struct AppState {
    control: Arc<Control>,
    pipeline: String,
    metrics: Option<PrometheusHandle>,
    guard: Arc<guard::Guard>,
    samples: console::Samples,
    /// Becomes true when the server stops (the console's feeds end).
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// The last round `sluice verify --follow` reported.
    verify: Arc<std::sync::Mutex<Option<serde_json::Value>>>,
}

/// Binds `addr` (an error says if the port is taken), writes the admin
/// file (address and a new token) in `state_dir`, and serves the API on a
/// thread of its own.
pub fn start(
    addr: &str,
    control: Arc<Control>,
    pipeline: String,
    metrics: Option<PrometheusHandle>,
    state_dir: &FsPath,
) -> Result<AdminServer, String> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("admin API: cannot listen on `{addr}`: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("admin API: {e}"))?;
    let token = guard::new_token()?;
    let file = guard::AdminFile::path(state_dir, &pipeline);
    guard::AdminFile {
        addr: local.to_string(),
        token: token.clone(),
        pid: std::process::id(),
    }
    .write(&file)
    .map_err(|e| format!("admin API: cannot write `{}`: {e}", file.display()))?;
    if !local.ip().is_loopback() {
        tracing::warn!(addr = %local, "admin API listening beyond loopback: every request needs the token");
    }
    let guard_token = token.clone();
    let guard = Arc::new(guard::Guard::new(token, local));
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("admin API: {e}"))?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let state = AppState {
        control,
        pipeline,
        metrics,
        guard: guard.clone(),
        samples: console::Samples::default(),
        shutdown: rx.clone(),
        verify: Arc::default(),
    };
    let thread = std::thread::Builder::new()
        .name("sluice-admin".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "admin API: cannot start its runtime");
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "admin API: cannot listen");
                        return;
                    }
                };
                tokio::spawn(console::sample_every_second(
                    state.control.clone(),
                    state.samples.clone(),
                ));
                let app = Router::new()
                    .route("/", get(console::page))
                    .route("/console.js", get(console::script))
                    .route("/console.css", get(console::style))
                    .route("/events", get(console::events))
                    .route("/status", get(status))
                    .route("/metrics", get(metrics_text))
                    .route("/reload", post(reload))
                    .route("/rollback/{transform}", post(rollback))
                    .route("/promote/{transform}", post(promote))
                    .route("/pause", post(pause))
                    .route("/resume", post(resume))
                    .route("/stop", post(stop))
                    .route("/verify", post(verify_round))
                    .layer(axum::middleware::from_fn_with_state(
                        guard,
                        guard::middleware,
                    ))
                    .with_state(state);
                let mut rx = rx;
                let shutdown = async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                };
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!(error = %e, "admin API stopped");
                }
            });
        })
        .map_err(|e| format!("admin API: cannot start its thread: {e}"))?;
    tracing::info!(addr = %local, "admin API listening");
    Ok(AdminServer {
        addr: local,
        token: guard_token,
        shutdown: Some(tx),
        thread: Some(thread),
        file,
    })
}

async fn status(State(s): State<AppState>, headers: HeaderMap) -> Json<serde_json::Value> {
    Json(status_json(&s, s.guard.has_token(&headers)))
}

/// The status as `/status` and the console's feed give it; the records a
/// shadow made only `with_values` (for a holder of the token).
fn status_json(s: &AppState, with_values: bool) -> serde_json::Value {
    let c = &s.control;
    let st = &c.stats;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut transforms = c.transforms().clone();
    if !with_values {
        for t in &mut transforms {
            t.shadow = t
                .shadow
                .take()
                .map(crate::shadow::ShadowReport::without_values);
        }
    }
    let connectors: Vec<_> = st
        .connectors
        .lock()
        .map(|c| c.iter().map(|s| s.report()).collect())
        .unwrap_or_default();
    json!({
        "pipeline": s.pipeline,
        "paused": c.paused.load(Ordering::Relaxed),
        "stopping": c.stopping(),
        "records_in": load(&st.records_in),
        "written": load(&st.written),
        "dropped": load(&st.dropped),
        "dead_lettered": load(&st.dead_lettered),
        "reloads": load(&st.reloads),
        "reload_failures": load(&st.reload_failures),
        "reasons": st.reasons.lock().map(|r| r.clone()).unwrap_or_default(),
        "transforms": transforms,
        "connectors": connectors,
        "source": {
            "state": st.source.state(),
            "lag": st.source.lag(),
            "committed": st.source.committed(),
        },
        "verify": verify_status(s, with_values),
    })
}

/// The last `verify --follow` round; the keys of the rows that differ
/// (values from the data) only `with_values`.
fn verify_status(s: &AppState, with_values: bool) -> serde_json::Value {
    let Some(mut round) = s.verify.lock().ok().and_then(|v| v.clone()) else {
        return serde_json::Value::Null;
    };
    if !with_values && let Some(tables) = round.get_mut("tables").and_then(|t| t.as_array_mut()) {
        for t in tables {
            if let Some(o) = t.as_object_mut() {
                o.remove("persistent_samples");
            }
        }
    }
    round
}

/// `POST /verify`: a round of `sluice verify --follow` (its JSON form).
async fn verify_round(
    State(s): State<AppState>,
    Json(round): Json<serde_json::Value>,
) -> (StatusCode, Json<serde_json::Value>) {
    let Some(tables) = round.get("tables").and_then(|t| t.as_array()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "a verify round has `tables`"})),
        );
    };
    for t in tables {
        let table = t
            .get("table")
            .and_then(|n| n.as_str())
            .unwrap_or("")
            .to_string();
        let n = |k: &str| t.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0) as f64;
        metrics::gauge!("verify_differences", "table" => table.clone())
            .set(n("missing") + n("extra") + n("different"));
        metrics::gauge!("verify_persistent_differences", "table" => table).set(n("persistent"));
    }
    metrics::counter!("verify_rounds_total").increment(1);
    if let Ok(mut v) = s.verify.lock() {
        *v = Some(round);
    }
    (StatusCode::OK, Json(json!({"verify": "recorded"})))
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    match &s.metrics {
        Some(h) => ([("content-type", "text/plain; version=0.0.4")], h.render()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "metrics are not enabled in this process\n",
        )
            .into_response(),
    }
}

async fn reload(State(s): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    s.control.reload.store(true, Ordering::Relaxed);
    (StatusCode::ACCEPTED, Json(json!({"reload": "requested"})))
}

async fn rollback(
    State(s): State<AppState>,
    Path(transform): Path<String>,
) -> (StatusCode, Json<serde_json::Value>) {
    on_stage(s.control, transform, |c, t| c.rollback(t)).await
}

async fn promote(
    State(s): State<AppState>,
    Path(transform): Path<String>,
) -> (StatusCode, Json<serde_json::Value>) {
    on_stage(s.control, transform, |c, t| c.promote(t)).await
}

/// Asks `transform`'s stage to change its live version and answers with
/// the version now live. The stage answers between two batches: the wait
/// runs off the async workers.
async fn on_stage(
    control: Arc<Control>,
    transform: String,
    ask: fn(&Control, &str) -> Result<String, String>,
) -> (StatusCode, Json<serde_json::Value>) {
    let t = transform.clone();
    match tokio::task::spawn_blocking(move || ask(&control, &t)).await {
        Ok(Ok(version)) => (
            StatusCode::OK,
            Json(json!({"transform": transform, "live": version})),
        ),
        Ok(Err(e)) => (StatusCode::CONFLICT, Json(json!({"error": e}))),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": e.to_string()})),
        ),
    }
}

async fn pause(State(s): State<AppState>) -> Json<serde_json::Value> {
    s.control.paused.store(true, Ordering::Relaxed);
    Json(json!({"paused": true}))
}

async fn resume(State(s): State<AppState>) -> Json<serde_json::Value> {
    s.control.paused.store(false, Ordering::Relaxed);
    Json(json!({"paused": false}))
}

async fn stop(State(s): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    s.control.stop.store(true, Ordering::Relaxed);
    (StatusCode::ACCEPTED, Json(json!({"stop": "requested"})))
}

#[cfg(test)]
mod tests {
    use super::console_url;

    #[test]
    fn the_console_url_carries_the_token_in_its_fragment() {
        assert_eq!(
            console_url("127.0.0.1:9464", Some("ab12")),
            "http://127.0.0.1:9464/#token=ab12"
        );
        assert_eq!(
            console_url("0.0.0.0:9000", Some("ab12")),
            "http://127.0.0.1:9000/#token=ab12"
        );
        assert_eq!(console_url("[::1]:9000", None), "http://[::1]:9000/");
    }
}
