//! Where trust comes from: a `caFile`, the system bundle, or (with
//! `tlsSkipVerify`) nowhere.
//!
//! The system store is the first PEM bundle among `SSL_CERT_FILE` and the
//! distributions' places (every distribution with the hashed directory
//! also ships a bundle). A trust file is parsed once and shared by every
//! probe that trusts it; each reset still checks its stamp, and re-reads a
//! file that changed (or is too recent to tell), so a reset sees a changed
//! file as if every probe read its own.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::{self, SectionKind};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ConfigBuilder, DigitallySignedStruct, RootCertStore, SignatureScheme,
    WantsVerifier,
};

use super::SetupError;
use crate::file::{FileStamp, RegularFile};

/// Bundle locations, most common first (Debian/Ubuntu/Alpine, Fedora/RHEL,
/// openSUSE, Alpine/macOS/BSD, RHEL's extracted form, NixOS).
const SYSTEM_BUNDLES: [&str; 6] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/static/ssl/certs/ca-certificates.crt",
];

/// A trust bundle larger than this is refused, not read into memory
/// (the Mozilla bundle is about 220 KB).
const MAX_BUNDLE: u64 = 16 * 1024 * 1024;

/// What a probe's connections verify against: the client configuration
/// and, for the unknown-issuer reason, where its trust comes from. Shared
/// by every probe with the same trust.
#[derive(Clone)]
pub(super) struct Trust {
    pub(super) config: Arc<ClientConfig>,
    /// The verifier of `config`, for a TLS 1.3 only copy of it.
    pub(super) verifier: Arc<dyn ServerCertVerifier>,
    /// The trust anchors `verifier` checks against (none with
    /// `tlsSkipVerify`), to find the verified chain again.
    pub(super) roots: Option<Arc<RootCertStore>>,
    pub(super) label: Arc<str>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// How a trust file is read: a `caFile` must be wholly usable; the system
/// bundle's unusable entries are skipped, as every TLS library does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    CaFile,
    System,
}

/// One parsed version of a trust file, held weakly: it lives as long as
/// a probe trusts it.
struct Shared {
    path: PathBuf,
    role: Role,
    /// The stamp of the file when its bytes were read, unless racy then (a
    /// write in the same timestamp tick would not change it).
    stamp: Option<FileStamp>,
    bytes: Box<[u8]>,
    config: Weak<ClientConfig>,
    verifier: Weak<dyn ServerCertVerifier>,
    roots: Weak<RootCertStore>,
    label: Arc<str>,
}

impl Shared {
    /// The shared trust, when `fresh` says this version is still the
    /// file's and a probe still holds it.
    fn trust_if(&self, fresh: impl FnOnce(&Shared) -> bool) -> Option<Trust> {
        if !fresh(self) {
            return None;
        }
        let config = self.config.upgrade()?;
        Some(Trust {
            config,
            verifier: self.verifier.upgrade()?,
            roots: Some(self.roots.upgrade()?),
            label: Arc::clone(&self.label),
        })
    }
}

/// The trust files parsed so far, one entry per path and role, held weakly.
/// Process wide: prepare has no per-reset context to keep them in.
static SHARED: Mutex<Vec<Shared>> = Mutex::new(Vec::new());

/// The places the system store is looked for, in order.
pub(super) fn system_candidates() -> Vec<PathBuf> {
    let mut paths = Vec::with_capacity(SYSTEM_BUNDLES.len() + 1);
    if let Some(p) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) {
        paths.push(PathBuf::from(p));
    }
    paths.extend(SYSTEM_BUNDLES.iter().map(PathBuf::from));
    paths
}

/// The trust of a `caFile`: every certificate in it must be usable.
pub(super) fn ca_file(path: &Path) -> Result<Trust, SetupError> {
    let path = path.to_owned();
    shared(&path, Role::CaFile).map_err(|why| SetupError::CaFile { path, why })
}

