//! `[source] type = "jsonl"`.

use std::path::PathBuf;

use serde::Deserialize;

/// Reads a file of JSON objects, one per line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlSourceConfig {
    /// The file, relative to the pipeline file.
    pub path: PathBuf,
    /// Stream (table) name of the records (default: the file name without extension).
    pub stream: Option<String>,
}
