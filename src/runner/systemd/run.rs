//! One run of a `systemd` probe: `systemctl show` of the unit, then, with
//! `noFailedUnits` and a unit that passed, `systemctl list-units
//! --state=failed`; one exec run after the other within the run's one
//! deadline. Each exec run's output is judged here, into the run's
//! outcome.

use std::borrow::Cow;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use super::restarts::Seen;
use super::{CANCELLED, PREFIX, STDOUT_BYTES, Spec};
use crate::runner::exec::{CommandEnd, CommandOutput, ExecRun};
use crate::runner::machine::{Cx, Run, Step};
use crate::runner::{RunnerOutcome, Status};

/// How an exec run's output becomes an outcome.
type Judge = Box<dyn FnMut(CommandOutput) -> RunnerOutcome>;

/// A run of a `systemd` probe.
pub(super) struct SystemdRun {
    spec: Arc<Spec>,
    deadline: Instant,
    stage: Stage,
}

enum Stage {
    /// `systemctl show` of the unit.
    Show(ExecRun<Judge>),
    /// `systemctl list-units --state=failed`.
    Failed(ExecRun<Judge>),
    Done,
}

impl SystemdRun {
    /// A run started at `now` (construction only: nothing is spawned).
    pub(super) fn new(spec: Arc<Spec>, now: Instant) -> SystemdRun {
        let deadline = now + spec.timeout;
        let stage = match &spec.unit {
            Some((_, argv)) => {
                let judge_spec = Arc::clone(&spec);
                let judge: Judge = Box::new(move |out| judge_show(&judge_spec, &out));
                Stage::Show(
                    ExecRun::new(Arc::clone(argv), spec.timeout, now, judge)
                        .keep_stdout(STDOUT_BYTES),
                )
            }
            None => failed_stage(&spec, deadline, now),
        };
        SystemdRun {
            spec,
            deadline,
            stage,
        }
    }
}

/// The stage that lists failed units, with what is left of the run's time.
fn failed_stage(spec: &Arc<Spec>, deadline: Instant, now: Instant) -> Stage {
    let argv = spec
        .failed
        .as_ref()
        .expect("a probe without a unit lists failed units");
    let judge_spec = Arc::clone(spec);
    let judge: Judge = Box::new(move |out| judge_failed(&judge_spec, &out));
    let left = deadline.saturating_duration_since(now);
    Stage::Failed(ExecRun::new(Arc::clone(argv), left, now, judge).keep_stdout(STDOUT_BYTES))
}

impl Run for SystemdRun {
    fn advance(&mut self, cx: &mut Cx<'_>) -> Step {
        loop {
            let (Stage::Show(run) | Stage::Failed(run)) = &mut self.stage else {
                // Called after it ended: harmless.
                return Step::Done(RunnerOutcome::fail(CANCELLED));
            };
            let outcome = match run.advance(cx) {
                Step::Wait(until) => return Step::Wait(until),
                Step::Done(outcome) => outcome,
            };
            let next = matches!(self.stage, Stage::Show(_))
                && outcome.status() == Status::Pass
                && self.spec.failed.is_some();
            if !next {
                self.stage = Stage::Done;
                return Step::Done(outcome);
            }
            // The unit passed; the failed units next, within the same
            // deadline (an exec run past its deadline ends at once).
            self.stage = failed_stage(&self.spec, self.deadline, cx.now());
        }
    }

    fn cancel(&mut self, cx: &mut Cx<'_>) -> Step {
        let (Stage::Show(run) | Stage::Failed(run)) = &mut self.stage else {
            return Step::Done(RunnerOutcome::fail(CANCELLED));
        };
        match run.cancel(cx) {
            Step::Wait(until) => Step::Wait(until),
            Step::Done(_) => {
                self.stage = Stage::Done;
                Step::Done(RunnerOutcome::fail(CANCELLED))
            }
        }
    }
}

/// The outcome of `systemctl show`.
fn judge_show(spec: &Spec, out: &CommandOutput) -> RunnerOutcome {
    if let Err(failed) = exited_zero(spec, out, "show") {
        return failed;
    }
    let text = String::from_utf8_lossy(out.stdout());
    match unit_verdict(spec, &Props::parse(&text)) {
        Ok(()) => RunnerOutcome::pass(),
        Err(reason) => RunnerOutcome::fail(reason),
    }
}

/// The outcome of `systemctl list-units --state=failed`.
fn judge_failed(spec: &Spec, out: &CommandOutput) -> RunnerOutcome {
    if let Err(failed) = exited_zero(spec, out, "list-units") {
        return failed;
    }
    match failed_verdict(
        &String::from_utf8_lossy(out.stdout()),
        out.stdout_truncated(),
    ) {
        Ok(()) => RunnerOutcome::pass(),
        Err(reason) => RunnerOutcome::fail(reason),
    }
}

/// `Err` with the outcome unless `systemctl <verb>` exited with 0.
fn exited_zero(spec: &Spec, out: &CommandOutput, verb: &str) -> Result<(), RunnerOutcome> {
    let program = &spec.program;
    let head = match out.end() {
        CommandEnd::Exited(status) if status.success() => return Ok(()),
        CommandEnd::Cancelled => return Err(RunnerOutcome::fail(CANCELLED)),
        CommandEnd::SpawnFailed(e) => spawn_failed(program, e),
        CommandEnd::TimedOut => format!(
            "{PREFIX}{program} {verb} timed out after {} s (process group killed)",
            spec.timeout.as_secs()
        ),
        CommandEnd::WaitFailed(e) => format!("{PREFIX}wait for {program} {verb}: {e}"),
        CommandEnd::Exited(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("{PREFIX}{program} {verb} exit code {code}"),
            (None, Some(sig)) => format!("{PREFIX}{program} {verb} killed by signal {sig}"),
            (None, None) => format!("{PREFIX}{program} {verb} ended with {status}"),
        },
    };
    Err(out.fail_with_stderr(head))
}

