//! Soak: 2,000 probes (tcp to a loopback listener and to a closed port,
//! `exec` `true`/`false` and a few that time out, fakes that pass, fail,
//! flip, are slow, run once or are disabled, a few invalid ones) through a
//! reset every 5-10 s for `PROBEWHEEL_SOAK_MINUTES` (default 2). Every event
//! is checked against the guarantees as it arrives, by a consumer that stalls
//! for a second every 5 s; at the end: RSS growth after warm-up under 1 MiB,
//! open fds flat, no child process left.
//!
//! ```text
//! PROBEWHEEL_SOAK_MINUTES=2 cargo test --release --test soak -- --ignored --nocapture
//! ```

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{Guarantees, TempDir, open_fds, our_children, rss_bytes, running_in, wait_until};
use probewheel::{Builder, Check, Declaration, FieldError, RunContext, Runner, RunnerOutcome};
use serde_json::{Map, Value, json};

const FLOOR: Duration = Duration::from_millis(250);
const WORKERS: usize = 4;
const MIB: u64 = 1024 * 1024;

/// A loopback listener that accepts and drops connections until stopped.
struct Listener {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<u64>>,
    addr: std::net::SocketAddr,
}

impl Listener {
    fn start(bind: &str) -> Option<Listener> {
        let l = TcpListener::bind(bind).ok()?;
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut accepted = 0;
            for conn in l.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if conn.is_ok() {
                    accepted += 1;
                }
            }
            accepted
        });
        Some(Listener {
            port: addr.port(),
            stop,
            thread: Some(thread),
            addr,
        })
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// The fake of `common` without its run log (which grows with every run
/// and would be measured as the engine's memory): pass, fail, flip, slow.
struct LeanFake;

impl Runner for LeanFake {
    fn prepare(&self, decl: &Declaration) -> Result<Arc<dyn Check>, FieldError> {
        let behave = decl.str_field("behave")?.unwrap_or("pass").to_owned();
        let sleep = Duration::from_millis(decl.u64_in("sleepMs", 0, 60_000)?.unwrap_or(0));
        let n = AtomicU64::new(0);
        Ok(Arc::new(move |ctx: &RunContext<'_>| {
            let k = n.fetch_add(1, Ordering::Relaxed);
            match behave.as_str() {
                "fail" => RunnerOutcome::fail("fake failure"),
                "flip" if k % 2 == 1 => RunnerOutcome::fail("flipped"),
                "slow" if ctx.sleep(sleep) => RunnerOutcome::fail("cancelled"),
                _ => RunnerOutcome::pass(),
            }
        }))
    }
}

/// Deterministic pseudo-random numbers (no clock, no dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// The 2,000 declarations, families interleaved (names `NNNN-family`, in a
/// shuffled order) so that staggered first ticks do not line up all the
/// slow probes of a family next to each other.
fn declarations(
    dir: &TempDir,
    v4_port: u16,
    v6_port: Option<u16>,
    closed_port: u16,
) -> (Value, Vec<String>) {
    let cwd = dir.0.canonicalize().unwrap();
    let mut all: Vec<(&str, Value)> = Vec::new();
    let mut add = |family: &'static str, n: usize, f: &mut dyn FnMut(usize) -> Value| {
        for i in 0..n {
            all.push((family, f(i)));
        }
    };
    let fake = |behave: &str, mode: &str, interval: usize| json!({"kind": "fake", "mode": mode, "intervalSeconds": interval, "behave": behave});
    add("fake-pass", 500, &mut |i| fake("pass", "enforce", i % 2));
    add("fake-fail", 200, &mut |i| fake("fail", "observe", i % 2));
    add("fake-flip", 400, &mut |i| fake("flip", "enforce", i % 2));
    add("fake-slow", 200, &mut |i| {
        json!({"kind": "fake", "mode": "observe", "intervalSeconds": 1 + i % 2,
            "behave": "slow", "sleepMs": 1 + i % 20})
    });
    add(
        "fake-once",
        50,
        &mut |_| json!({"kind": "fake", "mode": "enforce", "runOnce": true, "behave": "flip"}),
    );
    add("fake-off", 50, &mut |_| fake("pass", "disabled", 0));
    add("tcp-open", 350, &mut |i| match v6_port {
        Some(p) if i % 7 == 0 => {
            json!({"kind": "tcp", "mode": "enforce", "intervalSeconds": 1 + i % 2, "host": "::1", "port": p})
        }
        _ => {
            json!({"kind": "tcp", "mode": "enforce", "intervalSeconds": 1 + i % 2, "port": v4_port})
        }
    });
    add(
        "tcp-closed",
        100,
        &mut |i| json!({"kind": "tcp", "mode": "observe", "intervalSeconds": 1 + i % 2, "port": closed_port}),
    );
    add(
        "exec-true",
        70,
        &mut |i| json!({"kind": "exec", "mode": "enforce", "intervalSeconds": 2 + i % 2, "command": ["true"]}),
    );
    add(
        "exec-false",
        70,
        &mut |i| json!({"kind": "exec", "mode": "observe", "intervalSeconds": 2 + i % 2, "command": "false"}),
    );
    // Time out at every run: killed (with a grandchild) after 1 s. Few of
    // them: each holds a worker for a second.
    add("exec-sleepy", 2, &mut |_| {
        json!({"kind": "exec", "mode": "observe", "intervalSeconds": 5, "timeoutSecs": 1,
            "command": ["sh", "-c", format!("cd {} || exit 99; sleep 30 & sleep 30", cwd.display())]})
    });
    add("invalid", 8, &mut |i| match i % 3 {
        0 => json!({"kind": "tcp", "mode": "enforce", "port": 0}),
        1 => json!({"kind": "gopher", "mode": "observe", "intervalSeconds": 1}),
        _ => json!({"kind": "exec", "mode": "enforce", "intervalSeconds": "x", "command": []}),
    });
    assert_eq!(all.len(), 2000);
    // Fisher-Yates with a fixed seed: the same file at every run.
    let mut rng = Lcg(2000);
    for i in (1..all.len()).rev() {
        all.swap(i, rng.next(i as u64 + 1) as usize);
    }
    let mut m = Map::new();
    let mut run_once = Vec::new();
    for (i, (family, decl)) in all.into_iter().enumerate() {
        let name = format!("{i:04}-{family}");
        if family == "fake-once" {
            run_once.push(name.clone());
        }
        m.insert(name, decl);
    }
    (Value::Object(m), run_once)
}

