//! Hot reload: watch the plugin files and the pipeline file, build a
//! candidate version off the record path, and hand it to its transform's
//! stage, which tries it on its next batch and swaps it in between two
//! batches.
//!
//! A candidate goes live only if it loads (a complete, valid component of
//! the right world), its `init` succeeds with its config and its canary
//! records pass, then its trial batch. Otherwise the running version stays
//! live and the refusal is logged, counted and shown in the status. A
//! pipeline-file change that cannot be applied live (source, sink,
//! dead-letter sink, runtime settings, or the list of transforms) is refused
//! as a whole, never half applied.
//!
//! The reloader knows files, not live versions: which version is live, kept
//! for a rollback, on trial or in shadow is the stage's to know
//! (`pipeline/stage.rs`). The reloader remembers, per transform, what it
//! last built from the files, so that it acts on changes only.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};

use crate::config::Pipeline;
use crate::config::toml_to_json;
use crate::control::{Command, Control, StageHandle, VersionEvent};
use crate::plugin::{Candidate, PluginError, PluginHost, PluginSpec, plugin_specs};
use crate::shadow::AutoPromote;

/// A transform's shadow as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowSpec {
    /// The candidate.
    pub spec: PluginSpec,
    /// Automatic promotion.
    pub auto: Option<AutoPromote>,
}

/// The shadow of each transform of a pipeline, in chain order.
pub fn shadow_specs(p: &Pipeline) -> Vec<Option<ShadowSpec>> {
    p.config
        .transforms
        .iter()
        .zip(plugin_specs(p))
        .map(|(t, live)| {
            let s = t.shadow.as_ref()?;
            Some(ShadowSpec {
                spec: PluginSpec {
                    name: live.name.clone(),
                    path: s.plugin.clone(),
                    config_json: s
                        .config
                        .as_ref()
                        .map_or(live.config_json.clone(), toml_to_json),
                    ..live
                },
                auto: s.promote_after.map(|after| AutoPromote {
                    after,
                    max_difference: s.max_difference,
                }),
            })
        })
        .collect()
}

/// What the reloader needs.
pub struct Reloader<'a> {
    /// The running pipeline (its file is watched).
    pub pipeline: Pipeline,
    /// The plugin host shared with the transform threads.
    pub host: Arc<PluginHost>,
    /// The transforms' stages, in chain order.
    pub stages: Vec<StageHandle>,
    /// Set when the run is over.
    pub done: &'a AtomicBool,
    /// The reload flag, the counters and the status.
    pub control: &'a Control,
    /// Watch files (else only SIGHUP and `POST /reload` reload).
    pub watch: bool,
}

/// What the reloader knows of one transform: what the files say, and what
/// it last built from them.
struct Watched {
    /// The transform's spec as the pipeline file gives it now.
    spec: PluginSpec,
    /// The spec and file hash of the last version built (at first, the
    /// version loaded at start): the same again is not rebuilt.
    built: (PluginSpec, Option<String>),
    /// The version last sent to the stage, until it went live or was
    /// refused on its trial batch.
    sent: Option<String>,
    /// The configured shadow.
    shadow: Option<ShadowSpec>,
    /// The shadow must be (re)built and sent, or ended.
    shadow_dirty: bool,
    shadow_hash: Option<String>,
}

impl Watched {
    fn new(spec: PluginSpec, loaded_hash: Option<String>, shadow: Option<ShadowSpec>) -> Self {
        Watched {
            built: (spec.clone(), loaded_hash),
            spec,
            sent: None,
            shadow_dirty: shadow.is_some(),
            shadow_hash: None,
            shadow,
        }
    }
}

fn file_hash(path: &Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|b| crate::plugin::content_hash(&b))
}

