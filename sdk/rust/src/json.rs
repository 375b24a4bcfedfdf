//! JSON documents into records and records into JSON documents, by the
//! host (the `json` import).
//!
//! Parsing is most of what a connector reading a JSON API does, and inside
//! the sandbox it runs at about half its native speed. [`decode`] hands the
//! document to the host, which decodes it natively into a [`Batch`] ready
//! for [`Polled::batch`](crate::connector::Polled::batch). Outside the host
//! (a connector's unit tests) the same decoder runs in-process, so tests see
//! exactly what the host produces.
//!
//! ```
//! use sluice_sdk::json::{decode, Layout};
//! use sluice_sdk::Operation;
//!
//! let body = br#"{"data": [{"id": 1, "name": "Ada"}], "next_cursor": "c2"}"#;
//! let layout = Layout {
//!     records_at: vec!["data".into()],
//!     stream: "customers".into(),
//!     op: Operation::Snapshot,
//!     key_member: Some("id".into()),
//!     position: Some("page:c2".into()),
//!     members: vec![vec!["next_cursor".into()]],
//! };
//! let page = decode(body, &layout).unwrap();
//! assert!(page.found);
//! assert_eq!(page.members, vec![Some("\"c2\"".to_string())]);
//! let records = page.batch.records();
//! assert_eq!(records[0].get_str("name"), Some("Ada"));
//! assert_eq!(records[0].position(), "page:c2#0");
//! ```
//!
//! A sink that posts JSON builds its body with [`encode`]:
//!
//! ```
//! use sluice_sdk::json::{encode, Encoding};
//! use sluice_sdk::Record;
//!
//! let mut r = Record::new("customers");
//! r.set("id", 1i64);
//! let encoding = Encoding {
//!     envelope: Some("records".into()),
//!     key_member: Some("key".into()),
//!     fields_member: Some("record".into()),
//! };
//! let body = encode(&[r], &["k1".to_string()], &encoding).unwrap();
//! assert_eq!(body, br#"{"records":[{"key":"k1","record":{"id":1}}]}"#);
//! ```

pub use sluice_codec::json::{Encoding, JsonError, Layout};

use crate::Record;
use crate::connector::Batch;

/// A decoded document.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The records, encoded; more may be pushed.
    pub batch: Batch,
    /// False when the document has no array at [`Layout::records_at`] (a
    /// `null` there counts as an empty array).
    pub found: bool,
    /// The JSON text of each of [`Layout::members`], in order; `None` where
    /// the document has no such member.
    pub members: Vec<Option<String>>,
}

/// Decodes `document` as `layout` says (see the module's documentation for
/// how values map).
pub fn decode(document: &[u8], layout: &Layout) -> Result<Decoded, JsonError> {
    decode_impl(document, layout)
}

/// The records as one JSON document: an array with one object per record
/// (inside `{envelope: [...]}` when [`Encoding::envelope`] is set), each
/// holding `keys[i]` under [`Encoding::key_member`] and the fields under
/// [`Encoding::fields_member`] (or as its own members). Values as Sluice
/// writes them everywhere: bytes as base64 text, timestamps as RFC 3339
/// text (UTC), `json` values inline, floats that are not finite as `null`.
pub fn encode(
    records: &[Record<'_>],
    keys: &[String],
    encoding: &Encoding,
) -> Result<Vec<u8>, JsonError> {
    let mut w = sluice_codec::BatchWriter::with_capacity(256 * records.len());
    for r in records {
        w.push(r.as_codec());
    }
    encode_impl(&w.finish(), keys, encoding)
}

#[cfg(target_arch = "wasm32")]
fn encode_impl(batch: &[u8], keys: &[String], encoding: &Encoding) -> Result<Vec<u8>, JsonError> {
    use crate::bindings::sluice::plugin::json as host;
    let wit = host::Encoding {
        envelope: encoding.envelope.clone(),
        key_member: encoding.key_member.clone(),
        fields_member: encoding.fields_member.clone(),
    };
    let keys: &[String] = if encoding.key_member.is_some() {
        keys
    } else {
        &[]
    };
    host::encode(batch, keys, &wit).map_err(from_host)
}

#[cfg(not(target_arch = "wasm32"))]
fn encode_impl(batch: &[u8], keys: &[String], encoding: &Encoding) -> Result<Vec<u8>, JsonError> {
    sluice_codec::json::encode(batch, keys, encoding, usize::MAX)
}

#[cfg(target_arch = "wasm32")]
fn from_host(e: crate::bindings::sluice::plugin::json::JsonError) -> JsonError {
    use crate::bindings::sluice::plugin::json::JsonError as H;
    match e {
        H::Syntax(m) => JsonError::Syntax(m),
        H::Shape(m) => JsonError::Shape(m),
        H::Layout(m) => JsonError::Layout(m),
        H::TooLarge(m) => JsonError::TooLarge(m),
    }
}

#[cfg(target_arch = "wasm32")]
fn decode_impl(document: &[u8], layout: &Layout) -> Result<Decoded, JsonError> {
    use crate::bindings::sluice::plugin::json as host;
    use crate::bindings::sluice::plugin::types::Operation as WitOp;
    let wit = host::Layout {
        records_at: layout.records_at.clone(),
        stream: layout.stream.clone(),
        op: match layout.op {
            crate::Operation::Insert => WitOp::Insert,
            crate::Operation::Update => WitOp::Update,
            crate::Operation::Delete => WitOp::Delete,
            crate::Operation::Snapshot => WitOp::Snapshot,
        },
        key_member: layout.key_member.clone(),
        position: layout.position.clone(),
        members: layout.members.clone(),
    };
    match host::decode(document, &wit) {
        Ok(d) => Ok(Decoded {
            batch: Batch::from_encoded(d.batch)
                .map_err(|e| JsonError::Shape(format!("the host's batch does not decode: {e}")))?,
            found: d.found,
            members: d.members,
        }),
        Err(e) => Err(from_host(e)),
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn decode_impl(document: &[u8], layout: &Layout) -> Result<Decoded, JsonError> {
    let d = sluice_codec::json::decode(document, layout, usize::MAX)?;
    Ok(Decoded {
        batch: Batch::from_writer(d.batch),
        found: d.found,
        members: d.members,
    })
}
