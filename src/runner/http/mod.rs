//! `http` probes: an HTTP/1.1 `GET` over a plain or a TLS connection, as a
//! state machine on a worker's poll loop.
//!
//! Fields (`docs/declarations.md`): `url` (required, `http://` or `https://`),
//! `expectStatus` (default 200, 100 to 599), `bodyContains` (optional),
//! `headers` (optional), `timeoutSecs` (default 10, 1 to 86400),
//! `connectTimeoutSecs` (default 5, 1 to 3600), and for `https://` the TLS
//! fields `caFile`, `tlsServerName`, `tlsSkipVerify` and
//! `minCertValidityDays` (see `runner::tls_fields` for the trust store).
//! [`Runner::prepare`] parses the URL, builds the request bytes and (for
//! `https://`) the TLS configuration once; a run only resolves (names
//! only), connects, does the TLS handshake, writes the request and reads.
//!
//! Behaviour, with the decisions where the design is silent:
//!
//! - A probe passes iff the final status equals `expectStatus` and, when
//!   `bodyContains` is set, the body contains it. The body is read only in
//!   that case, and only its first 64 KiB (after chunked decoding) are
//!   searched: a needle not found there fails with `... in its first
//!   64 KiB`. An empty `bodyContains` is trivially contained.
//! - `timeoutSecs` bounds the whole probe (resolving, connecting, sending,
//!   every redirect hop, TLS handshakes, reading): one deadline is computed
//!   at the start. `connectTimeoutSecs` bounds the connect phase of each
//!   hop (the lookup, the connect and, for `https://`, the TLS handshake,
//!   as curl's `--connect-timeout` does), within that deadline; when it is
//!   what expires, the reason says `(connectTimeoutSecs)`. A response
//!   that arrived before the deadline counts even when the worker gets to
//!   it after (a stopped or starved process): past the deadline a run
//!   still reads what its socket holds, and times out only when it would
//!   have to wait for more or follow a redirect.
//! - Redirects 301, 302, 303, 307 and 308 are followed up to 10 times,
//!   one new connection per hop, to `http://` and (with the `tls`
//!   feature) `https://` targets. Credentials from the URL are sent again
//!   only while the scheme, host and port stay the same. A redirect from
//!   `http://` to `https://` builds the probe's TLS configuration on its
//!   first use, once per reset. In the `url` and in a `Location`, a `\`
//!   before the query reads as `/`, as browsers and curl read it:
//!   `http://a:1\@b/` goes to `a` (path `/@b/`), never to a host hidden
//!   behind user-info.
//! - `headers` are sent with every request, the redirects' included; one
//!   named like a default (`Host`, `User-Agent`, `Connection`) replaces it.
//!   Credentials never leave the origin (scheme, host and port) of `url`,
//!   as with curl and Go's net/http: once a redirect goes to another
//!   origin, `Authorization`, `Cookie` and `Proxy-Authorization` (and the
//!   URL's user-info) are not sent again in that run, not even to a later
//!   hop back on the origin. An `https://` to `http://` redirect is
//!   another origin, so they are never sent in clear text after it.
//!   When `expectStatus` is itself one of these codes, no redirect is
//!   followed: the first response is compared directly (a probe that expects
//!   301 checks the redirect, not where it leads).
//! - `1xx` interim responses (other than 101) are skipped, unless
//!   `expectStatus` is a `1xx` code.
//! - A response head may have any number of header fields within its
//!   64 KiB cap.
//! - Without the `tls` feature an `https://` URL makes the declaration
//!   invalid (so `probewheel check` reports it as an error: it can never
//!   pass), naming the feature; a redirect to `https://` fails the run the
//!   same way.
//! - TLS failures name what went wrong: handshake timeout, unknown issuer,
//!   name mismatch, expired or not yet valid, expiring within
//!   `minCertValidityDays`, protocol error, alert from the server
//!   (`transport::tls`).
//!
//! How a run waits: it never blocks. A host name goes to the shared
//! resolver pool (`Cx::resolve`) and the run is woken by the answer, or
//! abandons the lookup at its deadline; the connect, the write and the
//! reads are non-blocking on one socket registered with the worker's poll
//! (`transport::dial`, `transport::stream`); the TLS handshake is one more
//! state over that socket (`transport::tls`), and the response is pushed
//! into a parser as it arrives (`response.rs`). A server that never answers
//! costs a socket and a timer entry until the deadline, not a thread. A run
//! reads at most `READS_PER_CALL` (16) times per call and then yields to
//! the worker's other runs, so a fast peer cannot monopolise a worker
//! either. A reset or shutdown drops the run: its socket closes and its
//! lookup is abandoned.
//!
//! Cost of one tick (IP-literal URL, no redirect): one socket, one 8 KiB
//! buffer allocation, one write, reads of at most 8 KiB until the head is
//! complete (plus the body, when `bodyContains` is set).

