//! Every error rustls, webpki and pki-types can give, through the same
//! mapping a failed connection or caFile takes, must read as words.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{UnixTime, pem};
use rustls::{
    AlertDescription, CertRevocationListError, CertificateError, ContentType,
    EncryptedClientHelloError, Error, ExtendedKeyPurpose, HandshakeType, InconsistentKeys,
    InvalidMessage, OtherError, PeerIncompatible, PeerMisbehaved,
};

use super::super::TlsFail;
use super::super::testing::assert_words;
use super::{debug_form, pem_error, presented_name};

/// The reason a failed handshake with `e` gives.
fn reason(e: Error) -> String {
    let text = TlsFail::from_rustls(e, "caFile /etc/probe/ca.pem").to_string();
    assert_words(&text);
    text
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> OtherError {
    OtherError(Arc::new(e))
}

fn time(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

#[allow(deprecated)]
fn webpki_errors() -> Vec<webpki::Error> {
    let mut all = vec![
        webpki::Error::BadDer,
        webpki::Error::BadDerTime,
        webpki::Error::CaUsedAsEndEntity,
        webpki::Error::CertDistrusted,
        webpki::Error::CertRevoked,
        webpki::Error::EmptyEkuExtension,
        webpki::Error::EndEntityUsedAsCa,
        webpki::Error::ExtensionValueInvalid,
        webpki::Error::InvalidCertValidity,
        webpki::Error::InvalidCrlNumber,
        webpki::Error::InvalidNetworkMaskConstraint,
        webpki::Error::InvalidSerialNumber,
        webpki::Error::InvalidCrlSignatureForPublicKey,
        webpki::Error::InvalidSignatureForPublicKey,
        webpki::Error::IssuerNotCrlSigner,
        webpki::Error::MalformedDnsIdentifier,
        webpki::Error::MalformedExtensions,
        webpki::Error::MalformedNameConstraint,
        webpki::Error::MaximumNameConstraintComparisonsExceeded,
        webpki::Error::MaximumPathBuildCallsExceeded,
        webpki::Error::MaximumPathDepthExceeded,
        webpki::Error::MaximumSignatureChecksExceeded,
        webpki::Error::NameConstraintViolation,
        webpki::Error::PathLenConstraintViolated,
        webpki::Error::RequiredEkuNotFound,
        webpki::Error::SignatureAlgorithmMismatch,
        webpki::Error::UnknownIssuer,
        webpki::Error::UnknownRevocationStatus,
        webpki::Error::UnsupportedCertVersion,
        webpki::Error::UnsupportedCriticalExtension,
        webpki::Error::UnsupportedCrlIssuingDistributionPoint,
        webpki::Error::UnsupportedCrlVersion,
        webpki::Error::UnsupportedDeltaCrl,
        webpki::Error::UnsupportedIndirectCrl,
        webpki::Error::UnsupportedNameType,
        webpki::Error::UnsupportedRevocationReason,
        webpki::Error::UnsupportedRevocationReasonsPartitioning,
        webpki::Error::UnsupportedCrlSignatureAlgorithm,
        webpki::Error::UnsupportedSignatureAlgorithm,
        webpki::Error::UnsupportedCrlSignatureAlgorithmForPublicKey,
        webpki::Error::UnsupportedSignatureAlgorithmForPublicKey,
        webpki::Error::CertExpired {
            time: time(2_000_000_000),
            not_after: time(1_900_000_000),
        },
        webpki::Error::CertNotValidYet {
            time: time(1_900_000_000),
            not_before: time(2_000_000_000),
        },
        webpki::Error::CrlExpired {
            time: time(2_000_000_000),
            next_update: time(1_900_000_000),
        },
    ];
    all.push(webpki::Error::TrailingData(webpki::DerTypeId::Certificate));
    all
}

#[allow(deprecated)]
fn certificate_errors() -> Vec<CertificateError> {
    // sha1WithRSAEncryption, ecdsa-with-SHA256 and rsaEncryption, as DER OIDs.
    let sha1_rsa = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x05\x05\x00".to_vec();
    let rsa = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00".to_vec();
    let mut all = vec![
        CertificateError::BadEncoding,
        CertificateError::Expired,
        CertificateError::ExpiredContext {
            time: time(2_000_000_000),
            not_after: time(1_900_000_000),
        },
        CertificateError::NotValidYet,
        CertificateError::NotValidYetContext {
            time: time(1_900_000_000),
            not_before: time(2_000_000_000),
        },
        CertificateError::Revoked,
        CertificateError::UnhandledCriticalExtension,
        CertificateError::UnknownIssuer,
        CertificateError::UnknownRevocationStatus,
        CertificateError::ExpiredRevocationList,
        CertificateError::ExpiredRevocationListContext {
            time: time(2_000_000_000),
            next_update: time(1_900_000_000),
        },
        CertificateError::BadSignature,
        CertificateError::UnsupportedSignatureAlgorithm,
        CertificateError::UnsupportedSignatureAlgorithmContext {
            signature_algorithm_id: sha1_rsa.clone(),
            supported_algorithms: Vec::new(),
        },
        CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
            signature_algorithm_id: sha1_rsa,
            public_key_algorithm_id: rsa,
        },
        CertificateError::UnsupportedSignatureAlgorithmContext {
            signature_algorithm_id: b"junk".to_vec(),
            supported_algorithms: Vec::new(),
        },
        CertificateError::NotValidForName,
        CertificateError::NotValidForNameContext {
            expected: "api.example".try_into().unwrap(),
            presented: vec![
                "DnsName(\"www.example\")".into(),
                "IpAddress(0::1)".into(),
                "UniformResourceIdentifier(\"https://x.example/\")".into(),
                "DirectoryName".into(),
                "Unsupported(0x01)".into(),
            ],
        },
        CertificateError::NotValidForNameContext {
            expected: "api.example".try_into().unwrap(),
            presented: Vec::new(),
        },
        CertificateError::InvalidPurpose,
        CertificateError::InvalidPurposeContext {
            required: ExtendedKeyPurpose::ServerAuth,
            presented: vec![
                ExtendedKeyPurpose::ClientAuth,
                ExtendedKeyPurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 4]),
            ],
        },
        CertificateError::InvalidPurposeContext {
            required: ExtendedKeyPurpose::ServerAuth,
            presented: Vec::new(),
        },
        CertificateError::InvalidOcspResponse,
        CertificateError::ApplicationVerificationFailure,
        CertificateError::Other(other(io::Error::other("a custom verifier said no"))),
        CertificateError::Other(other(io::Error::other("Weird(3)"))),
    ];
    all.extend(
        webpki_errors()
            .into_iter()
            .map(|e| CertificateError::Other(other(e))),
    );
    all
}

