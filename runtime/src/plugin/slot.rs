//! A transform slot: one plugin in the chain, its live instance, and the
//! rule for failures (retry the batch once on a fresh instance, then give
//! the batch up to the dead-letter sink).

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_codec::{BatchWriter, OutcomeRef, OutcomesReader, Record};

use super::{CallError, LoadedPlugin, PluginInstance};

/// A record refused in this stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageRecordError {
    /// Index of the input record in the stage's input.
    pub input: usize,
    /// Machine-readable code.
    pub code: String,
    /// The field at fault.
    pub field: Option<String>,
    /// The message.
    pub message: String,
}

/// What a stage made of its input batch.
#[derive(Debug, Default)]
pub struct StageOutput {
    /// The next batch (encoded).
    pub batch: Vec<u8>,
    /// Spans of the records in `batch`.
    pub spans: Vec<Range<u32>>,
    /// For each output record, the index of the input record it came from.
    pub from_input: Vec<u32>,
    /// Records rejected by the plugin.
    pub rejected: Vec<StageRecordError>,
    /// Input indexes dropped on purpose.
    pub dropped: Vec<u32>,
}

/// One plugin in the chain with its current instance.
pub struct TransformSlot {
    plugin: Arc<LoadedPlugin>,
    instance: Option<PluginInstance>,
    /// Versions that were live before, newest last (kept loaded for rollback).
    previous: Vec<Arc<LoadedPlugin>>,
    /// Input records processed per version, in the order versions went live.
    pub records_by_version: Vec<(String, u64)>,
    /// Time spent inside the plugin (calls, retries and restarts).
    pub busy: Duration,
    /// Batches that failed once and were retried.
    pub retries: u64,
    /// Batches given up after the retry.
    pub failures: u64,
}

impl TransformSlot {
    /// A slot around a started instance (a [`super::Candidate`]'s).
    pub fn with_instance(plugin: Arc<LoadedPlugin>, instance: PluginInstance) -> Self {
        TransformSlot {
            records_by_version: vec![(plugin.version().to_string(), 0)],
            plugin,
            instance: Some(instance),
            previous: Vec::new(),
            busy: Duration::ZERO,
            retries: 0,
            failures: 0,
        }
    }

    /// The version and its instance (if it has a healthy one).
    pub fn into_parts(self) -> (Arc<LoadedPlugin>, Option<PluginInstance>) {
        (self.plugin, self.instance)
    }

    /// The plugin version running in this slot.
    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    /// How many earlier versions are kept loaded.
    pub const HISTORY: usize = 4;

    /// Makes `plugin`, with its already started `instance`, the live
    /// version. Called between batches: the batch in flight finished on the
    /// old version, the next one runs on the new. The old version is kept
    /// (the last [`Self::HISTORY`] are) for a rollback.
    /// Returns the old instance, for the caller to drop off the pause.
    pub fn swap(
        &mut self,
        plugin: Arc<LoadedPlugin>,
        instance: PluginInstance,
    ) -> Option<PluginInstance> {
        let old = std::mem::replace(&mut self.plugin, plugin);
        let old_instance = self.instance.replace(instance);
        self.previous.push(old);
        if self.previous.len() > Self::HISTORY {
            self.previous.remove(0);
        }
        self.records_by_version
            .push((self.plugin.version().to_string(), 0));
        old_instance
    }

    /// Makes the newest kept version live again with `instance`, a fresh
    /// instance of it (the caller checked it is). The version rolled back
    /// from is not kept: a second rollback goes one version further back.
    /// Returns the old instance, for the caller to drop off the pause;
    /// with no version kept, nothing changes and `instance` comes back.
    pub fn roll_back(&mut self, instance: PluginInstance) -> Option<PluginInstance> {
        let Some(previous) = self.previous.pop() else {
            return Some(instance);
        };
        self.plugin = previous;
        let old_instance = self.instance.replace(instance);
        self.records_by_version
            .push((self.plugin.version().to_string(), 0));
        old_instance
    }

    /// The versions kept loaded before the live one, oldest first.
    pub fn previous(&self) -> &[Arc<LoadedPlugin>] {
        &self.previous
    }

