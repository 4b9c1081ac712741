//! The evidence file as JSON: serde_json with `float_roundtrip` (every
//! decimal reads as its nearest double, keeping its signed canonical form),
//! into a `Value` that refuses a repeated key (serde_json keeps the last).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::decl;

const DUPLICATE: &str = "duplicate key";

/// Parses one JSON value that spans all of `bytes` (surrounding whitespace
/// allowed); the error starts `line L column C:`.
pub(crate) fn parse(bytes: &[u8]) -> Result<Value, String> {
    if let Some((_, _, not_utf8)) = decl::utf8_error(bytes) {
        return Err(not_utf8.reason().to_owned());
    }
    match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(value)) => Ok(value),
        Err(e) if e.to_string().starts_with(DUPLICATE) => Err(duplicate_at_key_start(bytes, &e)),
        Err(e) => Err(decl::syntax(&e).reason().to_owned()),
    }
}

/// serde_json places the repeat after its key; the reason names its start.
fn duplicate_at_key_start(bytes: &[u8], e: &serde_json::Error) -> String {
    let line_start: usize = bytes
        .split_inclusive(|&b| b == b'\n')
        .take(e.line().saturating_sub(1))
        .map(<[u8]>::len)
        .sum();
    // The closing quote of the key; the opening one is the last quote before
    // it that no backslash escapes.
    let mut at = (line_start + e.column()).saturating_sub(1);
    while at > 0 {
        at -= 1;
        let backslashes = bytes[..at]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if bytes[at] == b'"' && backslashes % 2 == 0 {
            break;
        }
    }
    let (line, column) = crate::text::line_col(bytes, at);
    let msg = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    format!(
        "line {line} column {column}: {}",
        msg.strip_suffix(&suffix).unwrap_or(&msg)
    )
}

/// A `Value` whose objects have no repeated key, at any depth.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Number(i.into()))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(Value::Number(u.into()))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range of a double"))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.contains_key(&key) {
                return Err(de::Error::custom(format!("{DUPLICATE} {key:?}")));
            }
            let Strict(value) = map.next_value()?;
            members.insert(key, value);
        }
        Ok(Value::Object(members))
    }
}
