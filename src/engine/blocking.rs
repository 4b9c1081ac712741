//! Threads for registered custom checks that block (G13).
//!
//! A custom [`Check`] keeps the simple blocking `run`; it runs here, on a
//! thread of its own, never on a worker, so a check that hangs holds up
//! neither built-in runs nor other custom checks. Threads start on demand,
//! one per run in flight, at most [`MAX_BLOCKING_THREADS`]; beyond that,
//! runs queue for the next free thread (and only blocking custom checks
//! wait). A thread without work for [`BLOCKING_IDLE`] ends, so an engine
//! without custom kinds has none. A check still running at its deadline
//! has its timeout recorded by the engine thread (see `core::scheduler`);
//! its thread stays with it until it returns.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::pool::{Shared, WorkerFlags, run_check};
use crate::clock;
use crate::core::{Dispatch, Finished};
use crate::runner::{CANCEL_POLL, Check};

/// Most threads running blocking custom checks at a time.
pub const MAX_BLOCKING_THREADS: usize = 256;
/// A blocking-check thread without work for this long ends.
pub const BLOCKING_IDLE: Duration = Duration::from_secs(10);
/// Stack of a blocking-check thread (reserved, not touched).
const STACK: usize = 256 * 1024;

type Item = (Dispatch, Arc<str>, Arc<dyn Check>);

pub(crate) struct BlockingPool {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    work: Condvar,
    /// Signalled when a thread ends.
    ended: Condvar,
    shared: Arc<Shared>,
    done: Sender<Vec<Finished>>,
    flags: Arc<WorkerFlags>,
    name: String,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Item>,
    threads: usize,
    idle: usize,
    spawned: u64,
    stopped: bool,
    warned: bool,
}

impl BlockingPool {
    pub(crate) fn new(
        name: &str,
        shared: Arc<Shared>,
        done: Sender<Vec<Finished>>,
        flags: Arc<WorkerFlags>,
    ) -> BlockingPool {
        BlockingPool {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                ended: Condvar::new(),
                shared,
                done,
                flags,
                name: name.to_owned(),
            }),
        }
    }

    /// Queues a run; starts a thread for it unless one is idle or the cap
    /// is reached.
    pub(crate) fn submit(&self, job: Dispatch, name: Arc<str>, check: Arc<dyn Check>) {
        let mut st = lock(&self.inner.state);
        if st.stopped {
            return;
        }
        st.queue.push_back((job, name, check));
        if st.idle >= st.queue.len() {
            self.inner.work.notify_one();
            return;
        }
        if st.threads >= MAX_BLOCKING_THREADS {
            if !st.warned {
                st.warned = true;
                log::warn!(
                    "{MAX_BLOCKING_THREADS} blocking custom checks in flight; further ones wait for a thread"
                );
            }
            return;
        }
        st.threads += 1;
        st.spawned += 1;
        let n = st.spawned;
        drop(st);
        if let Err(e) = self.spawn(n) {
            log::error!("cannot start a thread for a custom check: {e}");
            let mut st = lock(&self.inner.state);
            st.threads -= 1;
        }
    }

    fn spawn(&self, n: u64) -> io::Result<()> {
        let inner = Arc::clone(&self.inner);
        thread::Builder::new()
            .name(format!("{}-check-{n}", self.inner.name))
            .stack_size(STACK)
            .spawn(move || {
                serve(&inner);
                let mut st = lock(&inner.state);
                st.threads -= 1;
                inner.ended.notify_all();
            })
            .map(drop)
    }

    /// Drops queued runs and waits until `deadline` for the threads to end;
    /// returns how many are left behind (stuck in a check that ignores
    /// cancellation; they end when it returns).
    pub(crate) fn stop(&self, deadline: Instant) -> usize {
        let mut st = lock(&self.inner.state);
        st.stopped = true;
        st.queue.clear();
        self.inner.work.notify_all();
        while st.threads > 0 {
            let now = clock::mono_now();
            if now >= deadline {
                break;
            }
            st = self
                .inner
                .ended
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        st.threads
    }
}

fn serve(inner: &Inner) {
    loop {
        let item = {
            let mut st = lock(&inner.state);
            loop {
                if st.stopped {
                    return;
                }
                if let Some(item) = st.queue.pop_front() {
                    break item;
                }
                st.idle += 1;
                let (next, timeout) = inner
                    .work
                    .wait_timeout(st, BLOCKING_IDLE)
                    .unwrap_or_else(|e| e.into_inner());
                st = next;
                st.idle -= 1;
                if timeout.timed_out() && st.queue.is_empty() {
                    return;
                }
            }
        };
        run(inner, item);
    }
}

/// Runs one check at its start, unless its generation is gone.
fn run(inner: &Inner, (job, name, check): Item) {
    let cancel = &inner.shared.cancel;
    let mut started = clock::mono_now();
    // Handed over early: wait for the start, in slices so that a reset or
    // a shutdown is seen within CANCEL_POLL.
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
    if inner
        .done
        .send(vec![job.finished(started, finished, outcome)])
        .is_ok()
    {
        inner.shared.wake.result(&inner.flags.results, finished);
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
