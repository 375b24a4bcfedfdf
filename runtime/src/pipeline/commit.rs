//! The sink thread's work for one processed batch, step by step: the
//! records for the sink, the sink's write, the dead letters (plugins'
//! rejects, unreadable input, the sink's refusals), the checkpoint, and
//! the counts.

use std::sync::atomic::Ordering;
use std::time::Instant;

use sluice_codec::Record;

use super::chain::Processed;
use super::checkpoint::{Checkpoint, Checkpoints};
use super::dead_letter::{DeadLetter, Kind};
use super::profile::Clocks;
use super::{RunError, Stats};
use crate::control::{EXAMPLES_PER_REASON, ReasonExample, RecentDeadLetter, RecentDeadLetters};
use crate::sinks::{Sink, SinkCommit, SinkError};
use crate::sources::SourceBatch;
use crate::value_json::record_json_text;

/// What the sink thread writes to, and where it keeps its progress.
pub(crate) struct Committer<'a> {
    /// The pipeline's sink.
    pub sink: &'a mut dyn Sink,
    /// The dead-letter sink.
    pub dlq: &'a mut dyn Sink,
    /// The run's counters.
    pub stats: &'a Stats,
    /// The checkpoint as of the last committed batch.
    pub cp: Checkpoint,
    /// Where checkpoints are saved.
    pub store: &'a Checkpoints,
    /// The pipeline's name (the checkpoint's key).
    pub pipeline: &'a str,
    /// The sink thread's clocks (`--profile`).
    pub clocks: &'a Clocks,
    /// Set by `sluice replay`: the batch is dead letters, not new source
    /// records.
    pub replay: Option<Replay>,
}

/// How a replayed batch is committed differently: the source position and
/// the count of source records stay; each record refused again names the
/// dead letter it replays.
pub(crate) struct Replay {
    /// The dead letter each record replays, by its position (unique in the
    /// batch).
    pub links: std::collections::HashMap<String, String>,
    /// Save the checkpoint (false when the pipeline has none yet: a
    /// replay does not make one).
    pub save_checkpoint: bool,
}

