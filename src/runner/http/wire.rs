//! The socket side of a probe: name resolution, connect, send and receive,
//! every wait bounded by the probe's one deadline and sliced for
//! cancellation.
//!
//! Why non-blocking sockets and `poll(2)` rather than blocking sockets with
//! 10 ms timeouts: a blocking `connect` cannot be sliced (restarting it
//! restarts the handshake), and `poll` with a slice of at most
//! [`CANCEL_POLL`] gives one code path for connect, write and read. It costs
//! one file descriptor and no epoll instance (a mio `Poll` would add one per
//! probe); mio is used only for its non-blocking `connect`.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Fail, Phase};
use crate::runner::{CANCEL_POLL, RunContext};

/// The probe's deadline and cancellation, consulted before every wait.
#[derive(Debug)]
pub(crate) struct Budget<'a> {
    ctx: &'a RunContext<'a>,
    deadline: Instant,
}

impl<'a> Budget<'a> {
    /// One deadline for the whole probe, computed once at its start.
    pub(crate) fn start(ctx: &'a RunContext<'a>, timeout: Duration) -> Self {
        Budget {
            ctx,
            deadline: ctx.now() + timeout,
        }
    }

    /// The time left, or why there is none.
    fn left(&self, phase: Phase) -> Result<Duration, Fail> {
        if self.ctx.is_cancelled() {
            return Err(Fail::Cancelled);
        }
        let now = self.ctx.now();
        if now >= self.deadline {
            return Err(Fail::TimedOut(phase));
        }
        Ok(self.deadline - now)
    }

    /// The next wait: at most [`CANCEL_POLL`] and at most what is left.
    fn slice(&self, phase: Phase) -> Result<Duration, Fail> {
        Ok(self.left(phase)?.min(CANCEL_POLL))
    }

    /// Waits until `fd` is ready for `events` (or has an error to report).
    fn wait_fd(&self, fd: i32, events: libc::c_short, phase: Phase) -> Result<(), Fail> {
        loop {
            let slice = self.slice(phase)?;
            // Round up so a sub-millisecond remainder does not spin.
            let ms = slice.as_micros().div_ceil(1000).max(1) as libc::c_int;
            let mut pfd = libc::pollfd {
                fd,
                events,
                revents: 0,
            };
            // SAFETY: `pfd` is a valid, exclusively borrowed pollfd and nfds
            // is 1; poll does not keep the pointer after it returns.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc > 0 {
                return Ok(());
            }
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(Fail::Other(format!("poll failed while {phase}: {e}")));
                }
            }
        }
    }
}

/// A byte source for the response reader: a socket in a probe, a slice in
/// the parser's tests.
pub(crate) trait Wire {
    /// Reads some bytes into `buf` (`Ok(0)` at end of stream), waiting as
    /// long as the budget allows.
    fn recv(&mut self, buf: &mut [u8], phase: Phase) -> Result<usize, Fail>;
}

/// An open connection of one probe hop.
#[derive(Debug)]
pub(crate) struct Conn<'b, 'a> {
    stream: TcpStream,
    addr: SocketAddr,
    budget: &'b Budget<'a>,
    received: usize,
}

impl<'b, 'a> Conn<'b, 'a> {
    /// Connects to `addr` within the budget.
    pub(crate) fn connect(addr: SocketAddr, budget: &'b Budget<'a>) -> Result<Self, Fail> {
        let phase = Phase::Connecting(addr);
        budget.left(phase)?;
        let stream = start_connect(addr).map_err(|e| connect_failed(addr, &e))?;
        loop {
            budget.wait_fd(stream.as_raw_fd(), libc::POLLOUT, phase)?;
            // After writability, the outcome is in SO_ERROR; a spurious
            // wake-up shows as "not connected" without an error.
            if let Some(e) = stream.take_error().map_err(|e| connect_failed(addr, &e))? {
                return Err(connect_failed(addr, &e));
            }
            match stream.peer_addr() {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => continue,
                Err(e) => return Err(connect_failed(addr, &e)),
            }
        }
        Ok(Conn {
            stream,
            addr,
            budget,
            received: 0,
        })
    }

    /// Writes all of `data`.
    pub(crate) fn send(&mut self, mut data: &[u8]) -> Result<(), Fail> {
        let phase = Phase::Sending;
        while !data.is_empty() {
            self.budget.left(phase)?;
            // std's write on a socket is send(MSG_NOSIGNAL): no SIGPIPE.
            match (&self.stream).write(data) {
                Ok(0) => return Err(self.io_failed(phase, &io::ErrorKind::WriteZero.into())),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.budget
                        .wait_fd(self.stream.as_raw_fd(), libc::POLLOUT, phase)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_failed(phase, &e)),
            }
        }
        Ok(())
    }

    /// Bytes received so far on this connection.
    #[cfg(test)]
    pub(crate) fn received(&self) -> usize {
        self.received
    }

    fn io_failed(&self, phase: Phase, e: &io::Error) -> Fail {
        Fail::Other(format!(
            "connection to {} failed while {phase}: {e}",
            self.addr
        ))
    }
}

