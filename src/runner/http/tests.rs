//! The `http` kind against real loopback servers written here: one thread
//! per server, a bounded number of connections, and a patience limit after
//! which every server stops by itself. Only loopback addresses are used.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::{Value, json};

use crate::clock;
use crate::decl::Declaration;
use crate::runner::machine::{Machine, testing};
use crate::runner::{RunnerOutcome, Status};

/// How long a server waits for a connection, or for a request, before it
/// stops on its own.
const PATIENCE: Duration = Duration::from_secs(10);
/// Generous bound for runs that must end on a 1 s timeout.
pub(super) const TIMEOUT_BOUND: Duration = Duration::from_secs(5);

/// A loopback server: its address and the request heads it saw.
pub(super) struct Server {
    pub(super) addr: SocketAddr,
    thread: JoinHandle<Vec<String>>,
}

impl Server {
    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub(super) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits for the server to stop and returns the request heads.
    pub(super) fn requests(self) -> Vec<String> {
        self.thread.join().expect("server thread panicked")
    }
}

type Handler = dyn Fn(usize, &mut TcpStream, &str) + Send + 'static;

/// Serves up to `conns` connections on 127.0.0.1; `f(i, stream, request)`
/// answers connection `i` after its request head was read.
pub(super) fn serve(
    conns: usize,
    f: impl Fn(usize, &mut TcpStream, &str) + Send + 'static,
) -> Server {
    serve_on("127.0.0.1:0", conns, Box::new(f)).expect("bind 127.0.0.1")
}

pub(super) fn serve_on(bind: &str, conns: usize, f: Box<Handler>) -> io::Result<Server> {
    let listener = TcpListener::bind(bind)?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let thread = thread::spawn(move || {
        let mut heads = Vec::new();
        let give_up = clock::mono_now() + PATIENCE;
        for i in 0..conns {
            let mut stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if clock::mono_now() > give_up {
                            return heads;
                        }
                        clock::sleep(Duration::from_millis(2));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            let head = read_request_head(&mut stream);
            f(i, &mut stream, &head);
            heads.push(head);
        }
        heads
    });
    Ok(Server { addr, thread })
}

/// Reads up to the blank line (or 64 KiB, or end of stream).
fn read_request_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Writes `bytes`, ignoring a client that went away.
pub(super) fn send(stream: &mut TcpStream, bytes: &[u8]) {
    let _ = stream.write_all(bytes);
}

/// A handler that answers every connection with `response`.
pub(super) fn answer(
    response: impl Into<Vec<u8>>,
) -> impl Fn(usize, &mut TcpStream, &str) + Send + 'static {
    let response = response.into();
    move |_, s, _| send(s, &response)
}

/// Holds the connection open without answering until the client leaves.
fn hold(stream: &mut TcpStream) {
    let _ = stream.set_read_timeout(Some(PATIENCE));
    let _ = stream.read(&mut [0u8; 16]);
}

pub(super) fn prepare(fields: Value) -> Result<Arc<dyn Machine>, String> {
    let mut decl = json!({"kind": "http", "mode": "enforce"});
    decl.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    testing::machine(&Declaration::from_value("web", decl))
}

/// Runs once on the real clock; a run ends by its own deadline.
pub(super) fn run(fields: Value) -> RunnerOutcome {
    let check = prepare(fields).expect("valid declaration");
    testing::run_once(&*check, Duration::from_secs(90))
}

/// Runs and returns the outcome with how long the run took.
fn timed_run(fields: Value) -> (RunnerOutcome, Duration) {
    let start = clock::mono_now();
    let out = run(fields);
    (out, clock::mono_now() - start)
}

pub(super) fn assert_pass(out: &RunnerOutcome) {
    assert_eq!(out.status(), Status::Pass, "failed: {:?}", out.reason());
}

pub(super) fn assert_fail(out: &RunnerOutcome, reason: &str) {
    assert_eq!(out.status(), Status::Fail);
    assert_eq!(out.reason(), Some(reason));
}

pub(super) fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
        body.len()
    )
}

pub(super) fn redirect(status: u16, location: &str) -> String {
    format!("HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
}

#[test]
fn status_200_passes() {
    let srv = serve(1, answer(ok("hello")));
    assert_pass(&run(json!({"url": srv.url("/health")})));
    srv.requests();
}

#[test]
fn status_mismatch_fails_with_both_codes() {
    let srv = serve(
        2,
        answer("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"),
    );
    assert_fail(
        &run(json!({"url": srv.url("/")})),
        "http probe: status 503, expected 200",
    );
    assert_pass(&run(json!({"url": srv.url("/"), "expectStatus": 503})));
    srv.requests();
}

/// A response with `status` and an empty body.
fn status(code: u16) -> String {
    format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n")
}

/// blackbox_exporter `TestHTTPStatusCodes` (`valid_status_codes`), same
/// verdicts; its default (an empty list) is 2xx, written `"2xx"` here.
#[test]
fn status_lists_like_blackbox_valid_status_codes() {
    let cases = [
        (200, json!("2xx"), true),
        (201, json!("2xx"), true),
        (299, json!("2xx"), true),
        (300, json!("2xx"), false),
        (404, json!("2xx"), false),
        (404, json!([200, 404]), true),
        (200, json!([200, 404]), true),
        (201, json!([200, 404]), false),
        (404, json!([404]), true),
        (200, json!([404]), false),
    ];
    let codes: Vec<u16> = cases.iter().map(|c| c.0).collect();
    let srv = serve(cases.len(), move |i, s, _| {
        send(s, status(codes[i]).as_bytes())
    });
    for (code, expect, passes) in cases {
        let out = run(json!({"url": srv.url("/"), "expectStatus": expect}));
        assert_eq!(
            out.status() == Status::Pass,
            passes,
            "{code} {expect}: {out:?}"
        );
    }
    assert_eq!(srv.requests().len(), 10);
}

#[test]
fn a_status_mismatch_names_the_codes_and_classes_expected() {
    let srv = serve(2, answer(status(503)));
    assert_fail(
        &run(json!({"url": srv.url("/"), "expectStatus": ["2xx", 301]})),
        "http probe: status 503, expected 2xx or 301",
    );
    assert_fail(
        &run(json!({"url": srv.url("/"), "expectStatus": [200, 204, "4xx"]})),
        "http probe: status 503, expected 200, 204 or 4xx",
    );
    srv.requests();
}

#[test]
fn redirects_are_answers_only_when_the_expected_set_admits_one() {
    let srv = serve(5, |i, s, _| match i {
        0 | 1 | 3 => send(s, redirect(302, "/next").as_bytes()),
        _ => send(s, status(204).as_bytes()),
    });
    // 302 is admitted: it is the answer, not followed.
    assert_pass(&run(
        json!({"url": srv.url("/"), "expectStatus": ["2xx", 302]}),
    ));
    // 2xx only: the redirect is followed to the 204.
    assert_pass(&run(json!({"url": srv.url("/"), "expectStatus": "2xx"})));
    assert_pass(&run(
        json!({"url": srv.url("/"), "expectStatus": [200, 204]}),
    ));
    let heads = srv.requests();
    let paths: Vec<&str> = heads.iter().map(|h| h.split(' ').nth(1).unwrap()).collect();
    assert_eq!(paths, ["/", "/", "/next", "/", "/next"]);
}

/// Reads the request body the head announces with `Content-Length`.
fn request_body(stream: &mut TcpStream, head: &str) -> Vec<u8> {
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |n| n.trim().parse().unwrap());
    let mut body = vec![0; len];
    stream.read_exact(&mut body).unwrap();
    body
}