    /// Runs one batch: `input` is the encoded batch, `spans` the record
    /// spans inside it. On failure the batch is retried once on a fresh
    /// instance; the error of the second attempt is returned.
    #[allow(clippy::ptr_arg, reason = "the generated binding takes &Vec<u8>")]
    pub fn run(&mut self, input: &Vec<u8>, spans: &[Range<u32>]) -> Result<StageOutput, CallError> {
        let started = Instant::now();
        if let Some((_, n)) = self.records_by_version.last_mut() {
            *n += spans.len() as u64;
        }
        let first = self.attempt(input, spans);
        let result = match first {
            Ok(out) => Ok(out),
            // A stop is not the plugin's failure: no retry, and the
            // instance is kept.
            Err(CallError::Stopped) => Err(CallError::Stopped),
            Err(err) => {
                self.retries += 1;
                tracing::warn!(plugin = %self.plugin.name(), version = %self.plugin.version(), error = %err, records = spans.len(), "plugin failed on a batch; retrying once on a fresh instance");
                self.instance = None;
                let second = self.attempt(input, spans);
                if let Err(e) = &second {
                    self.failures += 1;
                    self.instance = None;
                    tracing::error!(plugin = %self.plugin.name(), version = %self.plugin.version(), error = %e, records = spans.len(), "plugin failed again; the batch goes to the dead-letter sink");
                }
                second
            }
        };
        self.busy += started.elapsed();
        result
    }

    /// Runs one batch once, without the retry: the trial of a new version
    /// on its first batch before it goes live.
    #[allow(clippy::ptr_arg, reason = "the generated binding takes &Vec<u8>")]
    pub fn try_once(
        &mut self,
        input: &Vec<u8>,
        spans: &[Range<u32>],
    ) -> Result<StageOutput, CallError> {
        let started = Instant::now();
        if let Some((_, n)) = self.records_by_version.last_mut() {
            *n += spans.len() as u64;
        }
        let out = self.attempt(input, spans);
        self.busy += started.elapsed();
        out
    }

    #[allow(clippy::ptr_arg, reason = "the generated binding takes &Vec<u8>")]
    fn attempt(&mut self, input: &Vec<u8>, spans: &[Range<u32>]) -> Result<StageOutput, CallError> {
        if self.instance.is_none() {
            self.instance = Some(
                self.plugin
                    .instantiate()
                    .map_err(|e| CallError::Restart(e.to_string()))?,
            );
        }
        let Some(instance) = self.instance.as_mut() else {
            return Err(CallError::Restart("no instance".into()));
        };
        let outcomes = match instance.process(input) {
            Ok(o) => o,
            Err(e) => {
                // A trapped instance cannot be reused.
                self.instance = None;
                return Err(e);
            }
        };
        apply_outcomes(input, spans, &outcomes).map_err(CallError::Contract)
    }
}

