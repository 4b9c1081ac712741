//! `dns` probes: one query to one name server, judged by the reply's
//! response code and, optionally, a record of its answer section. The
//! fields are in `docs/declarations.md`.
//!
//! A run is a state machine on a worker (G13): a connected non-blocking
//! UDP socket, the query sent again at growing intervals within
//! `timeoutSecs`, then TCP (2-byte length framing, the transport's
//! connect) when the answer came truncated or with `tcp: true`. No
//! lookup, no thread: the server is an IP address, by default the first
//! `nameserver` of `/etc/resolv.conf`, read once per reset.
//!
//! Reasons: `dns probe: 127.0.0.1:53: rcode SERVFAIL, expected NOERROR`,
//! `dns probe: no answer from 127.0.0.1:53 within 5 s (3 tries over UDP)`,
//! `dns probe: 127.0.0.1:53: answer section has no record containing
//! "10.0.0.1"; it held: A 10.0.0.2, A 10.0.0.3`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use crate::decl::{Declaration, Field, FieldError};
use crate::file::RegularFile;
use crate::runner::{HostFacts, Kind, Prepared};

use wire::{Name, RType};

mod run;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
mod wire;

/// Where the default server comes from.
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// The most of `/etc/resolv.conf` read.
const RESOLV_CONF_MAX: u64 = 64 * 1024;
/// The DNS port.
const PORT: u16 = 53;
/// The longest `expectAnswer`.
const MAX_EXPECT: usize = 1024;

/// The `dns` kind.
pub(crate) struct DnsKind;

impl Kind for DnsKind {
    fn fields(&self) -> &'static [&'static [Field]] {
        &[FIELDS]
    }

    fn lint(&self, decl: &Declaration, warn: &mut dyn FnMut(&'static str, String)) {
        let Ok(Some(name)) = decl.str_field("name") else {
            return;
        };
        let ptr = decl
            .str_field("type")
            .ok()
            .flatten()
            .is_some_and(|t| t.eq_ignore_ascii_case("PTR"));
        if !ptr && name.parse::<IpAddr>().is_ok() {
            warn(
                "name",
                format!(
                    "{name:?} is an address, asked for as a name: with `type` `PTR` the \
                     probe asks for its reverse name"
                ),
            );
        }
    }

    fn prepare(&self, decl: &Declaration, _host: &HostFacts) -> Result<Prepared, FieldError> {
        let check = DnsCheck::from_decl(decl, Path::new(RESOLV_CONF))?;
        Ok(Prepared::Machine(Arc::new(check)))
    }
}

/// Its own fields, as `docs/declarations.md` lists them.
#[rustfmt::skip]
const FIELDS: &[Field] = &[
    Field::new("name", "string: a domain name; with `type` `PTR` also an IP address", "required", "The name to ask about."),
    Field::new("type", "string: `A`, `AAAA`, `CNAME`, `MX`, `TXT`, `SRV`, `NS`, `SOA` or `PTR`", "`A`", "The record type to ask for"),
    Field::new("server", "string: an IP address, with an optional port (`10.0.0.53:5353`, `[::1]:53`)", "the first `nameserver` of `/etc/resolv.conf`", "The name server to ask"),
    Field::new("expectRcode", "string: a response code (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, `REFUSED`, ...)", "`NOERROR`", "The response code the reply must carry"),
    Field::new("expectAnswer", "string: 1 to 1024 bytes", "none", "Passes only when a record of the answer section, in its text form, contains this"),
    Field::new("tcp", "boolean", "false", "Ask over TCP from the start"),
];

/// A prepared `dns` probe.
#[derive(Debug, Clone)]
struct DnsCheck {
    probe: Arc<Probe>,
}

/// What every run of one probe shares.
#[derive(Debug)]
struct Probe {
    name: Name,
    rtype: RType,
    server: SocketAddr,
    expect_rcode: u8,
    expect_answer: Option<String>,
    tcp: bool,
    timeout_secs: u64,
}

