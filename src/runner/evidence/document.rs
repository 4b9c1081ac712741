//! The evidence document (schemaVersion 1), read from the verified JSON
//! value; unknown fields are ignored here (the signature still covers them).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::clock::Timestamp;

/// The only schema version this build reads.
pub(crate) const SCHEMA_VERSION: u64 = 1;

/// A verified evidence file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Evidence {
    pub(crate) hostname: String,
    pub(crate) collected_at: Timestamp,
    /// By control id (sorted, for deterministic sub-results).
    pub(crate) controls: BTreeMap<String, Control>,
}

/// One control's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Control {
    pub(crate) passed: bool,
    /// Framework -> articles (sorted, without repeats; may be empty).
    pub(crate) frameworks: BTreeMap<String, Vec<String>>,
}

/// Reads the document. The error names the field and what is wrong with it.
pub(crate) fn read(value: &Value) -> Result<Evidence, String> {
    let Value::Object(top) = value else {
        return Err(format!("expected a JSON object, got {}", show(value)));
    };
    check_schema_version(top)?;
    let hostname = string(top, "hostname", "hostname")?.to_owned();
    let collected_at = string(top, "collectedAt", "collectedAt")?;
    let collected_at = Timestamp::parse_rfc3339(collected_at)
        .map_err(|e| format!("field \"collectedAt\": {e}"))?;
    let list = match top.get("controls") {
        Some(Value::Array(list)) => list,
        None | Some(Value::Null) => return Err("field \"controls\" is missing".to_owned()),
        Some(other) => {
            return Err(format!(
                "field \"controls\": expected an array, got {}",
                show(other)
            ));
        }
    };
    let mut controls = BTreeMap::new();
    for (i, entry) in list.iter().enumerate() {
        let at = format!("controls[{i}]");
        let Value::Object(entry) = entry else {
            return Err(format!(
                "field \"{at}\": expected an object, got {}",
                show(entry)
            ));
        };
        let id = string(entry, "controlId", &format!("{at}.controlId"))?.to_owned();
        let passed = match entry.get("passed") {
            Some(Value::Bool(b)) => *b,
            None | Some(Value::Null) => return Err(format!("field \"{at}.passed\" is missing")),
            Some(other) => {
                return Err(format!(
                    "field \"{at}.passed\": expected true or false, got {}",
                    show(other)
                ));
            }
        };
        let frameworks = framework_articles(entry, &at)?;
        // Two results for one control are ambiguous: refuse rather than pick.
        if controls
            .insert(id.clone(), Control { passed, frameworks })
            .is_some()
        {
            return Err(format!("controlId {:?} appears more than once", short(&id)));
        }
    }
    Ok(Evidence {
        hostname,
        collected_at,
        controls,
    })
}

fn check_schema_version(top: &Map<String, Value>) -> Result<(), String> {
    let version = env!("CARGO_PKG_VERSION");
    match top.get("schemaVersion") {
        None | Some(Value::Null) => Err(format!(
            "field \"schemaVersion\" is missing; probewheel {version} reads schemaVersion \
             {SCHEMA_VERSION}"
        )),
        // 1 and 1.0 are the same JSON number (and the same canonical form).
        Some(Value::Number(n)) if n.as_f64() == Some(SCHEMA_VERSION as f64) => Ok(()),
        Some(other) => Err(format!(
            "evidence schemaVersion {} is not supported by probewheel {version}; upgrade \
             probewheel or pin the collector to schemaVersion {SCHEMA_VERSION}",
            show(other)
        )),
    }
}

fn framework_articles(
    entry: &Map<String, Value>,
    at: &str,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut out = BTreeMap::new();
    let map = match entry.get("frameworkArticles") {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(format!(
                "field \"{at}.frameworkArticles\": expected an object, got {}",
                show(other)
            ));
        }
    };
    for (framework, articles) in map {
        let field = format!("{at}.frameworkArticles.{framework}");
        let Value::Array(articles) = articles else {
            return Err(format!(
                "field \"{}\": expected an array of strings, got {}",
                short(&field),
                show(articles)
            ));
        };
        let mut list = Vec::with_capacity(articles.len());
        for a in articles {
            match a {
                Value::String(s) => list.push(s.clone()),
                other => {
                    return Err(format!(
                        "field \"{}\": expected an array of strings, got {} in it",
                        short(&field),
                        show(other)
                    ));
                }
            }
        }
        list.sort();
        list.dedup();
        out.insert(framework.clone(), list);
    }
    Ok(out)
}

fn string<'a>(map: &'a Map<String, Value>, key: &str, field: &str) -> Result<&'a str, String> {
    match map.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(format!("field \"{field}\" is missing")),
        Some(other) => Err(format!(
            "field \"{field}\": expected a string, got {}",
            show(other)
        )),
    }
}

/// A value, shown short for a failure reason.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{:?}", short(s)),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// At most 60 characters of `s`, for reasons.
pub(crate) fn short(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut cut: String = s.chars().take(MAX).collect();
        cut.push('…');
        cut
    }
}
