//! The fixed worker pool that runs checks.
//!
//! Workers take work from one channel: a single run, or a chunk of runs
//! that start at the same instant ([`Chunk`]). Each worker hands finished
//! runs back on a channel of its own and makes sure the engine wakes within
//! the result hold, by moving the engine's timer rather than waking it at
//! once (`Shared::wake_for_result`). Nothing on the way of a run takes a
//! lock; allocations are per chunk of 32 and per 31 messages of a channel,
//! not per run. A panicking check is caught and becomes a failed run; the
//! worker lives on.

use std::any::Any;
use std::collections::VecDeque;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::timer::RemoteTimer;

use crate::clock;
use crate::core::Finished;
use crate::runner::{CANCEL_POLL, CancelState, Check, RunContext, RunnerOutcome};

/// One run to do.
#[derive(Clone)]
pub(crate) struct Job {
    pub(crate) probe: u32,
    pub(crate) generation: u64,
    pub(crate) tick: u64,
    pub(crate) due: Instant,
    /// Not before this instant (the engine hands runs over a little early).
    pub(crate) start_at: Instant,
}

/// What the engine hands the pool: one run, or a share of a burst.
pub(crate) enum Work {
    One(Job),
    Chunk(Arc<Chunk>),
}

/// Up to [`CHUNK_LEN`] runs that start at the same instant, handed over
/// together.
///
/// A burst (every probe of a fleet due at once, say) would otherwise cost
/// one operation on the shared job queue per run, with the workers fighting
/// over the queue's head. Instead the workers claim the runs of a chunk one
/// by one with an increment on the chunk's own counter, which only the
/// worker holding the chunk touches. The engine queues every chunk once per
/// worker, the further references after the next chunks' first: when the
/// worker that took a chunk is stuck in a slow check, the next free worker
/// takes what is left of it, as it would have from a shared queue.
pub(crate) struct Chunk {
    next: AtomicUsize,
    jobs: Vec<Job>,
}

