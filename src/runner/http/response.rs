//! Reading a response: the head (parsed by httparse, capped at 64 KiB) and,
//! only when `bodyContains` asks for it, the body (Content-Length, chunked
//! or read-to-close, searched as it streams, capped at 64 KiB).
//!
//! Everything happens in the one buffer of the run: the body is never
//! stored, only scanned by a [`Needle`] whose matcher state carries across
//! reads, so a body costs no memory beyond the buffer whatever its size.

use std::ops::Range;

use super::wire::Wire;
use super::{Fail, Phase};

/// Largest response head accepted.
pub(crate) const HEAD_CAP: usize = 64 * 1024;
/// How much of the (decoded) body is searched.
pub(crate) const BODY_CAP: usize = 64 * 1024;
/// Size of the run's buffer; it grows (up to [`HEAD_CAP`]) only for a
/// larger head.
pub(crate) const BUF_LEN: usize = 8 * 1024;
/// Header fields read per response (httparse needs a fixed array).
const MAX_HEADERS: usize = 64;
/// `1xx` interim responses skipped before the final one.
const MAX_INTERIM: usize = 8;
/// Longest chunk-size line (with extensions) accepted.
const CHUNK_LINE_MAX: usize = 4 * 1024;

/// A response head, as positions in the run's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// The status code.
    pub(crate) status: u16,
    /// Length of the head: the body starts here.
    len: usize,
    /// Bytes in the buffer (head and the start of the body).
    filled: usize,
    /// The `Location` value, for redirects.
    pub(crate) location: Option<Range<usize>>,
    /// How the body is delimited, or what is wrong with the framing headers
    /// (reported only if the body is needed).
    framing: Result<Framing, &'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    Close,
}

fn lenient() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true);
    c
}

/// True if `b` may hold the blank line that ends a head.
fn has_blank_line(b: &[u8]) -> bool {
    b.windows(2).any(|w| w == b"\n\n") || b.windows(3).any(|w| w == b"\n\r\n")
}

/// Reads until a complete final response head is in `buf`. With
/// `skip_interim`, `1xx` responses other than 101 are consumed and skipped.
pub(crate) fn read_head(
    wire: &mut impl Wire,
    buf: &mut Vec<u8>,
    skip_interim: bool,
) -> Result<Head, Fail> {
    let config = lenient();
    let mut filled = 0usize;
    let mut scanned = 0usize;
    let mut interim = 0;
    loop {
        // Parse only once the end of the head may have arrived, so that a
        // head trickling in byte by byte is not re-parsed for every byte.
        if has_blank_line(&buf[scanned.saturating_sub(2)..filled]) {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            match config.parse_response(&mut resp, &buf[..filled]) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = resp.code.unwrap_or(0);
                    if skip_interim && (100..200).contains(&status) && status != 101 {
                        interim += 1;
                        if interim > MAX_INTERIM {
                            return Err(malformed("more than 8 interim (1xx) responses"));
                        }
                        buf.copy_within(len..filled, 0);
                        filled -= len;
                        scanned = 0;
                        continue;
                    }
                    let base = buf.as_ptr() as usize;
                    return Ok(Head {
                        status,
                        len,
                        filled,
                        location: location(resp.headers, base),
                        framing: framing(status, resp.headers),
                    });
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(malformed(e)),
            }
        }
        scanned = filled;
        if filled >= HEAD_CAP {
            return Err(Fail::Other("response head larger than 64 KiB".into()));
        }
        if filled == buf.len() {
            let grown = (buf.len() * 2).clamp(BUF_LEN, HEAD_CAP);
            buf.resize(grown, 0);
        }
        let end = buf.len().min(HEAD_CAP);
        let n = wire.recv(&mut buf[filled..end], Phase::Head)?;
        if n == 0 {
            return Err(closed_before_head(&config, &buf[..filled]));
        }
        filled += n;
    }
}

