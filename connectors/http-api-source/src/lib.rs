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

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use sluice_sdk::connector::{Batch, ConnectorError, Polled, Source};
use sluice_sdk::http::Request;
use sluice_sdk::{Config, Operation, Record, Value};

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
        let fields = Fields {
            records: &self.s.records_field,
            next: self.next_field(),
            key: &self.s.key_field,
        };
        let (records, next) = parse_page(&resp.body, &fields, &self.stream).map_err(|e| {
            match e.classify() {
                // Well-formed JSON of the wrong shape will not fix itself.
                serde_json::error::Category::Data => {
                    ConnectorError::Fatal(format!("{url}: unexpected response: {e}"))
                }
                // A truncated body (a server that died mid-response) is worth a retry.
                _ => ConnectorError::Transient(format!("{url}: the response is not JSON: {e}")),
            }
        })?;
        let Some(records) = records else {
            return Err(ConnectorError::Fatal(format!(
                "{url}: the response has no array `{}` (set `records_field`)",
                self.s.records_field
            )));
        };
        let next = match next {
            None | Some(serde_json::Value::Null) => Next::Done,
            Some(serde_json::Value::String(s)) if s.is_empty() => Next::Done,
            Some(serde_json::Value::String(s)) => Next::Page(s),
            Some(other) => Next::Page(other.to_string()),
        };
        // Record `i` of a page is at `<the position after the page>#i`.
        let position = next.position();
        let mut batch = Batch::new();
        for (i, mut r) in records.into_iter().enumerate() {
            r.set_position(format!("{position}#{i}"));
            batch.push(&r);
        }
        self.pages += 1;
        Ok(Some((batch, next)))
    }
}

/// The names a page is read by (from the settings).
struct Fields<'a> {
    /// The array of records.
    records: &'a str,
    /// The next cursor or link.
    next: &'a str,
    /// The member that becomes each record's key.
    key: &'a str,
}

