//! Any bytes as a plugin's outcomes: read outcome by outcome, every kept
//! or emitted record validated, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_codec::{OutcomeRef, OutcomesReader, Record};

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = OutcomesReader::new(data) else {
        return;
    };
    while let Ok(Some(o)) = reader.next_outcome() {
        match o {
            OutcomeRef::Keep(rec) => {
                let _ = Record::validate(rec);
            }
            OutcomeRef::Emit(recs) => {
                for rec in recs {
                    let _ = Record::validate(rec);
                }
            }
            _ => {}
        }
    }
});
