//! `http` probes: an HTTP/1.1 `GET` over a plain or a TLS connection, as a
//! state machine on a worker's poll loop.
//!
//! Fields: [`FIELDS`], `timeoutSecs`, and for `https://` the TLS fields
//! (`runner::tls_fields`). [`Kind::prepare`] parses the URL, builds the request bytes and (for
//! `https://`) the TLS configuration once; a run only resolves (names
//! only), connects, does the TLS handshake, writes the request and reads.
//!
//! Behaviour, with the decisions where the design is silent:
//!
//! - A probe passes iff the final status equals `expectStatus` and, when
//!   `bodyContains` is set, the body contains it. The body is read only in
//!   that case, and only its first 64 KiB (after chunked decoding) are
//!   searched: a needle not found there fails with `... in its first
//!   64 KiB`. An empty `bodyContains` is trivially contained.
//! - `timeoutSecs` bounds the whole probe (resolving, connecting, sending,
//!   every redirect hop, TLS handshakes, reading): one deadline is computed
//!   at the start. `connectTimeoutSecs` bounds the connect phase of each
//!   hop (the lookup, the connect and, for `https://`, the TLS handshake,
//!   as curl's `--connect-timeout` does), within that deadline; when it is
//!   what expires, the reason says `(connectTimeoutSecs)`. A response
//!   that arrived before the deadline counts even when the worker gets to
//!   it after (a stopped or starved process): past the deadline a run
//!   still reads what its socket holds, and times out only when it would
//!   have to wait for more or follow a redirect.
//! - Redirects 301, 302, 303, 307 and 308 are followed up to 10 times,
//!   one new connection per hop, to `http://` and (with the `tls`
//!   feature) `https://` targets. Credentials from the URL are sent again
//!   only while the scheme, host and port stay the same. A redirect from
//!   `http://` to `https://` builds the probe's TLS configuration on its
//!   first use, once per reset. In the `url` and in a `Location`, a `\`
//!   before the query reads as `/`, as browsers and curl read it:
//!   `http://a:1\@b/` goes to `a` (path `/@b/`), never to a host hidden
//!   behind user-info.
//! - `headers` are sent with every request, the redirects' included; one
//!   named like a default (`Host`, `User-Agent`, `Connection`) replaces it.
//!   Credentials never leave the origin (scheme, host and port) of `url`,
//!   as with curl and Go's net/http: once a redirect goes to another
//!   origin, `Authorization`, `Cookie` and `Proxy-Authorization` (and the
//!   URL's user-info) are not sent again in that run, not even to a later
//!   hop back on the origin. An `https://` to `http://` redirect is
//!   another origin, so they are never sent in clear text after it.
//!   When `expectStatus` is itself one of these codes, no redirect is
//!   followed: the first response is compared directly (a probe that expects
//!   301 checks the redirect, not where it leads).
//! - `1xx` interim responses (other than 101) are skipped, unless
//!   `expectStatus` is a `1xx` code.
//! - A response head may have any number of header fields within its
//!   64 KiB cap.
//! - Without the `tls` feature an `https://` URL makes the declaration
//!   invalid (so `probewheel check` reports it as an error: it can never
//!   pass), naming the feature; a redirect to `https://` fails the run the
//!   same way.
//! - TLS failures name what went wrong: handshake timeout, unknown issuer,
//!   name mismatch, expired or not yet valid, expiring within
//!   `minCertValidityDays`, protocol error, alert from the server
//!   (`transport::tls`).
//!
//! How a run waits (`run.rs`): it never blocks. A host name goes to the
//! shared resolver pool and the run is woken by the answer, or abandons
//! the lookup at its deadline; the connect, the write and the reads are
//! non-blocking on one socket registered with the worker's poll
//! (`transport::connect`, `transport::stream`); the TLS handshake is one
//! more step over that socket, and the response is pushed into a parser
//! as it arrives (`response.rs`). A server that never answers
//! costs a socket and a timer entry until the deadline, not a thread. A run
//! reads at most `READS_PER_CALL` (16) times per call and then yields to
//! the worker's other runs, so a fast peer cannot monopolise a worker
//! either. A reset or shutdown drops the run: its socket closes and its
//! lookup is abandoned.
//!
//! Cost of one tick (IP-literal URL, no redirect): one socket, one 8 KiB
//! buffer allocation, one write, reads of at most 8 KiB until the head is
//! complete (plus the body, when `bodyContains` is set).

use std::net::SocketAddr;
use std::sync::Arc;
#[cfg(feature = "tls")]
use std::sync::OnceLock;

use crate::decl::{Declaration, Field, FieldError};
use crate::runner::tcp::{DEFAULT_CONNECT_TIMEOUT_SECS, MAX_CONNECT_TIMEOUT_SECS};
use crate::runner::{HostFacts, Kind, Prepared};
#[cfg(feature = "tls")]
use crate::transport::TlsOptions;
use crate::transport::connect::Target;
#[cfg(feature = "tls")]
use crate::transport::tls::{SetupError, TlsSetup};

#[cfg(not(feature = "tls"))]
use super::tls_fields::NOT_BUILT_IN;
#[cfg(feature = "tls")]
use super::tls_fields::tls_setup;
use super::tls_fields::{TLS_FIELDS, tls_options};

mod headers;
mod response;
mod run;
mod url;

#[cfg(test)]
mod hardening_tests;
#[cfg(test)]
mod tests;
#[cfg(all(test, feature = "tls"))]
mod tls_tests;

use headers::Headers;
use response::{BODY_CAP, Needle};
use run::Fail;
use url::{Host, Url, UrlError};

