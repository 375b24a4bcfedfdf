//! The transform chain: a source batch through every plugin in order.

use std::ops::Range;

use sluice_codec::Record;

use super::dead_letter::{DeadLetter, Kind, now_micros};
use crate::plugin::TransformSlot;
use crate::sources::SourceBatch;
use crate::value_json::record_to_json;

/// A batch after the chain.
#[derive(Debug, Default)]
pub struct Processed {
    /// The surviving records, encoded.
    pub data: Vec<u8>,
    /// Their spans in `data`.
    pub spans: Vec<Range<u32>>,
    /// For each, the index of the source record it came from.
    pub origins: Vec<u32>,
    /// Records that go to the dead-letter sink (plugin rejects and failures).
    pub dead: Vec<DeadLetter>,
    /// Records dropped on purpose.
    pub dropped: u64,
    /// Records added by `emit` beyond one per input (negative never).
    pub expanded: u64,
}

/// The chain of slots.
pub struct Chain {
    /// The slots, in order.
    pub slots: Vec<TransformSlot>,
}

fn decode_json(bytes: &[u8]) -> Option<serde_json::Value> {
    Record::decode(bytes).ok().map(|r| record_to_json(&r))
}

impl Chain {
    /// Runs `batch` through every slot.
    pub fn process(&mut self, batch: &SourceBatch) -> Processed {
        let mut owned: Option<Vec<u8>> = None;
        let mut spans: Vec<Range<u32>> = batch.spans.clone();
        let mut origins: Vec<u32> = (0..spans.len() as u32).collect();
        let mut out = Processed::default();
        let original = |i: u32| -> &[u8] {
            let s = &batch.spans[i as usize];
            &batch.data[s.start as usize..s.end as usize]
        };
        let meta = |i: u32| -> (String, String) {
            Record::decode(original(i))
                .map(|r| (r.position.into_owned(), r.stream.into_owned()))
                .unwrap_or_default()
        };
        for (stage, slot) in self.slots.iter_mut().enumerate() {
            if spans.is_empty() {
                break;
            }
            let plugin = slot.plugin().clone();
            let data = owned.as_ref().unwrap_or(&batch.data);
            match slot.run(data, &spans) {
                Ok(result) => {
                    let inputs = spans.len() as u64;
                    for rej in &result.rejected {
                        let origin = origins[rej.input];
                        let (position, stream) = meta(origin);
                        let here = &spans[rej.input];
                        out.dead.push(DeadLetter {
                            kind: Kind::Rejected,
                            stage: plugin.name().to_string(),
                            plugin_version: Some(plugin.version().to_string()),
                            code: rej.code.clone(),
                            field: rej.field.clone(),
                            message: rej.message.clone(),
                            position,
                            stream,
                            record: decode_json(original(origin)),
                            input: (stage > 0)
                                .then(|| decode_json(&data[here.start as usize..here.end as usize]))
                                .flatten(),
                            raw: None,
                            time: now_micros(),
                        });
                    }
                    out.dropped += result.dropped.len() as u64;
                    let kept_inputs =
                        inputs - result.dropped.len() as u64 - result.rejected.len() as u64;
                    out.expanded += (result.spans.len() as u64).saturating_sub(kept_inputs);
                    origins = result
                        .from_input
                        .iter()
                        .map(|&i| origins[i as usize])
                        .collect();
                    spans = result.spans;
                    owned = Some(result.batch);
                }
                Err(err) => {
                    let code = match &err {
                        crate::plugin::CallError::Trap(_) => "trap",
                        crate::plugin::CallError::Deadline(_) => "deadline_exceeded",
                        crate::plugin::CallError::Memory(_) => "memory_limit_exceeded",
                        crate::plugin::CallError::Batch(_) => "batch_error",
                        crate::plugin::CallError::Contract(_) => "contract_violation",
                        crate::plugin::CallError::Restart(_) => "restart_failed",
                    };
                    for (i, span) in spans.iter().enumerate() {
                        let origin = origins[i];
                        let (position, stream) = meta(origin);
                        out.dead.push(DeadLetter {
                            kind: Kind::PluginFailed,
                            stage: plugin.name().to_string(),
                            plugin_version: Some(plugin.version().to_string()),
                            code: code.to_string(),
                            field: None,
                            message: format!(
                                "plugin `{}` ({}) {err} (after one retry on a fresh instance)",
                                plugin.name(),
                                plugin.version()
                            ),
                            position,
                            stream,
                            record: decode_json(original(origin)),
                            input: (stage > 0)
                                .then(|| decode_json(&data[span.start as usize..span.end as usize]))
                                .flatten(),
                            raw: None,
                            time: now_micros(),
                        });
                    }
                    spans.clear();
                    origins.clear();
                    owned = Some(Vec::new());
                    break;
                }
            }
        }
        out.data = owned.unwrap_or_else(|| batch.data.clone());
        out.spans = spans;
        out.origins = origins;
        out
    }
}
