use super::*;

fn mapper(json: &str) -> Mapper {
    Mapper::init(Config::new(json)).expect("config is valid")
}

fn record() -> Record<'static> {
    let mut r = Record::new("crm");
    r.set("CUST_ID", "  42 ");
    r.set("E_MAIL", "a@b.co");
    r.set("status", "INACTIVE");
    r
}

#[test]
fn renames_casts_sets_and_drops_in_documented_order() {
    let mut m = mapper(
        r#"{"rename":{"CUST_ID":"id","E_MAIL":"email"},"cast":{"id":"int"},
            "set":{"source":"legacy"},"drop":["status"],"copy":{"E_MAIL":"email_raw"}}"#,
    );
    let mut r = record();
    assert_eq!(m.process(&mut r), Outcome::Keep);
    let names: Vec<_> = r.fields().map(|(n, _)| n.to_string()).collect();
    assert_eq!(names, ["id", "email", "email_raw", "source"]);
    assert_eq!(r.get_i64("id"), Some(42));
    assert_eq!(r.get_str("source"), Some("legacy"));
}

#[test]
fn rejects_a_value_that_does_not_cast() {
    let mut m = mapper(r#"{"cast":{"E_MAIL":"int"}}"#);
    match m.process(&mut record()) {
        Outcome::Reject(r) => {
            assert_eq!(r.code, "cast_failed");
            assert_eq!(r.field.as_deref(), Some("E_MAIL"));
            assert_eq!(r.message, "cannot cast text `a@b.co` to int");
        }
        other => panic!("expected reject, got {other:?}"),
    }
}

#[test]
fn drops_records_matching_a_condition_ignoring_case() {
    let mut m =
        mapper(r#"{"drop_when":[{"field":"status","equals":"inactive","ignore_case":true}]}"#);
    assert_eq!(m.process(&mut record()), Outcome::Drop);
    let mut m = mapper(r#"{"drop_when":[{"field":"status","equals":"inactive"}]}"#);
    assert_eq!(m.process(&mut record()), Outcome::Keep);
}

#[test]
fn keep_lists_the_only_surviving_fields() {
    let mut m = mapper(r#"{"keep":["E_MAIL"]}"#);
    let mut r = record();
    m.process(&mut r);
    assert_eq!(r.len(), 1);
    assert!(r.has("E_MAIL"));
}

#[test]
fn unchanged_records_stay_unchanged() {
    let mut m = mapper(r#"{"cast":{"status":"text"}}"#);
    let mut r = Record::from_codec(record().into_codec());
    m.process(&mut r);
    assert!(!r.is_changed());
}

#[test]
fn refuses_unknown_keys_and_empty_conditions() {
    let err = Mapper::init(Config::new(r#"{"renam":{}}"#)).expect_err("typo");
    assert!(
        matches!(&err, InitError::InvalidConfig(m) if m.contains("unknown field `renam`")),
        "{err}"
    );
    let err = Mapper::init(Config::new(r#"{"drop_when":[{"field":"x"}]}"#)).expect_err("empty");
    assert_eq!(
        err,
        InitError::InvalidConfig(
            "`drop_when[0]` (field `x`) needs `equals`, `in` or `is_null`".into()
        )
    );
    let err = Mapper::init(Config::new(r#"{"cast":{"x":"integer"}}"#)).expect_err("bad type");
    assert!(
        matches!(&err, InitError::InvalidConfig(m) if m.starts_with("`cast.x`: unknown variant `integer`")),
        "{err}"
    );
}

#[test]
fn parses_legacy_booleans() {
    assert_eq!(cast(&Value::from("Y"), CastTo::Bool), Ok(Value::Bool(true)));
    assert_eq!(
        cast(&Value::from(" off "), CastTo::Bool),
        Ok(Value::Bool(false))
    );
    assert!(cast(&Value::from("maybe"), CastTo::Bool).is_err());
}

#[test]
fn renames_worked_out_once_per_shape_equal_renaming_one_by_one() {
    // Chains (a->b, b->c), renames onto existing fields (d->e), a rename
    // to itself, duplicated names: over records of changing shapes, in
    // an order where a shape comes back after others.
    let config = r#"{"rename":{"a":"b","b":"c","d":"e","f":"f","x":"y"}}"#;
    let mut m = mapper(config);
    let renames = [("a", "b"), ("b", "c"), ("d", "e"), ("f", "f"), ("x", "y")];
    let shapes: [&[&str]; 7] = [
        &["a", "b", "z"],
        &["a", "d", "e"],
        &["a", "b", "z"],
        &["z", "f", "a"],
        &["d", "d", "e", "a"],
        &["q"],
        &[],
    ];
    let mut checked = 0;
    for round in 0..3 {
        for shape in shapes {
            let mut r = Record::new("s");
            for (i, n) in shape.iter().enumerate() {
                // Pushed, not set: a name may come twice.
                r.fields_mut()
                    .push(((*n).into(), Value::Int((round * 10 + i) as i64)));
            }
            let mut expected = r.clone();
            for &(from, to) in &renames {
                expected.rename(from, to);
            }
            assert_eq!(m.process(&mut r), Outcome::Keep);
            let fields = |r: &Record<'_>| -> Vec<(String, Value<'static>)> {
                r.fields()
                    .map(|(n, v)| (n.to_string(), v.clone().into_owned()))
                    .collect()
            };
            assert_eq!(fields(&r), fields(&expected), "shape {shape:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 21);
}
