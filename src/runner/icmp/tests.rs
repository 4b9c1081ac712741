//! The `icmp` kind in virtual time over real ICMP datagram sockets.
//!
//! The host's own namespace may forbid those sockets
//! (`net.ipv4.ping_group_range`): that refusal is tested there. Every
//! reply is tested in a network namespace a test thread makes for itself
//! (root only; skipped with a message otherwise), whose loopback answers
//! (or, when told to, ignores) echo requests; nothing else is contacted.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::run::{DATAGRAMS_PER_CALL, Echo, IcmpRun, Pings, State};
use super::*;
use crate::clock;
use crate::runner::machine::Step;
use crate::runner::machine::testing::{self, Harness};
use crate::runner::{RunnerOutcome, Status};
use crate::sys::netns::{answer_echo_requests, enter_private_loopback};
use crate::sys::socket::{icmp_socket, ping_groups};

const MS: Duration = Duration::from_millis(1);
const WAIT: Duration = Duration::from_secs(5);

fn decl(fields: Value) -> Declaration {
    let mut v = json!({"kind": "icmp", "mode": "enforce"});
    v.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    Declaration::from_value("ping", v)
}

fn check(fields: Value) -> IcmpCheck {
    IcmpCheck::from_decl(&decl(fields)).expect("valid declaration")
}

fn refusal(fields: Value) -> String {
    match testing::machine(&decl(fields)) {
        Ok(_) => panic!("prepared an invalid declaration"),
        Err(e) => e,
    }
}

fn done(step: Step) -> RunnerOutcome {
    match step {
        Step::Done(outcome) => outcome,
        Step::Wait(at) => panic!("still waiting (until {at:?})"),
    }
}

fn failed(step: Step) -> String {
    let outcome = done(step);
    assert_eq!(outcome.status(), Status::Fail, "{outcome:?}");
    outcome.reason().unwrap().to_owned()
}

fn passed(step: Step) {
    let outcome = done(step);
    assert_eq!(outcome.status(), Status::Pass, "{outcome:?}");
}

/// Runs `test` on a thread in a network namespace of its own (loopback up,
/// ping sockets allowed); says so and returns when one cannot be made.
fn in_private_loopback(test: impl FnOnce() + Send + 'static) {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("a test").to_owned();
    let outcome = std::thread::spawn(move || {
        if let Err(why) = enter_private_loopback() {
            skipped(&name, &format!("no network namespace of its own: {why}"));
            return;
        }
        test();
    })
    .join();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Says that `test` skipped its check, and why: on stderr itself, which
/// libtest does not capture.
fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(io::stderr(), "skipped: {test}: {why}");
}

/// Waits (real time) for the run's socket or a wake; fails the test when
/// nothing came.
fn io(h: &mut Harness) {
    assert!(h.wait_io(WAIT), "nothing came within {WAIT:?}");
}

#[test]
fn the_fields_are_checked_at_prepare() {
    let bad =
        |field: &str, problem: &str| format!("invalid declaration: field `{field}`: {problem}");
    assert_eq!(refusal(json!({})), bad("host", "required field is missing"));
    for host in ["", "a b", "127.0.0.1:22", "[127.0.0.1]", "[::1", "x/y"] {
        assert_eq!(
            refusal(json!({ "host": host })),
            bad(
                "host",
                &format!("expected a host name or an IP address, got {host:?}")
            )
        );
    }
    for (field, value) in [
        ("packets", json!(0)),
        ("packets", json!(21)),
        ("packets", json!("3")),
        ("maxLossPercent", json!(100)),
        ("maxLossPercent", json!(-1)),
        ("maxRttMs", json!(0)),
        ("maxRttMs", json!(86_400_001)),
        ("ipFamily", json!("ipv6")),
        ("ipFamily", json!(6)),
        ("timeoutSecs", json!(0)),
    ] {
        let reason = refusal(json!({"host": "127.0.0.1", field: value}));
        assert!(
            reason.starts_with(&format!("invalid declaration: field `{field}`: ")),
            "{field} = {value}: {reason}"
        );
    }
    // Every request leaves before the deadline.
    assert_eq!(
        refusal(json!({"host": "127.0.0.1", "packets": 11, "timeoutSecs": 1})),
        bad(
            "packets",
            "11 requests 100 ms apart take 1000 ms, not less than timeoutSecs (1 s)"
        )
    );
    for fine in [
        json!({"host": "127.0.0.1", "packets": 10, "timeoutSecs": 1}),
        json!({"host": "::1", "packets": 20, "maxLossPercent": 99, "maxRttMs": 1}),
        json!({"host": "[::1]", "ipFamily": "6"}),
        json!({"host": "db.internal", "ipFamily": "any", "maxRttMs": 86_400_000}),
    ] {
        assert!(testing::machine(&decl(fine.clone())).is_ok(), "{fine}");
    }
}

