//! `mapper`: reshape records by config: rename, copy, cast, set constants,
//! drop or keep fields, route to another stream, drop records by condition.
//!
//! Steps run in this order on every record: `drop_when`, `copy`, `rename`,
//! `cast`, `set`, `drop`, `keep`, `stream`. See `plugins/README.md`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use sluice_sdk::{Config, InitError, Outcome, Record, Transform, Value};

/// The mapper's configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MapperConfig {
    /// Drop (filter out) records matching any of these conditions.
    pub drop_when: Vec<Condition>,
    /// Copy `source` field to `target` field: `{ source = "target" }`.
    pub copy: BTreeMap<String, String>,
    /// Rename `old` to `new`: `{ old = "new" }`.
    pub rename: BTreeMap<String, String>,
    /// Convert fields to a type: `{ age = "int" }`.
    pub cast: BTreeMap<String, CastTo>,
    /// Set fields to constants: `{ source_system = "legacy-crm" }`.
    pub set: BTreeMap<String, serde_json::Value>,
    /// Remove these fields.
    pub drop: Vec<String>,
    /// If given, remove every field not listed.
    pub keep: Option<Vec<String>>,
    /// Route records to this stream (table).
    pub stream: Option<String>,
}

/// A condition on one field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The field tested.
    pub field: String,
    /// True when the field equals this value.
    pub equals: Option<serde_json::Value>,
    /// True when the field equals one of these values.
    #[serde(rename = "in")]
    pub any_of: Option<Vec<serde_json::Value>>,
    /// True when the field is absent or null (`is_null = true`) or present
    /// and not null (`is_null = false`).
    pub is_null: Option<bool>,
    /// Compare text ignoring case.
    #[serde(default)]
    pub ignore_case: bool,
}

/// Target type of a cast.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CastTo {
    /// 64-bit integer.
    Int,
    /// 64-bit float.
    Float,
    /// Boolean (`true/false/yes/no/y/n/1/0/t/f`, any case).
    Bool,
    /// Text.
    Text,
}

impl CastTo {
    /// The name used in config and messages.
    pub fn name(self) -> &'static str {
        match self {
            CastTo::Int => "int",
            CastTo::Float => "float",
            CastTo::Bool => "bool",
            CastTo::Text => "text",
        }
    }
}

/// The mapper plugin.
#[derive(Debug)]
pub struct Mapper {
    config: MapperConfig,
    copy: Vec<(&'static str, &'static str)>,
    rename: Vec<(&'static str, &'static str)>,
    cast: Vec<(&'static str, CastTo)>,
    constants: Vec<(&'static str, Value<'static>)>,
    stream: Option<&'static str>,
    /// The renames worked out for the field names of the last record.
    plan: RenamePlan,
}

/// The renames worked out for one sequence of field names. The records of
/// an export share their fields, so the renames are looked up once per
/// sequence instead of once per record (ten renames of a ten-field record
/// are two hundred name comparisons).
#[derive(Debug, Default)]
struct RenamePlan {
    /// The field names (after `copy`) the plan is for.
    names: Vec<String>,
    /// `Some`: the new name of each renamed field, by index (the fields
    /// keep their places); `None`: a rename lands on a field that exists,
    /// so the renames run one by one as the config lists them.
    in_place: Option<Vec<(usize, &'static str)>>,
}

impl RenamePlan {
    /// The plan for `names`: the renames applied in order to the names alone.
    fn new(names: Vec<String>, rename: &[(&'static str, &'static str)]) -> Self {
        let mut current: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut renamed: Vec<Option<&'static str>> = vec![None; names.len()];
        let mut in_place = true;
        for &(from, to) in rename {
            let Some(i) = current.iter().position(|n| *n == from) else {
                continue;
            };
            if current
                .iter()
                .position(|n| *n == to)
                .is_some_and(|j| j != i)
            {
                in_place = false;
                break;
            }
            current[i] = to;
            renamed[i] = Some(to);
        }
        let in_place = in_place.then(|| {
            renamed
                .iter()
                .enumerate()
                .filter_map(|(i, to)| to.map(|to| (i, to)))
                .collect()
        });
        RenamePlan { names, in_place }
    }

    /// True if the plan is for the fields of `record`.
    fn fits(&self, record: &Record<'_>) -> bool {
        self.names.len() == record.len()
            && record.fields().zip(&self.names).all(|((n, _), p)| n == p)
    }
}

/// Field names from the config live as long as the instance: leaking them
/// once lets records borrow them instead of copying a name per record.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// A JSON constant as a record value.
pub fn json_to_value(v: &serde_json::Value) -> Value<'static> {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Text(s.clone().into()),
        other => Value::Json(other.to_string().into()),
    }
}

fn matches_json(value: &Value<'_>, expected: &serde_json::Value, ignore_case: bool) -> bool {
    match (value, expected) {
        (Value::Null, serde_json::Value::Null) => true,
        (Value::Bool(a), serde_json::Value::Bool(b)) => a == b,
        (Value::Int(a), serde_json::Value::Number(n)) => {
            n.as_i64() == Some(*a) || n.as_f64() == Some(*a as f64)
        }
        (Value::Float(a), serde_json::Value::Number(n)) => n.as_f64() == Some(*a),
        (Value::Text(a), serde_json::Value::String(b)) => {
            if !ignore_case {
                a == b
            } else if a.is_ascii() && b.is_ascii() {
                a.eq_ignore_ascii_case(b)
            } else {
                a.to_lowercase() == b.to_lowercase()
            }
        }
        _ => false,
    }
}

