//! Stdout sink: one JSON object per line.

use std::io::Write;

use serde::Deserialize;
use sluice_codec::Record;

use super::{Sink, SinkCommit, SinkError};
use crate::value_json::{write_fields_json, write_record_json};

/// `[sink] type = "stdout"`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {
    /// Write stream, operation, position, key and headers around the fields
    /// (default false: the fields only).
    #[serde(default)]
    pub include_metadata: bool,
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
        for r in records {
            json_line(&mut buf, r, self.config.include_metadata);
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&buf)
            .and_then(|()| out.flush())
            .map_err(|source| SinkError::Io {
                path: "stdout".into(),
                what: "cannot write",
                source,
            })?;
        Ok(SinkCommit {
            written: records.len() as u64,
            ..Default::default()
        })
    }
}
