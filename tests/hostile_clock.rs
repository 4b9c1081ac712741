//! A starved engine thread: with every core busy, the engine thread is
//! preempted at random points of its loop, also between its reading of the
//! monotonic and of the wall clock. The wall times of events must still be
//! exact: `scheduledAt` of slot k is `start + k * interval` (G7 as the
//! consumer sees it), slots never closer than the floor and no run before
//! its slot (G5).
//!
//! Known weak spot (by inspection, not reproduced): the driver reads the
//! two clocks one after the other and re-anchors wall times when they
//! disagree by more than 1 ms, so a preemption of more than 1 ms between
//! the two reads shifts the wall times of that loop iteration. This test
//! fails with "scheduledAt ... off start + k * interval" if it happens.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{Fake, Guarantees};
use probewheel::Builder;

#[test]
fn wall_times_stay_exact_when_the_engine_thread_is_starved() {
    const FLOOR: Duration = Duration::from_millis(2);
    let cores = thread::available_parallelism().map_or(2, |n| n.get());
    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..2 * cores)
        .map(|_| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = x.wrapping_add(1);
                    std::hint::black_box(x);
                }
            })
        })
        .collect();
    let mut decls = serde_json::Map::new();
    for i in 0..64 {
        decls.insert(
            format!("p{i:02}"),
            serde_json::json!({"kind": "fake", "mode": "observe", "intervalSeconds": 0}),
        );
    }
    let (engine, rx) = Builder::new()
        .declarations_json(serde_json::Value::Object(decls).to_string())
        .min_interval(FLOOR)
        .stagger(true)
        .runner("fake", Fake::default())
        .build()
        .unwrap();
    engine.reset("starved").unwrap();
    let mut g = Guarantees::new(FLOOR);
    g.exact_schedule = true;
    let end = Instant::now() + Duration::from_secs(4);
    let mut verdict = Ok(());
    while Instant::now() < end && verdict.is_ok() {
        if let Ok(e) = rx.recv_timeout(Duration::from_millis(100)) {
            verdict = g.check(&e);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for h in hogs {
        h.join().unwrap();
    }
    let stats = engine.stats().unwrap();
    engine.shutdown().unwrap();
    eprintln!(
        "{} events, {} results checked; engine woke {} times",
        g.events, g.results, stats.wakeups
    );
    verdict.unwrap();
}
