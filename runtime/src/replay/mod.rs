//! `sluice replay`: dead letters back through the pipeline's current
//! transforms into its sink, once a plugin (or the data's target) has been
//! fixed.
//!
//! The dead letters are read back from the pipeline's dead-letter sink (or
//! a JSON-lines copy), filtered (code, stage, plugin version, time), and
//! each one's record, as the source gave it, runs through today's plugins
//! into the sink, as a run would write it: the sink's and the dead-letter
//! sink's states move in the checkpoint, the source position does not.
//! Records refused again go back to the dead-letter sink with `replay_of`
//! naming the dead letter they replay.
//!
//! A ledger in the state directory (`NAME.replay.db`) notes each dead
//! letter replayed, after its batch was committed: a second replay skips
//! it. Where dead letters of one key (`key` of the record: change data
//! capture) were refused more than once, only the latest is replayed: an
//! older image would overwrite it. A replay writes while no run of the
//! pipeline does (it takes the run lock); `--dry-run` writes nothing and
//! says what would happen.

mod ledger;
mod stored;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use serde::Serialize;
use sluice_codec::BatchWriter;

pub use ledger::Ledger;
pub use stored::{Read, StoredDeadLetter, read};

use crate::config::Pipeline;
use crate::control::Stats;
use crate::pipeline::{self, Processed};
use crate::sources::SourceBatch;

/// Which dead letters to replay, and whether to write.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Read the dead letters from this JSON-lines file instead of the
    /// pipeline's dead-letter sink.
    pub from: Option<PathBuf>,
    /// Only these codes (any, when empty).
    pub codes: Vec<String>,
    /// Only these stages (any, when empty).
    pub stages: Vec<String>,
    /// Only dead letters of these plugin versions (prefixes; any, when empty).
    pub versions: Vec<String>,
    /// Only dead letters from this time on (µs since the epoch).
    pub since: Option<i64>,
    /// Only dead letters before this time (µs since the epoch).
    pub until: Option<i64>,
    /// Run the plugins and report, write nothing.
    pub dry_run: bool,
}

/// One replayed dead letter and what came of it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Outcome {
    /// The dead letter.
    pub id: String,
    /// Where its record came from.
    pub position: String,
    /// `passed` (the transforms kept or dropped it; the sink's refusals are
    /// counted in [`Report::rejected_again`]) or `rejected again: STAGE:
    /// CODE`.
    pub outcome: String,
}

/// What a replay did (or, dry, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The pipeline.
    pub pipeline: String,
    /// Nothing was written.
    pub dry_run: bool,
    /// Dead letters read.
    pub read: u64,
    /// Entries of the store that are not dead letters, with where and why.
    pub unreadable: Vec<String>,
    /// Dead letters the filters selected.
    pub selected: u64,
    /// Selected but replayed before (in the ledger).
    pub already_replayed: u64,
    /// Selected but not replayable: input the source could not read (its
    /// raw text is in the dead letter; fix the data at the source).
    pub not_replayable: u64,
    /// Selected but older than another dead letter of the same key.
    pub superseded: u64,
    /// Sent through the transforms.
    pub replayed: u64,
    /// Records written to the sink (an `emit` may make several of one).
    pub written: u64,
    /// Records the transforms dropped on purpose.
    pub dropped: u64,
    /// Records refused again, by `stage: code` (the sink's refusals too).
    pub rejected_again: BTreeMap<String, u64>,
    /// The first outcomes (at most [`Report::SAMPLES`]).
    pub samples: Vec<Outcome>,
}

impl Report {
    /// How many outcomes the report shows.
    pub const SAMPLES: usize = 20;

    /// The report as text.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "replay of pipeline `{}`{}",
            self.pipeline,
            if self.dry_run {
                " (dry run: nothing written)"
            } else {
                ""
            }
        );
        let _ = writeln!(s, "  dead letters read       {}", self.read);
        let _ = writeln!(s, "  selected                {}", self.selected);
        let _ = writeln!(s, "  already replayed        {}", self.already_replayed);
        let _ = writeln!(
            s,
            "  not replayable          {}  (input the source could not read: fix it at the source)",
            self.not_replayable
        );
        let _ = writeln!(
            s,
            "  superseded              {}  (a later dead letter of the same key is replayed instead)",
            self.superseded
        );
        let _ = writeln!(s, "  replayed                {}", self.replayed);
        let verb = if self.dry_run {
            "would be written"
        } else {
            "written"
        };
        let _ = writeln!(s, "    {verb:<21} {}", self.written);
        let _ = writeln!(s, "    dropped               {}", self.dropped);
        let again: u64 = self.rejected_again.values().sum();
        let _ = writeln!(s, "    rejected again        {again}");
        for (reason, n) in &self.rejected_again {
            let _ = writeln!(s, "      {reason:<30} {n}");
        }
        for u in self.unreadable.iter().take(10) {
            let _ = writeln!(s, "  unreadable: {u}");
        }
        if self.unreadable.len() > 10 {
            let _ = writeln!(
                s,
                "  ... and {} more unreadable entries",
                self.unreadable.len() - 10
            );
        }
        s
    }
}

