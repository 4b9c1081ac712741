//! TLS for https and `tls: true` probes (feature `tls`): rustls, driven
//! sans-IO over any non-blocking `Read + Write` stream.
//!
//! [`TlsSetup`] is made once per probe per reset (its `ClientConfig` shared
//! by every probe with the same trust, see `trust`); [`TlsSession`] is one
//! connection's state, which never waits: the deadline stays the caller's.
//!
//! A TCP close without `close_notify` is the end of the stream, as curl
//! reads it: an http response's own framing tells a truncated body apart.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::client::ResolvesClientCert;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, SignatureScheme, sign};

mod client_auth;
mod der;
mod fail;
mod path;
mod trust;
mod words;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub(crate) use self::fail::{TlsFail, unfinished};

use self::der::cert_info;
use super::TlsOptions;

/// Why a probe's TLS configuration (or a session) cannot be made.
/// `Display` gives the reason text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SetupError {
    /// The `caFile` cannot be used (missing, unreadable, not a regular
    /// file, no usable certificate in it): the declaration's fault.
    CaFile { path: PathBuf, why: String },
    /// No `caFile`, and no system bundle on this host: every place looked
    /// at, with why it was passed over.
    NoSystemStore { looked_at: String },
    /// A `clientCertFile` or `clientKeyFile` that cannot be used (the
    /// declaration's fault): the field, its path and why.
    ClientAuth {
        field: &'static str,
        path: PathBuf,
        why: String,
    },
    /// The client certificate expires within `minCertValidityDays`.
    ClientCertExpiresSoon {
        subject: String,
        not_after: i64,
        min_days: u32,
    },
    /// Not a name a TLS session can ask for.
    ServerName(String),
    /// rustls refused the configuration, in words.
    Config(String),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::CaFile { path, why } => write!(f, "caFile {}: {why}", path.display()),
            SetupError::NoSystemStore { looked_at } => write!(
                f,
                "no system trust store found (set caFile, or SSL_CERT_FILE); looked at {looked_at}"
            ),
            SetupError::ClientAuth { field, path, why } => {
                write!(f, "{field} {}: {why}", path.display())
            }
            SetupError::ClientCertExpiresSoon {
                subject,
                not_after,
                min_days,
            } => write!(
                f,
                "the client certificate {subject} (clientCertFile) expires at {}, within \
                 minCertValidityDays ({min_days})",
                der::format_utc(*not_after)
            ),
            SetupError::ServerName(name) => write!(f, "not a valid TLS server name: {name:?}"),
            SetupError::Config(why) => write!(f, "TLS setup: {why}"),
        }
    }
}

/// What every connection of one probe shares, built once per reset.
#[derive(Clone)]
pub(crate) struct TlsSetup {
    config: Arc<ClientConfig>,
    server_name: Option<String>,
    /// What a server that asks for a client certificate is given.
    client_cert: Option<client_auth::ClientCert>,
    rules: Arc<Rules>,
}

/// How a session judges what it is given, shared by its probe's sessions.
#[derive(Debug)]
struct Rules {
    /// Where trust comes from, for the unknown-issuer reason.
    trust: Arc<str>,
    min_validity_days: Option<u32>,
    /// `tlsMinVersion: "1.3"`, for the reason when the server refuses it.
    tls13_only: bool,
    /// The trust anchors, to judge `minCertValidityDays` on the verified
    /// chain (none with `tlsSkipVerify`: every presented certificate).
    roots: Option<Arc<rustls::RootCertStore>>,
}

impl fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSetup")
            .field("server_name", &self.server_name)
            .field("min_validity_days", &self.rules.min_validity_days)
            .field("trust", &self.rules.trust)
            .finish_non_exhaustive()
    }
}

impl TlsSetup {
    /// Finds the probe's trust store and client configuration (shared with
    /// every probe that trusts the same file). Fails when the `caFile` is
    /// unusable or no system bundle is found.
    pub(crate) fn new(options: &TlsOptions) -> Result<TlsSetup, SetupError> {
        TlsSetup::with_system_candidates(options, &trust::system_candidates())
    }