#[allow(deprecated)]
fn revocation_list_errors() -> Vec<CertRevocationListError> {
    vec![
        CertRevocationListError::BadSignature,
        CertRevocationListError::UnsupportedSignatureAlgorithm,
        CertRevocationListError::InvalidCrlNumber,
        CertRevocationListError::InvalidRevokedCertSerialNumber,
        CertRevocationListError::IssuerInvalidForCrl,
        CertRevocationListError::Other(other(
            webpki::Error::UnsupportedCrlIssuingDistributionPoint,
        )),
        CertRevocationListError::ParseError,
        CertRevocationListError::UnsupportedCrlVersion,
        CertRevocationListError::UnsupportedCriticalExtension,
        CertRevocationListError::UnsupportedDeltaCrl,
        CertRevocationListError::UnsupportedIndirectCrl,
        CertRevocationListError::UnsupportedRevocationReason,
    ]
}

fn invalid_messages() -> Vec<InvalidMessage> {
    vec![
        InvalidMessage::CertificatePayloadTooLarge,
        InvalidMessage::HandshakePayloadTooLarge,
        InvalidMessage::InvalidCcs,
        InvalidMessage::InvalidContentType,
        InvalidMessage::InvalidCertificateStatusType,
        InvalidMessage::InvalidCertRequest,
        InvalidMessage::InvalidDhParams,
        InvalidMessage::InvalidEmptyPayload,
        InvalidMessage::InvalidKeyUpdate,
        InvalidMessage::InvalidServerName,
        InvalidMessage::MessageTooLarge,
        InvalidMessage::MessageTooShort,
        InvalidMessage::MissingKeyExchange,
        InvalidMessage::NoSignatureSchemes,
        InvalidMessage::UnknownProtocolVersion,
        InvalidMessage::UnsupportedCompression,
        InvalidMessage::UnsupportedCurveType,
        InvalidMessage::EmptyTicketValue,
        InvalidMessage::IllegalEmptyValue,
        InvalidMessage::PreSharedKeyIsNotFinalExtension,
        InvalidMessage::UnknownHelloRetryRequestExtension,
        InvalidMessage::UnknownCertificateExtension,
        InvalidMessage::MissingData("ServerHelloPayload"),
        InvalidMessage::TrailingData("CertificatePayload"),
        InvalidMessage::UnexpectedMessage("HelloRetryRequest"),
        InvalidMessage::IllegalEmptyList("ProtocolVersions"),
        InvalidMessage::DuplicateExtension(43),
    ]
}

