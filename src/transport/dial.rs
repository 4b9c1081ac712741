//! Connecting without blocking: the one place that opens sockets.
//!
//! A [`Dial`] tries its addresses in the resolver's order (RFC 6724), one
//! attempt in flight at a time, on a non-blocking close-on-exec
//! `mio::net::TcpStream` registered for reading and writing, so the
//! connection keeps its registration. It has no clock: the caller
//! (`connect`) owns one deadline for every address and describes its
//! passing with [`Dial::timed_out`].
//!
//! [`Spares`]: a plain `tcp` probe's socket whose connect completed within
//! the call is dissolved (`connect` with `AF_UNSPEC`, a RST) and kept for
//! the next run, which then skips socket creation and destruction, a third
//! of the kernel's work per loopback probe (README, "Guarantees").

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::Duration;

use mio::Interest;
use mio::net::TcpStream;

use crate::sys::socket;
use crate::transport::Watch;

/// What a call of [`Dial::advance`] found.
#[derive(Debug)]
pub(crate) enum Dialed {
    /// An attempt is in flight: wait for readiness (or the deadline).
    Pending,
    /// Connected; the stream stays registered with the run's token for
    /// reading and writing.
    Connected(TcpStream, SocketAddr),
    /// Connected and, as asked (no `keep`), closed at once.
    Reached,
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
    failures: Failures,
    /// Whether the connection is kept: not when the caller only wants to
    /// know it can be made.
    keep: bool,
}

impl Dial {
    /// Will try `addrs` in order; nothing happens before [`Dial::advance`].
    /// Without `keep` the connection is closed once made, and one made at
    /// once (loopback) is never registered and leaves a spare.
    pub(crate) fn new(addrs: Vec<SocketAddr>, keep: bool) -> Dial {
        Dial {
            addrs,
            next: 0,
            current: None,
            failures: Failures::default(),
            keep,
        }
    }

    /// Makes what progress can be made now: learns the outcome of the
    /// attempt in flight, and starts the next one after a failure.
    pub(crate) fn advance(&mut self, cx: &mut impl Watch) -> Dialed {
        loop {
            if let Some((addr, stream)) = &mut self.current {
                match outcome(stream) {
                    Ok(false) => return Dialed::Pending,
                    Ok(true) => {
                        let (addr, stream) = self.current.take().expect("checked above");
                        if self.keep {
                            return Dialed::Connected(stream, addr);
                        }
                        close_at_once(stream);
                        return Dialed::Reached;
                    }
                    Err(e) => {
                        let addr = *addr;
                        let _ = cx.unwatch(stream);
                        self.current = None; // closes the socket
                        self.failures.0.push((addr, e));
                    }
                }
            }
            let Some(&addr) = self.addrs.get(self.next) else {
                return Dialed::Failed;
            };
            self.next += 1;
            let spare = if self.keep {
                None
            } else {
                cx.spares().take(&addr)
            };
            let mut stream =
                match spare.map_or_else(|| TcpStream::connect(addr), |s| connect_on(s, &addr)) {
                    Ok(stream) => stream,
                    Err(e) => {
                        self.failures.0.push((addr, e));
                        continue;
                    }
                };
            // Loopback connects complete within the call; reading `SO_ERROR`
            // clears it, so a failure seen here is recorded here.
            let connected = outcome(&stream);
            if !self.keep && !matches!(connected, Ok(false)) {
                cx.spares().recycle(stream, &addr);
                match connected {
                    Err(e) => self.failures.0.push((addr, e)),
                    _ => return Dialed::Reached,
                }
                continue;
            }
            let connected = match connected {
                Ok(connected) => connected,
                Err(e) => {
                    self.failures.0.push((addr, e));
                    continue;
                }
            };
            if let Err(e) = cx.watch(&mut stream, Interest::READABLE | Interest::WRITABLE) {
                self.failures.0.push((addr, e));
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

    /// The attempts that failed, taken.
    pub(crate) fn failures(&mut self) -> Failures {
        std::mem::take(&mut self.failures)
    }

    /// The attempts that failed, then the one in flight (or the last one
    /// tried) as `timed out after <secs> s`: when the caller's deadline,
    /// `after` the start, came while dialing.
    pub(crate) fn timed_out(&mut self, after: Duration) -> Failures {
        let addr = self
            .current()
            .or_else(|| self.addrs.get(self.next.saturating_sub(1)).copied());
        if let Some(addr) = addr {
            self.failures.0.push((addr, timed_out(after)));
        }
        self.failures()
    }
}

/// `timed out after N s`, as an error.
pub(crate) fn timed_out(after: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("timed out after {} s", after.as_secs()),
    )
}

/// Failed connect attempts, in order. `Display`: `connect A: <error>;
/// connect B: <error>`.
#[derive(Debug, Default)]
pub(crate) struct Failures(Vec<(SocketAddr, io::Error)>);

impl fmt::Display for Failures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (addr, e)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}connect {addr}: {e}")?;
        }
        Ok(())
    }
}

/// Whether a connect in progress has completed: `Ok(false)` while it is
/// still in progress, the error when it failed.
fn outcome(stream: &TcpStream) -> io::Result<bool> {
    // One call when connected; `SO_ERROR` only to tell "in progress" from "failed".
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => match stream.take_error()? {
            Some(e) => Err(e),
            None => Ok(false),
        },
        Err(e) => Err(e),
    }
}

/// Most spare sockets kept per address family: loopback connects complete
/// within the call, so a few cover a burst of any size.
const SPARES_PER_FAMILY: usize = 4;

/// Sockets whose connections were dissolved, waiting to connect again:
/// IPv4, IPv6. A worker owns one and lends it to its runs.
#[derive(Debug, Default)]
pub(crate) struct Spares([Vec<OwnedFd>; 2]);

impl Spares {
    /// How many spare sockets are held: IPv4, IPv6.
    #[cfg(test)]
    pub(crate) fn held(&self) -> [usize; 2] {
        self.0.each_ref().map(Vec::len)
    }

    fn take(&mut self, addr: &SocketAddr) -> Option<OwnedFd> {
        self.0[family(addr)].pop()
    }

    /// Dissolves the connection on `stream` to `addr` and keeps the socket,
    /// or closes it when the list is full or the kernel refuses.
    fn recycle(&mut self, stream: TcpStream, addr: &SocketAddr) {
        let list = &mut self.0[family(addr)];
        if list.len() == SPARES_PER_FAMILY {
            return close_at_once(stream);
        }
        let fd = OwnedFd::from(stream);
        if socket::dissolve(&fd).is_ok() {
            list.push(fd);
        }
    }
}

fn family(addr: &SocketAddr) -> usize {
    usize::from(addr.is_ipv6())
}

/// Starts a non-blocking connect on a spare socket, as
/// `TcpStream::connect` does on a new one.
fn connect_on(fd: OwnedFd, addr: &SocketAddr) -> io::Result<TcpStream> {
    socket::start_connect(&fd, addr)?;
    Ok(TcpStream::from(fd))
}

/// Closes a connection made only to see that it could be, with a reset
/// (`SO_LINGER` 0, as kubelet does) so no `TIME_WAIT` socket is left per run.
pub(crate) fn close_at_once(stream: TcpStream) {
    let _ = socket::reset_on_close(&stream);
}
