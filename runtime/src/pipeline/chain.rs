//! The transform chain: a batch through each plugin in order, one stage
//! per thread.

use std::ops::Range;

use sluice_codec::Record;

use super::dead_letter::{DeadLetter, Kind};
use crate::plugin::{CallError, LoadedPlugin, StageOutput, TransformSlot};
use crate::shadow::Shadow;
use crate::sources::SourceBatch;
use crate::value_json::write_record_json;

/// A batch on its way through the chain: what survives so far, and what
/// was dropped or dead-lettered.
#[derive(Debug, Default)]
pub struct Processed {
    /// The surviving records, encoded; `None` while they are still the
    /// source batch's own buffer.
    pub data: Option<Vec<u8>>,
    /// Their spans in the data.
    pub spans: Vec<Range<u32>>,
    /// For each, the index of the source record it came from.
    pub origins: Vec<u32>,
    /// Records that go to the dead-letter sink (plugin rejects and failures).
    pub dead: Vec<DeadLetter>,
    /// Records dropped on purpose.
    pub dropped: u64,
    /// Records added by `emit` beyond one per input.
    pub expanded: u64,
    /// The version of each transform that processed this batch, in order.
    pub versions: Vec<(String, String)>,
    /// A transform was interrupted by a stop: the batch must not be
    /// written (nor anything after it), so that the next run reads it again.
    pub abandoned: bool,
}

impl Processed {
    /// The state before the first transform: every source record survives.
    pub fn start(batch: &SourceBatch) -> Self {
        Processed {
            spans: batch.spans.clone(),
            origins: (0..batch.spans.len() as u32).collect(),
            ..Default::default()
        }
    }

    /// The encoded surviving records.
    pub fn data<'a>(&'a self, batch: &'a SourceBatch) -> &'a Vec<u8> {
        self.data.as_ref().unwrap_or(&batch.data)
    }
}

fn decode_json(bytes: &[u8]) -> Option<String> {
    let r = Record::decode(bytes).ok()?;
    // JSON text is about the size of the encoded record plus the quotes
    // and punctuation: one allocation for most records.
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 2 + 64);
    write_record_json(&mut out, &r);
    String::from_utf8(out).ok()
}

fn original(batch: &SourceBatch, i: u32) -> &[u8] {
    let s = &batch.spans[i as usize];
    &batch.data[s.start as usize..s.end as usize]
}

fn meta(batch: &SourceBatch, i: u32) -> (String, String) {
    Record::peek_stream_position(original(batch, i))
        .map(|(stream, position)| (position.to_string(), stream.to_string()))
        .unwrap_or_default()
}

/// A dead letter for the record at `index` of the stage's input.
#[allow(clippy::too_many_arguments)]
fn dead_letter(
    kind: Kind,
    plugin: &LoadedPlugin,
    code: String,
    field: Option<String>,
    message: String,
    batch: &SourceBatch,
    p: &Processed,
    stage: usize,
    index: usize,
) -> DeadLetter {
    let origin = p.origins[index];
    let (position, stream) = meta(batch, origin);
    let here = &p.spans[index];
    let data = p.data.as_ref().unwrap_or(&batch.data);
    DeadLetter::in_transform(
        kind,
        (plugin.name(), plugin.version()),
        code,
        field,
        message,
        (position, stream),
        decode_json(original(batch, origin)),
        // After the first stage, also what the failing stage received.
        (stage > 0)
            .then(|| decode_json(&data[here.start as usize..here.end as usize]))
            .flatten(),
    )
}

