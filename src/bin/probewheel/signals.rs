//! SIGINT and SIGTERM as a channel message.
//!
//! The signals are blocked in the main thread before any other thread
//! exists, so every thread inherits the mask, and one thread takes them with
//! `sigwait`: no async-signal-safety concerns, no handler.

use std::io;
use std::thread;

use crossbeam_channel::Sender;

/// Blocks SIGINT and SIGTERM for the calling thread and its future
/// children. Call before spawning any thread.
pub(crate) fn block() -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it,
    // and pthread_sigmask only changes this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(set)
    }
}

/// Sends the signal number on `tx` for each SIGINT/SIGTERM received.
pub(crate) fn forward(set: libc::sigset_t, tx: Sender<i32>) -> io::Result<()> {
    thread::Builder::new()
        .name("probewheel-signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: `set` is an initialised sigset_t, `sig` is valid.
                let rc = unsafe { libc::sigwait(&set, &mut sig) };
                if rc == 0 && tx.send(sig).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}
