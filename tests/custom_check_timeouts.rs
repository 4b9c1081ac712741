//! `timeoutSecs` bounds the runs of registered kinds, end to end: a check
//! that ignores cancellation and hangs has its probe's result recorded at
//! the deadline, holds its probe's later slots (skipped and counted) until
//! it returns, and then the probe runs again; a check that honours
//! cancellation returns at its deadline; shutdown stays prompt with a
//! check hung past its deadline.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Guarantees, collect_until, probe_results, results, threads_named, wait_until};
use probewheel::runner::FnRunner;
use probewheel::{Builder, Event, RunContext, RunnerOutcome, Status};

const FLOOR: Duration = Duration::from_millis(200);

/// One probe of kind `blocker`, due every `FLOOR`, bounded at 1 s.
const STUCK: &str = r#"{"stuck": {"kind": "blocker", "mode": "enforce",
    "intervalSeconds": 0, "timeoutSecs": 1}}"#;

/// How late after its deadline a timed-out result may come (the engine
/// records it at the deadline; this bounds a loaded machine).
const PROMPT: Duration = Duration::from_secs(1);

/// A check whose first run blocks on `release` (ignoring cancellation) and
/// whose later runs pass at once; each run sends its (start, deadline).
fn blocker(
    inline: bool,
    release: crossbeam_channel::Receiver<()>,
    starts: crossbeam_channel::Sender<(Instant, Instant)>,
    runs: Arc<AtomicU64>,
) -> FnRunner {
    let check = move |ctx: &RunContext<'_>| {
        let _ = starts.send((ctx.started(), ctx.deadline()));
        if runs.fetch_add(1, Ordering::SeqCst) == 0 {
            let _ = release.recv(); // deaf to cancellation on purpose
        }
        RunnerOutcome::pass()
    };
    if inline {
        FnRunner::inline(check)
    } else {
        FnRunner::new(check)
    }
}

