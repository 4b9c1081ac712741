//! A strict reader of Prometheus text exposition (format 0.0.4), so that
//! the `--metrics-file` test needs nothing outside Cargo. It follows the
//! format's documentation and, where that is silent, the reference Go
//! parser (`expfmt`), and refuses what either refuses:
//!
//! - lines end in `\n`, the last one too; blank lines and plain `#`
//!   comments are skipped;
//! - `# HELP name text` (escapes `\\` and `\n` only) and `# TYPE name
//!   counter|gauge|histogram|summary|untyped`, each at most once per family,
//!   the TYPE before the family's first sample;
//! - metric names `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names
//!   `[a-zA-Z_][a-zA-Z0-9_]*` and not starting with `__` (reserved), a label
//!   at most once per sample;
//! - label values quoted, with escapes `\\`, `\"` and `\n` only;
//! - values as Go's `ParseFloat` reads them (`+Inf`, `-Inf`, `NaN` any
//!   case), but no hex, no `_` and nothing that overflows, as `expfmt`;
//!   an optional integer timestamp in milliseconds, then the line ends;
//! - all lines of a family together; no series (name and label set) twice;
//!   a histogram's `_bucket` samples carry `le`, a summary's quantiles
//!   `quantile`.

use std::collections::{HashMap, HashSet};

/// A metric type, as a `# TYPE` line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// In the order written, values unescaped.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// A metric family: its HELP, its TYPE (untyped when none was given) and
/// its samples, in the order written.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub help: Option<String>,
    pub typed: Option<MetricType>,
    pub samples: Vec<Sample>,
}

impl Family {
    /// The family's type: untyped when no TYPE line gave one.
    pub fn kind(&self) -> MetricType {
        self.typed.unwrap_or(MetricType::Untyped)
    }
}

/// A whole exposition, families in the order they began.
#[derive(Debug, Clone, PartialEq)]
pub struct Exposition {
    pub families: Vec<Family>,
}

impl Exposition {
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }

    /// Every sample named `name` (a histogram's `x_bucket` too).
    pub fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.families
            .iter()
            .flat_map(|f| &f.samples)
            .filter(move |s| s.name == name)
    }

    /// The value of the one sample named `name` whose labels include all of
    /// `labels`; an error when there is none or more than one.
    pub fn one(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64, String> {
        let hits: Vec<&Sample> = self
            .samples(name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .collect();
        match hits.as_slice() {
            [s] => Ok(s.value),
            _ => Err(format!(
                "{} samples of {name} with labels {labels:?}: {hits:?}",
                hits.len()
            )),
        }
    }
}

/// Reads `text`, or says which line breaks which rule.
pub fn parse(text: &str) -> Result<Exposition, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the last line does not end with a newline".to_owned());
    }
    let mut r = Reader::default();
    for (i, line) in text.split_terminator('\n').enumerate() {
        r.line(line)
            .map_err(|why| format!("line {}: {why}: {line:?}", i + 1))?;
    }
    Ok(Exposition {
        families: r.families,
    })
}

#[derive(Default)]
struct Reader {
    families: Vec<Family>,
    /// Family name to its index in `families`.
    index: HashMap<String, usize>,
    /// The family whose lines are being read; a family left may not return.
    current: Option<usize>,
    series: HashSet<(String, Vec<(String, String)>)>,
}

impl Reader {
    fn line(&mut self, line: &str) -> Result<(), String> {
        let mut c = Cursor::new(line);
        c.blanks();
        match c.peek() {
            None => Ok(()),
            Some('#') => {
                c.next();
                c.blanks();
                match c.token() {
                    "HELP" => self.help_line(&mut c),
                    "TYPE" => self.type_line(&mut c),
                    _ => Ok(()), // a plain comment
                }
            }
            Some(_) => self.sample_line(&mut c),
        }
    }

