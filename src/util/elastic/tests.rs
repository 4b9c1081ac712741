use super::*;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

const LIMITS: Limits = Limits {
    threads: 3,
    idle: Duration::from_millis(50),
    stack: 64 * 1024,
};

/// Waits up to 5 s for `done`.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let end = clock::mono_now() + Duration::from_secs(5);
    while !done() {
        if clock::mono_now() >= end {
            return false;
        }
        clock::sleep(Duration::from_millis(1));
    }
    true
}

/// A pool whose jobs count their start in `started`, then block until
/// their gate sender is dropped.
fn gated(name: &str, started: &Arc<AtomicUsize>) -> Elastic<mpsc::Receiver<()>> {
    let started = Arc::clone(started);
    Elastic::new(name.into(), LIMITS, move |gate: mpsc::Receiver<()>| {
        started.fetch_add(1, Ordering::SeqCst);
        let _ = gate.recv();
    })
}

#[test]
fn threads_start_on_demand_up_to_the_cap_and_end_when_idle() {
    let started = Arc::new(AtomicUsize::new(0));
    let pool = gated("t-cap", &started);
    assert_eq!(pool.threads(), (0, 0), "no thread before any work");
    let gates: Vec<mpsc::Sender<()>> = (0..5)
        .map(|_| {
            let (tx, rx) = mpsc::channel();
            assert!(pool.submit(rx).is_ok());
            tx
        })
        .collect();
    assert!(eventually(|| started.load(Ordering::SeqCst) == 3));
    assert_eq!(pool.threads(), (3, 0), "the others wait for a thread");
    drop(gates);
    assert!(eventually(|| started.load(Ordering::SeqCst) == 5));
    assert!(
        eventually(|| pool.threads() == (0, 0)),
        "{:?}",
        pool.threads()
    );
    assert_eq!(pool.stop(clock::mono_now()), 0);
}

#[test]
fn stop_reports_the_threads_left_in_a_job_and_refuses_more() {
    let started = Arc::new(AtomicUsize::new(0));
    let pool = gated("t-stop", &started);
    let (stuck, rx) = mpsc::channel();
    assert!(pool.submit(rx).is_ok());
    assert!(eventually(|| started.load(Ordering::SeqCst) == 1));
    let left = pool.stop(clock::mono_now() + Duration::from_millis(20));
    assert_eq!(left, 1, "the thread in a job is left behind");
    let (_tx, rx) = mpsc::channel();
    let refused = pool.submit(rx).unwrap_err();
    assert!(matches!(refused.why, Refusal::Stopped));
    drop(stuck);
    assert!(
        eventually(|| pool.threads() == (0, 0)),
        "it ends when its job returns"
    );
}

#[test]
fn a_job_that_panics_ends_its_thread_counted() {
    let runs = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&runs);
    let pool = Elastic::new("t-panic".into(), LIMITS, move |n: usize| {
        seen.fetch_add(1, Ordering::SeqCst);
        assert!(n > 0, "job {n} panics");
    });
    for n in 0..10 {
        assert!(pool.submit(n % 2).is_ok());
        assert!(eventually(|| runs.load(Ordering::SeqCst) > n));
    }
    assert!(
        eventually(|| pool.threads() == (0, 0)),
        "{:?}",
        pool.threads()
    );
    assert_eq!(pool.stop(clock::mono_now()), 0);
}
