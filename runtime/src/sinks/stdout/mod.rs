//! Stdout sink: one JSON object per line.

use std::io::Write;

use serde::Deserialize;
use sluice_codec::{Operation, Record};

use super::{Refused, Sink, SinkCommit, SinkError};
use crate::value_json::{write_fields_json, write_record_json};

/// `[sink] type = "stdout"`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {
    /// Write stream, operation, position, key and headers around the fields
    /// (default as for the `jsonl` sink: true for change-stream sources).
    #[serde(default)]
    pub include_metadata: Option<bool>,
}

/// Why a record cannot be written as a line of fields alone (without
/// metadata), if it cannot: a delete, or an update that moved its key,
/// would read as an ordinary row.
pub(crate) fn needs_metadata(r: &Record<'_>) -> Option<String> {
    use crate::conventions::{OLD_KEY_HEADER, TRUNCATE_HEADER, header};
    if header(r, TRUNCATE_HEADER).is_some() {
        return Some("a truncate cannot be written as a line of fields: set `include_metadata = true` on the sink to keep the operation".into());
    }
    if r.op == Operation::Delete {
        return Some("a delete cannot be written as a line of fields (it would read as a row of nulls): set `include_metadata = true` on the sink to keep the operation".into());
    }
    if header(r, OLD_KEY_HEADER).is_some() {
        return Some("an update that changed the key cannot be written as a line of fields (the old key would be lost): set `include_metadata = true` on the sink to keep it".into());
    }
    None
}

/// Appends the lines of `records` to `out`; without metadata, the records
/// [`needs_metadata`] refuses are returned (index, reason) instead.
pub(crate) fn json_lines(
    out: &mut Vec<u8>,
    records: &[Record<'_>],
    include_metadata: bool,
) -> Vec<Refused> {
    let mut refused = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if !include_metadata && let Some(why) = needs_metadata(r) {
            refused.push(Refused::new(i, why));
            continue;
        }
        json_line(out, r, include_metadata);
    }
    refused
}

/// The stdout sink.
pub struct StdoutSink {
    config: StdoutSinkConfig,
}

impl StdoutSink {
    /// A stdout sink.
    pub fn new(config: StdoutSinkConfig) -> Self {
        StdoutSink { config }
    }
}

/// Appends one JSON line for `r` to `out`.
pub(crate) fn json_line(out: &mut Vec<u8>, r: &Record<'_>, include_metadata: bool) {
    if include_metadata {
        write_record_json(out, r);
    } else {
        write_fields_json(out, r);
    }
    out.push(b'\n');
}

impl Sink for StdoutSink {
    fn describe(&self) -> String {
        "stdout".into()
    }

    fn open(&mut self, _state: Option<&str>) -> Result<(), SinkError> {
        Ok(())
    }

    fn write(&mut self, records: &[Record<'_>]) -> Result<SinkCommit, SinkError> {
        let mut buf = Vec::with_capacity(records.len() * 128);
        let refused = json_lines(
            &mut buf,
            records,
            self.config.include_metadata.unwrap_or(false),
        );
        let mut out = std::io::stdout().lock();
        out.write_all(&buf)
            .and_then(|()| out.flush())
            .map_err(|source| SinkError::Io {
                path: "stdout".into(),
                what: "cannot write",
                source,
            })?;
        Ok(SinkCommit {
            written: (records.len() - refused.len()) as u64,
            refused,
            ..Default::default()
        })
    }
}
