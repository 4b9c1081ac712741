//! The transport layer: what every network probe kind stands on.
//!
//! Name resolution ([`Resolve`], and the bounded resolver pool that runs
//! it off the workers), non-blocking connects (`dial`), the byte stream
//! of a connection (`stream`) and TLS sessions over it (`tls`, feature
//! `tls`), all driven by a worker's poll loop. Like mio's `sys`, this is
//! the one place that talks to the socket API: `tcp` and `http` use it,
//! and none of them opens a socket itself.

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
