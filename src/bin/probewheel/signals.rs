//! Signals as channel messages (README, "Running as a service").
//!
//! Every signal the binary acts on, and every other one whose default
//! action would kill the process (leaving exec children, which live in
//! their own process groups, behind), is blocked in the main thread before
//! any other thread exists, so every thread inherits the mask, and one
//! thread takes them with `sigwait`: no handler, no async-signal-safety
//! concerns. Exec children start with an empty mask (std's `Command` resets
//! it). SIGPIPE is ignored, so a closed stdout is an `EPIPE` error.

use std::io;
use std::thread;

use crossbeam_channel::Sender;

use crate::sys::{self, SignalSet};

/// What the binary does with a signal it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// SIGINT, SIGTERM, SIGQUIT: shut down cleanly.
    Stop(i32),
    /// SIGHUP: reset to the current rollout, re-reading the file.
    Reload,
    /// SIGUSR1: print a stats line.
    Stats,
    /// Any other blocked signal: logged, otherwise ignored.
    Ignored(i32),
}

const STOP: &[libc::c_int] = &[libc::SIGINT, libc::SIGTERM, libc::SIGQUIT];

/// Default-fatal signals nobody should need to send us; taken so that they
/// cannot kill the process and orphan its children.
const IGNORED: &[libc::c_int] = &[
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGIO,
    libc::SIGPWR,
    libc::SIGSTKFLT,
];

fn classify(sig: libc::c_int) -> Signal {
    match sig {
        s if STOP.contains(&s) => Signal::Stop(s),
        libc::SIGHUP => Signal::Reload,
        libc::SIGUSR1 => Signal::Stats,
        s => Signal::Ignored(s),
    }
}

/// Blocks the signals above for the calling thread and its future threads,
/// and ignores SIGPIPE. Call before spawning any thread.
pub(crate) fn block() -> io::Result<SignalSet> {
    let acted_on = [libc::SIGHUP, libc::SIGUSR1];
    sys::block(STOP.iter().chain(IGNORED).chain(&acted_on).copied())
}

/// Sends each signal of `set` taken by `sigwait` on `tx`.
pub(crate) fn forward(set: SignalSet, tx: Sender<Signal>) -> io::Result<()> {
    thread::Builder::new()
        .name("probewheel-signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                if let Ok(sig) = set.wait() {
                    if tx.send(classify(sig)).is_err() {
                        return;
                    }
                }
            }
        })?;
    Ok(())
}
