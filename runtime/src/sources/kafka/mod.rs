//! `[source] type = "kafka"`: a member of a consumer group. Kafka assigns
//! it partitions; every message becomes a record (`records.rs`); offsets go
//! back to Kafka only after the sink committed the batch; on a rebalance the
//! batches in flight are committed before the partitions are released.
//!
//! The source keeps the messages it has read but not yet handed over in a
//! buffer of its own, and hands a batch over (push + flush) in one go, so
//! that at every poll — where rebalance callbacks run — nothing is half
//! handed over: the callback drops the buffered messages of revoked
//! partitions (their offsets were never committed: the new owner reads them)
//! and waits for the handed-over ones to be committed.

mod config;
mod records;
mod shape;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

pub use config::{KafkaSourceConfig, KeyFormat, StartAt, ValueFormat};

use super::{CommitWatch, Source, SourceContext, SourceError};
use crate::kafka::explain;
use crate::schema_policy::OnSchemaChange;
use records::Pending;

/// A topic and partition.
type Tp = (String, i32);

/// The offsets a batch's resume token carries: next offset per partition.
type Offsets = BTreeMap<Tp, i64>;

fn tp_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

fn split_key(key: &str) -> Option<Tp> {
    let (t, p) = key.rsplit_once('/')?;
    Some((t.to_string(), p.parse().ok()?))
}

/// State shared by the poll loop and the rebalance callbacks.
#[derive(Default)]
struct Shared {
    /// Read, not yet handed over.
    pending: Vec<Pending>,
    /// Next offset per partition of everything handed over.
    flushed: Offsets,
    /// The token of the last batch handed over.
    last_token: Option<String>,
    /// Partitions assigned to this instance now.
    assigned: HashSet<Tp>,
    /// At least one assignment happened.
    ever_assigned: bool,
    /// Messages behind the committed offsets, from librdkafka's statistics.
    lag: Option<u64>,
}

struct GroupContext {
    shared: Arc<Mutex<Shared>>,
    watch: Arc<CommitWatch>,
    rebalance_timeout: Duration,
    describe: String,
}

impl ClientContext for GroupContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::warn!(source = %self.describe, facility = fac, "kafka: {message}")
            }
            _ => tracing::debug!(source = %self.describe, facility = fac, "kafka: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(source = %self.describe, "kafka: {error}: {reason}");
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        // consumer_lag: high watermark - committed offset (-1: unknown).
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let lag: u64 = statistics
            .topics
            .iter()
            .flat_map(|(t, topic)| {
                topic
                    .partitions
                    .iter()
                    .map(move |(p, part)| ((t.clone(), *p), part))
            })
            .filter(|(tp, part)| tp.1 >= 0 && part.consumer_lag >= 0 && s.assigned.contains(tp))
            .map(|(_, part)| part.consumer_lag as u64)
            .sum();
        s.lag = Some(lag);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let revoked: HashSet<Tp> = list
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let last = {
            let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            // Read but never handed over: the next owner reads them again
            // from the committed offset.
            let before = s.pending.len();
            s.pending.retain(|p| !revoked.contains(&p.tp));
            tracing::info!(source = %self.describe, partitions = revoked.len(), dropped_unsent = before - s.pending.len(), "partitions revoked");
            s.last_token.clone()
        };
        // The batches in flight finish and are committed before the
        // partitions go.
        let committed = match &last {
            Some(token) => {
                let started = Instant::now();
                let ok = self.watch.wait_for(token, self.rebalance_timeout);
                if ok {
                    tracing::info!(source = %self.describe, waited_ms = started.elapsed().as_millis() as u64, "batches in flight committed before the rebalance");
                } else {
                    tracing::warn!(source = %self.describe, "the batches in flight were not committed within `rebalance_timeout_s`: the next owner of the partitions may process them again");
                }
                self.watch.get()
            }
            None => None,
        };
        if let Some(token) = committed
            && let Some(offsets) = parse_token(&token)
        {
            let tpl = offsets_list(&offsets, |tp| revoked.contains(tp));
            if tpl.count() > 0
                && let Err(e) = consumer.commit(&tpl, CommitMode::Sync)
            {
                tracing::warn!(source = %self.describe, "committing offsets before the rebalance failed: {e}");
            }
        }
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        for tp in &revoked {
            s.flushed.remove(tp);
            s.assigned.remove(tp);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            for e in list.elements() {
                s.assigned.insert((e.topic().to_string(), e.partition()));
            }
            s.ever_assigned = true;
            tracing::info!(source = %self.describe, partitions = list.count(), "partitions assigned");
        }
    }
}

