//! A run of an `icmp` probe: look the host up (a name), open an ICMP
//! datagram socket, send the echo requests on their schedule, take the
//! replies as they come, and judge once every request is answered (or
//! could not be sent) or at the deadline, whichever is first.
//!
//! A reply counts when it comes from the address pinged and echoes one of
//! this run's sequence numbers and its payload; duplicates and anything
//! else are ignored. The round trip
//! is measured on the run's clock, from the send to the call that reads
//! the reply.

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mio::Interest;
use mio::unix::SourceFd;
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags, recvfrom, sendto};

use super::{Host, IcmpCheck, Probe, SPACING};
use crate::runner::RunnerOutcome;
use crate::runner::machine::{Cx, Machine, Run, Step};
use crate::sys::socket::{icmp_socket, ping_groups};
use crate::transport::Watch;
use crate::transport::resolve::Lookup;

const CANCELLED: &str = "icmp probe: cancelled";
/// The bytes after the echo header: a tag and the run's number.
const PAYLOAD: usize = 16;
/// An echo header: type, code, checksum, identifier, sequence number.
const HEADER: usize = 8;
/// When a full send buffer is tried again.
const SEND_RETRY: Duration = Duration::from_millis(10);
/// Most datagrams read per call, so a flood of replies (or of anything the
/// socket lets through) costs its worker short slices.
pub(super) const DATAGRAMS_PER_CALL: usize = 64;

/// Numbers the runs of the process, so their payloads differ.
static RUNS: AtomicU64 = AtomicU64::new(0);

impl Machine for IcmpCheck {
    fn start(&self, now: Instant) -> Box<dyn Run> {
        Box::new(self.run(now))
    }
}

impl IcmpCheck {
    /// A new run, started at `now`.
    pub(super) fn run(&self, now: Instant) -> IcmpRun {
        let p = &self.probe;
        let first_seq = p.next_seq.fetch_add(p.packets, Ordering::Relaxed);
        let mut payload = [0; PAYLOAD];
        payload[..8].copy_from_slice(b"probewhl");
        payload[8..].copy_from_slice(&RUNS.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        IcmpRun {
            probe: Arc::clone(p),
            deadline: now + Duration::from_secs(p.timeout_secs),
            first_seq,
            payload,
            state: State::Start,
        }
    }
}

/// One run of an `icmp` probe.
#[derive(Debug)]
pub(super) struct IcmpRun {
    probe: Arc<Probe>,
    /// `timeoutSecs` after the start: bounds the whole run.
    deadline: Instant,
    /// The sequence number of the first request.
    pub(super) first_seq: u16,
    pub(super) payload: [u8; PAYLOAD],
    pub(super) state: State,
}

#[derive(Debug)]
pub(super) enum State {
    Start,
    /// Waiting for the resolver; dropping the lookup abandons it.
    Resolving(Lookup),
    Pinging(Pings),
    /// Judged, or cancelled: the socket is closed.
    Ended,
}

/// The requests of a run over its socket.
#[derive(Debug)]
pub(super) struct Pings {
    pub(super) socket: OwnedFd,
    pub(super) to: IpAddr,
    /// When the first request was due; request i is due `i x SPACING` later.
    pub(super) begun: Instant,
    pub(super) echoes: Vec<Echo>,
    /// The first error a send failed with.
    pub(super) send_error: Option<io::Error>,
}

/// One echo request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Echo {
    Due,
    Sent(Instant),
    Answered(Duration),
    /// The send failed: lost.
    Unsent,
}

impl Run for IcmpRun {
    fn advance(&mut self, cx: &mut Cx<'_>) -> Step {
        match self.step(cx) {
            Ok(Some(until)) => Step::Wait(until),
            Ok(None) => Step::Done(RunnerOutcome::pass()),
            Err(why) => {
                self.state = State::Ended;
                Step::Done(RunnerOutcome::fail(format!("icmp probe: {why}")))
            }
        }
    }

    fn cancel(&mut self, _cx: &mut Cx<'_>) -> Step {
        // The socket closes here, not when the worker drops the run.
        self.state = State::Ended;
        Step::Done(RunnerOutcome::fail(CANCELLED))
    }
}