use std::fmt;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::sync::Arc;
#[cfg(feature = "tls")]
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[cfg(feature = "tls")]
use mio::net::TcpStream;

use crate::decl::{Declaration, FieldError};
use crate::runner::machine::{self, Cx, Machine, Run, Step};
use crate::runner::tcp::{DEFAULT_CONNECT_TIMEOUT_SECS, MAX_CONNECT_TIMEOUT_SECS};
use crate::runner::{Check, RunContext, Runner, RunnerOutcome};
use crate::transport::dial::{Dial, Dialed};
use crate::transport::resolve::Lookup;
use crate::transport::stream::Stream;
#[cfg(feature = "tls")]
use crate::transport::tls::{TlsFail, TlsSession, TlsSetup};

#[cfg(not(feature = "tls"))]
use super::tls_fields::NOT_BUILT_IN;
use super::tls_fields::TlsFields;

mod headers;
mod response;
mod url;

#[cfg(test)]
mod hardening_tests;
#[cfg(test)]
mod tests;
#[cfg(all(test, feature = "tls"))]
mod tls_tests;

use headers::Headers;
use response::{BODY_CAP, BodySearch, HeadReader, Needle, NotFound, Search};
use url::{Host, Url, UrlError};

/// Redirect codes that are followed.
const REDIRECTS: [u16; 5] = [301, 302, 303, 307, 308];
/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 10;
/// Default `expectStatus`.
const DEFAULT_STATUS: u64 = 200;
/// Reads one call of `advance` makes before it lets the worker's other
/// runs have their turn (it asks to be called again at once).
pub(crate) const READS_PER_CALL: usize = 16;
/// Read budgets (of [`READS_PER_CALL`] reads) a call past the deadline
/// may spend on what the socket already holds.
const LATE_READ_BUDGETS: usize = 8;
const CANCELLED: &str = "http probe: cancelled";

/// The `http` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpRunner;

impl Runner for HttpRunner {
    fn prepare(&self, decl: &Declaration) -> Result<Arc<dyn Check>, FieldError> {
        Ok(Arc::new(HttpCheck::from_decl(decl)?))
    }
}

/// A prepared `http` probe as a state machine, for a worker that drives
/// runs on its own poll loop.
pub(crate) fn machine(decl: &Declaration) -> Result<Arc<dyn Machine>, FieldError> {
    Ok(Arc::new(HttpCheck::from_decl(decl)?))
}

/// A prepared `http` probe.
#[derive(Debug, Clone)]
enum HttpCheck {
    Fetch(Arc<Probe>),
}

