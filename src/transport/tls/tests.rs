//! TLS sessions against real loopback servers with certificates made here.
//!
//! Each server is a thread with a blocking rustls `ServerConnection` (or a
//! raw socket, for the servers that misbehave) serving one connection; the
//! client is the code under test, driven by a small mio loop over a
//! non-blocking socket, the way a worker drives a run. Every wait has a
//! bounded deadline.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Poll, Token};
use rcgen::{BasicConstraints, IsCa, Issuer, KeyPair};
use rustls::AlertDescription;

use super::testing::*;
use super::*;
use crate::clock::mono_now;

// ---- the client, as a worker would drive it ---------------------------------

const STREAM: Token = Token(0);

struct Client {
    poll: Poll,
    events: Events,
    stream: TcpStream,
    session: TlsSession,
}

impl Client {
    /// Connects (blocking: the dial is not what is tested here), then
    /// switches the socket to non-blocking and starts a session for `host`.
    fn connect(addr: SocketAddr, setup: &TlsSetup, host: &str) -> Client {
        let std_stream = std::net::TcpStream::connect(addr).unwrap();
        std_stream.set_nonblocking(true).unwrap();
        let mut stream = TcpStream::from_std(std_stream);
        let poll = Poll::new().unwrap();
        let session = TlsSession::new(setup, host).unwrap();
        poll.registry()
            .register(&mut stream, STREAM, session.interest())
            .unwrap();
        Client {
            poll,
            events: Events::with_capacity(4),
            stream,
            session,
        }
    }

    /// Waits for readiness until `deadline`; false once it has passed.
    fn wait(&mut self, deadline: Instant) -> bool {
        let now = mono_now();
        if now >= deadline {
            return false;
        }
        self.poll
            .registry()
            .reregister(&mut self.stream, STREAM, self.session.interest())
            .unwrap();
        match self.poll.poll(&mut self.events, Some(deadline - now)) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
            Err(e) => panic!("poll: {e}"),
        }
    }

    /// Drives the handshake until it is done, fails, or `limit` passes
    /// (`Ok(false)`: still waiting at the deadline).
    fn handshake(&mut self, limit: Duration) -> Result<bool, TlsFail> {
        let deadline = mono_now() + limit;
        loop {
            if self.session.handshake(&mut self.stream).map_err(in_words)? {
                return Ok(true);
            }
            if !self.wait(deadline) {
                return Ok(false);
            }
        }
    }

    fn handshake_ok(&mut self) {
        match self.handshake(PATIENCE) {
            Ok(true) => {}
            Ok(false) => panic!("handshake still running after {PATIENCE:?}"),
            Err(e) => panic!("handshake failed: {e}"),
        }
    }

    fn handshake_err(&mut self) -> TlsFail {
        match self.handshake(PATIENCE) {
            Ok(true) => panic!("handshake passed"),
            Ok(false) => panic!("handshake still running after {PATIENCE:?}"),
            Err(e) => e,
        }
    }

    /// Sends `data` in full, as a run's sending state does.
    fn send(&mut self, data: &[u8]) -> Result<(), TlsFail> {
        let deadline = mono_now() + PATIENCE;
        let mut sent = 0;
        while sent < data.len() {
            match self.session.write_plain(&mut self.stream, &data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(self.wait(deadline), "send timed out");
                }
                Err(e) => return Err(in_words(TlsFail::from_io(&e))),
            }
        }
        loop {
            match self.session.flush(&mut self.stream) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(self.wait(deadline), "flush timed out");
                }
                Err(e) => return Err(in_words(TlsFail::from_io(&e))),
            }
        }
    }

    /// Reads to the end of the stream.
    fn receive(&mut self) -> Result<Vec<u8>, TlsFail> {
        let deadline = mono_now() + PATIENCE;
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            match self.session.read_plain(&mut self.stream, &mut buf) {
                Ok(0) => return Ok(got),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(self.wait(deadline), "receive timed out");
                }
                Err(e) => return Err(in_words(TlsFail::from_io(&e))),
            }
        }
    }
}

/// Every failure a test sees must read as words ([`assert_words`]).
#[track_caller]
fn in_words(fail: TlsFail) -> TlsFail {
    assert_words(&fail.to_string());
    fail
}

/// The setup's failure, which must read as words.
#[track_caller]
fn setup_err(settings: &TlsOptions) -> String {
    let err = TlsSetup::new(settings).unwrap_err().to_string();
    assert_words(&err);
    err
}

const REQUEST: &[u8] = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

// ---- the tests ---------------------------------------------------------------

#[test]
fn passes_with_ca_file_and_carries_a_request_and_its_response() {
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    let server = tls_server(leaf(&ca, &LeafSpec::default()), RESPONSE);
    let setup = TlsSetup::new(&trusting(&file)).unwrap();
    let mut client = Client::connect(server.addr, &setup, "localhost");
    client.handshake_ok();
    client.send(REQUEST).unwrap();
    assert_eq!(client.receive().unwrap(), RESPONSE);
    let saw = server.saw();
    assert_eq!(saw.error, None);
    assert_eq!(saw.received, REQUEST);
    assert_eq!(saw.sni.as_deref(), Some("localhost"));
}

#[test]
fn an_ip_address_is_verified_against_the_certificate_ip_names() {
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    let server = tls_server(leaf(&ca, &LeafSpec::default()), RESPONSE);
    let setup = TlsSetup::new(&trusting(&file)).unwrap();
    let mut client = Client::connect(server.addr, &setup, "127.0.0.1");
    client.handshake_ok();
    // An IP address is not sent as SNI (RFC 6066).
    drop(client);
    assert_eq!(server.saw().sni, None);
}

#[test]
fn unknown_issuer_names_the_trust_it_was_checked_against() {
    let ca_server = ca("the server's CA");
    let ca_other = ca("some other CA");
    let file = ca_file(&ca_other);
    let server = tls_server(leaf(&ca_server, &LeafSpec::default()), RESPONSE);
    let setup = TlsSetup::new(&trusting(&file)).unwrap();
    let fail = Client::connect(server.addr, &setup, "localhost").handshake_err();
    assert!(matches!(fail, TlsFail::UnknownIssuer { .. }), "{fail:?}");
    let reason = fail.to_string();
    assert!(reason.contains("unknown issuer"), "{reason}");
    assert!(
        reason.ends_with("is self-signed or issued by a CA that is not there: add the CA that issued it to caFile"),
        "{reason}"
    );
    assert!(
        reason.contains(&file.path().display().to_string()),
        "{reason}"
    );
    // The server hears why: the client's alert.
    assert!(server.saw().error.is_some());
}

