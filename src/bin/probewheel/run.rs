//! The three commands.

use std::collections::BTreeSet;
use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::thread;

use crossbeam_channel::{Receiver, select};
use probewheel::decl::{self, Severity};
use probewheel::{Builder, Engine, Event, Mode, Stats, Status};
use serde::Serialize;

use crate::args::Opts;
use crate::signals;

/// A command read from stdin.
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
        ("reset", Some(id), None) => Ok(Control::Reset(id.to_owned())),
        ("reset", None, _) => Err("reset needs a rollout id: reset <rollout-id>".into()),
        ("stats", None, _) => Ok(Control::Stats),
        ("shutdown", None, _) => Ok(Control::Shutdown),
        ("reset" | "stats" | "shutdown", _, _) => Err(format!("too many arguments: {line:?}")),
        _ => Err(format!(
            "unknown command {cmd:?} (commands: reset <rollout-id>, stats, shutdown)"
        )),
    }
}

fn builder(opts: &Opts) -> Builder {
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
    b
}

/// Writes one JSON line and flushes; false when stdout is gone.
fn print_json<T: Serialize>(out: &mut impl Write, value: &T) -> bool {
    let ok = serde_json::to_writer(&mut *out, value).is_ok()
        && out.write_all(b"\n").is_ok()
        && out.flush().is_ok();
    if !ok {
        log::error!("stdout is closed; stopping");
    }
    ok
}

#[derive(Serialize)]
struct StatsLine<'a> {
    event: &'static str,
    #[serde(flatten)]
    stats: &'a Stats,
}

fn start(builder: Builder) -> Result<(Engine, Receiver<Event>, Receiver<i32>), ExitCode> {
    // Before any thread exists, so that every thread inherits the mask.
    let set = signals::block().map_err(|e| fail(&format!("cannot block signals: {e}")))?;
    let (sig_tx, sig_rx) = crossbeam_channel::bounded(4);
    signals::forward(set, sig_tx).map_err(|e| fail(&format!("cannot start signal thread: {e}")))?;
    let (engine, events) = builder.build().map_err(|e| fail(&e.to_string()))?;
    Ok((engine, events, sig_rx))
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("probewheel: {msg}");
    ExitCode::from(2)
}

pub(crate) fn run(opts: Opts) -> ExitCode {
    let (engine, events, signals) = match start(builder(&opts)) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded();
    let stdin_reader = thread::Builder::new()
        .name("probewheel-stdin".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            for line in io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if line.trim().is_empty() {
                    continue;
                }
                if ctl_tx.send(parse_control(line.trim())).is_err() {
                    break;
                }
            }
            // End of stdin does not stop the engine (DESIGN §5).
        });
    if let Err(e) = stdin_reader {
        return fail(&format!("cannot start stdin reader: {e}"));
    }
    if let Err(e) = engine.reset(&opts.rollout) {
        return fail(&e.to_string());
    }
    let mut out = io::stdout().lock();
    let mut code = ExitCode::SUCCESS;
    loop {
        select! {
            recv(events) -> ev => match ev {
                Ok(ev) => if !print_json(&mut out, &ev) { code = ExitCode::from(1); break },
                Err(_) => { log::error!("engine stopped"); code = ExitCode::from(1); break }
            },
            recv(ctl_rx) -> ctl => match ctl {
                Ok(Ok(Control::Reset(id))) => {
                    if let Err(e) = engine.reset(&id) { eprintln!("probewheel: reset: {e}"); }
                }
                Ok(Ok(Control::Stats)) => match engine.stats() {
                    Ok(stats) => if !print_json(&mut out, &StatsLine { event: "stats", stats: &stats }) {
                        code = ExitCode::from(1); break
                    },
                    Err(e) => eprintln!("probewheel: stats: {e}"),
                },
                Ok(Ok(Control::Shutdown)) => break,
                Ok(Err(msg)) => eprintln!("probewheel: {msg}"),
                Err(_) => {} // stdin reader gone: keep running
            },
            recv(signals) -> sig => {
                log::info!("signal {} received; shutting down", sig.unwrap_or(0));
                break
            },
        }
    }
    if let Err(e) = engine.shutdown() {
        eprintln!("probewheel: shutdown: {e}");
        return ExitCode::from(1);
    }
    // Events sent before the engine stopped are still printed.
    for ev in events.try_iter() {
        if !print_json(&mut out, &ev) {
            break;
        }
    }
    code
}

pub(crate) fn check(opts: Opts) -> ExitCode {
    let decls = match decl::load(&opts.config) {
        Ok(d) => d,
        Err(r) => {
            println!("error: {}: {r}", opts.config.display());
            return ExitCode::from(2);
        }
    };
    let findings = decl::check::check(&decls, builder(&opts).registry(), opts.min_interval);
    for f in &findings {
        println!("{f}");
    }
    let errors: BTreeSet<&str> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.probe.as_str())
        .collect();
    let warnings = findings.len()
        - findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
    eprintln!(
        "{}: {} probes, {} invalid, {} warnings",
        opts.config.display(),
        decls.len(),
        errors.len(),
        warnings
    );
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

pub(crate) fn once(mut opts: Opts) -> ExitCode {
    // One worker per probe unless told otherwise, so the whole run takes
    // as long as the slowest probe, not the sum.
    if !std::env::args().any(|a| a == "--workers" || a.starts_with("--workers=")) {
        let active = decl::load(&opts.config)
            .map(|d| {
                d.probes()
                    .iter()
                    .filter(|p| p.mode() != Mode::Disabled)
                    .count()
            })
            .unwrap_or(1);
        opts.workers = active.clamp(1, 64);
    }
    let (engine, events, signals) = match start(builder(&opts)) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if let Err(e) = engine.reset(&opts.rollout) {
        return fail(&e.to_string());
    }
    let mut out = io::stdout().lock();
    let mut waiting: Option<BTreeSet<String>> = None;
    let mut enforce_failed = false;
    let mut interrupted = false;
    while waiting.as_ref().is_none_or(|w| !w.is_empty()) {
        select! {
            recv(events) -> ev => {
                let Ok(ev) = ev else { break };
                if !print_json(&mut out, &ev) { interrupted = true; break }
                match &ev {
                    Event::TopologyDeclared(t) => {
                        waiting = Some(t.probes.iter()
                            .filter(|p| p.mode != Mode::Disabled)
                            .map(|p| p.probe_name.to_string())
                            .collect());
                    }
                    Event::DeclarationsRejected(r) => {
                        eprintln!("probewheel: {}: {}", r.path, r.reason);
                        enforce_failed = true;
                        break;
                    }
                    Event::ProbeResult(r) => {
                        if r.mode == Mode::Enforce && r.status == Status::Fail {
                            enforce_failed = true;
                        }
                        if let Some(w) = waiting.as_mut() { w.remove(&*r.probe_name); }
                    }
                    _ => {}
                }
            },
            recv(signals) -> _ => { interrupted = true; break },
        }
    }
    let _ = engine.shutdown();
    if enforce_failed || interrupted {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