    /// [`TlsSetup::new`] with the system bundle looked for in `candidates`.
    fn with_system_candidates(
        options: &TlsOptions,
        candidates: &[PathBuf],
    ) -> Result<TlsSetup, SetupError> {
        if let Some(name) = &options.server_name {
            server_name(name)?;
        }
        // Read even with tlsSkipVerify: a broken path is worth reporting.
        let ca = match &options.ca_file {
            Some(path) => Some(trust::ca_file(path)?),
            None => None,
        };
        let trust = if options.skip_verify {
            log::warn!(
                "tlsSkipVerify: TLS certificates are not verified (chain and name); \
                 the handshake alone is checked"
            );
            trust::skip_verify()?
        } else {
            match ca {
                Some(trust) => trust,
                None => trust::system(candidates)?,
            }
        };
        let client_cert = match &options.client_auth {
            Some(files) => Some(client_auth::load(files)?),
            None => None,
        };
        let config = if options.tls13_only {
            trust::tls13_only(&trust)?
        } else {
            trust.config
        };
        Ok(TlsSetup {
            config,
            server_name: options.server_name.clone(),
            client_cert,
            rules: Arc::new(Rules {
                trust: trust.label,
                min_validity_days: options.min_validity_days,
                tls13_only: options.tls13_only,
                roots: trust.roots,
            }),
        })
    }
}

/// Checks a `tlsServerName` at prepare time.
pub(crate) fn check_server_name(name: &str) -> Result<(), SetupError> {
    server_name(name).map(drop)
}

/// `name` as rustls takes it: a DNS name or an IP address (an IPv6
/// literal with or without brackets).
fn server_name(name: &str) -> Result<ServerName<'static>, SetupError> {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    ServerName::try_from(bare.to_owned()).map_err(|_| SetupError::ServerName(name.to_owned()))
}

/// One TLS connection over a non-blocking stream (see the module docs for
/// how a state machine drives it).
pub(crate) struct TlsSession {
    conn: ClientConnection,
    /// Set when the server asked for a client certificate (none is sent).
    certificate_asked: Arc<AtomicBool>,
    rules: Arc<Rules>,
    /// Bytes the server sent during the handshake.
    heard: usize,
    /// The first bytes the server sent, to recognise a plain-text reply.
    first: [u8; 5],
    /// The handshake completed and the certificates passed the validity check.
    established: bool,
}

impl fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSession")
            .field("handshaking", &self.conn.is_handshaking())
            .field("heard", &self.heard)
            .field("established", &self.established)
            .finish_non_exhaustive()
    }
}

impl TlsSession {
    /// A session for the server at `host`, unless the setup names another
    /// server name. No I/O before the first [`TlsSession::handshake`].
    pub(crate) fn new(setup: &TlsSetup, host: &str) -> Result<TlsSession, SetupError> {
        let name = server_name(setup.server_name.as_deref().unwrap_or(host))?;
        if let (Some(cert), Some(min_days)) = (&setup.client_cert, setup.rules.min_validity_days) {
            if cert.not_after < unix_secs(crate::clock::wall_now()) + i64::from(min_days) * 86_400 {
                return Err(SetupError::ClientCertExpiresSoon {
                    subject: cert.subject.clone(),
                    not_after: cert.not_after,
                    min_days,
                });
            }
        }
        // A cheap copy of the shared configuration whose certificate
        // resolver notes whether this server asks for one.
        let certificate_asked = Arc::new(AtomicBool::new(false));
        let mut config = ClientConfig::clone(&setup.config);
        config.client_auth_cert_resolver = Arc::new(NoteCertificateRequest {
            asked: Arc::clone(&certificate_asked),
            cert: setup.client_cert.as_ref().map(|c| Arc::clone(&c.key)),
        });
        let conn = ClientConnection::new(Arc::new(config), name)
            .map_err(|e| SetupError::Config(words::error(&e)))?;
        Ok(TlsSession {
            conn,
            certificate_asked,
            rules: Arc::clone(&setup.rules),
            heard: 0,
            first: [0; 5],
            established: false,
        })
    }

    /// Advances the handshake as far as the stream allows without waiting:
    /// `Ok(true)` once complete (and `minCertValidityDays` passed),
    /// `Ok(false)` when the stream would block.
    pub(crate) fn handshake(&mut self, io: &mut (impl Read + Write)) -> Result<bool, TlsFail> {
        if self.established {
            return Ok(true);
        }
        loop {
            if self.send_tls(io).map_err(|e| self.io_failed(e))? {
                // Output is waiting for the socket: nothing to read will
                // change that before it is writable again.
                if !self.conn.is_handshaking() {
                    return Ok(false);
                }
            }
            if !self.conn.is_handshaking() && !self.conn.wants_write() {
                self.check_validity(crate::clock::wall_now())?;
                self.established = true;
                return Ok(true);
            }
            let mut tee = Tee {
                io: &mut *io,
                heard: &mut self.heard,
                first: &mut self.first,
            };
            match self.conn.read_tls(&mut tee) {
                Ok(0) => return Err(self.closed_early()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_failed(e)),
            }
            if let Err(e) = self.conn.process_new_packets() {
                return Err(self.rejected(e, io));
            }
        }
    }