/// Why `program` could not be started; a name not found says where it
/// was looked for.
pub(super) fn spawn_failed(program: &str, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::NotFound && !program.contains('/') {
        let path = std::env::var_os("PATH");
        let path = match &path {
            Some(p) => p.to_string_lossy(),
            None => Cow::Borrowed("unset, so /bin:/usr/bin"),
        };
        return format!("{PREFIX}{program} not found on PATH: {path}");
    }
    format!("{PREFIX}spawn {program}: {e}")
}

/// What `systemctl show` printed, `KEY=value` a line (in any order, any
/// property missing).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Props<'a> {
    load: &'a str,
    active: &'a str,
    sub: &'a str,
    result: &'a str,
    n_restarts: Option<&'a str>,
    invocation: &'a str,
}

impl<'a> Props<'a> {
    pub(super) fn parse(text: &'a str) -> Props<'a> {
        let mut p = Props::default();
        for (key, value) in text.lines().filter_map(|l| l.split_once('=')) {
            match key {
                "LoadState" => p.load = value,
                "ActiveState" => p.active = value,
                "SubState" => p.sub = value,
                "Result" => p.result = value,
                "NRestarts" => p.n_restarts = Some(value),
                "InvocationID" => p.invocation = value,
                _ => {}
            }
        }
        p
    }

    /// `active (running)`, `failed (Result=exit-code)`, `inactive (dead,
    /// LoadState=masked)`: what is not implied or usual.
    fn state(&self) -> String {
        let mut notes = Vec::new();
        if !self.sub.is_empty() && self.sub != self.active {
            notes.push(self.sub.to_owned());
        }
        if !self.result.is_empty() && self.result != "success" {
            notes.push(format!("Result={}", self.result));
        }
        if !self.load.is_empty() && self.load != "loaded" {
            notes.push(format!("LoadState={}", self.load));
        }
        if notes.is_empty() {
            self.active.to_owned()
        } else {
            format!("{} ({})", self.active, notes.join(", "))
        }
    }
}

/// Judges the unit by what `systemctl show` printed, and counts its
/// restarts.
pub(super) fn unit_verdict(spec: &Spec, props: &Props<'_>) -> Result<(), String> {
    let (unit, _) = spec.unit.as_ref().expect("show runs for a unit");
    if props.active.is_empty() {
        return Err(format!(
            "{PREFIX}{} show printed no ActiveState for {unit}",
            spec.program
        ));
    }
    // A unit file removed while the unit runs is not-found but active.
    if props.load == "not-found" && props.active == "inactive" {
        return Err(format!("{PREFIX}no unit {unit} (LoadState=not-found)"));
    }
    let restarts = spec
        .restarts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .observe(Seen {
            n_restarts: props.n_restarts.and_then(|n| n.parse().ok()),
            invocation: props.invocation,
        });
    if props.active != spec.expect_active {
        return Err(format!(
            "{PREFIX}{unit} is {}, expected {}",
            props.state(),
            spec.expect_active
        ));
    }
    if restarts > spec.max_restarts {
        let times = if restarts == 1 { "time" } else { "times" };
        return Err(format!(
            "{PREFIX}{unit} restarted {restarts} {times} since the reset (maxRestarts {}); now {}",
            spec.max_restarts,
            props.state()
        ));
    }
    Ok(())
}

/// Judges what `systemctl list-units --state=failed --plain --no-legend`
/// printed: a unit a line, its name first. `cut`: the output was longer
/// than what was kept, so its last line may be cut too.
pub(super) fn failed_verdict(text: &str, cut: bool) -> Result<(), String> {
    let mut lines: Vec<&str> = text.lines().collect();
    if cut {
        lines.pop();
    }
    let units: Vec<String> = lines.iter().filter_map(|l| failed_unit(l)).collect();
    if units.is_empty() && !cut {
        return Ok(());
    }
    let count = match (cut, units.len()) {
        (true, n) => format!("more than {n} units"),
        (false, 1) => "1 unit".to_owned(),
        (false, n) => format!("{n} units"),
    };
    Err(format!("{PREFIX}{count} failed: {}", units.join(", ")))
}

/// The unit a line of `list-units` names: its first word, past the colour
/// codes and the status mark a terminal would get (`SYSTEMD_COLORS` may
/// force them).
fn failed_unit(line: &str) -> Option<String> {
    let plain = without_escapes(line);
    plain
        .split_whitespace()
        .find(|w| !matches!(*w, "●" | "×" | "*"))
        .map(str::to_owned)
}

/// `s` without ANSI escape sequences: colours (`ESC [ ... final byte`)
/// and hyperlinks (`ESC ] ... BEL` or `ESC ] ... ESC \`).
fn without_escapes(s: &str) -> Cow<'_, str> {
    if !s.contains('\x1b') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // Parameters and intermediates, up to the final byte.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    Cow::Owned(out)
}
