//! The declarations file. [`parse`] rejects only what makes the whole file
//! unusable and reads the shared fields, so one bad entry never takes the
//! others down; each kind reads its own fields through [`Declaration`]'s
//! typed getters (the `invalid declaration:` reasons).
//!
#![doc = include_str!("../../docs/declarations.md")]

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::file::{OpenError, RegularFile};

#[cfg(test)]
mod tests;

pub use crate::vocab::{Mode, ParseModeError};

/// Largest declarations file accepted, in bytes.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Interval used when `intervalSeconds` is absent or itself invalid.
pub const DEFAULT_INTERVAL_SECS: u64 = 30;

/// Largest accepted `intervalSeconds`: one year (larger is invalid).
pub const MAX_INTERVAL_SECS: u64 = 365 * 24 * 3600;

/// A field of the declarations reference: one row of its tables, from
/// which `docs/declarations.md` is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Field {
    /// The name, as written in the file.
    pub name: &'static str,
    /// The type and range, in words.
    pub ty: &'static str,
    /// The default, in words (`required` when there is none to take).
    pub default: &'static str,
    /// What it does, in a sentence.
    pub meaning: &'static str,
}

impl Field {
    pub(crate) const fn new(
        name: &'static str,
        ty: &'static str,
        default: &'static str,
        meaning: &'static str,
    ) -> Field {
        Field {
            name,
            ty,
            default,
            meaning,
        }
    }
}

/// The fields every probe has (a kind's own: `Registry::fields`).
#[rustfmt::skip]
pub const SHARED_FIELDS: &[Field] = &[
    Field::new("kind", "string", "required", "A built-in kind (each has its section below) or a kind registered by the embedding program."),
    Field::new("mode", "string: `enforce`, `observe` or `disabled`", "required", "`enforce` probes gate the rollout verdict; `observe` probes run and report but never gate; `disabled` probes are declared in the topology and never run."),
    Field::new("intervalSeconds", "integer, 0 to 31536000 (one year)", "30", "Time between the probe's slots."),
    Field::new("runOnce", "boolean", "false", "Run exactly once per reset (generation) instead of at every interval."),
    Field::new("timeoutSecs", "integer, 1 to 86400", "10", "Bounds every run:"),
    Field::new("failureThreshold", "integer, 1 to 100", "1", "Consecutive failed runs before the probe counts as `failing` in the rollout verdict."),
    Field::new("successThreshold", "integer, 1 to 100", "1", "Consecutive passed runs before the probe counts as `passing` in the rollout verdict."),
    Field::new("startupGraceSeconds", "integer, 0 to 86400", "0", "After a reset (and the probe's `initialDelaySeconds`), failures hold the verdict `pending` (awaiting `startupGrace`) instead of making it unhealthy,"),
    Field::new("initialDelaySeconds", "integer, 0 to 86400", "0", "The probe's first slot is due this long after the reset;"),
];

/// Whether `field` is one of [`SHARED_FIELDS`].
pub(crate) fn is_shared(field: &str) -> bool {
    SHARED_FIELDS.iter().any(|f| f.name == field)
}

/// `timeoutSecs` when absent: every run of every kind is bounded.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;

/// Largest `timeoutSecs`: one day.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;

/// Largest `failureThreshold` and `successThreshold`.
pub const MAX_THRESHOLD: u32 = 100;

/// Largest `startupGraceSeconds` and `initialDelaySeconds`: one day.
pub const MAX_DELAY_SECS: u64 = 24 * 3600;

/// Why the whole file was rejected (the module's "Validity rules"); the
/// engine emits it as `declarationsRejected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    reason: String,
    /// See [`Rejection::is_transient`].
    transient: bool,
}

impl Rejection {
    /// A rejection with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Rejection {
            reason: reason.into(),
            transient: false,
        }
    }

    /// `cannot read file: <error>`.
    fn unreadable(e: &io::Error) -> Self {
        let transient = matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS)
        );
        Rejection {
            reason: format!("cannot read file: {e}"),
            transient,
        }
    }

    /// Whether the file was not read for a shortage of descriptors or
    /// memory, not for the file: the engine then keeps the previous probes.
    pub(crate) fn is_transient(&self) -> bool {
        self.transient
    }

    /// The reason, for syntax errors starting `line L column C:`.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Rejection {}

/// One invalid field of one declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    field: String,
    problem: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The field's name as written in the file (`""` for the whole entry).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "invalid declaration: {}", self.problem)
        } else {
            write!(
                f,
                "invalid declaration: field `{}`: {}",
                self.field, self.problem
            )
        }
    }
}

