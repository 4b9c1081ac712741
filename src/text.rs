//! Text as reasons and findings show it: cut on a character boundary,
//! escaped onto one line, a position as line and column. One of each.

use std::fmt::{self, Write as _};

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub(crate) fn head(s: &str, max: usize) -> &str {
    let mut cut = s.len().min(max);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// The longest suffix of `s` of at most `max` bytes that starts on a
/// character boundary.
pub(crate) fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Text with its control characters (newlines included) escaped, so that
/// it prints as one line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OneLine<'a>(pub(crate) &'a str);

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_debug())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// `s` in double quotes, with quotes, backslashes and unprintable
/// characters escaped as Rust writes them.
pub(crate) fn quoted(s: &str) -> String {
    format!("\"{}\"", s.escape_debug())
}

/// The line and column (both from 1, the column in bytes, as serde_json
/// counts them) of byte offset `at` in `bytes`.
pub(crate) fn line_col(bytes: &[u8], at: usize) -> (usize, usize) {
    let before = &bytes[..at.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    (line, before.len() - line_start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_land_on_character_boundaries() {
        assert_eq!(head("héllo", 2), "h");
        assert_eq!(head("héllo", 3), "hé");
        assert_eq!(head("abc", 10), "abc");
        assert_eq!(tail("héllo", 4), "llo");
        assert_eq!(tail("héllo", 5), "éllo");
        assert_eq!(tail("abc", 10), "abc");
    }

    #[test]
    fn one_line_escapes_only_control_characters() {
        assert_eq!(OneLine("a\nb\t\"é\"").to_string(), "a\\nb\\t\"é\"");
        assert_eq!(quoted("a\"b\n"), "\"a\\\"b\\n\"");
    }

    #[test]
    fn positions_count_lines_and_bytes_from_one() {
        let text = b"ab\ncd\n\xc3\xa9x";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 4), (2, 2));
        assert_eq!(line_col(text, 8), (3, 3));
        assert_eq!(line_col(text, 99), (3, 4));
    }
}
