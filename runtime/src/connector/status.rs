//! What a running connector reports in the admin API's `/status`
//! (`connectors`): which version is live, what it is doing, how often it
//! retried or restarted, its HTTP traffic and refusals, and every swap.
//! The source and sink loops update it; the admin API reads it.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::http::HttpStats;
use super::{ConnectorHost, Kind};

/// The most swaps a report keeps (the latest).
const MAX_SWAPS: usize = 20;

/// A connector's live status, shared between its loop and the admin API.
#[derive(Debug)]
pub struct ConnectorStatus {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    report: ConnectorReport,
    /// The live version's HTTP counters (earlier versions' are in `report`).
    http: Arc<HttpStats>,
}

/// A snapshot of a connector's status.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConnectorReport {
    /// `source` or `sink`.
    pub kind: &'static str,
    /// The connector's name in the pipeline.
    pub name: String,
    /// The live version (12 hex digits of component, config and grants).
    pub version: String,
    /// `NAME VERSION` from the component's manifest, when it has one.
    pub package: Option<String>,
    /// What it is doing: `reading`, `retrying in 2.0 s (attempt 3): ...`.
    pub state: String,
    /// Transient errors retried since the start.
    pub retries: u64,
    /// Instances restarted after a crash since the start.
    pub restarts: u64,
    /// Records the target refused (sinks).
    pub refused: u64,
    /// HTTP requests sent.
    pub http_requests: u64,
    /// HTTP requests the host refused (origin not granted).
    pub http_denied: u64,
    /// The last request the host refused.
    pub last_denied: Option<String>,
    /// The last error, with when it happened (ms since the epoch).
    pub last_error: Option<(u64, String)>,
    /// Versions that went live or were refused while running, latest last.
    pub swaps: Vec<SwapEvent>,
}

