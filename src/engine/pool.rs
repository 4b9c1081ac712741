//! The worker pool: poll-loop workers, blocking-check threads, and what
//! they share with the engine thread.
//!
//! The engine hands each worker batches of runs (each probe always goes to
//! the same worker) and wakes it once per batch; a worker carries any
//! number of runs that wait (see `worker.rs`). Custom checks that may
//! block go to threads of their own (`blocking.rs`). Each worker hands
//! finished runs back on a channel of its own and makes sure the engine
//! wakes within the result hold, by moving the engine's timer rather than
//! waking it at once (see `wake.rs`). A panicking check is
//! caught and becomes a failed run; the worker lives on.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::blocking::BlockingPool;
use super::wake::{EngineWake, ResultFlag};
use super::worker::{self, Doorbell, Worker};

use crate::clock;
use crate::core::{Dispatch, Finished};
use crate::runner::{CancelState, Check, Prepared, RunContext, RunnerOutcome};
use crate::transport::resolve::Resolver;
pub(crate) use crate::vocab::panic_message;

/// Runs `job`'s custom `check`, started at `started`, on the calling
/// thread; a panic becomes a failed run. Returns the outcome and when the
/// run finished (one clock read serves the deadline and the duration).
///
/// The run's deadline is enforced by the engine thread, not here (see
/// `core::scheduler`): a check that hangs holds this thread, so nothing on
/// it could report the timeout. The context only tells the check.
pub(crate) fn run_check(
    check: &dyn Check,
    name: &str,
    job: &Dispatch,
    started: Instant,
    cancel: &CancelState,
) -> (RunnerOutcome, Instant) {
    let deadline = job.deadline();
    if deadline.is_some_and(|d| started >= d) {
        // It waited past its deadline (behind a check that hangs): the
        // engine records it timed out whatever happens here, so it is
        // not run; this outcome only frees the probe.
        return (job.timed_out(), started);
    }
    let ctx = RunContext::new(name, job.generation, started, deadline, cancel);
    let outcome =
        panic::catch_unwind(AssertUnwindSafe(|| check.run(&ctx))).unwrap_or_else(|payload| {
            RunnerOutcome::fail(format!("runner panicked: {}", panic_message(&*payload)))
        });
    let finished = clock::mono_now();
    if deadline.is_some_and(|d| finished >= d) {
        // Returned at or after its deadline (a check that honours it
        // returns right then): timed out, the same whether this result or
        // the engine's cut-off reaches the engine first.
        return (job.timed_out(), finished);
    }
    (outcome, finished)
}

/// What workers share with the engine thread.
pub(crate) struct Shared {
    pub(crate) cancel: CancelState,
    /// How commands and results wake the engine thread.
    pub(crate) wake: EngineWake,
    /// The current generation's probes (name and check), published at each
    /// reset; workers keep their own reference until the generation moves.
    pub(crate) tasks: Mutex<Tasks>,
}

/// A probe of a generation: its name, and how it runs (`None` for a
/// disabled probe).
pub(crate) type Task = (Arc<str>, Option<Prepared>);

/// A generation and its probes, indexed like the scheduler's.
pub(crate) type Tasks = (u64, Arc<Vec<Task>>);

impl Shared {
    /// Makes `tasks` the probes of `generation` (the engine, at a reset).
    fn publish_tasks(&self, generation: u64, tasks: Arc<Vec<Task>>) {
        let mut slot = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        *slot = (generation, tasks);
    }

    /// The probes of `generation`, if it is still the current one.
    pub(crate) fn tasks_of(&self, generation: u64) -> Option<Arc<Vec<Task>>> {
        let slot = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        (slot.0 == generation).then(|| Arc::clone(&slot.1))
    }
}

/// What one worker shares with the engine, on a cache line of its own so
/// that workers finishing runs side by side never write the same line.
#[repr(align(64))]
#[derive(Default)]
pub(crate) struct WorkerFlags {
    /// Set while the worker runs a check on its own thread.
    pub(crate) busy: AtomicBool,
    /// Its results' wake-up flag.
    pub(crate) results: ResultFlag,
}