impl std::error::Error for FieldError {}

/// One probe of the file, with the fields every kind shares already read.
#[derive(Debug, Clone)]
pub struct Declaration {
    name: Arc<str>,
    kind: Arc<str>,
    mode: Mode,
    unknown_mode: Option<String>,
    interval_secs: u64,
    run_once: bool,
    failure_threshold: u32,
    success_threshold: u32,
    startup_grace_secs: u64,
    initial_delay_secs: u64,
    fields: Map<String, Value>,
    invalid: Option<FieldError>,
    /// Fields nested too deeply to read (kept as `null`): invalid if read.
    too_deep: Option<Box<[String]>>,
}

impl Declaration {
    /// Reads the shared fields of one entry. Never fails: problems are kept
    /// in [`Declaration::invalid`].
    pub fn from_value(name: &str, value: Value) -> Declaration {
        let mut decl = Declaration {
            name: Arc::from(name),
            kind: Arc::from(""),
            mode: Mode::Enforce,
            unknown_mode: None,
            interval_secs: DEFAULT_INTERVAL_SECS,
            run_once: false,
            failure_threshold: 1,
            success_threshold: 1,
            startup_grace_secs: 0,
            initial_delay_secs: 0,
            fields: Map::new(),
            invalid: None,
            too_deep: None,
        };
        let fields = match value {
            Value::Object(map) => map,
            other => {
                decl.invalid = Some(FieldError::new(
                    "",
                    format!("expected an object, got {}", type_name(&other)),
                ));
                return decl;
            }
        };
        decl.fields = fields;
        // The first problem is kept; a bad field reads as its default.
        let mut first = None;
        if let Some(kind) = noted(decl.required_str("kind").map(Some), &mut first) {
            decl.kind = Arc::from(kind);
        }
        if let Some(s) = noted(decl.required_str("mode").map(Some), &mut first) {
            match Mode::from_name(s) {
                Some(m) => decl.mode = m,
                None => decl.unknown_mode = Some(s.to_owned()),
            }
        }
        let max = u64::from(MAX_THRESHOLD);
        let interval = decl.u64_in("intervalSeconds", 0, MAX_INTERVAL_SECS);
        decl.interval_secs = noted(interval, &mut first).unwrap_or(DEFAULT_INTERVAL_SECS);
        decl.run_once = noted(decl.bool_field("runOnce"), &mut first).unwrap_or(false);
        let failure = noted(decl.u64_in("failureThreshold", 1, max), &mut first);
        decl.failure_threshold = failure.map_or(1, |n| n as u32);
        let success = noted(decl.u64_in("successThreshold", 1, max), &mut first);
        decl.success_threshold = success.map_or(1, |n| n as u32);
        let grace = noted(
            decl.u64_in("startupGraceSeconds", 0, MAX_DELAY_SECS),
            &mut first,
        );
        decl.startup_grace_secs = grace.unwrap_or(0);
        let delay = noted(
            decl.u64_in("initialDelaySeconds", 0, MAX_DELAY_SECS),
            &mut first,
        );
        decl.initial_delay_secs = delay.unwrap_or(0);
        decl.invalid = first;
        decl
    }

    /// Reads one entry of a file, field by field: a repeated field makes it
    /// invalid, a field nested too deeply only if its kind reads it.
    fn from_raw(name: &str, raw: &RawValue) -> Declaration {
        let text = raw.get();
        if !text.starts_with('{') {
            let what = match text.as_bytes().first() {
                Some(b'[') => "an array",
                Some(b'"') => "a string",
                Some(b't' | b'f') => "a boolean",
                Some(b'n') => "null",
                _ => "a number",
            };
            let mut decl = Declaration::from_value(name, Value::Object(Map::new()));
            decl.invalid = Some(FieldError::new(
                "",
                format!("expected an object, got {what}"),
            ));
            return decl;
        }
        // The syntax was checked with the whole file.
        let fields: RawFields<'_> =
            serde_json::from_str(text).expect("an entry of a parsed file parses");
        let mut map = Map::new();
        let mut repeated: Option<String> = None;
        let mut too_deep: Vec<String> = Vec::new();
        for (field, value) in fields.0 {
            if map.contains_key(&field) {
                repeated.get_or_insert(field);
                continue;
            }
            let value = match serde_json::from_str::<Value>(value.get()) {
                Ok(v) => v,
                Err(_) => {
                    // Only nesting beyond serde_json's recursion limit gets here.
                    too_deep.push(field.clone());
                    Value::Null
                }
            };
            map.insert(field, value);
        }
        let mut decl = Declaration::from_value(name, Value::Object(map));
        if let Some(field) = repeated {
            decl.invalid = Some(FieldError::new(
                field,
                "appears more than once in this declaration",
            ));
        } else if let Some(field) = too_deep.iter().find(|f| is_shared(f)) {
            decl.invalid = Some(too_deep_to_read(field));
        }
        if !too_deep.is_empty() {
            decl.too_deep = Some(too_deep.into_boxed_slice());
        }
        decl
    }

