//! Property tests: any record survives the batch encoding unchanged, and no
//! byte string makes a reader panic (it answers with an error).

use std::borrow::Cow;

use proptest::prelude::*;

use crate::{BatchReader, BatchWriter, Operation, OutcomesReader, Record, Value};

fn value() -> impl Strategy<Value = Value<'static>> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        // NaN is not equal to itself: compared by bits below would do, but
        // every other float is covered here.
        any::<f64>()
            .prop_filter("not NaN", |f| !f.is_nan())
            .prop_map(Value::Float),
        ".*".prop_map(|s| Value::Text(Cow::Owned(s))),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| Value::Bytes(Cow::Owned(b))),
        any::<i64>().prop_map(Value::Timestamp),
        "[{}\\[\\]a-z0-9:\",]{0,40}".prop_map(|s| Value::Json(Cow::Owned(s))),
    ]
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        Just(Operation::Insert),
        Just(Operation::Update),
        Just(Operation::Delete),
        Just(Operation::Snapshot),
    ]
}

prop_compose! {
    fn record()(
        op in operation(),
        stream in ".{0,20}",
        position in ".{0,20}",
        event_time in proptest::option::of(any::<i64>()),
        key in value(),
        headers in proptest::collection::vec((".{0,10}", proptest::collection::vec(any::<u8>(), 0..20)), 0..4),
        fields in proptest::collection::vec((".{0,12}", value()), 0..12),
    ) -> Record<'static> {
        Record {
            op,
            stream: Cow::Owned(stream),
            position: Cow::Owned(position),
            event_time,
            key,
            headers: headers
                .into_iter()
                .map(|(n, v)| (Cow::Owned(n), Cow::Owned(v)))
                .collect(),
            fields: fields.into_iter().map(|(n, v)| (Cow::Owned(n), v)).collect(),
        }
    }
}

/// Reads `bytes` every way the host does; a reader may refuse, never panic.
fn read_every_way(bytes: &[u8]) {
    if let Ok(mut r) = BatchReader::new(bytes) {
        while let Ok(Some(_)) = r.next_record() {}
    }
    if let Ok(mut r) = OutcomesReader::new(bytes) {
        while let Ok(Some(_)) = r.next_outcome() {}
    }
    let _ = Record::decode(bytes);
    let _ = Record::validate(bytes);
}

proptest! {
    #[test]
    fn any_batch_of_records_round_trips(records in proptest::collection::vec(record(), 0..20)) {
        let mut w = BatchWriter::default();
        for r in &records {
            w.push(r);
        }
        let buf = w.finish();
        let mut reader = BatchReader::new(&buf).expect("a written batch reads");
        let mut back = Vec::new();
        while let Some(r) = reader.next_record().expect("a written record reads") {
            back.push(r.into_owned());
        }
        prop_assert_eq!(back, records);
    }

    #[test]
    fn no_bytes_make_the_readers_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        read_every_way(&bytes);
    }

    #[test]
    fn a_written_batch_cut_or_flipped_anywhere_fails_cleanly(
        records in proptest::collection::vec(record(), 1..5),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut w = BatchWriter::default();
        for r in &records {
            w.push(r);
        }
        let buf = w.finish();
        read_every_way(&buf[..cut.index(buf.len())]);
        let mut flipped = buf.clone();
        let at = flip.index(flipped.len());
        flipped[at] ^= 1 << bit;
        read_every_way(&flipped);
    }
}

/// The fuzz corpus (fuzz/corpus, grown by `scripts/fuzz.sh`) replayed: every
/// input the fuzzer kept reads or fails cleanly, in every test run.
#[test]
fn the_fuzz_corpus_reads_or_fails_cleanly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut replayed = 0;
    for target in ["decode_batch", "decode_outcomes", "apply_outcomes"] {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            read_every_way(&std::fs::read(e.path()).expect("a corpus file reads"));
            replayed += 1;
        }
    }
    assert!(
        replayed > 100,
        "the corpus is in the repository ({replayed} inputs)"
    );
}
