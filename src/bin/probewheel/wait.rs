//! `probewheel wait`: the gate of a deployment script, as `kubectl rollout
//! status` is to a Deployment.
//!
//! It builds the engine with the verdict's soak and deadline (300 s unless
//! `--deadline` says otherwise), resets it once, and exits at the first
//! final verdict of the generation that reset started: 0 healthy,
//! 1 unhealthy (a failing enforce probe, or the deadline), 2 rejected file,
//! 3 stdout closed or full, 128 + N when signal N stopped it first. The
//! engine decides; this command only reads its `rolloutVerdict` events, and
//! only those of its own generation.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use crossbeam_channel::after;
use probewheel::event::{RolloutVerdict, Verdict};
use probewheel::{Event, decl};

use crate::args::{DEFAULT_WAIT_DEADLINE, Opts};
use crate::run::{self, EXIT_STDOUT};
use crate::view::{View, one_line, secs_left};
use crate::watch::{self, Ended, Finish, Outcome, Rule};

/// After the deadline, how long `wait` still waits for the engine's
/// verdict before it reads the engine's verdict board itself: the engine
/// decides at the deadline, so this only fires when its events cannot get
/// out (stdout stalled) or never came.
const BACKSTOP: Duration = Duration::from_secs(5);

/// The exit status of a final verdict.
pub(crate) fn exit_code(v: &RolloutVerdict) -> u8 {
    match v.verdict {
        Verdict::Healthy => 0,
        Verdict::Rejected => run::EXIT_USAGE,
        _ => 1,
    }
}

/// The closing line: the verdict and why, e.g.
/// `unhealthy: web: http probe: status 503, expected 200`.
pub(crate) fn verdict_line(v: &RolloutVerdict) -> String {
    format!("{}: {}", v.verdict, one_line(&v.reason))
}

/// `wait`'s rule: done at the first final verdict of its generation.
#[derive(Debug)]
pub(crate) struct WaitRule {
    pub(crate) generation: u64,
    pub(crate) soak: Duration,
    pub(crate) deadline: Duration,
    /// When the deadline falls by this process's clock, until a verdict
    /// brings the engine's `deadlineAt`.
    pub(crate) deadline_at_us: i64,
}

impl WaitRule {
    fn soak_text(&self, v: Option<&RolloutVerdict>, now_us: i64) -> Option<String> {
        if self.soak.is_zero() {
            return None;
        }
        let total = self.soak.as_secs();
        Some(match v {
            Some(v) if v.soak_ends_at.is_some() => {
                let end = v.soak_ends_at.map_or(0, |t| t.unix_micros());
                format!("soak {} s left", secs_left(end - now_us))
            }
            Some(v) if v.verdict == Verdict::Healthy => format!("soak {total} s done"),
            _ => format!("soak {total} s not started"),
        })
    }
}

impl Rule for WaitRule {
    fn observe(&mut self, ev: &Event, view: &View) -> Option<Outcome> {
        match ev {
            Event::RolloutVerdict(v) if v.header.generation == self.generation && v.is_final() => {
                let line = match (v.verdict, view.rejected()) {
                    // The file and why, as the rejection said it.
                    (Verdict::Rejected, Some((path, reason))) => {
                        format!("rejected: {}: {}", one_line(path), one_line(reason))
                    }
                    _ => verdict_line(v),
                };
                Some(Outcome {
                    code: exit_code(v),
                    line,
                })
            }
            _ => None,
        }
    }