/// The workers, the blocking-check threads, and the routing between.
pub(crate) struct Pool {
    /// Each worker's inbox and doorbell.
    inboxes: Vec<(Sender<Vec<Dispatch>>, Arc<Doorbell>)>,
    /// Finished runs, one channel per worker and one for the blocking
    /// checks: a worker's sends never touch a cache line another worker
    /// writes.
    finished: Vec<Receiver<Vec<Finished>>>,
    flags: Vec<Arc<WorkerFlags>>,
    workers: Vec<JoinHandle<()>>,
    blocking: BlockingPool,
    resolver: Arc<Resolver>,
    /// Disconnects when every worker has exited.
    exited: Receiver<()>,
    /// The current generation's probes, for routing.
    tasks: Arc<Vec<Task>>,
    /// Per-worker batches being filled by `submit_all` (kept for their
    /// capacity).
    batches: Vec<Vec<Dispatch>>,
    stopped: bool,
}

/// Stack size of a worker: runs are state machines; parsing is small.
const WORKER_STACK: usize = 256 * 1024;

/// How long a pool stopped other than by the engine's shutdown (a build
/// that failed, an engine thread that could not start) waits for its
/// workers, idle ones end at once, before leaving one behind.
const ORPHAN_GRACE: Duration = Duration::from_secs(1);

impl Pool {
    /// Starts `n` workers, each pinned to a CPU of its own when `pin`
    /// (see `Builder::pin_workers`). When one cannot start (no descriptor
    /// or thread left), the ones started are stopped and joined before the
    /// error is returned: a failed build leaves nothing running or open.
    pub(crate) fn start(
        n: usize,
        name: &str,
        shared: Arc<Shared>,
        resolver: Arc<Resolver>,
        pin: bool,
    ) -> io::Result<Pool> {
        let cpus = if pin { allowed_cpus() } else { Vec::new() };
        let (exit_tx, exited) = crossbeam_channel::bounded::<()>(0);
        let (blocking_done, blocking_finished) = crossbeam_channel::unbounded();
        let blocking_flags = Arc::new(WorkerFlags::default());
        let blocking = BlockingPool::new(
            name,
            Arc::clone(&shared),
            blocking_done,
            Arc::clone(&blocking_flags),
        );
        // Grown as workers start (not reserved for `n`, which may be
        // absurd): `stop` handles a pool that started only some.
        let mut pool = Pool {
            inboxes: Vec::new(),
            finished: Vec::new(),
            flags: Vec::new(),
            workers: Vec::new(),
            blocking,
            resolver,
            exited,
            tasks: Arc::new(Vec::new()),
            batches: Vec::new(),
            stopped: false,
        };
        for i in 0..n {
            let cpu = (!cpus.is_empty()).then(|| cpus[i % cpus.len()]);
            if let Err(e) = pool.start_worker(i, name, &shared, &exit_tx, cpu) {
                // Only the started workers' senders are left: `stop` sees
                // them all exit.
                drop(exit_tx);
                pool.stop(clock::mono_now() + ORPHAN_GRACE);
                return Err(e);
            }
        }
        let workers = pool
            .inboxes
            .iter()
            .map(|(_, d)| Arc::clone(d) as _)
            .collect();
        shared.cancel.set_workers(workers);
        // After the workers': `stop` pairs the first `n` flags with them.
        pool.finished.push(blocking_finished);
        pool.flags.push(blocking_flags);
        pool.batches = vec![Vec::new(); n];
        Ok(pool)
    }

    /// Starts worker `i`.
    fn start_worker(
        &mut self,
        i: usize,
        name: &str,
        shared: &Arc<Shared>,
        exit_tx: &Sender<()>,
        cpu: Option<usize>,
    ) -> io::Result<()> {
        // Dropped with the closure if the thread cannot start: its
        // descriptors close.
        let setup = worker::Setup::new()?;
        let (inbox_tx, inbox_rx) = crossbeam_channel::unbounded();
        let doorbell = Arc::clone(setup.doorbell());
        let (done, finished_rx) = crossbeam_channel::unbounded();
        let flags = Arc::new(WorkerFlags::default());
        let (shared, resolver) = (Arc::clone(shared), Arc::clone(&self.resolver));
        let exit_tx = exit_tx.clone();
        let worker_flags = Arc::clone(&flags);
        let handle = thread::Builder::new()
            .name(format!("{name}-worker-{i}"))
            .stack_size(WORKER_STACK)
            .spawn(move || {
                let _exit = exit_tx; // dropped when the worker ends
                super::timer::tighten_timer_slack(); // precise starts
                if let Some(cpu) = cpu {
                    pin_to(cpu);
                }
                Worker::new(setup, inbox_rx, shared, resolver, done, worker_flags).run();
            })?;
        self.inboxes.push((inbox_tx, doorbell));
        self.finished.push(finished_rx);
        self.flags.push(flags);
        self.workers.push(handle);
        Ok(())
    }