fn peer_incompatible() -> Vec<PeerIncompatible> {
    vec![
        PeerIncompatible::EcPointsExtensionRequired,
        PeerIncompatible::ExtendedMasterSecretExtensionRequired,
        PeerIncompatible::IncorrectCertificateTypeExtension,
        PeerIncompatible::KeyShareExtensionRequired,
        PeerIncompatible::NamedGroupsExtensionRequired,
        PeerIncompatible::NoCertificateRequestSignatureSchemesInCommon,
        PeerIncompatible::NoCipherSuitesInCommon,
        PeerIncompatible::NoEcPointFormatsInCommon,
        PeerIncompatible::NoKxGroupsInCommon,
        PeerIncompatible::NoSignatureSchemesInCommon,
        PeerIncompatible::NullCompressionRequired,
        PeerIncompatible::ServerDoesNotSupportTls12Or13,
        PeerIncompatible::ServerSentHelloRetryRequestWithUnknownExtension,
        PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig,
        PeerIncompatible::SignatureAlgorithmsExtensionRequired,
        PeerIncompatible::SupportedVersionsExtensionRequired,
        PeerIncompatible::Tls12NotOffered,
        PeerIncompatible::Tls12NotOfferedOrEnabled,
        PeerIncompatible::Tls13RequiredForQuic,
        PeerIncompatible::UncompressedEcPointsRequired,
        PeerIncompatible::UnsolicitedCertificateTypeExtension,
        PeerIncompatible::ServerRejectedEncryptedClientHello(None),
    ]
}

