//! JSONL source: one JSON object per line; a line that is not a JSON object
//! goes to the dead-letter sink with its line number. Resumable by byte offset.

mod config;

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};

pub use config::JsonlSourceConfig;

use super::{
    Malformed, OVERSIZED_RAW_BYTES, Source, SourceContext, SourceError, parse_token,
    read_line_capped,
};
use crate::value_json::object_to_record;

/// The JSONL source.
pub struct JsonlSource {
    config: JsonlSourceConfig,
    stream: String,
}

impl JsonlSource {
    /// Checks the config.
    pub fn new(config: JsonlSourceConfig) -> Result<Self, SourceError> {
        let stream = config.stream.clone().unwrap_or_else(|| {
            config
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "jsonl".into())
        });
        Ok(JsonlSource { config, stream })
    }
}

impl Source for JsonlSource {
    fn describe(&self) -> String {
        format!("jsonl {}", self.config.path.display())
    }

    fn size_hint(&mut self) -> Option<u64> {
        std::fs::metadata(&self.config.path).ok().map(|m| m.len())
    }

    fn check(&mut self) -> Result<(), SourceError> {
        File::open(&self.config.path)
            .map(|_| ())
            .map_err(|source| SourceError::Io {
                path: self.config.path.clone(),
                what: "cannot open",
                source,
            })
    }

    fn run(
        &mut self,
        resume: Option<&str>,
        ctx: &mut SourceContext<'_>,
    ) -> Result<(), SourceError> {
        let path = &self.config.path;
        let io = |what: &'static str| {
            move |source| SourceError::Io {
                path: path.clone(),
                what,
                source,
            }
        };
        let mut file = File::open(path).map_err(io("cannot open"))?;
        let (mut offset, mut line_no) = (0u64, 0u64);
        if let Some(token) = resume {
            let v =
                parse_token(token, &["byte", "line"]).ok_or_else(|| SourceError::Checkpoint {
                    path: path.clone(),
                    message: format!("the checkpoint `{token}` is not a JSONL position"),
                })?;
            let len = file.metadata().map_err(io("cannot stat"))?.len();
            if v[0] > len {
                return Err(SourceError::Checkpoint {
                    path: path.clone(),
                    message: format!(
                        "the checkpoint is at byte {} but the file has {len} bytes",
                        v[0]
                    ),
                });
            }
            file.seek(SeekFrom::Start(v[0]))
                .map_err(io("cannot seek to the checkpoint"))?;
            (offset, line_no) = (v[0], v[1]);
        }
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let token = |offset: u64, line: u64| format!("byte={offset};line={line}");
        // `buf` holds one line; an incomplete last line stays in it while
        // following, and the rest is appended when it arrives.
        let mut buf = Vec::with_capacity(1024);
        // Bytes of the current line, also those past `max_record_bytes`
        // that are not kept in `buf`.
        let mut line_len = 0u64;
        let max = self.config.max_record_bytes;
        let keep = usize::try_from(max.saturating_add(1)).unwrap_or(usize::MAX);
        loop {
            let ended = read_line_capped(&mut reader, &mut buf, keep, &mut line_len)
                .map_err(io("cannot read"))?;
            if !ended {
                // The end of the file, perhaps in the middle of a line.
                let complete_last_line = !self.config.follow
                    && !buf.is_empty()
                    && (line_len > max
                        || serde_json::from_slice::<serde_json::Value>(&buf).is_ok());
                if !complete_last_line {
                    if ctx.flush(&token(offset, line_no)).is_err() || !self.config.follow {
                        return Ok(());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    let len = std::fs::metadata(path).map_err(io("cannot stat"))?.len();
                    if len < offset + line_len {
                        return Err(SourceError::Checkpoint {
                            path: path.clone(),
                            message: format!(
                                "the file shrank to {len} bytes while being followed at byte {offset}"
                            ),
                        });
                    }
                    continue;
                }
            }
            offset += line_len;
            line_no += 1;
            ctx.set_progress(offset);
            let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            let full = if line_len > max {
                ctx.push_malformed(Malformed {
                    record: None,
                    position: format!("line {line_no}"),
                    stream: self.stream.clone(),
                    raw: String::from_utf8_lossy(&text[..text.len().min(OVERSIZED_RAW_BYTES)])
                        .into_owned(),
                    reason: format!(
                        "the line has {line_len} bytes, more than `max_record_bytes` ({max}); its first {} KiB are kept here",
                        OVERSIZED_RAW_BYTES >> 10
                    ),
                })
            } else if text.iter().all(u8::is_ascii_whitespace) {
                false
            } else {
                let position = format!("line {line_no}");
                match serde_json::from_slice::<serde_json::Value>(text) {
                    Ok(serde_json::Value::Object(obj)) => {
                        ctx.push(&object_to_record(&obj, &self.stream, position))
                    }
                    Ok(other) => ctx.push_malformed(Malformed {
                        record: None,
                        position,
                        stream: self.stream.clone(),
                        raw: String::from_utf8_lossy(text).into_owned(),
                        reason: format!("expected a JSON object, found {}", kind(&other)),
                    }),
                    Err(e) => ctx.push_malformed(Malformed {
                        record: None,
                        position,
                        stream: self.stream.clone(),
                        raw: String::from_utf8_lossy(text).into_owned(),
                        reason: format!("invalid JSON: {e}"),
                    }),
                }
            };
            buf.clear();
            line_len = 0;
            if full && ctx.flush(&token(offset, line_no)).is_err() {
                return Ok(());
            }
        }
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
