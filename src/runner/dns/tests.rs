//! Real loopback sockets only: every server asked is a responder of the
//! test's own on 127.0.0.1 or ::1.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::testing::{Query, Responder, rdata};
use super::*;
use crate::clock;
use crate::runner::RunnerOutcome;
use crate::runner::machine::testing::{self, Harness};
use crate::runner::machine::{Machine, Step};

fn decl(fields: Value) -> Declaration {
    let mut v = json!({"kind": "dns", "mode": "enforce", "name": "example.com"});
    v.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    Declaration::from_value("d", v)
}

fn machine(fields: Value) -> Arc<dyn Machine> {
    testing::machine(&decl(fields)).expect("valid declaration")
}

fn field_error(fields: Value) -> String {
    match testing::machine(&decl(fields)) {
        Ok(_) => panic!("prepared an invalid declaration"),
        Err(e) => e,
    }
}

fn run(fields: Value) -> RunnerOutcome {
    testing::run_once(&*machine(fields), Duration::from_secs(30))
}

fn reason(out: &RunnerOutcome) -> &str {
    out.reason().expect("a failure")
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = clock::mono_now() + limit;
    while !cond() {
        assert!(clock::mono_now() < end, "timed out waiting for {what}");
        clock::sleep(Duration::from_millis(5));
    }
}

/// blackbox_exporter's recursive server: refuses a query without RD,
/// answers two A records to one with it.
fn recursive(q: &Query) -> Vec<Vec<u8>> {
    if !q.rd() {
        return vec![q.reply(5).encode()];
    }
    vec![
        q.reply(0)
            .answer(&q.name, 1, rdata::a("127.0.0.1"))
            .answer(&q.name, 1, rdata::a("127.0.0.2"))
            .encode(),
    ]
}

/// blackbox_exporter's authoritative server: an SOA to an SOA query, else
/// one A record; two NS records of authority and three additional ones.
fn authoritative(q: &Query) -> Vec<Vec<u8>> {
    use super::testing::Rr;
    let mut m = if q.qtype == 6 {
        q.reply(0).answer(
            &q.name,
            6,
            rdata::soa(
                "ns.example.com",
                "noc.example.com",
                [1000, 7200, 3600, 1209600, 3600],
            ),
        )
    } else {
        q.reply(0).answer(&q.name, 1, rdata::a("127.0.0.1"))
    };
    m.flags |= 0x0400; // AA
    m.authority = vec![
        Rr::new("example.com", 2, rdata::name("ns1.isp.net")),
        Rr::new("example.com", 2, rdata::name("ns2.isp.net")),
    ];
    m.additional = vec![
        Rr::new("ns1.isp.net", 1, rdata::a("127.0.0.1")),
        Rr::new("ns1.isp.net", 28, rdata::aaaa("::1")),
        Rr::new("ns2.isp.net", 1, rdata::a("127.0.0.2")),
    ];
    vec![m.encode()]
}

fn servfail(q: &Query) -> Vec<Vec<u8>> {
    vec![q.reply(2).encode()]
}

fn silent(_: &Query) -> Vec<Vec<u8>> {
    Vec::new()
}

// ---------------------------------------------------------------------------
// Fields

