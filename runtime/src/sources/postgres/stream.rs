//! The change stream: a reader thread holds the replication connection
//! (`pg_walstream`, `pgoutput` protocol 1) and hands decoded changes over a
//! bounded channel; the source thread turns them into records, hands
//! batches to the pipeline, and confirms to the slot what the pipeline has
//! committed.
//!
//! A batch is handed over when full, or `linger_ms` after the last change
//! when no more arrive. Its resume position is the end of the last
//! transaction it holds whole; a transaction split across batches is read
//! again from its start after a crash (the keyed sink absorbs the repeat).
//!
//! When the connection drops (server restart, network), the reader
//! reconnects with backoff from the end of the last transaction it handed
//! over; the state shows `reconnecting` meanwhile.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use pg_walstream::{
    CancellationToken, ChangeEvent, EventType, LogicalReplicationStream, RelationColumn,
    ReplicationError, ReplicationSlotOptions, ReplicationStreamConfig, RetryConfig, StreamingMode,
};
use sluice_codec::{Operation, Record, Value};

use super::catalog::{self, Table};
use super::records::RowBuilder;
use super::{Position, PostgresSource, PostgresSourceConfig, SchemaChanges};
use crate::conventions::{OLD_KEY_HEADER, TRUNCATE_HEADER, UNCHANGED_HEADER};
use crate::pg::{self, Lsn, values};
use crate::schema_policy::OnSchemaChange;
use crate::sources::{Lag, SourceContext, SourceError};

/// The connection that created the slot, kept open while its exported
/// snapshot is imported.
pub struct SlotKeepAlive {
    _rt: tokio::runtime::Runtime,
    _stream: LogicalReplicationStream,
    snapshot: String,
}

impl SlotKeepAlive {
    /// The exported snapshot's name.
    pub fn snapshot_name(&self) -> &str {
        &self.snapshot
    }
}

/// A new slot: its consistent point and the connection holding its
/// snapshot.
pub struct Created {
    /// Where the stream starts.
    pub lsn: Lsn,
    /// Keep until the snapshot is imported.
    pub keep_alive: SlotKeepAlive,
}

fn stream_config(config: &PostgresSourceConfig) -> ReplicationStreamConfig {
    ReplicationStreamConfig::builder(config.slot.clone(), config.publication.clone())
        .with_protocol_version(1)
        .with_streaming_mode(StreamingMode::Off)
        .with_messages(true)
        .with_feedback_interval(Duration::from_millis(500))
        .with_connection_timeout(Duration::from_secs(10))
        .with_retry_config(RetryConfig {
            max_attempts: 1,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(100),
            multiplier: 1.0,
            max_duration: Duration::from_secs(10),
            jitter: false,
        })
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the replication runtime: {e}"))
}

/// Creates the slot with an exported snapshot.
pub fn create_slot(config: &PostgresSourceConfig) -> Result<Created, String> {
    let rt = runtime()?;
    let url = pg::replication_url(&config.url);
    let cfg = stream_config(config).with_slot_options(ReplicationSlotOptions {
        snapshot: Some("export".into()),
        ..Default::default()
    });
    let stream = rt.block_on(async {
        let mut s = LogicalReplicationStream::new(&url, cfg).await?;
        s.ensure_replication_slot().await?;
        Ok::<_, ReplicationError>(s)
    });
    let stream = stream.map_err(|e| {
        format!(
            "cannot create replication slot `{}`: {e}{}",
            config.slot,
            slot_hint(&e.to_string())
        )
    })?;
    let snapshot = stream
        .exported_snapshot_name()
        .map(str::to_string)
        .ok_or_else(|| format!("replication slot `{}` exported no snapshot", config.slot))?;
    let mut client = pg::connect(&config.url, "sluice")?;
    let lsn = catalog::slot_state(&mut client, &config.slot)?
        .map(|(_, lsn)| lsn)
        .ok_or_else(|| format!("replication slot `{}` vanished after creation", config.slot))?
        .parse()?;
    Ok(Created {
        lsn,
        keep_alive: SlotKeepAlive {
            _rt: rt,
            _stream: stream,
            snapshot,
        },
    })
}

fn slot_hint(e: &str) -> &'static str {
    if e.contains("max_replication_slots") || e.contains("all replication slots are in use") {
        ": raise `max_replication_slots` on the server or drop unused slots"
    } else if e.contains("max_wal_senders") || e.contains("too many") {
        ": raise `max_wal_senders` on the server"
    } else if e.contains("pg_hba") || e.contains("replication connection") {
        ": allow replication connections for this user in pg_hba.conf (`host replication USER ADDRESS scram-sha-256`)"
    } else {
        ""
    }
}

