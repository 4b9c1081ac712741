//! rustls, webpki and PEM errors in words: the cause, and the fix where
//! there is one. Their own texts are often `Debug` forms
//! (`Other(OtherError(CaUsedAsEndEntity))`), used only when [`debug_form`]
//! finds none in them.

use std::net::IpAddr;

use rustls::pki_types::pem;
use rustls::{
    AlertDescription, CertRevocationListError, CertificateError, ContentType, Error,
    ExtendedKeyPurpose, HandshakeType, InvalidMessage, OtherError, PeerIncompatible,
    PeerMisbehaved,
};

use super::der;

/// A rustls error that is not one of the certificate failures
/// [`TlsFail`](super::TlsFail) has a variant for.
pub(super) fn error(e: &Error) -> String {
    match e {
        Error::InvalidCertificate(c) => certificate(c),
        Error::InappropriateMessage {
            got_type,
            expect_types,
        } => format!(
            "the server sent {} where {} was expected",
            content_type(*got_type),
            one_of(expect_types.iter().map(|t| content_type(*t)))
        ),
        Error::InappropriateHandshakeMessage {
            got_type,
            expect_types,
        } => format!(
            "the server sent the handshake message {} where {} was expected",
            handshake_type(*got_type),
            one_of(expect_types.iter().map(|t| handshake_type(*t)))
        ),
        Error::InvalidEncryptedClientHello(_) => {
            "the encrypted ClientHello was refused (probewheel does not offer one)".into()
        }
        Error::InvalidMessage(m) => format!(
            "the server sent a malformed TLS message: {}",
            invalid_message(m)
        ),
        Error::NoCertificatesPresented => "the server presented no certificate".into(),
        Error::UnsupportedNameType => {
            "the server name is neither a DNS name nor an IP address".into()
        }
        Error::DecryptError => "a record from the server failed to decrypt: it was corrupted \
             in transit, or the server's keys do not match the handshake"
            .into(),
        Error::EncryptError => "a record could not be encrypted".into(),
        Error::PeerIncompatible(p) => format!(
            "the server and probewheel have no TLS in common: {}",
            peer_incompatible(p)
        ),
        Error::PeerMisbehaved(p) => {
            format!("the server broke the TLS protocol: {}", peer_misbehaved(p))
        }
        Error::AlertReceived(a) => format!("the server sent TLS alert {}", alert(*a)),
        Error::InvalidCertRevocationList(c) => format!(
            "a certificate revocation list is unusable: {}",
            revocation_list(c)
        ),
        Error::General(text) => match debug_form(text) {
            None => format!("TLS failed: {text}"),
            Some(_) => "TLS failed for a reason rustls gave no words for".into(),
        },
        Error::FailedToGetCurrentTime => {
            "the system clock could not be read to check the certificate".into()
        }
        Error::FailedToGetRandomBytes => {
            "the operating system gave no random bytes for the handshake".into()
        }
        Error::HandshakeNotComplete => "the handshake has not completed".into(),
        Error::PeerSentOversizedRecord => {
            "the server sent a record larger than TLS allows (16384 bytes and overhead)".into()
        }
        Error::NoApplicationProtocol => {
            "the server supports none of the application protocols (ALPN) offered".into()
        }
        Error::BadMaxFragmentSize => "the maximum fragment size is out of range".into(),
        Error::InconsistentKeys(_) => "the certificate and private key do not match".into(),
        Error::Other(o) => other(o),
        unknown => unknown_words(&unknown.to_string(), "TLS failed"),
    }
}