#[test]
fn a_refused_socket_names_the_sysctl_and_the_group() {
    if icmp_socket(false).is_ok() {
        eprintln!("skipped: this process may open ICMP datagram sockets here, so none is refused");
        return;
    }
    let (gid, range) = ping_groups();
    let range = range.unwrap();
    let advice = super::run::widened(&range, gid);
    let mut h = Harness::new();
    for host in ["127.0.0.1", "::1"] {
        let m = testing::machine(&decl(json!({ "host": host }))).unwrap();
        let (_run, step) = h.start(&*m, clock::mono_now());
        assert_eq!(
            failed(step),
            format!(
                "icmp probe: this process (gid {gid}) may not open ICMP datagram sockets: \
                 net.ipv4.ping_group_range is \"{range}\"; it must include a group of the \
                 process (sysctl -w net.ipv4.ping_group_range='{advice}')"
            )
        );
    }
}

#[test]
fn the_advice_widens_the_range_and_never_narrows_it() {
    use super::run::widened;
    assert_eq!(widened("1 0", 0), "0 0");
    assert_eq!(widened("100 200", 0), "0 200");
    assert_eq!(widened("100 200", 1000), "100 1000");
    assert_eq!(widened("0 2147483647", 5), "0 2147483647");
    assert_eq!(widened("garbage", 7), "7 7");
}

/// blackbox_exporter's `TestProbeICMPDurationRTTPresentOnSuccess`, on both
/// families: loopback passes, with its round trips measured (they decide
/// `maxRttMs`).
#[test]
fn loopback_answers_each_request_on_its_schedule() {
    in_private_loopback(|| {
        for host in ["127.0.0.1", "::1"] {
            // Replies read 100, 100 and 50 ms after their requests.
            let ping = |max_rtt_ms: u64| {
                let m = check(json!({"host": host, "maxRttMs": max_rtt_ms}));
                let mut h = Harness::new();
                let t0 = clock::mono_now();
                let (mut run, step) = h.start(&m, t0);
                assert_eq!(step, Step::Wait(t0 + 100 * MS), "the next request");
                io(&mut h);
                assert_eq!(
                    h.advance(&mut *run, t0 + 100 * MS),
                    Step::Wait(t0 + 200 * MS)
                );
                io(&mut h);
                let deadline = t0 + Duration::from_secs(10);
                let step = h.advance(&mut *run, t0 + 200 * MS);
                assert_eq!(step, Step::Wait(deadline), "all sent: the deadline");
                io(&mut h);
                h.advance(&mut *run, t0 + 250 * MS)
            };
            passed(ping(84));
            assert_eq!(
                failed(ping(83)),
                format!(
                    "icmp probe: {host}: average rtt 83.333 ms, more than maxRttMs 83 \
                     (min/avg/max 50.000/83.333/100.000 ms of 3 replies)"
                )
            );
        }
    });
}

