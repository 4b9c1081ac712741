//! `tcp` probes: connect with a timeout, then close. Pass iff connected.
//!
//! Fields (DESIGN §2): `host` (default `127.0.0.1`; an IP literal, IPv6 with
//! or without brackets, or a name resolved at every run), `port` (required,
//! 1-65535) and `connectTimeoutSecs` (default 5, 1-3600).
//!
//! The connect is non-blocking (a raw socket: mio's `net` feature is off)
//! and waited for with `poll(2)` in slices of
//! [`CANCEL_POLL`], so a reset or a shutdown ends a run stuck in a connect
//! within one slice. A name that resolves to several addresses is tried in
//! order, each with the full timeout (as `TcpStream::connect_timeout`
//! users expect); the first address that accepts passes. Name resolution
//! itself (`getaddrinfo`) cannot be cancelled.
//!
//! Failure reasons (DESIGN §3):
//! `tcp probe: connect 127.0.0.1:22: Connection refused (os error 111)`,
//! `tcp probe: connect [::1]:8080: timed out after 5 s`,
//! `tcp probe: resolve <host>:<port>: <error>`, and `tcp probe: cancelled`
//! (discarded by the engine). When every address of a name fails, the
//! reason lists each: `tcp probe: connect A: ...; connect B: ...`.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::decl::{Declaration, FieldError};
use crate::runner::{CANCEL_POLL, Check, RunContext, Runner, RunnerOutcome};

#[cfg(test)]
mod tests;

/// Host used when `host` is absent.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// `connectTimeoutSecs` when absent.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 5;
/// Largest accepted `connectTimeoutSecs` (one hour).
pub const MAX_CONNECT_TIMEOUT_SECS: u64 = 3600;

/// The `tcp` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpRunner;

impl Runner for TcpRunner {
    fn prepare(&self, decl: &Declaration) -> Result<Arc<dyn Check>, FieldError> {
        Ok(Arc::new(TcpCheck::from_decl(decl)?))
    }
}

/// Where to connect: fixed at prepare time for an IP literal, resolved at
/// every run for a name (so DNS changes are followed).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Addr(SocketAddr),
    Name(String),
}

/// A prepared `tcp` probe.
#[derive(Debug, Clone)]
struct TcpCheck {
    target: Target,
    port: u16,
    timeout_secs: u64,
}

impl TcpCheck {
    fn from_decl(decl: &Declaration) -> Result<TcpCheck, FieldError> {
        let host = decl.str_field("host")?.unwrap_or(DEFAULT_HOST);
        let port = decl
            .u64_in("port", 1, u16::MAX.into())?
            .ok_or_else(|| FieldError::new("port", "required field is missing"))?;
        let port = u16::try_from(port).expect("u64_in bounds the port to 1..=65535");
        let timeout_secs = decl
            .u64_in("connectTimeoutSecs", 1, MAX_CONNECT_TIMEOUT_SECS)?
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT_SECS);
        let target = match parse_host(host).map_err(|p| FieldError::new("host", p))? {
            Host::Ip(ip) => Target::Addr(SocketAddr::new(ip, port)),
            Host::Name(name) => Target::Name(name.to_owned()),
        };
        Ok(TcpCheck {
            target,
            port,
            timeout_secs,
        })
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

impl Check for TcpCheck {
    fn run(&self, ctx: &RunContext<'_>) -> RunnerOutcome {
        let name = match &self.target {
            Target::Addr(addr) => {
                return match connect(ctx, *addr, self.timeout()) {
                    Ok(()) => RunnerOutcome::pass(),
                    Err(e) => RunnerOutcome::fail(e.reason(*addr, self.timeout_secs)),
                };
            }
            Target::Name(name) => name,
        };
        let addrs = match (name.as_str(), self.port).to_socket_addrs() {
            Ok(addrs) => addrs,
            Err(e) => {
                return RunnerOutcome::fail(format!(
                    "tcp probe: resolve {name}:{}: {e}",
                    self.port
                ));
            }
        };
        // Each failed address adds `connect <addr>: <error>`; the reason
        // lists them all when every one failed.
        let mut reason = String::new();
        for addr in addrs {
            match connect(ctx, addr, self.timeout()) {
                Ok(()) => return RunnerOutcome::pass(),
                Err(ConnectError::Cancelled) => return RunnerOutcome::fail(CANCELLED),
                Err(e) => {
                    let one = e.reason(addr, self.timeout_secs);
                    if reason.is_empty() {
                        reason = one;
                    } else {
                        reason.push_str("; ");
                        reason.push_str(one.strip_prefix(PREFIX).unwrap_or(&one));
                    }
                }
            }
        }
        if reason.is_empty() {
            reason = format!("tcp probe: resolve {name}:{}: no addresses", self.port);
        }
        RunnerOutcome::fail(reason)
    }
}

const PREFIX: &str = "tcp probe: ";
const CANCELLED: &str = "tcp probe: cancelled";

/// Why one connect did not succeed.
#[derive(Debug)]
enum ConnectError {
    Cancelled,
    TimedOut,
    Io(io::Error),
}

impl ConnectError {
    /// The failure reason (DESIGN §3 style): `tcp probe: connect <addr>: ...`.
    fn reason(&self, addr: SocketAddr, timeout_secs: u64) -> String {
        match self {
            ConnectError::Cancelled => CANCELLED.to_owned(),
            ConnectError::TimedOut => {
                format!("{PREFIX}connect {addr}: timed out after {timeout_secs} s")
            }
            ConnectError::Io(e) => format!("{PREFIX}connect {addr}: {e}"),
        }
    }
}

/// Connects to `addr` within `timeout`, giving up early when the run is
/// cancelled, then closes the connection.
fn connect(ctx: &RunContext<'_>, addr: SocketAddr, timeout: Duration) -> Result<(), ConnectError> {
    if ctx.is_cancelled() {
        return Err(ConnectError::Cancelled);
    }
    let deadline = ctx.now() + timeout;
    // Owned, so the socket is closed on every path below.
    let socket = start_connect(addr).map_err(ConnectError::Io)?;
    let Some(socket) = socket else {
        return Ok(()); // connected at once
    };
    loop {
        if ctx.is_cancelled() {
            return Err(ConnectError::Cancelled);
        }
        let now = ctx.now();
        if now >= deadline {
            return Err(ConnectError::TimedOut);
        }
        if wait_writable(&socket, (deadline - now).min(CANCEL_POLL)).map_err(ConnectError::Io)? {
            return match socket_error(&socket).map_err(ConnectError::Io)? {
                0 => Ok(()),
                errno => Err(ConnectError::Io(io::Error::from_raw_os_error(errno))),
            };
        }
    }
}

/// Opens a non-blocking, close-on-exec socket and starts connecting it:
/// `None` when the connect completed at once, the socket when it is in
/// progress.
fn start_connect(addr: SocketAddr) -> io::Result<Option<OwnedFd>> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain syscall with constant arguments.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket() and is owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let raw = RawSockAddr::from(addr);
    // SAFETY: `raw` holds an initialised sockaddr of the length passed, and
    // the fd is a valid socket.
    let rc = unsafe { libc::connect(socket.as_raw_fd(), raw.as_ptr(), raw.len()) };
    if rc == 0 {
        return Ok(None);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINPROGRESS) {
        Ok(Some(socket))
    } else {
        Err(e)
    }
}

