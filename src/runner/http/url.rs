//! `http://` and `https://` URLs: parsed once at prepare, joined with a
//! `Location` on redirects, turned into the request bytes. Not a general URL
//! library: the path and query stay as written (only spaces and non-ASCII
//! are encoded, for the request line), and the fragment is dropped.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::headers::Headers;
use super::request::Request;

/// Why a string is not a URL we can probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UrlError {
    /// Another scheme, or no scheme at all.
    NotHttp,
    /// An `http://` URL that cannot be used, and why.
    Malformed(&'static str),
}

/// Where the host part points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    /// An IPv4 or IPv6 literal: no name resolution at run time.
    Ip(IpAddr),
    /// A name, resolved at every run (addresses may change).
    Name(String),
}

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    /// `https://`.
    tls: bool,
    host: Host,
    port: u16,
    /// `host[:port]` as written, brackets kept: the `Host` header.
    authority: String,
    /// Path and query, at least `/`; the request target.
    target: String,
    /// base64 of `user:password`, when the URL carries user-info.
    basic: Option<String>,
}

impl Url {
    /// Parses an absolute `http://` or `https://` URL.
    pub(crate) fn parse(s: &str) -> Result<Url, UrlError> {
        let s = &*backslashes_as_slashes(s.trim());
        let (tls, rest) = match strip_prefix_ignore_case(s, "http://") {
            Some(rest) => (false, rest),
            None => match strip_prefix_ignore_case(s, "https://") {
                Some(rest) => (true, rest),
                None => return Err(UrlError::NotHttp),
            },
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (host, host_text, port_text) = split_host_port(hostport)?;
        let port = match port_text {
            None | Some("") if tls => 443,
            None | Some("") => 80,
            Some(p) => parse_port(p)?,
        };
        let mut authority = String::with_capacity(hostport.len());
        authority.push_str(host_text);
        if let Some(p) = port_text.filter(|p| !p.is_empty()) {
            authority.push(':');
            authority.push_str(p);
        }
        let tail = tail.split('#').next().unwrap_or("");
        let mut target = String::with_capacity(tail.len() + 1);
        if !tail.starts_with('/') {
            target.push('/');
        }
        push_encoded(&mut target, tail)?;
        let basic = userinfo.map(|u| base64(&percent_decode(u)));
        Ok(Url {
            tls,
            host,
            port,
            authority,
            target,
            basic,
        })
    }

    /// Resolves a `Location` value against this URL (RFC 3986 §5.2);
    /// credentials are kept only on the same origin.
    pub(crate) fn join(&self, location: &str) -> Result<Url, UrlError> {
        let loc = &*backslashes_as_slashes(location.trim());
        if has_scheme(loc) || loc.starts_with("//") {
            let mut url = if loc.starts_with("//") {
                let scheme = if self.tls { "https" } else { "http" };
                Url::parse(&format!("{scheme}:{loc}"))?
            } else {
                Url::parse(loc)?
            };
            if url.basic.is_none() && url.same_origin(self) {
                url.basic.clone_from(&self.basic);
            }
            return Ok(url);
        }
        let loc = loc.split('#').next().unwrap_or("");
        let (path, query) = match loc.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (loc, None),
        };
        let (base_path, base_query) = match self.target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (self.target.as_str(), None),
        };
        let mut merged = if path.is_empty() {
            base_path.to_owned()
        } else if path.starts_with('/') {
            remove_dot_segments(path)
        } else {
            let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
            remove_dot_segments(&format!("{dir}{path}"))
        };
        if merged.is_empty() {
            merged.push('/');
        }
        let query = if path.is_empty() && query.is_none() {
            base_query
        } else {
            query
        };
        let mut target = String::with_capacity(merged.len() + query.map_or(0, |q| q.len() + 1));
        push_encoded(&mut target, &merged)?;
        if let Some(q) = query {
            target.push('?');
            push_encoded(&mut target, q)?;
        }
        Ok(Url {
            tls: self.tls,
            host: self.host.clone(),
            port: self.port,
            authority: self.authority.clone(),
            target,
            basic: self.basic.clone(),
        })
    }

    /// Whether both have the same origin (RFC 6454, host case ignored).
    pub(crate) fn same_origin(&self, other: &Url) -> bool {
        self.tls == other.tls && self.same_host(other) && self.port == other.port
    }

    /// Whether both name the same host (case ignored), whatever the
    /// scheme and port.
    pub(crate) fn same_host(&self, other: &Url) -> bool {
        match (&self.host, &other.host) {
            (Host::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        }
    }

    /// Whether this is an `https://` URL.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls
    }

    pub(crate) fn host(&self) -> &Host {
        &self.host
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The `Host` header value.
    #[cfg(test)]
    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    /// The request target: path and query.
    #[cfg(test)]
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// The complete request with the probe's `headers`, built once per URL.
    pub(crate) fn request(&self, headers: &Headers, req: &Request) -> Box<[u8]> {
        let agent = concat!("probewheel/", env!("CARGO_PKG_VERSION"));
        let mut defaults = vec![
            ("Host", self.authority.as_str()),
            ("User-Agent", agent),
            ("Connection", "close"),
        ];
        let basic = self.basic.as_ref().map(|b| format!("Basic {b}"));
        if let Some(b) = &basic {
            defaults.push(("Authorization", b.as_str()));
        }
        // A body goes with its length; so does an empty POST or PUT, which
        // servers may otherwise refuse (411).
        let body = req.body.as_deref().unwrap_or_default();
        let length = body.len().to_string();
        if req.body.is_some() || matches!(&*req.method, "POST" | "PUT" | "PATCH") {
            defaults.push(("Content-Length", &length));
        }
        let mut bytes = headers
            .request_head(&req.method, &self.target, &defaults)
            .into_bytes();
        bytes.extend_from_slice(body);
        bytes.into_boxed_slice()
    }
}