/// What the reader thread hands over.
enum Msg {
    Event(Box<ChangeEvent>),
    Connected,
    Disconnected(String),
    Fatal(String),
}

/// What the reader and the source thread share to confirm positions.
///
/// The slot is told the end of the last transaction the sink committed.
/// When the source is wholly caught up (every change received is
/// committed, none is in flight), it is told everything received instead,
/// so that an idle slot advances and a server shutdown (which waits for
/// its walsenders to be confirmed) is not held up. The feedback object the
/// stream reads is replaced before each wait, so a "caught up" set on it
/// can never cover a change received after that decision.
#[derive(Default)]
struct Confirm {
    /// End of the last committed transaction.
    committed: AtomicU64,
    /// Events handed over by the reader.
    forwarded: AtomicU64,
    /// The reader waited a whole tick without a change: it has everything
    /// the server had for this slot.
    idle: std::sync::atomic::AtomicBool,
    /// The feedback the stream reads during its current wait.
    current: std::sync::Mutex<Option<Arc<pg_walstream::SharedLsnFeedback>>>,
}

impl Confirm {
    /// A fresh feedback for the next wait, at the committed position.
    fn install(&self, stream: &mut LogicalReplicationStream) {
        let fb = pg_walstream::SharedLsnFeedback::new_shared();
        let done = self.committed.load(Ordering::Relaxed);
        if done > 0 {
            fb.update_flushed_lsn(done);
            fb.update_applied_lsn(done);
        }
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        *cur = Some(fb.clone());
        stream.shared_lsn_feedback = fb;
    }

    /// Adds what was committed since the wait began to the feedback the
    /// stream reads (positions only move forward).
    fn refresh(&self, stream: &LogicalReplicationStream) {
        let done = self.committed.load(Ordering::Relaxed);
        if done > 0 {
            stream.shared_lsn_feedback.update_flushed_lsn(done);
            stream.shared_lsn_feedback.update_applied_lsn(done);
        }
    }

    /// Everything received so far is committed: confirm it all, unless the
    /// reader handed over more than `received` events meanwhile.
    fn caught_up(&self, received: u64) {
        let cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if self.forwarded.load(Ordering::SeqCst) == received
            && let Some(fb) = cur.as_ref()
        {
            // Capped by the stream to what it has received.
            fb.update_flushed_lsn(u64::MAX);
            fb.update_applied_lsn(u64::MAX);
        }
    }
}

/// Moves the slot's confirmed position to `lsn` once the stream is closed
/// (`pg_replication_slot_advance`; the server releases the slot a moment
/// after the connection ends, so a busy slot is tried again briefly).
fn confirm_to_slot(url: &str, slot: &str, lsn: Lsn) {
    let mut client = match pg::connect(url, "sluice") {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(slot, lsn = %lsn, error = %e, "cannot confirm the final position to the slot; the next run confirms it");
            return;
        }
    };
    for _ in 0..50 {
        let confirmed = catalog::slot_state(&mut client, slot)
            .ok()
            .flatten()
            .and_then(|(_, at)| at.parse::<Lsn>().ok());
        if confirmed.is_some_and(|c| c >= lsn) {
            tracing::info!(slot, lsn = %lsn, "the slot has the final committed position");
            return;
        }
        match client.execute(
            "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
            &[&slot, &lsn.to_string()],
        ) {
            Ok(_) => {}
            Err(e) if e.to_string().contains("is active for PID") => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                tracing::warn!(slot, lsn = %lsn, error = %e, "cannot confirm the final position to the slot; the next run confirms it");
                return;
            }
        }
    }
    tracing::warn!(slot, lsn = %lsn, "the slot stayed busy; the final position is confirmed by the next run");
}

/// How long the reader waits for a change before it confirms what the
/// target committed meanwhile (the stream itself reports only with the
/// next change, or when the server asks: up to `wal_sender_timeout / 2`).
const IDLE_FEEDBACK: Duration = Duration::from_millis(500);

