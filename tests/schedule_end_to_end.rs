//! The schedule through real threads and the real timer: the floor (G5), no
//! overlap (G6), anchored ticks (G7), runOnce (G8), and an idle engine that
//! sleeps (G12). The exact rules are tested in virtual time in
//! `src/core/tests.rs`; these check that the driver keeps them.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::time::Duration;

use common::{Fake, collect_until, probe_results, results};
use probewheel::Builder;

#[test]
fn floor_and_anchor_hold_on_the_real_clock() {
    let fake = Fake::default();
    let (engine, rx) = Builder::new()
        .declarations_json(
            r#"{"fast": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0},
                "one": {"kind": "fake", "mode": "enforce", "intervalSeconds": 1}}"#,
        )
        .min_interval(Duration::from_millis(100))
        .runner("fake", fake.clone())
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    let events = collect_until(&rx, Duration::from_secs(20), |ev| {
        results(ev, Some("fast")) >= 12
    });
    engine.shutdown().unwrap();

    // G5: the floor is on the period. The runner ran once per result, and
    // (below) slots are whole floors apart and no run starts before its
    // slot.
    let log = fake.log.lock().unwrap();
    let rs = probe_results(&events, "fast");
    assert!(log.iter().filter(|(p, _)| p == "fast").count() >= rs.len());
    // G7: slot k is due at start + k * interval exactly; ticks only grow.
    let t0 = rs[0].scheduled_at.unix_micros();
    for pair in rs.windows(2) {
        assert!(pair[1].tick > pair[0].tick);
        assert_eq!(pair[1].skipped_ticks, pair[1].tick - pair[0].tick - 1);
    }
    for r in &rs {
        assert_eq!(
            r.scheduled_at.unix_micros() - t0,
            r.tick as i64 * 100_000,
            "{r:?}"
        );
        assert!(r.observed_at >= r.scheduled_at);
    }
    // The 1 s probe was not run more often than its own interval.
    let one = probe_results(&events, "one");
    assert!(
        one.len() <= 2,
        "{} runs of a 1 s probe in ~1.2 s",
        one.len()
    );
}

#[test]
fn slow_runs_never_overlap_and_skip_ticks() {
    let fake = Fake::default();
    let (engine, rx) = Builder::new()
        .declarations_json(
            r#"{"slow": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0, "behave": "slow", "sleepMs": 250}}"#,
        )
        .min_interval(Duration::from_millis(100))
        .runner("fake", fake.clone())
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    let events = collect_until(&rx, Duration::from_secs(20), |ev| {
        results(ev, Some("slow")) >= 4
    });
    engine.shutdown().unwrap();
    let rs = probe_results(&events, "slow");
    for r in &rs[1..] {
        assert!(r.skipped_ticks >= 2, "{r:?}");
        assert!(r.duration_us >= 250_000);
    }
    for pair in rs.windows(2) {
        let gap = pair[1].observed_at.unix_micros() - pair[0].observed_at.unix_micros();
        assert!(
            gap as u64 >= pair[0].duration_us,
            "runs overlapped: {pair:?}"
        );
    }
}

#[test]
fn run_once_runs_exactly_once_per_generation() {
    let fake = Fake::default();
    let (engine, rx) = Builder::new()
        .declarations_json(
            r#"{"once": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0, "runOnce": true},
                "clock": {"kind": "fake", "mode": "observe", "intervalSeconds": 0}}"#,
        )
        .min_interval(Duration::from_millis(20))
        .runner("fake", fake.clone())
        .build()
        .unwrap();
    let mut all = Vec::new();
    for rollout in ["r1", "r2"] {
        engine.reset(rollout).unwrap();
        // Let the other probe tick 10 times: the runOnce probe stays at one.
        all.extend(collect_until(&rx, Duration::from_secs(20), |ev| {
            ev.iter()
                .filter(|e| {
                    e.name() == "probeResult"
                        && e.probe_name() == Some("clock")
                        && e.rollout_id() == rollout
                })
                .count()
                >= 10
        }));
    }
    engine.shutdown().unwrap();
    for g in [1, 2] {
        let n = all
            .iter()
            .filter(|e| {
                e.generation() == g && e.probe_name() == Some("once") && e.name() == "probeResult"
            })
            .count();
        assert_eq!(n, 1, "generation {g}");
    }
}

#[test]
fn an_idle_engine_wakes_only_when_something_is_due() {
    let (engine, rx) = Builder::new()
        .declarations_json(r#"{"p": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0}}"#)
        .min_interval(Duration::from_millis(200))
        .runner("fake", Fake::default())
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    collect_until(&rx, Duration::from_secs(20), |ev| results(ev, None) >= 5);
    let stats = engine.stats().unwrap();
    // Per tick: one timer wake-up and one for the result, with a margin of
    // one; plus the reset and this stats command. A periodic 1 ms tick would show
    // ~1000.
    assert!(stats.wakeups <= 3 * stats.dispatched + 4, "{stats:?}");
    // With no probes the engine sleeps until a command: while the other
    // engine ticks five more times (about a second), the idle one wakes
    // only for the commands sent to it.
    let (idle, _rx) = Builder::new().declarations_json("{}").build().unwrap();
    idle.reset("r").unwrap();
    let before = idle.stats().unwrap().wakeups;
    collect_until(&rx, Duration::from_secs(20), |ev| results(ev, None) >= 5);
    let after = idle.stats().unwrap().wakeups;
    // One for the second `stats`, and possibly one left over from the first
    // (a wake sent while the engine was already awake for the reset).
    assert!(
        after - before <= 2,
        "idle engine woke {} times",
        after - before
    );
    idle.shutdown().unwrap();
    engine.shutdown().unwrap();
}