fn peer_misbehaved() -> Vec<PeerMisbehaved> {
    vec![
        PeerMisbehaved::AttemptedDowngradeToTls12WhenTls13IsSupported,
        PeerMisbehaved::BadCertChainExtensions,
        PeerMisbehaved::CipherSuiteDifferedOnRetry,
        PeerMisbehaved::DisallowedEncryptedExtension,
        PeerMisbehaved::DuplicateClientHelloExtensions,
        PeerMisbehaved::DuplicateEncryptedExtensions,
        PeerMisbehaved::DuplicateHelloRetryRequestExtensions,
        PeerMisbehaved::DuplicateNewSessionTicketExtensions,
        PeerMisbehaved::DuplicateServerHelloExtensions,
        PeerMisbehaved::DuplicateServerNameTypes,
        PeerMisbehaved::EarlyDataAttemptedInSecondClientHello,
        PeerMisbehaved::EarlyDataExtensionWithoutResumption,
        PeerMisbehaved::EarlyDataOfferedWithVariedCipherSuite,
        PeerMisbehaved::EchAcceptanceVariedAfterRetry,
        PeerMisbehaved::HandshakeHashVariedAfterRetry,
        PeerMisbehaved::IllegalHelloRetryRequestWithEmptyCookie,
        PeerMisbehaved::IllegalHelloRetryRequestWithNoChanges,
        PeerMisbehaved::IllegalHelloRetryRequestWithOfferedGroup,
        PeerMisbehaved::IllegalHelloRetryRequestWithUnofferedCipherSuite,
        PeerMisbehaved::IllegalHelloRetryRequestWithUnofferedNamedGroup,
        PeerMisbehaved::IllegalHelloRetryRequestWithUnsupportedVersion,
        PeerMisbehaved::IllegalHelloRetryRequestWithWrongSessionId,
        PeerMisbehaved::IllegalHelloRetryRequestWithInvalidEch,
        PeerMisbehaved::IllegalMiddleboxChangeCipherSpec,
        PeerMisbehaved::IllegalTlsInnerPlaintext,
        PeerMisbehaved::IncorrectBinder,
        PeerMisbehaved::InvalidCertCompression,
        PeerMisbehaved::InvalidMaxEarlyDataSize,
        PeerMisbehaved::InvalidKeyShare,
        PeerMisbehaved::KeyEpochWithPendingFragment,
        PeerMisbehaved::KeyUpdateReceivedInQuicConnection,
        PeerMisbehaved::MessageInterleavedWithHandshakeMessage,
        PeerMisbehaved::MissingBinderInPskExtension,
        PeerMisbehaved::MissingKeyShare,
        PeerMisbehaved::MissingPskExtensionInSecondClientHello,
        PeerMisbehaved::MissingPskModesExtension,
        PeerMisbehaved::MissingQuicTransportParameters,
        PeerMisbehaved::OfferedDuplicateCertificateCompressions,
        PeerMisbehaved::OfferedDuplicateKeyShares,
        PeerMisbehaved::OfferedEarlyDataWithOldProtocolVersion,
        PeerMisbehaved::OfferedEmptyApplicationProtocol,
        PeerMisbehaved::OfferedIncorrectCompressions,
        PeerMisbehaved::PskExtensionMustBeLast,
        PeerMisbehaved::PskExtensionWithMismatchedIdsAndBinders,
        PeerMisbehaved::RefusedToFollowHelloRetryRequest,
        PeerMisbehaved::RejectedEarlyDataInterleavedWithHandshakeMessage,
        PeerMisbehaved::ResumptionAttemptedWithVariedEms,
        PeerMisbehaved::ResumptionOfferedWithVariedCipherSuite,
        PeerMisbehaved::ResumptionOfferedWithVariedEms,
        PeerMisbehaved::ResumptionOfferedWithIncompatibleCipherSuite,
        PeerMisbehaved::SelectedDifferentCipherSuiteAfterRetry,
        PeerMisbehaved::SelectedInvalidPsk,
        PeerMisbehaved::SelectedTls12UsingTls13VersionExtension,
        PeerMisbehaved::SelectedUnofferedApplicationProtocol,
        PeerMisbehaved::SelectedUnofferedCertCompression,
        PeerMisbehaved::SelectedUnofferedCipherSuite,
        PeerMisbehaved::SelectedUnofferedCompression,
        PeerMisbehaved::SelectedUnofferedKxGroup,
        PeerMisbehaved::SelectedUnofferedPsk,
        PeerMisbehaved::SelectedUnusableCipherSuiteForVersion,
        PeerMisbehaved::ServerEchoedCompatibilitySessionId,
        PeerMisbehaved::ServerHelloMustOfferUncompressedEcPoints,
        PeerMisbehaved::ServerNameDifferedOnRetry,
        PeerMisbehaved::ServerNameMustContainOneHostName,
        PeerMisbehaved::SignedKxWithWrongAlgorithm,
        PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        PeerMisbehaved::TooManyEmptyFragments,
        PeerMisbehaved::TooManyKeyUpdateRequests,
        PeerMisbehaved::TooManyRenegotiationRequests,
        PeerMisbehaved::TooManyWarningAlertsReceived,
        PeerMisbehaved::TooMuchEarlyDataReceived,
        PeerMisbehaved::UnexpectedCleartextExtension,
        PeerMisbehaved::UnsolicitedCertExtension,
        PeerMisbehaved::UnsolicitedEncryptedExtension,
        PeerMisbehaved::UnsolicitedSctList,
        PeerMisbehaved::UnsolicitedServerHelloExtension,
        PeerMisbehaved::WrongGroupForKeyShare,
        PeerMisbehaved::UnsolicitedEchExtension,
    ]
}