/// Reads changes from `start`, reconnecting after losses, until `cancel`.
fn reader(
    url: String,
    slot: String,
    config: ReplicationStreamConfig,
    start: Lsn,
    confirm: Arc<Confirm>,
    tx: SyncSender<Msg>,
    cancel: CancellationToken,
) {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = tx.send(Msg::Fatal(e));
            return;
        }
    };
    let mut from = start;
    let mut delay = Duration::from_millis(200);
    let mut ever_connected = false;
    while !cancel.is_cancelled() {
        let result: Result<(), ReplicationError> = rt.block_on(async {
            let mut stream = LogicalReplicationStream::new(&url, config.clone()).await?;
            stream.start(Some(from.0)).await?;
            if tx.send(Msg::Connected).is_err() {
                return Ok(());
            }
            ever_connected = true;
            delay = Duration::from_millis(200);
            loop {
                confirm.install(&mut stream);
                // Waiting for a change is cancelled at the socket wait
                // (nothing of a message is lost): on each idle tick the
                // slot hears what was committed meanwhile.
                let ev = loop {
                    match tokio::time::timeout(IDLE_FEEDBACK, stream.next_event(&cancel)).await {
                        Ok(ev) => {
                            confirm.idle.store(false, Ordering::SeqCst);
                            break ev?;
                        }
                        Err(_) => {
                            confirm.idle.store(true, Ordering::SeqCst);
                            confirm.refresh(&stream);
                            stream.maybe_send_feedback().await;
                        }
                    }
                };
                confirm.forwarded.fetch_add(1, Ordering::SeqCst);
                if let EventType::Commit { end_lsn, .. } = &ev.event_type {
                    from = Lsn(end_lsn.value());
                }
                if tx.send(Msg::Event(Box::new(ev))).is_err() {
                    return Ok(());
                }
            }
        });
        match result {
            Ok(()) => return,
            Err(e) if e.is_cancelled() => return,
            Err(e) => {
                let text = e.to_string();
                let permanent = text.contains("does not exist")
                    || text.contains("password")
                    || text.contains("authentication")
                    || text.contains("is active for PID")
                    || text.contains("permission denied");
                if let Some(busy) = catalog::slot_in_use(&slot, &text) {
                    let _ = tx.send(Msg::Fatal(busy));
                    return;
                }
                if permanent && !ever_connected {
                    let _ = tx.send(Msg::Fatal(format!("{text}{}", slot_hint(&text))));
                    return;
                }
                if permanent && text.contains("does not exist") {
                    let _ = tx.send(Msg::Fatal(text));
                    return;
                }
                if tx.send(Msg::Disconnected(text)).is_err() {
                    return;
                }
                let until = Instant::now() + delay;
                while Instant::now() < until && !cancel.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(50));
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Per table: what the catalog and the stream say of it.
struct TableState {
    stream: String,
    key_names: String,
    /// Columns as the last `Relation` message described them.
    relation: Option<Vec<RelationColumn>>,
    /// Type OID by column name.
    types: HashMap<String, u32>,
    /// Key column names.
    key: Vec<String>,
    /// Why the table's rows are held back (`on_schema_change =
    /// "dead_letter"` saw its columns change), for the rest of the run.
    held: Option<String>,
}

/// The source side of the stream.
pub struct Streamer<'a> {
    source: &'a PostgresSource,
    tables: HashMap<(String, String), TableState>,
    start: Lsn,
}

impl<'a> Streamer<'a> {
    /// A stream for `tables` from `start`.
    pub fn new(source: &'a PostgresSource, tables: &[Table], start: Lsn) -> Self {
        let tables = tables
            .iter()
            .map(|t| {
                (
                    (t.name.schema.clone(), t.name.name.clone()),
                    TableState {
                        stream: t.name.stream(),
                        key_names: t.key_names(),
                        relation: None,
                        types: t
                            .columns
                            .iter()
                            .map(|c| (c.name.clone(), c.type_oid))
                            .collect(),
                        key: t.key.iter().map(|&i| t.columns[i].name.clone()).collect(),
                        held: None,
                    },
                )
            })
            .collect();
        Streamer {
            source,
            tables,
            start,
        }
    }

    /// Streams until a stop, an unrecoverable error, or (with
    /// `until_caught_up`) the caught-up marker.
    pub fn run(mut self, ctx: &mut SourceContext<'_>) -> Result<(), SourceError> {
        let config = &self.source.config;
        let stop_flag = ctx.stop_flag();
        let give_up = || stop_flag.load(Ordering::Relaxed);
        let mut meta = Some(
            pg::connect_with_backoff(&config.url, "sluice-lag", &give_up)
                .map_err(|m| self.source.err(m))?,
        );
        // The caught-up marker: a logical message written now, after every
        // change the target must have; reading it back means caught up.
        let marker = if config.until_caught_up {
            let token = format!(
                "{}-{}",
                std::process::id(),
                chrono::Utc::now().timestamp_micros()
            );
            meta.as_mut()
                .map(|c| {
                    c.execute(
                        "SELECT pg_logical_emit_message(false, 'sluice-caught-up', $1::text)",
                        &[&token],
                    )
                })
                .transpose()
                .map_err(|e| self.source.err(pg::explain(&e, &config.url)))?;
            Some(token)
        } else {
            None
        };
        let confirm = Arc::new(Confirm::default());
        let cancel = CancellationToken::new();
        let (tx, rx) = sync_channel::<Msg>(8192);
        let reader_thread = {
            let url = pg::replication_url(&config.url);
            let cfg = stream_config(config).with_existing_slot_required(true);
            let (start, confirm, cancel) = (self.start, confirm.clone(), cancel.clone());
            let slot = config.slot.clone();
            std::thread::Builder::new()
                .name("sluice-pg-reader".into())
                .spawn(move || reader(url, slot, cfg, start, confirm, tx, cancel))
                .map_err(|e| {
                    self.source
                        .err(format!("cannot start the reader thread: {e}"))
                })?
        };
        let result = self.consume(ctx, &rx, &confirm, &mut meta, marker.as_deref());
        // Whatever way the stream ends, the slot learns what the target
        // committed: else it keeps (and the server retains WAL for) changes
        // that are already written.
        let committed = ctx
            .wait_for_last_commit(Duration::from_secs(30))
            .and_then(|t| match serde_json::from_str(&t) {
                Ok(Position::Stream { lsn }) => lsn.parse::<Lsn>().ok(),
                _ => None,
            });
        cancel.cancel();
        drop(rx);
        let _ = reader_thread.join();
        if let Some(lsn) = committed {
            confirm_to_slot(&self.source.config.url, &self.source.config.slot, lsn);
        }
        if marker.is_some() && result.is_ok() && !ctx.should_stop() {
            // Ended at the caught-up marker with everything committed:
            // nothing is left to decode.
            let mut meta = None;
            self.report_lag(ctx, &mut meta, Lsn(0), &VecDeque::new(), true);
        }
        result
    }

    fn consume(
        &mut self,
        ctx: &mut SourceContext<'_>,
        rx: &Receiver<Msg>,
        confirm: &Confirm,
        meta: &mut Option<postgres::Client>,
        marker: Option<&str>,
    ) -> Result<(), SourceError> {
        let config = &self.source.config;
        let linger = Duration::from_millis(config.linger_ms);
        // Transactions handed over but not yet committed: (end, commit time).
        let mut open: VecDeque<(Lsn, i64)> = VecDeque::new();
        let mut last_complete = self.start;
        let mut txn_time: Option<i64> = None;
        let mut last_lag = Instant::now() - Duration::from_secs(10);
        let mut acked = Lsn(0);
        let mut connected = false;
        let mut received = 0u64;
        let mut in_txn = false;
        ctx.feedback().set_state("connecting");
        loop {
            // What the pipeline committed goes back to the slot.
            if let Some(Ok(Position::Stream { lsn })) =
                ctx.feedback().committed().map(|t| serde_json::from_str(&t))
                && let Ok(lsn) = lsn.parse::<Lsn>()
                && lsn > acked
            {
                acked = lsn;
                confirm.committed.store(lsn.0, Ordering::Relaxed);
                while open.front().is_some_and(|(end, _)| *end <= lsn) {
                    open.pop_front();
                }
            }
            let drained = open.is_empty() && !in_txn && !ctx.has_pending() && connected;
            if drained {
                confirm.caught_up(received);
            }
            if last_lag.elapsed() >= Duration::from_secs(1) {
                last_lag = Instant::now();
                // Caught up: every change the slot had is received and
                // committed. WAL written since (by other databases of the
                // server too) is nothing this slot still has to decode.
                let caught_up = drained
                    && confirm.idle.load(Ordering::SeqCst)
                    && confirm.forwarded.load(Ordering::SeqCst) == received;
                self.report_lag(ctx, meta, acked.max(self.start), &open, caught_up);
            }
            let wait = if ctx.has_pending() {
                linger
            } else {
                Duration::from_millis(250)
            };
            let msg = match rx.recv_timeout(wait) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    if ctx.has_pending() || ctx.should_stop() || ctx.is_paused() {
                        let token = Position::Stream {
                            lsn: last_complete.to_string(),
                        }
                        .token();
                        if ctx.flush(&token).is_err() {
                            return Ok(());
                        }
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self
                        .source
                        .err("the replication reader stopped unexpectedly"));
                }
            };
            let ev = match msg {
                Msg::Event(ev) => {
                    received += 1;
                    *ev
                }
                Msg::Connected => {
                    connected = true;
                    in_txn = false;
                    tracing::info!(slot = %config.slot, from = %last_complete, "streaming changes");
                    ctx.feedback().set_state("streaming");
                    continue;
                }
                Msg::Disconnected(e) => {
                    connected = false;
                    tracing::warn!(error = %e, "replication connection lost; reconnecting");
                    ctx.feedback().set_state(format!("reconnecting: {e}"));
                    continue;
                }
                Msg::Fatal(e) if e.starts_with("replication slot") => {
                    return Err(self.source.err(e));
                }
                Msg::Fatal(e) => {
                    return Err(self.source.err(format!("replication: {e}")));
                }
            };
            let position = Lsn(ev.lsn.value()).to_string();
            let full = match ev.event_type {
                EventType::Begin {
                    commit_timestamp, ..
                } => {
                    in_txn = true;
                    txn_time = Some(commit_timestamp.timestamp_micros());
                    false
                }
                EventType::Commit {
                    end_lsn,
                    commit_timestamp,
                    ..
                } => {
                    in_txn = false;
                    last_complete = Lsn(end_lsn.value());
                    open.push_back((last_complete, commit_timestamp.timestamp_micros()));
                    metrics::gauge!("source_position").set(last_complete.0 as f64);
                    false
                }
                EventType::Relation {
                    namespace,
                    relation_name,
                    columns,
                    ..
                } => {
                    match self.relation(&namespace, &relation_name, columns) {
                        Ok(true) => self.declare_again(&namespace, &relation_name, ctx),
                        Ok(false) => {}
                        Err(e) => {
                            // Everything before the change is handed over
                            // first; the position stays before it.
                            let _ = ctx.flush(
                                &Position::Stream {
                                    lsn: last_complete.to_string(),
                                }
                                .token(),
                            );
                            return Err(e);
                        }
                    }
                    false
                }
                EventType::Insert {
                    schema,
                    table,
                    data,
                    ..
                } => {
                    let rec = self.change(
                        &schema,
                        &table,
                        Operation::Insert,
                        &position,
                        txn_time,
                        &data,
                        None,
                    );
                    self.hand(&schema, &table, rec, ctx)
                }
                EventType::Update {
                    schema,
                    table,
                    old_data,
                    new_data,
                    ..
                } => {
                    let rec = self.change(
                        &schema,
                        &table,
                        Operation::Update,
                        &position,
                        txn_time,
                        &new_data,
                        old_data.as_ref(),
                    );
                    self.hand(&schema, &table, rec, ctx)
                }
                EventType::Delete {
                    schema,
                    table,
                    old_data,
                    ..
                } => {
                    let rec = self.change(
                        &schema,
                        &table,
                        Operation::Delete,
                        &position,
                        txn_time,
                        &old_data,
                        None,
                    );
                    self.hand(&schema, &table, rec, ctx)
                }
                EventType::Truncate { tables, .. } => {
                    let mut full = false;
                    for t in tables.iter() {
                        let (schema, name) = t.split_once('.').unwrap_or(("public", t));
                        if let Some(st) = self.tables.get(&(schema.to_string(), name.to_string())) {
                            tracing::warn!(table = %t, "TRUNCATE at the source: emptying the target table");
                            let rec = Record {
                                op: Operation::Delete,
                                stream: st.stream.clone().into(),
                                position: position.clone().into(),
                                event_time: txn_time,
                                key: Value::Null,
                                // The key header too: a sink keyed by it
                                // (SQLite without `key`) knows to empty.
                                headers: vec![
                                    (TRUNCATE_HEADER.into(), b"1".to_vec().into()),
                                    (
                                        crate::conventions::KEY_HEADER.into(),
                                        st.key_names.clone().into_bytes().into(),
                                    ),
                                ],
                                fields: Vec::new(),
                            };
                            full |= ctx.push(&rec);
                        }
                    }
                    full
                }
                EventType::Message {
                    prefix, content, ..
                } => {
                    if marker.is_some_and(|m| {
                        &*prefix == "sluice-caught-up" && content.as_ref() == m.as_bytes()
                    }) {
                        tracing::info!(lsn = %last_complete, "caught up with the source");
                        let _ = ctx.flush(
                            &Position::Stream {
                                lsn: last_complete.to_string(),
                            }
                            .token(),
                        );
                        // Let the pipeline commit what is in flight and the
                        // slot hear of it before the run ends.
                        return Ok(());
                    }
                    false
                }
                _ => false,
            };
            if full {
                let token = Position::Stream {
                    lsn: last_complete.to_string(),
                }
                .token();
                if ctx.flush(&token).is_err() {
                    return Ok(());
                }
            }
        }
    }

    fn report_lag(
        &self,
        ctx: &SourceContext<'_>,
        meta: &mut Option<postgres::Client>,
        committed: Lsn,
        open: &VecDeque<(Lsn, i64)>,
        caught_up: bool,
    ) {
        let config = &self.source.config;
        if meta.as_ref().is_none_or(postgres::Client::is_closed) {
            *meta = pg::connect(&config.url, "sluice-lag").ok();
        }
        let Some(client) = meta.as_mut() else {
            return;
        };
        let Ok((current, retained)) = catalog::wal_position(client, &config.slot) else {
            *meta = None;
            return;
        };
        let now = chrono::Utc::now().timestamp_micros();
        let (bytes, seconds) = if caught_up {
            (0, 0.0)
        } else {
            // Age of the oldest transaction handed over and not yet
            // committed (WAL not yet received shows in `bytes` only).
            let age = open
                .front()
                .map_or(0.0, |(_, t)| (now - t).max(0) as f64 / 1e6);
            (current.0.saturating_sub(committed.0), age)
        };
        let limit = config.slot_warn_mb.saturating_mul(1 << 20);
        let warning = retained.filter(|r| *r > limit).map(|r| {
            format!(
                "replication slot `{}` keeps {} MiB of WAL on the server (more than `slot_warn_mb` = {}): the target is far behind, or the slot of a finished migration was not dropped (`sluice slot drop`)",
                config.slot,
                r >> 20,
                config.slot_warn_mb
            )
        });
        if let Some(w) = &warning {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| tracing::warn!("{w}"));
        }
        ctx.feedback().set_lag(Lag {
            bytes,
            seconds,
            records: None,
            retained_bytes: retained,
            warning,
        });
    }

    /// After columns were added at the source: declares the table's
    /// column types again (from the catalog), so that a sink adds the new
    /// columns with their types. Best effort: without it, a new column is
    /// typed from its first value.
    fn declare_again(&self, schema: &str, name: &str, ctx: &SourceContext<'_>) {
        let table = crate::pg::TableName {
            schema: schema.to_string(),
            name: name.to_string(),
        };
        let described = pg::connect(&self.source.config.url, "sluice")
            .and_then(|mut c| catalog::describe_table(&mut c, &table));
        match described {
            Ok(t) => ctx
                .feedback()
                .declared_types()
                .declare(&t.name.stream(), t.declared_columns()),
            Err(e) => {
                tracing::warn!(table = %table, error = %e, "cannot read the new column types; new columns are typed from their first values")
            }
        }
    }

    /// Checks a `Relation` message against what was known of the table;
    /// true when columns were added.
    fn relation(
        &mut self,
        schema: &str,
        name: &str,
        columns: Vec<RelationColumn>,
    ) -> Result<bool, SourceError> {
        let mode = self.source.config.schema_changes;
        let table = format!("{schema}.{name}");
        let policy = crate::schema_policy::policy_for(
            self.source.config.on_schema_change.as_ref(),
            &table,
            OnSchemaChange::Evolve,
        );
        let Some(st) = self.tables.get_mut(&(schema.to_string(), name.to_string())) else {
            return Ok(false);
        };
        let mut added = false;
        if let Some(before) = &st.relation
            && policy != OnSchemaChange::Evolve
        {
            let changes = describe_changes(before, &columns);
            if !changes.is_empty() {
                let what = changes.join("; ");
                if policy == OnSchemaChange::Stop {
                    return Err(self.source.err(format!(
                        "table `{table}` changed at the source ({what}) and `on_schema_change = \"stop\"`: adapt the target and the plugins, then run again with `on_schema_change = \"evolve\"` for it; the position is kept before the change"
                    )));
                }
                tracing::warn!(table = %table, changes = %what, "table changed at the source: its rows go to the dead-letter sink until the next run (`on_schema_change = \"dead_letter\"`)");
                st.held.get_or_insert_with(|| {
                    format!(
                        "table `{table}` changed at the source ({what}) and `on_schema_change = \"dead_letter\"` holds its rows back until the next run: adapt the target and the plugins, restart, then `sluice replay --code schema_change`"
                    )
                });
            }
        } else if let Some(before) = &st.relation {
            for c in &columns {
                match before.iter().find(|b| b.name == c.name) {
                    None => {
                        added = true;
                        tracing::info!(table = %table, column = %c.name, "column added at the source; it flows on as a new field")
                    }
                    Some(b) if b.type_id != c.type_id => {
                        let widened = is_widening(b.type_id, c.type_id);
                        if !widened && mode == SchemaChanges::Stop {
                            return Err(self.source.err(format!(
                                "table `{table}` column `{}` changed type (OID {} to {}): adapt the target and plugins, then restart with `schema_changes = \"continue\"`; the position is kept before the change",
                                c.name, b.type_id, c.type_id
                            )));
                        }
                        tracing::warn!(table = %table, column = %c.name, from = b.type_id, to = c.type_id, widened, "column type changed at the source");
                    }
                    Some(_) => {}
                }
            }
            for b in before {
                if !columns.iter().any(|c| c.name == b.name) {
                    tracing::warn!(table = %table, column = %b.name, "column dropped at the source; the target keeps it and new rows leave it empty");
                }
            }
            let key_before: Vec<&str> = before
                .iter()
                .filter(|c| c.is_key)
                .map(|c| &*c.name)
                .collect();
            let key_now: Vec<&str> = columns
                .iter()
                .filter(|c| c.is_key)
                .map(|c| &*c.name)
                .collect();
            if key_before != key_now && mode == SchemaChanges::Stop {
                return Err(self.source.err(format!(
                    "table `{table}` changed its key from ({}) to ({}): the target is keyed by the old one; adapt it, then restart with `schema_changes = \"continue\"`; the position is kept before the change",
                    key_before.join(", "),
                    key_now.join(", ")
                )));
            }
        }
        st.types = columns
            .iter()
            .map(|c| (c.name.to_string(), c.type_id))
            .collect();
        let key: Vec<String> = columns
            .iter()
            .filter(|c| c.is_key)
            .map(|c| c.name.to_string())
            .collect();
        if !key.is_empty() {
            st.key_names = key.join(",");
            st.key = key;
        }
        st.relation = Some(columns);
        Ok(added)
    }

    /// Hands a change over, or holds it back as a dead letter when its
    /// table changed shape under `on_schema_change = "dead_letter"`.
    fn hand(
        &self,
        schema: &str,
        table: &str,
        rec: Option<Record<'_>>,
        ctx: &mut SourceContext<'_>,
    ) -> bool {
        let Some(rec) = rec else { return false };
        match self
            .tables
            .get(&(schema.to_string(), table.to_string()))
            .and_then(|st| st.held.as_ref())
        {
            Some(why) => ctx.push_schema_change(&rec, why.clone()),
            None => ctx.push(&rec),
        }
    }

    /// A change as a record; `None` for a table not asked for.
    #[allow(clippy::too_many_arguments)]
    fn change<'s>(
        &'s self,
        schema: &str,
        table: &str,
        op: Operation,
        position: &'s str,
        event_time: Option<i64>,
        data: &'s pg_walstream::RowData,
        old: Option<&pg_walstream::RowData>,
    ) -> Option<Record<'s>> {
        let st = self.tables.get(&(schema.to_string(), table.to_string()))?;
        let builder = RowBuilder {
            stream: &st.stream,
            key_names: &st.key_names,
        };
        let texts: Vec<(&str, u32, Option<&str>)> =
            data.iter()
                .map(|(name, v)| {
                    let oid = st.types.get(&**name).copied().unwrap_or(25);
                    let text = match v {
                        pg_walstream::ColumnValue::Null => None,
                        pg_walstream::ColumnValue::Text(b)
                        | pg_walstream::ColumnValue::Binary(b) => std::str::from_utf8(b).ok(),
                    };
                    (&**name, oid, text)
                })
                .collect();
        let key_positions: Vec<usize> = st
            .key
            .iter()
            .filter_map(|k| texts.iter().position(|(n, _, _)| n == k))
            .collect();
        let mut rec = builder.record(op, position, event_time, texts.into_iter(), &key_positions);
        if op == Operation::Update
            && let Some(columns) = &st.relation
            && columns.len() > rec.fields.len()
        {
            // Columns PostgreSQL did not send: unchanged values stored out
            // of line. Named, so that no sink mistakes them for nulls.
            let unchanged: Vec<&str> = columns
                .iter()
                .map(|c| &*c.name)
                .filter(|n| rec.get(n).is_none())
                .collect();
            if !unchanged.is_empty() {
                let list = serde_json::to_vec(&unchanged).unwrap_or_default();
                rec.headers.push((UNCHANGED_HEADER.into(), list.into()));
            }
        }
        if let Some(old) = old {
            // The key changed (or the table has REPLICA IDENTITY FULL): the
            // old key tells the sink which row to move.
            let mut obj = serde_json::Map::new();
            for k in &st.key {
                if let Some((_, v)) = old.iter().find(|(n, _)| &***n == k) {
                    let text = match v {
                        pg_walstream::ColumnValue::Null => serde_json::Value::Null,
                        pg_walstream::ColumnValue::Text(b)
                        | pg_walstream::ColumnValue::Binary(b) => {
                            let oid = st.types.get(k).copied().unwrap_or(25);
                            let v = std::str::from_utf8(b)
                                .map(|t| values::from_text(oid, t))
                                .unwrap_or(Value::Null);
                            crate::value_json::value_to_json(&v)
                        }
                    };
                    obj.insert(k.clone(), text);
                }
            }
            let old_key = serde_json::Value::Object(obj);
            let new_key: serde_json::Map<String, serde_json::Value> = st
                .key
                .iter()
                .filter_map(|k| {
                    rec.get(k)
                        .map(|v| (k.clone(), crate::value_json::value_to_json(v)))
                })
                .collect();
            if old_key != serde_json::Value::Object(new_key) {
                rec.headers.push((
                    OLD_KEY_HEADER.into(),
                    old_key.to_string().into_bytes().into(),
                ));
            }
        }
        Some(rec)
    }
}

