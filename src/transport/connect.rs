//! Connecting to a server: resolve, dial and (for TLS) the handshake,
//! under one deadline. The one connect of the `tcp` kind and of every
//! `http` hop.
//!
//! ```text
//!  Start ──name──> Resolving ──addresses──> Dialing ──tls──> Handshaking ──(Verdict)──> connected
//!    └────IP literal──────────────────────────┘  └──plain──────────────────────────────────┘
//! ```
//!
//! A run calls [`Connect::advance`] until connected, at the latest at
//! [`Connect::deadline`]; a call after it fails with the step it was in
//! (`timed out after N s`). A `tcp` probe's TLS connection counts once a
//! TLS 1.3 server that asked for a client certificate had a short wait
//! (`Verdict`) to refuse the client that sent none.
//!
//! A [`Choice`] (`ipFamily`, `addresses`) filters the addresses; with
//! `addresses: all` the whole path after the lookup runs once per address.

use std::fmt;
use std::io;
use std::mem;
use std::net::SocketAddr;
#[cfg(feature = "tls")]
use std::time::Duration;
use std::time::Instant;

#[cfg(feature = "tls")]
use mio::net::TcpStream;

use super::Watch;
use super::dial::{Dial, Dialed, Failures, timed_out};
use super::resolve::Lookup;
use super::stream::Stream;
#[cfg(feature = "tls")]
use super::tls::{SetupError, TlsFail, TlsSession, TlsSetup, unfinished};

/// The shortest wait for a server's verdict on the client certificate.
#[cfg(feature = "tls")]
const VERDICT_WAIT_MIN: Duration = Duration::from_millis(250);

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// An address known without a lookup (an IP literal).
    Addr(SocketAddr),
    /// A host name, looked up at every connect (so DNS changes are
    /// followed), and the port.
    Name(String, u16),
}

/// Which of the resolved (or literal) addresses to use: `ipFamily` and
/// `addresses` of `docs/declarations.md`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Choice {
    /// Only IPv4 (`Some(false)`) or only IPv6 (`Some(true)`) addresses.
    pub(crate) ipv6: Option<bool>,
    pub(crate) addresses: Addresses,
}

/// `addresses`: which of the picked addresses must connect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Addresses {
    /// Only the first one is tried.
    First,
    /// The first to connect, racing them (RFC 8305).
    #[default]
    Any,
    /// Every one, in turn, each failure named.
    All,
}

impl Choice {
    /// The addresses to dial, or why none is left.
    fn pick(self, mut addrs: Vec<SocketAddr>) -> io::Result<Vec<SocketAddr>> {
        if addrs.is_empty() {
            return Err(io::Error::other("no addresses"));
        }
        if let Some(v6) = self.ipv6 {
            addrs.retain(|a| a.is_ipv6() == v6);
        }
        if addrs.is_empty() {
            let family = if self.ipv6 == Some(true) {
                "IPv6"
            } else {
                "IPv4"
            };
            return Err(io::Error::other(format!("no {family} address")));
        }
        if self.addresses == Addresses::First {
            addrs.truncate(1);
        }
        Ok(addrs)
    }
}

/// What the connection is for.
#[derive(Debug)]
pub(crate) enum Then {
    /// Only to see that it can be made: it is closed at once (a plain
    /// `tcp` probe; see `dial` for the spare sockets this allows).
    Close,
    /// To talk over it in plain text.
    Plain,
    /// A TLS handshake with the probe's setup (or why there is none,
    /// reported once connected); then `keep` it to talk over, or close it.
    #[cfg(feature = "tls")]
    Tls {
        setup: Result<TlsSetup, SetupError>,
        keep: bool,
    },
}

/// A connection made by [`Connect`].
#[derive(Debug)]
pub(crate) enum Connected {
    /// Made (and the handshake accepted) and closed, as asked.
    Closed,
    /// Open, registered with the run's token for reading and writing, to
    /// the address.
    Open(Stream, SocketAddr),
}

