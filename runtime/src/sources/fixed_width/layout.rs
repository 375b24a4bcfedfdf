//! Record layouts of fixed-width files, and the values of their fields.
//!
//! A layout is one or more record types (`header`, `detail`, `trailer`), each
//! told by the text at a fixed place of the record (`when`), each with its
//! fields at fixed character positions. A field is text, an integer, a
//! decimal (with implied decimals: COBOL's `PIC S9(7)V99` is `length = 9,
//! scale = 2, sign = "overpunch"`) or a date.

use std::borrow::Cow;

use serde::Deserialize;
use sluice_codec::Value;

use crate::declared_types::DeclaredColumn;

/// One record type, as the pipeline (or layout) file gives it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordLayout {
    /// The type's name (`header`, `detail`, `trailer`).
    pub name: String,
    /// Which records are of this type; absent: every record no other type
    /// claims.
    pub when: Option<Discriminator>,
    /// The fields, in order.
    pub fields: Vec<FieldLayout>,
    /// The stream its records go to (default: the source's stream when one
    /// type is handed on, else `<stream>_<name>`).
    pub stream: Option<String>,
    /// Hand its records on (default true; header and trailer records are
    /// often only checked).
    #[serde(default = "yes")]
    pub emit: bool,
    /// Its records count the records before them: `{ field = "count", of =
    /// ["detail"] }`. The count is checked against the records of those
    /// types read since the previous such record (or the file's start).
    pub count: Option<CountCheck>,
}

fn yes() -> bool {
    true
}

/// Where a record says its type: the text at characters `start` (1-based)
/// to `start + length - 1` is one of `equals`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discriminator {
    /// First character (1-based).
    pub start: usize,
    /// Characters (default 1).
    #[serde(default = "one")]
    pub length: usize,
    /// The text (or texts) that mark the type.
    pub equals: OneOrMany,
}

fn one() -> usize {
    1
}

/// A text or a list of texts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One text.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// A record count to check.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountCheck {
    /// The integer field holding the count.
    pub field: String,
    /// The record types it counts.
    pub of: Vec<String>,
}

/// One field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldLayout {
    /// The field's name.
    pub name: String,
    /// First character (1-based); default: right after the previous field.
    pub start: Option<usize>,
    /// Characters.
    pub length: usize,
    /// `text` (default), `integer`, `decimal`, `date`.
    #[serde(default, rename = "type")]
    pub kind: FieldKind,
    /// Implied decimal places (`PIC 9(7)V99`: 2): the digits `0012345` are
    /// `123.45`. A number with its own decimal point keeps it.
    #[serde(default)]
    pub scale: u32,
    /// Where a number's sign is: `leading` (default: `-12`, `+12`, `12`),
    /// `trailing` (`12-`), `overpunch` (the last digit carries it, as
    /// COBOL's signed zoned decimals: `123{` is +1230, `123}` is -1230,
    /// `12J` is -121).
    #[serde(default)]
    pub sign: Sign,
    /// Spaces trimmed from text: `both` (default), `left`, `right`, `none`.
    /// Numbers and dates are always trimmed.
    #[serde(default)]
    pub trim: Trim,
    /// A date's format (chrono's `strftime` syntax; default `%Y%m%d`).
    pub format: Option<String>,
    /// Values (after trimming) that mean null, such as `00000000` for a
    /// date never set. An empty number or date is always null.
    #[serde(default)]
    pub null_if: Vec<String>,
}

/// A field's type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    /// Text.
    #[default]
    Text,
    /// A whole number (64-bit).
    Integer,
    /// An exact decimal (kept as its digits, declared `numeric`).
    Decimal,
    /// A calendar date (declared `date`).
    Date,
}

/// Where a number's sign is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sign {
    /// Before the digits, optional.
    #[default]
    Leading,
    /// After the digits, optional.
    Trailing,
    /// In the last digit (zoned decimal).
    Overpunch,
}

/// Which spaces are trimmed from text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trim {
    /// Both ends.
    #[default]
    Both,
    /// Leading spaces.
    Left,
    /// Trailing spaces.
    Right,
    /// None.
    None,
}

