//! Any bytes as a plugin's answer to a batch of 0 to 7 records (the first
//! byte says how many): applied or refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_codec::{BatchWriter, Record, Value};

fuzz_target!(|data: &[u8]| {
    let Some((&n, outcomes)) = data.split_first() else {
        return;
    };
    let mut w = BatchWriter::default();
    let mut spans = Vec::new();
    for i in 0..(n % 8) {
        let mut r = Record {
            stream: "s".into(),
            ..Default::default()
        };
        r.set("i", Value::Int(i64::from(i)));
        let at = w.push(&r);
        spans.push(at as u32..w.byte_len() as u32);
    }
    let input = w.finish();
    if let Ok(out) = sluice_runtime::plugin::apply_outcomes(&input, &spans, outcomes) {
        // What was applied reads back as records.
        for s in &out.spans {
            Record::decode(&out.batch[s.start as usize..s.end as usize]).expect("applied records decode");
        }
    }
});