impl Committer<'_> {
    /// Writes one processed batch: sink, then dead letters, then the
    /// checkpoint. An error stops the run; the batch is read again next
    /// time.
    pub fn commit(
        &mut self,
        batch: &SourceBatch,
        mut processed: Processed,
    ) -> Result<(), RunError> {
        let began = Instant::now();
        let inputs = (batch.spans.len() + batch.malformed.len()) as u64;
        let owned = processed.data.take();
        let data: &[u8] = owned.as_deref().unwrap_or(&batch.data);
        let versions = version_headers(&processed);
        let records = sink_records(batch, &processed, data, &versions)?;
        let t = self.clocks.sink_prepare.add_since(began);
        let commit = if records.is_empty() {
            SinkCommit::default()
        } else {
            self.sink.write(&records).map_err(RunError::Sink)?
        };
        let sink_time = t.elapsed();
        let t = self.clocks.sink_write.add_since(t);
        let mut dead = std::mem::take(&mut processed.dead);
        dead.extend(batch.malformed.iter().map(DeadLetter::malformed));
        for refused in &commit.refused {
            let origin = processed.origins[refused.index];
            let s = &batch.spans[origin as usize];
            let original = Record::decode(&batch.data[s.start as usize..s.end as usize])
                .ok()
                .map(|r| record_json_text(&r));
            dead.push(DeadLetter::sink_refused(
                refused,
                &records[refused.index],
                original,
            ));
        }
        if let Some(r) = &self.replay {
            for d in &mut dead {
                d.replay_of = r.links.get(&d.position).cloned();
            }
        }
        let dlq_state = self.write_dead_letters(&dead)?;
        let t = self.clocks.dead_letters.add_since(t);
        if self.replay.is_none() {
            self.cp.records += inputs;
            self.cp.source.clone_from(&batch.resume);
        }
        if commit.state.is_some() {
            self.cp.sink = commit.state;
        }
        if dlq_state.is_some() {
            self.cp.dead_letter = dlq_state;
        }
        if self.replay.as_ref().is_none_or(|r| r.save_checkpoint) {
            self.store.save(self.pipeline, &self.cp)?;
        }
        self.stats.source.set_committed(&batch.resume);
        self.count(inputs, commit.written, &processed, &dead)?;
        self.clocks.checkpoint.add_since(t);
        tracing::trace!(
            records = inputs,
            sink_us = sink_time.as_micros() as u64,
            "batch committed"
        );
        Ok(())
    }

    /// Writes `dead` to the dead-letter sink; its state to checkpoint.
    /// A dead letter it refuses stops the run (it would be lost).
    fn write_dead_letters(&mut self, dead: &[DeadLetter]) -> Result<Option<String>, RunError> {
        if dead.is_empty() {
            return Ok(None);
        }
        let recs: Vec<Record<'_>> = dead.iter().map(DeadLetter::to_record).collect();
        let c = self.dlq.write(&recs).map_err(RunError::DeadLetter)?;
        if let Some(r) = c.refused.first() {
            return Err(RunError::DeadLetter(SinkError::Config {
                path: self.dlq.describe().into(),
                message: format!("refused a dead letter: {}", r.reason),
            }));
        }
        Ok(c.state)
    }

    /// The run's counters and metrics for a committed batch. Dead letters
    /// are counted by (kind, stage, code) first: one map entry and one
    /// metric update per kind of reason in the batch, not per record.
    fn count(
        &self,
        inputs: u64,
        written: u64,
        processed: &Processed,
        dead: &[DeadLetter],
    ) -> Result<(), RunError> {
        let mut by_reason: Vec<(Kind, &str, &str, u64)> = Vec::new();
        for d in dead {
            match by_reason
                .iter_mut()
                .find(|(k, s, c, _)| *k == d.kind && *s == d.stage && *c == d.code)
            {
                Some(e) => e.3 += 1,
                None => by_reason.push((d.kind, &d.stage, &d.code, 1)),
            }
        }
        {
            let mut reasons = self
                .stats
                .reasons
                .lock()
                .map_err(|_| RunError::Internal("stats lock poisoned".into()))?;
            let mut examples = self
                .stats
                .examples
                .lock()
                .map_err(|_| RunError::Internal("stats lock poisoned".into()))?;
            for (_, stage, code, n) in &by_reason {
                let reason = format!("{stage}: {code}");
                // The first few of each reason, for the run report.
                let kept = examples.entry(reason.clone()).or_default();
                if kept.len() < EXAMPLES_PER_REASON {
                    kept.extend(
                        dead.iter()
                            .filter(|d| d.stage == *stage && d.code == *code)
                            .take(EXAMPLES_PER_REASON - kept.len())
                            .map(|d| ReasonExample {
                                position: d.position.clone(),
                                field: d.field.clone(),
                                message: d.message.clone(),
                                plugin_version: d.plugin_version.clone(),
                            }),
                    );
                }
                *reasons.entry(reason).or_default() += n;
            }
        }
        {
            // The latest ones, for the console (the oldest of a large batch
            // would only be pushed out again).
            let mut recent = self
                .stats
                .recent_dead
                .lock()
                .map_err(|_| RunError::Internal("stats lock poisoned".into()))?;
            let skip = dead.len().saturating_sub(RecentDeadLetters::KEEP);
            for d in &dead[skip..] {
                recent.push(RecentDeadLetter {
                    seq: 0,
                    time: d.time,
                    kind: d.kind.as_str().to_string(),
                    stage: d.stage.clone(),
                    code: d.code.clone(),
                    field: d.field.clone(),
                    message: d.message.clone(),
                    plugin_version: d.plugin_version.clone(),
                    position: d.position.clone(),
                });
            }
        }
        // The metric names every component shares (docs/pipeline.md, "The
        // admin API and `sluice ctl`").
        metrics::counter!("records_in_total").increment(inputs);
        metrics::counter!("records_out_total").increment(written);
        metrics::counter!("records_dropped_total").increment(processed.dropped);
        for (kind, stage, _, n) in &by_reason {
            match kind {
                Kind::Rejected => {
                    metrics::counter!("records_rejected_total", "stage" => stage.to_string())
                        .increment(*n)
                }
                _ => metrics::counter!("errors_total", "stage" => stage.to_string()).increment(*n),
            }
        }
        metrics::counter!("records_dead_lettered_total").increment(dead.len() as u64);
        let s = self.stats;
        s.records_in.fetch_add(inputs, Ordering::Relaxed);
        s.written.fetch_add(written, Ordering::Relaxed);
        s.dropped.fetch_add(processed.dropped, Ordering::Relaxed);
        s.expanded.fetch_add(processed.expanded, Ordering::Relaxed);
        s.dead_lettered
            .fetch_add(dead.len() as u64, Ordering::Relaxed);
        s.timeline.lock().unwrap_or_else(|p| p.into_inner()).sample(
            s.records_in.load(Ordering::Relaxed),
            s.written.load(Ordering::Relaxed),
            s.dead_lettered.load(Ordering::Relaxed),
            false,
        );
        Ok(())
    }
}

