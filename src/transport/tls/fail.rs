//! Why a TLS connection failed: the few cases a probe's reader cares
//! about, typed; `Display` makes the sentence, `words` the rest of what
//! rustls and webpki can report.

use std::error::Error;
use std::fmt;
use std::io;
use std::time::Duration;

use rustls::AlertDescription;

use super::der::format_utc;
use super::words;

/// A failed TLS connection. `Display` gives the reason text; the caller
/// prefixes it with the probe kind and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TlsFail {
    /// The caller's deadline passed with the handshake unfinished (see
    /// [`TlsSession::heard`](super::TlsSession::heard)).
    HandshakeTimeout {
        /// How long the caller waited.
        after: Duration,
        /// Whether the server sent anything at all.
        heard: bool,
    },
    /// The chain does not lead to a trusted certificate.
    UnknownIssuer {
        /// Where trust came from: `caFile /x.pem` or the system bundle.
        trust: String,
    },
    /// The certificate does not name the server name that was asked for.
    NameMismatch {
        expected: String,
        /// The names the certificate does carry (DNS and IP SANs).
        presented: Vec<String>,
    },
    /// Past notAfter (seconds since the epoch, when rustls says).
    Expired { not_after: Option<i64> },
    /// Before notBefore (seconds since the epoch, when rustls says).
    NotYetValid { not_before: Option<i64> },
    /// A presented certificate expires within `minCertValidityDays`.
    ExpiresSoon {
        subject: String,
        not_after: i64,
        min_days: u32,
        /// Whether notAfter has already passed (seen with `tlsSkipVerify`).
        expired: bool,
    },
    /// Any other rejection of the certificate (bad signature, wrong usage),
    /// in words.
    BadCertificate(String),
    /// The server sent a fatal TLS alert.
    Alert(AlertDescription),
    /// The peer does not speak TLS as expected, in words.
    Protocol(String),
    /// The peer closed the connection before the handshake finished.
    Closed,
    /// The socket failed.
    Io(String),
}

impl TlsFail {
    /// Maps a rustls error; `trust` names the trust source for
    /// [`TlsFail::UnknownIssuer`].
    pub(crate) fn from_rustls(e: rustls::Error, trust: &str) -> TlsFail {
        use rustls::CertificateError as C;
        match e {
            rustls::Error::InvalidCertificate(c) => match c {
                C::UnknownIssuer => TlsFail::UnknownIssuer {
                    trust: trust.to_owned(),
                },
                C::NotValidForName => TlsFail::NameMismatch {
                    expected: String::new(),
                    presented: Vec::new(),
                },
                C::NotValidForNameContext {
                    expected,
                    presented,
                } => TlsFail::NameMismatch {
                    expected: expected.to_str().into_owned(),
                    presented: presented.iter().map(|p| words::presented_name(p)).collect(),
                },
                C::Expired => TlsFail::Expired { not_after: None },
                C::ExpiredContext { not_after, .. } => TlsFail::Expired {
                    not_after: Some(secs(not_after)),
                },
                C::NotValidYet => TlsFail::NotYetValid { not_before: None },
                C::NotValidYetContext { not_before, .. } => TlsFail::NotYetValid {
                    not_before: Some(secs(not_before)),
                },
                other => TlsFail::BadCertificate(words::certificate(&other)),
            },
            rustls::Error::NoCertificatesPresented => {
                TlsFail::BadCertificate("the server presented no certificate".into())
            }
            rustls::Error::AlertReceived(alert) => TlsFail::Alert(alert),
            // A webpki error rustls has no variant for is about a certificate.
            rustls::Error::Other(ref o) if o.0.is::<webpki::Error>() => {
                TlsFail::BadCertificate(words::error(&e))
            }
            other => TlsFail::Protocol(words::error(&other)),
        }
    }

    /// Recovers the failure from an `io::Error` of
    /// [`TlsSession::read_plain`](super::TlsSession::read_plain) and friends.
    // Runs report the `io::Error` text, which is the TLS reason already.
    #[cfg(test)]
    pub(crate) fn from_io(e: &io::Error) -> TlsFail {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<TlsFail>())
        {
            Some(fail) => fail.clone(),
            None => TlsFail::Io(e.to_string()),
        }
    }

    /// Wraps the failure so it can travel as an `io::Error`.
    pub(crate) fn into_io(self) -> io::Error {
        io::Error::other(self)
    }
}

