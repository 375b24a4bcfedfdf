//! Sinks: where records go (and where dead letters go). One trait, one
//! folder per connector, registered by the plain `match` in [`build`].

pub mod jsonl;
#[cfg(feature = "kafka")]
pub mod kafka;
mod lines;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;

/// Built without the `kafka` feature: the connector's settings only, so
/// that a pipeline naming it parses and then gets a clear error.
#[cfg(not(feature = "kafka"))]
pub mod kafka {
    #[path = "config.rs"]
    mod config;
    pub use config::KafkaSinkConfig;
}

/// Built without the `postgres` feature: the connector's settings only.
#[cfg(not(feature = "postgres"))]
pub mod postgres {
    #[path = "config.rs"]
    mod config;
    pub use config::PostgresSinkConfig;
}
pub mod stdout;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sluice_codec::Record;

/// `[sink]` or `[dead_letter]` of a pipeline file; `type` picks the connector.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkConfig {
    /// A JSON-lines file.
    Jsonl(jsonl::JsonlSinkConfig),
    /// A SQLite database (the embedded default).
    Sqlite(sqlite::SqliteSinkConfig),
    /// A PostgreSQL database.
    Postgres(postgres::PostgresSinkConfig),
    /// JSON lines on standard output.
    Stdout(stdout::StdoutSinkConfig),
    /// A Kafka topic.
    Kafka(kafka::KafkaSinkConfig),
    /// A sink connector plugin (`crate::connector::ConnectorConfig`).
    Wasm(Box<crate::connector::ConnectorConfig>),
}

impl SinkConfig {
    /// Resolves relative paths against the pipeline file's directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        match self {
            SinkConfig::Jsonl(c) => c.path = crate::config::resolve(base, &c.path),
            SinkConfig::Sqlite(c) => c.path = crate::config::resolve(base, &c.path),
            SinkConfig::Wasm(c) => c.resolve_paths(base),
            SinkConfig::Stdout(_) | SinkConfig::Postgres(_) | SinkConfig::Kafka(_) => {}
        }
    }
}

impl SinkConfig {
    /// As a dead-letter sink: a SQL table of dead letters takes plain
    /// inserts unless told otherwise (a dead letter is an event with no
    /// key; the upsert default of a target table would refuse it).
    pub fn default_to_dead_letters(&mut self) {
        match self {
            SinkConfig::Sqlite(c) => {
                c.mode.get_or_insert(WriteMode::Insert);
            }
            SinkConfig::Postgres(c) => {
                c.mode.get_or_insert(WriteMode::Insert);
            }
            SinkConfig::Jsonl(_)
            | SinkConfig::Stdout(_)
            | SinkConfig::Kafka(_)
            | SinkConfig::Wasm(_) => {}
        }
    }

    /// For a change-stream source: JSON-lines sinks write each record's
    /// operation and key unless told otherwise (`include_metadata`).
    pub fn default_to_metadata(&mut self) {
        match self {
            SinkConfig::Jsonl(c) => {
                c.include_metadata.get_or_insert(true);
            }
            SinkConfig::Stdout(c) => {
                c.include_metadata.get_or_insert(true);
            }
            SinkConfig::Sqlite(_)
            | SinkConfig::Postgres(_)
            | SinkConfig::Kafka(_)
            | SinkConfig::Wasm(_) => {}
        }
    }
}

/// How a SQL sink (SQLite, PostgreSQL) writes records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    /// Plain inserts (a repeat after a crash is a duplicate row).
    Insert,
    /// Insert or update by `key`; `delete` records delete by key. Repeats
    /// are absorbed, so the table ends up as if each record came once.
    Upsert,
}

/// The error for a connector this `sluice` was built without.
#[cfg(not(all(feature = "postgres", feature = "kafka")))]
fn without_feature(feature: &str, what: &str) -> SinkError {
    SinkError::Config {
        path: PathBuf::from(feature),
        message: format!(
            "this sluice was built without {what} support (cargo feature `{feature}`): build it with `cargo build --release --features {feature}` (on by default)"
        ),
    }
}