/// Runs the surviving records of `p` through the transform at position
/// `stage` of the chain (each stage runs on a thread of its own).
/// A shadow, if any, runs on the same input and is compared with the live
/// result; its outcomes go nowhere.
/// `ran` is the slot's output for this batch when it was already computed
/// (by the trial of a new version).
pub fn run_stage(
    slot: &mut TransformSlot,
    shadow: Option<&mut Shadow>,
    stage: usize,
    batch: &SourceBatch,
    p: &mut Processed,
    ran: Option<StageOutput>,
) {
    if p.spans.is_empty() {
        return;
    }
    let plugin = slot.plugin().clone();
    p.versions
        .push((plugin.name().to_string(), plugin.version().to_string()));
    let data = p.data.as_ref().unwrap_or(&batch.data);
    let result = match ran {
        Some(out) => Ok(out),
        None => slot.run(data, &p.spans),
    };
    match result {
        Ok(result) => {
            if let Some(shadow) = shadow {
                shadow.compare(data, &p.spans, &result, |i| meta(batch, p.origins[i]).0);
            }
            let inputs = p.spans.len() as u64;
            for rej in &result.rejected {
                use crate::plugin::untrusted::{MAX_CODE, MAX_FIELD, MAX_MESSAGE, clean};
                let d = dead_letter(
                    Kind::Rejected,
                    &plugin,
                    clean(&rej.code, MAX_CODE),
                    rej.field.as_deref().map(|f| clean(f, MAX_FIELD)),
                    clean(&rej.message, MAX_MESSAGE),
                    batch,
                    p,
                    stage,
                    rej.input,
                );
                p.dead.push(d);
            }
            p.dropped += result.dropped.len() as u64;
            let kept_inputs = inputs - result.dropped.len() as u64 - result.rejected.len() as u64;
            p.expanded += (result.spans.len() as u64).saturating_sub(kept_inputs);
            p.origins = result
                .from_input
                .iter()
                .map(|&i| p.origins[i as usize])
                .collect();
            p.spans = result.spans;
            p.data = Some(result.batch);
        }
        // The pipeline is stopping: this batch goes nowhere (neither
        // written nor dead-lettered) and is read again by the next run.
        Err(CallError::Stopped) => p.abandoned = true,
        Err(err) => {
            let code = match &err {
                CallError::Trap(_) => "trap",
                CallError::Deadline(_) => "deadline_exceeded",
                CallError::Memory(_) => "memory_limit_exceeded",
                CallError::Batch(_) => "batch_error",
                CallError::Contract(_) => "contract_violation",
                CallError::Restart(_) => "restart_failed",
                CallError::Stopped => "stopped",
            };
            let message = format!(
                "plugin `{}` ({}) {err} (after one retry on a fresh instance)",
                plugin.name(),
                plugin.version()
            );
            let dead: Vec<DeadLetter> = (0..p.spans.len())
                .map(|i| {
                    let code = code.to_string();
                    dead_letter(
                        Kind::PluginFailed,
                        &plugin,
                        code,
                        None,
                        message.clone(),
                        batch,
                        p,
                        stage,
                        i,
                    )
                })
                .collect();
            p.dead.extend(dead);
            p.spans.clear();
            p.origins.clear();
            p.data = Some(Vec::new());
        }
    }
}

