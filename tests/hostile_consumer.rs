//! Hostile consumers (G9): one that stalls for many intervals, again and
//! again, with a channel of capacity 1 and many flapping probes; one that
//! drops the receiver while events wait inside the engine.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Fake, Guarantees, threads_named, wait_until};
use probewheel::{Builder, Event, Status};

const FLOOR: Duration = Duration::from_millis(10);

/// Runs a probe produced, from the results that reached the consumer.
fn accounted(events: &[Event]) -> HashMap<String, u64> {
    let mut runs = HashMap::new();
    for e in events {
        if let Event::ProbeResult(r) = e {
            *runs.entry(r.probe_name.to_string()).or_default() += 1 + r.coalesced;
        }
    }
    runs
}

#[test]
fn a_consumer_that_stalls_again_and_again_loses_nothing() {
    const LIMIT: u64 = 60;
    const FLAPPERS: usize = 16;
    let mut decls = serde_json::Map::new();
    for i in 0..FLAPPERS {
        decls.insert(
            format!("flap-{i:02}"),
            serde_json::json!({"kind": "fake", "mode": "enforce", "intervalSeconds": 0,
                "behave": "flip", "limit": LIMIT}),
        );
    }
    decls.insert(
        "down".into(),
        serde_json::json!({"kind": "fake", "mode": "observe", "intervalSeconds": 0,
            "behave": "fail", "limit": LIMIT}),
    );
    decls.insert(
        "up".into(),
        serde_json::json!({"kind": "fake", "mode": "observe", "intervalSeconds": 0,
            "limit": LIMIT}),
    );
    let probes = decls.len() as u64;
    let (engine, rx) = Builder::new()
        .declarations_json(serde_json::Value::Object(decls).to_string())
        .min_interval(FLOOR)
        .events_capacity(1)
        .workers(2)
        .runner("fake", Fake::default())
        .build()
        .unwrap();
    engine.reset("r").unwrap();

    let mut events: Vec<Event> = Vec::new();
    let mut stalls = 0;
    let done = |ev: &[Event]| {
        let runs = accounted(ev);
        runs.len() as u64 == probes && runs.values().all(|&n| n == LIMIT)
    };
    let end = Instant::now() + Duration::from_secs(60);
    while !done(&events) {
        assert!(Instant::now() < end, "not every run accounted for in time");
        // Read a little...
        let burst = events.len() + 20;
        while events.len() < burst && !done(&events) {
            if let Ok(e) = rx.recv_timeout(Duration::from_millis(100)) {
                events.push(e);
            } else if Instant::now() >= end {
                break;
            }
        }
        // ...then stall until the engine folded more results, or ran every
        // probe to its limit (nothing more to fold).
        if stalls < 5 {
            let before = engine.stats().unwrap();
            let grew = wait_until(Duration::from_secs(10), || {
                let s = engine.stats().unwrap();
                s.coalesced >= before.coalesced + 2 * probes || s.results == probes * LIMIT
            });
            assert!(grew, "{:?}", engine.stats().unwrap());
            let s = engine.stats().unwrap();
            assert!(
                s.backlog <= 3 * probes + 1,
                "backlog beyond its bound: {s:?}"
            );
            stalls += 1;
        }
    }
    // What may follow the last result: the verdict it changed. Read until
    // the engine has nothing more to send.
    let settled = wait_until(Duration::from_secs(10), || {
        events.extend(rx.try_iter());
        let s = engine.stats().unwrap();
        s.backlog == 0 && s.last_seq == events.len() as u64
    });
    assert!(settled, "{:?}", engine.stats().unwrap());
    let stats = engine.stats().unwrap();
    engine.shutdown().unwrap();
    let rest: Vec<Event> = rx.try_iter().collect();
    assert!(
        rest.is_empty(),
        "events after everything was accounted for: {rest:?}"
    );
    assert!(
        events
            .iter()
            .rev()
            .take_while(|e| e.name() != "probeResult")
            .all(|e| e.name() == "rolloutVerdict"),
        "only a verdict may follow the last result"
    );
    assert!(stalls >= 3, "only {stalls} stalls");

    // Every guarantee, on every event, in order (seq without gaps incl.).
    let mut g = Guarantees::new(FLOOR);
    g.round_trip = true;
    for e in &events {
        g.check(e).unwrap();
    }
    // Nothing lost: every run is in exactly one delivered result, and the
    // engine's counters agree with what arrived.
    assert_eq!(stats.results, probes * LIMIT);
    assert_eq!(stats.events_sent, events.len() as u64);
    assert_eq!(stats.last_seq, events.len() as u64);
    assert_eq!(stats.backlog, 0);
    let coalesced: u64 = events
        .iter()
        .filter_map(|e| match e {
            Event::ProbeResult(r) => Some(r.coalesced),
            _ => None,
        })
        .sum();
    assert_eq!(stats.coalesced, coalesced);
    assert!(coalesced > 0, "the consumer never fell behind: {stats:?}");

    // A flip probe's run k passes iff k is even: the counts carried by the
    // results must put each delivered status at the right run.
    let mut runs: HashMap<&str, u64> = HashMap::new();
    for e in &events {
        let Event::ProbeResult(r) = e else { continue };
        let n = runs.entry(&*r.probe_name).or_default();
        *n += 1 + r.coalesced;
        let last_run = *n - 1;
        let want = match &*r.probe_name {
            "down" => Status::Fail,
            "up" => Status::Pass,
            _ if last_run % 2 == 0 => Status::Pass,
            _ => Status::Fail,
        };
        assert_eq!(r.status, want, "{} run {last_run}: {r:?}", r.probe_name);
        let want_consecutive = match &*r.probe_name {
            "down" | "up" => *n,
            _ => 1,
        };
        assert_eq!(r.consecutive, want_consecutive, "{r:?}");
    }
    // The always-failing probe had exactly one transition into fail.
    let down_ff = events
        .iter()
        .filter(|e| e.name() == "probeFailureFirst" && e.probe_name() == Some("down"))
        .count();
    assert_eq!(down_ff, 1);
    let up_ff = events
        .iter()
        .filter(|e| e.name() == "probeFailureFirst" && e.probe_name() == Some("up"))
        .count();
    assert_eq!(up_ff, 0);
}

