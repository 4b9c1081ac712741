//! The transport layer: what every network probe kind stands on.
//!
//! Name resolution ([`Resolve`], run off the workers by a bounded pool of
//! resolver threads), non-blocking connects, the byte stream of a
//! connection and TLS sessions over it (feature `tls`), all driven by a
//! worker's poll loop. The `tcp` and `http` kinds open no socket
//! themselves. Only [`Resolve`] and [`SystemResolver`] are public: a
//! [`Builder::resolver`](crate::Builder::resolver) replaces how names are
//! looked up.

// Inside: `connect` (resolve, dial, TLS under one deadline), `dial`
// (connects), `stream` (a connection's bytes) and `tls` (sessions over a
// stream).

pub(crate) mod connect;
pub(crate) mod dial;
pub(crate) mod resolve;
pub(crate) mod stream;
#[cfg(feature = "tls")]
pub(crate) mod tls;

pub use self::resolve::{Resolve, SystemResolver};

use std::io;
use std::path::PathBuf;

use mio::Interest;
use mio::net::TcpStream;

use self::dial::Spares;
use self::resolve::Lookup;

/// What transport asks of a run's worker (`runner::machine::Cx`
/// implements it), so it depends on nothing above it: its poll, under the
/// run's token, its resolver pool, and its spare sockets.
pub(crate) trait Watch {
    /// Watches `stream` for `interest` on behalf of the run.
    fn watch(&self, stream: &mut TcpStream, interest: Interest) -> io::Result<()>;
    /// Stops watching `stream` (closing it does so too).
    fn unwatch(&self, stream: &mut TcpStream) -> io::Result<()>;
    /// Looks up `host` on the resolver pool; the run is called again when
    /// the answer is in ([`Lookup::take`]). Dropping the lookup abandons it.
    fn resolve(&self, host: &str, port: u16) -> Lookup;
    /// The spare sockets the worker lends its runs.
    fn spares(&mut self) -> &mut Spares;
}

/// A probe's TLS options (`caFile`, `tlsServerName`, `tlsSkipVerify`,
/// `minCertValidityDays` in `docs/declarations.md`), already parsed and
/// range-checked. Read whether or not TLS is built in, so a build without
/// it still checks them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    /// `caFile`: the PEM bundle to trust instead of the system store.
    pub(crate) ca_file: Option<PathBuf>,
    /// `tlsServerName`: the name sent (SNI) and verified, instead of the
    /// host the probe connects to.
    pub(crate) server_name: Option<String>,
    /// `tlsSkipVerify`: handshake without checking the chain or the name.
    pub(crate) skip_verify: bool,
    /// `minCertValidityDays`: fail when a presented certificate expires
    /// in fewer days.
    pub(crate) min_validity_days: Option<u32>,
}
