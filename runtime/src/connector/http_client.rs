//! The `http-client` import: a whole request in, a whole response out, in
//! one call. It goes through the same [`HttpPolicy`] as
//! `wasi:http/outgoing-handler` (origin check, credential header, timeout,
//! rate limit, injected faults), then the host reads the body up to
//! [`MAX_RESPONSE_BYTES`]. A stop interrupts a request in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error as WasiError, RequestOptions, WasiHttpHooks};

use super::bindings::source::sluice::plugin::http_client::{Host, HttpError, Request, Response};
use super::http::HttpPolicy;
use crate::plugin::sandbox::HostState;

/// The largest response body the host reads for a connector.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// How often a request in flight looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);

impl Host for HostState {
    fn send(&mut self, request: Request) -> Result<Response, HttpError> {
        let url = request.url.clone();
        let req = build(request.method.as_str(), &url, request.headers, request.body)?;
        let options = request.timeout_ms.map(|ms| {
            let t = Some(Duration::from_millis(ms.into()));
            RequestOptions {
                connect_timeout: t,
                first_byte_timeout: t,
                between_bytes_timeout: t,
            }
        });
        let policy = self.http.clone();
        let interrupt = self.interrupt.clone();
        wasmtime_wasi::runtime::in_tokio(exchange(policy, req, options, interrupt))
            .map_err(|e| classify(&url, e))
    }
}

/// The hyper request, or what is wrong with it.
fn build(
    method: &str,
    url: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Result<http::Request<wasmtime_wasi_http::WasiBody>, HttpError> {
    let invalid = |what: String| HttpError::InvalidRequest(format!("{url}: {what}"));
    let uri: http::Uri = url
        .parse()
        .map_err(|e| invalid(format!("not a URL ({e})")))?;
    if uri.scheme().is_none() || uri.authority().is_none() {
        return Err(invalid("not an absolute URL (http:// or https://)".into()));
    }
    let method = http::Method::from_bytes(method.as_bytes())
        .map_err(|_| invalid(format!("`{method}` is not an HTTP method")))?;
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        let n = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("`{name}` is not a header name")))?;
        // The same headers `wasi:http` refuses: they belong to the
        // connection the host manages (a guest's `host`, `connection` or
        // `transfer-encoding` could steer or desynchronise it).
        if wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(&n) {
            return Err(invalid(format!(
                "the header `{n}` is set by the host, not by a connector"
            )));
        }
        let v = http::HeaderValue::from_str(&value)
            .map_err(|_| invalid(format!("the value of header `{name}` is not allowed")))?;
        if n == http::header::CONTENT_LENGTH {
            // The host sets it from the body; a different one would make
            // the server read the body wrong.
            if value.trim() != body.len().to_string() {
                return Err(invalid(format!(
                    "`content-length: {value}` does not match the body ({} bytes)",
                    body.len()
                )));
            }
            continue;
        }
        builder = builder.header(n, v);
    }
    if !body.is_empty() {
        builder = builder.header(http::header::CONTENT_LENGTH, body.len());
    }
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync();
    builder.body(body).map_err(|e| invalid(e.to_string()))
}

/// Why an exchange gave no response.
enum Failed {
    Wasi(WasiError),
    TooLarge,
    Stopped,
}

impl From<WasiError> for Failed {
    fn from(e: WasiError) -> Self {
        Failed::Wasi(e)
    }
}

