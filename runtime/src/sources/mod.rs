//! Sources: where records come from. One trait, one folder per connector,
//! registered by the plain `match` in [`build`].

pub mod csv;
pub mod fixed_width;
pub mod jsonl;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;

/// Built without the `mysql` feature: the connector's settings only.
#[cfg(not(feature = "mysql"))]
pub mod mysql {
    #[path = "config.rs"]
    mod config;
    pub use config::{MysqlSourceConfig, ZeroDates};
}

/// Built without the `kafka` feature: the connector's settings only, so
/// that a pipeline naming it parses and then gets a clear error.
#[cfg(not(feature = "kafka"))]
pub mod kafka {
    #[path = "config.rs"]
    mod config;
    pub use config::{KafkaSourceConfig, KeyFormat, StartAt, ValueFormat};
}

/// Built without the `postgres` feature: the connector's settings only.
#[cfg(not(feature = "postgres"))]
pub mod postgres {
    #[path = "config.rs"]
    mod config;
    pub use config::{PostgresSourceConfig, SchemaChanges};
}

pub use crate::connector::source::WasmSource;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use serde::Deserialize;
use sluice_codec::{BatchWriter, Record};

/// The error for a connector this `sluice` was built without.
#[cfg(not(all(feature = "postgres", feature = "kafka", feature = "mysql")))]
fn without_feature(feature: &str, what: &str) -> SourceError {
    SourceError::Config {
        path: PathBuf::from(feature),
        message: format!(
            "this sluice was built without {what} support (cargo feature `{feature}`): build it with `cargo build --release --features {feature}` (on by default)"
        ),
    }
}

/// `[source]` of a pipeline file; `type` picks the connector.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SourceConfig {
    /// A CSV file (`csv::CsvConfig`).
    Csv(csv::CsvConfig),
    /// A fixed-width file (`fixed_width::FixedWidthConfig`).
    #[serde(rename = "fixed_width")]
    FixedWidth(fixed_width::FixedWidthConfig),
    /// A JSON-lines file (`jsonl::JsonlSourceConfig`).
    Jsonl(jsonl::JsonlSourceConfig),
    /// A SQLite table or query (`sqlite::SqliteSourceConfig`).
    Sqlite(sqlite::SqliteSourceConfig),
    /// PostgreSQL tables: snapshot, then change data capture
    /// (`postgres::PostgresSourceConfig`).
    Postgres(postgres::PostgresSourceConfig),
    /// MySQL or MariaDB tables: snapshot, then binlog change data capture
    /// (`mysql::MysqlSourceConfig`).
    Mysql(mysql::MysqlSourceConfig),
    /// Kafka topics, as a member of a consumer group
    /// (`kafka::KafkaSourceConfig`).
    Kafka(kafka::KafkaSourceConfig),
    /// A source connector plugin (`crate::connector::ConnectorConfig`).
    Wasm(Box<crate::connector::ConnectorConfig>),
}

impl SourceConfig {
    /// Resolves relative paths against the pipeline file's directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        match self {
            SourceConfig::Csv(c) => c.path = crate::config::resolve(base, &c.path),
            SourceConfig::FixedWidth(c) => {
                c.path = crate::config::resolve(base, &c.path);
                if let Some(l) = &mut c.layout {
                    *l = crate::config::resolve(base, l);
                }
            }
            SourceConfig::Jsonl(c) => c.path = crate::config::resolve(base, &c.path),
            SourceConfig::Sqlite(c) => c.path = crate::config::resolve(base, &c.path),
            SourceConfig::Wasm(c) => c.resolve_paths(base),
            SourceConfig::Mysql(c) => {
                if let Some(ca) = &mut c.tls_ca {
                    *ca = crate::config::resolve(base, ca);
                }
            }
            SourceConfig::Postgres(_) | SourceConfig::Kafka(_) => {}
        }
    }

    /// Fills defaults that depend on the pipeline (names of replication
    /// slots and publications).
    pub fn apply_defaults(&mut self, pipeline: &str) {
        match self {
            SourceConfig::Postgres(c) => c.apply_defaults(pipeline),
            SourceConfig::Mysql(c) => c.apply_defaults(pipeline),
            SourceConfig::Kafka(c) => c.apply_defaults(pipeline),
            _ => {}
        }
    }

    /// Makes a source that follows its input end once caught up
    /// (`sluice run --until-caught-up`).
    pub fn set_until_caught_up(&mut self) {
        match self {
            SourceConfig::Postgres(c) => c.until_caught_up = true,
            SourceConfig::Mysql(c) => c.until_caught_up = true,
            SourceConfig::Kafka(c) => c.until_caught_up = true,
            SourceConfig::Jsonl(c) => c.follow = false,
            SourceConfig::Csv(_)
            | SourceConfig::FixedWidth(_)
            | SourceConfig::Sqlite(_)
            | SourceConfig::Wasm(_) => {}
        }
    }

    /// True for sources whose records are changes (inserts, updates,
    /// deletes, key moves) rather than rows: PostgreSQL change data capture.
    pub fn is_change_stream(&self) -> bool {
        matches!(self, SourceConfig::Postgres(_) | SourceConfig::Mysql(_))
    }

    /// True when the source keeps its position outside Sluice (a Kafka
    /// consumer group's committed offsets): the local checkpoint does not
    /// say where it resumes, and `--reset` does not move it.
    pub fn position_is_external(&self) -> bool {
        matches!(self, SourceConfig::Kafka(_))
    }

    /// The connector type name.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Csv(_) => "csv",
            SourceConfig::FixedWidth(_) => "fixed_width",
            SourceConfig::Jsonl(_) => "jsonl",
            SourceConfig::Sqlite(_) => "sqlite",
            SourceConfig::Postgres(_) => "postgres",
            SourceConfig::Mysql(_) => "mysql",
            SourceConfig::Kafka(_) => "kafka",
            SourceConfig::Wasm(_) => "wasm",
        }
    }
}

