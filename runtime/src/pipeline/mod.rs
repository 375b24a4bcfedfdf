//! The pipeline: source → transforms → sink over bounded channels, dead
//! letters, checkpoints after each committed batch, a graceful stop.
//!
//! One thread per stage: the source reads and encodes batches; each
//! transform runs on a thread of its own (`chain::run_stage`); the calling
//! thread writes the sink and the dead-letter sink, then saves the
//! checkpoint (`commit`). Channels hold at most `runtime.channel_capacity`
//! batches, so a slow sink slows the source.

mod chain;
pub mod checkpoint;
mod commit;
pub mod dead_letter;
mod profile;
pub mod run_lock;
mod summary;

use profile::Clocks;
pub use profile::{Profile, StageProfile};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

pub(crate) use crate::control::LiveChange;
pub use crate::control::{Control, Request, Stats, SwapTiming, TransformStatus};
pub use chain::{Processed, run_stage};
pub use checkpoint::{Checkpoint, CheckpointError, Checkpoints};
pub use dead_letter::{DeadLetter, Kind};
pub use summary::{PluginSummary, Summary};

use crate::config::Pipeline;
use crate::plugin::{LoadedPlugin, PluginError, PluginHost, TransformSlot, plugin_specs};
use crate::reload::{Reloader, StageMsg};
use crate::shadow::{Shadow, ShadowReport};
use crate::sinks::{self, SinkConfig, SinkError};
use crate::sources::{self, SourceBatch, SourceError, Stopped};

/// A pipeline run that failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A plugin could not be loaded or started.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The sink failed.
    #[error(transparent)]
    Sink(SinkError),
    /// The dead-letter sink failed: nothing may be lost, so the run stops.
    #[error("dead-letter sink: {0}")]
    DeadLetter(SinkError),
    /// The checkpoint store failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A pipeline thread died.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Everything a run needs, loaded and checked.
pub struct Prepared {
    /// The pipeline file.
    pub pipeline: Pipeline,
    /// The plugin host (keeps the engine alive; the reloader loads
    /// candidates with it).
    pub host: Arc<PluginHost>,
    /// The loaded plugins, in chain order.
    pub plugins: Vec<Arc<LoadedPlugin>>,
    /// One started instance per plugin.
    pub slots: Vec<TransformSlot>,
    /// The dead-letter sink config actually used.
    pub dead_letter: SinkConfig,
}

/// The dead-letter sink of a pipeline (the default is a JSONL file in the
/// state directory).
pub fn dead_letter_config(p: &Pipeline) -> SinkConfig {
    p.config.dead_letter.clone().unwrap_or_else(|| {
        SinkConfig::Jsonl(sinks::jsonl::JsonlSinkConfig {
            path: p.state_dir.join(format!("{}.dead_letter.jsonl", p.name)),
            include_metadata: Some(false),
            fsync: false,
        })
    })
}

/// Loads every plugin and starts one instance of each.
pub fn prepare(pipeline: Pipeline) -> Result<Prepared, RunError> {
    let host = Arc::new(PluginHost::new(Some(pipeline.cache_dir.clone()))?);
    let mut plugins = Vec::new();
    let mut slots = Vec::new();
    for spec in plugin_specs(&pipeline) {
        let plugin = Arc::new(host.load(spec)?);
        crate::plugin::check_canary_of(&plugin)?;
        slots.push(TransformSlot::new(plugin.clone())?);
        plugins.push(plugin);
    }
    let dead_letter = dead_letter_config(&pipeline);
    Ok(Prepared {
        pipeline,
        host,
        plugins,
        slots,
        dead_letter,
    })
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Forget the checkpoint and start from the beginning.
    pub reset: bool,
}

/// Sets a flag when dropped: tells the reloader the run is over on every
/// way out of the run, early errors included.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Hooks for the CLI: called with the source's size once, then regularly.
pub trait Observer: Send {
    /// The source's total size in progress units, if known.
    fn start(&mut self, total: Option<u64>, resumed_at: u64);
    /// Called after each committed batch.
    fn progress(&mut self, stats: &Stats);
}

/// An observer that shows nothing.
pub struct Quiet;

impl Observer for Quiet {
    fn start(&mut self, _total: Option<u64>, _resumed_at: u64) {}
    fn progress(&mut self, _stats: &Stats) {}
}

/// What flows between the pipeline's threads.
type InFlight = (SourceBatch, Processed);

