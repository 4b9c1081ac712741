//! Real loopback sockets only: every address contacted is in 127.0.0.0/8 or
//! `::1`.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::clock;
use crate::runner::machine::Machine;
use crate::runner::machine::testing::{self, hanging_listener};
use crate::{RunnerOutcome, Status};

pub(super) fn decl(fields: Value) -> Declaration {
    let mut v = json!({"kind": "tcp", "mode": "enforce"});
    v.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    Declaration::from_value("t", v)
}

fn check(fields: Value) -> Arc<dyn Machine> {
    testing::machine(&decl(fields)).expect("valid declaration")
}

fn field_error(fields: Value) -> String {
    match testing::machine(&decl(fields)) {
        Ok(_) => panic!("prepared an invalid declaration"),
        Err(e) => e,
    }
}

fn run(check: &dyn Machine) -> RunnerOutcome {
    testing::run_once(check, Duration::from_secs(30))
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port_v4() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn refused() -> String {
    io::Error::from_raw_os_error(libc::ECONNREFUSED).to_string()
}

fn bind_v6() -> Option<TcpListener> {
    match TcpListener::bind("[::1]:0") {
        Ok(l) => Some(l),
        Err(e) => {
            println!("note: skipping IPv6 case, cannot bind [::1]:0: {e}");
            None
        }
    }
}

/// True when a socket in SYN_SENT to 127.0.0.1:`port` exists (a connect is
/// in flight and not completing).
fn syn_sent_to(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let remote = format!("0100007F:{port:04X}");
    table.lines().skip(1).any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        cols.len() > 3 && cols[2] == remote && cols[3] == "02"
    })
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = clock::mono_now() + limit;
    while !cond() {
        assert!(clock::mono_now() < end, "timed out waiting for {what}");
        clock::sleep(Duration::from_millis(5));
    }
}

#[test]
fn passes_against_an_ipv4_listener() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let out = run(&*check(json!({"port": port})));
    assert_eq!(out, RunnerOutcome::pass());
    let out = run(&*check(
        json!({"host": "127.0.0.1", "port": port, "connectTimeoutSecs": 2}),
    ));
    assert_eq!(out, RunnerOutcome::pass());
}

#[test]
fn passes_against_an_ipv6_listener_with_or_without_brackets() {
    let Some(l) = bind_v6() else { return };
    let port = l.local_addr().unwrap().port();
    for host in ["::1", "[::1]"] {
        let out = run(&*check(json!({"host": host, "port": port})));
        assert_eq!(out, RunnerOutcome::pass(), "host {host}");
    }
}

#[test]
fn resolves_a_name() {
    // `localhost` may resolve to ::1 as well; a listener on both families
    // makes the test independent of the order getaddrinfo returns.
    let l4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l4.local_addr().unwrap().port();
    let _l6 = TcpListener::bind(("::1", port)).ok();
    let out = run(&*check(json!({"host": "localhost", "port": port})));
    assert_eq!(out, RunnerOutcome::pass());
}

#[test]
fn refused_connect_has_the_exact_reason() {
    let port = closed_port_v4();
    let out = run(&*check(json!({"port": port})));
    assert_eq!(out.status(), Status::Fail);
    assert_eq!(
        out.reason().unwrap(),
        format!("tcp probe: connect 127.0.0.1:{port}: {}", refused())
    );
}

#[test]
fn refused_ipv6_connect_brackets_the_address() {
    let Some(l) = bind_v6() else { return };
    let port = l.local_addr().unwrap().port();
    drop(l);
    for host in ["::1", "[::1]"] {
        let out = run(&*check(json!({"host": host, "port": port})));
        assert_eq!(
            out.reason().unwrap(),
            format!("tcp probe: connect [::1]:{port}: {}", refused()),
            "host {host}"
        );
    }
}

#[test]
fn connect_that_never_completes_times_out() {
    let hang = hanging_listener();
    let out = run(&*check(
        json!({"port": hang.addr.port(), "connectTimeoutSecs": 1}),
    ));
    assert_eq!(
        out.reason().unwrap(),
        format!("tcp probe: connect {}: timed out after 1 s", hang.addr)
    );
}

