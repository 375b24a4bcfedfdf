//! A transform's stage: the one owner of its live version. It holds the
//! slot (the live version and the versions kept for a rollback), the shadow
//! and the candidate waiting for its trial batch. Everything that changes
//! what is live reaches it as a [`Command`] and is applied between two
//! batches, at once when no batch is in flight; the stage publishes the
//! result in the transform's status.
//!
//! Start-up is a swap from nothing: the first version is a [`Candidate`]
//! built by the same path as a reloaded one.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, never, select};

use super::InFlight;
use super::chain::{Processed, run_stage};
use super::profile::StageClocks;
use crate::control::{Command, Control, SwapTiming, VersionEvent};
use crate::plugin::{
    CallError, Candidate, LoadedPlugin, PluginInstance, StageOutput, TransformSlot,
};
use crate::shadow::{Shadow, ShadowReport};
use crate::sources::SourceBatch;

/// One transform of the chain, on its own thread.
pub(crate) struct Stage<'a> {
    index: usize,
    slot: TransformSlot,
    shadow: Option<Shadow>,
    /// A reloaded version waiting for its trial batch.
    pending: Option<Candidate>,
    control: &'a Control,
    /// Instances replaced by a swap, dropped once the batch in flight has
    /// been handed on (off the pause).
    retired: Vec<PluginInstance>,
}

impl<'a> Stage<'a> {
    /// The stage of transform number `index`, with `first` live.
    pub(crate) fn start(index: usize, first: Candidate, control: &'a Control) -> Self {
        let started = VersionEvent {
            canary: Some(first.canary_result()),
            ..VersionEvent::new("started", Some(first.plugin.version()))
        };
        let stage = Stage {
            index,
            slot: TransformSlot::with_instance(first.plugin, first.instance),
            shadow: None,
            pending: None,
            control,
            retired: Vec::new(),
        };
        stage.publish_versions();
        stage.note(started);
        stage
    }

    fn name(&self) -> &str {
        self.slot.plugin().name()
    }

    /// Runs the stage: batches from `input`, processed and handed to
    /// `output`; commands applied as they come, always between two batches.
    /// Returns the slot (its counters go into the summary) when the input
    /// ends, the output is gone, or a stop abandoned a batch.
    pub(crate) fn run(
        mut self,
        input: Receiver<InFlight>,
        output: Sender<InFlight>,
        commands: Receiver<Command>,
        clock: &StageClocks,
    ) -> TransformSlot {
        let no_more_commands = never();
        let mut commands_open = true;
        let mut t = Instant::now();
        loop {
            let from_control = if commands_open {
                &commands
            } else {
                &no_more_commands
            };
            select! {
                recv(input) -> batch => {
                    let Ok((batch, mut processed)) = batch else { break };
                    t = clock.waiting_in.add_since(t);
                    self.process(&batch, &mut processed);
                    if processed.abandoned {
                        // Stopping: neither this batch nor any after it may
                        // reach the sink, or the checkpoint would move past it.
                        tracing::info!(transform = %self.name(), "stopping: the batch in the plugin was interrupted; the next run reads it again");
                        break;
                    }
                    t = clock.work.add_since(t);
                    if output.send((batch, processed)).is_err() {
                        break;
                    }
                    t = clock.waiting_out.add_since(t);
                    self.retired.clear();
                }
                recv(from_control) -> command => match command {
                    Ok(command) => self.command(command),
                    // Every handle is gone: batches only from now on.
                    Err(_) => commands_open = false,
                }
            }
        }
        self.slot
    }

