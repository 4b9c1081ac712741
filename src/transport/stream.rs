//! The byte stream of one connection, whatever carries it.
//!
//! Protocol code (the HTTP request writer and response parser, the run
//! that drives them) reads and writes a [`Stream`] and never names the
//! socket type, so TLS can be added as one more variant (a session over
//! the same `mio::net::TcpStream`, keeping the same registration) without
//! touching the parser or the machine. Every call is non-blocking:
//! `WouldBlock` means "wait for the next readiness edge".

use std::io::{self, Read, Write};

use mio::net::TcpStream;

use crate::runner::machine::Cx;

/// An open connection's byte stream.
#[derive(Debug)]
pub(crate) enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
}

impl Stream {
    /// Reads some bytes (`Ok(0)` at the end of the stream).
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
        }
    }

    /// Writes some bytes (std sends with `MSG_NOSIGNAL`: no SIGPIPE).
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(data),
        }
    }

    /// Stops watching the connection (closing it does so too).
    pub(crate) fn deregister(&mut self, cx: &Cx<'_>) {
        match self {
            Stream::Plain(s) => {
                let _ = cx.deregister(s);
            }
        }
    }
}
