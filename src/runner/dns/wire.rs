//! DNS messages (RFC 1035) as a `dns` probe needs them: the one query it
//! sends, and what it reads of a reply (the header, the question echoed,
//! the answer section as text). Sans-IO: bytes in, values out, never a
//! panic on whatever a server sends.
//!
//! Ours rather than a DNS crate's: a probe reads one question and the
//! answer records of nine types, where a general crate decodes every
//! section and dozens of types into a binary that much larger (the
//! figures are in the commit that made this choice).

use std::fmt::{self, Write as _};
use std::net::IpAddr;

/// Header length.
pub(crate) const HEADER: usize = 12;
/// Class `IN`.
pub(crate) const CLASS_IN: u16 = 1;
/// The longest name, in wire form (RFC 1035 2.3.4).
const MAX_NAME: usize = 255;
/// The longest label.
const MAX_LABEL: usize = 63;

/// Header flag bits.
const QR: u16 = 0x8000;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;

/// The record types a probe may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RType {
    A,
    Aaaa,
    Cname,
    Mx,
    Txt,
    Srv,
    Ns,
    Soa,
    Ptr,
}

impl RType {
    /// Every type, in the order the reference lists them.
    pub(crate) const ALL: [RType; 9] = [
        RType::A,
        RType::Aaaa,
        RType::Cname,
        RType::Mx,
        RType::Txt,
        RType::Srv,
        RType::Ns,
        RType::Soa,
        RType::Ptr,
    ];

    /// Its code on the wire.
    pub(crate) fn code(self) -> u16 {
        match self {
            RType::A => 1,
            RType::Ns => 2,
            RType::Cname => 5,
            RType::Soa => 6,
            RType::Ptr => 12,
            RType::Mx => 15,
            RType::Txt => 16,
            RType::Aaaa => 28,
            RType::Srv => 33,
        }
    }

    /// Its mnemonic.
    pub(crate) fn name(self) -> &'static str {
        match self {
            RType::A => "A",
            RType::Aaaa => "AAAA",
            RType::Cname => "CNAME",
            RType::Mx => "MX",
            RType::Txt => "TXT",
            RType::Srv => "SRV",
            RType::Ns => "NS",
            RType::Soa => "SOA",
            RType::Ptr => "PTR",
        }
    }

    /// The type of a mnemonic, in any case.
    pub(crate) fn from_name(s: &str) -> Option<RType> {
        RType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
    }

    fn from_code(code: u16) -> Option<RType> {
        RType::ALL.into_iter().find(|t| t.code() == code)
    }
}

/// The response code of a reply without an error.
pub(crate) const NOERROR: u8 = 0;

/// Response codes by name (RFC 1035 4.1.1, RFC 2136 2.2); any other is
/// shown as `RCODE<n>`.
const RCODES: [&str; 11] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE",
];

/// The response code named `s` (any case).
pub(crate) fn rcode_of(s: &str) -> Option<u8> {
    let at = RCODES.iter().position(|r| r.eq_ignore_ascii_case(s))?;
    u8::try_from(at).ok()
}

/// The name of a response code.
pub(crate) fn rcode_name(rcode: u8) -> String {
    match RCODES.get(usize::from(rcode)) {
        Some(name) => (*name).to_owned(),
        None => format!("RCODE{rcode}"),
    }
}

/// Every response code name, for a reason.
pub(crate) fn rcode_names() -> String {
    RCODES.join(", ")
}

/// A domain name in wire form: length-prefixed labels ending with the
/// root's empty label, uncompressed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Name(Vec<u8>);

