//! The connection pool behind a connector's outgoing HTTP: one client per
//! loaded connector (shared by its instances), so that the requests after
//! the first reuse an open connection, and for HTTPS its TLS session,
//! instead of paying a TCP and TLS handshake per page. TLS is rustls with
//! the Mozilla roots (webpki-roots); redirects are not followed (each hop
//! is a new request the connector makes, checked again).
//!
//! The timeouts of a request: connecting, then the first byte of the
//! response (together bounded by connect + first-byte), then each gap
//! between body frames.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use wasmtime_wasi_http::{Error as ErrorCode, WasiBody};

/// How long an idle connection is kept open.
const IDLE: Duration = Duration::from_secs(30);

/// Idle connections kept per origin.
const IDLE_PER_ORIGIN: usize = 4;

/// A pooled HTTP/1.1 client (http and https).
#[derive(Clone)]
pub struct Pool {
    client: Client<HttpsConnector<HttpConnector>, WasiBody>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

impl Pool {
    /// A client whose connections take at most `connect_timeout` to open,
    /// trusting the Mozilla roots and the CA certificates in `extra_ca`
    /// (a PEM file), if given.
    pub fn new(connect_timeout: Duration, extra_ca: Option<&Path>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = extra_ca {
            let text = std::fs::read(path)
                .map_err(|e| format!("`grants.tls_ca` {}: {e}", path.display()))?;
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(&text) {
                let cert = cert.map_err(|e| {
                    format!(
                        "`grants.tls_ca` {}: not PEM certificates: {e}",
                        path.display()
                    )
                })?;
                roots.add(cert).map_err(|e| {
                    format!(
                        "`grants.tls_ca` {}: a certificate is not usable as a CA: {e}",
                        path.display()
                    )
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(format!(
                    "`grants.tls_ca` {}: holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----` blocks)",
                    path.display()
                ));
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE)
            .pool_max_idle_per_host(IDLE_PER_ORIGIN)
            .build(https);
        Ok(Pool { client })
    }

    /// Sends `request` (an absolute URI) and returns the response once its
    /// head arrived; its body fails with a timeout when a gap between
    /// frames exceeds `between_bytes`. Must run inside a tokio runtime.
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        first_byte: Duration,
        between_bytes: Duration,
    ) -> Result<http::Response<WasiBody>, ErrorCode> {
        let response = tokio::time::timeout(first_byte, self.client.request(request))
            .await
            .map_err(|_| ErrorCode::ConnectionReadTimeout)?
            .map_err(|e| classify(&e))?;
        Ok(response.map(|body| {
            Gaps {
                inner: body,
                limit: between_bytes,
                timer: Box::pin(tokio::time::sleep(between_bytes)),
            }
            .boxed_unsync()
        }))
    }
}

/// The WASI error code for a client error.
fn classify(e: &hyper_util::client::legacy::Error) -> ErrorCode {
    use std::error::Error as _;
    if e.is_connect() {
        // The cause chain tells a refused connection from a timeout or DNS.
        if let Some(tls) = e.source().and_then(find_tls) {
            return tls_error(tls);
        }
        let mut cause = e.source();
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                return match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => ErrorCode::ConnectionRefused,
                    std::io::ErrorKind::TimedOut => ErrorCode::ConnectionTimeout,
                    _ => ErrorCode::ConnectionRefused,
                };
            }
            let text = c.to_string();
            if text.contains("dns error") || text.contains("failed to lookup") {
                return ErrorCode::DestinationNotFound;
            }
            if text.contains("timed out") {
                return ErrorCode::ConnectionTimeout;
            }
            cause = c.source();
        }
        return ErrorCode::ConnectionRefused;
    }
    let mut cause = e.source();
    while let Some(c) = cause {
        if let Some(h) = c.downcast_ref::<hyper::Error>() {
            return hyper_error(h);
        }
        cause = c.source();
    }
    ErrorCode::HttpProtocolError
}

