//! The words every layer uses about a probe and a run (mode, status,
//! outcome, evidence sub-result); it imports none of those layers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::text;

/// How a probe's result is used by the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A failure gates the rollout.
    Enforce,
    /// Results are reported but do not gate.
    Observe,
    /// Declared, never run.
    Disabled,
}

impl Mode {
    /// Parses a mode string; unknown strings are `None` (a declaration reads
    /// them as [`Mode::Enforce`]; [`FromStr`] gives an error instead).
    pub fn from_name(s: &str) -> Option<Mode> {
        match s {
            "enforce" => Some(Mode::Enforce),
            "observe" => Some(Mode::Observe),
            "disabled" => Some(Mode::Disabled),
            _ => None,
        }
    }

    /// The name as written in files and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Observe => "observe",
            Mode::Disabled => "disabled",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Strict: only `enforce`, `observe` and `disabled` (unlike
/// [`Declaration::mode`](crate::Declaration::mode)).
///
/// # Examples
///
/// ```
/// use probewheel::Mode;
/// assert_eq!("observe".parse::<Mode>(), Ok(Mode::Observe));
/// let err = "Enforce".parse::<Mode>().unwrap_err();
/// assert_eq!(err.to_string(), r#"unknown mode "Enforce": expected enforce, observe or disabled"#);
/// ```
impl FromStr for Mode {
    type Err = ParseModeError;

    fn from_str(s: &str) -> Result<Mode, ParseModeError> {
        Mode::from_name(s).ok_or_else(|| ParseModeError(Unknown::new(s)))
    }
}

/// Pass or fail; there is no third status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The probe passed.
    Pass,
    /// The probe failed; the outcome carries a reason.
    Fail,
}

impl Status {
    /// The name as written in events: `pass` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Only `pass` and `fail`, as written in events.
///
/// # Examples
///
/// ```
/// use probewheel::Status;
/// assert_eq!("fail".parse::<Status>(), Ok(Status::Fail));
/// assert_eq!(Status::Pass.to_string(), "pass");
/// let err = "ok".parse::<Status>().unwrap_err();
/// assert_eq!(err.to_string(), r#"unknown status "ok": expected pass or fail"#);
/// ```
impl FromStr for Status {
    type Err = ParseStatusError;

    fn from_str(s: &str) -> Result<Status, ParseStatusError> {
        match s {
            "pass" => Ok(Status::Pass),
            "fail" => Ok(Status::Fail),
            _ => Err(ParseStatusError(Unknown::new(s))),
        }
    }
}

/// A string that is not a [`Mode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseModeError(Unknown);

impl ParseModeError {
    /// The string that was refused (its first 64 bytes at most).
    pub fn input(&self) -> &str {
        &self.0.shown
    }
}

impl fmt::Display for ParseModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt("mode", "enforce, observe or disabled", f)
    }
}

impl std::error::Error for ParseModeError {}

/// A string that is not a [`Status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseStatusError(Unknown);

impl ParseStatusError {
    /// The string that was refused (its first 64 bytes at most).
    pub fn input(&self) -> &str {
        &self.0.shown
    }
}

impl fmt::Display for ParseStatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt("status", "pass or fail", f)
    }
}

impl std::error::Error for ParseStatusError {}

/// Longest part of a refused word kept in its error.
const SHOWN_INPUT_BYTES: usize = 64;

/// A refused word, cut so that an error stays one short line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Unknown {
    shown: String,
    cut: bool,
}

impl Unknown {
    fn new(input: &str) -> Unknown {
        let shown = text::head(input, SHOWN_INPUT_BYTES);
        Unknown {
            shown: shown.to_owned(),
            cut: shown.len() < input.len(),
        }
    }

    fn fmt(&self, what: &str, accepted: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let more = if self.cut { "..." } else { "" };
        write!(
            f,
            "unknown {what} {:?}{more}: expected {accepted}",
            self.shown
        )
    }
}

/// One row of an evidence probe's `subResults`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubResult {
    /// The compliance control.
    pub control_id: String,
    /// Whether the control passed.
    pub status: Status,
    /// The framework this row covers.
    pub framework: String,
    /// The framework's article, if any.
    pub article: Option<String>,
    /// The mode the control is judged in.
    pub effective_mode: Mode,
    /// The reason of a `controlOverrides` entry, if one applied.
    pub override_reason: Option<String>,
}