impl DnsCheck {
    /// Reads the fields; `resolv_conf` is where a missing `server` is
    /// looked up.
    fn from_decl(decl: &Declaration, resolv_conf: &Path) -> Result<DnsCheck, FieldError> {
        let rtype = match decl.str_field("type")? {
            None => RType::A,
            Some(t) => RType::from_name(t).ok_or_else(|| {
                let names: Vec<&str> = RType::ALL.iter().map(|t| t.name()).collect();
                FieldError::new(
                    "type",
                    format!("expected one of {}, got {t:?}", names.join(", ")),
                )
            })?,
        };
        let text = decl.required_str("name")?;
        let name = match text.parse::<IpAddr>() {
            Ok(ip) if rtype == RType::Ptr => Name::reverse(ip),
            _ => Name::parse(text).map_err(|p| FieldError::new("name", p))?,
        };
        let server = match decl.str_field("server")? {
            Some(s) => parse_server(s).map_err(|p| FieldError::new("server", p))?,
            None => default_server(resolv_conf).map_err(|p| FieldError::new("server", p))?,
        };
        let expect_rcode = match decl.str_field("expectRcode")? {
            None => 0,
            Some(r) => wire::rcode_of(r).ok_or_else(|| {
                FieldError::new(
                    "expectRcode",
                    format!("expected one of {}, got {r:?}", wire::rcode_names()),
                )
            })?,
        };
        let expect_answer = match decl.str_field("expectAnswer")? {
            None => None,
            Some(e) if e.is_empty() || e.len() > MAX_EXPECT => {
                return Err(FieldError::new(
                    "expectAnswer",
                    format!("expected 1 to {MAX_EXPECT} bytes, got {}", e.len()),
                ));
            }
            Some(e) => Some(e.to_owned()),
        };
        Ok(DnsCheck {
            probe: Arc::new(Probe {
                name,
                rtype,
                server,
                expect_rcode,
                expect_answer,
                tcp: decl.bool_field("tcp")?.unwrap_or(false),
                timeout_secs: crate::runner::timeout_secs(decl)?,
            }),
        })
    }
}

/// `10.0.0.53`, `10.0.0.53:5353`, `::1`, `[::1]` or `[::1]:5353`; the
/// error is a problem text.
fn parse_server(s: &str) -> Result<SocketAddr, String> {
    let addr = if let Ok(addr) = s.parse::<SocketAddr>() {
        addr
    } else if let Ok(ip) = s.parse::<IpAddr>() {
        SocketAddr::new(ip, PORT)
    } else if let Some(v6) = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .and_then(|s| s.parse::<Ipv6Addr>().ok())
    {
        SocketAddr::new(IpAddr::V6(v6), PORT)
    } else {
        return Err(format!(
            "expected an IP address with an optional port (`10.0.0.53`, `10.0.0.53:5353`, \
             `[::1]:5353`), got {s:?}: looking up a name server's name would itself need \
             a name server"
        ));
    };
    if addr.port() == 0 {
        return Err(format!("port 0 in {s:?}: expected 1 to 65535"));
    }
    Ok(addr)
}

/// The first usable `nameserver` of the resolver configuration at `path`,
/// port 53; the error is a problem text.
fn default_server(path: &Path) -> Result<SocketAddr, String> {
    let shown = path.display();
    let text = RegularFile::open(path, RESOLV_CONF_MAX)
        .and_then(|f| f.read_head(RESOLV_CONF_MAX))
        .map_err(|e| format!("absent, and {shown} cannot be read ({e}): give `server`"))?;
    first_nameserver(&String::from_utf8_lossy(&text))
        .map(|ip| SocketAddr::new(ip, PORT))
        .ok_or_else(|| format!("absent, and {shown} names no nameserver by address: give `server`"))
}

/// The first `nameserver` line's address (a link-local IPv6 one with a
/// `%zone` is passed over: the zone cannot be honoured without a lookup
/// of the interface).
fn first_nameserver(text: &str) -> Option<IpAddr> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == "nameserver")
            .then(|| words.next()?.parse().ok())
            .flatten()
    })
}