/// How far a connect got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Resolving,
    Connecting(SocketAddr),
    /// The TLS handshake; `heard`: whether the server sent anything yet.
    #[cfg(feature = "tls")]
    Handshake {
        addr: SocketAddr,
        heard: bool,
    },
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Resolving => f.write_str("resolving"),
            Stage::Connecting(addr) => write!(f, "connecting to {addr}"),
            #[cfg(feature = "tls")]
            Stage::Handshake { addr, heard } => {
                write!(
                    f,
                    "in the TLS handshake with {addr} ({})",
                    unfinished(*heard)
                )
            }
        }
    }
}

/// Why a connect failed. `Display` is the reason after the probe kind's
/// prefix: `connect 127.0.0.1:22: Connection refused (os error 111)`,
/// `resolve db.test:5432: no addresses`, `127.0.0.1:443: TLS certificate
/// not trusted: ...`.
#[derive(Debug)]
pub(crate) enum ConnectFail {
    /// The lookup failed, found no address, or did not come back in time.
    Resolve {
        name: String,
        port: u16,
        error: io::Error,
    },
    /// Every address failed (the last one maybe by timing out).
    Refused(Failures),
    /// The TLS configuration or session could not be made.
    #[cfg(feature = "tls")]
    Setup(SetupError),
    /// The TLS handshake failed (or timed out).
    #[cfg(feature = "tls")]
    Tls(SocketAddr, TlsFail),
    /// With `addresses: all`: the addresses that failed, each as above.
    Each(Vec<ConnectFail>),
}

impl fmt::Display for ConnectFail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectFail::Resolve { name, port, error } => {
                write!(f, "resolve {name}:{port}: {error}")
            }
            ConnectFail::Refused(failures) => failures.fmt(f),
            #[cfg(feature = "tls")]
            ConnectFail::Setup(e) => e.fmt(f),
            #[cfg(feature = "tls")]
            ConnectFail::Tls(addr, fail) => write!(f, "{addr}: {fail}"),
            ConnectFail::Each(fails) => {
                for (i, fail) in fails.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "; " };
                    write!(f, "{sep}{fail}")?;
                }
                Ok(())
            }
        }
    }
}

/// Resolve, dial, TLS: one connect of a run.
#[derive(Debug)]
pub(crate) struct Connect {
    target: Target,
    then: Then,
    choice: Choice,
    /// With `addresses: all`: the progress through them.
    every: Option<Box<Every>>,
    started: Instant,
    deadline: Instant,
    state: State,
}

/// `addresses: all`: the addresses still to check, last first, and the
/// failures so far.
#[derive(Debug)]
struct Every {
    rest: Vec<SocketAddr>,
    failed: Vec<ConnectFail>,
}

/// The steps, in the order they are taken.
#[derive(Debug)]
enum State {
    Start,
    /// Waiting for the resolver; dropping the lookup abandons it.
    Resolving(Lookup),
    Dialing(Dial),
    /// The TLS handshake, begun at the instant.
    #[cfg(feature = "tls")]
    Handshaking(Tls, Instant),
    /// The TLS 1.3 handshake is done but the server asked for a client
    /// certificate: its verdict on the one we did not send comes after,
    /// by the instant.
    #[cfg(feature = "tls")]
    Verdict(Tls, Instant),
    /// Connected or failed.
    Ended,
}

/// A TLS session over its connection.
#[cfg(feature = "tls")]
#[derive(Debug)]
struct Tls {
    tcp: TcpStream,
    session: Box<TlsSession>,
    addr: SocketAddr,
}

impl Connect {
    /// A connect to `target` for `then`, started at `started`, that fails
    /// when called at or after `deadline`. Makes no call yet.
    pub(crate) fn new(target: Target, then: Then, started: Instant, deadline: Instant) -> Connect {
        Connect {
            target,
            then,
            choice: Choice::default(),
            every: None,
            started,
            deadline,
            state: State::Start,
        }
    }

    /// The same connect using only the addresses `choice` picks.
    pub(crate) fn choosing(self, choice: Choice) -> Connect {
        Connect { choice, ..self }
    }

