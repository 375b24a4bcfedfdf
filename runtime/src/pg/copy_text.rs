//! Rows of `COPY` in PostgreSQL's text format: fields split by tabs, `\N`
//! for null, backslash escapes. Read from `COPY ... TO STDOUT` (the
//! snapshot), written for `COPY ... FROM STDIN` (the sink).

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

/// Appends one field to a row being written: `\N` for null, else the
/// text with backslash, tab, line feed and carriage return escaped (the
/// characters that would end the field or the row). Fields are separated
/// by the caller with `\t`, rows ended with `\n`.
pub fn write_field(value: Option<&str>, out: &mut Vec<u8>) {
    let Some(text) = value else {
        out.extend_from_slice(b"\\N");
        return;
    };
    let bytes = text.as_bytes();
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&bytes[from..i]);
        out.extend_from_slice(escaped);
        from = i + 1;
    }
    out.extend_from_slice(&bytes[from..]);
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
    fn written_fields_read_back_as_they_were() {
        let values = [
            Some("plain"),
            None,
            Some(""),
            Some("\\N"),
            Some("tab\tLF\nCR\r back\\slash \\t"),
            Some("ünïcødé \u{2028} 😀"),
            Some("\\"),
        ];
        let mut line = Vec::new();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                line.push(b'\t');
            }
            write_field(*v, &mut line);
        }
        assert!(!line.contains(&b'\n') && !line.contains(&b'\r'));
        let mut out = Vec::new();
        parse_row(&line, &mut out).unwrap();
        let back: Vec<Option<&str>> = out.iter().map(|v| v.as_deref()).collect();
        assert_eq!(back, values);
        let mut one = Vec::new();
        write_field(Some("a\tb\\"), &mut one);
        assert_eq!(one, b"a\\tb\\\\");
    }

    #[test]
    fn refuses_broken_fields() {
        let mut out = Vec::new();
        assert!(parse_row(b"abc\\", &mut out).is_err());
        assert!(parse_row(b"\xff", &mut out).is_err());
    }
}
