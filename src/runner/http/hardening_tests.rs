//! What a server cannot make a probe do: send the probe's credentials to
//! another origin, connect to a host hidden behind a `\` in a `Location`,
//! pass on a response whose framing is contradictory; and what a slow
//! worker cannot make a probe report: an answer that arrived in time read
//! as a timeout. Loopback servers only (127.0.0.1 and 127.0.0.2).

use std::io;
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;

use super::tests::{
    Server, TIMEOUT_BOUND, answer, assert_fail, assert_pass, http_machine, ok, redirect, run, send,
    serve, serve_on, started_and_sent,
};
use crate::clock;
use crate::runner::machine::Step;
use crate::runner::machine::testing::Harness;

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

/// A server that reads the request, says so, and answers `response` only
/// when told to (then closes).
fn server_answering_on_cue(response: String) -> (Server, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (asked_tx, asked) = mpsc::channel();
    let (go, cue) = mpsc::channel::<()>();
    let cue = std::sync::Mutex::new(cue);
    let srv = serve(1, move |_, s, _| {
        let _ = asked_tx.send(());
        if cue.lock().unwrap().recv_timeout(TIMEOUT_BOUND).is_ok() {
            send(s, response.as_bytes());
        }
    });
    (srv, asked, go)
}

#[test]
fn an_answer_that_arrived_in_time_passes_when_it_is_read_after_the_deadline() {
    for needle in [None, Some("ready")] {
        let (srv, asked, go) = server_answering_on_cue(ok("all ready"));
        let mut fields = json!({"url": srv.url("/"), "timeoutSecs": 3});
        if let Some(needle) = needle {
            fields["bodyContains"] = json!(needle);
        }
        let m = http_machine(fields);
        let mut h = Harness::new();
        let t0 = clock::mono_now();
        let mut run = started_and_sent(&mut h, &*m, t0, &asked);
        go.send(()).unwrap();
        // The answer is in the socket before the deadline (virtual time
        // stands at the start); the worker only gets to it later.
        assert!(h.wait_io(TIMEOUT_BOUND), "the answer never arrived");
        let late = t0 + Duration::from_secs(3) + Duration::from_millis(500);
        let Step::Done(out) = h.advance(&mut *run, late) else {
            panic!("the run did not end with its answer in the socket");
        };
        assert_pass(&out);
        srv.requests();
    }
}

#[test]
fn past_the_deadline_a_run_still_times_out_when_nothing_was_read() {
    let (srv, asked, go) = server_answering_on_cue(ok("late"));
    let m = http_machine(json!({"url": srv.url("/"), "timeoutSecs": 3}));
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let mut run = started_and_sent(&mut h, &*m, t0, &asked);
    let late = t0 + Duration::from_secs(4);
    let Step::Done(out) = h.advance(&mut *run, late) else {
        panic!("the run did not end after its deadline");
    };
    assert_fail(
        &out,
        "http probe: timed out after 3 s while waiting for the response head",
    );
    drop(go);
    srv.requests();
}

#[test]
fn past_the_deadline_a_redirect_is_not_followed() {
    let (srv, asked, go) = server_answering_on_cue(redirect(302, "/next"));
    let m = http_machine(json!({"url": srv.url("/"), "timeoutSecs": 3}));
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let mut run = started_and_sent(&mut h, &*m, t0, &asked);
    go.send(()).unwrap();
    assert!(h.wait_io(TIMEOUT_BOUND), "the answer never arrived");
    let Step::Done(out) = h.advance(&mut *run, t0 + Duration::from_secs(4)) else {
        panic!("the run did not end after its deadline");
    };
    assert_fail(
        &out,
        &format!(
            "http probe: timed out after 3 s before following the redirect to http://{}/next",
            srv.addr
        ),
    );
    assert_eq!(srv.requests().len(), 1);
}
