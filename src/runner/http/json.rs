//! `bodyJson`: values the body, parsed as JSON, must hold at JSON Pointers
//! (RFC 6901).

use serde_json::Value;

use crate::decl::{Declaration, FieldError, expected};

const FIELD: &str = "bodyJson";

/// Longest value shown in a reason.
const SHOWN: usize = 64;

/// The validated `bodyJson`: pointers and the values expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BodyJson {
    want: Vec<(String, Value)>,
}

impl BodyJson {
    /// None when absent, `null` or `{}`.
    pub(crate) fn from_decl(decl: &Declaration) -> Result<Option<BodyJson>, FieldError> {
        let map = match decl.get(FIELD) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(expected(FIELD, "an object of JSON Pointer to value", other));
            }
        };
        for pointer in map.keys() {
            if let Err(why) = check_pointer(pointer) {
                return Err(FieldError::new(
                    FIELD,
                    format!(
                        "{} is not a JSON Pointer (RFC 6901): {why}",
                        crate::text::quoted(crate::text::head(pointer, SHOWN))
                    ),
                ));
            }
        }
        let want: Vec<_> = map.iter().map(|(p, v)| (p.clone(), v.clone())).collect();
        Ok((!want.is_empty()).then_some(BodyJson { want }))
    }

    /// Judges `body`: the first pointer whose value differs, as a reason.
    pub(crate) fn check(&self, body: &[u8]) -> Result<(), String> {
        let doc: Value =
            serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
        for (pointer, want) in &self.want {
            let found = match doc.pointer(pointer) {
                Some(v) if v == want => continue,
                Some(v) => show(v),
                None => "missing".to_owned(),
            };
            return Err(format!(
                "body JSON at {}: expected {}, found {found}",
                crate::text::quoted(pointer),
                show(want)
            ));
        }
        Ok(())
    }
}

/// A value for a reason, on one line, long ones cut.
fn show(v: &Value) -> String {
    let text = v.to_string();
    let head = crate::text::head(&text, SHOWN);
    if head.len() < text.len() {
        format!("{head}...")
    } else {
        text
    }
}

/// RFC 6901: empty (the whole document), or `/`-separated reference tokens
/// in which `~` only starts `~0` or `~1`.
fn check_pointer(p: &str) -> Result<(), &'static str> {
    if !p.is_empty() && !p.starts_with('/') {
        return Err("it must be empty or start with /");
    }
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err("~ must be followed by 0 or 1");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn decl(body_json: Value) -> Declaration {
        Declaration::from_value(
            "j",
            json!({"kind": "http", "mode": "enforce", "url": "http://127.0.0.1:1/", "bodyJson": body_json}),
        )
    }

    fn judge(want: Value, body: &str) -> Result<(), String> {
        BodyJson::from_decl(&decl(want))
            .unwrap()
            .unwrap()
            .check(body.as_bytes())
    }

    #[test]
    fn pointers_follow_rfc_6901_escapes() {
        let body = r#"{"a/b": 1, "m~n": 2, "": 3, "list": [10, {"x": null}]}"#;
        assert_eq!(judge(json!({"/a~1b": 1, "/m~0n": 2, "/": 3}), body), Ok(()));
        assert_eq!(
            judge(json!({"/list/0": 10, "/list/1/x": null}), body),
            Ok(())
        );
        assert_eq!(
            judge(
                json!({"": {"a/b": 1, "m~n": 2, "": 3, "list": [10, {"x": null}]}}),
                body
            ),
            Ok(())
        );
    }

    #[test]
    fn a_failure_names_the_pointer_the_expected_and_the_found() {
        let body = r#"{"status": "DOWN", "checks": {"db": true}}"#;
        assert_eq!(
            judge(json!({"/status": "UP", "/checks/db": true}), body),
            Err(r#"body JSON at "/status": expected "UP", found "DOWN""#.to_owned())
        );
        assert_eq!(
            judge(json!({"/checks/cache": true}), body),
            Err(r#"body JSON at "/checks/cache": expected true, found missing"#.to_owned())
        );
        // Equality is of JSON values: 1 is not "1", and 1 is 1.0 only as serde_json says.
        assert!(judge(json!({"/n": "1"}), r#"{"n": 1}"#).is_err());
        let not_json = judge(json!({"/status": "UP"}), "<html>down</html>").unwrap_err();
        assert!(not_json.starts_with("the body is not JSON: "), "{not_json}");
    }

    #[test]
    fn a_long_value_is_cut_in_the_reason() {
        let long = "x".repeat(500);
        let why = judge(json!({"/a": "y"}), &format!(r#"{{"a": "{long}"}}"#)).unwrap_err();
        assert!(why.len() < 200 && why.ends_with("..."), "{why}");
    }

    #[test]
    fn invalid_pointers_and_shapes_make_the_declaration_invalid() {
        for bad in [
            json!({"status": "UP"}),
            json!({"/a~2": 1}),
            json!({"/a~": 1}),
            json!(["/a"]),
            json!("/a"),
        ] {
            let e = BodyJson::from_decl(&decl(bad.clone())).unwrap_err();
            assert_eq!(e.field(), FIELD, "{bad}");
        }
        assert_eq!(BodyJson::from_decl(&decl(json!({}))).unwrap(), None);
    }
}
