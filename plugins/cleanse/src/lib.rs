//! `cleanse`: repair text the way legacy exports need: trim, collapse
//! whitespace, change case, turn null spellings into real nulls, parse dates
//! in listed formats into ISO-8601, and money strings into integer minor units.
//!
//! Global settings apply to every text field; `fields.NAME` settings override
//! them per field and add `case`, `date_formats` and `money`.

mod money;

use std::collections::BTreeMap;

use std::borrow::Cow;

use chrono::format::{Item, Parsed, StrftimeItems};
use serde::Deserialize;
use sluice_sdk::{Config, InitError, Outcome, Record, Transform, Value};

pub use money::{MoneyRule, parse_money};

/// The cleanse plugin's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleanseConfig {
    /// Trim leading and trailing whitespace of every text field (default true).
    pub trim: bool,
    /// Replace runs of whitespace inside text by one space (default false).
    pub collapse_whitespace: bool,
    /// Text values (after trimming) that mean "no value" and become null,
    /// compared ignoring ASCII case: for example `["", "NULL", "N/A", "-"]`.
    pub null_tokens: Vec<String>,
    /// Per-field rules.
    pub fields: BTreeMap<String, FieldRule>,
}

impl Default for CleanseConfig {
    fn default() -> Self {
        CleanseConfig {
            trim: true,
            collapse_whitespace: false,
            null_tokens: Vec::new(),
            fields: BTreeMap::new(),
        }
    }
}

/// Rules for one field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldRule {
    /// Overrides the global `trim`.
    pub trim: Option<bool>,
    /// Overrides the global `collapse_whitespace`.
    pub collapse_whitespace: Option<bool>,
    /// Overrides the global `null_tokens`.
    pub null_tokens: Option<Vec<String>>,
    /// Change the case of the text.
    pub case: Option<Case>,
    /// Parse the text as a date (or date-time) in one of these chrono
    /// formats, tried in order, and write it as ISO-8601
    /// (`2024-03-01`, `2024-03-01T13:45:00`, or RFC 3339 with an offset).
    pub date_formats: Vec<String>,
    /// Parse the text as money into integer minor units.
    pub money: Option<MoneyRule>,
    /// What to do when a date or money value does not parse (default reject).
    pub on_error: OnError,
}

/// A case change.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Case {
    /// all lowercase
    Lower,
    /// ALL UPPERCASE
    Upper,
    /// First Letter Of Each Word Uppercase
    Title,
}

/// What to do with a value that does not parse.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Reject the record (it goes to the dead-letter sink).
    #[default]
    Reject,
    /// Make the field null and keep the record.
    Null,
    /// Keep the value as it was.
    Keep,
}

/// A date format, parsed once at init.
#[derive(Debug)]
pub struct DateFormat {
    text: String,
    items: Vec<Item<'static>>,
    /// For a format of zero-padded `%d`, `%m`, `%Y` and literal
    /// punctuation only (`%d/%m/%Y`, `%Y-%m-%d`, `%d.%m.%Y`...): its parts,
    /// to read a value of exactly that shape without chrono's general
    /// parser.
    digits: Option<Vec<DatePart>>,
}

/// A part of an all-numeric date format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DatePart {
    /// `%d`: two digits.
    Day,
    /// `%m`: two digits.
    Month,
    /// `%Y`: four digits.
    Year,
    /// A literal ASCII punctuation byte.
    Literal(u8),
}

impl DatePart {
    fn width(self) -> usize {
        match self {
            DatePart::Day | DatePart::Month => 2,
            DatePart::Year => 4,
            DatePart::Literal(_) => 1,
        }
    }
}

