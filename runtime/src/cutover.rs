//! `sluice cutover`: is a live sync ready for the switch to the new
//! system? It waits until the running pipeline is caught up within a bound,
//! optionally runs a hook that pauses writes to the source and waits until
//! nothing is left in flight, runs a final verify, counts the dead letters
//! not yet replayed, and answers ready or not ready with the evidence.
//!
//! The running pipeline is reached through its admin API (its address and
//! token are in the state directory, as for `sluice ctl`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value as Json;

use crate::admin::client::AdminClient;
use crate::config::Pipeline;

/// What `cutover` checks against.
#[derive(Debug, Clone)]
pub struct Options {
    /// The largest lag (age of the oldest change not yet written) that
    /// counts as caught up.
    pub max_lag: Duration,
    /// How long to wait for that.
    pub timeout: Duration,
    /// A shell command that stops writes to the source (run once caught up
    /// within `max_lag`; then the sync must catch up completely).
    pub pause_source_writes: Option<String>,
    /// Problems the final verify shows per table.
    pub samples: usize,
}

/// The lag of the running sync at one moment.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LagSeen {
    /// Age of the oldest change not yet written, seconds.
    pub seconds: f64,
    /// Source log not yet confirmed, bytes.
    pub bytes: u64,
}

/// The evidence and the answer.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The pipeline.
    pub pipeline: String,
    /// Ready to switch.
    pub ready: bool,
    /// Why not, one reason per line (empty when ready).
    pub reasons: Vec<String>,
    /// The lag bound asked for, seconds.
    pub max_lag_seconds: f64,
    /// The lag when the checks ran.
    pub lag: Option<LagSeen>,
    /// Seconds waited for the sync to catch up.
    pub waited_seconds: f64,
    /// The hook that paused writes to the source, and its exit status.
    pub pause_hook: Option<(String, i32)>,
    /// The running pipeline's counters (`records_in`, `written`,
    /// `dropped`, `dead_lettered`).
    pub counts: BTreeMap<String, u64>,
    /// The final verify: identical or not, per table.
    pub verify: Option<crate::verify::Report>,
    /// Dead letters not replayed yet, by `stage: code`.
    pub open_dead_letters: BTreeMap<String, u64>,
    /// When the checks ended (RFC 3339).
    pub at: String,
}

impl Report {
    /// The report as text.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "cutover readiness of pipeline `{}` at {}",
            self.pipeline, self.at
        );
        match &self.lag {
            Some(l) => {
                let _ = writeln!(
                    s,
                    "  lag            {:.1} s behind, {} bytes (bound {:.1} s; waited {:.1} s)",
                    l.seconds, l.bytes, self.max_lag_seconds, self.waited_seconds
                );
            }
            None => {
                let _ = writeln!(s, "  lag            not reported by the source");
            }
        }
        if let Some((cmd, code)) = &self.pause_hook {
            let _ = writeln!(s, "  source writes  paused by `{cmd}` (exit {code})");
        } else {
            let _ = writeln!(
                s,
                "  source writes  not paused (--pause-source-writes): a change in flight can show as a difference"
            );
        }
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(s, "  counts         {}", counts.join(", "));
        match &self.verify {
            Some(v) => {
                for t in &v.tables {
                    let _ = writeln!(
                        s,
                        "  verify         {} {}: source {}, target {}, missing {}, extra {}, different {}",
                        if t.identical() {
                            "IDENTICAL"
                        } else {
                            "DIFFERENT"
                        },
                        t.table,
                        t.source_rows,
                        t.target_rows,
                        t.missing,
                        t.extra,
                        t.different
                    );
                }
            }
            None => {
                let _ = writeln!(s, "  verify         not run");
            }
        }
        let open: u64 = self.open_dead_letters.values().sum();
        let _ = writeln!(s, "  dead letters   {open} not replayed");
        for (reason, n) in &self.open_dead_letters {
            let _ = writeln!(s, "                   {reason}: {n}");
        }
        if self.ready {
            let _ = writeln!(s, "READY");
        } else {
            let _ = writeln!(s, "NOT READY");
            for r in &self.reasons {
                let _ = writeln!(s, "  - {r}");
            }
        }
        s
    }
}

fn lag_of(status: &Json) -> Option<LagSeen> {
    crate::admin::client::lag_of(status).map(|(seconds, bytes)| LagSeen { seconds, bytes })
}

