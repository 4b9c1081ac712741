//! `tcp` probes: connect with a deadline, then close. Pass iff connected.
//!
//! Fields: [`FIELDS`], and the TLS fields (`runner::tls_fields`).
//!
//! With `tls: true` the probe passes only once a TLS handshake with the
//! server has completed (certificate checks included), then closes. The
//! TLS configuration is built at prepare time, once per reset.
//! A TLS 1.3 server that asks for a client certificate (probewheel sends
//! none) judges it after the client's side of the handshake is complete,
//! so then the probe waits briefly for the server's verdict: a fatal alert
//! (`certificate_required`) fails it, a session ticket or any other data
//! passes it at once, and silence passes it after twice the handshake's
//! duration (at least 250 ms, never past `connectTimeoutSecs`). A server
//! that does not ask is not waited for. In TLS 1.2 the refusal comes
//! within the handshake.
//! `tlsServerName` defaults to `host`. Without the `tls` feature,
//! `tls: true` makes the declaration invalid, naming the feature.
//!
//! A run (`run.rs`) is a state machine on a worker's poll loop over the
//! transport's connect (`transport::connect`): a name is resolved on the
//! shared resolver pool (IP literals are parsed once at prepare time),
//! then the addresses are tried in order, the next as soon as one fails.
//! `connectTimeoutSecs` bounds the whole run, the lookup and the TLS
//! handshake included: a resolver that never answers costs the run its
//! timeout, and the lookup is abandoned then. Nothing here blocks, so a
//! probe whose server never answers costs a socket and a timer entry, not a
//! worker.
//!
//! Failure reasons (crate docs, "Events"):
//! `tcp probe: connect 127.0.0.1:22: Connection refused (os error 111)`,
//! `tcp probe: connect [::1]:8080: timed out after 5 s`,
//! `tcp probe: resolve <host>:<port>: <error>` (and `...: timed out after
//! 5 s` for a lookup that does not come back in time), and `tcp probe:
//! cancelled` (discarded by the engine). When several addresses fail, the
//! reason lists each: `tcp probe: connect A: ...; connect B: ...`. A TLS
//! failure names the address and what went wrong: `tcp probe:
//! 127.0.0.1:443: TLS handshake timed out after 5 s (no answer to the
//! ClientHello)`, `tcp probe: 127.0.0.1:443: TLS certificate not trusted:
//! ...`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crate::decl::{Declaration, Field, FieldError};
use crate::runner::{HostFacts, Kind, Prepared};
use crate::transport::connect::Target;
#[cfg(feature = "tls")]
use crate::transport::tls::{SetupError, TlsSetup};

#[cfg(not(feature = "tls"))]
use super::tls_fields::NOT_BUILT_IN;
#[cfg(feature = "tls")]
use super::tls_fields::tls_setup;
use super::tls_fields::{TLS_FIELDS, tls_options};

mod run;
#[cfg(test)]
mod tests;

/// Host used when `host` is absent.
pub(crate) const DEFAULT_HOST: &str = "127.0.0.1";
/// `connectTimeoutSecs` when absent.
pub(crate) const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 5;
/// Largest accepted `connectTimeoutSecs` (one hour).
pub(crate) const MAX_CONNECT_TIMEOUT_SECS: u64 = 3600;

/// The `tcp` kind.
pub(crate) struct TcpKind;

impl Kind for TcpKind {
    fn fields(&self) -> &'static [&'static [Field]] {
        &[FIELDS, TLS_FIELDS]
    }

    fn prepare(&self, decl: &Declaration, _host: &HostFacts) -> Result<Prepared, FieldError> {
        Ok(Prepared::Machine(Arc::new(TcpCheck::from_decl(decl)?)))
    }
}

/// Its own fields, as `docs/declarations.md` lists them.
#[rustfmt::skip]
const FIELDS: &[Field] = &[
    Field::new("host", "string: a host name, an IPv4 or an IPv6 literal (with or without brackets)", "`127.0.0.1`", "Where to connect."),
    Field::new("port", "integer, 1 to 65535", "required", "The port."),
    Field::new("connectTimeoutSecs", "integer, 1 to 3600", "5", "Bounds the whole probe: the lookup, the connect and, with `tls`, the handshake."),
    Field::new("tls", "boolean", "false", "After connecting, complete a TLS handshake, certificate checks included"),
];

/// A prepared `tcp` probe.
#[derive(Debug, Clone)]
struct TcpCheck {
    probe: Arc<Probe>,
}

/// What every run of one probe shares.
#[derive(Debug)]
struct Probe {
    /// Fixed at prepare time for an IP literal, resolved at every run for
    /// a name (so DNS changes are followed).
    target: Target,
    timeout_secs: u64,
    /// `tls: true`: the configuration, or why it could not be built.
    #[cfg(feature = "tls")]
    tls: Option<Result<TlsSetup, SetupError>>,
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
            Host::Name(name) => Target::Name(name.to_owned(), port),
        };
        let tls = decl.bool_field("tls")?.unwrap_or(false);
        let tls_options = tls_options(decl)?;
        #[cfg(not(feature = "tls"))]
        {
            drop(tls_options);
            if tls {
                return Err(FieldError::new("tls", NOT_BUILT_IN));
            }
        }
        #[cfg(feature = "tls")]
        let tls = tls.then(|| tls_setup(&tls_options)).transpose()?;
        Ok(TcpCheck {
            probe: Arc::new(Probe {
                target,
                timeout_secs,
                #[cfg(feature = "tls")]
                tls,
            }),
        })
    }
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
