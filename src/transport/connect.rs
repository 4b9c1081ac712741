//! Connecting to a server: resolve, dial, and (optionally) a TLS
//! handshake, under one deadline. The one connect machine of the `tcp`
//! kind and of every `http` hop.
//!
//! ```text
//!  Start ──name──> Resolving ──addresses──> Dialing ──tls──> Handshaking ──> connected
//!    └────IP literal──────────────────────────┘  └──plain──────────────────────┘
//! ```
//!
//! A [`Connect`] is a step of a run's state machine: the run calls
//! [`Connect::advance`] whenever it is called, and waits (for readiness or
//! a lookup's answer, until [`Connect::deadline`]) while it returns
//! `Ok(None)`. Nothing blocks: the lookup runs on the resolver pool (an IP
//! literal is never looked up), the dial is non-blocking and tries every
//! address in turn (`dial`), and the handshake is driven over the same
//! socket (`tls`). Called at or after the deadline, it fails with
//! [`ConnectFail::TimedOut`], which says how far it got.
//!
//! Failures stay typed ([`ConnectFail`]); their `Display` is the reason
//! text after the probe kind's prefix: `connect 127.0.0.1:22: Connection
//! refused (os error 111)`, `resolve db.test:5432: no addresses`,
//! `127.0.0.1:443: TLS certificate not trusted: ...`.

use std::fmt;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[cfg(feature = "tls")]
use mio::net::TcpStream;

use super::Watch;
use super::dial::{Dial, Dialed, Failures};
use super::resolve::Lookup;
use super::stream::Stream;
#[cfg(feature = "tls")]
use super::tls::{SetupError, TlsFail, TlsSession, TlsSetup};

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// An address known without a lookup (an IP literal).
    Addr(SocketAddr),
    /// A host name, looked up at every connect (so DNS changes are
    /// followed), and the port.
    Name(String, u16),
}

/// What the connection is for.
#[derive(Debug)]
pub(crate) enum Then {
    /// Only to see that it can be made: it is closed at once (a plain
    /// `tcp` probe; a socket that connected within the call is kept as a
    /// spare, see `dial`).
    Close,
    /// To talk over it in plain text.
    Plain,
    /// To talk over it after a TLS handshake: the probe's setup (or why
    /// there is none, reported once connected) and the host name the
    /// session asks for unless the setup names another.
    #[cfg(feature = "tls")]
    Tls(Result<TlsSetup, SetupError>, String),
}

/// A connection made by [`Connect`].
#[derive(Debug)]
pub(crate) enum Connected {
    /// Made and closed, as [`Then::Close`] asked.
    Closed,
    /// Open and registered with the run's token for reading and writing.
    Open(Connection),
}

/// An open connection.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) stream: Stream,
    pub(crate) addr: SocketAddr,
    /// How long the TLS handshake took (zero without TLS).
    pub(crate) handshake: Duration,
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
            Stage::Handshake { addr, heard } => write!(
                f,
                "in the TLS handshake with {addr} ({})",
                if *heard {
                    "the server did not finish it"
                } else {
                    "no answer to the ClientHello"
                }
            ),
        }
    }
}

/// Why a connect failed.
#[derive(Debug)]
pub(crate) enum ConnectFail {
    /// The lookup failed (`None`: it found no address).
    Resolve {
        name: String,
        port: u16,
        error: Option<io::Error>,
    },
    /// Every address failed.
    Refused(Failures),
    /// The TLS configuration or session could not be made.
    #[cfg(feature = "tls")]
    Setup(SetupError),
    /// The TLS handshake failed.
    #[cfg(feature = "tls")]
    Tls(SocketAddr, TlsFail),
    /// The deadline came `after` the connect started, at `stage`, with
    /// the addresses `tried` before failed.
    TimedOut {
        stage: Stage,
        after: Duration,
        name: String,
        port: u16,
        tried: Failures,
    },
}

impl fmt::Display for ConnectFail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectFail::Resolve { name, port, error } => match error {
                Some(e) => write!(f, "resolve {name}:{port}: {e}"),
                None => write!(f, "resolve {name}:{port}: no addresses"),
            },
            ConnectFail::Refused(failures) => failures.fmt(f),
            #[cfg(feature = "tls")]
            ConnectFail::Setup(e) => e.fmt(f),
            #[cfg(feature = "tls")]
            ConnectFail::Tls(addr, fail) => write!(f, "{addr}: {fail}"),
            ConnectFail::TimedOut {
                stage,
                after,
                name,
                port,
                tried,
            } => {
                let secs = after.as_secs();
                match stage {
                    Stage::Resolving => write!(f, "resolve {name}:{port}: timed out after {secs} s"),
                    Stage::Connecting(addr) => {
                        if !tried.is_empty() {
                            write!(f, "{tried}; ")?;
                        }
                        write!(f, "connect {addr}: timed out after {secs} s")
                    }
                    #[cfg(feature = "tls")]
                    Stage::Handshake { addr, heard } => {
                        let fail = TlsFail::HandshakeTimeout {
                            after: *after,
                            heard: *heard,
                        };
                        write!(f, "{addr}: {fail}")
                    }
                }
            }
        }
    }
}

/// Resolve, dial, TLS: one connect of a run.
#[derive(Debug)]
pub(crate) struct Connect {
    target: Target,
    then: Then,
    started: Instant,
    deadline: Instant,
    state: State,
}

#[derive(Debug)]
enum State {
    Start,
    /// Waiting for the resolver; dropping the lookup abandons it.
    Resolving(Lookup),
    Dialing(Dial),
    #[cfg(feature = "tls")]
    Handshaking {
        tcp: TcpStream,
        session: Box<TlsSession>,
        addr: SocketAddr,
        started: Instant,
    },
    /// Connected or failed.
    Ended,
}