impl Chunk {
    /// The next unclaimed run, if any.
    fn claim(&self) -> Option<&Job> {
        self.jobs.get(self.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// Most runs in one chunk of a burst.
const CHUNK_LEN: usize = 32;

/// What workers share with the engine thread.
pub(crate) struct Shared {
    pub(crate) cancel: CancelState,
    /// Set by the first command after the engine last drained commands;
    /// cleared by the engine before draining. Workers have their own flag
    /// for results ([`WorkerFlags`]).
    pub(crate) wake_pending: AtomicBool,
    pub(crate) waker: mio::Waker,
    /// When the engine thread will wake next on its own, in nanoseconds
    /// since `epoch` (`u64::MAX`: not before a command or a result).
    pub(crate) next_wake: AtomicU64,
    pub(crate) epoch: Instant,
    /// A finished run never wakes the engine at once: it is left for the
    /// engine's next wake-up when that is at most this far away (the
    /// dispatch lead), and otherwise brings that wake-up forward to this
    /// far away through `timer`. A result event is then at most this late,
    /// and a burst of results, or a busy schedule, costs the engine one
    /// wake-up instead of one per result while the workers are running.
    pub(crate) result_hold: Duration,
    /// The engine's deadline timer, for bringing its wake-up forward;
    /// `None` where there is no timer fd (results then wake the engine).
    pub(crate) timer: Option<RemoteTimer>,
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

    /// Makes sure the engine wakes within `result_hold` of `now` for a
    /// finished run, without waking it now when it can be helped.
    ///
    /// The protocol, with the engine's side in `Driver::run`: the engine
    /// arms its timer, *then* publishes the deadline (SeqCst), then checks
    /// the result queues before it sleeps. A worker sends its result,
    /// fences, then reads the published deadline. Either the engine sees
    /// the result before sleeping, or the worker sees the deadline the
    /// engine sleeps on; in that case a worker that wants an earlier one
    /// must win a compare-and-swap on it before arming, so it arms after
    /// the engine did and only ever moves the wake-up earlier.
    ///
    /// Returns true when that took no syscall.
    fn wake_for_result(&self, flags: &WorkerFlags, now: Instant) -> bool {
        std::sync::atomic::fence(Ordering::SeqCst);
        let hold = self.result_hold;
        let want = now
            .saturating_duration_since(self.epoch)
            .saturating_add(hold)
            .as_nanos()
            .min(u128::from(u64::MAX - 1)) as u64;
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
                Ok(_) if timer.fire_in(hold).is_ok() => return false,
                Ok(_) => break, // could not arm: wake it now instead
                Err(current) => next = current,
            }
        }
        !self.wake_once(&flags.wake_pending)
    }

    /// Wakes the engine for a command.
    pub(crate) fn wake(&self) {
        self.wake_once(&self.wake_pending);
    }

    /// Writes the waker unless `pending` says it was written since the
    /// engine last cleared it: a burst costs one syscall, not one per item.
    /// Returns whether it wrote.
    fn wake_once(&self, pending: &AtomicBool) -> bool {
        let write = !pending.swap(true, Ordering::AcqRel);
        if write {
            // A failed wake means the poll is gone: the engine is stopping.
            let _ = self.waker.wake();
        }
        write
    }
}

/// Clears a wake flag before the engine drains what it stands for. A swap,
/// not a store: a waker whose swap still read `true` is then ordered
/// before it, so the drain that follows sees what that waker sent.
pub(crate) fn clear_wake(pending: &AtomicBool) {
    pending.swap(false, Ordering::AcqRel);
}

/// What one worker shares with the engine, on a cache line of its own so
/// that workers finishing runs side by side never write the same line.
#[repr(align(64))]
#[derive(Default)]
pub(crate) struct WorkerFlags {
    /// Set while the worker runs a check.
    busy: AtomicBool,
    /// Set by the worker's first finished run since the engine last
    /// drained results; cleared by the engine before draining.
    wake_pending: AtomicBool,
}

pub(crate) struct Pool {
    jobs: Option<Sender<Work>>,
    /// Finished runs, one channel per worker: a worker's sends never touch
    /// a cache line another worker writes.
    finished: Vec<Receiver<Finished>>,
    workers: Vec<(JoinHandle<()>, Arc<WorkerFlags>)>,
    /// Disconnects when every worker has exited.
    exited: Receiver<()>,
}

/// Stack size of a worker: runners parse small things and do blocking I/O.
const WORKER_STACK: usize = 256 * 1024;

impl Pool {
    /// Starts `n` workers, each pinned to a CPU of its own when `pin`
    /// (see `Builder::pin_workers`).
    pub(crate) fn start(n: usize, name: &str, shared: Arc<Shared>, pin: bool) -> io::Result<Pool> {
        let cpus = if pin { allowed_cpus() } else { Vec::new() };
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<Work>();
        let (exit_tx, exited) = crossbeam_channel::bounded::<()>(0);
        let mut workers = Vec::with_capacity(n);
        let mut finished = Vec::with_capacity(n);
        for i in 0..n {
            let jobs = jobs_rx.clone();
            let shared = Arc::clone(&shared);
            let (done, finished_rx) = crossbeam_channel::unbounded();
            finished.push(finished_rx);
            let exit_tx = exit_tx.clone();
            let cpu = (!cpus.is_empty()).then(|| cpus[i % cpus.len()]);
            let flags = Arc::new(WorkerFlags::default());
            let worker_flags = Arc::clone(&flags);
            let handle = thread::Builder::new()
                .name(format!("{name}-worker-{i}"))
                .stack_size(WORKER_STACK)
                .spawn(move || {
                    let _exit = exit_tx; // dropped when the worker ends
                    super::timer::tighten_timer_slack(); // precise waits for `start_at`
                    if let Some(cpu) = cpu {
                        pin_to(cpu);
                    }
                    work(&jobs, &shared, &done, &worker_flags);
                })?;
            workers.push((handle, flags));
        }
        Ok(Pool {
            jobs: Some(jobs_tx),
            finished,
            workers,
            exited,
        })
    }

    /// Hands `runs` (in the order they start) to the workers. Runs that
    /// start at the same instant go as a [`Chunk`].
    pub(crate) fn submit_all(&self, runs: impl Iterator<Item = Job>) {
        match &self.jobs {
            // Workers only go away after `stop`, so sends cannot fail before.
            Some(jobs) => hand_over(runs, self.workers.len(), |w| {
                let _ = jobs.send(w);
            }),
            None => runs.for_each(drop),
        }
    }

    /// Hands every finished run that has arrived to `handle`.
    pub(crate) fn drain_finished(&self, mut handle: impl FnMut(Finished)) {
        for (_, flags) in &self.workers {
            clear_wake(&flags.wake_pending);
        }
        for rx in &self.finished {
            rx.try_iter().for_each(&mut handle);
        }
    }

