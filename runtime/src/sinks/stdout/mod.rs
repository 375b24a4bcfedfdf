//! Stdout sink: one JSON object per line.

use std::io::Write;

use serde::Deserialize;
use sluice_codec::Record;

use super::lines::json_lines;
use super::{Sink, SinkCommit, SinkError};

/// `[sink] type = "stdout"`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {
    /// Write stream, operation, position, key and headers around the fields
    /// (default as for the `jsonl` sink: true for change-stream sources).
    #[serde(default)]
    pub include_metadata: Option<bool>,
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
