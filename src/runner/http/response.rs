//! Reading a response pushed in as it arrives, in any pieces, without I/O:
//! the run reads into [`HeadReader::spare`] / [`BodySearch::spare`] and
//! reports the count with `received` (0 at the end of the stream). The head
//! is parsed by httparse (64 KiB cap); the body, only for the body checks,
//! is decoded and scanned by [`Needle`]s in the run's one buffer; only its
//! start is kept, for a failure's reason.

use std::ops::Range;

use super::Fail;
use super::json::BodyJson;

/// Largest response head accepted.
pub(crate) const HEAD_CAP: usize = 64 * 1024;
/// How much of the (decoded) body is searched.
pub(crate) const BODY_CAP: usize = 64 * 1024;
/// Size of the run's buffer; it grows (up to [`HEAD_CAP`]) for a larger head.
pub(crate) const BUF_LEN: usize = 8 * 1024;
/// Header fields parsed without a heap allocation (more: parsed again).
const INLINE_HEADERS: usize = 64;
/// `1xx` interim responses skipped before the final one.
const MAX_INTERIM: usize = 8;
/// Longest chunk-size line (with extensions) accepted.
const CHUNK_LINE_MAX: usize = 4 * 1024;

/// A final response head, with the run's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// The status code.
    pub(crate) status: u16,
    buf: Vec<u8>,
    /// Length of the head: the body starts here.
    len: usize,
    /// Bytes in the buffer (head and the start of the body).
    filled: usize,
    /// Where the `Location` value is in `buf`, for redirects.
    location: Option<Range<usize>>,
    /// How the body is delimited, or why not (reported if the body is needed).
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

impl Head {
    /// The `Location` value, if any (an empty one counts as none).
    pub(crate) fn location(&self) -> Option<&[u8]> {
        self.location.clone().map(|r| &self.buf[r])
    }
}

/// Parses `data` as a response head and hands the result to `f`, with room
/// for as many header fields as the head has lines.
fn parse<T>(
    config: &httparse::ParserConfig,
    data: &[u8],
    f: impl FnOnce(httparse::Result<usize>, &httparse::Response<'_, '_>) -> T,
) -> T {
    let mut inline = [httparse::EMPTY_HEADER; INLINE_HEADERS];
    let mut resp = httparse::Response::new(&mut inline);
    match config.parse_response(&mut resp, data) {
        Err(httparse::Error::TooManyHeaders) => {
            let end = head_end(data).unwrap_or(data.len());
            let lines = data[..end].iter().filter(|&&b| b == b'\n').count();
            let mut many = vec![httparse::EMPTY_HEADER; lines + 1];
            let mut resp = httparse::Response::new(&mut many);
            let result = config.parse_response(&mut resp, data);
            f(result, &resp)
        }
        result => f(result, &resp),
    }
}

