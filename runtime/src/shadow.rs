//! Shadow mode: a candidate version runs beside the live one on the same
//! batches; its outcomes are compared, never written. It is promoted on
//! command, or automatically once enough records were compared with few
//! enough differences.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;

use serde::Serialize;
use sluice_codec::Record;

use crate::plugin::{StageOutput, TransformSlot};

/// What happened to one input record in one version.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate<'a> {
    Kept(Vec<&'a [u8]>),
    Dropped,
    Rejected(&'a str),
}

impl Fate<'_> {
    fn describe(&self) -> String {
        match self {
            Fate::Kept(v) if v.len() == 1 => "keep".into(),
            Fate::Kept(v) => format!("emit {}", v.len()),
            Fate::Dropped => "drop".into(),
            Fate::Rejected(code) => format!("reject {code}"),
        }
    }
}

fn fates<'a>(out: &'a StageOutput, inputs: usize) -> Vec<Fate<'a>> {
    let mut f: Vec<Fate<'a>> = vec![Fate::Kept(Vec::new()); inputs];
    for (span, &i) in out.spans.iter().zip(&out.from_input) {
        if let Some(Fate::Kept(v)) = f.get_mut(i as usize) {
            v.push(&out.batch[span.start as usize..span.end as usize]);
        }
    }
    for &i in &out.dropped {
        f[i as usize] = Fate::Dropped;
    }
    for r in &out.rejected {
        f[r.input] = Fate::Rejected(&r.code);
    }
    f
}

/// One differing record, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// Source position of the record.
    pub position: String,
    /// What the live version did.
    pub live: String,
    /// What the shadow did.
    pub shadow: String,
    /// Fields whose values differ (when both kept the record).
    pub fields: Vec<String>,
    /// The records the live version made of it (each as its stream and
    /// fields in JSON), at most [`RECORDS_PER_SIDE`]. Values from the data:
    /// only a holder of the admin token sees them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub live_records: Vec<serde_json::Value>,
    /// The records the shadow made of it, likewise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadow_records: Vec<serde_json::Value>,
}

/// How many output records of one input a difference shows per side.
pub const RECORDS_PER_SIDE: usize = 3;

/// How many of the latest differences a report keeps.
pub const LATEST: usize = 20;

fn records_of(fate: &Fate<'_>) -> Vec<serde_json::Value> {
    let Fate::Kept(v) = fate else {
        return Vec::new();
    };
    v.iter()
        .take(RECORDS_PER_SIDE)
        .map(|bytes| match Record::decode(bytes) {
            Ok(r) => crate::value_json::record_to_json(&r),
            Err(e) => serde_json::json!({ "undecodable": e.to_string() }),
        })
        .collect()
}

/// The comparison so far.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShadowReport {
    /// The shadow's version.
    pub version: String,
    /// Input records compared.
    pub compared: u64,
    /// Records whose outcome differs.
    pub differing: u64,
    /// Counts by `live -> shadow` outcome (`keep -> reject invalid_email`),
    /// `keep -> keep` counting records kept by both but changed differently.
    pub by_outcome: BTreeMap<String, u64>,
    /// Counts by field among records both kept but changed differently.
    pub changed_fields: BTreeMap<String, u64>,
    /// Batches the shadow failed on (trap, deadline...): not compared.
    pub failed_batches: u64,
    /// The first differences (at most 10).
    pub samples: Vec<Difference>,
    /// The latest differences (at most [`LATEST`]), oldest first.
    pub latest: VecDeque<Difference>,
}

impl ShadowReport {
    /// The report without the records' values (for readers without the
    /// admin token).
    pub fn without_values(mut self) -> Self {
        for d in self.samples.iter_mut().chain(self.latest.iter_mut()) {
            d.live_records.clear();
            d.shadow_records.clear();
        }
        self
    }
}

/// When to promote a shadow by itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoPromote {
    /// After this many compared records...
    pub after: u64,
    /// ...if at most this fraction of them differed.
    pub max_difference: f64,
}

/// A candidate running in shadow of a live version.
pub struct Shadow {
    /// The candidate's slot (its own instance).
    pub slot: TransformSlot,
    /// The comparison so far.
    pub report: ShadowReport,
    /// Automatic promotion, if configured.
    pub auto: Option<AutoPromote>,
}