#[test]
fn a_certificate_for_another_name_is_a_name_mismatch() {
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    let spec = LeafSpec {
        names: &["other.example"],
        ..LeafSpec::default()
    };
    let server = tls_server(leaf(&ca, &spec), RESPONSE);
    let setup = TlsSetup::new(&trusting(&file)).unwrap();
    let fail = Client::connect(server.addr, &setup, "localhost").handshake_err();
    let TlsFail::NameMismatch {
        expected,
        presented,
    } = &fail
    else {
        panic!("{fail:?}");
    };
    assert_eq!(expected, "localhost");
    assert!(
        presented.iter().any(|p| p.contains("other.example")),
        "{presented:?}"
    );
    assert_eq!(presented, &["other.example"]);
    assert_eq!(
        fail.to_string(),
        "TLS certificate is not valid for name \"localhost\" (it is valid for other.example); \
         set tlsServerName to one of those, or reissue it with \"localhost\" in its subjectAltName"
    );
}

#[test]
fn tls_server_name_replaces_the_host_for_sni_and_verification() {
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    let spec = LeafSpec {
        names: &["svc.internal"],
        ..LeafSpec::default()
    };
    let server = tls_server(leaf(&ca, &spec), RESPONSE);
    let settings = TlsOptions {
        server_name: Some("svc.internal".into()),
        ..trusting(&file)
    };
    let setup = TlsSetup::new(&settings).unwrap();
    let mut client = Client::connect(server.addr, &setup, "127.0.0.1");
    client.handshake_ok();
    client.send(REQUEST).unwrap();
    assert_eq!(client.receive().unwrap(), RESPONSE);
    assert_eq!(server.saw().sni.as_deref(), Some("svc.internal"));
}

#[test]
fn an_expired_certificate_fails_with_its_expiry() {
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    let spec = LeafSpec {
        from: -400,
        until: -30,
        ..LeafSpec::default()
    };
    let server = tls_server(leaf(&ca, &spec), RESPONSE);
    let setup = TlsSetup::new(&trusting(&file)).unwrap();
    let fail = Client::connect(server.addr, &setup, "localhost").handshake_err();
    let TlsFail::Expired {
        not_after: Some(not_after),
    } = fail
    else {
        panic!("{fail:?}");
    };
    let expected = unix_now() - 30 * 86_400;
    assert!(
        (not_after - expected).abs() < 120,
        "{not_after} vs {expected}"
    );
    assert_eq!(
        fail.to_string(),
        format!(
            "TLS certificate expired at {}; the server needs a renewed certificate",
            der::format_utc(not_after)
        )
    );
}

#[test]
fn a_certificate_not_valid_yet_fails() {
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    let spec = LeafSpec {
        from: 30,
        until: 400,
        ..LeafSpec::default()
    };
    let server = tls_server(leaf(&ca, &spec), RESPONSE);
    let setup = TlsSetup::new(&trusting(&file)).unwrap();
    let fail = Client::connect(server.addr, &setup, "localhost").handshake_err();
    assert!(
        matches!(
            fail,
            TlsFail::NotYetValid {
                not_before: Some(_)
            }
        ),
        "{fail:?}"
    );
    assert!(fail.to_string().contains("not valid yet"), "{fail}");
}

#[test]
fn a_certificate_expiring_within_min_validity_days_fails_naming_subject_and_date() {
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    let spec = LeafSpec {
        cn: "soon.example",
        until: 10,
        ..LeafSpec::default()
    };
    let settings = |days| TlsOptions {
        min_validity_days: Some(days),
        ..trusting(&file)
    };

    let server = tls_server(leaf(&ca, &spec), RESPONSE);
    let setup = TlsSetup::new(&settings(30)).unwrap();
    let fail = Client::connect(server.addr, &setup, "localhost").handshake_err();
    let TlsFail::ExpiresSoon {
        subject,
        not_after,
        min_days: 30,
        expired: false,
    } = &fail
    else {
        panic!("{fail:?}");
    };
    assert_eq!(subject, "CN=soon.example,O=probewheel tests");
    let expected = unix_now() + 10 * 86_400;
    assert!(
        (not_after - expected).abs() < 120,
        "{not_after} vs {expected}"
    );
    let reason = fail.to_string();
    assert!(
        reason.contains("CN=soon.example")
            && reason.contains(&der::format_utc(*not_after))
            && reason.contains("minCertValidityDays (30)"),
        "{reason}"
    );

    // Ten days left is enough for a probe that asks for five.
    let server = tls_server(leaf(&ca, &spec), RESPONSE);
    let setup = TlsSetup::new(&settings(5)).unwrap();
    Client::connect(server.addr, &setup, "localhost").handshake_ok();
}

#[test]
fn min_validity_days_looks_at_every_presented_certificate() {
    // The CA expires before the leaf: the chain is only as good as it.
    let key = KeyPair::generate().unwrap();
    let mut ca_params = params(&LeafSpec {
        cn: "short-lived CA",
        names: &[],
        from: -1,
        until: 3,
    });
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&key).unwrap();
    let ca = Ca {
        cert: ca_cert,
        issuer: Issuer::new(ca_params, key),
    };
    let leaf = leaf(&ca, &LeafSpec::default());
    let now = unix_now();
    let fail = in_words(validity_check(leaf.chain.iter().map(|c| c.as_ref()), 7, now).unwrap_err());
    let TlsFail::ExpiresSoon { subject, .. } = &fail else {
        panic!("{fail:?}");
    };
    assert_eq!(subject, "CN=short-lived CA,O=probewheel tests");
    assert!(validity_check(leaf.chain.iter().map(|c| c.as_ref()), 2, now).is_ok());
    assert!(matches!(
        validity_check(std::iter::empty(), 2, now),
        Err(TlsFail::BadCertificate(_))
    ));
    let junk = validity_check([&b"\x30\x03junk"[..]].into_iter(), 2, now).map_err(in_words);
    assert!(matches!(junk, Err(TlsFail::BadCertificate(_))), "{junk:?}");
}