/// A rejected certificate, after the failures [`TlsFail`](super::TlsFail)
/// has its own variant for (unknown issuer, name, dates).
pub(super) fn certificate(c: &CertificateError) -> String {
    #[allow(deprecated)]
    match c {
        CertificateError::BadEncoding => {
            "it is not a well-formed X.509 certificate (its DER encoding is invalid)".into()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "it has expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet".into()
        }
        CertificateError::Revoked => "it has been revoked by its issuer".into(),
        CertificateError::UnhandledCriticalExtension => {
            "it has an extension marked critical that webpki does not support".into()
        }
        CertificateError::UnknownIssuer => {
            "it is not signed by a CA in the trust store (unknown issuer)".into()
        }
        CertificateError::UnknownRevocationStatus => {
            "its revocation status could not be determined".into()
        }
        CertificateError::ExpiredRevocationList
        | CertificateError::ExpiredRevocationListContext { .. } => {
            "the certificate revocation list that covers it has expired".into()
        }
        CertificateError::BadSignature => "a signature in its chain does not verify: it was \
             not signed by the key of the certificate it names as its issuer"
            .into(),
        CertificateError::UnsupportedSignatureAlgorithm => {
            "it is signed with an algorithm that is not supported".into()
        }
        CertificateError::UnsupportedSignatureAlgorithmContext {
            signature_algorithm_id,
            ..
        } => format!(
            "it is signed with {}, which is not supported (supported: ECDSA P-256 and P-384, \
             Ed25519, RSA with SHA-256, SHA-384 or SHA-512)",
            algorithm(signature_algorithm_id)
        ),
        CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
            signature_algorithm_id,
            public_key_algorithm_id,
        } => format!(
            "it is signed with {} by a key of type {}, a combination that is not supported",
            algorithm(signature_algorithm_id),
            algorithm(public_key_algorithm_id)
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "it is not valid for the server name".into()
        }
        CertificateError::InvalidPurpose => "it is not for server authentication (its \
             extendedKeyUsage lacks serverAuth); issue it with extendedKeyUsage serverAuth"
            .into(),
        CertificateError::InvalidPurposeContext {
            required,
            presented,
        } => {
            let mut s = format!(
                "it is not for {} (its extendedKeyUsage allows ",
                purpose(required)
            );
            if presented.is_empty() {
                s.push_str("nothing");
            } else {
                s.push_str(&one_of(presented.iter().map(purpose)).replace(" or ", " and "));
            }
            s.push_str("); issue it with extendedKeyUsage serverAuth");
            s
        }
        CertificateError::InvalidOcspResponse => {
            "the OCSP response stapled to it is invalid".into()
        }
        CertificateError::ApplicationVerificationFailure => "it was refused".into(),
        CertificateError::Other(o) => other(o),
        unknown => unknown_words(&unknown.to_string(), "it was rejected"),
    }
}

/// An error that rustls passes through untyped: a webpki error when it is
/// one.
fn other(o: &OtherError) -> String {
    match o.0.downcast_ref::<webpki::Error>() {
        Some(e) => webpki_error(e),
        None => unknown_words(&o.0.to_string(), "the verifier refused it"),
    }
}

