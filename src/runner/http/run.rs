//! A run of an `http` probe: one small function per state.
//!
//! ```text
//!  connecting ──> sending ──> head ──> body ──> pass
//!      ^                        │ (status, needle)
//!      └──────── redirect <─────┘
//! ```
//!
//! Each hop connects through `transport::connect` (resolve, dial, TLS),
//! writes the request and pushes what it reads into the response parser.

use std::fmt;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::response::{BodySearch, EXCERPT, Head, HeadReader, NotFound, Search};
use super::url::{Url, UrlError};
use super::{Follow, Hop, HttpCheck, Probe, REDIRECTS};
use crate::runner::RunnerOutcome;
use crate::runner::machine::{Cx, Machine, Run, Step};
use crate::transport::connect::{Connect, Connected, Stage, Then};
use crate::transport::stream::Stream;
#[cfg(feature = "tls")]
use crate::transport::tls::TlsSetup;

#[cfg(not(feature = "tls"))]
use crate::runner::tls_fields::NOT_BUILT_IN;

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 10;
/// Reads per call of `advance` before the worker's other runs get a turn.
const READS_PER_CALL: usize = 16;
/// Read budgets (of [`READS_PER_CALL`] reads) a call past the deadline
/// may spend on what the socket already holds.
const LATE_READ_BUDGETS: usize = 8;
pub(super) const CANCELLED: &str = "http probe: cancelled";

impl Machine for HttpCheck {
    fn start(&self, now: Instant) -> Box<dyn Run> {
        let probe = &self.0;
        let deadline = now + Duration::from_secs(probe.timeout_secs);
        Box::new(HttpRun {
            state: State::Connecting(probe.connect(&probe.first, now, deadline)),
            started: now,
            deadline,
            probe: Arc::clone(probe),
            redirected: None,
            left_origin: false,
            redirects: 0,
            reads: 0,
        })
    }
}

impl Probe {
    /// The connect of `hop`, bounded by `connectTimeoutSecs` within `deadline`.
    fn connect(&self, hop: &Hop, now: Instant, deadline: Instant) -> Connect {
        #[cfg(feature = "tls")]
        let then = if hop.url.is_tls() {
            Then::Tls {
                setup: self.tls_setup(),
                keep: true,
            }
        } else {
            Then::Plain
        };
        #[cfg(not(feature = "tls"))]
        let then = Then::Plain;
        let connect_by = (now + Duration::from_secs(self.connect_secs)).min(deadline);
        Connect::new(hop.target.clone(), then, now, connect_by).choosing(self.choice)
    }

    /// The TLS configuration (see [`Probe::tls`]).
    #[cfg(feature = "tls")]
    fn tls_setup(&self) -> Result<TlsSetup, crate::transport::tls::SetupError> {
        self.tls
            .get_or_init(|| TlsSetup::new(&self.tls_options))
            .clone()
    }
}

/// One run of an `http` probe.
#[derive(Debug)]
struct HttpRun {
    probe: Arc<Probe>,
    started: Instant,
    /// `timeoutSecs` after the start: bounds the whole run.
    deadline: Instant,
    /// The hop being fetched, once a redirect was followed.
    redirected: Option<Hop>,
    /// A redirect left the origin of `url`: no credentials for the rest of
    /// the run, even back on the origin (the other origin chose that hop).
    left_origin: bool,
    redirects: usize,
    /// Reads made in this call (at most [`READS_PER_CALL`]).
    reads: usize,
    state: State,
}