#[test]
fn every_field_is_checked_by_name() {
    let e = field_error(json!({"name": null, "server": "127.0.0.1"}));
    assert_eq!(
        e,
        "invalid declaration: field `name`: required field is missing"
    );
    let e = field_error(json!({"name": "a b", "server": "127.0.0.1"}));
    assert!(
        e.starts_with("invalid declaration: field `name`: \"a b\" holds ' '"),
        "{e}"
    );
    let e = field_error(json!({"type": "ANY", "server": "127.0.0.1"}));
    assert_eq!(
        e,
        "invalid declaration: field `type`: expected one of A, AAAA, CNAME, MX, TXT, SRV, NS, SOA, PTR, got \"ANY\""
    );
    let e = field_error(json!({"server": "ns1.example.com"}));
    assert!(
        e.starts_with(
            "invalid declaration: field `server`: expected an IP address with an optional port"
        ),
        "{e}"
    );
    assert!(e.contains("\"ns1.example.com\""), "{e}");
    let e = field_error(json!({"server": "127.0.0.1:0"}));
    assert_eq!(
        e,
        "invalid declaration: field `server`: port 0 in \"127.0.0.1:0\": expected 1 to 65535"
    );
    let e = field_error(json!({"server": "127.0.0.1", "expectRcode": "OK"}));
    assert!(e.starts_with("invalid declaration: field `expectRcode`: expected one of NOERROR, FORMERR, SERVFAIL, NXDOMAIN"), "{e}");
    let e = field_error(json!({"server": "127.0.0.1", "expectAnswer": ""}));
    assert_eq!(
        e,
        "invalid declaration: field `expectAnswer`: expected 1 to 1024 bytes, got 0"
    );
    let e = field_error(json!({"server": "127.0.0.1", "tcp": "yes"}));
    assert!(e.starts_with("invalid declaration: field `tcp`: "), "{e}");
    let e = field_error(json!({"server": "127.0.0.1", "timeoutSecs": 0}));
    assert!(
        e.starts_with("invalid declaration: field `timeoutSecs`: "),
        "{e}"
    );
    // An IP address is a name only for PTR.
    let e = field_error(json!({"name": "::1", "server": "127.0.0.1"}));
    assert!(e.starts_with("invalid declaration: field `name`: "), "{e}");
}

#[test]
fn an_address_as_the_name_of_another_type_gets_a_warning() {
    let lint = |fields: Value| {
        let mut warnings = Vec::new();
        DnsKind.lint(&decl(fields), &mut |f, w| {
            warnings.push(format!("{f}: {w}"))
        });
        warnings
    };
    assert_eq!(
        lint(json!({"name": "10.0.0.1"})),
        [
            "name: \"10.0.0.1\" is an address, asked for as a name: with `type` `PTR` the probe asks for its reverse name"
        ]
    );
    assert!(lint(json!({"name": "10.0.0.1", "type": "ptr"})).is_empty());
    assert!(lint(json!({"name": "example.com"})).is_empty());
}

#[test]
fn servers_are_addresses_with_an_optional_port() {
    let ok = |s: &str| parse_server(s).unwrap().to_string();
    assert_eq!(ok("10.0.0.53"), "10.0.0.53:53");
    assert_eq!(ok("10.0.0.53:5353"), "10.0.0.53:5353");
    assert_eq!(ok("::1"), "[::1]:53");
    assert_eq!(ok("[::1]"), "[::1]:53");
    assert_eq!(ok("[::1]:5353"), "[::1]:5353");
    for bad in [
        "",
        "localhost",
        "10.0.0.53:",
        "[::1",
        "10.0.0.53:65536",
        "10.0.0.53/24",
    ] {
        assert!(parse_server(bad).is_err(), "{bad}");
    }
}

struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, text: &str) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("probewheel-dns-{tag}-{}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn the_default_server_is_the_first_nameserver_of_resolv_conf() {
    let conf = TempFile::new(
        "resolv",
        "# comment\nsearch example.com\nnameserver fe80::1%eth0\nnameserver 10.0.0.53\nnameserver 10.0.0.54\n",
    );
    let check = DnsCheck::from_decl(&decl(json!({})), &conf.0).unwrap();
    assert_eq!(check.probe.server.to_string(), "10.0.0.53:53");

    let empty = TempFile::new("empty", "search example.com\n");
    let e = DnsCheck::from_decl(&decl(json!({})), &empty.0).unwrap_err();
    assert_eq!(e.field(), "server");
    assert_eq!(
        e.problem(),
        format!(
            "absent, and {} names no nameserver by address: give `server`",
            empty.0.display()
        )
    );
    let missing = std::env::temp_dir().join("probewheel-dns-no-such-resolv.conf");
    let e = DnsCheck::from_decl(&decl(json!({})), &missing).unwrap_err();
    assert_eq!(e.field(), "server");
    assert!(e.problem().starts_with("absent, and "), "{}", e.problem());
    assert!(
        e.problem()
            .ends_with("cannot be read (No such file or directory (os error 2)): give `server`"),
        "{}",
        e.problem()
    );
    // `server` given: the file is not read.
    assert!(DnsCheck::from_decl(&decl(json!({"server": "10.0.0.1"})), &missing).is_ok());
}