/// Every rustls error, with each inner enum's every variant.
fn rustls_errors() -> Vec<Error> {
    let mut all = vec![
        Error::InappropriateMessage {
            expect_types: vec![ContentType::Handshake],
            got_type: ContentType::ApplicationData,
        },
        Error::InappropriateMessage {
            expect_types: vec![ContentType::Handshake, ContentType::Alert],
            got_type: ContentType::from(0x42),
        },
        Error::InappropriateHandshakeMessage {
            expect_types: vec![HandshakeType::ServerHello, HandshakeType::HelloRetryRequest],
            got_type: HandshakeType::Finished,
        },
        Error::InappropriateHandshakeMessage {
            expect_types: vec![HandshakeType::Certificate],
            got_type: HandshakeType::from(0x77),
        },
        Error::InvalidEncryptedClientHello(EncryptedClientHelloError::NoCompatibleConfig),
        Error::NoCertificatesPresented,
        Error::UnsupportedNameType,
        Error::DecryptError,
        Error::EncryptError,
        Error::General("the clock went backwards".into()),
        Error::General("Mystery(7)".into()),
        Error::FailedToGetCurrentTime,
        Error::FailedToGetRandomBytes,
        Error::HandshakeNotComplete,
        Error::PeerSentOversizedRecord,
        Error::NoApplicationProtocol,
        Error::BadMaxFragmentSize,
        Error::InconsistentKeys(InconsistentKeys::KeyMismatch),
        Error::Other(other(webpki::Error::CaUsedAsEndEntity)),
    ];
    all.extend(invalid_messages().into_iter().map(Error::InvalidMessage));
    all.extend(peer_incompatible().into_iter().map(Error::PeerIncompatible));
    all.extend(peer_misbehaved().into_iter().map(Error::PeerMisbehaved));
    all.extend(
        certificate_errors()
            .into_iter()
            .map(Error::InvalidCertificate),
    );
    all.extend(
        revocation_list_errors()
            .into_iter()
            .map(Error::InvalidCertRevocationList),
    );
    all.extend((0..=u8::MAX).map(|code| Error::AlertReceived(AlertDescription::from(code))));
    all
}

#[test]
fn every_rustls_and_webpki_error_reads_as_words() {
    let all = rustls_errors();
    assert!(all.len() > 400, "{}", all.len());
    let mut flagged = 0;
    for e in all {
        reason(e.clone());
        if debug_form(&e.to_string()).is_some() {
            flagged += 1;
        }
    }
    // Most of the libraries' own texts would not pass: the check has teeth.
    assert!(flagged > 300, "{flagged}");
}

#[test]
fn the_library_texts_are_what_the_reasons_replace() {
    // The check itself: what rustls, webpki and pki-types print for the
    // failures of issue 20 is flagged.
    let ca_as_leaf = Error::InvalidCertificate(CertificateError::Other(other(
        webpki::Error::CaUsedAsEndEntity,
    )));
    let truncated = pem::Error::MissingSectionEnd {
        end_marker: b"CERTIFICATE".to_vec(),
    };
    for library in [
        CertificateError::Other(other(webpki::Error::CaUsedAsEndEntity)).to_string(),
        ca_as_leaf.to_string(),
        CertificateError::Other(other(webpki::Error::MaximumPathDepthExceeded)).to_string(),
        truncated.to_string(),
        Error::AlertReceived(AlertDescription::HandshakeFailure).to_string(),
        Error::PeerMisbehaved(PeerMisbehaved::SelectedUnofferedCipherSuite).to_string(),
        "it is valid for DnsName(\"other.test\")".into(),
        "Foo { a: 1 }".into(),
    ] {
        assert!(debug_form(&library).is_some(), "not flagged: {library:?}");
    }
    for words in [
        "tcp probe: [::1]:443: No such file or directory (os error 2)",
        "TLS protocol error: the server answered in plain text (\"HTTP/\"...), not TLS",
        "no answer to the ClientHello; CA:TRUE; SHA-256 with RSA (OID 1.2.840.113549.1.1.11)",
        "TLS certificate expired at 2026-12-05T00:00:00Z",
    ] {
        assert_eq!(debug_form(words), None, "{words:?}");
    }
}