impl HttpCheck {
    fn from_decl(decl: &Declaration) -> Result<HttpCheck, FieldError> {
        let raw_url = decl.required_str("url")?;
        let expect = decl
            .u64_in("expectStatus", 100, 599)?
            .unwrap_or(DEFAULT_STATUS) as u16;
        let timeout_secs = crate::runner::timeout_secs(decl)?;
        let connect_secs = decl
            .u64_in("connectTimeoutSecs", 1, MAX_CONNECT_TIMEOUT_SECS)?
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT_SECS);
        let needle = match decl.str_field("bodyContains")? {
            Some(s) if s.len() > BODY_CAP => {
                return Err(FieldError::new(
                    "bodyContains",
                    format!(
                        "{} bytes is longer than the 64 KiB of body that is searched",
                        s.len()
                    ),
                ));
            }
            Some("") | None => None,
            Some(s) => Some(Needle::new(s.as_bytes())),
        };
        let headers = Headers::from_value(decl.get("headers"))?;
        let tls_fields = TlsFields::from_decl(decl)?;
        let url = match Url::parse(raw_url) {
            Ok(url) => url,
            Err(UrlError::NotHttp) => {
                return Err(FieldError::new(
                    "url",
                    format!("not an http:// or https:// URL: {raw_url:?}"),
                ));
            }
            Err(UrlError::Malformed(why)) => {
                return Err(FieldError::new(
                    "url",
                    format!("malformed URL {raw_url:?}: {why}"),
                ));
            }
        };
        #[cfg(not(feature = "tls"))]
        {
            drop(tls_fields);
            if url.is_tls() {
                return Err(FieldError::new(
                    "url",
                    format!("{url} is https: {NOT_BUILT_IN}"),
                ));
            }
        }
        #[cfg(feature = "tls")]
        let tls = OnceLock::new();
        #[cfg(feature = "tls")]
        if url.is_tls() {
            let setup = match tls_fields.setup() {
                Ok(setup) => Ok(setup),
                Err(Ok(invalid)) => return Err(invalid),
                Err(Err(reason)) => Err(reason),
            };
            let _ = tls.set(setup);
        }
        Ok(HttpCheck::Fetch(Arc::new(Probe {
            first: Hop::new(url, &headers),
            foreign_headers: headers.without_credentials(),
            headers,
            expect,
            follow: !REDIRECTS.contains(&expect),
            needle,
            timeout_secs,
            connect_secs,
            #[cfg(feature = "tls")]
            tls_fields,
            #[cfg(feature = "tls")]
            tls,
        })))
    }
}

impl Check for HttpCheck {
    fn run(&self, ctx: &RunContext<'_>) -> RunnerOutcome {
        // Cancelled before it began: no socket is opened.
        if ctx.is_cancelled() {
            return RunnerOutcome::fail(CANCELLED);
        }
        machine::on_caller::run_to_end(self, ctx)
    }
}

impl Machine for HttpCheck {
    fn start(&self, now: Instant) -> Box<dyn Run> {
        match self {
            HttpCheck::Fetch(probe) => Box::new(HttpRun {
                deadline: now + Duration::from_secs(probe.timeout_secs),
                probe: Arc::clone(probe),
                redirected: None,
                left_origin: false,
                redirects: 0,
                state: State::Start,
            }),
        }
    }
}

/// What every run of one probe shares.
#[derive(Debug)]
struct Probe {
    first: Hop,
    /// `headers`, for the requests of redirect hops within the origin.
    headers: Headers,
    /// `headers` without credentials, for hops after a redirect left the
    /// origin of `url`.
    foreign_headers: Headers,
    expect: u16,
    /// False when `expectStatus` is a redirect code.
    follow: bool,
    needle: Option<Needle>,
    timeout_secs: u64,
    connect_secs: u64,
    #[cfg(feature = "tls")]
    tls_fields: TlsFields,
    /// The TLS configuration: built at prepare for an `https://` URL, on
    /// the first redirect to one otherwise; the reason when it cannot be.
    #[cfg(feature = "tls")]
    tls: OnceLock<Result<TlsSetup, String>>,
}

impl Probe {
    #[cfg(feature = "tls")]
    fn tls_setup(&self) -> Result<&TlsSetup, Fail> {
        self.tls
            .get_or_init(|| {
                self.tls_fields.setup().map_err(|e| match e {
                    Ok(invalid) => format!("field `{}`: {}", invalid.field(), invalid.problem()),
                    Err(reason) => reason,
                })
            })
            .as_ref()
            .map_err(|reason| Fail::Other(reason.clone()))
    }
}

/// One URL to fetch, with its request bytes and (for IP literals) its
/// address, so the first hop is ready to send at every tick.
#[derive(Debug)]
struct Hop {
    url: Url,
    request: Box<[u8]>,
    addr: Option<SocketAddr>,
}

impl Hop {
    fn new(url: Url, headers: &Headers) -> Hop {
        let addr = match url.host() {
            Host::Ip(ip) => Some(SocketAddr::new(*ip, url.port())),
            Host::Name(_) => None,
        };
        Hop {
            request: url.request(headers),
            addr,
            url,
        }
    }
}

