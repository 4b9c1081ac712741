use std::net::IpAddr;

use proptest::prelude::*;

use super::super::testing::{Msg, Rr, rdata, wire_name};
use super::*;

fn reply_to(name: &str, qtype: u16) -> Msg {
    Msg {
        id: 0x1234,
        flags: 0x8180,
        question: Some((wire_name(name), qtype, CLASS_IN)),
        answers: Vec::new(),
        authority: Vec::new(),
        additional: Vec::new(),
    }
}

fn texts(msg: &Msg) -> Vec<String> {
    let reply = parse(&msg.encode()).unwrap();
    reply.answers.into_iter().map(|r| r.text).collect()
}

#[test]
fn a_query_is_one_question_of_class_in_with_recursion_desired() {
    let name = Name::parse("Example.COM.").unwrap();
    let q = query(0xbeef, &name, RType::Mx.code());
    assert_eq!(
        q,
        b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07Example\x03COM\x00\x00\x0f\x00\x01"
    );
}

#[test]
fn names_are_read_as_people_write_them() {
    assert_eq!(Name::parse(".").unwrap().wire(), b"\0");
    assert_eq!(Name::parse("a.b").unwrap(), Name::parse("a.b.").unwrap());
    assert_eq!(
        Name::parse("_sip._tcp.example.com").unwrap().to_string(),
        "_sip._tcp.example.com."
    );
    assert!(Name::parse("*.example.com").is_ok());
    assert!(Name::parse("").is_err());
    assert!(Name::parse("a..b").is_err());
    assert!(Name::parse("..").is_err());
    assert!(Name::parse("a b").unwrap_err().contains("' '"));
    assert!(
        Name::parse(&"a".repeat(64))
            .unwrap_err()
            .contains("longer than 63")
    );
    assert!(Name::parse(&"a".repeat(63)).is_ok());
    let long = [
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61),
    ]
    .join(".");
    assert_eq!(long.len(), 253);
    assert!(Name::parse(&long).is_ok());
    assert!(
        Name::parse(&format!("{long}e"))
            .unwrap_err()
            .contains("longer than 253")
    );
    assert!(
        Name::parse("a.b")
            .unwrap()
            .same(&Name::parse("A.B").unwrap())
    );
}

#[test]
fn reverse_names_of_addresses() {
    let v4: IpAddr = "192.0.2.10".parse().unwrap();
    assert_eq!(Name::reverse(v4).to_string(), "10.2.0.192.in-addr.arpa.");
    let v6: IpAddr = "2001:db8::567:89ab".parse().unwrap();
    assert_eq!(
        Name::reverse(v6).to_string(),
        "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
    );
}

#[test]
fn each_type_has_its_text_form() {
    let msg = reply_to("example.com", 255)
        .answer("example.com", 1, rdata::a("10.0.0.1"))
        .answer("example.com", 28, rdata::aaaa("2001:db8::1"))
        .answer("www.example.com", 5, rdata::name("example.com"))
        .answer("example.com", 15, rdata::mx(10, "mail.example.com"))
        .answer(
            "example.com",
            16,
            rdata::txt(&[b"v=spf1 -all", b"say \"hi\"\\\x07"]),
        )
        .answer(
            "_sip._tcp.example.com",
            33,
            rdata::srv(0, 5, 5060, "sip.example.com"),
        )
        .answer("example.com", 2, rdata::name("ns1.example.com"))
        .answer(
            "example.com",
            6,
            rdata::soa(
                "ns.example.com",
                "noc.example.com",
                [1000, 7200, 3600, 1209600, 3600],
            ),
        )
        .answer("1.0.0.10.in-addr.arpa", 12, rdata::name("host.example.com"))
        .answer("example.com", 99, vec![0xde, 0xad])
        .answer("example.com", 65, vec![]);
    assert_eq!(
        texts(&msg),
        [
            "A 10.0.0.1",
            "AAAA 2001:db8::1",
            "CNAME example.com.",
            "MX 10 mail.example.com.",
            r#"TXT "v=spf1 -all" "say \"hi\"\\\007""#,
            "SRV 0 5 5060 sip.example.com.",
            "NS ns1.example.com.",
            "SOA ns.example.com. noc.example.com. 1000 7200 3600 1209600 3600",
            "PTR host.example.com.",
            r"TYPE99 \# 2 dead",
            r"TYPE65 \# 0",
        ]
    );
}