impl Condition {
    fn holds(&self, record: &Record<'_>) -> bool {
        let value = record.get(&self.field);
        if let Some(want_null) = self.is_null {
            let is_null = value.is_none_or(Value::is_null);
            if is_null != want_null {
                return false;
            }
        }
        if let Some(expected) = &self.equals
            && !value.is_some_and(|v| matches_json(v, expected, self.ignore_case))
        {
            return false;
        }
        if let Some(list) = &self.any_of
            && !value.is_some_and(|v| list.iter().any(|e| matches_json(v, e, self.ignore_case)))
        {
            return false;
        }
        true
    }
}

/// Parses a boolean spelled the ways legacy data spells it.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" | "on" => Some(true),
        "false" | "f" | "no" | "n" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// Converts `value` to `to`; `Err` holds a message.
pub fn cast(value: &Value<'_>, to: CastTo) -> Result<Value<'static>, String> {
    let fail = || {
        format!(
            "cannot cast {} `{}` to {}",
            value.kind(),
            display(value),
            to.name()
        )
    };
    Ok(match (value, to) {
        (Value::Null, _) => Value::Null,
        (Value::Int(i), CastTo::Int) => Value::Int(*i),
        (Value::Int(i), CastTo::Float) => Value::Float(*i as f64),
        (Value::Int(i), CastTo::Bool) => match i {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            _ => return Err(fail()),
        },
        (Value::Float(f), CastTo::Int)
            if f.fract() == 0.0 && *f >= i64::MIN as f64 && *f <= i64::MAX as f64 =>
        {
            Value::Int(*f as i64)
        }
        (Value::Float(f), CastTo::Float) => Value::Float(*f),
        (Value::Bool(b), CastTo::Int) => Value::Int(i64::from(*b)),
        (Value::Bool(b), CastTo::Bool) => Value::Bool(*b),
        (Value::Text(s), CastTo::Int) => Value::Int(s.trim().parse::<i64>().map_err(|_| fail())?),
        (Value::Text(s), CastTo::Float) => {
            let f = s.trim().parse::<f64>().map_err(|_| fail())?;
            if !f.is_finite() {
                return Err(fail());
            }
            Value::Float(f)
        }
        (Value::Text(s), CastTo::Bool) => Value::Bool(parse_bool(s).ok_or_else(fail)?),
        (v, CastTo::Text) => Value::Text(display(v).into()),
        _ => return Err(fail()),
    })
}

fn display(v: &Value<'_>) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Text(s) | Value::Json(s) => s.to_string(),
        Value::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Value::Timestamp(t) => t.to_string(),
    }
}

impl Transform for Mapper {
    fn init(config: Config) -> Result<Self, InitError> {
        let config: MapperConfig = config.parse()?;
        for (i, c) in config.drop_when.iter().enumerate() {
            if c.equals.is_none() && c.any_of.is_none() && c.is_null.is_none() {
                return Err(InitError::InvalidConfig(format!(
                    "`drop_when[{i}]` (field `{}`) needs `equals`, `in` or `is_null`",
                    c.field
                )));
            }
        }
        let constants = config
            .set
            .iter()
            .map(|(k, v)| (leak(k), json_to_value(v)))
            .collect();
        let copy = config
            .copy
            .iter()
            .map(|(a, b)| (leak(a), leak(b)))
            .collect();
        let rename = config
            .rename
            .iter()
            .map(|(a, b)| (leak(a), leak(b)))
            .collect();
        let cast = config.cast.iter().map(|(a, t)| (leak(a), *t)).collect();
        let stream = config.stream.as_deref().map(leak);
        Ok(Mapper {
            config,
            copy,
            rename,
            cast,
            constants,
            stream,
            plan: RenamePlan::default(),
        })
    }

    fn process<'a>(&mut self, record: &mut Record<'a>) -> Outcome<'a> {
        let c = &self.config;
        if c.drop_when.iter().any(|cond| cond.holds(record)) {
            return Outcome::Drop;
        }
        for &(from, to) in &self.copy {
            if let Some(v) = record.get(from).cloned() {
                record.set(to, v);
            }
        }
        if !self.rename.is_empty() {
            if !self.plan.fits(record) {
                let names = record.fields().map(|(n, _)| n.to_string()).collect();
                self.plan = RenamePlan::new(names, &self.rename);
            }
            match &self.plan.in_place {
                Some(renames) if renames.is_empty() => {}
                Some(renames) => {
                    let fields = record.fields_mut();
                    for &(i, to) in renames {
                        fields[i].0 = Cow::Borrowed(to);
                    }
                }
                None => {
                    for &(from, to) in &self.rename {
                        record.rename(from, to);
                    }
                }
            }
        }
        for &(field, to) in &self.cast {
            let Some(v) = record.get(field) else { continue };
            match cast(v, to) {
                Ok(new) => {
                    if record.get(field) != Some(&new) {
                        record.set(field, new);
                    }
                }
                Err(message) => return Outcome::reject_field("cast_failed", field, message),
            }
        }
        for (field, value) in &self.constants {
            if record.get(field) != Some(value) {
                record.set(*field, value.clone());
            }
        }
        for field in &c.drop {
            record.remove(field);
        }
        if let Some(keep) = &c.keep
            && record.fields().any(|(n, _)| !keep.iter().any(|k| k == n))
        {
            record
                .fields_mut()
                .retain(|(n, _)| keep.iter().any(|k| k == n));
        }
        if let Some(stream) = self.stream
            && record.stream() != stream
        {
            record.set_stream(stream);
        }
        Outcome::Keep
    }
}

#[cfg(target_arch = "wasm32")]
sluice_sdk::export!(Mapper);

#[cfg(test)]
mod tests;
