//! Decoding: a bounds-checked cursor, batches and outcomes.

use std::borrow::Cow;

use crate::{DecodeError, FORMAT_VERSION, Record, Rejection};

/// A bounds-checked little-endian cursor over a buffer.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// The current offset.
    pub fn offset(&self) -> usize {
        self.pos
    }

    pub(crate) fn error(&self, reason: &'static str) -> DecodeError {
        DecodeError {
            offset: self.pos,
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| self.error("unexpected end of buffer"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// Reads a little-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a little-endian i64.
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }

    /// Reads a u32 element count, refusing counts that cannot fit in the rest
    /// of the buffer (each element takes at least one byte).
    pub fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n > self.buf.len() - self.pos {
            return Err(self.error("count larger than the buffer"));
        }
        Ok(n)
    }

    /// Reads length-prefixed bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// Reads a length-prefixed UTF-8 string.
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let b = self.bytes()?;
        if b.is_ascii() {
            // SAFETY: ASCII bytes are valid UTF-8. Most names and values in
            // legacy data are ASCII, and this check is cheaper than the full
            // validation below on short strings.
            return Ok(unsafe { std::str::from_utf8_unchecked(b) });
        }
        std::str::from_utf8(b).map_err(|_| DecodeError {
            offset: at,
            reason: "invalid UTF-8 in string",
        })
    }

    /// Fails unless the whole buffer was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(self.error("trailing bytes"))
        }
    }

    pub(crate) fn version(&mut self) -> Result<(), DecodeError> {
        let v = self.u8()?;
        if v != FORMAT_VERSION {
            self.pos -= 1;
            return Err(self.error("unsupported format version"));
        }
        Ok(())
    }
}

/// Iterates the encoded records of a batch as byte slices.
#[derive(Debug, Clone)]
pub struct BatchReader<'a> {
    r: Reader<'a>,
    remaining: usize,
}

impl<'a> BatchReader<'a> {
    /// Starts reading a batch buffer: checks the version and reads the count.
    pub fn new(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        r.version()?;
        let remaining = r.count()?;
        Ok(BatchReader { r, remaining })
    }

    /// How many records are left to read.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// The next record's bytes and their offset in the buffer.
    pub fn next_slice(&mut self) -> Result<Option<(usize, &'a [u8])>, DecodeError> {
        if self.remaining == 0 {
            self.r.finish()?;
            return Ok(None);
        }
        self.remaining -= 1;
        let len = self.r.u32()? as usize;
        let at = self.r.offset();
        Ok(Some((at, self.r.take(len)?)))
    }

    /// The next record, decoded.
    pub fn next_record(&mut self) -> Result<Option<Record<'a>>, DecodeError> {
        match self.next_slice()? {
            None => Ok(None),
            Some((at, bytes)) => Record::decode(bytes).map(Some).map_err(|e| DecodeError {
                offset: at + e.offset,
                reason: e.reason,
            }),
        }
    }
}

/// One decoded outcome; records are left encoded (validate or decode them
/// with [`Record`]).
#[derive(Debug, Clone, PartialEq)]
pub enum OutcomeRef<'a> {
    /// Keep the input record as it was.
    KeepUnchanged,
    /// Keep the record, changed: its new encoding.
    Keep(&'a [u8]),
    /// Replace the record by these records (possibly none).
    Emit(Vec<&'a [u8]>),
    /// Drop the record on purpose.
    Drop,
    /// Refuse the record.
    Reject(Rejection<'a>),
}

impl OutcomeRef<'_> {
    pub(crate) const KEEP_UNCHANGED: u8 = 0;
    pub(crate) const KEEP: u8 = 1;
    pub(crate) const EMIT: u8 = 2;
    pub(crate) const DROP: u8 = 3;
    pub(crate) const REJECT: u8 = 4;
}

/// Iterates the outcomes of an outcomes buffer.
#[derive(Debug, Clone)]
pub struct OutcomesReader<'a> {
    r: Reader<'a>,
    remaining: usize,
}

impl<'a> OutcomesReader<'a> {
    /// Starts reading an outcomes buffer: checks the version and reads the count.
    pub fn new(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        r.version()?;
        let remaining = r.count()?;
        Ok(OutcomesReader { r, remaining })
    }

    /// How many outcomes are left (the count the plugin declared).
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// The next outcome, or `None` at the end (after checking nothing trails).
    pub fn next_outcome(&mut self) -> Result<Option<OutcomeRef<'a>>, DecodeError> {
        if self.remaining == 0 {
            self.r.finish()?;
            return Ok(None);
        }
        self.remaining -= 1;
        let r = &mut self.r;
        Ok(Some(match r.u8()? {
            OutcomeRef::KEEP_UNCHANGED => OutcomeRef::KeepUnchanged,
            OutcomeRef::KEEP => OutcomeRef::Keep(r.bytes()?),
            OutcomeRef::EMIT => {
                let n = r.count()?;
                let mut recs = Vec::with_capacity(n);
                for _ in 0..n {
                    recs.push(r.bytes()?);
                }
                OutcomeRef::Emit(recs)
            }
            OutcomeRef::DROP => OutcomeRef::Drop,
            OutcomeRef::REJECT => {
                let code = Cow::Borrowed(r.str()?);
                let field = match r.u8()? {
                    0 => None,
                    1 => Some(Cow::Borrowed(r.str()?)),
                    _ => return Err(r.error("bad field flag in reject")),
                };
                let message = Cow::Borrowed(r.str()?);
                OutcomeRef::Reject(Rejection {
                    code,
                    field,
                    message,
                })
            }
            _ => return Err(r.error("unknown outcome tag")),
        }))
    }
}