/// The webpki errors rustls does not map to a `CertificateError` of its
/// own (and, for completeness, those it does).
fn webpki_error(e: &webpki::Error) -> String {
    use webpki::Error as W;
    #[allow(deprecated)]
    match e {
        W::CaUsedAsEndEntity => "the server presents a CA certificate (basicConstraints \
             CA:TRUE) as its own, and a CA certificate cannot identify a server; make a leaf \
             certificate signed by a CA (and put that CA in caFile), or add `-addext \
             basicConstraints=critical,CA:FALSE` to `openssl req -x509`"
            .into(),
        W::EndEntityUsedAsCa => "a certificate that signed another in the chain is not a CA \
             (its basicConstraints lack CA:TRUE); the issuing certificate must be made as a CA"
            .into(),
        W::MaximumPathDepthExceeded => "the chain to a trusted CA is too long: webpki follows at \
             most 6 intermediate CAs; trust an intermediate closer to the server's certificate \
             in caFile, or shorten the chain"
            .into(),
        W::MaximumSignatureChecksExceeded | W::MaximumPathBuildCallsExceeded => "the chain is too \
             complex to verify (too many candidate paths to a trusted CA); send only the \
             certificates of one chain"
            .into(),
        W::MaximumNameConstraintComparisonsExceeded => {
            "its names need too many name-constraint comparisons to verify".into()
        }
        W::PathLenConstraintViolated => {
            "the chain has more intermediate CAs than a CA's pathLenConstraint allows".into()
        }
        W::NameConstraintViolation => {
            "a name in it is outside the name constraints of a CA in its chain".into()
        }
        W::CertDistrusted => "its public key is explicitly distrusted".into(),
        W::CertRevoked => "it has been revoked by its issuer".into(),
        W::UnknownIssuer => "it is not signed by a CA in the trust store".into(),
        W::CertExpired { .. } | W::InvalidCertValidity => {
            "its validity period has ended or is invalid".into()
        }
        W::CertNotValidYet { .. } => "it is not valid yet".into(),
        W::CertNotValidForName(_) => "it is not valid for the server name".into(),
        W::BadDer | W::TrailingData(_) => {
            "it is not a well-formed X.509 certificate (its DER encoding is invalid)".into()
        }
        W::BadDerTime => "a date in it is not encoded as DER requires".into(),
        W::EmptyEkuExtension => "its extendedKeyUsage extension lists no usage".into(),
        W::RequiredEkuNotFound | W::RequiredEkuNotFoundContext(_) => {
            "it is not for server authentication (its extendedKeyUsage lacks serverAuth)".into()
        }
        W::ExtensionValueInvalid | W::MalformedExtensions => {
            "an extension in it is malformed".into()
        }
        W::MalformedDnsIdentifier => "a DNS name in it is malformed".into(),
        W::MalformedNameConstraint | W::InvalidNetworkMaskConstraint => {
            "a name constraint of a CA in its chain is malformed".into()
        }
        W::InvalidSerialNumber => "its serial number is malformed".into(),
        W::SignatureAlgorithmMismatch => "the signature algorithm it names inside does not \
             match the one of its signature"
            .into(),
        W::InvalidSignatureForPublicKey => "a signature in its chain does not verify".into(),
        W::UnsupportedCertVersion => "it is not an X.509 version 3 certificate".into(),
        W::UnsupportedCriticalExtension => {
            "it has an extension marked critical that webpki does not support".into()
        }
        W::UnsupportedNameType => "the server name is of a type webpki cannot check".into(),
        W::UnsupportedSignatureAlgorithm
        | W::UnsupportedSignatureAlgorithmContext(_)
        | W::UnsupportedSignatureAlgorithmForPublicKey
        | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "it is signed with an algorithm that is not supported".into()
        }
        W::UnknownRevocationStatus => "its revocation status could not be determined".into(),
        W::CrlExpired { .. }
        | W::InvalidCrlNumber
        | W::InvalidCrlSignatureForPublicKey
        | W::IssuerNotCrlSigner
        | W::UnsupportedCrlIssuingDistributionPoint
        | W::UnsupportedCrlVersion
        | W::UnsupportedDeltaCrl
        | W::UnsupportedIndirectCrl
        | W::UnsupportedRevocationReason
        | W::UnsupportedRevocationReasonsPartitioning
        | W::UnsupportedCrlSignatureAlgorithm
        | W::UnsupportedCrlSignatureAlgorithmContext(_)
        | W::UnsupportedCrlSignatureAlgorithmForPublicKey
        | W::UnsupportedCrlSignatureAlgorithmForPublicKeyContext(_) => {
            "a certificate revocation list for it is unusable".into()
        }
        unknown => unknown_words(&format!("{unknown:?}"), "webpki rejected it"),
    }
}

fn revocation_list(c: &CertRevocationListError) -> String {
    #[allow(deprecated)]
    match c {
        CertRevocationListError::BadSignature => "its signature does not verify".into(),
        CertRevocationListError::UnsupportedSignatureAlgorithm
        | CertRevocationListError::UnsupportedSignatureAlgorithmContext { .. }
        | CertRevocationListError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "it is signed with an algorithm that is not supported".into()
        }
        CertRevocationListError::InvalidCrlNumber => "its CRL number is malformed".into(),
        CertRevocationListError::InvalidRevokedCertSerialNumber => {
            "a serial number in it is malformed".into()
        }
        CertRevocationListError::IssuerInvalidForCrl => {
            "its issuer may not sign revocation lists".into()
        }
        CertRevocationListError::Other(o) => other(o),
        CertRevocationListError::ParseError => "it is malformed".into(),
        CertRevocationListError::UnsupportedCrlVersion => "its version is not supported".into(),
        CertRevocationListError::UnsupportedCriticalExtension => {
            "it has an unsupported critical extension".into()
        }
        CertRevocationListError::UnsupportedDeltaCrl => "it is a delta CRL".into(),
        CertRevocationListError::UnsupportedIndirectCrl => "it is an indirect CRL".into(),
        CertRevocationListError::UnsupportedRevocationReason => {
            "it names an unsupported revocation reason".into()
        }
        unknown => unknown_words(&format!("{unknown:?}"), "it was rejected"),
    }
}

