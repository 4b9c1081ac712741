//! RFC 8785 JSON Canonicalization Scheme (JCS): the exact bytes an
//! evidence signature covers.
//!
//! - Objects: members sorted by the UTF-16 code units of their names (not by
//!   UTF-8 bytes, which is what serde_json's `BTreeMap` does: the two orders
//!   differ for characters above U+FFFF against U+E000..U+FFFF).
//! - Strings: only `"`, `\`, and control characters are escaped (`\b \f \n
//!   \r \t`, else `\u00xx` in lowercase hex); everything else is literal
//!   UTF-8.
//! - Numbers: every number is an IEEE 754 double printed as ECMAScript's
//!   `Number.prototype.toString` does. Integers are converted with `as f64`,
//!   so an integer beyond 2^53 loses precision exactly as JCS specifies
//!   (`9007199254740993` canonicalizes to `9007199254740992`).
//! - No whitespace.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Number, Value};

/// A value that has no canonical form: a number that is not a finite double
/// (only reachable with serde_json's `arbitrary_precision` feature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotCanonical(String);

impl fmt::Display for NotCanonical {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "number {} is not a finite IEEE 754 double", self.0)
    }
}

/// The canonical form of `value`.
pub(crate) fn canonicalize(value: &Value) -> Result<String, NotCanonical> {
    let mut out = String::new();
    write_value(&mut out, value)?;
    Ok(out)
}

fn write_value(out: &mut String, value: &Value) -> Result<(), NotCanonical> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => out.push_str(&number(n)?),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| utf16_cmp(a.0, b.0));
            out.push('{');
            for (i, (name, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, name);
                out.push(':');
                write_value(out, item)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Orders strings by their UTF-16 code units (RFC 8785 §3.2.3).
pub(crate) fn utf16_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// A JSON string as JCS writes it, which is serde_json's escaping: `"`,
/// `\\`, `\b \f \n \r \t`, other control characters as lowercase `\u00xx`.
fn write_string(out: &mut String, s: &str) {
    out.push_str(&Value::from(s).to_string());
}

fn number(n: &Number) -> Result<String, NotCanonical> {
    // u64/i64 go through `as f64` (round to nearest): JCS numbers are doubles.
    let f = if let Some(u) = n.as_u64() {
        u as f64
    } else if let Some(i) = n.as_i64() {
        i as f64
    } else {
        n.as_f64().ok_or_else(|| NotCanonical(n.to_string()))?
    };
    es_number(f).ok_or_else(|| NotCanonical(n.to_string()))
}

/// ECMAScript `Number::toString(x)` for a finite double; `None` for NaN and
/// the infinities, which JSON cannot carry.
pub(crate) fn es_number(x: f64) -> Option<String> {
    if !x.is_finite() {
        return None;
    }
    if x == 0.0 {
        return Some("0".to_owned()); // also -0
    }
    if x < 0.0 {
        return es_number(-x).map(|s| format!("-{s}"));
    }
    let (digits, exp) = shortest_digits(x)?;
    let k = digits.len() as i32;
    // ES: x = 0.digits * 10^n.
    let n = exp + 1;
    let s = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        format!("{int}.{frac}")
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let sign = if n - 1 < 0 { '-' } else { '+' };
        let e = (n - 1).abs();
        let (first, rest) = digits.split_at(1);
        if rest.is_empty() {
            format!("{first}e{sign}{e}")
        } else {
            format!("{first}.{rest}e{sign}{e}")
        }
    };
    Some(s)
}

/// The shortest digits that read back as `x` (no trailing zeros) and the
/// decimal exponent of the first one: x ~ d.ddd * 10^exp.
fn shortest_digits(x: f64) -> Option<(String, i32)> {
    // `{:e}` prints the shortest round-trip digits: "d[.ddd]e[-]E".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // When x lies exactly halfway between two shortest candidates, ES picks
    // the even one and Rust the upper one. A tie needs decimal steps finer
    // than the double's, so 16 or more digits, and an odd last digit.
    let odd = digits.bytes().last().is_some_and(|d| (d - b'0') % 2 == 1);
    if digits.len() < 16 || !odd {
        return Some((digits, exp));
    }
    // The exact decimal value of x (a double has at most 767 significant
    // digits, and exact formatting pads with zeros).
    let exact = format!("{x:.1100e}");
    let (exact_mantissa, exact_exp) = exact.split_once('e')?;
    let exact_digits: String = exact_mantissa.chars().filter(|c| *c != '.').collect();
    let exact_digits = exact_digits.trim_end_matches('0');
    let k = digits.len();
    if exact_exp.parse::<i32>().ok()? != exp
        || exact_digits.len() != k + 1
        || !exact_digits.ends_with('5')
    {
        return Some((digits, exp));
    }
    let low = &exact_digits[..k];
    if low != digits {
        return Some((low.trim_end_matches('0').to_owned(), exp)); // low is the even one
    }
    // Rust picked the lower, odd candidate: take the upper one.
    let mut up = low.as_bytes().to_vec();
    let mut i = up.len();
    loop {
        if i == 0 {
            up.insert(0, b'1');
            return Some((trim_zeros(up), exp + 1));
        }
        i -= 1;
        if up[i] == b'9' {
            up[i] = b'0';
        } else {
            up[i] += 1;
            return Some((trim_zeros(up), exp));
        }
    }
}

fn trim_zeros(mut digits: Vec<u8>) -> String {
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    String::from_utf8(digits).unwrap_or_default()
}
