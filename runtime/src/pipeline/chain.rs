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
