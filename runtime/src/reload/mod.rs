//! Hot reload: watch the plugin files and the pipeline file, build a
//! candidate version off the record path, and hand it to its transform
//! thread, which swaps it in between two batches.
//!
//! A candidate goes live only if it loads (a complete, valid component of
//! the right world) and its `init` succeeds with its config. Otherwise the
//! running version stays live and the refusal is logged and counted. A
//! pipeline-file change that cannot be applied live (source, sink,
//! dead-letter sink, runtime settings, or the list of transforms) is refused
//! as a whole, never half applied.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};

use crate::config::Pipeline;
use crate::config::toml_to_json;
use crate::control::{Control, LiveChange, Request};
use crate::plugin::{LoadedPlugin, PluginHost, PluginInstance, PluginSpec, plugin_specs};
use crate::shadow::AutoPromote;

/// What the reloader tells a transform thread.
pub enum StageMsg {
    /// Make this version live at the next batch.
    Live(Swap),
    /// Run this candidate in shadow (replacing any shadow).
    Shadow(Swap, Option<AutoPromote>),
    /// Stop the shadow.
    EndShadow,
}

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

/// A started candidate for one transform, ready to be swapped in.
pub struct Swap {
    /// The new version.
    pub plugin: Arc<LoadedPlugin>,
    /// Its started instance (`init` done).
    pub instance: PluginInstance,
    /// When the candidate was ready (to measure the time to go live).
    pub ready_at: Instant,
}

/// What the reloader needs.
pub struct Reloader<'a> {
    /// The running pipeline (its file is watched).
    pub pipeline: Pipeline,
    /// The plugin host shared with the transform threads.
    pub host: Arc<PluginHost>,
    /// One sender per transform thread, in chain order.
    pub swaps: Vec<Sender<StageMsg>>,
    /// The live version of each transform at start.
    pub live: Vec<Arc<LoadedPlugin>>,
    /// Set when the run is over.
    pub done: &'a AtomicBool,
    /// Reload requests, rollbacks, status.
    pub control: &'a Control,
    /// Watch files (else only SIGHUP and `POST /reload` reload).
    pub watch: bool,
}

/// The live state of one transform as the reloader knows it.
struct Live {
    spec: PluginSpec,
    file_hash: Option<String>,
    /// The versions that went live, the live one last.
    history: Vec<Arc<LoadedPlugin>>,
    /// A spec from a changed pipeline file, not live yet.
    wanted: Option<PluginSpec>,
    /// The configured shadow.
    shadow: Option<ShadowSpec>,
    /// The shadow must be (re)built and sent, or ended.
    shadow_dirty: bool,
    shadow_hash: Option<String>,
}

fn file_hash(path: &Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|b| crate::plugin::content_hash(&b))
}