/// A `SocketAddr` in the layout `connect(2)` takes.
enum RawSockAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl From<SocketAddr> for RawSockAddr {
    fn from(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_in is plain old data; all-zero is valid.
                let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_port = a.port().to_be();
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                RawSockAddr::V4(sa)
            }
            SocketAddr::V6(a) => {
                // SAFETY: sockaddr_in6 is plain old data; all-zero is valid.
                let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_port = a.port().to_be();
                sa.sin6_flowinfo = a.flowinfo();
                sa.sin6_addr.s6_addr = a.ip().octets();
                sa.sin6_scope_id = a.scope_id();
                RawSockAddr::V6(sa)
            }
        }
    }
}

impl RawSockAddr {
    fn as_ptr(&self) -> *const libc::sockaddr {
        match self {
            RawSockAddr::V4(sa) => (sa as *const libc::sockaddr_in).cast(),
            RawSockAddr::V6(sa) => (sa as *const libc::sockaddr_in6).cast(),
        }
    }

    fn len(&self) -> libc::socklen_t {
        let len = match self {
            RawSockAddr::V4(_) => std::mem::size_of::<libc::sockaddr_in>(),
            RawSockAddr::V6(_) => std::mem::size_of::<libc::sockaddr_in6>(),
        };
        len as libc::socklen_t
    }
}

/// The pending error of a socket (`SO_ERROR`), 0 when none.
fn socket_error(socket: &OwnedFd) -> io::Result<libc::c_int> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are valid for writes and `len` is the size of
    // `err`; the fd is a valid socket.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(err)
}

/// Waits up to `slice` (rounded up to a whole millisecond, as `poll` counts)
/// for the socket to become writable or report an error.
fn wait_writable(socket: &OwnedFd, slice: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    let ms = slice
        .as_nanos()
        .div_ceil(1_000_000)
        .clamp(1, i32::MAX as u128) as libc::c_int;
    // SAFETY: `pfd` is one valid pollfd that outlives the call, and its fd
    // belongs to `socket`, which is alive.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(rc > 0 && pfd.revents != 0)
}

/// A `host` value after validation.
#[derive(Debug, PartialEq, Eq)]
enum Host<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

/// Accepts an IP literal (IPv6 with or without brackets) or a host name;
/// the error is the problem text of a `FieldError`.
fn parse_host(host: &str) -> Result<Host<'_>, String> {
    let bad = || format!("expected a host name or an IP address, got {host:?}");
    if let Some(inner) = host.strip_prefix('[') {
        let v6 = inner
            .strip_suffix(']')
            .and_then(|s| s.parse::<Ipv6Addr>().ok())
            .ok_or_else(bad)?;
        return Ok(Host::Ip(IpAddr::V6(v6)));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    if host.contains(':') {
        // `host:port` or a malformed IPv6 literal: the port has its own field.
        return Err(format!(
            "expected a host name or an IP address (the port goes in `port`), got {host:?}"
        ));
    }
    let name_like = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if host.is_empty() || host.len() > 253 || !host.chars().all(name_like) {
        return Err(bad());
    }
    Ok(Host::Name(host))
}