impl Wire for Conn<'_, '_> {
    fn recv(&mut self, buf: &mut [u8], phase: Phase) -> Result<usize, Fail> {
        loop {
            // Checked before every read, not only before waits: a peer that
            // keeps sending must not outlive the deadline either.
            self.budget.left(phase)?;
            match (&self.stream).read(buf) {
                Ok(n) => {
                    self.received += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.budget
                        .wait_fd(self.stream.as_raw_fd(), libc::POLLIN, phase)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_failed(phase, &e)),
            }
        }
    }
}

/// Opens a non-blocking, close-on-exec socket and starts connecting it.
fn start_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // Close-on-exec from the start: exec probes fork on other workers.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let ty = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let ty = libc::SOCK_STREAM;
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(domain, ty, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket owned by nobody else; the stream
    // closes it on every path from here.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        // SAFETY: fcntl on a descriptor we own.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        stream.set_nonblocking(true)?;
    }
    let rc = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_in is plain old data; all-zero is valid.
            let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_port = a.port().to_be();
            sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            // SAFETY: `sa` is a valid sockaddr_in of `len` bytes for the
            // duration of the call.
            unsafe { libc::connect(fd, (&raw const sa).cast(), len) }
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_in6 is plain old data; all-zero is valid.
            let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_port = a.port().to_be();
            sa.sin6_addr.s6_addr = a.ip().octets();
            sa.sin6_flowinfo = a.flowinfo();
            sa.sin6_scope_id = a.scope_id();
            let len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            // SAFETY: `sa` is a valid sockaddr_in6 of `len` bytes for the
            // duration of the call.
            unsafe { libc::connect(fd, (&raw const sa).cast(), len) }
        }
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(stream)
}

fn connect_failed(addr: SocketAddr, e: &io::Error) -> Fail {
    Fail::Other(format!("connect {addr}: {e}"))
}

/// Connects to the first of `addrs` that accepts; on failure the reason
/// lists every address tried.
pub(crate) fn connect_any<'b, 'a>(
    addrs: &[SocketAddr],
    budget: &'b Budget<'a>,
) -> Result<Conn<'b, 'a>, Fail> {
    let mut reasons = String::new();
    for &addr in addrs {
        match Conn::connect(addr, budget) {
            Ok(c) => return Ok(c),
            Err(Fail::Other(r)) => {
                if !reasons.is_empty() {
                    reasons.push_str("; ");
                }
                reasons.push_str(&r);
            }
            Err(f) => return Err(f),
        }
    }
    Err(Fail::Other(reasons))
}

/// Resolver threads still running (abandoned lookups included).
static PENDING_LOOKUPS: AtomicUsize = AtomicUsize::new(0);
/// Above this, new lookups fail at once instead of piling up threads
/// behind a resolver that does not answer.
const MAX_PENDING_LOOKUPS: usize = 16;
/// getaddrinfo may load NSS modules; the stack is reserved, not touched.
const RESOLVER_STACK: usize = 256 * 1024;

/// Resolves `host` within the budget.
///
/// `getaddrinfo` blocks and cannot be interrupted, so it runs on a
/// short-lived thread that the probe waits for in cancellation slices; a
/// lookup that outlives its probe is abandoned and ends on its own (at most
/// [`MAX_PENDING_LOOKUPS`] at a time). Only host names pay this: IP literals
/// are parsed once at prepare time.
pub(crate) fn resolve(host: &str, port: u16, budget: &Budget<'_>) -> Result<Vec<SocketAddr>, Fail> {
    let phase = Phase::Resolving;
    budget.left(phase)?;
    if PENDING_LOOKUPS.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING_LOOKUPS {
        PENDING_LOOKUPS.fetch_sub(1, Ordering::AcqRel);
        return Err(Fail::Other(format!(
            "resolve {host}: {MAX_PENDING_LOOKUPS} earlier lookups are still waiting for the resolver"
        )));
    }
    struct Pending;
    impl Drop for Pending {
        fn drop(&mut self) {
            PENDING_LOOKUPS.fetch_sub(1, Ordering::AcqRel);
        }
    }
    let (tx, rx) = mpsc::sync_channel(1);
    let name = host.to_owned();
    let spawned = std::thread::Builder::new()
        .name("probewheel-resolve".into())
        .stack_size(RESOLVER_STACK)
        .spawn(move || {
            let _pending = Pending;
            let result = (name.as_str(), port)
                .to_socket_addrs()
                .map(|addrs| addrs.collect::<Vec<_>>());
            // The probe may have given up; nobody to tell then.
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        PENDING_LOOKUPS.fetch_sub(1, Ordering::AcqRel);
        return Err(Fail::Other(format!(
            "resolve {host}: cannot start a resolver thread: {e}"
        )));
    }
    loop {
        let slice = budget.slice(phase)?;
        match rx.recv_timeout(slice) {
            Ok(Ok(addrs)) if addrs.is_empty() => {
                return Err(Fail::Other(format!("resolve {host}: no addresses")));
            }
            Ok(Ok(addrs)) => return Ok(addrs),
            Ok(Err(e)) => return Err(Fail::Other(format!("resolve {host}: {e}"))),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Fail::Other(format!(
                    "resolve {host}: the resolver thread stopped without an answer"
                )));
            }
        }
    }
}
