//! The byte stream of one connection, plain or TLS, so protocol code never
//! names the socket type. Non-blocking: `WouldBlock` means "wait for the
//! next readiness edge"; a TLS failure is an `io::Error` with the TLS reason.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

#[cfg(feature = "tls")]
use crate::transport::tls::TlsSession;

/// An open connection's byte stream.
#[derive(Debug)]
pub(crate) enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP, after a completed handshake.
    #[cfg(feature = "tls")]
    Tls(TcpStream, Box<TlsSession>),
}

impl Stream {
    /// Reads some bytes (`Ok(0)` at the end of the stream).
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s, session) => session.read_plain(s, buf),
        }
    }

    /// Writes some bytes (std sends with `MSG_NOSIGNAL`: no SIGPIPE).
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(data),
            #[cfg(feature = "tls")]
            Stream::Tls(s, session) => session.write_plain(s, data),
        }
    }

    /// Sends what is buffered (TLS records); `WouldBlock` while some is
    /// left. Plain TCP buffers nothing of ours.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            #[cfg(feature = "tls")]
            Stream::Tls(s, session) => session.flush(s),
        }
    }
}
