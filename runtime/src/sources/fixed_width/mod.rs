//! Fixed-width source: mainframe and ERP exports whose fields sit at fixed
//! character positions, with record types (header, detail, trailer) told
//! by a field, implied decimals, trailing and zoned (overpunched) signs,
//! single-byte code pages, and trailer record counts checked against the
//! records read. A record that does not fit its layout (too short, too long,
//! no type, a field that is not what it says) goes to the dead-letter sink
//! with its line number and text. Resumable by byte offset.

mod config;
mod layout;

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

use encoding_rs::Encoding;
use sluice_codec::{Operation, Record, Value};

pub use config::FixedWidthConfig;
use config::LayoutFile;
pub use layout::{FieldLayout, RecordLayout};
use layout::{Layout, Line};

use super::{Malformed, OVERSIZED_RAW_BYTES, Source, SourceContext, SourceError, parse_token};

/// The fixed-width source.
pub struct FixedWidthSource {
    config: FixedWidthConfig,
    encoding: &'static Encoding,
    layout: Layout,
}

/// One record as read: its bytes, or that it was too long.
enum Read1 {
    /// The end of the file.
    End,
    /// A record (in the buffer), and the bytes it took in the file.
    Record(u64),
    /// A record over `max_record_bytes`: the bytes it took, its first bytes
    /// are in the buffer.
    TooLong(u64),
}

