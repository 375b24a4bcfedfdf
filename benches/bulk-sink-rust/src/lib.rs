//! The HTTP bulk sink of `connectors/http-bulk-sink` (Python) written in
//! Rust, for `cargo bench --bench connectors`: each batch is one POST of
//! `{"records": [{"key": K, "record": {...}}]}`; the endpoint answers one
//! result per record, and the records it refuses are returned as refusals.

use serde::Deserialize;
use sluice_sdk::connector::{ConnectorError, Refusal, Sink};
use sluice_sdk::http::Request;
use sluice_sdk::{Config, Record};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: String,
}

struct BulkSink {
    url: String,
    encoding: sluice_sdk::json::Encoding,
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
        Ok(BulkSink {
            url: s.url,
            encoding: sluice_sdk::json::Encoding {
                envelope: Some("records".into()),
                key_member: Some("key".into()),
                fields_member: Some("record".into()),
            },
        })
    }

    fn write(
        &mut self,
        records: &[Record<'_>],
        keys: &[String],
    ) -> Result<Vec<Refusal>, ConnectorError> {
        // Written by the host, natively (`sluice_sdk::json::encode`).
        let body = sluice_sdk::json::encode(records, keys, &self.encoding)
            .map_err(|e| ConnectorError::Fatal(format!("cannot write the body: {e}")))?;
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