#[test]
fn resolve_failure_has_the_resolve_reason() {
    // glibc rejects a label longer than 63 bytes before sending any query
    // (checked with strace: no packet leaves the host).
    let host = format!("{}.invalid", "a".repeat(70));
    let out = run(&*check(json!({"host": host, "port": 80})));
    let reason = out.reason().unwrap();
    let prefix = format!("tcp probe: resolve {host}:80: ");
    assert!(
        reason.starts_with(&prefix) && reason.len() > prefix.len(),
        "{reason}"
    );
}

#[test]
fn defaults_are_localhost_and_five_seconds() {
    let c = TcpCheck::from_decl(&decl(json!({"port": 22, "host": null}))).unwrap();
    assert_eq!(
        c.probe.target,
        Target::Addr("127.0.0.1:22".parse().unwrap())
    );
    assert_eq!(c.probe.timeout_secs, 5);
    let c = TcpCheck::from_decl(&decl(
        json!({"port": 8080, "host": "[::1]", "connectTimeoutSecs": 3600}),
    ))
    .unwrap();
    assert_eq!(c.probe.target, Target::Addr("[::1]:8080".parse().unwrap()));
    assert_eq!(c.probe.timeout_secs, 3600);
    let c = TcpCheck::from_decl(&decl(json!({"port": 1, "host": "db-1.internal"}))).unwrap();
    assert_eq!(c.probe.target, Target::Name("db-1.internal".into(), 1));
}

#[test]
fn invalid_fields_name_the_field() {
    let port = "invalid declaration: field `port`: ";
    assert_eq!(
        field_error(json!({"port": 70000})),
        format!("{port}expected an integer from 1 to 65535, got 70000")
    );
    assert_eq!(
        field_error(json!({"port": 0})),
        format!("{port}expected an integer from 1 to 65535, got 0")
    );
    assert_eq!(
        field_error(json!({"port": "22"})),
        format!("{port}expected an integer from 1 to 65535, got \"22\"")
    );
    assert_eq!(
        field_error(json!({"port": -1})),
        format!("{port}expected an integer from 1 to 65535, got -1")
    );
    assert_eq!(
        field_error(json!({})),
        format!("{port}required field is missing")
    );
    assert_eq!(
        field_error(json!({"port": null})),
        format!("{port}required field is missing")
    );
    let timeout = "invalid declaration: field `connectTimeoutSecs`: ";
    assert_eq!(
        field_error(json!({"port": 22, "connectTimeoutSecs": 0})),
        format!("{timeout}expected an integer from 1 to 3600, got 0")
    );
    assert_eq!(
        field_error(json!({"port": 22, "connectTimeoutSecs": 3601})),
        format!("{timeout}expected an integer from 1 to 3600, got 3601")
    );
    assert_eq!(
        field_error(json!({"port": 22, "host": 7})),
        "invalid declaration: field `host`: expected a string, got 7"
    );
    for host in [
        "",
        "a b",
        "[::1",
        "[127.0.0.1]",
        "127.0.0.1:22",
        "x\u{0}y",
        "héllo",
    ] {
        let e = field_error(json!({"port": 22, "host": host}));
        assert!(
            e.starts_with(
                "invalid declaration: field `host`: expected a host name or an IP address"
            ),
            "{host:?}: {e}"
        );
    }
}

#[test]
fn host_forms() {
    assert_eq!(parse_host("::1"), Ok(Host::Ip("::1".parse().unwrap())));
    assert_eq!(parse_host("[::1]"), Ok(Host::Ip("::1".parse().unwrap())));
    assert_eq!(
        parse_host("10.0.0.1"),
        Ok(Host::Ip("10.0.0.1".parse().unwrap()))
    );
    assert_eq!(parse_host("localhost"), Ok(Host::Name("localhost")));
    assert!(parse_host("[10.0.0.1]").is_err());
    assert!(parse_host("::1]").is_err());
}

// The run as a state machine, driven by the test harness the way a worker
// drives it: deadlines and cancellation in virtual time, the I/O real.

use std::net::Ipv4Addr;
use std::sync::Mutex;

use crate::runner::machine::testing::Harness;
use crate::runner::machine::{Run, Step};