/// One run of an `http` probe.
#[derive(Debug)]
struct HttpRun {
    probe: Arc<Probe>,
    /// `timeoutSecs` after the start: bounds the whole run.
    deadline: Instant,
    /// The hop being fetched, once a redirect was followed.
    redirected: Option<Hop>,
    /// A redirect went to another origin (scheme, host or port) than the
    /// probe's `url`: from then on, to the end of the run, no credentials
    /// are sent, even to a hop back on the origin (that request was chosen
    /// by the other origin).
    left_origin: bool,
    redirects: usize,
    state: State,
}

/// Where a run is; every state but `Start` holds what it waits on.
#[derive(Debug)]
enum State {
    /// A hop begins: resolve or dial.
    Start,
    /// Waiting for the resolver (dropping the lookup abandons it).
    Resolving {
        lookup: Lookup,
        connect_by: Instant,
    },
    Connecting {
        dial: Dial,
        connect_by: Instant,
    },
    /// Connected to an `https://` hop's server: the TLS handshake.
    #[cfg(feature = "tls")]
    Handshaking {
        tcp: TcpStream,
        session: Box<TlsSession>,
        addr: SocketAddr,
        connect_by: Instant,
    },
    Sending {
        conn: Conn,
        written: usize,
    },
    Head {
        conn: Conn,
        reader: HeadReader,
    },
    Body {
        conn: Conn,
        search: BodySearch,
    },
    /// Finished (also what a state is while it is being advanced).
    Ended,
}

/// An open connection of one hop.
#[derive(Debug)]
struct Conn {
    stream: Stream,
    addr: SocketAddr,
}

impl Conn {
    fn failed(&self, phase: Phase, e: &io::Error) -> Fail {
        Fail::Other(format!(
            "connection to {} failed while {phase}: {e}",
            self.addr
        ))
    }

    /// Reads into `buf`: `Ok(None)` when nothing is there yet.
    fn read(&mut self, buf: &mut [u8], phase: Phase) -> Result<Option<usize>, Fail> {
        loop {
            return match self.stream.read(buf) {
                Ok(n) => Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(self.failed(phase, &e)),
            };
        }
    }
}

/// What the run does next, when it has not failed.
enum Flow {
    Wait(Instant),
    /// More is readable: call again at once (after the worker's other runs).
    Again,
    Pass,
}

impl Run for HttpRun {
    fn advance(&mut self, cx: &mut Cx<'_>) -> Step {
        match self.step(cx) {
            Ok(Flow::Wait(until)) => Step::Wait(until),
            Ok(Flow::Again) => Step::Wait(cx.now()),
            Ok(Flow::Pass) => {
                self.state = State::Ended;
                Step::Done(RunnerOutcome::pass())
            }
            Err(fail) => {
                self.state = State::Ended;
                Step::Done(RunnerOutcome::fail(fail.reason(&self.probe)))
            }
        }
    }

    fn cancel(&mut self, _cx: &mut Cx<'_>) -> Step {
        // Dropping the run closes the socket and abandons the lookup.
        Step::Done(RunnerOutcome::fail(CANCELLED))
    }
}

impl HttpRun {
    /// The step the run is in, for a timeout's reason.
    fn phase(&self) -> Phase {
        match &self.state {
            State::Start | State::Resolving { .. } => Phase::Resolving,
            State::Connecting { dial, .. } => match dial.current() {
                Some(addr) => Phase::Connecting(addr),
                None => Phase::Resolving,
            },
            #[cfg(feature = "tls")]
            State::Handshaking { session, addr, .. } => Phase::Handshake {
                addr: *addr,
                heard: matches!(
                    session.timed_out(Duration::ZERO),
                    TlsFail::HandshakeTimeout { heard: true, .. }
                ),
            },
            State::Sending { .. } => Phase::Sending,
            State::Head { .. } | State::Ended => Phase::Head,
            State::Body { .. } => Phase::Body,
        }
    }

    fn step(&mut self, cx: &Cx<'_>) -> Result<Flow, Fail> {
        let now = cx.now();
        if now >= self.deadline {
            return self.step_late(cx);
        }
        let connect_by = match &self.state {
            State::Resolving { connect_by, .. } | State::Connecting { connect_by, .. } => {
                Some(*connect_by)
            }
            #[cfg(feature = "tls")]
            State::Handshaking { connect_by, .. } => Some(*connect_by),
            _ => None,
        };
        if connect_by.is_some_and(|by| now >= by) {
            return Err(Fail::ConnectTimedOut(self.phase()));
        }
        self.progress(cx)
    }