fn a_hung_check_times_out_holds_its_slots_and_runs_again(inline: bool, tag: &str) {
    let (release_tx, release_rx) = crossbeam_channel::bounded(1);
    let (starts_tx, starts) = crossbeam_channel::unbounded();
    let runs = Arc::new(AtomicU64::new(0));
    let (engine, rx) = Builder::new()
        .declarations_json(STUCK)
        .workers(2)
        .min_interval(FLOOR)
        .thread_name(tag)
        .runner(
            "blocker",
            blocker(inline, release_rx, starts_tx, Arc::clone(&runs)),
        )
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    let (started, deadline) = starts.recv_timeout(Duration::from_secs(10)).unwrap();
    // The deadline is 1 s after the run's slot, which is at or before its
    // start.
    assert!(
        deadline > started && deadline <= started + Duration::from_secs(1),
        "deadline {:?} after the start",
        deadline.checked_duration_since(started)
    );

    // The failed result comes at the deadline, while the check still hangs.
    let mut events = collect_until(&rx, Duration::from_secs(10), |ev| {
        results(ev, Some("stuck")) >= 1
    });
    let arrived = Instant::now();
    assert!(arrived >= deadline, "recorded before the deadline");
    assert!(
        arrived < deadline + PROMPT,
        "recorded {:?} after the deadline",
        arrived - deadline
    );
    let r = probe_results(&events, "stuck")[0].clone();
    assert_eq!(r.status, Status::Fail);
    assert_eq!(r.failure_reason.as_deref(), Some("timed out after 1 s"));
    assert_eq!((r.tick, r.skipped_ticks), (0, 0));
    assert_eq!(r.duration_us, 1_000_000);

    // While it hangs, its slots are skipped and counted, and it is not run
    // again (G6).
    assert!(
        wait_until(Duration::from_secs(10), || engine
            .stats()
            .unwrap()
            .skipped_ticks
            >= 5),
        "{:?}",
        engine.stats().unwrap()
    );
    events.extend(rx.try_iter());
    assert_eq!(
        results(&events, Some("stuck")),
        1,
        "a result while it hangs"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // Released: its own (passing) outcome is discarded, and the probe runs
    // again at a later slot, counting the ones it skipped.
    release_tx.send(()).unwrap();
    let after = collect_until(&rx, Duration::from_secs(10), |ev| {
        results(ev, Some("stuck")) >= 1
    });
    let next = probe_results(&after, "stuck")[0].clone();
    assert_eq!(next.status, Status::Pass);
    assert!(next.skipped_ticks >= 5, "{next:?}");
    assert_eq!(next.tick, r.tick + 1 + next.skipped_ticks, "{next:?}");
    assert!(runs.load(Ordering::SeqCst) >= 2);
    let stats = engine.stats().unwrap();
    engine.shutdown().unwrap();
    assert_eq!(stats.stale_results, 0, "{stats:?}");

    events.extend(after);
    let mut g = Guarantees::new(FLOOR);
    for e in &events {
        g.check(e).unwrap();
    }
}

#[test]
fn a_blocking_check_that_hangs_times_out_at_its_deadline_and_holds_its_slots() {
    a_hung_check_times_out_holds_its_slots_and_runs_again(false, "ct-block");
}

#[test]
fn an_inline_check_that_hangs_times_out_at_its_deadline_and_holds_its_slots() {
    a_hung_check_times_out_holds_its_slots_and_runs_again(true, "ct-inline");
}

#[test]
fn a_check_that_honours_cancellation_returns_at_its_deadline() {
    // Every run waits a minute, cancellably.
    let (tx, returns) = crossbeam_channel::unbounded();
    let (engine, rx) = Builder::new()
        .declarations_json(STUCK)
        .workers(2)
        .min_interval(FLOOR)
        .thread_name("ct-honour")
        .runner(
            "blocker",
            FnRunner::new(move |ctx| {
                let cancelled = ctx.sleep(Duration::from_secs(60));
                let _ = tx.send((ctx.deadline(), ctx.now(), cancelled, ctx.is_cancelled()));
                RunnerOutcome::fail("gave up")
            }),
        )
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    let (deadline, returned, cancelled, is_cancelled) =
        returns.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(cancelled && is_cancelled);
    assert!(returned >= deadline);
    assert!(
        returned < deadline + PROMPT,
        "returned {:?} after its deadline",
        returned - deadline
    );
    // Its result says it timed out, whichever of its return and the
    // engine's deadline came first; the probe goes on running.
    let events = collect_until(&rx, Duration::from_secs(10), |ev| {
        results(ev, Some("stuck")) >= 2
    });
    engine.shutdown().unwrap();
    let rs = probe_results(&events, "stuck");
    for r in &rs {
        assert_eq!(r.failure_reason.as_deref(), Some("timed out after 1 s"));
    }
    assert!(rs[1].tick > rs[0].tick);
    let mut g = Guarantees::new(FLOOR);
    for e in &events {
        g.check(e).unwrap();
    }
}

#[test]
fn shutdown_is_prompt_with_a_check_hung_past_its_deadline() {
    let (release_tx, release_rx) = crossbeam_channel::bounded(1);
    let (starts_tx, _starts) = crossbeam_channel::unbounded();
    let runs = Arc::new(AtomicU64::new(0));
    let (engine, rx) = Builder::new()
        .declarations_json(STUCK)
        .workers(2)
        .min_interval(FLOOR)
        .thread_name("ct-g10")
        .runner("blocker", blocker(false, release_rx, starts_tx, runs))
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    let mut events = collect_until(&rx, Duration::from_secs(10), |ev| {
        results(ev, Some("stuck")) >= 1
    });

    let t = Instant::now();
    engine.shutdown().unwrap();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(1), "shutdown took {took:?}");
    // Only the hung check's own thread is left, and no further event.
    let mut left = Vec::new();
    let settled = wait_until(Duration::from_millis(500), || {
        left = threads_named("ct-g10");
        left.len() == 1
    });
    assert!(settled, "{left:?}");
    assert!(left[0].starts_with("ct-g10-check-"), "{left:?}");
    events.extend(rx.try_iter());
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(100)),
        Err(crossbeam_channel::RecvTimeoutError::Disconnected)
    ));
    // Released, it returns into nothing, and its thread ends.
    release_tx.send(()).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || threads_named("ct-g10")
            .is_empty()),
        "{:?}",
        threads_named("ct-g10")
    );
    let stuck: Vec<&Event> = events
        .iter()
        .filter(|e| e.name() == "probeResult")
        .collect();
    assert_eq!(stuck.len(), 1, "{stuck:?}");
}