/// Opens the sink a config describes.
pub fn build(config: &SinkConfig) -> Result<Box<dyn Sink>, SinkError> {
    Ok(match config {
        SinkConfig::Jsonl(c) => Box::new(jsonl::JsonlSink::new(c.clone())),
        SinkConfig::Sqlite(c) => Box::new(sqlite::SqliteSink::new(c.clone())?),
        SinkConfig::Stdout(c) => Box::new(stdout::StdoutSink::new(c.clone())),
        #[cfg(feature = "postgres")]
        SinkConfig::Postgres(c) => Box::new(postgres::PostgresSink::new(c.clone())?),
        #[cfg(not(feature = "postgres"))]
        SinkConfig::Postgres(_) => return Err(without_feature("postgres", "PostgreSQL")),
        #[cfg(feature = "kafka")]
        SinkConfig::Kafka(c) => Box::new(kafka::KafkaSink::new(c.clone())?),
        #[cfg(not(feature = "kafka"))]
        SinkConfig::Kafka(_) => return Err(without_feature("kafka", "Kafka")),
        SinkConfig::Wasm(c) => Box::new(crate::connector::sink::WasmSink::new(c.as_ref().clone())?),
    })
}

/// A sink failure that stops the pipeline (nothing of the batch counts as
/// written; it is read again after a restart).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A file could not be written.
    #[error("sink `{path}`: {what}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration cannot work.
    #[error("sink `{path}`: {message}")]
    Config {
        /// The target.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The database failed as a whole.
    #[error("sink `{path}`: {message}")]
    Database {
        /// The database.
        path: PathBuf,
        /// The database's message.
        message: String,
    },
    /// A sink connector plugin failed (the message names it and its version).
    #[error("{0}")]
    Connector(String),
}

/// Tells a sink that the pipeline is stopping (so that it stops retrying).
pub type StopCheck = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

/// A record a sink refused: it goes to the dead-letter sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The record's index in the batch.
    pub index: usize,
    /// Why, for a person.
    pub reason: String,
    /// The code a connector plugin gave (`None`: `sink_refused`).
    pub code: Option<String>,
    /// The connector version that refused it (`None`: a built-in sink).
    pub by: Option<String>,
}

impl Refused {
    /// A record a built-in sink refused.
    pub fn new(index: usize, reason: String) -> Self {
        Refused {
            index,
            reason,
            code: None,
            by: None,
        }
    }

    /// A record whose fields the target table lacks, held back by
    /// `on_schema_change = "dead_letter"` (code `schema_change`).
    pub fn schema_change(index: usize, reason: String) -> Self {
        Refused {
            index,
            reason,
            code: Some(crate::schema_policy::SCHEMA_CHANGE_CODE.into()),
            by: None,
        }
    }
}

/// What a committed write did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SinkCommit {
    /// Records written.
    pub written: u64,
    /// Records the target refused: they go to the dead-letter sink.
    pub refused: Vec<Refused>,
    /// State to restore after a crash (kept in the checkpoint).
    pub state: Option<String>,
}

/// A destination for records.
///
/// The pipeline calls [`Sink::open`] once with the state saved by the last
/// committed write (`None` on a first run), then [`Sink::write`] once per
/// batch, in order, from one thread. When `write` returns `Ok`, the batch
/// is durable: the checkpoint moves past it next.
pub trait Sink: Send {
    /// A short description for logs (`sqlite out.db`).
    fn describe(&self) -> String;

    /// Prepares for writing, undoing anything written after the last commit
    /// when the sink can (JSONL truncates to the committed length).
    fn open(&mut self, state: Option<&str>) -> Result<(), SinkError>;