/// Where the first blank line ends, if there is one.
fn head_end(b: &[u8]) -> Option<usize> {
    let lf = b.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = b.windows(3).position(|w| w == b"\n\r\n").map(|i| i + 3);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Reads a response head from bytes pushed in as they arrive. With
/// `skip_interim`, `1xx` responses other than 101 are consumed and skipped.
#[derive(Debug)]
pub(crate) struct HeadReader {
    config: httparse::ParserConfig,
    buf: Vec<u8>,
    filled: usize,
    /// Bytes already searched for the blank line.
    scanned: usize,
    interim: usize,
    skip_interim: bool,
}

impl HeadReader {
    pub(crate) fn new(skip_interim: bool) -> HeadReader {
        HeadReader {
            config: lenient(),
            buf: vec![0; BUF_LEN],
            filled: 0,
            scanned: 0,
            interim: 0,
            skip_interim,
        }
    }

    /// Where the next bytes go: never empty ([`HeadReader::received`] fails
    /// at the head cap).
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        if self.filled == self.buf.len() {
            let grown = (self.buf.len() * 2).clamp(BUF_LEN, HEAD_CAP);
            self.buf.resize(grown, 0);
        }
        let end = self.buf.len().min(HEAD_CAP);
        &mut self.buf[self.filled..end]
    }

    /// `n` bytes were written into [`HeadReader::spare`] (0: the peer
    /// closed); the final head once complete.
    pub(crate) fn received(&mut self, n: usize) -> Result<Option<Head>, Fail> {
        if n == 0 {
            return Err(self.closed_before_head());
        }
        self.filled += n;
        loop {
            // Parse only once the end of the head may have arrived, so that
            // a head trickling in byte by byte is not re-parsed per byte.
            if head_end(&self.buf[self.scanned.saturating_sub(2)..self.filled]).is_none() {
                break;
            }
            let data = &self.buf[..self.filled];
            let base = data.as_ptr() as usize;
            let parsed = parse(&self.config, data, |result, resp| match result {
                Ok(httparse::Status::Complete(len)) => {
                    let status = resp.code.unwrap_or(0);
                    Ok(Some((
                        status,
                        len,
                        location(resp.headers, base),
                        framing(status, resp.headers),
                    )))
                }
                Ok(httparse::Status::Partial) => Ok(None),
                Err(e) => Err(malformed(e)),
            })?;
            let Some((status, len, location, framing)) = parsed else {
                break;
            };
            let framing = framing?;
            if self.skip_interim && (100..200).contains(&status) && status != 101 {
                self.interim += 1;
                if self.interim > MAX_INTERIM {
                    return Err(malformed("more than 8 interim (1xx) responses"));
                }
                self.buf.copy_within(len..self.filled, 0);
                self.filled -= len;
                self.scanned = 0;
                continue;
            }
            return Ok(Some(Head {
                status,
                buf: std::mem::take(&mut self.buf),
                len,
                filled: self.filled,
                location,
                framing,
            }));
        }
        self.scanned = self.filled;
        if self.filled >= HEAD_CAP {
            return Err(Fail::Other("response head larger than 64 KiB".into()));
        }
        Ok(None)
    }

    fn closed_before_head(&self) -> Fail {
        let got = &self.buf[..self.filled];
        if got.is_empty() {
            return Fail::Other("connection closed without a response".into());
        }
        parse(&self.config, got, |result, _| match result {
            Err(e) => malformed(e),
            Ok(_) => Fail::Other("connection closed before the response head was complete".into()),
        })
    }
}

fn malformed(what: impl std::fmt::Display) -> Fail {
    Fail::Other(format!("malformed response: {what}"))
}

/// Where the `Location` value sits in the buffer httparse borrows it from.
fn location(headers: &[httparse::Header<'_>], base: usize) -> Option<Range<usize>> {
    // An empty value counts as no Location (following it would loop).
    let h = headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("location") && !h.value.is_empty())?;
    let start = h.value.as_ptr() as usize - base;
    Some(start..start + h.value.len())
}

/// RFC 9112 §6.3, for responses to GET. The outer error fails the probe at
/// once; the inner one, a body this reader cannot decode, only if needed.
fn framing(
    status: u16,
    headers: &[httparse::Header<'_>],
) -> Result<Result<Framing, &'static str>, Fail> {
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Ok(Framing::Length(0)));
    }
    let mut te: Option<bool> = None;
    let mut length: Result<Option<u64>, Fail> = Ok(None);
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let chunked_only =
                te.is_none() && h.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
            te = Some(chunked_only);
        } else if h.name.eq_ignore_ascii_case("content-length") {
            if let Ok(known) = length {
                length = content_length(known, h.value);
            }
        }
    }
    Ok(match (te, length) {
        // Transfer-Encoding overrides Content-Length (§6.3 rule 3).
        (Some(true), _) => Ok(Framing::Chunked),
        (Some(false), _) => Err(
            "response body uses a Transfer-Encoding other than chunked, which probewheel does not decode",
        ),
        // An invalid Content-Length is unrecoverable (rule 5): where the
        // body ends is unknown, so is what the response says.
        (None, Err(fail)) => return Err(fail),
        (None, Ok(Some(n))) => Ok(Framing::Length(n)),
        (None, Ok(None)) => Ok(Framing::Close),
    })
}