    /// When to be called again at the latest while waiting: the
    /// [`Connect::deadline`], or sooner when the next address is due.
    pub(crate) fn wake(&self) -> Instant {
        let next = match &self.state {
            State::Dialing(dial) => dial.next_start(),
            _ => None,
        };
        next.map_or(self.deadline(), |at| at.min(self.deadline()))
    }

    /// When to be called at the latest: the deadline, or the end of the
    /// wait for a server's verdict.
    pub(crate) fn deadline(&self) -> Instant {
        #[cfg(feature = "tls")]
        if let State::Verdict(_, until) = self.state {
            return until;
        }
        self.deadline
    }

    /// How far the connect got.
    pub(crate) fn stage(&self) -> Stage {
        match &self.state {
            State::Dialing(dial) => dial.current().map_or(Stage::Resolving, Stage::Connecting),
            #[cfg(feature = "tls")]
            State::Handshaking(tls, _) | State::Verdict(tls, _) => Stage::Handshake {
                addr: tls.addr,
                heard: tls.session.heard(),
            },
            State::Start | State::Resolving(_) | State::Ended => Stage::Resolving,
        }
    }

    /// Makes what progress can be made at `now`: `Ok(None)` while it waits.
    pub(crate) fn advance(
        &mut self,
        cx: &mut impl Watch,
        now: Instant,
    ) -> Result<Option<Connected>, ConnectFail> {
        loop {
            let result = self.step(cx, now);
            let Some(every) = self.every.as_deref_mut() else {
                return result;
            };
            let last = every.rest.is_empty();
            match result {
                Ok(None) => return Ok(None),
                Ok(Some(connected)) if last && every.failed.is_empty() => {
                    return Ok(Some(connected));
                }
                Ok(_) => {} // an address checked: it closes as it drops
                Err(e) => every.failed.push(e),
            }
            #[cfg(feature = "tls")]
            let no_setup = matches!(every.failed.last(), Some(ConnectFail::Setup(_)));
            #[cfg(not(feature = "tls"))]
            let no_setup = false;
            if last || no_setup || now >= self.deadline {
                return Err(ConnectFail::Each(mem::take(&mut every.failed)));
            }
            let next = every.rest.pop().expect("not the last address");
            self.state = State::Dialing(self.dial(vec![next]));
        }
    }

    /// One connect to the picked addresses (with `addresses: all`, to
    /// one of them).
    fn step(
        &mut self,
        cx: &mut impl Watch,
        now: Instant,
    ) -> Result<Option<Connected>, ConnectFail> {
        #[cfg(feature = "tls")]
        if let State::Verdict(..) = self.state {
            return self.verdict(now); // its wait ends by the deadline
        }
        if now >= self.deadline {
            return Err(self.timed_out());
        }
        if let State::Start = self.state {
            match &self.target {
                Target::Addr(addr) => self.begin(vec![*addr])?,
                Target::Name(name, port) => {
                    self.state = State::Resolving(cx.resolve(name, *port));
                }
            }
        }
        if let State::Resolving(lookup) = &self.state {
            match lookup.take() {
                None => return Ok(None),
                Some(Ok(addrs)) => self.begin(addrs)?,
                Some(Err(e)) => return Err(self.unresolved(e)),
            }
        }
        if let State::Dialing(dial) = &mut self.state {
            let (tcp, addr) = match dial.advance(cx, now) {
                Dialed::Pending => return Ok(None),
                Dialed::Failed => return Err(ConnectFail::Refused(dial.failures())),
                Dialed::Reached => return Ok(Some(Connected::Closed)),
                Dialed::Connected(tcp, addr) => (tcp, addr),
            };
            #[cfg(feature = "tls")]
            if let Then::Tls { setup, .. } = &self.then {
                let setup = setup.as_ref().map_err(|e| ConnectFail::Setup(e.clone()))?;
                // The name asked for unless `tlsServerName` says otherwise:
                // the host as written (an IP literal without brackets).
                let host = match &self.target {
                    Target::Addr(addr) => addr.ip().to_string(),
                    Target::Name(name, _) => name.clone(),
                };
                let session = TlsSession::new(setup, &host).map_err(ConnectFail::Setup)?;
                let session = Box::new(session);
                self.state = State::Handshaking(Tls { tcp, session, addr }, now);
                return self.handshake(now);
            }
            self.state = State::Ended;
            return Ok(Some(Connected::Open(Stream::Plain(tcp), addr)));
        }
        #[cfg(feature = "tls")]
        if let State::Handshaking(..) = self.state {
            return self.handshake(now);
        }
        unreachable!("a connect is not advanced after its end")
    }