/// Starts `m` at virtual `t0` and steps it on real I/O until `done`
/// (a server's signal) came; the run must still be waiting.
pub(super) fn step_until(
    h: &mut Harness,
    m: &dyn Machine,
    t0: std::time::Instant,
    done: &mpsc::Receiver<()>,
) -> Box<dyn Run> {
    let (mut run, mut step) = h.start(m, t0);
    let give_up = clock::mono_now() + Duration::from_secs(10);
    while done.try_recv().is_err() {
        assert!(matches!(step, Step::Wait(_)), "ended early: {step:?}");
        assert!(clock::mono_now() < give_up, "the server never signalled");
        step = h
            .advance_after_io(&mut *run, Duration::from_millis(20), t0)
            .1;
    }
    // What the server wrote before signalling is taken now.
    let step = h.advance(&mut *run, t0);
    assert!(matches!(step, Step::Wait(_)), "ended early: {step:?}");
    run
}

/// Calls `run` just before `deadline`, when it must still wait for it, and
/// at it, when it must end: the outcome.
pub(super) fn ends_at(
    h: &mut Harness,
    run: &mut dyn Run,
    deadline: std::time::Instant,
) -> RunnerOutcome {
    assert_eq!(
        h.advance(run, deadline - Duration::from_millis(1)),
        Step::Wait(deadline)
    );
    let Step::Done(out) = h.advance(run, deadline) else {
        panic!("the run did not end at its deadline");
    };
    out
}

pub(super) fn tcp_machine(fields: Value) -> Arc<dyn Machine> {
    testing::machine(&decl(fields)).expect("valid declaration")
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// A resolver that answers every lookup with `addrs` (the port given).
fn fixed(ports: Vec<u16>) -> impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync {
    move |_: &str, _| Ok(ports.iter().map(|&p| loopback(p)).collect())
}

#[test]
fn machine_connects_and_passes() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let m = tcp_machine(json!({"port": port}));
    let out = Harness::new().run(&*m, Duration::from_secs(5));
    assert_eq!(out, RunnerOutcome::pass());
}

#[test]
fn machine_on_ipv6_loopback() {
    let Some(l) = bind_v6() else { return };
    let port = l.local_addr().unwrap().port();
    let m = tcp_machine(json!({"host": "::1", "port": port}));
    assert_eq!(
        Harness::new().run(&*m, Duration::from_secs(5)),
        RunnerOutcome::pass()
    );
    drop(l);
    let out = Harness::new().run(&*m, Duration::from_secs(5));
    assert_eq!(
        out.reason().unwrap(),
        format!("tcp probe: connect [::1]:{port}: {}", refused())
    );
}

#[test]
fn the_next_address_is_tried_when_the_first_refuses() {
    let closed = closed_port_v4();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = l.local_addr().unwrap().port();
    let m = tcp_machine(json!({"host": "two.test", "port": 1}));
    let out = Harness::with_resolver(fixed(vec![closed, open])).run(&*m, Duration::from_secs(5));
    assert_eq!(out, RunnerOutcome::pass());
    // Both refuse: the reason lists both, in the order tried.
    let closed2 = closed_port_v4();
    let out = Harness::with_resolver(fixed(vec![closed, closed2])).run(&*m, Duration::from_secs(5));
    assert_eq!(
        out.reason().unwrap(),
        format!(
            "tcp probe: connect 127.0.0.1:{closed}: {e}; connect 127.0.0.1:{closed2}: {e}",
            e = refused()
        )
    );
}

#[test]
fn a_lookup_without_addresses_fails_clearly() {
    let m = tcp_machine(json!({"host": "none.test", "port": 80}));
    let out = Harness::with_resolver(fixed(vec![])).run(&*m, Duration::from_secs(5));
    assert_eq!(
        out.reason().unwrap(),
        "tcp probe: resolve none.test:80: no addresses"
    );
}

