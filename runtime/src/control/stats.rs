//! The live counters of a run: what `/status`, `/metrics`, the progress
//! line and the summary read while the pipeline threads add to them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

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
    /// The first dead letters of each `stage: code` (at most
    /// [`EXAMPLES_PER_REASON`]), for the run report.
    pub examples: Mutex<BTreeMap<String, Vec<ReasonExample>>>,
    /// The counters sampled over the run, for the run report's chart.
    pub timeline: Mutex<Timeline>,
    /// The latest dead letters (at most [`RecentDeadLetters::KEEP`]), for
    /// the console.
    pub recent_dead: Mutex<RecentDeadLetters>,
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

/// How many dead letters of each reason the summary keeps as examples.
pub const EXAMPLES_PER_REASON: usize = 3;

/// One dead letter, as the summary and the run report show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReasonExample {
    /// Where the record came from (`line 12`).
    pub position: String,
    /// The field at fault.
    pub field: Option<String>,
    /// What was wrong.
    pub message: String,
    /// The version of the plugin that refused it.
    pub plugin_version: Option<String>,
}

/// One dead letter as the console lists it: where, why, and which
/// version refused it. The record itself stays in the dead-letter sink.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RecentDeadLetter {
    /// Its number in this run (1 for the first), so that a reader can ask
    /// for the ones after the last it saw.
    pub seq: u64,
    /// When, in µs since the epoch.
    pub time: i64,
    /// `rejected`, `plugin_failed` (the plugin trapped or ran out of
    /// time), `malformed_input` or `sink_refused`.
    pub kind: String,
    /// The stage: a transform's name, `source` or `sink`.
    pub stage: String,
    /// The machine-readable code.
    pub code: String,
    /// The field at fault.
    pub field: Option<String>,
    /// What was wrong.
    pub message: String,
    /// The version of the plugin that refused it.
    pub plugin_version: Option<String>,
    /// Where the record came from (`line 12`).
    pub position: String,
}

/// The latest dead letters of the run, numbered.
#[derive(Debug, Default)]
pub struct RecentDeadLetters {
    next_seq: u64,
    kept: VecDeque<RecentDeadLetter>,
}

impl RecentDeadLetters {
    /// How many are kept.
    pub const KEEP: usize = 200;

    /// Adds one, numbering it; the oldest goes when full.
    pub fn push(&mut self, mut d: RecentDeadLetter) {
        self.next_seq += 1;
        d.seq = self.next_seq;
        if self.kept.len() == Self::KEEP {
            self.kept.pop_front();
        }
        self.kept.push_back(d);
    }

    /// Those numbered after `seq`, oldest first.
    pub fn after(&self, seq: u64) -> Vec<RecentDeadLetter> {
        let skip = self.kept.partition_point(|d| d.seq <= seq);
        self.kept.iter().skip(skip).cloned().collect()
    }
}

/// The counters at one moment of the run.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct TimePoint {
    /// Milliseconds since the first committed batch.
    pub ms: u64,
    /// Records read so far.
    pub records_in: u64,
    /// Records written so far.
    pub written: u64,
    /// Records dead-lettered so far.
    pub dead_lettered: u64,
}

/// The counters sampled every quarter second or so: at most
/// [`Timeline::MAX_POINTS`] points, the step doubling when full, so a long
/// run costs no more memory than a short one.
#[derive(Debug, Default)]
pub struct Timeline {
    started: Option<Instant>,
    next: Duration,
    step: Duration,
    points: Vec<TimePoint>,
}

impl Timeline {
    /// The most points kept.
    pub const MAX_POINTS: usize = 512;

    /// Notes the counters now if a step has passed since the last point
    /// (or always, with `last`).
    pub fn sample(&mut self, records_in: u64, written: u64, dead_lettered: u64, last: bool) {
        let now = Instant::now();
        let started = *self.started.get_or_insert(now);
        if self.step.is_zero() {
            self.step = Duration::from_millis(250);
        }
        let at = now.duration_since(started);
        if !last && at < self.next {
            return;
        }
        self.points.push(TimePoint {
            ms: at.as_millis() as u64,
            records_in,
            written,
            dead_lettered,
        });
        self.next = at + self.step;
        if self.points.len() >= Self::MAX_POINTS {
            // Every other point, and half as many from now on.
            let mut keep = false;
            self.points.retain(|_| {
                keep = !keep;
                keep
            });
            self.step *= 2;
        }
    }

    /// The points so far, oldest first.
    pub fn points(&self) -> &[TimePoint] {
        &self.points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_stays_bounded_and_keeps_the_last_point() {
        let mut t = Timeline::default();
        for i in 0..10_000u64 {
            // Force a point each time: the bound must hold anyway.
            t.sample(i, i, 0, true);
        }
        assert!(t.points().len() < Timeline::MAX_POINTS);
        assert_eq!(t.points().last().map(|p| p.records_in), Some(9_999));
        // Without `last`, samples within a step are skipped.
        let mut t = Timeline::default();
        t.sample(1, 1, 0, false);
        t.sample(2, 2, 0, false);
        assert_eq!(t.points().len(), 1);
    }

    fn dead(code: &str) -> RecentDeadLetter {
        RecentDeadLetter {
            seq: 0,
            time: 0,
            kind: "rejected".into(),
            stage: "validate".into(),
            code: code.into(),
            field: None,
            message: String::new(),
            plugin_version: None,
            position: String::new(),
        }
    }

    #[test]
    fn recent_dead_letters_are_numbered_bounded_and_read_after_a_number() {
        let mut r = RecentDeadLetters::default();
        for i in 0..RecentDeadLetters::KEEP + 5 {
            r.push(dead(&format!("c{i}")));
        }
        let all = r.after(0);
        assert_eq!(all.len(), RecentDeadLetters::KEEP);
        assert_eq!(all[0].seq, 6);
        assert_eq!(all[0].code, "c5");
        let last = all.last().map(|d| d.seq).unwrap_or_default();
        assert_eq!(last, RecentDeadLetters::KEEP as u64 + 5);
        let tail = r.after(last - 2);
        assert_eq!(
            tail.iter().map(|d| d.seq).collect::<Vec<_>>(),
            [last - 1, last]
        );
        assert!(r.after(last).is_empty());
    }
}
