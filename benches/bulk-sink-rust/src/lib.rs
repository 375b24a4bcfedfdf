//! The HTTP bulk sink of `connectors/http-bulk-sink` (Python) written in
//! Rust, for `cargo bench --bench connectors`: each batch is one POST of
//! `{"records": [{"key": K, "record": {...}}]}`; the endpoint answers one
//! result per record, and the records it refuses are returned as refusals.

use serde::Deserialize;
use sluice_sdk::connector::{ConnectorError, Refusal, Sink};
use sluice_sdk::http::Request;
use sluice_sdk::{Config, Record, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: String,
}

struct BulkSink {
    url: String,
}

fn json(v: &Value<'_>) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => (*f).into(),
        Value::Text(s) => s.as_ref().into(),
        Value::Json(j) => serde_json::from_str(j.as_ref()).unwrap_or(serde_json::Value::Null),
        Value::Timestamp(t) => (*t).into(),
        Value::Bytes(b) => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
            .into(),
    }
}

#[derive(Deserialize)]
struct Answer {
    results: Vec<Outcome>,
}

#[derive(Deserialize)]
struct Outcome {
    index: usize,
    status: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl Sink for BulkSink {
    fn open(config: Config) -> Result<Self, ConnectorError> {
        let s: Settings = config.parse()?;
        Ok(BulkSink { url: s.url })
    }

    fn write(
        &mut self,
        records: &[Record<'_>],
        keys: &[String],
    ) -> Result<Vec<Refusal>, ConnectorError> {
        let body: Vec<serde_json::Value> = records
            .iter()
            .zip(keys)
            .map(|(r, k)| {
                let fields: serde_json::Map<String, serde_json::Value> =
                    r.fields().map(|(n, v)| (n.to_string(), json(v))).collect();
                serde_json::json!({ "key": k, "record": fields })
            })
            .collect();
        let body = serde_json::json!({ "records": body }).to_string();
        let resp = Request::post(&self.url, body)
            .header("content-type", "application/json")
            .send()
            .map_err(|e| {
                if e.is_denied() {
                    ConnectorError::Fatal(e.to_string())
                } else {
                    ConnectorError::Transient(e.to_string())
                }
            })?;
        match resp.status {
            200 => {}
            429 | 500.. => {
                return Err(ConnectorError::Transient(format!(
                    "{}: {}",
                    self.url, resp.status
                )));
            }
            s => return Err(ConnectorError::Fatal(format!("{}: HTTP {s}", self.url))),
        }
        let answer: Answer = serde_json::from_slice(&resp.body).map_err(|e| {
            ConnectorError::Transient(format!("{}: not the expected answer: {e}", self.url))
        })?;
        Ok(answer
            .results
            .into_iter()
            .filter(|o| o.status != "ok")
            .map(|o| Refusal {
                index: o.index,
                code: o.code.unwrap_or_else(|| "refused".into()),
                message: o
                    .message
                    .unwrap_or_else(|| "refused by the endpoint".into()),
            })
            .collect())
    }
}

#[cfg(target_arch = "wasm32")]
sluice_sdk::export_sink!(BulkSink);
