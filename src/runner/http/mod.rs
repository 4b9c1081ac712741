//! `http` probes: an HTTP/1.1 request over a plain or a TLS connection, as a
//! state machine on a worker's poll loop. The fields and what they do are in
//! `docs/declarations.md`; prepare parses the URL, builds the request bytes
//! and the TLS configuration once, and a run never blocks.
//!
//! Decisions the reference leaves implicit:
//! - a response that arrived before the deadline counts even when the worker
//!   reads it late: past the deadline a run still reads what its socket
//!   holds, and times out only when it would wait for more or redirect;
//! - `1xx` interim responses (other than 101) are skipped, unless
//!   `expectStatus` admits a `1xx` status;
//! - a redirect from `http://` to `https://` builds the TLS configuration on
//!   first use (without the `tls` feature, it fails the run);
//! - a run reads at most `READS_PER_CALL` times per call, so a fast peer
//!   cannot monopolise a worker.

use std::net::SocketAddr;
use std::sync::Arc;
#[cfg(feature = "tls")]
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::decl::{Declaration, Field, FieldError, expected};
use crate::runner::tcp::{DEFAULT_CONNECT_TIMEOUT_SECS, MAX_CONNECT_TIMEOUT_SECS, choice};
use crate::runner::{HostFacts, Kind, Prepared};
#[cfg(feature = "tls")]
use crate::transport::TlsOptions;
use crate::transport::connect::{Choice, Target};
#[cfg(feature = "tls")]
use crate::transport::tls::{SetupError, TlsSetup};

#[cfg(not(feature = "tls"))]
use super::tls_fields::NOT_BUILT_IN;
#[cfg(feature = "tls")]
use super::tls_fields::tls_setup;
use super::tls_fields::{TLS_FIELDS, tls_options};

mod headers;
mod json;
mod request;
mod response;
mod run;
mod status;
mod url;

#[cfg(test)]
mod eyeballs_tests;
#[cfg(test)]
mod hardening_tests;
#[cfg(test)]
mod json_files_tests;
#[cfg(test)]
mod tests;
#[cfg(all(test, feature = "tls"))]
mod tls_tests;

use headers::Headers;
use json::BodyJson;
use request::Request;
use response::{BODY_CAP, BodyChecks, Needle};
use run::Fail;
use status::Expect;
use url::{Host, Url, UrlError};

/// Redirect codes that are followed.
const REDIRECTS: [u16; 5] = [301, 302, 303, 307, 308];

/// Largest `maxResponseMs`: the largest `timeoutSecs`.
const MAX_RESPONSE_MS: u64 = 86_400_000;

/// The `http` kind.
pub(crate) struct HttpKind;

impl Kind for HttpKind {
    fn fields(&self) -> &'static [&'static [Field]] {
        &[FIELDS, TLS_FIELDS]
    }

    /// 1xx is never a final status: such a probe never checks the service.
    fn lint(&self, decl: &Declaration, warn: &mut dyn FnMut(&'static str, String)) {
        let Ok(expect) = Expect::from_decl(decl) else {
            return;
        };
        for status in expect.informational() {
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
    Field::new("expectStatus", "integer, 100 to 599, a class such as `\"2xx\"`, or a list of them", "200", "The statuses that pass:"),
    Field::new("bodyContains", "string, at most 64 KiB", "none", "The text the body must contain."),
    Field::new("bodyNotContains", "string, at most 64 KiB", "none", "Text the body must not contain."),
    Field::new("bodyJson", "object: JSON Pointer -> JSON value", "`{}`", "Values the body, parsed as JSON, must hold:"),
    Field::new("method", "string: an HTTP method token", "`GET`", "The request method:"),
    Field::new("body", "string, at most 64 KiB", "none", "The request body, sent with `Content-Length`."),
    Field::new("bodyFile", "string: path of a file of at most 64 KiB", "none", "The request body, read from this file at prepare (every reset)."),
    Field::new("headers", "object: header name -> string", "`{}`", "Sent with every request, redirects included, except credentials:"),
    Field::new("headersFromFiles", "object: header name -> file path", "`{}`", "Headers whose values are secrets kept in files"),
    Field::new("followRedirects", "boolean or `\"sameHost\"`", "true", "Which redirects are followed:"),
    Field::new("maxResponseMs", "integer, 1 to 86400000", "none", "Fail a run that took longer than this many milliseconds,"),
    Field::new("connectTimeoutSecs", "integer, 1 to 3600", "5", "Bounds the connect phase of each hop: the name lookup, the connect and, for `https://`, the TLS handshake."),
    Field::new("ipFamily", "string: `any`, `4` or `6`", "`any`", "Connect only to IPv4 (`4`) or only to IPv6 (`6`) addresses of each hop's host; when it has none (an IP literal of the other family included) the run fails: `resolve <host>:<port>: no IPv6 address`."),
    Field::new("addresses", "string: `any`, `first` or `all`", "`any`", "Which addresses of each hop's host must connect: as for `tcp`; with `all` the request goes over the last one's connection."),
];

/// A prepared `http` probe.
#[derive(Debug, Clone)]
struct HttpCheck(Arc<Probe>);

impl HttpCheck {
    fn from_decl(decl: &Declaration) -> Result<HttpCheck, FieldError> {
        let raw_url = decl.required_str("url")?;
        let expect = Expect::from_decl(decl)?;
        let timeout_secs = crate::runner::timeout_secs(decl)?;
        let max_response = decl
            .u64_in("maxResponseMs", 1, MAX_RESPONSE_MS)?
            .map(Duration::from_millis);
        let connect_secs = decl
            .u64_in("connectTimeoutSecs", 1, MAX_CONNECT_TIMEOUT_SECS)?
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT_SECS);
        let body = BodyChecks {
            contains: needle(decl, "bodyContains")?,
            absent: needle(decl, "bodyNotContains")?,
            json: BodyJson::from_decl(decl)?,
        };
        let headers = Headers::from_decl(decl)?;
        let request = Request::from_decl(decl)?;
        if request.is_head() && !body.is_empty() {
            let field = if body.contains.is_some() {
                "bodyContains"
            } else if body.absent.is_some() {
                "bodyNotContains"
            } else {
                "bodyJson"
            };
            return Err(FieldError::new(
                field,
                "a HEAD request reads no body to check",
            ));
        }
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
        Ok(HttpCheck(Arc::new(Probe {
            first: Hop::new(url, &headers, request),
            foreign_headers: headers.without_credentials(),
            headers,
            follow: follow(decl, &expect)?,
            expect,
            body,
            max_response,
            timeout_secs,
            connect_secs,
            choice: choice(decl)?,
            #[cfg(feature = "tls")]
            tls_options,
            #[cfg(feature = "tls")]
            tls,
        })))
    }
}

/// Which redirects a run follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Follow {
    All,
    /// None: a redirect is the answer (also when `expectStatus` admits one).
    Never,
    /// Those to the host of `url` (any port or scheme); a redirect
    /// elsewhere passes, as kubelet's probes count it.
    SameHost,
}