    /// Applies one command (between two batches).
    pub(crate) fn command(&mut self, command: Command) {
        match command {
            Command::Live(candidate) => {
                let version = candidate.plugin.version().to_string();
                if version == self.slot.plugin().version() {
                    // The file went back to what is live before the
                    // candidate waiting ran: nothing to swap.
                    if self.pending.take().is_some() {
                        tracing::info!(transform = %self.name(), version = %version, "the candidate waiting is dropped: the live version was asked for");
                    }
                } else {
                    let waiting = VersionEvent {
                        canary: Some(candidate.canary_result()),
                        from: Some(self.slot.plugin().version().to_string()),
                        ..VersionEvent::new("candidate", Some(&version))
                    };
                    if let Some(older) = self.pending.replace(candidate) {
                        tracing::info!(transform = %self.name(), dropped = %older.plugin.version(), version = %version, "a newer candidate replaces the one waiting for its trial batch");
                    }
                    self.note(waiting);
                }
                self.publish_versions();
            }
            Command::Shadow(candidate, auto) => {
                self.note(VersionEvent {
                    canary: Some(candidate.canary_result()),
                    from: Some(self.slot.plugin().version().to_string()),
                    ..VersionEvent::new("shadow", Some(candidate.plugin.version()))
                });
                let report = ShadowReport {
                    version: candidate.plugin.version().to_string(),
                    ..Default::default()
                };
                self.shadow = Some(Shadow {
                    slot: TransformSlot::with_instance(candidate.plugin, candidate.instance),
                    report,
                    auto,
                });
                self.publish_counts();
            }
            Command::EndShadow => {
                self.shadow = None;
                self.publish_counts();
            }
            Command::Promote(reply) => {
                let answer = self.promote();
                if let Err(e) = &answer {
                    tracing::warn!(transform = %self.name(), error = %e, "promotion refused");
                }
                let _ = reply.send(answer);
            }
            Command::Rollback(candidate, reply) => {
                let answer = self.roll_back(candidate);
                match &answer {
                    Ok(v) => tracing::info!(transform = %self.name(), version = %v, "rolled back"),
                    Err(e) => {
                        tracing::warn!(transform = %self.name(), error = %e, "rollback refused")
                    }
                }
                let _ = reply.send(answer);
            }
        }
    }

    /// Runs one batch: an automatic promotion due first, then the trial of
    /// a candidate waiting (its output is used if it passes), then the live
    /// version (and the shadow beside it).
    pub(crate) fn process(&mut self, batch: &SourceBatch, processed: &mut Processed) {
        if self.shadow.as_ref().is_some_and(Shadow::ready_to_promote)
            && let Err(e) = self.promote()
        {
            tracing::error!(transform = %self.name(), error = %e, "automatic promotion failed");
        }
        let mut ran = None;
        if !processed.spans.is_empty()
            && let Some(candidate) = self.pending.take()
        {
            ran = self.trial(candidate, batch, processed);
        }
        let inputs = processed.spans.len() as u64;
        run_stage(
            &mut self.slot,
            self.shadow.as_mut(),
            self.index,
            batch,
            processed,
            ran,
        );
        if processed.abandoned {
            return;
        }
        metrics::counter!(
            "plugin_records_total",
            "transform" => self.name().to_string(),
            "version" => self.slot.plugin().version().to_string()
        )
        .increment(inputs);
        self.publish_counts();
    }

    /// Runs `candidate` once on the batch: if that works it goes live and
    /// its output is the stage's; if not it is refused and the live version
    /// runs the batch.
    fn trial(
        &mut self,
        candidate: Candidate,
        batch: &SourceBatch,
        processed: &Processed,
    ) -> Option<StageOutput> {
        let data = processed.data.as_ref().unwrap_or(&batch.data);
        let ready_at = candidate.ready_at;
        let canary = Some(candidate.canary_result());
        let from = Some(self.slot.plugin().version().to_string());
        let records = processed.spans.len();
        let mut trial = TransformSlot::with_instance(candidate.plugin, candidate.instance);
        match trial.try_once(data, &processed.spans) {
            Ok(out) => {
                let (plugin, instance) = trial.into_parts();
                let instance = instance?;
                let version = plugin.version().to_string();
                self.swap_in(plugin, instance, ready_at);
                self.note(VersionEvent {
                    from,
                    canary,
                    trial: Some(format!("passed ({records} records)")),
                    ..VersionEvent::new("live", Some(&version))
                });
                // The trial counted its records on the new version.
                if let Some((_, n)) = self.slot.records_by_version.last_mut() {
                    *n += processed.spans.len() as u64;
                }
                Some(out)
            }
            // Interrupted by a stop: not the candidate's fault.
            Err(CallError::Stopped) => None,
            Err(e) => {
                let stats = &self.control.stats;
                stats.reload_failures.fetch_add(1, Ordering::Relaxed);
                let version = trial.plugin().version().to_string();
                let why = format!("version {version} failed its first batch: {e}");
                tracing::error!(transform = %self.name(), error = %why, "candidate refused; the running version stays live");
                self.publish_versions();
                if let Some(st) = self.control.transforms().get_mut(self.index) {
                    st.note(VersionEvent {
                        from,
                        canary,
                        trial: Some(format!("failed: {e}")),
                        ..VersionEvent::new("refused", Some(&version))
                    });
                    st.last_refusal = Some(why);
                    st.refused_version = Some(version);
                }
                None
            }
        }
    }