// ---------------------------------------------------------------------------
// Runs on the real clock

#[test]
fn ports_blackbox_exporters_recursive_cases() {
    let r = Responder::start(recursive);
    let server = r.addr.to_string();
    for tcp in [false, true] {
        let base = json!({"server": server, "tcp": tcp});
        let with = |extra: Value| {
            let mut v = base.clone();
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            v
        };
        assert_eq!(run(base.clone()), RunnerOutcome::pass());
        let out = run(with(json!({"expectRcode": "SERVFAIL"})));
        assert_eq!(
            reason(&out),
            format!("dns probe: {server}: rcode NOERROR, expected SERVFAIL")
        );
        assert_eq!(
            run(with(json!({"expectAnswer": "127.0.0.2"}))),
            RunnerOutcome::pass()
        );
        let out = run(with(json!({"expectAnswer": "10.0.0.1"})));
        assert_eq!(
            reason(&out),
            format!(
                "dns probe: {server}: answer section has no record containing \"10.0.0.1\"; it held: A 127.0.0.1, A 127.0.0.2"
            )
        );
    }
    // Every query asked for recursion, over both transports.
    let queries = r.queries.lock().unwrap();
    assert!(queries.iter().all(Query::rd));
    assert!(queries.iter().any(|q| q.tcp) && queries.iter().any(|q| !q.tcp));
}

#[test]
fn ports_blackbox_exporters_authoritative_cases() {
    let r = Responder::start(authoritative);
    let server = r.addr.to_string();
    for tcp in [false, true] {
        let out = run(json!({"server": server, "tcp": tcp}));
        assert_eq!(out, RunnerOutcome::pass());
        let out = run(json!({"server": server, "tcp": tcp, "type": "SOA",
            "expectAnswer": "SOA ns.example.com. noc.example.com. 1000 "}));
        assert_eq!(out, RunnerOutcome::pass());
        // The authority and additional sections are not the answer.
        let out = run(json!({"server": server, "tcp": tcp, "expectAnswer": "isp.net"}));
        assert_eq!(
            reason(&out),
            format!(
                "dns probe: {server}: answer section has no record containing \"isp.net\"; it held: A 127.0.0.1"
            )
        );
        let out = run(json!({"server": server, "tcp": tcp, "expectRcode": "NXDOMAIN"}));
        assert_eq!(
            reason(&out),
            format!("dns probe: {server}: rcode NOERROR, expected NXDOMAIN")
        );
    }
}

#[test]
fn a_noerror_reply_without_the_record_fails_unless_another_rcode_is_expected() {
    let r = Responder::start(|q: &Query| vec![q.reply(0).encode()]);
    let server = r.addr.to_string();
    let out = run(json!({"server": server, "name": "db.example", "type": "AAAA"}));
    assert_eq!(
        reason(&out),
        format!("dns probe: {server}: the answer section is empty: no AAAA record for db.example.")
    );
    // With another rcode expected, the rcode alone decides.
    let out = run(json!({"server": server, "expectRcode": "NXDOMAIN"}));
    assert_eq!(
        reason(&out),
        format!("dns probe: {server}: rcode NOERROR, expected NXDOMAIN")
    );
    let r = Responder::start(|q: &Query| vec![q.reply(3).encode()]);
    let out = run(json!({"server": r.addr.to_string(), "expectRcode": "NXDOMAIN"}));
    assert_eq!(out, RunnerOutcome::pass());
}