/// Redirect codes that are followed.
const REDIRECTS: [u16; 5] = [301, 302, 303, 307, 308];
/// Default `expectStatus`.
const DEFAULT_STATUS: u64 = 200;

/// The `http` kind.
pub(crate) struct HttpKind;

impl Kind for HttpKind {
    fn fields(&self) -> &'static [&'static [Field]] {
        &[FIELDS, TLS_FIELDS]
    }

    /// 1xx is never a final status: such a probe waits for an interim
    /// response instead of checking the service.
    fn lint(&self, decl: &Declaration, warn: &mut dyn FnMut(&'static str, String)) {
        if let Some(status @ 100..=199) = decl.get("expectStatus").and_then(|v| v.as_u64()) {
            warn(
                "expectStatus",
                format!("{status} is outside 200..=599: a 1xx response is never a final status"),
            );
        }
    }

    fn prepare(&self, decl: &Declaration, _host: &HostFacts) -> Result<Prepared, FieldError> {
        Ok(Prepared::Machine(Arc::new(HttpCheck::from_decl(decl)?)))
    }
}

/// Its own fields, as `docs/declarations.md` lists them.
#[rustfmt::skip]
const FIELDS: &[Field] = &[
    Field::new("url", "string: an `http://` or `https://` URL", "required", "What to fetch."),
    Field::new("expectStatus", "integer, 100 to 599", "200", "The status that passes."),
    Field::new("bodyContains", "string, at most 64 KiB", "none", "The text the body must contain."),
    Field::new("headers", "object: header name -> string", "`{}`", "Sent with every request, redirects included, except credentials:"),
    Field::new("connectTimeoutSecs", "integer, 1 to 3600", "5", "Bounds the connect phase of each hop: the name lookup, the connect and, for `https://`, the TLS handshake."),
];

/// A prepared `http` probe.
#[derive(Debug, Clone)]
enum HttpCheck {
    Fetch(Arc<Probe>),
}

impl HttpCheck {
    fn from_decl(decl: &Declaration) -> Result<HttpCheck, FieldError> {
        let raw_url = decl.required_str("url")?;
        let expect = decl
            .u64_in("expectStatus", 100, 599)?
            .unwrap_or(DEFAULT_STATUS) as u16;
        let timeout_secs = crate::runner::timeout_secs(decl)?;
        let connect_secs = decl
            .u64_in("connectTimeoutSecs", 1, MAX_CONNECT_TIMEOUT_SECS)?
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT_SECS);
        let needle = match decl.str_field("bodyContains")? {
            Some(s) if s.len() > BODY_CAP => {
                return Err(FieldError::new(
                    "bodyContains",
                    format!(
                        "{} bytes is longer than the 64 KiB of body that is searched",
                        s.len()
                    ),
                ));
            }
            Some("") | None => None,
            Some(s) => Some(Needle::new(s.as_bytes())),
        };
        let headers = Headers::from_value(decl.get("headers"))?;
        let tls_options = tls_options(decl)?;
        let url = match Url::parse(raw_url) {
            Ok(url) => url,
            Err(UrlError::NotHttp) => {
                return Err(FieldError::new(
                    "url",
                    format!("not an http:// or https:// URL: {raw_url:?}"),
                ));
            }
            Err(UrlError::Malformed(why)) => {
                return Err(FieldError::new(
                    "url",
                    format!("malformed URL {raw_url:?}: {why}"),
                ));
            }
        };
        #[cfg(not(feature = "tls"))]
        {
            drop(tls_options);
            if url.is_tls() {
                return Err(FieldError::new(
                    "url",
                    format!("{url} is https: {NOT_BUILT_IN}"),
                ));
            }
        }
        #[cfg(feature = "tls")]
        let tls = OnceLock::new();
        #[cfg(feature = "tls")]
        if url.is_tls() {
            let _ = tls.set(tls_setup(&tls_options)?);
        }
        Ok(HttpCheck::Fetch(Arc::new(Probe {
            first: Hop::new(url, &headers),
            foreign_headers: headers.without_credentials(),
            headers,
            expect,
            follow: !REDIRECTS.contains(&expect),
            needle,
            timeout_secs,
            connect_secs,
            #[cfg(feature = "tls")]
            tls_options,
            #[cfg(feature = "tls")]
            tls,
        })))
    }
}

/// What every run of one probe shares.
#[derive(Debug)]
struct Probe {
    first: Hop,
    /// `headers`, for the requests of redirect hops within the origin.
    headers: Headers,
    /// `headers` without credentials, for hops after a redirect left the
    /// origin of `url`.
    foreign_headers: Headers,
    expect: u16,
    /// False when `expectStatus` is a redirect code.
    follow: bool,
    needle: Option<Needle>,
    timeout_secs: u64,
    connect_secs: u64,
    #[cfg(feature = "tls")]
    tls_options: TlsOptions,
    /// The TLS configuration: built at prepare for an `https://` URL, on
    /// the first redirect to one otherwise; why when it cannot be.
    #[cfg(feature = "tls")]
    tls: OnceLock<Result<TlsSetup, SetupError>>,
}

/// One URL to fetch, with its request bytes and where to connect (for IP
/// literals the address), so the first hop is ready to send at every tick.
#[derive(Debug)]
struct Hop {
    url: Url,
    request: Box<[u8]>,
    target: Target,
}

impl Hop {
    fn new(url: Url, headers: &Headers) -> Hop {
        let target = match url.host() {
            Host::Ip(ip) => Target::Addr(SocketAddr::new(*ip, url.port())),
            Host::Name(name) => Target::Name(name.clone(), url.port()),
        };
        Hop {
            request: url.request(headers),
            target,
            url,
        }
    }
}