impl Reloader<'_> {
    /// Runs until the run is over.
    pub fn run(self) {
        let Reloader {
            pipeline,
            host,
            stages,
            done,
            control,
            watch,
        } = self;
        let stats = &control.stats;
        let loaded: Vec<Option<String>> = {
            let ts = control.transforms();
            (0..stages.len())
                .map(|i| {
                    ts.get(i)
                        .and_then(|t| t.live_plugin())
                        .map(|p| p.content_hash().to_string())
                })
                .collect()
        };
        let mut live: Vec<Watched> = plugin_specs(&pipeline)
            .into_iter()
            .zip(loaded)
            .zip(shadow_specs(&pipeline))
            // What was loaded, not what is on disk now: a change made
            // before the watcher was ready is found by the first pass.
            .map(|((spec, hash), shadow)| Watched::new(spec, hash, shadow))
            .collect();
        let (tx, events) = std::sync::mpsc::channel::<DebounceEventResult>();
        let mut debouncer = None;
        if watch {
            match new_debouncer(Duration::from_millis(250), None, move |r| {
                let _ = tx.send(r);
            }) {
                Ok(d) => debouncer = Some(d),
                Err(e) => tracing::warn!(error = %e, "cannot watch files; reload with SIGHUP"),
            }
        }
        let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
        let mut rewatch = |live: &[Watched], debouncer: &mut Option<_>| {
            let Some(d) = debouncer.as_mut() else { return };
            let d: &mut notify_debouncer_full::Debouncer<_, _> = d;
            let dirs = live
                .iter()
                .flat_map(|l| {
                    [
                        Some(l.spec.path.as_path()),
                        l.shadow.as_ref().map(|s| s.spec.path.as_path()),
                    ]
                })
                .flatten()
                .chain([pipeline.path.as_path()])
                .filter_map(|p| std::path::absolute(p).ok()?.parent().map(Path::to_path_buf));
            for dir in dirs {
                // Watch directories, not files: editors and build tools
                // replace files by renaming, which a file watch would miss.
                if watched.insert(dir.clone())
                    && let Err(e) = d.watch(&dir, RecursiveMode::NonRecursive)
                {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory");
                }
            }
        };
        rewatch(&live, &mut debouncer);
        let pipeline_path = std::path::absolute(&pipeline.path).unwrap_or(pipeline.path.clone());
        let refuse = |i: usize, why: String| {
            stats.reload_failures.fetch_add(1, Ordering::Relaxed);
            if let Some(st) = control.transforms().get_mut(i) {
                st.last_refusal = Some(why);
            }
        };
        // The first pass checks everything once the watches are set.
        let mut first_pass = true;
        while !done.load(Ordering::Relaxed) {
            // A version refused on its trial batch was not applied: the
            // same files may be tried again.
            {
                let ts = control.transforms();
                for (l, st) in live.iter_mut().zip(ts.iter()) {
                    if l.sent.is_some() && l.sent == st.refused_version {
                        l.sent = None;
                        if let Some(p) = st.live_plugin() {
                            l.built = (p.spec().clone(), Some(p.content_hash().to_string()));
                        }
                    } else if l.sent.as_deref() == Some(st.live.as_str()) {
                        l.sent = None;
                    }
                }
            }
            for (i, l) in live.iter_mut().enumerate() {
                if !std::mem::take(&mut l.shadow_dirty) {
                    continue;
                }
                let command = match &l.shadow {
                    None => Command::EndShadow,
                    Some(s) => match Candidate::build(&host, &s.spec) {
                        Ok(c) => {
                            tracing::info!(transform = %l.spec.name, version = %c.plugin.version(), "shadow candidate ready");
                            l.shadow_hash = file_hash(&s.spec.path);
                            Command::Shadow(c, s.auto)
                        }
                        Err(e) => {
                            tracing::error!(transform = %l.spec.name, error = %e, "shadow candidate refused");
                            refuse(i, e.to_string());
                            continue;
                        }
                    },
                };
                if stages[i].send(command).is_err() {
                    return;
                }
            }
            let mut touched: BTreeSet<PathBuf> = BTreeSet::new();
            let mut all = false;
            if std::mem::take(&mut first_pass) {
                all = true;
            } else if control.reload.swap(false, Ordering::Relaxed) {
                tracing::info!("reload requested");
                all = true;
            } else {
                match recv(&events) {
                    Some(paths) => touched = paths,
                    None => continue,
                }
            }
            if all || touched.contains(&pipeline_path) {
                match reload_pipeline(&pipeline, &live) {
                    Ok(Some((specs, shadows))) => {
                        for ((l, spec), shadow) in live.iter_mut().zip(specs).zip(shadows) {
                            if l.spec != spec {
                                touched.insert(spec.path.clone());
                                l.spec = spec;
                            }
                            if l.shadow != shadow {
                                l.shadow = shadow;
                                l.shadow_dirty = true;
                            }
                        }
                        rewatch(&live, &mut debouncer);
                    }
                    Ok(None) => {}
                    Err(message) => {
                        stats.reload_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(pipeline = %pipeline.path.display(), "{message}");
                    }
                }
            }
            for l in live.iter_mut() {
                if let Some(s) = &l.shadow
                    && (all || touched.contains(&s.spec.path))
                    && file_hash(&s.spec.path) != l.shadow_hash
                {
                    l.shadow_dirty = true;
                }
            }
            for (i, l) in live.iter_mut().enumerate() {
                if !all && !touched.contains(&l.spec.path) && !touched.contains(&l.built.0.path) {
                    continue;
                }
                let target = (l.spec.clone(), file_hash(&l.spec.path));
                if target.1.is_some() && target == l.built {
                    continue; // Same file, same config: nothing to do.
                }
                match Candidate::build(&host, &target.0) {
                    Ok(c) => {
                        tracing::info!(transform = %l.spec.name, version = %c.plugin.version(), "candidate ready; trying it on the next batch");
                        l.built = target;
                        l.sent = Some(c.plugin.version().to_string());
                        if let Some(st) = control.transforms().get_mut(i) {
                            st.last_refusal = None;
                            st.refused_version = None;
                        }
                        if stages[i].send(Command::Live(c)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        metrics::counter!("reload_failures_total", "transform" => l.spec.name.clone()).increment(1);
                        tracing::error!(transform = %l.spec.name, error = %e, "candidate refused; the running version stays live");
                        if let Some(st) = control.transforms().get_mut(i) {
                            let version = match &e {
                                PluginError::Init { version, .. }
                                | PluginError::Canary { version, .. } => Some(version.as_str()),
                                _ => None,
                            };
                            let mut event = VersionEvent::new("refused", version);
                            match &e {
                                PluginError::Canary { reason, .. } => {
                                    event.canary = Some(format!("failed: {reason}"));
                                }
                                _ => event.detail = Some(e.to_string()),
                            }
                            event.from = Some(st.live.clone());
                            st.note(event);
                        }
                        refuse(i, e.to_string());
                    }
                }
            }
        }
    }
}

