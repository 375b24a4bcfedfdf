//! The Sluice batch encoding: how a batch of records and the outcomes of
//! processing it cross the WASM boundary.
//!
//! One buffer per batch and one per answer, with no allocation per field on
//! either side: decoding borrows names and strings from the buffer. The byte
//! layout is specified in `FORMAT.md` beside this crate; the WIT package
//! (`wit/plugin.wit`) describes the same data model as typed WIT.
//!
//! This crate is shared by the host (`sluice-runtime`) and the guest SDKs
//! (`sluice-sdk`), so both ends always agree. It has no dependencies unless
//! its `json` feature (JSON documents into batches) is on.

#[cfg(feature = "json")]
pub mod json;
mod read;
mod record;
mod write;

pub use read::{BatchReader, OutcomeRef, OutcomesReader, Reader};
pub use record::{Operation, Record, Rejection, Value};
pub use write::{BatchWriter, OutcomesWriter};

/// The version byte that starts every batch and outcomes buffer.
pub const FORMAT_VERSION: u8 = 1;

/// A buffer that does not follow the encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset where decoding failed.
    pub offset: usize,
    /// What was wrong there.
    pub reason: &'static str,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests;

#[cfg(test)]
#[allow(clippy::unwrap_used, missing_docs)]
mod proptests;