/// A checked field: 0-based character range.
#[derive(Debug, Clone)]
pub struct Field {
    /// The name.
    pub name: String,
    /// First character (0-based).
    pub start: usize,
    /// Characters.
    pub length: usize,
    /// The value's type (an integer with a scale is a decimal).
    pub kind: FieldKind,
    scale: u32,
    sign: Sign,
    trim: Trim,
    format: String,
    null_if: Vec<String>,
}

/// A checked record type.
#[derive(Debug, Clone)]
pub struct RecordType {
    /// The name.
    pub name: String,
    /// 0-based character range and the texts that mark it.
    pub when: Option<(usize, usize, Vec<String>)>,
    /// The fields.
    pub fields: Vec<Field>,
    /// Characters a record of this type has (the end of its last field).
    pub width: usize,
    /// The stream of its records.
    pub stream: String,
    /// Hand its records on.
    pub emit: bool,
    /// The count field's index, and the indexes of the types it counts.
    pub count: Option<(usize, Vec<usize>)>,
}

/// A whole layout, checked.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The record types, in the order they are tried.
    pub types: Vec<RecordType>,
    /// For each type: whether some type counts it.
    pub counted: Vec<bool>,
}

impl Layout {
    /// Checks `records` (record types) for the source's `stream`; `Err`
    /// says what is wrong and where.
    pub fn new(records: &[RecordLayout], stream: &str) -> Result<Layout, String> {
        if records.is_empty() {
            return Err(
                "the layout has no fields: give `fields = [...]` or `[[records]]` (in the pipeline file or in `layout`)".into(),
            );
        }
        let emitted = records.iter().filter(|r| r.emit).count();
        let mut types = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let at = format!("record type `{}`", r.name);
            if records[..i].iter().any(|o| o.name == r.name) {
                return Err(format!("{at} is given twice"));
            }
            if r.fields.is_empty() {
                return Err(format!("{at} has no fields"));
            }
            let when = match &r.when {
                None => {
                    if records[..i].iter().any(|o| o.when.is_none()) {
                        return Err(format!(
                            "{at} has no `when`, and neither has another type: only one type can take the records no other type claims"
                        ));
                    }
                    None
                }
                Some(d) => {
                    if d.start == 0 || d.length == 0 {
                        return Err(format!(
                            "{at}: `when` needs `start` (1-based) and `length` of at least 1"
                        ));
                    }
                    let values = match &d.equals {
                        OneOrMany::One(s) => vec![s.clone()],
                        OneOrMany::Many(v) => v.clone(),
                    };
                    if let Some(v) = values.iter().find(|v| v.chars().count() != d.length) {
                        return Err(format!(
                            "{at}: `when.equals` value {v:?} is not {} characters long",
                            d.length
                        ));
                    }
                    Some((d.start - 1, d.length, values))
                }
            };
            let mut fields: Vec<Field> = Vec::with_capacity(r.fields.len());
            let mut next = 0usize;
            for f in &r.fields {
                let at = format!("{at}, field `{}`", f.name);
                if fields.iter().any(|o| o.name == f.name) {
                    return Err(format!("{at} is given twice"));
                }
                let start = match f.start {
                    Some(0) => return Err(format!("{at}: `start` is 1-based")),
                    Some(s) => s - 1,
                    None => next,
                };
                if f.length == 0 {
                    return Err(format!("{at}: `length` must be at least 1"));
                }
                let kind = match (f.kind, f.scale) {
                    (FieldKind::Integer, s) if s > 0 => FieldKind::Decimal,
                    (FieldKind::Text | FieldKind::Date, s) if s > 0 => {
                        return Err(format!("{at}: `scale` is for numbers"));
                    }
                    (k, _) => k,
                };
                if f.format.is_some() && kind != FieldKind::Date {
                    return Err(format!("{at}: `format` is for dates"));
                }
                let format = f.format.clone().unwrap_or_else(|| "%Y%m%d".into());
                if kind == FieldKind::Date {
                    check_date_format(&format).map_err(|e| format!("{at}: {e}"))?;
                }
                next = start + f.length;
                fields.push(Field {
                    name: f.name.clone(),
                    start,
                    length: f.length,
                    kind,
                    scale: f.scale,
                    sign: f.sign,
                    trim: f.trim,
                    format,
                    null_if: f.null_if.clone(),
                });
            }
            let width = fields.iter().map(|f| f.start + f.length).max().unwrap_or(0);
            let width = match &when {
                Some((s, l, _)) => width.max(s + l),
                None => width,
            };
            let stream = r.stream.clone().unwrap_or_else(|| {
                if emitted <= 1 {
                    stream.to_string()
                } else {
                    format!("{stream}_{}", r.name)
                }
            });
            types.push(RecordType {
                name: r.name.clone(),
                when,
                fields,
                width,
                stream,
                emit: r.emit,
                count: None,
            });
        }
        let mut counted = vec![false; types.len()];
        for (i, r) in records.iter().enumerate() {
            let Some(c) = &r.count else { continue };
            let at = format!("record type `{}`, `count`", r.name);
            let Some(field) = types[i].fields.iter().position(|f| f.name == c.field) else {
                return Err(format!("{at}: no field `{}`", c.field));
            };
            if types[i].fields[field].kind != FieldKind::Integer {
                return Err(format!(
                    "{at}: field `{}` must be `type = \"integer\"`",
                    c.field
                ));
            }
            if c.of.is_empty() {
                return Err(format!("{at}: `of` names no record type"));
            }
            let mut of = Vec::new();
            for name in &c.of {
                let Some(j) = types.iter().position(|t| t.name == *name) else {
                    return Err(format!("{at}: no record type `{name}`"));
                };
                counted[j] = true;
                of.push(j);
            }
            types[i].count = Some((field, of));
        }
        Ok(Layout { types, counted })
    }

    /// The type of a record, or `None`.
    pub fn type_of(&self, line: &Line<'_>) -> Option<usize> {
        let mut fallback = None;
        for (i, t) in self.types.iter().enumerate() {
            match &t.when {
                None => fallback = Some(i),
                Some((start, length, values)) => {
                    let Some(text) = line.get(*start, *length) else {
                        continue;
                    };
                    if values.iter().any(|v| v == text) {
                        return Some(i);
                    }
                }
            }
        }
        fallback
    }

    /// The columns each emitted stream gets, typed.
    pub fn declared(&self) -> Vec<(String, Vec<DeclaredColumn>)> {
        self.types
            .iter()
            .filter(|t| t.emit)
            .map(|t| {
                let cols = t
                    .fields
                    .iter()
                    .map(|f| DeclaredColumn {
                        name: f.name.clone(),
                        sql_type: f.sql_type(),
                        source_type: None,
                    })
                    .collect();
                (t.stream.clone(), cols)
            })
            .collect()
    }
}

