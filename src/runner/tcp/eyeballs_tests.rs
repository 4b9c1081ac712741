//! `ipFamily` and `addresses`, over loopback only: the black hole is a
//! listener whose accept queue is full (the kernel drops further SYNs).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use serde_json::json;

use super::tests::tcp_machine;
use crate::RunnerOutcome;
use crate::clock;
use crate::runner::machine::testing::{Harness, hanging_listener};

/// A resolver that answers every lookup with `addrs`.
fn answers(addrs: Vec<SocketAddr>) -> impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> {
    move |_: &str, _| Ok(addrs.clone())
}

fn live() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// A loopback address nothing listens on.
fn closed() -> SocketAddr {
    live().1
}

#[test]
fn happy_eyeballs_passes_when_the_first_address_is_black_holed() {
    let hang = hanging_listener();
    let (_l, open) = live();
    for fields in [
        json!({"host": "two.test", "port": 1, "connectTimeoutSecs": 5}),
        // Kept connections (`send`) race the same way.
        json!({"host": "two.test", "port": 1, "connectTimeoutSecs": 5, "send": "x"}),
    ] {
        let m = tcp_machine(fields);
        let mut h = Harness::with_resolver(answers(vec![hang.addr, open]));
        let started = clock::mono_now();
        let out = h.run(&*m, Duration::from_secs(5));
        let took = started.elapsed();
        assert_eq!(out, RunnerOutcome::pass());
        println!("happy eyeballs: passed after {took:?} (stagger 250 ms, timeout 5 s)");
    }
}

#[test]
fn addresses_first_waits_for_the_first_address_alone() {
    let hang = hanging_listener();
    let (_l, open) = live();
    let m = tcp_machine(
        json!({"host": "two.test", "port": 1, "connectTimeoutSecs": 1, "addresses": "first"}),
    );
    let out =
        Harness::with_resolver(answers(vec![hang.addr, open])).run(&*m, Duration::from_secs(5));
    assert_eq!(
        out.reason().unwrap(),
        format!("tcp probe: connect {}: timed out after 1 s", hang.addr)
    );
}

#[test]
fn a_timeout_names_every_attempt_in_flight() {
    let (one, two) = (hanging_listener(), hanging_listener());
    let m = tcp_machine(json!({"host": "two.test", "port": 1, "connectTimeoutSecs": 1}));
    let out =
        Harness::with_resolver(answers(vec![one.addr, two.addr])).run(&*m, Duration::from_secs(5));
    assert_eq!(
        out.reason().unwrap(),
        format!(
            "tcp probe: connect {}: timed out after 1 s; connect {}: timed out after 1 s",
            one.addr, two.addr
        )
    );
}

#[test]
fn ip_family_keeps_only_its_addresses() {
    let (_l, open) = live();
    let v6_closed: SocketAddr = format!("[::1]:{}", closed().port()).parse().unwrap();
    // The IPv6 address would come first, and alone with `first`.
    let m =
        tcp_machine(json!({"host": "two.test", "port": 1, "ipFamily": "4", "addresses": "first"}));
    let out =
        Harness::with_resolver(answers(vec![v6_closed, open])).run(&*m, Duration::from_secs(5));
    assert_eq!(out, RunnerOutcome::pass());

    let m = tcp_machine(json!({"host": "two.test", "port": 7, "ipFamily": "6"}));
    let out = Harness::with_resolver(answers(vec![open])).run(&*m, Duration::from_secs(5));
    assert_eq!(
        out.reason().unwrap(),
        "tcp probe: resolve two.test:7: no IPv6 address"
    );

    let m = tcp_machine(json!({"port": open.port(), "ipFamily": "6"}));
    let out = Harness::new().run(&*m, Duration::from_secs(5));
    assert_eq!(
        out.reason().unwrap(),
        format!(
            "tcp probe: resolve 127.0.0.1:{}: no IPv6 address",
            open.port()
        )
    );
}

#[test]
fn invalid_choices_name_the_field() {
    for (fields, want) in [
        (
            json!({"port": 1, "ipFamily": "ipv4"}),
            "field `ipFamily`: expected \"any\", \"4\" or \"6\", got \"ipv4\"",
        ),
        (
            json!({"port": 1, "addresses": "every"}),
            "field `addresses`: expected \"any\", \"first\" or \"all\", got \"every\"",
        ),
        (
            json!({"port": 1, "ipFamily": 4}),
            "field `ipFamily`: expected a string",
        ),
    ] {
        let Err(e) = crate::runner::machine::testing::machine(&super::tests::decl(fields)) else {
            panic!("prepared an invalid declaration: {want}");
        };
        assert!(e.contains(want), "{e} does not contain {want}");
    }
}

#[test]
fn addresses_all_checks_every_address_and_names_each_failure() {
    let (_a, one) = live();
    let (_b, two) = live();
    let (c1, c2) = (closed(), closed());
    let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
    let all = tcp_machine(json!({"host": "all.test", "port": 1, "addresses": "all"}));
    let any = tcp_machine(json!({"host": "all.test", "port": 1}));
    let run = |m: &dyn crate::runner::machine::Machine, addrs| {
        Harness::with_resolver(answers(addrs)).run(m, Duration::from_secs(5))
    };
    assert_eq!(run(&*all, vec![one, two]), RunnerOutcome::pass());
    // One address connecting is enough for `any`, not for `all`.
    assert_eq!(run(&*any, vec![one, c1]), RunnerOutcome::pass());
    assert_eq!(
        run(&*all, vec![one, c1]).reason().unwrap(),
        format!("tcp probe: connect {c1}: {refused}")
    );
    assert_eq!(
        run(&*all, vec![c1, two, c2]).reason().unwrap(),
        format!("tcp probe: connect {c1}: {refused}; connect {c2}: {refused}")
    );
    // The same with a kept connection (for `send`).
    let talk = tcp_machine(json!({"host": "all.test", "port": 1, "addresses": "all", "send": "x"}));
    assert_eq!(run(&*talk, vec![one, two]), RunnerOutcome::pass());
    assert_eq!(
        run(&*talk, vec![c1, two]).reason().unwrap(),
        format!("tcp probe: connect {c1}: {refused}")
    );
}
