//! The `headers` field of http probes (`docs/declarations.md` says what is
//! valid) and the request head it shapes. Validation keeps anything out that
//! would split the head or make a server wait for a body.

use std::fmt;
use std::path::Path;

use serde_json::Value;

use crate::decl::{Declaration, FieldError, expected};
use crate::file::RegularFile;

/// The fields' names in declarations.
const FIELD: &str = "headers";
const FILES: &str = "headersFromFiles";

/// The largest `headersFromFiles` file.
const MAX_FILE_BYTES: u64 = 8 * 1024;

/// The most `headers` may add to a request head (servers refuse 8-16 KiB).
pub(crate) const MAX_HEADERS_BYTES: usize = 8 * 1024;

/// Headers that describe a request body, which a probe never sends.
const BODY_FRAMING: [&str; 2] = ["content-length", "transfer-encoding"];

/// Headers that carry credentials: sent only to the probe's own origin,
/// as curl and Go's net/http do.
const CREDENTIALS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// A probe's validated `headers` and `headersFromFiles`, in name order.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Headers {
    fields: Vec<(String, String)>,
    /// The names whose values came from `headersFromFiles`: never shown.
    secret: Vec<String>,
}

/// The values from files are left out.
impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.fields.iter().map(|(n, v)| {
                let shown = if self.secret.contains(n) {
                    "<from headersFromFiles>"
                } else {
                    v.as_str()
                };
                (n, shown)
            }))
            .finish()
    }
}

impl Headers {
    /// Validates the field's value; absent or `null` is no headers.
    pub(crate) fn from_value(value: Option<&Value>) -> Result<Headers, FieldError> {
        let mut headers = Headers::default();
        for (name, value) in object(FIELD, value, "an object of header name to string")? {
            let Value::String(value) = value else {
                let e = expected(FIELD, "a string", value);
                return Err(FieldError::new(FIELD, format!("{name:?}: {}", e.problem())));
            };
            headers.push(FIELD, name, value.clone())?;
        }
        Ok(headers)
    }

    /// `headers` and `headersFromFiles`, whose files are read now.
    pub(crate) fn from_decl(decl: &Declaration) -> Result<Headers, FieldError> {
        let mut headers = Headers::from_value(decl.get(FIELD))?;
        let files = object(
            FILES,
            decl.get(FILES),
            "an object of header name to file path",
        )?;
        for (name, path) in files {
            let Value::String(path) = path else {
                let e = expected(FILES, "a string", path);
                return Err(FieldError::new(FILES, format!("{name:?}: {}", e.problem())));
            };
            let value = read_value(name, path)?;
            headers.push(FILES, name, value)?;
            headers.secret.push(name.clone());
        }
        headers.fields.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(headers)
    }

    /// Adds one header of `field`, checked alone and with the others.
    fn push(&mut self, field: &str, name: &str, value: String) -> Result<(), FieldError> {
        check_name(field, name)?;
        check_value(field, name, &value)?;
        if let Some((earlier, _)) = self
            .fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Err(FieldError::new(
                field,
                format!("{earlier:?} and {name:?} name the same header"),
            ));
        }
        if BODY_FRAMING.iter().any(|f| f.eq_ignore_ascii_case(name)) {
            return Err(FieldError::new(
                field,
                format!("{name} cannot be set: a probe's GET request has no body"),
            ));
        }
        self.fields.push((name.to_owned(), value));
        let bytes: usize = self
            .fields
            .iter()
            .map(|(n, v)| n.len() + 2 + v.len() + 2)
            .sum();
        if bytes > MAX_HEADERS_BYTES {
            return Err(FieldError::new(
                field,
                format!(
                    "{bytes} bytes of headers, more than the {} KiB a probe sends",
                    MAX_HEADERS_BYTES / 1024
                ),
            ));
        }
        Ok(())
    }

    /// These headers without credentials, for another origin.
    pub(crate) fn without_credentials(&self) -> Headers {
        let fields = self
            .fields
            .iter()
            .filter(|(n, _)| !CREDENTIALS.iter().any(|c| c.eq_ignore_ascii_case(n)))
            .cloned()
            .collect();
        Headers {
            fields,
            secret: self.secret.clone(),
        }
    }

    /// No headers declared.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The declared value of `name` (any case).
    #[cfg(test)]
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request head of `method` `target`: the runner's valid
    /// `defaults`, each replaced by a declared header of that name, then the
    /// other declared headers.
    pub(crate) fn request_head(
        &self,
        method: &str,
        target: &str,
        defaults: &[(&str, &str)],
    ) -> String {
        let mut head = String::with_capacity(
            64 + method.len()
                + target.len()
                + defaults
                    .iter()
                    .map(|(n, v)| n.len() + v.len() + 4)
                    .sum::<usize>()
                + self
                    .fields
                    .iter()
                    .map(|(n, v)| n.len() + v.len() + 4)
                    .sum::<usize>(),
        );
        head.push_str(method);
        head.push(' ');
        head.push_str(target);
        head.push_str(" HTTP/1.1\r\n");
        let mut line = |name: &str, value: &str| {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        };
        for &(name, value) in defaults {
            match self
                .fields
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                Some((n, v)) => line(n, v),
                None => line(name, value),
            }
        }
        for (name, value) in &self.fields {
            if !defaults.iter().any(|(d, _)| d.eq_ignore_ascii_case(name)) {
                line(name, value);
            }
        }
        head.push_str("\r\n");
        head
    }
}

