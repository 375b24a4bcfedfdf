//! What SQL text needs in every database Sluice talks to (PostgreSQL and
//! SQLite quote identifiers and write upserts alike).

/// Quotes an SQL identifier: `"name"`, with `"` doubled inside.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The conflict clause of an upsert writing `columns` into a table keyed
/// by `key`: ` ON CONFLICT (key) DO UPDATE SET c = excluded.c, ...` for
/// the columns outside the key (columns it does not write keep their
/// values), ` ON CONFLICT (key) DO NOTHING` when there are none.
pub fn on_conflict<'c>(key: &[String], columns: impl IntoIterator<Item = &'c str>) -> String {
    let keys: Vec<String> = key.iter().map(|k| quote_ident(k)).collect();
    let sets: Vec<String> = columns
        .into_iter()
        .filter(|c| !key.iter().any(|k| k == c))
        .map(|c| format!("{0} = excluded.{0}", quote_ident(c)))
        .collect();
    if sets.is_empty() {
        format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", "))
    } else {
        format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            keys.join(", "),
            sets.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn upserts_update_the_columns_outside_the_key() {
        let key = ["id".to_string(), "re\"gion".to_string()];
        assert_eq!(
            super::on_conflict(&key, ["id", "name", "re\"gion", "note"]),
            " ON CONFLICT (\"id\", \"re\"\"gion\") DO UPDATE SET \"name\" = excluded.\"name\", \"note\" = excluded.\"note\""
        );
        assert_eq!(
            super::on_conflict(&key, ["re\"gion", "id"]),
            " ON CONFLICT (\"id\", \"re\"\"gion\") DO NOTHING"
        );
    }

    #[test]
    fn quotes_and_doubles_quotes() {
        assert_eq!(super::quote_ident("order"), "\"order\"");
        assert_eq!(super::quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