    /// Makes the shadow live.
    fn promote(&mut self) -> Result<String, String> {
        let Some(shadow) = self.shadow.take() else {
            return Err(format!("transform `{}` has no shadow", self.name()));
        };
        tracing::info!(transform = %self.name(), version = %shadow.report.version, compared = shadow.report.compared, differing = shadow.report.differing, "promoting the shadow");
        let detail = format!(
            "{} records compared in shadow, {} differing",
            shadow.report.compared, shadow.report.differing
        );
        let from = self.slot.plugin().version().to_string();
        let (plugin, instance) = shadow.slot.into_parts();
        let version = plugin.version().to_string();
        let instance = match instance {
            Some(i) => i,
            None => {
                Candidate::restart(plugin.clone())
                    .map_err(|e| format!("cannot start the shadow {version} to promote it: {e}"))?
                    .instance
            }
        };
        self.swap_in(plugin, instance, Instant::now());
        self.publish_counts();
        self.note(VersionEvent {
            from: Some(from),
            detail: Some(detail),
            ..VersionEvent::new("promoted", Some(&version))
        });
        Ok(version)
    }

    /// Makes the previous version live again (`candidate` is a fresh
    /// instance of it). A candidate waiting for its trial is dropped: it is
    /// what the operator rolls back from.
    fn roll_back(&mut self, candidate: Candidate) -> Result<String, String> {
        let version = candidate.plugin.version().to_string();
        if self.slot.previous().last().map(|p| p.version()) != Some(version.as_str()) {
            return Err(format!(
                "the live version of transform `{}` changed while the rollback was prepared; ask again",
                self.name()
            ));
        }
        if let Some(dropped) = self.pending.take() {
            tracing::info!(transform = %self.name(), dropped = %dropped.plugin.version(), "the candidate waiting for its trial is dropped by the rollback");
        }
        let paused = Instant::now();
        let from = self.slot.plugin().version().to_string();
        let retired = self.slot.roll_back(candidate.instance);
        self.note_swap(&from, paused, candidate.ready_at, retired);
        self.note(VersionEvent {
            from: Some(from),
            ..VersionEvent::new("rollback", Some(&version))
        });
        Ok(version)
    }

    /// Makes `plugin` live (between batches) and keeps the version it
    /// replaces for a rollback.
    fn swap_in(&mut self, plugin: Arc<LoadedPlugin>, instance: PluginInstance, ready_at: Instant) {
        let paused = Instant::now();
        let from = self.slot.plugin().version().to_string();
        let retired = self.slot.swap(plugin, instance);
        self.note_swap(&from, paused, ready_at, retired);
    }

    /// Counts, logs and publishes a change of the live version.
    fn note_swap(
        &mut self,
        from: &str,
        paused: Instant,
        ready_at: Instant,
        retired: Option<PluginInstance>,
    ) {
        let pause = paused.elapsed();
        self.retired.extend(retired);
        let stats = &self.control.stats;
        stats.reloads.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("reloads_total", "transform" => self.name().to_string()).increment(1);
        stats
            .swaps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(SwapTiming {
                transform: self.name().to_string(),
                version: self.slot.plugin().version().to_string(),
                at: Instant::now(),
                pause,
            });
        tracing::info!(
            transform = %self.name(),
            from = %from,
            to = %self.slot.plugin().version(),
            pause_us = pause.as_micros() as u64,
            ready_to_live_us = ready_at.elapsed().as_micros() as u64,
            "new version live"
        );
        self.publish_versions();
    }