/// Parses one page: its records (`None`: the page has no records array)
/// and the next-page value. Names and values borrow from `body`.
#[allow(clippy::type_complexity)]
fn parse_page<'b>(
    body: &'b [u8],
    fields: &Fields<'_>,
    stream: &'b str,
) -> Result<(Option<Vec<Record<'b>>>, Option<serde_json::Value>), serde_json::Error> {
    let page = Page {
        records_field: fields.records,
        next_field: fields.next,
        key_field: fields.key,
        stream,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = page.deserialize(&mut de)?;
    de.end()?;
    Ok(parsed)
}

/// One page of the API, parsed straight into records whose names and
/// values borrow from the response body (no tree of owned values).
struct Page<'n, 'a> {
    records_field: &'n str,
    next_field: &'n str,
    key_field: &'n str,
    stream: &'a str,
}

impl<'a, 'de: 'a> DeserializeSeed<'de> for Page<'_, 'a> {
    type Value = (Option<Vec<Record<'a>>>, Option<serde_json::Value>);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'a, 'de: 'a> Visitor<'de> for Page<'_, 'a> {
    type Value = (Option<Vec<Record<'a>>>, Option<serde_json::Value>);

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object (one page of the API)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut records = None;
        let mut next = None;
        while let Some(k) = map.next_key_seed(Text)? {
            if k == self.records_field {
                records = Some(map.next_value_seed(Records {
                    key_field: self.key_field,
                    stream: self.stream,
                })?);
            } else if k == self.next_field {
                next = Some(map.next_value::<serde_json::Value>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok((records, next))
    }
}

/// The page's array of records.
struct Records<'n, 'a> {
    key_field: &'n str,
    stream: &'a str,
}

impl<'a, 'de: 'a> DeserializeSeed<'de> for Records<'_, 'a> {
    type Value = Vec<Record<'a>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'a, 'de: 'a> Visitor<'de> for Records<'_, 'a> {
    type Value = Vec<Record<'a>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            let mut record = Record::new(self.stream);
            record.set_op(Operation::Snapshot);
            let item = OneRecord {
                key_field: self.key_field,
                record,
            };
            match seq.next_element_seed(item)? {
                Some(r) => out.push(r),
                None => return Ok(out),
            }
        }
    }
}

/// One record: a JSON object whose members become fields.
struct OneRecord<'n, 'a> {
    key_field: &'n str,
    record: Record<'a>,
}

impl<'a, 'de: 'a> DeserializeSeed<'de> for OneRecord<'_, 'a> {
    type Value = Record<'a>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Record<'a>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'a, 'de: 'a> Visitor<'de> for OneRecord<'_, 'a> {
    type Value = Record<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a record (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Record<'a>, A::Error> {
        while let Some(k) = map.next_key_seed(Text)? {
            let v = map.next_value_seed(Field)?;
            if k == self.key_field {
                self.record.set_key(v.clone());
            }
            self.record.set(k, v);
        }
        Ok(self.record)
    }
}

/// A string, borrowed from the body unless it had escapes.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// A field's value. Integers stay exact (beyond `i64`: as text), arrays
/// and objects are kept as JSON text.
struct Field;

impl<'de> DeserializeSeed<'de> for Field {
    type Value = Value<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Field {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or_else(|_| Value::Text(v.to_string().into()), Value::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Value::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Value::Text(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Value::Text(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let v = serde_json::Value::deserialize(SeqAccessDeserializer::new(seq))?;
        Ok(Value::Json(v.to_string().into()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let v = serde_json::Value::deserialize(MapAccessDeserializer::new(map))?;
        Ok(Value::Json(v.to_string().into()))
    }
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

    #[allow(clippy::type_complexity)]
    fn parse(
        body: &str,
    ) -> Result<(Option<Vec<Record<'_>>>, Option<serde_json::Value>), serde_json::Error> {
        let fields = Fields {
            records: "data",
            next: "next_cursor",
            key: "id",
        };
        parse_page(body.as_bytes(), &fields, "customers")
    }

    #[test]
    fn a_page_becomes_records_with_every_value_kept() {
        let body = r#"{"data":[
            {"id":18446744073709551615,"n\u0061me":"Zo\u00eb \"Z\"","tags":["a",{"b":1}],"ok":true,"x":null,"f":1.5,"neg":-3},
            {"id":2,"name":"Bo"}
        ],"next_cursor":"c2","extra":{"ignored":[1,2]}}"#;
        let (records, next) = parse(body).expect("parses");
        let records = records.expect("the array");
        assert_eq!(next, Some(serde_json::Value::String("c2".into())));
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
        assert_eq!(records[1].key(), &Value::Int(2));
        // What is encoded is what was parsed.
        let mut batch = Batch::new();
        records.iter().for_each(|r| batch.push(r));
        let decoded: Vec<_> = batch
            .records()
            .into_iter()
            .map(Record::into_codec)
            .collect();
        let parsed: Vec<_> = records.into_iter().map(Record::into_codec).collect();
        assert_eq!(decoded, parsed);
    }

    #[test]
    fn the_last_page_and_missing_arrays_are_told_apart() {
        let (records, next) = parse(r#"{"next_cursor":null,"data":[]}"#).expect("parses");
        assert_eq!(records, Some(vec![]));
        assert_eq!(next, Some(serde_json::Value::Null));
        let (records, next) = parse(r#"{"items":[{"id":1}]}"#).expect("parses");
        assert!(records.is_none() && next.is_none());
    }

    #[test]
    fn a_wrong_shape_is_data_and_a_cut_body_is_not() {
        use serde_json::error::Category;
        for body in [r#"{"data":[1]}"#, r#"{"data":{"id":1}}"#, r#"[{"id":1}]"#] {
            let e = parse(body).expect_err(body);
            assert_eq!(e.classify(), Category::Data, "{body}: {e}");
        }
        for body in [
            r#"{"data":[{"id":1},"#,
            r#"{"data":[{"id":1}]} trailing"#,
            "",
        ] {
            let e = parse(body).expect_err(body);
            assert_ne!(e.classify(), Category::Data, "{body}: {e}");
        }
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("a b&c=d"), "a%20b%26c%3Dd");
    }
}
