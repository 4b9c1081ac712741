//! G13: a probe that hangs never delays another.
//!
//! Next to healthy `tcp` probes, on the default two workers: `http` probes
//! against a server that accepts and never answers, `exec` probes whose
//! child never exits, and a `tcp` probe whose name never resolves. The
//! healthy probes keep every slot, on time, and the engine's threads do
//! not grow with the number of hung probes.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Guarantees, TempDir, collect_until, probe_results, threads_named};
use probewheel::{Builder, Event, Status};

const FLOOR: Duration = Duration::from_millis(200);

/// A server that accepts every connection and never answers; it keeps
/// them open until dropped.
struct Silent {
    port: u16,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Silent {
    fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&held);
        thread::spawn(move || {
            for s in listener.incoming().flatten() {
                keep.lock().unwrap().push(s);
            }
        });
        Silent { port, held }
    }
}

/// A server that accepts every connection and closes it at once.
fn open_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || for _ in listener.incoming() {});
    port
}

/// A resolver that answers `healthy.test` at once and never answers
/// anything else (until the test ends).
fn resolver(
    stuck: crossbeam_channel::Receiver<()>,
) -> impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static {
    move |host: &str, port: u16| {
        if host == "healthy.test" {
            return Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]);
        }
        let _ = stuck.recv(); // never sent: returns when the test drops it
        Err(io::Error::other("gave up"))
    }
}

fn declarations(hung_http: usize, hung_exec: usize, silent: u16, open: u16) -> serde_json::Value {
    let mut d = serde_json::Map::new();
    for i in 0..hung_http {
        d.insert(
            format!("hung-http-{i:03}"),
            serde_json::json!({"kind": "http", "mode": "enforce", "timeoutSecs": 60,
                "url": format!("http://127.0.0.1:{silent}/health")}),
        );
    }
    for i in 0..hung_exec {
        d.insert(
            format!("hung-exec-{i:03}"),
            serde_json::json!({"kind": "exec", "mode": "enforce", "timeoutSecs": 60,
                "command": ["sleep", "60"]}),
        );
    }
    d.insert(
        "unresolvable".into(),
        serde_json::json!({"kind": "tcp", "mode": "observe", "host": "never.test",
            "port": open, "connectTimeoutSecs": 1}),
    );
    for i in 0..10 {
        d.insert(
            format!("healthy-{i}"),
            serde_json::json!({"kind": "tcp", "mode": "enforce", "intervalSeconds": 0,
                "host": if i % 2 == 0 { "127.0.0.1" } else { "healthy.test" }, "port": open}),
        );
    }
    serde_json::Value::Object(d)
}

#[test]
fn hung_probes_never_delay_healthy_ones_nor_add_threads() {
    let silent = Silent::start();
    let open_port = open_port();
    let dir = TempDir::new("isolation");
    let (hung_http, hung_exec) = (48, 16);
    let decls = declarations(hung_http, hung_exec, silent.port, open_port);
    let (never_tx, never_rx) = crossbeam_channel::bounded::<()>(0);
    let (engine, rx) = Builder::new()
        .declarations_path(dir.write("d.json", &decls.to_string()))
        .min_interval(FLOOR)
        .thread_name("iso")
        .resolver(resolver(never_rx))
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    let start = Instant::now();

    // Every hung http probe is connected and waiting, and the probe that
    // never resolves has timed out at its connect timeout, 1 s.
    let events = collect_until(&rx, Duration::from_secs(20), |evs| {
        silent.held.lock().unwrap().len() >= hung_http
            && !probe_results(evs, "unresolvable").is_empty()
            && probe_results(evs, "healthy-0").len() >= 15
    });
    let waited = start.elapsed();
    let unresolvable = probe_results(&events, "unresolvable");
    assert_eq!(unresolvable[0].status, Status::Fail);
    let reason = unresolvable[0].failure_reason.as_deref().unwrap_or("");
    assert!(reason.contains("timed out"), "{reason}");
    assert!(
        unresolvable[0].duration_us < 1_500_000,
        "the lookup is abandoned at connectTimeoutSecs: {:?}",
        unresolvable[0]
    );

    // The healthy probes had every slot, on time.
    let slots = (waited.as_micros() / FLOOR.as_micros()) as usize;
    for i in 0..10 {
        let name = format!("healthy-{i}");
        let results = probe_results(&events, &name);
        assert!(
            results.len() + 3 >= slots,
            "{name}: {} results in {waited:?}",
            results.len()
        );
        for r in &results {
            assert_eq!(r.status, Status::Pass, "{r:?}");
            assert_eq!(r.skipped_ticks, 0, "{r:?}");
            // Today's lateness is tens of microseconds; a hung probe
            // holding a worker made it seconds.
            assert!(r.lateness_us < 100_000, "{r:?}");
        }
    }
    // No hung probe has a result (their timeouts are 60 s).
    assert!(events.iter().all(|e| {
        !e.probe_name()
            .is_some_and(|n| n.starts_with("hung-") && e.name() == "probeResult")
    }),);
    // 64 probes wait; the engine has its thread, its two workers, and at
    // most the resolver's four threads (one per lookup that never returns).
    let named = threads_named("iso-");
    let count = |p: &str| named.iter().filter(|t| t.starts_with(p)).count();
    assert_eq!(count("iso-engine"), 1, "{named:?}");
    assert_eq!(count("iso-worker-"), 2, "{named:?}");
    assert!(count("iso-resolve") <= 4, "{named:?}");
    assert!(named.len() <= 7, "{named:?}");

    let mut g = Guarantees::new(FLOOR);
    for e in &events {
        g.check(e).unwrap();
    }
    let t = Instant::now();
    engine.shutdown().unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    drop(never_tx);
    let _: Vec<Event> = rx.try_iter().collect();
}

#[test]
fn reset_and_shutdown_cancel_waiting_runs_promptly() {
    let silent = Silent::start();
    let dir = TempDir::new("isolation-cancel");
    let decls = declarations(8, 4, silent.port, open_port());
    let (never_tx, never_rx) = crossbeam_channel::bounded::<()>(0);
    let (engine, rx) = Builder::new()
        .declarations_path(dir.write("d.json", &decls.to_string()))
        .min_interval(FLOOR)
        .thread_name("isoc")
        .resolver(resolver(never_rx))
        .build()
        .unwrap();
    engine.reset("one").unwrap();
    let mut events = collect_until(&rx, Duration::from_secs(10), |_| {
        silent.held.lock().unwrap().len() >= 8
    });
    let first: Vec<TcpStream> = silent
        .held
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.try_clone().unwrap())
        .collect();
    // A reset cancels the waiting runs: their connections close.
    engine.reset("two").unwrap();
    let t = Instant::now();
    let closed = common::wait_until(Duration::from_secs(2), || {
        first.iter().all(|s| {
            s.set_nonblocking(true).unwrap();
            // The request the probe sent comes first, then end of file.
            let mut buf = [0u8; 4096];
            loop {
                match io::Read::read(&mut &*s, &mut buf) {
                    Ok(0) => return true,
                    Ok(_) => continue,
                    Err(_) => return false,
                }
            }
        })
    });
    let took = t.elapsed();
    assert!(closed, "connections of generation 1 still open");
    // G2's bound is 100 ms; the margin is for this test's 5 ms polling on
    // a loaded machine.
    assert!(took < Duration::from_millis(300), "{took:?}");
    let t = Instant::now();
    engine.shutdown().unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    drop(never_tx);
    events.extend(rx.iter());
    let mut g = Guarantees::new(FLOOR);
    for e in &events {
        g.check(e).unwrap();
    }
}
