//! `https://` probes end to end: the http machine against loopback rustls
//! servers with certificates made here (`transport::tls::testing`), driven
//! by the test harness the way a worker drives it, and once through the
//! engine. Deadlines and cancellation run in virtual time over real I/O.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::clock;
use crate::runner::machine::testing::Harness;
use crate::runner::machine::{Machine, Run, Step};
use crate::runner::{RunnerOutcome, Status};
use crate::transport::tls::testing::*;

/// Bound for runs that must end by themselves.
const BOUND: Duration = Duration::from_secs(10);

use super::tests::prepare;

fn run(fields: Value) -> RunnerOutcome {
    let m = prepare(fields).expect("valid declaration");
    Harness::new().run(&*m, BOUND)
}

fn assert_pass(out: &RunnerOutcome) {
    assert_eq!(out.status(), Status::Pass, "failed: {:?}", out.reason());
}

/// The failure reason, which must read as words ([`assert_words`]).
#[track_caller]
fn reason(out: &RunnerOutcome) -> &str {
    assert_eq!(out.status(), Status::Fail);
    assert_words(out.reason().unwrap())
}

const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nstatus: ready";

fn https_url(server: &Server, host: &str, path: &str) -> String {
    format!("https://{host}:{}{path}", server.addr.port())
}

/// A CA, its file, and a server presenting a leaf of it made by `spec`.
fn issued(spec: &LeafSpec<'_>, response: &'static [u8]) -> (TempFile, Server) {
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    (file, tls_server(leaf(&ca, spec), response))
}

#[test]
fn https_passes_with_ca_file_and_sends_the_request_through_tls() {
    let (file, server) = issued(&LeafSpec::default(), OK);
    let url = https_url(&server, "localhost", "/health");
    assert_pass(&run(
        json!({"url": url, "caFile": file.path(), "bodyContains": "ready"}),
    ));
    let saw = server.saw();
    assert_eq!(saw.sni.as_deref(), Some("localhost"));
    let head = String::from_utf8(saw.received).unwrap();
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
    assert!(
        head.starts_with(&format!(
            "GET /health HTTP/1.1\r\nHost: localhost:{port}\r\nUser-Agent: probewheel/"
        )),
        "{head}"
    );
}

#[test]
fn declared_headers_are_sent_over_https_and_host_can_be_replaced() {
    let (file, server) = issued(&LeafSpec::default(), OK);
    let url = https_url(&server, "127.0.0.1", "/");
    assert_pass(&run(json!({
        "url": url,
        "caFile": file.path(),
        "headers": {"Host": "status.internal", "X-Probe-Token": "abc 123", "Accept": "*/*"},
    })));
    let saw = server.saw();
    // SNI is the URL's host (an IP address is not sent as SNI); the Host
    // header is the declared one, in the default's place.
    assert_eq!(saw.sni, None);
    let head = String::from_utf8(saw.received).unwrap();
    let want_start = "GET / HTTP/1.1\r\nHost: status.internal\r\nUser-Agent: probewheel/";
    assert!(head.starts_with(want_start), "{head}");
    assert!(
        head.ends_with("Connection: close\r\nAccept: */*\r\nX-Probe-Token: abc 123\r\n\r\n"),
        "{head}"
    );
}

#[test]
fn two_hundred_header_fields_pass_over_https() {
    let mut resp = String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..200 {
        resp.push_str(&format!("X-Field-{i}: value {i}\r\n"));
    }
    resp.push_str("Content-Length: 5\r\n\r\nready");
    let resp: &'static [u8] = Box::leak(resp.into_bytes().into_boxed_slice());
    let (file, server) = issued(&LeafSpec::default(), resp);
    let url = https_url(&server, "localhost", "/");
    assert_pass(&run(
        json!({"url": url, "caFile": file.path(), "bodyContains": "ready"}),
    ));
    server.saw();
}

#[test]
fn unknown_issuer_names_the_trust_checked_against() {
    let (_, server) = issued(&LeafSpec::default(), OK);
    let other = ca_file(&ca("another CA"));
    let out = run(json!({"url": https_url(&server, "localhost", "/"), "caFile": other.path()}));
    assert_eq!(
        reason(&out),
        format!(
            "http probe: {}: TLS certificate not trusted: unknown issuer (no chain to a CA in caFile {}); \
             the certificate is self-signed or issued by a CA that is not there: add the CA that issued it to caFile",
            server.addr,
            other.path().display()
        )
    );
    let _ = server.saw();
}