/// `followRedirects`, with `expectStatus` admitting a redirect meaning none.
fn follow(decl: &Declaration, expect: &Expect) -> Result<Follow, FieldError> {
    let follow = match decl.get("followRedirects") {
        None | Some(Value::Bool(true)) => Follow::All,
        Some(Value::Bool(false)) => Follow::Never,
        Some(Value::String(s)) if s == "sameHost" => Follow::SameHost,
        Some(other) => {
            return Err(expected(
                "followRedirects",
                r#"true, false or "sameHost""#,
                other,
            ));
        }
    };
    Ok(if expect.follows_redirects() {
        follow
    } else {
        Follow::Never
    })
}

/// A body needle field: none when absent or empty.
fn needle(decl: &Declaration, field: &str) -> Result<Option<Needle>, FieldError> {
    match decl.str_field(field)? {
        Some(s) if s.len() > BODY_CAP => Err(FieldError::new(
            field,
            format!(
                "{} bytes is longer than the 64 KiB of body that is searched",
                s.len()
            ),
        )),
        Some("") | None => Ok(None),
        Some(s) => Ok(Some(Needle::new(s.as_bytes()))),
    }
}

/// What every run of one probe shares.
#[derive(Debug)]
struct Probe {
    first: Hop,
    /// `headers`, for the requests of redirect hops within the origin.
    headers: Headers,
    /// `headers` without credentials, once a redirect left the origin.
    foreign_headers: Headers,
    expect: Expect,
    follow: Follow,
    body: BodyChecks,
    /// `maxResponseMs`: a slower run fails even when its answer passes.
    max_response: Option<Duration>,
    timeout_secs: u64,
    connect_secs: u64,
    /// `ipFamily` and `addresses`.
    choice: Choice,
    #[cfg(feature = "tls")]
    tls_options: TlsOptions,
    /// Built at prepare for an `https://` URL, else at the first redirect to one.
    #[cfg(feature = "tls")]
    tls: OnceLock<Result<TlsSetup, SetupError>>,
}

/// One URL to fetch, with its request bytes and where to connect, so the
/// first hop is ready at every tick.
struct Hop {
    url: Url,
    /// What this hop asks; `bytes` is it on the wire.
    request: Request,
    bytes: Box<[u8]>,
    target: Target,
}

/// The request bytes are left out: they hold the values of `headersFromFiles`.
impl std::fmt::Debug for Hop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hop")
            .field("url", &self.url)
            .field("request", &self.request)
            .field("bytes", &self.bytes.len())
            .field("target", &self.target)
            .finish()
    }
}

impl Hop {
    fn new(url: Url, headers: &Headers, request: Request) -> Hop {
        let target = match url.host() {
            Host::Ip(ip) => Target::Addr(SocketAddr::new(*ip, url.port())),
            Host::Name(name) => Target::Name(name.clone(), url.port()),
        };
        Hop {
            bytes: url.request(headers, &request),
            request,
            target,
            url,
        }
    }
}
