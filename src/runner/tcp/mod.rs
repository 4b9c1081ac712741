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
//! A run is a state machine (`runner::machine::Machine`) on a worker's poll
//! loop: it resolves a name on the shared resolver pool (`Cx::resolve`; IP
//! literals are parsed once at prepare time), then dials through the
//! transport layer (`transport::dial`), which tries the addresses in order,
//! the next as soon as one fails. `connectTimeoutSecs` bounds the whole
//! run, the lookup and the TLS handshake included: a resolver that never answers costs the run
//! its timeout, and the lookup is abandoned then. Nothing here blocks, so a
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
use std::time::{Duration, Instant};

use crate::decl::{Declaration, Field, FieldError};
use crate::runner::machine::{Cx, Machine, Run, Step};
use crate::runner::{HostFacts, Kind, Prepared, RunnerOutcome};
use crate::transport::dial::{Dial, Dialed};
use crate::transport::resolve::Lookup;
#[cfg(feature = "tls")]
use crate::transport::tls::{TlsSession, TlsSetup};

#[cfg(not(feature = "tls"))]
use super::tls_fields::NOT_BUILT_IN;
use super::tls_fields::{TLS_FIELDS, TlsFields};
#[cfg(feature = "tls")]
use mio::net::TcpStream;

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

/// Where to connect: fixed at prepare time for an IP literal, resolved at
/// every run for a name (so DNS changes are followed).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Addr(SocketAddr),
    Name(String),
}

/// A prepared `tcp` probe.
#[derive(Debug, Clone)]
struct TcpCheck {
    probe: Arc<Probe>,
}

/// What every run of one probe shares.
#[derive(Debug)]
struct Probe {
    target: Target,
    port: u16,
    timeout_secs: u64,
    /// `tls: true`: the configuration, or why it could not be built.
    #[cfg(feature = "tls")]
    tls: Option<Result<TlsSetup, String>>,
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
            Host::Name(name) => Target::Name(name.to_owned()),
        };
        let tls = decl.bool_field("tls")?.unwrap_or(false);
        let tls_fields = TlsFields::from_decl(decl)?;
        #[cfg(not(feature = "tls"))]
        {
            drop(tls_fields);
            if tls {
                return Err(FieldError::new("tls", NOT_BUILT_IN));
            }
        }
        #[cfg(feature = "tls")]
        let tls = match tls.then(|| tls_fields.setup()) {
            None => None,
            Some(Ok(setup)) => Some(Ok(setup)),
            Some(Err(Ok(invalid))) => return Err(invalid),
            Some(Err(Err(reason))) => Some(Err(reason)),
        };
        Ok(TcpCheck {
            probe: Arc::new(Probe {
                target,
                port,
                timeout_secs,
                #[cfg(feature = "tls")]
                tls,
            }),
        })
    }
}

impl Machine for TcpCheck {
    fn start(&self, now: Instant) -> Box<dyn Run> {
        Box::new(TcpRun {
            deadline: now + Duration::from_secs(self.probe.timeout_secs),
            probe: Arc::clone(&self.probe),
            state: State::Start,
        })
    }
}

const PREFIX: &str = "tcp probe: ";
const CANCELLED: &str = "tcp probe: cancelled";

/// One run of a `tcp` probe.
#[derive(Debug)]
struct TcpRun {
    probe: Arc<Probe>,
    /// `connectTimeoutSecs` after the start: bounds the whole run.
    deadline: Instant,
    state: State,
}

#[derive(Debug)]
enum State {
    Start,
    /// Waiting for the resolver; dropping the lookup abandons it.
    Resolving(Lookup),
    Connecting(Dial),
    /// Connected, `tls: true`: the handshake.
    #[cfg(feature = "tls")]
    Handshaking {
        tcp: TcpStream,
        session: Box<TlsSession>,
        addr: SocketAddr,
        started: Instant,
    },
    /// The TLS 1.3 handshake is done but the server asked for a client
    /// certificate: its verdict on the one we did not send comes after.
    #[cfg(feature = "tls")]
    Verdict {
        tcp: TcpStream,
        session: Box<TlsSession>,
        addr: SocketAddr,
        until: Instant,
    },
}

/// The shortest wait for a server's verdict on the client certificate.
#[cfg(feature = "tls")]
const VERDICT_WAIT_MIN: Duration = Duration::from_millis(250);

impl Run for TcpRun {
    fn advance(&mut self, cx: &mut Cx<'_>) -> Step {
        match self.step(cx) {
            Ok(None) => Step::Wait(match &self.state {
                #[cfg(feature = "tls")]
                State::Verdict { until, .. } => *until,
                _ => self.deadline,
            }),
            Ok(Some(())) => Step::Done(RunnerOutcome::pass()),
            Err(reason) => Step::Done(RunnerOutcome::fail(reason)),
        }
    }

    fn cancel(&mut self, _cx: &mut Cx<'_>) -> Step {
        // Dropping the run closes the socket and abandons the lookup.
        Step::Done(RunnerOutcome::fail(CANCELLED))
    }
}

impl Probe {
    /// Without TLS the connection is closed as soon as it is made.
    fn dial(&self, addrs: Vec<SocketAddr>) -> Dial {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return Dial::new(addrs);
        }
        Dial::connect_only(addrs)
    }
}