/// The rustls error inside an error, wherever it is wrapped (hyper-rustls
/// nests it in I/O errors).
fn find_tls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(t) = e.downcast_ref::<rustls::Error>() {
        return Some(t);
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        && let Some(t) = find_tls(inner)
    {
        return Some(t);
    }
    e.source().and_then(find_tls)
}

/// The WASI error code for a TLS failure; the host logs what rustls said.
fn tls_error(e: &rustls::Error) -> ErrorCode {
    tracing::warn!("TLS handshake failed: {e}");
    match e {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            ErrorCode::TlsCertificateError
        }
        _ => ErrorCode::TlsProtocolError,
    }
}

/// The WASI error code for a hyper error (a connection cut mid-response is
/// worth a retry: `ConnectionTerminated`).
pub(crate) fn hyper_error(h: &hyper::Error) -> ErrorCode {
    if h.is_incomplete_message() || h.is_closed() || h.is_canceled() {
        ErrorCode::ConnectionTerminated
    } else if h.is_timeout() {
        ErrorCode::ConnectionReadTimeout
    } else {
        ErrorCode::HttpProtocolError
    }
}

/// A response body whose frames must not be further apart than `limit`.
struct Gaps {
    inner: hyper::body::Incoming,
    limit: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Body for Gaps {
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + self.limit;
                self.timer.as_mut().reset(deadline);
                Poll::Ready(frame.map(|f| f.map_err(|e| hyper_error(&e))))
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(ErrorCode::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A keep-alive HTTP/1.1 server on loopback that counts connections;
    /// `/slow` sends half its body, then stalls.
    async fn server(connections: Arc<AtomicUsize>) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                            buf.drain(..end + 4);
                            if head.starts_with("GET /slow") {
                                let _ = sock
                                    .write_all(
                                        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf.",
                                    )
                                    .await;
                                tokio::time::sleep(Duration::from_secs(5)).await;
                                return;
                            }
                            let _ = sock
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                                .await;
                        }
                    }
                });
            }
        });
        port
    }

    fn get(url: &str) -> http::Request<WasiBody> {
        let body = http_body_util::Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        http::Request::get(url).body(body).unwrap()
    }

    #[test]
    fn requests_reuse_one_connection_and_a_stalled_body_times_out() {
        wasmtime_wasi::runtime::in_tokio(async {
            let connections = Arc::new(AtomicUsize::new(0));
            let port = server(connections.clone()).await;
            let pool = Pool::new(Duration::from_secs(2), None).unwrap();
            let t = Duration::from_secs(2);
            for _ in 0..20 {
                let r = pool
                    .send(get(&format!("http://127.0.0.1:{port}/x")), t, t)
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let body = r.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(&body[..], b"ok");
            }
            // A connection goes back to the pool once its response is read;
            // a request sent at that very moment may open another one, so
            // the count is "mostly one", not exactly one.
            let opened = connections.load(Ordering::SeqCst);
            assert!(opened <= 4, "{opened} connections for 20 requests");
            // The head arrives, then the body stalls past the gap allowed.
            let r = pool
                .send(
                    get(&format!("http://127.0.0.1:{port}/slow")),
                    t,
                    Duration::from_millis(200),
                )
                .await
                .unwrap();
            let started = std::time::Instant::now();
            let got = r.into_body().collect().await;
            assert!(
                matches!(got, Err(ErrorCode::ConnectionReadTimeout)),
                "{got:?}"
            );
            assert!(started.elapsed() < Duration::from_secs(2));
            // Nothing listens here: refused, not hung.
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let dead = closed.local_addr().unwrap().port();
            drop(closed);
            let e = pool
                .send(get(&format!("http://127.0.0.1:{dead}/")), t, t)
                .await
                .unwrap_err();
            assert!(matches!(e, ErrorCode::ConnectionRefused), "{e:?}");
        });
    }
}