    /// The family `name`, begun here if new; refused if its lines were
    /// interrupted by another family's.
    fn enter(&mut self, name: &str) -> Result<&mut Family, String> {
        let i = match self.index.get(name) {
            Some(&i) if self.current == Some(i) => i,
            Some(_) => return Err(format!("the lines of family {name} are not together")),
            None => {
                self.families.push(Family {
                    name: name.to_owned(),
                    help: None,
                    typed: None,
                    samples: Vec::new(),
                });
                self.index.insert(name.to_owned(), self.families.len() - 1);
                self.families.len() - 1
            }
        };
        self.current = Some(i);
        Ok(&mut self.families[i])
    }

    /// The metric name after `# HELP` or `# TYPE`, and the blanks after it.
    fn comment_name<'a>(c: &mut Cursor<'a>) -> Result<&'a str, String> {
        c.blanks();
        let name = c.metric_name()?;
        if c.peek().is_some() && !c.blanks() {
            return Err(format!("invalid metric name {name}{}", c.rest()));
        }
        Ok(name)
    }

    fn help_line(&mut self, c: &mut Cursor<'_>) -> Result<(), String> {
        let name = Self::comment_name(c)?;
        let mut text = String::new();
        while let Some(ch) = c.next() {
            if ch == '\\' {
                match c.next() {
                    Some('\\') => text.push('\\'),
                    Some('n') => text.push('\n'),
                    other => return Err(format!("invalid escape \\{other:?} in HELP")),
                }
            } else {
                text.push(ch);
            }
        }
        let family = self.enter(name)?;
        if family.help.is_some() {
            return Err(format!("a second HELP for {name}"));
        }
        family.help = Some(text);
        Ok(())
    }

    fn type_line(&mut self, c: &mut Cursor<'_>) -> Result<(), String> {
        let name = Self::comment_name(c)?;
        let kind = match c.rest() {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" => MetricType::Untyped,
            other => return Err(format!("unknown metric type {other:?}")),
        };
        let family = self.enter(name)?;
        if family.typed.is_some() {
            return Err(format!("a second TYPE for {name}"));
        }
        if !family.samples.is_empty() {
            return Err(format!("TYPE for {name} after its samples"));
        }
        family.typed = Some(kind);
        Ok(())
    }

    /// The family a sample name belongs to: a histogram's or summary's
    /// suffixed samples belong to the base name's family.
    fn family_of<'a>(&self, name: &'a str) -> &'a str {
        for (suffix, kinds) in [
            ("_bucket", &[MetricType::Histogram][..]),
            ("_sum", &[MetricType::Histogram, MetricType::Summary][..]),
            ("_count", &[MetricType::Histogram, MetricType::Summary][..]),
        ] {
            if let Some(base) = name.strip_suffix(suffix) {
                let typed = self.index.get(base).and_then(|&i| self.families[i].typed);
                if typed.is_some_and(|t| kinds.contains(&t)) {
                    return base;
                }
            }
        }
        name
    }

    fn sample_line(&mut self, c: &mut Cursor<'_>) -> Result<(), String> {
        let name = c.metric_name()?;
        let spaced = c.blanks();
        let mut labels = Vec::new();
        if c.peek() == Some('{') {
            c.next();
            labels = Self::labels(c)?;
            c.blanks();
        } else if !spaced {
            return Err(format!("invalid metric name {name}{}", c.rest()));
        }
        let value = go_float(c.token()).ok_or("the value is not a number")?;
        let timestamp_ms = if c.blanks() && c.peek().is_some() {
            let t = c.token();
            Some(
                t.parse::<i64>()
                    .map_err(|_| format!("timestamp {t:?} is not integer milliseconds"))?,
            )
        } else {
            None
        };
        c.blanks();
        if c.peek().is_some() {
            return Err(format!("unexpected {:?} after the value", c.rest()));
        }

        let family = self.family_of(name).to_owned();
        let kind = self
            .index
            .get(&family)
            .and_then(|&i| self.families[i].typed)
            .unwrap_or(MetricType::Untyped);
        let needs = match kind {
            MetricType::Histogram if name == family => {
                return Err(format!(
                    "histogram {family} has only _bucket, _sum and _count samples"
                ));
            }
            MetricType::Histogram if name.ends_with("_bucket") => Some("le"),
            MetricType::Summary if name == family => Some("quantile"),
            _ => None,
        };
        if let Some(label) = needs {
            let bound = labels.iter().find(|(k, _)| k == label);
            if bound.is_none_or(|(_, v)| go_float(v).is_none()) {
                return Err(format!("{name} needs a numeric {label} label"));
            }
        }
        let mut key: Vec<(String, String)> = labels.clone();
        key.sort();
        if !self.series.insert((name.to_owned(), key)) {
            return Err("a duplicate series (same name and labels)".to_owned());
        }
        self.enter(&family)?.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
            timestamp_ms,
        });
        Ok(())
    }

    /// `name="value", ...}` after the `{`; a trailing comma is allowed.
    fn labels(c: &mut Cursor<'_>) -> Result<Vec<(String, String)>, String> {
        let mut labels: Vec<(String, String)> = Vec::new();
        loop {
            c.blanks();
            if c.peek() == Some('}') {
                c.next();
                return Ok(labels);
            }
            let name = c.label_name()?;
            if labels.iter().any(|(k, _)| k == name) {
                return Err(format!("label {name} twice"));
            }
            c.blanks();
            if c.next() != Some('=') {
                return Err(format!("no = after label {name}"));
            }
            c.blanks();
            if c.next() != Some('"') {
                return Err(format!("the value of label {name} is not quoted"));
            }
            let mut value = String::new();
            loop {
                match c.next() {
                    None => return Err(format!("the value of label {name} is not closed")),
                    Some('"') => break,
                    Some('\\') => match c.next() {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => {
                            return Err(format!(
                                "invalid escape \\{other:?} in the value of label {name}"
                            ));
                        }
                    },
                    Some(ch) => value.push(ch),
                }
            }
            labels.push((name.to_owned(), value));
            c.blanks();
            match c.next() {
                Some(',') => {}
                Some('}') => return Ok(labels),
                other => return Err(format!("{other:?} after the value of label {name}")),
            }
        }
    }
}

