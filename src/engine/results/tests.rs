use super::*;

use std::time::Duration;

use mio::{Events, Poll, Token, Waker};

use crate::clock;
use crate::core::Dispatch;
use crate::runner::RunnerOutcome;

fn finished(probe: u32) -> Finished {
    let now = clock::mono_now();
    let run = Dispatch {
        probe,
        generation: 1,
        tick: 0,
        due: now,
        timeout: None,
    };
    run.finished(now, now, RunnerOutcome::pass())
}

/// An engine's poll and its wake-up, without a timer: a result then wakes
/// the poll through its waker.
fn engine() -> (Poll, Arc<EngineWake>) {
    let poll = Poll::new().unwrap();
    let waker = Waker::new(poll.registry(), Token(0)).unwrap();
    let hold = Duration::from_millis(10);
    let wake = EngineWake::new(waker, None, hold, clock::mono_now());
    (poll, Arc::new(wake))
}

fn woken(poll: &mut Poll) -> bool {
    let mut events = Events::with_capacity(4);
    poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
    !events.is_empty()
}

fn drain(results: &Results) -> Vec<u32> {
    let mut probes = Vec::new();
    results.drain(|f| probes.push(f.run.probe));
    probes
}

#[test]
fn results_wait_for_the_flush_then_reach_the_engine_in_order() {
    let (mut poll, wake) = engine();
    let mut results = Results::default();
    let mut worker = results.sender(&wake);
    let blocking = results.sender(&wake);
    worker.push(finished(0));
    worker.push(finished(1));
    assert!(results.is_empty(), "gathered, not sent");
    assert!(!woken(&mut poll));
    worker.flush();
    assert!(woken(&mut poll), "a flush makes sure the engine wakes");
    blocking.send(finished(2));
    assert!(!results.is_empty());
    assert_eq!(drain(&results), [0, 1, 2]);
    assert!(results.is_empty());
}

#[test]
fn a_full_batch_is_sent_before_the_flush() {
    let (_poll, wake) = engine();
    let mut results = Results::default();
    let mut worker = results.sender(&wake);
    for probe in 0..=RESULT_BATCH as u32 {
        worker.push(finished(probe));
    }
    assert_eq!(drain(&results).len(), RESULT_BATCH);
    worker.flush();
    assert_eq!(drain(&results), [RESULT_BATCH as u32]);
}
