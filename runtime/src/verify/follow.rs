//! `sluice verify --follow`: verify again and again beside a live sync,
//! and tell the differences that persist from those still in flight.
//!
//! Each round is a `verify` (by key ranges where a table allows: only the
//! ranges changed since the round before are read row by row). A row that differs in one round may just
//! be a change not written yet; the next round starts only once the
//! replication lag seen at the end of the round has passed (read from the
//! running pipeline's admin API, when it runs with `--admin`), so such a
//! row has caught up by then. A row that differs in two rounds in a row
//! (the same key, missing, different or extra) is a **persistent**
//! difference. A row changed at the source before every round can look
//! persistent too: it resolves once its writes pause.
//!
//! Each round is printed, and posted to the running pipeline's admin API
//! (`POST /verify`), which shows it in `/status` and `/metrics`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Key, Report};
use crate::config::Pipeline;

/// How `--follow` runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The least time between the starts of two rounds.
    pub every: Duration,
    /// Stop after this many rounds (`None`: until stopped).
    pub rounds: Option<u32>,
    /// Problems to show per table.
    pub samples: usize,
}

/// One table in one round.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TableRound {
    /// The target table.
    pub table: String,
    /// Rows missing, extra and different in this round.
    pub missing: u64,
    /// Target rows no source row gives.
    pub extra: u64,
    /// Rows whose values differ.
    pub different: u64,
    /// Differences also found in the previous round.
    pub persistent: u64,
    /// Differences new in this round (maybe still in flight).
    pub new: u64,
    /// Differences of the previous round gone in this one.
    pub resolved: u64,
    /// Some persistent differences, for a person.
    pub persistent_samples: Vec<String>,
}

/// One round.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Round {
    /// The pipeline.
    pub pipeline: String,
    /// 1, 2, ...
    pub round: u32,
    /// When it started (RFC 3339).
    pub started: String,
    /// How long the comparison took, seconds.
    pub seconds: f64,
    /// The sync's lag when the round ended (seconds), when known.
    pub lag_seconds: Option<f64>,
    /// Per table.
    pub tables: Vec<TableRound>,
}

impl Round {
    /// Differences found in two rounds in a row, over all tables.
    pub fn persistent(&self) -> u64 {
        self.tables.iter().map(|t| t.persistent).sum()
    }

    /// The round as text.
    pub fn render(&self) -> String {
        let mut s = format!(
            "round {} ({}, {:.1} s{})\n",
            self.round,
            self.started,
            self.seconds,
            self.lag_seconds
                .map(|l| format!(", sync lag {l:.1} s"))
                .unwrap_or_default()
        );
        for t in &self.tables {
            s.push_str(&format!(
                "  {}  missing {}  extra {}  different {}  persistent {}  new {}  resolved {}\n",
                t.table, t.missing, t.extra, t.different, t.persistent, t.new, t.resolved
            ));
            for p in &t.persistent_samples {
                s.push_str(&format!("    persistent: {p}\n"));
            }
        }
        s
    }
}