    /// Whether a finished run is waiting.
    pub(crate) fn has_finished(&self) -> bool {
        self.finished.iter().any(|rx| !rx.is_empty())
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
        for (handle, flags) in self.workers.drain(..) {
            // A worker that is not in a check exits at once: the queue is
            // closed and queued jobs are skipped as cancelled.
            if all_exiting || !flags.busy.load(Ordering::Acquire) {
                let _ = handle.join();
            } else {
                stuck += 1; // detached: it exits when its check returns
            }
        }
        stuck
    }
}

/// The CPUs this process may run on, in order (empty where unknown).
fn allowed_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; the call fills
        // it with the calling thread's mask, which is the process's.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
        if rc != 0 {
            log::warn!(
                "cannot read the CPU affinity ({}); workers are not pinned",
                io::Error::last_os_error()
            );
            return Vec::new();
        }
        let max = 8 * std::mem::size_of_val(&set);
        // SAFETY: CPU_ISSET reads one bit of a valid set, below its size.
        (0..max)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    }
    #[cfg(not(target_os = "linux"))]
    Vec::new()
}

/// Pins the calling thread to `cpu`; a failure is logged and ignored.
fn pin_to(cpu: usize) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes
        // one bit below its size (`cpu` came from `allowed_cpus`).
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        unsafe { libc::CPU_SET(cpu, &mut set) };
        let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
        if rc != 0 {
            log::warn!(
                "cannot pin a worker to CPU {cpu}: {}",
                io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}

/// Turns `runs` (in the order they start) into the pool's work items for
/// `workers` workers: a run on its own, or chunks of runs that start at the
/// same instant. Every chunk is queued once per worker: first on its own,
/// then one more reference after each of the next chunks' first, so that a
/// worker freed later can join any chunk whose holder is stuck.
fn hand_over(runs: impl Iterator<Item = Job>, workers: usize, mut send: impl FnMut(Work)) {
    let extra = workers.saturating_sub(1);
    // Chunks with the references they still need.
    let mut recent: VecDeque<(Arc<Chunk>, usize)> = VecDeque::new();
    let flush = |recent: &mut VecDeque<(Arc<Chunk>, usize)>, send: &mut dyn FnMut(Work)| {
        for (b, left) in recent.drain(..) {
            for _ in 0..left {
                send(Work::Chunk(Arc::clone(&b)));
            }
        }
    };
    let mut rest = runs.peekable();
    while let Some(first) = rest.next() {
        let start_at = first.start_at;
        if rest.peek().is_none_or(|j| j.start_at != start_at) {
            flush(&mut recent, &mut send);
            send(Work::One(first));
            continue;
        }
        let mut chunk = Vec::with_capacity(CHUNK_LEN);
        chunk.push(first);
        while chunk.len() < CHUNK_LEN {
            match rest.next_if(|j| j.start_at == start_at) {
                Some(j) => chunk.push(j),
                None => break,
            }
        }
        let chunk = Arc::new(Chunk {
            next: AtomicUsize::new(0),
            jobs: chunk,
        });
        send(Work::Chunk(Arc::clone(&chunk)));
        for (b, left) in &mut recent {
            send(Work::Chunk(Arc::clone(b)));
            *left -= 1;
        }
        recent.retain(|(_, left)| *left > 0);
        if extra > 0 {
            recent.push_back((chunk, extra));
        }
    }
    flush(&mut recent, &mut send);
}

fn work(jobs: &Receiver<Work>, shared: &Shared, done: &Sender<Finished>, flags: &WorkerFlags) {
    let mut worker = Worker {
        shared,
        done,
        flags,
        tasks: None,
    };
    for work in jobs.iter() {
        match work {
            Work::One(job) => {
                if worker.run(&job, None).is_err() {
                    return;
                }
            }
            Work::Chunk(chunk) => {
                // Back to back: the clock reading that ends one run starts
                // the next (see `Worker::run`).
                let mut free_since = None;
                while let Some(job) = chunk.claim() {
                    match worker.run(job, free_since) {
                        Ok(finished) => free_since = finished,
                        Err(Stopped) => return,
                    }
                }
            }
        }
    }
}

/// The engine stopped taking results.
struct Stopped;

struct Worker<'a> {
    shared: &'a Shared,
    done: &'a Sender<Finished>,
    flags: &'a WorkerFlags,
    /// The probes of the generation last run, looked up once per
    /// generation.
    tasks: Option<Tasks>,
}

