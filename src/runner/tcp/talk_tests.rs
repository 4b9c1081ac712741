//! `send` and `expect` against real loopback servers (127.0.0.1 only),
//! and the peers' cases for them, ported.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::{Value, json};

use super::tests::{decl, ends_at, step_until, tcp_machine};
use super::unescape;
use crate::clock;
use crate::runner::machine::Step;
use crate::runner::machine::testing::{self, Harness};
use crate::{RunnerOutcome, Status};

const BOUND: Duration = Duration::from_secs(10);

/// A server for one connection on 127.0.0.1: `talk` gets the accepted
/// stream; what it returns is the thread's result.
fn serve<T: Send + 'static>(
    talk: impl FnOnce(&mut TcpStream) -> T + Send + 'static,
) -> (u16, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(BOUND)).unwrap();
        talk(&mut stream)
    });
    (port, thread)
}

/// Reads until `end` came (or the stream ended): what was read.
fn read_until(stream: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.windows(end.len()).any(|w| w == end) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// Reads until the client closes: everything it sent.
fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    got
}

fn run(fields: Value) -> RunnerOutcome {
    Harness::new().run(&*tcp_machine(fields), BOUND)
}

fn field_error(fields: Value) -> String {
    match testing::machine(&decl(fields)) {
        Ok(_) => panic!("prepared an invalid declaration"),
        Err(e) => e,
    }
}

#[test]
fn escapes_decode_to_bytes() {
    assert_eq!(unescape("PING\\r\\n").unwrap(), b"PING\r\n");
    assert_eq!(unescape("a\\tb\\\\c\\n").unwrap(), b"a\tb\\c\n");
    assert_eq!(unescape("\\x00\\xfF\\x7e").unwrap(), [0, 0xff, b'~']);
    // Real control characters and UTF-8 pass as they are.
    assert_eq!(unescape("é\r\n").unwrap(), "é\r\n".as_bytes());
    assert_eq!(unescape("").unwrap(), b"");
}

#[test]
fn an_unknown_escape_names_the_field_and_the_place() {
    let tail = "write \\r, \\n, \\t, \\\\ (a backslash) or \\xNN (a byte in hex)";
    for (value, escape, at) in [
        ("ab\\q", "\\q", 2),
        ("\\r\\x4", "\\x4", 2),
        ("\\xg0", "\\xg0", 0),
        // from_str_radix would take a sign; two hex digits are asked for.
        ("\\x+f", "\\x+f", 0),
        ("é\\", "\\", 2),
        ("\\\\\\é", "\\é", 2),
    ] {
        assert_eq!(
            field_error(json!({"port": 1, "send": value})),
            format!(
                "invalid declaration: field `send`: unknown escape `{escape}` at byte {at}: {tail}"
            ),
            "{value:?}"
        );
    }
    assert!(
        field_error(json!({"port": 1, "expect": "\\d+"}))
            .starts_with("invalid declaration: field `expect`: unknown escape `\\d+` at byte 0")
    );
}

#[test]
fn send_and_expect_hold_1_to_4096_bytes_after_escapes() {
    for field in ["send", "expect"] {
        let error = |v: Value| field_error(json!({"port": 1, field: v}));
        let sized = |n| {
            format!(
                "invalid declaration: field `{field}`: expected 1 to 4096 bytes (after escapes), got {n}"
            )
        };
        assert_eq!(error(json!("")), sized(0));
        assert_eq!(error(json!("a".repeat(4097))), sized(4097));
        // Four bytes written, one decoded.
        assert_eq!(error(json!("\\x41".repeat(4097))), sized(4097));
        assert_eq!(
            error(json!(7)),
            format!("invalid declaration: field `{field}`: expected a string, got 7")
        );
        for ok in [
            json!("a".repeat(4096)),
            json!("\\x41".repeat(4096)),
            Value::Null,
        ] {
            assert!(testing::machine(&decl(json!({"port": 1, field: ok}))).is_ok());
        }
    }
}

#[test]
fn redis_ping_pong_passes_and_the_server_gets_exactly_send() {
    let (port, server) = serve(|s| {
        let got = read_until(s, b"\r\n");
        s.write_all(b"+PONG\r\n").unwrap();
        got
    });
    let out = run(json!({"port": port, "send": "PING\\r\\n", "expect": "+PONG"}));
    assert_eq!(out, RunnerOutcome::pass());
    assert_eq!(server.join().unwrap(), b"PING\r\n");
}

#[test]
fn send_alone_passes_once_written() {
    let (port, server) = serve(read_all);
    let out = run(json!({"port": port, "send": "QUIT\r\n"}));
    assert_eq!(out, RunnerOutcome::pass());
    assert_eq!(server.join().unwrap(), b"QUIT\r\n");
}

