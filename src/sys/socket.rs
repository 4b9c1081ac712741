//! Socket calls std and mio do not make: connecting a socket that already
//! exists, dissolving a connection, closing with a reset; and the ICMP
//! datagram sockets of `icmp` probes.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::{connect, connect_unspec, sockopt};

/// Starts a connect of the non-blocking socket `fd` to `addr`: `Ok` once
/// it is under way (or done), as `TcpStream::connect` reports it.
pub(crate) fn start_connect(fd: impl AsFd, addr: &SocketAddr) -> io::Result<()> {
    match connect(fd, addr) {
        Ok(()) | Err(Errno::INPROGRESS) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Dissolves the socket's connection (`connect` with `AF_UNSPEC`: the
/// kernel resets an established one), leaving a socket that can connect
/// again.
pub(crate) fn dissolve(fd: impl AsFd) -> io::Result<()> {
    connect_unspec(fd).map_err(io::Error::from)
}

/// Makes closing the socket send a reset at once (`SO_LINGER` 0) instead
/// of the FIN exchange.
pub(crate) fn reset_on_close(fd: impl AsFd) -> io::Result<()> {
    sockopt::set_socket_linger(fd, Some(Duration::ZERO)).map_err(io::Error::from)
}

/// Opens a non-blocking ICMP datagram socket (a "ping socket", IPv6 if
/// `v6`): the kernel sets the echo identifier itself and hands the socket
/// only the replies to its own requests, so no privilege is needed. Fails
/// with `PermissionDenied` when `net.ipv4.ping_group_range` (it governs
/// both families) leaves out the process's groups; see [`ping_groups`].
pub(crate) fn icmp_socket(v6: bool) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, ipproto, socket_with};
    let (family, protocol) = if v6 {
        (AddressFamily::INET6, ipproto::ICMPV6)
    } else {
        (AddressFamily::INET, ipproto::ICMP)
    };
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    socket_with(family, SocketType::DGRAM, flags, Some(protocol)).map_err(io::Error::from)
}

/// What decides whether [`icmp_socket`] is allowed: the process's
/// effective group id and `net.ipv4.ping_group_range` as this thread's
/// network namespace has it (whitespace collapsed: `"1 0"`).
pub(crate) fn ping_groups() -> (u32, io::Result<String>) {
    let gid = rustix::process::getegid().as_raw();
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
        .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "));
    (gid, range)
}
