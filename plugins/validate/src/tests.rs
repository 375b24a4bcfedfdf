use super::*;

fn validate(json: &str) -> Validate {
    Validate::init(Config::new(json)).expect("config is valid")
}

fn check(v: &mut Validate, fields: &[(&'static str, Value<'static>)]) -> Outcome<'static> {
    let mut r = Record::new("t");
    for (n, val) in fields {
        r.set(*n, val.clone());
    }
    v.process(&mut r)
}

fn rejected(o: Outcome<'_>) -> (String, Option<String>, String) {
    match o {
        Outcome::Reject(r) => (r.code, r.field, r.message),
        other => panic!("expected reject, got {other:?}"),
    }
}

#[test]
fn rejects_missing_null_and_empty_required_fields() {
    let mut v = validate(r#"{"fields":{"email":{"required":true}}}"#);
    assert_eq!(rejected(check(&mut v, &[])).0, "required");
    assert_eq!(
        rejected(check(&mut v, &[("email", Value::Null)])).2,
        "`email` is missing"
    );
    assert_eq!(
        rejected(check(&mut v, &[("email", "".into())])).2,
        "`email` is empty"
    );
    assert_eq!(check(&mut v, &[("email", "x".into())]), Outcome::Keep);
}

#[test]
fn checks_emails() {
    let mut v = validate(r#"{"fields":{"email":{"email":true}}}"#);
    for good in ["a@b.co", "first.last+tag@sub.example.org"] {
        assert_eq!(
            check(&mut v, &[("email", good.into())]),
            Outcome::Keep,
            "{good}"
        );
    }
    for bad in ["a@b", "@b.co", "a b@c.co", "a@@b.co", "a.@b.co", "a@-b.co"] {
        let (code, field, _) = rejected(check(&mut v, &[("email", bad.into())]));
        assert_eq!(
            (code.as_str(), field.as_deref()),
            ("invalid_email", Some("email")),
            "{bad}"
        );
    }
    // Absent optional field passes.
    assert_eq!(check(&mut v, &[]), Outcome::Keep);
}

#[test]
fn checks_ranges_allowed_values_lengths_and_patterns() {
    let mut v = validate(
        r#"{"fields":{"age":{"min":0,"max":150},"country":{"allowed":["FR","DE"]},
            "name":{"min_length":2,"max_length":5},"zip":{"pattern":"^[0-9]{5}$"}}}"#,
    );
    let (code, _, msg) = rejected(check(&mut v, &[("age", Value::Int(200))]));
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("out_of_range", "`age` 200 is not between 0 and 150")
    );
    assert_eq!(
        rejected(check(&mut v, &[("age", "abc".into())])).0,
        "wrong_type"
    );
    assert_eq!(check(&mut v, &[("age", "42".into())]), Outcome::Keep);
    assert_eq!(
        rejected(check(&mut v, &[("country", "US".into())])).2,
        "`country` `US` is not one of \"FR\", \"DE\""
    );
    assert_eq!(
        rejected(check(&mut v, &[("name", "Ö".into())])).0,
        "too_short"
    );
    assert_eq!(
        rejected(check(&mut v, &[("name", "abcdef".into())])).0,
        "too_long"
    );
    assert_eq!(check(&mut v, &[("name", "Zoë".into())]), Outcome::Keep);
    assert_eq!(
        rejected(check(&mut v, &[("zip", "1234".into())])).0,
        "pattern_mismatch"
    );
    assert_eq!(check(&mut v, &[("zip", Value::Int(75001))]), Outcome::Keep);
}

#[test]
fn custom_code_and_message_override() {
    let mut v = validate(
        r#"{"fields":{"t":{"type":"int","code":"bad_t","message":"t must be an integer"}}}"#,
    );
    let (code, field, msg) = rejected(check(&mut v, &[("t", "x".into())]));
    assert_eq!(
        (code.as_str(), field.as_deref(), msg.as_str()),
        ("bad_t", Some("t"), "t must be an integer")
    );
}

#[test]
fn refuses_bad_config() {
    let err = Validate::init(Config::new(r#"{"fields":{"z":{"pattern":"("}}}"#)).expect_err("bad");
    assert!(
        matches!(&err, InitError::InvalidConfig(m) if m.starts_with("`fields.z.pattern`:")),
        "{err}"
    );
    let err =
        Validate::init(Config::new(r#"{"fields":{"z":{"min":5,"max":1}}}"#)).expect_err("bad");
    assert_eq!(
        err,
        InitError::InvalidConfig("`fields.z`: `min` (5) is larger than `max` (1)".into())
    );
    let err = Validate::init(Config::new(r#"{"fields":{"z":{"requird":true}}}"#)).expect_err("bad");
    assert!(
        matches!(&err, InitError::InvalidConfig(m) if m.contains("unknown field `requird`")),
        "{err}"
    );
}

#[test]
fn lets_deletes_through_with_only_their_key() {
    let mut v = validate(r#"{"fields":{"email":{"required":true},"id":{"type":"int"}}}"#);
    let mut r = Record::new("t");
    r.set("id", Value::Int(4));
    r.set_op(Operation::Delete);
    assert_eq!(v.process(&mut r), Outcome::Keep);
}

#[test]
fn a_required_column_left_out_as_unchanged_is_not_missing() {
    let mut v = validate(r#"{"fields":{"email":{"required":true},"note":{"required":true}}}"#);
    let mut r = Record::new("t");
    r.set_op(Operation::Update);
    r.set("note", Value::Text("x".into()));
    r.add_header("sluice-unchanged", br#"["email"]"#.to_vec());
    assert_eq!(v.process(&mut r), Outcome::Keep);
    // Listed as unchanged but present and empty: checked as usual.
    r.set("email", Value::Text("".into()));
    assert_eq!(rejected(v.process(&mut r)).0, "required");
    // Not listed: missing.
    let mut r = Record::new("t");
    r.set("note", Value::Text("x".into()));
    r.add_header("sluice-unchanged", br#"["other"]"#.to_vec());
    assert_eq!(rejected(v.process(&mut r)).1.as_deref(), Some("email"));
}

#[test]
fn patterns_are_unicode_aware_and_searched_unless_anchored() {
    let mut v =
        validate(r#"{"fields":{"name":{"pattern":"^\\w+$"},"code":{"pattern":"[0-9]{3}"}}}"#);
    assert_eq!(check(&mut v, &[("name", "Zoë".into())]), Outcome::Keep);
    assert_eq!(
        rejected(check(&mut v, &[("name", "Zoë Ann".into())])).0,
        "pattern_mismatch"
    );
    // Not anchored: found anywhere.
    assert_eq!(check(&mut v, &[("code", "ab123cd".into())]), Outcome::Keep);
    assert_eq!(
        rejected(check(&mut v, &[("code", "ab12cd".into())])).0,
        "pattern_mismatch"
    );
}