fn closed_before_head(config: &httparse::ParserConfig, got: &[u8]) -> Fail {
    if got.is_empty() {
        return Fail::Other("connection closed without a response".into());
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match config.parse_response(&mut httparse::Response::new(&mut headers), got) {
        Err(e) => malformed(e),
        Ok(_) => Fail::Other("connection closed before the response head was complete".into()),
    }
}

fn malformed(what: impl std::fmt::Display) -> Fail {
    Fail::Other(format!("malformed response: {what}"))
}

/// Where the `Location` value sits in the buffer (httparse borrows it from
/// there, so the offset is exact).
fn location(headers: &[httparse::Header<'_>], base: usize) -> Option<Range<usize>> {
    // An empty value counts as no Location (following it would loop).
    let h = headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("location") && !h.value.is_empty())?;
    let start = h.value.as_ptr() as usize - base;
    Some(start..start + h.value.len())
}

/// RFC 9112 §6.3, for responses to GET.
fn framing(status: u16, headers: &[httparse::Header<'_>]) -> Result<Framing, &'static str> {
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::Length(0));
    }
    let mut te: Option<bool> = None;
    let mut length: Option<u64> = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let chunked_only =
                te.is_none() && h.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
            te = Some(chunked_only);
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let v = h.value.trim_ascii();
            let n = std::str::from_utf8(v)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or("malformed response: invalid Content-Length")?;
            if length.is_some_and(|l| l != n) {
                return Err("malformed response: conflicting Content-Length headers");
            }
            length = Some(n);
        }
    }
    match (te, length) {
        (Some(true), _) => Ok(Framing::Chunked),
        (Some(false), _) => Err(
            "response body uses a Transfer-Encoding other than chunked, which probewheel does not decode",
        ),
        (None, Some(n)) => Ok(Framing::Length(n)),
        (None, None) => Ok(Framing::Close),
    }
}

/// A `bodyContains` needle with its Knuth-Morris-Pratt table, built once at
/// prepare time: the search is linear in the body whatever the needle, and
/// its state carries across reads and chunks without keeping any body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Needle {
    bytes: Box<[u8]>,
    /// `fail[i]`: length of the longest proper border of `bytes[..=i]`.
    fail: Box<[u32]>,
}

