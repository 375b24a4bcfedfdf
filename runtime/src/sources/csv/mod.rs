//! CSV source: delimited files in any single-byte or UTF-8 encoding, rows
//! with the wrong number of fields go to the dead-letter sink with their
//! line number, resumable by byte offset.

mod config;

use std::borrow::Cow;
use std::fs::File;

use encoding_rs::Encoding;
use sluice_codec::{Operation, Record, Value};

pub use config::CsvConfig;

use super::{Malformed, Source, SourceContext, SourceError, parse_token};

/// The CSV source.
pub struct CsvSource {
    config: CsvConfig,
    encoding: &'static Encoding,
    delimiter: u8,
    quote: u8,
    comment: Option<u8>,
    stream: String,
}

fn one_ascii(path: &std::path::Path, key: &str, s: &str) -> Result<u8, SourceError> {
    let s = if s == "\\t" { "\t" } else { s };
    match s.as_bytes() {
        [b] if b.is_ascii() => Ok(*b),
        _ => Err(SourceError::Config {
            path: path.to_path_buf(),
            message: format!("`{key}` must be one ASCII character, got {s:?}"),
        }),
    }
}

impl CsvSource {
    /// Checks the config.
    pub fn new(config: CsvConfig) -> Result<Self, SourceError> {
        let path = &config.path;
        let encoding = Encoding::for_label(config.encoding.as_bytes()).ok_or_else(|| SourceError::Config {
            path: path.clone(),
            message: format!(
                "unknown `encoding` {:?}: use a WHATWG label such as \"utf-8\", \"latin1\", \"windows-1252\", \"iso-8859-15\"",
                config.encoding
            ),
        })?;
        if encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE {
            return Err(SourceError::Config {
                path: path.clone(),
                message: "UTF-16 files are not supported: convert to UTF-8 first (`iconv -f UTF-16 -t UTF-8`)".into(),
            });
        }
        let delimiter = one_ascii(path, "delimiter", &config.delimiter)?;
        let quote = one_ascii(path, "quote", &config.quote)?;
        let comment = config
            .comment
            .as_deref()
            .map(|c| one_ascii(path, "comment", c))
            .transpose()?;
        if !config.has_header && config.columns.is_none() {
            return Err(SourceError::Config {
                path: path.clone(),
                message: "`has_header = false` needs `columns = [...]` to name the fields".into(),
            });
        }
        let stream = config.stream.clone().unwrap_or_else(|| {
            config
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "csv".into())
        });
        Ok(CsvSource {
            config,
            encoding,
            delimiter,
            quote,
            comment,
            stream,
        })
    }

    fn reader(&self, file: File) -> ::csv::Reader<File> {
        ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(self.delimiter)
            .quote(self.quote)
            .comment(self.comment)
            .from_reader(file)
    }

    fn open(&self) -> Result<File, SourceError> {
        File::open(&self.config.path).map_err(|source| SourceError::Io {
            path: self.config.path.clone(),
            what: "cannot open",
            source,
        })
    }

    fn io(&self, what: &'static str) -> impl Fn(::csv::Error) -> SourceError + '_ {
        move |e| SourceError::Io {
            path: self.config.path.clone(),
            what,
            source: std::io::Error::other(e.to_string()),
        }
    }

    fn decode<'b>(&self, bytes: &'b [u8]) -> Result<Cow<'b, str>, usize> {
        if self.encoding == encoding_rs::UTF_8 {
            std::str::from_utf8(bytes)
                .map(Cow::Borrowed)
                .map_err(|e| e.valid_up_to())
        } else {
            Ok(self.encoding.decode_without_bom_handling(bytes).0)
        }
    }

    /// A row that cannot become a record: its fields as text (undecodable
    /// bytes replaced), joined by the delimiter, and why.
    fn malformed(&self, row: &::csv::ByteRecord, line: u64, reason: String) -> Malformed {
        let raw = row
            .iter()
            .map(|f| self.encoding.decode_without_bom_handling(f).0.into_owned())
            .collect::<Vec<_>>()
            .join(&(self.delimiter as char).to_string());
        Malformed {
            position: format!("line {line}"),
            stream: self.stream.clone(),
            raw,
            reason,
        }
    }

    /// Reads the header row (or takes `columns`) and returns the names.
    fn header(&self, reader: &mut ::csv::Reader<File>) -> Result<Vec<String>, SourceError> {
        let mut row = ::csv::ByteRecord::new();
        let mut names: Vec<String> = Vec::new();
        if self.config.has_header {
            if !reader
                .read_byte_record(&mut row)
                .map_err(self.io("cannot read the header"))?
            {
                return Ok(self.config.columns.clone().unwrap_or_default());
            }
            for (i, field) in row.iter().enumerate() {
                let field = if i == 0 {
                    field.strip_prefix(b"\xef\xbb\xbf").unwrap_or(field)
                } else {
                    field
                };
                let name = self.decode(field).map_err(|_| SourceError::Config {
                    path: self.config.path.clone(),
                    message: format!("the header has invalid UTF-8 in column {}: set `encoding` (e.g. \"windows-1252\")", i + 1),
                })?;
                let name = name.trim();
                names.push(if name.is_empty() {
                    format!("column_{}", i + 1)
                } else {
                    name.to_string()
                });
            }
        }
        if let Some(cols) = &self.config.columns {
            names = cols.clone();
        }
        for (i, n) in names.iter().enumerate() {
            if let Some(j) = names[..i].iter().position(|m| m == n) {
                return Err(SourceError::Config {
                    path: self.config.path.clone(),
                    message: format!(
                        "column `{n}` appears twice (columns {} and {}): rename one with `columns = [...]`",
                        j + 1,
                        i + 1
                    ),
                });
            }
        }
        Ok(names)
    }
}

