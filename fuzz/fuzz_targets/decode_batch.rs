//! Any bytes as a batch: the readers answer with records or an error,
//! never a panic; every record read re-encodes to bytes that read back
//! the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_codec::{BatchReader, BatchWriter, Record};

fuzz_target!(|data: &[u8]| {
    let _ = Record::validate(data);
    let _ = Record::decode(data);
    let Ok(mut reader) = BatchReader::new(data) else {
        return;
    };
    let mut records = Vec::new();
    while let Ok(Some(r)) = reader.next_record() {
        records.push(r.into_owned());
    }
    let mut w = BatchWriter::default();
    for r in &records {
        w.push(r);
    }
    let again = w.finish();
    let mut back = BatchReader::new(&again).expect("a written batch reads");
    for r in &records {
        let b = back
            .next_record()
            .expect("a written record reads")
            .expect("as many records");
        // NaN floats are not equal to themselves: compare the encodings.
        let (mut x, mut y) = (Vec::new(), Vec::new());
        r.encode(&mut x);
        b.encode(&mut y);
        assert_eq!(x, y);
    }
});
