//! A worker: a poll loop that carries any number of runs (G13).
//!
//! The engine hands a worker batches of [`Dispatch`]s on its inbox and wakes it
//! once per batch. The worker keeps them in start order and sleeps on its
//! own timerfd until the first is due, so a run still starts at its exact
//! slot. A built-in run is a [`Run`] state machine: the worker calls it
//! when it starts, when a descriptor it registered is ready, when its
//! lookup is answered, and at the instant it asked for; in between it costs
//! a timer entry and its descriptors, not a thread. A check that never
//! waits ([`Placement::Inline`](crate::runner::Placement)) runs right on
//! the worker. Blocking custom checks never come here (see `blocking.rs`).
//!
//! Each loop iteration: read the clock, start the runs that are due (first,
//! for precision), cancel runs of a generation that is gone, take new jobs,
//! then call the runs whose descriptors, lookups or instants are ready.
//! Finished runs go back on the worker's result channel in batches, one
//! send per iteration (or per `RESULT_BATCH` results), with one
//! `EngineWake::result` per iteration.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::{Events, Poll, Token, Waker};

use super::pool::{Shared, Tasks, WorkerFlags, panic_message, run_check};
use super::timer::DeadlineTimer;
use crate::clock;
use crate::core::{Dispatch, Finished};
use crate::runner::machine::{Cx, Run, Step, Wake};
use crate::runner::{Prepared, RunnerOutcome};
use crate::transport::resolve::Resolver;

const WAKER: Token = Token(0);

/// Results handed to the engine in one send at most: a burst of
/// thousands of starts sends a few batches, each a small allocation.
const RESULT_BATCH: usize = 256;
const TIMER: Token = Token(1);
/// Runs are registered under `FIRST_RUN + slot`.
const FIRST_RUN: usize = 2;

/// How long a stopping worker lets cancelled runs release what they hold
/// (an exec group's kill and reap) before it drops them.
const STOP_GRACE: Duration = Duration::from_millis(600);

/// What the engine and the resolver threads use to reach a worker.
pub(crate) struct Doorbell {
    waker: Waker,
    /// Set when a batch was queued since the worker last drained its inbox.
    inbox: AtomicBool,
    /// Runs whose lookup was answered.
    woken: Mutex<Vec<Token>>,
}

impl Doorbell {
    /// Wakes the worker for a new batch, or to look at cancellation. One
    /// syscall per burst: the flag is cleared by the worker before it
    /// drains.
    pub(crate) fn ring(&self) {
        if !self.inbox.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    /// Wakes the worker whatever the flag says (reset, shutdown).
    pub(crate) fn ring_now(&self) {
        self.inbox.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }
}

impl Wake for Doorbell {
    fn wake(&self, token: Token) {
        self.woken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(token);
        let _ = self.waker.wake();
    }
}

/// A worker's poll, before its thread starts.
pub(crate) struct Setup {
    poll: Poll,
    timer: DeadlineTimer,
    doorbell: Arc<Doorbell>,
}

impl Setup {
    pub(crate) fn new() -> io::Result<Setup> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let timer = DeadlineTimer::new(poll.registry(), TIMER)?;
        Ok(Setup {
            poll,
            timer,
            doorbell: Arc::new(Doorbell {
                waker,
                inbox: AtomicBool::new(false),
                woken: Mutex::new(Vec::new()),
            }),
        })
    }

    pub(crate) fn doorbell(&self) -> &Arc<Doorbell> {
        &self.doorbell
    }
}

/// A run in progress.
struct Slot {
    run: Box<dyn Run>,
    job: Dispatch,
    started: Instant,
    /// The instant the run last asked to be called at, at the latest.
    until: Option<Instant>,
    /// Tells this slot's timer entries from a former occupant's.
    nonce: u64,
    cancelled: bool,
}