/// A TLS alert by its RFC 8446 name and number, with what it usually
/// means when a server sends it to a client.
pub(super) fn alert(a: AlertDescription) -> String {
    let code = u8::from(a);
    let (name, meaning) = match code {
        0 => ("close_notify", ""),
        10 => (
            "unexpected_message",
            "it received a message it did not expect",
        ),
        20 => ("bad_record_mac", "a record failed to decrypt"),
        21 => ("decryption_failed", "a record failed to decrypt"),
        22 => ("record_overflow", "a record was too long"),
        30 => ("decompression_failure", ""),
        40 => (
            "handshake_failure",
            "it found no acceptable TLS version, cipher suite or key exchange in common, \
             or it wants a client certificate",
        ),
        41 => ("no_certificate", "it wants a client certificate"),
        42 => ("bad_certificate", "it refused a certificate"),
        43 => ("unsupported_certificate", "it refused a certificate"),
        44 => ("certificate_revoked", "it refused a revoked certificate"),
        45 => ("certificate_expired", "it refused an expired certificate"),
        46 => ("certificate_unknown", "it refused a certificate"),
        47 => (
            "illegal_parameter",
            "it found a value in the handshake out of range",
        ),
        48 => ("unknown_ca", "it does not trust a certificate's issuer"),
        49 => ("access_denied", "it refuses this client"),
        50 => ("decode_error", "it could not parse a message"),
        51 => ("decrypt_error", "a handshake signature or key check failed"),
        60 => ("export_restriction", ""),
        70 => (
            "protocol_version",
            "it does not accept TLS 1.2 or 1.3, the versions probewheel speaks",
        ),
        71 => (
            "insufficient_security",
            "it wants stronger cipher suites than were offered",
        ),
        80 => ("internal_error", "the server failed, not the handshake"),
        86 => ("inappropriate_fallback", ""),
        90 => ("user_canceled", "it cancelled the handshake"),
        100 => ("no_renegotiation", ""),
        109 => (
            "missing_extension",
            "it requires a TLS extension that was not sent",
        ),
        110 => (
            "unsupported_extension",
            "it received an extension it does not support",
        ),
        111 => ("certificate_unobtainable", ""),
        112 => (
            "unrecognized_name",
            "it serves no certificate for the name sent (SNI); set tlsServerName to a name it serves",
        ),
        113 => ("bad_certificate_status_response", ""),
        114 => ("bad_certificate_hash_value", ""),
        115 => ("unknown_psk_identity", ""),
        116 => (
            "certificate_required",
            "it requires a client certificate, which probewheel does not send",
        ),
        120 => (
            "no_application_protocol",
            "it supports none of the application protocols offered",
        ),
        121 => ("ech_required", ""),
        _ => ("of an unknown kind", ""),
    };
    if meaning.is_empty() {
        format!("{name} ({code})")
    } else {
        format!("{name} ({code}): {meaning}")
    }
}

fn content_type(t: ContentType) -> String {
    let code = u8::from(t);
    match code {
        0x14 => "a change_cipher_spec record".into(),
        0x15 => "an alert record".into(),
        0x16 => "a handshake record".into(),
        0x17 => "application data".into(),
        0x18 => "a heartbeat record".into(),
        _ => format!("a record of type {code}"),
    }
}

