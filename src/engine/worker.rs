//! A worker: a poll loop that carries any number of runs (G13).
//!
//! Batches of [`Dispatch`]es wait in start order until due, on the worker's
//! own timer, so runs start at their exact slot. A [`Run`] is called when it
//! starts, when its descriptors or lookup are ready, and at the instant it
//! asked for: a waiting run costs a timer entry, not a thread. Inline checks
//! run right here; blocking ones never come here (`blocking.rs`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::{Events, Poll, Token, Waker};

use super::blocking::run_check;
use super::results::ResultSender;
use super::shared::Shared;
use super::tasks::{Task, TaskTable};
use super::timer::DeadlineTimer;
use crate::clock;
use crate::core::Dispatch;
use crate::runner::machine::{Cx, Run, Step, Stock, Wake};
use crate::runner::{Adopt, Adopted, Prepared, RunnerOutcome};
use crate::transport::resolve::Resolver;
use crate::vocab::panic_message;

const WAKER: Token = Token(0);
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
    /// Runs handed over by other threads; `None` once the worker is gone.
    adopted: Mutex<Option<Vec<Adopted>>>,
    /// Set when a run was handed over: the worker's loop locks `adopted`
    /// only then, not at every turn.
    has_adopted: AtomicBool,
    /// The worker's thread, which cannot hand a run to itself.
    thread: OnceLock<ThreadId>,
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

impl Adopt for Doorbell {
    fn adopt(&self, run: Adopted) -> Result<(), Adopted> {
        if self.thread.get() == Some(&thread::current().id()) {
            return Err(run);
        }
        let mut adopted = self.adopted.lock().unwrap_or_else(|e| e.into_inner());
        let Some(queue) = adopted.as_mut() else {
            return Err(run);
        };
        queue.push(run);
        self.has_adopted.store(true, Ordering::Release);
        let _ = self.waker.wake();
        Ok(())
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
                adopted: Mutex::new(Some(Vec::new())),
                has_adopted: AtomicBool::new(false),
                thread: OnceLock::new(),
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
    /// A run handed over by another thread: its deadline, and where its
    /// outcome goes instead of the engine.
    adopted: Option<(Instant, Sender<RunnerOutcome>)>,
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
    results: ResultSender,
    busy: Arc<AtomicBool>,
    /// Spare sockets and a read buffer, lent to the runs.
    stock: Stock,
    /// Jobs waiting for their start, in start order (then arrival).
    pending: VecDeque<Dispatch>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    live: usize,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    nonce: u64,
    tasks: TaskTable,
    /// The cancellation epoch last swept for.
    seen_epoch: u64,
    /// Set once the inbox closed or shutdown was seen: cancel, then end.
    stopping: Option<Instant>,
}

impl Worker {
    pub(crate) fn new(
        setup: Setup,
        inbox: Receiver<Vec<Dispatch>>,
        shared: Arc<Shared>,
        resolver: Arc<Resolver>,
        results: ResultSender,
        busy: Arc<AtomicBool>,
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
            results,
            busy,
            stock: Stock::default(),
            pending: VecDeque::new(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            timers: BinaryHeap::new(),
            nonce: 0,
            tasks: TaskTable::default(),
            seen_epoch: 0,
            stopping: None,
        }
    }

