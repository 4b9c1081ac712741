//! The verdict board: one verdict tagged with its generation, posted by the
//! engine thread when it changes and read by
//! [`Engine::verdict`](super::Engine::verdict) and `wait_verdict` (G14).

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::clock;
use crate::event::RolloutVerdict;

#[derive(Debug, Default)]
struct Posted {
    /// The generation the engine is in (0 before the first reset).
    generation: u64,
    /// Its latest verdict (none until the reset's topology is out).
    verdict: Option<Arc<RolloutVerdict>>,
    /// The engine thread is gone: nothing will be posted any more.
    stopped: bool,
}

#[derive(Debug, Default)]
pub(crate) struct VerdictBoard {
    posted: Mutex<Posted>,
    changed: Condvar,
}

impl VerdictBoard {
    fn lock(&self) -> MutexGuard<'_, Posted> {
        // Poison is harmless: every write is one assignment.
        self.posted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The engine thread posts the current generation's verdict.
    pub(crate) fn post(&self, verdict: Arc<RolloutVerdict>) {
        let mut posted = self.lock();
        posted.generation = verdict.header.generation;
        posted.verdict = Some(verdict);
        drop(posted);
        self.changed.notify_all();
    }

    /// The engine thread is gone; waiters return.
    pub(crate) fn close(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    /// The latest verdict of `generation`, if the engine has posted one and
    /// not moved on.
    pub(crate) fn get(&self, generation: u64) -> Option<RolloutVerdict> {
        let posted = self.lock();
        match &posted.verdict {
            Some(v) if posted.generation == generation => Some(RolloutVerdict::clone(v)),
            _ => None,
        }
    }

    /// Waits until `generation`'s verdict is final ([`RolloutVerdict::is_final`]),
    /// a newer generation starts, the engine stops, or `timeout` passes.
    pub(crate) fn wait_final(
        &self,
        generation: u64,
        timeout: Duration,
    ) -> Result<RolloutVerdict, WaitError> {
        let end = clock::mono_now().checked_add(timeout);
        let mut posted = self.lock();
        loop {
            if posted.generation > generation {
                return Err(WaitError::Superseded {
                    by: posted.generation,
                });
            }
            if posted.generation == generation {
                if let Some(v) = posted.verdict.as_ref().filter(|v| v.is_final()) {
                    return Ok(RolloutVerdict::clone(v));
                }
            }
            if posted.stopped {
                return Err(WaitError::Stopped);
            }
            let left = match end {
                Some(end) => end.saturating_duration_since(clock::mono_now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                let latest = posted
                    .verdict
                    .as_deref()
                    .filter(|_| posted.generation == generation)
                    .map(|v| Box::new(v.clone()));
                return Err(WaitError::TimedOut(latest));
            }
            posted = self
                .changed
                .wait_timeout(posted, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Why [`Engine::wait_verdict`](super::Engine::wait_verdict) returned
/// without a final verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitError {
    /// The time ran out; the generation's latest verdict so far (pending,
    /// or none if its topology is not out yet).
    TimedOut(Option<Box<RolloutVerdict>>),
    /// A later reset started generation `by`: the awaited generation will
    /// never have a verdict again.
    Superseded {
        /// The generation now running.
        by: u64,
    },
    /// The engine has stopped.
    Stopped,
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::TimedOut(Some(v)) => write!(
                f,
                "no final verdict in time; the latest is {}: {}",
                v.verdict, v.reason
            ),
            WaitError::TimedOut(None) => {
                f.write_str("no final verdict in time; the generation has not started yet")
            }
            WaitError::Superseded { by } => {
                write!(f, "a later reset started generation {by}")
            }
            WaitError::Stopped => f.write_str("the engine has stopped"),
        }
    }
}

impl std::error::Error for WaitError {}