/// A record's text, addressed by character positions without copying:
/// an ASCII record by bytes, any other through the byte offset of each
/// character (a buffer reused from record to record).
pub struct Line<'a> {
    text: &'a str,
    /// Byte offset of each character, and the text's length last; empty
    /// for ASCII text.
    offsets: &'a [usize],
}

impl<'a> Line<'a> {
    /// `text`, with `offsets` filled when it is not ASCII.
    pub fn new(text: &'a str, offsets: &'a mut Vec<usize>) -> Line<'a> {
        offsets.clear();
        if !text.is_ascii() {
            offsets.extend(text.char_indices().map(|(i, _)| i));
            offsets.push(text.len());
        }
        Line { text, offsets }
    }

    /// Characters in the record.
    pub fn char_count(&self) -> usize {
        if self.offsets.is_empty() {
            self.text.len()
        } else {
            self.offsets.len() - 1
        }
    }

    fn byte(&self, char_at: usize) -> usize {
        if self.offsets.is_empty() {
            char_at
        } else {
            self.offsets[char_at]
        }
    }

    /// Characters `start..start + length` (0-based), if the record has them.
    pub fn get(&self, start: usize, length: usize) -> Option<&'a str> {
        if start + length > self.char_count() {
            return None;
        }
        Some(&self.text[self.byte(start)..self.byte(start + length)])
    }

    /// The characters from `start` on (empty past the end).
    pub fn rest(&self, start: usize) -> &'a str {
        if start >= self.char_count() {
            ""
        } else {
            &self.text[self.byte(start)..]
        }
    }
}

fn check_date_format(format: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(format).any(|i| matches!(i, Item::Error)) {
        return Err(format!("`format` {format:?} is not a valid date format"));
    }
    Ok(())
}

