//! `on_schema_change`: what a source or a SQL sink does when the shape of a
//! table or stream changes under a running pipeline.
//!
//! - `evolve`: carry the change on (a new column flows as a new field; a
//!   SQL sink adds the column to the target).
//! - `stop`: stop the pipeline with a message naming the table and the
//!   column; nothing is committed past the change, so after the operator
//!   adapted the target and the plugins (and set `evolve`), the run goes on
//!   from there.
//! - `dead_letter`: the records of that table that carry the change go to
//!   the dead-letter sink with the code `schema_change` and a message
//!   naming it; the other tables flow. `sluice replay --code schema_change`
//!   writes them once the target is ready.
//!
//! The setting is one policy for every table (`on_schema_change = "stop"`)
//! or a table of them (`on_schema_change = { default = "evolve", orders =
//! "dead_letter" }`); a table is named as the source or sink names it
//! (`orders` or `public.orders`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// What to do about a schema change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSchemaChange {
    /// Carry the change on.
    Evolve,
    /// Stop the pipeline before the change.
    Stop,
    /// Dead-letter the records that carry the change.
    DeadLetter,
}

impl OnSchemaChange {
    /// The name in the pipeline file.
    pub fn as_str(self) -> &'static str {
        match self {
            OnSchemaChange::Evolve => "evolve",
            OnSchemaChange::Stop => "stop",
            OnSchemaChange::DeadLetter => "dead_letter",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "evolve" => OnSchemaChange::Evolve,
            "stop" => OnSchemaChange::Stop,
            "dead_letter" => OnSchemaChange::DeadLetter,
            _ => return None,
        })
    }
}

/// The dead-letter code of records held back by `dead_letter`.
pub const SCHEMA_CHANGE_CODE: &str = "schema_change";

/// `on_schema_change` as written: one policy, or one per table with an
/// optional `default`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Written")]
pub struct SchemaPolicy {
    default: Option<OnSchemaChange>,
    tables: BTreeMap<String, OnSchemaChange>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Written {
    One(String),
    PerTable(BTreeMap<String, String>),
}

impl TryFrom<Written> for SchemaPolicy {
    type Error = String;

    fn try_from(w: Written) -> Result<Self, String> {
        let parse = |v: &str, what: &str| {
            OnSchemaChange::parse(v).ok_or_else(|| {
                format!("`{v}`{what} is not a schema-change policy: use `evolve`, `stop` or `dead_letter`")
            })
        };
        match w {
            Written::One(v) => Ok(SchemaPolicy {
                default: Some(parse(&v, "")?),
                tables: BTreeMap::new(),
            }),
            Written::PerTable(map) => {
                let mut p = SchemaPolicy {
                    default: None,
                    tables: BTreeMap::new(),
                };
                for (table, v) in map {
                    let policy = parse(&v, &format!(" (for `{table}`)"))?;
                    if table == "default" {
                        p.default = Some(policy);
                    } else {
                        p.tables.insert(table, policy);
                    }
                }
                Ok(p)
            }
        }
    }
}

impl SchemaPolicy {
    /// The same policy for every table.
    pub fn all(policy: OnSchemaChange) -> Self {
        SchemaPolicy {
            default: Some(policy),
            tables: BTreeMap::new(),
        }
    }

    /// The policy for `table` (`schema.name` or `name`): its own entry
    /// (by either name; `public.` may be left out), else `default`, else
    /// `fallback`.
    pub fn for_table(&self, table: &str, fallback: OnSchemaChange) -> OnSchemaChange {
        let bare = table.strip_prefix("public.");
        self.tables
            .get(table)
            .or_else(|| bare.and_then(|b| self.tables.get(b)))
            .or_else(|| self.tables.get(&format!("public.{table}")))
            .copied()
            .or(self.default)
            .unwrap_or(fallback)
    }
}

/// The policy for `table` given an optional setting.
pub fn policy_for(
    setting: Option<&SchemaPolicy>,
    table: &str,
    fallback: OnSchemaChange,
) -> OnSchemaChange {
    setting.map_or(fallback, |p| p.for_table(table, fallback))
}

/// The policy of a SQL sink for `table`: the setting, else `evolve` when
/// the sink creates tables and `dead_letter` when it does not.
pub fn for_sql_sink(
    setting: Option<&SchemaPolicy>,
    create_table: bool,
    table: &str,
) -> OnSchemaChange {
    let fallback = if create_table {
        OnSchemaChange::Evolve
    } else {
        OnSchemaChange::DeadLetter
    };
    policy_for(setting, table, fallback)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Conf {
        on_schema_change: Option<SchemaPolicy>,
    }

    fn parse(text: &str) -> Result<Option<SchemaPolicy>, String> {
        toml::from_str::<Conf>(text)
            .map(|c| c.on_schema_change)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn one_policy_or_one_per_table() {
        use OnSchemaChange::*;
        let p = parse(r#"on_schema_change = "stop""#).unwrap().unwrap();
        assert_eq!(p.for_table("public.orders", Evolve), Stop);
        let p = parse(r#"on_schema_change = { default = "dead_letter", orders = "stop", "crm.people" = "evolve" }"#)
            .unwrap()
            .unwrap();
        assert_eq!(p.for_table("public.orders", Evolve), Stop);
        assert_eq!(p.for_table("orders", Evolve), Stop);
        assert_eq!(p.for_table("crm.people", Stop), Evolve);
        assert_eq!(p.for_table("crm.orders", Evolve), DeadLetter);
        let p = parse(r#"on_schema_change = { "public.items" = "stop" }"#)
            .unwrap()
            .unwrap();
        assert_eq!(p.for_table("items", Evolve), Stop);
        assert_eq!(p.for_table("other", Evolve), Evolve);
        assert_eq!(policy_for(None, "x", DeadLetter), DeadLetter);
        assert!(parse("").unwrap().is_none());
    }

    #[test]
    fn a_wrong_policy_is_named() {
        let e = parse(r#"on_schema_change = "ignore""#).unwrap_err();
        assert!(
            e.contains(
                "`ignore` is not a schema-change policy: use `evolve`, `stop` or `dead_letter`"
            ),
            "{e}"
        );
        let e = parse(r#"on_schema_change = { orders = "drop" }"#).unwrap_err();
        assert!(
            e.contains("`drop` (for `orders`) is not a schema-change policy"),
            "{e}"
        );
    }
}