fn handshake_type(t: HandshakeType) -> String {
    let code = u8::from(t);
    let name = match code {
        0 => "HelloRequest",
        1 => "ClientHello",
        2 => "ServerHello",
        3 => "HelloVerifyRequest",
        4 => "NewSessionTicket",
        5 => "EndOfEarlyData",
        6 => "HelloRetryRequest",
        8 => "EncryptedExtensions",
        11 => "Certificate",
        12 => "ServerKeyExchange",
        13 => "CertificateRequest",
        14 => "ServerHelloDone",
        15 => "CertificateVerify",
        16 => "ClientKeyExchange",
        20 => "Finished",
        21 => "CertificateURL",
        22 => "CertificateStatus",
        24 => "KeyUpdate",
        25 => "CompressedCertificate",
        254 => "MessageHash",
        _ => return format!("of type {code}"),
    };
    name.into()
}

fn invalid_message(m: &InvalidMessage) -> String {
    match m {
        InvalidMessage::CertificatePayloadTooLarge => "its certificate message is too large".into(),
        InvalidMessage::HandshakePayloadTooLarge | InvalidMessage::MessageTooLarge => {
            "a message is too large".into()
        }
        InvalidMessage::InvalidCcs => "a change_cipher_spec message is malformed".into(),
        InvalidMessage::InvalidContentType => {
            "a record of an unknown type (the port may not speak TLS)".into()
        }
        InvalidMessage::InvalidCertificateStatusType => {
            "its certificate status has an unknown type".into()
        }
        InvalidMessage::InvalidCertRequest => "its certificate request is malformed".into(),
        InvalidMessage::InvalidDhParams => "its Diffie-Hellman parameters are malformed".into(),
        InvalidMessage::InvalidEmptyPayload => "a message that must be empty is not".into(),
        InvalidMessage::InvalidKeyUpdate => "a key update is malformed".into(),
        InvalidMessage::InvalidServerName => "a server name is malformed".into(),
        InvalidMessage::MessageTooShort => "a message is cut short".into(),
        InvalidMessage::MissingData(what) => format!("{} is missing", field(what)),
        InvalidMessage::MissingKeyExchange => "the key exchange is missing".into(),
        InvalidMessage::NoSignatureSchemes => "it lists no signature schemes".into(),
        InvalidMessage::TrailingData(what) => {
            format!("{} has bytes after its end", field(what))
        }
        InvalidMessage::UnexpectedMessage(what) => {
            format!("{} was not expected", field(what))
        }
        InvalidMessage::UnknownProtocolVersion => {
            "a record has an unknown protocol version (the port may not speak TLS)".into()
        }
        InvalidMessage::UnsupportedCompression => "it asks for compression".into(),
        InvalidMessage::UnsupportedCurveType => "it uses an unsupported curve type".into(),
        InvalidMessage::UnsupportedKeyExchangeAlgorithm(_) => {
            "it uses an unsupported key exchange algorithm".into()
        }
        InvalidMessage::EmptyTicketValue => "a session ticket is empty".into(),
        InvalidMessage::IllegalEmptyList(what) => {
            format!("{} is an empty list where one is not allowed", field(what))
        }
        InvalidMessage::IllegalEmptyValue => "a value is empty where one is not allowed".into(),
        InvalidMessage::DuplicateExtension(n) => format!("extension {n} appears twice"),
        InvalidMessage::PreSharedKeyIsNotFinalExtension => {
            "the pre_shared_key extension is not the last".into()
        }
        InvalidMessage::UnknownHelloRetryRequestExtension => {
            "a HelloRetryRequest has an unknown extension".into()
        }
        InvalidMessage::UnknownCertificateExtension => {
            "a certificate entry has an unknown extension".into()
        }
        unknown => unknown_words(&format!("{unknown:?}"), "it is malformed"),
    }
}

/// A message or field name rustls reports (`ServerHelloPayload`): said as
/// a field of the handshake, without rustls's `Payload` suffixes.
fn field(what: &str) -> String {
    let name = what.trim_end_matches("Payload");
    if name.is_empty() || debug_form(name).is_some() {
        "a field".into()
    } else {
        format!("the field {name}")
    }
}

