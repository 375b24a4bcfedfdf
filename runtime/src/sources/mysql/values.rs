//! MySQL values to record values, one mapping for the snapshot (binary
//! protocol rows) and the binlog (row events), so a row reads the same
//! whichever way it arrived.
//!
//! | MySQL                                | record value                   | declared (PostgreSQL)          |
//! |--------------------------------------|--------------------------------|--------------------------------|
//! | `TINYINT`…`BIGINT`, `INT UNSIGNED`…  | integer                        | `smallint`/`integer`/`bigint`  |
//! | `BIGINT UNSIGNED`                    | text of the digits (exact)     | `numeric(20,0)`                |
//! | `DECIMAL(p,s)`                       | text of the digits (exact)     | `numeric(p,s)`                 |
//! | `FLOAT`, `DOUBLE`                    | float (`FLOAT` by its shortest decimal) | `real`, `double precision` |
//! | `DATE`                               | text `YYYY-MM-DD`              | `date`                         |
//! | `DATETIME(n)`                        | timestamp (wall clock, as UTC) | `timestamp(n) without time zone` |
//! | `TIMESTAMP(n)`                       | timestamp (UTC)                | `timestamp(n) with time zone`  |
//! | `TIME(n)`                            | text `[-]HH:MM:SS[.f]` (up to ±838 h) | `interval`              |
//! | `YEAR`                               | integer                        | `smallint`                     |
//! | `CHAR`, `VARCHAR`, `TEXT` (any charset) | text (decoded from the column's charset) | `text`         |
//! | `BINARY`, `VARBINARY`, `BLOB`        | bytes                          | `bytea`                        |
//! | `BIT(n)`                             | text of n `0`/`1` digits       | `bit(n)`                       |
//! | `ENUM`, `SET`                        | text: the label, the labels joined by `,` | `text`              |
//! | `JSON` (MySQL's, MariaDB's `json_valid` longtext) | JSON            | `jsonb`                        |
//! | `GEOMETRY` and the rest              | bytes (MySQL's internal form)  | `bytea`                        |
//!
//! Zero dates (`0000-00-00`, `2024-00-10`) are [`Bad::ZeroDate`]: the
//! source makes them null or dead letters (`zero_dates`).

use std::borrow::Cow;

use mysql_async::Value as My;
use sluice_codec::Value;

use super::catalog::{Column, Kind};

/// Why a value cannot become a record value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bad {
    /// A zero or partly zero date.
    ZeroDate,
    /// Anything else: what is wrong, for the dead letter.
    Invalid(String),
}

/// Where a value comes from: the two disagree on a few types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A snapshot row, binary protocol, session time zone `+00:00`,
    /// connection character set utf8mb4.
    Snapshot,
    /// A binlog row event: raw storage values, strings in the column's
    /// character set, unsigned integers read as signed.
    Binlog,
}