impl Name {
    /// A name as a person writes it (`example.com`, `example.com.`, `.`
    /// for the root): labels of letters, digits, `-`, `_` or `*`, each 1
    /// to 63 bytes, 255 in all on the wire. The error is a problem text.
    pub(crate) fn parse(text: &str) -> Result<Name, String> {
        if text == "." {
            return Ok(Name(vec![0]));
        }
        let bare = text.strip_suffix('.').unwrap_or(text);
        let mut wire = Vec::with_capacity(bare.len() + 2);
        for label in bare.split('.') {
            if label.is_empty() {
                return Err(format!("{text:?} has an empty label"));
            }
            if label.len() > MAX_LABEL {
                return Err(format!(
                    "{text:?} has a label longer than {MAX_LABEL} bytes"
                ));
            }
            let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*');
            if let Some(c) = label.chars().find(|c| !ok(*c)) {
                return Err(format!(
                    "{text:?} holds {c:?}: a name is labels of letters, digits, '-', '_' or '*' between dots"
                ));
            }
            wire.push(u8::try_from(label.len()).expect("at most 63"));
            wire.extend_from_slice(label.as_bytes());
        }
        wire.push(0);
        if wire.len() > MAX_NAME {
            return Err(format!("{text:?} is longer than 253 characters"));
        }
        Ok(Name(wire))
    }

    /// The reverse-lookup name of an address: `4.3.2.1.in-addr.arpa.`, or
    /// the 32 nibbles under `ip6.arpa.`.
    pub(crate) fn reverse(ip: IpAddr) -> Name {
        let mut text = String::with_capacity(72);
        match ip {
            IpAddr::V4(v4) => {
                for octet in v4.octets().iter().rev() {
                    let _ = write!(text, "{octet}.");
                }
                text.push_str("in-addr.arpa");
            }
            IpAddr::V6(v6) => {
                for octet in v6.octets().iter().rev() {
                    let _ = write!(text, "{:x}.{:x}.", octet & 0xf, octet >> 4);
                }
                text.push_str("ip6.arpa");
            }
        }
        Name::parse(&text).expect("a reverse name is valid")
    }

    /// A name from its wire form, unchecked (a test's responder).
    #[cfg(test)]
    pub(crate) fn from_wire_for_tests(wire: Vec<u8>) -> Name {
        Name(wire)
    }

    /// The wire form.
    pub(crate) fn wire(&self) -> &[u8] {
        &self.0
    }

    /// Whether both are the same name (DNS names compare ASCII
    /// case-insensitively).
    pub(crate) fn same(&self, other: &Name) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

/// Text form: labels between dots, a trailing dot, and dig's escapes (a
/// special character after a backslash, any other byte outside the
/// printable ASCII as `\DDD`).
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut at = 0;
        if self.0.first() == Some(&0) {
            return f.write_str(".");
        }
        while let Some(&len) = self.0.get(at) {
            if len == 0 {
                break;
            }
            let label = self.0.get(at + 1..at + 1 + usize::from(len)).unwrap_or(&[]);
            for &b in label {
                match b {
                    b'.' | b'\\' | b'"' | b';' | b'(' | b')' | b'@' | b'$' => {
                        write!(f, "\\{}", char::from(b))?;
                    }
                    0x21..=0x7e => f.write_char(char::from(b))?,
                    _ => write!(f, "\\{b:03}")?,
                }
            }
            f.write_char('.')?;
            at += 1 + usize::from(len);
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// A query for `name` and `qtype` of class `IN`, recursion desired.
pub(crate) fn query(id: u16, name: &Name, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(HEADER + name.wire().len() + 4);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&RD.to_be_bytes());
    // One question, no answer, authority or additional records.
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(name.wire());
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    q
}

/// The question of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Question {
    pub(crate) name: Name,
    pub(crate) qtype: u16,
    pub(crate) qclass: u16,
}

/// One record of the answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) rtype: u16,
    /// `<TYPE> <data>`, as `docs/declarations.md` shows it.
    pub(crate) text: String,
}

/// What a probe reads of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) id: u16,
    flags: u16,
    /// The first question (a reply to our query echoes exactly one).
    pub(crate) question: Option<Question>,
    pub(crate) questions: u16,
    /// The answer section; empty when the reply is truncated.
    pub(crate) answers: Vec<Record>,
}

