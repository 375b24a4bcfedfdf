//! Text a plugin hands the host (log lines, rejection messages, codes and
//! fields, error strings) is untrusted input: it reaches terminals, log
//! files and dead letters. It is cut to a documented length and its control
//! characters are escaped, so a plugin can neither flood the log (a 20 MB
//! panic message) nor drive a terminal (escape sequences).

/// Longest message kept (log lines, rejection and error messages), in bytes.
pub const MAX_MESSAGE: usize = 4096;
/// Longest rejection code kept, in bytes.
pub const MAX_CODE: usize = 128;
/// Longest field name kept in a rejection, in bytes.
pub const MAX_FIELD: usize = 256;

/// `text` with control characters other than tab escaped (`\u{1b}`), cut
/// to at most `max` bytes (at a character boundary, then a note of how many
/// bytes of `text` were left out): one printable line.
pub fn clean(text: &str, max: usize) -> String {
    // Most text is short and printable: no control character can be in
    // it when no byte is an ASCII control or the lead byte 0xC2 of
    // U+0080..U+00BF (the C1 controls are U+0080..U+009F).
    if text.len() <= max
        && text
            .bytes()
            .all(|b| (b >= 0x20 || b == b'\t') && b != 0x7f && b != 0xc2)
    {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len().min(max) + 32);
    let mut used = 0;
    for c in text.chars() {
        let before = out.len();
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        if out.len() > max {
            out.truncate(before);
            break;
        }
        used += c.len_utf8();
    }
    if used < text.len() {
        out.push_str(&format!("… ({} more bytes cut)", text.len() - used));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_and_control_characters_escaped() {
        assert_eq!(clean("plain\ttext", 100), "plain\ttext");
        assert_eq!(clean("déjà vu ¡ok!", 100), "déjà vu ¡ok!");
        assert_eq!(clean("c1\u{85}next\u{7f}", 100), "c1\\u{85}next\\u{7f}");
        assert_eq!(clean("12345", 4), "1234… (1 more bytes cut)");
        assert_eq!(clean("\u{1b}[31mred\nline", 100), "\\u{1b}[31mred\\nline");
        let huge = "é".repeat(10_000_000);
        let c = clean(&huge, MAX_MESSAGE);
        assert!(c.len() < MAX_MESSAGE + 32, "{}", c.len());
        assert!(c.ends_with("… (19995904 more bytes cut)"), "{}", c.len());
        // Escapes count: a line of escapes stays within the cap too.
        let escapes = "\u{1b}".repeat(10_000);
        let c = clean(&escapes, 100);
        assert!(c.starts_with("\\u{1b}") && c.len() < 132, "{c}");
    }
}
