//! The output thread of `wait` and `once`: the only writer of stdout.
//!
//! It takes the engine's events, asks the command's [`Rule`] after each
//! whether the command is done, and shows what happens in one of three
//! styles:
//!
//! - `Json`: every event as a JSON line, as `run` prints them (buffered,
//!   written when the channel has nothing more); the closing line goes to
//!   stderr.
//! - `Live`: a table redrawn in place on a terminal (cursor up, each line
//!   cleared to its end), at most five times a second, and once a second
//!   while a countdown runs; then the closing line below it.
//! - `Plain`: `--format text` when stdout is not a terminal: lines appended
//!   only when a probe's row or the verdict changed (compared once the
//!   channel has nothing more, so a burst is one change); then the closing
//!   line.
//!
//! Being the only writer, it is the only thread a stdout that stalls can
//! hold up: the main thread still takes signals and ends the process.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, after, never, select};
use probewheel::Event;

use crate::output;
use crate::view::View;

/// How a command's output thread shows events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Json,
    Live,
    Plain,
}

/// The command is done: its exit status and the line that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) code: u8,
    pub(crate) line: String,
}

/// What a command adds to the view: when it is done, and its header.
pub(crate) trait Rule: Send + 'static {
    /// Folds `ev` in (`view` already has it); `Some` when the command is done.
    fn observe(&mut self, ev: &Event, view: &View) -> Option<Outcome>;
    /// The lines above the table at wall time `now_us`.
    fn header(&self, view: &View, now_us: i64) -> Vec<String>;
    /// A line appended (plain style) whenever it changes.
    fn status(&self, view: &View) -> Option<String>;
    /// The closing line when a signal stops the command first.
    fn interrupted(&self, view: &View, signal: i32) -> String;
    /// True while the header counts down (the live table is redrawn every
    /// second even without events).
    fn ticking(&self, view: &View) -> bool;
}

/// How the output thread ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The rule said the command is done.
    Done(Outcome),
    /// A stop signal came first; its closing line is written.
    Interrupted,
    /// The engine closed its channel before the rule was done.
    EngineGone,
    /// stdout failed (closed or full).
    Failed(io::Error),
}

/// Live redraws are at least this far apart.
const MIN_REDRAW: Duration = Duration::from_millis(200);

/// While a countdown runs, the live table is redrawn this often.
const TICK: Duration = Duration::from_secs(1);

/// Size assumed when the terminal does not say.
const DEFAULT_SIZE: (usize, usize) = (80, 24);

/// Starts the output thread. `stop` carries a stop signal's number; the
/// thread reports how it ended on `ended`.
pub(crate) fn spawn<R: Rule>(
    events: Receiver<Event>,
    view: View,
    rule: R,
    style: Style,
    stop: Receiver<i32>,
    ended: Sender<Ended>,
) -> io::Result<()> {
    thread::Builder::new()
        .name("probewheel-stdout".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let mut out = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
            let mut w = Watch::new(view, rule, style);
            let end = w
                .pump(&mut out, &events, &stop)
                .unwrap_or_else(Ended::Failed);
            let _ = ended.send(end);
        })?;
    Ok(())
}

struct Watch<R> {
    view: View,
    rule: R,
    style: Style,
    /// Lines of the live table on the screen now.
    drawn: usize,
    last_draw: Option<Instant>,
    /// The screen (live) or the appended lines (plain) are behind the view.
    dirty: bool,
    /// Plain style: the header was printed.
    title_shown: bool,
    /// Plain style: each probe's row as last printed.
    rows: BTreeMap<Arc<str>, String>,
    /// Plain style: the status line as last printed.
    status: Option<String>,
}

impl<R: Rule> Watch<R> {
    fn new(view: View, rule: R, style: Style) -> Watch<R> {
        Watch {
            view,
            rule,
            style,
            drawn: 0,
            last_draw: None,
            dirty: false,
            title_shown: false,
            rows: BTreeMap::new(),
            status: None,
        }
    }

    fn pump(
        &mut self,
        out: &mut impl Write,
        events: &Receiver<Event>,
        stop: &Receiver<i32>,
    ) -> io::Result<Ended> {
        let mut stop = stop.clone();
        loop {
            let redraw = match self.next_draw() {
                Some(t) => after(t.saturating_duration_since(crate::clock::now())),
                None => never(),
            };
            select! {
                recv(events) -> ev => {
                    let Ok(ev) = ev else {
                        out.flush()?;
                        return Ok(Ended::EngineGone);
                    };
                    let changed = self.view.observe(&ev);
                    let outcome = self.rule.observe(&ev, &self.view);
                    if self.style == Style::Json {
                        output::write_line(out, &ev)?;
                    }
                    if let Some(o) = outcome {
                        self.close(out, &o.line)?;
                        return Ok(Ended::Done(o));
                    }
                    if self.style != Style::Json {
                        self.dirty |= changed;
                    }
                },
                recv(stop) -> sig => match sig {
                    Ok(sig) => {
                        let line = self.rule.interrupted(&self.view, sig);
                        self.close(out, &line)?;
                        return Ok(Ended::Interrupted);
                    }
                    Err(_) => stop = never(),
                },
                recv(redraw) -> _ => self.draw(out)?,
            }
            // Nothing more to take: show the batch as one change.
            if events.is_empty() {
                match self.style {
                    Style::Live => {
                        if self.next_draw().is_some_and(|t| t <= crate::clock::now()) {
                            self.draw(out)?;
                        }
                    }
                    Style::Plain if self.dirty => {
                        self.append(out)?;
                        out.flush()?;
                    }
                    _ => out.flush()?,
                }
            }
        }
    }