/// The record value of `v` in column `c`.
pub fn convert(c: &Column, v: &My, from: Origin) -> Result<Value<'static>, Bad> {
    if matches!(v, My::NULL) {
        return Ok(Value::Null);
    }
    match &c.kind {
        Kind::Int { bytes, unsigned } => {
            let n = integer(v, *bytes, *unsigned)?;
            if *bytes == 8 && *unsigned {
                Ok(Value::Text(Cow::Owned(n.to_string())))
            } else {
                i64::try_from(n)
                    .map(Value::Int)
                    .map_err(|_| Bad::Invalid(format!("{n} is out of range")))
            }
        }
        Kind::Decimal => text(v).map(|t| Value::Text(Cow::Owned(t.into_owned()))),
        Kind::Float => match v {
            My::Float(f) => Ok(Value::Float(shortest(*f))),
            My::Double(d) => Ok(Value::Float(shortest(*d as f32))),
            other => parse_text(other).map(Value::Float),
        },
        Kind::Double => match v {
            My::Double(d) => Ok(Value::Float(*d)),
            My::Float(f) => Ok(Value::Float(f64::from(*f))),
            other => parse_text(other).map(Value::Float),
        },
        Kind::Year => match v {
            // The binlog reads a stored 0 (`YEAR 0000`) as 1900 + 0.
            My::Bytes(b) if from == Origin::Binlog && b.as_slice() == b"1900" => Ok(Value::Int(0)),
            My::Int(i) => Ok(Value::Int(*i)),
            My::UInt(u) => Ok(Value::Int(*u as i64)),
            other => parse_text(other).map(Value::Int),
        },
        Kind::Date => match v {
            My::Date(y, m, d, ..) => date_text(*y, *m, *d).map(|t| Value::Text(Cow::Owned(t))),
            other => {
                let t = text(other)?;
                let (y, m, d) = split_date(&t).ok_or_else(|| bad_text("a date", &t))?;
                date_text(y, m, d).map(|t| Value::Text(Cow::Owned(t)))
            }
        },
        Kind::DateTime => match v {
            My::Date(y, mo, d, h, mi, s, us) => micros(*y, *mo, *d, *h, *mi, *s, *us),
            other => {
                let t = text(other)?;
                parse_datetime(&t)
            }
        },
        Kind::Timestamp => match (v, from) {
            // The binlog has seconds since the epoch, `sec` or `sec.usec`.
            (My::Bytes(b), Origin::Binlog) => {
                let t =
                    std::str::from_utf8(b).map_err(|_| Bad::Invalid("not a timestamp".into()))?;
                let (s, us) = t.split_once('.').unwrap_or((t, "0"));
                let s: i64 = s.parse().map_err(|_| bad_text("a timestamp", t))?;
                let us: i64 = format!("{us:0<6}")[..6]
                    .parse()
                    .map_err(|_| bad_text("a timestamp", t))?;
                if s == 0 && us == 0 {
                    return Err(Bad::ZeroDate);
                }
                Ok(Value::Timestamp(s * 1_000_000 + us))
            }
            (My::Date(y, mo, d, h, mi, s, us), _) => micros(*y, *mo, *d, *h, *mi, *s, *us),
            (other, _) => {
                let t = text(other)?;
                parse_datetime(&t)
            }
        },
        Kind::Time { fsp } => match v {
            My::Time(neg, days, h, m, s, us) => {
                let (neg, days, h, m, s, us) = if from == Origin::Binlog && matches!(fsp, 1 | 2) {
                    time2_repaired(*neg, *days, *h, *m, *s, *us)
                } else {
                    (*neg, *days, *h, *m, *s, *us)
                };
                let hours = u64::from(days) * 24 + u64::from(h);
                let mut out = format!("{}{hours:02}:{m:02}:{s:02}", if neg { "-" } else { "" });
                if *fsp > 0 {
                    let frac = format!("{us:06}");
                    out.push('.');
                    out.push_str(&frac[..(*fsp as usize).min(6)]);
                }
                Ok(Value::Text(Cow::Owned(out)))
            }
            other => text(other).map(|t| Value::Text(Cow::Owned(t.into_owned()))),
        },
        Kind::Text { encoding } => match v {
            My::Bytes(b) => {
                let enc = match from {
                    Origin::Snapshot => encoding_rs::UTF_8,
                    Origin::Binlog => encoding,
                };
                decode(enc, b).map(|s| Value::Text(Cow::Owned(s)))
            }
            other => text(other).map(|t| Value::Text(Cow::Owned(t.into_owned()))),
        },
        Kind::Binary { pad_to } => match v {
            My::Bytes(b) => {
                let mut b = b.clone();
                // BINARY(n) is stored padded with zero bytes; the binlog
                // leaves the padding out.
                if let Some(n) = pad_to
                    && b.len() < *n
                {
                    b.resize(*n, 0);
                }
                Ok(Value::Bytes(Cow::Owned(b)))
            }
            other => text(other).map(|t| Value::Bytes(Cow::Owned(t.into_owned().into_bytes()))),
        },
        Kind::Bit { bits } => match v {
            My::Bytes(b) => Ok(Value::Text(Cow::Owned(bit_text(b, *bits)))),
            My::Int(i) => Ok(Value::Text(Cow::Owned(bit_text(&i.to_be_bytes(), *bits)))),
            My::UInt(u) => Ok(Value::Text(Cow::Owned(bit_text(&u.to_be_bytes(), *bits)))),
            _ => Err(Bad::Invalid("not a bit value".into())),
        },
        Kind::Enum { labels } => match (v, from) {
            (My::Int(i), Origin::Binlog) => {
                // 1-based; 0 is the empty string MySQL stores for an
                // invalid value in non-strict mode.
                let i = *i;
                if i == 0 {
                    Ok(Value::Text(Cow::Borrowed("")))
                } else {
                    labels
                        .get((i - 1) as usize)
                        .map(|l| Value::Text(Cow::Owned(l.clone())))
                        .ok_or_else(|| Bad::Invalid(format!("enum index {i} has no label")))
                }
            }
            (other, _) => text(other).map(|t| Value::Text(Cow::Owned(t.into_owned()))),
        },
        Kind::Set { labels } => match (v, from) {
            (My::Bytes(b), Origin::Binlog) => {
                let mut mask: u64 = 0;
                for (i, byte) in b.iter().enumerate().take(8) {
                    mask |= u64::from(*byte) << (8 * i);
                }
                let chosen: Vec<&str> = labels
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1u64 << i) != 0)
                    .map(|(_, l)| l.as_str())
                    .collect();
                Ok(Value::Text(Cow::Owned(chosen.join(","))))
            }
            (other, _) => text(other).map(|t| Value::Text(Cow::Owned(t.into_owned()))),
        },
        Kind::Json { binary } => {
            let t = match v {
                My::Bytes(b) => decode(encoding_rs::UTF_8, b)?,
                other => text(other)?.into_owned(),
            };
            if *binary {
                // MySQL's JSON: the snapshot has MySQL's text, the binlog
                // its binary form; both are written the same way here.
                let parsed: serde_json::Value =
                    serde_json::from_str(&t).map_err(|e| Bad::Invalid(format!("not JSON: {e}")))?;
                Ok(Value::Json(Cow::Owned(parsed.to_string())))
            } else {
                Ok(Value::Json(Cow::Owned(t)))
            }
        }
        Kind::Other => match v {
            My::Bytes(b) => Ok(Value::Bytes(Cow::Owned(b.clone()))),
            other => text(other).map(|t| Value::Text(Cow::Owned(t.into_owned()))),
        },
    }
}