pub(crate) struct Worker {
    poll: Poll,
    events: Events,
    timer: DeadlineTimer,
    doorbell: Arc<Doorbell>,
    wake: Arc<dyn Wake>,
    inbox: Receiver<Vec<Dispatch>>,
    shared: Arc<Shared>,
    resolver: Arc<Resolver>,
    /// Spare sockets and a read buffer, lent to the runs.
    stock: crate::runner::machine::Stock,
    done: Sender<Vec<Finished>>,
    /// Finished runs not handed over yet: they go in one send per loop
    /// turn (or per `RESULT_BATCH`), not one each, so a burst of starts
    /// pays no channel operation per run.
    results: Vec<Finished>,
    flags: Arc<WorkerFlags>,
    /// Jobs waiting for their start, in start order (then arrival).
    pending: VecDeque<Dispatch>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    live: usize,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    nonce: u64,
    tasks: Option<Tasks>,
    /// The cancellation epoch last swept for.
    seen_epoch: u64,
    /// The earliest finish since results were last announced.
    unannounced: Option<Instant>,
    /// Set once the inbox closed or shutdown was seen: cancel, then end.
    stopping: Option<Instant>,
}

impl Worker {
    pub(crate) fn new(
        setup: Setup,
        inbox: Receiver<Vec<Dispatch>>,
        shared: Arc<Shared>,
        resolver: Arc<Resolver>,
        done: Sender<Vec<Finished>>,
        flags: Arc<WorkerFlags>,
    ) -> Worker {
        let wake: Arc<dyn Wake> = Arc::clone(&setup.doorbell) as Arc<dyn Wake>;
        Worker {
            poll: setup.poll,
            events: Events::with_capacity(256),
            timer: setup.timer,
            doorbell: setup.doorbell,
            wake,
            inbox,
            shared,
            resolver,
            stock: Default::default(),
            done,
            results: Vec::new(),
            flags,
            pending: VecDeque::new(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            timers: BinaryHeap::new(),
            nonce: 0,
            tasks: None,
            seen_epoch: 0,
            unannounced: None,
            stopping: None,
        }
    }

    pub(crate) fn run(mut self) {
        loop {
            let now = clock::mono_now();
            self.start_due(now);
            self.sweep_cancelled(now);
            self.take_jobs();
            self.start_due(clock::mono_now());
            self.serve_ready();
            self.hand_over_results();
            if let Some(at) = self.unannounced.take() {
                self.shared.wake.result(&self.flags.results, at);
            }
            if let Some(since) = self.stopping {
                if self.live == 0 || clock::mono_now() >= since + STOP_GRACE {
                    return; // dropping the runs closes what they hold
                }
            }
            if self.wait().is_err() {
                return;
            }
        }
    }

    /// Sleeps until the next start or run instant, a batch, a wake or a
    /// ready descriptor.
    fn wait(&mut self) -> io::Result<()> {
        let mut next = self.pending.front().map(|j| j.due);
        if let Some(Reverse((at, _, _))) = self.timers.peek() {
            next = Some(next.map_or(*at, |n| n.min(*at)));
        }
        if let Some(since) = self.stopping {
            let end = since + STOP_GRACE;
            next = Some(next.map_or(end, |n| n.min(end)));
        }
        let now = clock::mono_now();
        if next.is_some_and(|n| n <= now) {
            self.events.clear();
            return Ok(());
        }
        let timeout = match self.timer.arm(next, now) {
            Ok(t) => t,
            Err(e) => {
                log::error!("a worker cannot arm its timer ({e}); it uses poll timeouts");
                self.timer = DeadlineTimer::PollTimeout;
                self.timer.arm(next, now)?
            }
        };
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => self.events.clear(),
            Err(e) => {
                log::error!("a worker's poll failed: {e}; it stops");
                return Err(e);
            }
        }
        if self.events.iter().any(|e| e.token() == TIMER) {
            self.timer.acknowledge();
        }
        Ok(())
    }

