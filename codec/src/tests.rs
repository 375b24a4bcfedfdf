use std::borrow::Cow;

use super::*;

fn sample() -> Record<'static> {
    Record {
        op: Operation::Update,
        stream: "customers".into(),
        position: "line 7".into(),
        event_time: Some(1_700_000_000_000_000),
        key: Value::Int(42),
        headers: vec![("trace".into(), Cow::Owned(vec![1, 2, 3]))],
        fields: vec![
            ("id".into(), Value::Int(42)),
            ("name".into(), Value::Text("Zoë".into())),
            ("score".into(), Value::Float(1.5)),
            ("active".into(), Value::Bool(true)),
            ("blob".into(), Value::Bytes(Cow::Owned(vec![0, 255]))),
            ("at".into(), Value::Timestamp(-5)),
            ("tags".into(), Value::Json("[1,2]".into())),
            ("gone".into(), Value::Null),
        ],
    }
}

#[test]
fn record_round_trips_every_value_kind() {
    let rec = sample();
    let mut buf = Vec::new();
    rec.encode(&mut buf);
    Record::validate(&buf).expect("valid");
    assert_eq!(Record::decode(&buf).expect("decodes"), rec);
}

#[test]
fn batch_round_trips_in_order() {
    let mut w = BatchWriter::default();
    let mut a = sample();
    w.push(&a);
    a.key = Value::Int(43);
    w.push(&a);
    let buf = w.finish();
    let mut r = BatchReader::new(&buf).expect("header");
    assert_eq!(r.remaining(), 2);
    assert_eq!(
        r.next_record().expect("ok").expect("one").key,
        Value::Int(42)
    );
    assert_eq!(
        r.next_record().expect("ok").expect("two").key,
        Value::Int(43)
    );
    assert_eq!(r.next_record().expect("ok"), None);
}

#[test]
fn outcomes_round_trip_including_empty_emit() {
    let rec = sample();
    let mut w = OutcomesWriter::default();
    w.keep_unchanged();
    w.keep(&rec);
    w.begin_emit();
    w.emit_record(&rec);
    w.emit_record(&rec);
    w.begin_emit();
    w.drop_record();
    w.reject(&Rejection {
        code: "invalid_email".into(),
        field: Some("email".into()),
        message: "no @".into(),
    });
    assert_eq!(w.len(), 6);
    let buf = w.finish();
    let mut r = OutcomesReader::new(&buf).expect("header");
    assert_eq!(
        r.next_outcome().expect("ok"),
        Some(OutcomeRef::KeepUnchanged)
    );
    match r.next_outcome().expect("ok") {
        Some(OutcomeRef::Keep(b)) => assert_eq!(Record::decode(b).expect("rec"), rec),
        other => panic!("expected keep, got {other:?}"),
    }
    match r.next_outcome().expect("ok") {
        Some(OutcomeRef::Emit(v)) => assert_eq!(v.len(), 2),
        other => panic!("expected emit, got {other:?}"),
    }
    assert_eq!(
        r.next_outcome().expect("ok"),
        Some(OutcomeRef::Emit(vec![]))
    );
    assert_eq!(r.next_outcome().expect("ok"), Some(OutcomeRef::Drop));
    match r.next_outcome().expect("ok") {
        Some(OutcomeRef::Reject(rej)) => {
            assert_eq!(rej.code, "invalid_email");
            assert_eq!(rej.field.as_deref(), Some("email"));
        }
        other => panic!("expected reject, got {other:?}"),
    }
    assert_eq!(r.next_outcome().expect("ok"), None);
}

#[test]
fn truncated_buffers_are_errors_not_panics() {
    let mut w = BatchWriter::default();
    w.push(&sample());
    let buf = w.finish();
    for cut in 0..buf.len() {
        let part = &buf[..cut];
        let res = BatchReader::new(part).and_then(|mut r| {
            while r.next_record()?.is_some() {}
            Ok(())
        });
        assert!(res.is_err(), "prefix of {cut} bytes decoded");
    }
}

#[test]
fn rejects_wrong_version_and_huge_counts() {
    assert_eq!(
        BatchReader::new(&[2, 0, 0, 0, 0])
            .expect_err("version")
            .reason,
        "unsupported format version"
    );
    assert_eq!(
        BatchReader::new(&[1, 255, 255, 255, 255])
            .expect_err("count")
            .reason,
        "count larger than the buffer"
    );
}

#[test]
fn invalid_utf8_is_reported_with_offset() {
    let mut buf = Vec::new();
    sample().encode(&mut buf);
    // The stream name starts at byte 1 (op) + 4 (length).
    buf[5] = 0xff;
    let err = Record::validate(&buf).expect_err("bad utf8");
    assert_eq!(err.reason, "invalid UTF-8 in string");
    assert_eq!(err.offset, 1);
}

#[test]
fn peeks_stream_and_position_without_decoding() {
    let mut buf = Vec::new();
    sample().encode(&mut buf);
    assert_eq!(
        Record::peek_stream_position(&buf),
        Ok(("customers", "line 7"))
    );
    assert!(Record::peek_stream_position(&buf[..3]).is_err());
}
