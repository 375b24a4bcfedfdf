//! `[sink] type = "wasm"`: a sink connector component behind the [`Sink`]
//! trait.
//!
//! Each batch is encoded once, then `write(batch, idempotency-keys)` and
//! `commit()`; the pipeline checkpoints the batch only after `commit`
//! returned `ok`. Records the connector refuses go to the dead-letter sink
//! with its reason. A transient error retries the whole batch (same keys)
//! after a backoff; a crash retries it on a fresh instance, up to
//! `max_crashes` in a row; a fatal error stops the pipeline and the batch
//! is read again on the next run.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sluice_codec::{BatchWriter, Record};
use wasmtime::Store;

use super::bindings::sink::{SinkConnector, SinkConnectorPre};
use super::host::Failure;
use super::retry::Backoff;
use super::status::ConnectorStatus;
use super::{ConnectorConfig, ConnectorHost, Kind};
use crate::plugin::sandbox::HostState;
use crate::sinks::{Refused, Sink, SinkCommit, SinkError, StopCheck};

/// A sink connector plugin.
pub struct WasmSink {
    host: Arc<ConnectorHost>,
    pre: SinkConnectorPre<HostState>,
    live: Option<Live>,
    stop: Option<StopCheck>,
    /// Notices a new version of the component file.
    watch: super::swap::FileWatch,
    /// What `/status` shows.
    status: Arc<ConnectorStatus>,
}

struct Live {
    store: Store<HostState>,
    bindings: SinkConnector,
}

impl WasmSink {
    /// Loads and checks the component (manifest, signature, grants, world).
    pub fn new(config: ConnectorConfig) -> Result<Self, SinkError> {
        let (host, pre) = Self::load(&config)?;
        let watch = super::swap::FileWatch::new(host.file_stamp());
        let status = ConnectorStatus::new(&host, Kind::Sink);
        Ok(WasmSink {
            host,
            pre,
            live: None,
            stop: None,
            watch,
            status,
        })
    }

    fn load(
        config: &ConnectorConfig,
    ) -> Result<(Arc<ConnectorHost>, SinkConnectorPre<HostState>), SinkError> {
        let host = ConnectorHost::load(config, Kind::Sink)
            .map_err(|e| SinkError::Connector(e.to_string()))?;
        let pre = SinkConnectorPre::new(host.pre().clone()).map_err(|e| {
            SinkError::Connector(format!(
                "{}: does not match the sink-connector world: {e:#}",
                host.who
            ))
        })?;
        Ok((Arc::new(host), pre))
    }