#[test]
fn compressed_names_are_followed() {
    // Question example.com at 12; the answer's owner points to it, and
    // the CNAME target is "www" + a pointer to it.
    let mut m = reply_to("example.com", 5).encode();
    m[7] = 1; // one answer
    m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6]);
    m.extend_from_slice(b"\x03www\xc0\x0c");
    let reply = parse(&m).unwrap();
    assert_eq!(reply.answers[0].text, "CNAME www.example.com.");
    assert_eq!(
        reply.question.unwrap().name,
        Name::parse("example.com").unwrap()
    );
}

#[test]
fn malformed_messages_are_refused_by_what_is_wrong() {
    let base = reply_to("example.com", 1)
        .answer("example.com", 1, rdata::a("10.0.0.1"))
        .encode();
    assert_eq!(parse(&base[..5]), Err("shorter than a DNS header"));
    assert_eq!(parse(&base[..20]), Err("ends inside a name"));
    assert_eq!(
        parse(&base[..base.len() - 1]),
        Err("ends inside an answer record's data")
    );
    // An A record of 5 bytes.
    let mut long = reply_to("example.com", 1)
        .answer("example.com", 1, vec![10, 0, 0, 1, 9])
        .encode();
    assert_eq!(
        parse(&long),
        Err("has an answer record whose data length does not fit its type")
    );
    // A pointer to itself, and one forward.
    long = reply_to("example.com", 1).encode();
    long[7] = 1;
    let at = u8::try_from(long.len()).unwrap();
    long.extend_from_slice(&[0xc0, at]);
    assert_eq!(
        parse(&long),
        Err("has a name compression pointer that does not point back")
    );
    // A label type 0b01.
    let mut odd = reply_to("example.com", 1).encode();
    odd[12] = 0x41;
    assert_eq!(parse(&odd), Err("has a name with an unknown label type"));
    // A name data field ending past its record.
    let mut cname = reply_to("example.com", 5)
        .answer("example.com", 5, rdata::name("a.example.com"))
        .encode();
    let len_at = cname.len() - 15 - 2;
    cname[len_at + 1] = 3;
    assert!(parse(&cname).is_err());
}

#[test]
fn a_truncated_reply_is_read_up_to_its_question() {
    let mut m = reply_to("example.com", 1).truncated().encode();
    m[7] = 9; // nine answers announced, none there
    let reply = parse(&m).unwrap();
    assert!(reply.truncated());
    assert!(reply.answers.is_empty());
}

#[test]
fn rcodes_by_name() {
    assert_eq!(rcode_of("NOERROR"), Some(0));
    assert_eq!(rcode_of("servfail"), Some(2));
    assert_eq!(rcode_of("NXDOMAIN"), Some(3));
    assert_eq!(rcode_of("REFUSED"), Some(5));
    assert_eq!(rcode_of("BADVERS"), None);
    assert_eq!(rcode_name(3), "NXDOMAIN");
    assert_eq!(rcode_name(15), "RCODE15");
}

// ---------------------------------------------------------------------------
// Properties

/// A label of bytes a name may hold on the wire (any byte at all).
fn label() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 1..12)
}

fn name() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(label(), 0..5)
}

fn wire_of(labels: &[Vec<u8>]) -> Vec<u8> {
    let mut w = Vec::new();
    for l in labels {
        w.push(u8::try_from(l.len()).unwrap());
        w.extend_from_slice(l);
    }
    w.push(0);
    w
}

