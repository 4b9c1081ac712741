#![allow(clippy::disallowed_methods)] // real threads and a real poll

use super::*;

use std::sync::Arc;
use std::thread;

use mio::{Events, Poll, Token, Waker};

use crate::clock;
use crate::engine::timer::DeadlineTimer;

const WAKER: Token = Token(0);
const TIMER: Token = Token(1);

/// An engine thread's poll, waker and timer.
struct Engine {
    poll: Poll,
    events: Events,
    timer: DeadlineTimer,
    wake: Arc<EngineWake>,
}

impl Engine {
    fn new(hold: Duration) -> Engine {
        let poll = Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), WAKER).unwrap();
        let timer = DeadlineTimer::new(poll.registry(), TIMER).unwrap();
        let remote = timer.remote().unwrap();
        let wake = Arc::new(EngineWake::new(waker, remote, hold, clock::mono_now()));
        Engine {
            poll,
            events: Events::with_capacity(8),
            timer,
            wake,
        }
    }

    /// Arms the timer for `at`, publishes it (step 3).
    fn sleep_until(&mut self, at: Instant) {
        let now = clock::mono_now();
        self.timer.arm(Some(at), now).unwrap();
        self.wake.sleeping_until(Some(at));
    }

    /// Polls up to `max`; the tokens that came.
    fn poll(&mut self, max: Duration) -> Vec<Token> {
        self.poll.poll(&mut self.events, Some(max)).unwrap();
        let tokens: Vec<Token> = self.events.iter().map(|e| e.token()).collect();
        if tokens.contains(&TIMER) {
            self.timer.acknowledge();
        }
        tokens
    }
}

#[test]
fn a_burst_of_commands_writes_the_waker_once_per_drain() {
    let mut e = Engine::new(Duration::from_millis(10));
    e.wake.command();
    e.wake.command();
    assert_eq!(e.poll(Duration::from_secs(5)), [WAKER]);
    // Not drained yet: a further command needs no write.
    e.wake.command();
    assert!(e.poll(Duration::from_millis(50)).is_empty());
    e.wake.take_commands();
    e.wake.command();
    assert_eq!(e.poll(Duration::from_secs(5)), [WAKER]);
}

#[test]
fn a_result_brings_a_far_wake_up_forward_to_the_hold() {
    let hold = Duration::from_millis(20);
    let mut e = Engine::new(hold);
    let flag = ResultFlag::default();
    e.sleep_until(clock::mono_now() + Duration::from_secs(30));
    let sent = clock::mono_now();
    assert!(!e.wake.result(&flag, sent), "it re-armed the timer");
    assert_eq!(e.poll(Duration::from_secs(5)), [TIMER]);
    assert!(clock::mono_now() >= sent + hold, "not before the hold");
}

#[test]
fn a_result_near_the_engine_wake_up_leaves_it_alone() {
    let mut e = Engine::new(Duration::from_millis(200));
    let flag = ResultFlag::default();
    let at = clock::mono_now() + Duration::from_millis(30);
    e.sleep_until(at);
    assert!(e.wake.result(&flag, clock::mono_now()));
    assert_eq!(e.poll(Duration::from_secs(5)), [TIMER]);
    assert!(clock::mono_now() >= at, "the engine's own deadline stands");
}

#[test]
fn while_the_engine_is_awake_a_result_touches_nothing() {
    let mut e = Engine::new(Duration::from_millis(10));
    let flag = ResultFlag::default();
    e.sleep_until(clock::mono_now() + Duration::from_secs(30));
    e.wake.awake(clock::mono_now());
    assert!(e.wake.result(&flag, clock::mono_now()));
    // Neither the waker nor the timer: the engine looks before sleeping.
    assert!(e.poll(Duration::from_millis(100)).is_empty());
}

#[test]
fn without_a_timer_a_result_wakes_the_engine_once_per_drain() {
    let poll = Poll::new().unwrap();
    let waker = Waker::new(poll.registry(), WAKER).unwrap();
    let wake = EngineWake::new(waker, None, Duration::from_millis(10), clock::mono_now());
    let flag = ResultFlag::default();
    wake.sleeping_until(None);
    assert!(!wake.result(&flag, clock::mono_now()), "wrote the waker");
    assert!(wake.result(&flag, clock::mono_now()), "once per drain");
    EngineWake::take_results(&flag);
    assert!(!wake.result(&flag, clock::mono_now()));
}

/// The lost wake-up: a worker sends results at random moments of the
/// engine's loop; every one must be taken within the hold (plus scheduling
/// margin), never left until the engine's own far deadline.
#[test]
fn no_result_waits_for_the_engine_far_deadline() {
    let hold = Duration::from_millis(5);
    let mut e = Engine::new(hold);
    let wake = Arc::clone(&e.wake);
    let (results, rx) = crossbeam_channel::unbounded::<Instant>();
    let (taken, taken_rx) = crossbeam_channel::unbounded::<Duration>();
    let rounds = 300;
    let flag = Arc::new(ResultFlag::default());
    let worker_flag = Arc::clone(&flag);
    let worker = thread::spawn(move || {
        let flag = worker_flag;
        let mut rng = 0x9E37_79B9_7F4A_7C15_u64;
        for _ in 0..rounds {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // Anywhere in the engine's loop, sleeping or not.
            clock::sleep(Duration::from_micros(rng % 3_000));
            let now = clock::mono_now();
            results.send(now).unwrap();
            wake.result(&flag, now);
            taken_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
    });
    let mut worst = Duration::ZERO;
    let mut got = 0;
    loop {
        // Steps 1-4 of the engine's side.
        e.wake.awake(clock::mono_now());
        EngineWake::take_results(&flag);
        for sent in rx.try_iter() {
            let late = clock::mono_now().saturating_duration_since(sent);
            worst = worst.max(late);
            taken.send(late).unwrap();
            got += 1;
        }
        if got == rounds {
            break;
        }
        e.sleep_until(clock::mono_now() + Duration::from_secs(30));
        if !rx.is_empty() {
            continue;
        }
        e.poll(Duration::from_secs(30));
    }
    worker.join().unwrap();
    // A lost wake-up would be 30 s; the margin is for a loaded machine.
    assert!(worst < Duration::from_secs(2), "a result waited {worst:?}");
}