/// Answers 200 with the request's method and body.
fn echo(_: usize, s: &mut TcpStream, head: &str) {
    let body = request_body(s, head);
    let method = head.split(' ').next().unwrap();
    let text = format!("{method} {}", String::from_utf8_lossy(&body));
    send(s, ok(&text).as_bytes());
}

/// Consul `TestCheckHTTPBody` ("get body", "post body", "post json body"):
/// the server echoes the body, the check passes on seeing it.
#[test]
fn method_and_body_like_consul_check_http_body() {
    let cases = [
        ("GET", json!({}), "hello world"),
        ("POST", json!({}), "hello world"),
        (
            "POST",
            json!({"Content-Type": "application/json"}),
            "{\"foo\":\"bar\"}",
        ),
    ];
    let srv = serve(cases.len(), echo);
    for (method, headers, body) in &cases {
        let out = run(
            json!({"url": srv.url("/"), "method": method, "headers": headers,
            "body": body, "bodyContains": format!("{method} {body}")}),
        );
        assert_pass(&out);
    }
    let heads = srv.requests();
    assert!(heads[0].starts_with("GET / HTTP/1.1\r\n"), "{}", heads[0]);
    assert!(
        heads[1].contains("\r\nContent-Length: 11\r\n"),
        "{}",
        heads[1]
    );
    assert!(
        heads[2].contains("\r\nContent-Type: application/json\r\n"),
        "{}",
        heads[2]
    );
}