#[test]
fn silence_is_loss_at_the_deadline() {
    in_private_loopback(|| {
        answer_echo_requests(false).unwrap();
        for host in ["127.0.0.1", "::1"] {
            let m = check(json!({"host": host, "timeoutSecs": 1}));
            let mut h = Harness::new();
            let t0 = clock::mono_now();
            let (mut run, step) = h.start(&m, t0);
            assert_eq!(step, Step::Wait(t0 + 100 * MS));
            assert_eq!(
                h.advance(&mut *run, t0 + 100 * MS),
                Step::Wait(t0 + 200 * MS)
            );
            let deadline = t0 + Duration::from_secs(1);
            assert_eq!(h.advance(&mut *run, t0 + 200 * MS), Step::Wait(deadline));
            // A call before the deadline still waits for it.
            assert_eq!(h.advance(&mut *run, deadline - MS), Step::Wait(deadline));
            assert_eq!(
                failed(h.advance(&mut *run, deadline)),
                format!(
                    "icmp probe: {host}: 3 of 3 packets lost (100%, more than maxLossPercent 0) \
                     within 1 s"
                )
            );
        }
    });
}

#[test]
fn max_loss_percent_is_the_share_of_requests_that_may_go_unanswered() {
    in_private_loopback(|| {
        // The first request is answered (read 50 ms later), the others not.
        let ping = |max_loss: u64| {
            answer_echo_requests(true).unwrap();
            let m =
                check(json!({"host": "127.0.0.1", "timeoutSecs": 1, "maxLossPercent": max_loss}));
            let mut h = Harness::new();
            let t0 = clock::mono_now();
            let (mut run, _) = h.start(&m, t0);
            io(&mut h);
            assert_eq!(
                h.advance(&mut *run, t0 + 50 * MS),
                Step::Wait(t0 + 100 * MS)
            );
            answer_echo_requests(false).unwrap();
            h.advance(&mut *run, t0 + 100 * MS);
            h.advance(&mut *run, t0 + 200 * MS);
            h.advance(&mut *run, t0 + Duration::from_secs(1))
        };
        assert_eq!(
            failed(ping(66)),
            "icmp probe: 127.0.0.1: 2 of 3 packets lost (66.7%, more than maxLossPercent 66) \
             within 1 s; rtt min/avg/max 50.000/50.000/50.000 ms"
        );
        passed(ping(67));
    });
}

/// blackbox_exporter's `TestProbeICMPDurationRTTOmittedOnFailure`: TEST-NET-1
/// fails, and the reason reports no round trip (none was measured).
#[test]
fn an_unreachable_address_fails_as_soon_as_every_send_failed() {
    in_private_loopback(|| {
        // TEST-NET-1: the namespace has no route to it.
        let m = check(json!({"host": "192.0.2.1", "packets": 2}));
        let mut h = Harness::new();
        let t0 = clock::mono_now();
        let (mut run, step) = h.start(&m, t0);
        assert_eq!(step, Step::Wait(t0 + 100 * MS));
        assert_eq!(
            failed(h.advance(&mut *run, t0 + 100 * MS)),
            "icmp probe: 192.0.2.1: 2 of 2 packets lost (100%, more than maxLossPercent 0): \
             sending failed: Network is unreachable (os error 101)"
        );
    });
}

#[test]
fn cancel_closes_the_socket_at_once() {
    in_private_loopback(|| {
        let m = check(json!({"host": "127.0.0.1"}));
        let mut h = Harness::new();
        let t0 = clock::mono_now();
        let mut run: IcmpRun = m.run(t0);
        assert_eq!(h.advance(&mut run, t0), Step::Wait(t0 + 100 * MS));
        assert!(matches!(run.state, State::Pinging(_)), "{:?}", run.state);
        assert_eq!(
            failed(h.cancel(&mut run, t0 + 50 * MS)),
            "icmp probe: cancelled"
        );
        assert!(matches!(run.state, State::Ended), "{:?}", run.state);
    });
}

