//! Encoding: batches and outcomes.

use crate::read::OutcomeRef;
use crate::{FORMAT_VERSION, Record, Rejection};

pub(crate) fn count(out: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_le_bytes());
}

pub(crate) fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    count(out, b.len());
    out.extend_from_slice(b);
}

pub(crate) fn str(out: &mut Vec<u8>, s: &str) {
    bytes(out, s.as_bytes());
}

/// Reserves a u32 length slot and returns its offset.
fn begin_len(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    at
}

/// Fills the slot reserved by `begin_len` with the bytes written since.
fn end_len(out: &mut [u8], at: usize) {
    let len = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// Builds a batch buffer record by record.
#[derive(Debug, Clone)]
pub struct BatchWriter {
    buf: Vec<u8>,
    count: u32,
}

impl Default for BatchWriter {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl BatchWriter {
    /// An empty batch with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(5));
        buf.push(FORMAT_VERSION);
        buf.extend_from_slice(&[0; 4]);
        BatchWriter { buf, count: 0 }
    }

    /// Goes on writing a finished batch buffer (from [`BatchWriter::finish`],
    /// possibly made elsewhere): checks its version byte and takes its
    /// count; the records themselves are not checked. An empty buffer is an
    /// empty batch.
    pub fn from_finished(buf: Vec<u8>) -> Result<Self, crate::DecodeError> {
        if buf.is_empty() {
            return Ok(Self::default());
        }
        let mut r = crate::Reader::new(&buf);
        r.version()?;
        let count = u32::try_from(r.count()?).unwrap_or(u32::MAX);
        Ok(BatchWriter { buf, count })
    }

    /// Appends a record; returns the offset of its bytes in the buffer.
    pub fn push(&mut self, record: &Record<'_>) -> usize {
        let at = begin_len(&mut self.buf);
        record.encode(&mut self.buf);
        end_len(&mut self.buf, at);
        self.count += 1;
        at + 4
    }

    /// Appends an already encoded record; returns the offset of its bytes.
    pub fn push_encoded(&mut self, record: &[u8]) -> usize {
        bytes(&mut self.buf, record);
        self.count += 1;
        self.buf.len() - record.len()
    }

    /// How many records were pushed.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The encoded size so far.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// The bytes written so far (the count is filled in).
    pub fn as_bytes(&mut self) -> &[u8] {
        let c = self.count.to_le_bytes();
        self.buf[1..5].copy_from_slice(&c);
        &self.buf
    }

    /// The finished buffer.
    pub fn finish(mut self) -> Vec<u8> {
        let c = self.count.to_le_bytes();
        self.buf[1..5].copy_from_slice(&c);
        self.buf
    }
}

/// Builds an outcomes buffer, one outcome per input record.
#[derive(Debug, Clone)]
pub struct OutcomesWriter {
    buf: Vec<u8>,
    count: u32,
    emit_at: Option<(usize, u32)>,
}

impl Default for OutcomesWriter {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl OutcomesWriter {
    /// An empty outcomes buffer with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(5));
        buf.push(FORMAT_VERSION);
        buf.extend_from_slice(&[0; 4]);
        OutcomesWriter {
            buf,
            count: 0,
            emit_at: None,
        }
    }

    fn close_emit(&mut self) {
        if let Some((at, n)) = self.emit_at.take() {
            self.buf[at..at + 4].copy_from_slice(&n.to_le_bytes());
        }
    }

    /// The record is kept as it came in.
    pub fn keep_unchanged(&mut self) {
        self.close_emit();
        self.buf.push(OutcomeRef::KEEP_UNCHANGED);
        self.count += 1;
    }

    /// The record is kept, changed to `record`.
    pub fn keep(&mut self, record: &Record<'_>) {
        self.close_emit();
        self.buf.push(OutcomeRef::KEEP);
        let at = begin_len(&mut self.buf);
        record.encode(&mut self.buf);
        end_len(&mut self.buf, at);
        self.count += 1;
    }

    /// Starts an `emit` outcome; add its records with [`Self::emit_record`].
    pub fn begin_emit(&mut self) {
        self.close_emit();
        self.buf.push(OutcomeRef::EMIT);
        let at = begin_len(&mut self.buf);
        self.emit_at = Some((at, 0));
        self.count += 1;
    }

    /// Adds a record to the `emit` outcome begun last.
    pub fn emit_record(&mut self, record: &Record<'_>) {
        if self.emit_at.is_none() {
            self.begin_emit();
        }
        let at = begin_len(&mut self.buf);
        record.encode(&mut self.buf);
        end_len(&mut self.buf, at);
        if let Some((_, n)) = &mut self.emit_at {
            *n += 1;
        }
    }

    /// The record is dropped on purpose.
    pub fn drop_record(&mut self) {
        self.close_emit();
        self.buf.push(OutcomeRef::DROP);
        self.count += 1;
    }

    /// The record is refused.
    pub fn reject(&mut self, rejection: &Rejection<'_>) {
        self.close_emit();
        self.buf.push(OutcomeRef::REJECT);
        str(&mut self.buf, &rejection.code);
        match &rejection.field {
            None => self.buf.push(0),
            Some(f) => {
                self.buf.push(1);
                str(&mut self.buf, f);
            }
        }
        str(&mut self.buf, &rejection.message);
        self.count += 1;
    }

    /// How many outcomes were written.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when no outcome was written.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The finished buffer.
    pub fn finish(mut self) -> Vec<u8> {
        self.close_emit();
        let c = self.count.to_le_bytes();
        self.buf[1..5].copy_from_slice(&c);
        self.buf
    }
}