    /// A call at or after the deadline. The worker may come late (the
    /// process was stopped, or starved of CPU) to an answer that arrived in
    /// time: what the socket already holds is read first, and the run times
    /// out only when it would have to wait for more, or start anything new
    /// (a connection, a redirect). exec judges a child's exit the same way,
    /// readiness before the clock.
    fn step_late(&mut self, cx: &Cx<'_>) -> Result<Flow, Fail> {
        if !matches!(self.state, State::Head { .. } | State::Body { .. }) {
            return Err(Fail::TimedOut(self.phase()));
        }
        // This call ends the run either way, as a late call must: a few
        // read budgets (up to 1 MiB) hold any head and searched body.
        for _ in 0..LATE_READ_BUDGETS {
            match self.progress(cx)? {
                Flow::Pass => return Ok(Flow::Pass),
                Flow::Again => {}
                Flow::Wait(_) => break,
            }
        }
        Err(Fail::TimedOut(self.phase()))
    }

    /// Advances through the states as far as the socket and the resolver
    /// allow without waiting.
    fn progress(&mut self, cx: &Cx<'_>) -> Result<Flow, Fail> {
        let now = cx.now();
        let p = &*self.probe;
        let mut reads = 0;
        loop {
            let hop = self.redirected.as_ref().unwrap_or(&p.first);
            match mem::replace(&mut self.state, State::Ended) {
                State::Ended => {
                    return Err(Fail::Other("the run was advanced after its end".into()));
                }
                State::Start => {
                    let connect_by = (now + Duration::from_secs(p.connect_secs)).min(self.deadline);
                    let port = hop.url.port();
                    self.state = match (hop.addr, hop.url.host()) {
                        (Some(addr), _) => State::Connecting {
                            dial: Dial::new(vec![addr]),
                            connect_by,
                        },
                        (None, Host::Name(name)) => State::Resolving {
                            lookup: cx.resolve(name, port),
                            connect_by,
                        },
                        (None, Host::Ip(ip)) => State::Connecting {
                            dial: Dial::new(vec![SocketAddr::new(*ip, port)]),
                            connect_by,
                        },
                    };
                }
                State::Resolving { lookup, connect_by } => {
                    let name = match hop.url.host() {
                        Host::Name(name) => name.as_str(),
                        Host::Ip(_) => "",
                    };
                    let addrs = match lookup.take() {
                        None => {
                            self.state = State::Resolving { lookup, connect_by };
                            return Ok(Flow::Wait(connect_by));
                        }
                        Some(Err(e)) => return Err(Fail::Other(format!("resolve {name}: {e}"))),
                        Some(Ok(addrs)) if addrs.is_empty() => {
                            return Err(Fail::Other(format!("resolve {name}: no addresses")));
                        }
                        Some(Ok(addrs)) => addrs,
                    };
                    self.state = State::Connecting {
                        dial: Dial::new(addrs),
                        connect_by,
                    };
                }
                State::Connecting {
                    mut dial,
                    connect_by,
                } => match dial.advance(cx) {
                    Dialed::Pending => {
                        self.state = State::Connecting { dial, connect_by };
                        return Ok(Flow::Wait(connect_by));
                    }
                    Dialed::Failed => return Err(Fail::Other(dial.failed())),
                    Dialed::Connected(stream, addr) => {
                        #[cfg(feature = "tls")]
                        if hop.url.is_tls() {
                            let setup = p.tls_setup()?;
                            let session = TlsSession::new(setup, &hop.url.host_name())
                                .map_err(Fail::Other)?;
                            self.state = State::Handshaking {
                                tcp: stream,
                                session: Box::new(session),
                                addr,
                                connect_by,
                            };
                            continue;
                        }
                        self.state = State::Sending {
                            conn: Conn {
                                stream: Stream::Plain(stream),
                                addr,
                            },
                            written: 0,
                        };
                    }
                },
                #[cfg(feature = "tls")]
                State::Handshaking {
                    mut tcp,
                    mut session,
                    addr,
                    connect_by,
                } => match session.handshake(&mut tcp) {
                    Ok(true) => {
                        self.state = State::Sending {
                            conn: Conn {
                                stream: Stream::Tls(tcp, session),
                                addr,
                            },
                            written: 0,
                        };
                    }
                    Ok(false) => {
                        self.state = State::Handshaking {
                            tcp,
                            session,
                            addr,
                            connect_by,
                        };
                        return Ok(Flow::Wait(connect_by));
                    }
                    Err(fail) => return Err(Fail::Other(format!("{addr}: {fail}"))),
                },
                State::Sending {
                    mut conn,
                    mut written,
                } => {
                    let request = &hop.request;
                    while written < request.len() {
                        match conn.stream.write(&request[written..]) {
                            Ok(0) => {
                                let e = io::ErrorKind::WriteZero.into();
                                return Err(conn.failed(Phase::Sending, &e));
                            }
                            Ok(n) => written += n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                self.state = State::Sending { conn, written };
                                return Ok(Flow::Wait(self.deadline));
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(conn.failed(Phase::Sending, &e)),
                        }
                    }
                    match conn.stream.flush() {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.state = State::Sending { conn, written };
                            return Ok(Flow::Wait(self.deadline));
                        }
                        Err(e) => return Err(conn.failed(Phase::Sending, &e)),
                    }
                    let skip_interim = !(100..200).contains(&p.expect);
                    self.state = State::Head {
                        conn,
                        reader: HeadReader::new(skip_interim),
                    };
                }
                State::Head {
                    mut conn,
                    mut reader,
                } => {
                    let head = loop {
                        if reads == READS_PER_CALL {
                            self.state = State::Head { conn, reader };
                            return Ok(Flow::Again);
                        }
                        reads += 1;
                        let Some(n) = conn.read(reader.spare(), Phase::Head)? else {
                            self.state = State::Head { conn, reader };
                            return Ok(Flow::Wait(self.deadline));
                        };
                        if let Some(head) = reader.received(n)? {
                            break head;
                        }
                    };
                    if p.follow && REDIRECTS.contains(&head.status) {
                        if self.redirects == MAX_REDIRECTS {
                            return Err(Fail::Other(format!(
                                "too many redirects ({MAX_REDIRECTS})"
                            )));
                        }
                        let next = redirect_target(&hop.url, head.status, head.location())?;
                        if now >= self.deadline {
                            return Err(Fail::TimedOutBeforeRedirect(next.to_string()));
                        }
                        conn.stream.deregister(cx);
                        drop(conn);
                        self.left_origin |= !next.same_origin(&p.first.url);
                        let headers = if self.left_origin {
                            &p.foreign_headers
                        } else {
                            &p.headers
                        };
                        self.redirected = Some(Hop::new(next, headers));
                        self.redirects += 1;
                        self.state = State::Start;
                        continue;
                    }
                    if head.status != p.expect {
                        return Err(Fail::Other(format!(
                            "status {}, expected {}{}",
                            head.status,
                            p.expect,
                            after_redirects(self.redirects, &hop.url)
                        )));
                    }
                    let Some(needle) = &p.needle else {
                        return Ok(Flow::Pass);
                    };
                    let mut search = BodySearch::new(head)?;
                    match search.scan(needle)? {
                        Search::More => self.state = State::Body { conn, search },
                        Search::Found => return Ok(Flow::Pass),
                        Search::NotFound(why) => return Err(self.not_found(why, needle, hop)),
                    }
                }
                State::Body {
                    mut conn,
                    mut search,
                } => {
                    let needle = p.needle.as_ref().expect("a body is read only for a needle");
                    loop {
                        if reads == READS_PER_CALL {
                            self.state = State::Body { conn, search };
                            return Ok(Flow::Again);
                        }
                        reads += 1;
                        let Some(n) = conn.read(search.spare()?, Phase::Body)? else {
                            self.state = State::Body { conn, search };
                            return Ok(Flow::Wait(self.deadline));
                        };
                        match search.received(n, needle)? {
                            Search::More => {}
                            Search::Found => return Ok(Flow::Pass),
                            Search::NotFound(why) => return Err(self.not_found(why, needle, hop)),
                        }
                    }
                }
            }
        }
    }

    /// The failure of a body search that did not find the needle.
    fn not_found(&self, why: NotFound, needle: &Needle, hop: &Hop) -> Fail {
        Fail::Other(format!(
            "body did not contain {}{}{}",
            quote(needle.as_bytes()),
            match why {
                NotFound::InBody => "",
                NotFound::WithinCap => " in its first 64 KiB",
            },
            after_redirects(self.redirects, &hop.url)
        ))
    }
}

