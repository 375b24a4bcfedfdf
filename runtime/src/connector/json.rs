//! The `json` import, for connectors that read or write JSON APIs:
//!
//! - `decode`: a JSON document into records (`sluice_codec::json`, the same
//!   decoder the Rust SDK runs outside the host). The records may take at
//!   most the connector's memory cap, since they must fit in its memory on
//!   the way back.
//! - `encode`: a batch as a JSON document, values as in Sluice's JSON lines
//!   (`sluice_codec::json::encode`). The document may take at most the
//!   memory cap too.
//!
//! No capability is involved: the connector hands over bytes it already
//! holds and gets bytes back.

use sluice_codec::json::{self as codec_json, JsonError as CodecError, Layout as CodecLayout};

use super::bindings::source::sluice::plugin::json::{Decoded, Encoding, Host, JsonError, Layout};
use crate::plugin::bindings::sluice::plugin::types::Operation;
use crate::plugin::sandbox::HostState;

impl Host for HostState {
    fn decode(&mut self, document: Vec<u8>, layout: Layout) -> Result<Decoded, JsonError> {
        let layout = CodecLayout {
            records_at: layout.records_at,
            stream: layout.stream,
            op: match layout.op {
                Operation::Insert => sluice_codec::Operation::Insert,
                Operation::Update => sluice_codec::Operation::Update,
                Operation::Delete => sluice_codec::Operation::Delete,
                Operation::Snapshot => sluice_codec::Operation::Snapshot,
            },
            key_member: layout.key_member,
            position: layout.position,
            members: layout.members,
        };
        let decoded = codec_json::decode(&document, &layout, self.cap.max).map_err(error)?;
        let count = u32::try_from(decoded.batch.len()).unwrap_or(u32::MAX);
        Ok(Decoded {
            batch: decoded.batch.finish(),
            count,
            found: decoded.found,
            members: decoded.members,
        })
    }

    fn encode(
        &mut self,
        batch: Vec<u8>,
        idempotency_keys: Vec<String>,
        encoding: Encoding,
    ) -> Result<Vec<u8>, JsonError> {
        let encoding = codec_json::Encoding {
            envelope: encoding.envelope,
            key_member: encoding.key_member,
            fields_member: encoding.fields_member,
        };
        codec_json::encode(&batch, &idempotency_keys, &encoding, self.cap.max).map_err(error)
    }
}

/// The WIT error for the codec's.
fn error(e: CodecError) -> JsonError {
    match e {
        CodecError::Syntax(m) => JsonError::Syntax(m),
        CodecError::Shape(m) => JsonError::Shape(m),
        CodecError::Layout(m) => JsonError::Layout(m),
        CodecError::TooLarge(m) => JsonError::TooLarge(format!(
            "{m} (the connector's memory cap, `limits.memory_mb`)"
        )),
    }
}
