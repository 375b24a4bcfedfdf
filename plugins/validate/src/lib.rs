//! `validate`: check records against per-field rules and reject those that
//! fail, with a machine-readable code and the field at fault.
//!
//! Fields are checked in name order; the first failing rule rejects the
//! record. Codes: `required`, `wrong_type`, `invalid_email`,
//! `pattern_mismatch`, `out_of_range`, `not_allowed`, `too_short`,
//! `too_long` (or the field's own `code`).

use std::collections::BTreeMap;

use regex::Regex;
use serde::Deserialize;
use sluice_sdk::{Config, InitError, Operation, Outcome, Record, Transform, Value};

/// The validate plugin's configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidateConfig {
    /// Rules per field name.
    pub fields: BTreeMap<String, FieldRules>,
}

/// Rules for one field. Absent or null values only fail `required`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldRules {
    /// The field must be present, not null and not empty text.
    pub required: bool,
    /// The value must be of this type: `text`, `int`, `float`, `number`, `bool`.
    #[serde(rename = "type")]
    pub kind: Option<Kind>,
    /// The text must be an email address.
    pub email: bool,
    /// The text (or number as text) must match this regular expression
    /// (anchor it with `^...$` to match the whole value).
    pub pattern: Option<String>,
    /// Smallest allowed number (numbers, or text that parses as one).
    pub min: Option<f64>,
    /// Largest allowed number.
    pub max: Option<f64>,
    /// The value must equal one of these.
    pub allowed: Option<Vec<serde_json::Value>>,
    /// Smallest length of text, in characters.
    pub min_length: Option<usize>,
    /// Largest length of text, in characters.
    pub max_length: Option<usize>,
    /// Use this code instead of the rule's own when the field fails.
    pub code: Option<String>,
    /// Use this message instead of the rule's own.
    pub message: Option<String>,
}

/// A value type.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Text.
    Text,
    /// Integer.
    Int,
    /// Float.
    Float,
    /// Integer or float.
    Number,
    /// Boolean.
    Bool,
}

struct Compiled {
    name: String,
    rules: FieldRules,
    pattern: Option<Regex>,
}

/// The validate plugin.
pub struct Validate {
    fields: Vec<Compiled>,
}

impl std::fmt::Debug for Validate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validate")
            .field("fields", &self.fields.len())
            .finish()
    }
}

/// A practical email check (the "dot-atom" form of RFC 5322 most systems
/// accept): `local@domain`, the local part dot-separated atoms of letters,
/// digits and ``!#$%&'*+/=?^_`{|}~-``, the domain at least two dot-separated
/// labels of letters, digits and inner hyphens (at most 63 characters), the
/// last label 2 or more letters. No quoted local parts, no IP literals.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || domain.len() > 253 {
        return false;
    }
    let atom_char = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&c);
    if !local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.bytes().all(atom_char))
    {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let tld = labels[labels.len() - 1];
    labels.iter().all(|l| label_ok(l))
        && tld.len() >= 2
        && tld.bytes().all(|c| c.is_ascii_alphabetic())
}

/// True when `list` (a JSON array of strings) holds `name`.
fn lists(list: &[u8], name: &str) -> bool {
    !list.is_empty()
        && serde_json::from_slice::<Vec<&str>>(list).is_ok_and(|names| names.contains(&name))
}

fn as_text<'b>(v: &'b Value<'_>) -> Option<std::borrow::Cow<'b, str>> {
    match v {
        Value::Text(s) => Some(std::borrow::Cow::Borrowed(s.as_ref())),
        Value::Int(i) => Some(i.to_string().into()),
        Value::Float(f) => Some(f.to_string().into()),
        Value::Bool(b) => Some(b.to_string().into()),
        _ => None,
    }
}

fn as_number(v: &Value<'_>) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn equals_json(v: &Value<'_>, j: &serde_json::Value) -> bool {
    match (v, j) {
        (Value::Text(a), serde_json::Value::String(b)) => a == b,
        (Value::Int(a), serde_json::Value::Number(n)) => n.as_f64() == Some(*a as f64),
        (Value::Float(a), serde_json::Value::Number(n)) => n.as_f64() == Some(*a),
        (Value::Bool(a), serde_json::Value::Bool(b)) => a == b,
        _ => false,
    }
}

fn show(v: &Value<'_>) -> String {
    as_text(v).map_or_else(|| v.kind().to_string(), |s| s.into_owned())
}

