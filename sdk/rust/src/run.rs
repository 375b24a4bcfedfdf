//! The glue between the WIT exports and a [`Transform`].

use std::cell::RefCell;

use sluice_codec::{BatchReader, OutcomesWriter, Rejection as WireRejection};

use crate::bindings::sluice::plugin::types::{
    BatchError as WitBatchError, InitError as WitInitError,
};
use crate::{Config, InitError, Outcome, Record, Transform};

/// Why a whole batch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// The batch bytes could not be decoded.
    Malformed(String),
    /// The plugin returned the wrong number of outcomes.
    WrongCount {
        /// Records in the batch.
        records: usize,
        /// Outcomes returned.
        outcomes: usize,
    },
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Malformed(m) => write!(f, "malformed batch: {m}"),
            BatchError::WrongCount { records, outcomes } => write!(
                f,
                "process_batch returned {outcomes} outcomes for {records} records"
            ),
        }
    }
}

impl std::error::Error for BatchError {}

/// Runs one encoded batch through `plugin` and returns the encoded
/// outcomes. This is what the exported `process` does inside WASM; natively
/// it lets tests and benchmarks run a plugin without a host.
pub fn run_batch<T: Transform>(plugin: &mut T, batch: &[u8]) -> Result<Vec<u8>, BatchError> {
    let malformed = |e: sluice_codec::DecodeError| BatchError::Malformed(e.to_string());
    let mut reader = BatchReader::new(batch).map_err(malformed)?;
    let mut records = Vec::with_capacity(reader.remaining());
    while let Some(rec) = reader.next_record().map_err(malformed)? {
        records.push(Record::from_codec(rec));
    }
    let outcomes = plugin.process_batch(&mut records);
    if outcomes.len() != records.len() {
        return Err(BatchError::WrongCount {
            records: records.len(),
            outcomes: outcomes.len(),
        });
    }
    // Most outcomes keep a changed record about the size it came in: one
    // allocation, not a series of regrowths (each a copy, slower in WASM).
    let mut out = OutcomesWriter::with_capacity(batch.len() + batch.len() / 4 + 64);
    for (record, outcome) in records.iter().zip(outcomes) {
        match outcome {
            Outcome::Keep if record.is_changed() => out.keep(record.as_codec()),
            Outcome::Keep => out.keep_unchanged(),
            Outcome::Emit(records) => {
                out.begin_emit();
                for r in &records {
                    out.emit_record(r.as_codec());
                }
            }
            Outcome::Drop => out.drop_record(),
            Outcome::Reject(r) => out.reject(&WireRejection {
                code: r.code.into(),
                field: r.field.map(Into::into),
                message: r.message.into(),
            }),
        }
    }
    Ok(out.finish())
}

#[doc(hidden)]
pub fn init<T: Transform>(state: &RefCell<Option<T>>, config: String) -> Result<(), WitInitError> {
    crate::install_panic_hook();
    match T::init(Config::new(config)) {
        Ok(plugin) => {
            *state.borrow_mut() = Some(plugin);
            Ok(())
        }
        Err(InitError::InvalidConfig(m)) => Err(WitInitError::InvalidConfig(m)),
        Err(InitError::Other(m)) => Err(WitInitError::Other(m)),
    }
}

#[doc(hidden)]
pub fn process<T: Transform>(
    state: &RefCell<Option<T>>,
    batch: &[u8],
) -> Result<Vec<u8>, WitBatchError> {
    let mut guard = state.borrow_mut();
    let plugin = guard.as_mut().ok_or(WitBatchError::NotInitialized)?;
    run_batch(plugin, batch).map_err(|e| match e {
        BatchError::Malformed(m) => WitBatchError::MalformedBatch(m),
        other => WitBatchError::Other(other.to_string()),
    })
}
