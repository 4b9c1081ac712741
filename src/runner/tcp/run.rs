//! A run of a `tcp` probe: the connect (`transport::connect`: resolve,
//! dial, TLS handshake) under `connectTimeoutSecs`; then, when a TLS 1.3
//! server asked for a client certificate, a short wait for its verdict.

use std::time::{Duration, Instant};

#[cfg(feature = "tls")]
use mio::net::TcpStream;

use super::{Probe, TcpCheck};
use crate::runner::RunnerOutcome;
use crate::runner::machine::{Cx, Machine, Run, Step};
use crate::transport::connect::{Connect, Connected, Then};
#[cfg(feature = "tls")]
use crate::transport::{connect::Connection, stream::Stream, tls::TlsSession};

const PREFIX: &str = "tcp probe: ";
pub(super) const CANCELLED: &str = "tcp probe: cancelled";

/// The shortest wait for a server's verdict on the client certificate.
#[cfg(feature = "tls")]
const VERDICT_WAIT_MIN: Duration = Duration::from_millis(250);

impl Machine for TcpCheck {
    fn start(&self, now: Instant) -> Box<dyn Run> {
        let p = &self.probe;
        let deadline = now + Duration::from_secs(p.timeout_secs);
        Box::new(TcpRun {
            connect: Connect::new(p.target.clone(), p.then(), now, deadline),
            #[cfg(feature = "tls")]
            verdict: None,
        })
    }
}

impl Probe {
    /// Without TLS the connection is closed as soon as it is made.
    fn then(&self) -> Then {
        #[cfg(feature = "tls")]
        if let Some(setup) = &self.tls {
            return Then::Tls(setup.clone());
        }
        Then::Close
    }
}

/// One run of a `tcp` probe.
#[derive(Debug)]
struct TcpRun {
    /// Its deadline is the run's: `connectTimeoutSecs` bounds it all.
    connect: Connect,
    /// Connected: waiting for the server's verdict on the client
    /// certificate it asked for and did not get.
    #[cfg(feature = "tls")]
    verdict: Option<Verdict>,
}

/// The TLS 1.3 handshake is done but the server asked for a client
/// certificate: its verdict on the one we did not send comes after.
#[cfg(feature = "tls")]
#[derive(Debug)]
struct Verdict {
    tcp: TcpStream,
    session: Box<TlsSession>,
    addr: std::net::SocketAddr,
    until: Instant,
}

impl Run for TcpRun {
    fn advance(&mut self, cx: &mut Cx<'_>) -> Step {
        match self.step(cx) {
            Ok(false) => Step::Wait(self.until()),
            Ok(true) => Step::Done(RunnerOutcome::pass()),
            Err(reason) => Step::Done(RunnerOutcome::fail(format!("{PREFIX}{reason}"))),
        }
    }

    fn cancel(&mut self, _cx: &mut Cx<'_>) -> Step {
        // Dropping the run closes the socket and abandons the lookup.
        Step::Done(RunnerOutcome::fail(CANCELLED))
    }
}

impl TcpRun {
    /// `Ok(true)`: passed; `Ok(false)`: wait; `Err`: the reason.
    fn step(&mut self, cx: &mut Cx<'_>) -> Result<bool, String> {
        let now = cx.now();
        #[cfg(feature = "tls")]
        if let Some(verdict) = &mut self.verdict {
            return verdict.judge(now);
        }
        match self.connect.advance(cx, now).map_err(|e| e.to_string())? {
            None => Ok(false),
            // Connected: that is all a plain tcp probe asks.
            Some(Connected::Closed) => Ok(true),
            #[cfg(feature = "tls")]
            Some(Connected::Open(conn)) => self.handshake_done(conn, now),
            #[cfg(not(feature = "tls"))]
            Some(Connected::Open(_)) => Ok(true),
        }
    }

    /// When to be called at the latest.
    fn until(&self) -> Instant {
        #[cfg(feature = "tls")]
        if let Some(verdict) = &self.verdict {
            return verdict.until;
        }
        self.connect.deadline()
    }

    /// The TLS handshake is complete: passed, unless the server may still
    /// refuse this client.
    #[cfg(feature = "tls")]
    fn handshake_done(&mut self, conn: Connection, now: Instant) -> Result<bool, String> {
        let Stream::Tls(tcp, session) = conn.stream else {
            unreachable!("a tcp probe keeps a connection only for TLS")
        };
        // Established: the connection closes when the run drops.
        if !session.verdict_pending() {
            return Ok(true);
        }
        // The server refuses a client without a certificate one round
        // trip after our last flight. The handshake took at least a round
        // trip and the server's work, so twice its time (at least
        // VERDICT_WAIT_MIN, for jitter on fast links) covers a server that
        // says no; one that says nothing by then accepted us. A server
        // that carries on (a session ticket, as most send) ends the wait
        // at once, and one that did not ask never waits.
        let wait = (2 * conn.handshake).max(VERDICT_WAIT_MIN);
        let verdict = self.verdict.insert(Verdict {
            tcp,
            session,
            addr: conn.addr,
            until: (now + wait).min(self.connect.deadline()),
        });
        verdict.judge(now)
    }
}

#[cfg(feature = "tls")]
impl Verdict {
    /// The wait ends by the run's deadline: no timeout here.
    fn judge(&mut self, now: Instant) -> Result<bool, String> {
        match self.session.verdict(&mut self.tcp) {
            Ok(true) => Ok(true),
            // Quiet until the wait's end: no objection came.
            Ok(false) => Ok(now >= self.until),
            Err(fail) => Err(format!("{}: {fail}", self.addr)),
        }
    }
}
