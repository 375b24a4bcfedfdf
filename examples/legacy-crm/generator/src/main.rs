//! `legacy-crm generate`: writes a deterministic, messy legacy CRM export
//! (Windows-1252, `;`-separated, European money and several date formats,
//! mixed case, null spellings, invalid emails, a few broken rows).
//!
//! `legacy-crm report`: shows what the migration wrote and rejected.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the export.
    Generate {
        /// Number of data rows.
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Seed of the generator (the same seed gives the same file).
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Show sample rows of the target database and the rejects by reason.
    Report {
        /// The SQLite target.
        #[arg(long)]
        db: PathBuf,
        /// The dead-letter JSONL file.
        #[arg(long)]
        rejects: PathBuf,
    },
}

const FIRST: &[&str] = &[
    "josé",
    "ANNA",
    "  Jean-Luc",
    "müller",
    "Zoë",
    "björn ",
    "françois",
    "Ines",
    "o'brien",
    "LUCÍA",
    "søren",
    "Ana maria",
];
const LAST: &[&str] = &[
    "GARCÍA",
    "dupont ",
    "Schmidt",
    "  o'neil",
    "ångström",
    "ROSSI",
    "van der berg",
    "Nuñez",
    "Öztürk",
    "smith",
    "Fernández  López",
];
const DOMAINS: &[&str] = &["example.com", "Mail.EXAMPLE.org", "legacy-crm.fr", "web.de"];
const COUNTRIES: &[&str] = &[
    "FR",
    "fr",
    "DE",
    " de",
    "ES",
    "IT",
    "gb",
    "NL",
    "BE",
    "PT",
    "XX",
    "Deutschland",
];
const STATUS: &[&str] = &[
    "active", "ACTIVE", "Active", "inactive", "INACTIVE", "pending",
];
const NULLS: &[&str] = &["", "NULL", "N/A", "-", "null"];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn pick<'a>(rng: &mut StdRng, xs: &[&'a str]) -> &'a str {
    xs[rng.random_range(0..xs.len())]
}

fn email(rng: &mut StdRng, first: &str, last: &str, i: usize) -> String {
    let local = format!(
        "{}.{}{}",
        first.trim(),
        last.trim().replace(' ', ""),
        i % 97
    )
    .to_lowercase()
    .replace(['é', 'ë', 'è'], "e")
    .replace(['ü', 'ú'], "u")
    .replace(['ø', 'ö'], "o")
    .replace(['á', 'í', 'ñ', 'ł', 'ç', '\''], "x");
    match rng.random_range(0..100) {
        0..=3 => format!("{local}@"),
        4..=5 => format!("{local} at {}", pick(rng, DOMAINS)),
        6 => format!("{local}@@{}", pick(rng, DOMAINS)),
        7..=8 => pick(rng, NULLS).to_string(),
        9..=30 => format!("  {}@{} ", local.to_uppercase(), pick(rng, DOMAINS)),
        _ => format!("{local}@{}", pick(rng, DOMAINS)),
    }
}

fn date(rng: &mut StdRng) -> String {
    let (y, m, d) = (
        rng.random_range(1995..2024),
        rng.random_range(1..=12u32),
        rng.random_range(1..=28u32),
    );
    match rng.random_range(0..100) {
        0..=29 => format!("{d:02}/{m:02}/{y}"),
        30..=59 => format!("{y}-{m:02}-{d:02}"),
        60..=79 => format!("{d:02}.{m:02}.{y}"),
        80..=94 => format!("{} {d:02} {y}", MONTHS[(m - 1) as usize]),
        95..=96 => format!("31/02/{y}"),
        _ => pick(rng, NULLS).to_string(),
    }
}

fn money(rng: &mut StdRng) -> String {
    let cents: i64 = rng.random_range(-50_000..5_000_000);
    let (units, frac) = (cents.abs() / 100, cents.abs() % 100);
    let grouped = {
        let s = units.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push('.');
            }
            out.push(c);
        }
        out
    };
    let body = format!("{grouped},{frac:02}");
    match (cents < 0, rng.random_range(0..100)) {
        (_, 0..=2) => pick(rng, NULLS).to_string(),
        (_, 3) => "twelve".to_string(),
        (true, 4..=50) => format!("({body})"),
        (true, _) => format!("-{body} €"),
        (false, 4..=40) => format!("{body} €"),
        (false, 41..=60) => format!("EUR {body}"),
        (false, _) => body,
    }
}

