//! Name resolution off the workers.
//!
//! `getaddrinfo` is the one call a probe makes that blocks and cannot be
//! interrupted, so lookups go to a small pool of resolver threads (at most
//! [`MAX_RESOLVER_THREADS`], started on demand, gone after
//! [`RESOLVER_IDLE`] without work). A lookup is a [`Lookup`] handle: the
//! run that asked keeps it and is woken through the callback it gave when
//! the answer is in. A run that gives up (its deadline, a reset) drops the
//! handle: a lookup not started yet is then skipped, one in progress is
//! forgotten when it returns. So a resolver that never answers costs at
//! most the pool's threads, never a worker, and never more threads.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread;
use std::time::Duration;

use crate::vocab::panic_message;

/// Resolves host names for `tcp` and `http` probes. The default is
/// [`SystemResolver`]; an embedding program can give its own with
/// `Builder::resolver` (a static table, its own service discovery, a
/// test double).
///
/// `resolve` may block: it runs on a resolver thread, never on a worker.
/// A probe stops waiting for it at its own deadline. A panic in `resolve`
/// fails that lookup only (`resolver panicked: <message>`).
pub trait Resolve: Send + Sync + 'static {
    /// The addresses of `host` (a name, never an IP literal: those are not
    /// looked up), each with `port`, in the order to try them.
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

impl<F> Resolve for F
where
    F: Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
{
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        self(host, port)
    }
}

/// The operating system's resolver (`getaddrinfo`: `/etc/hosts`, DNS, NSS).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs()?.collect())
    }
}

/// Most resolver threads at a time.
pub(crate) const MAX_RESOLVER_THREADS: usize = 4;
/// A resolver thread without work for this long ends.
pub(crate) const RESOLVER_IDLE: Duration = Duration::from_secs(10);
/// `getaddrinfo` may load NSS modules; the stack is reserved, not touched.
const RESOLVER_STACK: usize = 256 * 1024;

/// What a lookup answers.
pub(crate) type Answer = io::Result<Vec<SocketAddr>>;

/// The answer of one lookup, once it is in. Dropping it abandons the
/// lookup.
pub(crate) struct Lookup {
    slot: Arc<Slot>,
}

impl fmt::Debug for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lookup").finish_non_exhaustive()
    }
}

impl Lookup {
    /// The answer, if it has come (taken: a second call gives `None`).
    pub(crate) fn take(&self) -> Option<Answer> {
        lock(&self.slot.answer).take()
    }
}

struct Slot {
    answer: Mutex<Option<Answer>>,
}

struct Request {
    host: String,
    port: u16,
    /// Gone when the run dropped its [`Lookup`].
    slot: Weak<Slot>,
    on_answer: Box<dyn FnOnce() + Send>,
}

/// The pool of resolver threads. Cheap to clone; every clone is the same
/// pool.
#[derive(Clone)]
pub(crate) struct Resolver {
    inner: Arc<Inner>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.inner.state);
        f.debug_struct("Resolver")
            .field("threads", &s.threads)
            .field("queued", &s.queue.len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    resolve: Arc<dyn Resolve>,
    thread_name: String,
    state: Mutex<State>,
    work: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Request>,
    threads: usize,
    idle: usize,
    stopped: bool,
}

impl Resolver {
    /// A pool that runs `resolve`; its threads are named `<thread_name>`.
    pub(crate) fn new(resolve: Arc<dyn Resolve>, thread_name: String) -> Resolver {
        Resolver {
            inner: Arc::new(Inner {
                resolve,
                thread_name,
                state: Mutex::new(State::default()),
                work: Condvar::new(),
            }),
        }
    }

    /// Starts looking up `host:port`; `on_answer` is called (on a resolver
    /// thread) once the answer is in the returned [`Lookup`]. When no
    /// thread can be started, the answer is that error, at once.
    pub(crate) fn lookup(
        &self,
        host: &str,
        port: u16,
        on_answer: impl FnOnce() + Send + 'static,
    ) -> Lookup {
        let slot = Arc::new(Slot {
            answer: Mutex::new(None),
        });
        let lookup = Lookup {
            slot: Arc::clone(&slot),
        };
        let request = Request {
            host: host.to_owned(),
            port,
            slot: Arc::downgrade(&slot),
            on_answer: Box::new(on_answer),
        };
        let mut s = lock(&self.inner.state);
        if s.stopped {
            drop(s);
            answer(request, Err(io::Error::other("the engine is stopping")));
            return lookup;
        }
        s.queue.push_back(request);
        if s.idle > s.queue.len().saturating_sub(1) {
            self.inner.work.notify_one();
            return lookup;
        }
        if s.threads < MAX_RESOLVER_THREADS {
            s.threads += 1;
            let inner = Arc::clone(&self.inner);
            let spawned = thread::Builder::new()
                .name(self.inner.thread_name.clone())
                .stack_size(RESOLVER_STACK)
                .spawn(move || serve(&inner));
            if let Err(e) = spawned {
                s.threads -= 1;
                if s.threads == 0 {
                    // Nobody will ever take it: answer it here.
                    let request = s.queue.pop_back().expect("pushed above");
                    drop(s);
                    let e =
                        io::Error::new(e.kind(), format!("cannot start a resolver thread: {e}"));
                    answer(request, Err(e));
                }
            }
        }
        // Otherwise every thread is busy: the lookup waits its turn, and
        // its run gives up at its deadline if the turn does not come.
        lookup
    }

    /// Resolver threads running now (busy or idle).
    #[cfg(test)]
    pub(crate) fn threads(&self) -> usize {
        lock(&self.inner.state).threads
    }

    /// Stops the pool: queued lookups are dropped, idle threads end, busy
    /// ones end when their lookup returns.
    pub(crate) fn stop(&self) {
        let mut s = lock(&self.inner.state);
        s.stopped = true;
        s.queue.clear();
        self.inner.work.notify_all();
    }
}

fn serve(inner: &Inner) {
    let mut s = lock(&inner.state);
    loop {
        if s.stopped {
            break;
        }
        let Some(request) = s.queue.pop_front() else {
            s.idle += 1;
            let (guard, timeout) = inner
                .work
                .wait_timeout(s, RESOLVER_IDLE)
                .unwrap_or_else(|e| e.into_inner());
            s = guard;
            s.idle -= 1;
            if timeout.timed_out() && s.queue.is_empty() {
                break;
            }
            continue;
        };
        if request.slot.strong_count() == 0 {
            continue; // abandoned before its turn
        }
        drop(s);
        let result = resolve_contained(&*inner.resolve, &request.host, request.port);
        answer(request, result);
        s = lock(&inner.state);
    }
    s.threads -= 1;
}

/// Runs the embedder's resolver: a panic is that lookup's error
/// (`resolver panicked: <message>`), and the thread serves on, so the pool
/// counts its threads right.
fn resolve_contained(resolve: &dyn Resolve, host: &str, port: u16) -> Answer {
    panic::catch_unwind(AssertUnwindSafe(|| resolve.resolve(host, port))).unwrap_or_else(
        |payload| {
            let message = panic_message(&*payload);
            log::error!("the resolver panicked looking up {host}:{port}: {message}");
            Err(io::Error::other(format!("resolver panicked: {message}")))
        },
    )
}

/// Puts the answer in the lookup's slot (if anyone still wants it) and
/// tells the run.
fn answer(request: Request, result: Answer) {
    if let Some(slot) = request.slot.upgrade() {
        *lock(&slot.answer) = Some(result);
        drop(slot);
        (request.on_answer)();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
