//! Commands on stdin, read in bounded lines (README, "Command line").
//!
//! A line is at most [`MAX_LINE`] bytes of UTF-8. A longer line, or one that
//! is not UTF-8, becomes one error (quoting at most [`QUOTE`] bytes of it)
//! and the rest of it is discarded without being stored, so memory stays
//! bounded whatever arrives. End of input ends the reader, nothing else.

use std::io::{self, BufRead};

/// Longest command line, newline excluded.
pub(crate) const MAX_LINE: usize = 4096;

/// Most bytes of a bad line quoted in its error message.
pub(crate) const QUOTE: usize = 200;

/// Reads `input` to its end, handing each non-blank line (or the error
/// about it) to `each`; stops early when `each` returns false.
pub(crate) fn read_lines(
    mut input: impl BufRead,
    mut each: impl FnMut(Result<String, String>) -> bool,
) -> io::Result<()> {
    // Holds at most MAX_LINE + 1 bytes: one past the limit marks it too long.
    let mut line = Vec::with_capacity(256);
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            // End of input: a last line without a newline still counts.
            if !line.is_empty() {
                if let Some(item) = finish(&line) {
                    each(item);
                }
            }
            return Ok(());
        }
        let newline = buf.iter().position(|&b| b == b'\n');
        let piece = &buf[..newline.unwrap_or(buf.len())];
        let room = (MAX_LINE + 1).saturating_sub(line.len());
        line.extend_from_slice(&piece[..piece.len().min(room)]);
        let used = newline.map_or(buf.len(), |i| i + 1);
        input.consume(used);
        if newline.is_some() {
            let item = finish(&line);
            line.clear();
            if let Some(item) = item {
                if !each(item) {
                    return Ok(());
                }
            }
        }
    }
}

/// The command of one complete line, an error about it, or nothing for a
/// blank line.
fn finish(line: &[u8]) -> Option<Result<String, String>> {
    if line.len() > MAX_LINE {
        return Some(Err(format!(
            "command line longer than {MAX_LINE} bytes, ignored: {}",
            quote(line)
        )));
    }
    match std::str::from_utf8(line) {
        Ok(s) if s.trim().is_empty() => None,
        Ok(s) => Some(Ok(s.trim().to_owned())),
        Err(e) => Some(Err(format!(
            "command line is not UTF-8 (invalid byte at offset {}), ignored: {}",
            e.valid_up_to(),
            quote(line)
        ))),
    }
}

/// At most [`QUOTE`] bytes of `bytes`, quoted with everything but printable
/// ASCII escaped, so the quote is one line of plain text.
pub(crate) fn quote(bytes: &[u8]) -> String {
    let cut = bytes.len() > QUOTE;
    let shown = &bytes[..bytes.len().min(QUOTE)];
    format!(
        "\"{}\"{}",
        shown.escape_ascii(),
        if cut { "..." } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<Result<String, String>> {
        let mut out = Vec::new();
        // A small buffer, so lines straddle reads.
        let reader = io::BufReader::with_capacity(7, input);
        read_lines(reader, |l| {
            out.push(l);
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn plain_lines_blank_lines_and_a_last_line_without_newline() {
        assert_eq!(
            lines(b"stats\n\n  reset a \r\nshutdown"),
            vec![
                Ok("stats".to_owned()),
                Ok("reset a".to_owned()),
                Ok("shutdown".to_owned())
            ]
        );
    }

    #[test]
    fn a_long_line_is_one_bounded_error_and_the_next_line_works() {
        let mut input = vec![b'x'; 100_000];
        input.extend_from_slice(b"\nstats\n");
        let out = lines(&input);
        assert_eq!(out.len(), 2, "{out:?}");
        let err = out[0].as_ref().unwrap_err();
        assert!(
            err.starts_with("command line longer than 4096 bytes"),
            "{err}"
        );
        assert!(err.len() < 300, "{err}");
        assert_eq!(out[1], Ok("stats".to_owned()));
    }

    #[test]
    fn exactly_the_limit_is_accepted() {
        let mut input = vec![b'y'; MAX_LINE];
        input.push(b'\n');
        assert_eq!(lines(&input), vec![Ok("y".repeat(MAX_LINE))]);
    }

    #[test]
    fn non_utf8_is_one_escaped_error_and_the_next_line_works() {
        let out = lines(b"re\xffset\nstats\n");
        let err = out[0].as_ref().unwrap_err();
        assert!(err.contains("not UTF-8"), "{err}");
        assert!(err.contains(r#""re\xffset""#), "{err}");
        assert_eq!(out[1], Ok("stats".to_owned()));
    }

    #[test]
    fn quote_escapes_and_cuts() {
        assert_eq!(quote(b"a\nb\"c"), r#""a\nb\"c""#);
        let q = quote(&[b'z'; 500]);
        assert_eq!(q.len(), 2 + QUOTE + 3);
        assert!(q.ends_with("\"..."));
    }
}
