//! The fixed worker pool that runs checks.
//!
//! Workers take jobs from one channel and hand finished runs back on
//! another, waking the engine thread through its mio `Waker`. The wake is
//! deduplicated with a flag, so a burst of results costs one syscall, not one
//! per result. A panicking check is caught and becomes a failed run; the
//! worker lives on.

use std::any::Any;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::clock;
use crate::core::Finished;
use crate::runner::{CANCEL_POLL, CancelState, Check, RunContext, RunnerOutcome};

/// One run to do.
pub(crate) struct Job {
    pub(crate) probe: u32,
    pub(crate) generation: u64,
    pub(crate) tick: u64,
    pub(crate) due: Instant,
    /// Not before this instant (the engine hands runs over a little early).
    pub(crate) start_at: Instant,
}

/// What workers share with the engine thread.
pub(crate) struct Shared {
    pub(crate) cancel: CancelState,
    /// Set by the first worker that finishes a run after the engine last
    /// drained results; cleared by the engine before draining.
    pub(crate) wake_pending: AtomicBool,
    pub(crate) waker: mio::Waker,
    /// When the engine thread will wake next on its own, in nanoseconds
    /// since `epoch` (`u64::MAX`: not before a command or a result).
    pub(crate) next_wake: AtomicU64,
    pub(crate) epoch: Instant,
    /// A finished run is left for the engine's next wake-up instead of
    /// waking it, when that wake-up is at most this far away (the dispatch
    /// lead): a result event is then at most this late, and a busy schedule
    /// costs no wake-up per result.
    pub(crate) result_hold: Duration,
    /// The current generation's probes (name and check), published at each
    /// reset; workers keep their own reference until the generation moves.
    pub(crate) tasks: Mutex<Tasks>,
}

/// A probe of a generation: its name, and its check (`None` for a disabled
/// probe).
pub(crate) type Task = (Arc<str>, Option<Arc<dyn Check>>);

/// A generation and its probes, indexed like the scheduler's.
pub(crate) type Tasks = (u64, Arc<Vec<Task>>);

impl Shared {
    /// Publishes the engine's next wake-up (the engine, before it sleeps).
    pub(crate) fn publish_next_wake(&self, at: Option<Instant>) {
        let nanos = at.map_or(u64::MAX, |t| {
            t.saturating_duration_since(self.epoch)
                .as_nanos()
                .min(u64::MAX as u128 - 1) as u64
        });
        self.next_wake.store(nanos, Ordering::SeqCst);
    }

    /// Makes `tasks` the probes of `generation` (the engine, at a reset).
    pub(crate) fn publish_tasks(&self, generation: u64, tasks: Vec<Task>) {
        let mut slot = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        *slot = (generation, Arc::new(tasks));
    }

    /// The probes of `generation`, if it is still the current one.
    fn tasks_of(&self, generation: u64) -> Option<Arc<Vec<Task>>> {
        let slot = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        (slot.0 == generation).then(|| Arc::clone(&slot.1))
    }

    /// Wakes the engine for a finished run, unless it wakes soon anyway.
    fn wake_for_result(&self, now: Instant) {
        // Pairs with the engine's SeqCst publish-then-check-the-queue: either
        // the engine sees our result before sleeping, or we see its new
        // wake-up time here.
        std::sync::atomic::fence(Ordering::SeqCst);
        let next = self.next_wake.load(Ordering::SeqCst);
        let now = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        if next != u64::MAX && next.saturating_sub(now) <= self.result_hold.as_nanos() as u64 {
            return;
        }
        self.wake();
    }

    pub(crate) fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            // A failed wake means the poll is gone: the engine is stopping.
            let _ = self.waker.wake();
        }
    }
}

pub(crate) struct Pool {
    jobs: Option<Sender<Job>>,
    /// Each worker with a flag that is set while it runs a check.
    workers: Vec<(JoinHandle<()>, Arc<AtomicBool>)>,
    /// Disconnects when every worker has exited.
    exited: Receiver<()>,
}

/// Stack size of a worker: runners parse small things and do blocking I/O.
const WORKER_STACK: usize = 256 * 1024;