#[test]
fn a_hanging_connect_times_out_at_its_deadline_in_virtual_time() {
    let hang = hanging_listener();
    let m = tcp_machine(json!({"port": hang.addr.port(), "connectTimeoutSecs": 7}));
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let (mut run, step) = h.start(&*m, t0);
    let deadline = t0 + Duration::from_secs(7);
    assert_eq!(step, Step::Wait(deadline));
    // Real readiness may come (it must not end the run), then just before
    // the deadline the run still waits.
    let (_, step) = h.advance_after_io(&mut *run, Duration::from_millis(50), t0);
    assert_eq!(step, Step::Wait(deadline));
    let out = ends_at(&mut h, &mut *run, deadline);
    assert_eq!(
        out.reason().unwrap(),
        format!("tcp probe: connect {}: timed out after 7 s", hang.addr)
    );
}

#[test]
fn cancelling_a_hanging_connect_ends_at_once_and_closes_the_socket() {
    let hang = hanging_listener();
    let port = hang.addr.port();
    let m = tcp_machine(json!({"port": port, "connectTimeoutSecs": 60}));
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let (mut run, step) = h.start(&*m, t0);
    assert!(matches!(step, Step::Wait(_)));
    wait_for("the run's SYN_SENT socket", Duration::from_secs(5), || {
        syn_sent_to(port)
    });
    let Step::Done(out) = h.cancel(&mut *run, t0) else {
        panic!("cancel did not end the run");
    };
    assert_eq!(out.reason().unwrap(), "tcp probe: cancelled");
    drop(run);
    wait_for("the run's socket to close", Duration::from_secs(2), || {
        !syn_sent_to(port)
    });
}

#[test]
fn a_resolver_that_never_answers_times_out_at_connect_timeout() {
    // The resolver blocks until the test ends (the sender drops).
    let (stop, blocked) = mpsc::channel::<()>();
    let blocked = Mutex::new(blocked);
    let (asked_tx, asked) = mpsc::channel::<()>();
    let asked_tx = Mutex::new(asked_tx);
    let resolver = move |_: &str, _: u16| -> io::Result<Vec<SocketAddr>> {
        let _ = asked_tx.lock().unwrap().send(());
        let _ = blocked.lock().unwrap().recv();
        Err(io::Error::other("released"))
    };
    let m = tcp_machine(json!({"host": "hang.test", "port": 80, "connectTimeoutSecs": 2}));
    let mut h = Harness::with_resolver(resolver);
    let t0 = clock::mono_now();
    let (mut run, step) = h.start(&*m, t0);
    let deadline = t0 + Duration::from_secs(2);
    assert_eq!(
        step,
        Step::Wait(deadline),
        "it waits no later than its timeout"
    );
    asked
        .recv_timeout(Duration::from_secs(5))
        .expect("the lookup reached the resolver");
    let out = ends_at(&mut h, &mut *run, deadline);
    assert_eq!(
        out.reason().unwrap(),
        "tcp probe: resolve hang.test:80: timed out after 2 s"
    );
    drop(run);
    drop(stop);
}

// `tls: true` against loopback rustls servers with certificates made here.

#[cfg(feature = "tls")]
mod tls {
    use std::io::Read;
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;

    use super::tcp_machine;
    use crate::clock;
    use crate::runner::Status;
    use crate::runner::machine::Step;
    use crate::runner::machine::testing::Harness;
    use crate::transport::tls::testing::*;

    const BOUND: Duration = Duration::from_secs(10);

    #[test]
    fn a_completed_handshake_passes() {
        let ca = ca("tcp test CA");
        let file = ca_file(&ca);
        let server = tls_server(leaf(&ca, &LeafSpec::default()), b"");
        let m = tcp_machine(json!({
            "port": server.addr.port(), "tls": true, "caFile": file.path(),
            "tlsServerName": "localhost",
        }));
        let out = Harness::new().run(&*m, BOUND);
        assert_eq!(out.status(), Status::Pass, "{:?}", out.reason());
        let saw = server.saw();
        assert_eq!(saw.sni.as_deref(), Some("localhost"));
        // The probe sends no data: it closes after the handshake.
        assert!(saw.received.is_empty());
    }