/// Builds the next batch from the input and the plugin's outcomes, checking
/// the contract: one outcome per record, well-formed records.
pub fn apply_outcomes(
    input: &[u8],
    spans: &[Range<u32>],
    outcomes: &[u8],
) -> Result<StageOutput, String> {
    let mut reader =
        OutcomesReader::new(outcomes).map_err(|e| format!("unreadable outcomes: {e}"))?;
    if reader.remaining() != spans.len() {
        return Err(format!(
            "returned {} outcomes for {} records",
            reader.remaining(),
            spans.len()
        ));
    }
    let mut out = StageOutput::default();
    let mut w = BatchWriter::with_capacity(input.len() + input.len() / 4);
    let push = |w: &mut BatchWriter, out: &mut StageOutput, bytes: &[u8], i: usize| {
        let at = w.push_encoded(bytes);
        out.spans.push(at as u32..(at + bytes.len()) as u32);
        out.from_input.push(i as u32);
    };
    for (i, span) in spans.iter().enumerate() {
        let outcome = reader
            .next_outcome()
            .map_err(|e| format!("unreadable outcome {i}: {e}"))?
            .ok_or_else(|| format!("missing outcome {i}"))?;
        match outcome {
            OutcomeRef::KeepUnchanged => push(
                &mut w,
                &mut out,
                &input[span.start as usize..span.end as usize],
                i,
            ),
            OutcomeRef::Keep(rec) => {
                Record::validate(rec).map_err(|e| format!("record {i} is malformed: {e}"))?;
                push(&mut w, &mut out, rec, i);
            }
            OutcomeRef::Emit(recs) => {
                for rec in recs {
                    Record::validate(rec)
                        .map_err(|e| format!("emitted record for {i} is malformed: {e}"))?;
                    push(&mut w, &mut out, rec, i);
                }
            }
            OutcomeRef::Drop => out.dropped.push(i as u32),
            OutcomeRef::Reject(r) => out.rejected.push(StageRecordError {
                input: i,
                code: r.code.into_owned(),
                field: r.field.map(|f| f.into_owned()),
                message: r.message.into_owned(),
            }),
        }
    }
    reader
        .next_outcome()
        .map_err(|e| format!("trailing bytes after the outcomes: {e}"))?;
    out.batch = w.finish();
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod proptests {
    use std::ops::Range;

    use proptest::prelude::*;
    use sluice_codec::{BatchWriter, OutcomesWriter, Record, Rejection, Value};

    use super::apply_outcomes;

    /// A batch of `n` records and their spans.
    fn batch(n: usize) -> (Vec<u8>, Vec<Range<u32>>) {
        let mut w = BatchWriter::default();
        let mut spans = Vec::new();
        for i in 0..n {
            let mut r = Record {
                stream: "s".into(),
                ..Default::default()
            };
            r.set("i", Value::Int(i as i64));
            let at = w.push(&r);
            spans.push(at as u32..w.byte_len() as u32);
        }
        (w.finish(), spans)
    }

    /// Outcomes whose framing is right but whose kept record is not: a
    /// field's text made invalid UTF-8, then a record cut short inside its
    /// length prefix. Both are refused, naming the record.
    #[test]
    fn a_malformed_record_inside_well_framed_outcomes_is_refused() {
        let (input, spans) = batch(1);
        let mut r = Record {
            stream: "s".into(),
            ..Default::default()
        };
        r.set("name", Value::Text("ZZéé".into()));
        let mut out = OutcomesWriter::default();
        out.keep(&r);
        let good = out.finish();
        assert!(apply_outcomes(&input, &spans, &good).is_ok());
        let mut bad = good.clone();
        let at = bad
            .windows(2)
            .position(|w| w == "é".as_bytes())
            .expect("the text is in the buffer");
        bad[at] = 0xff;
        let Err(e) = apply_outcomes(&input, &spans, &bad) else {
            panic!("invalid UTF-8 was accepted")
        };
        assert!(
            e.contains("record 0 is malformed") && e.contains("UTF-8"),
            "{e}"
        );
        // The text's length says one byte more than the record holds.
        let mut cut = good.clone();
        let len_at = cut
            .windows(4)
            .position(|w| w == b"ZZ\xc3\xa9")
            .expect("the text")
            - 4;
        cut[len_at] += 1;
        let Err(e) = apply_outcomes(&input, &spans, &cut) else {
            panic!("a cut record was accepted")
        };
        assert!(e.contains("malformed") || e.contains("unreadable"), "{e}");
    }

    proptest! {
        /// Whatever a plugin returns, the host answers with outcomes or an
        /// error, never a panic.
        #[test]
        fn any_plugin_output_is_applied_or_refused(
            n in 0usize..8,
            output in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let (input, spans) = batch(n);
            let _ = apply_outcomes(&input, &spans, &output);
        }

        /// Well-formed outcomes: every input is accounted for once.
        #[test]
        fn well_formed_outcomes_account_for_every_record(kinds in proptest::collection::vec(0u8..5, 0..12)) {
            let (input, spans) = batch(kinds.len());
            let mut out = OutcomesWriter::default();
            let mut kept = 0;
            for (i, k) in kinds.iter().enumerate() {
                let mut r = Record { stream: "s".into(), ..Default::default() };
                r.set("i", Value::Int(i as i64));
                match k {
                    0 => { out.keep_unchanged(); kept += 1; }
                    1 => { out.keep(&r); kept += 1; }
                    2 => out.drop_record(),
                    3 => out.reject(&Rejection { code: "c".into(), field: None, message: "m".into() }),
                    _ => { out.begin_emit(); out.emit_record(&r); out.emit_record(&r); kept += 2; }
                }
            }
            let result = apply_outcomes(&input, &spans, &out.finish()).unwrap();
            let dropped = kinds.iter().filter(|k| **k == 2).count();
            let rejected = kinds.iter().filter(|k| **k == 3).count();
            prop_assert_eq!(result.dropped.len(), dropped);
            prop_assert_eq!(result.rejected.len(), rejected);
            prop_assert_eq!(result.spans.len(), kept);
        }
    }
}
