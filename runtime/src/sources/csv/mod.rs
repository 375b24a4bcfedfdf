//! CSV source: delimited files in any single-byte or UTF-8 encoding, rows
//! with the wrong number of fields go to the dead-letter sink with their
//! line number, resumable by byte offset.

mod config;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use encoding_rs::Encoding;
use sluice_codec::{Operation, Record, Value};

pub use config::CsvConfig;

use super::{Malformed, OVERSIZED_RAW_BYTES, Source, SourceContext, SourceError, parse_token};

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

    fn reader(&self, file: Capped) -> ::csv::Reader<Capped> {
        ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(self.delimiter)
            .quote(self.quote)
            .comment(self.comment)
            .from_reader(file)
    }

    fn open(&self) -> Result<Capped, SourceError> {
        self.open_with(Arc::new(AtomicU64::new(u64::MAX)))
    }

    /// Opens the file with the read limit `limit` (shared with the run loop).
    fn open_with(&self, limit: Arc<AtomicU64>) -> Result<Capped, SourceError> {
        File::open(&self.config.path)
            .map(|file| Capped {
                file,
                pos: 0,
                limit,
                newlines: VecDeque::new(),
                counted: 0,
            })
            .map_err(|source| SourceError::Io {
                path: self.config.path.clone(),
                what: "cannot open",
                source,
            })
    }

    /// After a row longer than `max_record_bytes` starting at `start`: the
    /// position of the first line break past the limit, and the row's
    /// first bytes (for its dead letter). `None` at the end of the file.
    fn skip_oversized(
        &self,
        start: &::csv::Position,
    ) -> Result<(Option<::csv::Position>, Vec<u8>), SourceError> {
        let io = |what| {
            move |source| SourceError::Io {
                path: self.config.path.clone(),
                what,
                source,
            }
        };
        let mut f = File::open(&self.config.path).map_err(io("cannot open"))?;
        f.seek(SeekFrom::Start(start.byte()))
            .map_err(io("cannot seek"))?;
        let mut r = BufReader::with_capacity(1 << 16, f);
        let mut raw = Vec::new();
        let mut at = start.byte();
        let mut lines = 0u64;
        let limit = start.byte().saturating_add(self.config.max_record_bytes);
        loop {
            let buf = r.fill_buf().map_err(io("cannot read"))?;
            if buf.is_empty() {
                return Ok((None, raw));
            }
            let room = OVERSIZED_RAW_BYTES.saturating_sub(raw.len());
            raw.extend_from_slice(&buf[..buf.len().min(room)]);
            // Line breaks before the limit are counted; the first one at or
            // past it ends the skip.
            let mut n = buf.len();
            let mut found = false;
            for (i, &b) in buf.iter().enumerate() {
                if b == b'\n' {
                    lines += 1;
                    if at + i as u64 >= limit {
                        n = i + 1;
                        found = true;
                        break;
                    }
                }
            }
            at += n as u64;
            r.consume(n);
            if found {
                let mut next = ::csv::Position::new();
                next.set_byte(at)
                    .set_line(start.line() + lines)
                    .set_record(start.record() + 1);
                return Ok((Some(next), raw));
            }
        }
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
            record: None,
            position: format!("line {line}"),
            stream: self.stream.clone(),
            raw,
            reason,
        }
    }

    /// Reads the header row (or takes `columns`) and returns the names.
    fn header(&self, reader: &mut ::csv::Reader<Capped>) -> Result<Vec<String>, SourceError> {
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
        let file = self.open()?;
        let limit = file.limit.clone();
        let mut reader = self.reader(file);
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
            reader.get_mut().restart_on_line(v[1]);
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
        let max = self.config.max_record_bytes;
        loop {
            let start = reader.position().clone();
            limit.store(start.byte().saturating_add(max), Ordering::Relaxed);
            let more = match reader.read_byte_record(&mut row) {
                Ok(more) => more,
                Err(e) if is_too_long(&e) => {
                    let (next, raw) = self.skip_oversized(&start)?;
                    // The row starts after the line break the reader is in
                    // (a `\r\n` it read half of) or right at `start`.
                    let line = 1 + reader.get_mut().newlines_before(start.byte() + 1);
                    let reason = format!(
                        "the row starting at line {line} is longer than `max_record_bytes` ({max}): a huge field, or a quote never closed; reading goes on at the next line break past the limit"
                    );
                    let full = ctx.push_malformed(Malformed {
                        record: None,
                        position: format!("line {line}"),
                        stream: self.stream.clone(),
                        raw: self
                            .encoding
                            .decode_without_bom_handling(&raw)
                            .0
                            .into_owned(),
                        reason,
                    });
                    let Some(next) = next else {
                        let mut end = start.clone();
                        end.set_byte(
                            std::fs::metadata(&self.config.path).map_or(start.byte(), |m| m.len()),
                        );
                        let _ = ctx.flush(&token(&end));
                        return Ok(());
                    };
                    limit.store(u64::MAX, Ordering::Relaxed);
                    reader = self.reader(self.open_with(limit.clone())?);
                    reader
                        .seek(next.clone())
                        .map_err(self.io("cannot seek past the long row"))?;
                    reader.get_mut().restart_on_line(next.line());
                    if full && ctx.flush(&token(&next)).is_err() {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) => return Err(self.io("cannot read")(e)),
            };
            let next = reader.position().clone();
            ctx.set_progress(next.byte());
            if !more {
                let _ = ctx.flush(&token(&next));
                return Ok(());
            }
            let line = row_line(reader.get_mut(), &row, next.byte());
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

/// The file under the CSV reader: it refuses to read past `limit` (the
/// start of the row being read plus `max_record_bytes`), so a row of any
/// length costs at most that much memory.
///
/// It also counts line breaks for the rows' line numbers: the csv crate's
/// are one short after a `\r\n` (BurntSushi/rust-csv#395), and legacy
/// Windows exports end every line so.
struct Capped {
    file: File,
    pos: u64,
    limit: Arc<AtomicU64>,
    /// Offsets of the `\n` bytes read but not counted yet, in order.
    newlines: VecDeque<u64>,
    /// `\n` bytes counted (those before the last offset asked about).
    counted: u64,
}

impl Capped {
    /// How many `\n` bytes the file has before offset `byte`. Offsets
    /// asked about never decrease, and the reader has read past them.
    fn newlines_before(&mut self, byte: u64) -> u64 {
        while self.newlines.front().is_some_and(|&at| at < byte) {
            self.newlines.pop_front();
            self.counted += 1;
        }
        self.counted
    }

    /// After a seek to a position on line `line` (1-based).
    fn restart_on_line(&mut self, line: u64) {
        self.newlines.clear();
        self.counted = line.saturating_sub(1);
    }
}

/// How far behind the bytes read a row can still end: far more than the
/// csv reader's buffer (8 KiB, the crate's default, which `reader` keeps).
const SETTLED_BEHIND: u64 = 256 << 10;

/// The line (1-based) a row starts on. `end` is the reader's position after
/// the row: one byte past the row's last byte (the first byte of its line
/// break, the only one the reader consumes of a `\n` or a `\r\n`, or the
/// end of the file). Line breaks inside quoted fields belong to the row.
fn row_line(file: &mut Capped, row: &::csv::ByteRecord, end: u64) -> u64 {
    let before_last = file.newlines_before(end.saturating_sub(1));
    let inside = memchr::memchr_iter(b'\n', row.as_slice()).count() as u64;
    1 + before_last.saturating_sub(inside)
}

/// What [`Capped`] answers past its limit.
#[derive(Debug)]
struct TooLong;

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("row longer than max_record_bytes")
    }
}

impl std::error::Error for TooLong {}

impl Read for Capped {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let limit = self.limit.load(Ordering::Relaxed);
        if self.pos >= limit {
            return Err(std::io::Error::other(TooLong));
        }
        let n = usize::try_from(limit - self.pos).map_or(buf.len(), |room| room.min(buf.len()));
        let got = self.file.read(&mut buf[..n])?;
        let at = self.pos;
        self.newlines
            .extend(memchr::memchr_iter(b'\n', &buf[..got]).map(|i| at + i as u64));
        self.pos += got as u64;
        // The reader never holds more than its buffer unread, so no row it
        // can still ask about ends this far back: count those line breaks
        // now (a file of nothing but line breaks keeps the queue small).
        let settled = self.pos.saturating_sub(SETTLED_BEHIND);
        while self.newlines.front().is_some_and(|&at| at < settled) {
            self.newlines.pop_front();
            self.counted += 1;
        }
        Ok(got)
    }
}

impl Seek for Capped {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.file.seek(to)?;
        // Whoever seeks sets the line (`restart_on_line`).
        self.newlines.clear();
        Ok(self.pos)
    }
}

fn is_too_long(e: &::csv::Error) -> bool {
    matches!(e.kind(), ::csv::ErrorKind::Io(io) if io.get_ref().is_some_and(|i| i.is::<TooLong>()))
}

#[cfg(test)]
mod tests;
