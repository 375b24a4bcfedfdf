//! The end-to-end benchmark's two jobs written by hand, as a migration team
//! would without Sluice: plain Rust, `csv` + `rusqlite`, one thread, no
//! plugins. `cargo bench -p sluice-runtime --bench end_to_end` runs it beside
//! `sluice run` on the same export and checks that both wrote the same rows
//! and rejected the same records for the same reasons.
//!
//! - `demo`: `examples/legacy-crm/pipeline.toml` (drop inactive customers,
//!   rename, cast, trim, collapse spaces, null spellings, case, four date
//!   formats, European money, then required / int / min / email check /
//!   allowed countries / max length) into a SQLite upsert.
//! - `pattern`: the job of issue 13 (rename, cast, trim, null spellings,
//!   case, three date formats, money, then required fields and a regex on
//!   the email), deduplicated by the upsert.
//!
//! - `copy`: no transform at all, every column as text, upserted by
//!   `CUST_NO` (the CSV -> SQLite pass alone).
//!
//! With `--rejects FILE` it writes each record it does not write there, one
//! JSON line with the reason's code, the line number and the record as read
//! (what Sluice's dead-letter sink keeps, less the stage, message and
//! version): nothing is lost, as in Sluice.
//!
//! It prints one line: `written N dropped N rejected code=N,code=N`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Parser, ValueEnum};
use regex::Regex;
use rusqlite::types::Value;

#[derive(Parser)]
struct Cli {
    /// Which job.
    #[arg(long, value_enum)]
    job: Job,
    /// The export (Windows-1252, `;`-separated, with a header).
    #[arg(long)]
    input: PathBuf,
    /// The SQLite target (table `customers`).
    #[arg(long)]
    db: PathBuf,
    /// Where rejected records go (JSON lines); without it they are only
    /// counted.
    #[arg(long)]
    rejects: Option<PathBuf>,
}

/// One rejected record, as a JSON line of `--rejects`.
#[derive(serde::Serialize)]
struct RejectLine<'a> {
    code: &'a str,
    line: u64,
    record: Fields<'a>,
}

/// The record's fields by column name (a JSON object).
struct Fields<'a> {
    names: &'a [String],
    values: &'a [String],
}

impl serde::Serialize for Fields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.names.iter().zip(self.values))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Job {
    Demo,
    Pattern,
    Copy,
}

/// The pattern job's email rule.
pub const EMAIL_PATTERN: &str = r"^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$";

const COLUMNS: [&str; 11] = [
    "customer_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "signup_date",
    "balance_cents",
    "country",
    "status",
    "notes",
    "migrated_from",
];

