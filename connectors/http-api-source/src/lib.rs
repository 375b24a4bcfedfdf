//! A source connector for paged JSON REST APIs, as a vendor writes one.
//!
//! Each `poll` fetches one page. The position handed to the host is the
//! request that reads the next page (a cursor, or the next page's URL), so
//! a restart resumes at the first page not yet committed. `429 Too Many
//! Requests` waits out `Retry-After` without blocking the host (polls
//! return nothing until then); `5xx`, timeouts and lost connections are
//! transient errors the host retries with backoff; `401`/`403`/`404` and
//! other `4xx` are fatal.

use std::time::{Duration, Instant};

use serde::Deserialize;
use sluice_sdk::connector::{Batch, ConnectorError, Polled, Source};
use sluice_sdk::http::Request;
use sluice_sdk::json::{self, JsonError, Layout};
use sluice_sdk::{Config, Operation};

/// The connector's config (`config` of the pipeline's `[source]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: String,
    stream: Option<String>,
    #[serde(default)]
    paging: Paging,
    #[serde(default = "d_page_size")]
    page_size: u32,
    #[serde(default = "d_records")]
    records_field: String,
    #[serde(default = "d_cursor")]
    cursor_param: String,
    #[serde(default = "d_limit")]
    limit_param: String,
    next_field: Option<String>,
    #[serde(default = "d_key")]
    key_field: String,
    token_secret: Option<String>,
    #[serde(default = "d_retry_after")]
    max_retry_after_s: u64,
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Paging {
    #[default]
    Cursor,
    NextLink,
}

fn d_page_size() -> u32 {
    500
}
fn d_records() -> String {
    "data".into()
}
fn d_cursor() -> String {
    "cursor".into()
}
fn d_limit() -> String {
    "limit".into()
}
fn d_key() -> String {
    "id".into()
}
fn d_retry_after() -> u64 {
    60
}

/// Where the connector stands: the next page to read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Next {
    /// The first page.
    Start,
    /// A cursor (cursor paging) or a URL (next-link paging).
    Page(String),
    /// The API said there is no next page.
    Done,
}

impl Next {
    /// The position text: `start`, `page:<cursor or url>`, `done`.
    fn position(&self) -> String {
        match self {
            Next::Start => "start".into(),
            Next::Page(p) => format!("page:{p}"),
            Next::Done => "done".into(),
        }
    }

    fn parse(p: &str) -> Result<Next, ConnectorError> {
        match p {
            "start" => Ok(Next::Start),
            "done" => Ok(Next::Done),
            _ => p.strip_prefix("page:").map(|c| Next::Page(c.to_string())).ok_or_else(|| {
                ConnectorError::Fatal(format!("cannot resume from `{p}`: not a position of this connector (run with --reset)"))
            }),
        }
    }
}

/// The connector.
pub struct HttpApiSource {
    s: Settings,
    stream: String,
    next: Next,
    token: Option<String>,
    /// A 429 said: not before then.
    not_before: Option<Instant>,
    pages: u64,
}

impl HttpApiSource {
    fn url_for(&self) -> String {
        let with_params = |base: &str, extra: Option<(&str, &str)>| {
            let sep = if base.contains('?') { '&' } else { '?' };
            let mut u = format!("{base}{sep}{}={}", self.s.limit_param, self.s.page_size);
            if let Some((k, v)) = extra {
                u.push_str(&format!("&{k}={}", encode(v)));
            }
            u
        };
        match (&self.next, self.s.paging) {
            (Next::Page(c), Paging::Cursor) => {
                with_params(&self.s.url, Some((&self.s.cursor_param, c)))
            }
            (Next::Page(url), Paging::NextLink) => url.clone(),
            _ => with_params(&self.s.url, None),
        }
    }

    fn next_field(&self) -> &str {
        match (&self.s.next_field, self.s.paging) {
            (Some(f), _) => f,
            (None, Paging::Cursor) => "next_cursor",
            (None, Paging::NextLink) => "next",
        }
    }