    #[test]
    fn the_certificate_is_checked() {
        let other = ca_file(&ca("other"));
        let ca = ca("tcp test CA");
        let server = tls_server(leaf(&ca, &LeafSpec::default()), b"");
        let m =
            tcp_machine(json!({"port": server.addr.port(), "tls": true, "caFile": other.path()}));
        let out = Harness::new().run(&*m, BOUND);
        assert_eq!(
            out.reason().map(assert_words),
            Some(
                format!(
                    "tcp probe: {}: TLS certificate not trusted: unknown issuer (no chain to a CA in caFile {}); \
                     the certificate is self-signed or issued by a CA that is not there: add the CA that issued it to caFile",
                    server.addr,
                    other.path().display()
                )
                .as_str()
            )
        );
        let _ = server.saw();
        // Without `tls` the same server is a plain pass.
        let server = tls_server(leaf(&ca, &LeafSpec::default()), b"");
        let m = tcp_machine(json!({"port": server.addr.port(), "caFile": other.path()}));
        assert_eq!(Harness::new().run(&*m, BOUND).status(), Status::Pass);
        let _ = server.saw();
    }

    #[test]
    fn connect_timeout_secs_bounds_the_handshake() {
        let (hello_tx, hello) = std::sync::mpsc::channel();
        let (read_tx, read) = std::sync::mpsc::channel();
        let server = raw_server(move |s| {
            let _ = hello_tx.send(());
            let _ = read_tx.send(s.read(&mut [0u8; 64]).unwrap_or(usize::MAX));
        });
        let m = tcp_machine(json!({
            "port": server.addr.port(), "tls": true, "tlsSkipVerify": true,
            "connectTimeoutSecs": 3,
        }));
        let mut h = Harness::new();
        let t0 = clock::mono_now();
        let mut run = super::step_until(&mut h, &*m, t0, &hello);
        let deadline = t0 + Duration::from_secs(3);
        let out = super::ends_at(&mut h, &mut *run, deadline);
        assert_eq!(
            out.reason().map(assert_words),
            Some(
                format!(
                    "tcp probe: {}: TLS handshake timed out after 3 s (no answer to the ClientHello)",
                    server.addr
                )
                .as_str()
            )
        );
        drop(run);
        assert_eq!(read.recv_timeout(BOUND).unwrap(), 0, "socket closed");
        server.saw();
    }

    /// A server presenting a leaf of `ca` that asks for a client
    /// certificate issued by another CA: required, or optional (then it
    /// sends `tickets` NewSessionTickets after the handshake).
    fn asking_for_a_client_certificate(
        ca: &Ca,
        version: &'static rustls::SupportedProtocolVersion,
        required: bool,
        tickets: usize,
    ) -> Server {
        let clients = crate::transport::tls::testing::ca("client CA");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(clients.cert.der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        );
        let verifier = if required {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        let leaf = leaf(ca, &LeafSpec::default());
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_client_cert_verifier(verifier.build().unwrap())
            .with_single_cert(leaf.chain.clone(), server_key(&leaf))
            .unwrap();
        config.send_tls13_tickets = tickets;
        tls_serve(Arc::new(config), b"", 1)
    }

    fn trusting_probe(
        server: &Server,
        file: &TempFile,
    ) -> Arc<dyn crate::runner::machine::Machine> {
        tcp_machine(json!({
            "port": server.addr.port(), "tls": true, "caFile": file.path(),
            "tlsServerName": "localhost", "connectTimeoutSecs": 5,
        }))
    }

    #[test]
    fn a_server_that_requires_a_client_certificate_fails_on_tls13_and_tls12() {
        let ca = ca("tcp test CA");
        let file = ca_file(&ca);
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let server = asking_for_a_client_certificate(&ca, version, true, 2);
            let out = Harness::new().run(&*trusting_probe(&server, &file), BOUND);
            assert_eq!(out.status(), Status::Fail, "{version:?} passed");
            assert_eq!(
                assert_words(out.reason().unwrap()),
                format!(
                    "tcp probe: {}: the server sent TLS alert certificate_required (116): \
                     it requires a client certificate, which probewheel does not send",
                    server.addr
                ),
                "{version:?}"
            );
            let saw = server.saw();
            assert!(saw.error.is_some(), "the server accepted the client");
        }
    }