#[test]
fn a_wrong_answer_shows_the_first_bytes_escaped_on_one_line() {
    let (port, server) = serve(|s| {
        read_until(s, b"\r\n");
        s.write_all(b"-NOAUTH Authentication required.\r\n")
            .unwrap();
    });
    let out = run(json!({"port": port, "send": "PING\r\n", "expect": "+PONG"}));
    assert_eq!(
        out.reason().unwrap(),
        format!(
            "tcp probe: 127.0.0.1:{port}: expected \"+PONG\" before the connection closed; \
             received \"-NOAUTH Authentication required.\\r\\n\""
        )
    );
    server.join().unwrap();
}

#[test]
fn only_the_first_4096_bytes_are_searched() {
    let (port, server) = serve(|s| {
        let mut flood = vec![b'a'; 4096];
        flood.extend_from_slice(b"+PONG");
        // The probe stops reading at 4096 bytes: the rest may not be taken.
        let _ = s.write_all(&flood);
        read_all(s);
    });
    let out = run(json!({"port": port, "expect": "+PONG"}));
    assert_eq!(
        out.reason().unwrap(),
        format!(
            "tcp probe: 127.0.0.1:{port}: expected \"+PONG\" in the first 4096 bytes received; \
             received \"{}\" (the first 200 of 4096 bytes)",
            "a".repeat(200)
        )
    );
    server.join().unwrap();
    // Found as the very last bytes of the 4096: a pass.
    let (port, server) = serve(|s| {
        let mut flood = vec![b'a'; 4091];
        flood.extend_from_slice(b"+PONG");
        s.write_all(&flood).unwrap();
        read_all(s);
    });
    assert_eq!(
        run(json!({"port": port, "expect": "+PONG"})),
        RunnerOutcome::pass()
    );
    server.join().unwrap();
}

#[test]
fn expect_split_across_reads_is_found() {
    let (sent_tx, sent) = mpsc::channel();
    let (go_tx, go) = mpsc::channel::<()>();
    let (port, server) = serve(move |s| {
        read_until(s, b"\r\n");
        s.write_all(b"junk +PO").unwrap();
        sent_tx.send(()).unwrap();
        go.recv().unwrap();
        s.write_all(b"NG\r\n").unwrap();
        read_all(s);
    });
    let m = tcp_machine(json!({"port": port, "send": "PING\r\n", "expect": "+PONG"}));
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let mut run = step_until(&mut h, &*m, t0, &sent);
    go_tx.send(()).unwrap();
    let give_up = clock::mono_now() + BOUND;
    let out = loop {
        assert!(clock::mono_now() < give_up, "never ended");
        if let (_, Step::Done(out)) = h.advance_after_io(&mut *run, Duration::from_millis(20), t0) {
            break out;
        }
    };
    assert_eq!(out, RunnerOutcome::pass());
    drop(run);
    server.join().unwrap();
}

#[test]
fn connect_timeout_secs_bounds_the_exchange_and_a_late_answer_counts() {
    // The server answers `answer` when told to, then holds the connection.
    let exchange = |answer: &'static [u8]| {
        let (asked_tx, asked) = mpsc::channel();
        let (go_tx, go) = mpsc::channel::<()>();
        let (answered_tx, answered) = mpsc::channel();
        let (port, server) = serve(move |s| {
            read_until(s, b"\r\n");
            asked_tx.send(()).unwrap();
            go.recv().unwrap();
            s.write_all(answer).unwrap();
            answered_tx.send(()).unwrap();
            read_all(s);
        });
        let m = tcp_machine(json!({
            "port": port, "send": "PING\r\n", "expect": "+PONG", "connectTimeoutSecs": 2,
        }));
        let mut h = Harness::new();
        let t0 = clock::mono_now();
        let run = step_until(&mut h, &*m, t0, &asked);
        // Answered before the deadline; the run is called only at it.
        go_tx.send(()).unwrap();
        answered.recv_timeout(BOUND).unwrap();
        (port, server, h, run, t0 + Duration::from_secs(2))
    };

    let (port, server, mut h, mut run, deadline) = exchange(b"-LOADING\r\n");
    let out = ends_at(&mut h, &mut *run, deadline);
    assert_eq!(
        out.reason().unwrap(),
        format!(
            "tcp probe: 127.0.0.1:{port}: expected \"+PONG\" within 2 s; received \"-LOADING\\r\\n\""
        )
    );
    drop(run);
    server.join().unwrap();

    // A server that says nothing: nothing to show.
    let (port, server, mut h, mut run, deadline) = exchange(b"");
    assert_eq!(
        ends_at(&mut h, &mut *run, deadline).reason().unwrap(),
        format!("tcp probe: 127.0.0.1:{port}: expected \"+PONG\" within 2 s; received nothing")
    );
    drop(run);
    server.join().unwrap();

    let (_, server, mut h, mut run, deadline) = exchange(b"+PONG\r\n");
    assert_eq!(
        h.advance(&mut *run, deadline),
        Step::Done(RunnerOutcome::pass())
    );
    drop(run);
    server.join().unwrap();
}