/// What a state's step found.
enum Progress {
    /// Go on to this state now.
    To(State),
    /// Wait in this state.
    Wait(State),
    Done(Connected),
}

impl Connect {
    /// A connect to `target` for `then`, started at `started`, that fails
    /// when called at or after `deadline`. Makes no call yet.
    pub(crate) fn new(target: Target, then: Then, started: Instant, deadline: Instant) -> Connect {
        Connect {
            target,
            then,
            started,
            deadline,
            state: State::Start,
        }
    }

    /// The instant the connect fails at: when to be called at the latest.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// How far the connect got.
    pub(crate) fn stage(&self) -> Stage {
        match &self.state {
            State::Dialing(dial) => dial.current().map_or(Stage::Resolving, Stage::Connecting),
            #[cfg(feature = "tls")]
            State::Handshaking { session, addr, .. } => Stage::Handshake {
                addr: *addr,
                heard: session.heard(),
            },
            State::Start | State::Resolving(_) | State::Ended => Stage::Resolving,
        }
    }

    /// Makes what progress can be made now (`now` is the time of the
    /// run's call): `Ok(None)` while it waits.
    pub(crate) fn advance(
        &mut self,
        cx: &mut impl Watch,
        now: Instant,
    ) -> Result<Option<Connected>, ConnectFail> {
        if now >= self.deadline {
            return Err(self.timed_out());
        }
        loop {
            let progress = match mem::replace(&mut self.state, State::Ended) {
                State::Start => Progress::To(self.start(cx)),
                State::Resolving(lookup) => self.resolving(lookup)?,
                State::Dialing(dial) => self.dialing(dial, cx, now)?,
                #[cfg(feature = "tls")]
                State::Handshaking {
                    tcp,
                    session,
                    addr,
                    started,
                } => handshaking(tcp, session, addr, started, now)?,
                State::Ended => unreachable!("a connect is not advanced after its end"),
            };
            match progress {
                Progress::To(state) => self.state = state,
                Progress::Wait(state) => {
                    self.state = state;
                    return Ok(None);
                }
                Progress::Done(connected) => return Ok(Some(connected)),
            }
        }
    }

    fn start(&self, cx: &mut impl Watch) -> State {
        match &self.target {
            Target::Addr(addr) => State::Dialing(self.dial(vec![*addr])),
            Target::Name(name, port) => State::Resolving(cx.resolve(name, *port)),
        }
    }

    fn dial(&self, addrs: Vec<SocketAddr>) -> Dial {
        match self.then {
            Then::Close => Dial::connect_only(addrs),
            _ => Dial::new(addrs),
        }
    }

    fn resolving(&self, lookup: Lookup) -> Result<Progress, ConnectFail> {
        match lookup.take() {
            None => Ok(Progress::Wait(State::Resolving(lookup))),
            Some(Ok(addrs)) if !addrs.is_empty() => Ok(Progress::To(State::Dialing(self.dial(addrs)))),
            Some(answer) => {
                let (name, port) = self.name_port();
                Err(ConnectFail::Resolve {
                    name: name.to_owned(),
                    port,
                    error: answer.err(),
                })
            }
        }
    }

    fn dialing(
        &self,
        mut dial: Dial,
        cx: &mut impl Watch,
        now: Instant,
    ) -> Result<Progress, ConnectFail> {
        let (tcp, addr) = match dial.advance(cx) {
            Dialed::Pending => return Ok(Progress::Wait(State::Dialing(dial))),
            Dialed::Failed => return Err(ConnectFail::Refused(dial.failures())),
            Dialed::Reached => return Ok(Progress::Done(Connected::Closed)),
            Dialed::Connected(tcp, addr) => (tcp, addr),
        };
        #[cfg(feature = "tls")]
        if let Then::Tls(setup, host) = &self.then {
            let setup = setup.as_ref().map_err(|e| ConnectFail::Setup(e.clone()))?;
            let session = TlsSession::new(setup, host).map_err(ConnectFail::Setup)?;
            return Ok(Progress::To(State::Handshaking {
                tcp,
                session: Box::new(session),
                addr,
                started: now,
            }));
        }
        let _ = now;
        Ok(Progress::Done(Connected::Open(Connection {
            stream: Stream::Plain(tcp),
            addr,
            handshake: Duration::ZERO,
        })))
    }

    /// The host name looked up (empty for an address) and the port.
    fn name_port(&self) -> (&str, u16) {
        match &self.target {
            Target::Addr(addr) => ("", addr.port()),
            Target::Name(name, port) => (name, *port),
        }
    }

    fn timed_out(&mut self) -> ConnectFail {
        let stage = self.stage();
        let tried = match &mut self.state {
            State::Dialing(dial) => dial.failures(),
            _ => Failures::default(),
        };
        let (name, port) = self.name_port();
        ConnectFail::TimedOut {
            stage,
            after: self.deadline.saturating_duration_since(self.started),
            name: name.to_owned(),
            port,
            tried,
        }
    }
}

#[cfg(feature = "tls")]
fn handshaking(
    mut tcp: TcpStream,
    mut session: Box<TlsSession>,
    addr: SocketAddr,
    started: Instant,
    now: Instant,
) -> Result<Progress, ConnectFail> {
    match session.handshake(&mut tcp) {
        Ok(true) => Ok(Progress::Done(Connected::Open(Connection {
            stream: Stream::Tls(tcp, session),
            addr,
            handshake: now - started,
        }))),
        Ok(false) => Ok(Progress::Wait(State::Handshaking {
            tcp,
            session,
            addr,
            started,
        })),
        Err(fail) => Err(ConnectFail::Tls(addr, fail)),
    }
}
