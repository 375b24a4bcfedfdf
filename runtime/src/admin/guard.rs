//! Who may talk to the admin API.
//!
//! A web page in any browser on the machine can send requests to a port on
//! loopback (a form posting `text/plain`, a `fetch` in `no-cors` mode), and
//! a page served from a name that resolves to 127.0.0.1 (DNS rebinding) can
//! even read the answers. So:
//!
//! - every request that changes something (`POST`) needs the run's token
//!   (`Authorization: Bearer TOKEN`): a page cannot read the token file,
//!   and a cross-origin request with that header is refused by the browser
//!   unless the server allows it (it never does);
//! - so does every request that reads values from the data: the console's
//!   feed (`/events`: dead-letter messages, the records a shadow made) and
//!   `/status` with the shadow's records (without the token `/status`
//!   leaves them out);
//! - the console's page and its script and style ([`PUBLIC`]) hold no
//!   data and need no token, so that a browser can load them; the page
//!   then asks for the token (or takes it from the URL `sluice ctl open`
//!   prints, in the fragment, which the browser never sends);
//! - on a loopback address, the `Host` must be the loopback address itself
//!   (no other name: DNS rebinding) and an `Origin`, when a browser sends
//!   one, must be that address too;
//! - on any other address, every request needs the token.
//!
//! The token is new for every run, 32 random bytes, and lives in a file of
//! the pipeline's state directory readable by its owner only (mode 0600),
//! beside the address; `sluice ctl --pipeline FILE` reads it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The admin file of a run: where its API listens and its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminFile {
    /// The address the API listens on.
    pub addr: String,
    /// The bearer token of this run.
    pub token: String,
    /// The process of the run.
    pub pid: u32,
}

impl AdminFile {
    /// The path of the admin file of pipeline `name` in `state_dir`.
    pub fn path(state_dir: &Path, name: &str) -> PathBuf {
        state_dir.join(format!("{name}.admin.json"))
    }

    /// Reads the admin file at `path`.
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }

    /// Writes it at `path`, readable by its owner only.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(path);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(path)?;
        f.write_all(serde_json::to_string(self)?.as_bytes())?;
        f.sync_all()
    }
}