/// The export's own columns (the copy job).
const RAW_COLUMNS: [&str; 10] = [
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

const COUNTRIES: [&str; 8] = ["FR", "DE", "ES", "IT", "GB", "NL", "BE", "PT"];

/// Why a record was not written.
type Reject = &'static str;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let columns: &[&str] = match cli.job {
        Job::Demo => &COLUMNS,
        Job::Pattern => &COLUMNS[..10],
        Job::Copy => &RAW_COLUMNS,
    };
    let formats: &[&str] = match cli.job {
        Job::Demo => &["%d/%m/%Y", "%Y-%m-%d", "%d.%m.%Y", "%b %d %Y"],
        Job::Pattern | Job::Copy => &["%d/%m/%Y", "%Y-%m-%d", "%d.%m.%Y"],
    };
    let pattern = Regex::new(EMAIL_PATTERN)?;

    let mut db = rusqlite::Connection::open(&cli.db)
        .with_context(|| format!("cannot open {}", cli.db.display()))?;
    db.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
    let types = |c: &str| match (cli.job, c) {
        (Job::Copy, _) => "TEXT",
        (_, "customer_id" | "balance_cents") => "INTEGER",
        (_, "notes") => "",
        _ => "TEXT",
    };
    let defs: Vec<String> = columns
        .iter()
        .map(|c| format!("\"{c}\" {}", types(c)).trim_end().to_string())
        .collect();
    db.execute_batch(&format!(
        "DROP TABLE IF EXISTS customers; CREATE TABLE customers ({}, PRIMARY KEY (\"{}\"));",
        defs.join(", "),
        columns[0]
    ))?;
    let names: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    let sets: Vec<String> = names[1..]
        .iter()
        .map(|n| format!("{n} = excluded.{n}"))
        .collect();
    let sql = format!(
        "INSERT INTO customers ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
        names.join(", "),
        marks.join(", "),
        names[0],
        sets.join(", ")
    );

    let tx = db.transaction()?;
    let mut insert = tx.prepare(&sql)?;
    let file = std::fs::File::open(&cli.input)
        .with_context(|| format!("cannot read {}", cli.input.display()))?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .flexible(true)
        .from_reader(LineCounting {
            inner: file,
            at: 0,
            newlines: std::collections::VecDeque::new(),
            counted: 0,
        });
    let names: Vec<String> = reader.byte_headers()?.iter().map(decode).collect();
    let width = names.len();
    let mut rejects = match &cli.rejects {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => None,
    };
    let mut reject = |code: &str, line: u64, values: &[String]| -> anyhow::Result<()> {
        if let Some(out) = rejects.as_mut() {
            let record = Fields {
                names: &names,
                values,
            };
            serde_json::to_writer(&mut *out, &RejectLine { code, line, record })?;
            out.write_all(b"\n")?;
        }
        Ok(())
    };
    let (mut written, mut dropped) = (0u64, 0u64);
    let mut rejected: BTreeMap<Reject, u64> = BTreeMap::new();
    let mut row = csv::ByteRecord::new();
    let mut text: Vec<String> = Vec::with_capacity(width);
    while reader.read_byte_record(&mut row)? {
        let end = reader.position().byte();
        let line = reader.get_mut().line_of(&row, end);
        if row.len() != width {
            *rejected.entry("malformed").or_default() += 1;
            text.clear();
            text.extend(row.iter().map(decode));
            reject("malformed", line, &text)?;
            continue;
        }
        if cli.job == Job::Copy {
            insert.execute(rusqlite::params_from_iter(row.iter().map(decode)))?;
            written += 1;
            continue;
        }
        text.clear();
        text.extend(row.iter().map(decode));
        match migrate(cli.job, &text, formats, &pattern) {
            Ok(None) => dropped += 1,
            Ok(Some(values)) => {
                insert.execute(rusqlite::params_from_iter(&values[..columns.len()]))?;
                written += 1;
            }
            Err(code) => {
                *rejected.entry(code).or_default() += 1;
                reject(code, line, &text)?;
            }
        }
    }
    drop(insert);
    tx.commit()?;
    if let Some(mut out) = rejects {
        out.flush()?;
    }
    let counts: Vec<String> = rejected.iter().map(|(c, n)| format!("{c}={n}")).collect();
    println!(
        "written {written} dropped {dropped} rejected {}",
        counts.join(",")
    );
    Ok(())
}

/// The export, counting its line breaks: the csv crate puts a row that
/// follows a `\r\n` on the line before it (BurntSushi/rust-csv#395).
struct LineCounting<R> {
    inner: R,
    at: u64,
    /// Offsets of the `\n` read and not counted yet.
    newlines: std::collections::VecDeque<u64>,
    counted: u64,
}

impl<R: std::io::Read> std::io::Read for LineCounting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, b) in buf[..n].iter().enumerate() {
            if *b == b'\n' {
                self.newlines.push_back(self.at + i as u64);
            }
        }
        self.at += n as u64;
        Ok(n)
    }
}

impl<R> LineCounting<R> {
    /// The line a row starts on, `end` being the reader's position after
    /// it (one byte past its last byte): the line of its last byte, less
    /// the line breaks inside its quoted fields.
    fn line_of(&mut self, row: &csv::ByteRecord, end: u64) -> u64 {
        while self
            .newlines
            .front()
            .is_some_and(|&at| at < end.saturating_sub(1))
        {
            self.newlines.pop_front();
            self.counted += 1;
        }
        let inside = row.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
        1 + self.counted - inside
    }
}

/// A field of the export (Windows-1252) as text.
fn decode(field: &[u8]) -> String {
    encoding_rs::WINDOWS_1252
        .decode_without_bom_handling(field)
        .0
        .into_owned()
}

