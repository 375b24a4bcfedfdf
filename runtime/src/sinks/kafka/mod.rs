//! Kafka sink: one message per record, value = the fields as a JSON object,
//! key = a field or the record's key, the record's headers kept, plus
//! `sluice-op` and `sluice-stream` so that a change stream keeps its meaning
//! through the topic (the Kafka source reads them back). Idempotent producer
//! (`acks=all`): a retry inside the producer never duplicates. `write`
//! returns only when the brokers confirmed every message of the batch; a
//! message the brokers refuse for itself (too large, invalid) is dead-lettered
//! with the reason, anything else fails the batch. Dead letters written to
//! Kafka (`[dead_letter] type = "kafka"`) carry their reason in headers too.

mod config;

use std::borrow::Cow;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use sluice_codec::{Operation, Record, Value};

pub use config::KafkaSinkConfig;

use super::{Refused, Sink, SinkCommit, SinkError};
use crate::conventions::{OP_HEADER, STREAM_HEADER, dead_letter_header};
use crate::kafka::explain;
use crate::value_json::{write_fields_json, write_value_json};

/// Delivery reports of the batch being written: (index, error).
#[derive(Default)]
struct Deliveries {
    failed: Mutex<Vec<(usize, KafkaError)>>,
}

impl ClientContext for Deliveries {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!("kafka producer: {error}: {reason}");
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &DeliveryResult<'_>, index: Self::DeliveryOpaque) {
        if let Err((e, _)) = result {
            self.failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((*index, e.clone()));
        }
    }
}

/// True for an error about the message itself (dead-letter it), false for
/// one about the brokers or the connection (fail the batch).
fn refuses_the_message(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidTopic
        )
    )
}

/// The Kafka sink.
pub struct KafkaSink {
    config: KafkaSinkConfig,
    producer: Option<BaseProducer<Deliveries>>,
    /// It is the pipeline's dead-letter sink ([`Sink::serve_dead_letters`]):
    /// each record's reason, code... also go in `sluice-dlq-*` headers.
    dead_letters: bool,
}

impl KafkaSink {
    /// A Kafka sink (connects in `open`).
    pub fn new(config: KafkaSinkConfig) -> Result<Self, SinkError> {
        let sink = KafkaSink {
            config,
            producer: None,
            dead_letters: false,
        };
        if sink.config.brokers.trim().is_empty() || sink.config.topic.trim().is_empty() {
            return Err(sink.error("`brokers` and `topic` must not be empty".into()));
        }
        Ok(sink)
    }

    fn error(&self, message: String) -> SinkError {
        SinkError::Config {
            path: self.describe().into(),
            message,
        }
    }

    fn topic_for<'a>(&'a self, r: &Record<'_>) -> Cow<'a, str> {
        if self.config.topic.contains("{stream}") {
            Cow::Owned(self.config.topic.replace("{stream}", &r.stream))
        } else {
            Cow::Borrowed(self.config.topic.as_str())
        }
    }
}

fn key_bytes(v: &Value<'_>, out: &mut Vec<u8>) -> bool {
    match v {
        Value::Null => return false,
        Value::Text(t) => out.extend_from_slice(t.as_bytes()),
        Value::Bytes(b) => out.extend_from_slice(b),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        other => write_value_json(out, other),
    }
    true
}

fn field_text(r: &Record<'_>, name: &str) -> Option<String> {
    r.fields
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| match v {
            Value::Null => None,
            Value::Text(t) => Some(t.to_string()),
            other => {
                let mut b = Vec::new();
                write_value_json(&mut b, other);
                Some(String::from_utf8_lossy(&b).into_owned())
            }
        })
}

impl Sink for KafkaSink {
    fn serve_dead_letters(&mut self) {
        self.dead_letters = true;
    }

    fn describe(&self) -> String {
        format!("kafka {} {}", self.config.brokers, self.config.topic)
    }

    fn open(&mut self, _state: Option<&str>) -> Result<(), SinkError> {
        let mut c = crate::kafka::client_config(&self.config.brokers, &self.config.options);
        c.set("enable.idempotence", "true").set("acks", "all").set(
            "message.timeout.ms",
            (self.config.delivery_timeout_s * 1000).to_string(),
        );
        if !self.config.options.contains_key("linger.ms") {
            c.set("linger.ms", "5");
        }
        let producer: BaseProducer<Deliveries> =
            c.create_with_context(Deliveries::default()).map_err(|e| {
                self.error(format!(
                    "cannot create the producer: {}",
                    explain(&e, &self.config.brokers)
                ))
            })?;
        crate::kafka::reach(producer.client(), &self.config.brokers).map_err(|m| self.error(m))?;
        self.producer = Some(producer);
        Ok(())
    }

