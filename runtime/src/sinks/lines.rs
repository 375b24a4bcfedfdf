//! Records as JSON lines: what the `jsonl` and `stdout` sinks share.

use sluice_codec::{Operation, Record};

use super::Refused;
use crate::value_json::{write_fields_json, write_record_json};

/// Why a record cannot be written as a line of fields alone (without
/// metadata), if it cannot: a delete, or an update that moved its key,
/// would read as an ordinary row.
pub(crate) fn needs_metadata(r: &Record<'_>) -> Option<String> {
    use crate::conventions::{OLD_KEY_HEADER, TRUNCATE_HEADER, header};
    if header(r, TRUNCATE_HEADER).is_some() {
        return Some("a truncate cannot be written as a line of fields: set `include_metadata = true` on the sink to keep the operation".into());
    }
    if r.op == Operation::Delete {
        return Some("a delete cannot be written as a line of fields (it would read as a row of nulls): set `include_metadata = true` on the sink to keep the operation".into());
    }
    if header(r, OLD_KEY_HEADER).is_some() {
        return Some("an update that changed the key cannot be written as a line of fields (the old key would be lost): set `include_metadata = true` on the sink to keep it".into());
    }
    None
}

/// Appends the lines of `records` to `out`; without metadata, the records
/// [`needs_metadata`] refuses are returned (index, reason) instead.
pub(crate) fn json_lines(
    out: &mut Vec<u8>,
    records: &[Record<'_>],
    include_metadata: bool,
) -> Vec<Refused> {
    let mut refused = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if !include_metadata && let Some(why) = needs_metadata(r) {
            refused.push(Refused::new(i, why));
            continue;
        }
        json_line(out, r, include_metadata);
    }
    refused
}

/// Appends one JSON line for `r` to `out`.
pub(crate) fn json_line(out: &mut Vec<u8>, r: &Record<'_>, include_metadata: bool) {
    if include_metadata {
        write_record_json(out, r);
    } else {
        write_fields_json(out, r);
    }
    out.push(b'\n');
}