    /// A new version of the component file, loaded and opened; it replaces
    /// the live version (between two batches) only when both worked.
    fn try_swap(&mut self) {
        let old = self.host.who.clone();
        let (host, pre) = match Self::load(self.host.config()) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(live = %old, "new connector version refused, the live one goes on: {e}");
                self.status.swap_refused(&self.host, &e.to_string());
                return;
            }
        };
        let prev = (
            std::mem::replace(&mut self.host, host),
            std::mem::replace(&mut self.pre, pre),
        );
        match self.open_instance() {
            Ok(l) => {
                self.live = Some(l);
                self.status.swapped(&prev.0, &self.host);
                tracing::info!(from = %old, to = %self.host.who, "connector swapped: the new version writes from the next batch on");
                metrics::counter!("connector_swaps_total").increment(1);
            }
            Err(f) => {
                let why = match f {
                    Failure::Transient(m) | Failure::Fatal(m) | Failure::Crash(m) => m,
                    Failure::Stopped => "the pipeline is stopping".into(),
                };
                tracing::warn!(live = %old, candidate = %self.host.who, "new connector version refused (`open` failed), the live one goes on: {why}");
                let candidate = self.host.who.clone();
                (self.host, self.pre) = prev;
                self.status
                    .swap_refused(&self.host, &format!("{candidate}: `open` failed: {why}"));
            }
        }
    }

    /// The loaded connector.
    pub fn host(&self) -> &ConnectorHost {
        &self.host
    }

    fn err(&self, message: impl std::fmt::Display) -> SinkError {
        SinkError::Connector(format!("{}: {message}", self.host.who))
    }

    fn open_instance(&self) -> Result<Live, Failure> {
        let mut store = self
            .host
            .store()
            .map_err(|e| Failure::Fatal(e.to_string()))?;
        self.host.begin_call(&mut store);
        let bindings = match self.pre.instantiate(&mut store) {
            Ok(b) => b,
            Err(e) => return Err(self.host.failure(&e, &store)),
        };
        self.host.begin_call(&mut store);
        let config = self.host.config().config_json();
        match bindings.sluice_plugin_sink().call_open(&mut store, &config) {
            Ok(Ok(())) => Ok(Live { store, bindings }),
            Ok(Err(e)) => Err(self.host.guest_failure(e)),
            Err(e) => Err(self.host.failure(&e, &store)),
        }
    }

    /// One attempt: (open if needed), write, commit.
    fn attempt(
        &mut self,
        batch: &Vec<u8>,
        keys: &[String],
        n: usize,
    ) -> Result<Vec<Refused>, Failure> {
        let mut l = match self.live.take() {
            Some(l) => l,
            None => self.open_instance()?,
        };
        self.host.begin_call(&mut l.store);
        let refusals = match l
            .bindings
            .sluice_plugin_sink()
            .call_write(&mut l.store, batch, keys)
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                self.live = Some(l);
                return Err(self.host.guest_failure(e));
            }
            // A crashed instance is dropped.
            Err(e) => return Err(self.host.failure(&e, &l.store)),
        };
        let mut refused: Vec<Refused> = Vec::with_capacity(refusals.len());
        for r in refusals {
            let i = r.index as usize;
            if i >= n || refused.iter().any(|x| x.index == i) {
                return Err(Failure::Crash(format!(
                    "broke the contract: refused record {i} of a batch of {n} (an index out of range or twice)"
                )));
            }
            // The vendor's code goes into the dead letter as its code, so
            // that dead letters can be told apart (and replayed) by it.
            let code = self.host.clean_code(&r.code);
            let message = self.host.clean(&r.message);
            refused.push(Refused {
                index: i,
                reason: format!("{code}: {message}"),
                code: Some(code),
                by: Some(self.host.version.to_string()),
            });
        }
        self.host.begin_call(&mut l.store);
        match l.bindings.sluice_plugin_sink().call_commit(&mut l.store) {
            Ok(Ok(())) => {
                self.live = Some(l);
                Ok(refused)
            }
            Ok(Err(e)) => {
                self.live = Some(l);
                Err(self.host.guest_failure(e))
            }
            Err(e) => Err(self.host.failure(&e, &l.store)),
        }
    }

    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s())
    }
}