    /// When the live table is due to be drawn again, if it is.
    fn next_draw(&self) -> Option<Instant> {
        if self.style != Style::Live {
            return None;
        }
        let Some(last) = self.last_draw else {
            return self.dirty.then(crate::clock::now);
        };
        if self.dirty {
            Some(last + MIN_REDRAW)
        } else if self.drawn > 0 && self.rule.ticking(&self.view) {
            Some(last + TICK)
        } else {
            None
        }
    }

    /// Redraws the live table over the previous one.
    fn draw(&mut self, out: &mut impl Write) -> io::Result<()> {
        let (width, height) = crate::sys::stdout_size().unwrap_or(DEFAULT_SIZE);
        let header = self.rule.header(&self.view, crate::clock::wall_now_us());
        // One line fewer than the screen: the cursor waits on the next one,
        // and moving up never has to cross the top of the screen.
        let lines = self.view.frame(&header, width, height.saturating_sub(1));
        let mut buf = String::new();
        if self.drawn > 0 {
            // To the start of the first line drawn last time.
            buf.push_str(&format!("\x1b[{}F", self.drawn));
        }
        for l in &lines {
            buf.push_str(l);
            buf.push_str("\x1b[K\n");
        }
        // Whatever a longer previous frame left below.
        buf.push_str("\x1b[J");
        out.write_all(buf.as_bytes())?;
        out.flush()?;
        self.drawn = lines.len();
        self.last_draw = Some(crate::clock::now());
        self.dirty = false;
        Ok(())
    }

    /// Plain style: the header once, then the rows and the status that
    /// changed.
    fn append(&mut self, out: &mut impl Write) -> io::Result<()> {
        self.dirty = false;
        if !self.title_shown && self.view.rollout().is_some() {
            self.title_shown = true;
            let header = self.rule.header(&self.view, crate::clock::wall_now_us());
            if let Some(first) = header.first() {
                writeln!(out, "{first}")?;
            }
        }
        for (name, line) in self.view.plain_rows() {
            if self.rows.get(&name) != Some(&line) {
                writeln!(out, "  {line}")?;
                self.rows.insert(name, line);
            }
        }
        let status = self.rule.status(&self.view);
        if status.is_some() && status != self.status {
            writeln!(out, "{}", status.as_deref().unwrap_or_default())?;
            self.status = status;
        }
        Ok(())
    }

    /// The last table (live) or rows (plain), then the closing line; for
    /// JSON, the closing line goes to stderr.
    fn close(&mut self, out: &mut impl Write, line: &str) -> io::Result<()> {
        match self.style {
            Style::Json => {
                out.flush()?;
                let _ = writeln!(io::stderr().lock(), "probewheel: {line}");
                return Ok(());
            }
            Style::Live => self.draw(out)?,
            Style::Plain => {
                // The closing line says the verdict: not twice.
                self.status = Some(line.to_owned());
                self.append(out)?
            }
        }
        writeln!(out, "{line}")?;
        out.flush()
    }
}

/// What ended a command's main loop.
#[derive(Debug)]
pub(crate) enum Finish {
    /// The output thread ended (see [`Ended`]).
    Output(Ended),
    /// Stop signal `n`; the output thread was told, and had this long to
    /// write its closing line.
    Signal(i32),
    /// The backstop timer fired first.
    Backstop,
}

/// How long a stop signal leaves the output thread to write its closing
/// line before the process goes on to stop the engine.
const CLOSE_BUDGET: Duration = Duration::from_millis(300);

/// The main thread of `wait` and `once`: waits for the output thread, a
/// stop signal (SIGINT, SIGTERM, SIGQUIT; and SIGHUP, the terminal going
/// away: these commands have nothing to reload) or `backstop`, whichever
/// comes first. Other signals are logged and ignored.
pub(crate) fn finish(
    ended: &Receiver<Ended>,
    mut signals: Receiver<crate::signals::Signal>,
    stop: &Sender<i32>,
    backstop: Receiver<Instant>,
) -> Finish {
    use crate::signals::Signal;
    loop {
        select! {
            recv(ended) -> end => {
                return Finish::Output(end.unwrap_or(Ended::EngineGone));
            },
            recv(signals) -> sig => match sig {
                Ok(Signal::Stop(n)) => {
                    let _ = stop.try_send(n);
                    let _ = ended.recv_timeout(CLOSE_BUDGET);
                    return Finish::Signal(n);
                }
                Ok(Signal::Reload) => {
                    let _ = stop.try_send(libc::SIGHUP);
                    let _ = ended.recv_timeout(CLOSE_BUDGET);
                    return Finish::Signal(libc::SIGHUP);
                }
                Ok(other) => log::warn!("{other:?} ignored"),
                Err(_) => signals = never(),
            },
            recv(backstop) -> _ => return Finish::Backstop,
        }
    }
}

/// A signal's name for a person.
pub(crate) fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        libc::SIGHUP => "SIGHUP".into(),
        n => format!("signal {n}"),
    }
}

#[cfg(test)]
mod tests;