/// Opens the source a config describes.
pub fn build(config: &SourceConfig) -> Result<Box<dyn Source>, SourceError> {
    Ok(match config {
        SourceConfig::Csv(c) => Box::new(csv::CsvSource::new(c.clone())?),
        SourceConfig::FixedWidth(c) => Box::new(fixed_width::FixedWidthSource::new(c.clone())?),
        SourceConfig::Jsonl(c) => Box::new(jsonl::JsonlSource::new(c.clone())?),
        SourceConfig::Sqlite(c) => Box::new(sqlite::SqliteSource::new(c.clone())?),
        #[cfg(feature = "postgres")]
        SourceConfig::Postgres(c) => Box::new(postgres::PostgresSource::new(c.clone())?),
        #[cfg(not(feature = "postgres"))]
        SourceConfig::Postgres(_) => return Err(without_feature("postgres", "PostgreSQL")),
        #[cfg(feature = "mysql")]
        SourceConfig::Mysql(c) => Box::new(mysql::MysqlSource::new(c.clone())?),
        #[cfg(not(feature = "mysql"))]
        SourceConfig::Mysql(_) => return Err(without_feature("mysql", "MySQL")),
        #[cfg(feature = "kafka")]
        SourceConfig::Kafka(c) => Box::new(kafka::KafkaSource::new(c.clone())?),
        #[cfg(not(feature = "kafka"))]
        SourceConfig::Kafka(_) => return Err(without_feature("kafka", "Kafka")),
        SourceConfig::Wasm(c) => Box::new(WasmSource::new(c.as_ref().clone())?),
    })
}

/// The default `max_record_bytes` of file sources: 16 MiB.
pub(crate) fn default_max_record_bytes() -> u64 {
    16 << 20
}

/// How much of an oversized record a dead letter keeps.
pub(crate) const OVERSIZED_RAW_BYTES: usize = 64 << 10;

/// Reads up to and including the next `\n` (or to the end of the input):
/// appends to `buf` while it holds fewer than `keep` bytes and counts every
/// byte of the line in `len`, so a line of any length costs at most `keep`
/// bytes of memory. True when the line ended with `\n`.
pub(crate) fn read_line_capped(
    r: &mut impl std::io::BufRead,
    buf: &mut Vec<u8>,
    keep: usize,
    len: &mut u64,
) -> std::io::Result<bool> {
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Ok(false);
        }
        let (n, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        let room = keep.saturating_sub(buf.len());
        buf.extend_from_slice(&avail[..n.min(room)]);
        *len += n as u64;
        r.consume(n);
        if done {
            return Ok(true);
        }
    }
}

/// A source failure that stops the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file could not be opened or read.
    #[error("source `{path}`: {what}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration cannot work with this input.
    #[error("source `{path}`: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The checkpoint does not fit the input any more.
    #[error(
        "source `{path}`: {message}; the input changed since the last run: run again with `--reset` to start from the beginning"
    )]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        message: String,
    },
    /// A database server (PostgreSQL) failed or refused.
    #[error("source `{at}`: {message}")]
    Server {
        /// Which server and database (`postgres user@host:port/db`).
        at: String,
        /// What went wrong and what to do.
        message: String,
    },
    /// The database failed.
    #[error("source `{path}`: {message}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// SQLite's message, with the statement.
        message: String,
    },
    /// A source connector plugin failed (the message names it and its version).
    #[error("{0}")]
    Connector(String),
    /// The input contradicts itself (a trailer's record count that is not
    /// the number of records read).
    #[error("source `{path}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What does not agree, and where.
        message: String,
    },
}