/// One row of the export (CUST_NO;FIRST_NAME;LAST_NAME;E_MAIL;PHONE;
/// SIGNUP_DT;BALANCE;COUNTRY;STATUS;NOTES): the row to write, `None` when
/// it is dropped, or why it is rejected.
fn migrate(
    job: Job,
    f: &[String],
    formats: &[&str],
    pattern: &Regex,
) -> Result<Option<[Value; 11]>, Reject> {
    if job == Job::Demo && f[8].eq_ignore_ascii_case("inactive") {
        return Ok(None);
    }
    let id: i64 = f[0].trim().parse().map_err(|_| "cast_failed")?;
    let collapse = job == Job::Demo;
    let first = clean(&f[1], collapse).map(|s| title_case(&s));
    let last = clean(&f[2], collapse).map(|s| title_case(&s));
    let email = clean(&f[3], collapse).map(|s| s.to_lowercase());
    let phone = clean(&f[4], collapse);
    let signup = match clean(&f[5], collapse) {
        None => None,
        Some(s) => Some(date(&s, formats).ok_or("invalid_date")?),
    };
    let balance = match clean(&f[6], collapse) {
        None => None,
        Some(s) => Some(money(&s).ok_or("invalid_money")?),
    };
    let country = clean(&f[7], collapse).map(|s| s.to_uppercase());
    let status = clean(&f[8], collapse).map(|s| s.to_lowercase());
    let notes = clean(&f[9], collapse);
    match job {
        Job::Demo => {
            // In field-name order, the first broken rule rejects.
            match &country {
                None => return Err("required"),
                Some(c) if !COUNTRIES.contains(&c.as_str()) => return Err("not_allowed"),
                Some(_) => {}
            }
            if id < 1 {
                return Err("out_of_range");
            }
            match &email {
                None => return Err("required"),
                Some(e) if !is_email(e) => return Err("invalid_email"),
                Some(_) => {}
            }
            match &last {
                None => return Err("required"),
                Some(l) if l.chars().count() > 60 => return Err("too_long"),
                Some(_) => {}
            }
        }
        Job::Pattern | Job::Copy => match &email {
            None => return Err("required"),
            Some(e) if !pattern.is_match(e) => return Err("pattern_mismatch"),
            Some(_) if last.is_none() => return Err("required"),
            Some(_) => {}
        },
    }
    let text = |v: Option<String>| v.map_or(Value::Null, Value::Text);
    Ok(Some([
        Value::Integer(id),
        text(first),
        text(last),
        text(email),
        text(phone),
        text(signup),
        balance.map_or(Value::Null, Value::Integer),
        text(country),
        text(status),
        text(notes),
        Value::Text("legacy-crm".into()),
    ]))
}

/// Trimmed, spaces collapsed (demo job), `None` for a null spelling.
fn clean(s: &str, collapse: bool) -> Option<String> {
    let t = s.trim();
    let t = if collapse {
        let mut out = String::with_capacity(t.len());
        let mut space = false;
        for c in t.chars() {
            if c.is_whitespace() {
                if !space {
                    out.push(' ');
                }
                space = true;
            } else {
                out.push(c);
                space = false;
            }
        }
        out
    } else {
        t.to_string()
    };
    let null = ["", "null", "n/a", "-"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(&t));
    (!null).then_some(t)
}

/// First letter of each word (after a space or `-`) upper case.
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

fn date(s: &str, formats: &[&str]) -> Option<String> {
    formats
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
        .map(|d| d.format("%Y-%m-%d").to_string())
}

/// European money (`1.234,56 €`, `(12,00)`, `EUR 3,50`, `-7,10 €`) in cents.
fn money(s: &str) -> Option<i64> {
    let mut t = s.trim();
    let mut negative = false;
    if let Some(inner) = t.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
        negative = true;
        t = inner;
    }
    let (mut units, mut cents, mut frac, mut digits) = (0i64, 0i64, None::<u32>, false);
    for c in t.chars() {
        match c {
            '0'..='9' => {
                digits = true;
                let d = i64::from(c as u8 - b'0');
                match frac.as_mut() {
                    None => units = units.checked_mul(10)?.checked_add(d)?,
                    Some(n) => {
                        *n += 1;
                        if *n > 2 {
                            return None;
                        }
                        cents = cents * 10 + d;
                    }
                }
            }
            ',' if frac.is_none() => frac = Some(0),
            // A second decimal comma, or a thousands separator after it.
            ',' | '.' | '\'' | '_' if frac.is_some() => return None,
            '.' | '\'' | '_' | '+' => {}
            '-' | '\u{2212}' if !negative => negative = true,
            c if c.is_whitespace()
                || c.is_alphabetic()
                || matches!(c, '$' | '€' | '£' | '¥' | '₹' | '¢' | '₩' | '₽' | '₺') => {
            }
            _ => return None,
        }
    }
    if !digits {
        return None;
    }
    if frac == Some(1) {
        cents *= 10;
    }
    let v = units.checked_mul(100)?.checked_add(cents)?;
    Some(if negative { -v } else { v })
}

/// An email address in the dot-atom form most systems accept.
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let atom = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&c);
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let labels: Vec<&str> = domain.split('.').collect();
    !local.is_empty()
        && local.len() <= 64
        && domain.len() <= 253
        && local
            .split('.')
            .all(|a| !a.is_empty() && a.bytes().all(atom))
        && labels.len() >= 2
        && labels.iter().all(|l| label(l))
        && labels[labels.len() - 1].len() >= 2
        && labels[labels.len() - 1]
            .bytes()
            .all(|c| c.is_ascii_alphabetic())
}
