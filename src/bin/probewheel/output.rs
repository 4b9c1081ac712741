//! The output thread of `run`: the only writer of stdout.
//!
//! It takes events straight from the engine's channel, so when stdout
//! stalls (a consumer that stops reading) only this thread waits in
//! `write`; the channel fills and the engine queues and coalesces as in G9,
//! while the main thread goes on taking commands and signals.
//!
//! Ordering: a `stats` line carries the `lastSeq` the engine had sent when
//! it answered, and is printed only after the event with that `seq`, so it
//! comes after every event sent before the command (events have no gaps in
//! `seq`).
//!
//! Lines are gathered in a buffer and written when the channel has nothing
//! more (or the buffer is full): a burst of a thousand results costs a few
//! `write`s, not one each, and a line is never held back while the thread
//! waits for the next event.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::thread;

use crossbeam_channel::{Receiver, Sender, never, select};
use probewheel::{Event, Mode, Stats};
use serde::Serialize;

use crate::metrics::Metrics;
use crate::service::Notifier;

/// How the output thread ended.
pub(crate) type Ended = Result<(), io::Error>;

#[derive(Serialize)]
struct StatsLine<'a> {
    event: &'static str,
    #[serde(flatten)]
    stats: &'a Stats,
}

/// Writes one JSON line into `out` without flushing it.
pub(crate) fn write_line<T: Serialize>(out: &mut impl Write, value: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::from)?;
    out.write_all(b"\n")
}

/// Writes a stats line (not flushed).
fn write_stats(out: &mut impl Write, stats: &Stats) -> io::Result<()> {
    write_line(
        out,
        &StatsLine {
            event: "stats",
            stats,
        },
    )
}

/// What the output thread buffers before it writes anyway.
const OUT_BUFFER: usize = 64 * 1024;

/// What the output thread is given besides the events.
pub(crate) struct Outputs {
    /// Folded from every event, for `--metrics-file`.
    pub(crate) metrics: Option<Arc<Mutex<Metrics>>>,
    /// Told (try_send) when `metrics` changed.
    pub(crate) dirty: Sender<()>,
    /// READY=1 and STATUS= go here.
    pub(crate) notifier: Option<Arc<Notifier>>,
}

/// Starts the output thread. Stats to print come on the returned sender;
/// the thread reports how it ended on `ended` (once the engine's channel is
/// closed and drained, or at the first write error).
pub(crate) fn spawn(
    events: Receiver<Event>,
    outputs: Outputs,
    ended: Sender<Ended>,
) -> io::Result<Sender<Stats>> {
    // Bounded: a flood of `stats` commands while stdout stalls is refused
    // by the main loop, not stored.
    let (stats_tx, stats_rx) = crossbeam_channel::bounded(64);
    thread::Builder::new()
        .name("probewheel-stdout".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let mut out = io::BufWriter::with_capacity(OUT_BUFFER, io::stdout().lock());
            let result = pump(&mut out, &events, stats_rx, &outputs);
            let _ = ended.send(result);
        })?;
    Ok(stats_tx)
}

fn pump(
    out: &mut impl Write,
    events: &Receiver<Event>,
    mut stats_rx: Receiver<Stats>,
    outputs: &Outputs,
) -> Ended {
    let mut printed_seq = 0u64;
    let mut waiting: VecDeque<Stats> = VecDeque::new();
    let mut ready_sent = false;
    loop {
        select! {
            recv(events) -> ev => {
                let Ok(ev) = ev else { break };
                if let Some(m) = &outputs.metrics {
                    m.lock().unwrap_or_else(|p| p.into_inner()).observe(&ev);
                    let _ = outputs.dirty.try_send(());
                }
                if let Some(n) = &outputs.notifier {
                    notify(n, &ev, &mut ready_sent);
                }
                write_line(out, &ev)?;
                printed_seq = ev.seq();
                while waiting.front().is_some_and(|s| s.last_seq <= printed_seq) {
                    let s = waiting.pop_front().expect("front checked");
                    write_stats(out, &s)?;
                }
            },
            recv(stats_rx) -> s => match s {
                Ok(s) if waiting.is_empty() && s.last_seq <= printed_seq => write_stats(out, &s)?,
                Ok(s) => waiting.push_back(s),
                Err(_) => stats_rx = never(),
            },
        }
        // Nothing more to take: what is buffered goes out now.
        if events.is_empty() {
            out.flush()?;
        }
    }
    // The engine is gone and every event it sent is printed.
    for s in waiting.drain(..).chain(stats_rx.try_iter()) {
        write_stats(out, &s)?;
    }
    out.flush()
}

/// READY=1 after the first topology or rejection, STATUS= after each.
fn notify(n: &Notifier, ev: &Event, ready_sent: &mut bool) {
    let status = match ev {
        Event::TopologyDeclared(t) => {
            let count = |m| t.probes.iter().filter(|p| p.mode == m).count();
            format!(
                "rollout {} generation {}: {} probes ({} enforce, {} observe, {} disabled)",
                t.header.rollout_id,
                t.header.generation,
                t.probes.len(),
                count(Mode::Enforce),
                count(Mode::Observe),
                count(Mode::Disabled)
            )
        }
        Event::DeclarationsRejected(r) => {
            let reason: String = r.reason.chars().take(200).collect();
            format!(
                "rollout {} generation {}: declarations rejected: {}",
                r.header.rollout_id,
                r.header.generation,
                reason.escape_debug()
            )
        }
        _ => return,
    };
    let ready = if *ready_sent { "" } else { "READY=1\n" };
    *ready_sent = true;
    n.send(&format!("{ready}STATUS={status}"));
}
