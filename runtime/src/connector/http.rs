//! The host's side of a connector's outgoing HTTP: every request the
//! component makes through `wasi:http/outgoing-handler` passes here. A
//! request to an origin the pipeline did not grant is refused (the guest
//! sees `HTTP-request-denied`, the host logs the address); a granted one
//! gets the operator's credential header, a timeout and the rate limit,
//! then goes out over the host's HTTP/TLS stack.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::grants::{Credential, Origin};

/// Requests a connector may send per second, shared by its instances.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// At most `per_second` requests per second (0: unlimited).
    pub fn new(per_second: f64) -> Self {
        RateLimiter {
            interval: (per_second > 0.0).then(|| Duration::from_secs_f64(1.0 / per_second)),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Reserves the next slot; returns how long to wait for it.
    fn reserve(&self) -> Duration {
        let Some(step) = self.interval else {
            return Duration::ZERO;
        };
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let slot = (*next).max(now);
        *next = slot + step;
        slot - now
    }
}

/// Counters and the last refusal, readable by the host after a call.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Requests sent.
    pub sent: std::sync::atomic::AtomicU64,
    /// Requests refused (origin not granted).
    pub denied: std::sync::atomic::AtomicU64,
    /// The last refused address.
    pub last_denied: Mutex<Option<String>>,
}

/// Faults the host injects into a connector's HTTP traffic, for the
/// conformance kit (`sluice plugin test` on a connector): every `every`-th
/// request is answered by the host itself with `status` (or, with status 0,
/// held for `delay_ms` and then sent), without reaching the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chaos {
    /// Which requests: every n-th (1: all).
    pub every: u32,
    /// The status to answer with (503, 401...); 0: delay instead.
    #[serde(default)]
    pub status: u16,
    /// With `status = 0`: hold the request this long first.
    #[serde(default)]
    pub delay_ms: u64,
}

/// What one connector may do over HTTP.
#[derive(Clone)]
pub struct HttpPolicy {
    /// `connector NAME (VERSION)`, for messages.
    pub who: Arc<str>,
    /// Origins granted, with the credential to add (if any).
    pub origins: Arc<Vec<(Origin, Option<Credential>)>>,
    /// Bound on connecting, on the first byte and between bytes.
    pub timeout: Duration,
    /// The request rate limit.
    pub limiter: Arc<RateLimiter>,
    /// What happened.
    pub stats: Arc<HttpStats>,
    /// Injected faults (tests only).
    pub chaos: Option<Chaos>,
    /// Open connections to reuse (`None`: a connection per request).
    pub pool: Option<super::pool::Pool>,
    /// The connector's secrets, replaced by `***` in what the host logs
    /// and shows of a refused request (a connector could put one in a URL).
    pub secrets: Arc<super::grants::Secrets>,
}

impl HttpPolicy {
    /// A policy that refuses every request (transforms, connectors granted
    /// no origin).
    pub fn deny_all(who: &str) -> Self {
        HttpPolicy {
            who: Arc::from(who),
            origins: Arc::new(Vec::new()),
            timeout: Duration::from_secs(30),
            limiter: Arc::new(RateLimiter::new(0.0)),
            stats: Arc::new(HttpStats::default()),
            chaos: None,
            pool: None,
            secrets: Arc::default(),
        }
    }

