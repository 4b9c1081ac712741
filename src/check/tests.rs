use std::time::Duration;

use super::*;
use crate::decl::{Declaration, FieldError, parse};
use crate::runner::Registry;

/// The built-in kinds, a `file` kind that wants a `path` string, and a
/// `noop` kind that reads nothing of its own.
fn registry() -> Registry {
    let mut r = Registry::builtin();
    r.insert("disk", Counting(Default::default()));
    r.insert(
        "noop",
        crate::runner::FnRunner::new(|_| crate::RunnerOutcome::pass()),
    );
    r
}

#[test]
fn check_reports_errors_and_what_the_engine_changes() {
    let d = parse(
        br#"{"web": {"kind": "disk", "mode": "enforce", "path": 7, "intervalSeconds": 1},
             "odd": {"kind": "disk", "mode": "enforec", "path": "/x", "pth": 1},
             "what": {"kind": "gopher", "mode": "observe", "path": 1},
             "fine": {"kind": "disk", "mode": "observe", "path": "/x", "intervalSeconds": 60}}"#,
    )
    .unwrap();
    let findings = check(&d, &registry(), Duration::from_secs(5));
    let lines: Vec<String> = findings.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "warning: odd: mode: unknown mode \"enforec\" is treated as \"enforce\"",
            "warning: odd: pth: unknown field, ignored",
            "error: web: path: expected a string, got 7",
            "warning: web: intervalSeconds: 1 s is below the minimum interval; the probe runs every 5 s",
            "error: what: kind: unknown probe kind 'gopher'",
        ]
    );
}

#[test]
fn check_prints_one_line_per_finding_whatever_the_names() {
    let d = parse(
        br#"{"x\nerror: forged: kind: fake": {"kind": "disk", "mode": "observe", "path": 0},
             "ok": {"kind": "disk", "mode": "observe", "path": "a\nb"}}"#,
    )
    .unwrap();
    let lines: Vec<String> = check(&d, &registry(), Duration::from_secs(5))
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert_eq!(
        lines,
        [r#"error: "x\nerror: forged: kind: fake": path: expected a string, got 0"#]
    );
}

/// A custom kind that counts its prepares and wants a `path` string.
struct Counting(std::sync::atomic::AtomicUsize);

impl crate::Runner for Counting {
    fn prepare(&self, decl: &Declaration) -> Result<std::sync::Arc<dyn crate::Check>, FieldError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        decl.required_str("path")?;
        Ok(std::sync::Arc::new(|_: &crate::RunContext<'_>| {
            crate::RunnerOutcome::pass()
        }))
    }

    fn extra_fields(&self) -> &[&str] {
        &["path"]
    }
}

#[test]
fn check_prepares_each_probe_once_and_names_a_custom_kinds_field() {
    let d = parse(
        br#"{"a": {"kind": "disk", "mode": "enforce", "path": 7},
             "b": {"kind": "disk", "mode": "enforce", "path": "/x", "pth": 1},
             "c": {"kind": "disk", "mode": "enforce"}}"#,
    )
    .unwrap();
    let counting = std::sync::Arc::new(Counting(Default::default()));
    let mut registry = Registry::builtin();
    registry.insert("disk", ArcRunner(std::sync::Arc::clone(&counting)));
    let lines: Vec<String> = check(&d, &registry, Duration::from_secs(5))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            "error: a: path: expected a string, got 7",
            "warning: b: pth: unknown field, ignored",
            "error: c: path: required field is missing",
        ]
    );
    assert_eq!(counting.0.load(std::sync::atomic::Ordering::Relaxed), 3);
}

/// Registers a shared runner, so the test can read its counter.
struct ArcRunner(std::sync::Arc<Counting>);

impl crate::Runner for ArcRunner {
    fn prepare(&self, decl: &Declaration) -> Result<std::sync::Arc<dyn crate::Check>, FieldError> {
        self.0.prepare(decl)
    }

    fn extra_fields(&self) -> &[&str] {
        self.0.extra_fields()
    }
}

#[test]
fn check_warns_of_verdict_fields_the_engine_cannot_use_as_written() {
    let d = parse(
        br#"{"off": {"kind": "noop", "mode": "disabled", "failureThreshold": 3,
                     "successThreshold": 2, "startupGraceSeconds": 60, "initialDelaySeconds": 5},
             "off-null": {"kind": "noop", "mode": "disabled", "failureThreshold": null,
                          "startupGraceSeconds": null},
             "once": {"kind": "noop", "mode": "enforce", "runOnce": true,
                      "startupGraceSeconds": 30, "failureThreshold": 3, "successThreshold": 1},
             "once-no-grace": {"kind": "noop", "mode": "enforce", "runOnce": true,
                               "startupGraceSeconds": 0},
             "steady": {"kind": "noop", "mode": "enforce", "intervalSeconds": 30,
                        "startupGraceSeconds": 30, "failureThreshold": 3, "successThreshold": 2},
             "bad": {"kind": "noop", "mode": "disabled", "failureThreshold": 0}}"#,
    )
    .unwrap();
    let lines: Vec<String> = check(&d, &registry(), Duration::from_secs(5))
        .iter()
        .map(ToString::to_string)
        .collect();
    let off = "has no effect: a disabled probe never runs and never counts in the rollout verdict";
    assert_eq!(
        lines,
        [
            "error: bad: failureThreshold: expected an integer from 1 to 100, got 0".to_owned(),
            format!("warning: off: failureThreshold: {off}"),
            format!("warning: off: successThreshold: {off}"),
            format!("warning: off: startupGraceSeconds: {off}"),
            format!("warning: off: initialDelaySeconds: {off}"),
            "warning: once: startupGraceSeconds: a runOnce probe runs once per reset, so it \
             cannot pass after a failure: the grace only holds an unhealthy verdict pending \
             for 30 s"
                .to_owned(),
            "warning: once: failureThreshold: ignored: a runOnce probe counts its one result \
             with thresholds of 1, not 3"
                .to_owned(),
        ]
    );
}
