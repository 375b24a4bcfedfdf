//! `[source] type = "wasm"`: a source connector component behind the
//! [`Source`] trait.
//!
//! The loop: `open(config, resume)`, then `poll` until the pipeline stops
//! or the source reports the end of its data. Each polled batch is handed
//! to the pipeline with the position the connector returned; once the sink
//! has committed it, the host checkpoints that position and tells the
//! connector (`committed`). A transient error is retried with backoff (the
//! status says so); a fatal one stops the pipeline with the committed
//! position kept; a crash (trap, deadline, memory cap, malformed batch)
//! starts a fresh instance from the last position handed over, up to
//! `max_crashes` in a row.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::Store;

use super::bindings::source::{SourceConnector, SourceConnectorPre};
use super::host::Failure;
use super::retry::{Backoff, sleep_unless};
use super::status::ConnectorStatus;
use super::{ConnectorConfig, ConnectorHost, Kind};
use crate::plugin::sandbox::HostState;
use crate::sources::{Source, SourceContext, SourceError};

/// A source connector plugin.
pub struct WasmSource {
    host: Arc<ConnectorHost>,
    pre: SourceConnectorPre<HostState>,
    /// Interrupts the calls of every version (a stop).
    interrupt: Arc<AtomicBool>,
    /// Notices a new version of the component file.
    watch: super::swap::FileWatch,
    /// What `/status` shows.
    status: Arc<ConnectorStatus>,
}

impl std::fmt::Debug for WasmSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.host.who)
    }
}

/// One running instance.
struct Live {
    store: Store<HostState>,
    bindings: SourceConnector,
}

impl WasmSource {
    /// Loads and checks the component (manifest, signature, grants, world).
    pub fn new(config: ConnectorConfig) -> Result<Self, SourceError> {
        let interrupt = Arc::new(AtomicBool::new(false));
        let (host, pre) = Self::load(&config, interrupt.clone())?;
        let watch = super::swap::FileWatch::new(host.file_stamp());
        let status = ConnectorStatus::new(&host, Kind::Source);
        Ok(WasmSource {
            host,
            pre,
            interrupt,
            watch,
            status,
        })
    }

    fn load(
        config: &ConnectorConfig,
        interrupt: Arc<AtomicBool>,
    ) -> Result<(Arc<ConnectorHost>, SourceConnectorPre<HostState>), SourceError> {
        let host = ConnectorHost::load_with(config, Kind::Source, interrupt)
            .map_err(|e| SourceError::Connector(e.to_string()))?;
        let pre = SourceConnectorPre::new(host.pre().clone()).map_err(|e| {
            SourceError::Connector(format!(
                "{}: does not match the source-connector world: {e:#}",
                host.who
            ))
        })?;
        Ok((Arc::new(host), pre))
    }

    /// A new version of the component file, loaded and opened at
    /// `position` (the last position handed over: nothing is read twice).
    /// It replaces the live version only when all of that worked.
    fn try_swap(&mut self, position: Option<&str>) -> Option<Live> {
        let old = self.host.who.clone();
        let candidate =
            Self::load(self.host.config(), self.interrupt.clone()).and_then(|(host, pre)| {
                let prev = std::mem::replace(&mut self.host, host);
                let prev_pre = std::mem::replace(&mut self.pre, pre);
                match self.open(position) {
                    Ok(l) => {
                        self.status.swapped(&prev, &self.host);
                        Ok(l)
                    }
                    Err(f) => {
                        let why = match f {
                            Failure::Transient(m) | Failure::Fatal(m) | Failure::Crash(m) => m,
                            Failure::Stopped => "the pipeline is stopping".into(),
                        };
                        let who = self.host.who.clone();
                        let refused = std::mem::replace(&mut self.host, prev);
                        self.pre = prev_pre;
                        drop(refused);
                        Err(SourceError::Connector(format!(
                            "{who}: `open` failed: {why}"
                        )))
                    }
                }
            });
        match candidate {
            Ok(l) => {
                tracing::info!(from = %old, to = %self.host.who, position = position.unwrap_or("start"), "connector swapped: the new version reads on from the last position handed over");
                metrics::counter!("connector_swaps_total").increment(1);
                Some(l)
            }
            Err(e) => {
                tracing::warn!(live = %old, "new connector version refused, the live one goes on: {e}");
                self.status.swap_refused(&self.host, &e.to_string());
                None
            }
        }
    }

    /// The loaded connector.
    pub fn host(&self) -> &ConnectorHost {
        &self.host
    }

