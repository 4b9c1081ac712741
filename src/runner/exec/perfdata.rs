//! A Nagios plugin's output, as the monitoring-plugins development
//! guidelines write it: a first line `TEXT | PERFDATA`, optional lines of
//! long text, and from the first `|` on a later line to the end, more
//! perfdata. A perfdata item is `'label'=value[UOM];[warn];[crit];[min];[max]`;
//! only the label, the value and its unit are read (thresholds, min and
//! max are not carried).
//!
//! Values are converted to their unit's base: `s` (`ms`, `us`), `B` (`KB`,
//! `MB`, `GB`, `TB` as powers of 1024, as plugins such as `check_disk`
//! have always meant them), `%` and `c` as written, none for a plain
//! number. An item that does not parse (another unit, `U`, a label without
//! `=`, an unterminated quote, a value that is not a decimal or does not
//! fit a finite `f64`), has an empty
//! label or repeats an earlier label is skipped: it never fails the probe.

use crate::vocab::{PerfUnit, Perfdata};

/// The plugin's status text (its first line before `|`, trimmed) and its
/// perfdata. `cut`: `stdout` is only the start of what the plugin wrote,
/// so an item that runs into its end may be cut short and is dropped.
pub(super) fn parse_output(stdout: &[u8], cut: bool) -> (String, Vec<Perfdata>) {
    let all = String::from_utf8_lossy(stdout);
    let mut lines = all.split('\n').peekable();
    let mut perfdata = Vec::new();
    let first = lines.next().unwrap_or_default();
    let (text, mut perf) = match first.split_once('|') {
        Some((text, perf)) => (text, Some(perf)),
        None => (first, None),
    };
    let text = text.trim().to_owned();
    // Lines of long text until a `|`; every line after it is perfdata.
    let mut in_perf = false;
    loop {
        let last = lines.peek().is_none();
        if let Some(mut p) = perf {
            if cut && last {
                p = p.trim_end_matches(|c: char| !c.is_ascii_whitespace());
            }
            parse_perfdata(p, &mut perfdata);
        }
        let Some(line) = lines.next() else {
            return (text, perfdata);
        };
        perf = if in_perf {
            Some(line)
        } else {
            line.split_once('|').map(|(_, p)| {
                in_perf = true;
                p
            })
        };
    }
}

/// Appends the items of one perfdata string (whitespace separated) to
/// `out`, skipping what does not parse and labels already in `out`.
pub(super) fn parse_perfdata(mut s: &str, out: &mut Vec<Perfdata>) {
    loop {
        s = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
        if s.is_empty() {
            return;
        }
        let parsed = label(s).map(|(label, rest)| {
            let end = rest.find(|c: char| c.is_ascii_whitespace());
            let (data, tail) = rest.split_at(end.unwrap_or(rest.len()));
            (label, value(data), tail)
        });
        match parsed {
            Some((label, Some((value, unit)), tail)) => {
                if label.is_empty() || out.iter().any(|p| p.label == label) {
                    log::debug!("exec probe: perfdata label {label:?} empty or repeated: skipped");
                } else {
                    out.push(Perfdata::new(label, value, unit));
                }
                s = tail;
            }
            Some((label, None, tail)) => {
                log::debug!("exec probe: perfdata {label:?}: value not understood: skipped");
                s = tail;
            }
            None => {
                let end = s.find(|c: char| c.is_ascii_whitespace());
                log::debug!(
                    "exec probe: perfdata item not understood: skipped: {:?}",
                    crate::text::head(s, 64)
                );
                s = &s[end.unwrap_or(s.len())..];
            }
        }
    }
}

/// A label (quoted, `''` for a quote, or bare up to `=`) and what follows
/// its `=`.
fn label(s: &str) -> Option<(String, &str)> {
    let Some(mut rest) = s.strip_prefix('\'') else {
        let end = s.find(|c: char| c == '=' || c.is_ascii_whitespace())?;
        let rest = s[end..].strip_prefix('=')?;
        return Some((s[..end].to_owned(), rest));
    };
    let mut label = String::new();
    loop {
        let quote = rest.find('\'')?;
        label.push_str(&rest[..quote]);
        rest = &rest[quote + 1..];
        match rest.strip_prefix('\'') {
            Some(after) => {
                label.push('\'');
                rest = after;
            }
            None => break,
        }
    }
    Some((label, rest.strip_prefix('=')?))
}