fn changed_fields(a: &[u8], b: &[u8]) -> Vec<String> {
    let (Ok(a), Ok(b)) = (Record::decode(a), Record::decode(b)) else {
        return vec!["<record>".into()];
    };
    let mut names: Vec<String> = Vec::new();
    for (n, v) in &a.fields {
        if b.get(n) != Some(v) {
            names.push(n.to_string());
        }
    }
    for (n, _) in &b.fields {
        if a.get(n).is_none() {
            names.push(n.to_string());
        }
    }
    if a.stream != b.stream {
        names.push("<stream>".into());
    }
    names
}

impl Shadow {
    /// Runs the shadow on the stage's input and compares with the live
    /// version's output. `positions` gives each input record's position.
    #[allow(clippy::ptr_arg, reason = "the plugin binding takes &Vec<u8>")]
    pub fn compare(
        &mut self,
        input: &Vec<u8>,
        spans: &[Range<u32>],
        live: &StageOutput,
        position: impl Fn(usize) -> String,
    ) {
        let shadow = match self.slot.run(input, spans) {
            Ok(out) => out,
            Err(e) => {
                self.report.failed_batches += 1;
                tracing::warn!(shadow = %self.report.version, error = %e, "shadow failed on a batch; not compared");
                return;
            }
        };
        self.report.add(live, &shadow, spans.len(), position);
    }

    /// True once the automatic promotion criteria are met.
    pub fn ready_to_promote(&self) -> bool {
        self.auto.is_some_and(|a| a.met_by(&self.report))
    }
}

impl AutoPromote {
    /// True when `report` compared enough records with few enough
    /// differences.
    pub fn met_by(&self, report: &ShadowReport) -> bool {
        report.compared >= self.after
            && (report.differing as f64) <= self.max_difference * report.compared as f64
    }
}

impl ShadowReport {
    /// Adds the comparison of one batch of `inputs` records: what the live
    /// version and the shadow each made of it.
    pub fn add(
        &mut self,
        live: &StageOutput,
        shadow: &StageOutput,
        inputs: usize,
        position: impl Fn(usize) -> String,
    ) {
        let (a, b) = (fates(live, inputs), fates(shadow, inputs));
        for (i, (l, s)) in a.iter().zip(&b).enumerate() {
            self.compared += 1;
            if l == s {
                continue;
            }
            self.differing += 1;
            let fields = match (l, s) {
                (Fate::Kept(x), Fate::Kept(y)) if x.len() == 1 && y.len() == 1 => {
                    changed_fields(x[0], y[0])
                }
                _ => Vec::new(),
            };
            for f in &fields {
                *self.changed_fields.entry(f.clone()).or_default() += 1;
            }
            *self
                .by_outcome
                .entry(format!("{} -> {}", l.describe(), s.describe()))
                .or_default() += 1;
            let d = Difference {
                position: position(i),
                live: l.describe(),
                shadow: s.describe(),
                fields,
                live_records: records_of(l),
                shadow_records: records_of(s),
            };
            if self.samples.len() < 10 {
                self.samples.push(d.clone());
            }
            if self.latest.len() == LATEST {
                self.latest.pop_front();
            }
            self.latest.push_back(d);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use sluice_codec::{BatchWriter, OutcomesWriter, Rejection, Value};

    use super::*;
    use crate::plugin::apply_outcomes;

    fn record(name: &str, n: i64) -> Record<'static> {
        let mut r = Record {
            stream: "s".into(),
            ..Default::default()
        };
        r.set("name", Value::Text(name.to_string().into()));
        r.set("n", Value::Int(n));
        r
    }

    /// A batch of `n` records and their spans.
    fn batch(n: usize) -> (Vec<u8>, Vec<Range<u32>>) {
        let mut w = BatchWriter::default();
        let mut spans = Vec::new();
        for i in 0..n {
            let at = w.push(&record("ana", i as i64));
            spans.push(at as u32..w.byte_len() as u32);
        }
        (w.finish(), spans)
    }

    fn reject(code: &str) -> Rejection<'_> {
        Rejection {
            code: code.into(),
            field: None,
            message: "no".into(),
        }
    }

    /// One version's outcomes for a batch, applied as the host applies them.
    fn outcomes(
        input: &[u8],
        spans: &[Range<u32>],
        write: impl Fn(&mut OutcomesWriter),
    ) -> StageOutput {
        let mut w = OutcomesWriter::default();
        write(&mut w);
        apply_outcomes(input, spans, &w.finish()).unwrap()
    }

