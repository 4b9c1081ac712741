//! The chain the client verified, for `minCertValidityDays`: a server may
//! send certificates that are not on it (an expired cross-signed root, as
//! Let's Encrypt's chains did), and those must not fail the probe.
//!
//! rustls's verifier keeps the path it built to itself, so once the
//! handshake has verified the chain, webpki builds it again here from the
//! same trust anchors and presented certificates.

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, UnixTime};

/// The end-entity certificate and the intermediates webpki chains it
/// through to one of `roots`, or `None` when no path verifies at `now`.
pub(super) fn verified(
    roots: &RootCertStore,
    presented: &[CertificateDer<'_>],
    now: UnixTime,
) -> Option<Vec<CertificateDer<'static>>> {
    let (end_entity, intermediates) = presented.split_first()?;
    let cert = webpki::EndEntityCert::try_from(end_entity).ok()?;
    let algorithms = rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .all;
    let path = cert
        .verify_for_usage(
            algorithms,
            &roots.roots,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .ok()?;
    let mut chain = vec![end_entity.clone().into_owned()];
    chain.extend(
        path.intermediate_certificates()
            .map(|c| c.der().into_owned()),
    );
    Some(chain)
}