    fn header(&self, view: &View, now_us: i64) -> Vec<String> {
        let v = view.verdict();
        let rejected = view.rejected().is_some();
        let verdict = match v {
            Some(v) => v.verdict.as_str(),
            None if rejected => Verdict::Rejected.as_str(),
            None => Verdict::Pending.as_str(),
        };
        let mut title = format!(
            "rollout {} (generation {}): {verdict}",
            one_line(view.rollout().unwrap_or("?")),
            view.generation(),
        );
        if !rejected && v.is_none_or(|v| !v.decided) {
            let at = v
                .and_then(|v| v.deadline_at)
                .map_or(self.deadline_at_us, |t| t.unix_micros());
            let left = secs_left(at - now_us);
            if left > 0 {
                title.push_str(&format!(", deadline in {left} s"));
            } else {
                title.push_str(&format!(
                    ", deadline of {} s passed",
                    self.deadline.as_secs()
                ));
            }
        }
        if let Some(soak) = self.soak_text(v, now_us) {
            title.push_str(", ");
            title.push_str(&soak);
        }
        let reason = match (v, view.rejected()) {
            (Some(v), _) => one_line(&v.reason),
            (None, Some((path, reason))) => one_line(&format!("{path}: {reason}")),
            (None, None) => "waiting for the first verdict".into(),
        };
        vec![title, reason]
    }

    fn status(&self, view: &View) -> Option<String> {
        view.verdict().map(verdict_line)
    }

    fn interrupted(&self, view: &View, signal: i32) -> String {
        let latest = view
            .verdict()
            .map_or_else(|| "no verdict yet".to_owned(), verdict_line);
        format!(
            "interrupted by {} before a final verdict ({latest})",
            watch::signal_name(signal)
        )
    }

    fn ticking(&self, _view: &View) -> bool {
        true
    }
}

/// `successThreshold` by probe, for the table (empty when the file cannot
/// be read: the engine reports that).
pub(crate) fn success_thresholds(opts: &Opts) -> BTreeMap<String, u32> {
    decl::load(&opts.config)
        .map(|d| {
            d.probes()
                .iter()
                .map(|p| (p.name().to_owned(), p.success_threshold()))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn wait(opts: Opts) -> ExitCode {
    if let Err(code) = run::require_file(&opts) {
        return code;
    }
    let deadline = opts.deadline.unwrap_or(DEFAULT_WAIT_DEADLINE);
    let opts = Opts {
        deadline: Some(deadline),
        ..opts
    };
    let style = run::style(opts.format);
    let thresholds = success_thresholds(&opts);
    let (engine, events, signals) = match run::start(run::builder(&opts)) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let started_us = crate::clock::wall_now_us();
    let generation = match engine.reset(&opts.rollout) {
        Ok(g) => g,
        Err(e) => return run::fail(&e.to_string()),
    };
    let rule = WaitRule {
        generation,
        soak: opts.soak.unwrap_or_default(),
        deadline,
        deadline_at_us: started_us.saturating_add(deadline.as_micros() as i64),
    };
    let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
    let (ended_tx, ended_rx) = crossbeam_channel::bounded(1);
    let view = View::new(generation, thresholds);
    // Held until the engine is shut down: the output thread may end
    // first, and a dropped receiver is a warning from the engine.
    let _receiver = events.clone();
    if let Err(e) = watch::spawn(events, view, rule, style, stop_rx, ended_tx) {
        return run::fail(&format!("cannot start output thread: {e}"));
    }
    let code = match watch::finish(&ended_rx, signals, &stop_tx, after(deadline + BACKSTOP)) {
        Finish::Output(Ended::Done(o)) => o.code,
        Finish::Output(Ended::Failed(e)) => {
            run::warn(&format!("stdout: {e}; stopping"));
            EXIT_STDOUT
        }
        Finish::Output(Ended::EngineGone | Ended::Interrupted) => {
            run::warn("the engine stopped before a final verdict");
            1
        }
        Finish::Signal(n) => 128 + n as u8,
        Finish::Backstop => match engine.verdict(generation) {
            Some(v) if v.is_final() => {
                run::warn(&verdict_line(&v));
                exit_code(&v)
            }
            latest => {
                run::warn(&format!(
                    "unhealthy: deadline of {} s passed without a final verdict ({})",
                    deadline.as_secs(),
                    latest.map_or_else(|| "no verdict yet".to_owned(), |v| verdict_line(&v))
                ));
                1
            }
        },
    };
    if let Err(e) = engine.shutdown() {
        run::warn(&format!("shutdown: {e}"));
    }
    ExitCode::from(code)
}

#[cfg(test)]
mod tests;