    pub(crate) fn run(mut self) {
        let _ = self.doorbell.thread.set(thread::current().id());
        loop {
            let now = clock::mono_now();
            self.start_due(now);
            self.sweep_cancelled(now);
            self.take_jobs();
            self.take_adopted(now);
            self.start_due(clock::mono_now());
            self.serve_ready();
            self.results.flush();
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
        // Cleared before draining: a skipped ring's batch is in the drain.
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
    /// Writes nothing shared (no reference count): workers start bursts
    /// of one kind side by side.
    fn start(&mut self, job: Dispatch, started: Instant) -> Option<Instant> {
        let cancel = &self.shared.cancel;
        if cancel.is_cancelled(job.generation) {
            return None; // reset or shutdown while queued: never started
        }
        if self.tasks.generation != job.generation {
            match self.shared.tasks_of(job.generation) {
                Some(table) => self.tasks = table,
                None => return None, // a newer generation was published meanwhile
            }
        }
        let Some(Task {
            name,
            prepared: Some(prepared),
        }) = self.tasks.get(job.probe)
        else {
            return None; // a disabled probe
        };
        let run = match prepared {
            Prepared::Machine(machine) => machine.start(started),
            Prepared::Inline(check) => {
                self.busy.store(true, Ordering::Release);
                let (outcome, finished) = run_check(&**check, name, &job, started, cancel);
                self.busy.store(false, Ordering::Release);
                self.finish(&job, started, finished, outcome);
                return Some(finished);
            }
            Prepared::Blocking(_) => {
                debug_assert!(false, "blocking checks go to the blocking pool");
                return None;
            }
        };
        self.begin(run, job, started, None);
        None
    }

    /// Gives `run` a slot and makes its first call.
    fn begin(
        &mut self,
        run: Box<dyn Run>,
        job: Dispatch,
        started: Instant,
        adopted: Option<(Instant, Sender<RunnerOutcome>)>,
    ) {
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
            adopted,
        });
        self.live += 1;
        self.call(idx, started);
    }

    /// Starts the runs other threads handed over (see `runner::Adopt`);
    /// one of a generation that is gone is dropped unstarted.
    fn take_adopted(&mut self, now: Instant) {
        // Cleared before the queue is taken: a run pushed after this point
        // sets it again and is taken at the next turn.
        if !self.doorbell.has_adopted.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut queue = self
            .doorbell
            .adopted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let handed = queue.as_mut().map(std::mem::take);
        drop(queue);
        for a in handed.unwrap_or_default() {
            if self.stopping.is_some() || self.shared.cancel.is_cancelled(a.generation) {
                continue;
            }
            let job = Dispatch {
                probe: u32::MAX,
                generation: a.generation,
                tick: 0,
                due: now,
                timeout: None,
            };
            self.begin(a.machine.start(now), job, now, Some((a.deadline, a.reply)));
        }
    }

    /// Calls the run in `idx` (advance, or cancel once cancelled).
    fn call(&mut self, idx: usize, now: Instant) {
        let Some(slot) = self.slots.get_mut(idx).and_then(Option::as_mut) else {
            return; // a stale token: the run has ended
        };
        if slot
            .adopted
            .as_ref()
            .is_some_and(|(deadline, _)| now >= *deadline)
        {
            slot.cancelled = true;
        }
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
            Step::Wait(mut until) => {
                if let Some((deadline, _)) = slot.adopted.as_ref().filter(|_| !slot.cancelled) {
                    until = until.min(*deadline);
                }
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
                if let Some((_, reply)) = slot.adopted {
                    let _ = reply.send(outcome);
                } else if !slot.cancelled {
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
        let shared = Arc::clone(&self.shared);
        self.cancel_where(now, |s| shared.cancel.is_cancelled(s.job.generation));
        // Jobs of the old generation are skipped when their start comes.
    }

    fn cancel_where(&mut self, now: Instant, pick: impl Fn(&Slot) -> bool) {
        for idx in 0..self.slots.len() {
            if let Some(slot) = self.slots[idx].as_mut().filter(|s| !s.cancelled && pick(s)) {
                slot.cancelled = true;
                self.call(idx, now);
            }
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
        // Collected first: a run asking to be called again at once waits
        // for the next turn, after the due starts.
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

impl Drop for Worker {
    /// Refuses further handed-over runs, and drops the queued ones: their
    /// threads stop waiting.
    fn drop(&mut self) {
        let mut adopted = self
            .doorbell
            .adopted
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *adopted = None;
    }
}