#[test]
fn a_lookup_that_never_answers_times_out_and_a_cancel_abandons_it() {
    // The resolver answers once the test ends (`stop` drops).
    let (stop, blocked) = mpsc::channel::<()>();
    let blocked = Mutex::new(blocked);
    let (asked_tx, asked) = mpsc::channel::<()>();
    let asked_tx = Mutex::new(asked_tx);
    let mut h = Harness::with_resolver(move |_: &str, _: u16| -> io::Result<Vec<SocketAddr>> {
        let _ = asked_tx.lock().unwrap().send(());
        let _ = blocked.lock().unwrap().recv();
        Err(io::Error::other("released"))
    });
    let m = check(json!({"host": "hang.test", "timeoutSecs": 2}));
    let t0 = clock::mono_now();
    let deadline = t0 + Duration::from_secs(2);
    let (mut run, step) = h.start(&m, t0);
    assert_eq!(step, Step::Wait(deadline));
    asked
        .recv_timeout(WAIT)
        .expect("the lookup reached the resolver");
    assert_eq!(
        failed(h.advance(&mut *run, deadline)),
        "icmp probe: resolve hang.test: timed out after 2 s"
    );
    let mut run = m.run(t0);
    assert_eq!(h.advance(&mut run, t0), Step::Wait(deadline));
    assert!(matches!(run.state, State::Resolving(_)), "{:?}", run.state);
    assert_eq!(failed(h.cancel(&mut run, t0)), "icmp probe: cancelled");
    assert!(matches!(run.state, State::Ended), "{:?}", run.state);
    drop(stop);
}

/// A resolver that knows one name, `db.test`.
fn db_test(addrs: &'static [&'static str]) -> Harness {
    Harness::with_resolver(
        move |host: &str, port: u16| -> io::Result<Vec<SocketAddr>> {
            match host {
                "db.test" => Ok(addrs
                    .iter()
                    .map(|a| SocketAddr::new(a.parse().unwrap(), port))
                    .collect()),
                _ => Err(io::Error::other("no such name")),
            }
        },
    )
}

/// Runs `m` to its end with a name to look up: the answer comes at the
/// start, the replies are read 50 ms later.
fn run_through(h: &mut Harness, m: &IcmpCheck) -> Step {
    let t0 = clock::mono_now();
    let mut run = m.run(t0);
    let mut step = h.advance(&mut run, t0);
    while matches!(run.state, State::Resolving(_)) {
        io(h);
        step = h.advance(&mut run, t0);
    }
    while let Step::Wait(_) = step {
        io(h);
        step = h.advance(&mut run, t0 + 50 * MS);
    }
    step
}

#[test]
fn a_name_is_looked_up_at_each_run_and_ip_family_picks_its_address() {
    let only_v6 = &["::1"];
    let ping = |fields: Value| run_through(&mut db_test(only_v6), &check(fields));
    assert_eq!(
        failed(ping(json!({"host": "db.test", "ipFamily": "4"}))),
        "icmp probe: resolve db.test: no IPv4 address"
    );
    assert_eq!(
        failed(ping(json!({"host": "nowhere.test"}))),
        "icmp probe: resolve nowhere.test: no such name"
    );
    assert_eq!(
        failed(ping(json!({"host": "::1", "ipFamily": "4"}))),
        "icmp probe: resolve ::1: no IPv4 address"
    );
    in_private_loopback(|| {
        let both = &["127.0.0.1", "::1"];
        for (family, addr) in [("any", "127.0.0.1"), ("4", "127.0.0.1"), ("6", "::1")] {
            let m =
                check(json!({"host": "db.test", "ipFamily": family, "packets": 1, "maxRttMs": 10}));
            assert_eq!(
                failed(run_through(&mut db_test(both), &m)),
                format!(
                    "icmp probe: {addr}: average rtt 50.000 ms, more than maxRttMs 10 \
                     (min/avg/max 50.000/50.000/50.000 ms of 1 reply)"
                ),
                "ipFamily {family}"
            );
        }
    });
}

/// Echo replies as the kernel hands them to a ping socket: no IP header.
fn reply(ty: u8, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, 0, 0xab, 0xcd, 0x12, 0x34];
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    m
}

/// Pings of 127.0.0.1 begun at `t0` with `echoes`, whose socket is a UDP
/// socket standing in for the ping socket (the run reads datagrams), and
/// that socket's address to send the replies to.
fn stand_in(t0: Instant, echoes: Vec<Echo>) -> (Pings, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let at = socket.local_addr().unwrap();
    let pings = Pings {
        socket: OwnedFd::from(socket),
        to: "127.0.0.1".parse().unwrap(),
        begun: t0,
        echoes,
        send_error: None,
    };
    (pings, at)
}

