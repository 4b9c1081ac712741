//! The byte stream of one connection, whatever carries it.
//!
//! Protocol code (the HTTP request writer and response parser, the run
//! that drives them) reads and writes a [`Stream`] and never names the
//! socket type: TLS is one more variant (a session over the same
//! `mio::net::TcpStream`, keeping the registration the dial made, readable
//! and writable), so the parser and the machine do not change with it.
//! Every call is non-blocking: `WouldBlock` means "wait for the next
//! readiness edge". A TLS failure while reading or writing comes as an
//! `io::Error` whose text is the TLS reason (`TlsFail`).

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
