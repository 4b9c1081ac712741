//! `run` and `check`, and what every command shares: the engine's builder,
//! its start (signals blocked first) and the missing-file rule.
//!
//! `run` is a host service (README, "Running as a service"): the main
//! thread only takes commands (stdin), signals and the output thread's
//! reports, and writes neither stdout nor the metrics file, so neither a
//! consumer that stops reading nor a stuck file system can hold up a reset
//! or a shutdown. Threads: the engine's, a stdin reader, a signal thread
//! (`sigwait`), the output thread and, with `--metrics-file`, the metrics
//! writer.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, after, never, select};
use probewheel::check::{self, Severity};
use probewheel::decl;
use probewheel::{Builder, Engine, Event, Stats};

use crate::args::{self, Format, Opts};
use crate::clock::now;
use crate::metrics::Metrics;
use crate::output::{self, Outputs};
use crate::service::{self, Notifier};
use crate::signals::{self, Signal};
use crate::stdin;
use crate::textfile;
use crate::view::one_line;
use crate::watch::Style;

/// Exit status when stdout is closed or full; no other outcome uses it.
pub(crate) const EXIT_STDOUT: u8 = 3;

/// Exit status of a rejected or missing file and of wrong arguments.
pub(crate) const EXIT_USAGE: u8 = 2;

/// The metrics file is replaced at most this often.
const METRICS_PERIOD: Duration = Duration::from_secs(1);

/// Shutdown, from the command to the exit, stays within this (G10:
/// 1 s); what the output thread has not printed by then is lost.
const STOP_BUDGET: Duration = Duration::from_millis(900);

/// One line on stderr; a closed stderr is not worth a panic.
pub(crate) fn warn(msg: &str) {
    let _ = writeln!(io::stderr().lock(), "probewheel: {msg}");
}

/// `check`, `once` and `wait` need the file to exist (only `run`, the
/// service, reads a missing file as "no probes declared"): exit 2 naming
/// the path when it does not.
pub(crate) fn require_file(opts: &Opts) -> Result<(), ExitCode> {
    match std::fs::metadata(&opts.config) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            warn(&format!(
                "--config {}: no such file",
                one_line(&opts.config.display().to_string())
            ));
            Err(ExitCode::from(EXIT_USAGE))
        }
        _ => Ok(()),
    }
}

/// How `wait` and `once` print: `--format`, else text on a terminal and
/// JSON Lines otherwise; text is redrawn in place only on a terminal.
pub(crate) fn style(format: Option<Format>) -> Style {
    let terminal = crate::sys::stdout_is_terminal();
    match format {
        Some(Format::Json) => Style::Json,
        None if !terminal => Style::Json,
        _ if terminal => Style::Live,
        _ => Style::Plain,
    }
}

/// A command read from stdin.
#[derive(Debug, PartialEq, Eq)]
enum Control {
    Reset(String),
    Stats,
    Shutdown,
}

fn parse_control(line: &str) -> Result<Control, String> {
    let mut words = line.split_whitespace();
    let cmd = words.next().ok_or("empty command")?;
    let arg = words.next();
    let extra = words.next();
    match (cmd, arg, extra) {
        ("reset", Some(id), None) => Ok(Control::Reset(
            args::rollout_id(id).map_err(|e| format!("reset: {e}"))?,
        )),
        ("reset", None, _) => Err("reset needs a rollout id: reset <rollout-id>".into()),
        ("stats", None, _) => Ok(Control::Stats),
        ("shutdown", None, _) => Ok(Control::Shutdown),
        ("reset" | "stats" | "shutdown", _, _) => Err(format!(
            "too many arguments: {}",
            stdin::quote(line.as_bytes())
        )),
        _ => Err(format!(
            "unknown command {} (commands: reset <rollout-id>, stats, shutdown)",
            stdin::quote(cmd.as_bytes())
        )),
    }
}

pub(crate) fn builder(opts: &Opts) -> Builder {
    let mut b = Builder::new()
        .declarations_path(&opts.config)
        .workers(opts.workers)
        .min_interval(opts.min_interval)
        .events_capacity(opts.events_capacity)
        // This process owns every probe child: reap their orphans too.
        .child_subreaper(true);
    if let Some(k) = &opts.host_key {
        b = b.host_key(k);
    }
    if let Some(h) = &opts.hostname {
        b = b.hostname(h);
    }
    if let Some(s) = opts.soak {
        b = b.soak(s);
    }
    if let Some(d) = opts.deadline {
        b = b.deadline(d);
    }
    b
}