/// The trust of the first usable bundle among `candidates`.
pub(super) fn system(candidates: &[PathBuf]) -> Result<Trust, SetupError> {
    let mut tried = Vec::with_capacity(candidates.len());
    for path in candidates {
        match shared(path, Role::System) {
            Ok(trust) => return Ok(trust),
            Err(e) => tried.push(format!("{}: {e}", path.display())),
        }
    }
    Err(SetupError::NoSystemStore {
        looked_at: tried.join("; "),
    })
}

/// `tlsSkipVerify`: one configuration for the whole process, since it
/// depends on no file.
pub(super) fn skip_verify() -> Result<Trust, SetupError> {
    static SKIP: OnceLock<Result<Trust, SetupError>> = OnceLock::new();
    SKIP.get_or_init(|| {
        let builder = builder().map_err(SetupError::Config)?;
        let algorithms = builder.crypto_provider().signature_verification_algorithms;
        let verifier: Arc<dyn ServerCertVerifier> = AcceptAnyCertificate::new(algorithms);
        Ok(Trust {
            config: verifying(builder, &verifier),
            verifier,
            roots: None,
            label: "nothing (tlsSkipVerify)".into(),
        })
    })
    .clone()
}

/// The trust of the file at `path` in `role`: the shared copy when the
/// file has not changed, else read (and parsed when its bytes differ).
fn shared(path: &Path, role: Role) -> Result<Trust, String> {
    let file = RegularFile::open(path, MAX_BUNDLE).map_err(|e| e.to_string())?;
    let stamp = file.stamp();
    let trusted = (!stamp.is_racy(crate::clock::wall_now())).then_some(stamp);
    // Held while reading and parsing: two probes that need the same new
    // file parse it once, and the file cannot block.
    let mut all = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    let entry = all
        .iter()
        .position(|s| s.path == path && s.role == role && s.config.strong_count() > 0);
    if let Some(trust) =
        entry.and_then(|i| all[i].trust_if(|s| s.stamp.is_some() && s.stamp == trusted))
    {
        return Ok(trust);
    }
    let bytes = file.read().map_err(|e| e.to_string())?;
    if let Some(i) = entry {
        if let Some(trust) = all[i].trust_if(|s| *s.bytes == *bytes) {
            all[i].stamp = trusted;
            return Ok(trust);
        }
    }
    let trust = parse(path, role, &bytes)?;
    all.retain(|s| s.config.strong_count() > 0 && !(s.path == path && s.role == role));
    all.push(Shared {
        path: path.to_owned(),
        role,
        stamp: trusted,
        bytes: bytes.into_boxed_slice(),
        config: Arc::downgrade(&trust.config),
        verifier: Arc::downgrade(&trust.verifier),
        roots: trust.roots.as_ref().map_or_else(Weak::new, Arc::downgrade),
        label: Arc::clone(&trust.label),
    });
    Ok(trust)
}

/// Parses a trust file's bytes into a verifying configuration.
fn parse(path: &Path, role: Role, bytes: &[u8]) -> Result<Trust, String> {
    let ders = pem_certs(bytes)?;
    let mut roots = RootCertStore::empty();
    let label = match role {
        Role::CaFile => {
            for (i, der) in ders.into_iter().enumerate() {
                roots.add(der).map_err(|e| {
                    format!(
                        "certificate {} is not a usable trust anchor: {}",
                        i + 1,
                        super::words::error(&e)
                    )
                })?;
            }
            format!("caFile {}", path.display())
        }
        Role::System => {
            let (added, _skipped) = roots.add_parsable_certificates(ders);
            if added == 0 {
                return Err("no usable certificate".to_owned());
            }
            format!("the system trust store {}", path.display())
        }
    };
    let builder = builder().map_err(|why| format!("TLS setup: {why}"))?;
    let roots = Arc::new(roots);
    let verifier: Arc<dyn ServerCertVerifier> = WebPkiServerVerifier::builder_with_provider(
        Arc::clone(&roots),
        Arc::clone(builder.crypto_provider()),
    )
    .build()
    .map_err(|e| format!("TLS setup: {e}"))?;
    Ok(Trust {
        config: verifying(builder, &verifier),
        verifier,
        roots: Some(roots),
        label: label.into(),
    })
}