    #[cfg(feature = "tls")]
    fn handshake(&mut self, now: Instant) -> Result<Option<Connected>, ConnectFail> {
        let State::Handshaking(mut tls, started) = mem::replace(&mut self.state, State::Ended)
        else {
            unreachable!("called while handshaking")
        };
        match tls.session.handshake(&mut tls.tcp) {
            Ok(false) => {
                self.state = State::Handshaking(tls, started);
                return Ok(None);
            }
            Err(fail) => return Err(ConnectFail::Tls(tls.addr, fail)),
            Ok(true) => {}
        }
        if let Then::Tls { keep: true, .. } = self.then {
            return Ok(Some(Connected::Open(
                Stream::Tls(tls.tcp, tls.session),
                tls.addr,
            )));
        }
        // Established: it closes as it drops, unless the server may still refuse.
        if !tls.session.verdict_pending() {
            return Ok(Some(Connected::Closed));
        }
        // A refusal comes one round trip after our last flight: twice the
        // handshake's time (which held a round trip) covers it; a session
        // ticket ends the wait at once.
        let wait = (2 * (now - started)).max(VERDICT_WAIT_MIN);
        self.state = State::Verdict(tls, (now + wait).min(self.deadline));
        self.verdict(now)
    }

    #[cfg(feature = "tls")]
    fn verdict(&mut self, now: Instant) -> Result<Option<Connected>, ConnectFail> {
        let State::Verdict(tls, until) = &mut self.state else {
            unreachable!("called while waiting for the verdict")
        };
        match tls.session.verdict(&mut tls.tcp) {
            // Quiet until the wait's end: no objection came.
            Ok(accepted) if accepted || now >= *until => {
                self.state = State::Ended;
                Ok(Some(Connected::Closed))
            }
            Ok(_) => Ok(None),
            Err(fail) => Err(ConnectFail::Tls(tls.addr, fail)),
        }
    }

    /// Starts dialing the addresses the choice picks from `addrs`; with
    /// `addresses: all`, the first of them, the others kept for later.
    fn begin(&mut self, addrs: Vec<SocketAddr>) -> Result<(), ConnectFail> {
        let mut addrs = self.choice.pick(addrs).map_err(|e| self.unresolved(e))?;
        if self.choice.addresses == Addresses::All {
            let mut rest = addrs.split_off(1);
            rest.reverse();
            let failed = Vec::new();
            self.every = Some(Box::new(Every { rest, failed }));
        }
        self.state = State::Dialing(self.dial(addrs));
        Ok(())
    }

    fn dial(&self, addrs: Vec<SocketAddr>) -> Dial {
        Dial::new(addrs, !matches!(self.then, Then::Close))
    }

    /// A failed lookup of the target (named by its host, or address, and
    /// port).
    fn unresolved(&self, error: io::Error) -> ConnectFail {
        let (name, port) = match &self.target {
            Target::Addr(addr) => (addr.ip().to_string(), addr.port()),
            Target::Name(name, port) => (name.clone(), *port),
        };
        ConnectFail::Resolve { name, port, error }
    }

    /// The failure of the step the deadline came in.
    fn timed_out(&mut self) -> ConnectFail {
        let after = self.deadline.saturating_duration_since(self.started);
        match &mut self.state {
            State::Dialing(dial) => ConnectFail::Refused(dial.timed_out(after)),
            #[cfg(feature = "tls")]
            State::Handshaking(tls, _) => {
                let heard = tls.session.heard();
                ConnectFail::Tls(tls.addr, TlsFail::HandshakeTimeout { after, heard })
            }
            _ => self.unresolved(timed_out(after)),
        }
    }
}
