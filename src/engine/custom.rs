//! Running a custom check on the calling thread (a worker for an inline
//! check, a blocking-check thread otherwise).

use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use crate::clock;
use crate::core::Dispatch;
use crate::runner::{CancelState, Check, RunContext, RunnerOutcome};
use crate::vocab::panic_message;

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