    /// Whether the server may still refuse this client after a completed
    /// handshake: in TLS 1.3, when it asked for a client certificate, it
    /// judges our (empty) one after our Finished, one round trip later
    /// (in TLS 1.2 its own Finished is the verdict).
    pub(crate) fn verdict_pending(&self) -> bool {
        self.established
            && self.certificate_asked.load(Ordering::Relaxed)
            && self.conn.protocol_version() == Some(ProtocolVersion::TLSv1_3)
    }

    /// After [`TlsSession::verdict_pending`], reads what the server sent:
    /// `Ok(true)` once it carries on, `Ok(false)` while nothing came, the
    /// failure on a fatal alert (`certificate_required`, say).
    pub(crate) fn verdict(&mut self, io: &mut (impl Read + Write)) -> Result<bool, TlsFail> {
        // The server sends tickets only once it accepted the client's
        // last flight; any at all is a yes, whenever it was read.
        if self.conn.tls13_tickets_received() > 0 {
            return Ok(true);
        }
        loop {
            match self.conn.read_tls(io) {
                Ok(0) => return Ok(true),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_failed(e)),
            }
            let state = match self.conn.process_new_packets() {
                Ok(state) => state,
                Err(e) => return Err(self.rejected(e, io)),
            };
            if self.conn.tls13_tickets_received() > 0
                || state.plaintext_bytes_to_read() > 0
                || state.peer_has_closed()
            {
                return Ok(true);
            }
        }
    }

    /// What the stream must be watched for before the next call: readable
    /// (always, a fatal alert can come at any time) and writable while TLS
    /// output is waiting for room.
    // The runs keep the dial's readable-and-writable registration (edge
    // triggered, so it costs no wake-ups); tests that register by hand use it.
    #[cfg(test)]
    pub(crate) fn interest(&self) -> mio::Interest {
        if self.conn.wants_write() {
            mio::Interest::READABLE | mio::Interest::WRITABLE
        } else {
            mio::Interest::READABLE
        }
    }

    /// Whether the server sent anything during the handshake (for
    /// `TlsFail::HandshakeTimeout`).
    pub(crate) fn heard(&self) -> bool {
        self.heard > 0
    }

    /// Takes as much of `data` as the session buffers and writes what the
    /// stream accepts now; `WouldBlock` only when nothing could be taken.
    /// Then [`TlsSession::flush`]. An error before the handshake.
    pub(crate) fn write_plain(&mut self, io: &mut impl Write, data: &[u8]) -> io::Result<usize> {
        if !self.established {
            // Before the handshake the bytes would wait in rustls, and a
            // full buffer could never drain: a caller's bug, said plainly.
            return Err(io::Error::other("TLS write before the handshake completed"));
        }
        loop {
            let n = self.conn.writer().write(data)?;
            if n > 0 || data.is_empty() {
                self.flush_some(io)?;
                return Ok(n);
            }
            // The buffer is full: make room, or tell the caller to wait.
            if self.send_tls(io)? {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
    }

    /// Writes out everything buffered; `WouldBlock` while some is left.
    pub(crate) fn flush(&mut self, io: &mut impl Write) -> io::Result<()> {
        if self.send_tls(io)? {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(())
        }
    }

    /// Reads decrypted bytes into `buf`: `Ok(0)` at the end of the stream
    /// (`close_notify` or the server closing the connection), `WouldBlock`
    /// when none are there yet. TLS failures (an alert, a bad record) come
    /// as `io::Error`s that [`TlsFail::from_io`] turns back.
    pub(crate) fn read_plain(
        &mut self,
        io: &mut (impl Read + Write),
        buf: &mut [u8],
    ) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // Answers the server asked for (a key update, say) go out first.
            self.flush_some(io)?;
            match self.conn.read_tls(io) {
                // EOF: the reader reports it on the next turn.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.conn.process_new_packets() {
                return Err(self.rejected(e, io).into_io());
            }
        }
    }

    /// Writes buffered TLS output until done (`false`) or the stream would
    /// block (`true`).
    fn send_tls(&mut self, io: &mut impl Write) -> io::Result<bool> {
        while self.conn.wants_write() {
            match self.conn.write_tls(io) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// [`TlsSession::send_tls`] for the plain-data methods: a stream that
    /// would block is not an error there.
    fn flush_some(&mut self, io: &mut impl Write) -> io::Result<()> {
        self.send_tls(io).map(drop)
    }

    /// The failure for a rustls error; the alert rustls queued for the
    /// server is sent if the stream takes it now (best effort).
    fn rejected(&mut self, e: rustls::Error, io: &mut impl Write) -> TlsFail {
        let _ = self.send_tls(io);
        if let Some(fail) = self.plain_text() {
            return fail;
        }
        if self.rules.tls13_only && refuses_version(&e) {
            return TlsFail::Protocol(
                "the server does not accept TLS 1.3, the only version offered \
                 (tlsMinVersion \"1.3\"); it may speak TLS 1.2 only"
                    .into(),
            );
        }
        TlsFail::from_rustls(e, &self.rules.trust)
    }

    /// A socket error during the handshake: a peer that hangs up is named so.
    fn io_failed(&self, e: io::Error) -> TlsFail {
        match e.kind() {
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted => self.closed_early(),
            _ => TlsFail::Io(e.to_string()),
        }
    }

    fn closed_early(&self) -> TlsFail {
        self.plain_text().unwrap_or(TlsFail::Closed)
    }

    /// The failure when the server's first bytes look like text (`HTTP/`,
    /// `SSH-`, `220 `) rather than a TLS record (0x14..=0x18).
    fn plain_text(&self) -> Option<TlsFail> {
        let first = &self.first[..self.heard.min(self.first.len())];
        let text = !first.is_empty() && first.iter().all(|&b| b.is_ascii_graphic() || b == b' ');
        text.then(|| {
            TlsFail::Protocol(format!(
                "the server answered in plain text ({:?}...), not TLS",
                String::from_utf8_lossy(first)
            ))
        })
    }

    /// `minCertValidityDays` against the chain the handshake verified;
    /// against every certificate presented when nothing was verified
    /// (`tlsSkipVerify`) or webpki finds no path again.
    fn check_validity(&self, now: SystemTime) -> Result<(), TlsFail> {
        let Some(min_days) = self.rules.min_validity_days else {
            return Ok(());
        };
        let presented = self.conn.peer_certificates().unwrap_or_default();
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let verified = self.rules.roots.as_deref().and_then(|roots| {
            path::verified(roots, presented, UnixTime::since_unix_epoch(since_epoch))
        });
        let chain = verified.as_deref().unwrap_or(presented);
        validity_check(chain.iter().map(|c| c.as_ref()), min_days, unix_secs(now))
    }
}

/// Whether `e` says the server and the versions offered have none in
/// common.
fn refuses_version(e: &rustls::Error) -> bool {
    use rustls::PeerIncompatible as P;
    matches!(
        e,
        rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion)
            | rustls::Error::PeerIncompatible(
                P::ServerTlsVersionIsDisabledByOurConfig | P::SupportedVersionsExtensionRequired
            )
    )
}