fn parse_token(token: &str) -> Option<Offsets> {
    let v: serde_json::Value = serde_json::from_str(token).ok()?;
    let obj = v.get("offsets")?.as_object()?;
    Some(
        obj.iter()
            .filter_map(|(k, v)| Some((split_key(k)?, v.as_i64()?)))
            .collect(),
    )
}

fn make_token(offsets: &Offsets) -> String {
    let named: BTreeMap<String, i64> = offsets
        .iter()
        .map(|((t, p), next)| (tp_key(t, *p), *next))
        .collect();
    serde_json::json!({ "offsets": named }).to_string()
}

fn offsets_list(offsets: &Offsets, keep: impl Fn(&Tp) -> bool) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (tp, next) in offsets {
        if keep(tp) {
            // A partition of a topic Kafka no longer knows is skipped.
            let _ = tpl.add_partition_offset(&tp.0, tp.1, Offset::Offset(*next));
        }
    }
    tpl
}

/// The Kafka source.
pub struct KafkaSource {
    config: KafkaSourceConfig,
    /// What this run has read of each stream's shape.
    shapes: Mutex<shape::Shapes>,
}

/// Why handing the buffered messages over ended early.
enum HandOverEnd {
    /// The pipeline is stopping.
    Stopped,
    /// A message changed its stream's shape under `on_schema_change = "stop"`.
    SchemaChange(String),
}

impl KafkaSource {
    /// Checks the config; connects in `check` and `run`.
    pub fn new(config: KafkaSourceConfig) -> Result<Self, SourceError> {
        let source = KafkaSource {
            config,
            shapes: Mutex::default(),
        };
        if let Some(p) = source.config.problems() {
            return Err(source.error(p));
        }
        Ok(source)
    }

    fn error(&self, message: impl Into<String>) -> SourceError {
        SourceError::Server {
            at: self.describe(),
            message: message.into(),
        }
    }

    fn consumer(&self, context: GroupContext) -> Result<BaseConsumer<GroupContext>, SourceError> {
        let mut c = crate::kafka::client_config(&self.config.brokers, &self.config.options);
        c.set("group.id", &self.config.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set(
                "auto.offset.reset",
                match self.config.start {
                    StartAt::Earliest => "earliest",
                    StartAt::Latest => "latest",
                },
            );
        if !self.config.options.contains_key("session.timeout.ms") {
            c.set("session.timeout.ms", "10000");
        }
        if !self.config.options.contains_key("statistics.interval.ms") {
            c.set("statistics.interval.ms", "1000");
        }
        if !self.config.options.contains_key("heartbeat.interval.ms") {
            c.set("heartbeat.interval.ms", "1000");
        }
        c.create_with_context(context).map_err(|e| {
            self.error(format!(
                "cannot create the consumer: {}",
                explain(&e, &self.config.brokers)
            ))
        })
    }

    /// True when a fresh client gets metadata from the brokers.
    fn brokers_answer(&self) -> bool {
        let c = crate::kafka::client_config(&self.config.brokers, &self.config.options);
        let Ok(probe) = c.create::<BaseConsumer>() else {
            return false;
        };
        probe
            .fetch_metadata(None, Duration::from_secs(2))
            .is_ok_and(|md| !md.brokers().is_empty())
    }

    /// Reaches the brokers and checks that the topics exist.
    fn preflight<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) -> Result<(), SourceError> {
        let md = crate::kafka::reach(consumer.client(), &self.config.brokers)
            .map_err(|m| self.error(m))?;
        for t in &self.config.topics {
            let found = md
                .topics()
                .iter()
                .find(|m| m.name() == t)
                .filter(|m| m.error().is_none() && !m.partitions().is_empty());
            if found.is_none() {
                let known: Vec<&str> = md
                    .topics()
                    .iter()
                    .map(|m| m.name())
                    .filter(|n| !n.starts_with("__"))
                    .collect();
                return Err(self.error(format!(
                    "topic `{t}` does not exist (topics on the brokers: {}): create it, or fix `topics`",
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                )));
            }
        }
        Ok(())
    }
}