/// A new random token (64 hex digits).
pub fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("cannot draw a random token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Paths anyone who may reach the API may read: the console's static
/// files.
pub const PUBLIC: [&str; 3] = ["/", "/console.js", "/console.css"];

/// Paths whose answers carry values from the data: the token is needed
/// even to read them.
pub const DATA: [&str; 1] = ["/events"];

/// What the guard checks requests against.
#[derive(Debug, Clone)]
pub struct Guard {
    token: String,
    addr: SocketAddr,
}

impl Guard {
    /// A guard for an API listening on `addr` with `token`.
    pub fn new(token: String, addr: SocketAddr) -> Self {
        Guard { token, addr }
    }

    /// `Ok` or the status and reason a request is refused with.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<(), (StatusCode, String)> {
        let loopback = self.addr.ip().is_loopback();
        if loopback {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            if !self.is_local_authority(host) {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!(
                        "the admin API answers requests for {} only (Host `{host}`)",
                        self.addr
                    ),
                ));
            }
            if let Some(origin) = headers.get(header::ORIGIN) {
                let origin = origin.to_str().unwrap_or_default();
                let authority = origin.strip_prefix("http://").unwrap_or("");
                if !self.is_local_authority(authority) {
                    return Err((
                        StatusCode::FORBIDDEN,
                        format!("requests from web pages are refused (Origin `{origin}`)"),
                    ));
                }
            }
        }
        let public = method == Method::GET && PUBLIC.contains(&path);
        let needs_token = method != Method::GET || DATA.contains(&path) || (!loopback && !public);
        if needs_token && !self.has_token(headers) {
            return Err((
                StatusCode::UNAUTHORIZED,
                "the admin API needs this run's token (`Authorization: Bearer ...`): `sluice ctl --pipeline FILE` reads it from the state directory, `sluice ctl open` prints the console's address with it".into(),
            ));
        }
        Ok(())
    }

    /// True when the request carries this run's token.
    pub fn has_token(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or_default();
        same(given.as_bytes(), self.token.as_bytes())
    }

    /// True for `127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT` with the
    /// port the API listens on.
    fn is_local_authority(&self, authority: &str) -> bool {
        let port = self.addr.port();
        [
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
            self.addr.to_string(),
        ]
        .iter()
        .any(|a| a.eq_ignore_ascii_case(authority))
    }
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware: refuses what [`Guard::check`] refuses, and marks every
/// answer as not to be cached, sniffed, framed or followed by a referrer.
pub async fn middleware(
    State(guard): State<std::sync::Arc<Guard>>,
    req: Request,
    next: Next,
) -> Response {
    let mut response = match guard.check(req.method(), req.uri().path(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err((status, reason)) => {
            tracing::warn!(%status, reason = %reason, "admin API request refused");
            (status, axum::Json(serde_json::json!({ "error": reason }))).into_response()
        }
    };
    let h = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        h.insert(name, header::HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(n.clone(), v.parse().unwrap());
        }
        h
    }

    fn guard(addr: &str) -> Guard {
        Guard::new("t0ken".into(), addr.parse().unwrap())
    }

    #[test]
    fn on_loopback_reads_need_the_local_host_and_changes_need_the_token() {
        let g = guard("127.0.0.1:9464");
        let host = (header::HOST, "127.0.0.1:9464");
        assert!(
            g.check(
                &Method::GET,
                "/status",
                &headers(std::slice::from_ref(&host))
            )
            .is_ok()
        );
        let e = g
            .check(
                &Method::POST,
                "/stop",
                &headers(std::slice::from_ref(&host)),
            )
            .unwrap_err();
        assert_eq!(e.0, StatusCode::UNAUTHORIZED);
        let auth = (header::AUTHORIZATION, "Bearer t0ken");
        assert!(
            g.check(
                &Method::POST,
                "/stop",
                &headers(&[host.clone(), auth.clone()])
            )
            .is_ok()
        );
        let wrong = (header::AUTHORIZATION, "Bearer t0kem");
        assert!(
            g.check(&Method::POST, "/stop", &headers(&[host.clone(), wrong]))
                .is_err()
        );
        // DNS rebinding: another name for 127.0.0.1.
        let e = g
            .check(
                &Method::GET,
                "/status",
                &headers(&[(header::HOST, "evil.example:9464")]),
            )
            .unwrap_err();
        assert_eq!(e.0, StatusCode::FORBIDDEN);
        // A web page, even with the token.
        let page = (header::ORIGIN, "http://evil.example");
        let e = g
            .check(
                &Method::POST,
                "/stop",
                &headers(&[host.clone(), auth.clone(), page]),
            )
            .unwrap_err();
        assert_eq!(e.0, StatusCode::FORBIDDEN);
        let same_origin = (header::ORIGIN, "http://localhost:9464");
        assert!(
            g.check(
                &Method::POST,
                "/stop",
                &headers(&[(header::HOST, "localhost:9464"), auth, same_origin])
            )
            .is_ok()
        );
    }

    #[test]
    fn the_console_page_is_public_and_its_feed_needs_the_token_even_on_loopback() {
        let g = guard("127.0.0.1:9464");
        let host = (header::HOST, "127.0.0.1:9464");
        for path in PUBLIC {
            assert!(
                g.check(&Method::GET, path, &headers(std::slice::from_ref(&host)))
                    .is_ok()
            );
        }
        let e = g
            .check(
                &Method::GET,
                "/events",
                &headers(std::slice::from_ref(&host)),
            )
            .unwrap_err();
        assert_eq!(e.0, StatusCode::UNAUTHORIZED);
        let auth = (header::AUTHORIZATION, "Bearer t0ken");
        assert!(
            g.check(&Method::GET, "/events", &headers(&[host.clone(), auth]))
                .is_ok()
        );
        // Still only under the loopback address's own name.
        let e = g
            .check(
                &Method::GET,
                "/",
                &headers(&[(header::HOST, "evil.example:9464")]),
            )
            .unwrap_err();
        assert_eq!(e.0, StatusCode::FORBIDDEN);
        // Beyond loopback the page loads without the token; nothing else does.
        let g = guard("0.0.0.0:9464");
        let host = (header::HOST, "sluice.internal:9464");
        assert!(
            g.check(
                &Method::GET,
                "/console.js",
                &headers(std::slice::from_ref(&host))
            )
            .is_ok()
        );
        assert!(
            g.check(
                &Method::GET,
                "/status",
                &headers(std::slice::from_ref(&host))
            )
            .is_err()
        );
        // `/` is public, not every path under it.
        assert!(
            g.check(&Method::GET, "/console.js/../status", &headers(&[host]))
                .is_err()
        );
    }

    #[test]
    fn beyond_loopback_everything_needs_the_token() {
        let g = guard("0.0.0.0:9464");
        let host = (header::HOST, "sluice.internal:9464");
        assert_eq!(
            g.check(
                &Method::GET,
                "/status",
                &headers(std::slice::from_ref(&host))
            )
            .unwrap_err()
            .0,
            StatusCode::UNAUTHORIZED
        );
        let auth = (header::AUTHORIZATION, "Bearer t0ken");
        assert!(
            g.check(&Method::GET, "/status", &headers(&[host, auth]))
                .is_ok()
        );
    }

    #[test]
    fn the_admin_file_is_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = AdminFile::path(dir.path(), "p");
        let f = AdminFile {
            addr: "127.0.0.1:1".into(),
            token: new_token().unwrap(),
            pid: 1,
        };
        f.write(&path).unwrap();
        assert_eq!(AdminFile::read(&path).unwrap(), f);
        assert_eq!(f.token.len(), 64);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