/// `now` in seconds since the epoch.
fn unix_secs(now: SystemTime) -> i64 {
    match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// The earliest-expiring of `certs` must stay valid for `min_days` after
/// `now` (seconds since the epoch).
fn validity_check<'a>(
    certs: impl Iterator<Item = &'a [u8]>,
    min_days: u32,
    now: i64,
) -> Result<(), TlsFail> {
    let mut earliest: Option<der::CertInfo> = None;
    for (i, der) in certs.enumerate() {
        let info = cert_info(der).map_err(|e| {
            TlsFail::BadCertificate(format!(
                "cannot read the validity of certificate {} the server presented: {e}",
                i + 1
            ))
        })?;
        if earliest
            .as_ref()
            .is_none_or(|e| info.not_after < e.not_after)
        {
            earliest = Some(info);
        }
    }
    let Some(cert) = earliest else {
        return Err(TlsFail::BadCertificate(
            "the server presented no certificate".into(),
        ));
    };
    let needed = now.saturating_add(i64::from(min_days) * 86_400);
    if cert.not_after < needed {
        return Err(TlsFail::ExpiresSoon {
            subject: cert.subject,
            not_after: cert.not_after,
            min_days,
            expired: cert.not_after <= now,
        });
    }
    Ok(())
}

/// A client certificate resolver that gives the probe's certificate, if
/// any, and notes that the server asked for one.
#[derive(Debug)]
struct NoteCertificateRequest {
    asked: Arc<AtomicBool>,
    cert: Option<Arc<sign::CertifiedKey>>,
}

impl ResolvesClientCert for NoteCertificateRequest {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<sign::CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.cert.clone()
    }

    fn has_certs(&self) -> bool {
        self.cert.is_some()
    }
}

/// Counts and keeps the first bytes read through it.
struct Tee<'a, R> {
    io: &'a mut R,
    heard: &'a mut usize,
    first: &'a mut [u8; 5],
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.io.read(buf)?;
        let have = (*self.heard).min(self.first.len());
        let take = (self.first.len() - have).min(n);
        self.first[have..have + take].copy_from_slice(&buf[..take]);
        *self.heard += n;
        Ok(n)
    }
}