impl Reloader<'_> {
    /// Runs until `stop` is set or the transform threads are gone.
    pub fn run(self) {
        let Reloader {
            pipeline,
            host,
            swaps,
            live: initial,
            done,
            control,
            watch,
        } = self;
        let stats = &control.stats;
        let mut live: Vec<Live> = plugin_specs(&pipeline)
            .into_iter()
            .zip(initial)
            .zip(shadow_specs(&pipeline))
            .map(|((spec, plugin), shadow)| Live {
                // What was loaded, not what is on disk now: a change made
                // before the watcher was ready is found by the first pass.
                file_hash: Some(plugin.content_hash().to_string()),
                spec,
                history: vec![plugin],
                wanted: None,
                shadow_dirty: shadow.is_some(),
                shadow_hash: None,
                shadow,
            })
            .collect();
        let (request_tx, requests) = std::sync::mpsc::channel::<Request>();
        control.set_requests(Some(request_tx));
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
        let mut rewatch = |live: &[Live], debouncer: &mut Option<_>| {
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
        // The first pass checks everything once the watches are set.
        let mut first_pass = true;
        while !done.load(Ordering::Relaxed) {
            for (i, change) in control.take_live_changes() {
                let Some(l) = live.get_mut(i) else { continue };
                match change {
                    // A promoted shadow is live now: a rollback returns to
                    // the version before it.
                    LiveChange::Promoted(plugin) => {
                        l.history.push(plugin);
                        if l.history.len() > crate::plugin::TransformSlot::HISTORY + 1 {
                            l.history.remove(0);
                        }
                    }
                    // A candidate refused on its trial batch never went live:
                    // what is live is the version before it.
                    LiveChange::TrialFailed(version) => {
                        if l.history.len() > 1
                            && l.history.last().is_some_and(|p| p.version() == version)
                        {
                            l.history.pop();
                            if let Some(p) = l.history.last() {
                                l.spec = p.spec().clone();
                                l.file_hash = Some(p.content_hash().to_string());
                            }
                        }
                    }
                }
            }
            for (i, l) in live.iter_mut().enumerate() {
                if !std::mem::take(&mut l.shadow_dirty) {
                    continue;
                }
                let msg = match &l.shadow {
                    None => StageMsg::EndShadow,
                    Some(s) => match candidate(&host, &s.spec) {
                        Ok(swap) => {
                            tracing::info!(transform = %l.spec.name, version = %swap.plugin.version(), "shadow candidate ready");
                            l.shadow_hash = file_hash(&s.spec.path);
                            StageMsg::Shadow(swap, s.auto)
                        }
                        Err(e) => {
                            stats.reload_failures.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(transform = %l.spec.name, error = %e, "shadow candidate refused");
                            if let Some(st) = control.transforms().get_mut(i) {
                                st.last_refusal = Some(e.to_string());
                            }
                            continue;
                        }
                    },
                };
                if swaps[i].send(msg).is_err() {
                    break;
                }
            }
            while let Ok(req) = requests.try_recv() {
                match req {
                    Request::Rollback { transform, reply } => {
                        let answer = rollback(&mut live, &swaps, &transform);
                        match &answer {
                            Ok(v) => {
                                tracing::info!(transform = %transform, version = %v, "rolling back at the next batch");
                            }
                            Err(e) => {
                                tracing::warn!(transform = %transform, error = %e, "rollback refused")
                            }
                        }
                        let _ = reply.send(answer);
                    }
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
                                // Live only if the candidate succeeds.
                                l.wanted = Some(spec);
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
                let target = l.wanted.take().unwrap_or_else(|| l.spec.clone());
                if !all && !touched.contains(&target.path) && !touched.contains(&l.spec.path) {
                    continue;
                }
                let hash = file_hash(&target.path);
                if target == l.spec && hash.is_some() && hash == l.file_hash {
                    continue; // Same file, same config: nothing to do.
                }
                match candidate(&host, &target) {
                    Ok(swap) => {
                        tracing::info!(transform = %l.spec.name, version = %swap.plugin.version(), "candidate ready; swapping it in at the next batch");
                        l.spec = target;
                        l.file_hash = hash;
                        l.history.push(swap.plugin.clone());
                        if l.history.len() > crate::plugin::TransformSlot::HISTORY + 1 {
                            l.history.remove(0);
                        }
                        if let Some(st) = control.transforms().get_mut(i) {
                            st.last_refusal = None;
                        }
                        if swaps[i].send(StageMsg::Live(swap)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        stats.reload_failures.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("reload_failures_total", "transform" => l.spec.name.clone()).increment(1);
                        tracing::error!(transform = %l.spec.name, error = %e, "candidate refused; the running version stays live");
                        if let Some(st) = control.transforms().get_mut(i) {
                            st.last_refusal = Some(e.to_string());
                        }
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

/// Swaps the previous version of `transform` back in (a fresh instance of
/// it, started off the record path).
fn rollback(
    live: &mut [Live],
    swaps: &[Sender<StageMsg>],
    transform: &str,
) -> Result<String, String> {
    let i = live
        .iter()
        .position(|l| l.spec.name == transform)
        .ok_or_else(|| format!("no transform named `{transform}`"))?;
    let l = &mut live[i];
    if l.history.len() < 2 {
        return Err(format!(
            "transform `{transform}` has no earlier version loaded"
        ));
    }
    let previous = l.history[l.history.len() - 2].clone();
    let instance = previous.instantiate().map_err(|e| e.to_string())?;
    let version = previous.version().to_string();
    l.history.pop();
    // The rolled-back version and its config are live now; the files on
    // disk are applied again only when they change (or on a reload).
    l.spec = previous.spec().clone();
    l.file_hash = file_hash(&l.spec.path);
    swaps[i]
        .send(StageMsg::Live(Swap {
            plugin: previous,
            instance,
            ready_at: Instant::now(),
        }))
        .map_err(|_| "the transform thread is gone".to_string())?;
    Ok(version)
}

/// Loads and starts a candidate off the record path.
fn candidate(host: &PluginHost, spec: &PluginSpec) -> Result<Swap, crate::plugin::PluginError> {
    let plugin = Arc::new(host.load(spec.clone())?);
    crate::plugin::check_canary_of(&plugin)?;
    let instance = plugin.instantiate()?;
    Ok(Swap {
        plugin,
        instance,
        ready_at: Instant::now(),
    })
}

/// What a re-read pipeline file changes: the transforms' new specs and
/// shadows, or `None` when nothing changed.
type Reread = Option<(Vec<PluginSpec>, Vec<Option<ShadowSpec>>)>;

/// Re-reads the pipeline file. `Ok(Some(specs))`: the transforms' new specs
/// (only transforms may change live); `Ok(None)`: unchanged; `Err`: the
/// change is refused, with the reason.
fn reload_pipeline(running: &Pipeline, live: &[Live]) -> Result<Reread, String> {
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
    fn live_of(p: &Pipeline) -> Vec<Live> {
        plugin_specs(p)
            .into_iter()
            .zip(shadow_specs(p))
            .map(|(spec, shadow)| Live {
                spec,
                file_hash: None,
                history: Vec::new(),
                wanted: None,
                shadow,
                shadow_dirty: false,
                shadow_hash: None,
            })
            .collect()
    }

    /// Writes `text` as the pipeline file and asks the reloader what to do.
    fn reread(
        path: &Path,
        running: &Pipeline,
        live: &[Live],
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
    /// need the toolchain feature's component encoder).
    #[cfg(feature = "toolchain")]
    mod running {
        use super::*;
        use crate::plugin::wat_tests::component;

        /// The next message to the transform thread within `wait`, if any.
        fn next_msg(rx: &Receiver<StageMsg>, wait: Duration) -> Option<StageMsg> {
            rx.recv_timeout(wait).ok()
        }

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

        fn live_version(msg: Option<StageMsg>) -> String {
            match msg {
                Some(StageMsg::Live(swap)) => swap.plugin.version().to_string(),
                Some(StageMsg::Shadow(..)) => panic!("a shadow, not a live version"),
                Some(StageMsg::EndShadow) => panic!("an end of shadow, not a live version"),
                None => panic!("no message to the transform thread"),
            }
        }

        #[test]
        fn the_reloader_swaps_in_a_new_file_keeps_the_live_version_for_a_broken_one_and_rolls_back()
        {
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
            let first = Arc::new(host.load(plugin_specs(&running)[0].clone()).unwrap());
            let first_version = first.version().to_string();
            let (tx, rx) = std::sync::mpsc::channel();
            let done = AtomicBool::new(false);
            let control = Control::new();
            control.transforms().push(crate::control::TransformStatus {
                name: "map".into(),
                ..Default::default()
            });
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    Reloader {
                        pipeline: running,
                        host: host.clone(),
                        swaps: vec![tx],
                        live: vec![first],
                        done: &done,
                        control: &control,
                        watch: false,
                    }
                    .run()
                });
                let wait = Duration::from_secs(10);
                // The first pass finds the file as it was loaded: nothing to do.
                assert!(next_msg(&rx, Duration::from_millis(500)).is_none());
                // Nothing to roll back to yet.
                let refused = control.rollback("map").unwrap_err();
                assert!(refused.contains("no earlier version"), "{refused}");

                // A new build of the file goes live.
                std::fs::write(&wasm, component("(drop (i32.const 1))")).unwrap();
                control.reload.store(true, Ordering::Relaxed);
                let second = live_version(next_msg(&rx, wait));
                assert_ne!(second, first_version);

                // A broken file is refused: no message, the refusal in status.
                std::fs::write(&wasm, b"\0asm broken").unwrap();
                control.reload.store(true, Ordering::Relaxed);
                let failures = || control.stats.reload_failures.load(Ordering::Relaxed);
                assert!(eventually(|| failures() == 1), "{} failures", failures());
                assert!(next_msg(&rx, Duration::from_millis(300)).is_none());
                let why = control.transforms()[0].last_refusal.clone().unwrap();
                assert!(!why.is_empty());
                // Asking again for the same broken file refuses it again.
                control.reload.store(true, Ordering::Relaxed);
                assert!(eventually(|| failures() == 2), "{} failures", failures());
                assert!(next_msg(&rx, Duration::from_millis(300)).is_none());

                // A rollback returns to the first version, then there is none left.
                assert_eq!(control.rollback("map"), Ok(first_version.clone()));
                assert_eq!(live_version(next_msg(&rx, wait)), first_version);
                assert!(control.rollback("map").is_err());
                assert!(
                    control
                        .rollback("nope")
                        .unwrap_err()
                        .contains("no transform")
                );

                // A good file again goes live and clears the refusal.
                std::fs::write(&wasm, component("(drop (i32.const 2))")).unwrap();
                control.reload.store(true, Ordering::Relaxed);
                let third = live_version(next_msg(&rx, wait));
                assert!(third != first_version && third != second);
                assert_eq!(control.transforms()[0].last_refusal, None);
                done.store(true, Ordering::Relaxed);
            });
        }
    }
}