// Ported from prometheus/blackbox_exporter prober/tcp_test.go. Its
// `query_response` steps are regular expressions, each `send` with "\n"
// appended; here `expect` is a substring, `send` is sent as written, and
// the one `send` goes before the one `expect`.

/// An IRC server as blackbox's test has it: a NOTICE first, then the
/// registration (NICK and USER lines), then `reply`.
fn ircd(reply: &'static str) -> (u16, JoinHandle<Vec<u8>>) {
    serve(move |s| {
        s.write_all(b":ircd.localhost NOTICE AUTH :*** Looking up your hostname...\n")
            .unwrap();
        let got = read_until(s, b":prober\n");
        s.write_all(reply.as_bytes()).unwrap();
        got
    })
}

/// blackbox_exporter `TestTCPConnectionQueryResponseIRC`: passes on the
/// 001 welcome, fails on an ERROR.
#[test]
fn blackbox_query_response_irc() {
    // `^:[^ ]+ 001` there: the welcome's numeric, after the server's name.
    let probe = |port: u16| json!({"port": port, "send": "NICK prober\nUSER prober prober prober :prober\n", "expect": " 001 "});
    let (port, server) = ircd(":ircd.localhost 001 prober :Welcome to IRC!\n");
    assert_eq!(run(probe(port)), RunnerOutcome::pass());
    assert_eq!(
        server.join().unwrap(),
        b"NICK prober\nUSER prober prober prober :prober\n"
    );

    let (port, server) = ircd("ERROR: Your IP address has been blacklisted.\n");
    let out = run(probe(port));
    assert_eq!(out.status(), Status::Fail);
    assert_eq!(
        out.reason().unwrap(),
        format!(
            "tcp probe: 127.0.0.1:{port}: expected \" 001 \" before the connection closed; \
             received \":ircd.localhost NOTICE AUTH :*** Looking up your hostname...\\n\
             ERROR: Your IP address has been blacklisted.\\n\""
        )
    );
    server.join().unwrap();
}

/// blackbox_exporter `TestTCPConnectionQueryResponseMatching`: the SSH
/// banner passes, and nothing was sent for it. (Its `send: "CONFIRM ${1}"`, a capture of the match sent
/// back, has no counterpart: `expect` is a substring and comes last.)
#[test]
fn blackbox_query_response_matching() {
    let (port, server) = serve(|s| {
        s.write_all(b"SSH-2.0-OpenSSH_6.9p1 Debian-2\n").unwrap();
        read_all(s)
    });
    let out = run(json!({"port": port, "expect": "SSH-2.0-OpenSSH_6.9p1 Debian-2"}));
    assert_eq!(out, RunnerOutcome::pass());
    assert_eq!(server.join().unwrap(), b"", "the probe sent nothing");
}

/// blackbox_exporter `TestPrometheusTimeoutTCP`: a server that closes at
/// once fails an `expect`.
#[test]
fn blackbox_timeout_tcp() {
    let (port, server) = serve(|_| ());
    let out = run(json!({"port": port, "expect": "SSH-2.0-OpenSSH_6.9p1 Debian-2"}));
    assert_eq!(
        out.reason().unwrap(),
        format!(
            "tcp probe: 127.0.0.1:{port}: expected \"SSH-2.0-OpenSSH_6.9p1 Debian-2\" \
             before the connection closed; received nothing"
        )
    );
    server.join().unwrap();
}

#[cfg(feature = "tls")]
mod tls {
    use serde_json::json;

    use super::{BOUND, tcp_machine};
    use crate::RunnerOutcome;
    use crate::runner::machine::testing::Harness;
    use crate::transport::tls::testing::*;

    #[test]
    fn send_and_expect_go_over_tls_after_the_handshake() {
        let ca = ca("tcp test CA");
        let file = ca_file(&ca);
        let probe = |server: &Server, expect: &str| {
            tcp_machine(json!({
                "port": server.addr.port(), "tls": true, "caFile": file.path(),
                "tlsServerName": "localhost", "send": "HELLO\r\n\r\n", "expect": expect,
            }))
        };
        let server = tls_server(leaf(&ca, &LeafSpec::default()), b"+PONG\r\n");
        let out = Harness::new().run(&*probe(&server, "+PONG"), BOUND);
        assert_eq!(out, RunnerOutcome::pass());
        assert_eq!(server.saw().received, b"HELLO\r\n\r\n");

        let server = tls_server(leaf(&ca, &LeafSpec::default()), b"-ERR\r\n");
        let out = Harness::new().run(&*probe(&server, "+PONG"), BOUND);
        assert_eq!(
            assert_words(out.reason().unwrap()),
            format!(
                "tcp probe: {}: expected \"+PONG\" before the connection closed; received \"-ERR\\r\\n\"",
                server.addr
            )
        );
        server.saw();
    }
}