#[test]
fn ports_blackbox_exporters_servfail_cases() {
    let r = Responder::start(servfail);
    let server = r.addr.to_string();
    for tcp in [false, true] {
        let out = run(json!({"server": server, "tcp": tcp}));
        assert_eq!(
            reason(&out),
            format!("dns probe: {server}: rcode SERVFAIL, expected NOERROR")
        );
        let out = run(json!({"server": server, "tcp": tcp, "expectRcode": "servfail"}));
        assert_eq!(out, RunnerOutcome::pass());
        // An answer expected of an empty section.
        let out = run(
            json!({"server": server, "tcp": tcp, "expectRcode": "SERVFAIL", "expectAnswer": "A "}),
        );
        assert_eq!(
            reason(&out),
            format!(
                "dns probe: {server}: answer section has no record containing \"A \"; it was empty"
            )
        );
    }
    let e = field_error(json!({"server": server, "type": "NOT_A_VALID_QUERY_TYPE"}));
    assert!(e.starts_with("invalid declaration: field `type`: "), "{e}");
    let e = field_error(json!({"server": server, "expectRcode": "NOT_A_VALID_RCODE"}));
    assert!(
        e.starts_with("invalid declaration: field `expectRcode`: "),
        "{e}"
    );
}

#[test]
fn ports_blackbox_exporters_protocol_cases_over_ipv4_and_ipv6() {
    let handler: super::testing::Handler = Arc::new(recursive);
    let mut servers = vec![Responder::on(
        "127.0.0.1".parse().unwrap(),
        Arc::clone(&handler),
    )];
    if UdpSocket::bind("[::1]:0").is_ok() {
        servers.push(Responder::on("::1".parse().unwrap(), handler));
    } else {
        println!("note: skipping the IPv6 case, cannot bind [::1]");
    }
    for r in &servers {
        for tcp in [false, true] {
            let out = run(
                json!({"server": r.addr.to_string(), "tcp": tcp, "expectAnswer": "A 127.0.0.1"}),
            );
            assert_eq!(out, RunnerOutcome::pass(), "{} tcp {tcp}", r.addr);
        }
        assert_eq!(r.count(), 2);
    }
    if let Some(v6) = servers.get(1) {
        let port = v6.addr.port();
        let out = run(json!({"server": format!("[::1]:{port}")}));
        assert_eq!(out, RunnerOutcome::pass());
    }
}

#[test]
fn each_type_is_asked_for_and_shown_as_documented() {
    let r = Responder::start(|q: &Query| {
        let data = match q.qtype {
            1 => rdata::a("10.0.0.1"),
            28 => rdata::aaaa("2001:db8::1"),
            5 | 2 | 12 => rdata::name("target.example.com"),
            15 => rdata::mx(10, "mail.example.com"),
            16 => rdata::txt(&[b"v=spf1 -all"]),
            33 => rdata::srv(0, 5, 5060, "sip.example.com"),
            6 => rdata::soa("ns.example.com", "noc.example.com", [1, 2, 3, 4, 5]),
            _ => return vec![q.reply(4).encode()],
        };
        vec![q.reply(0).answer(&q.name, q.qtype, data).encode()]
    });
    let server = r.addr.to_string();
    for (ty, text) in [
        ("A", "A 10.0.0.1"),
        ("AAAA", "AAAA 2001:db8::1"),
        ("CNAME", "CNAME target.example.com."),
        ("MX", "MX 10 mail.example.com."),
        ("TXT", "TXT \"v=spf1 -all\""),
        ("SRV", "SRV 0 5 5060 sip.example.com."),
        ("NS", "NS target.example.com."),
        ("SOA", "SOA ns.example.com. noc.example.com. 1 2 3 4 5"),
        ("ptr", "PTR target.example.com."),
    ] {
        let out = run(json!({"server": server, "type": ty, "expectAnswer": text}));
        assert_eq!(out, RunnerOutcome::pass(), "{ty}");
    }
    // PTR of an address asks for its reverse name.
    let out = run(json!({"server": server, "type": "PTR", "name": "10.0.0.1"}));
    assert_eq!(out, RunnerOutcome::pass());
    let last = r.queries.lock().unwrap().last().unwrap().clone();
    assert_eq!(last.name, "1.0.0.10.in-addr.arpa.");
    assert_eq!(last.qtype, 12);
}

