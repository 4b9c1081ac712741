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
pub(crate) fn block() -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it,
    // pthread_sigmask only changes this thread's mask, and setting SIGPIPE
    // to SIG_IGN installs no handler code.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in STOP.iter().chain(IGNORED) {
            libc::sigaddset(&mut set, s);
        }
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if libc::signal(libc::SIGPIPE, libc::SIG_IGN) == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
        Ok(set)
    }
}

/// Sends each signal of `set` taken by `sigwait` on `tx`.
pub(crate) fn forward(set: libc::sigset_t, tx: Sender<Signal>) -> io::Result<()> {
    thread::Builder::new()
        .name("probewheel-signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: `set` is an initialised sigset_t, `sig` is valid.
                let rc = unsafe { libc::sigwait(&set, &mut sig) };
                if rc == 0 && tx.send(classify(sig)).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}
