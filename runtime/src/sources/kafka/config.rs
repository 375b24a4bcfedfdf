//! `[source] type = "kafka"`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// How a message's value becomes the record's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueFormat {
    /// A JSON object: its members are the fields (default). Anything else
    /// is dead-lettered as malformed input.
    #[default]
    Json,
    /// UTF-8 text in one field `value`.
    Text,
    /// The raw bytes in one field `value`.
    Bytes,
}

/// How a message's key becomes the record's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyFormat {
    /// UTF-8 text (default; bytes when it is not UTF-8).
    #[default]
    Text,
    /// A JSON value (a number key stays a number).
    Json,
    /// Raw bytes.
    Bytes,
}

/// Where a new consumer group starts in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// The oldest message kept (default).
    #[default]
    Earliest,
    /// Only messages produced after the group first joins.
    Latest,
}

/// Reads topics as a member of a consumer group: Kafka spreads the
/// partitions over every Sluice instance of the group, and moves them when
/// one joins or leaves.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap brokers, `host:port[,host:port]`.
    pub brokers: String,
    /// The topics to read.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Or a regular expression of topic names (`^orders\..*`), matched as
    /// topics appear.
    #[serde(default)]
    pub topic_pattern: Option<String>,
    /// The consumer group (default `sluice-PIPELINE`). Every instance of a
    /// scaled-out pipeline uses the same group.
    #[serde(default)]
    pub group: String,
    /// Where a group without committed offsets starts (default `earliest`).
    #[serde(default)]
    pub start: StartAt,
    /// The message value: `json` (default), `text` or `bytes`.
    #[serde(default)]
    pub format: ValueFormat,
    /// The message key: `text` (default), `json` or `bytes`.
    #[serde(default)]
    pub key_format: KeyFormat,
    /// Add fields `kafka_topic`, `kafka_partition`, `kafka_offset` to each
    /// record (default false; the position always says them).
    #[serde(default)]
    pub metadata_fields: bool,
    /// How long to wait for more messages before handing over a partial
    /// batch, in milliseconds (default 50).
    #[serde(default = "linger_ms")]
    pub linger_ms: u64,
    /// How long a rebalance waits for the batches in flight to be
    /// committed before it releases the partitions, in seconds (default 60).
    #[serde(default = "rebalance_timeout_s")]
    pub rebalance_timeout_s: u64,
    /// End the run once every assigned partition is read to its end
    /// (`sluice run --until-caught-up`), instead of waiting for more.
    #[serde(default)]
    pub until_caught_up: bool,
    /// The topics carry a Sluice change stream (written by a Sluice `kafka`
    /// sink from a change-data-capture source): honour its control headers
    /// (`sluice-op`, `sluice-stream`, `sluice-key`, `sluice-old-key`,
    /// `sluice-truncate`, `sluice-unchanged`) and tombstones as deletes.
    /// Default false: any producer can write a topic, and those headers
    /// make a SQL sink delete, move or truncate rows, so on other topics
    /// they are dropped (logged) and a tombstone is dead-lettered.
    #[serde(default)]
    pub change_stream: bool,
    /// A JSON message whose shape differs from what this run read of its
    /// topic so far (a field not seen before, a value of another kind):
    /// `evolve` (default) carries it on, `stop` stops the pipeline before
    /// it (naming topic and field; the next run starts from it, with its
    /// shape), `dead_letter` sends it to the dead-letter sink with the code
    /// `schema_change`. One policy, or one per topic (`{ default =
    /// "evolve", orders = "stop" }`).
    #[serde(default)]
    pub on_schema_change: Option<crate::schema_policy::SchemaPolicy>,
    /// Extra librdkafka consumer settings (`security.protocol`,
    /// `sasl.username`, `session.timeout.ms`...). Offsets are always
    /// committed by Sluice: `enable.auto.commit` cannot be turned on.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

fn linger_ms() -> u64 {
    50
}
fn rebalance_timeout_s() -> u64 {
    60
}

impl KafkaSourceConfig {
    /// The default group name for a pipeline.
    pub fn apply_defaults(&mut self, pipeline: &str) {
        if self.group.is_empty() {
            self.group = format!("sluice-{pipeline}");
        }
    }

    /// What is wrong with the config, if anything.
    pub fn problems(&self) -> Option<String> {
        if self.brokers.trim().is_empty() {
            return Some("`brokers` is empty: give `host:port`".into());
        }
        match (self.topics.is_empty(), &self.topic_pattern) {
            (true, None) => return Some("give `topics` or `topic_pattern`".into()),
            (false, Some(_)) => return Some("give `topics` or `topic_pattern`, not both".into()),
            _ => {}
        }
        for k in self.options.keys() {
            if matches!(
                k.as_str(),
                "enable.auto.commit"
                    | "enable.auto.offset.store"
                    | "group.id"
                    | "bootstrap.servers"
            ) {
                return Some(format!(
                    "option `{k}` is set by Sluice (offsets are committed after the sink commits)"
                ));
            }
        }
        None
    }
}