#[test]
#[ignore = "soak: run with cargo test --release --test soak -- --ignored --nocapture"]
fn soak_two_thousand_probes_through_many_resets() {
    let minutes: f64 = std::env::var("PROBEWHEEL_SOAK_MINUTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let total = Duration::from_secs_f64(minutes * 60.0);
    let warm_up = (total / 4).min(Duration::from_secs(30));

    let fds_before = open_fds();
    let rss_start = rss_bytes();
    let dir = TempDir::new("soak");
    let v4 = Listener::start("127.0.0.1:0").unwrap();
    let v6 = Listener::start("[::1]:0");
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (decls, run_once) = declarations(&dir, v4.port, v6.as_ref().map(|l| l.port), closed_port);
    let (engine, rx) = Builder::new()
        .declarations_path(dir.write("health-checks.json", &decls.to_string()))
        .min_interval(FLOOR)
        .workers(WORKERS)
        .events_capacity(256)
        .stagger(true)
        .runner("fake", LeanFake)
        .build()
        .unwrap();

    let checked = Arc::new(AtomicU64::new(0));
    // The engine's `coalesced` counter, published by the main loop; and
    // how many consumer stalls made the engine coalesce.
    let coalesced = Arc::new(AtomicU64::new(0));
    let stalls_that_bit = Arc::new(AtomicU64::new(0));
    let reader = {
        let checked = Arc::clone(&checked);
        let coalesced = Arc::clone(&coalesced);
        let stalls_that_bit = Arc::clone(&stalls_that_bit);
        thread::spawn(move || {
            let mut g = Guarantees::new(FLOOR);
            g.round_trip = true;
            g.exact_schedule = true;
            g.run_once = run_once.into_iter().collect();
            // Per probe family: results, total and largest duration and
            // lateness (µs), for the summary.
            let mut families: std::collections::BTreeMap<String, [u64; 5]> = Default::default();
            let mut next_stall = Instant::now() + Duration::from_secs(5);
            for e in rx.iter() {
                // The consumer stalls now and then (G9: the engine must not
                // wait, and nothing may be lost): until the channel is full
                // and the engine has folded results because of it.
                if Instant::now() >= next_stall {
                    let before = coalesced.load(Ordering::SeqCst);
                    if wait_until(Duration::from_secs(5), || {
                        rx.is_full() && coalesced.load(Ordering::SeqCst) >= before + 100
                    }) {
                        stalls_that_bit.fetch_add(1, Ordering::SeqCst);
                    }
                    next_stall = Instant::now() + Duration::from_secs(5);
                }
                g.check(&e)?;
                if let probewheel::Event::ProbeResult(r) = &e {
                    let family = r.probe_name.split_once('-').map_or("", |(_, f)| f);
                    let f = families.entry(family.to_owned()).or_default();
                    f[0] += 1;
                    f[1] += r.duration_us;
                    f[2] = f[2].max(r.duration_us);
                    f[3] += r.lateness_us;
                    f[4] = f[4].max(r.lateness_us);
                }
                checked.store(e.seq(), Ordering::SeqCst);
            }
            for (name, [n, d, dmax, l, lmax]) in &families {
                println!(
                    "soak: {name:12} {n:7} results, duration mean {:6} us max {dmax:8} us, \
                     lateness mean {:6} us max {lmax:8} us",
                    d / n.max(&1),
                    l / n.max(&1)
                );
            }
            Ok::<Guarantees, String>(g)
        })
    };

    let start = Instant::now();
    let mut rng = Lcg(0x5eed);
    let mut resets = 0u64;
    let mut next_reset = start;
    let mut warm: Option<(u64, usize)> = None;
    let (mut fds_min, mut fds_max) = (usize::MAX, 0);
    let (mut rss_min, mut rss_max) = (u64::MAX, 0);
    while start.elapsed() < total {
        if Instant::now() >= next_reset {
            resets += 1;
            engine.reset(&format!("soak-{resets}")).unwrap();
            next_reset = Instant::now() + Duration::from_millis(5000 + rng.next(5000));
        }
        // Pacing only (what is checked is the event stream and the
        // counters); returns at once if the checker stops.
        wait_until(Duration::from_millis(500), || reader.is_finished());
        if reader.is_finished() {
            let verdict = reader.join().unwrap().map(|g| g.events);
            panic!("the checker stopped early: {verdict:?}");
        }
        coalesced.store(engine.stats().unwrap().coalesced, Ordering::SeqCst);
        if warm.is_none() && start.elapsed() >= warm_up {
            warm = Some((rss_bytes(), open_fds()));
        }
        if warm.is_some() {
            let (r, f) = (rss_bytes(), open_fds());
            rss_min = rss_min.min(r);
            rss_max = rss_max.max(r);
            fds_min = fds_min.min(f);
            fds_max = fds_max.max(f);
        }
    }
    let (rss_warm, fds_warm) = warm.unwrap();
    // Let the last reset's burst drain and the checker catch up.
    assert!(
        wait_until(Duration::from_secs(30), || {
            let s = engine.stats().unwrap();
            s.backlog == 0 && checked.load(Ordering::SeqCst) + 64 >= s.last_seq
        }),
        "{:?}",
        engine.stats()
    );
    let rss_end = rss_bytes();
    let fds_end = open_fds();
    let stats = engine.stats().unwrap();
    let t = Instant::now();
    engine.shutdown().unwrap();
    let shutdown_took = t.elapsed();
    let g = reader.join().unwrap().unwrap_or_else(|why| panic!("{why}"));
    let accepted = v4.stop() + v6.map_or(0, Listener::stop);
    let children_left = wait_until(Duration::from_secs(2), || {
        our_children().is_empty() && running_in(&dir.0.canonicalize().unwrap()).is_empty()
    });
    let fds_after = open_fds();

    println!(
        "soak: {minutes} min, 2000 probes, {resets} resets, {} events checked \
         ({} results standing for {} runs, {} generations), {accepted} tcp accepts; \
         RSS start {} KiB, after warm-up {} KiB, end {} KiB (growth {} KiB; range {}..{} KiB); \
         fds before {fds_before}, after warm-up {fds_warm}, end {fds_end} (range {fds_min}..{fds_max}), \
         after shutdown {fds_after}; children left: {}; shutdown {shutdown_took:?}; \
         lateness p50 {} us p99 {} us max {} us; skipped {} coalesced {} stale {} dropped at reset {}; \
         consumer stalls that made the engine coalesce: {}",
        g.events,
        g.results,
        g.runs,
        g.generations,
        rss_start / 1024,
        rss_warm / 1024,
        rss_end / 1024,
        (rss_end as i64 - rss_warm as i64) / 1024,
        rss_min / 1024,
        rss_max / 1024,
        if children_left {
            0
        } else {
            our_children().len()
        },
        stats.lateness_p50_us,
        stats.lateness_p99_us,
        stats.lateness_max_us,
        stats.skipped_ticks,
        stats.coalesced,
        stats.stale_results,
        stats.dropped_at_reset,
        stalls_that_bit.load(Ordering::SeqCst),
    );
    assert!(resets >= 2, "no reset during the soak");
    assert_eq!(g.generations, resets);
    assert!(g.results > 1000, "{g:?}");
    assert!(
        stalls_that_bit.load(Ordering::SeqCst) > 0,
        "no consumer stall filled the channel and made the engine coalesce"
    );
    assert!(
        rss_end <= rss_warm + MIB,
        "RSS grew by {} KiB after warm-up",
        (rss_end - rss_warm) / 1024
    );
    // Runs in flight hold fds: a socket, or while spawning a child the
    // stderr pipe, std's exec-error pipe and a pidfd; plus a connection the
    // listeners have just accepted.
    assert!(
        fds_max - fds_min <= 5 * WORKERS + 2,
        "fds {fds_min}..{fds_max}"
    );
    assert_eq!(fds_after, fds_before, "fds leaked");
    assert!(children_left, "children left: {:?}", our_children());
    assert!(shutdown_took < Duration::from_secs(1), "{shutdown_took:?}");
}
