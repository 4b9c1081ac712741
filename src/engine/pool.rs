//! The worker pool: poll-loop workers (`worker.rs`), blocking-check threads
//! (`blocking.rs`), and the routing between; results come back through
//! `results.rs`.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::blocking::BlockingPool;
use super::results::{ResultSender, Results};
use super::shared::Shared;
use super::tasks::{Task, TaskTable};
use super::worker::{Doorbell, Setup, Worker};

use crate::core::Dispatch;
use crate::runner::Prepared;
use crate::transport::resolve::Resolver;
use crate::{clock, sys};

/// The workers, the blocking-check threads, and the routing between.
pub(crate) struct Pool {
    /// Each worker's inbox and doorbell.
    inboxes: Vec<(Sender<Vec<Dispatch>>, Arc<Doorbell>)>,
    /// Each worker's thread, and whether it is running a check of its own.
    workers: Vec<(JoinHandle<()>, Arc<AtomicBool>)>,
    blocking: BlockingPool,
    resolver: Arc<Resolver>,
    /// Disconnects when every worker has exited.
    exited: Receiver<()>,
    /// The current generation's probes, for routing.
    tasks: TaskTable,
    /// Per-worker batches of `submit_all`, kept for their capacity.
    batches: Vec<Vec<Dispatch>>,
    stopped: bool,
}

/// Stack size of a worker: runs are state machines; parsing is small.
const WORKER_STACK: usize = 256 * 1024;

/// How long a pool stopped other than by the engine's shutdown (a failed
/// build) waits for its workers before leaving one behind.
const ORPHAN_GRACE: Duration = Duration::from_secs(1);

impl Pool {
    /// Starts `n` workers (pinned when `pin`), each with a sender of
    /// `results`. If one cannot start, the others are stopped and joined
    /// first: a failed build leaves nothing running or open.
    pub(crate) fn start(
        n: usize,
        name: &str,
        shared: &Arc<Shared>,
        results: &mut Results,
        resolver: Arc<Resolver>,
        pin: bool,
    ) -> io::Result<Pool> {
        let cpus = if pin { allowed_cpus() } else { Vec::new() };
        let (exit_tx, exited) = crossbeam_channel::bounded::<()>(0);
        let blocking = BlockingPool::new(name, Arc::clone(shared), results.sender(&shared.wake));
        // Grown as workers start: `n` may be absurd.
        let mut pool = Pool {
            inboxes: Vec::new(),
            workers: Vec::new(),
            blocking,
            resolver,
            exited,
            tasks: TaskTable::default(),
            batches: Vec::new(),
            stopped: false,
        };
        for i in 0..n {
            let cpu = (!cpus.is_empty()).then(|| cpus[i % cpus.len()]);
            let results = results.sender(&shared.wake);
            if let Err(e) = pool.start_worker(i, name, shared, results, &exit_tx, cpu) {
                drop(exit_tx); // `stop` then sees the started ones exit
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
        pool.batches = vec![Vec::new(); n];
        Ok(pool)
    }

    /// Starts worker `i`.
    fn start_worker(
        &mut self,
        i: usize,
        name: &str,
        shared: &Arc<Shared>,
        results: ResultSender,
        exit_tx: &Sender<()>,
        cpu: Option<usize>,
    ) -> io::Result<()> {
        let setup = Setup::new()?;
        let (inbox_tx, inbox_rx) = crossbeam_channel::unbounded();
        let doorbell = Arc::clone(setup.doorbell());
        let busy = Arc::new(AtomicBool::new(false));
        let (shared, resolver) = (Arc::clone(shared), Arc::clone(&self.resolver));
        let (exit_tx, worker_busy) = (exit_tx.clone(), Arc::clone(&busy));
        let handle = thread::Builder::new()
            .name(format!("{name}-worker-{i}"))
            .stack_size(WORKER_STACK)
            .spawn(move || {
                let _exit = exit_tx; // dropped when the worker ends
                sys::thread::tighten_timer_slack(); // precise starts
                if let Some(cpu) = cpu {
                    if let Err(e) = sys::thread::pin_to(cpu) {
                        log::warn!("cannot pin a worker to CPU {cpu}: {e}");
                    }
                }
                Worker::new(setup, inbox_rx, shared, resolver, results, worker_busy).run();
            })?;
        self.inboxes.push((inbox_tx, doorbell));
        self.workers.push((handle, busy));
        Ok(())
    }

    /// Makes `tasks` the probes of `generation` and wakes every worker, so
    /// that runs of older generations are cancelled at once (G2).
    pub(crate) fn publish_tasks(&mut self, shared: &Shared, table: TaskTable) {
        shared.publish(table.clone());
        let old = std::mem::replace(&mut self.tasks, table);
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
    pub(crate) fn tasks(&self) -> &TaskTable {
        &self.tasks
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
            match self.tasks.get(job.probe) {
                Some(Task {
                    name,
                    prepared: Some(Prepared::Blocking(check)),
                }) => {
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

    /// Closes the inboxes and waits until `deadline` for the workers and
    /// the blocking-check threads to end; ones stuck in a check that
    /// ignores cancellation are left behind, with a warning.
    pub(crate) fn stop(&mut self, deadline: Instant) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let doorbells: Vec<Arc<Doorbell>> = self.inboxes.drain(..).map(|(_, d)| d).collect();
        for d in &doorbells {
            d.ring_now();
        }
        self.resolver.stop();
        let mut stuck = self.blocking.stop(deadline);
        // Disconnected once every worker dropped its exit sender.
        let all_exiting = matches!(
            self.exited.recv_deadline(deadline),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        );
        for (handle, busy) in self.workers.drain(..) {
            if all_exiting || !busy.load(Ordering::Acquire) {
                let _ = handle.join();
            } else {
                stuck += 1; // detached: an inline check that does not return
            }
        }
        if stuck > 0 {
            log::warn!("{stuck} worker(s) stuck in a check that ignores cancellation; left behind");
        }
    }
}

/// A pool dropped without `stop` (the engine thread could not start, or
/// ended on a panic) still stops its threads and closes its descriptors.
impl Drop for Pool {
    fn drop(&mut self) {
        self.stop(clock::mono_now() + ORPHAN_GRACE);
    }
}

/// The CPUs this process may run on, in order (empty where unknown).
fn allowed_cpus() -> Vec<usize> {
    sys::thread::allowed_cpus().unwrap_or_else(|e| {
        log::warn!("cannot read the CPU affinity ({e}); workers are not pinned");
        Vec::new()
    })
}
