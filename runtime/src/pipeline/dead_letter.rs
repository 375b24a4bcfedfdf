//! Dead letters: records that could not be processed, with the reason, the
//! plugin and version, the source position and the time.

use std::borrow::Cow;

use sluice_codec::{Record, Value};

/// Why a record was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A plugin rejected it (data error).
    Rejected,
    /// A plugin failed on its batch twice (trap, deadline, memory, contract).
    PluginFailed,
    /// The source could not read it (wrong column count, invalid JSON...).
    Malformed,
    /// The sink refused it (constraint violation, missing key...).
    SinkRefused,
}

impl Kind {
    /// The name written in the `reason` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rejected => "rejected",
            Kind::PluginFailed => "plugin_failed",
            Kind::Malformed => "malformed_input",
            Kind::SinkRefused => "sink_refused",
        }
    }
}

/// One dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Why.
    pub kind: Kind,
    /// Where: the transform name, `source` or `sink`.
    pub stage: String,
    /// The plugin version (content hash) for transform stages.
    pub plugin_version: Option<String>,
    /// Machine-readable code (`invalid_email`, `trap`...).
    pub code: String,
    /// The field at fault.
    pub field: Option<String>,
    /// A message a person can act on.
    pub message: String,
    /// Where the record came from (`line 12`).
    pub position: String,
    /// The record's stream.
    pub stream: String,
    /// The record as read from the source, as JSON text.
    pub record: Option<String>,
    /// The record as the failing stage received it, when different, as JSON text.
    pub input: Option<String>,
    /// The raw input, for records the source could not read.
    pub raw: Option<String>,
    /// When it was dead-lettered, µs since the epoch.
    pub time: i64,
}

/// Now, in µs since the epoch.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl DeadLetter {
    /// The dead letter as a record for the dead-letter sink. Its fields:
    /// `reason`, `stage`, `plugin_version`, `code`, `field`, `message`,
    /// `position`, `stream`, `time`, `record`, `input`, `raw`.
    pub fn to_record(&self) -> Record<'_> {
        fn text(s: &str) -> Value<'_> {
            Value::Text(Cow::Borrowed(s))
        }
        fn opt(s: &Option<String>) -> Value<'_> {
            s.as_deref().map_or(Value::Null, text)
        }
        fn json(j: &Option<String>) -> Value<'_> {
            j.as_deref()
                .map_or(Value::Null, |j| Value::Json(Cow::Borrowed(j)))
        }
        Record {
            stream: Cow::Borrowed("dead_letters"),
            position: Cow::Borrowed(&self.position),
            fields: vec![
                (Cow::Borrowed("reason"), text(self.kind.as_str())),
                (Cow::Borrowed("stage"), text(&self.stage)),
                (Cow::Borrowed("plugin_version"), opt(&self.plugin_version)),
                (Cow::Borrowed("code"), text(&self.code)),
                (Cow::Borrowed("field"), opt(&self.field)),
                (Cow::Borrowed("message"), text(&self.message)),
                (Cow::Borrowed("position"), text(&self.position)),
                (Cow::Borrowed("stream"), text(&self.stream)),
                (Cow::Borrowed("time"), Value::Timestamp(self.time)),
                (Cow::Borrowed("record"), json(&self.record)),
                (Cow::Borrowed("input"), json(&self.input)),
                (Cow::Borrowed("raw"), opt(&self.raw)),
            ],
            ..Default::default()
        }
    }
}
