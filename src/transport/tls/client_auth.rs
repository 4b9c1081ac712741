//! `clientCertFile` / `clientKeyFile`: the certificate a probe offers a
//! server that asks for one (mutual TLS), read at every reset.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::{self, PemObject};
use rustls::sign::CertifiedKey;

use super::SetupError;
use super::der::cert_info;
use crate::file::RegularFile;
use crate::transport::ClientAuthFiles;

/// A certificate or key file larger than this is refused unread.
const MAX_FILE: u64 = 1024 * 1024;

/// The client certificate, ready to sign, and when its own certificate
/// expires (seconds since the epoch) for `minCertValidityDays`.
#[derive(Clone)]
pub(super) struct ClientCert {
    pub(super) key: Arc<CertifiedKey>,
    pub(super) subject: String,
    pub(super) not_after: i64,
}

/// Reads and checks both files: parsable PEM, and a key that matches the
/// certificate.
pub(super) fn load(files: &ClientAuthFiles) -> Result<ClientCert, SetupError> {
    let fail = |field: &'static str, path: &Path| {
        let path = path.to_owned();
        move |why: String| SetupError::ClientAuth { field, path, why }
    };
    let cert_bytes = read(&files.cert).map_err(fail("clientCertFile", &files.cert))?;
    let certs =
        super::trust::pem_certs(&cert_bytes).map_err(fail("clientCertFile", &files.cert))?;
    let info = cert_info(&certs[0]).map_err(|e| {
        fail("clientCertFile", &files.cert)(format!("cannot read the certificate: {e}"))
    })?;
    let key_bytes = read(&files.key).map_err(fail("clientKeyFile", &files.key))?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
        let why = match e {
            pem::Error::NoItemsFound => "no PEM private key in it".to_owned(),
            e => super::words::pem_error(&e, 1),
        };
        fail("clientKeyFile", &files.key)(format!(
            "{why}; expected a PEM private key (-----BEGIN PRIVATE KEY-----)"
        ))
    })?;
    let signer = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| {
            fail("clientKeyFile", &files.key)(format!(
                "the key cannot be used: {}",
                super::words::error(&e)
            ))
        })?;
    let key = CertifiedKey::new(certs, signer);
    key.keys_match().map_err(|_| {
        fail("clientKeyFile", &files.key)(format!(
            "the private key does not match the certificate in {}",
            files.cert.display()
        ))
    })?;
    Ok(ClientCert {
        key: Arc::new(key),
        subject: info.subject,
        not_after: info.not_after,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    RegularFile::read_all(path, MAX_FILE).map_err(|e| e.to_string())
}