/// Folds one `Content-Length` value into the length known so far: repeats
/// of one value are that value (RFC 9110 §8.6), two different ones an error.
fn content_length(known: Option<u64>, value: &[u8]) -> Result<Option<u64>, Fail> {
    let mut known = known;
    for part in value.split(|&b| b == b',') {
        let n = std::str::from_utf8(part.trim_ascii())
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| malformed("invalid Content-Length"))?;
        match known {
            Some(l) if l != n => {
                return Err(malformed(format_args!(
                    "two different Content-Length values ({l} and {n})"
                )));
            }
            _ => known = Some(n),
        }
    }
    Ok(known)
}

/// A `bodyContains` needle with its Knuth-Morris-Pratt table, built at
/// prepare: linear in the body, its state carried across reads.
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
#[derive(Debug)]
enum Decode {
    Length(u64),
    Close,
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Done,
}

/// The body assertions: `bodyContains`, `bodyNotContains` and `bodyJson`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BodyChecks {
    pub(crate) contains: Option<Needle>,
    pub(crate) absent: Option<Needle>,
    pub(crate) json: Option<BodyJson>,
}

impl BodyChecks {
    /// Nothing to check: the body is not read.
    pub(crate) fn is_empty(&self) -> bool {
        self.contains.is_none() && self.absent.is_none() && self.json.is_none()
    }
}

/// What the body search knows so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Search {
    /// More bytes are needed.
    More,
    /// Every assertion holds.
    Pass,
    /// `bodyContains` is not in the body, and why the search ended.
    NotFound(NotFound),
    /// `bodyNotContains` is.
    Found,
    /// The needles hold; `bodyJson` is judged on [`BodySearch::body`].
    Json,
}

/// Body bytes kept for a failure's reason.
pub(crate) const EXCERPT: usize = 200;

/// Searches the body after a head for the needles, from bytes pushed in as
/// they arrive. The body is decoded and scanned; only its first
/// [`EXCERPT`] bytes are kept, or [`BODY_CAP`] for `bodyJson`.
#[derive(Debug)]
pub(crate) struct BodySearch {
    buf: Vec<u8>,
    state: Decode,
    /// Raw bytes not yet decoded are `buf[r..w]`.
    r: usize,
    w: usize,
    /// Body bytes decoded so far.
    total: usize,
    /// The matcher state of `contains`, of `absent`.
    matched: [usize; 2],
    /// Which of them was found.
    found: [bool; 2],
    start: Vec<u8>,
}

impl BodySearch {
    /// Starts on the body of `head`, or fails on unusable framing; call
    /// [`BodySearch::scan`] first for what came with the head.
    pub(crate) fn new(head: Head) -> Result<BodySearch, Fail> {
        let framing = head.framing.map_err(|e| Fail::Other(e.into()))?;
        let state = match framing {
            Framing::Length(n) => Decode::Length(n),
            Framing::Chunked => Decode::ChunkSize,
            Framing::Close => Decode::Close,
        };
        let mut buf = head.buf;
        buf.copy_within(head.len..head.filled, 0);
        Ok(BodySearch {
            buf,
            state,
            r: 0,
            w: head.filled - head.len,
            total: 0,
            matched: [0; 2],
            found: [false; 2],
            start: Vec::new(),
        })
    }

    /// The first [`EXCERPT`] bytes of the (decoded) body.
    pub(crate) fn start(&self) -> &[u8] {
        &self.start[..self.start.len().min(EXCERPT)]
    }

    /// The body kept: all of its first [`BODY_CAP`] bytes with `bodyJson`.
    pub(crate) fn body(&self) -> &[u8] {
        &self.start
    }

