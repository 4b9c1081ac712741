//! `bodyJson` and `headersFromFiles` against loopback servers, with
//! blackbox_exporter's request header case.

use std::net::TcpStream;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::HttpCheck;
use super::tests::{answer, assert_fail, assert_pass, ok, prepare, run, send, serve};
use crate::decl::Declaration;

/// A directory of its own for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("probewheel-http-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn json_ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/json\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn body_json_passes_when_every_pointer_holds_the_value() {
    let actuator = r#"{"status":"UP","checks":{"db":true,"disk/free":12},"tags":["a","b"]}"#;
    let srv = serve(3, answer(json_ok(actuator)));
    assert_pass(&run(json!({"url": srv.url("/"),
        "bodyJson": {"/status": "UP", "/checks/db": true}})));
    assert_pass(&run(json!({"url": srv.url("/"),
        "bodyJson": {"/checks/disk~1free": 12, "/tags/1": "b"}})));
    // Together with the substring checks, all of them must hold.
    assert_pass(&run(json!({"url": srv.url("/"), "bodyContains": "UP",
        "bodyNotContains": "DOWN", "bodyJson": {"/status": "UP"}})));
    srv.requests();
}

#[test]
fn body_json_failures_name_the_pointer_and_show_the_body_start() {
    let down = r#"{"status":"DOWN","checks":{"db":false}}"#;
    let srv = serve(4, move |i, s: &mut TcpStream, _: &str| match i {
        0..=2 => send(s, json_ok(down).as_bytes()),
        _ => send(s, ok("<html>maintenance</html>").as_bytes()),
    });
    let began = r#"the body began "{\"status\":\"DOWN\",\"checks\":{\"db\":false}}""#;
    assert_fail(
        &run(json!({"url": srv.url("/"), "bodyJson": {"/status": "UP"}})),
        &format!(r#"http probe: body JSON at "/status": expected "UP", found "DOWN"; {began}"#),
    );
    assert_fail(
        &run(json!({"url": srv.url("/"), "bodyJson": {"/checks/cache": true}})),
        &format!(
            r#"http probe: body JSON at "/checks/cache": expected true, found missing; {began}"#
        ),
    );
    // A passing substring check does not hide a failing pointer.
    assert_fail(
        &run(json!({"url": srv.url("/"), "bodyContains": "db", "bodyJson": {"/checks/db": true}})),
        &format!(r#"http probe: body JSON at "/checks/db": expected true, found false; {began}"#),
    );
    let out = run(json!({"url": srv.url("/"), "bodyJson": {"/status": "UP"}}));
    let reason = out.reason().unwrap();
    assert!(
        reason.starts_with("http probe: the body is not JSON: ")
            && reason.ends_with(r#"; the body began "<html>maintenance</html>""#),
        "{reason}"
    );
    srv.requests();
}

#[test]
fn body_json_reads_a_chunked_body_to_its_end() {
    let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                   9\r\n{\"status\"\r\n6\r\n:\"UP\"}\r\n0\r\n\r\n";
    let srv = serve(1, answer(chunked));
    assert_pass(&run(
        json!({"url": srv.url("/"), "bodyJson": {"/status": "UP"}}),
    ));
    srv.requests();
}

#[test]
fn body_json_is_validated_naming_the_field() {
    for bad in [
        json!({"status": "UP"}),
        json!({"/a~2": 1}),
        json!("/status"),
    ] {
        let err = prepare(json!({"url": "http://127.0.0.1/", "bodyJson": bad}))
            .err()
            .unwrap();
        assert!(
            err.starts_with("invalid declaration: field `bodyJson`: "),
            "{err}"
        );
    }
    let err = prepare(json!({"url": "http://127.0.0.1/", "method": "HEAD",
        "bodyJson": {"/status": "UP"}}))
    .err()
    .unwrap();
    assert!(
        err.contains("field `bodyJson`: a HEAD request reads no body"),
        "{err}"
    );
}

/// Answers 200 when the request head has every line of `want`, else 400.
fn expect_lines(want: Vec<String>) -> impl Fn(usize, &mut TcpStream, &str) + Send + 'static {
    move |_, s, head| {
        let all = want.iter().all(|l| head.contains(&format!("\r\n{l}\r\n")));
        let status = if all { "200 OK" } else { "400 Bad Request" };
        send(
            s,
            format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
        );
    }
}

// blackbox_exporter's TestHTTPHeaders: Host, User-Agent and another header
// go out as declared, and the probe passes; here also with the values read
// from files, and a server that refuses other values fails the probe.
#[test]
fn request_headers_like_blackbox_http_headers() {
    let want: Vec<String> = [
        "Host: my-secret-vhost.com",
        "User-Agent: unsuspicious user",
        "Accept-Language: en-US",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let srv = serve(3, expect_lines(want));
    let headers = json!({"Host": "my-secret-vhost.com", "User-Agent": "unsuspicious user",
        "Accept-Language": "en-US"});
    assert_pass(&run(json!({"url": srv.url("/"), "headers": headers})));

    let dir = scratch("blackbox-headers");
    for (name, value) in [
        ("host", "my-secret-vhost.com\n"),
        ("agent", "  unsuspicious user \n"),
    ] {
        std::fs::write(dir.join(name), value).unwrap();
    }
    assert_pass(&run(
        json!({"url": srv.url("/"), "headers": {"Accept-Language": "en-US"},
        "headersFromFiles": {"Host": dir.join("host"), "User-Agent": dir.join("agent")}}),
    ));
    assert_fail(
        &run(json!({"url": srv.url("/"), "headers": {"Accept-Language": "en-US"}})),
        "http probe: status 400, expected 200",
    );
    srv.requests();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn headers_from_files_are_read_at_every_prepare_and_never_shown() {
    const SECRET: &str = "s3cr3t-t0ken-value";
    let dir = scratch("secret-header");
    let token = dir.join("token");
    std::fs::write(&token, format!("Bearer {SECRET}\n")).unwrap();
    let srv = serve(2, |_, s: &mut TcpStream, head: &str| {
        let pass = head.contains(&format!("\r\nAuthorization: Bearer {SECRET}\r\n"));
        let reply = if pass {
            json_ok(r#"{"status":"UP"}"#)
        } else {
            json_ok(r#"{"status":"DOWN"}"#)
        };
        send(s, reply.as_bytes());
    });
    let fields = json!({"url": srv.url("/"), "headersFromFiles": {"Authorization": token},
        "bodyJson": {"/status": "UP"}});
    assert_pass(&run(fields.clone()));

    // Rotated on disk: the next prepare reads the new value, which this server refuses.
    std::fs::write(&token, "Bearer rotated\n").unwrap();
    let out = run(fields.clone());
    let reason = out.reason().unwrap().to_owned();
    assert!(reason.contains(r#"found "DOWN""#), "{reason}");
    assert!(!reason.contains("rotated"), "{reason}");

    std::fs::write(&token, format!("Bearer {SECRET}")).unwrap();
    let decl = Declaration::from_value("web", merged(&fields));
    let shown = format!("{:?}", HttpCheck::from_decl(&decl).unwrap());
    assert!(
        !shown.contains(SECRET) && shown.contains("headersFromFiles"),
        "{shown}"
    );
    srv.requests();
    std::fs::remove_dir_all(&dir).unwrap();
}

fn merged(fields: &Value) -> Value {
    let mut decl = json!({"kind": "http", "mode": "enforce"});
    decl.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    decl
}

#[test]
fn headers_from_files_that_cannot_be_used_make_the_declaration_invalid() {
    const SECRET: &str = "hidden-value";
    let dir = scratch("bad-header-files");
    let path = |name: &str| dir.join(name);
    std::fs::write(path("empty"), " \n\t\n").unwrap();
    std::fs::write(path("control"), format!("{SECRET}\u{1}x")).unwrap();
    std::fs::write(path("large"), "x".repeat(8 * 1024 + 1)).unwrap();
    std::fs::write(path("binary"), [0xff, 0xfe, b'a']).unwrap();
    std::fs::write(path("good"), SECRET).unwrap();
    let cases = [
        (json!({"X-Token": path("missing")}), "cannot be read: "),
        (json!({"X-Token": path("empty")}), "is empty"),
        (json!({"X-Token": path("large")}), "larger than"),
        (json!({"X-Token": path("binary")}), "is not UTF-8 text"),
        (json!({"X-Token": dir}), "not a regular file"),
        (
            json!({"X-Token": path("control")}),
            "contains the control character U+0001",
        ),
        (
            json!({"bad name": path("good")}),
            "not allowed in a header name",
        ),
        (json!({"X-Token": 1}), "expected a string"),
        (json!({"Content-Length": path("good")}), "cannot be set"),
        (
            json!({"x-token": path("good")}),
            r#""X-Token" and "x-token" name the same header"#,
        ),
    ];
    for (files, problem) in cases {
        let err = prepare(
            json!({"url": "http://127.0.0.1/", "headers": {"X-Token": "a"},
            "headersFromFiles": files}),
        )
        .err()
        .unwrap_or_else(|| panic!("{files} was accepted"));
        assert!(
            err.starts_with("invalid declaration: field `headersFromFiles`: ")
                && err.contains(problem),
            "{files}: {err}"
        );
        assert!(!err.contains(SECRET), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

// Credentials from files follow the rules of `headers`: only to the origin of
// `url`; other headers from files go everywhere.
#[test]
fn credentials_from_files_are_not_sent_to_another_origin() {
    let dir = scratch("cross-origin-header");
    std::fs::write(dir.join("auth"), "Bearer t").unwrap();
    std::fs::write(dir.join("tenant"), "blue").unwrap();
    let other = serve(1, answer(ok("")));
    let target = other.url("/landing");
    let first = serve(1, move |_, s: &mut TcpStream, _: &str| {
        send(s, super::tests::redirect(302, &target).as_bytes())
    });
    // Another port is another origin.
    assert_pass(&run(json!({"url": first.url("/"),
        "headersFromFiles": {"Authorization": dir.join("auth"), "X-Tenant": dir.join("tenant")}})));
    let to_first = first.requests();
    let to_other = other.requests();
    assert!(
        to_first[0].contains("\r\nAuthorization: Bearer t\r\n"),
        "{to_first:?}"
    );
    assert!(!to_other[0].contains("Authorization"), "{to_other:?}");
    assert!(
        to_other[0].contains("\r\nX-Tenant: blue\r\n"),
        "{to_other:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