#[test]
fn only_this_runs_replies_count_once_each() {
    let t0 = clock::mono_now();
    let (mut pings, at) = stand_in(t0, vec![Echo::Sent(t0), Echo::Sent(t0), Echo::Due]);
    let ours = *b"probewhl\0\0\0\0\0\0\0\x07";
    let mut theirs = ours;
    theirs[15] = 8;
    // The sequence numbers wrap: this run's are 65535, 0 and 1.
    let first = u16::MAX;
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let elsewhere = UdpSocket::bind("127.0.0.2:0").unwrap();
    for (from, message) in [
        (&elsewhere, reply(0, 0, &ours)),  // another host
        (&peer, reply(8, 0, &ours)),       // a request, not a reply
        (&peer, reply(0, 0, &theirs)),     // another run's
        (&peer, reply(0, 2, &ours)),       // not a sequence number of the run
        (&peer, reply(0, 1, &ours)),       // not sent yet
        (&peer, reply(0, 0, &ours[..15])), // cut short
        (&peer, reply(0, 0, &ours)),       // the one that counts
    ] {
        from.send_to(&message, at).unwrap();
    }
    assert!(!pings.receive(first, &ours, t0 + 5 * MS), "all read");
    assert_eq!(
        pings.echoes,
        [Echo::Sent(t0), Echo::Answered(5 * MS), Echo::Due]
    );
    // A duplicate changes nothing.
    peer.send_to(&reply(0, 0, &ours), at).unwrap();
    pings.receive(first, &ours, t0 + 9 * MS);
    assert_eq!(
        pings.echoes,
        [Echo::Sent(t0), Echo::Answered(5 * MS), Echo::Due]
    );
}

#[test]
fn a_flood_of_datagrams_is_read_in_bounded_slices() {
    let t0 = clock::mono_now();
    let (mut pings, at) = stand_in(t0, vec![Echo::Sent(t0)]);
    let ours = *b"probewhl\0\0\0\0\0\0\0\x07";
    let mut theirs = ours;
    theirs[15] = 8;
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    // 100 replies of another run, then this run's one.
    for _ in 0..100 {
        peer.send_to(&reply(0, 0, &theirs), at).unwrap();
    }
    peer.send_to(&reply(0, 0, &ours), at).unwrap();
    const { assert!(DATAGRAMS_PER_CALL < 100) };
    assert!(pings.receive(0, &ours, t0 + MS), "stopped at the budget");
    assert_eq!(pings.echoes, [Echo::Sent(t0)]);
    assert!(!pings.receive(0, &ours, t0 + 2 * MS), "the rest read");
    assert_eq!(pings.echoes, [Echo::Answered(2 * MS)]);
}

#[test]
fn consecutive_runs_use_different_sequence_numbers_and_payloads() {
    let m = check(json!({"host": "127.0.0.1", "packets": 3}));
    let t0: Instant = clock::mono_now();
    let (a, b) = (m.run(t0), m.run(t0));
    assert_eq!(b.first_seq, a.first_seq.wrapping_add(3));
    assert_ne!(a.payload, b.payload);
}

#[test]
fn check_warns_of_a_max_rtt_the_deadline_makes_moot() {
    let warnings = |fields: Value| {
        let mut out = Vec::new();
        crate::runner::Registry::builtin().lint(&decl(fields), &mut |field, problem| {
            out.push(format!("{field}: {problem}"))
        });
        out
    };
    assert_eq!(
        warnings(json!({"host": "::1", "maxRttMs": 2000, "timeoutSecs": 2})),
        [
            "maxRttMs: 2000 is not shorter than timeoutSecs (2 s): a reply that late counts as \
          lost, so this limit never fails a run"
        ]
    );
    assert!(warnings(json!({"host": "::1", "maxRttMs": 1999, "timeoutSecs": 2})).is_empty());
}
