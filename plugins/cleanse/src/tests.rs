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

/// `parse_date` with chrono's parser alone (no all-numeric shortcut).
fn chrono_only(s: &str, formats: &[&str]) -> Option<String> {
    let formats: Vec<DateFormat> = formats
        .iter()
        .map(|f| DateFormat {
            digits: None,
            ..DateFormat::new(f).expect("format")
        })
        .collect();
    parse_date(s, &formats)
}

#[test]
fn all_numeric_dates_read_without_chrono_as_chrono_reads_them() {
    let texts = ["%d/%m/%Y", "%Y-%m-%d", "%d.%m.%Y", "%m/%d/%Y", "%Y%m%d"];
    let formats: Vec<DateFormat> = texts
        .iter()
        .map(|f| DateFormat::new(f).expect("format"))
        .collect();
    assert!(formats.iter().all(|f| f.digits.is_some()));
    // Every day of a leap year and of a common year, in each format, then
    // values of other shapes and impossible dates.
    let mut values = Vec::new();
    for year in [1999, 2000, 2024, 2100] {
        for month in 0..=13 {
            for day in 0..=32 {
                values.push(format!("{day:02}/{month:02}/{year}"));
                values.push(format!("{year}-{month:02}-{day:02}"));
                values.push(format!("{day:02}.{month:02}.{year}"));
                values.push(format!("{year}{month:02}{day:02}"));
            }
        }
    }
    for odd in [
        "5/3/2020",
        " 05/03/2020",
        "05/03/2020 ",
        "05/03/20",
        "2020-3-5",
        "+2020-03-05",
        "05-03-2020",
        "0000-01-01",
        "9999-12-31",
        "05/03/2O20",
        "",
        "abcd",
        "05/03/-202",
        "12345678",
        "٠٥/٠٣/٢٠٢٠",
    ] {
        values.push(odd.to_string());
    }
    let mut fast = 0;
    for v in &values {
        assert_eq!(
            parse_date(v, &formats),
            chrono_only(v, &texts),
            "value {v:?}"
        );
        fast += usize::from(formats.iter().any(|f| f.read_digits(v).is_some()));
    }
    // The shortcut did read most of them.
    assert!(fast > values.len() * 9 / 10, "{fast} of {}", values.len());
    // Formats with anything else are left to chrono.
    for f in [
        "%e/%m/%Y",
        "%d %m %Y",
        "%b %d %Y",
        "%d/%m/%y",
        "%Y-%m-%dT%H:%M",
        "%d/%m",
    ] {
        assert!(DateFormat::new(f).expect("format").digits.is_none(), "{f}");
    }
}
