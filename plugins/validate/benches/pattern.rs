//! What a `pattern` rule costs per value: the regex engine `validate` uses
//! (`regex`, lazy DFA) against the one it used before (`regex-lite`, a
//! backtracker/PikeVM), in the same run, on 200 000 varied values per
//! pattern (about one in ten does not match).
//! Run: `cargo bench -p sluice-plugin-validate --bench pattern`.

use std::hint::black_box;
use std::time::Instant;

/// Varied values for a pattern: emails, phone numbers, postal codes, dates.
fn values(kind: &str, n: usize) -> Vec<String> {
    let first = [
        "anna",
        "jean-luc",
        "zoë",
        "o'brien",
        "li",
        "maría.josé",
        "bob",
    ];
    let domains = [
        "example.com",
        "mail.example.fr",
        "corp.example.co.uk",
        "x.io",
    ];
    (0..n)
        .map(|i| {
            let bad = i % 10 == 7;
            match kind {
                "email" => {
                    let user = format!("{}{}", first[i % first.len()], i % 997);
                    if bad {
                        format!("{user} at {}", domains[i % domains.len()])
                    } else {
                        format!("{user}@{}", domains[i % domains.len()])
                    }
                }
                "phone" => {
                    if bad {
                        format!("+33 6 {:02} {:02} x{}", i % 100, (i / 7) % 100, i)
                    } else {
                        format!(
                            "+33 6 {:02} {:02} {:02} {:02}",
                            i % 100,
                            (i / 3) % 100,
                            (i / 7) % 100,
                            (i / 11) % 100
                        )
                    }
                }
                "zip" => {
                    if bad {
                        format!("{:04}-A", i % 10_000)
                    } else {
                        format!("{:05}", i % 100_000)
                    }
                }
                _ => {
                    if bad {
                        format!("{}/{}/{}", i % 31 + 1, i % 12 + 1, 1950 + i % 70)
                    } else {
                        format!("{}-{:02}-{:02}", 1950 + i % 70, i % 12 + 1, i % 28 + 1)
                    }
                }
            }
        })
        .collect()
}

fn time<F: FnMut(&str) -> bool>(vals: &[String], rounds: usize, mut f: F) -> (f64, usize) {
    let mut best = f64::MAX;
    let mut hits = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        hits = vals.iter().filter(|v| f(black_box(v.as_str()))).count();
        best = best.min(t.elapsed().as_nanos() as f64 / vals.len() as f64);
    }
    (best, hits)
}

fn main() {
    let patterns = [
        ("email", r"^[\w.%+'-]+@[\w-]+(\.[\w-]+)*\.[a-zA-Z]{2,}$"),
        ("phone", r"^\+[0-9]{1,3}( [0-9]{1,4}){2,5}$"),
        ("zip", r"^[0-9]{5}$"),
        (
            "date",
            r"^(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
        ),
    ];
    println!("pattern cost per value, 200 000 values each, best of 5");
    println!("| pattern | regex-lite | regex | speed-up | matched (lite / regex) |");
    println!("|---|---|---|---|---|");
    for (kind, pat) in patterns {
        let vals = values(kind, 200_000);
        let lite = regex_lite::Regex::new(pat).expect("regex-lite");
        let full = regex::Regex::new(pat).expect("regex");
        let (l, lh) = time(&vals, 5, |v| lite.is_match(v));
        let (r, rh) = time(&vals, 5, |v| full.is_match(v));
        // `\w` is ASCII in regex-lite and Unicode in regex: counts may differ
        // only for values with non-ASCII letters.
        println!(
            "| {kind} | {l:.0} ns | {r:.0} ns | {:.1}× | {lh} / {rh} |",
            l / r
        );
    }
}
