//! `[sink] type = "kafka"` (also a dead-letter topic: `[dead_letter] type = "kafka"`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// Writes records to a topic with an idempotent producer; a batch counts as
/// written once the brokers confirmed every message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Bootstrap brokers, `host:port[,host:port]`.
    pub brokers: String,
    /// The topic; `{stream}` is replaced by the record's stream (a table
    /// name of a change stream: `cdc.{stream}`).
    pub topic: String,
    /// The message key: this field's value (text as is, numbers in decimal,
    /// other values as JSON). Default: the record's key (from the source),
    /// none when it is null.
    #[serde(default)]
    pub key_field: Option<String>,
    /// A delete is written as a tombstone (no value) for compacted topics,
    /// instead of the key's fields with `sluice-op: delete` (default false).
    #[serde(default)]
    pub tombstones: bool,
    /// How long a batch may wait for the brokers' confirmation, in seconds
    /// (default 120); the producer retries within it (a broker restart).
    /// Beyond it the pipeline stops with the error; nothing counts as written.
    #[serde(default = "delivery_timeout_s")]
    pub delivery_timeout_s: u64,
    /// Extra librdkafka producer settings (`compression.type`,
    /// `message.max.bytes`, `security.protocol`...).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

fn delivery_timeout_s() -> u64 {
    120
}
