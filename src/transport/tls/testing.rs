//! Certificates and loopback TLS servers for the tests of every layer that
//! speaks TLS (this module, and the http and tcp runners).
//!
//! Each server is a thread with a blocking rustls `ServerConnection` (or a
//! raw socket, for the servers that misbehave) serving a bounded number of
//! connections, each read bounded by [`PATIENCE`].

use std::io::Read;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, date_time_ymd,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection};

use crate::transport::TlsOptions;

/// How long a test waits for anything that should happen.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

// ---- certificates ----------------------------------------------------------

pub(crate) struct Ca {
    pub(crate) cert: Certificate,
    pub(crate) issuer: Issuer<'static, KeyPair>,
}

pub(crate) fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    Ca {
        cert,
        issuer: Issuer::new(params, key),
    }
}

/// Seconds since the epoch, now.
pub(crate) fn unix_now() -> i64 {
    crate::clock::wall_now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A server certificate and its key.
pub(crate) struct Leaf {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: KeyPair,
}

/// What a leaf looks like; valid from a day ago for a year by default.
pub(crate) struct LeafSpec<'a> {
    pub(crate) names: &'a [&'a str],
    pub(crate) cn: &'a str,
    /// Validity, in days from now.
    pub(crate) from: i64,
    pub(crate) until: i64,
}

impl Default for LeafSpec<'_> {
    fn default() -> Self {
        LeafSpec {
            names: &["localhost", "127.0.0.1", "::1"],
            cn: "probewheel test server",
            from: -1,
            until: 365,
        }
    }
}

pub(crate) fn params(spec: &LeafSpec<'_>) -> CertificateParams {
    let names: Vec<String> = spec.names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    // Most significant first, as CAs issue them (RFC 4514 shows CN first);
    // rcgen starts with a CN of its own.
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "probewheel tests");
    params.distinguished_name.push(DnType::CommonName, spec.cn);
    let day = |d: i64| {
        let secs = unix_now() + d * 86_400;
        date_time_ymd(1970, 1, 1) + Duration::from_secs(secs as u64)
    };
    params.not_before = day(spec.from);
    params.not_after = day(spec.until);
    params
}

/// A leaf issued by `ca`; the server presents it and the CA.
pub(crate) fn leaf(ca: &Ca, spec: &LeafSpec<'_>) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let cert = params(spec).signed_by(&key, &ca.issuer).unwrap();
    Leaf {
        chain: vec![cert.der().clone(), ca.cert.der().clone()],
        key,
    }
}

/// A self-signed leaf.
pub(crate) fn self_signed(spec: &LeafSpec<'_>) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let cert = params(spec).self_signed(&key).unwrap();
    Leaf {
        chain: vec![cert.der().clone()],
        key,
    }
}

/// A file removed when dropped.
pub(crate) struct TempFile(pub(crate) PathBuf);

impl TempFile {
    pub(crate) fn new(contents: &[u8]) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("probewheel-tls-{}-{n}.pem", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub(crate) fn ca_file(ca: &Ca) -> TempFile {
    TempFile::new(ca.cert.pem().as_bytes())
}

/// A client certificate issued by `ca`, and its key, as PEM files.
pub(crate) struct ClientFiles {
    pub(crate) cert: TempFile,
    pub(crate) key: TempFile,
}

pub(crate) fn client_files(ca: &Ca, spec: &LeafSpec<'_>) -> ClientFiles {
    let key = KeyPair::generate().unwrap();
    let cert = params(spec).signed_by(&key, &ca.issuer).unwrap();
    ClientFiles {
        cert: TempFile::new(cert.pem().as_bytes()),
        key: TempFile::new(key.serialize_pem().as_bytes()),
    }
}

impl ClientFiles {
    /// `options` offering this certificate.
    pub(crate) fn offered(&self, options: TlsOptions) -> TlsOptions {
        TlsOptions {
            client_auth: Some(crate::transport::ClientAuthFiles {
                cert: self.cert.path().to_owned(),
                key: self.key.path().to_owned(),
            }),
            ..options
        }
    }
}

pub(crate) fn trusting(file: &TempFile) -> TlsOptions {
    TlsOptions {
        ca_file: Some(file.path().to_owned()),
        ..TlsOptions::default()
    }
}

// ---- servers ---------------------------------------------------------------

/// What a server thread saw of its one connection.
#[derive(Debug)]
pub(crate) struct Saw {
    /// The SNI the client sent (TLS servers only).
    pub(crate) sni: Option<String>,
    /// The bytes it received: the plain request (TLS servers, after a
    /// handshake) or the raw bytes (the others).
    pub(crate) received: Vec<u8>,
    /// The server's own handshake or I/O error, if any.
    pub(crate) error: Option<String>,
}

pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) thread: JoinHandle<Vec<Saw>>,
}

