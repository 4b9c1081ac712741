//! `ipFamily` and `addresses` of `http`, over loopback only.

use std::net::SocketAddr;

use serde_json::json;

use super::tests::{TIMEOUT_BOUND, answer, assert_pass, http_machine, ok, serve};
use crate::clock;
use crate::runner::machine::testing::{Harness, hanging_listener};

#[test]
fn a_black_holed_first_address_costs_the_stagger_not_the_timeout() {
    let hang = hanging_listener();
    let srv = serve(1, answer(ok("second")));
    let addrs = vec![hang.addr, srv.addr];
    let resolver = move |_: &str, _: u16| Ok(addrs.clone());
    let m = http_machine(
        json!({"url": "http://two.test/", "bodyContains": "second", "connectTimeoutSecs": 5}),
    );
    let started = clock::mono_now();
    let out = Harness::with_resolver(resolver).run(&*m, TIMEOUT_BOUND);
    let took = started.elapsed();
    assert_pass(&out);
    println!("http happy eyeballs: passed after {took:?} (stagger 250 ms, timeout 5 s)");
    assert_eq!(srv.requests().len(), 1);
}

#[test]
fn ip_family_and_addresses_first_apply_to_http() {
    let hang = hanging_listener();
    let live = serve(0, answer(ok("")));
    let addrs: Vec<SocketAddr> = vec![hang.addr, live.addr];
    let resolver = move |_: &str, _: u16| Ok(addrs.clone());
    let m = http_machine(json!({
        "url": "http://two.test/", "addresses": "first", "connectTimeoutSecs": 1, "timeoutSecs": 3,
    }));
    let out = Harness::with_resolver(resolver).run(&*m, TIMEOUT_BOUND);
    let reason = out.reason().unwrap();
    assert!(
        reason.contains(&format!("connecting to {}", hang.addr)),
        "{reason}"
    );
    let m = http_machine(json!({"url": "http://127.0.0.1:1/", "ipFamily": "6"}));
    let out = Harness::new().run(&*m, TIMEOUT_BOUND);
    let reason = out.reason().unwrap();
    assert!(
        reason.ends_with("resolve 127.0.0.1:1: no IPv6 address"),
        "{reason}"
    );
    drop(live);
}
