//! The end-of-run summary: counts, reasons, time per plugin, throughput.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use super::Stats;
use super::profile::{Clocks, Profile};
use crate::config::Pipeline;
use crate::plugin::TransformSlot;

/// One plugin's share of the run.
#[derive(Debug, Clone, Serialize)]
pub struct PluginSummary {
    /// Transform name.
    pub name: String,
    /// Version (content hash prefix).
    pub version: String,
    /// Time spent inside the plugin, in milliseconds.
    pub busy_ms: u64,
    /// Batches retried on a fresh instance.
    pub retries: u64,
    /// Batches given up (dead-lettered) after the retry.
    pub failures: u64,
    /// Input records per version, in the order the versions went live.
    pub records_by_version: Vec<(String, u64)>,
}

/// What a run did. Records balance:
/// `records_in + expanded = written + dropped + dead_lettered`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Pipeline name.
    pub pipeline: String,
    /// The source.
    pub source: String,
    /// The sink.
    pub sink: String,
    /// The dead-letter sink.
    pub dead_letter: String,
    /// Records read from the source in this run.
    pub records_in: u64,
    /// Records written to the sink.
    pub written: u64,
    /// Records dropped on purpose.
    pub dropped: u64,
    /// Records sent to the dead-letter sink.
    pub dead_lettered: u64,
    /// Extra records created by plugins that emit several.
    pub expanded: u64,
    /// Dead letters by `stage: code`.
    pub reasons: BTreeMap<String, u64>,
    /// The first dead letters of each reason.
    pub examples: BTreeMap<String, Vec<crate::control::ReasonExample>>,
    /// The counters over the run (about every quarter second).
    pub timeline: Vec<crate::control::TimePoint>,
    /// Per plugin.
    pub plugins: Vec<PluginSummary>,
    /// Plugin versions swapped in while running.
    pub reloads: u64,
    /// Candidate versions refused while running (the old one stayed live).
    pub reload_failures: u64,
    /// Wall time, in milliseconds.
    pub elapsed_ms: u64,
    /// Source records per second.
    pub records_per_sec: f64,
    /// True if the run was stopped before the end of the source.
    pub stopped: bool,
    /// Source records committed by earlier runs (resumed from the checkpoint).
    pub resumed_after: u64,
    /// How far the target was behind the source at the end (sources that
    /// follow a live database).
    pub lag: Option<crate::sources::Lag>,
    /// Where the time went, stage by stage (`sluice run --profile` prints it).
    pub profile: Profile,
}