fn selected(d: &StoredDeadLetter, o: &Options) -> bool {
    (o.codes.is_empty() || o.codes.contains(&d.code))
        && (o.stages.is_empty() || o.stages.contains(&d.stage))
        && (o.versions.is_empty()
            || d.plugin_version
                .as_deref()
                .is_some_and(|v| o.versions.iter().any(|p| v.starts_with(p.as_str()))))
        && o.since.is_none_or(|s| d.time.is_some_and(|t| t >= s))
        && o.until.is_none_or(|u| d.time.is_some_and(|t| t < u))
}

/// The ids of dead letters older than another of the same stream and key.
fn superseded(letters: &[&StoredDeadLetter]) -> HashMap<String, String> {
    let mut latest: HashMap<(String, String), (Option<i64>, &str)> = HashMap::new();
    for d in letters {
        let Some(key) = d.record.as_ref().and_then(|r| r.get("key")) else {
            continue;
        };
        if key.is_null() {
            continue;
        }
        let k = (d.stream.clone(), key.to_string());
        let newer = latest.get(&k).is_none_or(|(t, _)| d.time >= *t);
        if newer {
            latest.insert(k, (d.time, &d.id));
        }
    }
    let mut out = HashMap::new();
    for d in letters {
        let Some(key) = d.record.as_ref().and_then(|r| r.get("key")) else {
            continue;
        };
        if let Some((_, id)) = latest.get(&(d.stream.clone(), key.to_string()))
            && *id != d.id
        {
            out.insert(d.id.clone(), (*id).to_string());
        }
    }
    out
}

/// Replays the pipeline's dead letters as `options` say.
pub fn replay(pipeline: Pipeline, options: &Options) -> anyhow::Result<Report> {
    let mut report = Report {
        pipeline: pipeline.name.clone(),
        dry_run: options.dry_run,
        ..Default::default()
    };
    let dlq = pipeline::dead_letter_config(&pipeline);
    let read = match &options.from {
        Some(path) => stored::read_jsonl(path),
        None => stored::read(&dlq),
    }
    .map_err(anyhow::Error::msg)?;
    report.read = read.letters.len() as u64;
    report.unreadable = read.unreadable;

    // A replay writes while no run does.
    let _lock = if options.dry_run {
        None
    } else {
        Some(
            pipeline::run_lock::acquire(&pipeline.state_dir, &pipeline.name)
                .map_err(anyhow::Error::msg)?,
        )
    };
    let ledger_path = Ledger::path(&pipeline.state_dir, &pipeline.name);
    let mut ledger = if options.dry_run && !ledger_path.exists() {
        None
    } else {
        Some(Ledger::open(&pipeline.state_dir, &pipeline.name).map_err(anyhow::Error::msg)?)
    };

    let chosen: Vec<&StoredDeadLetter> = read
        .letters
        .iter()
        .filter(|d| selected(d, options))
        .collect();
    report.selected = chosen.len() as u64;
    let mut todo: Vec<&StoredDeadLetter> = Vec::new();
    for d in &chosen {
        if let Some(l) = &ledger
            && l.outcome(&d.id).map_err(anyhow::Error::msg)?.is_some()
        {
            report.already_replayed += 1;
        } else if d.record.is_none() {
            report.not_replayable += 1;
        } else {
            todo.push(d);
        }
    }
    let older = superseded(&todo);
    report.superseded = older.len() as u64;
    if !options.dry_run
        && let Some(l) = &mut ledger
        && !older.is_empty()
    {
        let notes: Vec<(String, String)> = older
            .iter()
            .map(|(id, by)| (id.clone(), format!("superseded by {by}")))
            .collect();
        l.note(&notes).map_err(anyhow::Error::msg)?;
    }
    todo.retain(|d| !older.contains_key(&d.id));
    if todo.is_empty() {
        return Ok(report);
    }

    // Today's transforms, as a run starts them.
    let batch_size = pipeline.config.runtime.batch_size.max(1);
    let sink_config = pipeline.config.sink.clone();
    let state_dir = pipeline.state_dir.clone();
    let name = pipeline.name.clone();
    let mut prepared = pipeline::prepare(pipeline)?;
    let mut slots = prepared.take_slots();

    let mut writer = if options.dry_run {
        None
    } else {
        Some(Writer::open(
            &sink_config,
            &prepared.dead_letter,
            &state_dir,
            &name,
            slots.len(),
        )?)
    };
    let stats = Stats::default();
    let mut rest: &[&StoredDeadLetter] = &todo;
    while !rest.is_empty() {
        // A batch's positions must be unique: they link each refusal to
        // the dead letter it replays.
        let mut seen = HashSet::new();
        let n = rest
            .iter()
            .take(batch_size)
            .take_while(|d| seen.insert(d.position.clone()))
            .count()
            .max(1);
        let (now, later) = rest.split_at(n);
        rest = later;
        let batch = encode(now)?;
        let mut processed = Processed::start(&batch);
        for (stage, slot) in slots.iter_mut().enumerate() {
            pipeline::run_stage(slot, None, stage, &batch, &mut processed, None);
        }
        let mut outcomes: Vec<(String, String)> = Vec::with_capacity(now.len());
        let refused: HashMap<&str, String> = processed
            .dead
            .iter()
            .map(|d| (d.position.as_str(), format!("{}: {}", d.stage, d.code)))
            .collect();
        for d in now {
            let outcome = match refused.get(d.position.as_str()) {
                Some(reason) => format!("rejected again: {reason}"),
                None => "passed".to_string(),
            };
            if report.samples.len() < Report::SAMPLES {
                report.samples.push(Outcome {
                    id: d.id.clone(),
                    position: d.position.clone(),
                    outcome: outcome.clone(),
                });
            }
            outcomes.push((d.id.clone(), outcome));
        }
        report.replayed += now.len() as u64;
        match &mut writer {
            None => {
                report.written += processed.spans.len() as u64;
                report.dropped += processed.dropped;
                for d in &processed.dead {
                    *report
                        .rejected_again
                        .entry(format!("{}: {}", d.stage, d.code))
                        .or_default() += 1;
                }
            }
            Some(w) => {
                let links = now
                    .iter()
                    .map(|d| (d.position.clone(), d.id.clone()))
                    .collect();
                w.commit(&batch, processed, &stats, links)?;
                // After the commit: a crash in between replays the batch
                // again (a keyed sink upserts it to the same rows).
                if let Some(l) = &mut ledger {
                    l.note(&outcomes).map_err(anyhow::Error::msg)?;
                }
            }
        }
    }
    if writer.is_some() {
        report.written = stats.written.load(Ordering::Relaxed);
        report.dropped = stats.dropped.load(Ordering::Relaxed);
        report.rejected_again = stats.reasons.lock().map(|r| r.clone()).unwrap_or_default();
    }
    Ok(report)
}