#[test]
fn head_reads_no_body_and_put_without_body_sends_a_zero_length() {
    let srv = serve(2, |i, s, head| match i {
        // A HEAD answer announces a body it does not send.
        0 => send(s, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
        _ => echo(i, s, head),
    });
    assert_pass(&run(json!({"url": srv.url("/"), "method": "HEAD"})));
    assert_pass(&run(
        json!({"url": srv.url("/"), "method": "PUT", "bodyContains": "PUT "}),
    ));
    let heads = srv.requests();
    assert!(heads[0].starts_with("HEAD / HTTP/1.1\r\n"), "{}", heads[0]);
    assert!(!heads[0].contains("Content-Length"), "{}", heads[0]);
    assert!(
        heads[1].contains("\r\nContent-Length: 0\r\n"),
        "{}",
        heads[1]
    );
}

#[test]
fn a_303_turns_a_post_into_a_get_and_a_307_repeats_it() {
    let srv = serve(4, |i, s, head| match i {
        0 => send(s, redirect(303, "/done").as_bytes()),
        2 => {
            request_body(s, head);
            send(s, redirect(307, "/again").as_bytes());
        }
        _ => echo(i, s, head),
    });
    let post = |expect: &str| json!({"url": srv.url("/"), "method": "POST", "body": "x=1", "bodyContains": expect});
    assert_pass(&run(post("GET ")));
    assert_pass(&run(post("POST x=1")));
    srv.requests();
}

#[test]
fn body_file_is_read_at_prepare_and_an_unreadable_one_is_invalid() {
    let dir = std::env::temp_dir().join(format!("probewheel-http-body-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("body.json");
    std::fs::write(&file, "{\"probe\":1}").unwrap();
    let srv = serve(1, echo);
    assert_pass(&run(json!({"url": srv.url("/"), "method": "POST",
        "bodyFile": file, "bodyContains": "POST {\"probe\":1}"})));
    srv.requests();
    let missing = dir.join("missing");
    let err = prepare(json!({"url": "http://127.0.0.1/", "bodyFile": missing}))
        .err()
        .unwrap();
    assert!(
        err.starts_with(&format!(
            "invalid declaration: field `bodyFile`: cannot read {missing:?}: "
        )),
        "{err}"
    );
    std::fs::write(&file, vec![b'x'; 64 * 1024 + 1]).unwrap();
    let err = prepare(json!({"url": "http://127.0.0.1/", "bodyFile": file}))
        .err()
        .unwrap();
    assert!(
        err.ends_with("larger than 65536 bytes (65537 bytes)"),
        "{err}"
    );
    let err = prepare(json!({"url": "http://127.0.0.1/", "bodyFile": dir}))
        .err()
        .unwrap();
    assert!(err.ends_with("not a regular file (a directory)"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn method_and_body_fields_are_validated() {
    let cases = [
        (
            json!({"method": "GET POST"}),
            r#"field `method`: expected an HTTP method (a token of at most 32 characters such as GET, HEAD or POST), got "GET POST""#,
        ),
        (
            json!({"method": ""}),
            r#"field `method`: expected an HTTP method (a token of at most 32 characters such as GET, HEAD or POST), got """#,
        ),
        (
            json!({"method": 1}),
            "field `method`: expected a string, got 1",
        ),
        (
            json!({"body": "x", "bodyFile": "/f"}),
            "field `bodyFile`: `body` and `bodyFile` exclude each other",
        ),
        (
            json!({"body": "x".repeat(65537)}),
            "field `body`: 65537 bytes is longer than 64 KiB",
        ),
        (
            json!({"bodyFile": ""}),
            "field `bodyFile`: the path is empty",
        ),
        (
            json!({"method": "HEAD", "bodyNotContains": "x"}),
            "field `bodyNotContains`: a HEAD request reads no body to check",
        ),
    ];
    for (mut fields, want) in cases {
        fields["url"] = json!("http://127.0.0.1/");
        assert_eq!(
            prepare(fields.clone()).err(),
            Some(format!("invalid declaration: {want}")),
            "{fields}"
        );
    }
    assert!(prepare(json!({"url": "http://127.0.0.1/", "method": "PROPFIND", "body": ""})).is_ok());
}

/// The milliseconds in a `maxResponseMs` reason, which must otherwise be `want`
/// with `N` in their place.
fn took_ms(reason: &str, want: &str) -> u128 {
    let (before, rest) = want.split_once('N').unwrap();
    let digits = reason
        .strip_prefix(before)
        .unwrap_or_else(|| panic!("{reason}"));
    let n: String = digits.chars().take_while(char::is_ascii_digit).collect();
    assert_eq!(&digits[n.len()..], rest, "{reason}");
    n.parse().unwrap()
}

#[test]
fn max_response_ms_fails_a_slow_answer_with_the_time_taken() {
    let srv = serve(2, |_, s, _| {
        clock::sleep(Duration::from_millis(300));
        send(s, ok("up").as_bytes());
    });
    let out = run(json!({"url": srv.url("/"), "maxResponseMs": 100}));
    assert_eq!(out.status(), Status::Fail);
    let want = "http probe: the response took N ms, more than maxResponseMs (100 ms)";
    assert!(took_ms(out.reason().unwrap(), want) >= 300);
    assert_pass(&run(json!({"url": srv.url("/"), "maxResponseMs": 10_000})));
    srv.requests();
}

#[test]
fn max_response_ms_counts_the_whole_run_redirects_included() {
    let srv = serve(2, |i, s, _| {
        clock::sleep(Duration::from_millis(150));
        match i {
            0 => send(s, redirect(302, "/next").as_bytes()),
            _ => send(s, ok("up").as_bytes()),
        }
    });
    let port = srv.port();
    let out = run(json!({"url": srv.url("/"), "maxResponseMs": 250}));
    let want = format!(
        "http probe: the response took N ms, more than maxResponseMs (250 ms) (after 1 redirect, at http://127.0.0.1:{port}/next)"
    );
    assert!(took_ms(out.reason().unwrap(), &want) >= 300);
    srv.requests();
}

/// kubelet's probe handler in `TestHTTPProbeChecker_NonLocalRedirects`:
/// `/redirect?loc=X` redirects (302) to X, `/loop` to itself, `/success`
/// answers 200, anything else 500.
fn kubelet_handler(_: usize, s: &mut TcpStream, head: &str) {
    let path = head.split(' ').nth(1).unwrap();
    match path.split_once("?loc=") {
        Some(("/redirect", loc)) => send(s, redirect(302, loc).as_bytes()),
        _ if path == "/loop" => send(s, redirect(302, "/loop").as_bytes()),
        _ if path == "/success" => send(s, ok("").as_bytes()),
        _ => send(s, status(500).as_bytes()),
    }
}

/// kubelet `TestHTTPProbeChecker_NonLocalRedirects`, same verdicts: its
/// "local" prober is our `"sameHost"`, its "nonlocal" one our `true`
/// (kubelet's warning counts as a pass). The "bogus nonlocal" host is
/// 127.0.0.2 here, on a port nothing listens on: another host, loopback only.
#[test]
fn same_host_redirects_like_kubelet_non_local_redirects() {
    let newport = serve(4, kubelet_handler);
    let np = newport.port();
    // Per mode: (location, connections it takes, sameHost passes, true passes).
    let cases = [
        ("/success".to_owned(), 2, true, true),
        ("/fail".to_owned(), 2, false, false),
        (format!("http://127.0.0.1:{np}/success"), 1, true, true),
        (format!("http://127.0.0.1:{np}/fail"), 1, false, false),
        ("http://127.0.0.2:1/fail".to_owned(), 1, true, false),
        ("/loop".to_owned(), 11, false, false),
    ];
    let conns: usize = cases.iter().map(|c| 2 * c.1).sum();
    let srv = serve(conns, kubelet_handler);
    for (loc, _, same_host, all) in &cases {
        let url = srv.url(&format!("/redirect?loc={loc}"));
        for (follow, passes) in [(json!("sameHost"), same_host), (json!(true), all)] {
            let out = run(json!({"url": url, "followRedirects": follow}));
            assert_eq!(
                out.status() == Status::Pass,
                *passes,
                "{loc} {follow}: {out:?}"
            );
        }
    }
    srv.requests();
    newport.requests();
}

#[test]
fn follow_redirects_false_judges_the_redirect_itself() {
    let srv = serve(2, answer(redirect(302, "/elsewhere")));
    assert_fail(
        &run(json!({"url": srv.url("/"), "followRedirects": false})),
        "http probe: status 302, expected 200",
    );
    assert_pass(&run(
        json!({"url": srv.url("/"), "followRedirects": false, "expectStatus": "3xx"}),
    ));
    assert_eq!(srv.requests().len(), 2);
    let err = prepare(json!({"url": "http://127.0.0.1/", "followRedirects": "same"}));
    assert_eq!(
        err.err().as_deref(),
        Some(
            r#"invalid declaration: field `followRedirects`: expected true, false or "sameHost", got "same""#
        )
    );
}

#[test]
fn body_contains_found_and_not_found() {
    let srv = serve(2, answer(ok("status: ready\n")));
    assert_pass(&run(json!({"url": srv.url("/"), "bodyContains": "ready"})));
    assert_fail(
        &run(json!({"url": srv.url("/"), "bodyContains": "steady \"go\""})),
        r#"http probe: body did not contain "steady \"go\""; the body began "status: ready\n""#,
    );
    srv.requests();
}

/// blackbox_exporter `TestFailIfBodyMatchesRegexp` ("one regex, match",
/// "one regex, no match") and `TestFailIfBodyNotMatchesRegexp` (one regex),
/// with our substrings for its regular expressions: same verdicts.
#[test]
fn body_checks_like_blackbox_fail_if_body_matches() {
    let bad = "Bad news: could not connect to database server";
    let good = "Download the latest version here";
    let cases = [
        (
            bad,
            "bodyNotContains",
            "could not connect to database",
            false,
        ),
        (
            good,
            "bodyNotContains",
            "could not connect to database",
            true,
        ),
        (bad, "bodyContains", good, false),
        (good, "bodyContains", good, true),
    ];
    let bodies: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let srv = serve(cases.len(), move |i, s, _| {
        send(s, ok(bodies[i]).as_bytes())
    });
    for (body, field, needle, passes) in cases {
        let out = run(json!({"url": srv.url("/"), field: needle}));
        assert_eq!(
            out.status() == Status::Pass,
            passes,
            "{body} {field}: {out:?}"
        );
    }
    srv.requests();
}

#[test]
fn body_not_contains_fails_naming_the_text_and_the_body_start() {
    let srv = serve(5, |i, s, _| match i {
        0..=2 => send(s, ok("{\"status\":\"DOWN\",\n\"db\":\"UP\"}").as_bytes()),
        _ => send(s, ok("").as_bytes()),
    });
    assert_fail(
        &run(json!({"url": srv.url("/"), "bodyNotContains": "\"DOWN\""})),
        r#"http probe: body contained "\"DOWN\""; the body began "{\"status\":\"DOWN\",\n\"db\":\"UP\"}""#,
    );
    // Both checks: the forbidden text fails the probe even when the wanted one is there.
    assert_fail(
        &run(json!({"url": srv.url("/"), "bodyContains": "UP", "bodyNotContains": "DOWN"})),
        r#"http probe: body contained "DOWN"; the body began "{\"status\":\"DOWN\",\n\"db\":\"UP\"}""#,
    );
    assert_pass(&run(
        json!({"url": srv.url("/"), "bodyContains": "UP", "bodyNotContains": "FAIL"}),
    ));
    assert_pass(&run(
        json!({"url": srv.url("/"), "bodyNotContains": "DOWN"}),
    ));
    assert_fail(
        &run(json!({"url": srv.url("/"), "bodyContains": "UP"})),
        r#"http probe: body did not contain "UP"; the body was empty"#,
    );
    srv.requests();
}

#[test]
fn body_not_contains_searches_the_first_64_kib_only() {
    let mut body = ".".repeat(70 * 1024);
    body.push_str("DOWN");
    let srv = serve(1, answer(ok(&body)));
    assert_pass(&run(
        json!({"url": srv.url("/"), "bodyNotContains": "DOWN"}),
    ));
    body.insert_str(0, "DOWN");
    let srv2 = serve(1, answer(ok(&body)));
    let out = run(json!({"url": srv2.url("/"), "bodyNotContains": "DOWN"}));
    assert_eq!(out.status(), Status::Fail);
    srv.requests();
    srv2.requests();
}

#[test]
fn the_body_start_in_a_reason_is_200_bytes_on_one_line() {
    let body = format!("{}\u{e9}{}", "a\r\n".repeat(66), "z".repeat(300));
    let srv = serve(1, answer(ok(&body)));
    let out = run(json!({"url": srv.url("/"), "bodyContains": "nope"}));
    let reason = out.reason().unwrap();
    let shown = reason.split_once("; the body began ").unwrap().1;
    // 198 bytes, then the 2-byte \u{e9} fits: 200, quoted and escaped.
    let want = format!("{}\u{e9}", "a\r\n".repeat(66))
        .escape_debug()
        .to_string();
    assert_eq!(shown, format!("\"{want}\""));
    assert!(!reason.contains('\n') && !reason.contains('\r'));
    srv.requests();
}

#[test]
fn long_needles_are_cut_in_the_reason() {
    let srv = serve(1, answer(ok("x")));
    let needle = "n".repeat(300);
    let out = run(json!({"url": srv.url("/"), "bodyContains": needle}));
    assert_fail(
        &out,
        &format!(
            "http probe: body did not contain \"{}...\" (300 bytes); the body began \"x\"",
            "n".repeat(64)
        ),
    );
    srv.requests();
}

#[test]
fn body_beyond_the_64_kib_cap_is_not_searched() {
    let mut body = ".".repeat(70 * 1024);
    body.push_str("ready");
    let srv = serve(2, answer(ok(&body)));
    assert_fail(
        &run(json!({"url": srv.url("/"), "bodyContains": "ready"})),
        &format!(
            r#"http probe: body did not contain "ready" in its first 64 KiB; the body began "{}""#,
            ".".repeat(200)
        ),
    );
    // Within the cap, a large body is searched through.
    assert_pass(&run(json!({"url": srv.url("/"), "bodyContains": "...."})));
    srv.requests();
}

#[test]
fn content_length_bounds_the_body() {
    let srv = serve(
        2,
        answer("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello ready"),
    );
    assert_pass(&run(json!({"url": srv.url("/"), "bodyContains": "llo"})));
    assert_fail(
        &run(json!({"url": srv.url("/"), "bodyContains": "ready"})),
        r#"http probe: body did not contain "ready"; the body began "hello""#,
    );
    srv.requests();
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let srv = serve(2, |_, s, _| {
        send(s, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        send(s, b"4;name=value\r\nsta\r\r\n");
        clock::sleep(Duration::from_millis(20));
        send(s, b"6\r\nus: re\r\n3 ; x\r\nady\r\n");
        send(s, b"0\r\nX-Checksum: abc\r\nX-More: 1\r\n\r\n");
    });
    assert_pass(&run(
        json!({"url": srv.url("/"), "bodyContains": "\rus: ready"}),
    ));
    assert_fail(
        &run(json!({"url": srv.url("/"), "bodyContains": "X-Checksum"})),
        r#"http probe: body did not contain "X-Checksum"; the body began "sta\rus: ready""#,
    );
    srv.requests();
}

#[test]
fn read_to_close_body() {
    let srv = serve(2, |_, s, _| {
        send(s, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall ");
        clock::sleep(Duration::from_millis(20));
        send(s, b"systems ready");
    });
    assert_pass(&run(
        json!({"url": srv.url("/"), "bodyContains": "systems ready"}),
    ));
    assert_fail(
        &run(json!({"url": srv.url("/"), "bodyContains": "not there"})),
        r#"http probe: body did not contain "not there"; the body began "all systems ready""#,
    );
    srv.requests();
}

#[test]
fn body_is_not_read_without_body_contains() {
    // The body never ends, but nobody asked for it.
    let srv = serve(1, |_, s, _| {
        send(s, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
        hold(s);
    });
    let (out, took) = timed_run(json!({"url": srv.url("/"), "timeoutSecs": 1}));
    assert_pass(&out);
    assert!(took < Duration::from_millis(900), "{took:?}");
    srv.requests();
}

#[test]
fn redirects_relative_and_absolute() {
    let srv = serve(3, |i, s, _| match i {
        0 => send(s, redirect(302, "next?step=2").as_bytes()),
        1 => {
            let port = s.local_addr().unwrap().port();
            send(
                s,
                redirect(301, &format!("http://127.0.0.1:{port}/final")).as_bytes(),
            );
        }
        _ => send(s, ok("arrived").as_bytes()),
    });
    assert_pass(&run(
        json!({"url": srv.url("/a/start"), "bodyContains": "arrived"}),
    ));
    let reqs = srv.requests();
    assert!(
        reqs[0].starts_with("GET /a/start HTTP/1.1\r\n"),
        "{}",
        reqs[0]
    );
    assert!(
        reqs[1].starts_with("GET /a/next?step=2 HTTP/1.1\r\n"),
        "{}",
        reqs[1]
    );
    assert!(
        reqs[2].starts_with("GET /final HTTP/1.1\r\n"),
        "{}",
        reqs[2]
    );
}

#[test]
fn redirect_chain_of_303_and_307_308() {
    let codes = [303, 307, 308, 303];
    let srv = serve(5, move |i, s, _| match codes.get(i) {
        Some(code) => send(s, redirect(*code, &format!("/hop{}", i + 1)).as_bytes()),
        None => send(s, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
    });
    let port = srv.port();
    assert_fail(
        &run(json!({"url": srv.url("/hop0")})),
        &format!(
            "http probe: status 404, expected 200 (after 4 redirects, at http://127.0.0.1:{port}/hop4)"
        ),
    );
    assert_eq!(srv.requests().len(), 5);
}

#[test]
fn ten_redirects_are_followed_eleven_are_too_many() {
    let chain = |hops: usize| {
        // The probe makes at most 11 requests (the first and 10 redirects).
        serve((hops + 1).min(11), move |i, s, _| {
            if i < hops {
                send(s, redirect(302, &format!("/r{}", i + 1)).as_bytes());
            } else {
                send(s, ok("end").as_bytes());
            }
        })
    };
    let srv = chain(10);
    assert_pass(&run(json!({"url": srv.url("/r0")})));
    assert_eq!(srv.requests().len(), 11);
    let srv = chain(11);
    assert_fail(
        &run(json!({"url": srv.url("/r0")})),
        "http probe: too many redirects (10)",
    );
    assert_eq!(srv.requests().len(), 11);
}

#[test]
#[cfg(not(feature = "tls"))]
fn redirect_to_https_fails_naming_the_missing_feature() {
    let srv = serve(1, answer(redirect(301, "https://127.0.0.1/secure")));
    assert_fail(
        &run(json!({"url": srv.url("/")})),
        "http probe: redirect 301 to https://127.0.0.1/secure: https: TLS is not built into this probewheel (it was built without the cargo feature `tls`)",
    );
    srv.requests();
}

#[test]
fn redirect_without_location_fails() {
    let srv = serve(1, answer("HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n"));
    assert_fail(
        &run(json!({"url": srv.url("/")})),
        "http probe: redirect 302 without Location",
    );
    srv.requests();
}

#[test]
fn expected_redirect_status_is_compared_not_followed() {
    let srv = serve(2, |i, s, _| match i {
        0 => send(s, redirect(301, "/elsewhere").as_bytes()),
        _ => send(s, redirect(302, "/elsewhere").as_bytes()),
    });
    assert_pass(&run(json!({"url": srv.url("/"), "expectStatus": 301})));
    assert_fail(
        &run(json!({"url": srv.url("/"), "expectStatus": 301})),
        "http probe: status 302, expected 301",
    );
    assert_eq!(srv.requests().len(), 2);
}

#[test]
#[cfg(not(feature = "tls"))]
fn https_urls_are_invalid_naming_the_missing_feature() {
    assert_eq!(
        prepare(json!({"url": "https://127.0.0.1:1/health"}))
            .err()
            .as_deref(),
        Some(
            "invalid declaration: field `url`: https://127.0.0.1:1/health is https: TLS is not built into this probewheel (it was built without the cargo feature `tls`)"
        )
    );
    // `probewheel check` reports it as an error: it can never pass.
    let decls = crate::decl::parse(
        br#"{"web": {"kind": "http", "mode": "enforce", "url": "https://127.0.0.1/"}}"#,
    )
    .unwrap();
    let findings = crate::check::check(
        &decls,
        &crate::runner::Registry::builtin(),
        Duration::from_secs(5),
    );
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].severity, crate::check::Severity::Error);
    assert_eq!(findings[0].field, "url");
}

#[test]
fn user_info_is_sent_as_basic_auth() {
    let srv = serve(1, |_, s, req| {
        // base64("probe:p@ss word")
        if req.contains("\r\nAuthorization: Basic cHJvYmU6cEBzcyB3b3Jk\r\n") {
            send(s, ok("").as_bytes());
        } else {
            send(s, b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let url = format!("http://probe:p%40ss%20word@127.0.0.1:{}/", srv.port());
    assert_pass(&run(json!({"url": url})));
    srv.requests();
}

#[test]
fn ipv6_literal_with_port() {
    let Ok(srv) = serve_on("[::1]:0", 1, Box::new(answer(ok("v6")))) else {
        println!("note: cannot bind [::1] here; IPv6 loopback test skipped");
        return;
    };
    let port = srv.port();
    let url = format!("http://[::1]:{port}/six");
    assert_pass(&run(json!({"url": url, "bodyContains": "v6"})));
    let reqs = srv.requests();
    assert!(
        reqs[0].contains(&format!("\r\nHost: [::1]:{port}\r\n")),
        "{}",
        reqs[0]
    );
}

#[test]
fn fragment_is_dropped_and_query_kept() {
    let srv = serve(1, answer(ok("")));
    assert_pass(&run(json!({"url": srv.url("/p%2Fq/r?a=1&b=%20#section")})));
    let reqs = srv.requests();
    assert!(
        reqs[0].starts_with("GET /p%2Fq/r?a=1&b=%20 HTTP/1.1\r\n"),
        "{}",
        reqs[0]
    );
}

#[test]
fn request_headers_name_host_agent_and_close() {
    let srv = serve(1, answer(ok("")));
    assert_pass(&run(json!({"url": srv.url("/")})));
    let port = srv.port();
    let reqs = srv.requests();
    let want = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: probewheel/{}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(reqs[0], want);
}

#[test]
fn host_names_are_resolved() {
    let srv = serve(1, answer(ok("by name")));
    // localhost may resolve to ::1 first: the refused address is skipped.
    let port = srv.port();
    let url = format!("http://localhost:{port}/");
    let out = run(json!({"url": url, "bodyContains": "by name", "timeoutSecs": 5}));
    assert_pass(&out);
    let reqs = srv.requests();
    assert!(reqs[0].contains(&format!("\r\nHost: localhost:{port}\r\n")));
}

#[test]
fn refused_connection_names_the_address() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = run(json!({"url": format!("http://127.0.0.1:{port}/")}));
    assert_fail(
        &out,
        &format!(
            "http probe: connect 127.0.0.1:{port}: {}",
            io::Error::from_raw_os_error(libc::ECONNREFUSED)
        ),
    );
}

#[test]
fn server_that_never_answers_times_out_waiting_for_the_head() {
    let srv = serve(1, |_, s, _| hold(s));
    let (out, took) = timed_run(json!({"url": srv.url("/"), "timeoutSecs": 1}));
    assert_fail(
        &out,
        "http probe: timed out after 1 s while waiting for the response head",
    );
    assert!(
        took >= Duration::from_secs(1) && took < TIMEOUT_BOUND,
        "{took:?}"
    );
    srv.requests();
}

#[test]
fn one_byte_per_second_still_hits_the_overall_deadline() {
    let srv = serve(1, |_, s, _| {
        for &b in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" {
            if s.write_all(&[b]).is_err() {
                return;
            }
            clock::sleep(Duration::from_millis(400));
        }
    });
    let (out, took) = timed_run(json!({"url": srv.url("/"), "timeoutSecs": 1}));
    assert_fail(
        &out,
        "http probe: timed out after 1 s while waiting for the response head",
    );
    assert!(took < TIMEOUT_BOUND, "{took:?}");
    drop(srv); // the server notices the closed socket on a later write
}

#[test]
fn stalled_body_times_out_while_reading_the_body() {
    let srv = serve(1, |_, s, _| {
        send(s, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nnot yet");
        hold(s);
    });
    let (out, took) =
        timed_run(json!({"url": srv.url("/"), "timeoutSecs": 1, "bodyContains": "ready"}));
    assert_fail(
        &out,
        "http probe: timed out after 1 s while reading the body",
    );
    assert!(took < TIMEOUT_BOUND, "{took:?}");
    srv.requests();
}

#[test]
fn ten_megabyte_header_hits_the_head_cap() {
    let srv = serve(1, |_, s, _| {
        send(s, b"HTTP/1.1 200 OK\r\nX-Huge: ");
        let block = [b'a'; 64 * 1024];
        for _ in 0..160 {
            if s.write_all(&block).is_err() {
                return;
            }
        }
    });
    let (out, took) = timed_run(json!({"url": srv.url("/")}));
    assert_fail(&out, "http probe: response head larger than 64 KiB");
    assert!(took < TIMEOUT_BOUND, "{took:?}");
    srv.requests();
}

#[test]
fn invalid_status_line_is_malformed() {
    let srv = serve(2, |i, s, _| match i {
        0 => send(s, b"HTTP/1.1 OK 200\r\n\r\n"),
        _ => send(s, b"SSH-2.0-OpenSSH_9.6\r\n\r\n"),
    });
    assert_fail(
        &run(json!({"url": srv.url("/")})),
        "http probe: malformed response: invalid response status",
    );
    assert_fail(
        &run(json!({"url": srv.url("/")})),
        "http probe: malformed response: invalid HTTP version",
    );
    srv.requests();
}

#[test]
fn close_mid_body_is_reported() {
    let srv = serve(2, |i, s, _| match i {
        0 => send(
            s,
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part",
        ),
        _ => send(
            s,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly a part",
        ),
    });
    for _ in 0..2 {
        assert_fail(
            &run(json!({"url": srv.url("/"), "bodyContains": "ready"})),
            "http probe: connection closed before the body was complete",
        );
    }
    srv.requests();
}

#[test]
fn close_before_any_response_is_reported() {
    let srv = serve(1, |_, _, _| {});
    assert_fail(
        &run(json!({"url": srv.url("/")})),
        "http probe: connection closed without a response",
    );
    srv.requests();
}

#[test]
fn field_validation_errors_name_the_field() {
    let cases = [
        (
            json!({}),
            "invalid declaration: field `url`: required field is missing",
        ),
        (
            json!({"url": 5}),
            "invalid declaration: field `url`: expected a string, got 5",
        ),
        (
            json!({"url": "ftp://h/"}),
            r#"invalid declaration: field `url`: not an http:// or https:// URL: "ftp://h/""#,
        ),
        (
            json!({"url": "http://h:99999/"}),
            r#"invalid declaration: field `url`: malformed URL "http://h:99999/": port must be 1 to 65535"#,
        ),
        (
            json!({"url": "http://h/", "expectStatus": 600}),
            "invalid declaration: field `expectStatus`: expected an integer from 100 to 599, got 600",
        ),
        (
            json!({"url": "http://h/", "expectStatus": "200"}),
            r#"invalid declaration: field `expectStatus`: expected an integer from 100 to 599, got "200""#,
        ),
        (
            json!({"url": "http://h/", "timeoutSecs": 0}),
            "invalid declaration: field `timeoutSecs`: expected an integer from 1 to 86400, got 0",
        ),
        (
            json!({"url": "http://h/", "bodyContains": 1}),
            "invalid declaration: field `bodyContains`: expected a string, got 1",
        ),
        (
            json!({"url": "http://h/", "bodyContains": "x".repeat(65537)}),
            "invalid declaration: field `bodyContains`: 65537 bytes is longer than the 64 KiB of body that is searched",
        ),
    ];
    for (fields, want) in cases {
        assert_eq!(
            prepare(fields.clone()).err().as_deref(),
            Some(want),
            "{fields}"
        );
    }
    // Renderers write null for unset fields.
    let nulls = json!({"url": "http://127.0.0.1/", "expectStatus": null, "bodyContains": null, "timeoutSecs": null});
    assert!(prepare(nulls).is_ok());
}

/// One probe, 1,000 times, against a loopback server: mean time per probe
/// (driven by the test harness, one poll per run). `cargo test --release --lib runner::http::tests::cost -- --ignored --nocapture`
#[test]
#[ignore = "measurement, run by hand"]
fn cost() {
    const N: usize = 1000;
    let response = ok("status: ready");
    // A tight server (blocking accept, one read, one write), so that the
    // figure is the probe's and not the test server's polling.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let bytes = response.clone().into_bytes();
    let srv = thread::spawn(move || {
        while let Ok((mut s, _)) = listener.accept() {
            let mut req = [0u8; 1024];
            if s.read(&mut req).unwrap_or(0) == 0 {
                return; // the stop connection
            }
            send(&mut s, &bytes);
        }
    });
    let port = addr.port();
    for fields in [
        json!({"url": format!("http://127.0.0.1:{port}/health")}),
        json!({"url": format!("http://127.0.0.1:{port}/health"), "bodyContains": "ready"}),
        json!({"url": format!("http://localhost:{port}/health")}),
    ] {
        let check = prepare(fields.clone()).unwrap();
        let start = clock::mono_now();
        for _ in 0..N {
            assert_pass(&testing::run_once(&*check, TIMEOUT_BOUND));
        }
        let per_probe = (clock::mono_now() - start) / N as u32;
        println!("http probe cost: {per_probe:?} per probe (mean of {N}) for {fields}");
    }
    drop(TcpStream::connect(addr).unwrap()); // stops the server
    srv.join().unwrap();
}

// The run as a state machine, driven by the test harness the way a worker
// drives it: real loopback I/O, deadlines and cancellation in virtual time.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, mpsc};

use crate::runner::machine::testing::Harness;
use crate::runner::machine::{Run, Step};

pub(super) fn http_machine(fields: Value) -> Arc<dyn Machine> {
    prepare(fields).expect("valid declaration")
}

/// Runs the machine on the real clock with the system resolver.
fn run_machine(fields: Value) -> RunnerOutcome {
    Harness::new().run(&*http_machine(fields), TIMEOUT_BOUND)
}

/// A server that reads the request, says so on the returned channel, and
/// then waits: the second channel tells what its next read saw (`Ok(0)`:
/// the probe closed the connection).
fn silent_server() -> (
    Server,
    mpsc::Receiver<()>,
    mpsc::Receiver<io::Result<usize>>,
) {
    let (asked_tx, asked) = mpsc::channel();
    let (read_tx, read) = mpsc::channel();
    let srv = serve(1, move |_, s, _| {
        let _ = asked_tx.send(());
        let _ = s.set_read_timeout(Some(PATIENCE));
        let _ = read_tx.send(s.read(&mut [0u8; 16]));
    });
    (srv, asked, read)
}

/// Starts a run against `srv` at `t0` and advances it (real I/O, virtual
/// time standing still) until the server has read the request.
pub(super) fn started_and_sent(
    h: &mut Harness,
    m: &dyn Machine,
    t0: std::time::Instant,
    asked: &mpsc::Receiver<()>,
) -> Box<dyn Run> {
    let (mut run, mut step) = h.start(m, t0);
    let give_up = clock::mono_now() + TIMEOUT_BOUND;
    loop {
        assert!(matches!(step, Step::Wait(_)), "the run ended: {step:?}");
        if asked.try_recv().is_ok() {
            return run;
        }
        assert!(clock::mono_now() < give_up, "the request never arrived");
        step = h
            .advance_after_io(&mut *run, Duration::from_millis(20), t0)
            .1;
    }
}

#[test]
fn machine_fetches_and_searches_the_body() {
    let srv = serve(2, answer(ok("status: ready")));
    assert_pass(&run_machine(
        json!({"url": srv.url("/"), "bodyContains": "ready"}),
    ));
    let out = run_machine(json!({"url": srv.url("/"), "bodyContains": "steady"}));
    assert_fail(
        &out,
        r#"http probe: body did not contain "steady"; the body began "status: ready""#,
    );
    srv.requests();
}

#[test]
fn two_hundred_header_fields_pass() {
    let mut resp = String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..200 {
        resp.push_str(&format!("X-Field-{i}: value {i}\r\n"));
    }
    resp.push_str("Content-Length: 5\r\n\r\nready");
    let srv = serve(2, answer(resp));
    assert_pass(&run(json!({"url": srv.url("/"), "bodyContains": "ready"})));
    assert_pass(&run_machine(
        json!({"url": srv.url("/"), "bodyContains": "ready"}),
    ));
    srv.requests();
}

#[test]
fn a_response_arriving_one_byte_at_a_time() {
    let response = ok("all systems ready");
    let srv = serve(1, move |_, s, _| {
        s.set_nodelay(true).unwrap();
        for b in response.bytes() {
            if s.write_all(&[b]).is_err() {
                return;
            }
            // Separate segments, so that the probe sees separate reads.
            clock::sleep(Duration::from_millis(1));
        }
    });
    assert_pass(&run_machine(
        json!({"url": srv.url("/"), "bodyContains": "systems ready"}),
    ));
    srv.requests();
}

#[test]
fn machine_on_ipv6_loopback() {
    let Ok(srv) = serve_on("[::1]:0", 1, Box::new(answer(ok("v6")))) else {
        println!("note: cannot bind [::1] here; IPv6 loopback test skipped");
        return;
    };
    let url = format!("http://[::1]:{}/six", srv.port());
    assert_pass(&run_machine(json!({"url": url, "bodyContains": "v6"})));
    srv.requests();
}

#[test]
fn the_next_address_is_tried_when_the_first_refuses() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let srv = serve(1, answer(ok("second")));
    let addrs = vec![closed, srv.addr];
    let resolver = move |_: &str, _: u16| Ok(addrs.clone());
    let m = http_machine(json!({"url": "http://two.test/", "bodyContains": "second"}));
    let out = Harness::with_resolver(resolver).run(&*m, TIMEOUT_BOUND);
    assert_pass(&out);
    let reqs = srv.requests();
    assert!(reqs[0].contains("\r\nHost: two.test\r\n"), "{}", reqs[0]);
}

#[test]
fn a_failed_lookup_names_the_host_and_port_as_tcp_does() {
    // The port tells `http://svc.test:8080/` from `https://svc.test/`.
    let resolver = |host: &str, port: u16| -> io::Result<Vec<SocketAddr>> {
        match port {
            8080 => Ok(Vec::new()),
            _ => Err(io::Error::other(format!("no such host {host}"))),
        }
    };
    let mut h = Harness::with_resolver(resolver);
    let m = http_machine(json!({"url": "http://svc.test:8080/"}));
    let out = h.run(&*m, TIMEOUT_BOUND);
    assert_fail(&out, "http probe: resolve svc.test:8080: no addresses");
    let m = http_machine(json!({"url": "http://svc.test/"}));
    let out = h.run(&*m, TIMEOUT_BOUND);
    assert_fail(
        &out,
        "http probe: resolve svc.test:80: no such host svc.test",
    );
}

#[test]
fn a_silent_server_times_out_at_the_deadline_in_virtual_time() {
    let (srv, asked, read) = silent_server();
    let m = http_machine(json!({"url": srv.url("/"), "timeoutSecs": 3}));
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let mut run = started_and_sent(&mut h, &*m, t0, &asked);
    let deadline = t0 + Duration::from_secs(3);
    let step = h.advance(&mut *run, deadline - Duration::from_millis(1));
    assert_eq!(step, Step::Wait(deadline));
    let Step::Done(out) = h.advance(&mut *run, deadline) else {
        panic!("the run did not end at its deadline");
    };
    assert_fail(
        &out,
        "http probe: timed out after 3 s while waiting for the response head",
    );
    drop(run);
    let closed = read.recv_timeout(TIMEOUT_BOUND).expect("server read");
    assert_eq!(closed.unwrap(), 0, "the probe's socket was closed");
    srv.requests();
}

#[test]
fn cancelling_a_run_that_waits_for_the_head_closes_its_socket() {
    let (srv, asked, read) = silent_server();
    let m = http_machine(json!({"url": srv.url("/"), "timeoutSecs": 60}));
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let mut run = started_and_sent(&mut h, &*m, t0, &asked);
    assert!(
        read.try_recv().is_err(),
        "the connection closed before the cancel"
    );
    let Step::Done(out) = h.cancel(&mut *run, t0) else {
        panic!("cancel did not end the run");
    };
    assert_fail(&out, "http probe: cancelled");
    drop(run);
    let closed = read.recv_timeout(TIMEOUT_BOUND).expect("server read");
    assert_eq!(closed.unwrap(), 0, "the probe's socket was closed");
    srv.requests();
}

#[test]
fn a_resolver_that_never_answers_times_out_at_connect_timeout() {
    let (stop, blocked) = mpsc::channel::<()>();
    let blocked = Mutex::new(blocked);
    let resolver = move |_: &str, _: u16| -> io::Result<Vec<SocketAddr>> {
        let _ = blocked.lock().unwrap().recv();
        Err(io::Error::other("released"))
    };
    let m = http_machine(
        json!({"url": "http://hang.test/", "timeoutSecs": 30, "connectTimeoutSecs": 2}),
    );
    let mut h = Harness::with_resolver(resolver);
    let t0 = clock::mono_now();
    let (mut run, step) = h.start(&*m, t0);
    let connect_by = t0 + Duration::from_secs(2);
    assert_eq!(step, Step::Wait(connect_by));
    let step = h.advance(&mut *run, connect_by - Duration::from_millis(1));
    assert_eq!(step, Step::Wait(connect_by));
    let Step::Done(out) = h.advance(&mut *run, connect_by) else {
        panic!("the run did not end at connectTimeoutSecs");
    };
    assert_fail(
        &out,
        "http probe: timed out after 2 s (connectTimeoutSecs) while resolving",
    );
    drop(run);
    drop(stop);
}

#[test]
fn the_whole_probe_timeout_wins_when_it_is_shorter_than_the_connect_timeout() {
    let (stop, blocked) = mpsc::channel::<()>();
    let blocked = Mutex::new(blocked);
    let resolver = move |_: &str, _: u16| -> io::Result<Vec<SocketAddr>> {
        let _ = blocked.lock().unwrap().recv();
        Ok(vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1)])
    };
    let m = http_machine(
        json!({"url": "http://hang.test/", "timeoutSecs": 1, "connectTimeoutSecs": 5}),
    );
    let mut h = Harness::with_resolver(resolver);
    let t0 = clock::mono_now();
    let (mut run, step) = h.start(&*m, t0);
    let deadline = t0 + Duration::from_secs(1);
    assert_eq!(step, Step::Wait(deadline));
    let Step::Done(out) = h.advance(&mut *run, deadline) else {
        panic!("the run did not end at timeoutSecs");
    };
    assert_fail(&out, "http probe: timed out after 1 s while resolving");
    drop(run);
    drop(stop);
}

#[test]
fn a_connect_that_never_completes_ends_at_connect_timeout() {
    let hang = crate::runner::machine::testing::hanging_listener();
    let m = http_machine(json!({
        "url": format!("http://{}/", hang.addr),
        "timeoutSecs": 30,
        "connectTimeoutSecs": 4,
    }));
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let (mut run, step) = h.start(&*m, t0);
    let connect_by = t0 + Duration::from_secs(4);
    assert_eq!(step, Step::Wait(connect_by));
    let (_, step) = h.advance_after_io(&mut *run, Duration::from_millis(50), t0);
    assert_eq!(step, Step::Wait(connect_by), "the connect completed");
    let Step::Done(out) = h.advance(&mut *run, connect_by) else {
        panic!("the run did not end at connectTimeoutSecs");
    };
    assert_fail(
        &out,
        &format!(
            "http probe: timed out after 4 s (connectTimeoutSecs) while connecting to {}",
            hang.addr
        ),
    );
}

#[test]
fn a_run_yields_to_other_runs_after_a_bounded_number_of_reads() {
    // 60,000 one-byte chunks: about 350 KiB on the wire for a body under
    // the search cap, all of it waiting in the socket (loopback buffers
    // hold it) before the run reads any.
    let mut response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..60_000 {
        response.extend_from_slice(b"1\r\nx\r\n");
    }
    response.extend_from_slice(b"0\r\n\r\n");
    let (asked_tx, asked) = mpsc::channel();
    let (go, wait_for_go) = mpsc::channel::<()>();
    let wait_for_go = Mutex::new(wait_for_go);
    let (written_tx, written) = mpsc::channel();
    let srv = serve(1, move |_, s, _| {
        let _ = asked_tx.send(());
        let _ = wait_for_go.lock().unwrap().recv_timeout(PATIENCE);
        send(s, &response);
        let _ = written_tx.send(());
        hold(s);
    });
    let m = http_machine(json!({"url": srv.url("/"), "bodyContains": "y", "timeoutSecs": 30}));
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let mut run = started_and_sent(&mut h, &*m, t0, &asked);
    go.send(()).unwrap();
    written
        .recv_timeout(TIMEOUT_BOUND)
        .expect("the server wrote the whole response");
    // More is readable than one call may read: it asks to be called again
    // at once instead of reading on.
    assert_eq!(h.advance(&mut *run, t0), Step::Wait(t0));
    let mut calls = 1;
    let out = loop {
        calls += 1;
        match h.advance(&mut *run, t0) {
            Step::Done(out) => break out,
            Step::Wait(until) => {
                assert_eq!(until, t0, "everything was readable");
                assert!(calls < 1000, "the run never finished");
            }
        }
    };
    let began = "x".repeat(200);
    assert_fail(
        &out,
        &format!(r#"http probe: body did not contain "y"; the body began "{began}""#),
    );
    // At most 16 reads of at most 8 KiB per call.
    assert!(calls >= 3, "{calls} calls for about 45 reads");
    drop(run);
    srv.requests();
}

#[test]
fn check_knows_the_tls_and_headers_fields_and_warns_on_a_1xx_expect_status() {
    let d = crate::decl::parse(
        br#"{"a": {"kind": "http", "mode": "enforce", "url": "http://127.0.0.1/", "expectStatus": 101,
                   "headers": {"X-A": "b"}, "caFile": null, "tlsServerName": "h",
                   "tlsSkipVerify": false, "minCertValidityDays": 7},
             "b": {"kind": "tcp", "mode": "enforce", "port": 22, "tls": false},
             "c": {"kind": "http", "mode": "enforce", "url": "http://127.0.0.1/", "expectStatus": 204},
             "d": {"kind": "http", "mode": "enforce", "url": "http://127.0.0.1/",
                   "headers": {"X-A": "one\r\ntwo"}},
             "e": {"kind": "http", "mode": "enforce", "url": "http://127.0.0.1/", "port": 80}}"#,
    )
    .unwrap();
    let registry = crate::runner::Registry::builtin();
    let findings = crate::check::check(&d, &registry, Duration::from_secs(5));
    let lines: Vec<String> = findings.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(
        lines[0],
        "warning: a: expectStatus: 101 is outside 200..=599: a 1xx response is never a final status"
    );
    assert!(lines[1].starts_with("error: d: headers: "), "{}", lines[1]);
    // A field of another kind is not one of this kind's.
    assert_eq!(lines[2], "warning: e: port: unknown field, ignored");
}