    /// Searches the bytes received and not yet decoded.
    pub(crate) fn scan(&mut self, checks: &BodyChecks) -> Result<Search, Fail> {
        let (matched, found, start) = (&mut self.matched, &mut self.found, &mut self.start);
        let needles = [&checks.contains, &checks.absent];
        let kept = if checks.json.is_some() {
            BODY_CAP
        } else {
            EXCERPT
        };
        // Decided early only without `bodyJson`, which needs the whole body.
        let wanted_is_enough = checks.absent.is_none() && checks.json.is_none();
        let mut data = |d: &[u8]| {
            let keep = kept.saturating_sub(start.len()).min(d.len());
            start.extend_from_slice(&d[..keep]);
            for i in 0..2 {
                if let Some(needle) = needles[i].as_ref().filter(|_| !found[i]) {
                    found[i] = needle.feed(&mut matched[i], d);
                }
            }
            // Decided: a forbidden needle, or the wanted one with none forbidden.
            found[1] || (found[0] && wanted_is_enough)
        };
        let complete = decode(
            &mut self.state,
            &self.buf,
            &mut self.r,
            self.w,
            &mut self.total,
            &mut data,
        )?;
        let end = if complete {
            NotFound::InBody
        } else if self.total >= BODY_CAP {
            NotFound::WithinCap
        } else if self.found[0] && wanted_is_enough {
            return Ok(Search::Pass);
        } else {
            return Ok(if self.found[1] {
                Search::Found
            } else {
                Search::More
            });
        };
        Ok(self.ended(checks, end))
    }

    /// The verdict once the searched body ended (`why`).
    fn ended(&self, checks: &BodyChecks, why: NotFound) -> Search {
        if self.found[1] {
            Search::Found
        } else if checks.contains.is_some() && !self.found[0] {
            Search::NotFound(why)
        } else if checks.json.is_some() {
            Search::Json
        } else {
            Search::Pass
        }
    }

    /// Where the next bytes go (after an incomplete chunk line, if any).
    pub(crate) fn spare(&mut self) -> Result<&mut [u8], Fail> {
        self.buf.copy_within(self.r..self.w, 0);
        (self.r, self.w) = (0, self.w - self.r);
        if self.w == self.buf.len() {
            return Err(malformed("chunk size line too long"));
        }
        Ok(&mut self.buf[self.w..])
    }

    /// `n` bytes were written into [`BodySearch::spare`] (0: closed).
    pub(crate) fn received(&mut self, n: usize, checks: &BodyChecks) -> Result<Search, Fail> {
        if n == 0 {
            return match self.state {
                Decode::Close => Ok(self.ended(checks, NotFound::InBody)),
                _ => Err(Fail::Other(
                    "connection closed before the body was complete".into(),
                )),
            };
        }
        self.w += n;
        self.scan(checks)
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

    /// Serves `bytes` in pieces of the given sizes (cycled), then the end
    /// of the stream: what a run's non-blocking reads would bring.
    struct Script<'a> {
        bytes: &'a [u8],
        pieces: Vec<usize>,
        i: usize,
    }

    impl Script<'_> {
        /// Fills the start of `spare` with the next piece; 0 at the end.
        fn next(&mut self, spare: &mut [u8]) -> usize {
            let want = self.pieces[self.i % self.pieces.len()].max(1);
            self.i += 1;
            let n = want.min(spare.len()).min(self.bytes.len());
            spare[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            n
        }
    }