/// The parts of `items` if they are an all-numeric date format with each
/// of day, month and year exactly once.
fn numeric_date(items: &[Item<'_>]) -> Option<Vec<DatePart>> {
    use chrono::format::{Numeric, Pad};
    let mut parts = Vec::new();
    for item in items {
        match item {
            Item::Numeric(Numeric::Day, Pad::Zero) => parts.push(DatePart::Day),
            Item::Numeric(Numeric::Month, Pad::Zero) => parts.push(DatePart::Month),
            Item::Numeric(Numeric::Year, Pad::Zero) => parts.push(DatePart::Year),
            Item::Literal(l) => parts.extend(literal_parts(l)?),
            Item::OwnedLiteral(l) => parts.extend(literal_parts(l)?),
            _ => return None,
        }
    }
    let once = |p: DatePart| parts.iter().filter(|&&q| q == p).count() == 1;
    (once(DatePart::Day) && once(DatePart::Month) && once(DatePart::Year)).then_some(parts)
}

fn literal_parts(l: &str) -> Option<Vec<DatePart>> {
    l.bytes()
        .map(|b| b.is_ascii_punctuation().then_some(DatePart::Literal(b)))
        .collect()
}

impl DateFormat {
    /// Parses a chrono format string; `None` if it is invalid.
    pub fn new(text: &str) -> Option<Self> {
        let items = StrftimeItems::new(text).parse_to_owned().ok()?;
        let digits = numeric_date(&items);
        Some(DateFormat {
            text: text.to_string(),
            items,
            digits,
        })
    }

    /// A value of exactly the shape of an all-numeric format: `Some(date)`
    /// (`None` inside when it is not a calendar date); `None` when the value
    /// has another shape, which chrono's parser then reads.
    fn read_digits(&self, s: &str) -> Option<Option<chrono::NaiveDate>> {
        let parts = self.digits.as_ref()?;
        let b = s.as_bytes();
        if b.len() != parts.iter().map(|p| p.width()).sum::<usize>() {
            return None;
        }
        let (mut at, mut day, mut month, mut year) = (0, 0u32, 0u32, 0i32);
        for &p in parts {
            let field = &b[at..at + p.width()];
            at += p.width();
            if let DatePart::Literal(l) = p {
                if field[0] != l {
                    return None;
                }
                continue;
            }
            if !field.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n = field.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
            match p {
                DatePart::Day => day = n,
                DatePart::Month => month = n,
                _ => year = n as i32,
            }
        }
        Some(chrono::NaiveDate::from_ymd_opt(year, month, day))
    }
}

/// Resolved rules for one field.
#[derive(Debug)]
struct Resolved {
    trim: bool,
    collapse: bool,
    null_tokens: Vec<String>,
    case: Option<Case>,
    date_formats: Vec<DateFormat>,
    money: Option<MoneyRule>,
    on_error: OnError,
}

/// The cleanse plugin.
#[derive(Debug)]
pub struct Cleanse {
    default: Resolved,
    fields: Vec<(String, Resolved)>,
}

fn lower_tokens(tokens: &[String]) -> Vec<String> {
    tokens.iter().map(|t| t.trim().to_lowercase()).collect()
}

fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

/// True if `s` is already as `title_case` would write it.
fn is_title_case(s: &str) -> bool {
    let mut start = true;
    for c in s.chars() {
        if c.is_alphanumeric() {
            let ok = if start {
                !c.is_lowercase()
            } else {
                !c.is_uppercase()
            };
            if !ok {
                return false;
            }
            start = false;
        } else {
            start = c.is_whitespace() || c == '-';
        }
    }
    true
}

fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if c.is_alphanumeric() {
            if start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            start = false;
        } else {
            out.push(c);
            start = c.is_whitespace() || c == '-';
        }
    }
    out
}

/// Parses `s` with the first matching format and returns its ISO-8601 form:
/// RFC 3339 when the format has an offset, `YYYY-MM-DDTHH:MM:SS` when it
/// has a time, `YYYY-MM-DD` otherwise.
pub fn parse_date(s: &str, formats: &[DateFormat]) -> Option<String> {
    for f in formats {
        match f.read_digits(s) {
            Some(Some(d)) => {
                use chrono::Datelike;
                return Some(format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()));
            }
            // The shape of this format but not a calendar date: chrono
            // would not read it either.
            Some(None) => continue,
            None => {}
        }
        let mut p = Parsed::new();
        if chrono::format::parse(&mut p, s, f.items.iter()).is_err() {
            continue;
        }
        if let Ok(dt) = p.to_datetime() {
            return Some(dt.to_rfc3339());
        }
        if let Ok(dt) = p.to_naive_datetime_with_offset(0) {
            return Some(dt.format("%Y-%m-%dT%H:%M:%S").to_string());
        }
        if let Ok(d) = p.to_naive_date() {
            return Some(d.format("%Y-%m-%d").to_string());
        }
    }
    None
}

fn needs_collapse(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(2)
        .any(|w| w[0].is_ascii_whitespace() && w[1].is_ascii_whitespace())
        || s.chars().any(|c| c.is_whitespace() && c != ' ')
}