#[test]
fn a_certificate_for_another_name_fails_as_a_name_mismatch() {
    let spec = LeafSpec {
        names: &["other.test"],
        ..LeafSpec::default()
    };
    let (file, server) = issued(&spec, OK);
    let out = run(json!({"url": https_url(&server, "localhost", "/"), "caFile": file.path()}));
    assert_eq!(
        reason(&out),
        format!(
            "http probe: {}: TLS certificate is not valid for name \"localhost\" (it is valid for other.test); \
             set tlsServerName to one of those, or reissue it with \"localhost\" in its subjectAltName",
            server.addr
        )
    );
    let _ = server.saw();
}

#[test]
fn tls_server_name_replaces_the_url_host_for_sni_and_verification() {
    let spec = LeafSpec {
        names: &["svc.internal"],
        ..LeafSpec::default()
    };
    let (file, server) = issued(&spec, OK);
    assert_pass(&run(json!({
        "url": https_url(&server, "127.0.0.1", "/"),
        "caFile": file.path(),
        "tlsServerName": "svc.internal",
    })));
    assert_eq!(server.saw().sni.as_deref(), Some("svc.internal"));
}

#[test]
fn an_expired_certificate_fails_with_its_expiry() {
    let spec = LeafSpec {
        from: -30,
        until: -2,
        ..LeafSpec::default()
    };
    let (file, server) = issued(&spec, OK);
    let out = run(json!({"url": https_url(&server, "localhost", "/"), "caFile": file.path()}));
    let r = reason(&out);
    assert!(
        r.starts_with(&format!(
            "http probe: {}: TLS certificate expired at ",
            server.addr
        )),
        "{r}"
    );
    let _ = server.saw();
}

#[test]
fn a_certificate_expiring_within_min_cert_validity_days_fails() {
    let spec = LeafSpec {
        until: 10,
        cn: "soon.test",
        ..LeafSpec::default()
    };
    let (file, server) = issued(&spec, OK);
    let out = run(json!({
        "url": https_url(&server, "localhost", "/"),
        "caFile": file.path(),
        "minCertValidityDays": 30,
    }));
    let r = reason(&out);
    assert!(r.contains("TLS certificate "), "{r}");
    assert!(r.contains("CN=soon.test"), "{r}");
    assert!(r.ends_with(", within minCertValidityDays (30)"), "{r}");
    let _ = server.saw();
    // Nine days is fine.
    let (file, server) = issued(&spec, OK);
    assert_pass(&run(json!({
        "url": https_url(&server, "localhost", "/"),
        "caFile": file.path(),
        "minCertValidityDays": 9,
    })));
    server.saw();
}

#[test]
fn a_self_signed_certificate_passes_only_with_tls_skip_verify() {
    let unrelated = ca_file(&ca("unrelated CA"));
    let server = tls_server(self_signed(&LeafSpec::default()), OK);
    let out = run(json!({"url": https_url(&server, "localhost", "/"), "caFile": unrelated.path()}));
    assert!(
        reason(&out).contains("TLS certificate not trusted: unknown issuer"),
        "{:?}",
        out.reason()
    );
    let _ = server.saw();
    let spec = LeafSpec {
        names: &["elsewhere.test"],
        ..LeafSpec::default()
    };
    let server = tls_server(self_signed(&spec), OK);
    assert_pass(&run(
        json!({"url": https_url(&server, "localhost", "/"), "tlsSkipVerify": true}),
    ));
    server.saw();
}

#[test]
fn a_ca_certificate_as_the_server_certificate_fails_saying_how_to_make_a_leaf() {
    // What `openssl req -x509` makes by default: self-signed, CA:TRUE.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = params(&LeafSpec::default());
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let file = TempFile::new(cert.pem().as_bytes());
    let chain = vec![cert.der().clone()];
    let server = tls_server(Leaf { chain, key }, OK);
    let out = run(json!({"url": https_url(&server, "localhost", "/"), "caFile": file.path()}));
    assert_eq!(
        reason(&out),
        format!(
            "http probe: {}: TLS certificate rejected: the server presents a CA certificate \
             (basicConstraints CA:TRUE) as its own, and a CA certificate cannot identify a \
             server; make a leaf certificate signed by a CA (and put that CA in caFile), or add \
             `-addext basicConstraints=critical,CA:FALSE` to `openssl req -x509`",
            server.addr
        )
    );
    let _ = server.saw();
}

