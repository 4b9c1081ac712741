//! Threads for registered custom checks that block (G13): one per run in
//! flight, never a worker, so a hung [`Check`] holds up nothing else. At
//! most [`MAX_BLOCKING_THREADS`] (then runs queue); idle ones end after
//! [`BLOCKING_IDLE`].

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::results::ResultSender;
use super::shared::Shared;
use crate::clock;
use crate::core::Dispatch;
use crate::runner::{CANCEL_POLL, CancelState, Check, RunContext, RunnerOutcome};
use crate::util::elastic::{Elastic, Limits, Refusal, Refused};
use crate::vocab::panic_message;

/// Most threads running blocking custom checks at a time.
pub const MAX_BLOCKING_THREADS: usize = 256;
/// A blocking-check thread without work for this long ends.
pub const BLOCKING_IDLE: Duration = Duration::from_secs(10);

const LIMITS: Limits = Limits {
    threads: MAX_BLOCKING_THREADS,
    idle: BLOCKING_IDLE,
    stack: 256 * 1024,
};

type Item = (Dispatch, Arc<str>, Arc<dyn Check>);

pub(crate) struct BlockingPool {
    threads: Elastic<Item>,
    shared: Arc<Shared>,
    results: Arc<ResultSender>,
}

impl BlockingPool {
    /// A pool whose threads are named `<name>-check-<n>`.
    pub(crate) fn new(name: &str, shared: Arc<Shared>, results: ResultSender) -> BlockingPool {
        let results = Arc::new(results);
        let (on_shared, on_results) = (Arc::clone(&shared), Arc::clone(&results));
        let threads = Elastic::new(format!("{name}-check"), LIMITS, move |item| {
            run(&on_shared, &on_results, item);
        });
        BlockingPool {
            threads,
            shared,
            results,
        }
    }

    /// Queues a run for the next free thread.
    pub(crate) fn submit(&self, job: Dispatch, name: Arc<str>, check: Arc<dyn Check>) {
        let Err(Refused {
            job: (job, ..),
            why,
        }) = self.threads.submit((job, name, check))
        else {
            return;
        };
        // Stopped: the engine is shutting down and wants no result.
        if let Refusal::NoThread(e) = why {
            log::error!("cannot start a thread for a custom check: {e}");
            if !self.shared.cancel.is_cancelled(job.generation) {
                let now = clock::mono_now();
                let outcome = RunnerOutcome::fail(format!("cannot start a thread: {e}"));
                self.results.send(job.finished(now, now, outcome));
            }
        }
    }

    /// Drops queued runs and waits until `deadline` for the threads; returns
    /// how many are left behind.
    pub(crate) fn stop(&self, deadline: Instant) -> usize {
        self.threads.stop(deadline)
    }
}

/// Runs one check at its start, unless its generation is gone.
fn run(shared: &Shared, results: &ResultSender, (job, name, check): Item) {
    let cancel = &shared.cancel;
    let mut started = clock::mono_now();
    // Handed over early: wait for the start, seeing a reset within CANCEL_POLL.
    while job.due > started && !cancel.is_cancelled(job.generation) {
        clock::sleep((job.due - started).min(CANCEL_POLL));
        started = clock::mono_now();
    }
    if cancel.is_cancelled(job.generation) {
        return;
    }
    let (outcome, finished) = run_check(&*check, &name, &job, started, cancel);
    if cancel.is_cancelled(job.generation) {
        return; // the engine would discard it
    }
    results.send(job.finished(started, finished, outcome));
}

/// Runs `job`'s custom `check` on the calling thread; a panic becomes a
/// failed run. Returns the outcome and when it finished. The engine thread
/// enforces the deadline: a hung check holds this thread.
pub(crate) fn run_check(
    check: &dyn Check,
    name: &str,
    job: &Dispatch,
    started: Instant,
    cancel: &CancelState,
) -> (RunnerOutcome, Instant) {
    let deadline = job.deadline();
    if deadline.is_some_and(|d| started >= d) {
        // Waited past its deadline: the engine records a timeout anyway.
        return (job.timed_out(), started);
    }
    let ctx = RunContext::new(name, job.generation, started, deadline, cancel);
    let outcome =
        panic::catch_unwind(AssertUnwindSafe(|| check.run(&ctx))).unwrap_or_else(|payload| {
            RunnerOutcome::fail(format!("runner panicked: {}", panic_message(&*payload)))
        });
    let finished = clock::mono_now();
    if deadline.is_some_and(|d| finished >= d) {
        // Timed out, whether this or the engine's cut-off arrives first.
        return (job.timed_out(), finished);
    }
    (outcome, finished)
}
