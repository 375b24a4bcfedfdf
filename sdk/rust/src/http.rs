//! Outgoing HTTP for connectors, through the host (the `http-client`
//! import: one call per request, body in and out whole).
//!
//! The host sends the request over its own HTTP/TLS stack, and only to an
//! origin the pipeline grants (`grants.http`); it may add the operator's
//! credential header (`grants.auth`), which the connector never sees. A
//! refused origin fails with [`Error::is_denied`].
//!
//! ```no_run
//! # fn f() -> Result<(), sluice_sdk::http::Error> {
//! let resp = sluice_sdk::http::Request::get("http://127.0.0.1:8080/customers?page=1")
//!     .header("accept", "application/json")
//!     .send()?;
//! assert_eq!(resp.status, 200);
//! # Ok(()) }
//! ```

/// An HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`...
    pub method: String,
    /// The full URL: `scheme://host[:port]/path?query`.
    pub url: String,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
    /// Bound on the first response byte (the host's `request_timeout_ms`
    /// caps it in any case).
    pub timeout: Option<std::time::Duration>,
}

/// An HTTP response, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request failed (no response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    Denied,
    Invalid,
    Timeout,
    Other,
}

impl Error {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// The host refused the request: its origin is not granted.
    pub fn is_denied(&self) -> bool {
        self.kind == ErrorKind::Denied
    }

    /// The request itself is malformed (URL, method, header).
    pub fn is_invalid(&self) -> bool {
        self.kind == ErrorKind::Invalid
    }

    /// A connect, first-byte or between-bytes timeout.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Request {
            method: method.to_string(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout: None,
        }
    }

    /// A `GET`.
    pub fn get(url: impl Into<String>) -> Self {
        Request::new("GET", url)
    }

    /// A `POST` of `body`.
    pub fn post(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        let mut r = Request::new("POST", url);
        r.body = Some(body.into());
        r
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sends the request and reads the whole response.
    pub fn send(&self) -> Result<Response, Error> {
        send(self)
    }
}

#[cfg(target_arch = "wasm32")]
fn send(req: &Request) -> Result<Response, Error> {
    use crate::bindings::sluice::plugin::http_client::{self, HttpError};
    let request = http_client::Request {
        method: req.method.to_ascii_uppercase(),
        url: req.url.clone(),
        headers: req.headers.clone(),
        body: req.body.clone().unwrap_or_default(),
        timeout_ms: req
            .timeout
            .map(|t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX)),
    };
    match http_client::send(&request) {
        Ok(r) => Ok(Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }),
        Err(e) => Err(match e {
            HttpError::Denied(m) => Error::new(ErrorKind::Denied, m),
            HttpError::InvalidRequest(m) => Error::new(ErrorKind::Invalid, m),
            HttpError::Timeout(m) => Error::new(ErrorKind::Timeout, m),
            HttpError::Connection(m) | HttpError::TooLarge(m) => Error::new(ErrorKind::Other, m),
        }),
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn send(req: &Request) -> Result<Response, Error> {
    if !req.url.contains("://") {
        return Err(Error::new(
            ErrorKind::Invalid,
            format!("`{}` has no scheme", req.url),
        ));
    }
    Err(Error::new(
        ErrorKind::Other,
        "HTTP is only available inside the Sluice host (build for wasm32-wasip2)",
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn outside_the_host_a_request_fails_saying_why() {
        let e = Request::get("h/x").send().unwrap_err();
        assert!(e.is_invalid(), "{e}");
        let e = Request::get("http://h/x").send().unwrap_err();
        assert_eq!(
            e.to_string(),
            "HTTP is only available inside the Sluice host (build for wasm32-wasip2)"
        );
    }
}