#[test]
fn key_failures_name_their_cause_and_fix() {
    let cases: [(Error, &[&str]); 9] = [
        (
            Error::InvalidCertificate(CertificateError::Other(other(
                webpki::Error::CaUsedAsEndEntity,
            ))),
            &[
                "CA certificate (basicConstraints CA:TRUE)",
                "-addext basicConstraints=critical,CA:FALSE",
            ],
        ),
        (
            Error::InvalidCertificate(CertificateError::Other(other(
                webpki::Error::MaximumPathDepthExceeded,
            ))),
            &["chain to a trusted CA is too long", "6 intermediate CAs"],
        ),
        (
            Error::InvalidCertificate(CertificateError::UnknownIssuer),
            &[
                "unknown issuer",
                "caFile /etc/probe/ca.pem",
                "add the CA that issued it to caFile",
            ],
        ),
        (
            Error::InvalidCertificate(CertificateError::ExpiredContext {
                time: time(2_000_000_000),
                not_after: time(1_900_000_000),
            }),
            &["expired at 2030-03-17T17:46:40Z", "renewed"],
        ),
        (
            Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                expected: "api.example".try_into().unwrap(),
                presented: vec![
                    "DnsName(\"www.example\")".into(),
                    "IpAddress(0::1)".into(),
                    "UniformResourceIdentifier(\"https://x.example/\")".into(),
                    "DirectoryName".into(),
                ],
            }),
            &[
                "not valid for name \"api.example\"",
                "www.example, ::1, the URI https://x.example/, a directory name",
            ],
        ),
        (
            Error::InvalidCertificate(CertificateError::UnsupportedSignatureAlgorithmContext {
                signature_algorithm_id: b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x05".to_vec(),
                supported_algorithms: Vec::new(),
            }),
            &["signed with SHA-1 with RSA (OID 1.2.840.113549.1.1.5), which is not supported"],
        ),
        (
            Error::PeerIncompatible(PeerIncompatible::ServerDoesNotSupportTls12Or13),
            &["neither TLS 1.2 nor TLS 1.3"],
        ),
        (
            Error::AlertReceived(AlertDescription::UnrecognisedName),
            &["unrecognized_name (112)", "set tlsServerName"],
        ),
        (
            Error::PeerMisbehaved(PeerMisbehaved::IncorrectBinder),
            &[
                "the server broke the TLS protocol: it sent something TLS forbids (incorrect binder)",
            ],
        ),
    ];
    for (e, words) in cases {
        let text = reason(e);
        for w in words {
            assert!(text.contains(w), "{text:?} lacks {w:?}");
        }
    }
    assert_eq!(
        reason(Error::AlertReceived(AlertDescription::from(200))),
        "the server sent TLS alert of an unknown kind (200)"
    );
}

#[test]
fn every_pem_error_reads_as_words() {
    let all = [
        pem::Error::MissingSectionEnd {
            end_marker: b"CERTIFICATE".to_vec(),
        },
        pem::Error::IllegalSectionStart {
            line: b"-----BEGIN CERTIFICATE----\r\n".to_vec(),
        },
        pem::Error::IllegalSectionStart {
            line: [b"-----BEGIN \x01".as_slice(), &[b'A'; 200]].concat(),
        },
        pem::Error::Base64Decode("InvalidTrailingPadding".into()),
        pem::Error::Io(io::Error::from(io::ErrorKind::PermissionDenied)),
        pem::Error::NoItemsFound,
        pem::Error::SectionTooLarge,
    ];
    for e in &all {
        assert!(
            debug_form(&e.to_string()).is_some()
                || matches!(
                    e,
                    pem::Error::Io(_) | pem::Error::NoItemsFound | pem::Error::SectionTooLarge
                )
        );
        assert_words(&pem_error(e, 2));
    }
    assert_eq!(
        pem_error(&all[0], 2),
        "PEM block 2 has no end line `-----END CERTIFICATE-----` (is the file cut short?)"
    );
    let long = pem_error(&all[2], 1);
    assert!(long.starts_with("the line `-----BEGIN ?AAAA"), "{long}");
    assert!(long.contains("AAA...` starts like a PEM block"), "{long}");
}

#[test]
fn presented_names_are_shown_as_written_in_a_certificate() {
    for (listed, shown) in [
        ("DnsName(\"api.example\")", "api.example"),
        ("DnsName(\"*.example\")", "*.example"),
        ("IpAddress(127.0.0.1)", "127.0.0.1"),
        ("IpAddress(0::1)", "::1"),
        ("IpAddress(2001:db8::1)", "2001:db8::1"),
        (
            "UniformResourceIdentifier(\"spiffe://a/b\")",
            "the URI spiffe://a/b",
        ),
        ("DirectoryName", "a directory name"),
        (
            "Unsupported(0x01)",
            "a name of a kind webpki does not check",
        ),
        ("plain.example", "plain.example"),
        ("Future(Thing)", "a name webpki could not show"),
    ] {
        assert_eq!(presented_name(listed), shown, "{listed}");
    }
}