/// How far the target is behind a source that keeps producing (change data
/// capture).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Lag {
    /// Source data not yet committed to the target, in the source's units
    /// (bytes of WAL for PostgreSQL).
    pub bytes: u64,
    /// Age of the oldest source change not yet committed to the target, in
    /// seconds (0 when caught up).
    pub seconds: f64,
    /// Records not yet committed to the target, for sources that count
    /// records rather than bytes (Kafka: messages behind the committed
    /// offsets of the assigned partitions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// Source log the server keeps for this pipeline (PostgreSQL: WAL the
    /// replication slot retains), whether or not a run is going.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retained_bytes: Option<u64>,
    /// Something an operator should act on (a slot retaining more WAL than
    /// the configured threshold).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// What the pipeline and a running source tell each other besides
/// batches: the position committed downstream (so a source can confirm it
/// upstream), and the source's lag and connection state (for status and
/// the summary).
#[derive(Debug, Default)]
pub struct SourceFeedback {
    committed: Arc<CommitWatch>,
    lag: Mutex<Option<Lag>>,
    state: Mutex<Option<String>>,
    declared: Arc<crate::declared_types::DeclaredTypes>,
}

/// The resume token of the last batch the sink committed, with a way to
/// wait for a given one (a Kafka rebalance waits for its batches in flight).
#[derive(Debug, Default)]
pub struct CommitWatch {
    token: Mutex<Option<String>>,
    changed: Condvar,
}

