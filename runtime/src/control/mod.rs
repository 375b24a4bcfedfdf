//! The control plane of a running pipeline: the stop, pause and reload
//! flags, the commands each transform's stage takes between two batches
//! (reload, shadow, promote, rollback), and the live status that `/status`
//! and `sluice ctl status` show.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender as Reply;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::plugin::{Candidate, LoadedPlugin};
use crate::shadow::AutoPromote;

use serde::Serialize;

mod stats;

pub use stats::{
    EXAMPLES_PER_REASON, ReasonExample, RecentDeadLetter, RecentDeadLetters, Stats, SwapTiming,
    TimePoint, Timeline,
};

/// The status of one transform, as its stage publishes it (and the
/// reloader, for a candidate it refused before it reached the stage).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TransformStatus {
    /// Transform name.
    pub name: String,
    /// The live version.
    pub live: String,
    /// Versions kept loaded for a rollback, oldest first.
    pub previous: Vec<String>,
    /// A candidate waiting for its trial batch, if one is.
    pub pending: Option<String>,
    /// Input records per version, in the order the versions went live.
    pub records_by_version: Vec<(String, u64)>,
    /// Why the last candidate was refused, if it was.
    pub last_refusal: Option<String>,
    /// The version of the last candidate refused on its trial batch.
    pub refused_version: Option<String>,
    /// The candidate running in shadow, and how its outcomes compare.
    pub shadow: Option<crate::shadow::ShadowReport>,
    /// What happened to the transform's versions, oldest first (at most
    /// [`TransformStatus::HISTORY`] events).
    pub history: Vec<VersionEvent>,
    /// The versions kept loaded, the live one last (what a rollback
    /// restarts, and what the reloader compares the files with).
    #[serde(skip)]
    pub loaded: Vec<Arc<LoadedPlugin>>,
}

impl TransformStatus {
    /// How many version events are kept.
    pub const HISTORY: usize = 50;

    /// The live version, if the stage has published one.
    pub fn live_plugin(&self) -> Option<&Arc<LoadedPlugin>> {
        self.loaded.last()
    }

    /// Adds an event to the history (the oldest goes when full), stamped
    /// with the time now.
    pub fn note(&mut self, mut event: VersionEvent) {
        event.time = crate::pipeline::dead_letter::now_micros();
        if self.history.len() == Self::HISTORY {
            self.history.remove(0);
        }
        self.history.push(event);
    }
}

/// What happened to a transform's versions: a candidate built, refused,
/// made live, rolled back from or promoted.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct VersionEvent {
    /// When, in µs since the epoch.
    pub time: i64,
    /// `started` (the first version), `candidate` (built and through its
    /// canary, waiting for its trial batch), `live` (passed its trial),
    /// `refused` (failed to build, its canary or its trial), `rollback`,
    /// `promoted` (a shadow made live) or `shadow` (a shadow started).
    pub event: String,
    /// The version concerned (none when the file did not even load).
    pub version: Option<String>,
    /// The version live before, for a change of the live version.
    pub from: Option<String>,
    /// The canary's result: `passed (N records)`, `none configured`, or
    /// why it failed.
    pub canary: Option<String>,
    /// The trial batch's result: `passed (N records)` or why it failed.
    pub trial: Option<String>,
    /// Anything else a person wants to know (the error of a refusal).
    pub detail: Option<String>,
}

impl VersionEvent {
    /// An event of kind `event` about `version`.
    pub fn new(event: &str, version: Option<&str>) -> Self {
        VersionEvent {
            event: event.into(),
            version: version.map(String::from),
            ..Default::default()
        }
    }
}

/// What a transform's stage is asked to do between two batches (or at
/// once, when no batch is in flight). The stage is the only owner of its
/// live version: every change of it goes through one of these.
#[derive(Debug)]
pub enum Command {
    /// A reloaded version: it becomes live after its first batch ran on it
    /// without failing (its trial). A newer one replaces one still waiting.
    Live(Candidate),
    /// Run this candidate in shadow of the live version (replacing any).
    Shadow(Candidate, Option<AutoPromote>),
    /// Stop the shadow.
    EndShadow,
    /// Make the shadow live. Answers with its version, or why not.
    Promote(Reply<Result<String, String>>),
    /// Make the previous version live again, this candidate being a fresh
    /// instance of it. Refused if the live version changed since the
    /// candidate was made. Answers with the version now live, or why not.
    Rollback(Candidate, Reply<Result<String, String>>),
}

