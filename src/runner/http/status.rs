//! `expectStatus`: one code, a class (`"2xx"`), or a list of them; a
//! final status passes when any of them admits it.

use std::fmt;

use serde_json::Value;

use crate::decl::{Declaration, FieldError, expected};

use super::REDIRECTS;

const FIELD: &str = "expectStatus";
/// What a single value must be (the wording tests of the crate match).
const ONE: &str = "an integer from 100 to 599";

/// One entry of `expectStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Code(u16),
    /// `Class(2)` is `2xx`.
    Class(u16),
}

impl Want {
    fn admits(self, status: u16) -> bool {
        match self {
            Want::Code(code) => code == status,
            Want::Class(class) => status / 100 == class,
        }
    }

    fn admits_informational(self) -> bool {
        (100..200).any(|s| self.admits(s))
    }

    fn parse(v: &Value) -> Option<Want> {
        match v {
            Value::Number(n) => n
                .as_u64()
                .filter(|n| (100..=599).contains(n))
                .map(|n| Want::Code(n as u16)),
            Value::String(s) => match s.as_bytes() {
                [c @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] => {
                    Some(Want::Class(u16::from(c - b'0')))
                }
                _ => None,
            },
            _ => None,
        }
    }
}

impl fmt::Display for Want {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Want::Code(code) => write!(f, "{code}"),
            Want::Class(class) => write!(f, "{class}xx"),
        }
    }
}

/// The statuses that pass; displays as `200`, `2xx or 301`, `200, 204 or 301`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expect(Box<[Want]>);

impl Expect {
    /// `expectStatus`, 200 when absent or null.
    pub(crate) fn from_decl(decl: &Declaration) -> Result<Expect, FieldError> {
        let wants = match decl.get(FIELD) {
            None => vec![Want::Code(200)],
            Some(Value::Array(items)) if items.is_empty() => {
                return Err(FieldError::new(FIELD, "expected at least one status, got []"));
            }
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    Want::parse(item).ok_or_else(|| {
                        FieldError::new(
                            FIELD,
                            format!(
                                "expected codes from 100 to 599 or classes such as \"2xx\", element {i} is {}",
                                crate::text::head(&item.to_string(), 40)
                            ),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(v) => vec![Want::parse(v).ok_or_else(|| expected(FIELD, ONE, v))?],
        };
        Ok(Expect(wants.into()))
    }

    pub(crate) fn admits(&self, status: u16) -> bool {
        self.0.iter().any(|w| w.admits(status))
    }

    /// Redirects are followed only when no redirect code passes.
    pub(crate) fn follows_redirects(&self) -> bool {
        !REDIRECTS.iter().any(|&code| self.admits(code))
    }

    /// Whether a `1xx` passes (then interim responses are not skipped).
    pub(crate) fn admits_interim(&self) -> bool {
        self.0.iter().any(|w| w.admits_informational())
    }

    /// The `1xx` entries, which never meet a final status.
    pub(crate) fn informational(&self) -> impl Iterator<Item = String> + '_ {
        self.0
            .iter()
            .filter(|w| w.admits_informational())
            .map(ToString::to_string)
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let last = self.0.len() - 1;
        for (i, w) in self.0.iter().enumerate() {
            match i {
                0 => {}
                _ if i == last => f.write_str(" or ")?,
                _ => f.write_str(", ")?,
            }
            w.fmt(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<Expect, String> {
        let d = Declaration::from_value("p", json!({"kind": "http", "mode": "enforce", FIELD: v}));
        Expect::from_decl(&d).map_err(|e| e.problem().to_owned())
    }

    #[test]
    fn codes_classes_and_lists_admit_what_they_name() {
        let e = parse(json!(["2xx", 301])).unwrap();
        assert!(e.admits(200) && e.admits(299) && e.admits(301));
        assert!(!e.admits(302) && !e.admits(199) && !e.admits(300));
        assert_eq!(e.to_string(), "2xx or 301");
        assert!(!e.follows_redirects());
        let e = parse(json!([200, 204, "5XX"])).unwrap();
        assert_eq!(e.to_string(), "200, 204 or 5xx");
        assert!(e.follows_redirects() && !e.admits_interim());
        assert_eq!(parse(json!(204)).unwrap().to_string(), "204");
        assert!(!parse(json!("3xx")).unwrap().follows_redirects());
        let e = parse(json!([101, "1xx", 200])).unwrap();
        assert!(e.admits_interim());
        assert_eq!(e.informational().collect::<Vec<_>>(), ["101", "1xx"]);
    }

    #[test]
    fn invalid_values_name_what_is_accepted() {
        for (v, want) in [
            (
                json!("200"),
                r#"expected an integer from 100 to 599, got "200""#,
            ),
            (
                json!("6xx"),
                r#"expected an integer from 100 to 599, got "6xx""#,
            ),
            (json!(99), "expected an integer from 100 to 599, got 99"),
            (json!([]), "expected at least one status, got []"),
            (
                json!([200, "2xy"]),
                r#"expected codes from 100 to 599 or classes such as "2xx", element 1 is "2xy""#,
            ),
            (
                json!([[200]]),
                r#"expected codes from 100 to 599 or classes such as "2xx", element 0 is [200]"#,
            ),
        ] {
            assert_eq!(parse(v.clone()).err().as_deref(), Some(want), "{v}");
        }
    }
}