/// True when a column's type changed to one that holds every value of the
/// old one with the same record value kind.
fn is_widening(from: u32, to: u32) -> bool {
    use values::oid::*;
    const NUMERIC: u32 = 1700;
    const TEXT: u32 = 25;
    const VARCHAR: u32 = 1043;
    const BPCHAR: u32 = 1042;
    matches!(
        (from, to),
        (INT2, INT4 | INT8 | NUMERIC)
            | (INT4, INT8 | NUMERIC)
            | (INT8, NUMERIC)
            | (FLOAT4, FLOAT8)
            | (VARCHAR | BPCHAR, TEXT | VARCHAR)
            | (TIMESTAMP, TIMESTAMPTZ)
            | (JSON, JSONB)
    )
}

/// What differs between two descriptions of a table's columns, for a
/// person: `column `x` added`, `column `y` dropped`, `column `z` changed
/// type (OID 23 to 25)`, `key (id) became (id, org)`.
fn describe_changes(before: &[RelationColumn], now: &[RelationColumn]) -> Vec<String> {
    let mut out = Vec::new();
    for c in now {
        match before.iter().find(|b| b.name == c.name) {
            None => out.push(format!("column `{}` added", c.name)),
            Some(b) if b.type_id != c.type_id => out.push(format!(
                "column `{}` changed type (OID {} to {})",
                c.name, b.type_id, c.type_id
            )),
            Some(_) => {}
        }
    }
    for b in before {
        if !now.iter().any(|c| c.name == b.name) {
            out.push(format!("column `{}` dropped", b.name));
        }
    }
    let key = |cols: &[RelationColumn]| -> Vec<String> {
        cols.iter()
            .filter(|c| c.is_key)
            .map(|c| c.name.to_string())
            .collect()
    };
    let (kb, kn) = (key(before), key(now));
    if kb != kn {
        out.push(format!(
            "key ({}) became ({})",
            kb.join(", "),
            kn.join(", ")
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn widening_is_told_from_other_type_changes() {
        assert!(is_widening(values::oid::INT4, values::oid::INT8));
        assert!(is_widening(1043, 25));
        assert!(!is_widening(values::oid::INT8, values::oid::INT4));
        assert!(!is_widening(25, values::oid::INT8));
    }
}