    /// Writes and commits one batch. Every record is either written or
    /// refused: `written` plus the number of refusals is the batch's length,
    /// and each refusal names a different record, in batch order, with a
    /// reason (`test_support::write_checked` checks this in sink tests).
    fn write(&mut self, records: &[Record<'_>]) -> Result<SinkCommit, SinkError>;

    /// Called once before [`Sink::open`] with the column types the source
    /// declares; sinks that create tables and columns use them (the default
    /// ignores them).
    fn use_declared_types(&mut self, _types: std::sync::Arc<crate::declared_types::DeclaredTypes>) {
    }

    /// Called once before [`Sink::open`]: a sink that retries (a connector
    /// plugin) asks this whether to give up because the pipeline stops.
    fn set_stop_check(&mut self, _stop: StopCheck) {}

    /// Called once before [`Sink::open`] on the pipeline's dead-letter
    /// sink: what it writes are dead letters (`DeadLetter::to_record`), which
    /// a sink may present in a form of its own (Kafka: the reason, code...
    /// also as `sluice-dlq-*` headers). The default writes them as records.
    fn serve_dead_letters(&mut self) {}

    /// The status of a connector plugin, for `/status` (`None`: a built-in
    /// sink).
    fn connector_status(
        &self,
    ) -> Option<std::sync::Arc<crate::connector::status::ConnectorStatus>> {
        None
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! What every sink promises about its answer to a write, checked in the
    //! sinks' unit tests (sources have theirs in `sources::test_support`).

    use super::*;

    /// `sink.write(records)`, with the answer checked by [`check_commit`].
    pub fn write_checked(
        sink: &mut dyn Sink,
        records: &[Record<'_>],
    ) -> Result<SinkCommit, SinkError> {
        let commit = sink.write(records)?;
        check_commit(&commit, records.len());
        Ok(commit)
    }

    /// Panics unless every record of a batch of `len` is either written or
    /// refused, each refusal naming a different record of the batch, in
    /// order, with a reason.
    pub fn check_commit(commit: &SinkCommit, len: usize) {
        let indexes: Vec<usize> = commit.refused.iter().map(|r| r.index).collect();
        assert!(
            indexes.windows(2).all(|w| w[0] < w[1]),
            "refusals out of order or repeated: {indexes:?}"
        );
        assert!(
            indexes.iter().all(|&i| i < len),
            "a refusal names no record of the batch of {len}: {indexes:?}"
        );
        assert_eq!(
            usize::try_from(commit.written).unwrap_or(usize::MAX) + indexes.len(),
            len,
            "written ({}) + refused ({}) is not the batch's length",
            commit.written,
            indexes.len()
        );
        assert!(
            commit.refused.iter().all(|r| !r.reason.trim().is_empty()),
            "a refusal without a reason: {:?}",
            commit.refused
        );
    }

    #[test]
    fn a_commit_that_loses_or_double_counts_a_record_is_caught() {
        let refused = |index| Refused {
            index,
            reason: "why".into(),
            code: None,
            by: None,
        };
        let ok = SinkCommit {
            written: 2,
            refused: vec![refused(1)],
            state: None,
        };
        check_commit(&ok, 3);
        for (written, indexes, len) in [
            (2, vec![1], 4),    // one record neither written nor refused
            (3, vec![1], 3),    // one counted twice
            (1, vec![1, 1], 3), // one refused twice
            (1, vec![2, 0], 3), // out of order
            (2, vec![3], 3),    // outside the batch
        ] {
            let bad = SinkCommit {
                written,
                refused: indexes.into_iter().map(refused).collect(),
                state: None,
            };
            let caught = std::panic::catch_unwind(|| check_commit(&bad, len));
            assert!(caught.is_err(), "{bad:?} of {len} passed");
        }
        let silent = SinkCommit {
            written: 0,
            refused: vec![Refused {
                reason: " ".into(),
                ..refused(0)
            }],
            state: None,
        };
        assert!(std::panic::catch_unwind(|| check_commit(&silent, 1)).is_err());
    }
}
