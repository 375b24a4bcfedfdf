//! A table's columns and primary key as PostgreSQL's catalog describes
//! them: what the source, the PostgreSQL sink and `verify` all read.

use postgres::Client;

use super::TableName;

/// A column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The name.
    pub name: String,
    /// The type OID (decides the record value type).
    pub type_oid: u32,
    /// The type as SQL writes it (`character varying(40)`).
    pub type_name: String,
    /// The type to give the column in another database: `type_name` for
    /// PostgreSQL's own types (and arrays of them), a domain's base type,
    /// `text` (or `text[]`) for enums, composites, ranges and types of
    /// extensions, whose definitions another database may not have.
    pub portable_type: String,
    /// The type without its modifier, schema-qualified
    /// (`pg_catalog."varchar"` for `character varying(40)`): what a value
    /// given as text is cast to before it is assigned to the column. A
    /// cast to `type_name` itself would cut an over-long text to fit
    /// (`'abcdef'::varchar(3)` is `abc`); assignment to the column checks
    /// the modifier and refuses it instead.
    pub cast_type: String,
}

/// Columns, and the positions of the primary-key columns among them.
pub type ColumnsAndKey = (Vec<Column>, Vec<usize>);

/// A table's columns and the positions of its primary-key columns (in key
/// order; empty without a primary key), or `None` if there is no such table.
/// Shared by the source, the PostgreSQL sink and `verify`.
pub fn read_columns(
    client: &mut Client,
    name: &TableName,
) -> Result<Option<ColumnsAndKey>, postgres::Error> {
    let rows = client.query(
        "SELECT a.attname::text, a.atttypid::oid, format_type(a.atttypid, a.atttypmod),
                coalesce((SELECT k.n FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(att, n)
                          WHERE k.att = a.attnum), 0)::int4,
                CASE
                  WHEN tn.nspname = 'pg_catalog' AND t.typtype = 'b'
                       AND (t.typelem = 0 OR (en.nspname = 'pg_catalog' AND e.typtype = 'b'))
                    THEN format_type(a.atttypid, a.atttypmod)
                  WHEN t.typtype = 'd' AND bn.nspname = 'pg_catalog' AND b.typtype = 'b'
                    THEN format_type(t.typbasetype, t.typtypmod)
                  WHEN t.typcategory = 'A' THEN 'text[]'
                  ELSE 'text'
                END,
                quote_ident(tn.nspname) || '.' || quote_ident(t.typname)
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         JOIN pg_type t ON t.oid = a.atttypid
         JOIN pg_namespace tn ON tn.oid = t.typnamespace
         LEFT JOIN pg_type e ON e.oid = t.typelem
         LEFT JOIN pg_namespace en ON en.oid = e.typnamespace
         LEFT JOIN pg_type b ON b.oid = t.typbasetype
         LEFT JOIN pg_namespace bn ON bn.oid = b.typnamespace
         LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
         WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
         ORDER BY a.attnum",
        &[&name.schema, &name.name],
    )?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut key: Vec<(i32, usize)> = Vec::new();
    let mut columns = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let pos: i32 = r.get(3);
        if pos > 0 {
            key.push((pos, i));
        }
        columns.push(Column {
            name: r.get(0),
            type_oid: r.get(1),
            type_name: r.get(2),
            portable_type: r.get(4),
            cast_type: r.get(5),
        });
    }
    key.sort();
    Ok(Some((columns, key.into_iter().map(|(_, i)| i).collect())))
}