impl FixedWidthSource {
    /// Checks the config and the layout.
    pub fn new(config: FixedWidthConfig) -> Result<Self, SourceError> {
        let path = config.path.clone();
        let err = |message: String| SourceError::Config {
            path: path.clone(),
            message,
        };
        let encoding = Encoding::for_label(config.encoding.as_bytes()).ok_or_else(|| {
            let ebcdic = ["cp037", "cp500", "cp1047", "ibm037", "ibm500", "ebcdic"]
                .iter()
                .any(|e| config.encoding.eq_ignore_ascii_case(e));
            err(if ebcdic {
                format!(
                    "`encoding` {:?}: EBCDIC code pages are not supported (no maintained Rust crate decodes them); convert the file first, e.g. `iconv -f IBM037 -t UTF-8` for text-only records (zoned decimals convert with it; packed COMP-3 fields do not)",
                    config.encoding
                )
            } else {
                format!(
                    "unknown `encoding` {:?}: use a WHATWG label such as \"utf-8\", \"latin1\", \"windows-1252\", \"iso-8859-15\", \"ibm866\"",
                    config.encoding
                )
            })
        })?;
        if encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE {
            return Err(err(
                "UTF-16 files are not supported: convert to UTF-8 first (`iconv -f UTF-16 -t UTF-8`)".into(),
            ));
        }
        if config.record_length == Some(0) {
            return Err(err("`record_length` must be at least 1".into()));
        }
        let given = [
            !config.fields.is_empty(),
            !config.records.is_empty(),
            config.layout.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(err(
                "give the layout once: `fields = [...]` (one record type), `[[source.records]]` (several), or `layout = \"FILE.toml\"` holding either".into(),
            ));
        }
        let (fields, records) = match &config.layout {
            Some(file) => {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    err(format!("cannot read the layout `{}`: {e}", file.display()))
                })?;
                let l: LayoutFile = toml::from_str(&text)
                    .map_err(|e| err(format!("the layout `{}`: {e}", file.display())))?;
                (l.fields, l.records)
            }
            None => (config.fields.clone(), config.records.clone()),
        };
        let records = if records.is_empty() {
            vec![RecordLayout {
                name: "record".into(),
                when: None,
                fields,
                stream: None,
                emit: true,
                count: None,
            }]
        } else if !fields.is_empty() {
            return Err(err(
                "the layout gives both `fields` and `records`: put the fields in the record types"
                    .into(),
            ));
        } else {
            records
        };
        let stream = config.stream.clone().unwrap_or_else(|| {
            config
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "fixed_width".into())
        });
        let layout = Layout::new(&records, &stream).map_err(|m| err(format!("layout: {m}")))?;
        Ok(FixedWidthSource {
            config,
            encoding,
            layout,
        })
    }

    fn io(&self, what: &'static str) -> impl Fn(std::io::Error) -> SourceError + '_ {
        move |source| SourceError::Io {
            path: self.config.path.clone(),
            what,
            source,
        }
    }

    /// Reads the next record into `buf` (without its line break).
    fn next(&self, r: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Read1> {
        buf.clear();
        let max = usize::try_from(self.config.max_record_bytes).unwrap_or(usize::MAX);
        if let Some(n) = self.config.record_length {
            let got = r.take(n as u64).read_to_end(buf)?;
            return Ok(if got == 0 {
                Read1::End
            } else {
                Read1::Record(got as u64)
            });
        }
        let mut taken = 0u64;
        let mut too_long = false;
        loop {
            let chunk = r.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            let (part, done) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let room = if too_long {
                OVERSIZED_RAW_BYTES.saturating_sub(buf.len())
            } else {
                part
            };
            buf.extend_from_slice(&chunk[..part.min(room)]);
            r.consume(part);
            taken += part as u64;
            if !too_long && buf.len() > max.saturating_add(1) {
                too_long = true;
                buf.truncate(OVERSIZED_RAW_BYTES);
            }
            if done {
                break;
            }
        }
        if taken == 0 {
            return Ok(Read1::End);
        }
        if too_long {
            return Ok(Read1::TooLong(taken));
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        Ok(Read1::Record(taken))
    }

    /// The record's text: `bytes` themselves in a UTF-8 file, else decoded
    /// into `out` (reused from record to record).
    fn decode<'b>(&self, bytes: &'b [u8], out: &'b mut String) -> Result<&'b str, usize> {
        if self.encoding == encoding_rs::UTF_8 {
            return std::str::from_utf8(bytes).map_err(|e| e.valid_up_to());
        }
        out.clear();
        let mut decoder = self.encoding.new_decoder_without_bom_handling();
        let room = decoder
            .max_utf8_buffer_length(bytes.len())
            .unwrap_or(bytes.len().saturating_mul(3));
        out.reserve(room);
        let _ = decoder.decode_to_string(bytes, out, true);
        Ok(out.as_str())
    }

    fn malformed(&self, line: u64, stream: &str, raw: &[u8], reason: String) -> Malformed {
        Malformed {
            position: format!("line {line}"),
            stream: stream.to_string(),
            raw: self
                .encoding
                .decode_without_bom_handling(raw)
                .0
                .into_owned(),
            reason,
            record: None,
        }
    }

    /// What a record is: its type and values, or why it cannot be read
    /// (with its type, when it has one).
    #[allow(clippy::type_complexity)]
    fn read_record<'l>(
        &'l self,
        rec: &Line<'l>,
        line: u64,
    ) -> Result<(usize, Vec<(Cow<'l, str>, Value<'l>)>), (Option<usize>, String)> {
        let Some(t) = self.layout.type_of(rec) else {
            let mut places: Vec<(usize, usize)> = Vec::new();
            for (s, l, _) in self.layout.types.iter().filter_map(|t| t.when.as_ref()) {
                if !places.contains(&(*s, *l)) {
                    places.push((*s, *l));
                }
            }
            let shown = places
                .iter()
                .map(|(s, l)| {
                    let got: String = rec.rest(*s).chars().take(*l).collect();
                    format!("characters {}-{} are {got:?}", s + 1, s + l)
                })
                .collect::<Vec<_>>()
                .join(", ");
            return Err((
                None,
                format!("line {line} is of no record type in the layout ({shown})"),
            ));
        };
        let ty = &self.layout.types[t];
        if rec.char_count() < ty.width {
            return Err((
                Some(t),
                format!(
                    "line {line} has {} characters; a `{}` record has {}",
                    rec.char_count(),
                    ty.name,
                    ty.width
                ),
            ));
        }
        if rec.rest(ty.width).chars().any(|c| c != ' ' && c != '\0') {
            return Err((
                Some(t),
                format!(
                    "line {line} has {} characters; a `{}` record has {} (and only spaces may follow)",
                    rec.char_count(),
                    ty.name,
                    ty.width
                ),
            ));
        }
        let mut values = Vec::with_capacity(ty.fields.len());
        for f in &ty.fields {
            // In range: the record is at least `width` characters.
            let piece = rec.get(f.start, f.length).unwrap_or_default();
            let v = f.value(piece).map_err(|why| {
                (
                    Some(t),
                    format!(
                        "line {line}, field `{}` (characters {}-{}): {why}",
                        f.name,
                        f.start + 1,
                        f.start + f.length
                    ),
                )
            })?;
            values.push((Cow::Borrowed(f.name.as_str()), v));
        }
        Ok((t, values))
    }
}

impl Source for FixedWidthSource {
    fn describe(&self) -> String {
        format!("fixed_width {}", self.config.path.display())
    }

    fn size_hint(&mut self) -> Option<u64> {
        std::fs::metadata(&self.config.path).ok().map(|m| m.len())
    }

    fn check(&mut self) -> Result<(), SourceError> {
        File::open(&self.config.path)
            .map(|_| ())
            .map_err(self.io("cannot open"))
    }

    fn run(
        &mut self,
        resume: Option<&str>,
        ctx: &mut SourceContext<'_>,
    ) -> Result<(), SourceError> {
        let declared = ctx.feedback().declared_types();
        for (stream, columns) in self.layout.declared() {
            declared.declare(&stream, columns);
        }
        let mut file = File::open(&self.config.path).map_err(self.io("cannot open"))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        // Where to go on: the byte after the last record committed, its
        // line, the records counted toward the next count check, and the
        // line of the last record that checked a count.
        let (mut at, mut line, mut counted, mut checked) = (0u64, 0u64, 0u64, 0u64);
        if let Some(token) = resume {
            let Some(v) = parse_token(token, &["byte", "line", "counted", "checked"]) else {
                return Err(SourceError::Checkpoint {
                    path: self.config.path.clone(),
                    message: format!("the checkpoint `{token}` is not a fixed-width position"),
                });
            };
            if v[0] > len {
                return Err(SourceError::Checkpoint {
                    path: self.config.path.clone(),
                    message: format!(
                        "the checkpoint is at byte {} but the file has {len} bytes",
                        v[0]
                    ),
                });
            }
            (at, line, counted, checked) = (v[0], v[1], v[2], v[3]);
            file.seek(SeekFrom::Start(at))
                .map_err(self.io("cannot seek to the checkpoint"))?;
        }
        let mut r = BufReader::with_capacity(1 << 16, file);
        let mut buf = Vec::with_capacity(512);
        let mut decoded = String::with_capacity(512);
        let mut offsets: Vec<usize> = Vec::with_capacity(512);
        let token = |at: u64, line: u64, counted: u64, checked: u64| {
            format!("byte={at};line={line};counted={counted};checked={checked}")
        };
        let default_stream = self.layout.types[0].stream.clone();
        loop {
            let before = token(at, line, counted, checked);
            let read = self
                .next(&mut r, &mut buf)
                .map_err(self.io("cannot read"))?;
            let taken = match read {
                Read1::End => break,
                Read1::Record(n) | Read1::TooLong(n) => n,
            };
            // A UTF-8 file written by a Windows tool starts with a byte
            // order mark: not part of the first record.
            if at == 0
                && self.encoding == encoding_rs::UTF_8
                && self.config.record_length.is_none()
                && buf.starts_with(b"\xef\xbb\xbf")
            {
                buf.drain(..3);
            }
            at += taken;
            line += 1;
            ctx.set_progress(at);
            let full = if let Read1::TooLong(_) = read {
                ctx.push_malformed(self.malformed(
                    line,
                    &default_stream,
                    &buf,
                    format!(
                        "line {line} is longer than `max_record_bytes` ({}); its first {} KiB are kept",
                        self.config.max_record_bytes,
                        OVERSIZED_RAW_BYTES >> 10
                    ),
                ))
            } else if self.config.record_length.is_some_and(|n| buf.len() < n) {
                ctx.push_malformed(self.malformed(
                    line,
                    &default_stream,
                    &buf,
                    format!(
                        "the file ends with a partial record of {} bytes (`record_length` is {})",
                        buf.len(),
                        self.config.record_length.unwrap_or(0)
                    ),
                ))
            } else if buf.iter().all(|b| b.is_ascii_whitespace())
                && self.config.record_length.is_none()
            {
                false // A blank line.
            } else {
                match self.decode(&buf, &mut decoded) {
                    Err(valid) => ctx.push_malformed(self.malformed(
                        line,
                        &default_stream,
                        &buf,
                        format!(
                            "line {line} has invalid UTF-8 at byte {}: set `encoding` to the file's encoding (e.g. \"windows-1252\")",
                            valid + 1
                        ),
                    )),
                    Ok(text) => match self.read_record(&Line::new(text, &mut offsets), line) {
                        Err((t, reason)) => {
                            if t.is_some_and(|t| self.layout.counted[t]) {
                                counted += 1;
                            }
                            let stream = t.map_or(&default_stream, |t| &self.layout.types[t].stream);
                            ctx.push_malformed(self.malformed(line, stream, &buf, reason))
                        }
                        Ok((t, values)) => {
                            let ty = &self.layout.types[t];
                            if self.layout.counted[t] {
                                counted += 1;
                            }
                            if let Some((field, _)) = &ty.count {
                                let said = match values[*field].1 {
                                    Value::Int(n) => n,
                                    _ => -1,
                                };
                                if said != counted as i64 {
                                    let since = if checked == 0 {
                                        "since the file's start".to_string()
                                    } else {
                                        format!("since the `{}` record on line {checked}", ty.name)
                                    };
                                    // What came before is handed on; a
                                    // run again stops here again.
                                    if ctx.flush(&before).is_err() {
                                        return Ok(());
                                    }
                                    return Err(SourceError::Invalid {
                                        path: self.config.path.clone(),
                                        message: format!(
                                            "line {line}: the `{}` record counts {} records (field `{}`), but {counted} were read {since}: the file is incomplete or was changed (the records before it were handed on)",
                                            ty.name,
                                            if said < 0 { "no".to_string() } else { said.to_string() },
                                            ty.fields[*field].name,
                                        ),
                                    });
                                }
                                counted = 0;
                                checked = line;
                            }
                            if ty.emit {
                                let position = format!("line {line}");
                                let rec = Record {
                                    op: Operation::Snapshot,
                                    stream: Cow::Borrowed(&ty.stream),
                                    position: Cow::Owned(position),
                                    fields: values,
                                    ..Default::default()
                                };
                                ctx.push(&rec)
                            } else {
                                false
                            }
                        }
                    },
                }
            };
            if full && ctx.flush(&token(at, line, counted, checked)).is_err() {
                return Ok(());
            }
        }
        if counted > 0 && self.layout.types.iter().any(|t| t.count.is_some()) {
            return Err(SourceError::Invalid {
                path: self.config.path.clone(),
                message: format!(
                    "the file ends after {counted} counted records with no record to count them (line {line} is the last): it was cut short"
                ),
            });
        }
        let _ = ctx.flush(&token(at, line, counted, checked));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