    /// Adds an event to the transform's published history.
    fn note(&self, event: VersionEvent) {
        if let Some(st) = self.control.transforms().get_mut(self.index) {
            st.note(event);
        }
    }

    /// Publishes which versions are live, kept and waiting.
    fn publish_versions(&self) {
        let mut ts = self.control.transforms();
        let Some(st) = ts.get_mut(self.index) else {
            return;
        };
        let previous = self.slot.previous();
        st.live = self.slot.plugin().version().to_string();
        st.previous = previous.iter().map(|p| p.version().to_string()).collect();
        st.loaded = previous
            .iter()
            .chain([self.slot.plugin()])
            .cloned()
            .collect();
        st.pending = self
            .pending
            .as_ref()
            .map(|c| c.plugin.version().to_string());
        st.records_by_version
            .clone_from(&self.slot.records_by_version);
        st.shadow = self.shadow.as_ref().map(|s| s.report.clone());
    }

    /// Publishes the records per version and the shadow's comparison.
    fn publish_counts(&self) {
        if let Some(st) = self.control.transforms().get_mut(self.index) {
            st.records_by_version
                .clone_from(&self.slot.records_by_version);
            st.shadow = self.shadow.as_ref().map(|s| s.report.clone());
        }
    }
}

#[cfg(all(test, feature = "toolchain"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::ops::Range;
    use std::time::Duration;

    use sluice_codec::{BatchWriter, Record, Value};

    use super::*;
    use crate::control::{StageHandle, TransformStatus};
    use crate::plugin::wat_tests::component;
    use crate::plugin::{Grants, Limits, PluginHost, PluginSpec};

    /// A component that keeps every record unchanged; `k` makes versions
    /// that differ.
    fn keeps_all(k: u32) -> Vec<u8> {
        component(&format!(
            "(local $n i32) (local $out i32)
             (drop (i32.const {k}))
             (local.set $n (i32.load align=1 (i32.add (local.get 0) (i32.const 1))))
             (local.set $out (global.get $next))
             (global.set $next (i32.add (global.get $next)
                (i32.and (i32.add (local.get $n) (i32.const 12)) (i32.const -8))))
             (i32.store8 (local.get $out) (i32.const 1))
             (i32.store align=1 (i32.add (local.get $out) (i32.const 1)) (local.get $n))
             (memory.fill (i32.add (local.get $out) (i32.const 5)) (i32.const 0) (local.get $n))
             (i32.store8 (i32.const 16) (i32.const 0))
             (i32.store (i32.const 20) (local.get $out))
             (i32.store (i32.const 24) (i32.add (local.get $n) (i32.const 5)))
             (return (i32.const 16))"
        ))
    }

    /// A component that traps on every batch.
    fn traps() -> Vec<u8> {
        component("")
    }

    struct Versions {
        dir: tempfile::TempDir,
        host: PluginHost,
        made: u32,
    }

    impl Versions {
        fn new() -> Self {
            Versions {
                dir: tempfile::tempdir().unwrap(),
                host: PluginHost::new(None).unwrap(),
                made: 0,
            }
        }

        /// A candidate of transform `map` made of `wasm`.
        fn candidate(&mut self, wasm: Vec<u8>) -> Candidate {
            self.made += 1;
            let path = self.dir.path().join(format!("v{}.wasm", self.made));
            std::fs::write(&path, wasm).unwrap();
            let spec = PluginSpec {
                name: "map".into(),
                path,
                config_json: "{}".into(),
                grants: Grants::default(),
                limits: Limits::default(),
                canary: None,
            };
            Candidate::build(&self.host, &spec).unwrap()
        }
    }

    fn batch(n: i64) -> SourceBatch {
        let mut w = BatchWriter::default();
        for i in 0..n {
            let mut r = Record {
                stream: "people".into(),
                position: format!("line {i}").into(),
                ..Record::default()
            };
            r.set("id", Value::Int(i));
            w.push(&r);
        }
        let data = w.finish();
        let mut reader = sluice_codec::BatchReader::new(&data).unwrap();
        let mut spans: Vec<Range<u32>> = Vec::new();
        while let Some((at, bytes)) = reader.next_slice().unwrap() {
            spans.push(at as u32..(at + bytes.len()) as u32);
        }
        SourceBatch {
            data,
            spans,
            malformed: vec![],
            resume: "1".into(),
        }
    }

    fn control() -> Control {
        let control = Control::new();
        control.transforms().push(TransformStatus {
            name: "map".into(),
            ..Default::default()
        });
        control
    }

    fn status(control: &Control) -> TransformStatus {
        control.transforms()[0].clone()
    }

    /// Runs `b` through the stage; every record must come out kept, none
    /// dead-lettered. The version that ran it.
    fn run_all(stage: &mut Stage<'_>, b: &SourceBatch) -> String {
        let mut p = Processed::start(b);
        stage.process(b, &mut p);
        assert_eq!(p.spans.len(), b.spans.len());
        assert!(p.dead.is_empty(), "{:?}", p.dead);
        match p.versions.as_slice() {
            [(name, version)] if name == "map" => version.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_candidate_goes_live_on_a_good_trial_batch_and_is_refused_on_a_failed_one() {
        let mut versions = Versions::new();
        let control = control();
        let first = versions.candidate(keeps_all(0));
        let v0 = first.plugin.version().to_string();
        let mut stage = Stage::start(0, first, &control);
        assert_eq!(status(&control).live, v0);

        let next = versions.candidate(keeps_all(1));
        let v1 = next.plugin.version().to_string();
        stage.command(Command::Live(next));
        assert_eq!(status(&control).pending.as_deref(), Some(v1.as_str()));
        assert_eq!(status(&control).live, v0, "live only after its trial");

        let b = batch(3);
        assert_eq!(run_all(&mut stage, &b), v1);
        let st = status(&control);
        assert_eq!(st.live, v1);
        assert_eq!(st.previous, vec![v0.clone()]);
        assert_eq!(st.pending, None);
        assert_eq!(
            st.records_by_version,
            vec![(v0.clone(), 0), (v1.clone(), 3)]
        );
        assert_eq!(control.stats.reloads.load(Ordering::Relaxed), 1);

        // A candidate that fails its trial batch: the live version runs the
        // batch, nothing is lost, the refusal is in the status.
        let broken = versions.candidate(traps());
        let vb = broken.plugin.version().to_string();
        stage.command(Command::Live(broken));
        assert_eq!(run_all(&mut stage, &b), v1);
        let st = status(&control);
        assert_eq!(st.live, v1);
        assert_eq!(st.refused_version.as_deref(), Some(vb.as_str()));
        assert!(
            st.last_refusal
                .as_deref()
                .is_some_and(|w| w.contains("failed its first batch")),
            "{st:?}"
        );
        assert_eq!(control.stats.reload_failures.load(Ordering::Relaxed), 1);
        assert_eq!(
            st.records_by_version,
            vec![(v0.clone(), 0), (v1.clone(), 6)]
        );
        // The history tells the story, oldest first.
        let story: Vec<[&str; 4]> = st
            .history
            .iter()
            .map(|e| {
                [
                    e.event.as_str(),
                    e.version.as_deref().unwrap_or("-"),
                    e.from.as_deref().unwrap_or("-"),
                    e.trial.as_deref().unwrap_or("-"),
                ]
            })
            .collect();
        assert_eq!(
            story[..4],
            [
                ["started", v0.as_str(), "-", "-"],
                ["candidate", v1.as_str(), v0.as_str(), "-"],
                ["live", v1.as_str(), v0.as_str(), "passed (3 records)"],
                ["candidate", vb.as_str(), v1.as_str(), "-"],
            ]
        );
        let refused = &st.history[4];
        assert_eq!(refused.event, "refused");
        assert_eq!(refused.version.as_deref(), Some(vb.as_str()));
        assert!(
            refused
                .trial
                .as_deref()
                .is_some_and(|t| t.starts_with("failed: ")),
            "{refused:?}"
        );
        assert_eq!(refused.canary.as_deref(), Some("none configured"));
        assert!(st.history.iter().all(|e| e.time > 0));

        // A newer candidate replaces one waiting; asking for the live
        // version drops the one waiting.
        stage.command(Command::Live(versions.candidate(keeps_all(2))));
        stage.command(Command::Live(versions.candidate(keeps_all(1))));
        assert_eq!(status(&control).pending, None);
        assert_eq!(run_all(&mut stage, &b), v1);
        assert_eq!(status(&control).live, v1);
        assert_eq!(control.stats.reloads.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn rollback_and_promotion_apply_at_once_on_an_idle_stage_and_answer_what_is_live() {
        let mut versions = Versions::new();
        let control = control();
        let first = versions.candidate(keeps_all(0));
        let v0 = first.plugin.version().to_string();
        let (to_stage, input) = crossbeam_channel::bounded(1);
        let (output, from_stage) = crossbeam_channel::bounded(1);
        let (commands_tx, commands) = crossbeam_channel::unbounded();
        let handle = StageHandle::new("map".into(), commands_tx);
        control.set_stages(vec![handle.clone()]);
        let clock = StageClocks::default();
        std::thread::scope(|scope| {
            let stage = Stage::start(0, first, &control);
            let thread = scope.spawn(|| stage.run(input, output, commands, &clock));

            let refused = control.rollback("map").unwrap_err();
            assert!(
                refused.contains("has no earlier version loaded"),
                "{refused}"
            );
            let refused = control.promote("map").unwrap_err();
            assert!(refused.contains("has no shadow"), "{refused}");
            assert!(
                control
                    .rollback("nope")
                    .unwrap_err()
                    .contains("no transform named `nope`")
            );

            // A reloaded version goes live on the next batch.
            let next = versions.candidate(keeps_all(1));
            let v1 = next.plugin.version().to_string();
            handle.send(Command::Live(next)).unwrap();
            let b = batch(2);
            let p = Processed::start(&b);
            to_stage.send((b, p)).unwrap();
            let (_, p) = from_stage.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(p.versions, vec![("map".to_string(), v1.clone())]);

            // No batch in flight: the rollback is applied at once.
            assert_eq!(control.rollback("map"), Ok(v0.clone()));
            let st = status(&control);
            assert_eq!(st.live, v0);
            assert!(st.previous.is_empty(), "{st:?}");
            assert!(control.rollback("map").is_err());

            // A shadow, promoted on command.
            let shadow = versions.candidate(keeps_all(2));
            let v2 = shadow.plugin.version().to_string();
            handle.send(Command::Shadow(shadow, None)).unwrap();
            assert_eq!(control.promote("map"), Ok(v2.clone()));
            let st = status(&control);
            assert_eq!(
                (st.live.as_str(), st.previous.clone()),
                (v2.as_str(), vec![v0.clone()])
            );
            assert!(st.shadow.is_none());
            let b = batch(2);
            let p = Processed::start(&b);
            to_stage.send((b, p)).unwrap();
            let (_, p) = from_stage.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(p.versions, vec![("map".to_string(), v2)]);

            // A rollback prepared for a version that is no longer the one
            // before the live one is refused.
            let stale = versions.candidate(keeps_all(3));
            let (reply, answer) = std::sync::mpsc::channel();
            handle.send(Command::Rollback(stale, reply)).unwrap();
            let refused = answer
                .recv_timeout(Duration::from_secs(10))
                .unwrap()
                .unwrap_err();
            assert!(refused.contains("changed while"), "{refused}");
            assert_eq!(control.rollback("map"), Ok(v0.clone()));

            drop(to_stage);
            let slot = thread.join().unwrap();
            assert_eq!(slot.plugin().version(), v0);
        });
    }
}