impl Field {
    /// The PostgreSQL type a sink creates the column with.
    pub fn sql_type(&self) -> String {
        match self.kind {
            FieldKind::Text => "text".into(),
            FieldKind::Integer => "bigint".into(),
            FieldKind::Decimal => {
                let digits = self.length.clamp(1, 1000);
                let scale = (self.scale as usize).min(digits);
                format!("numeric({digits},{scale})")
            }
            FieldKind::Date => "date".into(),
        }
    }

    /// The value of this field in `text` (its characters); `Err`: why not.
    pub fn value<'t>(&self, text: &'t str) -> Result<Value<'t>, String> {
        match self.kind {
            FieldKind::Text => {
                let t = match self.trim {
                    Trim::Both => text.trim_matches(blank),
                    Trim::Left => text.trim_start_matches(blank),
                    Trim::Right => text.trim_end_matches(blank),
                    Trim::None => text,
                };
                Ok(if self.null_if.iter().any(|n| n == t) {
                    Value::Null
                } else {
                    Value::Text(Cow::Borrowed(t))
                })
            }
            FieldKind::Integer | FieldKind::Decimal => {
                let t = text.trim_matches(blank);
                if t.is_empty() || self.null_if.iter().any(|n| n == t) {
                    return Ok(Value::Null);
                }
                let (negative, digits) = signed_digits(t, self.sign)?;
                if self.kind == FieldKind::Integer {
                    let n: i64 = digits
                        .parse::<i64>()
                        .map_err(|_| format!("{t:?} is beyond a 64-bit integer"))?;
                    return Ok(Value::Int(if negative { -n } else { n }));
                }
                Ok(Value::Text(Cow::Owned(decimal(
                    negative, &digits, self.scale,
                )?)))
            }
            FieldKind::Date => {
                let t = text.trim_matches(blank);
                if t.is_empty() || self.null_if.iter().any(|n| n == t) {
                    return Ok(Value::Null);
                }
                let d = chrono::NaiveDate::parse_from_str(t, &self.format)
                    .map_err(|e| format!("{t:?} is not a date as `{}` ({e})", self.format))?;
                Ok(Value::Text(Cow::Owned(d.format("%Y-%m-%d").to_string())))
            }
        }
    }
}

/// Padding: spaces, and the NUL bytes ("low values") of mainframe exports.
fn blank(c: char) -> bool {
    c == ' ' || c == '\0'
}

/// The sign and the digits (with a decimal point, if the text has one) of
/// a number written with its sign `sign`.
fn signed_digits(t: &str, sign: Sign) -> Result<(bool, Cow<'_, str>), String> {
    let (negative, body): (bool, Cow<'_, str>) = match sign {
        Sign::Leading => match t.as_bytes()[0] {
            b'-' => (true, t[1..].trim_start_matches(blank).into()),
            b'+' => (false, t[1..].trim_start_matches(blank).into()),
            _ => (false, t.into()),
        },
        Sign::Trailing => match t.as_bytes()[t.len() - 1] {
            b'-' => (true, t[..t.len() - 1].trim_end_matches(blank).into()),
            b'+' => (false, t[..t.len() - 1].trim_end_matches(blank).into()),
            _ => (false, t.into()),
        },
        Sign::Overpunch => {
            let Some(last) = t.chars().last() else {
                return Err("no digits".into());
            };
            let (negative, digit) = overpunch(last).ok_or_else(|| {
                format!("{t:?} does not end in a digit or a zoned sign ({{, A-I, }}, J-R)")
            })?;
            let mut body = t[..t.len() - last.len_utf8()].to_string();
            body.push(digit);
            (negative, body.into())
        }
    };
    let mut points = 0;
    for c in body.chars() {
        match c {
            '0'..='9' => {}
            '.' => points += 1,
            _ => return Err(format!("{t:?} is not a number")),
        }
    }
    if points > 1 || body.is_empty() || body == "." {
        return Err(format!("{t:?} is not a number"));
    }
    Ok((negative, body))
}