    /// The probe's name (its key in the file).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// The `kind` as written (`""` when missing or not a string).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub(crate) fn kind_arc(&self) -> &Arc<str> {
        &self.kind
    }

    /// The mode; an unknown mode string is [`Mode::Enforce`] (fail closed).
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The mode string when it was not one of the three known ones.
    pub fn unknown_mode(&self) -> Option<&str> {
        self.unknown_mode.as_deref()
    }

    /// `intervalSeconds` as written (default 30), before the engine's floor.
    pub fn interval_secs(&self) -> u64 {
        self.interval_secs
    }

    /// `runOnce`.
    pub fn run_once(&self) -> bool {
        self.run_once
    }

    /// `failureThreshold` (default 1).
    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold
    }

    /// `successThreshold` (default 1).
    pub fn success_threshold(&self) -> u32 {
        self.success_threshold
    }

    /// `startupGraceSeconds` (default 0).
    pub fn startup_grace_secs(&self) -> u64 {
        self.startup_grace_secs
    }

    /// `initialDelaySeconds` (default 0).
    pub fn initial_delay_secs(&self) -> u64 {
        self.initial_delay_secs
    }

    /// `timeoutSecs`, or the default when absent or invalid (the kind that
    /// reads it reports an invalid value).
    pub fn timeout_secs(&self) -> u64 {
        self.u64_in("timeoutSecs", 1, MAX_TIMEOUT_SECS)
            .ok()
            .flatten()
            .unwrap_or(DEFAULT_TIMEOUT_SECS)
    }

    /// The fields nested too deeply to read.
    pub(crate) fn too_deep(&self) -> impl Iterator<Item = &str> {
        self.too_deep
            .iter()
            .flat_map(|f| f.iter().map(String::as_str))
    }

    /// The first problem with a shared field, if any.
    pub fn invalid(&self) -> Option<&FieldError> {
        self.invalid.as_ref()
    }

    /// The names of the fields as written (each once, in name order, `null`
    /// ones included).
    pub fn field_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.fields.keys().map(String::as_str)
    }

    /// A field's value; `null` counts as absent (renderers write every field).
    /// A `serde_json` 1 [`Value`]: see the crate docs, "Public surface".
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field).filter(|v| !v.is_null())
    }

    /// A required string field.
    pub fn required_str(&self, field: &str) -> Result<&str, FieldError> {
        self.str_field(field)?
            .ok_or_else(|| FieldError::new(field, "required field is missing"))
    }

    /// An optional string field.
    pub fn str_field(&self, field: &str) -> Result<Option<&str>, FieldError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(expected(field, "a string", other)),
        }
    }

    /// An optional boolean field.
    pub fn bool_field(&self, field: &str) -> Result<Option<bool>, FieldError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(expected(field, "true or false", other)),
        }
    }

    /// An optional integer field within `min..=max`.
    pub fn u64_in(&self, field: &str, min: u64, max: u64) -> Result<Option<u64>, FieldError> {
        self.int_in(field, min, max, Value::as_u64)
    }

    /// An optional signed integer field within `min..=max`.
    pub fn i64_in(&self, field: &str, min: i64, max: i64) -> Result<Option<i64>, FieldError> {
        self.int_in(field, min, max, Value::as_i64)
    }

    fn int_in<T: Copy + PartialOrd + fmt::Display>(
        &self,
        field: &str,
        min: T,
        max: T,
        read: fn(&Value) -> Option<T>,
    ) -> Result<Option<T>, FieldError> {
        let Some(v) = self.get(field) else {
            return Ok(None);
        };
        match read(v) {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(expected(
                field,
                &format!("an integer from {min} to {max}"),
                v,
            )),
        }
    }

    /// An optional array of strings (`[]` included); an error names the
    /// field and the first element that is not a string.
    ///
    /// # Examples
    ///
    /// ```
    /// use probewheel::Declaration;
    ///
    /// let d = Declaration::from_value(
    ///     "p",
    ///     serde_json::json!({"kind": "k", "mode": "observe", "tags": ["a", "b"], "bad": ["a", 1]}),
    /// );
    /// assert_eq!(d.str_array("tags"), Ok(Some(vec!["a", "b"])));
    /// assert_eq!(d.str_array("absent"), Ok(None));
    /// let err = d.str_array("bad").unwrap_err();
    /// assert_eq!(err.field(), "bad");
    /// assert_eq!(err.problem(), "expected an array of strings, element 1 is 1");
    /// ```
    pub fn str_array(&self, field: &str) -> Result<Option<Vec<&str>>, FieldError> {
        let Some(v) = self.get(field) else {
            return Ok(None);
        };
        let Value::Array(items) = v else {
            return Err(expected(field, "an array of strings", v));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.as_str()),
                // As written (cut), so that `["true"]` and `"true"` differ.
                other => Err(FieldError::new(
                    field,
                    format!(
                        "expected an array of strings, element {i} is {}",
                        other.to_string().chars().take(40).collect::<String>()
                    ),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// The value of a read, or its default with the first error kept in `first`.
fn noted<T>(read: Result<Option<T>, FieldError>, first: &mut Option<FieldError>) -> Option<T> {
    read.unwrap_or_else(|e| {
        first.get_or_insert(e);
        None
    })
}

/// The problem of a field nested too deeply to read.
pub(crate) fn too_deep_to_read(field: &str) -> FieldError {
    FieldError::new(field, "nested too deeply to read")
}

/// `expected <what>, got <value>` for `field`, with the value shown short.
pub(crate) fn expected(field: &str, what: &str, got: &Value) -> FieldError {
    FieldError::new(field, format!("expected {what}, got {}", show(got)))
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() <= 40 => format!("{s:?}"),
        Value::String(_) => "a long string".to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => type_name(other).to_owned(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A parsed declarations file: every probe, sorted by name (G11).
#[derive(Debug, Clone, Default)]
pub struct Declarations {
    probes: Vec<Declaration>,
}

impl Declarations {
    /// The probes, sorted by name.
    pub fn probes(&self) -> &[Declaration] {
        &self.probes
    }

    /// A set of declarations made in code (for `Builder::declarations`),
    /// sorted by name. A repeated name rejects the set, as in a file.
    ///
    /// # Examples
    ///
    /// ```
    /// use probewheel::{Declaration, Declarations};
    /// let p = |n: &str| Declaration::from_value(n, serde_json::json!({"kind": "ping", "mode": "observe"}));
    /// let set = Declarations::from_declarations(vec![p("b"), p("a")]).unwrap();
    /// assert_eq!(set.probes()[0].name(), "a");
    /// assert!(Declarations::from_declarations(vec![p("a"), p("a")]).is_err());
    /// ```
    pub fn from_declarations(
        probes: impl IntoIterator<Item = Declaration>,
    ) -> Result<Declarations, Rejection> {
        let mut probes: Vec<Declaration> = probes.into_iter().collect();
        probes.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = probes.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(Rejection::new(format!(
                "duplicate probe name {:?}",
                w[0].name()
            )));
        }
        Ok(Declarations { probes })
    }

    /// Number of probes.
    pub fn len(&self) -> usize {
        self.probes.len()
    }

    /// No probes declared.
    pub fn is_empty(&self) -> bool {
        self.probes.is_empty()
    }
}

/// Parses the bytes of a declarations file.
///
/// # Examples
///
/// ```
/// let decls = probewheel::decl::parse(br#"{
///     "ssh": {"kind": "ping", "mode": "observe", "host": "db"},
///     "typo": {"kind": "ping", "mode": "enforec", "intervalSeconds": 99999999999}
/// }"#).unwrap();
/// assert_eq!(decls.probes()[0].name(), "ssh");
/// let typo = &decls.probes()[1];
/// assert_eq!(typo.mode(), probewheel::Mode::Enforce); // unknown mode fails closed
///
/// let err = probewheel::decl::parse(b"{\"a\": 1,}").unwrap_err();
/// assert!(err.reason().starts_with("line 1 column 9:"), "{err}");
/// ```
pub fn parse(bytes: &[u8]) -> Result<Declarations, Rejection> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    check_encoding(bytes)?;
    let raw: RawFile<'_> = serde_json::from_slice(bytes).map_err(|e| {
        // serde_json rejects bytes that are not UTF-8 too, but as a syntax
        // error; say what it is when it is what stopped the parse.
        if let Some(bad) = utf8_error(bytes) {
            if (bad.0, bad.1) <= (e.line(), e.column()) {
                return bad.2;
            }
        }
        // Skipping a raw entry words some syntax errors vaguely ("key must
        // be a string" for a trailing comma); a typed parse of the same
        // bytes says it better when it stops at the same place.
        match serde_json::from_slice::<Value>(bytes) {
            Err(v) if (v.line(), v.column()) == (e.line(), e.column()) => syntax(&v),
            _ => syntax(&e),
        }
    })?;
    let mut probes: Vec<Declaration> = raw
        .0
        .into_iter()
        .map(|(name, value)| Declaration::from_raw(&name, value))
        .collect();
    probes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Declarations { probes })
}

