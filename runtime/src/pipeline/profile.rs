//! Where a run's time went, stage by stage (`sluice run --profile`, and the
//! `profile` of the JSON summary).
//!
//! Each stage runs on its own thread, so the stages' times overlap: the
//! slowest stage sets the pace, and the others spend the difference
//! waiting. A stage's time splits into its own work, waiting for input
//! (the stage before it is slower) and waiting to hand its output on (the
//! stage after it is slower). Timing is per batch, not per record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Nanoseconds, added to from one thread and read at the end.
#[derive(Debug, Default)]
pub(crate) struct Clock(AtomicU64);

impl Clock {
    /// Adds the time since `since`; returns now (to chain measurements).
    pub(crate) fn add_since(&self, since: Instant) -> Instant {
        let now = Instant::now();
        self.add(now - since);
        now
    }

    pub(crate) fn add(&self, d: Duration) {
        self.0.fetch_add(
            d.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    fn ms(&self) -> f64 {
        self.0.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// A transform thread's clocks.
#[derive(Debug, Default)]
pub(crate) struct StageClocks {
    /// Waiting for the next batch from the stage before.
    pub(crate) waiting_in: Clock,
    /// Everything done with a batch: the plugin call and the bookkeeping
    /// around it (dead letters, origins, swaps, shadow comparisons).
    pub(crate) work: Clock,
    /// Waiting for the next stage to take the batch.
    pub(crate) waiting_out: Clock,
}

/// The run's clocks, shared by its threads.
#[derive(Debug, Default)]
pub(crate) struct Clocks {
    /// The source thread, from start to end.
    pub(crate) source_total: Clock,
    /// The source waiting for the first transform (or the sink) to take a batch.
    pub(crate) source_waiting_out: Clock,
    /// One per transform.
    pub(crate) stages: Vec<StageClocks>,
    /// The sink waiting for the next processed batch.
    pub(crate) sink_waiting_in: Clock,
    /// Decoding the processed records and stamping their headers.
    pub(crate) sink_prepare: Clock,
    /// The sink's own write (and its transaction).
    pub(crate) sink_write: Clock,
    /// Building and writing dead letters.
    pub(crate) dead_letters: Clock,
    /// Saving the checkpoint and the counters.
    pub(crate) checkpoint: Clock,
}

impl Clocks {
    pub(crate) fn new(transforms: usize) -> Self {
        Clocks {
            stages: (0..transforms).map(|_| StageClocks::default()).collect(),
            ..Default::default()
        }
    }
}

/// One line of the profile: a stage and where its time went.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageProfile {
    /// `source`, the transform's name, or `sink`.
    pub stage: String,
    /// Its own work, by part, in milliseconds (in the order it happens).
    pub work_ms: Vec<(String, f64)>,
    /// Waiting for input (the stage before it is slower), in milliseconds.
    pub waiting_for_input_ms: f64,
    /// Waiting to hand its output on (the stage after it is slower).
    pub waiting_for_output_ms: f64,
}

/// Where the run's time went.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Profile {
    /// Source, transforms in order, sink.
    pub stages: Vec<StageProfile>,
}

impl Profile {
    /// Reads the clocks; `plugin_ms` is each transform's time inside its
    /// plugin (copying the batch in, the plugin's code, the outcomes out).
    pub(crate) fn new(clocks: &Clocks, names: &[String], plugin_ms: &[f64]) -> Self {
        let source_work = (clocks.source_total.ms() - clocks.source_waiting_out.ms()).max(0.0);
        let mut stages = vec![StageProfile {
            stage: "source".into(),
            work_ms: vec![("read, decode, encode".into(), source_work)],
            waiting_for_input_ms: 0.0,
            waiting_for_output_ms: clocks.source_waiting_out.ms(),
        }];
        for (i, c) in clocks.stages.iter().enumerate() {
            let plugin = plugin_ms.get(i).copied().unwrap_or(0.0);
            stages.push(StageProfile {
                stage: names
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("transform {i}")),
                work_ms: vec![
                    ("plugin".into(), plugin),
                    ("apply".into(), (c.work.ms() - plugin).max(0.0)),
                ],
                waiting_for_input_ms: c.waiting_in.ms(),
                waiting_for_output_ms: c.waiting_out.ms(),
            });
        }
        stages.push(StageProfile {
            stage: "sink".into(),
            work_ms: vec![
                ("decode".into(), clocks.sink_prepare.ms()),
                ("write".into(), clocks.sink_write.ms()),
                ("dead letters".into(), clocks.dead_letters.ms()),
                ("checkpoint".into(), clocks.checkpoint.ms()),
            ],
            waiting_for_input_ms: clocks.sink_waiting_in.ms(),
            waiting_for_output_ms: 0.0,
        });
        Profile { stages }
    }

    /// The table `sluice run --profile` prints.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::from(
            "  profile (each stage on its own thread: the busiest sets the pace)\n\
             \x20   stage          work ms  waiting ms (input / output)  work by part\n",
        );
        let busiest = self
            .stages
            .iter()
            .map(|st| st.work_ms.iter().map(|(_, ms)| ms).sum::<f64>())
            .fold(0.0, f64::max);
        for st in &self.stages {
            let work: f64 = st.work_ms.iter().map(|(_, ms)| ms).sum();
            let parts: Vec<String> = st
                .work_ms
                .iter()
                .map(|(what, ms)| format!("{what} {ms:.0}"))
                .collect();
            let _ = writeln!(
                s,
                "    {:<12} {:>9.0}  {:>9.0} / {:<9.0}         {}{}",
                st.stage,
                work,
                st.waiting_for_input_ms,
                st.waiting_for_output_ms,
                parts.join(", "),
                if work > 0.0 && work == busiest {
                    "   <- busiest"
                } else {
                    ""
                }
            );
        }
        s
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_clocks_become_one_line_per_stage() {
        let c = Clocks::new(1);
        c.source_total.add(Duration::from_millis(100));
        c.source_waiting_out.add(Duration::from_millis(30));
        c.stages[0].waiting_in.add(Duration::from_millis(5));
        c.stages[0].work.add(Duration::from_millis(90));
        c.stages[0].waiting_out.add(Duration::from_millis(2));
        c.sink_waiting_in.add(Duration::from_millis(60));
        c.sink_write.add(Duration::from_millis(20));
        c.checkpoint.add(Duration::from_millis(4));
        let p = Profile::new(&c, &["map".to_string()], &[80.0]);
        assert_eq!(p.stages.len(), 3);
        assert_eq!(
            p.stages[0].work_ms,
            vec![("read, decode, encode".to_string(), 70.0)]
        );
        assert_eq!(p.stages[0].waiting_for_output_ms, 30.0);
        assert_eq!(
            p.stages[1].work_ms,
            vec![("plugin".to_string(), 80.0), ("apply".to_string(), 10.0)]
        );
        assert_eq!(p.stages[1].waiting_for_input_ms, 5.0);
        assert_eq!(p.stages[2].stage, "sink");
        assert_eq!(p.stages[2].work_ms[1], ("write".to_string(), 20.0));
        assert_eq!(p.stages[2].waiting_for_input_ms, 60.0);
        let text = p.render();
        let map_line = text
            .lines()
            .find(|l| l.trim_start().starts_with("map"))
            .unwrap();
        assert!(map_line.contains("plugin 80, apply 10"), "{text}");
        assert!(map_line.ends_with("<- busiest"), "{text}");
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with("sink") && l.ends_with("busiest"))
        );
    }
}