/// Shows the URL without its credentials.
impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority, self.target)
    }
}

/// `s` with every `\` before the query read as `/`, as browsers do (WHATWG),
/// so that a `Location` cannot hide the host behind user-info.
fn backslashes_as_slashes(s: &str) -> Cow<'_, str> {
    let end = s.find(['?', '#']).unwrap_or(s.len());
    if !s[..end].contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = s[..end].replace('\\', "/");
    out.push_str(&s[end..]);
    Cow::Owned(out)
}

fn strip_prefix_ignore_case<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `scheme ":"` before any `/`, `?` or `#` (RFC 3986 §3.1).
fn has_scheme(s: &str) -> bool {
    let Some(colon) = s.find(':') else {
        return false;
    };
    let scheme = &s[..colon];
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Splits `host[:port]` into the host, the host as written (brackets kept)
/// and the port text (`Some("")` for a bare colon).
fn split_host_port(hostport: &str) -> Result<(Host, &str, Option<&str>), UrlError> {
    if let Some(inner) = hostport.strip_prefix('[') {
        let close = inner
            .find(']')
            .ok_or(UrlError::Malformed("unclosed '[' in the host"))?;
        let ip: Ipv6Addr = inner[..close]
            .parse()
            .map_err(|_| UrlError::Malformed("invalid IPv6 literal"))?;
        let after = &inner[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => {
                return Err(UrlError::Malformed(
                    "unexpected text after the IPv6 literal",
                ));
            }
        };
        return Ok((Host::Ip(IpAddr::V6(ip)), &hostport[..close + 2], port));
    }
    let (host, port) = match hostport.rfind(':') {
        Some(i) => (&hostport[..i], Some(&hostport[i + 1..])),
        None => (hostport, None),
    };
    if host.is_empty() {
        return Err(UrlError::Malformed("empty host"));
    }
    if !host.is_ascii() {
        return Err(UrlError::Malformed(
            "non-ASCII host name (write it in its xn-- form)",
        ));
    }
    let valid = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b);
    if !host.bytes().all(valid) {
        return Err(UrlError::Malformed("invalid character in the host"));
    }
    let parsed = match host.parse::<Ipv4Addr>() {
        Ok(ip) => Host::Ip(IpAddr::V4(ip)),
        Err(_) => Host::Name(host.to_owned()),
    };
    Ok((parsed, host, port))
}

