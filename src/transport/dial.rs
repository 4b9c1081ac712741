//! Connecting without blocking: the one place that opens sockets.
//!
//! A [`Dial`] tries its addresses in the resolver's order (RFC 6724), the
//! families interleaved, the next one [`STAGGER`] after the previous began
//! (at once when it failed), each on a non-blocking close-on-exec
//! `mio::net::TcpStream` registered for reading and writing, so the
//! connection keeps its registration. It reads no clock: the caller
//! (`connect`) passes `now` and owns one deadline for every address and describes its
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
use std::time::{Duration, Instant};

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

/// RFC 8305's "Connection Attempt Delay": the next address is tried this
/// long after the previous attempt began, unless it failed sooner.
pub(crate) const STAGGER: Duration = Duration::from_millis(250);

/// Connecting to the first of several addresses that accepts, racing them
/// as RFC 8305 ("happy eyeballs") does.
#[derive(Debug)]
pub(crate) struct Dial {
    addrs: Vec<SocketAddr>,
    /// Index of the next address to try.
    next: usize,
    /// When the next address may be tried while others are in flight.
    next_at: Option<Instant>,
    /// The attempts in flight, oldest first.
    attempts: Vec<(SocketAddr, TcpStream)>,
    /// The attempts that failed, in order.
    failures: Failures,
    /// Whether the connection is kept: not when the caller only wants to
    /// know it can be made.
    keep: bool,
}

impl Dial {
    /// Will try `addrs`, the families interleaved; nothing happens before
    /// [`Dial::advance`]. Without `keep` the connection is closed once
    /// made, and one made at once (loopback) is never registered and
    /// leaves a spare.
    pub(crate) fn new(addrs: Vec<SocketAddr>, keep: bool) -> Dial {
        Dial {
            addrs: interleave(addrs),
            next: 0,
            next_at: None,
            attempts: Vec::new(),
            failures: Failures::default(),
            keep,
        }
    }

    /// Makes what progress can be made at `now`: learns the outcome of the
    /// attempts in flight, and starts the next one when it is due.
    pub(crate) fn advance(&mut self, cx: &mut impl Watch, now: Instant) -> Dialed {
        loop {
            if let Some(done) = self.settle(cx, now) {
                return done;
            }
            let due = self.attempts.is_empty() || self.next_at.is_some_and(|at| now >= at);
            let Some(&addr) = self.addrs.get(self.next).filter(|_| due) else {
                return if self.attempts.is_empty() {
                    Dialed::Failed
                } else {
                    Dialed::Pending
                };
            };
            self.next += 1;
            self.next_at = Some(now + STAGGER);
            if let Some(done) = self.start(cx, addr) {
                return done;
            }
        }
    }

    /// When the next address is due, if one is waiting for its turn.
    pub(crate) fn next_start(&self) -> Option<Instant> {
        let waiting = self.next < self.addrs.len() && !self.attempts.is_empty();
        self.next_at.filter(|_| waiting)
    }

    /// Checks the attempts in flight: the first connected wins (the others
    /// close as they drop); a failed one is recorded and the next address
    /// becomes due at once.
    fn settle(&mut self, cx: &mut impl Watch, now: Instant) -> Option<Dialed> {
        let mut i = 0;
        while let Some((addr, stream)) = self.attempts.get_mut(i) {
            match outcome(stream) {
                Ok(false) => i += 1,
                Ok(true) => {
                    let (addr, stream) = self.attempts.swap_remove(i);
                    self.abandon(cx);
                    return Some(self.connected(stream, addr));
                }
                Err(e) => {
                    let addr = *addr;
                    let _ = cx.unwatch(stream);
                    self.attempts.remove(i); // closes the socket
                    self.failures.0.push((addr, e));
                    self.next_at = Some(now);
                }
            }
        }
        None
    }