fn peer_incompatible(p: &PeerIncompatible) -> String {
    match p {
        PeerIncompatible::ServerDoesNotSupportTls12Or13
        | PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
        | PeerIncompatible::SupportedVersionsExtensionRequired => {
            "the server offers neither TLS 1.2 nor TLS 1.3 (probewheel speaks only those; \
             TLS 1.0 and 1.1 are refused)"
                .into()
        }
        PeerIncompatible::NoCipherSuitesInCommon => {
            "no cipher suite in common (probewheel offers AES-GCM and ChaCha20-Poly1305 suites)"
                .into()
        }
        PeerIncompatible::NoKxGroupsInCommon => {
            "no key exchange group in common (probewheel offers X25519, P-256 and P-384)".into()
        }
        PeerIncompatible::NoSignatureSchemesInCommon
        | PeerIncompatible::NoCertificateRequestSignatureSchemesInCommon => {
            "no signature scheme in common".into()
        }
        PeerIncompatible::NoEcPointFormatsInCommon
        | PeerIncompatible::UncompressedEcPointsRequired
        | PeerIncompatible::EcPointsExtensionRequired => {
            "the server does not accept uncompressed elliptic-curve points".into()
        }
        PeerIncompatible::ExtendedMasterSecretExtensionRequired => "the server does not support \
             the extended master secret (RFC 7627), which TLS 1.2 needs here"
            .into(),
        PeerIncompatible::NullCompressionRequired => "the server requires compression".into(),
        PeerIncompatible::KeyShareExtensionRequired
        | PeerIncompatible::NamedGroupsExtensionRequired
        | PeerIncompatible::SignatureAlgorithmsExtensionRequired => {
            "the server omitted an extension TLS 1.3 requires".into()
        }
        PeerIncompatible::IncorrectCertificateTypeExtension
        | PeerIncompatible::UnsolicitedCertificateTypeExtension => {
            "the server asked for a certificate type that was not offered".into()
        }
        PeerIncompatible::ServerSentHelloRetryRequestWithUnknownExtension => {
            "the server's HelloRetryRequest has an unknown extension".into()
        }
        PeerIncompatible::Tls12NotOffered
        | PeerIncompatible::Tls12NotOfferedOrEnabled
        | PeerIncompatible::Tls13RequiredForQuic => {
            "the server wants a TLS version that was not offered".into()
        }
        PeerIncompatible::ServerRejectedEncryptedClientHello(_) => {
            "the server refused the encrypted ClientHello".into()
        }
        unknown => unknown_words(&format!("{unknown:?}"), "an incompatible server"),
    }
}

fn peer_misbehaved(p: &PeerMisbehaved) -> String {
    match p {
        PeerMisbehaved::AttemptedDowngradeToTls12WhenTls13IsSupported => {
            "it chose TLS 1.2 while signalling TLS 1.3 support (a downgrade: a middlebox?)".into()
        }
        PeerMisbehaved::SelectedUnofferedCipherSuite
        | PeerMisbehaved::SelectedUnusableCipherSuiteForVersion => {
            "it chose a cipher suite that was not offered".into()
        }
        PeerMisbehaved::SelectedUnofferedKxGroup | PeerMisbehaved::WrongGroupForKeyShare => {
            "it chose a key exchange group that was not offered".into()
        }
        PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme
        | PeerMisbehaved::SignedKxWithWrongAlgorithm => {
            "it signed the handshake with a scheme that was not offered".into()
        }
        PeerMisbehaved::InvalidKeyShare => "its key share is invalid".into(),
        PeerMisbehaved::TooManyWarningAlertsReceived => "it sent too many warning alerts".into(),
        PeerMisbehaved::TooManyEmptyFragments => "it sent too many empty records".into(),
        PeerMisbehaved::TooManyKeyUpdateRequests => "it sent too many key updates".into(),
        PeerMisbehaved::TooManyRenegotiationRequests => {
            "it asked to renegotiate too many times".into()
        }
        PeerMisbehaved::IllegalMiddleboxChangeCipherSpec => {
            "it sent a change_cipher_spec where none is allowed".into()
        }
        PeerMisbehaved::MessageInterleavedWithHandshakeMessage
        | PeerMisbehaved::KeyEpochWithPendingFragment => {
            "it mixed another message into a handshake message".into()
        }
        unknown => unknown_words(&format!("{unknown:?}"), "it sent something TLS forbids"),
    }
}

