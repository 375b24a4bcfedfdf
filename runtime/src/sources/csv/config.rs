//! `[source] type = "csv"`.

use std::path::PathBuf;

use serde::Deserialize;

/// Reads a delimited text file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvConfig {
    /// The file, relative to the pipeline file.
    pub path: PathBuf,
    /// Field delimiter, one ASCII character (default `,`; `\t` for TSV).
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// Quote character, one ASCII character (default `"`).
    #[serde(default = "default_quote")]
    pub quote: String,
    /// Lines starting with this ASCII character are skipped.
    pub comment: Option<String>,
    /// Whether the first row names the columns (default true).
    #[serde(default = "yes")]
    pub has_header: bool,
    /// Column names when the file has no header (or to replace it).
    pub columns: Option<Vec<String>>,
    /// Text encoding of the file: any WHATWG label (`utf-8` default,
    /// `latin1`, `iso-8859-1`, `windows-1252`, `iso-8859-15`, `cp1251`...).
    #[serde(default = "default_encoding")]
    pub encoding: String,
    /// Empty cells become null instead of empty text (default false).
    #[serde(default)]
    pub empty_as_null: bool,
    /// Stream (table) name of the records (default: the file name without extension).
    pub stream: Option<String>,
    /// Longest row accepted, in bytes (default 16 MiB). A longer row (a
    /// huge field, or an unbalanced quote that would swallow the rest of
    /// the file) is dead-lettered with its first 64 KiB, and reading goes
    /// on at the next line break past the limit, in bounded memory.
    #[serde(default = "super::super::default_max_record_bytes")]
    pub max_record_bytes: u64,
}

fn default_delimiter() -> String {
    ",".into()
}

fn default_quote() -> String {
    "\"".into()
}

fn default_encoding() -> String {
    "utf-8".into()
}

fn yes() -> bool {
    true
}