impl Source for KafkaSource {
    fn describe(&self) -> String {
        format!(
            "kafka {} {} (group {})",
            self.config.brokers,
            self.config
                .topic_pattern
                .clone()
                .unwrap_or_else(|| self.config.topics.join(",")),
            self.config.group
        )
    }

    fn size_hint(&mut self) -> Option<u64> {
        None
    }

    fn check(&mut self) -> Result<(), SourceError> {
        let c = crate::kafka::client_config(&self.config.brokers, &self.config.options);
        let consumer: BaseConsumer = c.create().map_err(|e| {
            self.error(format!(
                "cannot create the consumer: {}",
                explain(&e, &self.config.brokers)
            ))
        })?;
        self.preflight(&consumer)
    }

    fn run(
        &mut self,
        _resume: Option<&str>,
        ctx: &mut SourceContext<'_>,
    ) -> Result<(), SourceError> {
        // Kafka's committed offsets are the position of a consumer group
        // (shared by every instance); the local checkpoint is not used.
        let watch = ctx.feedback().commit_watch();
        let mut first = true;
        loop {
            match self.session(ctx, &watch, first)? {
                SessionEnd::Done => return Ok(()),
                SessionEnd::Reconnect => {
                    tracing::warn!(source = %self.describe(), "the brokers are back: joining the group again with a new consumer");
                    ctx.feedback().set_state("rejoining the group");
                    first = false;
                }
            }
        }
    }
}

/// How a consumer session ended.
enum SessionEnd {
    /// End of the run (stop, or caught up).
    Done,
    /// The brokers were lost and are back: start a new consumer, which
    /// rejoins the group and resumes from the committed offsets.
    Reconnect,
}

