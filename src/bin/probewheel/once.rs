//! `probewheel once`: every non-disabled probe runs once, all concurrently
//! on the engine's fixed threads (its workers carry any number of waiting
//! runs), so the whole run takes as long as the slowest probe.
//!
//! Exit 0 iff every enforce probe's run passed; 1 otherwise (a failing
//! enforce probe, a rejected file, an interrupt); 2 a missing file or
//! wrong arguments; 3 stdout closed or full. The tally below is that rule:
//! `once` does not wait for a rollout verdict (no soak, no thresholds),
//! only for one result of each probe.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use crossbeam_channel::never;
use probewheel::{Event, Mode, Status};

use crate::args::Opts;
use crate::run::{self, EXIT_STDOUT};
use crate::view::{View, one_line};
use crate::watch::{self, Ended, Finish, Outcome, Rule};

/// The first result of each probe that runs, in one generation.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    generation: u64,
    /// The probes that run (not disabled) and their modes; `None` until
    /// the topology.
    expected: Option<BTreeMap<Arc<str>, Mode>>,
    /// Status and failure reason of each probe's first result.
    results: BTreeMap<Arc<str>, (Status, Option<String>)>,
}

impl Tally {
    pub(crate) fn new(generation: u64) -> Tally {
        Tally {
            generation,
            ..Tally::default()
        }
    }

    fn done(&self) -> usize {
        self.results.len()
    }

    /// The verdict once every probe that runs has reported.
    fn settled(&self) -> Option<Outcome> {
        let expected = self.expected.as_ref()?;
        if expected.keys().any(|p| !self.results.contains_key(p)) {
            return None;
        }
        let failed = |mode: Mode| -> Vec<(&Arc<str>, Option<&String>)> {
            expected
                .iter()
                .filter(|(_, m)| **m == mode)
                .filter_map(|(p, _)| match &self.results[p] {
                    (Status::Fail, reason) => Some((p, reason.as_ref())),
                    _ => None,
                })
                .collect()
        };
        let enforce = expected.values().filter(|m| **m == Mode::Enforce).count();
        let failing = failed(Mode::Enforce);
        let observe_failed = failed(Mode::Observe).len();
        if let Some((name, reason)) = failing.first() {
            let mut line = format!(
                "fail: {}: {}",
                one_line(name),
                one_line(reason.map_or("failed", |r| r.as_str()))
            );
            if failing.len() > 1 {
                line.push_str(&format!(
                    " (and {} more failing enforce {})",
                    failing.len() - 1,
                    plural(failing.len() - 1, "probe")
                ));
            }
            return Some(Outcome { code: 1, line });
        }
        let mut line = match enforce {
            0 => "pass: no enforce probe declared".to_owned(),
            n => format!("pass: {n} enforce {} passed", plural(n, "probe")),
        };
        if observe_failed > 0 {
            line.push_str(&format!(
                " ({observe_failed} observe {} failed)",
                plural(observe_failed, "probe")
            ));
        }
        Some(Outcome { code: 0, line })
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

impl Rule for Tally {
    fn observe(&mut self, ev: &Event, _view: &View) -> Option<Outcome> {
        if ev.generation() != self.generation {
            return None;
        }
        match ev {
            Event::TopologyDeclared(t) => {
                self.expected = Some(
                    t.probes
                        .iter()
                        .filter(|p| p.mode != Mode::Disabled)
                        .map(|p| (p.probe_name.clone(), p.mode))
                        .collect(),
                );
            }
            Event::DeclarationsRejected(r) => {
                return Some(Outcome {
                    code: 1,
                    line: format!("rejected: {}: {}", one_line(&r.path), one_line(&r.reason)),
                });
            }
            Event::ProbeResult(r) => {
                // The first result is the probe's one run.
                self.results
                    .entry(r.probe_name.clone())
                    .or_insert_with(|| (r.status, r.failure_reason.clone()));
            }
            _ => return None,
        }
        self.settled()
    }

    fn header(&self, view: &View, _now_us: i64) -> Vec<String> {
        let total = self.expected.as_ref().map_or(0, |e| e.len());
        vec![format!(
            "once, rollout {} (generation {}): {} of {total} probes have run",
            one_line(view.rollout().unwrap_or("?")),
            view.generation(),
            self.done()
        )]
    }

    fn status(&self, _view: &View) -> Option<String> {
        None
    }

    fn interrupted(&self, _view: &View, signal: i32) -> String {
        let total = self.expected.as_ref().map_or(0, |e| e.len());
        format!(
            "interrupted by {}: {} of {total} probes had run",
            watch::signal_name(signal),
            self.done()
        )
    }

    fn ticking(&self, _view: &View) -> bool {
        false
    }
}

pub(crate) fn once(opts: Opts) -> ExitCode {
    if let Err(code) = run::require_file(&opts) {
        return code;
    }
    let style = run::style(opts.format);
    let thresholds = crate::wait::success_thresholds(&opts);
    let (engine, events, signals) = match run::start(run::builder(&opts)) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let generation = match engine.reset(&opts.rollout) {
        Ok(g) => g,
        Err(e) => return run::fail(&e.to_string()),
    };
    let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
    let (ended_tx, ended_rx) = crossbeam_channel::bounded(1);
    let view = View::new(generation, thresholds);
    // Held until the engine is shut down: the output thread may end
    // first, and a dropped receiver is a warning from the engine.
    let _receiver = events.clone();
    if let Err(e) = watch::spawn(
        events,
        view,
        Tally::new(generation),
        style,
        stop_rx,
        ended_tx,
    ) {
        return run::fail(&format!("cannot start output thread: {e}"));
    }
    let code = match watch::finish(&ended_rx, signals, &stop_tx, never()) {
        Finish::Output(Ended::Done(o)) => o.code,
        Finish::Output(Ended::Failed(e)) => {
            run::warn(&format!("stdout: {e}; stopping"));
            EXIT_STDOUT
        }
        // An interrupt, or an engine that stopped: not every probe passed.
        Finish::Output(Ended::EngineGone | Ended::Interrupted)
        | Finish::Signal(_)
        | Finish::Backstop => 1,
    };
    let _ = engine.shutdown();
    ExitCode::from(code)
}

#[cfg(test)]
mod tests;
