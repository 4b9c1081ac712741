//! Just enough DER to read a certificate's subject and validity for
//! `minCertValidityDays` (an X.509 crate would bring a dozen dependencies
//! for two fields): strict DER, up to the subject and no further.

use crate::clock::UtcSeconds;

/// What a check of remaining validity needs from one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertInfo {
    /// The subject, RFC 4514 style (`CN=api,O=Example`), or `""` when empty.
    pub(crate) subject: String,
    /// notBefore, seconds since the Unix epoch.
    pub(crate) not_before: i64,
    /// notAfter, seconds since the Unix epoch.
    pub(crate) not_after: i64,
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0; // [0] EXPLICIT, constructed
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// Reads the subject and validity of a DER certificate.
pub(crate) fn cert_info(der: &[u8]) -> Result<CertInfo, String> {
    let mut outer = Reader::new(der);
    let cert = outer.expect(SEQUENCE, "Certificate")?;
    let mut cert = Reader::new(cert);
    let tbs = cert.expect(SEQUENCE, "TBSCertificate")?;
    let mut tbs = Reader::new(tbs);
    if tbs.peek() == Some(VERSION) {
        tbs.next()?;
    }
    tbs.expect(INTEGER, "serialNumber")?;
    tbs.expect(SEQUENCE, "signature")?;
    tbs.expect(SEQUENCE, "issuer")?;
    let validity = tbs.expect(SEQUENCE, "validity")?;
    let subject = tbs.expect(SEQUENCE, "subject")?;
    let mut validity = Reader::new(validity);
    let not_before = time(&mut validity, "notBefore")?;
    let not_after = time(&mut validity, "notAfter")?;
    Ok(CertInfo {
        subject: name(subject)?,
        not_before,
        not_after,
    })
}

/// The OID that `bytes` start with, dotted (`1.2.840.10045.4.3.2`): the
/// algorithm of an AlgorithmIdentifier's contents.
pub(crate) fn leading_oid(bytes: &[u8]) -> Option<String> {
    match Reader::new(bytes).next() {
        Ok((OID, oid)) if !oid.is_empty() => Some(dotted(oid)),
        _ => None,
    }
}

/// `2026-12-05T00:00:00Z`: a certificate date as the failure reasons show it.
pub(crate) fn format_utc(unix_secs: i64) -> String {
    UtcSeconds(unix_secs).to_string()
}

/// A cursor over a run of DER TLVs.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next TLV: its tag and contents.
    fn next(&mut self) -> Result<(u8, &'a [u8]), String> {
        let (&tag, rest) = self.rest.split_first().ok_or("truncated: no tag")?;
        if tag & 0x1f == 0x1f {
            return Err(format!("unsupported long-form tag {tag:#04x}"));
        }
        let (&first, mut rest) = rest.split_first().ok_or("truncated: no length")?;
        let len = match first {
            0..=0x7f => usize::from(first),
            0x80 => return Err("indefinite length (not DER)".into()),
            0x81..=0x84 => {
                let n = usize::from(first & 0x7f);
                if rest.len() < n {
                    return Err("truncated length".into());
                }
                let (bytes, after) = rest.split_at(n);
                rest = after;
                bytes
                    .iter()
                    .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
            }
            _ => return Err(format!("length of {} bytes is too long", first & 0x7f)),
        };
        if rest.len() < len {
            return Err(format!(
                "truncated: {len} bytes announced, {} left",
                rest.len()
            ));
        }
        let (contents, after) = rest.split_at(len);
        self.rest = after;
        Ok((tag, contents))
    }

    /// The contents of the next TLV, which must have tag `tag`.
    fn expect(&mut self, tag: u8, what: &str) -> Result<&'a [u8], String> {
        let (got, contents) = self.next().map_err(|e| format!("{what}: {e}"))?;
        if got != tag {
            return Err(format!("{what}: expected tag {tag:#04x}, found {got:#04x}"));
        }
        Ok(contents)
    }
}

