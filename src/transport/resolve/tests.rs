use super::*;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Condvar;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// A resolver that blocks every lookup until the gate opens, and counts
/// the lookups it started.
struct Gated {
    open: Mutex<bool>,
    opened: Condvar,
    started: AtomicUsize,
}

impl Gated {
    fn new() -> Arc<Gated> {
        Arc::new(Gated {
            open: Mutex::new(false),
            opened: Condvar::new(),
            started: AtomicUsize::new(0),
        })
    }

    fn open(&self) {
        *lock(&self.open) = true;
        self.opened.notify_all();
    }
}

impl Resolve for Arc<Gated> {
    fn resolve(&self, _host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let mut open = lock(&self.open);
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        Ok(vec![loopback(port)])
    }
}

#[test]
fn answers_come_back_through_the_callback() {
    let resolver = Resolver::new(
        Arc::new(|_: &str, port| Ok(vec![loopback(port)])),
        "t-resolve".into(),
    );
    let (tx, rx) = mpsc::channel();
    let lookup = resolver.lookup("example.test", 8080, move || tx.send(()).unwrap());
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let addrs = lookup.take().unwrap().unwrap();
    assert_eq!(addrs, [loopback(8080)]);
    assert!(lookup.take().is_none(), "an answer is taken once");
}

#[test]
fn a_resolver_that_never_answers_holds_at_most_the_pool() {
    let gate = Gated::new();
    let resolver = Resolver::new(Arc::new(Arc::clone(&gate)), "t-stuck".into());
    let answered = Arc::new(AtomicUsize::new(0));
    let lookups: Vec<Lookup> = (0..50)
        .map(|i| {
            let answered = Arc::clone(&answered);
            resolver.lookup(&format!("h{i}.test"), 1, move || {
                answered.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    // Every thread the pool may have is stuck; the rest wait their turn.
    let end = crate::clock::mono_now() + Duration::from_secs(5);
    while gate.started.load(Ordering::SeqCst) < MAX_RESOLVER_THREADS {
        assert!(crate::clock::mono_now() < end, "lookups did not start");
        crate::clock::sleep(Duration::from_millis(1));
    }
    assert_eq!(resolver.pool.threads().0, MAX_RESOLVER_THREADS);
    assert_eq!(gate.started.load(Ordering::SeqCst), MAX_RESOLVER_THREADS);
    // The runs give up (their deadlines pass): every lookup is abandoned.
    drop(lookups);
    gate.open();
    let end = crate::clock::mono_now() + Duration::from_secs(5);
    let busy = |r: &Resolver| {
        let (threads, idle) = r.pool.threads();
        threads > 0 && idle < threads
    };
    while busy(&resolver) {
        assert!(crate::clock::mono_now() < end, "threads did not go idle");
        crate::clock::sleep(Duration::from_millis(1));
    }
    // The abandoned lookups were skipped, not resolved.
    assert_eq!(gate.started.load(Ordering::SeqCst), MAX_RESOLVER_THREADS);
    assert_eq!(
        answered.load(Ordering::SeqCst),
        0,
        "nobody wanted the answers"
    );
    resolver.stop();
}

#[test]
fn a_kept_lookup_is_answered_after_the_queue_drains() {
    let gate = Gated::new();
    let resolver = Resolver::new(Arc::new(Arc::clone(&gate)), "t-queue".into());
    let (tx, rx) = mpsc::channel();
    let lookups: Vec<Lookup> = (0..(MAX_RESOLVER_THREADS + 3) as u16)
        .map(|i| {
            let tx = tx.clone();
            resolver.lookup("queued.test", i, move || tx.send(i).unwrap())
        })
        .collect();
    gate.open();
    let mut got: Vec<u16> = (0..lookups.len())
        .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..lookups.len() as u16).collect::<Vec<_>>());
    for (i, l) in lookups.iter().enumerate() {
        assert_eq!(l.take().unwrap().unwrap(), [loopback(i as u16)]);
    }
    assert!(resolver.pool.threads().0 <= MAX_RESOLVER_THREADS);
    resolver.stop();
}

#[test]
fn a_stopped_pool_answers_with_an_error_at_once() {
    let resolver = Resolver::new(Arc::new(SystemResolver), "t-stop".into());
    resolver.stop();
    let called = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&called);
    let lookup = resolver.lookup("localhost", 1, move || {
        c.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(called.load(Ordering::SeqCst), 1);
    assert!(lookup.take().unwrap().is_err());
}

#[test]
fn a_panicking_resolver_fails_its_lookup_and_the_pool_serves_on() {
    // More panics than the pool has threads: were a panic to end its
    // thread uncounted, the pool would believe every thread busy and no
    // lookup would run again.
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let resolver = Resolver::new(
        Arc::new(move |_: &str, port| {
            if seen.fetch_add(1, Ordering::SeqCst) < 2 * MAX_RESOLVER_THREADS {
                panic!("resolver exploded");
            }
            Ok(vec![loopback(port)])
        }),
        "t-panic".into(),
    );
    let ask = |port| {
        let (tx, rx) = mpsc::channel();
        let lookup = resolver.lookup("boom.test", port, move || tx.send(()).unwrap());
        rx.recv_timeout(Duration::from_secs(5))
            .expect("every lookup is answered");
        lookup.take().unwrap()
    };
    for port in 0..2 * MAX_RESOLVER_THREADS as u16 {
        let err = ask(port).unwrap_err();
        assert_eq!(err.to_string(), "resolver panicked: resolver exploded");
    }
    assert_eq!(ask(7).unwrap(), [loopback(7)]);
    resolver.stop();
}
