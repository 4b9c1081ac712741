//! Where trust comes from: a `caFile`, the system bundle, or (with
//! `tlsSkipVerify`) nowhere.
//!
//! The system store is the first PEM bundle found among `SSL_CERT_FILE`
//! and the places distributions put theirs. A bundle is one file that the
//! distribution keeps current, read once per reset; the hashed
//! `/etc/ssl/certs` directory (`SSL_CERT_DIR`) is not read, since every
//! distribution that has it also ships the bundle.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::{self, SectionKind};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

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

/// The places the system store is looked for, in order.
pub(super) fn system_candidates() -> Vec<PathBuf> {
    let mut paths = Vec::with_capacity(SYSTEM_BUNDLES.len() + 1);
    if let Some(p) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) {
        paths.push(PathBuf::from(p));
    }
    paths.extend(SYSTEM_BUNDLES.iter().map(PathBuf::from));
    paths
}

/// The roots of a `caFile`: every certificate in it must be usable.
pub(super) fn roots_from_ca_file(path: &Path) -> Result<RootCertStore, String> {
    let ders = read_pem_certs(path).map_err(|e| format!("caFile {}: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    for (i, der) in ders.into_iter().enumerate() {
        roots.add(der).map_err(|e| {
            format!(
                "caFile {}: certificate {} is not a usable trust anchor: {}",
                path.display(),
                i + 1,
                super::words::error(&e)
            )
        })?;
    }
    Ok(roots)
}

/// The roots of the first usable bundle among `candidates`, with its path.
/// A bundle's unparsable entries are skipped, as every TLS library does.
pub(super) fn system_roots(candidates: &[PathBuf]) -> Result<(RootCertStore, PathBuf), String> {
    let mut tried = Vec::with_capacity(candidates.len());
    for path in candidates {
        match read_pem_certs(path) {
            Ok(ders) => {
                let mut roots = RootCertStore::empty();
                let (added, _skipped) = roots.add_parsable_certificates(ders);
                if added > 0 {
                    return Ok((roots, path.clone()));
                }
                tried.push(format!("{}: no usable certificate", path.display()));
            }
            Err(e) => tried.push(format!("{}: {e}", path.display())),
        }
    }
    Err(format!(
        "no system trust store found (set caFile, or SSL_CERT_FILE); looked at {}",
        tried.join("; ")
    ))
}

/// The certificates of a PEM file; at least one. Other PEM blocks (a key,
/// say) are passed over, but named when they are all the file holds.
fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let file = fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_BUNDLE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_BUNDLE {
        return Err(format!("larger than {} MiB", MAX_BUNDLE >> 20));
    }
    let mut rest = &bytes[..];
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
        return Err(no_certificate(&bytes, &others));
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

/// `tlsSkipVerify`: any chain and any name are accepted, but the server
/// must still prove it holds the key of the certificate it sent (the
/// handshake signatures are checked), so the handshake itself is real.
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