    /// Queues the batches the engine sent.
    fn take_jobs(&mut self) {
        // Cleared before draining: a ring skipped because the flag was set
        // is for a batch sent before this point, which the drain sees.
        self.doorbell.inbox.swap(false, Ordering::AcqRel);
        loop {
            match self.inbox.try_recv() {
                Ok(batch) => {
                    // Batches come in start order, so this appends; a job
                    // that starts before queued ones is slotted in.
                    for job in batch {
                        if self.pending.back().is_none_or(|b| b.due <= job.due) {
                            self.pending.push_back(job);
                        } else {
                            let at = self.pending.partition_point(|p| p.due <= job.due);
                            self.pending.insert(at, job);
                        }
                    }
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    self.stop(clock::mono_now());
                    break;
                }
            }
        }
    }

    fn stop(&mut self, now: Instant) {
        if self.stopping.is_none() {
            self.stopping = Some(now);
            self.pending.clear();
            self.cancel_where(now, |_| true);
        }
    }

    /// Starts every queued job whose start has come.
    fn start_due(&mut self, mut now: Instant) {
        while self.pending.front().is_some_and(|j| j.due <= now) {
            let Some(job) = self.pending.pop_front() else {
                break;
            };
            // An inline run's end is the next run's start: the time between
            // is far below a microsecond, the unit of `latenessUs`.
            now = self.start(job, now).unwrap_or_else(clock::mono_now);
        }
    }

    /// Starts `job` at `started`; returns when it ended if it ran inline.
    ///
    /// Nothing shared with the other workers is written on the way (no
    /// reference count is touched): in a burst both workers start
    /// thousands of runs of the same kind side by side.
    fn start(&mut self, job: Dispatch, started: Instant) -> Option<Instant> {
        let cancel = &self.shared.cancel;
        if cancel.is_cancelled(job.generation) {
            return None; // reset or shutdown while queued: never started
        }
        if self.tasks.as_ref().is_none_or(|c| c.0 != job.generation) {
            self.tasks = self
                .shared
                .tasks_of(job.generation)
                .map(|t| (job.generation, t));
        }
        let Some((name, Some(prepared))) = self
            .tasks
            .as_ref()
            .and_then(|c| c.1.get(job.probe as usize))
        else {
            return None; // a newer generation was published meanwhile
        };
        let run = match prepared {
            Prepared::Machine(machine) => machine.start(started),
            Prepared::Inline(check) => {
                let busy = &self.flags.busy;
                busy.store(true, Ordering::Release);
                let (outcome, finished) = run_check(&**check, name, &job, started, cancel);
                busy.store(false, Ordering::Release);
                self.finish(&job, started, finished, outcome);
                return Some(finished);
            }
            Prepared::Blocking(_) => {
                debug_assert!(false, "blocking checks go to the blocking pool");
                return None;
            }
        };
        let idx = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        self.nonce += 1;
        self.slots[idx] = Some(Slot {
            run,
            job,
            started,
            until: None,
            nonce: self.nonce,
            cancelled: false,
        });
        self.live += 1;
        self.call(idx, started);
        None
    }

    /// Calls the run in `idx` (advance, or cancel once cancelled).
    fn call(&mut self, idx: usize, now: Instant) {
        let Some(slot) = self.slots.get_mut(idx).and_then(Option::as_mut) else {
            return; // a stale token: the run has ended
        };
        let mut cx = Cx::new(
            now,
            Token(FIRST_RUN + idx),
            self.poll.registry(),
            &self.resolver,
            &self.wake,
            &mut self.stock,
        );
        let cancelled = slot.cancelled;
        let run = &mut slot.run;
        let step = panic::catch_unwind(AssertUnwindSafe(|| {
            if cancelled {
                run.cancel(&mut cx)
            } else {
                run.advance(&mut cx)
            }
        }))
        .unwrap_or_else(|payload| {
            Step::Done(RunnerOutcome::fail(format!(
                "runner panicked: {}",
                panic_message(&*payload)
            )))
        });
        match step {
            Step::Wait(until) => {
                // An unchanged instant keeps its timer entry.
                if slot.until != Some(until) {
                    slot.until = Some(until);
                    self.timers.push(Reverse((until, idx, slot.nonce)));
                }
            }
            Step::Done(outcome) => {
                let Some(slot) = self.slots[idx].take() else {
                    return;
                };
                self.free.push(idx);
                self.live -= 1;
                let finished = clock::mono_now();
                if !slot.cancelled {
                    self.finish(&slot.job, slot.started, finished, outcome);
                }
            }
        }
    }

