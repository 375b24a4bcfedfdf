use super::*;

fn cleanse(json: &str) -> Cleanse {
    Cleanse::init(Config::new(json)).expect("config is valid")
}

fn run<'a>(c: &mut Cleanse, fields: &[(&'a str, Value<'a>)]) -> (Outcome<'a>, Record<'a>) {
    let mut r = Record::new("t");
    for (n, v) in fields {
        r.set(*n, v.clone());
    }
    let r = Record::from_codec(r.into_codec());
    let mut r = r;
    let o = c.process(&mut r);
    (o, r)
}

#[test]
fn trims_and_nulls_tokens_ignoring_case() {
    let mut c = cleanse(r#"{"null_tokens":["", "NULL", "n/a"]}"#);
    let (o, r) = run(
        &mut c,
        &[
            ("a", " x ".into()),
            ("b", " null ".into()),
            ("c", "N/A".into()),
            ("d", "".into()),
        ],
    );
    assert_eq!(o, Outcome::Keep);
    assert_eq!(r.get_str("a"), Some("x"));
    assert!(r.get("b").is_some_and(Value::is_null));
    assert!(r.get("c").is_some_and(Value::is_null));
    assert!(r.get("d").is_some_and(Value::is_null));
}

#[test]
fn leaves_clean_records_unchanged() {
    let mut c = cleanse(r#"{"null_tokens":["NULL"]}"#);
    let (_, r) = run(&mut c, &[("a", "x".into()), ("n", Value::Int(3))]);
    assert!(!r.is_changed());
}

#[test]
fn collapses_whitespace_and_changes_case() {
    let mut c = cleanse(
        r#"{"collapse_whitespace":true,"fields":{"email":{"case":"lower"},"name":{"case":"title"}}}"#,
    );
    let (_, r) = run(
        &mut c,
        &[
            ("email", " A.B@EXAMPLE.com ".into()),
            ("name", "jean-luc   O'NEIL".into()),
        ],
    );
    assert_eq!(r.get_str("email"), Some("a.b@example.com"));
    assert_eq!(r.get_str("name"), Some("Jean-Luc O'neil"));
}

#[test]
fn parses_dates_in_listed_formats_to_iso() {
    let mut c =
        cleanse(r#"{"fields":{"d":{"date_formats":["%d/%m/%Y","%Y-%m-%d %H:%M","%b %d %Y"]}}}"#);
    for (input, want) in [
        ("03/02/2021", "2021-02-03"),
        ("2021-02-03 14:05", "2021-02-03T14:05:00"),
        ("Feb 03 2021", "2021-02-03"),
    ] {
        let (o, r) = run(&mut c, &[("d", input.into())]);
        assert_eq!(o, Outcome::Keep, "{input}");
        assert_eq!(r.get_str("d"), Some(want), "{input}");
    }
    let (o, _) = run(&mut c, &[("d", "31/02/2021".into())]);
    match o {
        Outcome::Reject(r) => {
            assert_eq!(r.code, "invalid_date");
            assert_eq!(r.field.as_deref(), Some("d"));
        }
        other => panic!("expected reject, got {other:?}"),
    }
}

#[test]
fn on_error_null_keeps_the_record() {
    let mut c = cleanse(r#"{"fields":{"d":{"date_formats":["%Y"],"on_error":"null"}}}"#);
    let (o, r) = run(&mut c, &[("d", "soon".into())]);
    assert_eq!(o, Outcome::Keep);
    assert!(r.get("d").is_some_and(Value::is_null));
}

#[test]
fn parses_money_spellings_into_minor_units() {
    let dot = MoneyRule::default();
    let comma = MoneyRule {
        decimal_separator: ",".into(),
        ..MoneyRule::default()
    };
    assert_eq!(parse_money("$1,234.56", &dot), Ok(123456));
    assert_eq!(parse_money("(12.00)", &dot), Ok(-1200));
    assert_eq!(parse_money("-3", &dot), Ok(-300));
    assert_eq!(parse_money("EUR 7.5", &dot), Ok(750));
    assert_eq!(parse_money("0.00", &dot), Ok(0));
    assert_eq!(parse_money("1.234,56 €", &comma), Ok(123456));
    assert_eq!(parse_money("1.2.3", &comma), Ok(12300));
    assert_eq!(
        parse_money("12.345", &dot),
        Err("3 decimal places, the currency has 2".into())
    );
    assert_eq!(parse_money("abc", &dot), Err("no digits".into()));
    assert_eq!(
        parse_money("1.5.0", &dot),
        Err("more than one decimal separator `.`".into())
    );
    assert_eq!(
        parse_money("99999999999999999999", &dot),
        Err("amount too large".into())
    );
}

#[test]
fn money_from_numbers() {
    let mut c = cleanse(r#"{"fields":{"m":{"money":{}}}}"#);
    let (_, r) = run(&mut c, &[("m", Value::Int(12))]);
    assert_eq!(r.get_i64("m"), Some(1200));
    let (_, r) = run(&mut c, &[("m", Value::Float(0.1 + 0.2))]);
    assert_eq!(r.get_i64("m"), Some(30));
}

#[test]
fn refuses_bad_config() {
    let err =
        Cleanse::init(Config::new(r#"{"fields":{"d":{"date_formats":["%Q"]}}}"#)).expect_err("bad");
    assert_eq!(
        err,
        InitError::InvalidConfig(
            "`fields.d.date_formats`: `%Q` is not a valid chrono format".into()
        )
    );
    let err = Cleanse::init(Config::new(
        r#"{"fields":{"m":{"money":{"decimal_separator":";"}}}}"#,
    ))
    .expect_err("bad");
    assert_eq!(
        err,
        InitError::InvalidConfig(
            "`fields.m.money`: `decimal_separator` is \";\", expected \".\" or \",\"".into()
        )
    );
    let err = Cleanse::init(Config::new(r#"{"fields":{"m":{"case":"shout"}}}"#)).expect_err("bad");
    assert!(
        matches!(&err, InitError::InvalidConfig(m) if m.starts_with("`fields.m.case`: unknown variant `shout`")),
        "{err}"
    );
}
