//! `[sink] type = "jsonl"`.

use std::path::PathBuf;

use serde::Deserialize;

/// Appends one JSON object per record to a file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlSinkConfig {
    /// The file, relative to the pipeline file. Created if absent; appended
    /// to otherwise.
    pub path: PathBuf,
    /// Write stream, operation, position, key and headers around the fields.
    /// Default: true when the source is a change stream (`postgres`), where
    /// a line of fields alone cannot tell a delete or a key change from a
    /// row; false otherwise. Without metadata, deletes and key changes are
    /// refused (dead-lettered with the reason), never written as rows.
    #[serde(default)]
    pub include_metadata: Option<bool>,
    /// `fsync` after each batch (default false: flushed to the OS only).
    #[serde(default)]
    pub fsync: bool,
}