#[test]
fn a_self_signed_certificate_is_an_unknown_issuer_unless_verification_is_skipped() {
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    let server = tls_server(self_signed(&LeafSpec::default()), RESPONSE);
    let setup = TlsSetup::new(&trusting(&file)).unwrap();
    let fail = Client::connect(server.addr, &setup, "localhost").handshake_err();
    assert!(matches!(fail, TlsFail::UnknownIssuer { .. }), "{fail:?}");

    let skip = TlsOptions {
        skip_verify: true,
        ..TlsOptions::default()
    };
    let server = tls_server(self_signed(&LeafSpec::default()), RESPONSE);
    let setup = TlsSetup::new(&skip).unwrap();
    let mut client = Client::connect(server.addr, &setup, "localhost");
    client.handshake_ok();
    client.send(REQUEST).unwrap();
    assert_eq!(client.receive().unwrap(), RESPONSE);
}

#[test]
fn skip_verify_ignores_name_and_dates_but_not_min_validity_days() {
    let skip = TlsOptions {
        skip_verify: true,
        ..TlsOptions::default()
    };
    let stale = LeafSpec {
        names: &["elsewhere.example"],
        cn: "stale",
        from: -100,
        until: -1,
    };
    let server = tls_server(self_signed(&stale), RESPONSE);
    let setup = TlsSetup::new(&skip).unwrap();
    Client::connect(server.addr, &setup, "localhost").handshake_ok();

    let server = tls_server(self_signed(&stale), RESPONSE);
    let setup = TlsSetup::new(&TlsOptions {
        min_validity_days: Some(1),
        ..skip
    })
    .unwrap();
    let fail = Client::connect(server.addr, &setup, "localhost").handshake_err();
    assert!(
        matches!(fail, TlsFail::ExpiresSoon { expired: true, .. }),
        "{fail:?}"
    );
    let reason = fail.to_string();
    assert!(
        reason.contains("CN=stale") && reason.contains("expired at"),
        "{reason}"
    );
}

#[test]
fn a_server_that_never_answers_leaves_the_handshake_waiting_until_the_deadline() {
    let (release, released) = mpsc::channel::<()>();
    let server = raw_server(move |_stream| {
        // Hold the connection open, say nothing, until the test is done.
        let _ = released.recv_timeout(PATIENCE);
    });
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    let setup = TlsSetup::new(&trusting(&file)).unwrap();
    let mut client = Client::connect(server.addr, &setup, "localhost");
    let limit = Duration::from_millis(200);
    let started = mono_now();
    assert_eq!(client.handshake(limit), Ok(false));
    assert!(mono_now() - started >= limit);
    // Still waiting for the ServerHello, and the caller knows what to say.
    assert_eq!(client.session.handshake(&mut client.stream), Ok(false));
    assert_eq!(client.session.interest(), mio::Interest::READABLE);
    assert!(!client.session.heard());
    let fail = TlsFail::HandshakeTimeout {
        after: limit,
        heard: client.session.heard(),
    };
    assert_eq!(
        fail.to_string(),
        "TLS handshake timed out after 200 ms (no answer to the ClientHello)"
    );
    release.send(()).unwrap();
    let saw = server.saw();
    // What the server got was a ClientHello: a handshake record.
    assert_eq!(saw.received.first(), Some(&0x16), "{:?}", saw.received);
}

#[test]
fn plain_http_on_the_port_is_a_protocol_error() {
    let server = raw_server(|stream| {
        let _ = stream.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    });
    let setup = TlsSetup::new(&TlsOptions {
        skip_verify: true,
        ..TlsOptions::default()
    })
    .unwrap();
    let fail = Client::connect(server.addr, &setup, "localhost").handshake_err();
    let TlsFail::Protocol(why) = &fail else {
        panic!("{fail:?}");
    };
    assert!(why.contains("plain text") && why.contains("HTTP/"), "{why}");
    drop(server.saw());
}

#[test]
fn a_fatal_alert_from_the_server_is_reported_as_such() {
    let server = raw_server(|stream| {
        // An alert record: TLS 1.2 framing, fatal (2), handshake_failure (40).
        let _ = stream.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]);
    });
    let setup = TlsSetup::new(&TlsOptions {
        skip_verify: true,
        ..TlsOptions::default()
    })
    .unwrap();
    let fail = Client::connect(server.addr, &setup, "localhost").handshake_err();
    assert_eq!(fail, TlsFail::Alert(AlertDescription::HandshakeFailure));
    assert_eq!(
        fail.to_string(),
        "the server sent TLS alert handshake_failure (40): it found no acceptable TLS version, \
         cipher suite or key exchange in common, or it wants a client certificate"
    );
    drop(server.saw());
}

#[test]
fn a_server_that_hangs_up_mid_handshake_is_reported_as_closed() {
    let server = raw_server(|stream| {
        let _ = stream.shutdown(std::net::Shutdown::Both);
    });
    let setup = TlsSetup::new(&TlsOptions {
        skip_verify: true,
        ..TlsOptions::default()
    })
    .unwrap();
    let fail = Client::connect(server.addr, &setup, "localhost").handshake_err();
    assert_eq!(fail, TlsFail::Closed);
    assert_eq!(
        fail.to_string(),
        "the server closed the connection during the TLS handshake"
    );
    drop(server.saw());
}

#[test]
fn a_handshake_that_is_done_stays_done_and_is_not_repeated() {
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    let server = tls_server(leaf(&ca, &LeafSpec::default()), RESPONSE);
    let setup = TlsSetup::new(&trusting(&file)).unwrap();
    let mut client = Client::connect(server.addr, &setup, "localhost");
    let early = client.session.write_plain(&mut client.stream, REQUEST);
    assert_eq!(
        early.unwrap_err().to_string(),
        "TLS write before the handshake completed"
    );
    client.handshake_ok();
    assert_eq!(client.session.handshake(&mut client.stream), Ok(true));
    assert_eq!(client.session.interest(), mio::Interest::READABLE);
    client.send(REQUEST).unwrap();
    assert_eq!(client.receive().unwrap(), RESPONSE);
    assert_eq!(server.saw().received, REQUEST);
}

#[test]
fn an_alert_after_the_handshake_comes_out_of_read_plain() {
    // The server wants a client certificate. In TLS 1.3 the client is done
    // before the server has judged it, so the refusal arrives as data would.
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    let leaf = leaf(&ca, &LeafSpec::default());
    let config = requiring_client_certs(&leaf, &ca, &[&rustls::version::TLS13]);
    let server = tls_serve(config, RESPONSE, 1);
    let setup = TlsSetup::new(&trusting(&file)).unwrap();
    let mut client = Client::connect(server.addr, &setup, "localhost");
    client.handshake_ok();
    let fail = client.receive().unwrap_err();
    assert_eq!(fail, TlsFail::Alert(AlertDescription::CertificateRequired));
    assert_eq!(
        fail.to_string(),
        "the server sent TLS alert certificate_required (116): it requires a client \
         certificate, which probewheel does not send"
    );
    assert!(server.saw().error.is_some());
}

