//! The console: a live page of the running pipeline, served by the admin
//! API at `/` (the page, its script and style are compiled into the
//! binary; nothing is fetched from elsewhere, so it works offline).
//!
//! The page reads `/events`, a feed of server-sent events: every second the
//! status (versions, history, shadow comparison), the time per stage, the
//! counters sampled since the last event (the first event carries the last
//! ten minutes, so the charts start full) and the dead letters since the
//! last event. The feed carries values from the data, so it needs the
//! run's token ([`super::guard`]); the page asks for it or takes it from the
//! URL `sluice ctl open` prints. Its buttons call the same `POST` routes as
//! `sluice ctl`, with the token.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use serde_json::json;

use super::AppState;
use crate::control::Control;

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// The page may run its own script and style and talk to its own origin,
/// nothing else: no inline script (text from the data can never run), no
/// other origin, no framing.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// How many per-second samples are kept: ten minutes.
const KEEP: usize = 600;

/// The counters at one second of the run, for the console's charts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(super) struct Sample {
    /// When, in ms since the epoch.
    t: u64,
    records_in: u64,
    written: u64,
    dropped: u64,
    dead_lettered: u64,
    /// Input records of each transform so far, in chain order.
    transforms: Vec<u64>,
    /// The source's lag, when it reports one.
    lag_seconds: Option<f64>,
    lag_bytes: Option<u64>,
    lag_records: Option<u64>,
}

/// The last [`KEEP`] samples, shared by the sampler and the feeds.
#[derive(Debug, Clone, Default)]
pub(super) struct Samples(Arc<Mutex<VecDeque<Sample>>>);

impl Samples {
    fn push(&self, s: Sample) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == KEEP {
            q.pop_front();
        }
        q.push_back(s);
    }

    /// Those taken after `t` (ms since the epoch), oldest first.
    fn after(&self, t: u64) -> Vec<Sample> {
        let q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let skip = q.partition_point(|s| s.t <= t);
        q.iter().skip(skip).cloned().collect()
    }
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or_default()
}

fn sample(control: &Control) -> Sample {
    let st = &control.stats;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let lag = st.source.lag();
    Sample {
        t: now_ms(),
        records_in: load(&st.records_in),
        written: load(&st.written),
        dropped: load(&st.dropped),
        dead_lettered: load(&st.dead_lettered),
        transforms: control
            .transforms()
            .iter()
            .map(|t| t.records_by_version.iter().map(|(_, n)| n).sum())
            .collect(),
        lag_seconds: lag.as_ref().map(|l| l.seconds),
        lag_bytes: lag.as_ref().map(|l| l.bytes),
        lag_records: lag.as_ref().and_then(|l| l.records),
    }
}

/// Samples the counters every second while the admin API runs.
pub(super) async fn sample_every_second(control: Arc<Control>, samples: Samples) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        samples.push(sample(&control));
    }
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
        ],
        body,
    )
}

/// `GET /`: the page.
pub(super) async fn page() -> impl IntoResponse {
    asset("text/html; charset=utf-8", PAGE)
}

/// `GET /console.js`.
pub(super) async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /console.css`.
pub(super) async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}

/// What one feed has sent so far.
struct Feed {
    state: AppState,
    tick: tokio::time::Interval,
    shutdown: tokio::sync::watch::Receiver<bool>,
    last_sample: u64,
    last_dead_letter: u64,
}

impl Feed {
    /// The next event: everything new since the last one.
    fn next(&mut self) -> Event {
        let c = &self.state.control;
        let samples = self.state.samples.after(self.last_sample);
        if let Some(s) = samples.last() {
            self.last_sample = s.t;
        }
        let dead_letters = c
            .stats
            .recent_dead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .after(self.last_dead_letter);
        if let Some(d) = dead_letters.last() {
            self.last_dead_letter = d.seq;
        }
        let body = json!({
            "t": now_ms(),
            "status": super::status_json(&self.state, true),
            "profile": c.profile().map(|p| p.stages),
            "samples": samples,
            "dead_letters": dead_letters,
        });
        Event::default().event("status").data(body.to_string())
    }
}

/// `GET /events`: the console's feed, one event a second until the admin
/// API stops.
pub(super) async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let feed = Feed {
        shutdown: state.shutdown.clone(),
        state,
        tick,
        last_sample: 0,
        last_dead_letter: 0,
    };
    let stream = futures_util::stream::unfold(feed, |mut f| async move {
        tokio::select! {
            _ = f.tick.tick() => {}
            // The server is stopping: end the feed, or the graceful
            // shutdown would wait for it forever.
            _ = f.shutdown.changed() => return None,
        }
        if *f.shutdown.borrow() {
            return None;
        }
        let event = f.next();
        Some((Ok(event), f))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(t: u64) -> Sample {
        Sample {
            t,
            records_in: t,
            written: 0,
            dropped: 0,
            dead_lettered: 0,
            transforms: vec![],
            lag_seconds: None,
            lag_bytes: None,
            lag_records: None,
        }
    }

    #[test]
    fn samples_keep_ten_minutes_and_are_read_after_a_time() {
        let s = Samples::default();
        for t in 1..=(KEEP as u64 + 10) {
            s.push(at(t));
        }
        let all = s.after(0);
        assert_eq!(all.len(), KEEP);
        assert_eq!(all[0].t, 11);
        assert_eq!(
            s.after(KEEP as u64 + 8)
                .iter()
                .map(|x| x.t)
                .collect::<Vec<_>>(),
            [KEEP as u64 + 9, KEEP as u64 + 10]
        );
    }

    #[test]
    fn the_page_names_only_its_own_script_and_style() {
        // The policy forbids inline scripts and other origins: the page
        // must not need them.
        assert!(!PAGE.contains("<script>"));
        assert!(PAGE.contains(r#"<script src="/console.js""#));
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"));
        assert!(
            !SCRIPT.contains("innerHTML"),
            "text from the data goes in as text only"
        );
        assert!(!SCRIPT.contains("eval("));
    }
}
