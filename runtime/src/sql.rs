//! What SQL text needs in every database Sluice talks to (PostgreSQL and
//! SQLite quote identifiers alike).

/// Quotes an SQL identifier: `"name"`, with `"` doubled inside.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_and_doubles_quotes() {
        assert_eq!(super::quote_ident("order"), "\"order\"");
        assert_eq!(super::quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