/// Where a run is; every state holds what it waits on.
#[derive(Debug)]
enum State {
    /// A hop's connect: resolve, dial, TLS.
    Connecting(Connect),
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

fn failed(conn: &Conn, phase: Phase, e: &io::Error) -> Fail {
    let addr = conn.addr;
    Fail::Other(format!("connection to {addr} failed while {phase}: {e}"))
}

/// What the run does next, when it has not failed.
enum Flow {
    Wait(Instant),
    /// More is readable: call again at once (after the worker's other runs).
    Again,
    Pass,
}

/// What a state's step found: go on to a state now, or stop in one.
enum Next {
    To(State),
    Stop(State, Flow),
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
            State::Connecting(connect) => Phase::Connect(connect.stage()),
            State::Sending { .. } => Phase::Sending,
            State::Head { .. } | State::Ended => Phase::Head,
            State::Body { .. } => Phase::Body,
        }
    }

    fn hop(&self) -> &Hop {
        self.redirected.as_ref().unwrap_or(&self.probe.first)
    }

    fn step(&mut self, cx: &mut Cx<'_>) -> Result<Flow, Fail> {
        let flow = if cx.now() >= self.deadline {
            self.step_late(cx)?
        } else {
            self.progress(cx)?
        };
        if matches!(flow, Flow::Pass) {
            self.in_time(cx.now())?;
        }
        Ok(flow)
    }

    /// `maxResponseMs`, judged on the whole run, redirects included.
    fn in_time(&self, now: Instant) -> Result<(), Fail> {
        let took = now.saturating_duration_since(self.started);
        match self.probe.max_response {
            Some(max) if took > max => Err(Fail::Other(format!(
                "the response took {} ms, more than maxResponseMs ({} ms){}",
                took.as_millis(),
                max.as_millis(),
                after_redirects(self.redirects, &self.hop().url)
            ))),
            _ => Ok(()),
        }
    }

    /// A call at or after the deadline: what the socket already holds is
    /// read first (the worker may come late to an answer in time), as exec
    /// looks at a child's exit before the clock.
    fn step_late(&mut self, cx: &mut Cx<'_>) -> Result<Flow, Fail> {
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
    fn progress(&mut self, cx: &mut Cx<'_>) -> Result<Flow, Fail> {
        self.reads = 0;
        loop {
            let next = match mem::replace(&mut self.state, State::Ended) {
                State::Ended => {
                    return Err(Fail::Other("the run was advanced after its end".into()));
                }
                State::Connecting(connect) => self.connecting(connect, cx)?,
                State::Sending { conn, written } => self.sending(conn, written)?,
                State::Head { conn, reader } => self.head(conn, reader, cx)?,
                State::Body { conn, search } => self.body(conn, search)?,
            };
            match next {
                Next::To(state) => self.state = state,
                Next::Stop(state, flow) => {
                    self.state = state;
                    return Ok(flow);
                }
            }
        }
    }

    fn connecting(&self, mut connect: Connect, cx: &mut Cx<'_>) -> Result<Next, Fail> {
        let until = connect.deadline();
        if cx.now() >= until {
            return Err(Fail::ConnectTimedOut(Phase::Connect(connect.stage())));
        }
        match connect.advance(cx, cx.now()) {
            Ok(None) => {
                let wake = connect.wake();
                Ok(Next::Stop(State::Connecting(connect), Flow::Wait(wake)))
            }
            Ok(Some(Connected::Open(stream, addr))) => {
                let conn = Conn { stream, addr };
                Ok(Next::To(State::Sending { conn, written: 0 }))
            }
            Ok(Some(Connected::Closed)) => unreachable!("an http connection is kept"),
            Err(e) => Err(Fail::Other(e.to_string())),
        }
    }

    fn sending(&self, mut conn: Conn, mut written: usize) -> Result<Next, Fail> {
        let request = &self.hop().bytes;
        let wait = Flow::Wait(self.deadline);
        while written < request.len() {
            match conn.stream.write(&request[written..]) {
                Ok(0) => {
                    let e = io::ErrorKind::WriteZero.into();
                    return Err(failed(&conn, Phase::Sending, &e));
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Next::Stop(State::Sending { conn, written }, wait));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(failed(&conn, Phase::Sending, &e)),
            }
        }
        match conn.stream.flush() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Ok(Next::Stop(State::Sending { conn, written }, wait));
            }
            Err(e) => return Err(failed(&conn, Phase::Sending, &e)),
        }
        let skip_interim = !self.probe.expect.admits_interim();
        Ok(Next::To(State::Head {
            conn,
            reader: HeadReader::new(skip_interim),
        }))
    }

    fn head(
        &mut self,
        mut conn: Conn,
        mut reader: HeadReader,
        cx: &mut Cx<'_>,
    ) -> Result<Next, Fail> {
        let head = loop {
            let n = match self.read(&mut conn, reader.spare(), Phase::Head)? {
                Ok(n) => n,
                Err(stop) => return Ok(Next::Stop(State::Head { conn, reader }, stop)),
            };
            if let Some(head) = reader.received(n)? {
                break head;
            }
        };
        let p = &*self.probe;
        if p.follow != Follow::Never && REDIRECTS.contains(&head.status) {
            return self.redirect(conn, &head, cx.now());
        }
        if !p.expect.admits(head.status) {
            return Err(Fail::Other(format!(
                "status {}, expected {}{}",
                head.status,
                p.expect,
                after_redirects(self.redirects, &self.hop().url)
            )));
        }
        if p.body.is_empty() {
            return Ok(pass());
        }
        let mut search = BodySearch::new(head)?;
        match search.scan(&p.body)? {
            Search::More => Ok(Next::To(State::Body { conn, search })),
            verdict => self.judged(verdict, &search),
        }
    }

    fn body(&mut self, mut conn: Conn, mut search: BodySearch) -> Result<Next, Fail> {
        let probe = Arc::clone(&self.probe);
        loop {
            let n = match self.read(&mut conn, search.spare()?, Phase::Body)? {
                Ok(n) => n,
                Err(stop) => return Ok(Next::Stop(State::Body { conn, search }, stop)),
            };
            match search.received(n, &probe.body)? {
                Search::More => {}
                verdict => return self.judged(verdict, &search),
            }
        }
    }

    /// Follows the redirect `head` is, on a new connection.
    fn redirect(&mut self, conn: Conn, head: &Head, now: Instant) -> Result<Next, Fail> {
        if self.redirects == MAX_REDIRECTS {
            return Err(Fail::Other(format!("too many redirects ({MAX_REDIRECTS})")));
        }
        let next = redirect_target(&self.hop().url, head.status, head.location())?;
        let p = &*self.probe;
        if p.follow == Follow::SameHost && !next.same_host(&p.first.url) {
            return Ok(pass());
        }
        if now >= self.deadline {
            return Err(Fail::TimedOutBeforeRedirect(next.to_string()));
        }
        drop(conn); // closing it stops the poll watching it
        self.left_origin |= !next.same_origin(&p.first.url);
        let headers = if self.left_origin {
            &p.foreign_headers
        } else {
            &p.headers
        };
        let request = self.hop().request.after_redirect(head.status);
        let hop = self.redirected.insert(Hop::new(next, headers, request));
        self.redirects += 1;
        let connect = p.connect(hop, now, self.deadline);
        Ok(Next::To(State::Connecting(connect)))
    }

    /// One of the call's reads into `buf`: the byte count, or how to stop.
    fn read(
        &mut self,
        conn: &mut Conn,
        buf: &mut [u8],
        phase: Phase,
    ) -> Result<Result<usize, Flow>, Fail> {
        if self.reads == READS_PER_CALL {
            return Ok(Err(Flow::Again));
        }
        self.reads += 1;
        loop {
            return match conn.stream.read(buf) {
                Ok(n) => Ok(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    Ok(Err(Flow::Wait(self.deadline)))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(failed(conn, phase, &e)),
            };
        }
    }

    /// The end of a body search: a pass, or the failure with the body's start.
    fn judged(&self, verdict: Search, search: &BodySearch) -> Result<Next, Fail> {
        let body = &self.probe.body;
        if let (Search::Json, Some(json)) = (verdict, &body.json) {
            return match json.check(search.body()) {
                Ok(()) => Ok(pass()),
                Err(why) => Err(Fail::Other(format!(
                    "{why}{}; {}",
                    after_redirects(self.redirects, &self.hop().url),
                    excerpt(search.start())
                ))),
            };
        }
        let (what, needle, within) = match (verdict, &body.contains, &body.absent) {
            (Search::NotFound(why), Some(needle), _) => (
                "did not contain",
                needle,
                match why {
                    NotFound::InBody => "",
                    NotFound::WithinCap => " in its first 64 KiB",
                },
            ),
            (Search::Found, _, Some(needle)) => ("contained", needle, ""),
            _ => return Ok(pass()),
        };
        Err(Fail::Other(format!(
            "body {what} {}{within}{}; {}",
            quote(needle.as_bytes()),
            after_redirects(self.redirects, &self.hop().url),
            excerpt(search.start())
        )))
    }
}

fn pass() -> Next {
    Next::Stop(State::Ended, Flow::Pass)
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

/// The start of a body for a reason, escaped onto one line.
fn excerpt(start: &[u8]) -> String {
    if start.is_empty() {
        return "the body was empty".into();
    }
    let text = String::from_utf8_lossy(start);
    format!(
        "the body began {}",
        crate::text::quoted(crate::text::head(&text, EXCERPT))
    )
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
    Connect(Stage),
    Sending,
    Head,
    Body,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Connect(stage) => stage.fmt(f),
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
    /// The deadline passed before a redirect to this URL was followed.
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
