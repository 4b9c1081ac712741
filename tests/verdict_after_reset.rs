//! G14 through the public API: the verdict a caller reads or waits for is
//! always the generation its reset started, however many events of the
//! previous rollout are still in the channel.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::time::{Duration, Instant};

use common::{Fake, TempDir};
use probewheel::event::Verdict;
use probewheel::{Builder, Event, WaitError};

const FLOOR: Duration = Duration::from_millis(50);

fn decls(behave: &str) -> String {
    serde_json::json!({
        "api": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0, "behave": behave},
        "web": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0},
    })
    .to_string()
}

#[test]
fn a_reset_from_healthy_to_failing_never_answers_with_the_old_health() {
    let dir = TempDir::new("g14");
    let path = dir.write("health-checks.json", &decls("pass"));
    // A small channel nobody reads: it fills with the first rollout's
    // events, as in an agent that is busy activating the next closure.
    let (engine, events) = Builder::new()
        .declarations_path(&path)
        .min_interval(FLOOR)
        .events_capacity(8)
        .runner("fake", Fake::default())
        .build()
        .unwrap();
    let g1 = engine.reset("r@1").unwrap();
    assert_eq!(g1, 1);
    let healthy = engine.wait_verdict(g1, Duration::from_secs(10)).unwrap();
    assert_eq!((healthy.verdict, healthy.decided), (Verdict::Healthy, true));

    // The same rollout id (a reload), now failing.
    std::fs::write(&path, decls("fail")).unwrap();
    let g2 = engine.reset("r@1").unwrap();
    assert_eq!(g2, 2);
    // Until generation 2 has a verdict there is none to read, never
    // generation 1's healthy one.
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < Duration::from_secs(10) {
        match engine.verdict(g2) {
            Some(v) if v.is_final() => {
                seen.push(v.verdict);
                break;
            }
            Some(v) => seen.push(v.verdict),
            None => {}
        }
        std::thread::yield_now();
    }
    assert!(!seen.is_empty());
    assert!(!seen.contains(&Verdict::Healthy), "{seen:?}");
    let v = engine.wait_verdict(g2, Duration::from_secs(10)).unwrap();
    assert_eq!((v.verdict, v.header.generation), (Verdict::Unhealthy, 2));
    assert_eq!(v.reason, "api: fake failure");
    assert_eq!(engine.verdict(g1), None, "generation 1 is over");

    // In the channel: generation 1's events first (the full channel held
    // them), then generation 2's topology and, right behind it, its first
    // verdict, which is pending.
    let all = common::collect_until(&events, Duration::from_secs(10), |ev| {
        ev.iter().filter(|e| e.generation() == 2).count() >= 2
    });
    assert!(all.iter().any(|e| e.generation() == 1));
    let topo = all
        .iter()
        .position(|e| e.generation() == 2)
        .expect("generation 2 began");
    assert_eq!(all[topo].name(), "topologyDeclared");
    let Event::RolloutVerdict(first) = &all[topo + 1] else {
        panic!("{:?}", all[topo + 1])
    };
    assert_eq!((first.verdict, first.decided), (Verdict::Pending, false));
    engine.shutdown().unwrap();
}

#[test]
fn waiting_for_an_older_generation_says_it_was_superseded() {
    let (engine, _events) = Builder::new()
        .declarations_json(decls("pass"))
        .min_interval(FLOOR)
        .runner("fake", Fake::default())
        .build()
        .unwrap();
    let g1 = engine.reset("r@1").unwrap();
    let g2 = engine.reset("r@2").unwrap();
    assert_eq!((g1, g2), (1, 2));
    let v = engine.wait_verdict(g2, Duration::from_secs(10)).unwrap();
    assert_eq!(v.verdict, Verdict::Healthy);
    assert_eq!(
        engine.wait_verdict(g1, Duration::from_secs(10)),
        Err(WaitError::Superseded { by: 2 })
    );
    engine.shutdown().unwrap();
}

#[test]
fn waiting_past_the_timeout_gives_the_latest_pending_verdict() {
    // A long startup grace keeps the failing probe pending.
    let json = serde_json::json!({
        "api": {"kind": "fake", "mode": "enforce", "behave": "fail", "startupGraceSeconds": 600},
    });
    let (engine, _events) = Builder::new()
        .declarations_json(json.to_string())
        .min_interval(FLOOR)
        .runner("fake", Fake::default())
        .build()
        .unwrap();
    let g = engine.reset("r@1").unwrap();
    let err = engine
        .wait_verdict(g, Duration::from_millis(300))
        .unwrap_err();
    let WaitError::TimedOut(Some(latest)) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(latest.verdict, Verdict::Pending);
    assert_eq!(latest.header.generation, g);
    assert!(
        err.to_string()
            .starts_with("no final verdict in time; the latest is pending"),
        "{err}"
    );
    engine.shutdown().unwrap();
}

#[test]
fn a_deadline_set_on_the_builder_ends_the_wait_unhealthy() {
    let json = serde_json::json!({
        "api": {"kind": "fake", "mode": "enforce", "behave": "fail", "startupGraceSeconds": 600},
    });
    let (engine, _events) = Builder::new()
        .declarations_json(json.to_string())
        .min_interval(FLOOR)
        .deadline(Duration::from_millis(400))
        .runner("fake", Fake::default())
        .build()
        .unwrap();
    let g = engine.reset("r@1").unwrap();
    let v = engine.wait_verdict(g, Duration::from_secs(10)).unwrap();
    assert_eq!((v.verdict, v.decided), (Verdict::Unhealthy, true));
    assert_eq!(
        v.reason,
        "deadline of 0.4 s passed; awaiting: api (startupGrace)"
    );
    engine.shutdown().unwrap();
}