#[test]
fn datagrams_that_do_not_answer_the_query_are_ignored() {
    let r = Responder::start(|q: &Query| {
        let mut other_id = q.reply(0).answer(&q.name, 1, rdata::a("10.9.9.1"));
        other_id.id ^= 1;
        let mut not_a_response = q.reply(0).answer(&q.name, 1, rdata::a("10.9.9.2"));
        not_a_response.flags &= !0x8000;
        let mut other_question = q.reply(0).answer(&q.name, 1, rdata::a("10.9.9.3"));
        other_question.question = Some((super::testing::wire_name("example.org"), 1, 1));
        let mut other_type = q.reply(0).answer(&q.name, 1, rdata::a("10.9.9.4"));
        other_type.question.as_mut().unwrap().1 = 28;
        vec![
            b"junk".to_vec(),
            other_id.encode(),
            not_a_response.encode(),
            other_question.encode(),
            other_type.encode(),
            q.reply(0).answer(&q.name, 1, rdata::a("10.0.0.1")).encode(),
        ]
    });
    let out = run(json!({"server": r.addr.to_string(), "expectAnswer": "A 10.0.0.1"}));
    assert_eq!(out, RunnerOutcome::pass());
}

#[test]
fn a_malformed_reply_with_our_id_fails_by_what_is_wrong() {
    let r = Responder::start(|q: &Query| {
        let mut m = q.reply(0).answer(&q.name, 1, rdata::a("10.0.0.1")).encode();
        m.truncate(m.len() - 2);
        vec![m]
    });
    let server = r.addr.to_string();
    let out = run(json!({"server": server}));
    assert_eq!(
        reason(&out),
        format!("dns probe: {server}: the reply ends inside an answer record's data")
    );
}

#[test]
fn a_truncated_answer_is_asked_again_over_tcp() {
    let r = Responder::start(|q: &Query| {
        if q.tcp {
            vec![
                q.reply(0)
                    .answer(&q.name, 16, rdata::txt(&[&[b'x'; 255], &[b'y'; 255]]))
                    .encode(),
            ]
        } else {
            vec![q.reply(0).truncated().encode()]
        }
    });
    let out = run(json!({"server": r.addr.to_string(), "type": "TXT", "expectAnswer": "yyy"}));
    assert_eq!(out, RunnerOutcome::pass());
    let queries = r.queries.lock().unwrap();
    assert_eq!(
        queries.iter().map(|q| q.tcp).collect::<Vec<_>>(),
        [false, true]
    );
}

#[test]
fn the_answer_over_tcp_after_truncation_is_the_one_judged() {
    let r = Responder::start(|q: &Query| {
        if q.tcp {
            vec![q.reply(3).encode()]
        } else {
            vec![q.reply(0).truncated().encode()]
        }
    });
    let server = r.addr.to_string();
    let out = run(json!({"server": server}));
    assert_eq!(
        reason(&out),
        format!("dns probe: {server}: rcode NXDOMAIN, expected NOERROR")
    );
}

#[test]
fn nothing_listening_fails_at_once_over_udp_and_tcp() {
    let port = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let server = format!("127.0.0.1:{port}");
    let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED).to_string();
    let out = run(json!({"server": server, "timeoutSecs": 20}));
    assert_eq!(
        reason(&out),
        format!("dns probe: {server} over UDP: {refused}")
    );
    let out = run(json!({"server": server, "tcp": true, "timeoutSecs": 20}));
    assert_eq!(
        reason(&out),
        format!("dns probe: connect {server}: {refused}")
    );
}

// ---------------------------------------------------------------------------
// Deadlines and cancellation in virtual time (the I/O real)

/// Waits until the responder has seen `n` queries.
fn queries(r: &Responder, n: usize) {
    wait_for(&format!("{n} queries"), Duration::from_secs(5), || {
        r.count() >= n
    });
}

