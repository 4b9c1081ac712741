//! The binary's own OS calls: signal mask and `sigwait`, the descriptor
//! limit, what stdout is (a terminal, how large), random bytes. Over rustix where it has the
//! call; the signal set is libc's (rustix has no safe `sigwait`).

use std::io::{self, IsTerminal};

/// A set of signals, blocked in every thread by [`block`].
#[derive(Clone, Copy)]
pub(crate) struct SignalSet(libc::sigset_t);

/// Blocks `signals` for the calling thread and the threads it starts
/// later, and ignores SIGPIPE (a closed stdout is then an `EPIPE` error).
/// Call before spawning any thread.
pub(crate) fn block(signals: impl IntoIterator<Item = libc::c_int>) -> io::Result<SignalSet> {
    // SAFETY: sigset_t is plain data that sigemptyset/sigaddset initialise;
    // pthread_sigmask only changes this thread's mask, and SIG_IGN for
    // SIGPIPE installs no handler code.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, s);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if libc::signal(libc::SIGPIPE, libc::SIG_IGN) == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
        Ok(SignalSet(set))
    }
}

impl SignalSet {
    /// Waits for one signal of the set to be pending and takes it.
    pub(crate) fn wait(&self) -> io::Result<libc::c_int> {
        let mut sig: libc::c_int = 0;
        // SAFETY: the set was initialised by `block`; `sig` is valid.
        let rc = unsafe { libc::sigwait(&self.0, &mut sig) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(sig)
    }
}

/// Raises the soft limit on open descriptors to the hard limit. Returns
/// the new soft limit.
pub(crate) fn raise_nofile_limit() -> io::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        setrlimit(Resource::Nofile, lim)?;
    }
    Ok(lim.current.unwrap_or(u64::MAX))
}

/// True when stdout is a terminal that understands cursor movement
/// (`TERM=dumb` does not).
pub(crate) fn stdout_is_terminal() -> bool {
    io::stdout().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// Columns and rows of the terminal on stdout, if it is one.
pub(crate) fn stdout_size() -> Option<(usize, usize)> {
    let ws = rustix::termios::tcgetwinsize(io::stdout()).ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some((usize::from(ws.ws_col), usize::from(ws.ws_row)))
}

/// Fills `buf` from the kernel's random generator.
pub(crate) fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
