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
    /// The source read it, but its table's shape changed and
    /// `on_schema_change = "dead_letter"` holds such records back.
    SchemaChange,
}

impl Kind {
    /// The name written in the `reason` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rejected => "rejected",
            Kind::PluginFailed => "plugin_failed",
            Kind::Malformed => "malformed_input",
            Kind::SinkRefused => "sink_refused",
            Kind::SchemaChange => "schema_change",
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
    /// The dead letter this one replays (`sluice replay`), when it does.
    pub replay_of: Option<String>,
}

/// Now, in µs since the epoch.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl DeadLetter {
    /// A record a transform rejected (`Kind::Rejected`) or failed on
    /// (`Kind::PluginFailed`): the plugin's name and version, its code,
    /// field and message, where the record came from, and the record as
    /// the source gave it and as the stage received it (as JSON).
    #[allow(clippy::too_many_arguments)]
    pub fn in_transform(
        kind: Kind,
        (stage, version): (&str, &str),
        code: String,
        field: Option<String>,
        message: String,
        (position, stream): (String, String),
        record: Option<String>,
        input: Option<String>,
    ) -> Self {
        DeadLetter {
            kind,
            stage: stage.to_string(),
            plugin_version: Some(version.to_string()),
            code,
            field,
            message,
            position,
            stream,
            record,
            input,
            raw: None,
            time: now_micros(),
            replay_of: None,
        }
    }

    /// A record the source could not read: its raw text and why. Or one
    /// it read and held back for a schema change (`Malformed::record`).
    pub fn malformed(m: &crate::sources::Malformed) -> Self {
        let (kind, code) = match m.record {
            Some(_) => (Kind::SchemaChange, crate::schema_policy::SCHEMA_CHANGE_CODE),
            None => (Kind::Malformed, "malformed"),
        };
        DeadLetter {
            kind,
            stage: "source".into(),
            plugin_version: None,
            code: code.into(),
            field: None,
            message: m.reason.clone(),
            position: m.position.clone(),
            stream: m.stream.clone(),
            record: m.record.clone(),
            input: None,
            raw: m.record.is_none().then(|| m.raw.clone()),
            time: now_micros(),
            replay_of: None,
        }
    }

    /// A record the sink refused (`rec`, as the sink received it; `record`,
    /// the source's record as JSON).
    pub fn sink_refused(
        refused: &crate::sinks::Refused,
        rec: &Record<'_>,
        record: Option<String>,
    ) -> Self {
        DeadLetter {
            kind: Kind::SinkRefused,
            stage: "sink".into(),
            plugin_version: refused.by.clone(),
            code: refused
                .code
                .clone()
                .unwrap_or_else(|| "sink_refused".into()),
            field: None,
            message: refused.reason.clone(),
            position: rec.position.to_string(),
            stream: rec.stream.to_string(),
            record,
            input: Some(crate::value_json::record_json_text(rec)),
            raw: None,
            time: now_micros(),
            replay_of: None,
        }
    }

    /// The dead letter as a record for the dead-letter sink. Its fields:
    /// `reason`, `stage`, `plugin_version`, `code`, `field`, `message`,
    /// `position`, `stream`, `time`, `record`, `input`, `raw`, and
    /// `replay_of` for a record refused again by `sluice replay`.
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
            stream: Cow::Borrowed(crate::conventions::DEAD_LETTER_STREAM),
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
            ]
            .into_iter()
            .chain(
                self.replay_of
                    .as_deref()
                    .map(|id| (Cow::Borrowed("replay_of"), text(id))),
            )
            .collect(),
            ..Default::default()
        }
    }
}