#[test]
fn a_megabyte_each_way_passes_through_the_buffers_intact() {
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    // Distinct bytes everywhere, so a lost or repeated record shows.
    let body: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut response =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    response.extend_from_slice(&body);
    let response: &'static [u8] = Box::leak(response.into_boxed_slice());
    let mut request = b"POST / HTTP/1.1\r\nX-Pad: ".to_vec();
    request.extend(body.iter().map(|b| b'a' + b % 26));
    request.extend_from_slice(b"\r\n\r\n");

    let server = tls_server(leaf(&ca, &LeafSpec::default()), response);
    let setup = TlsSetup::new(&trusting(&file)).unwrap();
    let mut client = Client::connect(server.addr, &setup, "localhost");
    client.handshake_ok();
    client.send(&request).unwrap();
    assert!(client.receive().unwrap() == response, "response differs");
    let saw = server.saw();
    assert_eq!(saw.error, None);
    assert!(saw.received == request, "request differs");
}

#[test]
fn every_session_does_a_full_handshake_and_verifies_again() {
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    let leaf = leaf(&ca, &LeafSpec::default());
    // One server configuration: it would resume sessions if asked to.
    let server = tls_serve(server_config(&leaf), RESPONSE, 2);
    let setup = TlsSetup::new(&trusting(&file)).unwrap();
    for _ in 0..2 {
        let mut client = Client::connect(server.addr, &setup, "localhost");
        client.handshake_ok();
        client.send(REQUEST).unwrap();
        // Reading takes in the server's session tickets too.
        assert_eq!(client.receive().unwrap(), RESPONSE);
        assert_eq!(
            client.session.conn.handshake_kind(),
            Some(rustls::HandshakeKind::Full)
        );
    }
    assert_eq!(server.saw().error, None);
}

// ---- setup -------------------------------------------------------------------

#[test]
fn a_missing_or_empty_ca_file_is_a_setup_error_naming_it() {
    let missing = std::env::temp_dir().join("probewheel-tls-no-such-file.pem");
    let err = setup_err(&TlsOptions {
        ca_file: Some(missing.clone()),
        ..TlsOptions::default()
    });
    assert!(
        err.starts_with(&format!("caFile {}: ", missing.display())),
        "{err}"
    );

    let empty = TempFile::new(b"# not a certificate\n");
    let err = setup_err(&trusting(&empty));
    assert!(
        err.contains(&empty.path().display().to_string()) && err.contains("no PEM certificate"),
        "{err}"
    );

    // Also with tlsSkipVerify: a broken caFile is a mistake either way.
    let err = setup_err(&TlsOptions {
        skip_verify: true,
        ..trusting(&empty)
    });
    assert!(err.contains("no PEM certificate"), "{err}");
}

#[test]
fn the_system_store_is_the_first_usable_bundle_and_its_absence_names_every_place() {
    let ca = ca("system CA");
    let good = TempFile::new(ca.cert.pem().as_bytes());
    let empty = TempFile::new(b"");
    let missing = std::env::temp_dir().join("probewheel-tls-missing-bundle.pem");

    let used = trust::system(&[
        missing.clone(),
        empty.path().to_owned(),
        good.path().to_owned(),
    ])
    .unwrap();
    assert_eq!(
        *used.label,
        format!("the system trust store {}", good.path().display())
    );

    let err = trust::system(&[missing.clone(), empty.path().to_owned()])
        .unwrap_err()
        .to_string();
    assert_words(&err);
    assert!(err.starts_with("no system trust store found"), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains(&empty.path().display().to_string()), "{err}");

    // And TlsSetup reports the same when verification needs the store.
    let err =
        TlsSetup::with_system_candidates(&TlsOptions::default(), std::slice::from_ref(&missing))
            .unwrap_err()
            .to_string();
    assert_words(&err);
    assert!(err.contains(&missing.display().to_string()), "{err}");
    // tlsSkipVerify needs no trust store at all.
    let skip = TlsOptions {
        skip_verify: true,
        ..TlsOptions::default()
    };
    assert!(TlsSetup::with_system_candidates(&skip, &[missing]).is_ok());
}

#[test]
fn the_system_store_verifies_a_server_whose_ca_is_in_it() {
    let ca = ca("system CA");
    let bundle = TempFile::new(ca.cert.pem().as_bytes());
    let setup =
        TlsSetup::with_system_candidates(&TlsOptions::default(), &[bundle.path().to_owned()])
            .unwrap();
    let server = tls_server(leaf(&ca, &LeafSpec::default()), RESPONSE);
    Client::connect(server.addr, &setup, "localhost").handshake_ok();

    // A server from elsewhere: the reason names the bundle.
    let other = self::ca("other CA");
    let server = tls_server(leaf(&other, &LeafSpec::default()), RESPONSE);
    let fail = Client::connect(server.addr, &setup, "localhost").handshake_err();
    let reason = fail.to_string();
    assert!(
        reason.contains(&format!(
            "the system trust store {}",
            bundle.path().display()
        )),
        "{reason}"
    );
}

#[test]
fn system_candidates_put_ssl_cert_file_first() {
    let paths = trust::system_candidates();
    assert!(paths.contains(&PathBuf::from("/etc/ssl/certs/ca-certificates.crt")));
    assert!(paths.contains(&PathBuf::from("/etc/static/ssl/certs/ca-certificates.crt")));
    // The environment is read, not set, here: other tests run in parallel.
    if let Some(env) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) {
        assert_eq!(paths[0], PathBuf::from(env));
    }
}

#[test]
fn server_names_are_checked_at_setup_and_ipv6_brackets_are_accepted() {
    let skip = TlsOptions {
        skip_verify: true,
        ..TlsOptions::default()
    };
    let err = setup_err(&TlsOptions {
        server_name: Some("not a name".into()),
        ..skip.clone()
    });
    assert_eq!(err, "not a valid TLS server name: \"not a name\"");
    let setup = TlsSetup::new(&skip).unwrap();
    assert!(TlsSession::new(&setup, "[::1]").is_ok());
    assert!(TlsSession::new(&setup, "::1").is_ok());
    assert!(TlsSession::new(&setup, "bad name").is_err());
}