    fn script(bytes: &[u8], pieces: Vec<usize>) -> Script<'_> {
        Script {
            bytes,
            pieces,
            i: 0,
        }
    }

    /// Pushes pieces into a head reader until it has a head or fails.
    fn read_head(script: &mut Script<'_>, reader: &mut HeadReader) -> Result<Head, Fail> {
        loop {
            let n = script.next(reader.spare());
            if let Some(head) = reader.received(n)? {
                return Ok(head);
            }
        }
    }

    /// Pushes the rest into a body search: `None` when found.
    fn search_body(
        script: &mut Script<'_>,
        head: Head,
        needle: &Needle,
    ) -> Result<Option<NotFound>, Fail> {
        let checks = BodyChecks {
            contains: Some(needle.clone()),
            ..BodyChecks::default()
        };
        let mut body = BodySearch::new(head)?;
        let mut search = body.scan(&checks)?;
        loop {
            match search {
                Search::Pass => return Ok(None),
                Search::NotFound(why) => return Ok(Some(why)),
                Search::Found | Search::Json => unreachable!("only bodyContains is checked"),
                Search::More => {
                    let n = script.next(body.spare()?);
                    search = body.received(n, &checks)?;
                }
            }
        }
    }

    /// Head status and body search outcome for a response.
    fn check(
        resp: &[u8],
        pieces: Vec<usize>,
        needle: &str,
    ) -> Result<(u16, Option<NotFound>), Fail> {
        let mut wire = script(resp, pieces);
        let head = read_head(&mut wire, &mut HeadReader::new(true))?;
        let status = head.status;
        let found = search_body(&mut wire, head, &Needle::new(needle.as_bytes()))?;
        Ok((status, found))
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
    fn an_invalid_content_length_fails_the_head_unless_transfer_encoding_overrides_it() {
        let cases: [(&[u8], &str); 4] = [
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                "malformed response: invalid Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "malformed response: two different Content-Length values (1 and 2)",
            ),
            (
                b"HTTP/1.1 301 Moved\r\nLocation: /\r\nContent-Length: 0, 1\r\n\r\n",
                "malformed response: two different Content-Length values (0 and 1)",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2,\r\n\r\n",
                "malformed response: invalid Content-Length",
            ),
        ];
        for (resp, want) in cases {
            let err = read_head(&mut script(resp, vec![100]), &mut HeadReader::new(true));
            assert_eq!(err.map_err(reason).map(|h| h.status), Err(want.to_owned()));
        }
        // The same value repeated is that value; Transfer-Encoding and a
        // bodiless status make Content-Length irrelevant.
        for (resp, body) in [
            (&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2 , 2\r\n\r\nok"[..], "ok"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", "ok"),
            (b"HTTP/1.1 204 No Content\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "x"),
        ] {
            assert_eq!(check(resp, vec![7], body).map_err(reason).map(|r| r.0 / 100), Ok(2));
        }
    }

    #[test]
    fn framing_errors_surface_only_when_the_body_is_read() {
        let cases: [(&[u8], &str); 2] = [
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
            let head = read_head(&mut wire, &mut HeadReader::new(true))
                .map_err(reason)
                .unwrap();
            assert_eq!(head.status, 200);
            let err = search_body(&mut wire, head, &Needle::new(b"x")).unwrap_err();
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
            let err =
                read_head(&mut script(resp, vec![3]), &mut HeadReader::new(true)).unwrap_err();
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
        let mut reader = HeadReader::new(true);
        let err = read_head(&mut script(&resp, vec![1500]), &mut reader).unwrap_err();
        assert_eq!(reason(err), "response head larger than 64 KiB");
        assert_eq!(reader.buf.len(), HEAD_CAP);
    }

    /// `count` header fields `X-Field-<i>: <value>` in a 200 response with
    /// body `ok`.
    fn many_headers(count: usize, value: &str) -> Vec<u8> {
        let mut resp = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..count {
            resp.extend_from_slice(format!("X-Field-{i}: {value}\r\n").as_bytes());
        }
        resp.extend_from_slice(b"Location: /there\r\nContent-Length: 2\r\n\r\nok");
        resp
    }

    #[test]
    fn any_number_of_header_fields_within_the_cap() {
        for count in [63, 64, 65, 200, 3000] {
            let resp = many_headers(count, "v");
            assert!(resp.len() < HEAD_CAP);
            for piece in [1, 1000] {
                let mut wire = script(&resp, vec![piece]);
                let head = read_head(&mut wire, &mut HeadReader::new(true))
                    .map_err(reason)
                    .unwrap_or_else(|e| panic!("{count} headers, pieces {piece}: {e}"));
                assert_eq!(head.status, 200);
                // The fields after the many are read too.
                assert_eq!(head.location(), Some(&b"/there"[..]));
                let found = search_body(&mut wire, head, &Needle::new(b"ok")).map_err(reason);
                assert_eq!(found, Ok(None), "{count} headers");
            }
        }
    }

    #[test]
    fn many_small_header_fields_beyond_the_cap_are_rejected() {
        let resp = many_headers(5000, "0123456789");
        assert!(resp.len() > HEAD_CAP);
        let err =
            read_head(&mut script(&resp, vec![4096]), &mut HeadReader::new(true)).unwrap_err();
        assert_eq!(reason(err), "response head larger than 64 KiB");
    }

    #[test]
    fn a_head_one_byte_at_a_time_with_the_body_in_the_same_pieces() {
        let resp = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nready\r\n0\r\n\r\n";
        assert_eq!(
            check(resp, vec![1], "ready").map_err(reason),
            Ok((200, None))
        );
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