#[test]
fn a_ca_file_cut_short_makes_the_declaration_invalid_in_words() {
    let pem = ca("probewheel test CA").cert.pem();
    let file = TempFile::new(&pem.as_bytes()[..pem.len() - 40]);
    let err = prepare(json!({"url": "https://localhost/", "caFile": file.path()}))
        .err()
        .expect("the declaration is invalid");
    assert_eq!(
        assert_words(&err),
        format!(
            "invalid declaration: field `caFile`: {}: PEM block 1 has no end line \
             `-----END CERTIFICATE-----` (is the file cut short?)",
            file.path().display()
        )
    );
}

/// A server that accepts, reads the ClientHello, says so, and then sends
/// nothing; the second channel tells what its next read saw (`Ok(0)`: the
/// probe closed the connection).
fn mute_server() -> (Server, mpsc::Receiver<()>, mpsc::Receiver<usize>) {
    let (hello_tx, hello) = mpsc::channel();
    let (read_tx, read) = mpsc::channel();
    let server = raw_server(move |s| {
        let _ = hello_tx.send(());
        let n = s.read(&mut [0u8; 64]).unwrap_or(usize::MAX);
        let _ = read_tx.send(n);
    });
    (server, hello, read)
}

/// Starts a run at `t0` and advances it (real I/O, virtual time standing
/// still) until the server has read the ClientHello.
fn started_until(
    h: &mut Harness,
    m: &dyn Machine,
    t0: Instant,
    hello: &mpsc::Receiver<()>,
) -> Box<dyn Run> {
    let (mut run, mut step) = h.start(m, t0);
    let give_up = clock::mono_now() + BOUND;
    loop {
        assert!(matches!(step, Step::Wait(_)), "the run ended: {step:?}");
        if hello.try_recv().is_ok() {
            return run;
        }
        assert!(clock::mono_now() < give_up, "no ClientHello arrived");
        step = h
            .advance_after_io(&mut *run, Duration::from_millis(20), t0)
            .1;
    }
}

#[test]
fn a_server_that_never_sends_a_server_hello_times_out_at_the_deadline() {
    let (server, hello, read) = mute_server();
    let m =
        prepare(json!({"url": https_url(&server, "localhost", "/"), "timeoutSecs": 3})).unwrap();
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let mut run = started_until(&mut h, &*m, t0, &hello);
    let deadline = t0 + Duration::from_secs(3);
    assert_eq!(
        h.advance(&mut *run, deadline - Duration::from_millis(1)),
        Step::Wait(deadline)
    );
    let Step::Done(out) = h.advance(&mut *run, deadline) else {
        panic!("the run did not end at its deadline");
    };
    assert_eq!(
        reason(&out),
        format!(
            "http probe: timed out after 3 s while in the TLS handshake with {} (no answer to the ClientHello)",
            server.addr
        )
    );
    drop(run);
    assert_eq!(read.recv_timeout(BOUND).unwrap(), 0, "socket closed");
    server.saw();
}

#[test]
fn connect_timeout_secs_bounds_the_handshake() {
    let (server, hello, read) = mute_server();
    let m = prepare(json!({
        "url": https_url(&server, "localhost", "/"),
        "timeoutSecs": 30,
        "connectTimeoutSecs": 2,
    }))
    .unwrap();
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let mut run = started_until(&mut h, &*m, t0, &hello);
    let connect_by = t0 + Duration::from_secs(2);
    let Step::Done(out) = h.advance(&mut *run, connect_by) else {
        panic!("the run did not end at connectTimeoutSecs");
    };
    assert_eq!(
        reason(&out),
        format!(
            "http probe: timed out after 2 s (connectTimeoutSecs) while in the TLS handshake with {} (no answer to the ClientHello)",
            server.addr
        )
    );
    drop(run);
    assert_eq!(read.recv_timeout(BOUND).unwrap(), 0, "socket closed");
    server.saw();
}