/// Runs a prepared pipeline to the end of its source or until
/// `control.stop` is set.
pub fn run(
    prepared: Prepared,
    options: &RunOptions,
    control: Arc<Control>,
    observer: &mut dyn Observer,
) -> Result<Summary, RunError> {
    let stop_check: crate::sinks::StopCheck = {
        let control = control.clone();
        Arc::new(move || control.stop.load(Ordering::Relaxed))
    };
    let control: &Control = &control;
    let stop = &control.stop;
    let stats = &control.stats;
    let started = Instant::now();
    let Prepared {
        pipeline,
        host,
        slots,
        dead_letter,
        ..
    } = prepared;
    let rt = &pipeline.config.runtime;
    let store = Checkpoints::open(&pipeline.state_dir)?;
    if options.reset {
        store.reset(&pipeline.name)?;
    }
    let checkpoint = store.load(&pipeline.name)?;
    let mut source = sources::build(&pipeline.config.source)?;
    let mut sink = sinks::build(&pipeline.config.sink).map_err(RunError::Sink)?;
    let mut dlq = sinks::build(&dead_letter).map_err(RunError::DeadLetter)?;
    dlq.serve_dead_letters();
    {
        let mut connectors = stats
            .connectors
            .lock()
            .map_err(|_| RunError::Internal("stats lock poisoned".into()))?;
        connectors.clear();
        connectors.extend(source.connector_status());
        connectors.extend(sink.connector_status());
        connectors.extend(dlq.connector_status());
    }
    sink.use_declared_types(stats.source.declared_types());
    sink.set_stop_check(stop_check);
    sink.open(checkpoint.as_ref().and_then(|c| c.sink.as_deref()))
        .map_err(RunError::Sink)?;
    dlq.open(checkpoint.as_ref().and_then(|c| c.dead_letter.as_deref()))
        .map_err(RunError::DeadLetter)?;
    let resume = checkpoint.as_ref().map(|c| c.source.clone());
    let external = pipeline.config.source.position_is_external();
    let committed_before = if external {
        0
    } else {
        checkpoint.as_ref().map_or(0, |c| c.records)
    };
    if external {
        tracing::info!(pipeline = %pipeline.name, "resuming from the consumer group's committed offsets");
    } else if let Some(c) = &checkpoint {
        tracing::info!(pipeline = %pipeline.name, position = %c.source, records = c.records, "resuming from checkpoint");
    }
    *control.transforms() = slots
        .iter()
        .map(|s| TransformStatus {
            name: s.plugin().name().to_string(),
            live: s.plugin().version().to_string(),
            records_by_version: s.records_by_version.clone(),
            ..Default::default()
        })
        .collect();
    let initial_plugins: Vec<Arc<LoadedPlugin>> =
        slots.iter().map(|s| s.plugin().clone()).collect();
    let total = source.size_hint();
    observer.start(total, 0);

    let capacity = rt.channel_capacity;
    let (batch_size, batch_bytes) = (rt.batch_size, rt.batch_bytes);
    let source_desc = source.describe();

    let done = AtomicBool::new(false);
    let watch = rt.watch;
    let interrupter = host.clone();
    let reload_pipeline = pipeline.clone();
    let clocks = &Clocks::new(slots.len());
    let result = std::thread::scope(|scope| -> Result<Vec<TransformSlot>, RunError> {
        let _done_on_exit = SetOnDrop(&done);
        let (to_first, mut upstream): (SyncSender<InFlight>, Receiver<InFlight>) =
            sync_channel(capacity);
        // A stop interrupts the plugin calls in progress instead of
        // waiting for them (a plugin can take up to its deadline).
        std::thread::Builder::new()
            .name("sluice-stop".into())
            .spawn_scoped(scope, || {
                while !done.load(Ordering::Relaxed) {
                    if stop.load(Ordering::Relaxed) {
                        interrupter.interrupt();
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            })
            .map_err(|e| RunError::Internal(format!("cannot start the stop thread: {e}")))?;
        let source_thread = std::thread::Builder::new()
            .name("sluice-source".into())
            .spawn_scoped(scope, move || -> Result<(), SourceError> {
                let began = Instant::now();
                let mut send = |b: SourceBatch| {
                    let p = Processed::start(&b);
                    let t = Instant::now();
                    let sent = to_first.send((b, p)).map_err(|_| Stopped);
                    clocks.source_waiting_out.add_since(t);
                    sent
                };
                let mut ctx = sources::SourceContext::new(
                    batch_size,
                    batch_bytes,
                    &mut send,
                    stop,
                    &control.paused,
                    &stats.progress,
                    &stats.source,
                );
                let read = source.run(resume.as_deref(), &mut ctx);
                clocks.source_total.add_since(began);
                read
            })
            .map_err(|e| RunError::Internal(format!("cannot start the source thread: {e}")))?;
        // One thread per transform: on 2 cores the stages, the source and
        // the sink share the CPU instead of queueing behind one thread.
        let mut stage_threads = Vec::new();
        let mut swap_senders = Vec::new();
        for (stage, mut slot) in slots.into_iter().enumerate() {
            let (tx, rx): (SyncSender<InFlight>, Receiver<InFlight>) = sync_channel(capacity);
            let (swap_tx, messages) = std::sync::mpsc::channel::<StageMsg>();
            swap_senders.push(swap_tx);
            let input = std::mem::replace(&mut upstream, rx);
            let handle = std::thread::Builder::new()
                .name(format!("sluice-t{stage}"))
                .spawn_scoped(scope, move || {
                    let mut shadow: Option<Shadow> = None;
                    let mut pending: Option<crate::reload::Swap> = None;
                    let clock = &clocks.stages[stage];
                    let mut t = Instant::now();
                    while let Ok((batch, mut processed)) = input.recv() {
                        t = clock.waiting_in.add_since(t);
                        // Between two batches: take what the reloader sent.
                        let mut retired = Vec::new();
                        while let Ok(msg) = messages.try_recv() {
                            match msg {
                                // The newest candidate wins; it goes live once it
                                // has run a batch without failing.
                                StageMsg::Live(swap) => pending = Some(swap),
                                StageMsg::Shadow(swap, auto) => {
                                    let report = ShadowReport { version: swap.plugin.version().to_string(), ..Default::default() };
                                    shadow = Some(Shadow {
                                        slot: TransformSlot::with_instance(swap.plugin, swap.instance),
                                        report,
                                        auto,
                                    });
                                }
                                StageMsg::EndShadow => shadow = None,
                            }
                        }
                        let promote = control.transforms().get_mut(stage).is_some_and(|st| std::mem::take(&mut st.promote));
                        if shadow.as_ref().is_some_and(|s| promote || s.ready_to_promote())
                            && let Some(s) = shadow.take()
                        {
                            tracing::info!(transform = %slot.plugin().name(), version = %s.report.version, compared = s.report.compared, differing = s.report.differing, "promoting the shadow");
                            let (plugin, instance) = s.slot.into_parts();
                            match instance.map(Ok).unwrap_or_else(|| plugin.instantiate()) {
                                Ok(instance) => {
                                    control.report(stage, LiveChange::Promoted(plugin.clone()));
                                    retired.extend(swap_in(&mut slot, plugin, instance, Instant::now(), stats));
                                }
                                Err(e) => tracing::error!(error = %e, "cannot start the shadow to promote it"),
                            }
                        }
                        let mut ran = None;
                        if !processed.spans.is_empty()
                            && let Some(swap) = pending.take()
                        {
                            let data = processed.data.as_ref().unwrap_or(&batch.data);
                            let mut trial = TransformSlot::with_instance(swap.plugin.clone(), swap.instance);
                            match trial.try_once(data, &processed.spans) {
                                Ok(out) => {
                                    let (plugin, instance) = trial.into_parts();
                                    if let Some(instance) = instance {
                                        retired.extend(swap_in(&mut slot, plugin, instance, swap.ready_at, stats));
                                        // The trial counted its records on the new version.
                                        if let Some((_, n)) = slot.records_by_version.last_mut() {
                                            *n += processed.spans.len() as u64;
                                        }
                                        ran = Some(out);
                                    }
                                }
                                // Interrupted by a stop: not the candidate's fault.
                                Err(crate::plugin::CallError::Stopped) => {}
                                Err(e) => {
                                    stats.reload_failures.fetch_add(1, Ordering::Relaxed);
                                    control.report(stage, LiveChange::TrialFailed(swap.plugin.version().to_string()));
                                    let why = format!("version {} failed its first batch: {e}", swap.plugin.version());
                                    tracing::error!(transform = %slot.plugin().name(), error = %why, "candidate refused; the running version stays live");
                                    if let Some(st) = control.transforms().get_mut(stage) {
                                        st.last_refusal = Some(why);
                                    }
                                }
                            }
                        }
                        let swapped = !retired.is_empty();
                        let inputs = processed.spans.len() as u64;
                        run_stage(&mut slot, shadow.as_mut(), stage, &batch, &mut processed, ran);
                        if processed.abandoned {
                            // Stopping: neither this batch nor any after it
                            // may reach the sink, or the checkpoint would
                            // move past it.
                            tracing::info!(transform = %slot.plugin().name(), "stopping: the batch in the plugin was interrupted; the next run reads it again");
                            break;
                        }
                        metrics::counter!(
                            "plugin_records_total",
                            "transform" => slot.plugin().name().to_string(),
                            "version" => slot.plugin().version().to_string()
                        )
                        .increment(inputs);
                        if let Some(st) = control.transforms().get_mut(stage) {
                            if swapped {
                                st.live = slot.plugin().version().to_string();
                                st.previous = slot
                                    .previous()
                                    .iter()
                                    .map(|p| p.version().to_string())
                                    .collect();
                            }
                            st.records_by_version.clone_from(&slot.records_by_version);
                            st.shadow = shadow.as_ref().map(|s| s.report.clone());
                        }
                        t = clock.work.add_since(t);
                        if tx.send((batch, processed)).is_err() {
                            break;
                        }
                        t = clock.waiting_out.add_since(t);
                        drop(retired);
                    }
                    slot
                })
                .map_err(|e| RunError::Internal(format!("cannot start a transform thread: {e}")))?;
            stage_threads.push(handle);
        }
        if !swap_senders.is_empty() {
            let reloader = Reloader {
                pipeline: reload_pipeline,
                host: host.clone(),
                swaps: swap_senders,
                live: initial_plugins,
                done: &done,
                control,
                watch,
            };
            std::thread::Builder::new()
                .name("sluice-reload".into())
                .spawn_scoped(scope, move || reloader.run())
                .map_err(|e| RunError::Internal(format!("cannot start the reload thread: {e}")))?;
        }
        let from_chain = upstream;

        let mut committer = commit::Committer {
            sink: sink.as_mut(),
            dlq: dlq.as_mut(),
            stats,
            cp: checkpoint.clone().unwrap_or_default(),
            store: &store,
            pipeline: &pipeline.name,
            clocks,
        };
        let sink_result = (|| -> Result<(), RunError> {
            let mut t = Instant::now();
            while let Ok((batch, processed)) = from_chain.recv() {
                clocks.sink_waiting_in.add_since(t);
                committer.commit(&batch, processed)?;
                observer.progress(stats);
                t = Instant::now();
            }
            Ok(())
        })();
        if sink_result.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        done.store(true, Ordering::Relaxed);
        drop(from_chain);
        let mut slots = Vec::new();
        for t in stage_threads {
            slots.push(
                t.join()
                    .map_err(|_| RunError::Internal("a transform thread panicked".into()))?,
            );
        }
        let source_result = source_thread
            .join()
            .map_err(|_| RunError::Internal("the source thread panicked".into()))?;
        sink_result?;
        source_result?;
        Ok(slots)
    });
    let slots = result?;
    drop(host);
    Ok(Summary::new(
        &pipeline,
        &source_desc,
        sink.describe(),
        dlq.describe(),
        stats,
        &slots,
        clocks,
        started.elapsed(),
        stop.load(Ordering::Relaxed),
        committed_before,
    ))
}

/// Makes a version live in `slot` (between batches), records the pause.
fn swap_in(
    slot: &mut TransformSlot,
    plugin: Arc<LoadedPlugin>,
    instance: crate::plugin::PluginInstance,
    ready_at: Instant,
    stats: &Stats,
) -> Option<crate::plugin::PluginInstance> {
    let paused = Instant::now();
    let from = slot.plugin().version().to_string();
    let retired = slot.swap(plugin, instance);
    let pause = paused.elapsed();
    stats.reloads.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("reloads_total", "transform" => slot.plugin().name().to_string())
        .increment(1);
    stats
        .swaps
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(SwapTiming {
            transform: slot.plugin().name().to_string(),
            version: slot.plugin().version().to_string(),
            at: Instant::now(),
            pause,
        });
    tracing::info!(
        transform = %slot.plugin().name(),
        from = %from,
        to = %slot.plugin().version(),
        pause_us = pause.as_micros() as u64,
        ready_to_live_us = ready_at.elapsed().as_micros() as u64,
        "new version live"
    );
    retired
}