/// A record and its expected text form, built independently of the
/// decoder.
fn record() -> impl Strategy<Value = (u16, Vec<u8>, String)> {
    let show = |labels: &[Vec<u8>]| Name::from_wire_for_tests(wire_of(labels)).to_string();
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| (
            1,
            b.to_vec(),
            format!("A {}", std::net::Ipv4Addr::from(b))
        )),
        any::<[u8; 16]>().prop_map(|b| (
            28,
            b.to_vec(),
            format!("AAAA {}", std::net::Ipv6Addr::from(b))
        )),
        name().prop_map(move |n| (5, wire_of(&n), format!("CNAME {}", show(&n)))),
        (any::<u16>(), name()).prop_map(move |(p, n)| {
            let mut d = p.to_be_bytes().to_vec();
            d.extend(wire_of(&n));
            (15, d, format!("MX {p} {}", show(&n)))
        }),
        prop::collection::vec("[ -~]{0,20}", 1..3).prop_map(|strings| {
            let mut d = Vec::new();
            let mut shown = Vec::new();
            for s in &strings {
                d.push(u8::try_from(s.len()).unwrap());
                d.extend_from_slice(s.as_bytes());
                shown.push(format!(
                    "\"{}\"",
                    s.replace('\\', "\\\\").replace('"', "\\\"")
                ));
            }
            (16, d, format!("TXT {}", shown.join(" ")))
        }),
        (any::<[u16; 3]>(), name()).prop_map(move |(n, t)| {
            let mut d = Vec::new();
            for x in n {
                d.extend_from_slice(&x.to_be_bytes());
            }
            d.extend(wire_of(&t));
            (
                33,
                d,
                format!("SRV {} {} {} {}", n[0], n[1], n[2], show(&t)),
            )
        }),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(|d| {
            let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
            let text = if d.is_empty() {
                r"TYPE200 \# 0".to_owned()
            } else {
                format!(r"TYPE200 \# {} {hex}", d.len())
            };
            (200, d, text)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn replies_round_trip(
        id in any::<u16>(),
        rcode in 0u8..16,
        qname in name(),
        qtype in any::<u16>(),
        records in prop::collection::vec(record(), 0..6),
    ) {
        let mut msg = Msg {
            id,
            flags: 0x8000 | u16::from(rcode),
            question: Some((wire_of(&qname), qtype, CLASS_IN)),
            answers: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
        };
        for (rtype, data, _) in &records {
            msg.answers.push(Rr { name: wire_of(&qname), rtype: *rtype, class: 1, ttl: 1, data: data.clone() });
        }
        // Authority and additional sections are skipped unread.
        msg.additional.push(Rr::new("ns.example", 1, vec![1, 2, 3, 4]));
        let reply = parse(&msg.encode()).unwrap();
        prop_assert_eq!(reply.id, id);
        prop_assert_eq!(reply.rcode(), rcode);
        prop_assert!(reply.is_response());
        let q = reply.question.unwrap();
        prop_assert_eq!(q.name.wire(), &wire_of(&qname)[..]);
        prop_assert_eq!(q.qtype, qtype);
        let got: Vec<&str> = reply.answers.iter().map(|r| r.text.as_str()).collect();
        let want: Vec<&str> = records.iter().map(|(_, _, t)| t.as_str()).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn queries_round_trip(labels in prop::collection::vec("[a-z0-9_-]{1,20}", 0..6), t in 0usize..9) {
        let text = if labels.is_empty() { ".".to_owned() } else { labels.join(".") };
        let name = Name::parse(&text).unwrap();
        let rtype = RType::ALL[t];
        let q = query(7, &name, rtype.code());
        let read = parse(&q).unwrap();
        prop_assert!(!read.is_response());
        prop_assert_eq!(read.question.unwrap(), Question { name: name.clone(), qtype: rtype.code(), qclass: CLASS_IN });
        let shown = if labels.is_empty() { ".".to_owned() } else { format!("{text}.") };
        prop_assert_eq!(name.to_string(), shown);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse(&bytes);
        let _ = id_of(&bytes);
    }

    #[test]
    fn damaged_replies_never_panic(
        records in prop::collection::vec(record(), 1..4),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut msg = reply_to("example.com", 1);
        for (rtype, data, _) in records {
            msg.answers.push(Rr::new("example.com", rtype, data));
        }
        let mut bytes = msg.encode();
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let _ = parse(&bytes);
        let n = cut.index(bytes.len() + 1);
        let _ = parse(&bytes[..n]);
    }

    #[test]
    fn any_text_as_a_name_is_parsed_or_refused(text in "\\PC{0,80}") {
        if let Ok(name) = Name::parse(&text) {
            prop_assert!(name.wire().len() <= 255);
            prop_assert_eq!(Name::parse(&name.to_string()), Ok(name));
        }
    }
}