/// A float as Go's `strconv.ParseFloat` reads it, less what `expfmt`
/// refuses (hex, `_`, overflow).
fn go_float(s: &str) -> Option<f64> {
    let (negative, unsigned) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if s.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN); // Go takes no sign on NaN
    }
    // digits [. digits] [e [sign] digits], with at least one mantissa digit
    let b = unsigned.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let mut mantissa = digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(v) // Go's ErrRange
}

/// A position in one line.
struct Cursor<'a> {
    line: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(line: &'a str) -> Self {
        Cursor { line, at: 0 }
    }

    fn peek(&self) -> Option<char> {
        self.line[self.at..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.at += ch.len_utf8();
        Some(ch)
    }

    fn rest(&mut self) -> &'a str {
        let rest = &self.line[self.at..];
        self.at = self.line.len();
        rest
    }

    /// Skips spaces and tabs; whether there were any.
    fn blanks(&mut self) -> bool {
        let start = self.at;
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.at += 1;
        }
        self.at > start
    }

    /// Up to the next space, tab or the end of the line.
    fn token(&mut self) -> &'a str {
        let start = self.at;
        while self.peek().is_some_and(|ch| ch != ' ' && ch != '\t') {
            self.next();
        }
        &self.line[start..self.at]
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`
    fn metric_name(&mut self) -> Result<&'a str, String> {
        self.name(|ch| ch.is_ascii_alphabetic() || ch == '_' || ch == ':')
            .ok_or_else(|| format!("not a metric name at {:?}", &self.line[self.at..]))
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, not `__` (reserved).
    fn label_name(&mut self) -> Result<&'a str, String> {
        let name = self
            .name(|ch| ch.is_ascii_alphabetic() || ch == '_')
            .ok_or_else(|| format!("not a label name at {:?}", &self.line[self.at..]))?;
        if name.starts_with("__") {
            return Err(format!("label name {name} is reserved"));
        }
        Ok(name)
    }

    /// A first character `first` accepts, then more of those or digits.
    fn name(&mut self, first: impl Fn(char) -> bool) -> Option<&'a str> {
        let start = self.at;
        if !self.peek().is_some_and(&first) {
            return None;
        }
        while self
            .peek()
            .is_some_and(|ch| first(ch) || ch.is_ascii_digit())
        {
            self.next();
        }
        Some(&self.line[start..self.at])
    }
}