fn purpose(p: &ExtendedKeyPurpose) -> String {
    match p {
        ExtendedKeyPurpose::ServerAuth => "serverAuth".into(),
        ExtendedKeyPurpose::ClientAuth => "clientAuth".into(),
        ExtendedKeyPurpose::Other(arcs) => {
            let arcs: Vec<String> = arcs.iter().map(usize::to_string).collect();
            format!("OID {}", arcs.join("."))
        }
    }
}

/// An AlgorithmIdentifier's contents (an OID, maybe parameters) by name.
fn algorithm(id: &[u8]) -> String {
    let Some(oid) = der::leading_oid(id) else {
        return "an unreadable algorithm".into();
    };
    let name = match oid.as_str() {
        "1.2.840.113549.1.1.1" => "RSA",
        "1.2.840.113549.1.1.4" => "MD5 with RSA",
        "1.2.840.113549.1.1.5" => "SHA-1 with RSA",
        "1.2.840.113549.1.1.10" => "RSA-PSS",
        "1.2.840.113549.1.1.11" => "SHA-256 with RSA",
        "1.2.840.113549.1.1.12" => "SHA-384 with RSA",
        "1.2.840.113549.1.1.13" => "SHA-512 with RSA",
        "1.2.840.113549.1.1.14" => "SHA-224 with RSA",
        "1.2.840.10040.4.1" => "DSA",
        "1.2.840.10040.4.3" => "SHA-1 with DSA",
        "1.2.840.10045.2.1" => "EC",
        "1.2.840.10045.4.1" => "ECDSA with SHA-1",
        "1.2.840.10045.4.3.2" => "ECDSA with SHA-256",
        "1.2.840.10045.4.3.3" => "ECDSA with SHA-384",
        "1.2.840.10045.4.3.4" => "ECDSA with SHA-512",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        _ => return format!("algorithm {oid}"),
    };
    format!("{name} (OID {oid})")
}

