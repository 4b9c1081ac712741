//! A run of a `dns` probe:
//!
//! ```text
//!  Start ──udp──> Udp ──reply──────────────────────────> judged
//!    │             └──truncated──┐
//!    └──tcp: true──────────────> Tcp: Connecting ──> Talking ──reply──> judged
//! ```
//!
//! Over UDP the socket is connected to the server, so the kernel drops
//! datagrams from anyone else; a datagram that is not the answer to our
//! query (another ID, not a response, another question) is ignored and
//! the run keeps waiting. The query goes out again 1 s after the first
//! send, then after 2 s, 4 s, ... (a third of `timeoutSecs` first when
//! that is shorter), never at or after the deadline.

use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Interest;
use mio::net::UdpSocket;

use super::wire::{self, Reply};
use super::{DnsCheck, Probe};
use crate::runner::RunnerOutcome;
use crate::runner::machine::{Cx, Machine, Run, Step};
use crate::text::quoted;
use crate::transport::connect::{Connect, Connected, Target, Then};
use crate::transport::stream::Stream;

const CANCELLED: &str = "dns probe: cancelled";
/// The wait before the first retransmit, at most.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The largest DNS message (TCP's length prefix bounds it; a UDP datagram
/// can be no larger).
const MAX_MESSAGE: usize = 65_535;
/// Most datagrams read per call: a server that floods the socket with
/// datagrams that are not the answer costs its worker short slices.
pub(super) const DATAGRAMS_PER_CALL: usize = 64;
/// Bytes of a reason given to the records an answer section held.
const HELD_SHOWN: usize = 320;

impl Machine for DnsCheck {
    fn start(&self, now: Instant) -> Box<dyn Run> {
        let deadline = now + Duration::from_secs(self.probe.timeout_secs);
        Box::new(DnsRun {
            probe: Arc::clone(&self.probe),
            started: now,
            deadline,
            id: 0,
            state: State::Start,
        })
    }
}

/// One run of a `dns` probe.
#[derive(Debug)]
struct DnsRun {
    probe: Arc<Probe>,
    started: Instant,
    /// `timeoutSecs` after the start: bounds the whole run.
    deadline: Instant,
    /// The query's ID, random (chosen at the first call).
    id: u16,
    state: State,
}

#[derive(Debug)]
enum State {
    Start,
    Udp(Udp),
    /// Boxed: the connect is large, and most runs never get here.
    Tcp(Box<Tcp>),
    Ended,
}

/// The query over UDP.
#[derive(Debug)]
struct Udp {
    socket: UdpSocket,
    /// The query, sent again as it is (same ID).
    query: Vec<u8>,
    /// Sends made (the first included).
    tries: u32,
    /// When the next send is due.
    next_send: Instant,
    /// The wait after the next send.
    interval: Duration,
}

/// The query over TCP.
#[derive(Debug)]
struct Tcp {
    /// Whether a truncated UDP answer led here.
    after_truncation: bool,
    stage: TcpStage,
}

#[derive(Debug)]
enum TcpStage {
    Connecting(Connect),
    Talking {
        stream: Stream,
        /// The length-prefixed query and how much of it is written.
        out: Vec<u8>,
        written: usize,
        /// The reply so far, its length prefix included.
        received: Vec<u8>,
    },
}

/// What a call came to: wait until an instant, or the outcome (`Err` the
/// reason after `dns probe: `).
type Progress = Result<Option<Instant>, String>;

impl Run for DnsRun {
    fn advance(&mut self, cx: &mut Cx<'_>) -> Step {
        let progress = self.step(cx);
        match progress {
            Ok(Some(until)) => Step::Wait(until),
            Ok(None) => {
                self.release(cx);
                Step::Done(RunnerOutcome::pass())
            }
            Err(why) => {
                self.release(cx);
                Step::Done(RunnerOutcome::fail(format!("dns probe: {why}")))
            }
        }
    }

    fn cancel(&mut self, cx: &mut Cx<'_>) -> Step {
        self.release(cx);
        Step::Done(RunnerOutcome::fail(CANCELLED))
    }
}

impl DnsRun {
    /// Deregisters and closes whatever the run holds, at once.
    fn release(&mut self, cx: &mut Cx<'_>) {
        match std::mem::replace(&mut self.state, State::Ended) {
            State::Udp(mut udp) => {
                let _ = cx.deregister(&mut udp.socket);
            }
            // The connect closes what it dials as it drops.
            State::Tcp(tcp) => {
                if let TcpStage::Talking {
                    stream: Stream::Plain(mut s),
                    ..
                } = tcp.stage
                {
                    let _ = cx.deregister(&mut s);
                }
            }
            _ => {}
        }
    }