    /// Reads one page; `Ok(None)` while a Retry-After is running.
    fn fetch(&mut self, max_wait: Duration) -> Result<Option<(Batch, Next)>, ConnectorError> {
        if let Some(t) = self.not_before {
            let now = Instant::now();
            if now < t {
                // Wait within this poll's budget, then let the host call again.
                std::thread::sleep((t - now).min(max_wait));
                if Instant::now() < t {
                    return Ok(None);
                }
            }
            self.not_before = None;
        }
        let url = self.url_for();
        let mut req = Request::get(&url).header("accept", "application/json");
        if let Some(t) = &self.token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        let resp = req.send()?;
        match resp.status {
            200 => {}
            429 => {
                let secs = resp
                    .header("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(1)
                    .min(self.s.max_retry_after_s);
                sluice_sdk::warn!("rate limited (429): waiting {secs} s as Retry-After says");
                self.not_before = Some(Instant::now() + Duration::from_secs(secs));
                return Ok(None);
            }
            s if s >= 500 => {
                return Err(ConnectorError::Transient(format!(
                    "{url}: server error {s}"
                )));
            }
            401 | 403 => {
                return Err(ConnectorError::Fatal(format!(
                    "{url}: {} (check the token: `grants.auth` or the `{}` secret)",
                    resp.status,
                    self.s.token_secret.as_deref().unwrap_or("api_token")
                )));
            }
            s => {
                let body = resp.text();
                let body: String = body.chars().take(200).collect();
                return Err(ConnectorError::Fatal(format!("{url}: HTTP {s}: {body}")));
            }
        }
        // Record `i` of the page read from position `P` is at `P#i`.
        let layout = Layout {
            records_at: vec![self.s.records_field.clone()],
            stream: self.stream.clone(),
            op: Operation::Snapshot,
            key_member: Some(self.s.key_field.clone()),
            position: Some(self.next.position()),
            members: vec![vec![self.next_field().to_string()]],
        };
        let page = parse_page(&resp.body, &layout).map_err(|e| match e {
            // A truncated body (a server that died mid-response) is worth a retry.
            JsonError::Syntax(e) => {
                ConnectorError::Transient(format!("{url}: the response is not JSON: {e}"))
            }
            // Well-formed JSON of the wrong shape will not fix itself.
            e => ConnectorError::Fatal(format!("{url}: unexpected response: {e}")),
        })?;
        let Page { batch, next } = page.ok_or_else(|| {
            ConnectorError::Fatal(format!(
                "{url}: the response has no array `{}` (set `records_field`)",
                self.s.records_field
            ))
        })?;
        self.pages += 1;
        Ok(Some((batch, next)))
    }
}

/// One page: its records and where the next page is.
#[derive(Debug)]
struct Page {
    batch: Batch,
    next: Next,
}

/// Decodes one page (in the host, natively: `sluice_sdk::json`). `None`:
/// the page has no records array. The next-page value is `layout`'s one
/// member: absent, `null` or `""` ends the paging.
fn parse_page(body: &[u8], layout: &Layout) -> Result<Option<Page>, JsonError> {
    let decoded = json::decode(body, layout)?;
    if !decoded.found {
        return Ok(None);
    }
    let next = match decoded.members.into_iter().next().flatten() {
        None => Next::Done,
        Some(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Null) => Next::Done,
            Ok(serde_json::Value::String(s)) if s.is_empty() => Next::Done,
            Ok(serde_json::Value::String(s)) => Next::Page(s),
            // The host hands back JSON text; anything else is used as is.
            _ => Next::Page(text),
        },
    };
    Ok(Some(Page {
        batch: decoded.batch,
        next,
    }))
}

/// Percent-encodes a query value.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Source for HttpApiSource {
    fn open(config: Config, resume: Option<String>) -> Result<Self, ConnectorError> {
        let s: Settings = config.parse()?;
        if !(s.url.starts_with("http://") || s.url.starts_with("https://")) {
            return Err(ConnectorError::InvalidConfig(format!(
                "`url`: `{}` is not an http(s) URL",
                s.url
            )));
        }
        if s.page_size == 0 {
            return Err(ConnectorError::InvalidConfig(
                "`page_size` must be at least 1".into(),
            ));
        }
        let token = match &s.token_secret {
            Some(name) => Some(sluice_sdk::connector::secret(name).ok_or_else(|| {
                ConnectorError::InvalidConfig(format!(
                    "`token_secret`: the pipeline grants no secret `{name}` (add `grants.secrets.{name}`)"
                ))
            })?),
            None => None,
        };
        let stream = s.stream.clone().unwrap_or_else(|| {
            let path = s.url.split('?').next().unwrap_or("");
            path.rsplit('/')
                .find(|p| !p.is_empty() && !p.contains(':'))
                .unwrap_or("records")
                .to_string()
        });
        let next = match resume {
            Some(p) => Next::parse(&p)?,
            None => Next::Start,
        };
        Ok(HttpApiSource {
            s,
            stream,
            next,
            token,
            not_before: None,
            pages: 0,
        })
    }

    fn poll(&mut self, _max_records: usize, max_wait: Duration) -> Result<Polled, ConnectorError> {
        if self.next == Next::Done {
            return Ok(Polled {
                end_of_data: true,
                ..Default::default()
            });
        }
        match self.fetch(max_wait)? {
            None => Ok(Polled::default()),
            Some((batch, next)) => {
                let position = next.position();
                self.next = next;
                Ok(Polled {
                    batch: Some(batch),
                    position: Some(position),
                    end_of_data: self.next == Next::Done,
                    ..Default::default()
                })
            }
        }
    }
}

