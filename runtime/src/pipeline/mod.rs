//! The pipeline: source → transforms → sink over bounded channels, dead
//! letters, checkpoints after each committed batch, a graceful stop.
//!
//! One thread per stage: the source reads and encodes batches; each
//! transform runs on a thread of its own, owned by its `stage` (the one
//! owner of the transform's live version, taking commands between two
//! batches); the calling thread writes the sink and the dead-letter sink,
//! then saves the checkpoint (`commit`). Channels hold at most
//! `runtime.channel_capacity` batches, so a slow sink slows the source.
//! [`run`] only wires these threads, the reloader and the stop watch.

mod chain;
pub mod checkpoint;
pub(crate) mod commit;
pub mod dead_letter;
pub(crate) mod profile;
pub mod run_lock;
mod stage;
mod summary;

use profile::Clocks;
pub use profile::{Profile, StageProfile};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};

pub use crate::control::{Command, Control, StageHandle, Stats, SwapTiming, TransformStatus};
pub use chain::{Processed, run_stage};
pub use checkpoint::{Checkpoint, CheckpointError, Checkpoints};
pub use dead_letter::{DeadLetter, Kind};
pub use summary::{PluginSummary, Summary};

use crate::config::Pipeline;
use crate::plugin::{Candidate, PluginError, PluginHost, TransformSlot, plugin_specs};
use crate::reload::Reloader;
use crate::sinks::{self, SinkConfig, SinkError};
use crate::sources::{self, SourceBatch, SourceError, Stopped};
use stage::Stage;

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
    /// The first version of each transform, in chain order: built,
    /// canary-checked and started like any later version.
    pub first: Vec<Candidate>,
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

impl Prepared {
    /// The first versions as slots, in chain order, for running batches
    /// outside a run (`verify`, `replay`).
    pub fn take_slots(&mut self) -> Vec<TransformSlot> {
        std::mem::take(&mut self.first)
            .into_iter()
            .map(|c| TransformSlot::with_instance(c.plugin, c.instance))
            .collect()
    }
}

/// Runs `records` as one batch through `slots` (the first versions, outside
/// a run): the batch and what the transforms made of it.
pub fn run_records(
    slots: &mut [TransformSlot],
    records: &[sluice_codec::Record<'_>],
) -> (SourceBatch, Processed) {
    let mut w = sluice_codec::BatchWriter::with_capacity(1 << 16);
    let mut spans = Vec::with_capacity(records.len());
    for r in records {
        let at = w.push(r);
        spans.push(at as u32..w.byte_len() as u32);
    }
    let batch = SourceBatch {
        data: w.finish(),
        spans,
        malformed: Vec::new(),
        resume: String::new(),
    };
    let mut p = Processed::start(&batch);
    for (stage, slot) in slots.iter_mut().enumerate() {
        run_stage(slot, None, stage, &batch, &mut p, None);
    }
    (batch, p)
}

/// Builds the first version of every transform (the candidate path a
/// reload takes too: load, canary, start).
pub fn prepare(pipeline: Pipeline) -> Result<Prepared, RunError> {
    let host = Arc::new(PluginHost::new(Some(pipeline.cache_dir.clone()))?);
    let first = plugin_specs(&pipeline)
        .iter()
        .map(|spec| Candidate::build(&host, spec))
        .collect::<Result<Vec<_>, _>>()?;
    let dead_letter = dead_letter_config(&pipeline);
    Ok(Prepared {
        pipeline,
        host,
        first,
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

/// Forgets the run's stages when dropped: after the run, commands to a
/// transform are refused instead of going to a thread that is gone.
struct ClearStages<'a>(&'a Control);

impl Drop for ClearStages<'_> {
    fn drop(&mut self) {
        self.0.set_stages(Vec::new());
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
        first,
        dead_letter,
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
    *control.transforms() = first
        .iter()
        .map(|c| TransformStatus {
            name: c.plugin.name().to_string(),
            ..Default::default()
        })
        .collect();
    let total = source.size_hint();
    observer.start(total, 0);

    let capacity = rt.channel_capacity;
    let (batch_size, batch_bytes) = (rt.batch_size, rt.batch_bytes);
    let source_desc = source.describe();

    let done = AtomicBool::new(false);
    let watch = rt.watch;
    let interrupter = host.clone();
    let reload_pipeline = pipeline.clone();
    let clocks = Arc::new(Clocks::new(first.len()));
    // The console reads them while the run lasts.
    control.set_clocks(clocks.clone());
    let clocks = &*clocks;
    let result = std::thread::scope(|scope| -> Result<Vec<TransformSlot>, RunError> {
        let _done_on_exit = SetOnDrop(&done);
        let (to_first, mut upstream): (Sender<InFlight>, Receiver<InFlight>) = bounded(capacity);
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
                // The total is added to at every batch, so that the console
                // sees it grow while the run lasts.
                let mark = std::cell::Cell::new(Instant::now());
                let mut send = |b: SourceBatch| {
                    let p = Processed::start(&b);
                    let t = Instant::now();
                    let sent = to_first.send((b, p)).map_err(|_| Stopped);
                    clocks.source_waiting_out.add_since(t);
                    mark.set(clocks.source_total.add_since(mark.get()));
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
                drop(ctx);
                clocks.source_total.add_since(mark.get());
                read
            })
            .map_err(|e| RunError::Internal(format!("cannot start the source thread: {e}")))?;
        // One thread per transform: on 2 cores the stages, the source and
        // the sink share the CPU instead of queueing behind one thread.
        let mut stage_threads = Vec::new();
        let mut handles = Vec::new();
        for (index, candidate) in first.into_iter().enumerate() {
            let (tx, rx): (Sender<InFlight>, Receiver<InFlight>) = bounded(capacity);
            let (commands_tx, commands) = unbounded::<Command>();
            handles.push(StageHandle::new(
                candidate.plugin.name().to_string(),
                commands_tx,
            ));
            let input = std::mem::replace(&mut upstream, rx);
            let stage = Stage::start(index, candidate, control);
            let clock = &clocks.stages[index];
            let handle = std::thread::Builder::new()
                .name(format!("sluice-t{index}"))
                .spawn_scoped(scope, move || stage.run(input, tx, commands, clock))
                .map_err(|e| RunError::Internal(format!("cannot start a transform thread: {e}")))?;
            stage_threads.push(handle);
        }
        control.set_stages(handles.clone());
        let _no_stages_on_exit = ClearStages(control);
        if !handles.is_empty() {
            let reloader = Reloader {
                pipeline: reload_pipeline,
                host: host.clone(),
                stages: handles,
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
            replay: None,
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