/// One performance value a run measured (an `exec` probe's Nagios
/// perfdata), in its unit's base unit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Perfdata {
    /// The plugin's label, unquoted.
    pub label: String,
    /// The value in the base unit of `unit` (always finite).
    pub value: f64,
    /// The base unit; absent for a plain number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<PerfUnit>,
}

impl Perfdata {
    /// A value named `label`, already in `unit`'s base unit.
    pub fn new(label: impl Into<String>, value: f64, unit: Option<PerfUnit>) -> Perfdata {
        Perfdata {
            label: label.into(),
            value,
            unit,
        }
    }
}

/// Equal when label, unit and the value's bits are: an equivalence, so
/// events stay `Eq` (values are finite, and `-0.0` differs from `0.0`).
impl PartialEq for Perfdata {
    fn eq(&self, other: &Perfdata) -> bool {
        self.label == other.label
            && self.unit == other.unit
            && self.value.to_bits() == other.value.to_bits()
    }
}

impl Eq for Perfdata {}

/// The base unit of a [`Perfdata`] value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PerfUnit {
    /// Seconds (`s`; `ms` and `us` are converted).
    #[serde(rename = "s")]
    Seconds,
    /// Bytes (`B`; `KB`, `MB`, `GB` and `TB` are converted).
    #[serde(rename = "B")]
    Bytes,
    /// A percentage (`%`), 0 to 100 as written.
    #[serde(rename = "%")]
    Percent,
    /// A continuous counter (`c`).
    #[serde(rename = "c")]
    Counter,
}

impl PerfUnit {
    /// As written in events: `s`, `B`, `%` or `c`.
    pub fn as_str(self) -> &'static str {
        match self {
            PerfUnit::Seconds => "s",
            PerfUnit::Bytes => "B",
            PerfUnit::Percent => "%",
            PerfUnit::Counter => "c",
        }
    }
}

/// What one run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerOutcome {
    status: Status,
    /// Boxed, absent for a pass: an outcome travels by value in two words.
    detail: Option<Box<Detail>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Detail {
    reason: Option<String>,
    sub_results: Option<Vec<SubResult>>,
    perfdata: Vec<Perfdata>,
}

/// An outcome taken apart: status, reason, sub-results, perfdata.
pub(crate) type Parts = (
    Status,
    Option<String>,
    Option<Vec<SubResult>>,
    Vec<Perfdata>,
);

/// Longest `failureReason`, in bytes, before the marker `...[truncated]`
/// that [`RunnerOutcome::fail`] appends to a cut one.
pub const MAX_REASON_BYTES: usize = 512;
const TRUNCATED: &str = "...[truncated]";

impl RunnerOutcome {
    /// A pass.
    pub fn pass() -> Self {
        RunnerOutcome {
            status: Status::Pass,
            detail: None,
        }
    }

    /// A failure with a reason (cut to 512 bytes on a UTF-8 boundary).
    pub fn fail(reason: impl Into<String>) -> Self {
        Self::failed(truncate_reason(reason.into()))
    }

    /// A failure whose reason the runner cut itself (keeping the end of an
    /// exec's stderr, say): the marker is appended.
    pub(crate) fn fail_cut(body: String) -> Self {
        Self::failed(marked(text::head(&body, MAX_REASON_BYTES)))
    }

    fn failed(reason: String) -> Self {
        RunnerOutcome {
            status: Status::Fail,
            detail: Some(Box::new(Detail {
                reason: Some(reason),
                ..Detail::default()
            })),
        }
    }

    /// Attaches evidence sub-results.
    pub fn with_sub_results(mut self, rows: Vec<SubResult>) -> Self {
        self.detail.get_or_insert_default().sub_results = Some(rows);
        self
    }

