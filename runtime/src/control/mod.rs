//! The control plane of a running pipeline: stop, pause, reload, rollback,
//! and the live status that `/status` and `sluice ctl status` show.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;

mod stats;

pub use stats::{Stats, SwapTiming};

/// The status of one transform.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TransformStatus {
    /// Transform name.
    pub name: String,
    /// The live version.
    pub live: String,
    /// Versions kept loaded for a rollback, oldest first.
    pub previous: Vec<String>,
    /// Input records per version, in the order the versions went live.
    pub records_by_version: Vec<(String, u64)>,
    /// Why the last candidate was refused, if it was.
    pub last_refusal: Option<String>,
    /// The candidate running in shadow, and how its outcomes compare.
    pub shadow: Option<crate::shadow::ShadowReport>,
    /// Set to promote the shadow at the next batch.
    #[serde(skip)]
    pub promote: bool,
}

/// A request to the reloader that needs an answer.
#[derive(Debug)]
pub enum Request {
    /// Make the previous version of a transform live again.
    Rollback {
        /// The transform.
        transform: String,
        /// The new live version, or why not.
        reply: Sender<Result<String, String>>,
    },
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
    requests: Mutex<Option<Sender<Request>>>,
    /// What the transform threads changed on their own, in order, for the
    /// reloader: (transform index, change).
    live_changes: Mutex<Vec<(usize, LiveChange)>>,
}

/// A change of the live version made by a transform thread, not by the
/// reloader.
#[derive(Debug)]
pub(crate) enum LiveChange {
    /// The shadow was promoted: this version is live now.
    Promoted(std::sync::Arc<crate::plugin::LoadedPlugin>),
    /// The candidate of this version failed its trial batch: it never went live.
    TrialFailed(String),
}

impl Control {
    /// A fresh control plane.
    pub fn new() -> Self {
        Self::default()
    }

    /// True once a stop was requested.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The transforms' status (a poisoned lock still gives the data).
    pub fn transforms(&self) -> MutexGuard<'_, Vec<TransformStatus>> {
        self.transforms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A transform thread changed what is live.
    pub(crate) fn report(&self, stage: usize, change: LiveChange) {
        self.live_changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((stage, change));
    }

    /// The changes reported since the last call, in order.
    pub(crate) fn take_live_changes(&self) -> Vec<(usize, LiveChange)> {
        std::mem::take(&mut *self.live_changes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Where requests for the reloader go, while it runs.
    pub(crate) fn set_requests(&self, tx: Option<Sender<Request>>) {
        *self.requests.lock().unwrap_or_else(|p| p.into_inner()) = tx;
    }

    /// Asks for the shadow of `transform` to become live at its next batch.
    pub fn promote(&self, transform: &str) -> Result<String, String> {
        let mut ts = self.transforms();
        let t = ts
            .iter_mut()
            .find(|t| t.name == transform)
            .ok_or_else(|| format!("no transform named `{transform}`"))?;
        let Some(shadow) = &t.shadow else {
            return Err(format!("transform `{transform}` has no shadow"));
        };
        t.promote = true;
        Ok(shadow.version.clone())
    }

    /// Asks the reloader to roll `transform` back to its previous version;
    /// waits for the answer.
    pub fn rollback(&self, transform: &str) -> Result<String, String> {
        let (reply, answer) = std::sync::mpsc::channel();
        let sent = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|tx| {
                tx.send(Request::Rollback {
                    transform: transform.to_string(),
                    reply,
                })
            });
        match sent {
            Some(Ok(())) => answer
                .recv_timeout(std::time::Duration::from_secs(30))
                .map_err(|_| "the reloader did not answer".to_string())?,
            _ => Err("the pipeline has no transforms or is not running".into()),
        }
    }
}