/// Where a redirect response points, or why it cannot be followed.
fn redirect_target(from: &Url, status: u16, location: Option<&[u8]>) -> Result<Url, Fail> {
    let Some(location) = location else {
        return Err(Fail::Other(format!("redirect {status} without Location")));
    };
    let location = String::from_utf8_lossy(location);
    let next = from.join(&location).map_err(|e| {
        Fail::Other(match e {
            UrlError::NotHttp => {
                format!("redirect {status} to {location:?}: not an http:// or https:// URL")
            }
            UrlError::Malformed(why) => {
                format!("redirect {status} to {location:?}: malformed Location: {why}")
            }
        })
    })?;
    #[cfg(not(feature = "tls"))]
    if next.is_tls() {
        return Err(Fail::Other(format!(
            "redirect {status} to {next}: https: {NOT_BUILT_IN}"
        )));
    }
    Ok(next)
}

/// ` (after N redirects, at URL)`, or nothing for the first hop.
fn after_redirects(redirects: usize, url: &Url) -> String {
    match redirects {
        0 => String::new(),
        1 => format!(" (after 1 redirect, at {url})"),
        n => format!(" (after {n} redirects, at {url})"),
    }
}

/// A needle for a reason: quoted, escaped, long ones cut.
fn quote(needle: &[u8]) -> String {
    const SHOWN: usize = 64;
    let s = String::from_utf8_lossy(needle);
    if s.len() <= SHOWN {
        return crate::text::quoted(&s);
    }
    let shown = crate::text::head(&s, SHOWN).escape_debug();
    format!("\"{shown}...\" ({} bytes)", needle.len())
}