    /// Steps a run with virtual time standing at `t0` (real I/O) until it
    /// ends or waits for something other than its connect deadline.
    fn step_at(
        h: &mut Harness,
        m: &dyn crate::runner::machine::Machine,
        t0: std::time::Instant,
    ) -> (Box<dyn crate::runner::machine::Run>, Step) {
        let deadline = t0 + Duration::from_secs(5);
        let (mut run, mut step) = h.start(m, t0);
        let give_up = clock::mono_now() + BOUND;
        while step == Step::Wait(deadline) {
            assert!(clock::mono_now() < give_up, "the handshake never finished");
            step = h
                .advance_after_io(&mut *run, Duration::from_millis(20), t0)
                .1;
        }
        (run, step)
    }

    #[test]
    fn a_server_that_does_not_ask_for_a_client_certificate_passes_at_once() {
        let ca = ca("tcp test CA");
        let file = ca_file(&ca);
        let server = tls_server(leaf(&ca, &LeafSpec::default()), b"");
        let mut h = Harness::new();
        let t0 = clock::mono_now();
        let (run, step) = step_at(&mut h, &*trusting_probe(&server, &file), t0);
        let Step::Done(out) = step else {
            panic!("the run waited after the handshake: {step:?}");
        };
        assert_eq!(out.status(), Status::Pass, "{:?}", out.reason());
        drop(run);
        server.saw();
    }

    #[test]
    fn a_server_that_asks_but_accepts_no_certificate_passes_on_its_session_ticket() {
        let ca = ca("tcp test CA");
        let file = ca_file(&ca);
        let server = asking_for_a_client_certificate(&ca, &rustls::version::TLS13, false, 2);
        let mut h = Harness::new();
        let t0 = clock::mono_now();
        let (mut run, mut step) = step_at(&mut h, &*trusting_probe(&server, &file), t0);
        // Virtual time stands still: only the ticket can end the wait.
        let give_up = clock::mono_now() + BOUND;
        while matches!(step, Step::Wait(_)) && clock::mono_now() < give_up {
            step = h
                .advance_after_io(&mut *run, Duration::from_millis(20), t0)
                .1;
        }
        let Step::Done(out) = step else {
            panic!("the run did not end on the ticket: {step:?}");
        };
        assert_eq!(out.status(), Status::Pass, "{:?}", out.reason());
        drop(run);
        server.saw();
    }

    #[test]
    fn a_server_that_asks_and_then_says_nothing_passes_after_a_short_wait() {
        let ca = ca("tcp test CA");
        let file = ca_file(&ca);
        let server = asking_for_a_client_certificate(&ca, &rustls::version::TLS13, false, 0);
        let mut h = Harness::new();
        let t0 = clock::mono_now();
        let (mut run, step) = step_at(&mut h, &*trusting_probe(&server, &file), t0);
        let Step::Wait(until) = step else {
            panic!("the run did not wait for the server's verdict: {step:?}");
        };
        assert!(
            until > t0 && until < t0 + Duration::from_secs(5),
            "it waits {:?}, within connectTimeoutSecs",
            until - t0
        );
        assert!(matches!(
            h.advance(&mut *run, until - Duration::from_millis(1)),
            Step::Wait(_)
        ));
        let Step::Done(out) = h.advance(&mut *run, until) else {
            panic!("the run did not end at its wait's end");
        };
        assert_eq!(out.status(), Status::Pass, "{:?}", out.reason());
        drop(run);
        server.saw();
    }