#[test]
fn cancelling_a_handshake_in_flight_closes_its_socket() {
    let (server, hello, read) = mute_server();
    let m =
        prepare(json!({"url": https_url(&server, "localhost", "/"), "timeoutSecs": 60})).unwrap();
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let mut run = started_until(&mut h, &*m, t0, &hello);
    assert!(read.try_recv().is_err(), "closed before the cancel");
    let Step::Done(out) = h.cancel(&mut *run, t0) else {
        panic!("cancel did not end the run");
    };
    assert_eq!(reason(&out), "http probe: cancelled");
    drop(run);
    assert_eq!(read.recv_timeout(BOUND).unwrap(), 0, "socket closed");
    server.saw();
}

#[test]
fn plain_http_on_a_tls_port_is_a_protocol_error() {
    let server = raw_server(|s| {
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    });
    let out = run(json!({"url": https_url(&server, "localhost", "/")}));
    let r = reason(&out);
    assert!(
        r.contains("TLS protocol error: the server answered in plain text"),
        "{r}"
    );
    server.saw();
}

#[test]
fn an_http_redirect_to_https_is_followed() {
    let (file, tls) = issued(&LeafSpec::default(), OK);
    let target = https_url(&tls, "localhost", "/secure");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let plain = listener.local_addr().unwrap();
    let redirector = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let reply =
            format!("HTTP/1.1 301 Moved\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n");
        let _ = s.write_all(reply.as_bytes());
        String::from_utf8(head).unwrap()
    });
    assert_pass(&run(json!({
        "url": format!("http://{plain}/"),
        "caFile": file.path(),
        "headers": {"X-Hop": "both"},
        "bodyContains": "ready",
    })));
    assert!(redirector.join().unwrap().contains("\r\nX-Hop: both\r\n"));
    let saw = tls.saw();
    let head = String::from_utf8(saw.received).unwrap();
    assert!(head.starts_with("GET /secure HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nX-Hop: both\r\n"), "{head}");
}

#[test]
fn credentials_are_not_sent_in_clear_text_after_a_redirect_from_https_to_http() {
    // One port, TLS on the first connection and plain text on the second:
    // the redirect changes nothing but the scheme.
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    let config = server_config(&leaf(&ca, &LeafSpec::default()));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let read_head = |s: &mut dyn Read| {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    };
    let server = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let conn = rustls::ServerConnection::new(config).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, s);
        let secure = read_head(&mut tls);
        let reply = format!(
            "HTTP/1.1 302 Found\r\nLocation: http://{addr}/plain\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = tls.write_all(reply.as_bytes());
        tls.conn.send_close_notify();
        let _ = tls.flush();
        drop(tls);
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let clear = read_head(&mut s);
        let _ = s.write_all(OK);
        (secure, clear)
    });
    assert_pass(&run(json!({
        "url": format!("https://127.0.0.1:{}/", addr.port()),
        "caFile": file.path(),
        "headers": {"Authorization": "Bearer s3cret", "Cookie": "session=abc", "X-Trace": "kept"},
        "bodyContains": "ready",
    })));
    let (secure, clear) = server.join().unwrap();
    for credential in [
        "\r\nAuthorization: Bearer s3cret\r\n",
        "\r\nCookie: session=abc\r\n",
    ] {
        assert!(secure.contains(credential), "{secure}");
        assert!(!clear.contains(credential), "{clear}");
    }
    assert!(clear.starts_with("GET /plain HTTP/1.1\r\n"), "{clear}");
    assert!(clear.contains("\r\nX-Trace: kept\r\n"), "{clear}");
}

#[test]
fn tls_fields_are_validated_at_prepare() {
    let missing = std::env::temp_dir().join("probewheel-no-such-ca.pem");
    let cases = [
        (
            json!({"url": "https://h/", "caFile": missing}),
            format!(
                "invalid declaration: field `caFile`: {}: No such file or directory (os error 2)",
                missing.display()
            ),
        ),
        (
            json!({"url": "https://h/", "caFile": ""}),
            "invalid declaration: field `caFile`: an empty path".into(),
        ),
        (
            json!({"url": "https://h/", "tlsServerName": "a b"}),
            "invalid declaration: field `tlsServerName`: not a valid TLS server name: \"a b\"".into(),
        ),
        (
            json!({"url": "https://h/", "tlsSkipVerify": "yes"}),
            "invalid declaration: field `tlsSkipVerify`: expected true or false, got \"yes\"".into(),
        ),
        (
            json!({"url": "https://h/", "minCertValidityDays": -1}),
            "invalid declaration: field `minCertValidityDays`: expected an integer from 0 to 3650, got -1".into(),
        ),
    ];
    for (fields, want) in cases {
        assert_eq!(
            prepare(fields.clone()).err(),
            Some(want.clone()),
            "{fields}"
        );
        assert_words(&want);
    }
    // Renderers write null for unset fields.
    let nulls = json!({"url": "https://h/", "caFile": null, "tlsServerName": null,
        "tlsSkipVerify": null, "minCertValidityDays": null, "headers": null});
    assert!(prepare(nulls).is_ok());
}