#[cfg(all(test, feature = "toolchain"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use sluice_codec::{BatchWriter, Value};

    use super::*;
    use crate::plugin::{Grants, Limits, PluginHost, PluginSpec, StageRecordError};

    /// A slot around a component that traps on every call (the tests that
    /// hand `run_stage` a result never call it).
    fn slot(dir: &tempfile::TempDir) -> TransformSlot {
        let path = dir.path().join("traps.wasm");
        std::fs::write(&path, crate::plugin::wat_tests::component("")).unwrap();
        let host = PluginHost::new(None).unwrap();
        let plugin = host
            .load(PluginSpec {
                name: "clean".into(),
                path,
                config_json: "{}".into(),
                grants: Grants::default(),
                limits: Limits::default(),
                canary: None,
            })
            .unwrap();
        let c = crate::plugin::Candidate::restart(Arc::new(plugin)).unwrap();
        TransformSlot::with_instance(c.plugin, c.instance)
    }

    fn record(i: i64) -> Record<'static> {
        let mut r = Record {
            stream: "people".into(),
            position: format!("line {}", i + 2).into(),
            ..Record::default()
        };
        r.set("id", Value::Int(i));
        r
    }

    /// Records encoded one after another, with their spans.
    fn encode(records: &[Record<'_>]) -> (Vec<u8>, Vec<Range<u32>>) {
        let mut w = BatchWriter::default();
        for r in records {
            w.push(r);
        }
        let data = w.finish();
        let mut reader = sluice_codec::BatchReader::new(&data).unwrap();
        let mut spans = Vec::new();
        while let Some((at, bytes)) = reader.next_slice().unwrap() {
            spans.push(at as u32..(at + bytes.len()) as u32);
        }
        (data, spans)
    }

    fn source_batch(n: i64) -> SourceBatch {
        let (data, spans) = encode(&(0..n).map(record).collect::<Vec<_>>());
        SourceBatch {
            data,
            spans,
            malformed: vec![],
            resume: "4".into(),
        }
    }

    fn ids(p: &Processed, batch: &SourceBatch) -> Vec<i64> {
        let data = p.data(batch);
        p.spans
            .iter()
            .map(|s| {
                let r = Record::decode(&data[s.start as usize..s.end as usize]).unwrap();
                match r.get("id") {
                    Some(Value::Int(i)) => *i,
                    other => panic!("id {other:?}"),
                }
            })
            .collect()
    }

    #[test]
    fn outcomes_become_the_next_batch_dead_letters_and_counts_with_their_origins() {
        let dir = tempfile::tempdir().unwrap();
        let mut slot = slot(&dir);
        let batch = source_batch(4);
        let mut p = Processed::start(&batch);
        // Record 0 kept as 10, record 1 rejected, record 2 dropped,
        // record 3 emitted twice (30, 31).
        let (out, spans) = encode(&[record(10), record(30), record(31)]);
        let ran = StageOutput {
            batch: out,
            spans,
            from_input: vec![0, 3, 3],
            rejected: vec![StageRecordError {
                input: 1,
                code: "bad\u{1b}[31m".into(),
                field: Some("id".into()),
                message: "x".repeat(5000),
            }],
            dropped: vec![2],
        };
        run_stage(&mut slot, None, 0, &batch, &mut p, Some(ran));
        assert_eq!(ids(&p, &batch), vec![10, 30, 31]);
        assert_eq!(p.origins, vec![0, 3, 3]);
        assert_eq!((p.dropped, p.expanded), (1, 1));
        assert_eq!(p.versions.len(), 1);
        assert_eq!(p.versions[0].0, "clean");
        assert_eq!(p.dead.len(), 1);
        let d = &p.dead[0];
        assert_eq!(d.kind, Kind::Rejected);
        assert_eq!(d.position, "line 3");
        assert_eq!(d.stream, "people");
        assert_eq!(d.stage, "clean");
        assert_eq!(d.plugin_version.as_deref(), Some(p.versions[0].1.as_str()));
        // What the plugin says is cleaned: no terminal escapes, bounded.
        assert_eq!(d.code, "bad\\u{1b}[31m");
        assert!(d.message.len() < 5000, "{}", d.message.len());
        assert_eq!(
            d.record.as_deref(),
            Some(r#"{"stream":"people","op":"insert","position":"line 3","fields":{"id":1}}"#)
        );
        // At the first stage the record received is the source's own.
        assert_eq!(d.input, None);
        assert!(!p.abandoned);
    }

    #[test]
    fn a_later_stage_dead_letters_with_what_it_received_and_maps_origins_through() {
        let dir = tempfile::tempdir().unwrap();
        let mut slot = slot(&dir);
        let batch = source_batch(3);
        let mut p = Processed::start(&batch);
        // After an earlier stage: source records 2 and 0 survive, changed.
        let (data, spans) = encode(&[record(20), record(0)]);
        p.data = Some(data);
        p.spans = spans;
        p.origins = vec![2, 0];
        let ran = StageOutput {
            rejected: vec![StageRecordError {
                input: 0,
                code: "too_big".into(),
                field: None,
                message: "20 is too big".into(),
            }],
            batch: encode(&[record(0)]).0,
            spans: encode(&[record(0)]).1,
            from_input: vec![1],
            dropped: vec![],
        };
        run_stage(&mut slot, None, 1, &batch, &mut p, Some(ran));
        assert_eq!(p.origins, vec![0]);
        assert_eq!(p.dead.len(), 1);
        let d = &p.dead[0];
        assert_eq!((d.position.as_str(), d.field.as_deref()), ("line 4", None));
        assert_eq!(
            d.record.as_deref(),
            Some(r#"{"stream":"people","op":"insert","position":"line 4","fields":{"id":2}}"#)
        );
        assert_eq!(
            d.input.as_deref(),
            Some(r#"{"stream":"people","op":"insert","position":"line 22","fields":{"id":20}}"#)
        );
    }

    #[test]
    fn a_plugin_that_fails_twice_dead_letters_every_record_of_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut slot = slot(&dir);
        let batch = source_batch(3);
        let mut p = Processed::start(&batch);
        run_stage(&mut slot, None, 0, &batch, &mut p, None);
        assert!(p.spans.is_empty() && p.origins.is_empty());
        assert_eq!(p.dead.len(), 3);
        for (i, d) in p.dead.iter().enumerate() {
            assert_eq!(d.kind, Kind::PluginFailed);
            assert_eq!(d.code, "trap");
            assert_eq!(d.position, format!("line {}", i + 2));
            assert!(d.message.contains("after one retry"), "{}", d.message);
        }
        assert_eq!((slot.retries, slot.failures), (1, 1));
    }

    #[test]
    fn a_batch_with_nothing_left_does_not_reach_the_plugin() {
        let dir = tempfile::tempdir().unwrap();
        let mut slot = slot(&dir);
        let batch = source_batch(2);
        let mut p = Processed::start(&batch);
        p.spans.clear();
        p.origins.clear();
        run_stage(&mut slot, None, 0, &batch, &mut p, None);
        assert!(p.dead.is_empty() && p.versions.is_empty());
        assert_eq!(slot.failures, 0);
    }
}