impl KafkaSource {
    /// One consumer, from joining the group to a stop or a lost broker.
    fn session(
        &mut self,
        ctx: &mut SourceContext<'_>,
        watch: &Arc<CommitWatch>,
        first: bool,
    ) -> Result<SessionEnd, SourceError> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let consumer = self.consumer(GroupContext {
            shared: shared.clone(),
            watch: watch.clone(),
            rebalance_timeout: Duration::from_secs(self.config.rebalance_timeout_s),
            describe: self.describe(),
        })?;
        if first {
            self.preflight(&consumer)?;
        }
        let mut reconnect = false;
        let mut last_probe: Option<Instant> = None;
        let subscription: Vec<String> = match &self.config.topic_pattern {
            Some(p) if p.starts_with('^') => vec![p.clone()],
            Some(p) => vec![format!("^{p}")],
            None => self.config.topics.clone(),
        };
        let refs: Vec<&str> = subscription.iter().map(String::as_str).collect();
        consumer.subscribe(&refs).map_err(|e| {
            self.error(format!(
                "cannot subscribe: {}",
                explain(&e, &self.config.brokers)
            ))
        })?;
        ctx.feedback().set_state("joining the group");
        let linger = Duration::from_millis(self.config.linger_ms);
        let batch_size = ctx.batch_size();
        let mut last_committed: Option<String> = None;
        let mut oldest: Option<Instant> = None;
        let mut stopped = false;
        let mut failing_since: Option<Instant> = None;
        let mut idle_since: Option<Instant> = None;
        let mut last_check: Option<Instant> = None;
        let mut behind_since: Option<Instant> = None;
        let result = loop {
            // Offsets of what the sink committed go back to Kafka.
            self.commit_progress(
                &consumer,
                &shared,
                watch,
                &mut last_committed,
                CommitMode::Async,
            );
            if ctx.should_stop() {
                stopped = true;
                break Ok(());
            }
            match consumer.poll(Duration::from_millis(20)) {
                Some(Ok(m)) => {
                    failing_since = None;
                    idle_since = None;
                    let p = records::convert(&m, &self.config);
                    shared
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .pending
                        .push(p);
                    oldest.get_or_insert_with(Instant::now);
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    let fatal = matches!(
                        e.rdkafka_error_code(),
                        Some(
                            RDKafkaErrorCode::UnknownTopicOrPartition
                                | RDKafkaErrorCode::TopicAuthorizationFailed
                                | RDKafkaErrorCode::GroupAuthorizationFailed
                        )
                    ) && self.config.topic_pattern.is_none()
                        && first;
                    let message = explain(&e, &self.config.brokers);
                    if fatal {
                        break Err(self.error(message));
                    }
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    ctx.feedback().set_state(format!("reconnecting: {message}"));
                    tracing::warn!(source = %self.describe(), failing_s = since.elapsed().as_secs(), "kafka: {message}");
                }
                None => {
                    idle_since.get_or_insert_with(Instant::now);
                }
            }
            // After a failure, once the brokers answer again, a new
            // consumer rejoins the group: librdkafka's own recovery can stay
            // stuck when a broker came back without the group's state.
            if let Some(since) = failing_since
                && since.elapsed() >= Duration::from_secs(3)
                && last_probe.is_none_or(|t| t.elapsed() >= Duration::from_secs(2))
            {
                last_probe = Some(Instant::now());
                // A client of its own: the consumer's metadata cache is
                // what went stale (librdkafka 2.12 can crash refreshing it
                // against a broker that came back empty).
                if self.brokers_answer() {
                    reconnect = true;
                    break Ok(());
                }
            }
            let (n, ready_by_time, assigned) = {
                let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(records) = s.lag.take() {
                    // The age: since when the committed position has not
                    // caught up.
                    let seconds = if records == 0 {
                        behind_since = None;
                        0.0
                    } else {
                        behind_since
                            .get_or_insert_with(Instant::now)
                            .elapsed()
                            .as_secs_f64()
                    };
                    ctx.feedback().set_lag(super::Lag {
                        bytes: 0,
                        seconds,
                        records: Some(records),
                        ..Default::default()
                    });
                }
                let n = s.pending.len();
                (
                    n,
                    oldest.is_some_and(|t| t.elapsed() >= linger),
                    s.ever_assigned && !s.assigned.is_empty(),
                )
            };
            if n == 0 {
                oldest = None;
            }
            // Idle: nothing came for a while. Hand over what is buffered;
            // with `until_caught_up`, check the positions against the ends
            // of the partitions (at most twice a second).
            let idle = idle_since.is_some_and(|t| t.elapsed() >= Duration::from_millis(100));
            if n > 0 && (n >= batch_size || ready_by_time || idle) {
                match self.hand_over(&shared, ctx) {
                    Ok(()) => {}
                    Err(HandOverEnd::Stopped) => {
                        stopped = true;
                        break Ok(());
                    }
                    Err(HandOverEnd::SchemaChange(why)) => {
                        stopped = true;
                        break Err(self.error(why));
                    }
                }
                oldest = None;
                if failing_since.is_none() {
                    ctx.feedback().set_state("consuming");
                }
            } else if n == 0
                && idle
                && assigned
                && self.config.until_caught_up
                && last_check.is_none_or(|t| t.elapsed() >= Duration::from_millis(500))
            {
                last_check = Some(Instant::now());
                if self.caught_up(&consumer) {
                    break Ok(());
                }
            }
        };
        // Wait (bounded) for the batches in flight, then commit their offsets.
        let last = shared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_token
            .clone();
        if let Some(token) = last {
            let wait = if stopped {
                Duration::from_secs(30)
            } else {
                Duration::from_secs(self.config.rebalance_timeout_s)
            };
            if !watch.wait_for(&token, wait) {
                tracing::warn!(source = %self.describe(), "stopping before the last batches were committed: they will be read again");
            }
        }
        self.commit_progress(
            &consumer,
            &shared,
            watch,
            &mut last_committed,
            CommitMode::Sync,
        );
        consumer.unsubscribe();
        result?;
        Ok(if reconnect {
            SessionEnd::Reconnect
        } else {
            SessionEnd::Done
        })
    }
}

