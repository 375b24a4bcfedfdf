//! PostgreSQL text form ⇄ record values, by type OID.
//!
//! Every path reads values as text (COPY for the snapshot, pgoutput's text
//! tuples for the change stream, `::text` for `verify`) and converts them
//! here, so a row has the same values whichever way it came:
//!
//! | PostgreSQL                              | value       |
//! |-----------------------------------------|-------------|
//! | `boolean`                               | `bool`      |
//! | `smallint`, `integer`, `bigint`, `oid`  | `int`       |
//! | `real`, `double precision`              | `float`     |
//! | `timestamp`, `timestamptz`              | `timestamp` (UTC; `timestamp` is taken as UTC) |
//! | `json`, `jsonb`                         | `json`      |
//! | `bytea`                                 | `bytes`     |
//! | anything else (`numeric`, `date`, `uuid`, `text`, arrays, ...) | `text`, exactly as PostgreSQL prints it |
//!
//! `numeric` stays text so that no digit is lost. A value that does not
//! parse as its type says (`infinity` timestamps) stays text too.

use std::borrow::Cow;

use sluice_codec::Value;

/// Type OIDs this module treats specially.
pub mod oid {
    /// `boolean`
    pub const BOOL: u32 = 16;
    /// `bytea`
    pub const BYTEA: u32 = 17;
    /// `bigint`
    pub const INT8: u32 = 20;
    /// `smallint`
    pub const INT2: u32 = 21;
    /// `integer`
    pub const INT4: u32 = 23;
    /// `oid`
    pub const OID: u32 = 26;
    /// `json`
    pub const JSON: u32 = 114;
    /// `real`
    pub const FLOAT4: u32 = 700;
    /// `double precision`
    pub const FLOAT8: u32 = 701;
    /// `timestamp`
    pub const TIMESTAMP: u32 = 1114;
    /// `timestamptz`
    pub const TIMESTAMPTZ: u32 = 1184;
    /// `jsonb`
    pub const JSONB: u32 = 3802;
}

/// The value of a column of type `type_oid` whose text form is `text`
/// (text and JSON borrow from it).
pub fn from_text(type_oid: u32, text: &str) -> Value<'_> {
    let as_text = || Value::Text(Cow::Borrowed(text));
    match type_oid {
        oid::BOOL => match text {
            "t" | "true" => Value::Bool(true),
            "f" | "false" => Value::Bool(false),
            _ => as_text(),
        },
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID => {
            text.parse().map(Value::Int).unwrap_or_else(|_| as_text())
        }
        oid::FLOAT4 | oid::FLOAT8 => text.parse().map(Value::Float).unwrap_or_else(|_| as_text()),
        oid::TIMESTAMP | oid::TIMESTAMPTZ => parse_timestamp(text)
            .map(Value::Timestamp)
            .unwrap_or_else(as_text),
        oid::JSON | oid::JSONB => Value::Json(Cow::Borrowed(text)),
        oid::BYTEA => parse_bytea(text)
            .map(|b| Value::Bytes(Cow::Owned(b)))
            .unwrap_or_else(as_text),
        _ => as_text(),
    }
}

/// Microseconds since the epoch of an ISO timestamp as PostgreSQL prints
/// it (`2024-01-02 03:04:05.123456+00`, offset optional: none means UTC).
pub fn parse_timestamp(text: &str) -> Option<i64> {
    use chrono::{DateTime, NaiveDateTime};
    if let Some(us) = iso_timestamp(text.as_bytes()) {
        return Some(us);
    }
    if let Ok(d) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Some(d.timestamp_micros());
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|d| d.and_utc().timestamp_micros())
}

/// The shape PostgreSQL prints with `DateStyle = ISO`, read without
/// chrono's general parser (a format string interpreted per value costs
/// more than the rest of a snapshot row): `YYYY-MM-DD HH:MM:SS`, then up
/// to six fraction digits, then an optional offset `+HH`, `+HH:MM` or
/// `+HH:MM:SS`. Anything else (years past 9999, `BC`, `infinity`) is
/// `None` and left to chrono; chrono checks the date and time here too.
fn iso_timestamp(b: &[u8]) -> Option<i64> {
    use chrono::{NaiveDate, NaiveTime};
    fn num(b: &[u8]) -> Option<u32> {
        b.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    }
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(num(&b[0..4])?).ok()?,
        num(&b[5..7])?,
        num(&b[8..10])?,
    )?;
    let mut rest = &b[19..];
    let mut micros = 0u32;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 6 {
            return None;
        }
        micros = num(&frac[..n])? * 10u32.pow(6 - n as u32);
        rest = &frac[n..];
    }
    let time = NaiveTime::from_hms_micro_opt(
        num(&b[11..13])?,
        num(&b[14..16])?,
        num(&b[17..19])?,
        micros,
    )?;
    let offset_s: i64 = match rest {
        [] => 0,
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (h, m, s) = match tail {
                [h1, h2] => ([*h1, *h2], [b'0', b'0'], [b'0', b'0']),
                [h1, h2, b':', m1, m2] => ([*h1, *h2], [*m1, *m2], [b'0', b'0']),
                [h1, h2, b':', m1, m2, b':', s1, s2] => ([*h1, *h2], [*m1, *m2], [*s1, *s2]),
                _ => return None,
            };
            let secs = i64::from(num(&h)? * 3600 + num(&m)? * 60 + num(&s)?);
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let local = date.and_time(time).and_utc().timestamp_micros();
    local.checked_sub(offset_s.checked_mul(1_000_000)?)
}