    #[test]
    fn each_difference_is_counted_by_outcome_and_field_with_a_sample() {
        let (input, spans) = batch(6);
        let live = outcomes(&input, &spans, |w| {
            w.keep_unchanged();
            w.keep(&record("ANA", 1));
            w.drop_record();
            w.reject(&reject("bad_email"));
            w.begin_emit();
            w.emit_record(&record("a", 4));
            w.emit_record(&record("b", 4));
            w.keep(&record("x", 5));
        });
        let shadow = outcomes(&input, &spans, |w| {
            w.keep_unchanged(); // same
            w.keep(&record("Ana", 1)); // kept by both, `name` differs
            w.keep_unchanged(); // live dropped it
            w.reject(&reject("missing")); // another reason
            w.begin_emit(); // the same two records
            w.emit_record(&record("a", 4));
            w.emit_record(&record("b", 4));
            w.keep(&record("x", 5)); // same
        });
        let mut report = ShadowReport::default();
        report.add(&live, &shadow, spans.len(), |i| format!("line {i}"));
        assert_eq!(report.compared, 6);
        assert_eq!(report.differing, 3);
        let by: Vec<(&str, u64)> = report
            .by_outcome
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(
            by,
            [
                ("drop -> keep", 1),
                ("keep -> keep", 1),
                ("reject bad_email -> reject missing", 1)
            ]
        );
        let fields: Vec<(&str, u64)> = report
            .changed_fields
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(fields, [("name", 1)]);
        let samples: Vec<(&str, &str, &str, Vec<String>)> = report
            .samples
            .iter()
            .map(|d| {
                (
                    d.position.as_str(),
                    d.live.as_str(),
                    d.shadow.as_str(),
                    d.fields.clone(),
                )
            })
            .collect();
        assert_eq!(
            samples,
            [
                ("line 1", "keep", "keep", vec!["name".to_string()]),
                ("line 2", "drop", "keep", vec![]),
                ("line 3", "reject bad_email", "reject missing", vec![]),
            ]
        );
        // Each side's records, for the console to show side by side.
        let first = &report.samples[0];
        assert_eq!(first.live_records.len(), 1);
        assert_eq!(first.live_records[0]["fields"]["name"], "ANA");
        assert_eq!(first.shadow_records[0]["fields"]["name"], "Ana");
        assert_eq!(
            report.samples[1].live_records,
            Vec::<serde_json::Value>::new()
        );
        assert_eq!(report.samples[1].shadow_records.len(), 1);
        // Without the token they are left out.
        let bare = report.clone().without_values();
        assert!(
            bare.samples
                .iter()
                .chain(&bare.latest)
                .all(|d| d.live_records.is_empty() && d.shadow_records.is_empty())
        );
        assert_eq!(bare.differing, report.differing);
        // An emit of another number of records differs as a whole.
        let fewer = outcomes(&input, &spans, |w| {
            for _ in 0..4 {
                w.keep_unchanged();
            }
            w.keep(&record("a", 4));
            w.keep_unchanged();
        });
        let mut report = ShadowReport::default();
        report.add(&live, &fewer, spans.len(), |i| i.to_string());
        assert_eq!(report.by_outcome.get("emit 2 -> keep"), Some(&1));
    }

    #[test]
    fn samples_stop_at_ten_and_counts_go_on_across_batches() {
        let (input, spans) = batch(8);
        let live = outcomes(&input, &spans, |w| (0..8).for_each(|_| w.keep_unchanged()));
        let shadow = outcomes(&input, &spans, |w| (0..8).for_each(|_| w.drop_record()));
        let mut report = ShadowReport::default();
        for _ in 0..3 {
            report.add(&live, &shadow, spans.len(), |i| i.to_string());
        }
        assert_eq!((report.compared, report.differing), (24, 24));
        assert_eq!(report.by_outcome.get("keep -> drop"), Some(&24));
        assert_eq!(report.samples.len(), 10);
        // The latest ones: the last batch's, bounded.
        assert_eq!(report.latest.len(), LATEST);
        assert_eq!(report.latest.back().map(|d| d.position.as_str()), Some("7"));
    }

    #[test]
    fn automatic_promotion_waits_for_enough_records_and_few_differences() {
        let rule = AutoPromote {
            after: 1000,
            max_difference: 0.01,
        };
        let report = |compared, differing| ShadowReport {
            compared,
            differing,
            ..Default::default()
        };
        assert!(!rule.met_by(&report(999, 0)));
        assert!(rule.met_by(&report(1000, 10)));
        assert!(!rule.met_by(&report(1000, 11)));
        assert!(rule.met_by(&report(5000, 50)));
        let never = AutoPromote {
            after: 0,
            max_difference: 0.0,
        };
        assert!(never.met_by(&report(0, 0)));
        assert!(!never.met_by(&report(10, 1)));
    }
}
