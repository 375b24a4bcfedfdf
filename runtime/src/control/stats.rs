//! The live counters of a run: what `/status`, `/metrics`, the progress
//! line and the summary read while the pipeline threads add to them.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::sources;

/// Live counters, shared with the progress display.
#[derive(Debug, Default)]
pub struct Stats {
    /// Records read from the source (including malformed ones).
    pub records_in: AtomicU64,
    /// Records written to the sink.
    pub written: AtomicU64,
    /// Records dropped on purpose by plugins.
    pub dropped: AtomicU64,
    /// Records sent to the dead-letter sink.
    pub dead_lettered: AtomicU64,
    /// Extra records created by `emit`.
    pub expanded: AtomicU64,
    /// Progress in the source's units (bytes or rows).
    pub progress: AtomicU64,
    /// Committed positions to the source; lag and state from it.
    pub source: sources::SourceFeedback,
    /// Dead letters by `stage: code`.
    pub reasons: Mutex<BTreeMap<String, u64>>,
    /// Plugin versions swapped in while running.
    pub reloads: AtomicU64,
    /// Candidate versions refused while running.
    pub reload_failures: AtomicU64,
    /// Every swap: when the new version went live and how long the record
    /// path paused for it.
    pub swaps: Mutex<Vec<SwapTiming>>,
    /// The connector plugins among the source and sinks, for `/status`.
    pub connectors: Mutex<Vec<Arc<crate::connector::status::ConnectorStatus>>>,
}

/// One version swap on the record path.
#[derive(Debug, Clone)]
pub struct SwapTiming {
    /// The transform.
    pub transform: String,
    /// The version that went live.
    pub version: String,
    /// When it went live.
    pub at: Instant,
    /// How long the transform thread paused to swap.
    pub pause: std::time::Duration,
}