impl Compiled {
    /// The first rule `value` breaks: (code, message).
    fn check(&self, value: Option<&Value<'_>>) -> Option<(&'static str, String)> {
        let r = &self.rules;
        let value = match value {
            None | Some(Value::Null) => {
                return r.required.then(|| ("required", "is missing".to_string()));
            }
            Some(Value::Text(t)) if t.is_empty() && r.required => {
                return Some(("required", "is empty".to_string()));
            }
            Some(v) => v,
        };
        if let Some(kind) = r.kind {
            let ok = matches!(
                (kind, value),
                (Kind::Text, Value::Text(_))
                    | (Kind::Int, Value::Int(_))
                    | (Kind::Float, Value::Float(_))
                    | (Kind::Number, Value::Int(_) | Value::Float(_))
                    | (Kind::Bool, Value::Bool(_))
            );
            if !ok {
                return Some((
                    "wrong_type",
                    format!("is {}, expected {kind:?}", value.kind()).to_lowercase(),
                ));
            }
        }
        if r.email {
            match value.as_str() {
                Some(s) if is_email(s) => {}
                _ => {
                    return Some((
                        "invalid_email",
                        format!("`{}` is not an email address", show(value)),
                    ));
                }
            }
        }
        if let Some(re) = &self.pattern {
            let ok = as_text(value).is_some_and(|s| re.is_match(s.as_ref()));
            if !ok {
                return Some((
                    "pattern_mismatch",
                    format!("`{}` does not match `{}`", show(value), re.as_str()),
                ));
            }
        }
        if r.min.is_some() || r.max.is_some() {
            let Some(n) = as_number(value) else {
                return Some(("wrong_type", format!("`{}` is not a number", show(value))));
            };
            if r.min.is_some_and(|m| n < m) || r.max.is_some_and(|m| n > m) {
                let range = match (r.min, r.max) {
                    (Some(a), Some(b)) => format!("between {a} and {b}"),
                    (Some(a), None) => format!("at least {a}"),
                    (None, Some(b)) => format!("at most {b}"),
                    (None, None) => String::new(),
                };
                return Some(("out_of_range", format!("{n} is not {range}")));
            }
        }
        if let Some(allowed) = &r.allowed
            && !allowed.iter().any(|a| equals_json(value, a))
        {
            let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
            return Some((
                "not_allowed",
                format!("`{}` is not one of {}", show(value), list.join(", ")),
            ));
        }
        if (r.min_length.is_some() || r.max_length.is_some())
            && let Some(s) = value.as_str()
        {
            {
                let len = s.chars().count();
                if let Some(min) = r.min_length
                    && len < min
                {
                    return Some((
                        "too_short",
                        format!("has {len} characters, at least {min} needed"),
                    ));
                }
                if let Some(max) = r.max_length
                    && len > max
                {
                    return Some((
                        "too_long",
                        format!("has {len} characters, at most {max} allowed"),
                    ));
                }
            }
        }
        None
    }
}

impl Transform for Validate {
    fn init(config: Config) -> Result<Self, InitError> {
        let config: ValidateConfig = config.parse()?;
        let mut fields = Vec::new();
        for (name, rules) in config.fields {
            let pattern = match &rules.pattern {
                None => None,
                Some(p) => Some(Regex::new(p).map_err(|e| {
                    InitError::InvalidConfig(format!("`fields.{name}.pattern`: {e}"))
                })?),
            };
            if let (Some(a), Some(b)) = (rules.min, rules.max)
                && a > b
            {
                return Err(InitError::InvalidConfig(format!(
                    "`fields.{name}`: `min` ({a}) is larger than `max` ({b})"
                )));
            }
            fields.push(Compiled {
                name,
                rules,
                pattern,
            });
        }
        Ok(Validate { fields })
    }

    fn process<'a>(&mut self, record: &mut Record<'a>) -> Outcome<'a> {
        // A delete carries only the key of the row it removes: there is
        // nothing to validate, and refusing it would keep a deleted row.
        if record.op() == Operation::Delete {
            return Outcome::Keep;
        }
        // An update that does not carry a column because its value did not
        // change (`sluice-unchanged`: PostgreSQL leaves out unchanged values
        // stored out of line) keeps the value it had, which was checked.
        let unchanged = record.header("sluice-unchanged").unwrap_or_default();
        for f in &self.fields {
            let value = record.get(&f.name);
            if value.is_none() && lists(unchanged, &f.name) {
                continue;
            }
            if let Some((code, message)) = f.check(value) {
                let code = f.rules.code.clone().unwrap_or_else(|| code.to_string());
                let message = f
                    .rules
                    .message
                    .clone()
                    .unwrap_or_else(|| format!("`{}` {message}", f.name));
                return Outcome::reject_field(code, f.name.clone(), message);
            }
        }
        Outcome::Keep
    }
}

#[cfg(target_arch = "wasm32")]
sluice_sdk::export!(Validate);

#[cfg(test)]
mod tests;
