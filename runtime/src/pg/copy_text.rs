//! Rows of `COPY ... TO STDOUT` in PostgreSQL's text format: fields split
//! by tabs, `\N` for null, backslash escapes.

/// Splits one row (without its newline) into fields, unescaping each.
/// `out` is cleared and refilled; `None` stands for null.
pub fn parse_row(line: &[u8], out: &mut Vec<Option<String>>) -> Result<(), String> {
    out.clear();
    for field in line.split(|&b| b == b'\t') {
        if field == b"\\N" {
            out.push(None);
            continue;
        }
        out.push(Some(unescape(field)?));
    }
    Ok(())
}

fn unescape(field: &[u8]) -> Result<String, String> {
    if !field.contains(&b'\\') {
        return String::from_utf8(field.to_vec())
            .map_err(|_| "a COPY field is not UTF-8 (is the database encoding UTF8?)".to_string());
    }
    let mut bytes = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' {
            bytes.push(b);
            i += 1;
            continue;
        }
        let Some(&next) = field.get(i + 1) else {
            return Err("a COPY field ends with a lone backslash".into());
        };
        i += 2;
        match next {
            b'b' => bytes.push(8),
            b'f' => bytes.push(12),
            b'n' => bytes.push(b'\n'),
            b'r' => bytes.push(b'\r'),
            b't' => bytes.push(b'\t'),
            b'v' => bytes.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(next - b'0');
                let mut n = 1;
                while n < 3 && field.get(i).is_some_and(|c| (b'0'..=b'7').contains(c)) {
                    v = v * 8 + u32::from(field[i] - b'0');
                    i += 1;
                    n += 1;
                }
                bytes.push((v & 0xFF) as u8);
            }
            b'x' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let mut v = 0u32;
                let mut n = 0;
                while n < 2
                    && let Some(d) = field.get(i).and_then(|&c| hex(c))
                {
                    v = v * 16 + d;
                    i += 1;
                    n += 1;
                }
                if n == 0 {
                    bytes.push(b'x');
                } else {
                    bytes.push(v as u8);
                }
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes)
        .map_err(|_| "a COPY field is not UTF-8 (is the database encoding UTF8?)".to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(line: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        parse_row(line.as_bytes(), &mut out).unwrap();
        out
    }

    #[test]
    fn splits_fields_and_reads_nulls() {
        assert_eq!(
            row("1\tana\t\\N\t"),
            vec![
                Some("1".into()),
                Some("ana".into()),
                None,
                Some(String::new())
            ]
        );
    }

    #[test]
    fn unescapes_what_copy_escapes() {
        assert_eq!(
            row("a\\tb\\nc\\\\d\\re"),
            vec![Some("a\tb\nc\\d\re".into())]
        );
        assert_eq!(row("\\101\\x42\\b"), vec![Some("AB\u{8}".into())]);
        assert_eq!(row("\\\\N"), vec![Some("\\N".into())]);
        assert_eq!(row("caf\u{e9}"), vec![Some("café".into())]);
    }

    #[test]
    fn refuses_broken_fields() {
        let mut out = Vec::new();
        assert!(parse_row(b"abc\\", &mut out).is_err());
        assert!(parse_row(b"\xff", &mut out).is_err());
    }
}