/// `a`, `a or b`, `a, b or c`.
fn one_of(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    match items.split_last() {
        None => "nothing".into(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// A name the certificate carries, as webpki lists it (`DnsName("a.b")`,
/// `IpAddress(10.0.0.1)`): the name alone, an IP address in its usual form.
pub(super) fn presented_name(listed: &str) -> String {
    let inner = |prefix: &str| {
        listed
            .strip_prefix(prefix)
            .and_then(|s| s.strip_suffix(')'))
            .map(|s| s.trim_matches('"').to_owned())
    };
    if let Some(dns) = inner("DnsName(") {
        return dns;
    }
    if let Some(ip) = inner("IpAddress(") {
        // webpki writes `::1` as `0::1`; the standard form is easier to match.
        return ip.parse::<IpAddr>().map_or(ip, |ip| ip.to_string());
    }
    if let Some(uri) = inner("UniformResourceIdentifier(") {
        return format!("the URI {uri}");
    }
    if listed == "DirectoryName" {
        return "a directory name".into();
    }
    if listed.starts_with("Unsupported(") {
        return "a name of a kind webpki does not check".into();
    }
    match debug_form(listed) {
        None => listed.to_owned(),
        Some(_) => "a name webpki could not show".into(),
    }
}

/// A pki-types PEM error, for certificate number `n` of the file (the
/// one being read when it happened).
pub(super) fn pem_error(e: &pem::Error, n: usize) -> String {
    match e {
        // The marker is the block's label (`CERTIFICATE`).
        pem::Error::MissingSectionEnd { end_marker } => {
            let mut line = b"-----END ".to_vec();
            line.extend_from_slice(end_marker);
            line.extend_from_slice(b"-----");
            format!(
                "PEM block {n} has no end line {} (is the file cut short?)",
                printable(&line)
            )
        }
        pem::Error::IllegalSectionStart { line } => format!(
            "the line {} starts like a PEM block but is not a valid BEGIN line \
             (five dashes on each side)",
            printable(line)
        ),
        pem::Error::Base64Decode(_) => format!(
            "the base64 text of PEM block {n} is corrupt (a character outside base64, or \
             lines missing)"
        ),
        pem::Error::Io(io) => format!("cannot read it: {io}"),
        pem::Error::NoItemsFound => "no PEM certificate in it".into(),
        pem::Error::SectionTooLarge => format!("PEM block {n} is larger than 256 MB"),
        unknown => unknown_words(&unknown.to_string(), "it is not a readable PEM file"),
    }
}

/// Bytes from a file, as text in backquotes: at most 80 characters,
/// control characters as `?`.
fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::from("`");
    for (i, c) in text.trim_end_matches(['\r', '\n']).chars().enumerate() {
        if i == 80 {
            out.push_str("...");
            break;
        }
        out.push(if c.is_control() { '?' } else { c });
    }
    out.push('`');
    out
}

/// A variant added after this was written: the library's text when it
/// reads as words, else `general` and the variant's leading name split into
/// words (`SelectedUnofferedPsk`: "selected unoffered psk").
fn unknown_words(text: &str, general: &str) -> String {
    let name: String = text
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    if name.len() < text.len() && debug_form(text).is_none() {
        return format!("{general}: {text}");
    }
    if name.is_empty() {
        return general.into();
    }
    let mut words = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() && !words.is_empty() {
            words.push(' ');
        }
        words.push(c.to_ascii_lowercase());
    }
    format!("{general} ({words})")
}

/// Names written as the RFCs write them (TLS messages, a cipher): not
/// `Debug` text.
const PROPER_NAMES: [&str; 21] = [
    "ChaCha20",
    "HelloRequest",
    "ClientHello",
    "ServerHello",
    "HelloVerifyRequest",
    "NewSessionTicket",
    "EndOfEarlyData",
    "HelloRetryRequest",
    "EncryptedExtensions",
    "Certificate",
    "ServerKeyExchange",
    "CertificateRequest",
    "ServerHelloDone",
    "CertificateVerify",
    "ClientKeyExchange",
    "Finished",
    "CertificateURL",
    "CertificateStatus",
    "KeyUpdate",
    "CompressedCertificate",
    "MessageHash",
];

/// The first piece of `text` that looks like Rust `Debug` output (`Other(`,
/// `{ `, `[45, 45`, a `CamelCase` word); `None` when it reads as words.
pub(crate) fn debug_form(text: &str) -> Option<String> {
    if text.contains("{ ") || text.contains(" }") {
        return Some("a struct form `{ .. }`".into());
    }
    let bytes = text.as_bytes();
    for (i, w) in bytes.windows(2).enumerate() {
        // `[12, 34`: a list of numbers.
        if w[0] == b'[' && w[1].is_ascii_digit() {
            let rest = &text[i + 1..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if rest[digits..].starts_with(", ")
                && rest[digits + 2..].starts_with(|c: char| c.is_ascii_digit())
            {
                let at: String = text[i..].chars().take(12).collect();
                return Some(format!("a byte list at `{at}`"));
            }
        }
    }
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut rest = text;
    while let Some(start) = rest.find(is_word) {
        let tail = &rest[start..];
        let len = tail.find(|c: char| !is_word(c)).unwrap_or(tail.len());
        let (name, after) = tail.split_at(len);
        rest = after;
        if !name.starts_with(|c: char| c.is_ascii_uppercase()) {
            continue;
        }
        // `Other(`, `Some(`: a tuple variant, struct or enum.
        if after.starts_with('(') && name.chars().skip(1).any(|c| c.is_ascii_lowercase()) {
            return Some(format!("a tuple form `{name}(`"));
        }
        // `CaUsedAsEndEntity`: lower then upper case is a Rust name, not a
        // word (acronyms such as `TLS` or `SHA-256` have none).
        let camel = name
            .as_bytes()
            .windows(2)
            .any(|p| p[0].is_ascii_lowercase() && p[1].is_ascii_uppercase());
        if camel && !PROPER_NAMES.contains(&name) {
            return Some(format!("a type name `{name}`"));
        }
    }
    None
}

#[cfg(test)]
mod tests;
