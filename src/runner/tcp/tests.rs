//! Real loopback sockets only: every address contacted is in 127.0.0.0/8 or
//! `::1`.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::Status;
use crate::clock;
use crate::runner::CancelState;

fn decl(fields: Value) -> Declaration {
    let mut v = json!({"kind": "tcp", "mode": "enforce"});
    v.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    Declaration::from_value("t", v)
}

fn check(fields: Value) -> Arc<dyn Check> {
    TcpRunner.prepare(&decl(fields)).expect("valid declaration")
}

fn field_error(fields: Value) -> String {
    match TcpRunner.prepare(&decl(fields)) {
        Ok(_) => panic!("prepared an invalid declaration"),
        Err(e) => e.to_string(),
    }
}

fn run(check: &dyn Check) -> RunnerOutcome {
    let cancel = CancelState::default();
    check.run(&RunContext::for_test(&cancel))
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

/// A listener whose accept queue is full, so that a further connect to it
/// never completes (the SYN is dropped) until the caller gives up. The
/// fillers must stay alive as long as the listener.
struct HangingListener {
    addr: SocketAddr,
    _listener: TcpListener,
    _fillers: Vec<TcpStream>,
}

fn hanging_listener() -> HangingListener {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: a valid listening socket; listening again only changes the
    // backlog (to the smallest the kernel allows).
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..64 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => fillers.push(s),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return HangingListener {
                    addr,
                    _listener: listener,
                    _fillers: fillers,
                };
            }
            Err(e) => panic!("filling the backlog of {addr}: {e}"),
        }
    }
    panic!("the backlog of {addr} never filled up");
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
fn cancelling_a_hanging_connect_returns_promptly() {
    let hang = hanging_listener();
    let port = hang.addr.port();
    let check = check(json!({"port": port, "connectTimeoutSecs": 60}));
    let cancel = Arc::new(CancelState::default());
    let (tx, rx) = mpsc::channel();
    {
        let cancel = Arc::clone(&cancel);
        std::thread::spawn(move || {
            let out = check.run(&RunContext::for_test(&cancel));
            let _ = tx.send(out);
        });
    }
    wait_for(
        "the probe's SYN_SENT socket",
        Duration::from_secs(5),
        || syn_sent_to(port),
    );
    assert!(
        rx.try_recv().is_err(),
        "the run ended before it was cancelled"
    );
    cancel.set_generation(1);
    let out = rx
        .recv_timeout(Duration::from_secs(1))
        .expect("cancelled run did not return within 1 s");
    assert_eq!(out.reason().unwrap(), "tcp probe: cancelled");
    wait_for(
        "the probe's socket to close",
        Duration::from_secs(2),
        || !syn_sent_to(port),
    );
}

#[test]
fn a_run_cancelled_by_shutdown_does_not_connect() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let cancel = CancelState::default();
    cancel.set_shutdown();
    let out = check(json!({"port": port})).run(&RunContext::for_test(&cancel));
    assert_eq!(out.reason().unwrap(), "tcp probe: cancelled");
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
    assert_eq!(c.probe.target, Target::Name("db-1.internal".into()));
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
