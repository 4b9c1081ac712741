//! A reset while the process has no descriptor to spare (hung probes can
//! hold every one) cannot read the declarations file. That is the engine's
//! own load, not a bad file: the new generation keeps the previous
//! generation's probes instead of rejecting the file and stopping them.
//!
//! In a test binary of its own: it lowers this process's descriptor limit
//! and fills it, which would make other tests fail beside it.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::time::Duration;

use common::{Fake, TempDir, collect_until, nofile, set_nofile};
use probewheel::{Builder, Event, Verdict};

const FLOOR: Duration = Duration::from_millis(20);

/// The descriptor limit is the process's: one test at a time changes it.
static LIMIT: Mutex<()> = Mutex::new(());

/// Takes every descriptor left under a limit a little above the ones open
/// now; dropping the result gives them back.
fn exhaust_descriptors() -> Vec<OwnedFd> {
    let highest: u64 = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .max()
        .unwrap();
    set_nofile(libc::rlimit {
        rlim_cur: highest + 1 + 8,
        rlim_max: nofile().rlim_max,
    });
    let mut held = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => held.push(OwnedFd::from(f)),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                return held;
            }
        }
    }
}

/// The events of `generation` up to its topology (or rejection).
fn declared(rx: &crossbeam_channel::Receiver<Event>, generation: u64) -> Event {
    let events = collect_until(rx, Duration::from_secs(10), |ev| {
        ev.last().is_some_and(|e| {
            e.header().generation == generation
                && matches!(
                    e,
                    Event::TopologyDeclared(_) | Event::DeclarationsRejected(_)
                )
        })
    });
    events.into_iter().last().unwrap()
}

fn probe_names(e: &Event) -> Vec<String> {
    match e {
        Event::TopologyDeclared(t) => t.probes.iter().map(|p| p.probe_name.to_string()).collect(),
        other => panic!("not a topology: {other:?}"),
    }
}

#[test]
fn a_reset_without_a_free_descriptor_keeps_the_previous_probes() {
    let _one = LIMIT.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("fd-reset");
    let two = r#"{
        "a": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0},
        "b": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0}
    }"#;
    let path = dir.write("checks.json", two);
    let saved = nofile();
    let (engine, rx) = Builder::new()
        .declarations_path(&path)
        .workers(1)
        .min_interval(FLOOR)
        .thread_name("fd-reset")
        .runner("fake", Fake::default())
        .build()
        .unwrap();
    engine.reset("r1").unwrap();
    assert_eq!(probe_names(&declared(&rx, 1)), ["a", "b"]);

    let held = exhaust_descriptors();
    let g2 = engine.reset("r2").unwrap();
    let topology = declared(&rx, g2);
    let verdict = engine.wait_verdict(g2, Duration::from_secs(10));
    drop(held);
    set_nofile(saved);
    assert_eq!(probe_names(&topology), ["a", "b"]);
    assert_eq!(&*topology.header().rollout_id, "r2");
    // The previous probes run in the new generation, but a rollout is never
    // judged healthy on declarations it did not read: unhealthy, saying why.
    let verdict = verdict.unwrap();
    assert_eq!(
        (verdict.verdict, verdict.decided),
        (Verdict::Unhealthy, true)
    );
    assert!(
        verdict
            .reason
            .starts_with("declarations not read (cannot read file: "),
        "{}",
        verdict.reason
    );
    assert!(
        verdict.reason.ends_with(
            "): the previous generation's probes run, but cannot make this rollout healthy"
        ),
        "{}",
        verdict.reason
    );

    // With descriptors back, the next reset reads the file again.
    std::fs::write(&path, r#"{"c": {"kind": "fake", "mode": "enforce"}}"#).unwrap();
    let g3 = engine.reset("r3").unwrap();
    assert_eq!(probe_names(&declared(&rx, g3)), ["c"]);
    engine.shutdown().unwrap();
}

#[test]
fn a_first_reset_without_a_free_descriptor_is_still_rejected() {
    // Nothing to keep: the file could not be read, and that is said.
    let _one = LIMIT.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("fd-first");
    let path = dir.write(
        "checks.json",
        r#"{"a": {"kind": "fake", "mode": "enforce"}}"#,
    );
    let saved = nofile();
    let (engine, rx) = Builder::new()
        .declarations_path(&path)
        .workers(1)
        .thread_name("fd-first")
        .runner("fake", Fake::default())
        .build()
        .unwrap();
    let held = exhaust_descriptors();
    engine.reset("r1").unwrap();
    let first = declared(&rx, 1);
    drop(held);
    set_nofile(saved);
    match first {
        Event::DeclarationsRejected(r) => {
            assert!(r.reason.contains("Too many open files"), "{}", r.reason)
        }
        other => panic!("{other:?}"),
    }
    engine.shutdown().unwrap();
}
