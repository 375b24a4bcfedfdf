//! Outgoing HTTP for connectors, through the host (`wasi:http`).
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

/// Splits `scheme://authority/path?query` (the path is `/` when absent).
fn split_url(url: &str) -> Result<(&str, &str, String), Error> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Error::new(ErrorKind::Invalid, format!("`{url}` has no scheme")))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(Error::new(
            ErrorKind::Invalid,
            format!("`{url}` has no host"),
        ));
    }
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Ok((scheme, authority, path))
}

#[cfg(target_arch = "wasm32")]
fn send(req: &Request) -> Result<Response, Error> {
    use crate::bindings::wasi::http::outgoing_handler;
    use crate::bindings::wasi::http::types::{
        ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions,
        Scheme,
    };
    use crate::bindings::wasi::io::streams::StreamError;

    let invalid = |m: String| Error::new(ErrorKind::Invalid, m);
    let (scheme, authority, path) = split_url(&req.url)?;
    let headers = Fields::new();
    for (n, v) in &req.headers {
        headers
            .append(&n.to_ascii_lowercase(), &v.as_bytes().to_vec())
            .map_err(|e| invalid(format!("header `{n}`: {e:?}")))?;
    }
    if let Some(b) = &req.body
        && !req
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        // Sent with a length, not chunked: many servers accept only that.
        headers
            .append("content-length", &b.len().to_string().into_bytes())
            .map_err(|e| invalid(format!("content-length: {e:?}")))?;
    }
    let out = OutgoingRequest::new(headers);
    let method = match req.method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_string()),
    };
    out.set_method(&method)
        .map_err(|_| invalid(format!("method `{}`", req.method)))?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    out.set_scheme(Some(&scheme))
        .map_err(|_| invalid(format!("scheme of `{}`", req.url)))?;
    out.set_authority(Some(authority))
        .map_err(|_| invalid(format!("host of `{}`", req.url)))?;
    out.set_path_with_query(Some(&path))
        .map_err(|_| invalid(format!("path of `{}`", req.url)))?;
    let body = out
        .body()
        .map_err(|_| invalid("the request body was taken twice".into()))?;
    let options = RequestOptions::new();
    if let Some(t) = req.timeout {
        let nanos = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
        let _ = options.set_first_byte_timeout(Some(nanos));
        let _ = options.set_between_bytes_timeout(Some(nanos));
    }
    let future =
        outgoing_handler::handle(out, Some(options)).map_err(|e| code_error(&req.url, &e))?;
    {
        let stream = body
            .write()
            .map_err(|_| invalid("the request body stream was taken twice".into()))?;
        if let Some(bytes) = &req.body {
            for chunk in bytes.chunks(4096) {
                // The request ended before its body was sent (the server,
                // or the host, answered early): the response says why.
                if stream.blocking_write_and_flush(chunk).is_err() {
                    break;
                }
            }
        }
    }
    let _ = OutgoingBody::finish(body, None);
    let response = loop {
        match future.get() {
            Some(r) => break r,
            None => future.subscribe().block(),
        }
    };
    let response = response
        .map_err(|_| Error::new(ErrorKind::Other, "the response was taken twice"))?
        .map_err(|e: ErrorCode| code_error(&req.url, &e))?;
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(n, v)| {
            (
                n.to_ascii_lowercase(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect();
    let incoming = response
        .consume()
        .map_err(|_| Error::new(ErrorKind::Other, "the response body was taken twice"))?;
    let mut body_bytes = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|_| Error::new(ErrorKind::Other, "the response stream was taken twice"))?;
        loop {
            match stream.blocking_read(64 << 10) {
                Ok(chunk) => body_bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(Error::new(
                        ErrorKind::Other,
                        format!(
                            "reading the response of {}: {}",
                            req.url,
                            e.to_debug_string()
                        ),
                    ));
                }
            }
        }
    }
    let _ = IncomingBody::finish(incoming);
    Ok(Response {
        status,
        headers,
        body: body_bytes,
    })
}

#[cfg(target_arch = "wasm32")]
fn code_error(url: &str, e: &crate::bindings::wasi::http::types::ErrorCode) -> Error {
    use crate::bindings::wasi::http::types::ErrorCode as C;
    let kind = match e {
        C::HttpRequestDenied => ErrorKind::Denied,
        // A protocol error is what a connection cut mid-response looks like:
        // worth a retry, not a malformed request.
        C::HttpRequestUriInvalid | C::HttpRequestMethodInvalid => ErrorKind::Invalid,
        C::ConnectionTimeout
        | C::ConnectionReadTimeout
        | C::ConnectionWriteTimeout
        | C::HttpResponseTimeout => ErrorKind::Timeout,
        _ => ErrorKind::Other,
    };
    let what = match kind {
        ErrorKind::Denied => {
            "refused by the host: its origin is not granted to this connector".to_string()
        }
        _ => format!("{e:?}"),
    };
    Error::new(kind, format!("{url}: {what}"))
}

#[cfg(not(target_arch = "wasm32"))]
fn send(req: &Request) -> Result<Response, Error> {
    let _ = split_url(&req.url)?;
    Err(Error::new(
        ErrorKind::Other,
        "HTTP is only available inside the Sluice host (build for wasm32-wasip2)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let s = |u| {
            split_url(u)
                .map(|(a, b, c)| (a.to_string(), b.to_string(), c))
                .ok()
        };
        let t = |a: &str, b: &str, c: &str| Some((a.to_string(), b.to_string(), c.to_string()));
        assert_eq!(
            s("http://127.0.0.1:8080/a/b?c=1"),
            t("http", "127.0.0.1:8080", "/a/b?c=1")
        );
        assert_eq!(s("https://h"), t("https", "h", "/"));
        assert_eq!(s("https://h?x=1"), t("https", "h", "/?x=1"));
        assert!(split_url("h/x").is_err());
    }
}