impl Summary {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        pipeline: &Pipeline,
        source: &str,
        sink: String,
        dead_letter: String,
        stats: &Stats,
        slots: &[TransformSlot],
        clocks: &Clocks,
        elapsed: Duration,
        stopped: bool,
        resumed_after: u64,
    ) -> Self {
        let records_in = stats.records_in.load(Ordering::Relaxed);
        let secs = elapsed.as_secs_f64().max(1e-9);
        Summary {
            pipeline: pipeline.name.clone(),
            source: source.to_string(),
            sink,
            dead_letter,
            records_in,
            written: stats.written.load(Ordering::Relaxed),
            dropped: stats.dropped.load(Ordering::Relaxed),
            dead_lettered: stats.dead_lettered.load(Ordering::Relaxed),
            expanded: stats.expanded.load(Ordering::Relaxed),
            reasons: stats.reasons.lock().map(|r| r.clone()).unwrap_or_default(),
            examples: stats.examples.lock().map(|e| e.clone()).unwrap_or_default(),
            timeline: {
                let mut t = stats.timeline.lock().unwrap_or_else(|p| p.into_inner());
                t.sample(
                    records_in,
                    stats.written.load(Ordering::Relaxed),
                    stats.dead_lettered.load(Ordering::Relaxed),
                    true,
                );
                t.points().to_vec()
            },
            plugins: slots
                .iter()
                .map(|s| PluginSummary {
                    name: s.plugin().name().to_string(),
                    version: s.plugin().version().to_string(),
                    busy_ms: s.busy.as_millis() as u64,
                    retries: s.retries,
                    failures: s.failures,
                    records_by_version: s.records_by_version.clone(),
                })
                .collect(),
            reloads: stats.reloads.load(Ordering::Relaxed),
            reload_failures: stats.reload_failures.load(Ordering::Relaxed),
            elapsed_ms: elapsed.as_millis() as u64,
            records_per_sec: records_in as f64 / secs,
            stopped,
            resumed_after,
            lag: stats.source.lag(),
            profile: Profile::new(
                clocks,
                &slots
                    .iter()
                    .map(|s| s.plugin().name().to_string())
                    .collect::<Vec<_>>(),
                &slots
                    .iter()
                    .map(|s| s.busy.as_secs_f64() * 1000.0)
                    .collect::<Vec<_>>(),
            ),
        }
    }

    /// True when every record is accounted for.
    pub fn balances(&self) -> bool {
        self.records_in + self.expanded == self.written + self.dropped + self.dead_lettered
    }

    /// The human summary printed at the end of `sluice run`.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "pipeline `{}` {} in {:.2}s",
            self.pipeline,
            if self.stopped { "stopped" } else { "finished" },
            self.elapsed_ms as f64 / 1000.0
        );
        if self.resumed_after > 0 {
            let _ = writeln!(
                s,
                "  resumed after {} records committed earlier (use --reset to start over)",
                self.resumed_after
            );
        }
        let _ = writeln!(s, "  source        {}", self.source);
        let _ = writeln!(s, "  records in    {}", self.records_in);
        if let Some(lag) = &self.lag {
            let _ = match lag.records {
                Some(r) => writeln!(
                    s,
                    "  lag           {r} records behind the source, {:.1} s",
                    lag.seconds
                ),
                None => writeln!(
                    s,
                    "  lag           {} bytes of source log, {:.1} s",
                    lag.bytes, lag.seconds
                ),
            };
            if let Some(r) = lag.retained_bytes {
                let _ = writeln!(
                    s,
                    "  retained      {r} bytes of source log kept for this pipeline"
                );
            }
            if let Some(w) = &lag.warning {
                let _ = writeln!(s, "  WARNING       {w}");
            }
        }
        let _ = writeln!(s, "  written       {}  -> {}", self.written, self.sink);
        let _ = writeln!(s, "  dropped       {}", self.dropped);
        let _ = writeln!(
            s,
            "  dead-lettered {}  -> {}",
            self.dead_lettered, self.dead_letter
        );
        for (reason, n) in &self.reasons {
            let _ = writeln!(s, "      {n:>8}  {reason}");
        }
        if self.expanded > 0 {
            let _ = writeln!(
                s,
                "  expanded      +{} (plugins emitting several records)",
                self.expanded
            );
        }
        for p in &self.plugins {
            let _ = writeln!(
                s,
                "  plugin {:<12} {}  {:>7} ms{}{}",
                p.name,
                p.version,
                p.busy_ms,
                if p.retries > 0 {
                    format!("  {} retried batches", p.retries)
                } else {
                    String::new()
                },
                if p.failures > 0 {
                    format!("  {} failed batches", p.failures)
                } else {
                    String::new()
                },
            );
        }
        if self.reloads > 0 || self.reload_failures > 0 {
            let _ = writeln!(
                s,
                "  hot reload    {} versions swapped in, {} candidates refused",
                self.reloads, self.reload_failures
            );
            for p in self
                .plugins
                .iter()
                .filter(|p| p.records_by_version.len() > 1)
            {
                let v: Vec<String> = p
                    .records_by_version
                    .iter()
                    .map(|(v, n)| format!("{v}: {n}"))
                    .collect();
                let _ = writeln!(s, "      {:<12} {}", p.name, v.join(", "));
            }
        }
        let _ = writeln!(s, "  throughput    {:.0} records/s", self.records_per_sec);
        if !self.balances() {
            let _ = writeln!(
                s,
                "  WARNING: counts do not balance: in {} + expanded {} != written {} + dropped {} + dead-lettered {}",
                self.records_in, self.expanded, self.written, self.dropped, self.dead_lettered
            );
        }
        s
    }
}