    #[test]
    fn tls_fields_are_validated() {
        let missing = std::env::temp_dir().join("probewheel-no-such-ca.pem");
        assert_eq!(
            super::field_error(json!({"port": 1, "tls": "on"})),
            "invalid declaration: field `tls`: expected true or false, got \"on\""
        );
        assert_eq!(
            assert_words(&super::field_error(
                json!({"port": 1, "tls": true, "caFile": missing})
            )),
            format!(
                "invalid declaration: field `caFile`: {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
    }
}

#[cfg(not(feature = "tls"))]
#[test]
fn tls_without_the_feature_is_an_invalid_declaration_naming_it() {
    assert_eq!(
        field_error(json!({"port": 443, "tls": true})),
        "invalid declaration: field `tls`: TLS is not built into this probewheel (it was built without the cargo feature `tls`)"
    );
    // `tls: false` is a plain tcp probe.
    assert!(testing::machine(&decl(json!({"port": 443, "tls": false}))).is_ok());
}

/// Reads the server side of an accepted connection: a passing probe must
/// leave a reset. An ordinary close would read as end of file (and leave
/// this host a TIME_WAIT socket); SO_LINGER 0 or a dissolved connection
/// resets it.
fn assert_reset(listener: &TcpListener) {
    let (mut server_side, _) = listener.accept().unwrap();
    server_side
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let read = io::Read::read(&mut server_side, &mut [0u8; 1]);
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(io::ErrorKind::ConnectionReset)
    );
}

#[test]
fn a_passing_probe_closes_with_a_reset_and_leaves_no_time_wait() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let outcome = run(&*check(json!({"port": port})));
    assert_eq!(outcome.status(), Status::Pass);
    assert_reset(&listener);
}

// Spare sockets (`transport::dial`): lent by the worker (here the
// harness) to its runs, a plain probe's socket is dissolved and reused.

#[test]
fn a_worker_reuses_one_socket_and_still_resets_each_connection() {
    let mut h = Harness::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let m = tcp_machine(json!({"port": port}));
    for _ in 0..5 {
        assert_eq!(h.run(&*m, Duration::from_secs(5)), RunnerOutcome::pass());
        assert_reset(&listener);
        // One socket serves every run: a new one per run would pile up
        // here (up to the list's bound).
        assert_eq!(h.spares_held(), [1, 0]);
    }
    // Refused on a reused socket: the same reason as on a new one, and
    // the socket is kept for the next run, which passes.
    let closed = closed_port_v4();
    let out = h.run(
        &*tcp_machine(json!({"port": closed})),
        Duration::from_secs(5),
    );
    assert_eq!(
        out.reason().unwrap(),
        format!("tcp probe: connect 127.0.0.1:{closed}: {}", refused())
    );
    assert_eq!(h.spares_held(), [1, 0]);
    assert_eq!(h.run(&*m, Duration::from_secs(5)), RunnerOutcome::pass());
    assert_reset(&listener);
    // The families are kept apart.
    let Some(l6) = bind_v6() else { return };
    let m6 = tcp_machine(json!({"host": "::1", "port": l6.local_addr().unwrap().port()}));
    for _ in 0..2 {
        assert_eq!(h.run(&*m6, Duration::from_secs(5)), RunnerOutcome::pass());
        assert_reset(&l6);
    }
    assert_eq!(h.spares_held(), [1, 1]);
}

#[test]
fn a_reused_socket_whose_connect_is_in_flight_waits_and_is_not_kept() {
    let mut h = Harness::new();
    // Dissolving an established connection leaves ECONNRESET pending on
    // the socket; the next connect must not report it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_eq!(
        h.run(&*tcp_machine(json!({"port": port})), Duration::from_secs(5)),
        RunnerOutcome::pass()
    );
    assert_eq!(h.spares_held(), [1, 0]);
    let hang = hanging_listener();
    let hport = hang.addr.port();
    let m = tcp_machine(json!({"port": hport, "connectTimeoutSecs": 60}));
    let t0 = clock::mono_now();
    let (mut run, step) = h.start(&*m, t0);
    assert_eq!(step, Step::Wait(t0 + Duration::from_secs(60)));
    assert_eq!(h.spares_held(), [0, 0], "the spare was not taken");
    wait_for("the run's SYN_SENT socket", Duration::from_secs(5), || {
        syn_sent_to(hport)
    });
    let (_, step) = h.advance_after_io(&mut *run, Duration::from_millis(50), t0);
    assert_eq!(step, Step::Wait(t0 + Duration::from_secs(60)));
    let Step::Done(out) = h.cancel(&mut *run, t0) else {
        panic!("cancel did not end the run");
    };
    assert_eq!(out.reason().unwrap(), "tcp probe: cancelled");
    drop(run);
    // Registered with the poll, so closed rather than kept.
    wait_for("the run's socket to close", Duration::from_secs(2), || {
        !syn_sent_to(hport)
    });
    assert_eq!(h.spares_held(), [0, 0]);
}