impl IcmpRun {
    /// The instant to be called again by, `None` once passed, or why it
    /// failed.
    fn step(&mut self, cx: &mut Cx<'_>) -> Result<Option<Instant>, String> {
        let now = cx.now();
        if let State::Start = self.state {
            self.state = match &self.probe.host {
                Host::Ip(ip) => {
                    let ip = self.pick(&ip.to_string(), &[SocketAddr::new(*ip, 0)])?;
                    State::Pinging(self.open(cx, ip, now)?)
                }
                Host::Name(name) => State::Resolving(cx.resolve(name, 0)),
            };
        }
        if let State::Resolving(lookup) = &self.state {
            let name = match &self.probe.host {
                Host::Name(name) => name,
                Host::Ip(_) => unreachable!("an address is not looked up"),
            };
            let addrs = match lookup.take() {
                None if now < self.deadline => return Ok(Some(self.deadline)),
                None => {
                    let secs = self.probe.timeout_secs;
                    return Err(format!("resolve {name}: timed out after {secs} s"));
                }
                Some(answer) => answer.map_err(|e| format!("resolve {name}: {e}"))?,
            };
            let ip = self.pick(name, &addrs)?;
            self.state = State::Pinging(self.open(cx, ip, now)?);
        }
        let State::Pinging(pings) = &mut self.state else {
            unreachable!("pinging once resolved")
        };
        let more = pings.receive(self.first_seq, &self.payload, now);
        let retry = pings.send_due(self.first_seq, &self.payload, now);
        if pings.settled() || now >= self.deadline {
            let verdict = pings.verdict(&self.probe);
            self.state = State::Ended;
            return verdict.map(|()| None);
        }
        if more {
            // Datagrams are left: called again after the worker's other runs.
            return Ok(Some(now));
        }
        let next = if retry {
            now + SEND_RETRY
        } else {
            pings.next_due().unwrap_or(self.deadline)
        };
        Ok(Some(next.min(self.deadline)))
    }

    /// The address to ping among those `name` has (an IP literal has
    /// itself): the first of the family `ipFamily` asks for.
    fn pick(&self, name: &str, addrs: &[SocketAddr]) -> Result<IpAddr, String> {
        let family = match self.probe.ipv6 {
            None => "",
            Some(false) => "IPv4 ",
            Some(true) => "IPv6 ",
        };
        addrs
            .iter()
            .map(SocketAddr::ip)
            .find(|ip| self.probe.ipv6.is_none_or(|v6| ip.is_ipv6() == v6))
            .ok_or_else(|| format!("resolve {name}: no {family}address"))
    }

    /// Opens and registers the socket for pinging `to`.
    fn open(&self, cx: &Cx<'_>, to: IpAddr, now: Instant) -> Result<Pings, String> {
        let socket = icmp_socket(to.is_ipv6()).map_err(|e| refused(&e))?;
        cx.register(&mut SourceFd(&socket.as_raw_fd()), Interest::READABLE)
            .map_err(|e| format!("watching the ICMP socket: {e}"))?;
        Ok(Pings {
            socket,
            to,
            begun: now,
            echoes: vec![Echo::Due; self.probe.packets.into()],
            send_error: None,
        })
    }
}

/// Why the socket could not be opened; for a refusal, the setting that
/// decides and what it holds.
fn refused(e: &io::Error) -> String {
    // EACCES is the kernel's answer for a group outside the range.
    if Errno::from_io_error(e) != Some(Errno::ACCESS) {
        return format!("opening an ICMP datagram socket: {e}");
    }
    let (gid, range) = ping_groups();
    let (setting, wider) = match range {
        Ok(range) => (
            format!("net.ipv4.ping_group_range is \"{range}\""),
            widened(&range, gid),
        ),
        Err(e) => (
            format!("net.ipv4.ping_group_range could not be read ({e})"),
            format!("{gid} {gid}"),
        ),
    };
    format!(
        "this process (gid {gid}) may not open ICMP datagram sockets: {setting}; it must include \
         a group of the process (sysctl -w net.ipv4.ping_group_range='{wider}')"
    )
}

/// The smallest range holding `range` (when it holds any group) and `gid`,
/// so the advice never takes the socket away from a group that has it.
pub(super) fn widened(range: &str, gid: u32) -> String {
    let mut ends = range.split(' ').map(str::parse::<u32>);
    match (ends.next(), ends.next()) {
        (Some(Ok(low)), Some(Ok(high))) if low <= high => {
            format!("{} {}", low.min(gid), high.max(gid))
        }
        _ => format!("{gid} {gid}"),
    }
}

impl Pings {
    /// Takes the replies that came, [`DATAGRAMS_PER_CALL`] at most; true
    /// when datagrams may be left.
    pub(super) fn receive(
        &mut self,
        first_seq: u16,
        payload: &[u8; PAYLOAD],
        now: Instant,
    ) -> bool {
        let reply_type = if self.to.is_ipv6() { 129 } else { 0 };
        let mut buf = [0u8; HEADER + PAYLOAD + 1];
        // A pending socket error is reported once, then reading goes on;
        // a bound keeps a broken socket from spinning the worker.
        let mut errors = 0;
        for _ in 0..DATAGRAMS_PER_CALL {
            let (n, from) = match recvfrom(&self.socket, &mut buf[..], RecvFlags::empty()) {
                Ok((_, n, from)) => (n, from.and_then(|a| SocketAddr::try_from(a).ok())),
                Err(Errno::WOULDBLOCK) => return false,
                Err(_) if errors < 8 => {
                    errors += 1;
                    continue;
                }
                Err(_) => return false,
            };
            if from.map(|a| a.ip()) != Some(self.to) {
                continue;
            }
            if n != HEADER + PAYLOAD || buf[0] != reply_type || buf[1] != 0 {
                continue;
            }
            if buf[HEADER..HEADER + PAYLOAD] != payload[..] {
                continue;
            }
            let seq = u16::from_be_bytes([buf[6], buf[7]]);
            let i = usize::from(seq.wrapping_sub(first_seq));
            if let Some(echo) = self.echoes.get_mut(i)
                && let Echo::Sent(at) = *echo
            {
                *echo = Echo::Answered(now.saturating_duration_since(at));
            }
        }
        true
    }

