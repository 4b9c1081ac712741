//! How the engine thread is woken: the whole protocol, in one place.
//!
//! Two kinds of news reach the sleeping engine thread from other threads:
//!
//! - **Commands** (reset, stats, shutdown) wake it at once: the sender
//!   writes the engine's `mio::Waker`, unless a write since the engine last
//!   drained commands already stands for this one ([`EngineWake::command`]).
//! - **Results** of finished runs never wake it at once. A result is left
//!   for the engine's next wake-up when that is at most the *hold* away
//!   (the dispatch lead), and otherwise brings that wake-up forward to the
//!   hold from now by re-arming the engine's timerfd
//!   ([`EngineWake::result`]). A result event is then at most the hold
//!   late, and a burst of results, or a busy schedule, costs the engine
//!   one wake-up instead of one per result.
//!
//! The engine's side, in order (`Driver::run`):
//! 1. on waking, [`EngineWake::awake`]: results sent from now on need no
//!    timer, since the engine looks for them before it sleeps again;
//! 2. [`EngineWake::take_commands`] / [`EngineWake::take_results`] before
//!    draining each: a sender whose flag write was skipped because the flag
//!    was still set sent before this point, so the drain sees it;
//! 3. arm its timer for its own next deadline, *then*
//!    [`EngineWake::sleeping_until`] that deadline;
//! 4. look at the result queues once more, and sleep only if empty.
//!
//! A result's sender sends, fences, then reads the published deadline
//! (sequentially consistent on both sides). Either the engine's last look
//! (4) sees the result, or the sender sees the deadline the engine sleeps
//! on. A sender that wants an earlier wake-up must win a compare-and-swap
//! on that deadline before arming, so it arms after the engine did (3) and
//! only ever moves the wake-up earlier; while the engine is awake (1) the
//! published time is in the past, so no sender touches the timer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use super::timer::RemoteTimer;

/// Published while nothing but a command or a result will wake the engine.
const NEVER: u64 = u64::MAX;

/// The engine thread's wake-up state, shared with every thread that sends
/// it news.
pub(crate) struct EngineWake {
    waker: mio::Waker,
    /// Set by the first command since the engine last drained commands.
    commands: AtomicBool,
    /// When the engine wakes next on its own, in nanoseconds since `epoch`
    /// ([`NEVER`]: not before a command or a result).
    next_wake: AtomicU64,
    epoch: Instant,
    hold: Duration,
    /// The engine's timer, for bringing its wake-up forward; `None` where
    /// there is no timer fd (results then wake the engine through `waker`).
    timer: Option<RemoteTimer>,
}

/// A result sender's own flag, on a cache line of its own so that workers
/// finishing runs side by side never write the same line: set by its first
/// result since the engine last drained its results.
#[repr(align(64))]
#[derive(Default)]
pub(crate) struct ResultFlag(AtomicBool);

impl EngineWake {
    pub(crate) fn new(
        waker: mio::Waker,
        timer: Option<RemoteTimer>,
        hold: Duration,
        epoch: Instant,
    ) -> EngineWake {
        EngineWake {
            waker,
            commands: AtomicBool::new(false),
            next_wake: AtomicU64::new(NEVER),
            epoch,
            hold,
            timer,
        }
    }

    /// A command was sent: wakes the engine (one write per drain).
    pub(crate) fn command(&self) {
        self.write_once(&self.commands);
    }

    /// A result was sent at `now` by the owner of `flag`: makes sure the
    /// engine wakes within the hold, without waking it now when that can
    /// be helped. Returns true when that took no syscall.
    pub(crate) fn result(&self, flag: &ResultFlag, now: Instant) -> bool {
        fence(Ordering::SeqCst);
        let want = self.nanos(now + self.hold);
        let mut next = self.next_wake.load(Ordering::SeqCst);
        loop {
            if next <= want {
                return true; // the engine wakes by then anyway
            }
            let Some(timer) = &self.timer else { break };
            match self.next_wake.compare_exchange_weak(
                next,
                want,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) if timer.fire_in(self.hold).is_ok() => return false,
                Ok(_) => break, // could not arm: wake it now instead
                Err(current) => next = current,
            }
        }
        !self.write_once(&flag.0)
    }

    /// The engine woke at `now` (step 1).
    pub(crate) fn awake(&self, now: Instant) {
        self.next_wake.store(self.nanos(now), Ordering::SeqCst);
    }

    /// The engine armed its timer for `at` and is about to sleep (step 3).
    pub(crate) fn sleeping_until(&self, at: Option<Instant>) {
        let nanos = at.map_or(NEVER, |t| self.nanos(t));
        self.next_wake.store(nanos, Ordering::SeqCst);
    }

    /// Before the engine drains commands (step 2).
    pub(crate) fn take_commands(&self) {
        clear(&self.commands);
    }

    /// Before the engine drains the results of `flag`'s owner (step 2).
    pub(crate) fn take_results(flag: &ResultFlag) {
        clear(&flag.0);
    }

    fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch)
            .as_nanos()
            .min(u128::from(NEVER - 1)) as u64
    }

    /// Writes the waker unless `pending` says it was written since the
    /// engine last cleared it. Returns whether it wrote.
    fn write_once(&self, pending: &AtomicBool) -> bool {
        let write = !pending.swap(true, Ordering::AcqRel);
        if write {
            // A failed wake means the poll is gone: the engine is stopping.
            let _ = self.waker.wake();
        }
        write
    }
}

/// A swap, not a store: a sender whose swap still read `true` is then
/// ordered before it, so the drain that follows sees what it sent.
fn clear(pending: &AtomicBool) {
    pending.swap(false, Ordering::AcqRel);
}

#[cfg(test)]
mod tests;