fn generate(rows: usize, seed: u64, out: &PathBuf) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut text = String::with_capacity(rows * 120);
    text.push_str(
        "CUST_NO;FIRST_NAME;LAST_NAME;E_MAIL;PHONE;SIGNUP_DT;BALANCE;COUNTRY;STATUS;NOTES\r\n",
    );
    for i in 1..=rows {
        let first = pick(&mut rng, FIRST);
        let last = pick(&mut rng, LAST);
        // A few customers appear twice (a later correction): upserts keep the last.
        let id = if i > 10 && rng.random_range(0..200) == 0 {
            i - 7
        } else {
            i
        };
        let cust = match rng.random_range(0..10) {
            0 => format!(" {id:08} "),
            1 => format!("{id:06}"),
            _ => id.to_string(),
        };
        let phone = match rng.random_range(0..10) {
            0 => pick(&mut rng, NULLS).to_string(),
            1..=4 => format!(
                "+33 {} {:02} {:02} {:02} {:02}",
                rng.random_range(1..10),
                rng.random_range(0..100),
                rng.random_range(0..100),
                rng.random_range(0..100),
                rng.random_range(0..100)
            ),
            _ => format!(
                "0{}{:08}",
                rng.random_range(1..10),
                rng.random_range(0..100_000_000)
            ),
        };
        let notes = match rng.random_range(0..20) {
            0 => "\"called; wants invoice\"".to_string(),
            1 => "VIP   client".to_string(),
            2..=5 => pick(&mut rng, NULLS).to_string(),
            _ => String::new(),
        };
        let mut line = format!(
            "{cust};{first};{last};{};{phone};{};{};{};{};{notes}",
            email(&mut rng, first, last, i),
            date(&mut rng),
            money(&mut rng),
            pick(&mut rng, COUNTRIES),
            pick(&mut rng, STATUS),
        );
        // About one row in a thousand is broken: a field lost or an unquoted `;`.
        match rng.random_range(0..1000) {
            0 => line = line.replacen(&format!(";{phone};"), ";", 1),
            1 => line.push_str(";called; no answer"),
            _ => {}
        }
        text.push_str(&line);
        text.push_str("\r\n");
    }
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&text);
    anyhow::ensure!(
        !unmappable,
        "the generator produced text Windows-1252 cannot hold"
    );
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "wrote {rows} rows ({} bytes, Windows-1252) to {}",
        bytes.len(),
        out.display()
    );
    Ok(())
}

fn report(db: &PathBuf, rejects: &PathBuf) -> anyhow::Result<()> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("cannot open {}", db.display()))?;
    let n: i64 = conn.query_row("SELECT count(*) FROM customers", [], |r| r.get(0))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "\n{n} customers in {} (table `customers`); a sample:\n",
        db.display()
    )?;
    let mut stmt = conn.prepare(
        "SELECT customer_id, first_name, last_name, email, signup_date, balance_cents, country, status FROM customers ORDER BY customer_id LIMIT 5",
    )?;
    writeln!(
        out,
        "  {:>6}  {:<12} {:<18} {:<36} {:<10} {:>12} {:<3} status",
        "id", "first", "last", "email", "signup", "balance ¢", "cc"
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(format!(
            "  {:>6}  {:<12} {:<18} {:<36} {:<10} {:>12} {:<3} {}",
            r.get::<_, i64>(0)?,
            r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            r.get::<_, Option<String>>(3)?.unwrap_or_default(),
            r.get::<_, Option<String>>(4)?
                .unwrap_or_else(|| "NULL".into()),
            r.get::<_, Option<i64>>(5)?
                .map_or("NULL".into(), |v| v.to_string()),
            r.get::<_, Option<String>>(6)?.unwrap_or_default(),
            r.get::<_, Option<String>>(7)?.unwrap_or_default(),
        ))
    })?;
    for row in rows {
        writeln!(out, "{}", row?)?;
    }
    let text = std::fs::read_to_string(rejects).unwrap_or_default();
    let mut by_reason = std::collections::BTreeMap::<String, (usize, String)>::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let key = format!(
            "{} {} {}",
            v["stage"].as_str().unwrap_or("?"),
            v["code"].as_str().unwrap_or("?"),
            v["field"].as_str().unwrap_or("")
        );
        let e = by_reason.entry(key).or_insert((
            0,
            format!(
                "{} — {}",
                v["position"].as_str().unwrap_or(""),
                v["message"].as_str().unwrap_or("")
            ),
        ));
        e.0 += 1;
    }
    writeln!(
        out,
        "\n{} dead letters in {}, by stage, code and field (with one example):\n",
        text.lines().count(),
        rejects.display()
    )?;
    for (k, (n, example)) in by_reason {
        let example: String = example.chars().take(90).collect();
        writeln!(out, "  {n:>6}  {k:<40} e.g. {example}")?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Generate { rows, seed, out } => generate(rows, seed, &out),
        Command::Report { db, rejects } => report(&db, &rejects),
    }
}