/// The records of `letters`, as a source batch (each keeps its position).
fn encode(letters: &[&StoredDeadLetter]) -> anyhow::Result<SourceBatch> {
    let mut w = BatchWriter::with_capacity(1 << 16);
    let mut spans = Vec::with_capacity(letters.len());
    for d in letters {
        let Some(j) = &d.record else {
            continue;
        };
        let mut rec = crate::value_json::json_to_record(j).map_err(|e| {
            anyhow::anyhow!(
                "dead letter {} ({}): its record cannot be read: {e}",
                d.id,
                d.position
            )
        })?;
        if rec.position.is_empty() {
            rec.position = Cow::Owned(d.position.clone());
        }
        let at = w.push(&rec);
        spans.push(at as u32..w.byte_len() as u32);
    }
    Ok(SourceBatch {
        data: w.finish(),
        spans,
        malformed: Vec::new(),
        resume: String::new(),
    })
}

/// The sink, the dead-letter sink and the checkpoint a replay writes.
struct Writer {
    sink: Box<dyn crate::sinks::Sink>,
    dlq: Box<dyn crate::sinks::Sink>,
    store: pipeline::Checkpoints,
    cp: Option<pipeline::Checkpoint>,
    name: String,
    clocks: pipeline::profile::Clocks,
}

impl Writer {
    fn open(
        sink: &crate::sinks::SinkConfig,
        dead_letter: &crate::sinks::SinkConfig,
        state_dir: &std::path::Path,
        name: &str,
        transforms: usize,
    ) -> anyhow::Result<Self> {
        let store = pipeline::Checkpoints::open(state_dir)?;
        let cp = store.load(name)?;
        let mut s = crate::sinks::build(sink)?;
        // Output a crashed run left after its checkpoint goes, as a run
        // would remove it.
        s.open(cp.as_ref().and_then(|c| c.sink.as_deref()))?;
        let mut d = crate::sinks::build(dead_letter)?;
        d.serve_dead_letters();
        d.open(cp.as_ref().and_then(|c| c.dead_letter.as_deref()))?;
        Ok(Writer {
            sink: s,
            dlq: d,
            store,
            cp,
            name: name.to_string(),
            clocks: pipeline::profile::Clocks::new(transforms),
        })
    }

    fn commit(
        &mut self,
        batch: &SourceBatch,
        processed: Processed,
        stats: &Stats,
        links: HashMap<String, String>,
    ) -> anyhow::Result<()> {
        let keep = self.cp.is_some();
        let mut c = pipeline::commit::Committer {
            sink: self.sink.as_mut(),
            dlq: self.dlq.as_mut(),
            stats,
            cp: self.cp.clone().unwrap_or_default(),
            store: &self.store,
            pipeline: &self.name,
            clocks: &self.clocks,
            replay: Some(pipeline::commit::Replay {
                links,
                save_checkpoint: keep,
            }),
        };
        c.commit(batch, processed)?;
        if keep {
            self.cp = Some(c.cp);
        }
        Ok(())
    }
}