/// A UTCTime or GeneralizedTime, in seconds since the Unix epoch.
fn time(r: &mut Reader<'_>, what: &str) -> Result<i64, String> {
    let (tag, bytes) = r.next().map_err(|e| format!("{what}: {e}"))?;
    if !bytes.is_ascii() {
        return Err(format!("{what}: not ASCII"));
    }
    // ASCII, so every byte index below is a char boundary.
    let text = std::str::from_utf8(bytes).map_err(|_| format!("{what}: not ASCII"))?;
    // DER fixes both forms: seconds present, no fraction, `Z`.
    let digits = match (tag, text.len()) {
        (UTC_TIME, 13) | (GENERALIZED_TIME, 15) => &text[..text.len() - 1],
        (UTC_TIME | GENERALIZED_TIME, _) => {
            return Err(format!("{what}: not a DER time: {text:?}"));
        }
        (other, _) => return Err(format!("{what}: expected a time, found tag {other:#04x}")),
    };
    if !text.ends_with('Z') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what}: not a DER time: {text:?}"));
    }
    // All ASCII digits: every pair (and the year) parses.
    let field = |at: usize, len: usize| digits[at..at + len].parse::<i64>().unwrap_or(-1);
    let (year, rest) = if tag == UTC_TIME {
        // RFC 5280 4.1.2.5.1: YY >= 50 is 19YY, else 20YY.
        let yy = field(0, 2);
        (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
    } else {
        (field(0, 4), 4)
    };
    let pair = |i: usize| field(rest + 2 * i, 2);
    crate::clock::unix_secs_utc(year, pair(0), pair(1), pair(2), pair(3), pair(4))
        .ok_or_else(|| format!("{what}: no such date or time: {text:?}"))
}

/// A Name (RDNSequence) in RFC 4514 order: last RDN first.
fn name(bytes: &[u8]) -> Result<String, String> {
    let mut rdns = Vec::new();
    let mut seq = Reader::new(bytes);
    while !seq.is_empty() {
        let set = seq.expect(SET, "subject")?;
        let mut set = Reader::new(set);
        let mut parts = Vec::new();
        while !set.is_empty() {
            let atv = set.expect(SEQUENCE, "subject attribute")?;
            let mut atv = Reader::new(atv);
            let oid = atv.expect(OID, "subject attribute type")?;
            let (tag, value) = atv.next().map_err(|e| format!("subject value: {e}"))?;
            parts.push(format!(
                "{}={}",
                attribute_name(oid),
                string_value(tag, value)
            ));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// The RFC 4514 short name of an attribute type, or its dotted OID.
fn attribute_name(oid: &[u8]) -> String {
    // 2.5.4.x: the X.520 attribute types.
    let short = match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "STREET",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x55, 0x04, 0x05] => "serialNumber",
        // 0.9.2342.19200300.100.1.25
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        // 1.2.840.113549.1.9.1
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
        _ => return dotted(oid),
    };
    short.to_owned()
}

fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for &b in oid {
        acc = acc.saturating_mul(128) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        }
    }
    let parts: Vec<String> = arcs.iter().map(u64::to_string).collect();
    parts.join(".")
}

