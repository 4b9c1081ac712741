//! Socket calls std and mio do not make: connecting a socket that already
//! exists, dissolving a connection, and closing with a reset.

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