/// What differs in a table: (kind, key).
type Differences = HashSet<(&'static str, Key)>;

fn differences(report: &Report) -> BTreeMap<String, Differences> {
    report
        .tables
        .iter()
        .map(|t| {
            let set = t
                .differing_keys
                .iter()
                .map(|k| ("missing or different", k.clone()))
                .chain(t.extra_keys.iter().map(|k| ("extra", k.clone())))
                .collect();
            (t.table.clone(), set)
        })
        .collect()
}

/// The next round from a report and the previous round's differences.
fn round(
    report: &Report,
    previous: &BTreeMap<String, Differences>,
    number: u32,
    samples: usize,
) -> Round {
    let now = differences(report);
    let empty = Differences::new();
    let tables = report
        .tables
        .iter()
        .map(|t| {
            let cur = now.get(&t.table).unwrap_or(&empty);
            let prev = previous.get(&t.table).unwrap_or(&empty);
            let mut persistent: Vec<&(&str, Key)> = cur.intersection(prev).collect();
            persistent.sort();
            TableRound {
                table: t.table.clone(),
                missing: t.missing,
                extra: t.extra,
                different: t.different,
                persistent: persistent.len() as u64,
                new: cur.difference(prev).count() as u64,
                resolved: prev.difference(cur).count() as u64,
                persistent_samples: persistent
                    .iter()
                    .take(samples)
                    .map(|(kind, key)| format!("{kind}: key {}", super::show_key(key)))
                    .collect(),
            }
        })
        .collect();
    Round {
        pipeline: report.pipeline.clone(),
        round: number,
        tables,
        ..Default::default()
    }
}

/// Runs the rounds; `each` gets every round. Returns the last.
pub fn follow(
    path: &Path,
    options: &Options,
    mut each: impl FnMut(&Round) -> anyhow::Result<()>,
) -> anyhow::Result<Round> {
    let mut previous = BTreeMap::new();
    let mut number = 0u32;
    loop {
        number += 1;
        let started = Instant::now();
        let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        // Loaded each round: a fixed plugin or a changed file counts.
        let pipeline = Pipeline::load(path)?;
        let admin = publisher(&pipeline);
        let report = super::verify_keeping_keys(pipeline, options.samples, true)?;
        let mut r = round(&report, &previous, number, options.samples);
        r.started = started_at;
        r.seconds = started.elapsed().as_secs_f64();
        r.lag_seconds = admin.as_ref().and_then(Publisher::lag);
        if let Some(a) = &admin {
            a.publish(&r);
        }
        each(&r)?;
        if options.rounds.is_some_and(|n| number >= n) {
            return Ok(r);
        }
        previous = differences(&report);
        // Wait out the lag seen at the end of the round, and `every`.
        // (At most an hour: a stalled sync is the status's news, not a
        // reason to stop verifying.)
        let lag = Duration::try_from_secs_f64(r.lag_seconds.unwrap_or(0.0))
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(3600));
        let after_lag = Instant::now() + lag + Duration::from_secs(1).min(options.every);
        let next = (started + options.every).max(after_lag);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

#[cfg(feature = "admin")]
struct Publisher(crate::admin::client::AdminClient);

#[cfg(feature = "admin")]
impl Publisher {
    fn lag(&self) -> Option<f64> {
        self.0
            .status()
            .ok()
            .and_then(|s| crate::admin::client::lag_of(&s))
            .map(|(s, _)| s)
    }

    fn publish(&self, round: &Round) {
        let body = serde_json::to_value(round).unwrap_or_default();
        if let Err(e) = self.0.post("/verify", &body) {
            tracing::warn!(error = %e, "cannot report the round to the running pipeline");
        }
    }
}

/// The running pipeline's admin API, to read the lag from and report to;
/// `None` when it does not run with `--admin` (then the rounds wait only
/// `every`, which should exceed the sync's lag).
#[cfg(feature = "admin")]
fn publisher(pipeline: &Pipeline) -> Option<Publisher> {
    crate::admin::client::AdminClient::reach(pipeline, "")
        .ok()
        .map(Publisher)
}

#[cfg(not(feature = "admin"))]
struct Publisher;

#[cfg(not(feature = "admin"))]
impl Publisher {
    fn lag(&self) -> Option<f64> {
        None
    }
    fn publish(&self, _: &Round) {}
}

#[cfg(not(feature = "admin"))]
fn publisher(_: &Pipeline) -> Option<Publisher> {
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::verify::TableReport;

    fn report(differing: &[i64], extra: &[i64]) -> Report {
        let key = |i: &i64| vec![Some(i.to_string())];
        Report {
            pipeline: "p".into(),
            tables: vec![TableReport {
                table: "public.t".into(),
                missing: differing.len() as u64,
                extra: extra.len() as u64,
                differing_keys: differing.iter().map(key).collect(),
                extra_keys: extra.iter().map(key).collect(),
                ..Default::default()
            }],
        }
    }

    #[test]
    fn a_difference_seen_twice_in_a_row_persists_and_new_and_resolved_ones_are_counted() {
        let first = report(&[1, 2], &[9]);
        let r1 = round(&first, &BTreeMap::new(), 1, 5);
        assert_eq!((r1.tables[0].persistent, r1.tables[0].new), (0, 3));
        let second = report(&[2, 3], &[9]);
        let r2 = round(&second, &differences(&first), 2, 5);
        let t = &r2.tables[0];
        assert_eq!((t.persistent, t.new, t.resolved), (2, 1, 1));
        assert_eq!(
            t.persistent_samples,
            ["extra: key 9", "missing or different: key 2"]
        );
        assert_eq!(r2.persistent(), 2);
        // The same key as extra, then as missing, is two differences.
        let third = report(&[9], &[]);
        let r3 = round(&third, &differences(&second), 3, 5);
        assert_eq!(r3.tables[0].persistent, 0);
        assert!(
            r3.render().contains("persistent 0  new 1  resolved 3"),
            "{}",
            r3.render()
        );
    }
}