#[test]
fn udp_retransmits_at_1_2_and_4_s_and_gives_up_at_the_deadline() {
    let r = Responder::start(silent);
    let server = r.addr.to_string();
    let m = machine(json!({"server": server, "timeoutSecs": 10}));
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let (mut run, step) = h.start(&*m, t0);
    assert_eq!(step, Step::Wait(at(1)));
    queries(&r, 1);
    // Early calls (readiness, spurious) send nothing.
    assert_eq!(
        h.advance(&mut *run, at(1) - Duration::from_millis(1)),
        Step::Wait(at(1))
    );
    assert_eq!(h.advance(&mut *run, at(1)), Step::Wait(at(3)));
    queries(&r, 2);
    assert_eq!(h.advance(&mut *run, at(3)), Step::Wait(at(7)));
    queries(&r, 3);
    // The next would be at 15 s, past the deadline: wait for it.
    assert_eq!(h.advance(&mut *run, at(7)), Step::Wait(at(10)));
    queries(&r, 4);
    assert_eq!(
        h.advance(&mut *run, at(10) - Duration::from_millis(1)),
        Step::Wait(at(10))
    );
    let Step::Done(out) = h.advance(&mut *run, at(10)) else {
        panic!("the run did not end at its deadline");
    };
    assert_eq!(
        reason(&out),
        format!("dns probe: no answer from {server} within 10 s (4 tries over UDP)")
    );
    // One query, sent four times: one ID, one source port.
    let qs = r.queries.lock().unwrap();
    assert_eq!(qs.len(), 4);
    assert!(qs.iter().all(|q| q.raw == qs[0].raw));
    let peers = r.peers.lock().unwrap();
    assert!(peers.iter().all(|p| *p == peers[0]));
}

#[test]
fn a_short_timeout_retries_at_a_third_of_it() {
    let r = Responder::start(silent);
    let server = r.addr.to_string();
    let m = machine(json!({"server": server, "timeoutSecs": 1}));
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let third = Duration::from_secs(1) / 3;
    let (mut run, step) = h.start(&*m, t0);
    assert_eq!(step, Step::Wait(t0 + third));
    assert_eq!(h.advance(&mut *run, t0 + third), Step::Wait(t0 + third * 3));
    let end = t0 + Duration::from_secs(1);
    assert_eq!(h.advance(&mut *run, t0 + third * 3), Step::Wait(end));
    let Step::Done(out) = h.advance(&mut *run, end) else {
        panic!()
    };
    assert_eq!(
        reason(&out),
        format!("dns probe: no answer from {server} within 1 s (3 tries over UDP)")
    );
}

#[test]
fn an_answer_that_came_in_time_counts_when_read_late() {
    // The responder answers once the test lets it, so the first call
    // cannot find the answer already there.
    let (go, gate) = std::sync::mpsc::channel::<()>();
    let gate = std::sync::Mutex::new(gate);
    let r = Responder::start(move |q: &Query| {
        let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(10));
        recursive(q)
    });
    let m = machine(json!({"server": r.addr.to_string(), "timeoutSecs": 5}));
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let (mut run, step) = h.start(&*m, t0);
    assert!(matches!(step, Step::Wait(_)), "{step:?}");
    queries(&r, 1);
    go.send(()).unwrap();
    assert!(h.wait_io(Duration::from_secs(5)), "the answer never came");
    // Read only at the deadline: it is there, so it counts.
    let step = h.advance(&mut *run, t0 + Duration::from_secs(5));
    assert_eq!(step, Step::Done(RunnerOutcome::pass()));
}

#[test]
fn a_tcp_server_that_never_answers_times_out_at_the_deadline() {
    let r = Responder::start(silent);
    let server = r.addr.to_string();
    let m = machine(json!({"server": server, "tcp": true, "timeoutSecs": 3}));
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let end = t0 + Duration::from_secs(3);
    let (mut run, _) = h.start(&*m, t0);
    let give_up = clock::mono_now() + Duration::from_secs(5);
    while r.count() == 0 {
        assert!(clock::mono_now() < give_up, "the query never came over TCP");
        let (_, step) = h.advance_after_io(&mut *run, Duration::from_millis(20), t0);
        assert_eq!(step, Step::Wait(end));
    }
    assert_eq!(
        h.advance(&mut *run, end - Duration::from_millis(1)),
        Step::Wait(end)
    );
    let Step::Done(out) = h.advance(&mut *run, end) else {
        panic!()
    };
    assert_eq!(
        reason(&out),
        format!("dns probe: no answer from {server} within 3 s (over TCP)")
    );
}

#[test]
fn after_truncation_the_tcp_timeout_says_so() {
    let r = Responder::start(|q: &Query| {
        if q.tcp {
            Vec::new()
        } else {
            vec![q.reply(0).truncated().encode()]
        }
    });
    let server = r.addr.to_string();
    let out = run(json!({"server": server, "timeoutSecs": 1}));
    assert_eq!(
        reason(&out),
        format!(
            "dns probe: no answer from {server} within 1 s (over TCP, after a truncated answer over UDP)"
        )
    );
}

