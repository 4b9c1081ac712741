//! The transport layer: what every network probe kind stands on.
//!
//! Name resolution ([`Resolve`], run off the workers by a bounded pool of
//! resolver threads), non-blocking connects, the byte stream of a
//! connection and TLS sessions over it (feature `tls`), all driven by a
//! worker's poll loop. The `tcp` and `http` kinds open no socket
//! themselves. Only [`Resolve`] and [`SystemResolver`] are public: a
//! [`Builder::resolver`](crate::Builder::resolver) replaces how names are
//! looked up.

// Inside: `dial` (connects), `stream` (a connection's bytes) and `tls`
// (sessions over a stream). Like mio's `sys`, this is the one place that
// talks to the socket API.

pub(crate) mod dial;
pub(crate) mod resolve;
pub(crate) mod stream;
#[cfg(feature = "tls")]
pub(crate) mod tls;

pub use self::resolve::{Resolve, SystemResolver};

use std::io;

use mio::Interest;
use mio::net::TcpStream;

/// Where a run's connections are watched: its worker's poll, under the
/// run's token (`runner::machine::Cx` implements it). Transport asks only
/// this of a run, so it depends on nothing above it.
pub(crate) trait Watch {
    /// Watches `stream` for `interest` on behalf of the run.
    fn watch(&self, stream: &mut TcpStream, interest: Interest) -> io::Result<()>;
    /// Stops watching `stream` (closing it does so too).
    fn unwatch(&self, stream: &mut TcpStream) -> io::Result<()>;
}