/// A new version of the component file, taken or refused.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SwapEvent {
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// The version that was live.
    pub from: String,
    /// The candidate's version (empty when it could not be loaded).
    pub to: String,
    /// True when the candidate went live.
    pub live: bool,
    /// Why it was refused.
    pub error: Option<String>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl ConnectorStatus {
    /// The status of a freshly loaded connector.
    pub fn new(host: &ConnectorHost, kind: Kind) -> Arc<Self> {
        Self::of(
            kind,
            &host.name,
            &host.version,
            host.package.clone(),
            host.http_stats_handle(),
        )
    }

    fn of(
        kind: Kind,
        name: &str,
        version: &str,
        package: Option<String>,
        http: Arc<HttpStats>,
    ) -> Arc<Self> {
        Arc::new(ConnectorStatus {
            inner: Mutex::new(Inner {
                report: ConnectorReport {
                    kind: kind.as_str(),
                    name: name.to_string(),
                    version: version.to_string(),
                    package,
                    state: "loaded".into(),
                    retries: 0,
                    restarts: 0,
                    refused: 0,
                    http_requests: 0,
                    http_denied: 0,
                    last_denied: None,
                    last_error: None,
                    swaps: Vec::new(),
                },
                http,
            }),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// What the connector is doing now.
    pub fn set_state(&self, state: impl Into<String>) {
        let state = state.into();
        self.with(|i| i.report.state = state);
    }

    /// A transient error, about to be retried.
    pub fn retried(&self, error: &str) {
        self.with(|i| {
            i.report.retries += 1;
            i.report.last_error = Some((now_ms(), error.to_string()));
        });
    }

    /// An instance crashed and is being replaced.
    pub fn restarted(&self, error: &str) {
        self.with(|i| {
            i.report.restarts += 1;
            i.report.last_error = Some((now_ms(), error.to_string()));
        });
    }

    /// An error that stops the connector.
    pub fn failed(&self, error: &str) {
        self.with(|i| {
            i.report.state = "stopped".into();
            i.report.last_error = Some((now_ms(), error.to_string()));
        });
    }

    /// Records the target refused in a batch.
    pub fn refused(&self, n: usize) {
        self.with(|i| i.report.refused += n as u64);
    }

    /// A new version went live (`old` was live before).
    pub fn swapped(&self, old: &ConnectorHost, new: &ConnectorHost) {
        self.went_live(
            &old.version,
            &new.version,
            new.package.clone(),
            new.http_stats_handle(),
        );
    }

    fn went_live(&self, old: &str, new: &str, package: Option<String>, http: Arc<HttpStats>) {
        self.with(|i| {
            // The old version's traffic stays counted.
            let (sent, denied) = counts(&i.http);
            i.report.http_requests += sent;
            i.report.http_denied += denied;
            i.http = http;
            i.report.version = new.to_string();
            i.report.package = package;
            push_swap(
                &mut i.report.swaps,
                SwapEvent {
                    at_ms: now_ms(),
                    from: old.to_string(),
                    to: new.to_string(),
                    live: true,
                    error: None,
                },
            );
        });
    }

    /// A new version was refused; the live one goes on.
    pub fn swap_refused(&self, live: &ConnectorHost, error: &str) {
        self.refused_candidate(&live.version, error);
    }

    fn refused_candidate(&self, live: &str, error: &str) {
        self.with(|i| {
            push_swap(
                &mut i.report.swaps,
                SwapEvent {
                    at_ms: now_ms(),
                    from: live.to_string(),
                    to: String::new(),
                    live: false,
                    error: Some(error.to_string()),
                },
            );
        });
    }

    /// A snapshot, HTTP counters included.
    pub fn report(&self) -> ConnectorReport {
        self.with(|i| {
            let mut r = i.report.clone();
            let (sent, denied) = counts(&i.http);
            r.http_requests += sent;
            r.http_denied += denied;
            r.last_denied = i
                .http
                .last_denied
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .or(r.last_denied);
            r
        })
    }
}

fn counts(s: &HttpStats) -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (s.sent.load(Relaxed), s.denied.load(Relaxed))
}

fn push_swap(swaps: &mut Vec<SwapEvent>, e: SwapEvent) {
    if swaps.len() == MAX_SWAPS {
        swaps.remove(0);
    }
    swaps.push(e);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    #[test]
    fn counters_span_versions_and_swaps_keep_the_latest() {
        let first = Arc::new(HttpStats::default());
        let st = ConnectorStatus::of(
            Kind::Sink,
            "bulk",
            "aaaaaaaaaaaa",
            Some("bulk 1.0.0".into()),
            first.clone(),
        );
        first.sent.store(7, Relaxed);
        first.denied.store(1, Relaxed);
        *first.last_denied.lock().unwrap() = Some("GET http://evil/".into());
        st.retried("503");
        st.restarted("trap");
        st.refused(3);
        st.set_state("writing");
        let r = st.report();
        assert_eq!(
            (r.kind, r.name.as_str(), r.state.as_str()),
            ("sink", "bulk", "writing")
        );
        assert_eq!((r.retries, r.restarts, r.refused), (1, 1, 3));
        assert_eq!((r.http_requests, r.http_denied), (7, 1));
        assert_eq!(r.last_denied.as_deref(), Some("GET http://evil/"));
        assert_eq!(r.last_error.as_ref().map(|e| e.1.as_str()), Some("trap"));

        let second = Arc::new(HttpStats::default());
        st.refused_candidate("aaaaaaaaaaaa", "not a component");
        st.went_live(
            "aaaaaaaaaaaa",
            "bbbbbbbbbbbb",
            Some("bulk 1.1.0".into()),
            second.clone(),
        );
        second.sent.store(2, Relaxed);
        let r = st.report();
        assert_eq!(r.version, "bbbbbbbbbbbb");
        assert_eq!(r.package.as_deref(), Some("bulk 1.1.0"));
        assert_eq!((r.http_requests, r.http_denied), (9, 1));
        assert_eq!(r.swaps.len(), 2);
        assert!(!r.swaps[0].live && r.swaps[0].error.as_deref() == Some("not a component"));
        assert!(
            r.swaps[1].live && r.swaps[1].from == "aaaaaaaaaaaa" && r.swaps[1].to == "bbbbbbbbbbbb"
        );

        for n in 0..30 {
            st.refused_candidate("bbbbbbbbbbbb", &format!("bad {n}"));
        }
        let r = st.report();
        assert_eq!(r.swaps.len(), MAX_SWAPS);
        assert_eq!(r.swaps[MAX_SWAPS - 1].error.as_deref(), Some("bad 29"));
        st.failed("gave up");
        assert_eq!(st.report().state, "stopped");
    }
}
