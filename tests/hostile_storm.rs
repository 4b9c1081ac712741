//! A reset storm: 1,000 resets in a tight loop while fake and `exec`
//! probes run. Every event keeps the contract (a reader thread checks each
//! one), memory returns to where it was, and no process is left behind.
//!
//! One test in its own binary: it measures this process's RSS and
//! children, which other tests running in parallel threads would disturb.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use common::{
    Fake, Guarantees, TempDir, open_fds, our_children, rss_bytes, running_in, wait_until,
};
use probewheel::{Builder, Engine};

const FLOOR: Duration = Duration::from_millis(2);
const STORM: u64 = 1000;
const MIB: u64 = 1024 * 1024;

/// Resets `n` times; every `every` resets, waits until the engine has
/// started another run, so that runs (and exec children) are in flight
/// when the next resets hit.
fn resets(engine: &Engine, tag: &str, n: u64, every: u64) {
    for i in 0..n {
        engine.reset(&format!("{tag}-{i}")).unwrap();
        if i % every == 0 {
            let before = engine.stats().unwrap().dispatched;
            assert!(
                wait_until(Duration::from_secs(5), || engine
                    .stats()
                    .unwrap()
                    .dispatched
                    > before),
                "no run after reset {i}"
            );
        }
    }
}

/// Waits until the engine is at `generation`, has nothing waiting and the
/// reader has checked everything it sent.
fn settle(engine: &Engine, checked: &AtomicU64, generation: u64) {
    assert!(
        wait_until(Duration::from_secs(20), || {
            let s = engine.stats().unwrap();
            s.generation == generation
                && s.backlog == 0
                && checked.load(Ordering::SeqCst) == s.last_seq
        }),
        "engine did not settle: {:?}, checked {}",
        engine.stats().unwrap(),
        checked.load(Ordering::SeqCst)
    );
}

#[test]
fn a_reset_storm_keeps_every_guarantee_and_leaks_nothing() {
    let dir = TempDir::new("storm");
    let cwd = dir.0.canonicalize().unwrap();
    let sh = |script: &str| {
        serde_json::json!([
            "sh",
            "-c",
            format!("cd {} || exit 99; {script}", cwd.display())
        ])
    };
    let decls = serde_json::json!({
        "a-flip": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0, "behave": "flip"},
        "b-slow": {"kind": "fake", "mode": "observe", "intervalSeconds": 0, "behave": "slow", "sleepMs": 3},
        "c-pass": {"kind": "fake", "mode": "observe", "intervalSeconds": 0},
        "d-once": {"kind": "fake", "mode": "enforce", "runOnce": true, "behave": "fail"},
        "e-off": {"kind": "fake", "mode": "disabled", "intervalSeconds": 0},
        "x-true": {"kind": "exec", "mode": "enforce", "intervalSeconds": 0, "command": ["true"]},
        "x-false": {"kind": "exec", "mode": "observe", "intervalSeconds": 0, "command": "false"},
        "x-sleep": {"kind": "exec", "mode": "enforce", "intervalSeconds": 0, "timeoutSecs": 60,
            "command": sh("sleep 30 & sleep 30")},
    });
    let fds_at_start = open_fds();
    let (engine, rx) = Builder::new()
        .declarations_path(dir.write("d.json", &decls.to_string()))
        .min_interval(FLOOR)
        .events_capacity(4)
        .workers(2)
        .runner("fake", Fake::default())
        .build()
        .unwrap();

    let checked = Arc::new(AtomicU64::new(0));
    let reader = {
        let checked = Arc::clone(&checked);
        thread::spawn(move || {
            let mut g = Guarantees::new(FLOOR);
            g.run_once.insert("d-once".to_owned());
            for e in rx.iter() {
                g.check(&e)?;
                checked.store(e.seq(), Ordering::SeqCst);
            }
            Ok::<Guarantees, String>(g)
        })
    };

    // Warm-up: the allocator's arenas, the wheel and the channel blocks
    // reach their working size.
    resets(&engine, "warm", 100, 5);
    settle(&engine, &checked, 100);
    let rss_before = rss_bytes();
    let before = engine.stats().unwrap();

    resets(&engine, "storm", STORM, 5);
    settle(&engine, &checked, 100 + STORM);
    let rss_after = rss_bytes();
    // Freed memory may come back to the kernel a little later (glibc trims
    // arenas of other threads lazily): wait for it, bounded.
    let mut rss_settled = rss_after;
    let returned = wait_until(Duration::from_secs(10), || {
        rss_settled = rss_bytes();
        rss_settled <= rss_before + MIB
    });
    let stats = engine.stats().unwrap();
    eprintln!(
        "storm: rss before {} KiB, right after {} KiB, settled {} KiB; {} generations, \
         {} runs, {} stale results, {} events dropped at reset",
        rss_before / 1024,
        rss_after / 1024,
        rss_settled / 1024,
        stats.generation,
        stats.dispatched - before.dispatched,
        stats.stale_results - before.stale_results,
        stats.dropped_at_reset - before.dropped_at_reset,
    );
    assert!(
        returned,
        "RSS grew by {} KiB over the storm",
        (rss_settled - rss_before) / 1024
    );
    assert!(
        stats.stale_results > before.stale_results,
        "no run was cut by a reset: the storm tested nothing: {stats:?}"
    );

    // Only the current generation's children can be alive: at most one
    // leader per exec probe, and one group of sleepers.
    let live: Vec<_> = our_children()
        .into_iter()
        .filter(|p| p.state != 'Z')
        .collect();
    assert!(live.len() <= 3, "{live:?}");
    let sleepers = running_in(&cwd);
    let groups: std::collections::BTreeSet<i32> = sleepers.iter().map(|p| p.pgid).collect();
    assert!(
        groups.len() <= 1,
        "groups of older generations alive: {sleepers:?}"
    );

    engine.shutdown().unwrap();
    let g = reader.join().unwrap().unwrap();
    assert_eq!(g.newest_generation, 100 + STORM);
    assert!(g.results > 0);
    assert!(
        wait_until(Duration::from_secs(2), || running_in(&cwd).is_empty()
            && our_children().is_empty()),
        "left behind: {:?} / {:?}",
        running_in(&cwd),
        our_children()
    );
    // A leak only adds descriptors; the harness may hold a transient one.
    assert!(
        wait_until(Duration::from_secs(2), || open_fds() <= fds_at_start),
        "fds: {} at start, {} now",
        fds_at_start,
        open_fds()
    );
    eprintln!(
        "storm: {} events checked over {} generations, {} results",
        g.events, g.generations, g.results
    );
}