enum Step<'a> {
    Unchanged,
    Set(Value<'a>),
    Fail(&'static str, String),
}

impl Resolved {
    fn apply<'a>(&self, value: &Value<'a>) -> Step<'a> {
        let text: Cow<'a, str> = match value {
            Value::Text(Cow::Borrowed(t)) => Cow::Borrowed(*t),
            Value::Text(Cow::Owned(t)) => Cow::Owned(t.clone()),
            Value::Int(i) => {
                if let Some(m) = &self.money {
                    return match m.scale_int(*i) {
                        Some(v) => Step::Set(Value::Int(v)),
                        None => Step::Fail("invalid_money", format!("`{i}` overflows minor units")),
                    };
                }
                return Step::Unchanged;
            }
            Value::Float(f) => {
                if let Some(m) = &self.money {
                    return match m.scale_float(*f) {
                        Some(v) => Step::Set(Value::Int(v)),
                        None => Step::Fail("invalid_money", format!("`{f}` is not a money amount")),
                    };
                }
                return Step::Unchanged;
            }
            _ => return Step::Unchanged,
        };
        let mut changed = false;
        let mut cur = text;
        if self.trim {
            let trimmed_len = cur.trim().len();
            if trimmed_len != cur.len() {
                changed = true;
                cur = match cur {
                    Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
                    Cow::Owned(o) => Cow::Owned(o.trim().to_string()),
                };
            }
        }
        if self.collapse && needs_collapse(&cur) {
            changed = true;
            cur = Cow::Owned(collapse(&cur));
        }
        if !self.null_tokens.is_empty() {
            let probe = cur.trim();
            if self
                .null_tokens
                .iter()
                .any(|t| t.len() == probe.len() && t.eq_ignore_ascii_case(probe))
            {
                return Step::Set(Value::Null);
            }
        }
        if let Some(case) = self.case {
            let needed = match case {
                Case::Lower => cur.chars().any(char::is_uppercase),
                Case::Upper => cur.chars().any(char::is_lowercase),
                Case::Title => !is_title_case(&cur),
            };
            if needed {
                let c = match case {
                    Case::Lower => cur.to_lowercase(),
                    Case::Upper => cur.to_uppercase(),
                    Case::Title => title_case(&cur),
                };
                if c != *cur {
                    changed = true;
                    cur = Cow::Owned(c);
                }
            }
        }
        if !self.date_formats.is_empty() {
            return match parse_date(&cur, &self.date_formats) {
                Some(iso) => Step::Set(Value::Text(iso.into())),
                None => {
                    let list: Vec<&str> =
                        self.date_formats.iter().map(|f| f.text.as_str()).collect();
                    Step::Fail(
                        "invalid_date",
                        format!("`{cur}` matches none of the formats {list:?}"),
                    )
                }
            };
        }
        if let Some(m) = &self.money {
            return match parse_money(&cur, m) {
                Ok(v) => Step::Set(Value::Int(v)),
                Err(why) => Step::Fail("invalid_money", format!("`{cur}`: {why}")),
            };
        }
        if changed {
            Step::Set(Value::Text(cur))
        } else {
            Step::Unchanged
        }
    }
}

impl Transform for Cleanse {
    fn init(config: Config) -> Result<Self, InitError> {
        let config: CleanseConfig = config.parse()?;
        let default = Resolved {
            trim: config.trim,
            collapse: config.collapse_whitespace,
            null_tokens: lower_tokens(&config.null_tokens),
            case: None,
            date_formats: Vec::new(),
            money: None,
            on_error: OnError::Reject,
        };
        let mut fields = Vec::new();
        for (name, rule) in config.fields {
            if !rule.date_formats.is_empty() && rule.money.is_some() {
                return Err(InitError::InvalidConfig(format!(
                    "`fields.{name}`: `date_formats` and `money` cannot both be set"
                )));
            }
            let mut date_formats = Vec::new();
            for f in &rule.date_formats {
                date_formats.push(DateFormat::new(f).ok_or_else(|| {
                    InitError::InvalidConfig(format!(
                        "`fields.{name}.date_formats`: `{f}` is not a valid chrono format"
                    ))
                })?);
            }
            if let Some(m) = &rule.money {
                m.check()
                    .map_err(|e| InitError::InvalidConfig(format!("`fields.{name}.money`: {e}")))?;
            }
            fields.push((
                name,
                Resolved {
                    trim: rule.trim.unwrap_or(default.trim),
                    collapse: rule.collapse_whitespace.unwrap_or(default.collapse),
                    null_tokens: rule
                        .null_tokens
                        .as_deref()
                        .map(lower_tokens)
                        .unwrap_or_else(|| default.null_tokens.clone()),
                    case: rule.case,
                    date_formats,
                    money: rule.money,
                    on_error: rule.on_error,
                },
            ));
        }
        Ok(Cleanse { default, fields })
    }

    fn process<'a>(&mut self, record: &mut Record<'a>) -> Outcome<'a> {
        let mut changes: Vec<(usize, Value<'a>)> = Vec::new();
        for (i, (name, value)) in record.fields().enumerate() {
            let rule = self
                .fields
                .iter()
                .find(|(n, _)| n == name)
                .map_or(&self.default, |(_, r)| r);
            match rule.apply(value) {
                Step::Unchanged => {}
                Step::Set(v) => changes.push((i, v)),
                Step::Fail(code, message) => match rule.on_error {
                    OnError::Reject => {
                        return Outcome::reject_field(code, name.to_string(), message);
                    }
                    OnError::Null => changes.push((i, Value::Null)),
                    OnError::Keep => {}
                },
            }
        }
        if !changes.is_empty() {
            let fields = record.fields_mut();
            for (i, v) in changes {
                fields[i].1 = v;
            }
        }
        Outcome::Keep
    }
}

#[cfg(target_arch = "wasm32")]
sluice_sdk::export!(Cleanse);

#[cfg(test)]
mod tests;
