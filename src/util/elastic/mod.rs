//! An elastic thread pool, for work that blocks and cannot be interrupted
//! (name lookups, custom checks that block), kept off the poll loops.
//!
//! One thread per job in flight up to a cap, then a queue; idle threads
//! end, so an unused pool costs none.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::clock;

/// How many threads a pool may have, and how long they live.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) threads: usize,
    /// A thread without work for this long ends.
    pub(crate) idle: Duration,
    /// Stack size of a thread (reserved, not touched).
    pub(crate) stack: usize,
}

/// A pool whose threads run each job `J` with the function it was made with.
pub(crate) struct Elastic<J> {
    inner: Arc<Inner<J>>,
}

struct Inner<J> {
    state: Mutex<State<J>>,
    /// Signalled when a job is queued for an idle thread, and at stop.
    work: Condvar,
    /// Signalled when a thread ends.
    ended: Condvar,
    limits: Limits,
    name: String,
    run: Box<dyn Fn(J) + Send + Sync>,
}

struct State<J> {
    queue: VecDeque<J>,
    /// Threads running (busy or idle), and of those the idle ones.
    threads: usize,
    idle: usize,
    spawned: u64,
    stopped: bool,
    /// Whether the cap was reported (once per pool).
    warned: bool,
}

/// A job the pool did not take, given back with why.
pub(crate) struct Refused<J> {
    pub(crate) job: J,
    pub(crate) why: Refusal,
}

#[derive(Debug)]
pub(crate) enum Refusal {
    Stopped,
    /// No thread runs and none could start.
    NoThread(io::Error),
}

impl<J: Send + 'static> Elastic<J> {
    /// A pool without threads yet; they are named `<name>-<n>`.
    pub(crate) fn new(
        name: String,
        limits: Limits,
        run: impl Fn(J) + Send + Sync + 'static,
    ) -> Self {
        let state = State {
            queue: VecDeque::new(),
            threads: 0,
            idle: 0,
            spawned: 0,
            stopped: false,
            warned: false,
        };
        let (work, ended, run) = (Condvar::new(), Condvar::new(), Box::new(run));
        let inner = Inner {
            state: Mutex::new(state),
            work,
            ended,
            limits,
            name,
            run,
        };
        Elastic {
            inner: Arc::new(inner),
        }
    }

    /// Queues `job`, starting a thread for it unless one is idle or the
    /// cap is reached. Gives it back when stopped, or when no thread runs
    /// and none can start.
    pub(crate) fn submit(&self, job: J) -> Result<(), Refused<J>> {
        let inner = &self.inner;
        let mut st = inner.lock();
        if st.stopped {
            return Err(Refused {
                job,
                why: Refusal::Stopped,
            });
        }
        st.queue.push_back(job);
        if st.idle >= st.queue.len() {
            inner.work.notify_one();
        } else if st.threads >= inner.limits.threads {
            if !std::mem::replace(&mut st.warned, true) {
                let (name, max) = (&inner.name, inner.limits.threads);
                log::warn!("{name}: all {max} threads busy; further work waits for one");
            }
        } else {
            st.spawned += 1;
            // Under the lock, so a failure leaves the state as it was.
            let spawned = thread::Builder::new()
                .name(format!("{}-{}", inner.name, st.spawned))
                .stack_size(inner.limits.stack)
                .spawn({
                    let inner = Arc::clone(inner);
                    move || serve(&inner)
                });
            match spawned {
                Ok(_) => st.threads += 1,
                Err(e) if st.threads == 0 => {
                    let job = st.queue.pop_back().expect("queued above");
                    return Err(Refused {
                        job,
                        why: Refusal::NoThread(e),
                    });
                }
                Err(e) => log::warn!(
                    "{}: cannot start a thread ({e}); the work waits",
                    inner.name
                ),
            }
        }
        Ok(())
    }

    /// Drops the queued jobs and waits until `deadline` for the threads to
    /// end; returns how many are left behind (still in a job).
    pub(crate) fn stop(&self, deadline: Instant) -> usize {
        let mut st = self.inner.lock();
        st.stopped = true;
        let queued = std::mem::take(&mut st.queue);
        self.inner.work.notify_all();
        while let Some(left) = deadline.checked_duration_since(clock::mono_now()) {
            if st.threads == 0 {
                break;
            }
            st = self
                .inner
                .ended
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let left = st.threads;
        drop((st, queued)); // the jobs' own `Drop` outside the lock
        left
    }

    /// Threads running and of those idle.
    pub(crate) fn threads(&self) -> (usize, usize) {
        let st = self.inner.lock();
        (st.threads, st.idle)
    }
}

impl<J> Inner<J> {
    fn lock(&self) -> MutexGuard<'_, State<J>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts a thread out when it ends, also when its job panicked.
struct Exit<'a, J>(&'a Inner<J>);

impl<J> Drop for Exit<'_, J> {
    fn drop(&mut self) {
        self.0.lock().threads -= 1;
        self.0.ended.notify_all();
    }
}

fn serve<J>(inner: &Inner<J>) {
    let _exit = Exit(inner);
    let mut st = inner.lock();
    while !st.stopped {
        if let Some(job) = st.queue.pop_front() {
            drop(st);
            (inner.run)(job);
            st = inner.lock();
            continue;
        }
        st.idle += 1;
        let (next, waited) = inner
            .work
            .wait_timeout(st, inner.limits.idle)
            .unwrap_or_else(|e| e.into_inner());
        st = next;
        st.idle -= 1;
        if waited.timed_out() && st.queue.is_empty() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