/// Reads and parses the file at `path`; a missing file is an empty set (the
/// renderer writes none for an empty set).
pub fn load(path: &Path) -> Result<Declarations, Rejection> {
    match RegularFile::read_all(path, MAX_FILE_BYTES) {
        Ok(bytes) => parse(&bytes),
        Err(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound => Ok(Declarations::default()),
        Err(OpenError::Io(e)) => Err(Rejection::unreadable(&e)),
        Err(OpenError::TooLarge { len, .. }) => Err(too_large(len)),
        Err(not_regular) => Err(Rejection::new(not_regular.to_string())),
    }
}

fn too_large(len: u64) -> Rejection {
    Rejection::new(format!(
        "file is larger than {MAX_FILE_BYTES} bytes (1 MiB): {len} bytes"
    ))
}

pub(crate) fn syntax(e: &serde_json::Error) -> Rejection {
    let msg = e.to_string();
    // serde_json appends " at line L column C"; we put the position first.
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = msg.strip_suffix(&suffix).unwrap_or(&msg);
    Rejection::new(format!("line {} column {}: {msg}", e.line(), e.column()))
}

/// Rejects a BOM, UTF-16 and UTF-32 by name (JSON is UTF-8, RFC 8259 §8.1);
/// other bad bytes are named where they stop the parse ([`utf8_error`]).
fn check_encoding(bytes: &[u8]) -> Result<(), Rejection> {
    let utf16 = |order: &str| {
        Rejection::new(format!(
            "file is UTF-16 ({order}), not UTF-8; convert it, e.g. `iconv -f UTF-16 -t UTF-8`"
        ))
    };
    match bytes {
        [0xEF, 0xBB, 0xBF, ..] => {
            return Err(Rejection::new(
                "file starts with a UTF-8 byte order mark (EF BB BF); write it without one",
            ));
        }
        [0, 0, 0xFE, 0xFF, ..] | [0xFF, 0xFE, 0, 0, ..] => {
            return Err(Rejection::new("file is UTF-32, not UTF-8; convert it"));
        }
        [0xFE, 0xFF, ..] => return Err(utf16("big-endian, with a byte order mark")),
        [0xFF, 0xFE, ..] => return Err(utf16("little-endian, with a byte order mark")),
        [0, b, ..] if b.is_ascii() && *b != 0 => return Err(utf16("big-endian")),
        [b, 0, ..] if b.is_ascii() && *b != 0 => return Err(utf16("little-endian")),
        _ => {}
    }
    Ok(())
}

/// Where the first byte that is not UTF-8 is (line and column counted in
/// bytes, as serde_json counts them), with the rejection that names it.
pub(crate) fn utf8_error(bytes: &[u8]) -> Option<(usize, usize, Rejection)> {
    let at = std::str::from_utf8(bytes).err()?.valid_up_to();
    let (line, column) = crate::text::line_col(bytes, at);
    let rejection = Rejection::new(format!(
        "line {line} column {column}: file is not valid UTF-8 (byte 0x{:02X} at offset {at})",
        bytes[at]
    ));
    Some((line, column, rejection))
}

/// The top-level object as ordered, unparsed entries, rejecting repeated
/// names (with their position), so each probe is parsed on its own.
struct RawFile<'a>(Vec<(String, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for RawFile<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawFile<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object mapping probe names to declarations")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFile<'de>, A::Error> {
                let mut entries: Vec<(String, &'de RawValue)> = Vec::new();
                let mut seen = std::collections::HashSet::new();
                while let Some(name) = map.next_key::<String>()? {
                    if !seen.insert(name.clone()) {
                        return Err(de::Error::custom(format!("duplicate probe name {name:?}")));
                    }
                    let value: &'de RawValue = map.next_value()?;
                    entries.push((name, value));
                }
                Ok(RawFile(entries))
            }
        }
        d.deserialize_map(V)
    }
}

/// One declaration's fields, unparsed, in file order, repeats included.
struct RawFields<'a>(Vec<(String, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for RawFields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawFields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a declaration object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFields<'de>, A::Error> {
                let mut fields = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    fields.push((name, map.next_value()?));
                }
                Ok(RawFields(fields))
            }
        }
        d.deserialize_map(V)
    }
}
