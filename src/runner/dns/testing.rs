//! A loopback DNS responder for the `dns` kind's tests, and the encoder of
//! the replies it sends: UDP and TCP on one ephemeral port of 127.0.0.1
//! or ::1, each query answered by a handler the test gives.

#![allow(clippy::disallowed_methods)] // the responder's threads wait on the real clock

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::wire::Name;

/// A query as the responder saw it.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub(crate) id: u16,
    pub(crate) flags: u16,
    /// The question's name in wire form, and as text.
    pub(crate) wire_name: Vec<u8>,
    pub(crate) name: String,
    pub(crate) qtype: u16,
    pub(crate) qclass: u16,
    /// Whether it came over TCP.
    pub(crate) tcp: bool,
    /// The raw message.
    pub(crate) raw: Vec<u8>,
}

impl Query {
    /// Whether it asks for recursion.
    pub(crate) fn rd(&self) -> bool {
        self.flags & 0x0100 != 0
    }

    /// A reply: the question echoed, QR (and RD as asked) set, `rcode`.
    pub(crate) fn reply(&self, rcode: u8) -> Msg {
        Msg {
            id: self.id,
            flags: 0x8000 | (self.flags & 0x0100) | u16::from(rcode),
            question: Some((self.wire_name.clone(), self.qtype, self.qclass)),
            answers: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
        }
    }

    pub(crate) fn read(raw: &[u8], tcp: bool) -> Option<Query> {
        let header = raw.get(..12)?;
        let mut at = 12;
        let mut wire_name = Vec::new();
        loop {
            let len = usize::from(*raw.get(at)?);
            wire_name.extend_from_slice(raw.get(at..at + 1 + len)?);
            at += 1 + len;
            if len == 0 {
                break;
            }
        }
        let tail = raw.get(at..at + 4)?;
        let name = Name::from_wire_for_tests(wire_name.clone()).to_string();
        Some(Query {
            id: u16::from_be_bytes([header[0], header[1]]),
            flags: u16::from_be_bytes([header[2], header[3]]),
            wire_name,
            name,
            qtype: u16::from_be_bytes([tail[0], tail[1]]),
            qclass: u16::from_be_bytes([tail[2], tail[3]]),
            tcp,
            raw: raw.to_vec(),
        })
    }
}

/// A message to encode.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub(crate) id: u16,
    pub(crate) flags: u16,
    pub(crate) question: Option<(Vec<u8>, u16, u16)>,
    pub(crate) answers: Vec<Rr>,
    pub(crate) authority: Vec<Rr>,
    pub(crate) additional: Vec<Rr>,
}

/// A resource record to encode (names uncompressed).
#[derive(Debug, Clone)]
pub(crate) struct Rr {
    pub(crate) name: Vec<u8>,
    pub(crate) rtype: u16,
    pub(crate) class: u16,
    pub(crate) ttl: u32,
    pub(crate) data: Vec<u8>,
}

impl Msg {
    /// Sets TC.
    pub(crate) fn truncated(mut self) -> Msg {
        self.flags |= 0x0200;
        self
    }

    /// Adds an answer record of class IN, TTL 3600, owned by `owner`.
    pub(crate) fn answer(mut self, owner: &str, rtype: u16, data: Vec<u8>) -> Msg {
        self.answers.push(Rr::new(owner, rtype, data));
        self
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        let count = |n: usize| u16::try_from(n).unwrap().to_be_bytes();
        out.extend_from_slice(&count(usize::from(self.question.is_some())));
        out.extend_from_slice(&count(self.answers.len()));
        out.extend_from_slice(&count(self.authority.len()));
        out.extend_from_slice(&count(self.additional.len()));
        if let Some((name, qtype, qclass)) = &self.question {
            out.extend_from_slice(name);
            out.extend_from_slice(&qtype.to_be_bytes());
            out.extend_from_slice(&qclass.to_be_bytes());
        }
        for rr in self
            .answers
            .iter()
            .chain(&self.authority)
            .chain(&self.additional)
        {
            out.extend_from_slice(&rr.name);
            out.extend_from_slice(&rr.rtype.to_be_bytes());
            out.extend_from_slice(&rr.class.to_be_bytes());
            out.extend_from_slice(&rr.ttl.to_be_bytes());
            out.extend_from_slice(&count(rr.data.len()));
            out.extend_from_slice(&rr.data);
        }
        out
    }
}

impl Rr {
    pub(crate) fn new(owner: &str, rtype: u16, data: Vec<u8>) -> Rr {
        Rr {
            name: wire_name(owner),
            rtype,
            class: 1,
            ttl: 3600,
            data,
        }
    }
}

/// A name's wire form.
pub(crate) fn wire_name(text: &str) -> Vec<u8> {
    Name::parse(text).unwrap().wire().to_vec()
}

/// Record data of each type.
pub(crate) mod rdata {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::wire_name;

    pub(crate) fn a(ip: &str) -> Vec<u8> {
        ip.parse::<Ipv4Addr>().unwrap().octets().to_vec()
    }

