//! A run of a `tcp` probe: the connect (`transport::connect`: resolve,
//! dial, TLS handshake and the server's verdict on it), then, with `send`
//! or `expect`, the talk: write `send`, read until `expect` is found, 4 KiB
//! came, the stream ends or fails; all under `connectTimeoutSecs`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{EXPECT_WITHIN, Probe, TcpCheck};
use crate::runner::RunnerOutcome;
use crate::runner::machine::{Cx, Machine, Run, Step};
use crate::text::quoted;
use crate::transport::connect::{Connect, Connected, Then};
use crate::transport::stream::Stream;

const CANCELLED: &str = "tcp probe: cancelled";
/// Bytes of what was received a failure reason shows.
const SHOWN: usize = 200;

impl Machine for TcpCheck {
    fn start(&self, now: Instant) -> Box<dyn Run> {
        let p = &self.probe;
        let deadline = now + Duration::from_secs(p.timeout_secs);
        let connect = Connect::new(p.target.clone(), p.then(), now, deadline).choosing(p.choice);
        Box::new(TcpRun {
            probe: Arc::clone(p),
            deadline,
            state: State::Connecting(connect),
        })
    }
}

impl Probe {
    fn then(&self) -> Then {
        let talk = self.send.is_some() || self.expect.is_some();
        #[cfg(feature = "tls")]
        if let Some(setup) = &self.tls {
            let setup = setup.clone();
            return Then::Tls { setup, keep: talk };
        }
        if talk { Then::Plain } else { Then::Close }
    }
}

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
    Connecting(Connect),
    Talking(Talk),
}

/// `send` and `expect` over an open connection.
#[derive(Debug)]
struct Talk {
    stream: Stream,
    addr: SocketAddr,
    /// Bytes of `send` written.
    written: usize,
    /// What came back, at most [`EXPECT_WITHIN`] bytes.
    received: Vec<u8>,
}

impl Run for TcpRun {
    fn advance(&mut self, cx: &mut Cx<'_>) -> Step {
        match self.step(cx) {
            Ok(Some(until)) => Step::Wait(until),
            Ok(None) => Step::Done(RunnerOutcome::pass()),
            Err(why) => Step::Done(RunnerOutcome::fail(format!("tcp probe: {why}"))),
        }
    }

    fn cancel(&mut self, _cx: &mut Cx<'_>) -> Step {
        // Dropping the run closes the socket and abandons the lookup.
        Step::Done(RunnerOutcome::fail(CANCELLED))
    }
}

impl TcpRun {
    /// The instant to be called again by, `None` once passed, or why it
    /// failed.
    fn step(&mut self, cx: &mut Cx<'_>) -> Result<Option<Instant>, String> {
        if let State::Connecting(connect) = &mut self.state {
            match connect.advance(cx, cx.now()).map_err(|e| e.to_string())? {
                None => return Ok(Some(connect.wake())),
                // Connected (the connection is closed by now): all it asks.
                Some(Connected::Closed) => return Ok(None),
                Some(Connected::Open(stream, addr)) => {
                    let received = Vec::new();
                    let talk = Talk {
                        stream,
                        addr,
                        written: 0,
                        received,
                    };
                    self.state = State::Talking(talk);
                }
            }
        }
        let State::Talking(talk) = &mut self.state else {
            unreachable!("connected above")
        };
        // What the socket holds is taken first: a late call may still pass.
        let passed = talk
            .advance(&self.probe, cx)
            .map_err(|e| format!("{}: {e}", talk.addr))?;
        if passed {
            Ok(None)
        } else if cx.now() < self.deadline {
            Ok(Some(self.deadline))
        } else {
            Err(format!("{}: {}", talk.addr, talk.timed_out(&self.probe)))
        }
    }
}

impl Talk {
    /// Writes and reads what can be without waiting: whether it passed.
    fn advance(&mut self, p: &Probe, cx: &mut Cx<'_>) -> Result<bool, String> {
        let send = p.send.as_deref().unwrap_or_default();
        while self.written < send.len() {
            match self.stream.write(&send[self.written..]) {
                Ok(0) => return Err(sending(&io::ErrorKind::WriteZero.into())),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(sending(&e)),
            }
        }
        match self.stream.flush() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(sending(&e)),
        }
        let Some(expect) = p.expect.as_deref() else {
            return Ok(true);
        };
        loop {
            let room = EXPECT_WITHIN - self.received.len();
            let buf = &mut cx.scratch(EXPECT_WITHIN)[..room];
            let n = match self.stream.read(buf) {
                Ok(0) => return Err(self.missed(expect, "before the connection closed")),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.missed(expect, &format!("before reading failed ({e})"))),
            };
            // Only the new bytes and the overlap before them are searched.
            let from = self.received.len().saturating_sub(expect.len() - 1);
            self.received.extend_from_slice(&buf[..n]);
            if self.received[from..]
                .windows(expect.len())
                .any(|w| w == expect)
            {
                return Ok(true);
            }
            if self.received.len() == EXPECT_WITHIN {
                return Err(self.missed(expect, "in the first 4096 bytes received"));
            }
        }
    }

    /// Why the deadline came first: `send` was not all written, or
    /// `expect` was not seen.
    fn timed_out(&self, p: &Probe) -> String {
        let secs = p.timeout_secs;
        let sent = self.written == p.send.as_deref().map_or(0, <[u8]>::len);
        match p.expect.as_deref() {
            Some(expect) if sent => self.missed(expect, &format!("within {secs} s")),
            _ => format!("timed out after {secs} s while sending"),
        }
    }

    /// `expected "<expect>" <why>; received "<the first bytes>"`.
    fn missed(&self, expect: &[u8], why: &str) -> String {
        let received = match self.received.len() {
            0 => "nothing".to_owned(),
            n if n <= SHOWN => shown(&self.received),
            n => format!(
                "{} (the first {SHOWN} of {n} bytes)",
                shown(&self.received[..SHOWN])
            ),
        };
        format!("expected {} {why}; received {received}", shown(expect))
    }
}

fn sending(e: &io::Error) -> String {
    format!("sending failed: {e}")
}

/// Bytes as a reason shows them: quoted on one line, escaped.
fn shown(bytes: &[u8]) -> String {
    quoted(&String::from_utf8_lossy(bytes))
}