/// Undoes a decoding slip of `mysql_common` 0.37 for `TIME(1)` and
/// `TIME(2)` binlog values that are negative with a fraction: its
/// fraction byte, held unsigned, wraps when it is made negative, which
/// adds exactly 2^32 × 10 000 to the packed value before it is split into
/// hours, minutes, seconds and microseconds. Such values are recognised
/// by what no right one has (a negative value with microseconds left
/// over, or microseconds past a second), packed again, corrected and
/// split the right way. Every other value is returned as it is.
fn time2_repaired(
    neg: bool,
    days: u32,
    h: u8,
    m: u8,
    s: u8,
    us: u32,
) -> (bool, u32, u8, u8, u8, u32) {
    if !((neg && us != 0) || us >= 1_000_000) {
        return (neg, days, h, m, s, us);
    }
    let hours = i64::from(days) * 24 + i64::from(h);
    let hms = (hours << 12) | (i64::from(m) << 6) | i64::from(s);
    let magnitude = (hms << 24) + i64::from(us);
    let slipped = if neg { -magnitude } else { magnitude };
    let packed = slipped - (1i64 << 32) * 10_000;
    let negative = packed < 0;
    let abs = packed.abs();
    let hms = abs >> 24;
    let hours = (hms >> 12) as u32;
    (
        negative,
        hours / 24,
        (hours % 24) as u8,
        ((hms >> 6) & 63) as u8,
        (hms & 63) as u8,
        (abs % (1 << 24)) as u32,
    )
}

