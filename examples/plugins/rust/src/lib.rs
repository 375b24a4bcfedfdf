//! `customer-cleanse`: the example cleansing plugin, in Rust. The same rules
//! are written in Python, JavaScript and C next to this one; a test feeds all
//! four the same records and asserts identical outcomes (see ../README.md).

use serde::Deserialize;
use sluice_sdk::{Config, InitError, Operation, Outcome, Record, Transform, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_country")]
    default_country: String,
    #[serde(default = "yes")]
    drop_test_accounts: bool,
    #[serde(default = "adult")]
    min_age: u32,
    #[serde(default)]
    tag: Option<String>,
}

fn default_country() -> String {
    "US".into()
}
fn yes() -> bool {
    true
}
fn adult() -> u32 {
    18
}

/// The plugin.
pub struct CustomerCleanse {
    s: Settings,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Trims ASCII whitespace and collapses inner runs into one space.
fn squeeze(s: &str) -> String {
    s.split(is_space)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn valid_email(e: &str) -> bool {
    let mut parts = e.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && !e.contains(is_space)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

impl Transform for CustomerCleanse {
    fn init(config: Config) -> Result<Self, InitError> {
        Ok(CustomerCleanse {
            s: config.parse()?,
        })
    }

    fn process<'a>(&mut self, r: &mut Record<'a>) -> Outcome<'a> {
        if r.op() == Operation::Delete {
            return Outcome::Keep;
        }
        let name = squeeze(r.get_str("name").unwrap_or(""));
        if name.is_empty() {
            return Outcome::reject_field("required", "name", "name is required");
        }
        let Some(email) = r.get_str("email").map(|e| e.trim_matches(is_space).to_ascii_lowercase())
        else {
            return Outcome::reject_field("required", "email", "email is required");
        };
        if !valid_email(&email) {
            return Outcome::reject_field(
                "invalid_email",
                "email",
                format!("`{email}` is not an email address"),
            );
        }
        if self.s.drop_test_accounts && email.ends_with("@example.com") {
            return Outcome::Drop;
        }
        let age = match r.get("age") {
            None | Some(Value::Null) => None,
            Some(Value::Int(n)) => Some(*n),
            Some(Value::Text(t)) => {
                let t = t.trim_matches(is_space);
                if !t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit()) {
                    t.parse::<i64>().ok()
                } else {
                    return Outcome::reject_field(
                        "invalid_age",
                        "age",
                        "age must be a whole number of years",
                    );
                }
            }
            Some(_) => {
                return Outcome::reject_field(
                    "invalid_age",
                    "age",
                    "age must be a whole number of years",
                );
            }
        };
        if let Some(a) = age {
            if a < i64::from(self.s.min_age) {
                return Outcome::reject_field(
                    "underage",
                    "age",
                    format!("age {a} is below the minimum of {}", self.s.min_age),
                );
            }
            r.set("age", a);
        }
        r.set("name", name);
        r.set("email", email);
        let country = r
            .get_str("country")
            .map(|c| c.trim_matches(is_space).to_ascii_uppercase())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| self.s.default_country.clone());
        r.set("country", country);
        if let Some(phone) = r.get_str("phone") {
            let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
            if digits.len() < 7 {
                r.set_null("phone");
            } else {
                r.set("phone", digits);
            }
        }
        if let Some(tag) = &self.s.tag {
            r.set("tag", tag.clone());
        }
        Outcome::Keep
    }
}

#[cfg(target_arch = "wasm32")]
sluice_sdk::export!(CustomerCleanse);