    /// Attaches performance values, which the `probeResult` event carries
    /// as `perfdata` and `probewheel run --metrics-file` exports as
    /// `probewheel_probe_perfdata{probe,label}` (none: left as it is, so a
    /// pass stays small).
    ///
    /// # Examples
    ///
    /// ```
    /// use probewheel::{PerfUnit, Perfdata, RunnerOutcome};
    ///
    /// let outcome = RunnerOutcome::pass()
    ///     .with_perfdata(vec![Perfdata::new("queue", 12.0, None)]);
    /// assert_eq!(outcome.perfdata()[0].label, "queue");
    /// # let _ = PerfUnit::Seconds;
    /// ```
    pub fn with_perfdata(mut self, values: Vec<Perfdata>) -> Self {
        if !values.is_empty() {
            self.detail.get_or_insert_default().perfdata = values;
        }
        self
    }

    /// Pass or fail.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The failure reason (`None` for a pass).
    pub fn reason(&self) -> Option<&str> {
        self.detail.as_ref().and_then(|d| d.reason.as_deref())
    }

    /// Evidence sub-results, if any.
    pub fn sub_results(&self) -> Option<&[SubResult]> {
        self.detail.as_ref().and_then(|d| d.sub_results.as_deref())
    }

    /// Performance values the run measured (an `exec` probe's perfdata);
    /// empty for most.
    pub fn perfdata(&self) -> &[Perfdata] {
        self.detail.as_ref().map_or(&[], |d| &d.perfdata)
    }

    pub(crate) fn into_parts(self) -> Parts {
        match self.detail {
            None => (self.status, None, None, Vec::new()),
            Some(d) => {
                let Detail {
                    reason,
                    sub_results,
                    perfdata,
                } = *d;
                (self.status, reason, sub_results, perfdata)
            }
        }
    }
}

/// Cuts `reason` to [`MAX_REASON_BYTES`] on a character boundary and marks
/// the cut; an uncut reason that ends in the marker is cut too, so only a
/// cut reason ends that way. A copy, so a huge buffer is not kept queued.
fn truncate_reason(mut reason: String) -> String {
    if reason.len() > MAX_REASON_BYTES || reason.ends_with(TRUNCATED) {
        let limit = MAX_REASON_BYTES.min(reason.len() - 1);
        return marked(text::head(&reason, limit));
    }
    if reason.capacity() > MAX_REASON_BYTES + TRUNCATED.len() {
        reason.shrink_to_fit();
    }
    reason
}

/// `kept` followed by the truncation marker, in a buffer of exactly that size.
fn marked(kept: &str) -> String {
    let mut reason = String::with_capacity(kept.len() + TRUNCATED.len());
    reason.push_str(kept);
    reason.push_str(TRUNCATED);
    reason
}