#[test]
fn io_errors_carry_the_tls_failure_through() {
    let fail = TlsFail::Alert(AlertDescription::HandshakeFailure);
    assert_eq!(TlsFail::from_io(&fail.clone().into_io()), fail);
    let plain = io::Error::new(io::ErrorKind::ConnectionReset, "reset by peer");
    assert_eq!(
        TlsFail::from_io(&plain),
        TlsFail::Io("reset by peer".into())
    );
}

// ---- failure reasons in words (issue 20) ------------------------------------

#[test]
fn a_ca_certificate_presented_as_the_server_certificate_says_how_to_make_a_leaf() {
    // What `openssl req -x509` makes by default: self-signed, CA:TRUE.
    let key = KeyPair::generate().unwrap();
    let mut params = params(&LeafSpec::default());
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let file = TempFile::new(cert.pem().as_bytes());
    let server = tls_server(
        Leaf {
            chain: vec![cert.der().clone()],
            key,
        },
        RESPONSE,
    );
    let setup = TlsSetup::new(&trusting(&file)).unwrap();
    let fail = Client::connect(server.addr, &setup, "localhost").handshake_err();
    assert_eq!(
        fail.to_string(),
        "TLS certificate rejected: the server presents a CA certificate (basicConstraints \
         CA:TRUE) as its own, and a CA certificate cannot identify a server; make a leaf \
         certificate signed by a CA (and put that CA in caFile), or add `-addext \
         basicConstraints=critical,CA:FALSE` to `openssl req -x509`"
    );
    assert!(server.saw().error.is_some());
}

#[test]
fn a_chain_deeper_than_webpki_follows_says_so() {
    // root -> 7 intermediates -> leaf: one intermediate more than webpki takes.
    let root = ca("root CA");
    let file = ca_file(&root);
    let mut issuer = root.issuer;
    let mut intermediates = Vec::new();
    for i in 0..7 {
        let key = KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("intermediate {i}"));
        intermediates.push(params.signed_by(&key, &issuer).unwrap().der().clone());
        issuer = Issuer::new(params, key);
    }
    let key = KeyPair::generate().unwrap();
    let leaf_cert = params(&LeafSpec::default())
        .signed_by(&key, &issuer)
        .unwrap();
    let mut chain = vec![leaf_cert.der().clone()];
    chain.extend(intermediates.into_iter().rev());
    let server = tls_server(Leaf { chain, key }, RESPONSE);
    let setup = TlsSetup::new(&trusting(&file)).unwrap();
    let fail = Client::connect(server.addr, &setup, "localhost").handshake_err();
    assert_eq!(
        fail.to_string(),
        "TLS certificate rejected: the chain to a trusted CA is too long: webpki follows at \
         most 6 intermediate CAs; trust an intermediate closer to the server's certificate in \
         caFile, or shorten the chain"
    );
    let _ = server.saw();
}

#[test]
fn a_name_mismatch_lists_the_names_the_certificate_has_as_written() {
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    let setup = TlsSetup::new(&trusting(&file)).unwrap();

    // IP names, IPv6 included, in their usual form.
    let spec = LeafSpec {
        names: &["127.0.0.1", "::1"],
        ..LeafSpec::default()
    };
    let server = tls_server(leaf(&ca, &spec), RESPONSE);
    let fail = Client::connect(server.addr, &setup, "localhost").handshake_err();
    assert_eq!(
        fail.to_string(),
        "TLS certificate is not valid for name \"localhost\" (it is valid for 127.0.0.1, ::1); \
         set tlsServerName to one of those, or reissue it with \"localhost\" in its subjectAltName"
    );
    let _ = server.saw();

    // An IP address asked for, a DNS name presented.
    let spec = LeafSpec {
        names: &["localhost"],
        ..LeafSpec::default()
    };
    let server = tls_server(leaf(&ca, &spec), RESPONSE);
    let fail = Client::connect(server.addr, &setup, "127.0.0.1").handshake_err();
    assert!(
        fail.to_string().starts_with(
            "TLS certificate is not valid for name \"127.0.0.1\" (it is valid for localhost); "
        ),
        "{fail}"
    );
    let _ = server.saw();

    // No subjectAltName at all: the CN alone is not read.
    let spec = LeafSpec {
        names: &[],
        cn: "localhost",
        ..LeafSpec::default()
    };
    let server = tls_server(leaf(&ca, &spec), RESPONSE);
    let fail = Client::connect(server.addr, &setup, "localhost").handshake_err();
    assert_eq!(
        fail.to_string(),
        "TLS certificate is not valid for name \"localhost\" (it names no DNS name or IP \
         address in a subjectAltName, and the subject's CN is not read); reissue it with \
         subjectAltName DNS:localhost"
    );
    let _ = server.saw();
}

#[test]
fn a_long_list_of_names_leaves_room_for_the_fix() {
    let fail = TlsFail::NameMismatch {
        expected: "api.example".into(),
        presented: (1..=20).map(|i| format!("host{i}.example")).collect(),
    };
    assert_eq!(
        in_words(fail).to_string(),
        "TLS certificate is not valid for name \"api.example\" (it is valid for host1.example, \
         host2.example, host3.example, host4.example, host5.example, host6.example, \
         host7.example, host8.example and 12 more); set tlsServerName to one of those, or \
         reissue it with \"api.example\" in its subjectAltName"
    );
}

#[test]
fn a_server_that_sends_binary_garbage_is_a_protocol_error_in_words() {
    let server = raw_server(|stream| {
        // Not a TLS record type (0x99), and not text either.
        let _ = stream.write_all(&[0x99, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00]);
    });
    let setup = TlsSetup::new(&TlsOptions {
        skip_verify: true,
        ..TlsOptions::default()
    })
    .unwrap();
    let fail = Client::connect(server.addr, &setup, "localhost").handshake_err();
    assert_eq!(
        fail.to_string(),
        "TLS protocol error: the server sent a malformed TLS message: a record of an unknown \
         type (the port may not speak TLS)"
    );
    drop(server.saw());
}