#[test]
fn a_server_flooding_the_socket_costs_its_worker_short_slices() {
    // A server of the test's own, driven by hand: the query, then 100
    // datagrams that are not the answer, then the answer, all queued on
    // the run's socket before the run reads any.
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let m = machine(json!({"server": server.local_addr().unwrap().to_string()}));
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let (mut run, _) = h.start(&*m, t0);
    let mut buf = [0u8; 512];
    let (n, peer) = server.recv_from(&mut buf).expect("the query");
    let q = Query::read(&buf[..n], false).expect("a query");
    let mut junk = q.reply(0).answer(&q.name, 1, rdata::a("10.9.9.9"));
    junk.id ^= 1;
    for _ in 0..100 {
        server.send_to(&junk.encode(), peer).unwrap();
    }
    let answer = q.reply(0).answer(&q.name, 1, rdata::a("10.0.0.1"));
    server.send_to(&answer.encode(), peer).unwrap();
    assert!(h.wait_io(Duration::from_secs(5)), "nothing came");
    // Each call reads at most DATAGRAMS_PER_CALL, then asks to be called
    // again at once (after the worker's other runs); the answer is found
    // on the second call.
    const { assert!(super::run::DATAGRAMS_PER_CALL < 100) };
    assert_eq!(h.advance(&mut *run, t0), Step::Wait(t0));
    assert_eq!(h.advance(&mut *run, t0), Step::Done(RunnerOutcome::pass()));
}

#[test]
fn cancelling_a_udp_wait_closes_the_socket_at_once() {
    let r = Responder::start(silent);
    let m = machine(json!({"server": r.addr.to_string(), "timeoutSecs": 60}));
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let (mut run, _) = h.start(&*m, t0);
    queries(&r, 1);
    let local = r.peers.lock().unwrap()[0];
    // The run's port is taken while it waits.
    assert!(UdpSocket::bind(local).is_err());
    let Step::Done(out) = h.cancel(&mut *run, t0) else {
        panic!("cancel did not end the run");
    };
    assert_eq!(reason(&out), "dns probe: cancelled");
    // Released by the cancel itself, before the run is dropped.
    UdpSocket::bind(local).expect("the run's socket is closed");
    drop(run);
}

#[test]
fn cancelling_a_tcp_wait_closes_the_connection_at_once() {
    let r = Responder::start(silent);
    let m = machine(json!({"server": r.addr.to_string(), "tcp": true, "timeoutSecs": 60}));
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let (mut run, _) = h.start(&*m, t0);
    let give_up = clock::mono_now() + Duration::from_secs(5);
    while r.held.lock().unwrap().is_empty() {
        assert!(clock::mono_now() < give_up, "the query never came over TCP");
        h.advance_after_io(&mut *run, Duration::from_millis(20), t0);
    }
    let Step::Done(out) = h.cancel(&mut *run, t0) else {
        panic!("cancel did not end the run");
    };
    assert_eq!(reason(&out), "dns probe: cancelled");
    // The server sees the connection end, the run not yet dropped.
    let mut held = r.held.lock().unwrap().pop().unwrap();
    held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1];
    let n = io::Read::read(&mut held, &mut buf);
    assert!(matches!(n, Ok(0)) || n.is_err(), "{n:?}");
    drop(run);
}

#[test]
fn reasons_fit_in_a_result() {
    let r = Responder::start(|q: &Query| {
        let mut m = q.reply(0);
        for i in 0..100u8 {
            m = m.answer(&q.name, 16, rdata::txt(&[&[b'a' + i % 26; 200]]));
        }
        vec![m.encode()]
    });
    let out =
        run(json!({"server": r.addr.to_string(), "type": "TXT", "tcp": true, "expectAnswer": "0"}));
    let reason = reason(&out);
    assert!(
        reason.len() <= crate::runner::MAX_REASON_BYTES,
        "{}",
        reason.len()
    );
    assert!(reason.ends_with(" and 99 more"), "{reason}");
}