impl Reply {
    /// Whether it is a response (QR set) to a standard query (opcode 0).
    pub(crate) fn is_response(&self) -> bool {
        self.flags & QR != 0 && (self.flags >> 11) & 0xf == 0
    }

    /// Whether the server cut it short (TC).
    pub(crate) fn truncated(&self) -> bool {
        self.flags & TC != 0
    }

    /// The response code.
    pub(crate) fn rcode(&self) -> u8 {
        u8::try_from(self.flags & 0xf).expect("four bits")
    }
}

/// The message's ID, if it has a header.
pub(crate) fn id_of(msg: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.first()?, *msg.get(1)?]))
}

/// Why a message could not be read: a phrase for a reason.
pub(crate) type Malformed = &'static str;

/// Reads a message: the header, the first question and (unless it is
/// truncated) the answer section; the authority and additional sections
/// are not read.
pub(crate) fn parse(msg: &[u8]) -> Result<Reply, Malformed> {
    let mut r = Reader { msg, at: 0 };
    let id = r.u16().ok_or("shorter than a DNS header")?;
    let flags = r.u16().ok_or("shorter than a DNS header")?;
    let questions = r.u16().ok_or("shorter than a DNS header")?;
    let answers = r.u16().ok_or("shorter than a DNS header")?;
    r.take(4).ok_or("shorter than a DNS header")?;
    let mut reply = Reply {
        id,
        flags,
        question: None,
        questions,
        answers: Vec::new(),
    };
    for i in 0..questions {
        let name = r.name()?;
        let qtype = r.u16().ok_or("ends inside the question")?;
        let qclass = r.u16().ok_or("ends inside the question")?;
        if i == 0 {
            reply.question = Some(Question {
                name,
                qtype,
                qclass,
            });
        }
    }
    if reply.truncated() {
        return Ok(reply);
    }
    for _ in 0..answers {
        let _owner = r.name()?;
        let rtype = r.u16().ok_or("ends inside an answer record")?;
        let _class = r.u16().ok_or("ends inside an answer record")?;
        let _ttl = r.take(4).ok_or("ends inside an answer record")?;
        let len = r.u16().ok_or("ends inside an answer record")?;
        let start = r.at;
        let end = start + usize::from(len);
        if end > msg.len() {
            return Err("ends inside an answer record's data");
        }
        let text = r.rdata(rtype, end)?;
        if r.at != end {
            return Err("has an answer record whose data length does not fit its type");
        }
        reply.answers.push(Record { rtype, text });
    }
    Ok(reply)
}

