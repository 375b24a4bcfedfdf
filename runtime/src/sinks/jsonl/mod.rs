//! JSONL sink. Keeps the committed file length in the checkpoint, so a
//! restart after a crash truncates what was written after the last commit
//! and the file ends up with each record exactly once.

mod config;

use std::fs::{File, OpenOptions};
use std::io::Write;

use sluice_codec::Record;

pub use config::JsonlSinkConfig;

use super::lines::json_lines;
use super::{Sink, SinkCommit, SinkError};

/// The JSONL sink.
pub struct JsonlSink {
    config: JsonlSinkConfig,
    file: Option<File>,
    len: u64,
}

impl JsonlSink {
    /// A JSONL sink (the file is opened by `open`).
    pub fn new(config: JsonlSinkConfig) -> Self {
        JsonlSink {
            config,
            file: None,
            len: 0,
        }
    }

    fn io(&self, what: &'static str) -> impl Fn(std::io::Error) -> SinkError + '_ {
        move |source| SinkError::Io {
            path: self.config.path.clone(),
            what,
            source,
        }
    }
}

impl Sink for JsonlSink {
    fn describe(&self) -> String {
        format!("jsonl {}", self.config.path.display())
    }

    fn open(&mut self, state: Option<&str>) -> Result<(), SinkError> {
        if let Some(parent) = self.config.path.parent() {
            std::fs::create_dir_all(parent).map_err(self.io("cannot create the directory"))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.config.path)
            .map_err(self.io("cannot open"))?;
        let mut len = file.metadata().map_err(self.io("cannot stat"))?.len();
        if let Some(committed) = state
            .and_then(|s| s.strip_prefix("bytes="))
            .and_then(|n| n.parse::<u64>().ok())
            && committed < len
        {
            tracing::warn!(path = %self.config.path.display(), committed, found = len, "removing output written after the last checkpoint (it will be written again)");
            file.set_len(committed)
                .map_err(self.io("cannot truncate to the checkpoint"))?;
            len = committed;
        }
        self.len = len;
        self.file = Some(file);
        Ok(())
    }

    fn write(&mut self, records: &[Record<'_>]) -> Result<SinkCommit, SinkError> {
        let mut buf = Vec::with_capacity(records.len() * 128);
        let refused = json_lines(
            &mut buf,
            records,
            self.config.include_metadata.unwrap_or(false),
        );
        let fsync = self.config.fsync;
        let path = self.config.path.clone();
        let file = self.file.as_mut().ok_or_else(|| SinkError::Config {
            path: path.clone(),
            message: "write before open".into(),
        })?;
        let io = |what: &'static str| {
            let path = path.clone();
            move |source| SinkError::Io { path, what, source }
        };
        file.write_all(&buf).map_err(io("cannot write"))?;
        file.flush().map_err(io("cannot flush"))?;
        if fsync {
            file.sync_data().map_err(io("cannot fsync"))?;
        }
        self.len += buf.len() as u64;
        Ok(SinkCommit {
            written: (records.len() - refused.len()) as u64,
            refused,
            state: Some(format!("bytes={}", self.len)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::test_support::write_checked;

    fn rec(i: i64) -> Record<'static> {
        let mut r = Record {
            stream: "s".into(),
            ..Default::default()
        };
        r.set("i", sluice_codec::Value::Int(i));
        r
    }

    #[test]
    fn truncates_what_was_written_after_the_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out/o.jsonl");
        let cfg = JsonlSinkConfig {
            path: path.clone(),
            include_metadata: None,
            fsync: false,
        };
        let mut s = JsonlSink::new(cfg.clone());
        s.open(None).expect("open");
        let c = write_checked(&mut s, &[rec(1)]).expect("write");
        assert_eq!(c.state.as_deref(), Some("bytes=8"));
        write_checked(&mut s, &[rec(2)]).expect("write (not checkpointed)");
        let mut s = JsonlSink::new(cfg);
        s.open(Some("bytes=8")).expect("reopen");
        write_checked(&mut s, &[rec(3)]).expect("write");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "{\"i\":1}\n{\"i\":3}\n"
        );
    }

    #[test]
    fn without_metadata_deletes_and_key_moves_are_refused_not_written_as_rows() {
        use crate::conventions::OLD_KEY_HEADER;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("o.jsonl");
        let cfg = |m: Option<bool>| JsonlSinkConfig {
            path: path.clone(),
            include_metadata: m,
            fsync: false,
        };
        let mut gone = rec(2);
        gone.op = sluice_codec::Operation::Delete;
        let mut moved = rec(3);
        moved.op = sluice_codec::Operation::Update;
        moved
            .headers
            .push((OLD_KEY_HEADER.into(), br#"{"i":9}"#.to_vec().into()));
        let batch = [rec(1), gone, moved];
        let mut s = JsonlSink::new(cfg(None));
        s.open(None).expect("open");
        let c = write_checked(&mut s, &batch).expect("write");
        assert_eq!(c.written, 1);
        let refused: Vec<usize> = c.refused.iter().map(|r| r.index).collect();
        assert_eq!(refused, vec![1, 2]);
        assert!(
            c.refused[0].reason.contains("include_metadata"),
            "{}",
            c.refused[0].reason
        );
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{\"i\":1}\n");
        // With metadata every record is written, its operation with it.
        let mut s = JsonlSink::new(cfg(Some(true)));
        s.open(None).expect("open");
        let c = write_checked(&mut s, &batch).expect("write");
        assert_eq!((c.written, c.refused.len()), (3, 0));
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 4);
        assert!(text.contains("\"delete\""), "{text}");
    }
}