#[test]
fn a_ca_file_that_is_no_usable_pem_says_what_is_wrong_with_it() {
    let ca = ca("probewheel test CA");
    let pem = ca.cert.pem();
    let reason = |contents: &[u8]| {
        let file = TempFile::new(contents);
        let err = setup_err(&trusting(&file));
        let prefix = format!("caFile {}: ", file.path().display());
        err.strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{err:?} does not start with {prefix:?}"))
            .to_owned()
    };

    // Cut short: the first block, then the second after a good one.
    assert_eq!(
        reason(&pem.as_bytes()[..pem.len() / 2]),
        "PEM block 1 has no end line `-----END CERTIFICATE-----` (is the file cut short?)"
    );
    let two = format!("{pem}{}", &pem[..pem.len() - 30]);
    assert_eq!(
        reason(two.as_bytes()),
        "PEM block 2 has no end line `-----END CERTIFICATE-----` (is the file cut short?)"
    );
    // Garbage inside the block, in its BEGIN line, or base64 that is no certificate.
    assert_eq!(
        reason(b"-----BEGIN CERTIFICATE-----\nnot*base64!\n-----END CERTIFICATE-----\n"),
        "the base64 text of PEM block 1 is corrupt (a character outside base64, or lines missing)"
    );
    assert_eq!(
        reason(b"-----BEGIN CERTIFICATE----\nAAAA\n-----END CERTIFICATE-----\n"),
        "the line `-----BEGIN CERTIFICATE----` starts like a PEM block but is not a valid \
         BEGIN line (five dashes on each side)"
    );
    assert_eq!(
        reason(b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n"),
        "certificate 1 is not a usable trust anchor: it is not a well-formed X.509 \
         certificate (its DER encoding is invalid)"
    );
    // Nothing, something else, or the right thing in the wrong encoding.
    assert_eq!(
        reason(b""),
        "the file is empty; expected PEM certificates (-----BEGIN CERTIFICATE-----)"
    );
    assert_eq!(
        reason(b" \n\n"),
        "the file is empty; expected PEM certificates (-----BEGIN CERTIFICATE-----)"
    );
    let key = KeyPair::generate().unwrap();
    assert_eq!(
        reason(key.serialize_pem().as_bytes()),
        "no PEM certificate in it, only a private key; expected PEM certificates \
         (-----BEGIN CERTIFICATE-----) of the CA"
    );
    assert_eq!(
        reason(ca.cert.der()),
        "no PEM certificate in it: it looks like a binary (DER) certificate; convert it with \
         `openssl x509 -inform der -in FILE -out FILE.pem`; expected PEM certificates \
         (-----BEGIN CERTIFICATE-----)"
    );
    assert_eq!(
        reason(b"# a comment\n"),
        "no PEM certificate in it; expected PEM certificates (-----BEGIN CERTIFICATE-----)"
    );
}

#[test]
fn an_unreadable_ca_file_gives_the_system_reason() {
    // A path through a regular file cannot be opened (ENOTDIR), even as root.
    let file = TempFile::new(b"");
    let through = file.path().join("ca.pem");
    let err = setup_err(&TlsOptions {
        ca_file: Some(through.clone()),
        ..TlsOptions::default()
    });
    assert_eq!(
        err,
        format!(
            "caFile {}: Not a directory (os error 20)",
            through.display()
        )
    );
    // A directory is not opened for reading at all.
    let dir = std::env::temp_dir();
    let err = setup_err(&TlsOptions {
        ca_file: Some(dir.clone()),
        ..TlsOptions::default()
    });
    assert_eq!(
        err,
        format!("caFile {}: not a regular file (a directory)", dir.display())
    );
}

// ---- trust files: opened without blocking, parsed once -----------------------

/// Runs `f`, which opens `fifo`, on a thread of its own. Opening a FIFO
/// that has no writer blocks: if `f` does, opening the FIFO for writing
/// releases it, and the test fails instead of hanging.
fn without_blocking_on<T: Send + 'static>(
    fifo: &std::path::Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(f()));
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(v) => v,
        Err(_) => {
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(fifo);
            panic!("opening {} blocked", fifo.display());
        }
    }
}

/// A FIFO in a directory of its own, removed on drop.
struct Fifo(PathBuf);