    /// Makes `tasks` the probes of `generation` and wakes every worker, so
    /// that runs of older generations are cancelled at once (G2).
    pub(crate) fn publish_tasks(&mut self, shared: &Shared, generation: u64, tasks: Vec<Task>) {
        let tasks = Arc::new(tasks);
        shared.publish_tasks(generation, Arc::clone(&tasks));
        let old = std::mem::replace(&mut self.tasks, tasks);
        for (_, doorbell) in &self.inboxes {
            doorbell.ring_now();
        }
        // The last reference to an old check may be this one: its `Drop`
        // is the embedder's code, and must not end the engine thread.
        if panic::catch_unwind(AssertUnwindSafe(move || drop(old))).is_err() {
            log::error!("a check of an older generation panicked when dropped");
        }
    }

    /// The current generation's task table.
    pub(crate) fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// Probes in the current generation's task table.
    pub(crate) fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Hands `runs` (in the order they start) to the workers, each probe
    /// always to the same worker, and blocking custom checks to threads of
    /// their own. One send and at most one wake-up per worker.
    pub(crate) fn submit_all(&mut self, runs: impl Iterator<Item = Dispatch>) {
        if self.stopped {
            return;
        }
        let n = self.inboxes.len();
        for job in runs {
            match self.tasks.get(job.probe as usize) {
                Some((name, Some(Prepared::Blocking(check)))) => {
                    self.blocking
                        .submit(job, Arc::clone(name), Arc::clone(check));
                }
                _ => self.batches[job.probe as usize % n].push(job),
            }
        }
        for (batch, (inbox, doorbell)) in self.batches.iter_mut().zip(&self.inboxes) {
            if !batch.is_empty() {
                let jobs = std::mem::replace(batch, Vec::with_capacity(batch.len()));
                // Workers only go away after `stop`, so sends cannot fail.
                let _ = inbox.send(jobs);
                doorbell.ring();
            }
        }
    }

    /// Hands every finished run that has arrived to `handle`.
    pub(crate) fn drain_finished(&self, mut handle: impl FnMut(Finished)) {
        for flags in &self.flags {
            EngineWake::take_results(&flags.results);
        }
        for rx in &self.finished {
            for batch in rx.try_iter() {
                batch.into_iter().for_each(&mut handle);
            }
        }
    }

    /// Whether a finished run is waiting.
    pub(crate) fn has_finished(&self) -> bool {
        self.finished.iter().any(|rx| !rx.is_empty())
    }

    /// Closes the inboxes and waits until `deadline` for the workers (which
    /// cancel their runs first) and the blocking-check threads to end.
    /// Threads stuck in a check that ignores cancellation are left behind
    /// (detached) and counted.
    pub(crate) fn stop(&mut self, deadline: Instant) -> usize {
        if std::mem::replace(&mut self.stopped, true) {
            return 0;
        }
        let doorbells: Vec<Arc<Doorbell>> = self.inboxes.drain(..).map(|(_, d)| d).collect();
        for d in &doorbells {
            d.ring_now();
        }
        self.resolver.stop();
        let stuck_checks = self.blocking.stop(deadline);
        // Disconnected once every worker dropped its exit sender, i.e. is
        // on its way out.
        let all_exiting = matches!(
            self.exited.recv_deadline(deadline),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        );
        let mut stuck = stuck_checks;
        for (handle, flags) in self.workers.drain(..).zip(&self.flags) {
            if all_exiting || !flags.busy.load(Ordering::Acquire) {
                let _ = handle.join();
            } else {
                stuck += 1; // detached: an inline check that does not return
            }
        }
        stuck
    }
}

/// A pool dropped without `stop` (the engine thread could not start, or
/// ended on a panic) still stops its threads and closes its descriptors.
impl Drop for Pool {
    fn drop(&mut self) {
        if !self.stopped {
            let stuck = self.stop(clock::mono_now() + ORPHAN_GRACE);
            if stuck > 0 {
                log::warn!(
                    "{stuck} worker(s) stuck in a check that ignores cancellation; left behind"
                );
            }
        }
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
