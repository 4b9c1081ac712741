//! `tcp` probes: connect with a deadline (and, with `tls: true`, complete a
//! TLS handshake), optionally write `send` and look for `expect` in what
//! comes back, then close; pass iff that worked. The fields are in
//! `docs/declarations.md`. A run is a state machine over the transport's
//! connect, bounded as a whole by `connectTimeoutSecs`, so a server that
//! never answers costs a socket and a timer entry, not a worker.
//!
//! Reasons: `tcp probe: connect 127.0.0.1:22: Connection refused (os error
//! 111)`, `tcp probe: resolve <host>:<port>: <error>`, `...: timed out after
//! 5 s`, one `connect A: ...; connect B: ...` per address tried, for TLS
//! the address and what went wrong (`tcp probe: 127.0.0.1:443: TLS ...`),
//! and for `expect` what was awaited and the first bytes received
//! (`tcp probe: 127.0.0.1:6379: expected "+PONG" before the connection
//! closed; received "-NOAUTH ...\r\n"`).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crate::decl::{Declaration, Field, FieldError};
use crate::runner::{HostFacts, Kind, Prepared};
use crate::transport::connect::{Addresses, Choice, Target};
#[cfg(feature = "tls")]
use crate::transport::tls::{SetupError, TlsSetup};

#[cfg(not(feature = "tls"))]
use super::tls_fields::NOT_BUILT_IN;
#[cfg(feature = "tls")]
use super::tls_fields::tls_setup;
use super::tls_fields::{TLS_FIELDS, tls_options};

#[cfg(test)]
mod eyeballs_tests;
mod run;
#[cfg(test)]
mod talk_tests;
#[cfg(test)]
mod tests;

/// Host used when `host` is absent.
pub(crate) const DEFAULT_HOST: &str = "127.0.0.1";
/// `connectTimeoutSecs` when absent.
pub(crate) const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 5;
/// Largest accepted `connectTimeoutSecs` (one hour).
pub(crate) const MAX_CONNECT_TIMEOUT_SECS: u64 = 3600;
/// The most bytes `expect` is looked for in, and so its longest value
/// (and `send`'s).
pub(crate) const EXPECT_WITHIN: usize = 4096;

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
    Field::new("connectTimeoutSecs", "integer, 1 to 3600", "5", "Bounds the whole probe: the lookup, the connect, with `tls` the handshake, and `send` and `expect`."),
    Field::new("tls", "boolean", "false", "After connecting, complete a TLS handshake, certificate checks included"),
    Field::new("send", "string: 1 to 4096 bytes, escapes allowed", "none", "Written once connected (after the handshake with `tls`)."),
    Field::new("expect", "string: 1 to 4096 bytes, escapes allowed", "none", "Passes only when these bytes occur in the first 4096 bytes received (after `send`, if any)"),
    Field::new("ipFamily", "string: `any`, `4` or `6`", "`any`", "Connect only to IPv4 (`4`) or only to IPv6 (`6`) addresses of `host`; when it has none (an IP literal of the other family included) the run fails: `resolve <host>:<port>: no IPv6 address`."),
    Field::new("addresses", "string: `any`, `first` or `all`", "`any`", "Which addresses of `host` must connect. `any`: one, tried in turn with the families alternating from the first address's, as RFC 8305 (happy eyeballs) does: the next starts 250 ms after the previous one began (at once when it failed), the first to connect is used and the others are closed. `first`: the first address, the only one tried. `all`: every address, one after the other (each with its TLS handshake with `tls`); the reason names each that failed"),
];

/// Reads `ipFamily` and `addresses` (of `tcp` and `http`).
pub(crate) fn choice(decl: &Declaration) -> Result<Choice, FieldError> {
    let ipv6 = match decl.str_field("ipFamily")? {
        None | Some("any") => None,
        Some("4") => Some(false),
        Some("6") => Some(true),
        Some(other) => {
            return Err(FieldError::new(
                "ipFamily",
                format!("expected \"any\", \"4\" or \"6\", got {other:?}"),
            ));
        }
    };
    let addresses = match decl.str_field("addresses")? {
        None | Some("any") => Addresses::Any,
        Some("first") => Addresses::First,
        Some("all") => Addresses::All,
        Some(other) => {
            return Err(FieldError::new(
                "addresses",
                format!("expected \"any\", \"first\" or \"all\", got {other:?}"),
            ));
        }
    };
    Ok(Choice { ipv6, addresses })
}

/// A prepared `tcp` probe.
#[derive(Debug, Clone)]
struct TcpCheck {
    probe: Arc<Probe>,
}

/// What every run of one probe shares.
#[derive(Debug)]
struct Probe {
    /// A name is resolved at every run, so DNS changes are followed.
    target: Target,
    /// `ipFamily` and `addresses`.
    choice: Choice,
    timeout_secs: u64,
    /// `send`, unescaped.
    send: Option<Box<[u8]>>,
    /// `expect`, unescaped.
    expect: Option<Box<[u8]>>,
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
        let send = bytes_field(decl, "send")?;
        let expect = bytes_field(decl, "expect")?;
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
                choice: choice(decl)?,
                timeout_secs,
                send,
                expect,
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

/// A string field of bytes (`send`, `expect`), escapes decoded.
fn bytes_field(decl: &Declaration, field: &str) -> Result<Option<Box<[u8]>>, FieldError> {
    let Some(text) = decl.str_field(field)? else {
        return Ok(None);
    };
    let bytes = unescape(text).map_err(|p| FieldError::new(field, p))?;
    if bytes.is_empty() || bytes.len() > EXPECT_WITHIN {
        let n = bytes.len();
        return Err(FieldError::new(
            field,
            format!("expected 1 to {EXPECT_WITHIN} bytes (after escapes), got {n}"),
        ));
    }
    Ok(Some(bytes.into()))
}

/// Decodes `\r`, `\n`, `\t`, `\\` and `\xNN`; any other backslash is
/// refused, so a typo cannot send a literal backslash unnoticed. The error
/// is the problem text of a `FieldError`.
fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.extend_from_slice(&rest.as_bytes()[..at]);
        let bad = || bad_escape(text, text.len() - rest.len() + at);
        let escape = &rest.as_bytes()[at + 1..];
        let (byte, len) = match escape.first() {
            Some(b'r') => (b'\r', 1),
            Some(b'n') => (b'\n', 1),
            Some(b't') => (b'\t', 1),
            Some(b'\\') => (b'\\', 1),
            Some(b'x') => match escape.get(1..3) {
                Some(&[hi, lo]) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                    let hex = |d: u8| char::from(d).to_digit(16).expect("a hex digit");
                    let byte = u8::try_from(hex(hi) * 16 + hex(lo)).expect("two hex digits");
                    (byte, 3)
                }
                _ => return Err(bad()),
            },
            _ => return Err(bad()),
        };
        out.push(byte);
        rest = &rest[at + 1 + len..];
    }
    out.extend_from_slice(rest.as_bytes());
    Ok(out)
}

fn bad_escape(text: &str, at: usize) -> String {
    let shown = crate::text::OneLine(crate::text::head(&text[at..], 4));
    format!(
        "unknown escape `{shown}` at byte {at}: write \\r, \\n, \\t, \\\\ (a backslash) or \\xNN (a byte in hex)"
    )
}