    fn finish(
        &mut self,
        job: &Dispatch,
        started: Instant,
        finished: Instant,
        outcome: RunnerOutcome,
    ) {
        if self.shared.cancel.is_cancelled(job.generation) {
            return; // the engine would discard it
        }
        self.results.push(job.finished(started, finished, outcome));
        self.unannounced = Some(self.unannounced.map_or(finished, |t| t.min(finished)));
        if self.results.len() >= RESULT_BATCH {
            self.hand_over_results();
        }
    }

    /// Sends the results gathered since the last hand-over, in one batch.
    fn hand_over_results(&mut self) {
        if self.results.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.results);
        if self.done.send(batch).is_err() {
            self.unannounced = None; // the engine is gone
        }
    }

    /// Cancels runs of generations that are gone (a reset) or all of them
    /// (shutdown), when the cancellation state moved since last looked at.
    fn sweep_cancelled(&mut self, now: Instant) {
        let epoch = self.shared.cancel.epoch();
        if epoch == self.seen_epoch {
            return;
        }
        self.seen_epoch = epoch;
        if self.shared.cancel.is_shutdown() {
            self.stop(now);
            return;
        }
        let cancel = &self.shared.cancel;
        let gone: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.as_ref()
                    .filter(|s| !s.cancelled && cancel.is_cancelled(s.job.generation))
                    .map(|_| i)
            })
            .collect();
        for idx in gone {
            self.cancel_slot(idx, now);
        }
        // Jobs of the old generation are skipped when their start comes.
    }

    fn cancel_where(&mut self, now: Instant, pick: impl Fn(&Slot) -> bool) {
        let picked: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().filter(|s| !s.cancelled && pick(s)).map(|_| i))
            .collect();
        for idx in picked {
            self.cancel_slot(idx, now);
        }
    }

    fn cancel_slot(&mut self, idx: usize, now: Instant) {
        if let Some(slot) = self.slots[idx].as_mut() {
            slot.cancelled = true;
            self.call(idx, now);
        }
    }

    /// Calls the runs whose descriptors are ready, whose lookups were
    /// answered, or whose instant has come.
    fn serve_ready(&mut self) {
        let now = clock::mono_now();
        let ready: Vec<usize> = self
            .events
            .iter()
            .filter_map(|e| e.token().0.checked_sub(FIRST_RUN))
            .collect();
        self.events.clear();
        for idx in ready {
            self.call(idx, now);
        }
        let woken = std::mem::take(
            &mut *self
                .doorbell
                .woken
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for token in woken {
            if let Some(idx) = token.0.checked_sub(FIRST_RUN) {
                self.call(idx, now);
            }
        }
        // Collected first: a run that asks to be called again at once (a
        // child flooding its pipe, a fast server) is called on the next
        // turn of the loop, after the runs that are due, never in a loop of
        // its own.
        let mut due = Vec::new();
        while let Some(&Reverse((at, idx, nonce))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(slot) = self.slots.get_mut(idx).and_then(Option::as_mut) {
                if slot.nonce == nonce && slot.until == Some(at) {
                    slot.until = None; // this entry is spent
                    due.push(idx);
                }
            }
        }
        for idx in due {
            self.call(idx, now);
        }
    }
}