impl Pool {
    pub(crate) fn start(
        n: usize,
        name: &str,
        shared: Arc<Shared>,
        done: Sender<Finished>,
    ) -> io::Result<Pool> {
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<Job>();
        let (exit_tx, exited) = crossbeam_channel::bounded::<()>(0);
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let jobs = jobs_rx.clone();
            let shared = Arc::clone(&shared);
            let done = done.clone();
            let exit_tx = exit_tx.clone();
            let busy = Arc::new(AtomicBool::new(false));
            let busy_flag = Arc::clone(&busy);
            let handle = thread::Builder::new()
                .name(format!("{name}-worker-{i}"))
                .stack_size(WORKER_STACK)
                .spawn(move || {
                    let _exit = exit_tx; // dropped when the worker ends
                    super::timer::tighten_timer_slack(); // precise waits for `start_at`
                    work(&jobs, &shared, &done, &busy_flag);
                })?;
            workers.push((handle, busy));
        }
        Ok(Pool {
            jobs: Some(jobs_tx),
            workers,
            exited,
        })
    }

    pub(crate) fn submit(&self, job: Job) {
        if let Some(jobs) = &self.jobs {
            // Workers only go away after `stop`, so this cannot fail before.
            let _ = jobs.send(job);
        }
    }

    /// Closes the job queue and waits until `deadline` for workers to exit.
    /// Workers stuck in a check that ignores cancellation are left behind
    /// (detached) and reported.
    pub(crate) fn stop(&mut self, deadline: Instant) -> usize {
        self.jobs = None;
        // Disconnected once every worker dropped its exit sender, i.e. is
        // on its way out; a timeout means some are stuck in a check.
        let all_exiting = matches!(
            self.exited.recv_deadline(deadline),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        );
        let mut stuck = 0;
        for (handle, busy) in self.workers.drain(..) {
            // A worker that is not in a check exits at once: the queue is
            // closed and queued jobs are skipped as cancelled.
            if all_exiting || !busy.load(Ordering::Acquire) {
                let _ = handle.join();
            } else {
                stuck += 1; // detached: it exits when its check returns
            }
        }
        stuck
    }
}

fn work(jobs: &Receiver<Job>, shared: &Shared, done: &Sender<Finished>, busy: &AtomicBool) {
    let mut cached: Option<Tasks> = None;
    for job in jobs.iter() {
        if shared.cancel.is_cancelled(job.generation) {
            continue; // reset or shutdown while queued: never started
        }
        if cached.as_ref().is_none_or(|c| c.0 != job.generation) {
            // Once per generation and worker.
            cached = shared.tasks_of(job.generation).map(|t| (job.generation, t));
        }
        let Some((name, Some(check))) = cached.as_ref().and_then(|c| c.1.get(job.probe as usize))
        else {
            continue; // a newer generation was published meanwhile
        };
        busy.store(true, Ordering::Release);
        let mut started = clock::mono_now();
        // Handed over early: wait for the start, in slices so that a reset
        // or a shutdown is seen within CANCEL_POLL.
        while job.start_at > started && !shared.cancel.is_cancelled(job.generation) {
            clock::sleep((job.start_at - started).min(CANCEL_POLL));
            started = clock::mono_now();
        }
        if shared.cancel.is_cancelled(job.generation) {
            busy.store(false, Ordering::Release);
            continue;
        }
        let ctx = RunContext::new(name, job.generation, started, &shared.cancel);
        let outcome =
            panic::catch_unwind(AssertUnwindSafe(|| check.run(&ctx))).unwrap_or_else(|payload| {
                RunnerOutcome::fail(format!("runner panicked: {}", panic_message(&*payload)))
            });
        let finished = clock::mono_now();
        busy.store(false, Ordering::Release);
        if shared.cancel.is_cancelled(job.generation) {
            continue; // the engine would discard it
        }
        let sent = done.send(Finished {
            probe: job.probe,
            generation: job.generation,
            tick: job.tick,
            due: job.due,
            started,
            finished,
            outcome,
        });
        if sent.is_err() {
            return;
        }
        shared.wake_for_result(finished);
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}