/// A cursor over a message.
struct Reader<'a> {
    msg: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let bytes = self.msg.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(bytes)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A name at the cursor, compression pointers followed; the cursor
    /// moves past it (past the first pointer).
    fn name(&mut self) -> Result<Name, Malformed> {
        let mut wire = Vec::with_capacity(32);
        let mut at = self.at;
        // Where the cursor continues: after the first pointer, if any.
        let mut resume = None;
        // A pointer must point before the labels that hold it, so the
        // walk always ends.
        let mut floor = at;
        loop {
            let len = *self.msg.get(at).ok_or("ends inside a name")?;
            match len >> 6 {
                0 => {
                    let len = usize::from(len);
                    let label = self
                        .msg
                        .get(at + 1..at + 1 + len)
                        .ok_or("ends inside a name")?;
                    wire.push(u8::try_from(len).expect("below 64"));
                    wire.extend_from_slice(label);
                    if wire.len() > MAX_NAME {
                        return Err("has a name longer than 255 bytes");
                    }
                    at += 1 + len;
                    if len == 0 {
                        break;
                    }
                }
                3 => {
                    let low = *self.msg.get(at + 1).ok_or("ends inside a name")?;
                    let target = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                    if target >= floor {
                        return Err("has a name compression pointer that does not point back");
                    }
                    resume.get_or_insert(at + 2);
                    floor = target;
                    at = target;
                }
                _ => return Err("has a name with an unknown label type"),
            }
        }
        self.at = resume.unwrap_or(at);
        Ok(Name(wire))
    }

    /// A character-string: `"..."`, escaped as dig does.
    fn string(&mut self, out: &mut String) -> Result<(), Malformed> {
        let len = self.u8().ok_or("ends inside a character-string")?;
        let bytes = self
            .take(usize::from(len))
            .ok_or("ends inside a character-string")?;
        out.push('"');
        for &b in bytes {
            match b {
                b'"' | b'\\' => {
                    out.push('\\');
                    out.push(char::from(b));
                }
                0x20..=0x7e => out.push(char::from(b)),
                _ => {
                    let _ = write!(out, "\\{b:03}");
                }
            }
        }
        out.push('"');
        Ok(())
    }

    /// A record's data up to `end`, as text after its type's mnemonic.
    fn rdata(&mut self, rtype: u16, end: usize) -> Result<String, Malformed> {
        const SHORT: Malformed = "has an answer record whose data length does not fit its type";
        let mut out = String::new();
        let Some(known) = RType::from_code(rtype) else {
            // RFC 3597's form of a type without a mnemonic.
            let data = self.take(end - self.at).expect("bounded by the caller");
            let _ = write!(out, "TYPE{rtype} \\# {}", data.len());
            if !data.is_empty() {
                out.push(' ');
                for b in data {
                    let _ = write!(out, "{b:02x}");
                }
            }
            return Ok(out);
        };
        out.push_str(known.name());
        out.push(' ');
        // A read may not cross the record's end.
        let mut r = Reader {
            msg: &self.msg[..end],
            at: self.at,
        };
        match known {
            RType::A => {
                let b = r.take(4).ok_or(SHORT)?;
                let _ = write!(out, "{}.{}.{}.{}", b[0], b[1], b[2], b[3]);
            }
            RType::Aaaa => {
                let b: [u8; 16] = r.take(16).ok_or(SHORT)?.try_into().expect("16 bytes");
                let _ = write!(out, "{}", std::net::Ipv6Addr::from(b));
            }
            RType::Cname | RType::Ns | RType::Ptr => {
                let name = self.name_within(&mut r)?;
                let _ = write!(out, "{name}");
            }
            RType::Mx => {
                let pref = r.u16().ok_or(SHORT)?;
                let name = self.name_within(&mut r)?;
                let _ = write!(out, "{pref} {name}");
            }
            RType::Srv => {
                let prio = r.u16().ok_or(SHORT)?;
                let weight = r.u16().ok_or(SHORT)?;
                let port = r.u16().ok_or(SHORT)?;
                let name = self.name_within(&mut r)?;
                let _ = write!(out, "{prio} {weight} {port} {name}");
            }
            RType::Soa => {
                let mname = self.name_within(&mut r)?;
                let rname = self.name_within(&mut r)?;
                let _ = write!(out, "{mname} {rname}");
                for _ in 0..5 {
                    let n = r.u32().ok_or(SHORT)?;
                    let _ = write!(out, " {n}");
                }
            }
            RType::Txt => {
                let mut first = true;
                while r.at < end || first {
                    if !first {
                        out.push(' ');
                    }
                    r.string(&mut out).map_err(|_| SHORT)?;
                    first = false;
                }
            }
        }
        self.at = r.at;
        Ok(out)
    }

    /// A name in record data: its labels must end within the record, but
    /// a pointer may lead anywhere before it in the whole message.
    fn name_within(&self, r: &mut Reader<'_>) -> Result<Name, Malformed> {
        let mut whole = Reader {
            msg: self.msg,
            at: r.at,
        };
        let name = whole.name()?;
        if whole.at > r.msg.len() {
            return Err("has an answer record whose data length does not fit its type");
        }
        r.at = whole.at;
        Ok(name)
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