async fn exchange(
    mut policy: HttpPolicy,
    req: http::Request<wasmtime_wasi_http::WasiBody>,
    options: Option<RequestOptions>,
    interrupt: Arc<AtomicBool>,
) -> Result<Response, Failed> {
    let work = async {
        let sent = policy.send_request(req, options, Box::new(async { Ok(()) }));
        let (response, io) = Box::into_pin(sent).await?;
        // The connection's own task: it ends when the body is read or dropped.
        tokio::spawn(Box::into_pin(io));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = response.into_body();
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                if out.len() + data.len() > MAX_RESPONSE_BYTES {
                    return Err(Failed::TooLarge);
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(Response {
            status,
            headers,
            body: out,
        })
    };
    let stopped = async {
        loop {
            tokio::time::sleep(STOP_CHECK).await;
            if interrupt.load(Ordering::Relaxed) {
                return Failed::Stopped;
            }
        }
    };
    tokio::select! {
        r = work => r,
        f = stopped => Err(f),
    }
}

/// The guest's error for a failed exchange.
fn classify(url: &str, f: Failed) -> HttpError {
    let e = match f {
        Failed::TooLarge => {
            return HttpError::TooLarge(format!(
                "{url}: the response body is larger than {} MiB",
                MAX_RESPONSE_BYTES >> 20
            ));
        }
        Failed::Stopped => {
            return HttpError::Connection(format!("{url}: the pipeline is stopping"));
        }
        Failed::Wasi(e) => e,
    };
    let text = format!("{url}: {e}");
    match e {
        WasiError::HttpRequestDenied => HttpError::Denied(format!(
            "{url}: refused by the host: its origin is not granted to this connector"
        )),
        WasiError::ConnectionTimeout
        | WasiError::ConnectionReadTimeout
        | WasiError::ConnectionWriteTimeout
        | WasiError::HttpResponseTimeout
        | WasiError::DnsTimeout => HttpError::Timeout(text),
        WasiError::HttpRequestUriInvalid
        | WasiError::HttpRequestMethodInvalid
        | WasiError::HttpRequestUriTooLong
        | WasiError::InvalidDnsNameError(_) => HttpError::InvalidRequest(text),
        WasiError::Hyper(h) if h.is_timeout() => HttpError::Timeout(text),
        _ => HttpError::Connection(text),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn requests_a_server_would_refuse_are_refused_before_sending() {
        let bad = |m: &str, u: &str, h: Vec<(String, String)>| match build(m, u, h, Vec::new()) {
            Err(HttpError::InvalidRequest(why)) => why,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("{m} {u} was accepted"),
        };
        assert_eq!(
            bad("GET", "/relative", vec![]),
            "/relative: not an absolute URL (http:// or https://)"
        );
        assert!(bad("GE T", "http://a/", vec![]).contains("`GE T` is not an HTTP method"));
        assert!(
            bad("GET", "http://a/", vec![("bad name".into(), "x".into())])
                .contains("`bad name` is not a header name")
        );
        assert!(
            bad("GET", "http://a/", vec![("x".into(), "a\nb".into())])
                .contains("the value of header `x` is not allowed")
        );
        for h in [
            "host",
            "Transfer-Encoding",
            "connection",
            "proxy-authorization",
            "upgrade",
        ] {
            let why = match build("GET", "http://a/", vec![(h.into(), "x".into())], Vec::new()) {
                Err(HttpError::InvalidRequest(why)) => why,
                other => panic!("{h}: {other:?}"),
            };
            assert!(why.contains("is set by the host"), "{why}");
        }
        let why = match build(
            "POST",
            "http://a/",
            vec![("content-length".into(), "0".into())],
            b"GET /admin HTTP/1.1".to_vec(),
        ) {
            Err(HttpError::InvalidRequest(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(why.contains("does not match the body (19 bytes)"), "{why}");
        let ok = build(
            "POST",
            "http://a:1/p?q=1",
            vec![("Content-Length".into(), "3".into())],
            b"abc".to_vec(),
        )
        .unwrap();
        assert_eq!(
            ok.headers()
                .get_all(http::header::CONTENT_LENGTH)
                .iter()
                .count(),
            1
        );
        assert_eq!(ok.headers()[http::header::CONTENT_LENGTH], "3");
        assert_eq!(ok.uri().path_and_query().unwrap().as_str(), "/p?q=1");
    }

    #[test]
    fn an_origin_not_granted_is_denied_and_named() {
        let policy = HttpPolicy::deny_all("source connector `t`");
        let req = build("GET", "http://127.0.0.1:9/x", vec![], Vec::new()).unwrap();
        let got = wasmtime_wasi::runtime::in_tokio(exchange(
            policy.clone(),
            req,
            None,
            Arc::new(AtomicBool::new(false)),
        ));
        match got.map_err(|f| classify("http://127.0.0.1:9/x", f)) {
            Err(HttpError::Denied(m)) => assert!(m.contains("not granted"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(
            policy
                .stats
                .last_denied
                .lock()
                .unwrap()
                .as_deref()
                .unwrap()
                .contains("origin http://127.0.0.1:9 is not granted")
        );
    }
}
