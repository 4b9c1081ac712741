//! End to end through real threads: topology first (G1), per-probe order
//! (G3), disabled probes (G4), determinism (G11), every event's header,
//! and a result that must bring the sleeping engine's timer forward.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Fake, TempDir, collect_until, results};
use probewheel::event::Verdict;
use probewheel::{Builder, Event, Mode, Status};

const DECLS: &str = r#"{
    "zz-flip": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0, "behave": "flip"},
    "aa-fail": {"kind": "fake", "mode": "observe", "intervalSeconds": 0, "behave": "fail"},
    "mm-off": {"kind": "fake", "mode": "disabled", "intervalSeconds": 0},
    "exec-true": {"kind": "exec", "mode": "enforce", "intervalSeconds": 0, "command": ["true"]},
    "bad-port": {"kind": "tcp", "mode": "observe", "intervalSeconds": 0, "port": 0},
    "what": {"kind": "gopher", "mode": "enforce", "intervalSeconds": 0}
}"#;

fn engine(dir: &TempDir, fake: &Fake) -> (probewheel::Engine, crossbeam_channel::Receiver<Event>) {
    Builder::new()
        .declarations_path(dir.write("health-checks.json", DECLS))
        .min_interval(Duration::from_millis(50))
        .runner("fake", fake.clone())
        .build()
        .unwrap()
}

#[test]
fn topology_first_lifecycle_before_results_disabled_never_runs() {
    let dir = TempDir::new("events");
    let fake = Fake::default();
    let (engine, rx) = engine(&dir, &fake);
    engine.reset("stable@abc").unwrap();
    let events = collect_until(&rx, Duration::from_secs(20), |ev| {
        results(ev, Some("zz-flip")) >= 6
            && results(ev, Some("aa-fail")) >= 2
            && results(ev, Some("exec-true")) >= 2
            && results(ev, Some("what")) >= 2
            && results(ev, Some("bad-port")) >= 2
    });
    engine.shutdown().unwrap();

    // G1
    let Event::TopologyDeclared(t) = &events[0] else {
        panic!("first event is {:?}", events[0]);
    };
    // G11: sorted by name; G4: disabled is declared.
    let names: Vec<(&str, &str, Mode)> = t
        .probes
        .iter()
        .map(|p| (&*p.probe_name, &*p.kind, p.mode))
        .collect();
    assert_eq!(
        names,
        [
            ("aa-fail", "fake", Mode::Observe),
            ("bad-port", "tcp", Mode::Observe),
            ("exec-true", "exec", Mode::Enforce),
            ("mm-off", "fake", Mode::Disabled),
            ("what", "gopher", Mode::Enforce),
            ("zz-flip", "fake", Mode::Enforce),
        ]
    );
    // G4: nothing about the disabled probe, ever.
    assert!(events.iter().all(|e| e.probe_name() != Some("mm-off")));
    // Headers: seq from 1 without gaps, one rollout, generation 1.
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq(), i as u64 + 1);
        assert_eq!(e.rollout_id(), "stable@abc");
        assert_eq!(e.generation(), 1);
    }
    // G3 per probe.
    // G14: the verdict right behind the topology.
    assert_eq!(events[1].name(), "rolloutVerdict");
    let mut per_probe: HashMap<&str, Vec<&Event>> = HashMap::new();
    for e in &events[1..] {
        let Some(probe) = e.probe_name() else {
            assert_eq!(e.name(), "rolloutVerdict");
            continue;
        };
        per_probe.entry(probe).or_default().push(e);
    }
    for (probe, evs) in &per_probe {
        assert_eq!(evs[0].name(), "probeObservedFirst", "{probe}");
        assert_eq!(
            evs.iter()
                .filter(|e| e.name() == "probeObservedFirst")
                .count(),
            1,
            "{probe}"
        );
        let mut last = None;
        for (i, e) in evs.iter().enumerate() {
            if let Event::ProbeResult(r) = e {
                let edge = r.status == Status::Fail && last != Some(Status::Fail);
                let announced = evs[i - 1].name() == "probeFailureFirst";
                assert_eq!(edge, announced, "{probe}: result {i} {r:?}");
                last = Some(r.status);
            }
        }
    }
    // The flipping probe alternates and its counters follow.
    let flips: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::ProbeResult(r) if &*r.probe_name == "zz-flip" => Some(r),
            _ => None,
        })
        .collect();
    for (i, r) in flips.iter().enumerate() {
        let want = if i % 2 == 0 {
            Status::Pass
        } else {
            Status::Fail
        };
        assert_eq!(r.status, want);
        assert_eq!(r.consecutive, 1);
        assert_eq!(r.failing_since.is_some(), want == Status::Fail);
    }
    // Failing probes of the declarations fail with their reasons.
    let reason = |p: &str| {
        events.iter().find_map(|e| match e {
            Event::ProbeResult(r) if &*r.probe_name == p => r.failure_reason.clone(),
            _ => None,
        })
    };
    assert_eq!(
        reason("what").as_deref(),
        Some("unknown probe kind 'gopher'")
    );
    assert!(
        reason("bad-port")
            .unwrap()
            .starts_with("invalid declaration: field `port`:"),
        "{:?}",
        reason("bad-port")
    );
    assert_eq!(reason("aa-fail").as_deref(), Some("fake failure"));
    assert_eq!(reason("exec-true"), None);
}