/// `value[UOM]` before the first `;`, in the unit's base unit.
fn value(data: &str) -> Option<(f64, Option<PerfUnit>)> {
    let v = data.split(';').next().unwrap_or_default();
    let split = v
        .find(|c: char| !matches!(c, '0'..='9' | '.' | '+' | '-' | 'e' | 'E'))
        .unwrap_or(v.len());
    let (number, uom) = v.split_at(split);
    let number = decimal(number)?;
    let (value, unit) = match uom {
        "" => (number, None),
        "s" => (number, Some(PerfUnit::Seconds)),
        "ms" => (number / 1e3, Some(PerfUnit::Seconds)),
        "us" => (number / 1e6, Some(PerfUnit::Seconds)),
        "%" => (number, Some(PerfUnit::Percent)),
        "B" => (number, Some(PerfUnit::Bytes)),
        "KB" => (number * KIB, Some(PerfUnit::Bytes)),
        "MB" => (number * KIB * KIB, Some(PerfUnit::Bytes)),
        "GB" => (number * KIB * KIB * KIB, Some(PerfUnit::Bytes)),
        "TB" => (number * KIB * KIB * KIB * KIB, Some(PerfUnit::Bytes)),
        "c" => (number, Some(PerfUnit::Counter)),
        _ => return None,
    };
    value.is_finite().then_some((value, unit))
}

const KIB: f64 = 1024.0;