#[test]
fn a_dropped_receiver_with_a_backlog_keeps_the_engine_running() {
    let decls = r#"{
        "a": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0, "behave": "flip"},
        "b": {"kind": "fake", "mode": "observe", "intervalSeconds": 0, "behave": "fail"},
        "c": {"kind": "fake", "mode": "observe", "intervalSeconds": 0}
    }"#;
    let (engine, rx) = Builder::new()
        .declarations_json(decls)
        .min_interval(FLOOR)
        .events_capacity(1)
        .thread_name("hc-drop")
        .runner("fake", Fake::default())
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    // Nobody reads: events pile up inside the engine.
    assert!(wait_until(Duration::from_secs(10), || {
        let s = engine.stats().unwrap();
        s.backlog > 0 && s.coalesced > 0
    }));
    drop(rx);
    // The backlog drains into the void, counted; probes keep running.
    assert!(
        wait_until(Duration::from_secs(10), || {
            let s = engine.stats().unwrap();
            s.backlog == 0 && s.dropped_no_receiver > 3
        }),
        "{:?}",
        engine.stats().unwrap()
    );
    let before = engine.stats().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || {
            let s = engine.stats().unwrap();
            s.results >= before.results + 20
                && s.dropped_no_receiver >= before.dropped_no_receiver + 20
        }),
        "{:?}",
        engine.stats().unwrap()
    );
    // With nobody reading, nothing waits: results are not folded any more.
    let s = engine.stats().unwrap();
    assert_eq!(s.backlog, 0, "{s:?}");
    assert_eq!(s.coalesced, before.coalesced, "{s:?}");
    // Every event the engine made is either sent or counted as dropped.
    assert_eq!(s.events_sent, s.last_seq, "{s:?}");
    // Resets still work, and shutdown is clean and prompt.
    engine.reset("again").unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        let s = engine.stats().unwrap();
        s.generation == 2 && s.results >= before.results + 30
    }));
    let t = Instant::now();
    engine.shutdown().unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // (Joined threads may be listed a moment longer while the kernel tears
    // them down.)
    assert!(
        wait_until(Duration::from_millis(500), || threads_named("hc-drop")
            .is_empty()),
        "{:?}",
        threads_named("hc-drop")
    );
}