fn parse_port(p: &str) -> Result<u16, UrlError> {
    match p.parse::<u16>() {
        Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(UrlError::Malformed("port must be 1 to 65535")),
    }
}

/// Appends `s` to a request target, spaces and non-ASCII percent-encoded;
/// control characters are refused.
fn push_encoded(out: &mut String, s: &str) -> Result<(), UrlError> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        match b {
            0x21..=0x7e => out.push(b as char),
            b' ' | 0x80..=0xff => {
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 0xf)] as char);
            }
            _ => return Err(UrlError::Malformed("control character in the URL")),
        }
    }
    Ok(())
}

/// RFC 3986 §5.2.4, on a path without query.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let absolute = path.starts_with('/');
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let last = segments.len() - 1;
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing_slash = i == last,
            ".." => {
                out.pop();
                trailing_slash = i == last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut s = String::with_capacity(path.len());
    if absolute {
        s.push('/');
    }
    s.push_str(&out.join("/"));
    if trailing_slash && !s.ends_with('/') {
        s.push('/');
    }
    s
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Standard base64 with padding (RFC 4648 §4), for `Authorization: Basic`.
pub(crate) fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get() -> Request {
        Request {
            method: "GET".into(),
            body: None,
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn parses_host_port_path_query_and_drops_the_fragment() {
        let u = url("HTTP://Example.com:8080/a/b%20c?x=1&y=2#frag");
        assert_eq!(u.host(), &Host::Name("Example.com".into()));
        assert_eq!(u.port(), 8080);
        assert_eq!(u.authority(), "Example.com:8080");
        assert_eq!(u.target(), "/a/b%20c?x=1&y=2");
        assert_eq!(u.to_string(), "http://Example.com:8080/a/b%20c?x=1&y=2");
        let u = url("http://10.0.0.1");
        assert_eq!(u.host(), &Host::Ip("10.0.0.1".parse().unwrap()));
        assert_eq!((u.port(), u.authority(), u.target()), (80, "10.0.0.1", "/"));
        assert_eq!(url("http://h?q").target(), "/?q");
        assert_eq!(url("http://h#f").target(), "/");
        assert_eq!(url("http://h:/x").authority(), "h");
    }

    #[test]
    fn ipv6_literals_keep_their_brackets_in_the_host_header() {
        let u = url("http://[::1]:8080/x");
        assert_eq!(u.host(), &Host::Ip("::1".parse().unwrap()));
        assert_eq!((u.port(), u.authority()), (8080, "[::1]:8080"));
        let u = url("http://[fe80::1]/");
        assert_eq!((u.port(), u.authority()), (80, "[fe80::1]"));
    }

    #[test]
    fn user_info_becomes_basic_credentials() {
        let u = url("http://alice:s%40cret@h/x");
        assert_eq!(u.basic.as_deref(), Some(base64(b"alice:s@cret").as_str()));
        assert_eq!(u.authority(), "h");
        assert!(!u.to_string().contains("alice"));
        let req = String::from_utf8(u.request(&Headers::default(), &get()).into_vec()).unwrap();
        assert!(
            req.contains("\r\nAuthorization: Basic YWxpY2U6c0BjcmV0\r\n"),
            "{req}"
        );
    }

    #[test]
    fn spaces_and_non_ascii_are_encoded_controls_refused() {
        assert_eq!(url("http://h/a b/é").target(), "/a%20b/%C3%A9");
        assert_eq!(
            Url::parse("http://h/a\tb"),
            Err(UrlError::Malformed("control character in the URL"))
        );
    }

    #[test]
    fn rejects_other_schemes_and_broken_authorities() {
        let https = Url::parse("HTTPS://h/").unwrap();
        assert!(https.is_tls());
        assert_eq!(https.port(), 443);
        assert_eq!(https.to_string(), "https://h/");
        for s in ["ftp://h/", "h:80/x", "/x", "", "http:/h"] {
            assert_eq!(Url::parse(s), Err(UrlError::NotHttp), "{s}");
        }
        for s in [
            "http:///x",
            "http://:80/",
            "http://h:0/",
            "http://h:65536/",
            "http://h:+80/",
            "http://h:x/",
            "http://[::1/",
            "http://[::g]/",
            "http://[::1]x/",
            "http://a b/",
            "http://é.com/",
        ] {
            assert!(
                matches!(Url::parse(s), Err(UrlError::Malformed(_))),
                "{s}: {:?}",
                Url::parse(s)
            );
        }
    }

    #[test]
    fn a_backslash_before_the_query_is_a_path_separator() {
        // Never user-info that hides the host: `127.0.0.1:8080\` is not a
        // user name, 127.0.0.2 is not the host.
        let u = url("http://127.0.0.1:8080\\@127.0.0.2:1/");
        assert_eq!(u.host(), &Host::Ip("127.0.0.1".parse().unwrap()));
        assert_eq!((u.port(), u.target()), (8080, "/@127.0.0.2:1/"));
        assert_eq!(u.basic, None);
        let base = url("http://h/a/b");
        for (loc, want) in [
            (
                "http://127.0.0.1:8080\\@127.0.0.2:1/",
                "http://127.0.0.1:8080/@127.0.0.2:1/",
            ),
            ("https://h\\@evil/x", "https://h/@evil/x"),
            ("\\\\other\\p", "http://other/p"),
            ("/\\other/p", "http://other/p"),
            ("c\\d", "http://h/a/c/d"),
            ("http:\\\\other/", "http://other/"),
            ("/p?q=a\\b", "http://h/p?q=a\\b"),
        ] {
            assert_eq!(base.join(loc).unwrap().to_string(), want, "{loc}");
        }
    }

    #[test]
    fn joins_locations_like_rfc_3986() {
        let base = url("http://u:p@h:81/a/b/c?q=1");
        let cases = [
            ("/x", "http://h:81/x"),
            ("x", "http://h:81/a/b/x"),
            ("../x?y", "http://h:81/a/x?y"),
            ("./", "http://h:81/a/b/"),
            ("..", "http://h:81/a/"),
            ("../../../../x", "http://h:81/x"),
            ("?z", "http://h:81/a/b/c?z"),
            ("", "http://h:81/a/b/c?q=1"),
            ("#f", "http://h:81/a/b/c?q=1"),
            ("//other:82/y#f", "http://other:82/y"),
            ("http://h:81/z", "http://h:81/z"),
            ("HTTP://elsewhere/", "http://elsewhere/"),
        ];
        for (loc, want) in cases {
            assert_eq!(base.join(loc).unwrap().to_string(), want, "{loc}");
        }
        // Credentials stay with the origin.
        assert!(base.join("/x").unwrap().basic.is_some());
        assert!(base.join("http://h:81/z").unwrap().basic.is_some());
        assert!(base.join("//other:82/y").unwrap().basic.is_none());
        let secure = base.join("https://h:81/s").unwrap();
        assert!(secure.is_tls());
        // Another scheme is another origin: credentials are not sent there.
        assert!(secure.basic.is_none());
        assert_eq!(secure.join("//o/p").unwrap().to_string(), "https://o/p");
        assert_eq!(base.join("mailto:x@y"), Err(UrlError::NotHttp));
    }

    #[test]
    fn request_has_the_fixed_headers() {
        let req = url("http://127.0.0.1:8080/health?x=1#f").request(&Headers::default(), &get());
        let want = format!(
            "GET /health?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: probewheel/{}\r\nConnection: close\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(std::str::from_utf8(&req).unwrap(), want);
    }
}
