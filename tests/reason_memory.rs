//! A failure reason cut to `MAX_REASON_BYTES` holds about that much memory,
//! whatever the runner handed over: with 200 probes failing with 1 MiB
//! reasons and a consumer that never reads, the results waiting for the
//! consumer (one per probe, and the channel's) must not keep their
//! megabyte each.
//!
//! In a test binary of its own: it measures the process's RSS.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{rss_bytes, wait_until};
use probewheel::runner::FnRunner;
use probewheel::{Builder, RunnerOutcome};

const PROBES: usize = 200;
const MIB: u64 = 1 << 20;

#[test]
fn cut_reasons_of_a_stalled_consumer_hold_no_megabytes() {
    let mut decls = serde_json::Map::new();
    for i in 0..PROBES {
        decls.insert(
            format!("big-{i:03}"),
            serde_json::json!({"kind": "big", "mode": "enforce", "intervalSeconds": 1}),
        );
    }
    let runs = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&runs);
    let before = rss_bytes();
    let (engine, rx) = Builder::new()
        .declarations_json(serde_json::Value::Object(decls).to_string())
        .workers(2)
        .min_interval(Duration::from_millis(200))
        .events_capacity(16)
        .thread_name("big-reason")
        .runner(
            "big",
            FnRunner::inline(move |_| {
                counted.fetch_add(1, Ordering::Relaxed);
                RunnerOutcome::fail("x".repeat(1 << 20))
            }),
        )
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    // Every probe has run at least twice, so each has a result waiting
    // (the channel is full after 16 events and nobody reads it).
    assert!(
        wait_until(Duration::from_secs(30), || {
            runs.load(Ordering::Relaxed) >= 2 * PROBES as u64
                && engine.stats().is_ok_and(|s| s.backlog >= PROBES as u64 / 2)
        }),
        "{} runs, {:?}",
        runs.load(Ordering::Relaxed),
        engine.stats()
    );
    let after = rss_bytes();
    let stats = engine.stats().unwrap();
    engine.shutdown().unwrap();
    drop(rx);
    let grown = after.saturating_sub(before);
    eprintln!(
        "RSS {} MiB before, {} MiB with {} events waiting ({} runs)",
        before / MIB,
        after / MIB,
        stats.backlog,
        runs.load(Ordering::Relaxed)
    );
    // A megabyte per waiting reason would be over 100 MiB; cut reasons
    // are a few hundred bytes each.
    assert!(grown < 64 * MIB, "RSS grew by {} MiB", grown / MIB);
}
