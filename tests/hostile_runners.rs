//! Hostile runners: a check that panics at every run, and one that never
//! returns. Neither may take a worker, a schedule or shutdown down with it.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::time::{Duration, Instant};

use common::{Fake, Guarantees, collect_until, probe_results, results, threads_named, wait_until};
use probewheel::{Builder, Event, Status};

const FLOOR: Duration = Duration::from_millis(20);

/// A probe next to a misbehaving one keeps its slots. Not one skip is
/// asked for: on a loaded machine a run can still be in flight when its
/// next slot is handed over (G6), or the engine wakes late, whatever the
/// neighbours do. A probe held up by its neighbour would skip
/// about every other slot, or stop.
fn assert_kept_schedule(rs: &[&probewheel::event::ProbeResult], p: &str) {
    let skipped: u64 = rs.iter().map(|r| r.skipped_ticks).sum();
    assert!(
        skipped <= rs.len() as u64 / 5,
        "{p} lost {skipped} slots in {} results: {:?}",
        rs.len(),
        rs.iter().map(|r| r.skipped_ticks).collect::<Vec<_>>()
    );
}

#[test]
fn a_panicking_runner_fails_its_probe_and_spares_the_pool() {
    // A pool of two: if a panic killed its worker, the pool would be empty
    // after the second tick of `boom`, and nothing would run any more. One
    // panicking probe keeps at most one worker busy (G6), even when the
    // panic hook is slow (a backtrace with RUST_BACKTRACE=1), so the calm
    // probes always find a free worker.
    let decls = r#"{
        "boom": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0, "behave": "panic"},
        "calm-1": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0},
        "calm-2": {"kind": "fake", "mode": "observe", "intervalSeconds": 0, "behave": "flip"}
    }"#;
    let (engine, rx) = Builder::new()
        .declarations_json(decls)
        .workers(2)
        .min_interval(FLOOR)
        .thread_name("hr-panic")
        .runner("fake", Fake::default())
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    let events = collect_until(&rx, Duration::from_secs(20), |ev| {
        ["boom", "calm-1", "calm-2"]
            .iter()
            .all(|p| results(ev, Some(p)) >= 15)
    });
    // The same two workers are still there after 15 panics.
    let workers = threads_named("hr-panic-worker");
    let stats = engine.stats().unwrap();
    engine.shutdown().unwrap();
    assert_eq!(workers.len(), 2, "{workers:?}");

    let mut g = Guarantees::new(FLOOR);
    for e in &events {
        g.check(e).unwrap();
    }
    {
        let p = "boom";
        let rs = probe_results(&events, p);
        for (i, r) in rs.iter().enumerate() {
            assert_eq!(r.status, Status::Fail);
            assert_eq!(
                r.failure_reason.as_deref(),
                Some("runner panicked: fake runner exploded")
            );
            assert_eq!(r.consecutive, i as u64 + 1, "{p}");
        }
        let failure_firsts = events
            .iter()
            .filter(|e| e.name() == "probeFailureFirst" && e.probe_name() == Some(p))
            .count();
        assert_eq!(failure_firsts, 1, "{p}");
    }
    // The healthy probes kept their schedule.
    for p in ["calm-1", "calm-2"] {
        assert_kept_schedule(&probe_results(&events, p), p);
    }
    let calm = probe_results(&events, "calm-1");
    assert!(calm.iter().all(|r| r.status == Status::Pass));
    assert_eq!(stats.stale_results, 0, "{stats:?}");
}

#[test]
fn a_hanging_runner_skips_its_own_ticks_only() {
    // `stuck`'s timeout (an hour) never comes here: this test is about the
    // hang; custom_check_timeouts.rs is about the timeout.
    let decls = r#"{
        "stuck": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0, "behave": "hang", "timeoutSecs": 3600},
        "free": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0}
    }"#;
    let fake = Fake::default();
    let (engine, rx) = Builder::new()
        .declarations_json(decls)
        .workers(2)
        .min_interval(FLOOR)
        .thread_name("hr-hang")
        .runner("fake", fake.clone())
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    let events = collect_until(&rx, Duration::from_secs(20), |ev| {
        results(ev, Some("free")) >= 20
    });
    // The stuck probe's slots are dropped and counted while it hangs.
    assert!(
        wait_until(Duration::from_secs(10), || engine
            .stats()
            .unwrap()
            .skipped_ticks
            >= 20),
        "{:?}",
        engine.stats().unwrap()
    );
    let stats = engine.stats().unwrap();
    // Exactly one run of `stuck` was ever started; besides it, at most the
    // next run of `free` is handed over and not back yet (runs are handed
    // to workers a little before they are due).
    assert!(
        (1..=2).contains(&(stats.dispatched - stats.results)),
        "stuck must be dispatched once: {stats:?}"
    );
    let stuck_runs = fake
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == "stuck")
        .count();
    assert_eq!(stuck_runs, 1, "{stats:?}");
    let more: Vec<Event> = rx.try_iter().collect();

    let t = Instant::now();
    engine.shutdown().unwrap();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(1), "shutdown took {took:?}");
    // The engine thread and the workers are gone; the thread of the custom
    // check that ignores cancellation is left behind (documented).
    // (Joined threads may be listed a moment longer while the kernel tears
    // them down.)
    let mut left = Vec::new();
    let settled = wait_until(Duration::from_millis(500), || {
        left = threads_named("hr-hang-");
        left.len() == 1
    });
    assert!(settled, "{left:?}");
    assert!(left[0].starts_with("hr-hang-check-"), "{left:?}");

    let all: Vec<Event> = events.into_iter().chain(more).collect();
    let mut g = Guarantees::new(FLOOR);
    for e in &all {
        g.check(e).unwrap();
    }
    assert!(
        !all.iter().any(|e| e.probe_name() == Some("stuck")),
        "a hanging run produced an event"
    );
    assert_kept_schedule(&probe_results(&all, "free"), "free");
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
}

#[test]
fn runs_due_together_are_not_stranded_behind_stuck_neighbours() {
    // Ten probes fall due at the same instant (no stagger), so they are
    // handed over together. Two of them stay in their check for a minute;
    // with three workers, the third must run the other eight, every tick,
    // whichever of them the stuck ones were handed over with.
    let mut decls = serde_json::Map::new();
    for p in ["a-slow", "b-slow"] {
        decls.insert(
            p.into(),
            serde_json::json!({"kind": "fake", "mode": "enforce", "behave": "slow", "sleepMs": 60000}),
        );
    }
    let quick: Vec<String> = (0..8).map(|i| format!("c-quick-{i}")).collect();
    for p in &quick {
        decls.insert(
            p.clone(),
            serde_json::json!({"kind": "fake", "mode": "enforce", "intervalSeconds": 0}),
        );
    }
    let (engine, rx) = Builder::new()
        .declarations_json(serde_json::Value::Object(decls).to_string())
        .workers(3)
        .min_interval(FLOOR)
        .thread_name("hr-burst")
        .runner("fake", Fake::default())
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    let events = collect_until(&rx, Duration::from_secs(10), |ev| {
        quick.iter().all(|p| results(ev, Some(p)) >= 5)
    });
    engine.shutdown().unwrap();
    for p in &quick {
        assert!(
            probe_results(&events, p).len() >= 5,
            "{p} was held up: {} results",
            probe_results(&events, p).len()
        );
    }
    let mut g = Guarantees::new(FLOOR);
    for e in &events {
        g.check(e).unwrap();
    }
}