/// A decimal number as JSON writes it, also with a leading `+` or a bare
/// fraction (`.5`). serde_json's reader, already in the binary for the
/// declarations, saves the standard library's float parser and its tables.
fn decimal(s: &str) -> Option<f64> {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if unsigned.starts_with(['+', '-']) {
        return None;
    }
    let json = match (s.starts_with('-'), unsigned.starts_with('.')) {
        (_, false) if s.starts_with('+') => unsigned.to_owned(),
        (_, false) => return serde_json::from_slice(s.as_bytes()).ok(),
        (true, true) => format!("-0{unsigned}"),
        (false, true) => format!("0{unsigned}"),
    };
    serde_json::from_slice(json.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn items(s: &str) -> Vec<Perfdata> {
        let mut out = Vec::new();
        parse_perfdata(s, &mut out);
        out
    }

    fn p(label: &str, value: f64, unit: Option<PerfUnit>) -> Perfdata {
        Perfdata::new(label, value, unit)
    }

    #[test]
    fn units_are_converted_to_their_base() {
        use PerfUnit::*;
        assert_eq!(
            items("a=1s b=250ms c=1500us d=12.5% e=3B f=2KB g=1.5MB h=1GB i=1TB j=7c k=0.5"),
            [
                p("a", 1.0, Some(Seconds)),
                p("b", 0.25, Some(Seconds)),
                p("c", 0.0015, Some(Seconds)),
                p("d", 12.5, Some(Percent)),
                p("e", 3.0, Some(Bytes)),
                p("f", 2048.0, Some(Bytes)),
                p("g", 1572864.0, Some(Bytes)),
                p("h", 1073741824.0, Some(Bytes)),
                p("i", 1099511627776.0, Some(Bytes)),
                p("j", 7.0, Some(Counter)),
                p("k", 0.5, None),
            ]
        );
    }

    #[test]
    fn numbers_are_decimals_with_an_optional_sign_and_exponent() {
        let values: Vec<f64> = items("a=+1 b=-2.5 c=.5 d=-.25 e=1e3 f=1.5E-3 g=0 h=-0")
            .iter()
            .map(|p| p.value)
            .collect();
        assert_eq!(values, [1.0, -2.5, 0.5, -0.25, 1000.0, 0.0015, 0.0, -0.0]);
        let none = items("a=- b=+ c=. d=5. e=1e f=0x1 g=1.2.3 h=++1 i=+-1 j=1e999");
        assert!(none.is_empty(), "{none:?}");
    }

    #[test]
    fn thresholds_min_and_max_are_read_past() {
        assert_eq!(
            items(
                "time=0.000123s;;;0.000000;10.000000 /=46725595136B;267847005634;267847005634;0;270552530944"
            ),
            [
                p("time", 0.000123, Some(PerfUnit::Seconds)),
                p("/", 46725595136.0, Some(PerfUnit::Bytes)),
            ]
        );
        assert_eq!(
            items("rta=1ms;@10:20;~:50"),
            [p("rta", 0.001, Some(PerfUnit::Seconds))]
        );
    }

    #[test]
    fn quoted_labels_keep_spaces_equals_and_doubled_quotes() {
        assert_eq!(
            items("'free space /var'=5MB 'a=b'=1 'it''s'=2 ''''=3"),
            [
                p(
                    "free space /var",
                    5.0 * 1024.0 * 1024.0,
                    Some(PerfUnit::Bytes)
                ),
                p("a=b", 1.0, None),
                p("it's", 2.0, None),
                p("'", 3.0, None),
            ]
        );
    }

    #[test]
    fn what_does_not_parse_is_skipped_and_the_rest_kept() {
        let got = items(
            "ok=1 temp=40C u=U noequals 'open=5 ''=1 =2 dup=1 dup=2 nan=NaN inf=inf big=1e308TB neg=-3 e=1e3",
        );
        // The unterminated quote swallows nothing but its own item.
        assert_eq!(
            got,
            [
                p("ok", 1.0, None),
                p("dup", 1.0, None),
                p("neg", -3.0, None),
                p("e", 1000.0, None),
            ]
        );
    }

    #[test]
    fn the_output_text_is_the_first_line_before_the_bar() {
        let out = b"DISK OK - free space: / 48491MiB (52% inode=97%);| /=46725595136B;1;2;0;3\n";
        let (text, perf) = parse_output(out, false);
        assert_eq!(text, "DISK OK - free space: / 48491MiB (52% inode=97%);");
        assert_eq!(perf, [p("/", 46725595136.0, Some(PerfUnit::Bytes))]);
        let (text, perf) = parse_output(b"WARNING: warn\n", false);
        assert_eq!((text.as_str(), perf.len()), ("WARNING: warn", 0));
        let (text, perf) = parse_output(b"", false);
        assert_eq!((text.as_str(), perf.len()), ("", 0));
    }

    #[test]
    fn long_text_lines_are_skipped_and_perfdata_after_a_later_bar_is_read() {
        // The guidelines' example of a multi-line output.
        let out = b"DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\r\n\
            / 15272 MB (77%);\n\
            /boot 68 MB (69%);\n\
            /home 69357 MB (27%);\n\
            /var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n\
            /home=69357MB;253404;253409;0;253414 \n\
            /var/log=818MB;970;975;0;980\n";
        let (text, perf) = parse_output(out, false);
        assert_eq!(text, "DISK OK - free space: / 3326 MB (56%);");
        let labels: Vec<&str> = perf.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["/", "/boot", "/home", "/var/log"]);
        assert_eq!(perf[3].value, 818.0 * 1024.0 * 1024.0);
        // A bar in long text before any later perfdata is what starts it.
        let (_, perf) = parse_output(b"OK\nlong text a=1\nmore | b=2\nc=3", false);
        let labels: Vec<&str> = perf.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["b", "c"]);
    }

    #[test]
    fn an_item_that_may_have_been_cut_is_dropped() {
        let (text, perf) = parse_output(b"OK | a=1 b=12", true);
        assert_eq!(text, "OK");
        assert_eq!(perf, [p("a", 1.0, None)]);
        // Only the item at the cut: a complete earlier line counts in full.
        let (_, perf) = parse_output(b"OK | a=1 b=12\nlong text", true);
        assert_eq!(perf.len(), 2);
        let (_, perf) = parse_output(b"OK | a=1\nx | b=2 c=3", true);
        assert_eq!(perf, [p("a", 1.0, None), p("b", 2.0, None)]);
    }

    #[test]
    fn bytes_that_are_not_utf8_do_not_stop_the_parse() {
        let (text, perf) = parse_output(b"OK \xff\xfe | a\xff=1 b=2", false);
        assert_eq!(text, "OK \u{fffd}\u{fffd}");
        assert_eq!(perf, [p("a\u{fffd}", 1.0, None), p("b", 2.0, None)]);
    }

    /// How a plugin would write an item with no unit.
    fn format_item(label: &str, value: f64) -> String {
        format!("'{}'={value};;;;", label.replace('\'', "''"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), cut: bool) {
            let _ = parse_output(&bytes, cut);
        }

        #[test]
        fn never_panics_on_near_perfdata(s in "[ a-z'=;.0-9eE+%|\n-]{0,200}", cut: bool) {
            let (_, perf) = parse_output(s.as_bytes(), cut);
            for item in perf {
                prop_assert!(item.value.is_finite());
                prop_assert!(!item.label.is_empty());
            }
        }

        #[test]
        fn reads_back_what_a_plugin_writes(
            values in proptest::collection::btree_map(
                "[^\n\r\t ]{1,12}|[a-z ']{1,12}",
                // At most 15 significant digits: read exactly whether or
                // not serde_json's float_roundtrip is on.
                (-999_999_999_999_999i64..=999_999_999_999_999).prop_map(|n| n as f64 / 1000.0),
                0..8,
            )
        ) {
            let line: Vec<String> = values.iter().map(|(l, v)| format_item(l, *v)).collect();
            let out = format!("OK - fine | {}\n", line.join(" "));
            let (text, perf) = parse_output(out.as_bytes(), false);
            prop_assert_eq!(text, "OK - fine");
            let want: Vec<Perfdata> = values.iter().map(|(l, v)| p(l, *v, None)).collect();
            prop_assert_eq!(perf, want);
        }
    }
}