impl Source for CsvSource {
    fn describe(&self) -> String {
        format!("csv {}", self.config.path.display())
    }

    fn size_hint(&mut self) -> Option<u64> {
        std::fs::metadata(&self.config.path).ok().map(|m| m.len())
    }

    fn check(&mut self) -> Result<(), SourceError> {
        let mut reader = self.reader(self.open()?);
        self.header(&mut reader).map(|_| ())
    }

    fn run(
        &mut self,
        resume: Option<&str>,
        ctx: &mut SourceContext<'_>,
    ) -> Result<(), SourceError> {
        let mut reader = self.reader(self.open()?);
        let names = self.header(&mut reader)?;
        if let Some(token) = resume {
            let Some(v) = parse_token(token, &["byte", "line", "row"]) else {
                return Err(SourceError::Checkpoint {
                    path: self.config.path.clone(),
                    message: format!("the checkpoint `{token}` is not a CSV position"),
                });
            };
            let len = std::fs::metadata(&self.config.path)
                .map(|m| m.len())
                .unwrap_or(0);
            if v[0] > len {
                return Err(SourceError::Checkpoint {
                    path: self.config.path.clone(),
                    message: format!(
                        "the checkpoint is at byte {} but the file has {len} bytes",
                        v[0]
                    ),
                });
            }
            let mut pos = ::csv::Position::new();
            pos.set_byte(v[0]).set_line(v[1]).set_record(v[2]);
            reader
                .seek(pos)
                .map_err(self.io("cannot seek to the checkpoint"))?;
        }
        let mut row = ::csv::ByteRecord::new();
        let token = |next: &::csv::Position| {
            format!(
                "byte={};line={};row={}",
                next.byte(),
                next.line(),
                next.record()
            )
        };
        loop {
            let more = reader
                .read_byte_record(&mut row)
                .map_err(self.io("cannot read"))?;
            let next = reader.position().clone();
            ctx.set_progress(next.byte());
            if !more {
                let _ = ctx.flush(&token(&next));
                return Ok(());
            }
            let line = row.position().map_or(0, |p| p.line());
            let full = if row.len() != names.len() {
                let reason = format!(
                    "row has {} fields, the header has {}",
                    row.len(),
                    names.len()
                );
                ctx.push_malformed(self.malformed(&row, line, reason))
            } else {
                let mut fields: Vec<(Cow<'_, str>, Value<'_>)> = Vec::with_capacity(names.len());
                let mut bad = None;
                for (name, raw) in names.iter().zip(row.iter()) {
                    match self.decode(raw) {
                        Ok(text) => {
                            let v = if text.is_empty() && self.config.empty_as_null {
                                Value::Null
                            } else {
                                Value::Text(text)
                            };
                            fields.push((Cow::Borrowed(name.as_str()), v));
                        }
                        Err(at) => {
                            bad = Some(format!(
                                "invalid UTF-8 in column `{name}` at byte {at} of the value: set `encoding` to the file's encoding (e.g. \"windows-1252\")"
                            ));
                            break;
                        }
                    }
                }
                match bad {
                    Some(reason) => ctx.push_malformed(self.malformed(&row, line, reason)),
                    None => {
                        let rec = Record {
                            op: Operation::Snapshot,
                            stream: Cow::Borrowed(&self.stream),
                            position: Cow::Owned(format!("line {line}")),
                            fields,
                            ..Default::default()
                        };
                        ctx.push(&rec)
                    }
                }
            };
            if full && ctx.flush(&token(&next)).is_err() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests;