impl Worker<'_> {
    /// Runs `job` unless its generation is gone, and returns when it
    /// finished (`None`: it did not run).
    ///
    /// `free_since` is when this worker finished its previous run, if it
    /// came straight here from that run (the next run of a burst). When the
    /// job was due by then, that reading is its start: the time between,
    /// one claim and one channel send, is far below a microsecond, the unit
    /// of `latenessUs`, and a burst then costs one clock read per run
    /// instead of two.
    fn run(&mut self, job: &Job, free_since: Option<Instant>) -> Result<Option<Instant>, Stopped> {
        let shared = self.shared;
        let busy = &self.flags.busy;
        if shared.cancel.is_cancelled(job.generation) {
            return Ok(None); // reset or shutdown while queued: never started
        }
        if self.tasks.as_ref().is_none_or(|c| c.0 != job.generation) {
            self.tasks = shared.tasks_of(job.generation).map(|t| (job.generation, t));
        }
        let Some((name, Some(check))) = self
            .tasks
            .as_ref()
            .and_then(|c| c.1.get(job.probe as usize))
        else {
            return Ok(None); // a newer generation was published meanwhile
        };
        busy.store(true, Ordering::Release);
        let mut started = match free_since {
            Some(t) if job.start_at <= t => t,
            _ => clock::mono_now(),
        };
        // Handed over early: wait for the start, in slices so that a reset
        // or a shutdown is seen within CANCEL_POLL.
        while job.start_at > started && !shared.cancel.is_cancelled(job.generation) {
            clock::sleep((job.start_at - started).min(CANCEL_POLL));
            started = clock::mono_now();
        }
        if shared.cancel.is_cancelled(job.generation) {
            busy.store(false, Ordering::Release);
            return Ok(None);
        }
        let ctx = RunContext::new(name, job.generation, started, &shared.cancel);
        let outcome =
            panic::catch_unwind(AssertUnwindSafe(|| check.run(&ctx))).unwrap_or_else(|payload| {
                RunnerOutcome::fail(format!("runner panicked: {}", panic_message(&*payload)))
            });
        let finished = clock::mono_now();
        busy.store(false, Ordering::Release);
        if shared.cancel.is_cancelled(job.generation) {
            return Ok(None); // the engine would discard it
        }
        let sent = self.done.send(Finished {
            probe: job.probe,
            generation: job.generation,
            tick: job.tick,
            due: job.due,
            started,
            finished,
            outcome,
        });
        if sent.is_err() {
            return Err(Stopped);
        }
        // A syscall here (arming or waking) is not "far below a
        // microsecond": the next run then reads the clock itself.
        let quiet = shared.wake_for_result(self.flags, finished);
        Ok(quiet.then_some(finished))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(probe: u32, start_at: Instant) -> Job {
        Job {
            probe,
            generation: 1,
            tick: 0,
            due: start_at,
            start_at,
        }
    }

    /// The work items as (first probe, number of runs, is a chunk).
    fn plan(runs: Vec<Job>, workers: usize) -> Vec<(u32, usize, bool)> {
        let mut out = Vec::new();
        hand_over(runs.into_iter(), workers, |w| {
            out.push(match w {
                Work::One(j) => (j.probe, 1, false),
                Work::Chunk(b) => (b.jobs[0].probe, b.jobs.len(), true),
            })
        });
        out
    }

    #[test]
    fn runs_starting_together_go_in_chunks_queued_once_per_worker() {
        let t = clock::mono_now();
        let later = t + Duration::from_millis(1);
        let mut runs: Vec<Job> = (0..70).map(|p| job(p, t)).collect();
        runs.push(job(70, later));
        runs.push(job(71, later + Duration::from_millis(1)));
        assert_eq!(
            plan(runs.clone(), 2),
            [
                (0, 32, true),
                (32, 32, true),
                (0, 32, true), // second reference, after the next chunk
                (64, 6, true),
                (32, 32, true),
                (64, 6, true), // flushed before the next instant
                (70, 1, false),
                (71, 1, false),
            ]
        );
        let three = plan(runs.clone(), 3);
        for first in [0, 32, 64] {
            assert_eq!(
                three.iter().filter(|w| w.0 == first).count(),
                3,
                "{three:?}"
            );
        }
        // One worker: every chunk once.
        assert_eq!(plan(runs, 1).len(), 5);
    }

    #[test]
    fn a_chunk_hands_out_each_run_once_across_its_holders() {
        let t = clock::mono_now();
        let chunk = Chunk {
            next: AtomicUsize::new(0),
            jobs: (0..5).map(|p| job(p, t)).collect(),
        };
        let claimed: Vec<u32> = std::iter::from_fn(|| chunk.claim().map(|j| j.probe)).collect();
        assert_eq!(claimed, [0, 1, 2, 3, 4]);
        assert!(chunk.claim().is_none());
    }
}
