//! Shadow mode: a candidate version runs beside the live one on the same
//! batches; its outcomes are compared, never written. It is promoted on
//! command, or automatically once enough records were compared with few
//! enough differences.

use std::collections::BTreeMap;
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
        let (a, b) = (fates(live, spans.len()), fates(&shadow, spans.len()));
        for (i, (l, s)) in a.iter().zip(&b).enumerate() {
            self.report.compared += 1;
            if l == s {
                continue;
            }
            self.report.differing += 1;
            let fields = match (l, s) {
                (Fate::Kept(x), Fate::Kept(y)) if x.len() == 1 && y.len() == 1 => {
                    changed_fields(x[0], y[0])
                }
                _ => Vec::new(),
            };
            for f in &fields {
                *self.report.changed_fields.entry(f.clone()).or_default() += 1;
            }
            *self
                .report
                .by_outcome
                .entry(format!("{} -> {}", l.describe(), s.describe()))
                .or_default() += 1;
            if self.report.samples.len() < 10 {
                self.report.samples.push(Difference {
                    position: position(i),
                    live: l.describe(),
                    shadow: s.describe(),
                    fields,
                });
            }
        }
    }

    /// True once the automatic promotion criteria are met.
    pub fn ready_to_promote(&self) -> bool {
        self.auto.is_some_and(|a| {
            self.report.compared >= a.after
                && (self.report.differing as f64) <= a.max_difference * self.report.compared as f64
        })
    }
}