/// How the rest of the process reaches one transform's stage.
#[derive(Debug, Clone)]
pub struct StageHandle {
    /// The transform's name.
    pub name: String,
    commands: Sender<Command>,
}

impl StageHandle {
    /// A handle sending to `commands`.
    pub fn new(name: String, commands: Sender<Command>) -> Self {
        StageHandle { name, commands }
    }

    /// Sends a command; an error means the stage's thread is gone.
    pub fn send(&self, command: Command) -> Result<(), String> {
        self.commands
            .send(command)
            .map_err(|_| format!("the thread of transform `{}` is gone", self.name))
    }
}

/// Shared by the pipeline threads, the signal handler and the admin API.
#[derive(Debug, Default)]
pub struct Control {
    /// Stop reading; commit what is in flight.
    pub stop: AtomicBool,
    /// Reload the pipeline file and every plugin (SIGHUP, `POST /reload`).
    pub reload: AtomicBool,
    /// The source holds back new batches while set.
    pub paused: AtomicBool,
    /// Live counters.
    pub stats: Stats,
    transforms: Mutex<Vec<TransformStatus>>,
    stages: Mutex<Vec<StageHandle>>,
    clocks: Mutex<Option<Arc<crate::pipeline::profile::Clocks>>>,
}

/// How long an operator's command waits for its stage: a stage answers
/// between two batches, so at most one batch (bounded by the plugin's
/// deadline) late.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

impl Control {
    /// A fresh control plane.
    pub fn new() -> Self {
        Self::default()
    }

    /// True once a stop was requested.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Shares the run's stage clocks (the console shows the time per stage
    /// while the run lasts).
    pub(crate) fn set_clocks(&self, clocks: Arc<crate::pipeline::profile::Clocks>) {
        *self.clocks.lock().unwrap_or_else(|p| p.into_inner()) = Some(clocks);
    }

    /// Where the run's time went so far, stage by stage (empty before the
    /// run starts).
    pub fn profile(&self) -> Option<crate::pipeline::Profile> {
        let clocks = self
            .clocks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let names: Vec<String> = self.transforms().iter().map(|t| t.name.clone()).collect();
        Some(crate::pipeline::Profile::new(&clocks, &names, &[]))
    }

    /// The transforms' status (a poisoned lock still gives the data).
    pub fn transforms(&self) -> MutexGuard<'_, Vec<TransformStatus>> {
        self.transforms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The running stages, in chain order (none when no run is going on).
    pub fn stages(&self) -> Vec<StageHandle> {
        self.stages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets the stages of the run starting (or none when it ended).
    pub(crate) fn set_stages(&self, stages: Vec<StageHandle>) {
        *self.stages.lock().unwrap_or_else(|p| p.into_inner()) = stages;
    }

    fn stage(&self, transform: &str) -> Result<(usize, StageHandle), String> {
        let stages = self.stages();
        if stages.is_empty() {
            return Err("the pipeline has no transforms or is not running".into());
        }
        stages
            .into_iter()
            .enumerate()
            .find(|(_, s)| s.name == transform)
            .ok_or_else(|| format!("no transform named `{transform}`"))
    }

    /// Makes the shadow of `transform` live, between two batches; waits for
    /// the stage's answer (the version now live).
    pub fn promote(&self, transform: &str) -> Result<String, String> {
        let (_, stage) = self.stage(transform)?;
        let (reply, answer) = std::sync::mpsc::channel();
        stage.send(Command::Promote(reply))?;
        answer
            .recv_timeout(ANSWER_WITHIN)
            .map_err(|_| format!("transform `{transform}` did not answer"))?
    }

    /// Makes the previous version of `transform` live again, between two
    /// batches. Its instance is started here, off the record path; waits
    /// for the stage's answer (the version now live).
    pub fn rollback(&self, transform: &str) -> Result<String, String> {
        let (i, stage) = self.stage(transform)?;
        let previous = {
            let ts = self.transforms();
            let loaded = ts.get(i).map(|t| t.loaded.as_slice()).unwrap_or_default();
            match loaded {
                [.., previous, _live] => previous.clone(),
                _ => {
                    return Err(format!(
                        "transform `{transform}` has no earlier version loaded"
                    ));
                }
            }
        };
        let candidate = Candidate::restart(previous).map_err(|e| e.to_string())?;
        let (reply, answer) = std::sync::mpsc::channel();
        stage.send(Command::Rollback(candidate, reply))?;
        answer
            .recv_timeout(ANSWER_WITHIN)
            .map_err(|_| format!("transform `{transform}` did not answer"))?
    }
}
