//! What a server cannot make a probe do: send the probe's credentials to
//! another origin, connect to a host hidden behind a `\` in a `Location`,
//! pass on a response whose framing is contradictory. Loopback servers
//! only (127.0.0.1 and 127.0.0.2).

use std::io;
use std::net::TcpListener;

use serde_json::json;

use super::tests::{
    Server, answer, assert_fail, assert_pass, ok, redirect, run, send, serve, serve_on,
};

/// The probe's credentials and one header that is not one.
fn credentials() -> serde_json::Value {
    json!({
        "Authorization": "Bearer s3cret",
        "Cookie": "session=abc",
        "Proxy-Authorization": "Basic cHJveHk6cHc=",
        "X-Trace": "kept",
    })
}

/// Asserts that `head` carries the probe's credentials, or none of them;
/// the other header goes everywhere.
#[track_caller]
fn assert_credentials(head: &str, sent: bool) {
    for line in [
        "\r\nAuthorization: Bearer s3cret\r\n",
        "\r\nCookie: session=abc\r\n",
        "\r\nProxy-Authorization: Basic cHJveHk6cHc=\r\n",
    ] {
        assert_eq!(head.contains(line), sent, "{line:?} in\n{head}");
    }
    assert!(head.contains("\r\nX-Trace: kept\r\n"), "{head}");
}

/// A server on 127.0.0.2, when this machine routes it (Linux does, the
/// whole of 127.0.0.0/8 is loopback).
fn serve_second(conns: usize, response: String) -> Option<Server> {
    match serve_on("127.0.0.2:0", conns, Box::new(answer(response))) {
        Ok(srv) => Some(srv),
        Err(e) => {
            println!("note: cannot bind 127.0.0.2 here ({e}); test skipped");
            None
        }
    }
}

#[test]
fn credentials_are_not_sent_to_a_redirect_on_another_host() {
    let Some(other) = serve_second(1, ok("elsewhere")) else {
        return;
    };
    let target = format!("http://{}/landing", other.addr);
    let origin = serve(1, move |_, s, _| send(s, redirect(302, &target).as_bytes()));
    assert_pass(&run(json!({
        "url": origin.url("/"), "headers": credentials(), "bodyContains": "elsewhere",
    })));
    assert_credentials(&origin.requests()[0], true);
    assert_credentials(&other.requests()[0], false);
}

#[test]
fn credentials_are_not_sent_to_another_port_of_the_same_host() {
    let other = serve(1, answer(ok("other port")));
    let target = other.url("/");
    let origin = serve(1, move |_, s, _| send(s, redirect(301, &target).as_bytes()));
    assert_pass(&run(
        json!({"url": origin.url("/"), "headers": credentials()}),
    ));
    assert_credentials(&origin.requests()[0], true);
    assert_credentials(&other.requests()[0], false);
}

#[test]
fn credentials_follow_redirects_within_the_origin_and_not_back_after_leaving_it() {
    // origin -> /same (kept) -> other port (dropped) -> origin again:
    // still dropped, the other origin chose that last request.
    let other = serve(1, |_, s, req| {
        let port = req.split("back=").nth(1).and_then(|r| r.split(' ').next());
        let back = format!("http://127.0.0.1:{}/back", port.unwrap_or("1"));
        send(s, redirect(307, &back).as_bytes());
    });
    let other_url = other.url("/");
    let origin = serve(3, move |i, s, _| match i {
        0 => send(s, redirect(302, "/same").as_bytes()),
        1 => {
            // Tell the other server where to send the probe back.
            let port = s.local_addr().unwrap().port();
            send(
                s,
                redirect(302, &format!("{other_url}?back={port}")).as_bytes(),
            );
        }
        _ => send(s, ok("home").as_bytes()),
    });
    assert_pass(&run(json!({
        "url": origin.url("/start"), "headers": credentials(), "bodyContains": "home",
    })));
    let heads = origin.requests();
    assert_credentials(&heads[0], true);
    assert!(heads[1].starts_with("GET /same "), "{}", heads[1]);
    assert_credentials(&heads[1], true);
    assert!(heads[2].starts_with("GET /back "), "{}", heads[2]);
    assert_credentials(&heads[2], false);
    assert_credentials(&other.requests()[0], false);
}

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