/// A client configuration with the ring provider and the safe protocol
/// versions, before its verifier; rustls's refusal in words.
fn builder() -> Result<ConfigBuilder<ClientConfig, WantsVerifier>, String> {
    versions(rustls::DEFAULT_VERSIONS)
}

/// [`builder`] offering only `versions`.
fn versions(
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<ConfigBuilder<ClientConfig, WantsVerifier>, String> {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .map_err(|e| super::words::error(&e))
}

/// `trust` offering TLS 1.3 only (`tlsMinVersion: "1.3"`): a configuration
/// of its own around the same verifier.
pub(super) fn tls13_only(trust: &Trust) -> Result<Arc<ClientConfig>, SetupError> {
    let builder = versions(&[&rustls::version::TLS13]).map_err(SetupError::Config)?;
    Ok(verifying(builder, &trust.verifier))
}

/// The finished configuration verifying with `verifier`.
fn verifying(
    builder: ConfigBuilder<ClientConfig, WantsVerifier>,
    verifier: &Arc<dyn ServerCertVerifier>,
) -> Arc<ClientConfig> {
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(verifier))
        .with_no_client_auth();
    finish(config)
}

fn finish(mut config: ClientConfig) -> Arc<ClientConfig> {
    // Every run does a full handshake: a resumed session would skip
    // verifying the certificate the server presents now.
    config.resumption = Resumption::disabled();
    Arc::new(config)
}

/// The certificates of a PEM file; at least one. Other PEM blocks (a key,
/// say) are passed over, but named when they are all the file holds.
pub(super) fn pem_certs(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut rest = bytes;
    let mut certs = Vec::new();
    let mut others = Vec::new();
    loop {
        match pem::from_buf(&mut rest) {
            Ok(Some((SectionKind::Certificate, der))) => certs.push(CertificateDer::from(der)),
            Ok(Some((kind, _))) => others.push(kind),
            Ok(None) => break,
            Err(e) => {
                return Err(super::words::pem_error(&e, certs.len() + others.len() + 1));
            }
        }
    }
    if certs.is_empty() {
        return Err(no_certificate(bytes, &others));
    }
    Ok(certs)
}

/// Why a file with no certificate block is not a trust store, in words.
fn no_certificate(bytes: &[u8], others: &[SectionKind]) -> String {
    const EXPECTED: &str = "expected PEM certificates (-----BEGIN CERTIFICATE-----)";
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return format!("the file is empty; {EXPECTED}");
    }
    if let Some(kind) = others.first() {
        let what = match kind {
            SectionKind::PublicKey => "a public key",
            SectionKind::RsaPrivateKey | SectionKind::PrivateKey | SectionKind::EcPrivateKey => {
                "a private key"
            }
            SectionKind::Crl => "a certificate revocation list",
            SectionKind::Csr => "a certificate signing request",
            _ => "PEM blocks of other kinds",
        };
        return format!("no PEM certificate in it, only {what}; {EXPECTED} of the CA");
    }
    // A SEQUENCE with a long-form length: a certificate in binary DER.
    if bytes.first() == Some(&0x30) && bytes.get(1).is_some_and(|&b| b >= 0x81) {
        return format!(
            "no PEM certificate in it: it looks like a binary (DER) certificate; convert it \
             with `openssl x509 -inform der -in FILE -out FILE.pem`; {EXPECTED}"
        );
    }
    format!("no PEM certificate in it; {EXPECTED}")
}

/// `tlsSkipVerify`: any chain and name, but the handshake signatures are
/// checked, so the server must hold the key of the certificate it sent.
#[derive(Debug)]
pub(super) struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AcceptAnyCertificate {
    pub(super) fn new(algorithms: WebPkiSupportedAlgorithms) -> Arc<Self> {
        Arc::new(AcceptAnyCertificate { algorithms })
    }
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