/// The digit and sign a zoned decimal's last character stands for.
fn overpunch(c: char) -> Option<(bool, char)> {
    Some(match c {
        '0'..='9' => (false, c),
        '{' => (false, '0'),
        'A'..='I' => (false, (b'1' + (c as u8 - b'A')) as char),
        '}' => (true, '0'),
        'J'..='R' => (true, (b'1' + (c as u8 - b'J')) as char),
        // The ASCII convention of some COBOL compilers for negative digits.
        'p'..='y' => (true, (b'0' + (c as u8 - b'p')) as char),
        _ => return None,
    })
}

/// `digits` (maybe with a point) as a decimal text with `scale` implied
/// places: `decimal(false, "0012345", 2)` is `123.45`.
fn decimal(negative: bool, digits: &str, scale: u32) -> Result<String, String> {
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i.to_string(), f.to_string()),
        None => {
            let scale = scale as usize;
            if digits.len() > scale {
                let (i, f) = digits.split_at(digits.len() - scale);
                (i.to_string(), f.to_string())
            } else {
                (String::new(), format!("{digits:0>scale$}"))
            }
        }
    };
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let zero = int == "0" && frac.chars().all(|c| c == '0');
    let mut out = String::with_capacity(int.len() + frac.len() + 2);
    if negative && !zero {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(&frac);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn field(kind: FieldKind, scale: u32, sign: Sign) -> Field {
        Field {
            name: "f".into(),
            start: 0,
            length: 9,
            kind: if kind == FieldKind::Integer && scale > 0 {
                FieldKind::Decimal
            } else {
                kind
            },
            scale,
            sign,
            trim: Trim::Both,
            format: "%Y%m%d".into(),
            null_if: vec!["00000000".into()],
        }
    }

    fn text(v: Value<'_>) -> String {
        match v {
            Value::Text(t) => t.into_owned(),
            Value::Int(i) => i.to_string(),
            Value::Null => "null".into(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn implied_decimals_signs_and_overpunch_give_exact_values() {
        let d = field(FieldKind::Decimal, 2, Sign::Leading);
        for (raw, want) in [
            ("001234567", "12345.67"),
            ("-00012345", "-123.45"),
            ("+00000005", "0.05"),
            ("        5", "0.05"),
            ("000000000", "0.00"),
            ("-00000000", "0.00"),
            ("  12.5   ", "12.5"),
            ("         ", "null"),
        ] {
            assert_eq!(text(d.value(raw).unwrap()), want, "{raw:?}");
        }
        let z = field(FieldKind::Integer, 2, Sign::Overpunch);
        for (raw, want) in [
            ("00012345{", "1234.50"),
            ("00012345}", "-1234.50"),
            ("0001234A", "123.41"),
            ("0001234R", "-123.49"),
            ("0001234p", "-123.40"),
            ("000123455", "1234.55"),
        ] {
            assert_eq!(text(z.value(raw).unwrap()), want, "{raw:?}");
        }
        let t = field(FieldKind::Integer, 0, Sign::Trailing);
        assert_eq!(text(t.value("   1234- ").unwrap()), "-1234");
        assert_eq!(text(t.value("1234+").unwrap()), "1234");
        let i = field(FieldKind::Integer, 0, Sign::Leading);
        assert_eq!(text(i.value("-000042").unwrap()), "-42");
        assert!(
            i.value("99999999999999999999")
                .unwrap_err()
                .contains("64-bit")
        );
        for bad in ["12A4", "1.2.3", "-", "1 2", "12-"] {
            assert!(i.value(bad).is_err(), "{bad:?}");
        }
        assert!(z.value("0001234X").unwrap_err().contains("zoned sign"));
    }

    #[test]
    fn dates_text_and_nulls() {
        let d = field(FieldKind::Date, 0, Sign::Leading);
        assert_eq!(text(d.value("20240229").unwrap()), "2024-02-29");
        assert_eq!(text(d.value("00000000").unwrap()), "null");
        assert!(d.value("20230229").unwrap_err().contains("not a date"));
        let mut t = field(FieldKind::Text, 0, Sign::Leading);
        assert_eq!(text(t.value("  Zürich  ").unwrap()), "Zürich");
        t.trim = Trim::Right;
        assert_eq!(text(t.value("  a\0\0").unwrap()), "  a");
        t.trim = Trim::None;
        assert_eq!(text(t.value(" a ").unwrap()), " a ");
    }

    fn layout(toml_text: &str) -> Result<Layout, String> {
        #[derive(Deserialize)]
        struct L {
            records: Vec<RecordLayout>,
        }
        let l: L = toml::from_str(toml_text).unwrap();
        Layout::new(&l.records, "accounts")
    }

    #[test]
    fn record_types_are_told_apart_and_layout_mistakes_are_named() {
        let l = layout(
            r#"
            [[records]]
            name = "header"
            when = { start = 1, equals = "H" }
            emit = false
            fields = [{ name = "kind", length = 1 }, { name = "date", length = 8, type = "date" }]
            [[records]]
            name = "detail"
            when = { start = 1, equals = ["D", "C"] }
            fields = [{ name = "kind", length = 1 }, { name = "id", length = 6, type = "integer" }, { name = "amount", start = 8, length = 9, type = "decimal", scale = 2, sign = "overpunch" }]
            [[records]]
            name = "trailer"
            when = { start = 1, equals = "T" }
            emit = false
            count = { field = "count", of = ["detail"] }
            fields = [{ name = "kind", length = 1 }, { name = "count", length = 7, type = "integer" }]
            "#,
        )
        .unwrap();
        let mut offsets = Vec::new();
        let mut type_of = |s: &str| l.type_of(&Line::new(s, &mut offsets));
        assert_eq!(type_of("H20240101"), Some(0));
        assert_eq!(type_of("C000001000012345"), Some(1));
        assert_eq!(type_of("X"), None);
        assert_eq!(type_of("ÿ"), None);
        let line = Line::new("Zoë Smith", &mut offsets);
        assert_eq!(
            (
                line.char_count(),
                line.get(2, 3),
                line.get(8, 2),
                line.rest(4)
            ),
            (9, Some("ë S"), None, "Smith")
        );
        assert_eq!(l.types[1].width, 16);
        assert_eq!(l.types[1].stream, "accounts");
        assert_eq!(l.types[1].fields[2].kind, FieldKind::Decimal);
        assert_eq!(l.counted, vec![false, true, false]);
        assert_eq!(l.types[2].count, Some((1, vec![1])));
        assert_eq!(
            l.declared(),
            vec![(
                "accounts".to_string(),
                vec![
                    DeclaredColumn {
                        name: "kind".into(),
                        sql_type: "text".into(),
                        source_type: None
                    },
                    DeclaredColumn {
                        name: "id".into(),
                        sql_type: "bigint".into(),
                        source_type: None
                    },
                    DeclaredColumn {
                        name: "amount".into(),
                        sql_type: "numeric(9,2)".into(),
                        source_type: None
                    },
                ]
            )]
        );
        for (bad, says) in [
            (
                r#"[[records]]
                name = "a"
                fields = [{ name = "x", length = 0 }]"#,
                "record type `a`, field `x`: `length` must be at least 1",
            ),
            (
                r#"[[records]]
                name = "a"
                fields = [{ name = "x", length = 2 }, { name = "x", length = 2 }]"#,
                "field `x` is given twice",
            ),
            (
                r#"[[records]]
                name = "a"
                fields = [{ name = "x", length = 2, type = "date", format = "%Q" }]"#,
                "not a valid date format",
            ),
            (
                r#"[[records]]
                name = "a"
                fields = [{ name = "x", length = 2 }]
                [[records]]
                name = "b"
                fields = [{ name = "y", length = 2 }]"#,
                "neither has another type",
            ),
            (
                r#"[[records]]
                name = "a"
                when = { start = 1, equals = "AB" }
                fields = [{ name = "x", length = 2 }]"#,
                "is not 1 characters long",
            ),
            (
                r#"[[records]]
                name = "t"
                count = { field = "n", of = ["d"] }
                fields = [{ name = "n", length = 2, type = "integer" }]"#,
                "no record type `d`",
            ),
            (
                r#"[[records]]
                name = "t"
                count = { field = "n", of = ["t"] }
                fields = [{ name = "n", length = 2 }]"#,
                "must be `type = \"integer\"`",
            ),
            (
                r#"[[records]]
                name = "a"
                fields = [{ name = "x", length = 2, scale = 2 }]"#,
                "`scale` is for numbers",
            ),
        ] {
            let e = layout(bad).unwrap_err();
            assert!(e.contains(says), "{e} should say {says}");
        }
    }
}