impl CommitWatch {
    /// The token of the last committed batch, if any this run.
    pub fn get(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until the committed token is `token`; false after `timeout`.
    pub fn wait_for(&self, token: &str, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut t = self.token.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if t.as_deref() == Some(token) {
                return true;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            t = self
                .changed
                .wait_timeout(t, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl SourceFeedback {
    /// Called by the pipeline after a batch's checkpoint is saved.
    pub fn set_committed(&self, resume: &str) {
        *self
            .committed
            .token
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(resume.to_string());
        self.committed.changed.notify_all();
    }

    /// The resume token of the last committed batch, if any this run.
    pub fn committed(&self) -> Option<String> {
        self.committed.get()
    }

    /// A handle on the committed token that outlives a borrow of this
    /// feedback (for callbacks of client libraries).
    pub fn commit_watch(&self) -> Arc<CommitWatch> {
        self.committed.clone()
    }

    /// Reports the lag (sources that know it).
    pub fn set_lag(&self, lag: Lag) {
        metrics::gauge!("source_lag_bytes").set(lag.bytes as f64);
        metrics::gauge!("source_lag_seconds").set(lag.seconds);
        if let Some(r) = lag.records {
            metrics::gauge!("source_lag_records").set(r as f64);
        }
        if let Some(r) = lag.retained_bytes {
            metrics::gauge!("source_retained_bytes").set(r as f64);
        }
        *self.lag.lock().unwrap_or_else(|p| p.into_inner()) = Some(lag);
    }

    /// The last reported lag.
    pub fn lag(&self) -> Option<Lag> {
        self.lag.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reports what the source is doing (`snapshot public.orders`,
    /// `streaming`, `reconnecting: ...`).
    pub fn set_state(&self, state: impl Into<String>) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(state.into());
    }

    /// The column types the source declares, by stream (PostgreSQL's
    /// catalog types): sinks that create tables use them.
    pub fn declared_types(&self) -> Arc<crate::declared_types::DeclaredTypes> {
        self.declared.clone()
    }

    /// The last reported state.
    pub fn state(&self) -> Option<String> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// An input record that could not be read (a CSV row with the wrong number
/// of fields, a line that is not JSON). It goes to the dead-letter sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Where it is (`line 12`).
    pub position: String,
    /// The stream it belongs to.
    pub stream: String,
    /// The raw input, as text.
    pub raw: String,
    /// What is wrong.
    pub reason: String,
    /// The record as read, as JSON, for an input that was read but held
    /// back (a schema change under `on_schema_change = "dead_letter"`):
    /// then the dead letter carries it and `sluice replay` can write it.
    pub record: Option<String>,
}

/// A batch as a source hands it over.
#[derive(Debug, Default)]
pub struct SourceBatch {
    /// The records, encoded.
    pub data: Vec<u8>,
    /// Spans of the records in `data`.
    pub spans: Vec<Range<u32>>,
    /// Inputs that could not be read.
    pub malformed: Vec<Malformed>,
    /// Where to resume after this batch once it is committed.
    pub resume: String,
}

/// The pipeline is stopping: the source should return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

/// What a source uses to hand over records: batching by count and bytes,
/// back-pressure, stop requests, progress.
pub struct SourceContext<'a> {
    writer: BatchWriter,
    spans: Vec<Range<u32>>,
    malformed: Vec<Malformed>,
    batch_size: usize,
    batch_bytes: usize,
    send: &'a mut dyn FnMut(SourceBatch) -> Result<(), Stopped>,
    stop: &'a AtomicBool,
    paused: &'a AtomicBool,
    progress: &'a AtomicU64,
    feedback: &'a SourceFeedback,
    /// The resume token of the last batch handed over.
    last_sent: Option<String>,
}

impl<'a> SourceContext<'a> {
    /// A context that calls `send` with each full batch.
    pub fn new(
        batch_size: usize,
        batch_bytes: usize,
        send: &'a mut dyn FnMut(SourceBatch) -> Result<(), Stopped>,
        stop: &'a AtomicBool,
        paused: &'a AtomicBool,
        progress: &'a AtomicU64,
        feedback: &'a SourceFeedback,
    ) -> Self {
        SourceContext {
            writer: BatchWriter::with_capacity(batch_bytes.min(1 << 16)),
            spans: Vec::with_capacity(batch_size),
            malformed: Vec::new(),
            batch_size,
            batch_bytes,
            send,
            stop,
            paused,
            progress,
            feedback,
            last_sent: None,
        }
    }

    /// The channel back from the pipeline: committed positions, and where
    /// to report lag and state.
    pub fn feedback(&self) -> &SourceFeedback {
        self.feedback
    }

    /// Records per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// True when records are waiting to be flushed.
    pub fn has_pending(&self) -> bool {
        self.items() > 0
    }

    /// True while the pipeline is paused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    fn items(&self) -> usize {
        self.spans.len() + self.malformed.len()
    }

    /// Adds a record; returns true when the batch is full and the source
    /// should call [`Self::flush`] with the position after this record.
    pub fn push(&mut self, record: &Record<'_>) -> bool {
        let at = self.writer.push(record);
        let end = self.writer.byte_len();
        self.spans.push(at as u32..end as u32);
        self.items() >= self.batch_size || end >= self.batch_bytes
    }

    /// Adds a record already in the batch encoding (validated by the
    /// caller); same return as [`Self::push`].
    pub fn push_encoded(&mut self, record: &[u8]) -> bool {
        let at = self.writer.push_encoded(record);
        let end = self.writer.byte_len();
        self.spans.push(at as u32..end as u32);
        self.items() >= self.batch_size || end >= self.batch_bytes
    }

    /// Adds a record held back by `on_schema_change = "dead_letter"`: it
    /// goes to the dead-letter sink with the code `schema_change`, `reason`
    /// and the record itself; same return as [`Self::push`].
    pub fn push_schema_change(&mut self, record: &Record<'_>, reason: String) -> bool {
        self.push_malformed(Malformed {
            position: record.position.to_string(),
            stream: record.stream.to_string(),
            raw: String::new(),
            reason,
            record: Some(crate::value_json::record_json_text(record)),
        })
    }

    /// Adds an input that could not be read; same return as [`Self::push`].
    pub fn push_malformed(&mut self, m: Malformed) -> bool {
        self.malformed.push(m);
        self.items() >= self.batch_size || self.writer.byte_len() >= self.batch_bytes
    }

    /// Hands over the batch so far (if any), to be resumed at `resume`
    /// once committed. Blocks while the pipeline is full. `Err(Stopped)`:
    /// the pipeline is stopping and the source should return now.
    pub fn flush(&mut self, resume: &str) -> Result<(), Stopped> {
        if self.items() > 0 {
            let writer = std::mem::replace(
                &mut self.writer,
                BatchWriter::with_capacity(self.batch_bytes.min(1 << 16)),
            );
            let batch = SourceBatch {
                data: writer.finish(),
                spans: std::mem::replace(&mut self.spans, Vec::with_capacity(self.batch_size)),
                malformed: std::mem::take(&mut self.malformed),
                resume: resume.to_string(),
            };
            (self.send)(batch)?;
            self.last_sent = Some(resume.to_string());
        }
        // Paused: hold the next batch back (what is in flight drains).
        while self.paused.load(Ordering::Relaxed) && !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if self.stop.load(Ordering::Relaxed) {
            return Err(Stopped);
        }
        Ok(())
    }

    /// Waits up to `timeout` for the pipeline to commit the last batch
    /// handed over (a source that confirms positions upstream does so once
    /// more before it returns); returns the token committed by then. Once
    /// the pipeline is stopping (a stop request, a failed sink), waits at
    /// most 5 s more: what is in flight drains by then, or never will.
    pub fn wait_for_last_commit(&self, timeout: std::time::Duration) -> Option<String> {
        use std::time::{Duration, Instant};
        if let Some(t) = &self.last_sent {
            let start = Instant::now();
            let mut stopping: Option<Instant> = None;
            while !self
                .feedback
                .committed
                .wait_for(t, Duration::from_millis(100))
            {
                if self.stop.load(Ordering::Relaxed)
                    && stopping.get_or_insert_with(Instant::now).elapsed() >= Duration::from_secs(5)
                {
                    break;
                }
                if start.elapsed() >= timeout {
                    break;
                }
            }
        }
        self.feedback.committed()
    }

    /// The stop flag itself, for waits that outlive a borrow of the context
    /// (reconnect loops).
    pub fn stop_flag(&self) -> &'a AtomicBool {
        self.stop
    }

    /// True once a stop was requested.
    pub fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Reports progress in the units of [`Source::size_hint`].
    pub fn set_progress(&self, units: u64) {
        self.progress.store(units, Ordering::Relaxed);
    }
}

/// A source of records.
///
/// The pipeline calls [`Source::size_hint`] once, then [`Source::run`] once
/// on a thread of its own. `run` reads from the position `resume` (the
/// token of the last committed batch, `None` for the beginning), hands
/// records to the context and calls [`SourceContext::flush`] at batch
/// boundaries with the token that resumes after the batch. It returns at
/// the end of the input or when `flush` says the pipeline is stopping.
pub trait Source: Send {
    /// A short description for logs (`csv /data/in.csv`).
    fn describe(&self) -> String;

    /// The total amount of input in progress units (bytes or rows), if known.
    fn size_hint(&mut self) -> Option<u64>;

    /// Checks that the input can be read (for `sluice check`), without
    /// reading records.
    fn check(&mut self) -> Result<(), SourceError>;

    /// Reads records until the end of the input or a stop.
    fn run(&mut self, resume: Option<&str>, ctx: &mut SourceContext<'_>)
    -> Result<(), SourceError>;

    /// The status of a connector plugin, for `/status` (`None`: a built-in
    /// source).
    fn connector_status(
        &self,
    ) -> Option<std::sync::Arc<crate::connector::status::ConnectorStatus>> {
        None
    }
}

/// Parses a `key=value;key=value` resume token into numbers.
pub(crate) fn parse_token(token: &str, keys: &[&str]) -> Option<Vec<u64>> {
    let mut out = Vec::with_capacity(keys.len());
    let parts: Vec<(&str, &str)> = token.split(';').filter_map(|p| p.split_once('=')).collect();
    for k in keys {
        let v = parts.iter().find(|(n, _)| n == k)?.1.parse().ok()?;
        out.push(v);
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Runs a source to the end and collects what it produced.

    use super::*;

    /// Everything a source produced.
    pub struct Collected {
        pub records: Vec<Record<'static>>,
        pub malformed: Vec<Malformed>,
        pub resumes: Vec<String>,
    }

    pub fn collect(
        source: &mut dyn Source,
        resume: Option<&str>,
        batch_size: usize,
    ) -> Result<Collected, SourceError> {
        let stop = AtomicBool::new(false);
        let paused = AtomicBool::new(false);
        let progress = AtomicU64::new(0);
        let feedback = SourceFeedback::default();
        let mut batches = Vec::new();
        let mut send = |b: SourceBatch| {
            batches.push(b);
            Ok(())
        };
        let mut ctx = SourceContext::new(
            batch_size,
            1 << 20,
            &mut send,
            &stop,
            &paused,
            &progress,
            &feedback,
        );
        source.run(resume, &mut ctx)?;
        let mut c = Collected {
            records: vec![],
            malformed: vec![],
            resumes: vec![],
        };
        for b in batches {
            for s in &b.spans {
                let rec =
                    Record::decode(&b.data[s.start as usize..s.end as usize]).expect("decodes");
                c.records.push(rec.into_owned());
            }
            c.malformed.extend(b.malformed);
            c.resumes.push(b.resume);
        }
        Ok(c)
    }
}
