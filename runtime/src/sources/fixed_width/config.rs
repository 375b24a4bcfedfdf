//! `[source] type = "fixed_width"`.

use std::path::PathBuf;

use serde::Deserialize;

use super::layout::{FieldLayout, RecordLayout};

/// Reads a fixed-width text file (mainframe and ERP exports).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedWidthConfig {
    /// The file, relative to the pipeline file.
    pub path: PathBuf,
    /// Text encoding of the file: any WHATWG label (`utf-8` default,
    /// `latin1`, `windows-1252`, `iso-8859-15`, `ibm866`...). Field
    /// positions count characters. EBCDIC code pages are not supported.
    #[serde(default = "default_encoding")]
    pub encoding: String,
    /// Records of exactly this many bytes, one after the other with no line
    /// breaks (a mainframe's fixed-block file); default: one record a line
    /// (`\n` or `\r\n`).
    pub record_length: Option<usize>,
    /// The fields, when every record has the same layout.
    #[serde(default)]
    pub fields: Vec<FieldLayout>,
    /// Record types (header, detail, trailer...), each with its fields.
    #[serde(default)]
    pub records: Vec<RecordLayout>,
    /// A TOML file holding `fields = [...]` or `[[records]]` instead,
    /// relative to the pipeline file.
    pub layout: Option<PathBuf>,
    /// Stream (table) name of the records (default: the file name without
    /// extension).
    pub stream: Option<String>,
    /// Longest record accepted, in bytes (default 16 MiB); a longer line is
    /// dead-lettered with its first 64 KiB.
    #[serde(default = "super::super::default_max_record_bytes")]
    pub max_record_bytes: u64,
}

/// A layout file: `fields = [...]` or `[[records]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutFile {
    /// The fields of the one record type.
    #[serde(default)]
    pub fields: Vec<FieldLayout>,
    /// Record types.
    #[serde(default)]
    pub records: Vec<RecordLayout>,
}

fn default_encoding() -> String {
    "utf-8".into()
}