impl TcpRun {
    /// `Ok(None)`: wait; `Ok(Some(()))`: connected; `Err`: the reason.
    fn step(&mut self, cx: &Cx<'_>) -> Result<Option<()>, String> {
        let p = &*self.probe;
        let now = cx.now();
        #[cfg(feature = "tls")]
        let verdict = matches!(self.state, State::Verdict { .. });
        #[cfg(not(feature = "tls"))]
        let verdict = false;
        // The verdict's wait ends by the deadline; its state judges that.
        if now >= self.deadline && !verdict {
            return Err(match &self.state {
                State::Start | State::Resolving(_) => format!(
                    "{PREFIX}resolve {}:{}: timed out after {} s",
                    p.name(),
                    p.port,
                    p.timeout_secs
                ),
                State::Connecting(dial) => format!("{PREFIX}{}", dial.timed_out(p.timeout_secs)),
                #[cfg(feature = "tls")]
                State::Handshaking { session, addr, .. } => format!(
                    "{PREFIX}{addr}: {}",
                    // The probe's timeout, which the handshake ended.
                    session.timed_out(Duration::from_secs(p.timeout_secs))
                ),
                #[cfg(feature = "tls")]
                State::Verdict { .. } => unreachable!("judged in its state"),
            });
        }
        loop {
            match &mut self.state {
                State::Start => {
                    self.state = match &p.target {
                        Target::Addr(addr) => State::Connecting(p.dial(vec![*addr])),
                        Target::Name(name) => State::Resolving(cx.resolve(name, p.port)),
                    };
                }
                State::Resolving(lookup) => {
                    let name = p.name();
                    let addrs = match lookup.take() {
                        None => return Ok(None),
                        Some(Err(e)) => {
                            return Err(format!("{PREFIX}resolve {name}:{}: {e}", p.port));
                        }
                        Some(Ok(addrs)) if addrs.is_empty() => {
                            return Err(format!("{PREFIX}resolve {name}:{}: no addresses", p.port));
                        }
                        Some(Ok(addrs)) => addrs,
                    };
                    self.state = State::Connecting(p.dial(addrs));
                }
                State::Connecting(dial) => {
                    return match dial.advance(cx) {
                        Dialed::Pending => Ok(None),
                        #[cfg(feature = "tls")]
                        Dialed::Connected(tcp, addr) if p.tls.is_some() => {
                            let setup = match &p.tls {
                                Some(Ok(setup)) => setup,
                                Some(Err(reason)) => return Err(format!("{PREFIX}{reason}")),
                                None => unreachable!("matched on tls"),
                            };
                            let session = TlsSession::new(setup, &p.tls_name())
                                .map_err(|e| format!("{PREFIX}{e}"))?;
                            self.state = State::Handshaking {
                                tcp,
                                session: Box::new(session),
                                addr,
                                started: now,
                            };
                            continue;
                        }
                        // Connected: that is all a plain tcp probe asks.
                        Dialed::Connected(stream, _) => {
                            dial.close(stream);
                            Ok(Some(()))
                        }
                        Dialed::Failed => Err(format!("{PREFIX}{}", dial.failed())),
                    };
                }
                #[cfg(feature = "tls")]
                State::Handshaking {
                    tcp,
                    session,
                    addr,
                    started,
                } => {
                    return match session.handshake(tcp) {
                        Ok(true) if session.verdict_pending() => {
                            // The server refuses a client without a
                            // certificate one round trip after our last
                            // flight. The handshake took at least a round
                            // trip and the server's work, so twice its
                            // time (at least VERDICT_WAIT_MIN, for jitter
                            // on fast links) covers a server that says no;
                            // one that says nothing by then accepted us.
                            // A server that carries on (a session ticket,
                            // as most send) ends the wait at once, and one
                            // that did not ask never waits.
                            let wait = (2 * (now - *started)).max(VERDICT_WAIT_MIN);
                            let until = (now + wait).min(self.deadline);
                            let State::Handshaking {
                                tcp, session, addr, ..
                            } = std::mem::replace(&mut self.state, State::Start)
                            else {
                                unreachable!("matched above");
                            };
                            self.state = State::Verdict {
                                tcp,
                                session,
                                addr,
                                until,
                            };
                            continue;
                        }
                        // Established: the connection closes when the run drops.
                        Ok(true) => Ok(Some(())),
                        Ok(false) => Ok(None),
                        Err(fail) => Err(format!("{PREFIX}{addr}: {fail}")),
                    };
                }
                #[cfg(feature = "tls")]
                State::Verdict {
                    tcp,
                    session,
                    addr,
                    until,
                } => {
                    return match session.verdict(tcp) {
                        Ok(true) => Ok(Some(())),
                        // Quiet until the wait's end: no objection came.
                        Ok(false) if now >= *until => Ok(Some(())),
                        Ok(false) => Ok(None),
                        Err(fail) => Err(format!("{PREFIX}{addr}: {fail}")),
                    };
                }
            }
        }
    }
}

impl Probe {
    /// The name the TLS session asks for unless `tlsServerName` says
    /// otherwise: the host as written (an IP literal without brackets).
    #[cfg(feature = "tls")]
    fn tls_name(&self) -> String {
        match &self.target {
            Target::Name(name) => name.clone(),
            Target::Addr(addr) => addr.ip().to_string(),
        }
    }

    /// The host name looked up (empty for an IP literal, never looked up).
    fn name(&self) -> &str {
        match &self.target {
            Target::Name(name) => name,
            Target::Addr(_) => "",
        }
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