    /// Sends the requests due by `now`; true when the send buffer was full.
    fn send_due(&mut self, first_seq: u16, payload: &[u8; PAYLOAD], now: Instant) -> bool {
        let request_type = if self.to.is_ipv6() { 128 } else { 8 };
        let to = SocketAddr::new(self.to, 0);
        while let Some(i) = self.echoes.iter().position(|e| *e == Echo::Due) {
            if self.due(i) > now {
                return false;
            }
            let seq = first_seq.wrapping_add(i as u16).to_be_bytes();
            // The kernel fills in the identifier and the checksum.
            let mut request = [0u8; HEADER + PAYLOAD];
            request[0] = request_type;
            request[6..HEADER].copy_from_slice(&seq);
            request[HEADER..].copy_from_slice(payload);
            match sendto(&self.socket, &request, SendFlags::empty(), &to) {
                Ok(_) => self.echoes[i] = Echo::Sent(now),
                Err(Errno::INTR) => {}
                Err(Errno::WOULDBLOCK) => return true,
                Err(e) => {
                    self.echoes[i] = Echo::Unsent;
                    self.send_error.get_or_insert(e.into());
                }
            }
        }
        false
    }

    fn due(&self, i: usize) -> Instant {
        self.begun + SPACING * i as u32
    }

    /// When the next request is due, if one is left to send.
    fn next_due(&self) -> Option<Instant> {
        let i = self.echoes.iter().position(|e| *e == Echo::Due)?;
        Some(self.due(i))
    }

    /// Whether every request is answered or could not be sent.
    fn settled(&self) -> bool {
        self.echoes
            .iter()
            .all(|e| matches!(e, Echo::Answered(_) | Echo::Unsent))
    }

    /// The verdict on what came back by now.
    fn verdict(&self, p: &Probe) -> Result<(), String> {
        let rtts: Vec<Duration> = self
            .echoes
            .iter()
            .filter_map(|e| match e {
                Echo::Answered(rtt) => Some(*rtt),
                _ => None,
            })
            .collect();
        let n = self.echoes.len();
        let lost = n - rtts.len();
        let to = self.to;
        let summary = summary(&rtts);
        if lost * 100 > usize::from(p.max_loss_percent) * n {
            let percent = percent(lost, n);
            let mut why = format!(
                "{to}: {lost} of {n} packets lost ({percent}%, more than maxLossPercent {})",
                p.max_loss_percent
            );
            let unsent = self.echoes.iter().filter(|e| **e == Echo::Unsent).count();
            match &self.send_error {
                Some(e) if unsent == lost => {
                    let _ = write!(why, ": sending failed: {e}");
                }
                Some(e) => {
                    let _ = write!(
                        why,
                        " within {} s; sending {unsent} of them failed: {e}",
                        p.timeout_secs
                    );
                }
                None => {
                    let _ = write!(why, " within {} s", p.timeout_secs);
                }
            }
            if let Some((min, avg, max)) = summary {
                let _ = write!(why, "; rtt min/avg/max {min}/{avg}/{max} ms");
            }
            return Err(why);
        }
        let (Some(limit), Some((min, avg, max))) = (p.max_rtt, summary) else {
            return Ok(());
        };
        let total: Duration = rtts.iter().sum();
        if total > limit * rtts.len() as u32 {
            let replies = match rtts.len() {
                1 => "1 reply".to_owned(),
                n => format!("{n} replies"),
            };
            return Err(format!(
                "{to}: average rtt {avg} ms, more than maxRttMs {} (min/avg/max {min}/{avg}/{max} ms of {replies})",
                limit.as_millis()
            ));
        }
        Ok(())
    }
}

/// Min, average and max of the round trips, in milliseconds as ping
/// writes them (`0.045`).
fn summary(rtts: &[Duration]) -> Option<(String, String, String)> {
    let min = rtts.iter().min()?;
    let max = rtts.iter().max()?;
    let avg = rtts.iter().sum::<Duration>() / rtts.len() as u32;
    let ms = |d: &Duration| format!("{:.3}", d.as_secs_f64() * 1000.0);
    Some((ms(min), ms(&avg), ms(max)))
}

/// `part` of `whole` in percent, to a tenth, without a trailing `.0`:
/// `33.3`, `50`, `100`.
fn percent(part: usize, whole: usize) -> String {
    let tenths = (part * 1000 + whole / 2) / whole;
    match tenths % 10 {
        0 => (tenths / 10).to_string(),
        d => format!("{}.{d}", tenths / 10),
    }
}
