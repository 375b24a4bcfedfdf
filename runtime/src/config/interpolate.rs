//! `${VAR}` interpolation in pipeline files.

/// A reference to an environment variable that is not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVar {
    /// The variable name.
    pub name: String,
    /// Byte offset of the `${` in the text.
    pub offset: usize,
}

/// Replaces `${NAME}` by the value of the environment variable `NAME`, and
/// `${NAME:-default}` by its value or `default` when unset or empty. `$${`
/// writes a literal `${`. Values are inserted as they are: inside a TOML
/// string, a value containing `"` or `\` must be escaped by whoever sets it.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, MissingVar> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut consumed = 0;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(stripped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = stripped;
            consumed += i + 3;
            continue;
        }
        if let Some(body) = after.strip_prefix("${")
            && let Some(end) = body.find('}')
        {
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            let value = lookup(name).filter(|v| !(default.is_some() && v.is_empty()));
            match (value, default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(MissingVar {
                        name: name.to_string(),
                        offset: consumed + i,
                    });
                }
            }
            rest = &body[end + 1..];
            consumed += i + 2 + end + 1;
            continue;
        }
        out.push('$');
        rest = &after[1..];
        consumed += i + 1;
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME_DIR" => Some("/home/x".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_variables_defaults_and_escapes() {
        assert_eq!(
            interpolate(
                "a=${HOME_DIR}/b c=${NOPE:-d} e=${EMPTY:-f} g=$${HOME_DIR} $5",
                env
            ),
            Ok("a=/home/x/b c=d e=f g=${HOME_DIR} $5".into())
        );
    }

    #[test]
    fn reports_the_missing_variable_and_where() {
        assert_eq!(
            interpolate("x = 1\ny = \"${MISSING}\"", env),
            Err(MissingVar {
                name: "MISSING".into(),
                offset: 11
            })
        );
    }
}
