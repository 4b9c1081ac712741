//! What a server cannot make a probe do: pass on a response whose
//! framing is contradictory. Loopback servers only.

use serde_json::json;

use super::tests::{answer, assert_fail, assert_pass, run, serve};

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
