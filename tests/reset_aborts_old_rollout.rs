//! G2 end to end: after a reset, nothing of the old rollout comes out, and
//! its `exec` children are killed and reaped.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::time::{Duration, Instant};

use common::{Fake, TempDir, collect_until, process_running, read_pid, results, wait_until};
use probewheel::{Builder, Event};

/// A shell that ignores SIGTERM, with a grandchild holding stderr; they
/// write their pids to the two returned files.
fn stubborn_script(dir: &TempDir) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let pidfile = dir.path("pid");
    let childfile = dir.path("child");
    let script = format!(
        "echo $$ > {p}; trap '' TERM; sleep 30 & echo $! > {c}; wait",
        p = pidfile.display(),
        c = childfile.display()
    );
    (pidfile, childfile, script)
}

#[test]
fn reset_kills_the_old_generations_exec_group_and_discards_its_result() {
    let dir = TempDir::new("reset-exec");
    let (pidfile, childfile, script) = stubborn_script(&dir);
    let decls = serde_json::json!({
        "stuck": {"kind": "exec", "mode": "enforce", "command": ["sh", "-c", script], "timeoutSecs": 60},
        "tick": {"kind": "fake", "mode": "observe", "intervalSeconds": 0},
    });
    let (engine, rx) = Builder::new()
        .declarations_path(dir.write("d.json", &decls.to_string()))
        .min_interval(Duration::from_millis(50))
        .runner("fake", Fake::default())
        .build()
        .unwrap();
    engine.reset("old").unwrap();
    let shell = read_pid(&pidfile, Duration::from_secs(10));
    let sleeper = read_pid(&childfile, Duration::from_secs(10));
    assert!(process_running(shell) && process_running(sleeper));

    std::fs::remove_file(&pidfile).unwrap();
    let reset_at = Instant::now();
    engine.reset("new").unwrap();
    // Contract: killed and reaped within 100 ms of the reset. The bound
    // checked here is looser only to absorb a loaded CI machine.
    assert!(
        wait_until(Duration::from_secs(2), || !process_running(shell)
            && !process_running(sleeper)),
        "old exec group still running"
    );
    let gone_after = reset_at.elapsed();
    assert!(
        gone_after < Duration::from_millis(500),
        "took {gone_after:?}"
    );

    // The new generation starts its own run of the probe.
    let shell2 = read_pid(&pidfile, Duration::from_secs(10));
    assert_ne!(shell, shell2);
    let events = collect_until(&rx, Duration::from_secs(10), |ev| {
        results(ev, Some("tick")) >= 6 && ev.iter().any(|e| e.generation() == 2)
    });
    engine.shutdown().unwrap();
    // Nothing of generation 1 after the first event of generation 2, and
    // the stuck probe never reported for generation 1.
    let first_new = events.iter().position(|e| e.generation() == 2).unwrap();
    assert_eq!(events[first_new].name(), "topologyDeclared");
    assert!(events[first_new..].iter().all(|e| e.generation() == 2));
    assert!(!events.iter().any(|e| e.generation() == 1
        && e.probe_name() == Some("stuck")
        && e.name() == "probeResult"));
    assert!(
        wait_until(Duration::from_secs(2), || !process_running(shell2)),
        "shutdown left the exec child running"
    );
}

#[test]
fn reset_storm_never_lets_an_old_event_through() {
    let decls = r#"{
        "a": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0, "behave": "flip"},
        "b": {"kind": "fake", "mode": "observe", "intervalSeconds": 0, "behave": "slow", "sleepMs": 3},
        "c": {"kind": "fake", "mode": "observe", "intervalSeconds": 0}
    }"#;
    let (engine, rx) = Builder::new()
        .declarations_json(decls)
        .min_interval(Duration::from_millis(1))
        .events_capacity(64)
        .runner("fake", Fake::default())
        .build()
        .unwrap();
    let reader = std::thread::spawn(move || {
        let mut newest = 0;
        let mut count = 0u64;
        let mut last_seq = 0;
        for e in rx.iter() {
            assert!(
                e.generation() >= newest,
                "event of generation {} after generation {newest}: {e:?}",
                e.generation()
            );
            if e.generation() > newest {
                assert!(
                    matches!(e, Event::TopologyDeclared(_)),
                    "generation {} opened with {}",
                    e.generation(),
                    e.name()
                );
            }
            assert_eq!(e.seq(), last_seq + 1, "seq gap");
            last_seq = e.seq();
            newest = e.generation();
            count += 1;
        }
        (newest, count)
    });
    for i in 0..1000 {
        engine.reset(&format!("storm-{i}")).unwrap();
        if i % 100 == 99 {
            // Let runs of this generation finish, so that results and
            // resets really interleave.
            let before = engine.stats().unwrap().results;
            assert!(wait_until(Duration::from_secs(10), || {
                engine.stats().unwrap().results > before
            }));
        }
    }
    assert!(wait_until(Duration::from_secs(10), || {
        engine.stats().unwrap().generation == 1000
    }));
    let stats = engine.stats().unwrap();
    engine.shutdown().unwrap();
    let (newest, count) = reader.join().unwrap();
    assert_eq!(newest, 1000);
    assert!(count >= 1, "{stats:?}");
}

#[test]
fn with_a_subreaper_no_zombie_remains_after_a_timeout_or_a_reset() {
    let dir = TempDir::new("reset-zombie");
    let (pidfile, childfile, script) = stubborn_script(&dir);
    let gone = |pid: i32| !std::path::Path::new(&format!("/proc/{pid}")).exists();
    for timeout_secs in [1, 60] {
        let _ = std::fs::remove_file(&pidfile);
        let _ = std::fs::remove_file(&childfile);
        let decls = serde_json::json!({
            "stuck": {"kind": "exec", "mode": "enforce", "command": ["sh", "-c", &script],
                      "timeoutSecs": timeout_secs, "runOnce": true},
        });
        let (engine, rx) = Builder::new()
            .declarations_path(dir.write("d.json", &decls.to_string()))
            .child_subreaper(true)
            .build()
            .unwrap();
        engine.reset("one").unwrap();
        let shell = read_pid(&pidfile, Duration::from_secs(10));
        let sleeper = read_pid(&childfile, Duration::from_secs(10));
        if timeout_secs == 1 {
            // The run times out: its result comes, and by then the whole
            // group is killed and reaped.
            collect_until(&rx, Duration::from_secs(10), |ev| {
                results(ev, Some("stuck")) == 1
            });
        } else {
            engine.reset("two").unwrap();
        }
        assert!(
            wait_until(Duration::from_millis(500), || gone(shell) && gone(sleeper)),
            "timeout {timeout_secs}: shell {shell} or grandchild {sleeper} still has a /proc entry"
        );
        engine.shutdown().unwrap();
    }
}