    /// Starts a connect to `addr`: the outcome when it ended within the
    /// call, else `None` with the attempt in flight or recorded as failed.
    fn start(&mut self, cx: &mut impl Watch, addr: SocketAddr) -> Option<Dialed> {
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
                    return None;
                }
            };
        // Loopback connects complete within the call; reading `SO_ERROR`
        // clears it, so a failure seen here is recorded here.
        let connected = outcome(&stream);
        if !self.keep && !matches!(connected, Ok(false)) {
            cx.spares().recycle(stream, &addr);
            return match connected {
                Err(e) => {
                    self.failures.0.push((addr, e));
                    None
                }
                _ => {
                    self.abandon(cx);
                    Some(Dialed::Reached)
                }
            };
        }
        let result = connected.and_then(|connected| {
            cx.watch(&mut stream, Interest::READABLE | Interest::WRITABLE)?;
            Ok(connected)
        });
        match result {
            Ok(true) => {
                self.abandon(cx);
                return Some(Dialed::Connected(stream, addr));
            }
            Ok(false) => self.attempts.push((addr, stream)),
            Err(e) => self.failures.0.push((addr, e)),
        }
        None
    }

    /// A connection made: kept, or closed at once as asked.
    fn connected(&self, stream: TcpStream, addr: SocketAddr) -> Dialed {
        if self.keep {
            return Dialed::Connected(stream, addr);
        }
        close_at_once(stream);
        Dialed::Reached
    }

    /// Closes the attempts still in flight: another one won.
    fn abandon(&mut self, cx: &mut impl Watch) {
        for (_, mut stream) in self.attempts.drain(..) {
            let _ = cx.unwatch(&mut stream);
        }
    }

    /// The address of the oldest attempt in flight.
    pub(crate) fn current(&self) -> Option<SocketAddr> {
        self.attempts.first().map(|(addr, _)| *addr)
    }

    /// The attempts that failed, taken.
    pub(crate) fn failures(&mut self) -> Failures {
        std::mem::take(&mut self.failures)
    }

    /// The attempts that failed, then those in flight (or the last one
    /// tried) as `timed out after <secs> s`: when the caller's deadline,
    /// `after` the start, came while dialing.
    pub(crate) fn timed_out(&mut self, after: Duration) -> Failures {
        let mut late: Vec<SocketAddr> = self.attempts.iter().map(|(addr, _)| *addr).collect();
        if late.is_empty() {
            late.extend(self.addrs.get(self.next.saturating_sub(1)));
        }
        for addr in late {
            self.failures.0.push((addr, timed_out(after)));
        }
        self.failures()
    }
}

/// The addresses with the families alternating from the first one's, each
/// family in the resolver's order (RFC 8305, section 4).
fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else {
        return addrs;
    };
    let lead = first.is_ipv6();
    let (mut ours, mut theirs): (Vec<_>, Vec<_>) =
        addrs.into_iter().partition(|a| a.is_ipv6() == lead);
    let mut out = Vec::with_capacity(ours.len() + theirs.len());
    ours.reverse();
    theirs.reverse();
    while !ours.is_empty() || !theirs.is_empty() {
        out.extend(ours.pop());
        out.extend(theirs.pop());
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn families_alternate_from_the_first_address() {
        let got = interleave(addrs(&[
            "[::1]:1",
            "[::1]:2",
            "[::1]:3",
            "127.0.0.1:1",
            "127.0.0.2:1",
        ]));
        let want = addrs(&[
            "[::1]:1",
            "127.0.0.1:1",
            "[::1]:2",
            "127.0.0.2:1",
            "[::1]:3",
        ]);
        assert_eq!(got, want);
        let got = interleave(addrs(&["127.0.0.1:1", "127.0.0.2:1", "[::1]:1"]));
        assert_eq!(got, addrs(&["127.0.0.1:1", "[::1]:1", "127.0.0.2:1"]));
        assert_eq!(interleave(Vec::new()), Vec::new());
    }
}