/// The bytes of a `bytea` in hex output form (`\x0a0b`).
pub fn parse_bytea(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    hex.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// The text PostgreSQL accepts as input for a value (`None` for null):
/// what the sink sends, cast to the column's type.
pub use crate::value_json::value_text as to_text;

/// A canonical text of a value, for comparing a source row (run through
/// the plugins) with the target row: equal values of different but
/// compatible types compare equal (`int 5` and `numeric '5'`, `bool` and
/// SQLite's `1`, a `timestamp` and its RFC 3339 text, `jsonb` with its keys
/// reordered).
pub fn canonical(v: &Value<'_>) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => canonical_number(*f),
        Value::Text(s) => canonical_text(s),
        Value::Json(s) => serde_json::from_str::<serde_json::Value>(s)
            .map(|j| j.to_string())
            .unwrap_or_else(|_| s.to_string()),
        Value::Bytes(b) => {
            let mut s = String::with_capacity(b.len() * 2);
            for byte in b.iter() {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
        Value::Timestamp(t) => crate::value_json::timestamp_to_rfc3339(*t),
    })
}

fn canonical_number(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        format!("{}", f as i64)
    } else {
        let text = crate::value_json::float_text(f);
        canonical_decimal(&text).unwrap_or(text)
    }
}

/// A plain decimal (`-012.3400`) in its shortest exact form (`-12.34`),
/// every digit kept: `numeric` values compare digit for digit.
fn canonical_decimal(t: &str) -> Option<String> {
    let (negative, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() && frac.is_empty() || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let mut out = String::with_capacity(t.len());
    if negative && !(int.is_empty() && frac.is_empty()) {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

/// Text that is a number compares as a number (`5.00` = `5`, exactly for
/// plain decimals); text that is a timestamp compares as one; other text
/// as it is.
fn canonical_text(s: &str) -> String {
    let t = s.trim();
    if let Some(d) = canonical_decimal(t) {
        return d;
    }
    // A JSON object or array kept as text (SQLite has no JSON type)
    // compares as JSON.
    if (t.starts_with('{') && t.ends_with('}') || t.starts_with('[') && t.ends_with(']'))
        && let Ok(j) = serde_json::from_str::<serde_json::Value>(t)
    {
        return j.to_string();
    }
    if !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && let Ok(f) = t.parse::<f64>()
    {
        return canonical_number(f);
    }
    if t.len() >= 19
        && t.as_bytes().get(4) == Some(&b'-')
        && let Some(us) = parse_timestamp(t).or_else(|| {
            chrono::DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|d| d.timestamp_micros())
        })
    {
        return crate::value_json::timestamp_to_rfc3339(us);
    }
    s.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The shortcut agrees with chrono's general parser wherever it
    /// answers, and leaves to it what it does not read.
    #[test]
    fn iso_timestamps_read_as_chrono_reads_them() {
        use chrono::{DateTime, NaiveDateTime};
        let chrono_only = |t: &str| {
            DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%#z")
                .map(|d| d.timestamp_micros())
                .ok()
                .or_else(|| {
                    NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
                        .ok()
                        .map(|d| d.and_utc().timestamp_micros())
                })
        };
        let mut checked = 0;
        for date in [
            "2024-02-29",
            "1970-01-01",
            "0001-01-01",
            "9999-12-31",
            "1899-12-31",
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
        ] {
            for time in [
                "00:00:00", "23:59:59", "12:34:56", "24:00:00", "23:60:00", "7:00:00",
            ] {
                for frac in ["", ".5", ".123456", ".000001", ".1234567", "."] {
                    for offset in [
                        "",
                        "+00",
                        "-03",
                        "+05:30",
                        "-09:30:15",
                        "+14",
                        "+5",
                        "Z",
                        " UTC",
                    ] {
                        let t = format!("{date} {time}{frac}{offset}");
                        // chrono cannot read an offset with seconds (which
                        // PostgreSQL prints for old local mean times): the
                        // same offset without them, 15 s later.
                        let want = match offset.strip_suffix(":15") {
                            Some(minutes) => chrono_only(&format!("{date} {time}{frac}{minutes}"))
                                .map(|us| us + 15_000_000),
                            None => chrono_only(&t),
                        };
                        let fast = iso_timestamp(t.as_bytes());
                        if fast.is_some() {
                            assert_eq!(fast, want, "{t}");
                            checked += 1;
                        }
                        if fast.is_some() || !offset.ends_with(":15") {
                            assert_eq!(parse_timestamp(&t), want, "{t}");
                        }
                    }
                }
            }
        }
        assert_eq!(
            checked,
            5 * 3 * 4 * 6,
            "valid dates × times × fractions × offsets"
        );
        for odd in [
            "infinity",
            "-infinity",
            "0044-03-15 00:00:00 BC",
            "12024-01-01 00:00:00+00",
            "2024-01-01T00:00:00+00",
            "",
        ] {
            assert_eq!(iso_timestamp(odd.as_bytes()), None, "{odd}");
        }
    }

    #[test]
    fn text_converts_by_type() {
        assert_eq!(from_text(oid::BOOL, "t"), Value::Bool(true));
        assert_eq!(from_text(oid::INT8, "-42"), Value::Int(-42));
        assert_eq!(from_text(oid::FLOAT8, "1.5"), Value::Float(1.5));
        assert_eq!(
            from_text(oid::TIMESTAMPTZ, "2024-01-02 03:04:05.5+00"),
            Value::Timestamp(1_704_164_645_500_000)
        );
        assert_eq!(
            from_text(oid::TIMESTAMPTZ, "2024-01-02 05:04:05.5+02"),
            Value::Timestamp(1_704_164_645_500_000)
        );
        assert_eq!(
            from_text(oid::TIMESTAMP, "2024-01-02 03:04:05"),
            Value::Timestamp(1_704_164_645_000_000)
        );
        assert_eq!(
            from_text(oid::TIMESTAMP, "infinity"),
            Value::Text("infinity".into())
        );
        assert_eq!(
            from_text(oid::BYTEA, "\\x00ff10"),
            Value::Bytes(vec![0, 255, 16].into())
        );
        assert_eq!(from_text(1700, "12.3400"), Value::Text("12.3400".into()));
        assert_eq!(
            from_text(oid::JSONB, "{\"a\": 1}"),
            Value::Json("{\"a\": 1}".into())
        );
        assert_eq!(from_text(oid::INT4, "x"), Value::Text("x".into()));
    }

    #[test]
    fn values_round_trip_through_text() {
        for (oid, v) in [
            (oid::BOOL, Value::Bool(false)),
            (oid::INT8, Value::Int(i64::MIN)),
            (oid::FLOAT8, Value::Float(0.1)),
            (oid::BYTEA, Value::Bytes(vec![1, 2, 254].into())),
            (oid::TIMESTAMPTZ, Value::Timestamp(1_704_164_645_123_456)),
        ] {
            let text = to_text(&v).unwrap();
            let text = text.replace('T', " ").replace('Z', "+00");
            assert_eq!(from_text(oid, &text), v, "{text}");
        }
        assert_eq!(to_text(&Value::Null), None);
        assert_eq!(to_text(&Value::Float(f64::NAN)).unwrap(), "NaN");
    }

    #[test]
    fn canonical_forms_compare_compatible_values() {
        assert_eq!(
            canonical(&Value::Int(5)),
            canonical(&Value::Text("5.00".into()))
        );
        assert_eq!(canonical(&Value::Bool(true)), canonical(&Value::Int(1)));
        assert_eq!(
            canonical(&Value::Timestamp(1_704_164_645_000_000)),
            canonical(&Value::Text("2024-01-02T03:04:05Z".into()))
        );
        assert_eq!(
            canonical(&Value::Json("{\"b\":1, \"a\":2}".into())),
            canonical(&Value::Json("{\"a\": 2, \"b\": 1}".into()))
        );
        assert_ne!(
            canonical(&Value::Text("a".into())),
            canonical(&Value::Text("b".into()))
        );
        assert_eq!(canonical(&Value::Null), None);
    }

    #[test]
    fn decimals_compare_digit_for_digit() {
        assert_eq!(canonical(&Value::Text("12.50".into())), Some("12.5".into()));
        assert_eq!(canonical(&Value::Text("-000.0".into())), Some("0".into()));
        assert_eq!(
            canonical(&Value::Int(5)),
            canonical(&Value::Text("5.00".into()))
        );
        assert_eq!(
            canonical(&Value::Float(1.5)),
            canonical(&Value::Text("1.50".into()))
        );
        let a = "123456789012345678901234567890123456789.123456789";
        let b = "123456789012345678901234567890123456789.123456788";
        assert_ne!(
            canonical(&Value::Text(a.into())),
            canonical(&Value::Text(b.into()))
        );
        assert_eq!(canonical(&Value::Text("NaN".into())), Some("NaN".into()));
        assert_eq!(canonical(&Value::Float(f64::NAN)), Some("NaN".into()));
    }
}