impl Fifo {
    fn new(tag: &str) -> Fifo {
        let path =
            std::env::temp_dir().join(format!("probewheel-tls-fifo-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        crate::file::tests::mkfifo(&path);
        Fifo(path)
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_ca_file_that_is_a_fifo_is_refused_without_blocking() {
    let fifo = Fifo::new("ca-file");
    for skip_verify in [false, true] {
        let settings = TlsOptions {
            ca_file: Some(fifo.0.clone()),
            skip_verify,
            ..TlsOptions::default()
        };
        let err = without_blocking_on(&fifo.0, move || setup_err(&settings));
        assert_eq!(
            err,
            format!("caFile {}: not a regular file (a FIFO)", fifo.0.display())
        );
    }
}

#[test]
fn a_system_bundle_that_is_a_fifo_is_passed_over_without_blocking() {
    let fifo = Fifo::new("bundle");
    let ca = ca("system CA");
    let good = TempFile::new(ca.cert.pem().as_bytes());
    let candidates = vec![fifo.0.clone(), good.path().to_owned()];
    let setup = without_blocking_on(&fifo.0, move || {
        TlsSetup::with_system_candidates(&TlsOptions::default(), &candidates)
    })
    .unwrap();
    assert_eq!(
        &*setup.rules.trust,
        format!("the system trust store {}", good.path().display())
    );
    let only = vec![fifo.0.clone()];
    let err = without_blocking_on(&fifo.0, move || {
        TlsSetup::with_system_candidates(&TlsOptions::default(), &only)
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.ends_with(&format!(
            "{}: not a regular file (a FIFO)",
            fifo.0.display()
        )),
        "{err}"
    );
}

#[test]
fn probes_that_trust_the_same_file_share_one_client_configuration() {
    let ca = ca("shared CA");
    let bundle = TempFile::new(ca.cert.pem().as_bytes());
    let system = |name: Option<&str>| {
        let settings = TlsOptions {
            server_name: name.map(str::to_owned),
            ..TlsOptions::default()
        };
        TlsSetup::with_system_candidates(&settings, &[bundle.path().to_owned()]).unwrap()
    };
    let (a, b) = (system(None), system(Some("db.internal")));
    assert!(Arc::ptr_eq(&a.config, &b.config));
    assert!(Arc::ptr_eq(&a.rules.trust, &b.rules.trust));
    // Different server names stay per probe.
    assert_eq!(b.server_name.as_deref(), Some("db.internal"));

    // The same file as a caFile: shared among caFile probes.
    let file = |days| {
        TlsSetup::new(&TlsOptions {
            min_validity_days: days,
            ..trusting(&bundle)
        })
        .unwrap()
    };
    let (c, d) = (file(None), file(Some(30)));
    assert!(Arc::ptr_eq(&c.config, &d.config));
    assert_eq!(d.rules.min_validity_days, Some(30));

    // tlsSkipVerify depends on no file: one configuration for all.
    let skip = TlsOptions {
        skip_verify: true,
        ..TlsOptions::default()
    };
    assert!(Arc::ptr_eq(
        &TlsSetup::new(&skip).unwrap().config,
        &TlsSetup::new(&skip).unwrap().config
    ));

    // Both kinds of probe verify as before with the shared configuration.
    let server = tls_server(leaf(&ca, &LeafSpec::default()), RESPONSE);
    Client::connect(server.addr, &a, "localhost").handshake_ok();
    let server = tls_server(leaf(&ca, &LeafSpec::default()), RESPONSE);
    Client::connect(server.addr, &d, "localhost").handshake_ok();
}

#[test]
fn a_trust_file_that_changed_is_read_again_and_one_rewritten_alike_is_not() {
    let (old, new) = (ca("old CA"), ca("new CA"));
    let bundle = TempFile::new(old.cert.pem().as_bytes());
    let setup = || TlsSetup::new(&trusting(&bundle)).unwrap();
    let before = setup();

    // Written again with the same bytes (as a renderer does at every
    // deploy): the shared copy stays.
    std::fs::write(bundle.path(), old.cert.pem()).unwrap();
    let same = setup();
    assert!(Arc::ptr_eq(&before.config, &same.config));

    // Another CA in its place: the next setup trusts it, not the old one,
    // while the probes prepared before keep what they had.
    std::fs::write(bundle.path(), new.cert.pem()).unwrap();
    let after = setup();
    assert!(!Arc::ptr_eq(&before.config, &after.config));
    let server = tls_server(leaf(&new, &LeafSpec::default()), RESPONSE);
    Client::connect(server.addr, &after, "localhost").handshake_ok();
    let server = tls_server(leaf(&old, &LeafSpec::default()), RESPONSE);
    Client::connect(server.addr, &before, "localhost").handshake_ok();
    let server = tls_server(leaf(&old, &LeafSpec::default()), RESPONSE);
    let fail = Client::connect(server.addr, &after, "localhost").handshake_err();
    assert!(fail.to_string().contains("unknown"), "{fail}");
}

#[test]
fn a_settled_trust_file_is_shared_on_its_stamp_and_read_again_when_it_changes() {
    let (old, new) = (ca("settled CA"), ca("replacing CA"));
    let bundle = TempFile::new(old.cert.pem().as_bytes());
    // Modified an hour ago: its stamp alone says it is unchanged.
    let settle = || {
        std::fs::File::options()
            .write(true)
            .open(bundle.path())
            .unwrap()
            .set_modified(crate::clock::wall_now() - Duration::from_secs(3600))
            .unwrap();
    };
    settle();
    let setup = || TlsSetup::new(&trusting(&bundle)).unwrap();
    let first = setup();
    assert!(Arc::ptr_eq(&first.config, &setup().config));

    // Replaced, and settled again: a new stamp, so read and parsed again.
    std::fs::write(bundle.path(), new.cert.pem()).unwrap();
    settle();
    let replaced = setup();
    assert!(!Arc::ptr_eq(&first.config, &replaced.config));
    assert!(Arc::ptr_eq(&replaced.config, &setup().config));
    let server = tls_server(leaf(&new, &LeafSpec::default()), RESPONSE);
    Client::connect(server.addr, &replaced, "localhost").handshake_ok();
}

// ---- client certificates and versions ---------------------------------------

#[test]
fn a_client_certificate_is_sent_to_a_server_that_requires_one() {
    let clients = ca("probewheel client CA");
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    let mine = client_files(
        &clients,
        &LeafSpec {
            cn: "probewheel client",
            ..LeafSpec::default()
        },
    );
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let leaf = leaf(&ca, &LeafSpec::default());
        let config = requiring_client_certs(&leaf, &clients, &[version]);

        // Without it: today's refusal, from the handshake (1.2) or after it (1.3).
        let server = tls_serve(Arc::clone(&config), RESPONSE, 1);
        let setup = TlsSetup::new(&trusting(&file)).unwrap();
        let mut client = Client::connect(server.addr, &setup, "localhost");
        let fail = match client.handshake(PATIENCE) {
            Ok(true) => client.receive().unwrap_err(),
            Ok(false) => panic!("handshake still running after {PATIENCE:?}"),
            Err(e) => e,
        };
        assert!(
            fail.to_string()
                .contains("it requires a client certificate"),
            "{version:?}: {fail}"
        );
        assert!(server.saw().error.is_some());

        // With it: the request goes through.
        let server = tls_serve(config, RESPONSE, 1);
        let setup = TlsSetup::new(&mine.offered(trusting(&file))).unwrap();
        let mut client = Client::connect(server.addr, &setup, "localhost");
        client.handshake_ok();
        client.send(REQUEST).unwrap();
        assert_eq!(client.receive().unwrap(), RESPONSE, "{version:?}");
        let saw = server.saw();
        assert_eq!(saw.error, None, "{version:?}");
        assert_eq!(saw.received, REQUEST);
    }
}

#[test]
fn client_certificate_files_that_cannot_be_used_are_setup_errors_naming_the_field() {
    let clients = ca("probewheel client CA");
    let file = ca_file(&clients);
    let mine = client_files(&clients, &LeafSpec::default());
    let other = client_files(&clients, &LeafSpec::default());
    let with = |cert: &TempFile, key: &TempFile| TlsOptions {
        client_auth: Some(crate::transport::ClientAuthFiles {
            cert: cert.path().to_owned(),
            key: key.path().to_owned(),
        }),
        ..trusting(&file)
    };

    let err = setup_err(&with(&mine.cert, &other.key));
    assert_eq!(
        err,
        format!(
            "clientKeyFile {}: the private key does not match the certificate in {}",
            other.key.path().display(),
            mine.cert.path().display()
        )
    );

    let err = setup_err(&with(&mine.key, &mine.key));
    assert!(
        err.starts_with(&format!("clientCertFile {}: ", mine.key.path().display()))
            && err.contains("no PEM certificate in it, only a private key"),
        "{err}"
    );

    let err = setup_err(&with(&mine.cert, &mine.cert));
    assert_eq!(
        err,
        format!(
            "clientKeyFile {}: no PEM private key in it; expected a PEM private key \
             (-----BEGIN PRIVATE KEY-----)",
            mine.cert.path().display()
        )
    );

    let cut = TempFile::new(b"-----BEGIN PRIVATE KEY-----\nMIIB\n");
    let err = setup_err(&with(&mine.cert, &cut));
    assert!(
        err.starts_with(&format!("clientKeyFile {}: ", cut.path().display()))
            && err.contains("has no end line"),
        "{err}"
    );

    let missing = PathBuf::from("/nonexistent/probewheel/client.pem");
    let err = setup_err(&TlsOptions {
        client_auth: Some(crate::transport::ClientAuthFiles {
            cert: missing.clone(),
            key: mine.key.path().to_owned(),
        }),
        ..trusting(&file)
    });
    assert!(
        err.starts_with(&format!("clientCertFile {}: ", missing.display())),
        "{err}"
    );
}

#[test]
fn a_client_certificate_expiring_within_min_validity_days_fails_every_session() {
    let clients = ca("probewheel client CA");
    let file = ca_file(&clients);
    let mine = client_files(
        &clients,
        &LeafSpec {
            cn: "short-lived client",
            until: 10,
            ..LeafSpec::default()
        },
    );
    let options = |days| TlsOptions {
        min_validity_days: Some(days),
        ..mine.offered(trusting(&file))
    };
    let setup = TlsSetup::new(&options(30)).unwrap();
    let err = TlsSession::new(&setup, "localhost").unwrap_err();
    let SetupError::ClientCertExpiresSoon {
        subject,
        not_after,
        min_days: 30,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(subject, "CN=short-lived client,O=probewheel tests");
    assert_eq!(
        assert_words(&err.to_string()),
        format!(
            "the client certificate CN=short-lived client,O=probewheel tests (clientCertFile) \
             expires at {}, within minCertValidityDays (30)",
            der::format_utc(*not_after)
        )
    );
    let setup = TlsSetup::new(&options(5)).unwrap();
    assert!(TlsSession::new(&setup, "localhost").is_ok());
}

#[test]
fn tls_min_version_1_3_refuses_a_server_that_speaks_only_1_2() {
    let ca = ca("probewheel test CA");
    let file = ca_file(&ca);
    let only13 = TlsOptions {
        tls13_only: true,
        ..trusting(&file)
    };

    let server = tls_serve(
        speaking(&leaf(&ca, &LeafSpec::default()), &[&rustls::version::TLS12]),
        RESPONSE,
        1,
    );
    let setup = TlsSetup::new(&only13).unwrap();
    let fail = Client::connect(server.addr, &setup, "localhost").handshake_err();
    let reason = fail.to_string();
    assert_eq!(
        reason,
        "TLS protocol error: the server does not accept TLS 1.3, the only version offered \
         (tlsMinVersion \"1.3\"); it may speak TLS 1.2 only"
    );

    // The same server passes the default, and a 1.3 server passes "1.3".
    let server = tls_serve(
        speaking(&leaf(&ca, &LeafSpec::default()), &[&rustls::version::TLS12]),
        RESPONSE,
        1,
    );
    let setup = TlsSetup::new(&trusting(&file)).unwrap();
    Client::connect(server.addr, &setup, "localhost").handshake_ok();
    let server = tls_serve(
        speaking(&leaf(&ca, &LeafSpec::default()), &[&rustls::version::TLS13]),
        RESPONSE,
        1,
    );
    let setup = TlsSetup::new(&only13).unwrap();
    let mut client = Client::connect(server.addr, &setup, "localhost");
    client.handshake_ok();
    assert_eq!(
        client.session.conn.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
}

#[test]
fn min_validity_days_judges_the_verified_chain_not_an_expired_cross_sign_beside_it() {
    // Root -> intermediate -> leaf, and beside them an expired certificate
    // for the root's name cross-signed by an old root: on no path to the
    // trusted root (blackbox #340/#589).
    let root = ca("probewheel test root");
    let file = ca_file(&root);
    let intermediate_key = KeyPair::generate().unwrap();
    let mut intermediate_params = params(&LeafSpec {
        cn: "probewheel intermediate",
        names: &[],
        until: 20,
        ..LeafSpec::default()
    });
    intermediate_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let intermediate_cert = intermediate_params
        .signed_by(&intermediate_key, &root.issuer)
        .unwrap();
    let intermediate = Ca {
        cert: intermediate_cert,
        issuer: Issuer::new(intermediate_params, intermediate_key),
    };
    let old_root = ca("probewheel old root");
    let mut cross_params = params(&LeafSpec {
        cn: "probewheel test root",
        names: &[],
        from: -400,
        until: -10,
    });
    cross_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cross = cross_params
        .signed_by(&KeyPair::generate().unwrap(), &old_root.issuer)
        .unwrap();
    let mut served = leaf(&intermediate, &LeafSpec::default());
    served.chain.push(cross.der().clone());
    let chain = served.chain.clone();
    let config = server_config(&served);
    let days = |min_validity_days| TlsOptions {
        min_validity_days: Some(min_validity_days),
        ..trusting(&file)
    };

    // Judged on every presented certificate, the expired cross-sign would fail it.
    let all = validity_check(chain.iter().map(|c| c.as_ref()), 7, unix_now());
    assert!(
        matches!(all, Err(TlsFail::ExpiresSoon { expired: true, .. })),
        "{all:?}"
    );

    let server = tls_serve(Arc::clone(&config), RESPONSE, 1);
    let setup = TlsSetup::new(&days(7)).unwrap();
    Client::connect(server.addr, &setup, "localhost").handshake_ok();

    // Whose expiry fails a handshake with `options`, and whether it is past.
    let expiring = |options: TlsOptions| {
        let server = tls_serve(Arc::clone(&config), RESPONSE, 1);
        let setup = TlsSetup::new(&options).unwrap();
        match Client::connect(server.addr, &setup, "localhost").handshake_err() {
            TlsFail::ExpiresSoon {
                subject, expired, ..
            } => (subject, expired),
            other => panic!("{other:?}"),
        }
    };

    // The intermediate is on the path: its 20 days count.
    assert_eq!(
        expiring(days(30)),
        (
            "CN=probewheel intermediate,O=probewheel tests".to_owned(),
            false
        )
    );

    // Nothing is verified with tlsSkipVerify: every presented certificate counts.
    let skipping = TlsOptions {
        skip_verify: true,
        ..days(7)
    };
    assert_eq!(
        expiring(skipping),
        (
            "CN=probewheel test root,O=probewheel tests".to_owned(),
            true
        )
    );
}