impl Needle {
    /// `bytes` must be non-empty and at most [`BODY_CAP`] long.
    pub(crate) fn new(bytes: &[u8]) -> Needle {
        debug_assert!(!bytes.is_empty() && bytes.len() <= BODY_CAP);
        let mut fail = vec![0u32; bytes.len()];
        let mut k = 0usize;
        for i in 1..bytes.len() {
            while k > 0 && bytes[i] != bytes[k] {
                k = fail[k - 1] as usize;
            }
            if bytes[i] == bytes[k] {
                k += 1;
            }
            fail[i] = k as u32;
        }
        Needle {
            bytes: bytes.into(),
            fail: fail.into(),
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Feeds `data`; `matched` is the carried state. True once found.
    fn feed(&self, matched: &mut usize, mut data: &[u8]) -> bool {
        let n = &self.bytes;
        while !data.is_empty() {
            if *matched == 0 {
                // Skip quickly to the next candidate start.
                match data.iter().position(|&b| b == n[0]) {
                    Some(p) => data = &data[p..],
                    None => return false,
                }
            }
            let b = data[0];
            data = &data[1..];
            let mut k = *matched;
            while k > 0 && b != n[k] {
                k = self.fail[k - 1] as usize;
            }
            if b == n[k] {
                k += 1;
            }
            if k == n.len() {
                return true;
            }
            *matched = k;
        }
        false
    }
}

/// Why the body search ended without a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotFound {
    /// The whole body was read.
    InBody,
    /// The first [`BODY_CAP`] bytes were read.
    WithinCap,
}

/// Decoder state between reads.
enum Decode {
    Length(u64),
    Close,
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Done,
}

/// Reads the body after `head` (whose bytes are in `buf`) and searches it
/// for `needle`. `Ok(None)` means found.
pub(crate) fn search_body(
    wire: &mut impl Wire,
    buf: &mut [u8],
    head: &Head,
    needle: &Needle,
) -> Result<Option<NotFound>, Fail> {
    let framing = head.framing.map_err(|e| Fail::Other(e.into()))?;
    let mut state = match framing {
        Framing::Length(n) => Decode::Length(n),
        Framing::Chunked => Decode::ChunkSize,
        Framing::Close => Decode::Close,
    };
    // Raw bytes not yet decoded are buf[r..w].
    buf.copy_within(head.len..head.filled, 0);
    let (mut r, mut w) = (0, head.filled - head.len);
    let mut total = 0usize;
    let mut matched = 0usize;
    loop {
        let mut found = false;
        let mut data = |d: &[u8]| {
            found = needle.feed(&mut matched, d);
            found
        };
        let complete = decode(&mut state, buf, &mut r, w, &mut total, &mut data)?;
        if found {
            return Ok(None);
        }
        if complete {
            return Ok(Some(NotFound::InBody));
        }
        if total >= BODY_CAP {
            return Ok(Some(NotFound::WithinCap));
        }
        // Only an incomplete chunk line can be left over.
        buf.copy_within(r..w, 0);
        (r, w) = (0, w - r);
        if w == buf.len() {
            return Err(malformed("chunk size line too long"));
        }
        let n = wire.recv(&mut buf[w..], Phase::Body)?;
        if n == 0 {
            return match state {
                Decode::Close => Ok(Some(NotFound::InBody)),
                _ => Err(Fail::Other(
                    "connection closed before the body was complete".into(),
                )),
            };
        }
        w += n;
    }
}

/// Decodes `buf[*r..w]`, handing body bytes (at most [`BODY_CAP`] in all)
/// to `data` until it returns true. Returns whether the body is complete.
fn decode(
    state: &mut Decode,
    buf: &[u8],
    r: &mut usize,
    w: usize,
    total: &mut usize,
    data: &mut impl FnMut(&[u8]) -> bool,
) -> Result<bool, Fail> {
    loop {
        let avail = w - *r;
        let room = BODY_CAP - *total;
        match state {
            Decode::Done => return Ok(true),
            Decode::Length(0) => return Ok(true),
            Decode::Length(left) | Decode::ChunkData(left) => {
                let k = (*left).min(avail as u64).min(room as u64) as usize;
                if k == 0 {
                    return Ok(false);
                }
                *left -= k as u64;
                if *left == 0 && matches!(state, Decode::ChunkData(_)) {
                    *state = Decode::ChunkEnd;
                }
                let chunk = &buf[*r..*r + k];
                *r += k;
                *total += k;
                if data(chunk) {
                    return Ok(false);
                }
            }
            Decode::Close => {
                let k = avail.min(room);
                if k == 0 {
                    return Ok(false);
                }
                let chunk = &buf[*r..*r + k];
                *r += k;
                *total += k;
                if data(chunk) {
                    return Ok(false);
                }
            }
            Decode::ChunkSize => {
                if avail == 0 {
                    return Ok(false);
                }
                let raw = &buf[*r..w];
                if !raw[0].is_ascii_hexdigit() {
                    return Err(malformed("invalid chunk size line"));
                }
                match httparse::parse_chunk_size(raw) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        *r += used;
                        *state = if size == 0 {
                            // Trailers may follow; the body is complete.
                            Decode::Done
                        } else {
                            Decode::ChunkData(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if avail > CHUNK_LINE_MAX => {
                        return Err(malformed("chunk size line too long"));
                    }
                    Ok(httparse::Status::Partial) => return Ok(false),
                    Err(_) => return Err(malformed("invalid chunk size line")),
                }
            }
            Decode::ChunkEnd => {
                let raw = &buf[*r..w];
                match raw {
                    [] | [b'\r'] => return Ok(false),
                    [b'\r', b'\n', ..] => *r += 2,
                    [b'\n', ..] => *r += 1,
                    _ => return Err(malformed("chunk data not followed by CRLF")),
                }
                *state = Decode::ChunkSize;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Serves `bytes` in pieces of the given sizes (cycled), then EOF.
    struct Script<'a> {
        bytes: &'a [u8],
        pieces: Vec<usize>,
        i: usize,
    }

    impl Wire for Script<'_> {
        fn recv(&mut self, buf: &mut [u8], _phase: Phase) -> Result<usize, Fail> {
            let want = self.pieces[self.i % self.pieces.len()].max(1);
            self.i += 1;
            let n = want.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    fn script(bytes: &[u8], pieces: Vec<usize>) -> Script<'_> {
        Script {
            bytes,
            pieces,
            i: 0,
        }
    }

    /// Head status and body search outcome for a response.
    fn check(
        resp: &[u8],
        pieces: Vec<usize>,
        needle: &str,
    ) -> Result<(u16, Option<NotFound>), Fail> {
        let mut wire = script(resp, pieces);
        let mut buf = vec![0; BUF_LEN];
        let head = read_head(&mut wire, &mut buf, true)?;
        let found = search_body(&mut wire, &mut buf, &head, &Needle::new(needle.as_bytes()))?;
        Ok((head.status, found))
    }

    fn reason(f: Fail) -> String {
        match f {
            Fail::Other(s) => s,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn needle_matches_like_a_naive_search_across_pieces() {
        let hay = b"abaabaabbabaababaabab";
        for len in 1..6 {
            for start in 0..hay.len() - len {
                let needle = Needle::new(&hay[start..start + len]);
                for split in 0..hay.len() {
                    let mut m = 0;
                    let found =
                        needle.feed(&mut m, &hay[..split]) || needle.feed(&mut m, &hay[split..]);
                    assert!(found, "needle {start}+{len} split {split}");
                }
            }
        }
        let needle = Needle::new(b"abab");
        let mut m = 0;
        assert!(!needle.feed(&mut m, b"abaabbaab"));
    }

    #[test]
    fn content_length_chunked_and_close_bodies_in_any_pieces() {
        let bodies: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello readyTRAILING",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nhel\r\n5\r\nlo re\r\n3\r\nady\r\n0\r\nX-Trailer: y\r\n\r\n",
            b"HTTP/1.0 200 OK\r\n\r\nhello ready",
        ];
        for resp in bodies {
            for piece in [1, 2, 3, 7, 4096] {
                let got = check(resp, vec![piece], "ready").map_err(reason);
                assert_eq!(
                    got,
                    Ok((200, None)),
                    "{piece} {}",
                    String::from_utf8_lossy(resp)
                );
                let got = check(resp, vec![piece], "readyX").map_err(reason);
                assert_eq!(got, Ok((200, Some(NotFound::InBody))), "{piece}");
            }
        }
    }

    #[test]
    fn interim_responses_are_skipped() {
        let resp = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(check(resp, vec![5], "ok").map_err(reason), Ok((200, None)));
    }

    #[test]
    fn framing_errors_surface_only_when_the_body_is_read() {
        let cases: [(&[u8], &str); 4] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                "malformed response: invalid Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "malformed response: conflicting Content-Length headers",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                "response body uses a Transfer-Encoding other than chunked, which probewheel does not decode",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "malformed response: invalid chunk size line",
            ),
        ];
        for (resp, want) in cases {
            let mut wire = script(resp, vec![100]);
            let mut buf = vec![0; BUF_LEN];
            let head = read_head(&mut wire, &mut buf, true)
                .map_err(reason)
                .unwrap();
            assert_eq!(head.status, 200);
            let err = search_body(&mut wire, &mut buf, &head, &Needle::new(b"x")).unwrap_err();
            assert_eq!(reason(err), want);
        }
    }

    #[test]
    fn early_close_and_head_errors() {
        let cases: [(&[u8], &str); 5] = [
            (b"", "connection closed without a response"),
            (
                b"HTTP/1.1 200 OK\r\nX: y",
                "connection closed before the response head was complete",
            ),
            (
                b"HTTX/1.1 200 OK\r\n\r\n",
                "malformed response: invalid HTTP version",
            ),
            (
                b"HTTP/1.1 2000 OK\r\n\r\n",
                "malformed response: invalid response status",
            ),
            (b"garbage", "malformed response: invalid HTTP version"),
        ];
        for (resp, want) in cases {
            let mut buf = vec![0; BUF_LEN];
            let err = read_head(&mut script(resp, vec![3]), &mut buf, true).unwrap_err();
            assert_eq!(reason(err), want, "{}", String::from_utf8_lossy(resp));
        }
    }

    #[test]
    fn body_search_stops_at_the_cap() {
        let mut resp = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        resp.resize(resp.len() + BODY_CAP - 2, b'.');
        resp.extend_from_slice(b"ready");
        assert_eq!(
            check(&resp, vec![1000], "ready").map_err(reason),
            Ok((200, Some(NotFound::WithinCap)))
        );
        assert_eq!(
            check(&resp, vec![1000], "..r").map_err(reason),
            Ok((200, None))
        );
    }

    #[test]
    fn head_is_capped() {
        let mut resp = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        resp.resize(200_000, b'a');
        let mut buf = vec![0; BUF_LEN];
        let err = read_head(&mut script(&resp, vec![1500]), &mut buf, true).unwrap_err();
        assert_eq!(reason(err), "response head larger than 64 KiB");
        assert_eq!(buf.len(), HEAD_CAP);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The reading path never panics and never loops, whatever the peer
        /// sends and however it is split.
        #[test]
        fn reader_never_panics_on_arbitrary_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            pieces in proptest::collection::vec(1usize..64, 1..8),
            needle in "[a-z]{1,4}",
        ) {
            let _ = check(&bytes, pieces, &needle);
        }

        /// The same on inputs that start like a real response, which get
        /// far deeper into the body decoders.
        #[test]
        fn reader_never_panics_on_plausible_responses(
            head in prop_oneof![
                Just("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
                Just("HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n"),
                Just("HTTP/1.1 200 OK\r\n\r\n"),
                Just("HTTP/1.1 100 Continue\r\n\r\n"),
            ],
            tail in proptest::collection::vec(
                proptest::sample::select(b"0125aAfz;= \r\n\t\x00\x80\xff".to_vec()),
                0..512,
            ),
            pieces in proptest::collection::vec(1usize..16, 1..6),
        ) {
            let mut resp = head.as_bytes().to_vec();
            resp.extend_from_slice(&tail);
            let _ = check(&resp, pieces, "a0");
        }
    }
}
