//! `[source] type = "jsonl"`.

use std::path::PathBuf;

use serde::Deserialize;

/// Reads a file of JSON objects, one per line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlSourceConfig {
    /// The file, relative to the pipeline file.
    pub path: PathBuf,
    /// Stream (table) name of the records (default: the file name without extension).
    pub stream: Option<String>,
    /// Keep reading as lines are appended (like `tail -f`) until the
    /// pipeline is stopped (default false: stop at the end of the file).
    #[serde(default)]
    pub follow: bool,
    /// Longest line accepted, in bytes (default 16 MiB). A longer line is
    /// dead-lettered (its first 64 KiB kept) without being held in memory,
    /// and the run goes on with the next line.
    #[serde(default = "super::super::default_max_record_bytes")]
    pub max_record_bytes: u64,
}