    fn step(&mut self, cx: &mut Cx<'_>) -> Progress {
        let p = Arc::clone(&self.probe);
        let server = p.server;
        if let State::Start = self.state {
            self.id = random_id();
            if p.tcp {
                self.state = State::Tcp(Box::new(self.tcp(false)));
            } else {
                let udp = self.open_udp(cx).map_err(|e| format!("{server}: {e}"))?;
                self.state = State::Udp(udp);
            }
        }
        if let State::Udp(udp) = &mut self.state {
            match udp.advance(cx, &p, self.id, self.deadline)? {
                UdpNext::Wait(until) => return Ok(Some(until)),
                UdpNext::Reply(reply) => return judge(&p, &reply),
                UdpNext::Truncated => {
                    self.release(cx);
                    self.id = random_id();
                    self.state = State::Tcp(Box::new(self.tcp(true)));
                }
            }
        }
        let State::Tcp(tcp) = &mut self.state else {
            unreachable!("a run that ended is not called again")
        };
        let reply = tcp.advance(cx, &p, self.id, self.deadline)?;
        match reply {
            None => Ok(Some(tcp.wake(self.deadline))),
            Some(reply) => judge(&p, &reply),
        }
    }

    /// A socket connected to the server, the query sent once.
    fn open_udp(&self, cx: &mut Cx<'_>) -> io::Result<Udp> {
        let p = &self.probe;
        let local: SocketAddr = if p.server.is_ipv6() {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let mut socket = UdpSocket::bind(local)?;
        socket.connect(p.server)?;
        cx.register(&mut socket, Interest::READABLE)?;
        let now = cx.now();
        let interval = FIRST_RETRY.min((self.deadline - self.started) / 3);
        let mut udp = Udp {
            socket,
            query: self.query(),
            tries: 0,
            next_send: now,
            interval,
        };
        udp.send(now, self.deadline)?;
        Ok(udp)
    }

    fn tcp(&self, after_truncation: bool) -> Tcp {
        let target = Target::Addr(self.probe.server);
        let connect = Connect::new(target, Then::Plain, self.started, self.deadline);
        Tcp {
            after_truncation,
            stage: TcpStage::Connecting(connect),
        }
    }

    fn query(&self) -> Vec<u8> {
        wire::query(self.id, &self.probe.name, self.probe.rtype.code())
    }
}

/// What the UDP side came to.
enum UdpNext {
    Wait(Instant),
    Reply(Reply),
    Truncated,
}

impl Udp {
    /// Sends the query if it is due, and schedules the next send.
    fn send(&mut self, now: Instant, deadline: Instant) -> io::Result<()> {
        if now < self.next_send || self.next_send >= deadline {
            return Ok(());
        }
        match self.socket.send(&self.query) {
            Ok(_) => {}
            // The socket's buffer is full: this send is lost, as a
            // datagram on the way may be; the next one is due all the same.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        self.tries += 1;
        // Anchored to the schedule, not to the late call.
        self.next_send += self.interval;
        self.interval *= 2;
        Ok(())
    }

    fn advance(
        &mut self,
        cx: &mut Cx<'_>,
        p: &Probe,
        id: u16,
        deadline: Instant,
    ) -> Result<UdpNext, String> {
        let server = p.server;
        let mut drained = false;
        for _ in 0..DATAGRAMS_PER_CALL {
            let buf = cx.scratch(MAX_MESSAGE);
            let n = match self.socket.recv(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An ICMP error for an earlier send: nothing listens there.
                Err(e) => return Err(format!("{server} over UDP: {e}")),
            };
            let msg = &buf[..n];
            if wire::id_of(msg) != Some(id) {
                continue;
            }
            let reply = match wire::parse(msg) {
                Ok(reply) => reply,
                // Our ID, but unreadable: from the server, which the
                // connected socket guarantees, so it counts.
                Err(why) => return Err(format!("{server}: the reply {why}")),
            };
            if !answers(&reply, p) {
                continue;
            }
            if reply.truncated() {
                return Ok(UdpNext::Truncated);
            }
            return Ok(UdpNext::Reply(reply));
        }
        let now = cx.now();
        if now >= deadline {
            let tries = match self.tries {
                1 => "1 try".to_owned(),
                n => format!("{n} tries"),
            };
            return Err(format!(
                "no answer from {server} within {} s ({tries} over UDP)",
                p.timeout_secs
            ));
        }
        self.send(now, deadline)
            .map_err(|e| format!("{server} over UDP: {e}"))?;
        let until = if !drained {
            // Datagrams are left: called again after the worker's other runs.
            now
        } else if self.next_send < deadline {
            self.next_send
        } else {
            deadline
        };
        Ok(UdpNext::Wait(until))
    }
}

impl Tcp {
    /// When to be called again at the latest.
    fn wake(&self, deadline: Instant) -> Instant {
        match &self.stage {
            TcpStage::Connecting(connect) => connect.wake(),
            TcpStage::Talking { .. } => deadline,
        }
    }