#[cfg(target_arch = "wasm32")]
sluice_sdk::export_source!(HttpApiSource);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip() {
        for n in [Next::Start, Next::Done, Next::Page("a b&c".into())] {
            assert_eq!(Next::parse(&n.position()).ok(), Some(n));
        }
        assert!(Next::parse("line 3").is_err());
    }

    fn parse(body: &str) -> Result<Option<Page>, JsonError> {
        let layout = Layout {
            records_at: vec!["data".into()],
            stream: "customers".into(),
            op: Operation::Snapshot,
            key_member: Some("id".into()),
            position: Some("page:c1".into()),
            members: vec![vec!["next_cursor".into()]],
        };
        parse_page(body.as_bytes(), &layout)
    }

    #[test]
    fn a_page_becomes_records_with_every_value_kept() {
        use sluice_sdk::Value;
        let body = r#"{"data":[
            {"id":18446744073709551615,"n\u0061me":"Zo\u00eb \"Z\"","tags":["a",{"b":1}],"ok":true,"x":null,"f":1.5,"neg":-3},
            {"id":2,"name":"Bo"}
        ],"next_cursor":"c2","extra":{"ignored":[1,2]}}"#;
        let page = parse(body).expect("parses").expect("the array");
        assert_eq!(page.next, Next::Page("c2".into()));
        let records = page.batch.records();
        assert_eq!(records.len(), 2);
        let r = &records[0];
        // Beyond i64: exact, as text (not rounded through a float).
        assert_eq!(r.key(), &Value::Text("18446744073709551615".into()));
        assert_eq!(
            r.get("id"),
            Some(&Value::Text("18446744073709551615".into()))
        );
        // Escapes in names and values are decoded.
        assert_eq!(r.get_str("name"), Some("Zoë \"Z\""));
        assert_eq!(r.get("tags"), Some(&Value::Json(r#"["a",{"b":1}]"#.into())));
        assert_eq!(r.get("ok"), Some(&Value::Bool(true)));
        assert!(r.has("x") && r.is_null("x"));
        assert_eq!(r.get_f64("f"), Some(1.5));
        assert_eq!(r.get_i64("neg"), Some(-3));
        // Members keep the document's order.
        let names: Vec<&str> = r.fields().map(|(k, _)| k).collect();
        assert_eq!(names, ["id", "name", "tags", "ok", "x", "f", "neg"]);
        assert_eq!(r.op(), Operation::Snapshot);
        assert_eq!(r.stream(), "customers");
        // Record `i` of the page read from `page:c1`.
        assert_eq!(r.position(), "page:c1#0");
        assert_eq!(records[1].position(), "page:c1#1");
        assert_eq!(records[1].key(), &Value::Int(2));
    }

    #[test]
    fn the_last_page_and_missing_arrays_are_told_apart() {
        let page = parse(r#"{"next_cursor":null,"data":[]}"#).expect("parses").expect("the array");
        assert!(page.batch.is_empty());
        assert_eq!(page.next, Next::Done);
        let page = parse(r#"{"data":[{"id":1}]}"#).expect("parses").expect("the array");
        assert_eq!(page.next, Next::Done);
        let page = parse(r#"{"data":[],"next_cursor":42}"#).expect("parses").expect("the array");
        assert_eq!(page.next, Next::Page("42".into()));
        assert!(parse(r#"{"items":[{"id":1}]}"#).expect("parses").is_none());
        assert!(parse(r#"[{"id":1}]"#).expect("parses").is_none());
    }

    #[test]
    fn a_wrong_shape_is_data_and_a_cut_body_is_not() {
        for body in [r#"{"data":[1]}"#, r#"{"data":{"id":1}}"#] {
            let e = parse(body).expect_err(body);
            assert!(matches!(e, JsonError::Shape(_)), "{body}: {e}");
        }
        for body in [
            r#"{"data":[{"id":1},"#,
            r#"{"data":[{"id":1}]} trailing"#,
            "",
        ] {
            let e = parse(body).expect_err(body);
            assert!(matches!(e, JsonError::Syntax(_)), "{body}: {e}");
        }
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("a b&c=d"), "a%20b%26c%3Dd");
    }
}