/// An integer column's value as u64 (unsigned) or i64 widened to i128.
fn integer(v: &My, bytes: u8, unsigned: bool) -> Result<i128, Bad> {
    let n: i128 = match v {
        My::Int(i) => i128::from(*i),
        My::UInt(u) => i128::from(*u),
        other => {
            let t = text(other)?;
            t.parse::<i128>().map_err(|_| bad_text("an integer", &t))?
        }
    };
    // The binlog has no sign flag without `binlog_row_metadata = FULL`:
    // an integer can come read with the wrong one for its width.
    let width = 1i128 << (8 * u32::from(bytes));
    if unsigned && n < 0 {
        return Ok(n + width);
    }
    if !unsigned && bytes < 8 && n >= width / 2 {
        return Ok(n - width);
    }
    Ok(n)
}

/// A float by its shortest decimal form, as MySQL shows a `FLOAT`.
fn shortest(f: f32) -> f64 {
    format!("{f}").parse().unwrap_or(f64::from(f))
}

fn text(v: &My) -> Result<Cow<'_, str>, Bad> {
    match v {
        My::Bytes(b) => std::str::from_utf8(b)
            .map(Cow::Borrowed)
            .map_err(|_| Bad::Invalid("not UTF-8 text".into())),
        My::Int(i) => Ok(Cow::Owned(i.to_string())),
        My::UInt(u) => Ok(Cow::Owned(u.to_string())),
        My::Float(f) => Ok(Cow::Owned(f.to_string())),
        My::Double(d) => Ok(Cow::Owned(d.to_string())),
        My::NULL => Ok(Cow::Borrowed("")),
        My::Date(..) | My::Time(..) => {
            Ok(Cow::Owned(v.as_sql(true).trim_matches('\'').to_string()))
        }
    }
}

fn parse_text<T: std::str::FromStr>(v: &My) -> Result<T, Bad> {
    let t = text(v)?;
    t.parse().map_err(|_| bad_text("a number", &t))
}

fn bad_text(what: &str, t: &str) -> Bad {
    Bad::Invalid(format!(
        "`{}` is not {what}",
        t.chars().take(64).collect::<String>()
    ))
}

/// Decodes text in a column's character set; bytes that are not valid in
/// it are an error (never a replacement character).
pub fn decode(enc: &'static encoding_rs::Encoding, b: &[u8]) -> Result<String, Bad> {
    if enc == encoding_rs::UTF_8 {
        return String::from_utf8(b.to_vec()).map_err(|e| {
            Bad::Invalid(format!(
                "invalid UTF-8 at byte {}",
                e.utf8_error().valid_up_to()
            ))
        });
    }
    enc.decode_without_bom_handling_and_without_replacement(b)
        .map(Cow::into_owned)
        .ok_or_else(|| Bad::Invalid(format!("bytes that are not {} text", enc.name())))
}

fn split_date(t: &str) -> Option<(u16, u8, u8)> {
    let mut p = t.get(..10)?.split('-');
    let y = p.next()?.parse().ok()?;
    let m = p.next()?.parse().ok()?;
    let d = p.next()?.parse().ok()?;
    Some((y, m, d))
}

fn date_text(y: u16, m: u8, d: u8) -> Result<String, Bad> {
    chrono::NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(d))
        .ok_or(Bad::ZeroDate)?;
    Ok(format!("{y:04}-{m:02}-{d:02}"))
}

fn micros(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8, us: u32) -> Result<Value<'static>, Bad> {
    let date = chrono::NaiveDate::from_ymd_opt(i32::from(y), u32::from(mo), u32::from(d))
        .ok_or(Bad::ZeroDate)?;
    let t = date
        .and_hms_micro_opt(u32::from(h), u32::from(mi), u32::from(s), us)
        .ok_or_else(|| Bad::Invalid(format!("{h:02}:{mi:02}:{s:02}.{us:06} is not a time")))?;
    Ok(Value::Timestamp(t.and_utc().timestamp_micros()))
}

