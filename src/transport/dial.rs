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
//! Spare sockets: a plain `tcp` probe only wants to know that a connection
//! can be made. On a worker thread (one that called [`keep_spares`]), a
//! socket whose connect completed within the call, and so was never
//! registered with the poll, is not closed after the run: `connect` with
//! `AF_UNSPEC` dissolves the connection (the kernel's `tcp_disconnect`,
//! which resets an established connection with a RST, as the reset close
//! below does) and the socket waits in a small per-thread list for the
//! next run to the same address family. A run that takes one skips the
//! socket's creation and destruction, which were a third of the kernel's
//! work per loopback probe. A spare socket holds no port and no
//! connection, is close-on-exec, and is closed when its thread ends.
//!
//! Failure texts, in the wording the probes' reasons have always used:
//! `connect 127.0.0.1:22: Connection refused (os error 111)`, several joined
//! with `; `, and `connect [::1]:8080: timed out after 5 s`.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use mio::Interest;
use mio::net::TcpStream;

use crate::transport::Watch;

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
    /// The connection returned last was never registered with the poll,
    /// so [`Dial::close`] may keep its socket as a spare: its address.
    unregistered: Option<SocketAddr>,
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
            unregistered: None,
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
    pub(crate) fn advance(&mut self, cx: &impl Watch) -> Dialed {
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
                        let _ = cx.unwatch(stream);
                        self.current = None; // closes the socket
                        self.failures.push((addr, e));
                    }
                }
            }
            let Some(&addr) = self.addrs.get(self.next) else {
                return Dialed::Failed;
            };
            self.next += 1;
            let spare = if self.keep { None } else { take_spare(&addr) };
            let mut stream =
                match spare.map_or_else(|| TcpStream::connect(addr), |s| connect_on(s, &addr)) {
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
                    if !self.keep {
                        recycle(stream, &addr);
                    }
                    continue;
                }
            };
            if connected && !self.keep {
                self.unregistered = Some(addr);
                return Dialed::Connected(stream, addr);
            }
            if let Err(e) = cx.watch(&mut stream, Interest::READABLE | Interest::WRITABLE) {
                self.failures.push((addr, e));
                continue;
            }
            if connected {
                return Dialed::Connected(stream, addr);
            }
            self.current = Some((addr, stream));
        }
    }

    /// Ends a connection this dial made and the caller only wanted to see
    /// made: a socket never registered with the poll becomes a spare on a
    /// worker thread (see the module docs); any other is closed with a
    /// reset ([`close_at_once`]).
    pub(crate) fn close(&mut self, stream: TcpStream) {
        if let Some(addr) = self.unregistered.take() {
            recycle(stream, &addr);
        } else {
            close_at_once(stream);
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

/// Most spare sockets a thread keeps per address family: a worker has one
/// loopback connect in flight at a time (it completes within the call), so
/// a few cover a burst of any size.
const SPARES_PER_FAMILY: usize = 4;

thread_local! {
    /// Whether this thread keeps spare sockets ([`keep_spares`]).
    static KEEPS_SPARES: Cell<bool> = const { Cell::new(false) };
    /// This thread's spare sockets: IPv4, IPv6.
    static SPARES: RefCell<[Vec<OwnedFd>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
}

/// Lets the calling thread keep spare sockets for plain `tcp` probes. A
/// worker calls it when it starts; other threads (a caller driving a run
/// through the blocking adapter) close their sockets as before, so no
/// descriptor outlives a run there.
pub(crate) fn keep_spares() {
    KEEPS_SPARES.with(|k| k.set(true));
}

/// How many spare sockets this thread holds: IPv4, IPv6.
#[cfg(test)]
pub(crate) fn spares_held() -> [usize; 2] {
    SPARES.with(|s| s.borrow().each_ref().map(Vec::len))
}

fn family(addr: &SocketAddr) -> usize {
    usize::from(addr.is_ipv6())
}

fn take_spare(addr: &SocketAddr) -> Option<OwnedFd> {
    if !KEEPS_SPARES.with(Cell::get) {
        return None;
    }
    SPARES.with(|s| s.borrow_mut()[family(addr)].pop())
}

/// Dissolves the connection on `stream` (a RST if it was established) and
/// keeps the socket as a spare, or closes it with a reset when this thread
/// keeps no spares, its list is full, or the kernel refuses. `addr` is the
/// address it was connected to (for its family).
fn recycle(stream: TcpStream, addr: &SocketAddr) {
    if !KEEPS_SPARES.with(Cell::get) {
        return close_at_once(stream);
    }
    let fd = OwnedFd::from(stream);
    // SAFETY: a `sockaddr` of family AF_UNSPEC (the rest zero) is a valid
    // address of its length for `connect`, which only reads it.
    let dissolved = unsafe {
        let mut unspec: libc::sockaddr = std::mem::zeroed();
        unspec.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
        libc::connect(
            fd.as_raw_fd(),
            &unspec,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        ) == 0
    };
    if !dissolved {
        return; // dropping `fd` closes it
    }
    SPARES.with(|s| {
        let list = &mut s.borrow_mut()[family(addr)];
        if list.len() < SPARES_PER_FAMILY {
            list.push(fd);
        }
    });
}

/// Starts a non-blocking connect on a spare socket, as
/// `TcpStream::connect` does on a new one.
fn connect_on(fd: OwnedFd, addr: &SocketAddr) -> io::Result<TcpStream> {
    // SAFETY: `sockaddr_storage` is plain data, valid when zeroed; it is
    // filled below as the `sockaddr_in`/`sockaddr_in6` its family says,
    // both of which fit in it, and `connect` reads `len` bytes of it.
    let rc = unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                (*sin).sin_family = libc::AF_INET as libc::sa_family_t;
                (*sin).sin_port = a.port().to_be();
                (*sin).sin_addr.s_addr = u32::from(*a.ip()).to_be();
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 =
                    (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                (*sin6).sin6_family = libc::AF_INET6 as libc::sa_family_t;
                (*sin6).sin6_port = a.port().to_be();
                (*sin6).sin6_flowinfo = a.flowinfo();
                (*sin6).sin6_addr.s6_addr = a.ip().octets();
                (*sin6).sin6_scope_id = a.scope_id();
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        libc::connect(
            fd.as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast(),
            len as libc::socklen_t,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e); // dropping `fd` closes it
        }
    }
    // `fd` is an open, non-blocking, close-on-exec TCP socket (made so by
    // `TcpStream::connect`, and kept so).
    Ok(TcpStream::from(fd))
}

/// Closes a connection that was only made to see that it could be, with a
/// reset (`SO_LINGER` 0) instead of the FIN exchange: no `TIME_WAIT` socket
/// is left on this host for each run, and the kernel does less work per
/// probe (kubelet closes its TCP probes the same way). Best effort: if the
/// option cannot be set, the close is the ordinary one.
pub(crate) fn close_at_once(stream: TcpStream) {
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