/// Blocks signals (before any thread exists), starts the signal thread and
/// builds the engine.
pub(crate) fn start(
    builder: Builder,
) -> Result<(Engine, Receiver<Event>, Receiver<Signal>), ExitCode> {
    // Before any thread exists, so that every thread inherits the mask.
    let set = signals::block().map_err(|e| fail(&format!("cannot block signals: {e}")))?;
    let (sig_tx, sig_rx) = crossbeam_channel::bounded(16);
    signals::forward(set, sig_tx).map_err(|e| fail(&format!("cannot start signal thread: {e}")))?;
    match crate::sys::raise_nofile_limit() {
        Ok(n) => log::debug!("open files limit {n}"),
        Err(e) => log::warn!("cannot raise the open files limit: {e}"),
    }
    let (engine, events) = builder.build().map_err(|e| fail(&e.to_string()))?;
    Ok((engine, events, sig_rx))
}

pub(crate) fn fail(msg: &str) -> ExitCode {
    warn(msg);
    ExitCode::from(EXIT_USAGE)
}

/// Starts the stdin reader: each line (or the error about it) goes to the
/// returned channel, which closes at end of input.
fn read_stdin() -> io::Result<Receiver<Result<String, String>>> {
    let (tx, rx) = crossbeam_channel::bounded(16);
    thread::Builder::new()
        .name("probewheel-stdin".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let res = stdin::read_lines(io::stdin().lock(), |line| tx.send(line).is_ok());
            if let Err(e) = res {
                log::warn!("stdin: {e}; commands are no longer read");
            }
            // End of stdin does not stop the engine (G12).
        })?;
    Ok(rx)
}

/// `run`'s state beside the engine.
struct Service {
    engine: Engine,
    rollout: String,
    stats_out: Sender<Stats>,
}

impl Service {
    fn reset(&mut self, id: String) {
        match self.engine.reset(&id) {
            Ok(_) => self.rollout = id,
            Err(e) => warn(&format!("reset: {e}")),
        }
    }

    fn stats(&self) {
        match self.engine.stats() {
            Ok(stats) => {
                if let Err(crossbeam_channel::TrySendError::Full(_)) =
                    self.stats_out.try_send(stats)
                {
                    warn("stats: stdout is not being read; request dropped");
                }
            }
            Err(e) => warn(&format!("stats: {e}")),
        }
    }
}

pub(crate) fn run(opts: Opts) -> ExitCode {
    if let Err(e) = std::fs::metadata(&opts.config) {
        if e.kind() == io::ErrorKind::NotFound {
            log::warn!(
                "{} does not exist: no probes are declared",
                opts.config.display()
            );
        }
    }
    let notifier = Notifier::from_env().map(Arc::new);
    let watchdog = notifier.as_ref().and_then(|_| service::watchdog_interval());
    let (engine, events, mut signals) = match start(builder(&opts)) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let metrics = opts
        .metrics_file
        .as_ref()
        .map(|_| Arc::new(Mutex::new(Metrics::default())));
    let (dirty_tx, dirty_rx) = crossbeam_channel::bounded(1);
    let (ended_tx, ended_rx) = crossbeam_channel::bounded(1);
    let outputs = Outputs {
        metrics: metrics.clone(),
        dirty: dirty_tx,
        notifier: notifier.clone(),
    };
    let stats_out = match output::spawn(events, outputs, ended_tx) {
        Ok(tx) => tx,
        Err(e) => return fail(&format!("cannot start output thread: {e}")),
    };
    let mut commands = match read_stdin() {
        Ok(rx) => rx,
        Err(e) => return fail(&format!("cannot start stdin reader: {e}")),
    };
    if let Err(e) = engine.reset(&opts.rollout) {
        return fail(&e.to_string());
    }
    let mut svc = Service {
        engine,
        rollout: opts.rollout.clone(),
        stats_out,
    };
    let metrics_writer = match &opts.metrics_file {
        Some(path) => match textfile::Writer::spawn(path.clone()) {
            Ok(w) => Some(w),
            Err(e) => return fail(&format!("cannot start metrics writer: {e}")),
        },
        None => None,
    };
    // Renders here, writes on the metrics thread: a stuck write holds up
    // no command or signal.
    let write_metrics = |svc: &Service| {
        let (Some(writer), Some(m)) = (&metrics_writer, &metrics) else {
            return;
        };
        let Ok(stats) = svc.engine.stats() else {
            return;
        };
        let text = m.lock().unwrap_or_else(|p| p.into_inner()).render(&stats);
        writer.offer(text);
    };
    let mut metrics_due: Option<Instant> = None;
    let mut metrics_written: Option<Instant> = None;
    let mut watchdog_due = watchdog.map(|d| now() + d);
    let mut output_ended = None;
    // Every arm waits: a closed channel is replaced by `never()`, so no
    // state of stdin (closed, at end of file, a terminal) makes this spin.
    let code = loop {
        let metrics_timer =
            metrics_due.map_or_else(never, |t| after(t.saturating_duration_since(now())));
        let watchdog_timer =
            watchdog_due.map_or_else(never, |t| after(t.saturating_duration_since(now())));
        select! {
            recv(commands) -> line => match line {
                Ok(Ok(line)) => match parse_control(&line) {
                    Ok(Control::Reset(id)) => svc.reset(id),
                    Ok(Control::Stats) => svc.stats(),
                    Ok(Control::Shutdown) => break 0,
                    Err(msg) => warn(&msg),
                },
                Ok(Err(msg)) => warn(&msg),
                Err(_) => commands = never(),
            },
            recv(signals) -> sig => match sig {
                Ok(Signal::Stop(s)) => {
                    log::info!("signal {s} received; shutting down");
                    break 0;
                }
                Ok(Signal::Reload) => {
                    log::info!("SIGHUP: reset to {}", svc.rollout);
                    let id = svc.rollout.clone();
                    svc.reset(id);
                }
                Ok(Signal::Stats) => svc.stats(),
                Ok(Signal::Ignored(s)) => log::warn!("signal {s} ignored"),
                Err(_) => signals = never(),
            },
            recv(ended_rx) -> end => {
                output_ended = Some(());
                match end {
                    Ok(Err(e)) => {
                        warn(&format!("stdout: {e}; stopping"));
                        break EXIT_STDOUT;
                    }
                    _ => {
                        warn("the engine stopped");
                        break 1;
                    }
                }
            },
            recv(dirty_rx) -> _ => {
                if metrics_due.is_none() {
                    metrics_due = Some(metrics_written.map_or_else(now, |t| (t + METRICS_PERIOD).max(now())));
                }
            },
            recv(metrics_timer) -> _ => {
                write_metrics(&svc);
                metrics_due = None;
                metrics_written = Some(now());
            },
            recv(watchdog_timer) -> _ => {
                // A stats answer comes from the engine's own loop: the
                // watchdog is fed only while that loop turns.
                if svc.engine.stats().is_ok() {
                    if let Some(n) = &notifier { n.send("WATCHDOG=1"); }
                }
                watchdog_due = watchdog.map(|d| now() + d);
            },
        }
    };
    let stop_started = now();
    if let Some(n) = &notifier {
        n.send("STOPPING=1");
    }
    let Service {
        engine, stats_out, ..
    } = svc;
    drop(stats_out);
    if let Err(e) = engine.shutdown() {
        warn(&format!("shutdown: {e}"));
        return ExitCode::from(1);
    }
    let mut code = code;
    if output_ended.is_none() {
        // Events sent before the engine stopped are printed, if stdout
        // takes them in time.
        let left = STOP_BUDGET.saturating_sub(stop_started.elapsed());
        match ended_rx.recv_timeout(left) {
            Ok(Err(e)) => {
                warn(&format!("stdout: {e}"));
                code = EXIT_STDOUT;
            }
            Ok(Ok(())) => {}
            Err(_) => log::warn!("stdout is not being read; unprinted events dropped"),
        }
    }
    ExitCode::from(code)
}