/// Why a handshake given up on is unfinished: whether the server sent
/// anything at all.
pub(crate) fn unfinished(heard: bool) -> &'static str {
    if heard {
        "the server did not finish it"
    } else {
        "no answer to the ClientHello"
    }
}

fn secs(t: rustls::pki_types::UnixTime) -> i64 {
    i64::try_from(t.as_secs()).unwrap_or(i64::MAX)
}

impl fmt::Display for TlsFail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFail::HandshakeTimeout { after, heard } => {
                let why = unfinished(*heard);
                write!(f, "TLS handshake timed out after {} ({why})", Secs(*after))
            }
            TlsFail::UnknownIssuer { trust } => {
                write!(
                    f,
                    "TLS certificate not trusted: unknown issuer (no chain to a CA in {trust}); \
                     the certificate is self-signed or issued by a CA that is not there: "
                )?;
                if trust.starts_with("caFile") {
                    f.write_str("add the CA that issued it to caFile")
                } else {
                    f.write_str("set caFile to the CA that issued it")
                }
            }
            TlsFail::NameMismatch {
                expected,
                presented,
            } => {
                if expected.is_empty() {
                    return f.write_str(
                        "TLS certificate is not valid for the server name; reissue it with \
                         that name in its subjectAltName, or set tlsServerName to a name it has",
                    );
                }
                write!(f, "TLS certificate is not valid for name {expected:?}")?;
                if presented.is_empty() {
                    let kind = if expected.parse::<std::net::IpAddr>().is_ok() {
                        "IP"
                    } else {
                        "DNS"
                    };
                    write!(
                        f,
                        " (it names no DNS name or IP address in a subjectAltName, and the \
                         subject's CN is not read); reissue it with subjectAltName {kind}:{expected}"
                    )
                } else {
                    // A reason is cut at 512 bytes: a long list must not push
                    // the fix out of it.
                    const SHOWN: usize = 8;
                    let mut names = presented[..presented.len().min(SHOWN)].join(", ");
                    if presented.len() > SHOWN {
                        names.push_str(&format!(" and {} more", presented.len() - SHOWN));
                    }
                    write!(
                        f,
                        " (it is valid for {names}); set tlsServerName to one of those, or \
                         reissue it with {expected:?} in its subjectAltName"
                    )
                }
            }
            TlsFail::Expired { not_after } => match not_after {
                Some(t) => write!(
                    f,
                    "TLS certificate expired at {}; the server needs a renewed certificate",
                    format_utc(*t)
                ),
                None => f.write_str("TLS certificate expired; the server needs a renewed one"),
            },
            TlsFail::NotYetValid { not_before } => match not_before {
                Some(t) => write!(
                    f,
                    "TLS certificate is not valid yet (not before {}); check the clock of \
                     this host and the dates the CA issued it with",
                    format_utc(*t)
                ),
                None => f.write_str(
                    "TLS certificate is not valid yet; check the clock of this host and \
                     the dates the CA issued it with",
                ),
            },
            TlsFail::ExpiresSoon {
                subject,
                not_after,
                min_days,
                expired,
            } => {
                let subject = if subject.is_empty() {
                    "with an empty subject"
                } else {
                    subject
                };
                let when = format_utc(*not_after);
                if *expired {
                    write!(
                        f,
                        "TLS certificate {subject} expired at {when} (minCertValidityDays {min_days})"
                    )
                } else {
                    write!(
                        f,
                        "TLS certificate {subject} expires at {when}, within minCertValidityDays ({min_days})"
                    )
                }
            }
            TlsFail::BadCertificate(why) => write!(f, "TLS certificate rejected: {why}"),
            TlsFail::Alert(alert) => {
                write!(f, "the server sent TLS alert {}", words::alert(*alert))
            }
            TlsFail::Protocol(why) => write!(f, "TLS protocol error: {why}"),
            TlsFail::Closed => {
                f.write_str("the server closed the connection during the TLS handshake")
            }
            TlsFail::Io(e) => write!(f, "TLS connection failed: {e}"),
        }
    }
}

impl Error for TlsFail {}

/// A duration as whole seconds when it is one, else milliseconds.
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.subsec_nanos() == 0 {
            write!(f, "{} s", self.0.as_secs())
        } else {
            write!(f, "{} ms", self.0.as_millis())
        }
    }
}