/// One key per record, stable across replays: a hash of the record's
/// stream, source position, and its rank among the records of the batch
/// with the same stream and position (a record a transform split in two
/// gives two keys).
pub fn idempotency_keys(records: &[Record<'_>]) -> Vec<String> {
    let mut seen: std::collections::HashMap<(&str, &str), u32> = Default::default();
    records
        .iter()
        .map(|r| {
            let rank = seen.entry((&r.stream, &r.position)).or_insert(0);
            let mut h = Sha256::new();
            h.update(r.stream.as_bytes());
            h.update([0]);
            h.update(r.position.as_bytes());
            h.update([0]);
            h.update(rank.to_le_bytes());
            *rank += 1;
            let d = h.finalize();
            d[..16].iter().map(|b| format!("{b:02x}")).collect()
        })
        .collect()
}

impl Sink for WasmSink {
    fn describe(&self) -> String {
        format!("wasm {}", self.host.who)
    }

    fn open(&mut self, _state: Option<&str>) -> Result<(), SinkError> {
        let mut backoff = Backoff::new(&self.host.config().limits);
        let mut crashes = 0;
        loop {
            match self.open_instance() {
                Ok(l) => {
                    self.live = Some(l);
                    return Ok(());
                }
                Err(f) => self.handle(f, &mut backoff, &mut crashes)?,
            }
        }
    }

    fn write(&mut self, records: &[Record<'_>]) -> Result<SinkCommit, SinkError> {
        if records.is_empty() {
            return Ok(SinkCommit::default());
        }
        let mut w = BatchWriter::with_capacity(64 << 10);
        for r in records {
            w.push(r);
        }
        let batch = w.finish();
        let keys = idempotency_keys(records);
        // A new version goes live at this commit boundary.
        if self.watch.changed(&self.host.config().path) {
            self.try_swap();
        }
        let mut backoff = Backoff::new(&self.host.config().limits);
        let mut crashes = 0;
        loop {
            match self.attempt(&batch, &keys, records.len()) {
                Ok(refused) => {
                    self.status.set_state("writing");
                    self.status.refused(refused.len());
                    return Ok(SinkCommit {
                        written: (records.len() - refused.len()) as u64,
                        refused,
                        state: None,
                    });
                }
                Err(f) => self.handle(f, &mut backoff, &mut crashes)?,
            }
        }
    }

    fn set_stop_check(&mut self, stop: StopCheck) {
        self.stop = Some(stop);
    }

    fn connector_status(&self) -> Option<Arc<ConnectorStatus>> {
        Some(self.status.clone())
    }
}

impl WasmSink {
    /// Decides what a failure does (wait and go on, or stop), and shows a
    /// stop in the status.
    fn handle(
        &mut self,
        f: Failure,
        backoff: &mut Backoff,
        crashes: &mut u32,
    ) -> Result<(), SinkError> {
        let r = self.decide(f, backoff, crashes);
        if let Err(e) = &r {
            self.status.failed(&e.to_string());
        }
        r
    }

    fn decide(
        &mut self,
        f: Failure,
        backoff: &mut Backoff,
        crashes: &mut u32,
    ) -> Result<(), SinkError> {
        match f {
            Failure::Stopped => Err(self.err(
                "interrupted: the pipeline is stopping (the batch is not checkpointed: the next run writes it again)",
            )),
            Failure::Fatal(m) => Err(self.err(format!(
                "{m}; stopped (the batch is not checkpointed: the next run writes it again)"
            ))),
            Failure::Transient(m) => {
                let wait = backoff.fail();
                match wait {
                    Some(wait) if !self.stopping() => {
                        tracing::warn!(connector = %self.host.who, attempt = backoff.failures, wait_ms = wait.as_millis() as u64, "transient error, retrying the batch: {m}");
                        self.status.retried(&m);
                        self.status.set_state(format!(
                            "retrying in {:.1} s (attempt {}): {m}",
                            wait.as_secs_f64(),
                            backoff.failures
                        ));
                        metrics::counter!("connector_retries_total").increment(1);
                        let end = std::time::Instant::now() + wait;
                        while std::time::Instant::now() < end && !self.stopping() {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Ok(())
                    }
                    Some(_) => Err(self.err(format!(
                        "{m}; the pipeline is stopping (the batch is not checkpointed)"
                    ))),
                    None => Err(self.err(format!(
                        "{m}; gave up after {} transient errors in a row (`max_retries`)",
                        backoff.failures - 1
                    ))),
                }
            }
            Failure::Crash(m) => {
                *crashes += 1;
                let max = self.host.config().limits.max_crashes;
                if *crashes > max || self.stopping() {
                    return Err(self.err(format!(
                        "{m}; stopped after {} restarts in a row (the batch is not checkpointed)",
                        *crashes - 1
                    )));
                }
                tracing::warn!(connector = %self.host.who, crashes = *crashes, "connector instance failed, retrying the batch on a fresh one: {m}");
                self.status.restarted(&m);
                self.status.set_state(format!("restarting: {m}"));
                metrics::counter!("connector_restarts_total").increment(1);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_codec::{Operation, Value};

    fn rec(pos: &str) -> Record<'static> {
        let mut r = Record {
            op: Operation::Insert,
            stream: "s".into(),
            position: pos.to_string().into(),
            ..Default::default()
        };
        r.set("a", Value::Int(1));
        r
    }

    #[test]
    fn keys_are_stable_and_distinct_within_a_position() {
        let a = idempotency_keys(&[rec("1"), rec("2"), rec("2")]);
        let b = idempotency_keys(&[rec("2"), rec("2")]);
        assert_eq!(a[1..], b[..]);
        assert_ne!(a[1], a[2]);
        assert_ne!(a[0], a[1]);
        assert_eq!(a[0].len(), 32);
    }
}
