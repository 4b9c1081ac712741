//! Connecting without blocking: the one place that opens sockets.
//!
//! A [`Dial`] is the connect step of a run's state machine. It tries the
//! addresses it was given in order (as the resolver returned them, so
//! `getaddrinfo`'s RFC 6724 preference holds): one attempt in flight at a
//! time, the next one as soon as the current one fails. The socket is a
//! `mio::net::TcpStream` (non-blocking and close-on-exec from the start, so
//! an `exec` probe forking elsewhere does not inherit it), registered with
//! the run's worker for readable and writable readiness: the connect
//! completes with a writable edge, and the connection keeps the same
//! registration for its requests and responses, so nothing is
//! re-registered. After a wake-up, `SO_ERROR` (`take_error`) and
//! `peer_addr` tell the outcome; a spurious wake-up shows as "not
//! connected yet" and costs nothing.
//!
//! The dial has no clock: the run owns the deadline, checks it before every
//! call, and when it passes describes the failure with
//! [`Dial::timed_out`]. One deadline covers every address, so an address
//! that never answers (a black hole) uses up the budget of the ones after
//! it; addresses that fail at once (refused, unreachable) cost nothing.
//!
//! Failure texts, in the wording the probes' reasons have always used:
//! `connect 127.0.0.1:22: Connection refused (os error 111)`, several joined
//! with `; `, and `connect [::1]:8080: timed out after 5 s`.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;

use mio::Interest;
use mio::net::TcpStream;

use crate::runner::machine::Cx;

/// What a call of [`Dial::advance`] found.
#[derive(Debug)]
pub(crate) enum Dialed {
    /// An attempt is in flight: wait for readiness (or the deadline).
    Pending,
    /// Connected; the stream stays registered with the run's token for
    /// reading and writing.
    Connected(TcpStream, SocketAddr),
    /// Every address failed ([`Dial::failures`] says how).
    Failed,
}

/// Connecting to the first of several addresses that accepts.
#[derive(Debug)]
pub(crate) struct Dial {
    addrs: Vec<SocketAddr>,
    /// Index of the next address to try.
    next: usize,
    /// The attempt in flight.
    current: Option<(SocketAddr, TcpStream)>,
    /// The attempts that failed, in order.
    failures: Vec<(SocketAddr, io::Error)>,
    /// Whether a connection that completes at once (loopback) is still
    /// registered: not when the caller only wants to know it connected.
    keep: bool,
}

impl Dial {
    /// Will try `addrs` in order; nothing happens before [`Dial::advance`].
    pub(crate) fn new(addrs: Vec<SocketAddr>) -> Dial {
        Dial {
            addrs,
            next: 0,
            current: None,
            failures: Vec::new(),
            keep: true,
        }
    }

    /// Like [`Dial::new`], for a caller that closes the connection as soon
    /// as it is made (a plain `tcp` probe): a connect that completes at
    /// once, as on loopback, is never registered with the poll.
    pub(crate) fn connect_only(addrs: Vec<SocketAddr>) -> Dial {
        Dial {
            keep: false,
            ..Dial::new(addrs)
        }
    }

    /// Makes what progress can be made now: learns the outcome of the
    /// attempt in flight, and starts the next one after a failure.
    pub(crate) fn advance(&mut self, cx: &Cx<'_>) -> Dialed {
        loop {
            if let Some((addr, stream)) = &mut self.current {
                match outcome(stream) {
                    Ok(false) => return Dialed::Pending,
                    Ok(true) => {
                        let (addr, stream) = self.current.take().expect("checked above");
                        return Dialed::Connected(stream, addr);
                    }
                    Err(e) => {
                        let addr = *addr;
                        let _ = cx.deregister(stream);
                        self.current = None; // closes the socket
                        self.failures.push((addr, e));
                    }
                }
            }
            let Some(&addr) = self.addrs.get(self.next) else {
                return Dialed::Failed;
            };
            self.next += 1;
            let mut stream = match TcpStream::connect(addr) {
                Ok(stream) => stream,
                Err(e) => {
                    self.failures.push((addr, e));
                    continue;
                }
            };
            // Loopback connects complete within the call: then there is
            // nothing to wait for, and a caller that closes at once needs
            // no registration.
            // (`SO_ERROR` is cleared by reading it: a failure seen here is
            // recorded here.)
            let connected = match outcome(&stream) {
                Ok(connected) => connected,
                Err(e) => {
                    self.failures.push((addr, e));
                    continue;
                }
            };
            if connected && !self.keep {
                return Dialed::Connected(stream, addr);
            }
            if let Err(e) = cx.register(&mut stream, Interest::READABLE | Interest::WRITABLE) {
                self.failures.push((addr, e));
                continue;
            }
            if connected {
                return Dialed::Connected(stream, addr);
            }
            self.current = Some((addr, stream));
        }
    }

    /// The address of the attempt in flight.
    pub(crate) fn current(&self) -> Option<SocketAddr> {
        self.current.as_ref().map(|(addr, _)| *addr)
    }

    /// `connect A: <error>; connect B: <error>`: every failed attempt.
    pub(crate) fn failed(&self) -> String {
        let mut s = String::new();
        for (addr, e) in &self.failures {
            if !s.is_empty() {
                s.push_str("; ");
            }
            let _ = write!(s, "connect {addr}: {e}");
        }
        s
    }

    /// The failed attempts, then `connect <current>: timed out after
    /// <secs> s`: the reason when the deadline came while dialing.
    pub(crate) fn timed_out(&self, secs: u64) -> String {
        let mut s = self.failed();
        let addr = self
            .current()
            .or_else(|| self.addrs.get(self.next.saturating_sub(1)).copied());
        if let Some(addr) = addr {
            if !s.is_empty() {
                s.push_str("; ");
            }
            let _ = write!(s, "connect {addr}: timed out after {secs} s");
        }
        s
    }
}

/// Whether a connect in progress has completed: `Ok(false)` while it is
/// still in progress, the error when it failed.
fn outcome(stream: &TcpStream) -> io::Result<bool> {
    // Connected (the common case) costs one call; `SO_ERROR` is read only
    // when not, to tell "in progress" from "failed".
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => match stream.take_error()? {
            Some(e) => Err(e),
            None => Ok(false),
        },
        Err(e) => Err(e),
    }
}

/// Closes a connection that was only made to see that it could be, with a
/// reset (`SO_LINGER` 0) instead of the FIN exchange: no `TIME_WAIT` socket
/// is left on this host for each run, and the kernel does less work per
/// probe (kubelet closes its TCP probes the same way). Best effort: if the
/// option cannot be set, the close is the ordinary one.
pub(crate) fn close_at_once(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads `size_of::<linger>()` bytes from a valid
    // `linger` on a descriptor `stream` owns for the duration of the call.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(stream);
}