#[test]
fn headers_with_cr_lf_or_nul_make_the_declaration_invalid() {
    for (headers, want) in [
        (
            json!({"X-A": "one\r\nX-Injected: two"}),
            "invalid declaration: field `headers`: ",
        ),
        (
            json!({"X-A": "nul\u{0}"}),
            "invalid declaration: field `headers`: ",
        ),
        (
            json!({"X-\nA": "v"}),
            "invalid declaration: field `headers`: ",
        ),
        (
            json!({"X-A": 1}),
            "invalid declaration: field `headers`: \"X-A\": expected a string",
        ),
    ] {
        let err = prepare(json!({"url": "http://127.0.0.1/", "headers": headers}))
            .err()
            .unwrap_or_else(|| panic!("{headers} was accepted"));
        assert!(err.starts_with(want), "{headers}: {err}");
    }
}

/// One probe through the engine: reset, topology, a passing result.
#[test]
fn an_https_probe_passes_through_the_engine() {
    let (file, server) = issued(&LeafSpec::default(), OK);
    let decls = json!({
        "secure": {
            "kind": "http", "mode": "enforce", "runOnce": true,
            "url": https_url(&server, "localhost", "/"),
            "caFile": file.path(), "bodyContains": "ready",
        }
    });
    let (engine, events) = crate::Builder::new()
        .declarations_json(decls.to_string())
        .build()
        .unwrap();
    engine.reset("tls@1").unwrap();
    let give_up = clock::mono_now() + BOUND;
    let result = loop {
        let left = give_up.saturating_duration_since(clock::mono_now());
        match events
            .recv_timeout(left)
            .expect("a result within the bound")
        {
            crate::Event::ProbeResult(r) => break r,
            _ => continue,
        }
    };
    engine.shutdown().unwrap();
    assert_eq!(&*result.probe_name, "secure");
    assert_eq!(
        result.status,
        Status::Pass,
        "failed: {:?}",
        result.failure_reason
    );
    server.saw();
}