    fn err(&self, message: impl std::fmt::Display) -> SourceError {
        SourceError::Connector(format!("{}: {message}", self.host.who))
    }

    /// A fresh instance, opened at `resume`.
    fn open(&self, resume: Option<&str>) -> Result<Live, Failure> {
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
        match bindings
            .sluice_plugin_source()
            .call_open(&mut store, &config, resume)
        {
            Ok(Ok(())) => Ok(Live { store, bindings }),
            Ok(Err(e)) => Err(self.host.guest_failure(e)),
            Err(e) => Err(self.host.failure(&e, &store)),
        }
    }
}

impl Source for WasmSource {
    fn describe(&self) -> String {
        format!("wasm {}", self.host.who)
    }

    fn size_hint(&mut self) -> Option<u64> {
        None
    }

    fn check(&mut self) -> Result<(), SourceError> {
        // Instantiating proves the imports link and the memory fits; `open`
        // (which talks to the outside system) waits for the run.
        let mut store = self.host.store().map_err(|e| self.err(e))?;
        self.host.begin_call(&mut store);
        self.pre.instantiate(&mut store).map_err(|e| {
            self.err(format!(
                "cannot be instantiated: {}",
                self.host.call_failed(&e, &store)
            ))
        })?;
        Ok(())
    }

    fn run(
        &mut self,
        resume: Option<&str>,
        ctx: &mut SourceContext<'_>,
    ) -> Result<(), SourceError> {
        // Dropped when reading ends: the watch below ends at once rather
        // than at its next look (a run would otherwise end up to 50 ms late).
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let stop = ctx.stop_flag();
        let interrupt = self.interrupt.clone();
        std::thread::scope(|scope| {
            // A call blocked past a stop request is interrupted.
            scope.spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    finished.recv_timeout(Duration::from_millis(50))
                {
                    if stop.load(Ordering::Relaxed) {
                        interrupt.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            });
            let result = self.read(resume, ctx);
            drop(done);
            if let Err(e) = &result {
                self.status.failed(&e.to_string());
            }
            result
        })
    }

    fn connector_status(&self) -> Option<Arc<ConnectorStatus>> {
        Some(self.status.clone())
    }
}