/// `sluice-version-TRANSFORM` = version, for each transform of the batch.
fn version_headers(processed: &Processed) -> Vec<(String, String)> {
    processed
        .versions
        .iter()
        .map(|(t, v)| (crate::conventions::version_header(t), v.clone()))
        .collect()
}

/// The surviving records of the batch as the sink gets them: each names
/// the versions that made it (shown by sinks that write metadata), and
/// keeps the position of the source record it came from, whatever a
/// plugin wrote there.
fn sink_records<'d>(
    batch: &'d SourceBatch,
    processed: &Processed,
    data: &'d [u8],
    versions: &'d [(String, String)],
) -> Result<Vec<Record<'d>>, RunError> {
    let mut records = Vec::with_capacity(processed.spans.len());
    for (s, &origin) in processed.spans.iter().zip(&processed.origins) {
        let mut rec = Record::decode(&data[s.start as usize..s.end as usize])
            .map_err(|e| RunError::Internal(format!("a checked record failed to decode: {e}")))?;
        for (name, version) in versions {
            rec.headers.push((
                std::borrow::Cow::Borrowed(name.as_str()),
                std::borrow::Cow::Borrowed(version.as_bytes()),
            ));
        }
        let o = &batch.spans[origin as usize];
        if let Ok((_, position)) =
            Record::peek_stream_position(&batch.data[o.start as usize..o.end as usize])
            && position != rec.position
        {
            rec.position = position.into();
        }
        records.push(rec);
    }
    Ok(records)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::borrow::Cow;

    use sluice_codec::Value;

    use super::*;
    use crate::sinks::SinkConfig;
    use crate::sources::Malformed;

    fn person(id: Option<i64>, name: &str, position: &str) -> Record<'static> {
        let mut r = Record {
            stream: "people".into(),
            position: Cow::Owned(position.to_string()),
            ..Default::default()
        };
        r.set("id", id.map_or(Value::Null, Value::Int));
        r.set("name", Value::Text(Cow::Owned(name.to_string())));
        r
    }

    /// A source batch of `records` (encoded one after the other) and one
    /// unreadable row.
    fn batch(records: &[Record<'_>]) -> SourceBatch {
        let mut data = Vec::new();
        let mut spans = Vec::new();
        for r in records {
            let at = data.len() as u32;
            r.encode(&mut data);
            spans.push(at..data.len() as u32);
        }
        SourceBatch {
            data,
            spans,
            malformed: vec![Malformed {
                record: None,
                position: "line 9".into(),
                stream: "people".into(),
                raw: "9;x;y".into(),
                reason: "row has 3 fields, the header has 2".into(),
            }],
            resume: "after line 9".into(),
        }
    }

    /// What a committer writes to: a sink and a dead-letter sink opened
    /// from their TOML (`{dir}` is replaced by `dir`), and a checkpoint
    /// store in `dir`.
    struct Parts {
        sink: Box<dyn Sink>,
        dlq: Box<dyn Sink>,
        store: Checkpoints,
        stats: Stats,
        clocks: Clocks,
    }

    impl Parts {
        fn new(dir: &tempfile::TempDir, sink: &str, dlq: &str) -> Self {
            let open = |toml_text: &str| {
                let text = toml_text.replace("{dir}", &dir.path().display().to_string());
                let cfg: SinkConfig = toml::from_str(&text).unwrap();
                let mut s = crate::sinks::build(&cfg).unwrap();
                s.open(None).unwrap();
                s
            };
            Parts {
                sink: open(sink),
                dlq: open(dlq),
                store: Checkpoints::open(&dir.path().join("state")).unwrap(),
                stats: Stats::default(),
                clocks: Clocks::new(1),
            }
        }

        fn committer(&mut self) -> Committer<'_> {
            Committer {
                sink: self.sink.as_mut(),
                dlq: self.dlq.as_mut(),
                stats: &self.stats,
                cp: Checkpoint::default(),
                store: &self.store,
                pipeline: "p",
                clocks: &self.clocks,
                replay: None,
            }
        }
    }

    #[test]
    fn a_batch_is_written_its_dead_letters_kept_and_the_checkpoint_moved() {
        let dir = tempfile::tempdir().unwrap();
        let mut parts = Parts::new(
            &dir,
            "type = \"sqlite\"\npath = \"{dir}/out.db\"\nkey = [\"id\"]",
            "type = \"jsonl\"\npath = \"{dir}/dead.jsonl\"",
        );
        let mut committer = parts.committer();
        // Three records reach the sink (the last one without its key, which
        // the sink refuses); a transform rejected a fourth before.
        let batch = batch(&[
            person(Some(1), "ada", "line 2"),
            person(Some(2), "grace", "line 3"),
            person(None, "nokey", "line 4"),
        ]);
        let mut processed = Processed::start(&batch);
        processed
            .versions
            .push(("map".to_string(), "v1".to_string()));
        processed.dead.push(DeadLetter::in_transform(
            Kind::Rejected,
            ("map", "v1"),
            "bad".into(),
            Some("name".into()),
            "no".into(),
            ("line 5".into(), "people".into()),
            None,
            None,
        ));
        committer.commit(&batch, processed).unwrap();

        let conn = rusqlite::Connection::open(dir.path().join("out.db")).unwrap();
        let rows: Vec<String> = conn
            .prepare("SELECT id || name FROM people ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows, ["1ada", "2grace"]);
        let dead: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("dead.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let codes: Vec<(&str, &str, &str)> = dead
            .iter()
            .map(|d| {
                (
                    d["stage"].as_str().unwrap(),
                    d["code"].as_str().unwrap(),
                    d["position"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            codes,
            [
                ("map", "bad", "line 5"),
                ("source", "malformed", "line 9"),
                ("sink", "sink_refused", "line 4"),
            ]
        );
        // The refused record as the sink got it names the version that made it.
        assert_eq!(
            dead[2]["input"]["headers"]["sluice-version-map"].as_str(),
            Some("v1")
        );
        assert_eq!(dead[1]["raw"].as_str(), Some("9;x;y"));
        // The checkpoint moved past the batch, the counts add up.
        let (store, stats) = (&parts.store, &parts.stats);
        let cp = store.load("p").unwrap().unwrap();
        assert_eq!((cp.source.as_str(), cp.records), ("after line 9", 4));
        assert!(cp.dead_letter.is_some());
        assert_eq!(stats.records_in.load(Ordering::Relaxed), 4);
        assert_eq!(stats.written.load(Ordering::Relaxed), 2);
        assert_eq!(stats.dead_lettered.load(Ordering::Relaxed), 3);
        let reasons = stats.reasons.lock().unwrap().clone();
        assert_eq!(
            reasons.into_iter().collect::<Vec<_>>(),
            [
                ("map: bad".to_string(), 1),
                ("sink: sink_refused".to_string(), 1),
                ("source: malformed".to_string(), 1),
            ]
        );
    }

    #[test]
    fn a_dead_letter_that_cannot_be_kept_stops_the_run_before_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        // A dead-letter table that is not there and may not be created.
        let mut parts = Parts::new(
            &dir,
            "type = \"jsonl\"\npath = \"{dir}/out.jsonl\"",
            "type = \"sqlite\"\npath = \"{dir}/dead.db\"\ncreate_table = false",
        );
        let mut committer = parts.committer();
        let batch = batch(&[person(Some(1), "ada", "line 2")]);
        let processed = Processed::start(&batch);
        let err = committer.commit(&batch, processed).unwrap_err();
        assert!(matches!(err, RunError::DeadLetter(_)), "{err}");
        // No checkpoint: the next run reads the batch again.
        assert_eq!(parts.store.load("p").unwrap(), None);
        assert_eq!(parts.stats.records_in.load(Ordering::Relaxed), 0);
    }
}