    fn write(&mut self, records: &[Record<'_>]) -> Result<SinkCommit, SinkError> {
        let Some(producer) = self.producer.as_ref() else {
            return Err(self.error("write before open".into()));
        };
        producer
            .context()
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let mut refused: Vec<Refused> = Vec::new();
        let mut payload = Vec::with_capacity(256);
        let mut key = Vec::with_capacity(32);
        let started = Instant::now();
        let timeout = Duration::from_secs(self.config.delivery_timeout_s);
        for (i, r) in records.iter().enumerate() {
            let topic = self.topic_for(r);
            key.clear();
            let has_key = match &self.config.key_field {
                Some(f) => r
                    .fields
                    .iter()
                    .find(|(n, _)| n == f)
                    .is_some_and(|(_, v)| key_bytes(v, &mut key)),
                None => key_bytes(&r.key, &mut key),
            };
            payload.clear();
            let tombstone = self.config.tombstones && r.op == Operation::Delete;
            if !tombstone {
                write_fields_json(&mut payload, r);
            }
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len() + 8);
            for (n, v) in &r.headers {
                headers = headers.insert(Header {
                    key: n,
                    value: Some(v.as_ref()),
                });
            }
            headers = headers.insert(Header {
                key: OP_HEADER,
                value: Some(r.op.as_str()),
            });
            if r.stream != topic {
                headers = headers.insert(Header {
                    key: STREAM_HEADER,
                    value: Some(r.stream.as_ref()),
                });
            }
            if self.dead_letters {
                for f in [
                    "reason",
                    "stage",
                    "code",
                    "field",
                    "message",
                    "position",
                    "stream",
                    "plugin_version",
                ] {
                    if let Some(v) = field_text(r, f) {
                        headers = headers.insert(Header {
                            key: &dead_letter_header(f),
                            value: Some(v.as_bytes()),
                        });
                    }
                }
            }
            let mut rec = BaseRecord::with_opaque_to(topic.as_ref(), Box::new(i)).headers(headers);
            if has_key {
                rec = rec.key(key.as_slice());
            }
            if !tombstone {
                rec = rec.payload(payload.as_slice());
            }
            if let Some(t) = r.event_time {
                rec = rec.timestamp(t / 1000);
            }
            let mut rec = rec;
            loop {
                match producer.send(rec) {
                    Ok(()) => break,
                    Err((e, back))
                        if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) =>
                    {
                        if started.elapsed() > timeout {
                            return Err(self.error(format!(
                                "the producer queue stayed full for {}s: {}",
                                self.config.delivery_timeout_s,
                                explain(&e, &self.config.brokers)
                            )));
                        }
                        producer.poll(Duration::from_millis(10));
                        rec = back;
                    }
                    Err((e, _)) if refuses_the_message(&e) => {
                        refused.push(Refused::new(
                            i,
                            format!(
                                "kafka refused the message: {}",
                                explain(&e, &self.config.brokers)
                            ),
                        ));
                        break;
                    }
                    Err((e, _)) => {
                        return Err(self.error(format!(
                            "cannot produce to `{topic}`: {}",
                            explain(&e, &self.config.brokers)
                        )));
                    }
                }
            }
            producer.poll(Duration::ZERO);
        }
        // Every message confirmed (or failed) before the batch counts.
        // (rdkafka's `flush` polls in steps of 100 ms: a batch would wait
        // for the next step after its last confirmation.)
        let deadline = started + timeout + Duration::from_secs(5);
        while producer.in_flight_count() > 0 {
            if Instant::now() > deadline {
                return Err(self.error(format!(
                    "the brokers did not confirm the batch within {}s: is a broker running at `{}`?",
                    self.config.delivery_timeout_s, self.config.brokers
                )));
            }
            producer.poll(Duration::from_millis(1));
        }
        let failed = std::mem::take(
            &mut *producer
                .context()
                .failed
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for (i, e) in failed {
            if refuses_the_message(&e) {
                refused.push(Refused::new(
                    i,
                    format!(
                        "kafka refused the message: {}",
                        explain(&e, &self.config.brokers)
                    ),
                ));
            } else {
                return Err(self.error(format!(
                    "a message was not delivered: {}",
                    explain(&e, &self.config.brokers)
                )));
            }
        }
        refused.sort_by_key(|r| r.index);
        Ok(SinkCommit {
            written: (records.len() - refused.len()) as u64,
            refused,
            state: None,
        })
    }
}
