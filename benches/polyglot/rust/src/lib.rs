//! The polyglot bench's cleansing plugin, in Rust: every field of a legacy
//! CRM row read, cleansed and written back, by the rules of ../../README.md
//! (the same as the Python and JavaScript plugins beside it).

use regex::Regex;
use sluice_sdk::{Config, InitError, Outcome, Record, Transform, Value};

const FIELDS: [&str; 10] = [
    "CUST_NO",
    "FIRST_NAME",
    "LAST_NAME",
    "E_MAIL",
    "PHONE",
    "SIGNUP_DT",
    "BALANCE",
    "COUNTRY",
    "STATUS",
    "NOTES",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// The plugin: its compiled patterns.
pub struct Cleanse {
    id: Regex,
    email: Regex,
    country: Regex,
    money: Regex,
    dmy_slash: Regex,
    dmy_dot: Regex,
    iso: Regex,
    mon: Regex,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_null(v: &str) -> bool {
    matches!(v, "" | "NULL" | "null" | "N/A" | "-")
}

/// Trimmed, inner whitespace runs collapsed into one space.
fn squeeze(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for w in v.split(is_space).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// Title case: the letter at the start and after a space, `-` or `'` upper
/// case, the others lower case; None for a null token.
fn name(v: &str) -> Option<String> {
    let v = squeeze(v);
    if is_null(&v) {
        return None;
    }
    let mut out = String::with_capacity(v.len());
    let mut start = true;
    for c in v.to_lowercase().chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = matches!(c, ' ' | '-' | '\'');
    }
    Some(out)
}

fn num(s: &str) -> u32 {
    s.parse().unwrap_or(0)
}

impl Cleanse {
    /// `YYYY-MM-DD` from four spellings; None when it is not a date.
    fn date(&self, v: &str) -> Option<String> {
        let (y, m, d) = if let Some(c) = self.dmy_slash.captures(v).or(self.dmy_dot.captures(v)) {
            (num(&c[3]), num(&c[2]), num(&c[1]))
        } else if let Some(c) = self.iso.captures(v) {
            (num(&c[1]), num(&c[2]), num(&c[3]))
        } else {
            let c = self.mon.captures(v)?;
            let m = MONTHS.iter().position(|m| *m == &c[1])? as u32 + 1;
            (num(&c[3]), m, num(&c[2]))
        };
        if !(1..=12).contains(&m) || d < 1 {
            return None;
        }
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let last = if m == 2 && leap {
            29
        } else {
            DAYS[m as usize - 1]
        };
        (d <= last).then(|| format!("{y:04}-{m:02}-{d:02}"))
    }

    /// Whole cents from `1.234,56`, `EUR 1.234,56`, `1.234,56 €`,
    /// `-1.234,56 €` or `(1.234,56)`; None when it is not an amount.
    fn money(&self, v: &str) -> Option<i64> {
        let (negative, v) =
            if let Some(inner) = v.strip_prefix('(').and_then(|v| v.strip_suffix(')')) {
                (true, inner)
            } else if let Some(rest) = v.strip_prefix('-') {
                (true, rest)
            } else {
                (false, v)
            };
        let v = v
            .strip_prefix("EUR ")
            .or_else(|| v.strip_suffix(" \u{20ac}"))
            .unwrap_or(v);
        let c = self.money.captures(v)?;
        let units: i64 = c[1].replace('.', "").parse().ok()?;
        let cents = units * 100 + c[2].parse::<i64>().ok()?;
        Some(if negative { -cents } else { cents })
    }
}

fn opt(v: Option<String>) -> Value<'static> {
    v.map_or(Value::Null, Value::from)
}

impl Transform for Cleanse {
    fn init(_config: Config) -> Result<Self, InitError> {
        let re = |p: &str| Regex::new(p).map_err(|e| InitError::Other(e.to_string()));
        Ok(Cleanse {
            id: re("^[0-9]{1,15}$")?,
            email: re(r"^[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+$")?,
            country: re("^[A-Z]{2}$")?,
            money: re(r"^([0-9]{1,3}(?:\.[0-9]{3})*),([0-9]{2})$")?,
            dmy_slash: re("^([0-9]{2})/([0-9]{2})/([0-9]{4})$")?,
            dmy_dot: re(r"^([0-9]{2})\.([0-9]{2})\.([0-9]{4})$")?,
            iso: re("^([0-9]{4})-([0-9]{2})-([0-9]{2})$")?,
            mon: re("^([A-Z][a-z]{2}) ([0-9]{2}) ([0-9]{4})$")?,
        })
    }

    fn process<'a>(&mut self, r: &mut Record<'a>) -> Outcome<'a> {
        let f: [&str; 10] = FIELDS.map(|n| r.get_str(n).unwrap_or(""));
        let cust = f[0].trim_matches(is_space);
        if is_null(cust) {
            return Outcome::reject_field(
                "required",
                "CUST_NO",
                "CUST_NO fails the `required` rule",
            );
        }
        if !self.id.is_match(cust) {
            return Outcome::reject_field(
                "invalid_id",
                "CUST_NO",
                "CUST_NO fails the `invalid_id` rule",
            );
        }
        let Ok(cust) = cust.parse::<i64>() else {
            return Outcome::reject_field(
                "invalid_id",
                "CUST_NO",
                "CUST_NO fails the `invalid_id` rule",
            );
        };
        let first = name(f[1]);
        let Some(last) = name(f[2]) else {
            return Outcome::reject_field(
                "required",
                "LAST_NAME",
                "LAST_NAME fails the `required` rule",
            );
        };
        let email = f[3].trim_matches(is_space).to_lowercase();
        if is_null(&email) {
            return Outcome::reject_field("required", "E_MAIL", "E_MAIL fails the `required` rule");
        }
        if !self.email.is_match(&email) {
            return Outcome::reject_field(
                "invalid_email",
                "E_MAIL",
                "E_MAIL fails the `invalid_email` rule",
            );
        }
        let phone: String = f[4].chars().filter(char::is_ascii_digit).collect();
        let phone = (phone.len() >= 7).then_some(phone);
        let signup = f[5].trim_matches(is_space);
        let signup = if is_null(signup) {
            None
        } else {
            match self.date(signup) {
                Some(d) => Some(d),
                None => {
                    return Outcome::reject_field(
                        "invalid_date",
                        "SIGNUP_DT",
                        "SIGNUP_DT fails the `invalid_date` rule",
                    );
                }
            }
        };
        let balance = f[6].trim_matches(is_space);
        let balance = if is_null(balance) {
            Value::Null
        } else {
            match self.money(balance) {
                Some(c) => Value::Int(c),
                None => {
                    return Outcome::reject_field(
                        "invalid_money",
                        "BALANCE",
                        "BALANCE fails the `invalid_money` rule",
                    );
                }
            }
        };
        let country = f[7].trim_matches(is_space).to_uppercase();
        let country = if is_null(&country) {
            None
        } else if self.country.is_match(&country) {
            Some(country)
        } else {
            return Outcome::reject_field(
                "invalid_country",
                "COUNTRY",
                "COUNTRY fails the `invalid_country` rule",
            );
        };
        let status = f[8].trim_matches(is_space).to_lowercase();
        let status = (!is_null(&status)).then_some(status);
        let notes = squeeze(f[9]);
        let notes = (!is_null(&notes)).then_some(notes);
        let values = [
            Value::Int(cust),
            opt(first),
            Value::from(last),
            Value::from(email),
            opt(phone),
            opt(signup),
            balance,
            opt(country),
            opt(status),
            opt(notes),
        ];
        for (n, v) in FIELDS.iter().zip(values) {
            r.set(*n, v);
        }
        Outcome::Keep
    }
}

#[cfg(target_arch = "wasm32")]
sluice_sdk::export!(Cleanse);