    fn deny(&self, what: String) {
        // The URL is the connector's: capped, escaped, secrets replaced.
        let what = crate::plugin::untrusted::clean(
            &self.secrets.redact(&what),
            crate::plugin::untrusted::MAX_MESSAGE,
        );
        tracing::warn!(connector = %self.who, "HTTP request refused: {what}");
        self.stats
            .denied
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *self
            .stats
            .last_denied
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(what);
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for HttpPolicy {
    /// A connection the server closed mid-response says so (the connector
    /// retries it), rather than a generic protocol error.
    fn p2_error_from_hyper(
        &mut self,
        err: &hyper::Error,
    ) -> wasmtime_wasi_http::p2::bindings::http::types::ErrorCode {
        use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
        tracing::debug!(connector = %self.who, "HTTP connection error: {err}");
        // One rule for both HTTP paths (`pool::hyper_error`), in this
        // path's error type.
        match super::pool::hyper_error(err) {
            HttpError::ConnectionTerminated => ErrorCode::ConnectionTerminated,
            HttpError::ConnectionReadTimeout => ErrorCode::ConnectionReadTimeout,
            _ => ErrorCode::HttpProtocolError,
        }
    }

    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let origin = match Origin::of_uri(request.uri()) {
            Ok(o) => o,
            Err(why) => {
                self.deny(format!("{} ({why})", request.uri()));
                return Box::new(async { Err(HttpError::HttpRequestDenied) });
            }
        };
        let Some((_, credential)) = self.origins.iter().find(|(o, _)| *o == origin) else {
            self.deny(format!(
                "{} {}: origin {origin} is not granted (grant it in `grants.http`)",
                request.method(),
                request.uri()
            ));
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        };
        if let Some(c) = credential {
            // The operator's credential replaces whatever the connector set.
            request
                .headers_mut()
                .insert(c.name.clone(), c.value.clone());
        }
        let bound = |t: Option<Duration>| Some(t.map_or(self.timeout, |t| t.min(self.timeout)));
        let options = RequestOptions {
            connect_timeout: bound(options.and_then(|o| o.connect_timeout)),
            first_byte_timeout: bound(options.and_then(|o| o.first_byte_timeout)),
            between_bytes_timeout: bound(options.and_then(|o| o.between_bytes_timeout)),
        };
        let wait = self.limiter.reserve();
        let n = self
            .stats
            .sent
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let mut delay = Duration::ZERO;
        if let Some(c) = self.chaos
            && c.every > 0
            && n.is_multiple_of(u64::from(c.every))
        {
            if c.status != 0 {
                let status = c.status;
                return Box::new(async move {
                    let body = http_body_util::Empty::<bytes::Bytes>::new()
                        .map_err(|never| match never {})
                        .boxed_unsync();
                    let mut response = http::Response::new(body);
                    *response.status_mut() = http::StatusCode::from_u16(status)
                        .unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE);
                    if status == 429 {
                        response
                            .headers_mut()
                            .insert("retry-after", http::HeaderValue::from_static("1"));
                    }
                    Ok((
                        response,
                        Box::new(async { Ok(()) })
                            as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                    ))
                });
            }
            delay = Duration::from_millis(c.delay_ms);
        }
        let timeout = self.timeout;
        let pool = self.pool.clone();
        Box::new(async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            if !delay.is_zero() {
                // A stalled server: the request timeout still applies.
                if delay >= timeout {
                    tokio::time::sleep(timeout).await;
                    return Err(HttpError::ConnectionReadTimeout);
                }
                tokio::time::sleep(delay).await;
            }
            if let Some(pool) = pool {
                let bound = |t: Option<Duration>| t.unwrap_or(timeout);
                let response = pool
                    .send(
                        request,
                        bound(options.connect_timeout) + bound(options.first_byte_timeout),
                        bound(options.between_bytes_timeout),
                    )
                    .await?;
                return Ok((
                    response,
                    Box::new(async { Ok(()) })
                        as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ));
            }
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_url_is_logged_without_secrets_and_capped() {
        let mut specs = std::collections::BTreeMap::new();
        specs.insert(
            "token".to_string(),
            super::super::grants::SecretSpec::Value("s3cr3t-value".into()),
        );
        let secrets = super::super::grants::Secrets::resolve(&specs, std::path::Path::new("."))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut p = HttpPolicy::deny_all("source connector `t`");
        p.secrets = Arc::new(secrets);
        p.deny(format!(
            "GET http://evil.example/?k=s3cr3t-value&pad={}",
            "x".repeat(10_000)
        ));
        let last = p
            .stats
            .last_denied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let last = last.unwrap_or_default();
        assert!(
            last.starts_with("GET http://evil.example/?k=***&pad=xxx"),
            "{last}"
        );
        assert!(!last.contains("s3cr3t"));
        assert!(
            last.len() <= crate::plugin::untrusted::MAX_MESSAGE + 64,
            "{}",
            last.len()
        );
    }

    #[test]
    fn rate_limiter_spaces_requests() {
        let l = RateLimiter::new(10.0);
        assert_eq!(l.reserve(), Duration::ZERO);
        let second = l.reserve();
        assert!(second > Duration::from_millis(90) && second <= Duration::from_millis(100));
        let third = l.reserve();
        assert!(third > Duration::from_millis(190) && third <= Duration::from_millis(200));
        assert_eq!(RateLimiter::new(0.0).reserve(), Duration::ZERO);
    }
}
