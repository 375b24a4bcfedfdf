//! Any bytes as a JSON-lines file: records and dead letters, never a panic.
#![no_main]

mod reader_common;

use libfuzzer_sys::fuzz_target;
use sluice_runtime::sources::jsonl::{JsonlSource, JsonlSourceConfig};

fuzz_target!(|data: &[u8]| {
    let path = reader_common::scratch("in.jsonl", data);
    let config = JsonlSourceConfig {
        path,
        stream: None,
        follow: false,
        max_record_bytes: 256,
    };
    if let Ok(mut s) = JsonlSource::new(config) {
        reader_common::drain(&mut s);
    }
});
