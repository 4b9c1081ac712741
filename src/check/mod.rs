//! What `probewheel check` reports about a declarations file: invalid
//! probes, and what the engine will read differently from what is written.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::decl::{Declaration, Declarations};
use crate::runner::{PrepareError, Registry};
use crate::text::OneLine;
use crate::vocab::Mode;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Severity {
    /// The engine will change or ignore something, but the probe runs.
    Warning,
    /// The probe fails on every tick.
    Error,
}

/// One thing `check` has to say about one probe. Its `Display` is the line
/// `probewheel check` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// The probe's name.
    pub probe: String,
    /// The field concerned (`""` for the entry as a whole).
    pub field: String,
    /// What is wrong or what the engine will do.
    pub problem: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        let field = if self.field.is_empty() {
            "-"
        } else {
            &self.field
        };
        write!(
            f,
            "{sev}: {}: {}: {}",
            escape(&self.probe),
            escape(field),
            OneLine(&self.problem)
        )
    }
}

/// A name as `check` prints it: as is when plain, else quoted with escapes,
/// so a finding is one line that cannot be mistaken for another.
///
/// # Examples
///
/// ```
/// use probewheel::check::escape;
/// assert_eq!(escape("ssh"), "ssh");
/// assert_eq!(escape("a\nerror: x"), "\"a\\nerror: x\"");
/// ```
pub fn escape(name: &str) -> Cow<'_, str> {
    let plain = !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\\' | ':'));
    if plain {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(crate::text::quoted(name))
    }
}

/// Checks every probe as the engine would read it, with the kinds of
/// `registry` and the floor `min_interval`. Findings come in probe order,
/// errors before warnings within a probe.
pub fn check(decls: &Declarations, registry: &Registry, min_interval: Duration) -> Vec<Finding> {
    let mut out = Vec::new();
    for d in decls.probes() {
        let mut probe_findings = Vec::new();
        // Also the shared fields' error: prepare reports it first.
        if let Err(e) = registry.prepare(d) {
            let (field, problem) = match e {
                PrepareError::Invalid(e) => (e.field().to_owned(), e.problem().to_owned()),
                e @ PrepareError::UnknownKind(_) => ("kind".to_owned(), e.to_string()),
            };
            probe_findings.push((Severity::Error, field, problem));
        }
        if let Some(m) = d.unknown_mode() {
            probe_findings.push((
                Severity::Warning,
                "mode".into(),
                format!("unknown mode {m:?} is treated as \"enforce\""),
            ));
        }
        if d.mode() != Mode::Disabled
            && !d.run_once()
            && Duration::from_secs(d.interval_secs()) < min_interval
            && d.invalid().is_none_or(|e| e.field() != "intervalSeconds")
        {
            probe_findings.push((
                Severity::Warning,
                "intervalSeconds".into(),
                format!(
                    "{} s is below the minimum interval; the probe runs every {}",
                    d.interval_secs(),
                    show_duration(min_interval)
                ),
            ));
        }
        verdict_fields(d, &mut probe_findings);
        registry.lint(d, &mut |field, problem| {
            probe_findings.push((Severity::Warning, field.to_owned(), problem));
        });
        for field in registry.unknown_fields(d) {
            probe_findings.push((
                Severity::Warning,
                field.to_owned(),
                "unknown field, ignored".into(),
            ));
        }
        probe_findings.sort_by_key(|f| std::cmp::Reverse(f.0));
        out.extend(
            probe_findings
                .into_iter()
                .map(|(severity, field, problem)| Finding {
                    severity,
                    probe: d.name().to_owned(),
                    field,
                    problem,
                }),
        );
    }
    out
}

/// The verdict fields the engine cannot use as written: on a disabled probe,
/// and on a `runOnce` probe (one result per reset).
fn verdict_fields(d: &Declaration, out: &mut Vec<(Severity, String, String)>) {
    // Written (not null) and valid: an invalid value is already an error.
    let written =
        |field: &str| d.get(field).is_some() && d.invalid().is_none_or(|e| e.field() != field);
    if d.mode() == Mode::Disabled {
        for field in [
            "failureThreshold",
            "successThreshold",
            "startupGraceSeconds",
            "initialDelaySeconds",
        ] {
            if written(field) {
                out.push((
                    Severity::Warning,
                    field.into(),
                    "has no effect: a disabled probe never runs and never counts in the \
                     rollout verdict"
                        .into(),
                ));
            }
        }
        return;
    }
    if !d.run_once() {
        return;
    }
    let grace = d.startup_grace_secs();
    if grace > 0 && written("startupGraceSeconds") {
        out.push((
            Severity::Warning,
            "startupGraceSeconds".into(),
            format!(
                "a runOnce probe runs once per reset, so it cannot pass after a failure: \
                 the grace only holds an unhealthy verdict pending for {grace} s"
            ),
        ));
    }
    for (field, value) in [
        ("failureThreshold", d.failure_threshold()),
        ("successThreshold", d.success_threshold()),
    ] {
        if value > 1 && written(field) {
            out.push((
                Severity::Warning,
                field.into(),
                format!(
                    "ignored: a runOnce probe counts its one result with thresholds of 1, \
                     not {value}"
                ),
            ));
        }
    }
}

fn show_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests;