impl KafkaSource {
    /// Commits to Kafka the offsets of the last batch the sink committed,
    /// for the partitions this instance still owns.
    fn commit_progress(
        &self,
        consumer: &BaseConsumer<GroupContext>,
        shared: &Mutex<Shared>,
        watch: &CommitWatch,
        last: &mut Option<String>,
        mode: CommitMode,
    ) {
        let Some(token) = watch.get() else { return };
        if last.as_deref() == Some(token.as_str()) {
            return;
        }
        let Some(offsets) = parse_token(&token) else {
            return;
        };
        let tpl = {
            let s = shared.lock().unwrap_or_else(|p| p.into_inner());
            offsets_list(&offsets, |tp| s.assigned.contains(tp))
        };
        if tpl.count() == 0 {
            *last = Some(token);
            return;
        }
        match consumer.commit(&tpl, mode) {
            Ok(()) => *last = Some(token),
            Err(e) => {
                tracing::warn!(source = %self.describe(), "committing offsets failed (retried with the next batch): {e}")
            }
        }
    }

    /// Hands the buffered messages over as batches.
    /// A message that changes its stream's shape under `stop` ends the
    /// hand-over: what came before it is flushed, it and what follows are
    /// left unread (their offsets are not committed).
    fn hand_over(
        &self,
        shared: &Mutex<Shared>,
        ctx: &mut SourceContext<'_>,
    ) -> Result<(), HandOverEnd> {
        let (pending, mut offsets) = {
            let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
            (std::mem::take(&mut s.pending), s.flushed.clone())
        };
        let count = pending.len();
        let flush = |offsets: &Offsets, ctx: &mut SourceContext<'_>| {
            let token = make_token(offsets);
            {
                let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
                s.flushed = offsets.clone();
                s.last_token = Some(token.clone());
            }
            ctx.flush(&token).map_err(|_| HandOverEnd::Stopped)
        };
        let mut shapes = self.shapes.lock().unwrap_or_else(|p| p.into_inner());
        for (i, p) in pending.into_iter().enumerate() {
            let full = match p.record {
                Ok(r) => {
                    let changes = shapes.changes(&r);
                    let policy = crate::schema_policy::policy_for(
                        self.config.on_schema_change.as_ref(),
                        &r.stream,
                        OnSchemaChange::Evolve,
                    );
                    if changes.is_empty() || policy == OnSchemaChange::Evolve {
                        shapes.learn(&r);
                        offsets.insert(p.tp, p.offset + 1);
                        ctx.push(&r)
                    } else if policy == OnSchemaChange::Stop {
                        if ctx.has_pending() {
                            flush(&offsets, ctx)?;
                        }
                        return Err(HandOverEnd::SchemaChange(format!(
                            "topic `{}` changed shape at {} ({}) and `on_schema_change = \"stop\"`: adapt the target and the plugins, then run again with `on_schema_change = \"evolve\"` for it; the message and those after it are read again then",
                            r.stream,
                            r.position,
                            changes.join("; ")
                        )));
                    } else {
                        offsets.insert(p.tp, p.offset + 1);
                        ctx.push_schema_change(
                            &r,
                            format!(
                                "topic `{}` changed shape ({}) and `on_schema_change = \"dead_letter\"` holds such messages back: adapt the target and the plugins, then `sluice replay --code schema_change`",
                                r.stream,
                                changes.join("; ")
                            ),
                        )
                    }
                }
                Err(m) => {
                    offsets.insert(p.tp, p.offset + 1);
                    ctx.push_malformed(m)
                }
            };
            if full || i + 1 == count {
                flush(&offsets, ctx)?;
            }
        }
        Ok(())
    }

    /// True when every assigned partition's position is at its high
    /// watermark (the EOF events only name a partition number).
    fn caught_up(&self, consumer: &BaseConsumer<GroupContext>) -> bool {
        let Ok(positions) = consumer.position() else {
            return false;
        };
        // Before the first fetch a position is unknown: the committed
        // offset is where it will start.
        let committed = consumer.committed(Duration::from_secs(2)).ok();
        positions.elements().iter().all(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => committed
                    .as_ref()
                    .and_then(|c| c.find_partition(e.topic(), e.partition()))
                    .map_or(Offset::Invalid, |c| c.offset()),
            };
            let Ok((_, high)) =
                consumer.fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(2))
            else {
                return false;
            };
            match offset {
                Offset::Offset(o) => o >= high,
                _ => high == 0,
            }
        })
    }
}