/// A directory string as text; control characters become `?` (the value
/// comes from the server and ends up in a failure reason).
fn string_value(tag: u8, bytes: &[u8]) -> String {
    let text: String = match tag {
        // UTF8String, PrintableString, IA5String, VisibleString
        0x0c | 0x13 | 0x16 | 0x1a => String::from_utf8_lossy(bytes).into_owned(),
        // TeletexString: in practice Latin-1
        0x14 => bytes.iter().map(|&b| char::from(b)).collect(),
        // BMPString: UTF-16BE
        0x1e => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        // UniversalString: UTF-32BE
        0x1c => bytes
            .chunks_exact(4)
            .map(|c| {
                char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect(),
        _ => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            return format!("#{hex}");
        }
    };
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-made TBSCertificate skeleton around `validity` and `subject`.
    fn cert(validity: &[u8], subject: &[u8]) -> Vec<u8> {
        let mut tbs = Vec::new();
        tbs.extend([0xa0, 0x03, 0x02, 0x01, 0x02]); // version v3
        tbs.extend([0x02, 0x01, 0x01]); // serial 1
        tbs.extend([0x30, 0x00]); // signature algorithm (empty: not read)
        tbs.extend([0x30, 0x00]); // issuer
        tbs.extend(tlv(0x30, validity));
        tbs.extend(tlv(0x30, subject));
        tlv(0x30, &tlv(0x30, &tbs))
    }

    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match contents.len() {
            n @ 0..=0x7f => out.push(n as u8),
            n @ 0x80..=0xff => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend(contents);
        out
    }

    fn cn(value: &str) -> Vec<u8> {
        let mut atv = tlv(0x06, &[0x55, 0x04, 0x03]);
        atv.extend(tlv(0x0c, value.as_bytes()));
        tlv(0x31, &tlv(0x30, &atv))
    }

    fn org(value: &str) -> Vec<u8> {
        let mut atv = tlv(0x06, &[0x55, 0x04, 0x0a]);
        atv.extend(tlv(0x13, value.as_bytes()));
        tlv(0x31, &tlv(0x30, &atv))
    }

    fn validity(before: (u8, &str), after: (u8, &str)) -> Vec<u8> {
        let mut v = tlv(before.0, before.1.as_bytes());
        v.extend(tlv(after.0, after.1.as_bytes()));
        v
    }

    #[test]
    fn reads_subject_and_validity() {
        let mut subject = org("Example");
        subject.extend(cn("api.example"));
        let der = cert(
            &validity((0x17, "250101000000Z"), (0x18, "20261205123456Z")),
            &subject,
        );
        let info = cert_info(&der).unwrap();
        assert_eq!(info.subject, "CN=api.example,O=Example");
        assert_eq!(format_utc(info.not_before), "2025-01-01T00:00:00Z");
        assert_eq!(format_utc(info.not_after), "2026-12-05T12:34:56Z");
    }

    #[test]
    fn utc_time_pivots_at_1950() {
        let der = cert(
            &validity((0x17, "500101000000Z"), (0x17, "491231235959Z")),
            &[],
        );
        let info = cert_info(&der).unwrap();
        assert_eq!(format_utc(info.not_before), "1950-01-01T00:00:00Z");
        assert_eq!(format_utc(info.not_after), "2049-12-31T23:59:59Z");
        assert_eq!(info.subject, "");
    }

    #[test]
    fn rejects_times_that_are_not_der() {
        for (tag, text) in [
            (0x17, "2501010000Z"),       // no seconds
            (0x17, "250101000000+0100"), // offset
            (0x18, "20250101000000.5Z"), // fraction
            (0x18, "2025013100000aZ"),
            (0x18, "20250231000000Z"), // no 31 February
            (0x04, "20250101000000Z"), // octet string
        ] {
            let der = cert(&validity((0x17, "250101000000Z"), (tag, text)), &[]);
            let err = cert_info(&der).unwrap_err();
            assert!(err.starts_with("notAfter:"), "{text}: {err}");
        }
    }

    #[test]
    fn rejects_indefinite_and_oversized_lengths() {
        assert!(
            cert_info(&[0x30, 0x80, 0x00, 0x00])
                .unwrap_err()
                .contains("indefinite")
        );
        assert!(
            cert_info(&[0x30, 0x85, 1, 0, 0, 0, 0])
                .unwrap_err()
                .contains("too long")
        );
        assert!(
            cert_info(&[0x30, 0x05, 0x30])
                .unwrap_err()
                .contains("truncated")
        );
        assert!(cert_info(&[]).unwrap_err().contains("truncated"));
    }

    #[test]
    fn every_prefix_of_a_certificate_is_an_error_not_a_panic() {
        let der = cert(
            &validity((0x17, "250101000000Z"), (0x17, "260101000000Z")),
            &cn("x"),
        );
        assert!(cert_info(&der).is_ok());
        for n in 0..der.len() {
            assert!(cert_info(&der[..n]).is_err(), "prefix of {n} bytes");
        }
    }

    #[test]
    fn unknown_attributes_show_their_oid_and_odd_values_are_tamed() {
        // 1.3.6.1.4.1.311.60.2.1.3 with an OCTET STRING value
        let mut atv = tlv(
            0x06,
            &[
                0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x3c, 0x02, 0x01, 0x03,
            ],
        );
        atv.extend(tlv(0x04, &[0xde, 0xad]));
        let mut subject = tlv(0x31, &tlv(0x30, &atv));
        subject.extend(cn("line\nbreak"));
        let der = cert(
            &validity((0x17, "250101000000Z"), (0x17, "260101000000Z")),
            &subject,
        );
        assert_eq!(
            cert_info(&der).unwrap().subject,
            "CN=line?break,1.3.6.1.4.1.311.60.2.1.3=#dead"
        );
    }

    #[test]
    fn bmp_strings_decode() {
        let mut atv = tlv(0x06, &[0x55, 0x04, 0x03]);
        atv.extend(tlv(0x1e, &[0x00, 0x68, 0x00, 0xe9]));
        let der = cert(
            &validity((0x17, "250101000000Z"), (0x17, "260101000000Z")),
            &tlv(0x31, &tlv(0x30, &atv)),
        );
        assert_eq!(cert_info(&der).unwrap().subject, "CN=hé");
    }

    mod never_panics {
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
                let _ = super::cert_info(&bytes);
            }

            #[test]
            fn on_mutated_certificates(flip in 0usize..200, to in any::<u8>()) {
                let mut der = super::cert(
                    &super::validity((0x17, "250101000000Z"), (0x18, "20260101000000Z")),
                    &super::cn("mutant"),
                );
                let i = flip % der.len();
                der[i] = to;
                let _ = super::cert_info(&der);
            }
        }
    }
}