pub(crate) fn check(opts: Opts) -> ExitCode {
    match check_to(&opts, &mut io::stdout().lock()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            warn(&format!("stdout: {e}"));
            ExitCode::from(EXIT_STDOUT)
        }
    }
}

fn check_to(opts: &Opts, out: &mut impl Write) -> io::Result<u8> {
    if let Err(e) = std::fs::metadata(&opts.config) {
        if e.kind() == io::ErrorKind::NotFound {
            writeln!(
                out,
                "error: {}: no such file",
                check::escape(&opts.config.display().to_string())
            )?;
            out.flush()?;
            return Ok(EXIT_USAGE);
        }
    }
    let decls = match decl::load(&opts.config) {
        Ok(d) => d,
        Err(r) => {
            writeln!(
                out,
                "error: {}: {}",
                check::escape(&opts.config.display().to_string()),
                one_line(r.reason())
            )?;
            out.flush()?;
            return Ok(EXIT_USAGE);
        }
    };
    // The builder `run` starts: its kinds, host key and floor.
    let findings = builder(opts).check(&decls);
    for f in &findings {
        writeln!(out, "{f}")?;
    }
    out.flush()?;
    let errors: BTreeSet<&str> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.probe.as_str())
        .collect();
    let warnings = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    warn(&format!(
        "{}: {} probes, {} invalid, {} warnings",
        opts.config.display(),
        decls.len(),
        errors.len(),
        warnings
    ));
    Ok(if errors.is_empty() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lines() {
        assert_eq!(parse_control("stats"), Ok(Control::Stats));
        assert_eq!(parse_control("reset r1"), Ok(Control::Reset("r1".into())));
        assert!(parse_control("reset").is_err());
        assert!(parse_control("stats now").is_err());
        let long = format!("reset {}", "x".repeat(300));
        let err = parse_control(&long).unwrap_err();
        assert!(err.contains("at most 256 bytes"), "{err}");
        let err = parse_control(&"y".repeat(4000)).unwrap_err();
        assert!(err.len() < 300, "{err}");
    }
}