/// Waits briefly for file events and returns the paths they changed.
/// Reads (`Access` events, our own reads included) change nothing.
fn recv(events: &Receiver<DebounceEventResult>) -> Option<BTreeSet<PathBuf>> {
    match events.recv_timeout(Duration::from_millis(100)) {
        Ok(Ok(evs)) => Some(
            evs.iter()
                .filter(|e| !matches!(e.kind, EventKind::Access(_) | EventKind::Other))
                .flat_map(|e| e.paths.iter())
                .map(|p| std::path::absolute(p).unwrap_or(p.clone()))
                .collect(),
        ),
        Ok(Err(errors)) => {
            for e in errors {
                tracing::warn!(error = %e, "file watch error");
            }
            None
        }
        Err(RecvTimeoutError::Timeout) => None,
        // No watcher (`watch = false`): only SIGHUP reloads.
        Err(RecvTimeoutError::Disconnected) => {
            std::thread::sleep(Duration::from_millis(100));
            None
        }
    }
}

/// What a re-read pipeline file changes: the transforms' new specs and
/// shadows, or `None` when nothing changed.
type Reread = Option<(Vec<PluginSpec>, Vec<Option<ShadowSpec>>)>;

/// Re-reads the pipeline file. `Ok(Some(specs))`: the transforms' new specs
/// (only transforms may change live); `Ok(None)`: unchanged; `Err`: the
/// change is refused, with the reason.
fn reload_pipeline(running: &Pipeline, live: &[Watched]) -> Result<Reread, String> {
    let mut new = Pipeline::load(&running.path)
        .map_err(|e| format!("pipeline file not applied, the running configuration stays: {e}"))?;
    // What the command line changed is not a change of the file.
    let mut until = running.config.source.clone();
    until.set_until_caught_up();
    if until == running.config.source {
        new.config.source.set_until_caught_up();
    }
    let (a, b) = (&running.config, &new.config);
    let mut fixed = Vec::new();
    if a.source != b.source {
        fixed.push("[source]");
    }
    if a.sink != b.sink {
        fixed.push("[sink]");
    }
    if a.dead_letter != b.dead_letter {
        fixed.push("[dead_letter]");
    }
    if a.runtime != b.runtime {
        fixed.push("[runtime]");
    }
    if running.name != new.name {
        fixed.push("`name`");
    }
    let names = |p: &Pipeline| {
        p.config
            .transforms
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
    };
    if names(running) != names(&new) {
        fixed.push("the list of [[transforms]] (added, removed, renamed or reordered)");
    }
    if !fixed.is_empty() {
        return Err(format!(
            "pipeline file changed {} which cannot be applied while running; nothing was applied: restart sluice to apply it",
            fixed.join(", ")
        ));
    }
    let specs = plugin_specs(&new);
    let shadows = shadow_specs(&new);
    let changed = specs
        .iter()
        .zip(&shadows)
        .zip(live)
        .any(|((s, sh), l)| *s != l.spec || *sh != l.shadow);
    Ok(changed.then_some((specs, shadows)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BASE: &str = r#"name = "p"
[source]
type = "csv"
path = "in.csv"

[[transforms]]
name = "map"
plugin = "map.wasm"
config = { rename = { a = "b" } }

[[transforms]]
name = "check"
plugin = "check.wasm"

[sink]
type = "jsonl"
path = "out.jsonl"
"#;

    /// The reloader's view of a pipeline just started.
    fn live_of(p: &Pipeline) -> Vec<Watched> {
        plugin_specs(p)
            .into_iter()
            .zip(shadow_specs(p))
            .map(|(spec, shadow)| Watched::new(spec, None, shadow))
            .collect()
    }

    /// Writes `text` as the pipeline file and asks the reloader what to do.
    fn reread(
        path: &Path,
        running: &Pipeline,
        live: &[Watched],
        text: &str,
    ) -> Result<Reread, String> {
        std::fs::write(path, text).unwrap();
        reload_pipeline(running, live)
    }

    #[test]
    fn a_pipeline_file_change_applies_to_transforms_only_and_never_in_half() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, BASE).unwrap();
        let running = Pipeline::load(&path).unwrap();
        let live = live_of(&running);
        // Saved again unchanged (comments and spacing aside): nothing to do.
        let same = format!(
            "# edited\n{}",
            BASE.replace("type = \"csv\"", "type  =  \"csv\"")
        );
        assert!(reread(&path, &running, &live, &same).unwrap().is_none());
        // A transform's config: its new spec, the other's unchanged.
        let (specs, shadows) = reread(
            &path,
            &running,
            &live,
            &BASE.replace("a = \"b\"", "a = \"c\""),
        )
        .unwrap()
        .unwrap();
        assert!(
            specs[0].config_json.contains("\"c\""),
            "{}",
            specs[0].config_json
        );
        assert_ne!(specs[0], live[0].spec);
        assert_eq!(specs[1], live[1].spec);
        assert_eq!(shadows, [None, None]);
        // A shadow added to `check`: the same specs, a shadow with its rule
        // and the transform's config.
        // (In TOML the shadow's table follows its transform.)
        let text = BASE.replace(
            "plugin = \"check.wasm\"\n",
            "plugin = \"check.wasm\"\n[transforms.shadow]\nplugin = \"check-v2.wasm\"\npromote_after = 500\nmax_difference = 0.02\n",
        );
        let (specs, shadows) = reread(&path, &running, &live, &text).unwrap().unwrap();
        assert_eq!(specs[1], live[1].spec);
        let shadow = shadows[1].as_ref().unwrap();
        assert!(shadow.spec.path.ends_with("check-v2.wasm"));
        assert_eq!(shadow.spec.config_json, live[1].spec.config_json);
        assert_eq!(
            shadow.auto,
            Some(AutoPromote {
                after: 500,
                max_difference: 0.02
            })
        );
        // What cannot change live is refused, every part named, and
        // nothing applied (the transform's change neither).
        let e = reread(
            &path,
            &running,
            &live,
            &BASE
                .replace("out.jsonl", "other.jsonl")
                .replace("in.csv", "other.csv")
                .replace("a = \"b\"", "a = \"c\""),
        )
        .unwrap_err();
        assert!(
            e.contains("[source], [sink]") && e.contains("nothing was applied"),
            "{e}"
        );
        let swapped = BASE
            .replace("name = \"map\"", "name = \"tmp\"")
            .replace("name = \"check\"", "name = \"map\"")
            .replace("name = \"tmp\"", "name = \"check\"");
        let e = reread(&path, &running, &live, &swapped).unwrap_err();
        assert!(e.contains("the list of [[transforms]]"), "{e}");
        let e = reread(&path, &running, &live, "name = ").unwrap_err();
        assert!(e.contains("the running configuration stays"), "{e}");
    }

    /// `--until-caught-up` changes the running source's settings, not the
    /// file's: the file read again is not a change of `[source]`.
    #[test]
    fn the_command_line_is_not_a_change_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        let text = BASE.replace(
            "type = \"csv\"\npath = \"in.csv\"",
            "type = \"jsonl\"\npath = \"in.jsonl\"\nfollow = true",
        );
        std::fs::write(&path, &text).unwrap();
        let mut running = Pipeline::load(&path).unwrap();
        running.config.source.set_until_caught_up();
        assert_ne!(
            running.config.source,
            Pipeline::load(&path).unwrap().config.source
        );
        let live = live_of(&running);
        assert!(reread(&path, &running, &live, &text).unwrap().is_none());
    }

    /// The reloader's loop, run against files of WAT components (which
    /// need the toolchain feature's component encoder). The test plays the
    /// stage: it receives the commands and publishes the status.
    #[cfg(feature = "toolchain")]
    mod running {
        use super::*;
        use crate::control::TransformStatus;
        use crate::plugin::wat_tests::component;
        use std::time::Instant;

        /// Waits until `done` holds (the reloader polls every 100 ms), at most 10 s.
        fn eventually(done: impl Fn() -> bool) -> bool {
            let until = Instant::now() + Duration::from_secs(10);
            while !done() {
                if Instant::now() > until {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            true
        }

        /// The candidate of the next command, which must be `Live`.
        fn live_candidate(rx: &crossbeam_channel::Receiver<Command>) -> Candidate {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Command::Live(c)) => c,
                Ok(other) => panic!("{other:?}, not a live version"),
                Err(_) => panic!("no command to the stage"),
            }
        }

        /// No command within `wait`.
        fn quiet(rx: &crossbeam_channel::Receiver<Command>, wait: Duration) -> bool {
            rx.recv_timeout(wait).is_err()
        }

        #[test]
        fn the_reloader_sends_a_new_file_refuses_a_broken_one_and_retries_one_refused_on_trial() {
            let dir = tempfile::tempdir().unwrap();
            let wasm = dir.path().join("map.wasm");
            std::fs::write(&wasm, component("")).unwrap();
            let path = dir.path().join("p.toml");
            std::fs::write(
                &path,
                "name = \"p\"\n[source]\ntype = \"csv\"\npath = \"in.csv\"\n\n\
                 [[transforms]]\nname = \"map\"\nplugin = \"map.wasm\"\n\n\
                 [sink]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n",
            )
            .unwrap();
            let running = Pipeline::load(&path).unwrap();
            let host = Arc::new(PluginHost::new(None).unwrap());
            let first = Candidate::build(&host, &plugin_specs(&running)[0]).unwrap();
            let first_version = first.plugin.version().to_string();
            let (tx, rx) = crossbeam_channel::unbounded();
            let done = AtomicBool::new(false);
            let control = Control::new();
            // What the stage publishes at start.
            let publish = |live: &Arc<crate::plugin::LoadedPlugin>| {
                let mut ts = control.transforms();
                ts.resize_with(1, TransformStatus::default);
                ts[0].name = "map".into();
                ts[0].live = live.version().to_string();
                ts[0].loaded = vec![live.clone()];
            };
            publish(&first.plugin);
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    Reloader {
                        pipeline: running,
                        host: host.clone(),
                        stages: vec![StageHandle::new("map".into(), tx)],
                        done: &done,
                        control: &control,
                        watch: false,
                    }
                    .run()
                });
                // The first pass finds the file as it was loaded: nothing to do.
                assert!(quiet(&rx, Duration::from_millis(500)));

                // A new build of the file is sent to the stage.
                std::fs::write(&wasm, component("(drop (i32.const 1))")).unwrap();
                control.reload.store(true, Ordering::Relaxed);
                let second = live_candidate(&rx);
                assert_ne!(second.plugin.version(), first_version);
                // Asked again with nothing changed: nothing is sent.
                control.reload.store(true, Ordering::Relaxed);
                assert!(quiet(&rx, Duration::from_millis(400)));

                // The stage refuses it on its trial batch: a reload tries
                // the same file again.
                control.transforms()[0].refused_version = Some(second.plugin.version().to_string());
                control.reload.store(true, Ordering::Relaxed);
                let again = live_candidate(&rx);
                assert_eq!(again.plugin.version(), second.plugin.version());
                assert_eq!(control.transforms()[0].refused_version, None);
                // This time it goes live.
                publish(&again.plugin);

                // A broken file is refused: nothing sent, the refusal in status.
                std::fs::write(&wasm, b"\0asm broken").unwrap();
                control.reload.store(true, Ordering::Relaxed);
                let failures = || control.stats.reload_failures.load(Ordering::Relaxed);
                assert!(eventually(|| failures() == 1), "{} failures", failures());
                assert!(quiet(&rx, Duration::from_millis(300)));
                let why = control.transforms()[0].last_refusal.clone().unwrap();
                assert!(!why.is_empty());
                // Asking again for the same broken file refuses it again.
                control.reload.store(true, Ordering::Relaxed);
                assert!(eventually(|| failures() == 2), "{} failures", failures());
                assert!(quiet(&rx, Duration::from_millis(300)));

                // A good file again is sent and clears the refusal.
                std::fs::write(&wasm, component("(drop (i32.const 2))")).unwrap();
                control.reload.store(true, Ordering::Relaxed);
                let third = live_candidate(&rx);
                let third = third.plugin.version().to_string();
                assert!(third != first_version && third != second.plugin.version());
                assert_eq!(control.transforms()[0].last_refusal, None);
                done.store(true, Ordering::Relaxed);
            });
        }
    }
}
