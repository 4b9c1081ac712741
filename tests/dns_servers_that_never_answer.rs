//! G13 for the `dns` kind: 200 `dns` probes ask a resolver that reads
//! every query and never answers, next to healthy `dns` probes on the
//! default two workers. The healthy probes keep every slot, the engine's
//! threads do not grow, and a reset closes every socket the hung runs held.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{
    Guarantees, TempDir, collect_until, open_fds, probe_results, threads_named, wait_until,
};
use probewheel::{Builder, Event, Status};

const FLOOR: Duration = Duration::from_millis(200);
const HUNG: usize = 200;
const HEALTHY: usize = 4;

/// A UDP socket on 127.0.0.1 served by a thread until dropped.
struct Server {
    addr: SocketAddr,
    /// The peers that sent a query.
    peers: Arc<Mutex<HashSet<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    /// `answer`: reply to each query with one A record (10.0.0.1), or
    /// read it and stay silent.
    fn start(answer: bool) -> Server {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let peers = Arc::new(Mutex::new(HashSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (Arc::clone(&peers), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stopped.load(Ordering::SeqCst) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                seen.lock().unwrap().insert(peer);
                if answer && let Some(reply) = a_record(&buf[..n]) {
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        Server {
            addr,
            peers,
            stop,
            thread: Some(thread),
        }
    }

    fn peers(&self) -> usize {
        self.peers.lock().unwrap().len()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The reply to a one-question query: its question echoed, one A record
/// 10.0.0.1 owned by the question's name (a pointer to it).
fn a_record(query: &[u8]) -> Option<Vec<u8>> {
    let question = query.get(12..)?;
    let mut reply = query.get(..2)?.to_vec();
    reply.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    reply.extend_from_slice(question);
    reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
    Some(reply)
}

fn declarations(hung: usize, silent: SocketAddr, healthy: SocketAddr) -> String {
    let mut d = serde_json::Map::new();
    for i in 0..hung {
        d.insert(
            format!("hung-{i:03}"),
            serde_json::json!({"kind": "dns", "mode": "enforce", "timeoutSecs": 120,
                "name": format!("n{i}.example.com"), "server": silent.to_string()}),
        );
    }
    for i in 0..HEALTHY {
        d.insert(
            format!("healthy-{i}"),
            serde_json::json!({"kind": "dns", "mode": "enforce", "intervalSeconds": 0,
                "name": "ok.example.com", "server": healthy.to_string(),
                "expectAnswer": "A 10.0.0.1"}),
        );
    }
    serde_json::Value::Object(d).to_string()
}

fn tasks() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn dns_probes_whose_server_never_answers_delay_no_other_probe_nor_add_threads() {
    let silent = Server::start(false);
    let healthy = Server::start(true);
    let dir = TempDir::new("dns-hung");
    let path = dir.write("d.json", &declarations(HUNG, silent.addr, healthy.addr));
    let (engine, rx) = Builder::new()
        .declarations_path(&path)
        .min_interval(FLOOR)
        .thread_name("dnsiso")
        .build()
        .unwrap();
    engine.reset("r").unwrap();

    let mut events = collect_until(&rx, Duration::from_secs(30), |evs| {
        !probe_results(evs, "healthy-0").is_empty()
    });
    let threads_before = tasks();
    // Every hung probe has sent its query and waits.
    events.extend(collect_until(&rx, Duration::from_secs(60), |_| {
        silent.peers() >= HUNG
    }));
    let fds_waiting = open_fds();
    // And the healthy ones keep getting their slots while they all wait.
    let mark = events.len();
    events.extend(collect_until(&rx, Duration::from_secs(60), |evs| {
        (0..HEALTHY).all(|i| probe_results(evs, &format!("healthy-{i}")).len() >= 10)
    }));
    assert!(events.len() > mark);

    for i in 0..HEALTHY {
        let name = format!("healthy-{i}");
        let results = probe_results(&events, &name);
        for r in &results {
            assert_eq!(r.status, Status::Pass, "{r:?}");
            assert_eq!(r.skipped_ticks, 0, "{r:?}");
        }
        // One result per slot, none missing.
        for pair in results.windows(2) {
            assert_eq!(pair[1].tick, pair[0].tick + 1, "{name}: {pair:?}");
        }
    }
    // No hung probe has a result: each waits for its own timeout.
    assert!(events.iter().all(|e| {
        !e.probe_name()
            .is_some_and(|n| n.starts_with("hung-") && e.name() == "probeResult")
    }));
    // 200 runs wait: the engine still has its thread and its two workers,
    // and the process no more threads than before they began waiting.
    let named = threads_named("dnsiso");
    let count = |p: &str| named.iter().filter(|t| t.starts_with(p)).count();
    assert_eq!(count("dnsiso-engine"), 1, "{named:?}");
    assert_eq!(count("dnsiso-worker-"), 2, "{named:?}");
    assert_eq!(named.len(), 3, "{named:?}");
    assert!(tasks() <= threads_before, "{} > {threads_before}", tasks());

    // A reset to a file without the hung probes closes their sockets.
    std::fs::write(&path, declarations(0, silent.addr, healthy.addr)).unwrap();
    engine.reset("r2").unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || open_fds() + HUNG <= fds_waiting),
        "{} descriptors open, {fds_waiting} while {HUNG} runs waited",
        open_fds()
    );

    let mut g = Guarantees::new(FLOOR);
    for e in &events {
        g.check(e).unwrap();
    }
    engine.shutdown().unwrap();
    let _: Vec<Event> = rx.try_iter().collect();
}