    /// Connects, writes the query and reads the reply as far as it can
    /// without waiting: the reply once whole.
    fn advance(
        &mut self,
        cx: &mut Cx<'_>,
        p: &Probe,
        id: u16,
        deadline: Instant,
    ) -> Result<Option<Reply>, String> {
        let server = p.server;
        let now = cx.now();
        if let TcpStage::Connecting(connect) = &mut self.stage {
            match connect.advance(cx, now).map_err(|e| e.to_string())? {
                None => return Ok(None),
                Some(Connected::Closed) => unreachable!("asked to keep it open"),
                Some(Connected::Open(stream, _)) => {
                    let query = wire::query(id, &p.name, p.rtype.code());
                    let len = u16::try_from(query.len()).expect("a query is short");
                    let mut out = len.to_be_bytes().to_vec();
                    out.extend_from_slice(&query);
                    self.stage = TcpStage::Talking {
                        stream,
                        out,
                        written: 0,
                        received: Vec::new(),
                    };
                }
            }
        }
        let TcpStage::Talking {
            stream,
            out,
            written,
            received,
        } = &mut self.stage
        else {
            unreachable!("connected above")
        };
        let over = if self.after_truncation {
            "over TCP, after a truncated answer over UDP"
        } else {
            "over TCP"
        };
        while *written < out.len() {
            match stream.write(&out[*written..]) {
                Ok(0) => return Err(format!("{server}: sending the query failed {over}")),
                Ok(n) => *written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return late(now, deadline, p, over).map(|()| None);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("{server}: sending the query failed {over}: {e}")),
            }
        }
        loop {
            // The length prefix, then exactly that many bytes.
            let want = match received.get(..2) {
                Some(&[hi, lo]) => 2 + usize::from(u16::from_be_bytes([hi, lo])),
                _ => 2,
            };
            if received.len() == want && want > 2 {
                break;
            }
            let buf = &mut cx.scratch(MAX_MESSAGE + 2)[..want - received.len()];
            match stream.read(buf) {
                Ok(0) => {
                    return Err(format!(
                        "{server}: the connection closed before a whole reply came ({} bytes) {over}",
                        received.len()
                    ));
                }
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return late(now, deadline, p, over).map(|()| None);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("{server}: reading the reply failed {over}: {e}")),
            }
        }
        let reply =
            wire::parse(&received[2..]).map_err(|why| format!("{server}: the reply {why}"))?;
        // Over our own connection a reply to another query is the
        // server's error, not a stray datagram.
        if reply.id != id || !answers(&reply, p) {
            return Err(format!(
                "{server}: the reply {over} does not answer the query (another ID or question)"
            ));
        }
        Ok(Some(reply))
    }
}

/// `Ok` while `now` is before the deadline; the timeout's reason after.
fn late(now: Instant, deadline: Instant, p: &Probe, over: &str) -> Result<(), String> {
    if now < deadline {
        return Ok(());
    }
    Err(format!(
        "no answer from {} within {} s ({over})",
        p.server, p.timeout_secs
    ))
}

/// Whether `reply` is a response to our question.
fn answers(reply: &Reply, p: &Probe) -> bool {
    let echoed = |q: &wire::Question| {
        q.name.same(&p.name) && q.qtype == p.rtype.code() && q.qclass == wire::CLASS_IN
    };
    reply.is_response() && reply.questions == 1 && reply.question.as_ref().is_some_and(echoed)
}

/// The verdict on the reply: `Ok(None)` passes.
fn judge(p: &Probe, reply: &Reply) -> Progress {
    let server = p.server;
    if reply.rcode() != p.expect_rcode {
        return Err(format!(
            "{server}: rcode {}, expected {}",
            wire::rcode_name(reply.rcode()),
            wire::rcode_name(p.expect_rcode)
        ));
    }
    let Some(expect) = &p.expect_answer else {
        // NOERROR with nothing in it (NODATA) is a name without the record
        // the probe asks for: a failure, as check_dig judges it.
        if p.expect_rcode == wire::NOERROR && reply.answers.is_empty() {
            return Err(format!(
                "{server}: the answer section is empty: no {} record for {}",
                p.rtype.name(),
                p.name
            ));
        }
        return Ok(None);
    };
    if reply
        .answers
        .iter()
        .any(|r| r.text.contains(expect.as_str()))
    {
        return Ok(None);
    }
    let wanted = quoted(expect);
    if reply.answers.is_empty() {
        return Err(format!(
            "{server}: answer section has no record containing {wanted}; it was empty"
        ));
    }
    Err(format!(
        "{server}: answer section has no record containing {wanted}; it held: {}",
        held(reply)
    ))
}

/// The answer section's records, `, `-separated, cut to fit a reason.
fn held(reply: &Reply) -> String {
    let mut out = String::new();
    for (i, record) in reply.answers.iter().enumerate() {
        let mut text = record.text.clone();
        if i == 0 && text.len() > HELD_SHOWN {
            text = format!("{}...", crate::text::head(&text, HELD_SHOWN));
        }
        if i > 0 && out.len() + text.len() + 2 > HELD_SHOWN {
            let left = reply.answers.len() - i;
            out.push_str(&format!(" and {left} more"));
            break;
        }
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&text);
    }
    out
}

/// A query ID no one off the path can guess: std's `RandomState` keys
/// come from the OS's random source (one read per thread), and SipHash of
/// a fresh key is unpredictable without it.
fn random_id() -> u16 {
    let hash = RandomState::new().hash_one(0u8);
    u16::try_from(hash & 0xffff).expect("16 bits")
}