/// The step a probe was in, for timeout reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Resolving,
    Connecting(SocketAddr),
    /// The TLS handshake; `heard`: whether the server sent anything yet.
    #[cfg(feature = "tls")]
    Handshake {
        addr: SocketAddr,
        heard: bool,
    },
    Sending,
    Head,
    Body,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Resolving => f.write_str("resolving"),
            Phase::Connecting(addr) => write!(f, "connecting to {addr}"),
            #[cfg(feature = "tls")]
            Phase::Handshake { addr, heard } => write!(
                f,
                "in the TLS handshake with {addr} ({})",
                if *heard {
                    "the server did not finish it"
                } else {
                    "no answer to the ClientHello"
                }
            ),
            Phase::Sending => f.write_str("sending the request"),
            Phase::Head => f.write_str("waiting for the response head"),
            Phase::Body => f.write_str("reading the body"),
        }
    }
}

/// Why a run failed; turned into the reason only at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fail {
    /// The probe's deadline (`timeoutSecs`) passed during this phase.
    TimedOut(Phase),
    /// The hop's connect phase (`connectTimeoutSecs`) ran out first.
    ConnectTimedOut(Phase),
    /// The deadline passed with a redirect to this URL read but not yet
    /// followed.
    TimedOutBeforeRedirect(String),
    /// Anything else, as the reason without the `http probe: ` prefix.
    Other(String),
}

impl Fail {
    fn reason(self, probe: &Probe) -> String {
        match self {
            Fail::TimedOut(phase) => format!(
                "http probe: timed out after {} s while {phase}",
                probe.timeout_secs
            ),
            Fail::ConnectTimedOut(phase) => format!(
                "http probe: timed out after {} s (connectTimeoutSecs) while {phase}",
                probe.connect_secs
            ),
            Fail::TimedOutBeforeRedirect(url) => format!(
                "http probe: timed out after {} s before following the redirect to {url}",
                probe.timeout_secs
            ),
            Fail::Other(why) => format!("http probe: {why}"),
        }
    }
}