impl WasmSource {
    fn read(
        &mut self,
        resume: Option<&str>,
        ctx: &mut SourceContext<'_>,
    ) -> Result<(), SourceError> {
        let limits = self.host.config().limits;
        let mut position: Option<String> = resume.map(str::to_string);
        let mut told: Option<String> = None;
        let mut backoff = Backoff::new(&limits);
        let mut crashes = 0u32;
        let mut live: Option<Live> = None;
        let stop = ctx.stop_flag();
        loop {
            if ctx.should_stop() {
                break;
            }
            // A new version of the file goes live between two polls.
            if self.watch.changed(&self.host.config().path)
                && let Some(l) = self.try_swap(position.as_deref())
            {
                live = Some(l);
                told = None;
                crashes = 0;
                backoff.reset();
                self.set_state(ctx, format!("reading (swapped to {})", self.host.who));
            }
            let l = match live.as_mut() {
                Some(l) => l,
                None => match self.open(position.as_deref()) {
                    Ok(l) => {
                        self.set_state(ctx, "reading");
                        live.insert(l)
                    }
                    Err(f) => {
                        self.handle(f, &mut backoff, &mut crashes, ctx, stop)?;
                        continue;
                    }
                },
            };
            // Tell the connector what the sink committed since last time.
            if let Some(c) = ctx.feedback().committed()
                && told.as_ref() != Some(&c)
            {
                self.host.begin_call(&mut l.store);
                if let Err(e) = l
                    .bindings
                    .sluice_plugin_source()
                    .call_committed(&mut l.store, &c)
                {
                    let f = self.host.failure(&e, &l.store);
                    live = None;
                    self.handle(f, &mut backoff, &mut crashes, ctx, stop)?;
                    continue;
                }
                told = Some(c);
            }
            self.host.begin_call(&mut l.store);
            let max = u32::try_from(ctx.batch_size()).unwrap_or(u32::MAX);
            let polled = match l.bindings.sluice_plugin_source().call_poll(
                &mut l.store,
                max,
                limits.poll_wait_ms,
            ) {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    let f = self.host.guest_failure(e);
                    self.handle(f, &mut backoff, &mut crashes, ctx, stop)?;
                    continue;
                }
                Err(e) => {
                    let f = self.host.failure(&e, &l.store);
                    live = None;
                    self.handle(f, &mut backoff, &mut crashes, ctx, stop)?;
                    continue;
                }
            };
            match self.hand_over(&polled.batch, ctx) {
                Ok(0) => {}
                Ok(_) if polled.position.is_none() => {
                    live = None;
                    let f = Failure::Crash(
                        "broke the contract: `poll` returned records without a position".into(),
                    );
                    self.handle(f, &mut backoff, &mut crashes, ctx, stop)?;
                    continue;
                }
                Ok(_) => {}
                Err(why) => {
                    live = None;
                    let f = Failure::Crash(format!("returned a malformed batch: {why}"));
                    self.handle(f, &mut backoff, &mut crashes, ctx, stop)?;
                    continue;
                }
            }
            backoff.reset();
            crashes = 0;
            if let Some(p) = polled.position {
                let p = self.host.clean(&p);
                if ctx.flush(&p).is_err() {
                    break;
                }
                position = Some(p);
            } else if ctx.flush(position.as_deref().unwrap_or("")).is_err() {
                break;
            }
            if polled.end_of_data {
                self.set_state(ctx, "end of data");
                break;
            }
        }
        // Tell the connector about the last commit before returning.
        if let Some(l) = live.as_mut()
            && let Some(c) = ctx.wait_for_last_commit(Duration::from_secs(30))
            && told.as_ref() != Some(&c)
        {
            self.host.begin_call(&mut l.store);
            let _ = l
                .bindings
                .sluice_plugin_source()
                .call_committed(&mut l.store, &c);
        }
        Ok(())
    }

    /// Checks every record of a polled batch and adds it to the context;
    /// returns how many there were. Nothing is added unless all are valid.
    fn hand_over(&self, batch: &[u8], ctx: &mut SourceContext<'_>) -> Result<usize, String> {
        if batch.is_empty() {
            return Ok(0);
        }
        let mut reader = sluice_codec::BatchReader::new(batch).map_err(|e| e.to_string())?;
        let mut slices = Vec::with_capacity(reader.remaining());
        while let Some((at, bytes)) = reader.next_slice().map_err(|e| e.to_string())? {
            sluice_codec::Record::validate(bytes)
                .map_err(|e| format!("record at byte {}: {e}", at + e.offset))?;
            slices.push(bytes);
        }
        for s in &slices {
            ctx.push_encoded(s);
        }
        Ok(slices.len())
    }

    /// Says what the source is doing, in the pipeline's status and the
    /// connector's.
    fn set_state(&self, ctx: &SourceContext<'_>, state: impl Into<String>) {
        let state = state.into();
        self.status.set_state(state.clone());
        ctx.feedback().set_state(state);
    }

    /// Decides what a failure does: wait and go on, or stop the pipeline.
    fn handle(
        &self,
        f: Failure,
        backoff: &mut Backoff,
        crashes: &mut u32,
        ctx: &SourceContext<'_>,
        stop: &AtomicBool,
    ) -> Result<(), SourceError> {
        match f {
            Failure::Stopped => Ok(()),
            Failure::Fatal(m) => Err(self.err(format!(
                "{m}; stopped (the committed position is kept: the next run resumes from it)"
            ))),
            Failure::Transient(m) => {
                let Some(wait) = backoff.fail() else {
                    return Err(self.err(format!(
                        "{m}; gave up after {} transient errors in a row (`max_retries`)",
                        backoff.failures - 1
                    )));
                };
                tracing::warn!(connector = %self.host.who, attempt = backoff.failures, wait_ms = wait.as_millis() as u64, "transient error, retrying: {m}");
                self.status.retried(&m);
                self.set_state(
                    ctx,
                    format!(
                        "retrying in {:.1} s (attempt {}): {m}",
                        wait.as_secs_f64(),
                        backoff.failures
                    ),
                );
                metrics::counter!("connector_retries_total").increment(1);
                sleep_unless(stop, wait);
                Ok(())
            }
            Failure::Crash(m) => {
                *crashes += 1;
                let max = self.host.config().limits.max_crashes;
                if *crashes > max {
                    return Err(self.err(format!(
                        "{m}; stopped after {max} restarts in a row (the committed position is kept)"
                    )));
                }
                tracing::warn!(connector = %self.host.who, crashes = *crashes, "connector instance failed, starting a fresh one from the last position: {m}");
                self.status.restarted(&m);
                self.set_state(ctx, format!("restarting: {m}"));
                metrics::counter!("connector_restarts_total").increment(1);
                sleep_unless(stop, Duration::from_millis(100 << (*crashes).min(5)));
                Ok(())
            }
        }
    }
}
