//! The transport layer the network probe kinds stand on: name resolution
//! ([`Resolve`], off the workers), non-blocking connects, a connection's
//! byte stream and TLS over it, all driven by a worker's poll loop.

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

/// What transport asks of a run's worker (`runner::machine::Cx`), so it
/// depends on nothing above it.
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

/// A probe's TLS options (`docs/declarations.md`), parsed and checked
/// whether or not TLS is built in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    /// `caFile`: the PEM bundle to trust instead of the system store.
    pub(crate) ca_file: Option<PathBuf>,
    /// `tlsServerName`: the name sent (SNI) and verified, instead of the
    /// host the probe connects to.
    pub(crate) server_name: Option<String>,
    /// `tlsSkipVerify`: handshake without checking the chain or the name.
    pub(crate) skip_verify: bool,
    /// `minCertValidityDays`: fail when a certificate of the verified chain
    /// (or the client certificate) expires in fewer days.
    pub(crate) min_validity_days: Option<u32>,
    /// `clientCertFile` and `clientKeyFile`: the certificate (chain) and
    /// key offered to a server that asks for one; both or neither.
    pub(crate) client_auth: Option<ClientAuthFiles>,
    /// `tlsMinVersion: "1.3"`: offer TLS 1.3 only.
    pub(crate) tls13_only: bool,
}

/// The PEM files of a client certificate and its key (`clientCertFile`,
/// `clientKeyFile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientAuthFiles {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}