/// Polls the status until `done` says so or `until` passes; the last
/// status seen.
fn wait(
    admin: &AdminClient,
    until: Instant,
    done: impl Fn(&Json) -> bool,
) -> anyhow::Result<(Json, bool)> {
    loop {
        let s = admin.status()?;
        if done(&s) {
            return Ok((s, true));
        }
        if Instant::now() >= until {
            return Ok((s, false));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Checks whether the running sync of `pipeline` is ready for the switch.
pub fn cutover(pipeline: Pipeline, options: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let until = started + options.timeout;
    let admin = AdminClient::reach(&pipeline, "cut-over readiness is about a running sync")?;
    let mut report = Report {
        pipeline: pipeline.name.clone(),
        max_lag_seconds: options.max_lag.as_secs_f64(),
        ..Default::default()
    };
    let max = options.max_lag.as_secs_f64();
    let within = |s: &Json| lag_of(s).is_some_and(|l| l.seconds <= max);
    let (mut status, mut caught_up) = wait(&admin, until, within)?;
    if caught_up && let Some(cmd) = &options.pause_source_writes {
        let code = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .status()
            .map_err(|e| anyhow::anyhow!("cannot run the hook `{cmd}`: {e}"))?
            .code()
            .unwrap_or(-1);
        report.pause_hook = Some((cmd.clone(), code));
        if code != 0 {
            report.reasons.push(format!(
                "the hook `{cmd}` that pauses source writes failed (exit {code})"
            ));
        } else {
            // Writes stopped: everything already written must arrive
            // (no change waiting, no source log left unconfirmed: a lag of
            // 0 s alone may be a change not decoded yet).
            (status, caught_up) = wait(&admin, until, |s| {
                lag_of(s).is_some_and(|l| l.seconds == 0.0 && l.bytes == 0)
            })?;
        }
    }
    report.waited_seconds = started.elapsed().as_secs_f64();
    report.lag = lag_of(&status);
    for k in ["records_in", "written", "dropped", "dead_lettered"] {
        if let Some(n) = status.get(k).and_then(Json::as_u64) {
            report.counts.insert(k.to_string(), n);
        }
    }
    if report.lag.is_none() {
        report
            .reasons
            .push("the source reports no lag: cut-over readiness needs a live sync (PostgreSQL or Kafka source)".into());
    } else if !caught_up {
        report.reasons.push(format!(
            "not caught up within {:.1} s after waiting {:.0} s",
            max, report.waited_seconds
        ));
    }
    if status.get("stopping").and_then(Json::as_bool) == Some(true) {
        report.reasons.push("the pipeline is stopping".into());
    }

    // Dead letters not replayed yet.
    let dlq = crate::pipeline::dead_letter_config(&pipeline);
    let read = crate::replay::read(&dlq).map_err(anyhow::Error::msg)?;
    let ledger = if crate::replay::Ledger::path(&pipeline.state_dir, &pipeline.name).exists() {
        Some(
            crate::replay::Ledger::open(&pipeline.state_dir, &pipeline.name)
                .map_err(anyhow::Error::msg)?,
        )
    } else {
        None
    };
    for d in &read.letters {
        let replayed = match &ledger {
            Some(l) => l.outcome(&d.id).map_err(anyhow::Error::msg)?.is_some(),
            None => false,
        };
        if !replayed {
            *report
                .open_dead_letters
                .entry(format!("{}: {}", d.stage, d.code))
                .or_default() += 1;
        }
    }
    let open: u64 = report.open_dead_letters.values().sum();
    if open > 0 {
        report.reasons.push(format!(
            "{open} dead letters not replayed (`sluice replay`; a record refused for good is a decision to record, not to skip)"
        ));
    }

    // The final verify, once caught up.
    if caught_up {
        match crate::verify::verify(pipeline, options.samples) {
            Ok(v) => {
                if !v.identical() {
                    report
                        .reasons
                        .push("the final verify found differences".into());
                }
                report.verify = Some(v);
            }
            Err(e) => report.reasons.push(format!("the final verify failed: {e}")),
        }
    } else {
        report
            .reasons
            .push("the final verify did not run (not caught up)".into());
    }
    report.ready = report.reasons.is_empty();
    report.at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_is_read_from_the_status() {
        let s = serde_json::json!({"source": {"lag": {"seconds": 0.5, "bytes": 120}}});
        assert_eq!(
            lag_of(&s),
            Some(LagSeen {
                seconds: 0.5,
                bytes: 120
            })
        );
        assert_eq!(lag_of(&serde_json::json!({"source": {"lag": null}})), None);
    }

    #[test]
    fn a_report_not_ready_says_why() {
        let r = Report {
            pipeline: "p".into(),
            reasons: vec!["2 dead letters not replayed".into()],
            open_dead_letters: [("validate: required".to_string(), 2)].into(),
            ..Default::default()
        };
        let text = r.render();
        assert!(
            text.contains("NOT READY\n  - 2 dead letters not replayed"),
            "{text}"
        );
        assert!(text.contains("validate: required: 2"), "{text}");
        assert!(text.contains("not paused"), "{text}");
    }
}
