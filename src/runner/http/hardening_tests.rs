//! What a server cannot make a probe do: connect to a host hidden behind
//! a `\` in a `Location`, pass on a response whose framing is
//! contradictory. Loopback servers only (127.0.0.1 and 127.0.0.2).

use std::io;
use std::net::TcpListener;

use serde_json::json;

use super::tests::{answer, assert_fail, assert_pass, ok, redirect, run, send, serve};

#[test]
fn a_backslash_in_a_location_is_a_path_separator_not_user_info() {
    // Read as user-info, `127.0.0.1:P\` would hide the real host 127.0.0.2.
    let trap = match TcpListener::bind("127.0.0.2:0") {
        Ok(trap) => trap,
        Err(e) => {
            println!("note: cannot bind 127.0.0.2 here ({e}); test skipped");
            return;
        }
    };
    trap.set_nonblocking(true).unwrap();
    let trap_addr = trap.local_addr().unwrap();
    let srv = serve(2, move |i, s, _| {
        if i == 0 {
            let port = s.local_addr().unwrap().port();
            let location = format!("http://127.0.0.1:{port}\\@{trap_addr}/");
            send(s, redirect(302, &location).as_bytes());
        } else {
            send(s, ok("same host").as_bytes());
        }
    });
    assert_pass(&run(json!({
        "url": srv.url("/"), "timeoutSecs": 2, "bodyContains": "same host",
    })));
    let addr = srv.addr;
    let heads = srv.requests();
    assert!(
        heads[1].starts_with(&format!("GET /@{trap_addr}/ HTTP/1.1\r\n")),
        "{}",
        heads[1]
    );
    let host = format!("\r\nHost: {addr}\r\n");
    assert!(heads[1].contains(&host), "{}", heads[1]);
    match trap.accept() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        other => panic!("the probe connected to the hidden host: {other:?}"),
    }
}

#[test]
fn two_different_content_lengths_fail_even_without_body_contains() {
    let srv = serve(
        1,
        answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"),
    );
    assert_fail(
        &run(json!({"url": srv.url("/")})),
        "http probe: malformed response: two different Content-Length values (2 and 3)",
    );
    srv.requests();
}

#[test]
fn a_redirect_with_two_different_content_lengths_is_not_followed() {
    let srv = serve(
        1,
        answer(
            "HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\nContent-Length: 9\r\n\r\n",
        ),
    );
    assert_fail(
        &run(json!({"url": srv.url("/")})),
        "http probe: malformed response: two different Content-Length values (0 and 9)",
    );
    assert_eq!(srv.requests().len(), 1);
}

#[test]
fn repeated_identical_content_lengths_are_accepted() {
    let srv = serve(
        2,
        answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\nok"),
    );
    assert_pass(&run(json!({"url": srv.url("/")})));
    assert_pass(&run(json!({"url": srv.url("/"), "bodyContains": "ok"})));
    srv.requests();
}

#[test]
fn an_invalid_content_length_fails_even_without_body_contains() {
    let srv = serve(
        1,
        answer("HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nok"),
    );
    assert_fail(
        &run(json!({"url": srv.url("/")})),
        "http probe: malformed response: invalid Content-Length",
    );
    srv.requests();
}