// ---------------------------------------------------------------------------
// check_dig, side by side

const CHECK_DIG: &str = "/usr/lib/nagios/plugins/check_dig";

/// check_dig's verdict (true: OK) on the same question.
fn check_dig(server: SocketAddr, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(CHECK_DIG)
        .args([
            "-H",
            &server.ip().to_string(),
            "-p",
            &server.port().to_string(),
            "-t",
            "3",
        ])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.code() == Some(0), text)
}

#[test]
fn verdicts_match_check_dig_side_by_side() {
    if !std::path::Path::new(CHECK_DIG).exists() {
        println!("skipped: {CHECK_DIG} is not installed (monitoring-plugins-standard)");
        return;
    }
    let r = Responder::start(|q: &Query| {
        if q.name.starts_with("fail.") {
            return vec![q.reply(2).encode()];
        }
        if q.name.starts_with("nodata.") {
            return vec![q.reply(0).encode()];
        }
        let m = match q.qtype {
            15 => q
                .reply(0)
                .answer(&q.name, 15, rdata::mx(10, "mail.example.com")),
            _ => q.reply(0).answer(&q.name, 1, rdata::a("10.0.0.1")),
        };
        vec![m.encode()]
    });
    let server = r.addr;
    // (check_dig's arguments, our fields). Both fail a NOERROR reply whose
    // answer section is empty (NODATA).
    let cases: [(&[&str], Value); 6] = [
        (&["-l", "ok.example.com"], json!({"name": "ok.example.com"})),
        (
            &["-l", "ok.example.com", "-a", "10.0.0.1"],
            json!({"name": "ok.example.com", "expectAnswer": "10.0.0.1"}),
        ),
        (
            &["-l", "ok.example.com", "-a", "10.0.0.2"],
            json!({"name": "ok.example.com", "expectAnswer": "10.0.0.2"}),
        ),
        (
            &["-l", "ok.example.com", "-T", "MX", "-a", "mail.example.com"],
            json!({"name": "ok.example.com", "type": "MX", "expectAnswer": "mail.example.com"}),
        ),
        (
            &["-l", "fail.example.com"],
            json!({"name": "fail.example.com"}),
        ),
        (
            &["-l", "nodata.example.com"],
            json!({"name": "nodata.example.com"}),
        ),
    ];
    for (args, mut fields) in cases {
        fields["server"] = json!(server.to_string());
        let ours = run(fields.clone());
        let (theirs, text) = check_dig(server, args);
        println!("check_dig {args:?}: {text}\n  probewheel: {ours:?}");
        assert_eq!(
            ours.status() == crate::Status::Pass,
            theirs,
            "{args:?}: {text}; ours {ours:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Any field values: prepared, or refused naming a field it reads

mod any_values {
    use proptest::prelude::*;
    use serde_json::json;

    use super::super::DnsCheck;
    use crate::decl::Declaration;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_field_values_are_prepared_or_refused_by_field(
            values in prop::collection::vec(
                prop::option::of(prop_oneof![
                    any::<bool>().prop_map(|b| json!(b)),
                    any::<i64>().prop_map(|n| json!(n)),
                    "\\PC{0,12}".prop_map(|s| json!(s)),
                    Just(json!("127.0.0.1:5353")),
                    Just(json!("[::1]:53")),
                    Just(json!("10.0.0.1")),
                    Just(json!("example.com.")),
                    Just(json!("ptr")),
                    Just(json!("NXDOMAIN")),
                    Just(json!([[]])),
                ]),
                7,
            ),
        ) {
            let names = ["name", "type", "server", "expectRcode", "expectAnswer", "tcp", "timeoutSecs"];
            let mut v = json!({"kind": "dns", "mode": "enforce"});
            for (field, value) in names.iter().zip(values) {
                if let Some(value) = value {
                    v[*field] = value;
                }
            }
            let d = Declaration::from_value("d", v);
            let missing = std::env::temp_dir().join("probewheel-dns-no-such-resolv.conf");
            if let Err(e) = DnsCheck::from_decl(&d, &missing) {
                prop_assert!(names.contains(&e.field()), "{e}");
                prop_assert!(!e.problem().is_empty());
            }
        }
    }
}