impl Server {
    /// What the server saw of its last connection.
    pub(crate) fn saw(self) -> Saw {
        self.thread
            .join()
            .expect("server thread panicked")
            .pop()
            .expect("a connection")
    }
}

/// Serves `connections` connections on 127.0.0.1, one after the other.
pub(crate) fn serve(
    connections: usize,
    mut serve: impl FnMut(std::net::TcpStream) -> Saw + Send + 'static,
) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = thread::spawn(move || {
        (0..connections)
            .map(|_| {
                let (stream, _) = listener.accept().unwrap();
                stream.set_read_timeout(Some(PATIENCE)).unwrap();
                stream.set_write_timeout(Some(PATIENCE)).unwrap();
                serve(stream)
            })
            .collect()
    });
    Server { addr, thread }
}

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn server_key(leaf: &Leaf) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key.serialize_der()))
}

/// A server configuration presenting `leaf` (rustls defaults otherwise).
pub(crate) fn server_config(leaf: &Leaf) -> Arc<ServerConfig> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(leaf.chain.clone(), server_key(leaf))
        .unwrap();
    Arc::new(config)
}

/// A TLS server presenting `leaf` on one connection; after the handshake
/// it reads a request head and answers `response`.
pub(crate) fn tls_server(leaf: Leaf, response: &'static [u8]) -> Server {
    tls_serve(server_config(&leaf), response, 1)
}

/// A server configuration presenting `leaf`, speaking only `versions`,
/// that requires a client certificate issued by `clients`.
pub(crate) fn requiring_client_certs(
    leaf: &Leaf,
    clients: &Ca,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ServerConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(clients.cert.der().clone()).unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(leaf.chain.clone(), server_key(leaf))
        .unwrap();
    Arc::new(config)
}

/// A server configuration presenting `leaf`, speaking only `versions`.
pub(crate) fn speaking(
    leaf: &Leaf,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ServerConfig> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(leaf.chain.clone(), server_key(leaf))
        .unwrap();
    Arc::new(config)
}

/// [`tls_server`] with a configuration of the test's and any number of
/// connections.
pub(crate) fn tls_serve(
    config: Arc<ServerConfig>,
    response: &'static [u8],
    connections: usize,
) -> Server {
    serve(connections, move |stream| {
        let conn = ServerConnection::new(Arc::clone(&config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, stream);
        let mut received = Vec::new();
        let mut buf = [0u8; 1024];
        let error = loop {
            match tls.read(&mut buf) {
                Ok(0) => break Some("end of stream before a request".to_owned()),
                Ok(n) => {
                    received.extend_from_slice(&buf[..n]);
                    let fresh = &received[received.len().saturating_sub(n + 3)..];
                    if fresh.windows(4).any(|w| w == b"\r\n\r\n") {
                        let sent = tls.write_all(response).and_then(|()| {
                            tls.conn.send_close_notify();
                            tls.flush()
                        });
                        break sent.err().map(|e| e.to_string());
                    }
                }
                Err(e) => break Some(e.to_string()),
            }
        };
        Saw {
            sni: tls.conn.server_name().map(str::to_owned),
            received,
            error,
        }
    })
}

/// A raw server: reads what comes first, then does `then` with it.
pub(crate) fn raw_server(then: impl FnOnce(&mut std::net::TcpStream) + Send + 'static) -> Server {
    let mut then = Some(then);
    serve(1, move |mut stream| {
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).unwrap_or(0);
        buf.truncate(n);
        (then.take().expect("one connection"))(&mut stream);
        Saw {
            sni: None,
            received: buf,
            error: None,
        }
    })
}

// ---- reasons ---------------------------------------------------------------

/// Asserts that a failure reason reads as words: no Rust `Debug` form of a
/// library's error (`Other(OtherError(..))`, a unit variant's
/// `CamelCaseName`, a byte list `[45, 45, ..]`, a struct `{ .. }`).
/// Every TLS test that sees a reason passes it through here, so none can
/// slip back. Returns the reason.
#[track_caller]
pub(crate) fn assert_words(reason: &str) -> &str {
    for form in ["Other(", "OtherError", "Error(", "Some(", "{ "] {
        assert!(
            !reason.contains(form),
            "the reason shows `{form}`, Rust debug text: {reason:?}"
        );
    }
    if let Some(form) = super::words::debug_form(reason) {
        panic!("the reason shows {form}, Rust debug text: {reason:?}");
    }
    reason
}
