//! G9 end to end: a consumer that stops reading never blocks the engine,
//! and when it comes back every lifecycle event is there, results are
//! coalesced with the right counts and `seq` has no gaps.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Fake, collect_until, wait_until};
use probewheel::{Builder, Event, Status};

#[test]
fn stalled_consumer_gets_everything_accounted_for() {
    const LIMIT: u64 = 40;
    let decls = format!(
        r#"{{
        "a": {{"kind": "fake", "mode": "enforce", "intervalSeconds": 0, "behave": "flip", "limit": {LIMIT}}},
        "b": {{"kind": "fake", "mode": "observe", "intervalSeconds": 0, "behave": "fail", "limit": {LIMIT}}},
        "c": {{"kind": "fake", "mode": "observe", "intervalSeconds": 0, "limit": {LIMIT}}}
    }}"#
    );
    let fake = Fake::default();
    let (engine, rx) = Builder::new()
        .declarations_json(decls)
        .min_interval(Duration::from_millis(5))
        .events_capacity(4)
        .workers(3)
        .runner("fake", fake.clone())
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    // Nobody reads. The engine must still run every probe to its limit.
    assert!(
        wait_until(Duration::from_secs(30), || engine.stats().unwrap().results
            == 3 * LIMIT),
        "engine blocked by the consumer: {:?}",
        engine.stats().unwrap()
    );
    let stalled = engine.stats().unwrap();
    assert!(stalled.coalesced > 0, "{stalled:?}");
    assert!(
        stalled.backlog > 0 && stalled.backlog <= 3 * 3 + 1,
        "{stalled:?}"
    );
    // The consumer comes back and reads until every run is accounted for.
    let accounted = |ev: &[Event], p: &str| -> u64 {
        ev.iter()
            .filter_map(|e| match e {
                Event::ProbeResult(r) if &*r.probe_name == p => Some(1 + r.coalesced),
                _ => None,
            })
            .sum()
    };
    let events = collect_until(&rx, Duration::from_secs(10), |ev| {
        ["a", "b", "c"].iter().all(|p| accounted(ev, p) == LIMIT)
    });
    let stats = engine.stats().unwrap();
    engine.shutdown().unwrap();
    assert_eq!(stats.backlog, 0);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq(), i as u64 + 1, "seq gap");
    }
    let mut by_probe: HashMap<&str, Vec<&Event>> = HashMap::new();
    for e in &events {
        if let Some(p) = e.probe_name() {
            by_probe.entry(p).or_default().push(e);
        }
    }
    for (p, evs) in &by_probe {
        assert_eq!(evs[0].name(), "probeObservedFirst", "{p}");
        // Every failureFirst is followed by a failing result before the
        // next failureFirst.
        let mut pending_ff = false;
        for e in evs {
            match e {
                Event::ProbeFailureFirst(_) => {
                    assert!(!pending_ff, "{p}: two failureFirst without a result");
                    pending_ff = true;
                }
                Event::ProbeResult(r) => {
                    if pending_ff {
                        assert_eq!(r.status, Status::Fail, "{p}");
                        assert!(r.failing_since.is_some());
                    }
                    pending_ff = false;
                }
                _ => {}
            }
        }
    }
    // The always-failing probe has exactly one failure edge.
    let b_ff = by_probe["b"]
        .iter()
        .filter(|e| e.name() == "probeFailureFirst")
        .count();
    assert_eq!(b_ff, 1);
    let last_b = by_probe["b"].iter().rev().find_map(|e| match e {
        Event::ProbeResult(r) => Some(r),
        _ => None,
    });
    assert_eq!(last_b.unwrap().consecutive, LIMIT);
}

#[test]
fn dropped_receiver_does_not_stop_the_probes() {
    let fake = Fake::default();
    let (engine, rx) = Builder::new()
        .declarations_json(r#"{"a": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0}}"#)
        .min_interval(Duration::from_millis(10))
        .runner("fake", fake.clone())
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    drop(rx);
    assert!(wait_until(Duration::from_secs(10), || {
        engine.stats().unwrap().dropped_no_receiver >= 20
    }));
    let before = engine.stats().unwrap().results;
    assert!(wait_until(Duration::from_secs(10), || {
        engine.stats().unwrap().results >= before + 5
    }));
    engine.reset("again").unwrap();
    engine.shutdown().unwrap();
}