fn parse_datetime(t: &str) -> Result<Value<'static>, Bad> {
    let (y, mo, d) = split_date(t).ok_or_else(|| bad_text("a date and time", t))?;
    let rest = t.get(11..).unwrap_or("00:00:00");
    let (hms, frac) = rest.split_once('.').unwrap_or((rest, ""));
    let mut p = hms.split(':');
    let mut next = || -> Result<u8, Bad> {
        p.next()
            .and_then(|x| x.parse().ok())
            .ok_or_else(|| bad_text("a date and time", t))
    };
    let (h, mi, s) = (next()?, next()?, next()?);
    let us: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}")[..6]
            .parse()
            .map_err(|_| bad_text("a date and time", t))?
    };
    micros(y, mo, d, h, mi, s, us)
}

/// `bits` binary digits of a big-endian value.
fn bit_text(b: &[u8], bits: u32) -> String {
    let mut out = String::with_capacity(bits as usize);
    let total = b.len() as u32 * 8;
    for i in (0..bits).rev() {
        let set = if i >= total {
            false
        } else {
            let byte = b[b.len() - 1 - (i / 8) as usize];
            byte & (1 << (i % 8)) != 0
        };
        out.push(if set { '1' } else { '0' });
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn col(kind: Kind) -> Column {
        Column {
            name: "c".into(),
            column_type: "t".into(),
            kind,
        }
    }

    #[test]
    fn unsigned_integers_read_as_signed_from_the_binlog_come_back() {
        let c = col(Kind::Int {
            bytes: 8,
            unsigned: true,
        });
        assert_eq!(
            convert(&c, &My::Int(-1), Origin::Binlog).unwrap(),
            Value::Text("18446744073709551615".into())
        );
        assert_eq!(
            convert(&c, &My::UInt(u64::MAX), Origin::Snapshot).unwrap(),
            Value::Text("18446744073709551615".into())
        );
        let c = col(Kind::Int {
            bytes: 1,
            unsigned: true,
        });
        assert_eq!(
            convert(&c, &My::Int(-56), Origin::Binlog).unwrap(),
            Value::Int(200)
        );
        let c = col(Kind::Int {
            bytes: 3,
            unsigned: false,
        });
        assert_eq!(
            convert(&c, &My::Int(-5), Origin::Binlog).unwrap(),
            Value::Int(-5)
        );
    }

    #[test]
    fn enums_sets_and_bits_read_the_same_both_ways() {
        let labels = vec!["a".to_string(), "b".into(), "c".into()];
        let e = col(Kind::Enum {
            labels: labels.clone(),
        });
        assert_eq!(
            convert(&e, &My::Int(2), Origin::Binlog).unwrap(),
            Value::Text("b".into())
        );
        assert_eq!(
            convert(&e, &My::Bytes(b"b".to_vec()), Origin::Snapshot).unwrap(),
            Value::Text("b".into())
        );
        let s = col(Kind::Set { labels });
        assert_eq!(
            convert(&s, &My::Bytes(vec![5]), Origin::Binlog).unwrap(),
            Value::Text("a,c".into())
        );
        let b = col(Kind::Bit { bits: 10 });
        assert_eq!(
            convert(&b, &My::Bytes(vec![2, 0x81]), Origin::Binlog).unwrap(),
            Value::Text("1010000001".into())
        );
    }

    #[test]
    fn dates_times_and_zero_dates() {
        let d = col(Kind::Date);
        assert_eq!(
            convert(&d, &My::Date(0, 0, 0, 0, 0, 0, 0), Origin::Binlog),
            Err(Bad::ZeroDate)
        );
        assert_eq!(
            convert(&d, &My::Date(2024, 0, 10, 0, 0, 0, 0), Origin::Snapshot),
            Err(Bad::ZeroDate)
        );
        assert_eq!(
            convert(&d, &My::Date(2024, 2, 29, 0, 0, 0, 0), Origin::Binlog).unwrap(),
            Value::Text("2024-02-29".into())
        );
        let ts = col(Kind::Timestamp);
        assert_eq!(
            convert(&ts, &My::Bytes(b"1704164645.678".to_vec()), Origin::Binlog).unwrap(),
            convert(
                &ts,
                &My::Date(2024, 1, 2, 3, 4, 5, 678_000),
                Origin::Snapshot
            )
            .unwrap()
        );
        assert_eq!(
            convert(&ts, &My::Bytes(b"0".to_vec()), Origin::Binlog),
            Err(Bad::ZeroDate)
        );
        let t = col(Kind::Time { fsp: 3 });
        assert_eq!(
            convert(&t, &My::Time(true, 1, 12, 0, 1, 500_000), Origin::Binlog).unwrap(),
            Value::Text("-36:00:01.500".into())
        );
        // `-838:59:59.99` as mysql_common 0.37 hands it over (see
        // `time2_repaired`): packed, shifted by 2^32 x 10 000, split.
        let t2 = col(Kind::Time { fsp: 2 });
        let hms: i64 = (838 << 12) | (59 << 6) | 59;
        let slipped = -(hms << 24) - 990_000 + (1i64 << 32) * 10_000;
        let (neg, abs) = (slipped < 0, slipped.abs());
        let (ih, us) = (abs >> 24, (abs % (1 << 24)) as u32);
        let hours = ((ih >> 12) as u32) % 1024;
        let wrong = My::Time(
            neg,
            hours / 24,
            (hours % 24) as u8,
            ((ih >> 6) % 64) as u8,
            (ih % 64) as u8,
            us,
        );
        assert_eq!(
            convert(&t2, &wrong, Origin::Binlog).unwrap(),
            Value::Text("-838:59:59.99".into())
        );
        assert_eq!(
            convert(&t2, &My::Time(false, 1, 2, 3, 4, 500_000), Origin::Binlog).unwrap(),
            Value::Text("26:03:04.50".into())
        );
        assert_eq!(
            convert(&t2, &My::Time(true, 0, 2, 3, 4, 0), Origin::Binlog).unwrap(),
            Value::Text("-02:03:04.00".into())
        );
        let med = col(Kind::Int {
            bytes: 3,
            unsigned: false,
        });
        assert_eq!(
            convert(&med, &My::Int(8_388_608), Origin::Binlog).unwrap(),
            Value::Int(-8_388_608)
        );
        let y = col(Kind::Year);
        assert_eq!(
            convert(&y, &My::Bytes(b"1900".to_vec()), Origin::Binlog).unwrap(),
            Value::Int(0)
        );
        assert_eq!(
            convert(&y, &My::Int(2024), Origin::Snapshot).unwrap(),
            Value::Int(2024)
        );
    }

    #[test]
    fn text_is_decoded_from_the_columns_charset_and_bad_bytes_are_errors() {
        let c = col(Kind::Text {
            encoding: encoding_rs::WINDOWS_1252,
        });
        assert_eq!(
            convert(&c, &My::Bytes(b"caf\xe9".to_vec()), Origin::Binlog).unwrap(),
            Value::Text("café".into())
        );
        assert_eq!(
            convert(&c, &My::Bytes("café".as_bytes().to_vec()), Origin::Snapshot).unwrap(),
            Value::Text("café".into())
        );
        let u = col(Kind::Text {
            encoding: encoding_rs::UTF_8,
        });
        assert!(matches!(
            convert(&u, &My::Bytes(b"caf\xe9".to_vec()), Origin::Binlog),
            Err(Bad::Invalid(_))
        ));
    }

    #[test]
    fn floats_by_their_shortest_form_and_binary_padding() {
        let f = col(Kind::Float);
        assert_eq!(
            convert(&f, &My::Float(1.1), Origin::Binlog).unwrap(),
            Value::Float(1.1)
        );
        let b = col(Kind::Binary { pad_to: Some(4) });
        assert_eq!(
            convert(&b, &My::Bytes(b"ab".to_vec()), Origin::Binlog).unwrap(),
            Value::Bytes(b"ab\0\0".to_vec().into())
        );
        let j = col(Kind::Json { binary: true });
        assert_eq!(
            convert(
                &j,
                &My::Bytes(br#"{"a": [1, 2]}"#.to_vec()),
                Origin::Snapshot
            )
            .unwrap(),
            Value::Json(r#"{"a":[1,2]}"#.into())
        );
    }
}