/// What a caught panic said (its `&str` or `String` payload).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_on_a_char_boundary() {
        let long = "é".repeat(400); // 800 bytes
        let cut = truncate_reason(long);
        assert!(cut.ends_with(TRUNCATED));
        let body = cut.strip_suffix(TRUNCATED).unwrap();
        assert_eq!(body.len(), 512);
        assert!(body.chars().all(|c| c == 'é'));
        let short = truncate_reason("x".repeat(512));
        assert_eq!(short.len(), 512);
    }

    #[test]
    fn cut_lands_before_a_split_character() {
        let s = format!("{}€", "a".repeat(511)); // the euro sign spans 511..514
        let cut = truncate_reason(s);
        assert_eq!(cut, format!("{}{TRUNCATED}", "a".repeat(511)));
    }

    #[test]
    fn only_a_cut_reason_ends_in_the_marker() {
        // Not cut: left alone, whatever its length up to the limit.
        for r in ["", "x", "ends in ...", "ends in [truncated]"] {
            assert_eq!(truncate_reason(r.to_owned()), r);
        }
        // Says it was cut, but was not: cut by one byte and marked, so the
        // marker tells the truth.
        let forged = format!("stderr: {TRUNCATED}");
        assert_eq!(
            truncate_reason(forged),
            format!("stderr: ...[truncated{TRUNCATED}")
        );
        let forged = format!("{}{TRUNCATED}", "a".repeat(600));
        let cut = truncate_reason(forged);
        assert_eq!(cut, format!("{}{TRUNCATED}", "a".repeat(512)));
    }

    #[test]
    fn mode_and_status_print_and_parse_as_written_in_files_and_events() {
        for m in [Mode::Enforce, Mode::Observe, Mode::Disabled] {
            assert_eq!(m.to_string().parse::<Mode>(), Ok(m));
            assert_eq!(serde_json::to_value(m).unwrap(), m.to_string().as_str());
        }
        for st in [Status::Pass, Status::Fail] {
            assert_eq!(st.to_string().parse::<Status>(), Ok(st));
            assert_eq!(serde_json::to_value(st).unwrap(), st.to_string().as_str());
        }
    }

    #[test]
    fn parsing_is_strict_and_the_error_names_what_is_accepted() {
        // Unlike a declaration, which reads an unknown mode as enforce.
        for bad in ["", "Enforce", " observe", "enforec"] {
            let err = bad.parse::<Mode>().unwrap_err();
            assert_eq!(err.input(), bad);
            assert_eq!(
                err.to_string(),
                format!("unknown mode {bad:?}: expected enforce, observe or disabled")
            );
        }
        let err = "PASS".parse::<Status>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown status "PASS": expected pass or fail"#
        );
        // A long input is cut on a character boundary and marked.
        let long = format!("{}é{}", "a".repeat(63), "b".repeat(10_000));
        let err = long.parse::<Status>().unwrap_err();
        assert_eq!(err.input(), "a".repeat(63));
        assert_eq!(
            err.to_string(),
            format!(
                "unknown status {:?}...: expected pass or fail",
                "a".repeat(63)
            )
        );
    }

    #[test]
    fn a_cut_reason_keeps_no_more_memory_than_it_shows() {
        // A megabyte handed over is cut; the cut holds its own bytes, not
        // the megabyte it came from.
        let held = |out: RunnerOutcome| {
            let (_, reason, _, _) = out.into_parts();
            let reason = reason.unwrap();
            (reason.len(), reason.capacity())
        };
        let bound = MAX_REASON_BYTES + TRUNCATED.len();
        let (len, cap) = held(RunnerOutcome::fail("x".repeat(1 << 20)));
        assert_eq!(len, bound);
        assert!(cap <= bound, "{cap} bytes held for {len}");
        let (len, cap) = held(RunnerOutcome::fail_cut("y".repeat(1 << 20)));
        assert_eq!(len, bound);
        assert!(cap <= bound, "{cap} bytes held for {len}");
        // A short reason in a large buffer is not cut, and not kept large.
        let mut roomy = String::with_capacity(1 << 20);
        roomy.push_str("refused");
        let (len, cap) = held(RunnerOutcome::fail(roomy));
        assert_eq!(len, 7);
        assert!(cap <= bound, "{cap} bytes held for {len}");
    }

    #[test]
    fn a_pass_without_perfdata_travels_in_two_words() {
        assert_eq!(
            std::mem::size_of::<RunnerOutcome>(),
            2 * std::mem::size_of::<usize>()
        );
        assert_eq!(
            RunnerOutcome::pass().with_perfdata(Vec::new()),
            RunnerOutcome::pass()
        );
        assert!(
            RunnerOutcome::pass()
                .with_perfdata(Vec::new())
                .detail
                .is_none()
        );
        let p = Perfdata::new("time", 0.25, Some(PerfUnit::Seconds));
        let out = RunnerOutcome::pass().with_perfdata(vec![p.clone()]);
        assert_eq!((out.status(), out.reason()), (Status::Pass, None));
        assert_eq!(out.perfdata(), std::slice::from_ref(&p));
        let (_, _, _, perfdata) = RunnerOutcome::fail("x")
            .with_perfdata(vec![p.clone()])
            .into_parts();
        assert_eq!(perfdata, [p]);
    }

    #[test]
    fn a_runner_cut_reason_is_marked_once_and_bounded() {
        let out = RunnerOutcome::fail_cut("exec probe: ...the end".to_owned());
        assert_eq!(out.reason(), Some("exec probe: ...the end...[truncated]"));
        let out = RunnerOutcome::fail_cut("é".repeat(300));
        let body = out.reason().unwrap().strip_suffix(TRUNCATED).unwrap();
        assert_eq!(body, "é".repeat(256));
    }
}