    pub(crate) fn aaaa(ip: &str) -> Vec<u8> {
        ip.parse::<Ipv6Addr>().unwrap().octets().to_vec()
    }

    pub(crate) fn name(target: &str) -> Vec<u8> {
        wire_name(target)
    }

    pub(crate) fn mx(pref: u16, target: &str) -> Vec<u8> {
        let mut d = pref.to_be_bytes().to_vec();
        d.extend(wire_name(target));
        d
    }

    pub(crate) fn srv(prio: u16, weight: u16, port: u16, target: &str) -> Vec<u8> {
        let mut d = Vec::new();
        for n in [prio, weight, port] {
            d.extend_from_slice(&n.to_be_bytes());
        }
        d.extend(wire_name(target));
        d
    }

    pub(crate) fn soa(mname: &str, rname: &str, numbers: [u32; 5]) -> Vec<u8> {
        let mut d = wire_name(mname);
        d.extend(wire_name(rname));
        for n in numbers {
            d.extend_from_slice(&n.to_be_bytes());
        }
        d
    }

    pub(crate) fn txt(strings: &[&[u8]]) -> Vec<u8> {
        let mut d = Vec::new();
        for s in strings {
            d.push(u8::try_from(s.len()).unwrap());
            d.extend_from_slice(s);
        }
        d
    }
}

/// What the responder does with a query: the replies to send (none: it
/// stays silent).
pub(crate) type Handler = Arc<dyn Fn(&Query) -> Vec<Vec<u8>> + Send + Sync>;

/// UDP and TCP on one loopback port, answering with a handler.
pub(crate) struct Responder {
    pub(crate) addr: SocketAddr,
    /// Every query received, in order.
    pub(crate) queries: Arc<Mutex<Vec<Query>>>,
    /// Peers of the UDP queries, in order.
    pub(crate) peers: Arc<Mutex<Vec<SocketAddr>>>,
    /// Accepted TCP connections the handler left unanswered, kept open.
    pub(crate) held: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Responder {
    /// On 127.0.0.1.
    pub(crate) fn start(handler: impl Fn(&Query) -> Vec<Vec<u8>> + Send + Sync + 'static) -> Self {
        Responder::on("127.0.0.1".parse().unwrap(), Arc::new(handler))
    }

    /// On `ip`, UDP and TCP on the same port.
    pub(crate) fn on(ip: IpAddr, handler: Handler) -> Responder {
        let (udp, tcp) = (0..50)
            .find_map(|_| {
                let udp = UdpSocket::bind((ip, 0)).unwrap();
                let port = udp.local_addr().unwrap().port();
                TcpListener::bind((ip, port)).ok().map(|tcp| (udp, tcp))
            })
            .expect("a port free for both UDP and TCP");
        let addr = udp.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(Mutex::new(Vec::new()));
        let peers = Arc::new(Mutex::new(Vec::new()));
        let held = Arc::new(Mutex::new(Vec::new()));
        let udp_thread = {
            let (stop, queries, peers, handler) = (
                Arc::clone(&stop),
                Arc::clone(&queries),
                Arc::clone(&peers),
                Arc::clone(&handler),
            );
            thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::SeqCst) {
                    let Ok((n, peer)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    let Some(q) = Query::read(&buf[..n], false) else {
                        continue;
                    };
                    queries.lock().unwrap().push(q.clone());
                    peers.lock().unwrap().push(peer);
                    for reply in handler(&q) {
                        let _ = udp.send_to(&reply, peer);
                    }
                }
            })
        };
        let tcp_thread = {
            let (stop, queries, held) =
                (Arc::clone(&stop), Arc::clone(&queries), Arc::clone(&held));
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok((mut s, _)) = tcp.accept() else {
                        continue;
                    };
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let Ok(q) = read_framed(&mut s) else { continue };
                    let Some(q) = Query::read(&q, true) else {
                        continue;
                    };
                    queries.lock().unwrap().push(q.clone());
                    let replies = handler(&q);
                    if replies.is_empty() {
                        held.lock().unwrap().push(s);
                        continue;
                    }
                    for reply in replies {
                        let len = u16::try_from(reply.len()).unwrap().to_be_bytes();
                        let _ = s.write_all(&len);
                        let _ = s.write_all(&reply);
                    }
                }
            })
        };
        Responder {
            addr,
            queries,
            peers,
            held,
            stop,
            threads: vec![udp_thread, tcp_thread],
        }
    }

    /// How many queries came.
    pub(crate) fn count(&self) -> usize {
        self.queries.lock().unwrap().len()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Both threads block on their sockets: a datagram and a connection
        // wake them to see `stop`.
        let from = UdpSocket::bind((self.addr.ip(), 0)).unwrap();
        let _ = from.send_to(b"", self.addr);
        let _ = TcpStream::connect(self.addr);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn read_framed(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut msg)?;
    Ok(msg)
}