#[test]
fn same_file_same_topology_payload_across_engines_and_resets() {
    let dir = TempDir::new("determinism");
    let fake = Fake::default();
    let mut payloads = Vec::new();
    for _ in 0..2 {
        let (engine, rx) = engine(&dir, &fake);
        for rollout in ["r1", "r2"] {
            engine.reset(rollout).unwrap();
            let evs = collect_until(&rx, Duration::from_secs(10), |ev| {
                ev.iter()
                    .any(|e| e.name() == "topologyDeclared" && e.rollout_id() == rollout)
            });
            let Some(Event::TopologyDeclared(t)) = evs
                .into_iter()
                .find(|e| e.rollout_id() == rollout && e.name() == "topologyDeclared")
            else {
                unreachable!()
            };
            payloads.push(serde_json::to_string(&t.probes).unwrap());
        }
        engine.shutdown().unwrap();
    }
    assert!(payloads.windows(2).all(|w| w[0] == w[1]), "{payloads:#?}");
}

#[test]
fn missing_file_declares_zero_probes_and_a_bad_file_is_rejected() {
    let dir = TempDir::new("missing");
    let path = dir.path("health-checks.json");
    let (engine, rx) = Builder::new().declarations_path(&path).build().unwrap();
    engine.reset("r1").unwrap();
    let ev = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let Event::TopologyDeclared(t) = &ev else {
        panic!("{ev:?}")
    };
    assert!(t.probes.is_empty());
    let ev = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let Event::RolloutVerdict(v) = &ev else {
        panic!("{ev:?}")
    };
    assert_eq!(v.verdict, Verdict::Healthy, "no enforce probe: healthy");

    std::fs::write(&path, "{\n  \"a\": {\n    \"kind\" \"tcp\"\n  }\n}").unwrap();
    engine.reset("r2").unwrap();
    let ev = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let Event::DeclarationsRejected(r) = &ev else {
        panic!("{ev:?}")
    };
    assert_eq!(r.reason, "line 3 column 12: expected `:`");
    assert_eq!(r.path, path.display().to_string());
    assert_eq!((r.header.seq, r.header.generation), (3, 2));
    let ev = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let Event::RolloutVerdict(v) = &ev else {
        panic!("{ev:?}")
    };
    assert_eq!((v.verdict, v.header.generation), (Verdict::Rejected, 2));

    // The file is fixed: the next reset reads it again.
    std::fs::write(
        &path,
        r#"{"a": {"kind": "tcp", "mode": "observe", "port": 1}}"#,
    )
    .unwrap();
    engine.reset("r3").unwrap();
    let ev = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(ev.name(), "topologyDeclared");
    assert_eq!(ev.generation(), 3);
    engine.shutdown().unwrap();
}

#[test]
fn a_result_arrives_within_the_window_when_nothing_else_wakes_the_engine() {
    // One run-once probe at the default 5 s floor: after handing it over
    // the engine has no deadline left and sleeps until something wakes
    // it. A finished run does not wake it at once; the worker must bring
    // its timer forward to at most the 100 ms window, or the result would
    // never come.
    let (engine, rx) = Builder::new()
        .declarations_json(r#"{"once": {"kind": "fake", "mode": "enforce", "runOnce": true}}"#)
        .runner("fake", Fake::default())
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    let events = collect_until(&rx, Duration::from_secs(3), |ev| {
        results(ev, Some("once")) == 1
    });
    let stats = engine.stats().unwrap();
    engine.shutdown().unwrap();
    assert_eq!(results(&events, Some("once")), 1);
    assert_eq!(stats.results, 1, "{stats:?}");
}

#[test]
fn a_custom_check_s_perfdata_reaches_its_result_event() {
    use probewheel::runner::FnRunner;
    use probewheel::{Declaration, Declarations, PerfUnit, Perfdata, RunnerOutcome};

    let decl = Declaration::from_value(
        "queue",
        serde_json::json!({"kind": "queue", "mode": "enforce", "runOnce": true}),
    );
    let perfdata = || {
        vec![
            Perfdata::new("waiting", 12.0, None),
            Perfdata::new("oldest", 0.25, Some(PerfUnit::Seconds)),
        ]
    };
    let (engine, rx) = Builder::new()
        .declarations(Declarations::from_declarations([decl]).unwrap())
        .runner(
            "queue",
            FnRunner::inline(move |_| {
                RunnerOutcome::fail("queue probe: 12 jobs waiting").with_perfdata(perfdata())
            }),
        )
        .build()
        .unwrap();
    engine.reset("r1").unwrap();
    let events = collect_until(&rx, Duration::from_secs(20), |evs| {
        results(evs, Some("queue")) == 1
    });
    let result = events
        .iter()
        .find_map(|e| match e {
            Event::ProbeResult(r) => Some(r),
            _ => None,
        })
        .expect("a result");
    assert_eq!(result.status, Status::Fail);
    assert_eq!(result.perfdata, perfdata());
    engine.shutdown().unwrap();
}