/// The object `field` holds; absent or `null` is empty.
fn object<'a>(
    field: &str,
    value: Option<&'a Value>,
    what: &str,
) -> Result<Vec<(&'a String, &'a Value)>, FieldError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => Ok(map.iter().collect()),
        Some(other) => Err(expected(field, what, other)),
    }
}

/// The trimmed content of a `headersFromFiles` file; errors name the path,
/// never the content.
fn read_value(name: &str, path: &str) -> Result<String, FieldError> {
    let invalid = |why: String| FieldError::new(FILES, format!("{name:?}: {path:?} {why}"));
    let bytes = RegularFile::read_all(Path::new(path), MAX_FILE_BYTES)
        .map_err(|e| invalid(format!("cannot be read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| invalid("is not UTF-8 text".into()))?;
    match text.trim() {
        "" => Err(invalid("is empty".into())),
        value => Ok(value.to_owned()),
    }
}

/// A header name must be a token (RFC 9110 §5.6.2).
fn check_name(field: &str, name: &str) -> Result<(), FieldError> {
    if name.is_empty() {
        return Err(FieldError::new(field, "a header name is empty"));
    }
    if let Some(bad) = name.chars().find(|&c| !is_tchar(c)) {
        return Err(FieldError::new(
            field,
            format!(
                "header name {name:?} contains {}, which is not allowed in a header name",
                describe(bad)
            ),
        ));
    }
    Ok(())
}

pub(crate) fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// A value may hold anything printable, spaces and tabs, and non-ASCII text
/// (sent as UTF-8); no control characters.
fn check_value(field: &str, name: &str, value: &str) -> Result<(), FieldError> {
    if let Some(bad) = value.chars().find(|&c| c != '\t' && c.is_control()) {
        return Err(FieldError::new(
            field,
            format!(
                "the value of {name:?} contains {}, which is not allowed in a header value",
                describe(bad)
            ),
        ));
    }
    Ok(())
}

fn describe(c: char) -> String {
    match c {
        '\r' => "a carriage return (CR)".to_owned(),
        '\n' => "a line feed (LF)".to_owned(),
        '\0' => "a NUL byte".to_owned(),
        ' ' => "a space".to_owned(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("{c:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Headers, FieldError> {
        Headers::from_value(Some(&v))
    }

    fn problem(v: Value) -> String {
        let e = parse(v).unwrap_err();
        assert_eq!(e.field().split('.').next(), Some("headers"), "{e:?}");
        e.problem().to_owned()
    }

    const DEFAULTS: [(&str, &str); 3] = [
        ("Host", "127.0.0.1:8080"),
        ("User-Agent", "probewheel/0.1.0"),
        ("Connection", "close"),
    ];

    fn head(h: &Headers) -> String {
        String::from_utf8(h.request_head("GET", "/health?x=1", &DEFAULTS).into_bytes()).unwrap()
    }

    #[test]
    fn absent_and_null_mean_no_headers_and_the_defaults_go_out_unchanged() {
        let none = Headers::from_value(None).unwrap();
        assert!(none.is_empty());
        assert_eq!(Headers::from_value(Some(&Value::Null)).unwrap(), none);
        assert_eq!(parse(json!({})).unwrap(), none);
        assert_eq!(
            head(&none),
            "GET /health?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: probewheel/0.1.0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn a_header_replaces_the_default_of_the_same_name_in_any_case() {
        let h = parse(json!({
            "host": "api.internal",
            "X-Probe": "1",
            "Accept": "application/json",
            "user-agent": "fleet-agent",
        }))
        .unwrap();
        assert_eq!(
            head(&h),
            "GET /health?x=1 HTTP/1.1\r\n\
             host: api.internal\r\n\
             user-agent: fleet-agent\r\n\
             Connection: close\r\n\
             Accept: application/json\r\n\
             X-Probe: 1\r\n\r\n"
        );
        assert_eq!(h.get("HOST"), Some("api.internal"));
        assert_eq!(h.get("x-probe"), Some("1"));
        assert_eq!(h.get("Authorization"), None);
    }

    #[test]
    fn an_authorization_header_replaces_the_one_from_url_credentials() {
        let h = parse(json!({"Authorization": "Bearer t0ken"})).unwrap();
        let head = h.request_head(
            "GET",
            "/",
            &[("Host", "h"), ("Authorization", "Basic dTpw")],
        );
        assert_eq!(
            head.as_str(),
            "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t0ken\r\n\r\n"
        );
    }

    #[test]
    fn without_credentials_keeps_every_other_header() {
        let h = parse(json!({
            "authorization": "Bearer t", "Cookie": "a=b", "Proxy-Authorization": "Basic x",
            "X-Probe": "1", "Cookie2": "kept",
        }))
        .unwrap();
        let foreign = h.without_credentials();
        assert_eq!(foreign.get("Authorization"), None);
        assert_eq!(foreign.get("Cookie"), None);
        assert_eq!(foreign.get("Proxy-Authorization"), None);
        assert_eq!(foreign.get("X-Probe"), Some("1"));
        assert_eq!(foreign.get("Cookie2"), Some("kept"));
    }

    #[test]
    fn cr_lf_or_nul_in_a_name_or_value_makes_the_declaration_invalid() {
        for (name, value, needle) in [
            ("X-A\r\nX-B", "1", "carriage return"),
            ("X-A\n", "1", "line feed"),
            ("X\0", "1", "NUL"),
            ("X-A", "1\r\nX-Injected: yes", "carriage return (CR)"),
            ("X-A", "1\nX", "line feed (LF)"),
            ("X-A", "a\0b", "NUL byte"),
            ("X-A", "bell\u{7}", "U+0007"),
            ("X-A", "del\u{7f}", "U+007F"),
        ] {
            let p = problem(json!({ name: value }));
            assert!(p.contains(needle), "{name:?}: {value:?}: {p}");
        }
    }

    #[test]
    fn names_must_be_tokens() {
        assert_eq!(problem(json!({"": "x"})), "a header name is empty");
        for (name, bad) in [
            ("X Probe", "a space"),
            ("X:Probe", "':'"),
            ("X(Probe)", "'('"),
            ("Pröbe", "'ö'"),
            ("X\"", "'\"'"),
        ] {
            let p = problem(json!({ name: "1" }));
            assert!(
                p.contains(bad) && p.contains("header name"),
                "{name:?}: {p}"
            );
        }
        // Every tchar is fine.
        assert!(parse(json!({"!#$%&'*+-.^_`|~09azAZ": "1"})).is_ok());
    }

    #[test]
    fn values_may_hold_tabs_spaces_and_utf8_and_be_empty() {
        let h = parse(json!({"X-A": "a\tb c", "X-B": "", "X-C": "grüße"})).unwrap();
        let head = head(&h);
        assert!(head.contains("X-A: a\tb c\r\n"), "{head}");
        assert!(head.contains("X-B: \r\n"), "{head}");
        assert!(head.contains("X-C: grüße\r\n"), "{head}");
    }

    #[test]
    fn other_shapes_are_invalid_with_a_reason() {
        assert_eq!(
            problem(json!(["X-A: 1"])),
            "expected an object of header name to string, got an array"
        );
        let e = parse(json!({"X-A": 1})).unwrap_err();
        assert_eq!(e.field(), "headers");
        assert_eq!(e.problem(), "\"X-A\": expected a string, got 1");
        assert!(parse(json!({"X-A": null})).is_err());
        assert_eq!(
            problem(json!({"x-a": "1", "X-A": "2"})),
            "\"X-A\" and \"x-a\" name the same header"
        );
    }

    #[test]
    fn body_framing_headers_are_refused() {
        for name in ["Content-Length", "transfer-encoding"] {
            let p = problem(json!({ name: "5" }));
            assert!(p.contains("has no body"), "{p}");
        }
    }

    #[test]
    fn the_headers_are_bounded() {
        let big = "v".repeat(MAX_HEADERS_BYTES);
        let p = problem(json!({ "X-Big": big }));
        assert!(p.contains("more than the 8 KiB"), "{p}");
        let fits = "v".repeat(MAX_HEADERS_BYTES - "X-Big: \r\n".len());
        assert!(parse(json!({ "X-Big": fits })).is_ok());
    }

    mod property {
        use proptest::prelude::*;
        use serde_json::{Map, Value};

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(500))]
            /// Whatever is accepted renders to a head that parses back to
            /// the same fields, with nothing injected.
            #[test]
            fn accepted_headers_render_a_well_formed_head(
                fields in proptest::collection::vec(
                    (
                        prop_oneof!["[A-Za-z0-9!#$%&'*+.^_`|~-]{1,10}", ".{0,10}"],
                        prop_oneof!["[ -~\t]{0,20}", ".{0,20}"],
                    ),
                    0..6,
                )
            ) {
                let map: Map<String, Value> = fields
                    .into_iter()
                    .map(|(n, v)| (n, Value::String(v)))
                    .collect();
                let value = Value::Object(map);
                if let Ok(h) = super::Headers::from_value(Some(&value)) {
                    let head = h.request_head("GET", "/", &super::DEFAULTS).into_bytes();
                    let mut parsed = [httparse::EMPTY_HEADER; 16];
                    let mut req = httparse::Request::new(&mut parsed);
                    let status = req.parse(&head).expect("head parses");
                    prop_assert!(status.is_complete());
                    let names: usize = req.headers.len();
                    let extra = h.fields.iter().filter(|(n, _)| {
                        !super::DEFAULTS.iter().any(|(d, _)| d.eq_ignore_ascii_case(n))
                    }).count();
                    prop_assert_eq!(names, super::DEFAULTS.len() + extra);
                }
            }
        }
    }
}