/// One https probe (handshake included), 300 times, against a loopback
/// TLS server, next to the same probe over plain http: mean time per
/// probe driven by the test harness, as the http figure is measured.
/// `cargo test --release --lib runner::http::tls_tests::cost -- --ignored --nocapture`
#[test]
#[ignore = "measurement, run by hand"]
fn cost() {
    const N: u32 = 300;
    let ca = ca("cost CA");
    let file = ca_file(&ca);
    let leaf = leaf(&ca, &LeafSpec::default());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(leaf.chain.clone(), server_key(&leaf))
            .unwrap(),
    );
    // Tight servers (blocking accept, one read, one write), so that the
    // figure is the probe's and the TLS work both ends must do.
    let tls_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tls_addr = tls_listener.local_addr().unwrap();
    let tls_srv = thread::spawn(move || {
        while let Ok((s, _)) = tls_listener.accept() {
            let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, s);
            let mut req = [0u8; 1024];
            if tls.read(&mut req).unwrap_or(0) == 0 {
                return; // the stop connection
            }
            let _ = tls.write_all(OK);
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    let plain_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let plain_addr = plain_listener.local_addr().unwrap();
    let plain_srv = thread::spawn(move || {
        while let Ok((mut s, _)) = plain_listener.accept() {
            let mut req = [0u8; 1024];
            if s.read(&mut req).unwrap_or(0) == 0 {
                return;
            }
            let _ = s.write_all(OK);
        }
    });
    for fields in [
        json!({"url": format!("http://{plain_addr}/health")}),
        json!({"url": format!("https://{tls_addr}/health"), "caFile": file.path(), "tlsServerName": "localhost"}),
        json!({"url": format!("https://localhost:{}/health", tls_addr.port()), "caFile": file.path()}),
        json!({"url": format!("https://localhost:{}/health", tls_addr.port()), "caFile": file.path(), "bodyContains": "ready"}),
    ] {
        let check = prepare(fields.clone()).unwrap();
        let start = clock::mono_now();
        for _ in 0..N {
            assert_pass(&Harness::new().run(&*check, BOUND));
        }
        let per_probe = (clock::mono_now() - start) / N;
        println!("probe cost: {per_probe:?} per probe (mean of {N}) for {fields}");
    }
    // Stop connections: a plain connect that sends nothing.
    drop(std::net::TcpStream::connect(tls_addr).unwrap());
    drop(std::net::TcpStream::connect(plain_addr).unwrap());
    tls_srv.join().unwrap();
    plain_srv.join().unwrap();
}

/// Through the engine: a reset cancels a run in the middle of its
/// handshake (its socket closes), and shutdown returns with a new one in
/// flight.
#[test]
fn a_reset_cancels_a_handshake_in_flight_through_the_engine() {
    let (server, hello, read) = mute_server();
    let decls = json!({
        "mute": {
            "kind": "http", "mode": "enforce", "runOnce": true, "timeoutSecs": 60,
            "url": https_url(&server, "localhost", "/"), "tlsSkipVerify": true,
        }
    });
    let (engine, _events) = crate::Builder::new()
        .declarations_json(decls.to_string())
        .build()
        .unwrap();
    engine.reset("tls@1").unwrap();
    hello.recv_timeout(BOUND).expect("the ClientHello arrived");
    assert!(read.try_recv().is_err(), "closed before the reset");
    engine.reset("tls@2").unwrap();
    assert_eq!(
        read.recv_timeout(BOUND).unwrap(),
        0,
        "socket closed by the reset"
    );
    engine.shutdown().unwrap();
    server.saw();
}

#[test]
fn client_cert_file_answers_a_server_that_requires_one() {
    let clients = ca("probewheel client CA");
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    let mine = client_files(&clients, &LeafSpec::default());
    let config = requiring_client_certs(
        &leaf(&ca, &LeafSpec::default()),
        &clients,
        &[&rustls::version::TLS13],
    );

    let server = tls_serve(Arc::clone(&config), OK, 1);
    let out = run(json!({"url": https_url(&server, "localhost", "/"), "caFile": file.path()}));
    assert!(
        reason(&out).ends_with(
            "the server sent TLS alert certificate_required (116): it requires a client \
             certificate, which probewheel does not send"
        ),
        "{out:?}"
    );
    let _ = server.saw();

    let server = tls_serve(config, OK, 1);
    assert_pass(&run(json!({
        "url": https_url(&server, "localhost", "/"), "caFile": file.path(),
        "clientCertFile": mine.cert.path(), "clientKeyFile": mine.key.path(),
    })));
    assert_eq!(server.saw().error, None);

    // Another key than the certificate's: the declaration is invalid.
    let other = client_files(&clients, &LeafSpec::default());
    let err = prepare(json!({
        "url": "https://localhost/", "caFile": file.path(),
        "clientCertFile": mine.cert.path(), "clientKeyFile": other.key.path(),
    }))
    .err()
    .unwrap();
    assert_eq!(
        err,
        format!(
            "invalid declaration: field `clientKeyFile`: {}: the private key does not match \
             the certificate in {}",
            other.key.path().display(),
            mine.cert.path().display()
        )
    );
}

#[test]
fn tls_min_version_1_3_fails_a_server_that_speaks_only_1_2() {
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    let only12 = speaking(&leaf(&ca, &LeafSpec::default()), &[&rustls::version::TLS12]);
    let server = tls_serve(Arc::clone(&only12), OK, 1);
    let out = run(json!({
        "url": https_url(&server, "localhost", "/"), "caFile": file.path(),
        "tlsMinVersion": "1.3",
    }));
    let r = reason(&out);
    assert!(
        r.ends_with(
            "the server does not accept TLS 1.3, the only version offered \
             (tlsMinVersion \"1.3\"); it may speak TLS 1.2 only"
        ),
        "{r}"
    );
    let _ = server.saw();
    let server = tls_serve(only12, OK, 1);
    assert_pass(&run(json!({
        "url": https_url(&server, "localhost", "/"), "caFile": file.path(),
        "tlsMinVersion": "1.2",
    })));
    server.saw();
}
