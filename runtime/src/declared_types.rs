//! Column types a source declares: a PostgreSQL source knows each table's
//! column types from the catalog, so a sink that creates a table (or adds
//! a column) takes the declared type instead of guessing from the first
//! value it sees (a `numeric(12,2)` whose first value is `12.50` is not
//! `text`; a `timestamptz` whose first value is `infinity` is not `text`).
//!
//! The source declares a stream's columns before it hands over any record
//! of it; sinks look the type up by stream and field name when they create
//! a column. A field a plugin renamed or added has no declared type and is
//! typed from its value, as before.
//!
//! | declared (PostgreSQL)                         | PostgreSQL sink       | SQLite sink |
//! |-----------------------------------------------|-----------------------|-------------|
//! | built-in types, arrays of them                | the same type         | see below   |
//! | a domain over a built-in type                 | its base type         | by the base |
//! | enums, composites, ranges, extension types    | `text` (`text[]` for arrays of them) | `TEXT` |
//! | `smallint`, `integer`, `bigint`, `boolean`, `oid` | —                 | `INTEGER`   |
//! | `real`, `double precision`                    | —                     | `REAL`      |
//! | `bytea`                                       | —                     | `BLOB`      |
//! | `numeric` and everything else                 | —                     | `TEXT` (exact digits: SQLite's `NUMERIC` affinity would round to 15 digits) |

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// One declared column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredColumn {
    /// The column (field) name.
    pub name: String,
    /// The type to create it with in PostgreSQL (`numeric(12,2)`,
    /// `timestamp with time zone`, `text` for an enum).
    pub sql_type: String,
    /// The type the source has (`mood` for an enum), when it differs from
    /// `sql_type`: a sink says so when it creates the column.
    pub source_type: Option<String>,
}

/// Declared columns by stream, shared by the source (which writes them)
/// and the sink (which reads them).
#[derive(Debug, Default)]
pub struct DeclaredTypes {
    streams: RwLock<HashMap<String, Arc<Vec<DeclaredColumn>>>>,
}

impl DeclaredTypes {
    /// Declares (or re-declares) the columns of `stream`.
    pub fn declare(&self, stream: &str, columns: Vec<DeclaredColumn>) {
        self.streams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stream.to_string(), Arc::new(columns));
    }

    /// The declared column `field` of `stream`, if any.
    pub fn column(&self, stream: &str, field: &str) -> Option<DeclaredColumn> {
        let streams = self.streams.read().unwrap_or_else(|p| p.into_inner());
        streams
            .get(stream)?
            .iter()
            .find(|c| c.name == field)
            .cloned()
    }
}

/// The SQLite column type (affinity) for a declared PostgreSQL type.
pub fn sqlite_type(sql_type: &str) -> &'static str {
    if sql_type.ends_with("[]") {
        return "TEXT";
    }
    let base = sql_type.split('(').next().unwrap_or(sql_type).trim();
    match base {
        "smallint" | "integer" | "bigint" | "boolean" | "oid" => "INTEGER",
        "real" | "double precision" => "REAL",
        "bytea" => "BLOB",
        _ => "TEXT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_column_is_found_by_stream_and_name() {
        let t = DeclaredTypes::default();
        t.declare(
            "orders",
            vec![DeclaredColumn {
                name: "total".into(),
                sql_type: "numeric(12,2)".into(),
                source_type: None,
            }],
        );
        assert_eq!(
            t.column("orders", "total").map(|c| c.sql_type),
            Some("numeric(12,2)".to_string())
        );
        assert_eq!(t.column("orders", "other"), None);
        assert_eq!(t.column("other", "total"), None);
    }

    #[test]
    fn sqlite_affinities_keep_exact_numbers_as_text() {
        assert_eq!(sqlite_type("bigint"), "INTEGER");
        assert_eq!(sqlite_type("boolean"), "INTEGER");
        assert_eq!(sqlite_type("double precision"), "REAL");
        assert_eq!(sqlite_type("numeric(39,0)"), "TEXT");
        assert_eq!(sqlite_type("timestamp with time zone"), "TEXT");
        assert_eq!(sqlite_type("integer[]"), "TEXT");
        assert_eq!(sqlite_type("bytea"), "BLOB");
    }
}
