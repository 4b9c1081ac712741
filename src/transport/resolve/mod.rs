//! Name resolution off the workers: `getaddrinfo` blocks and cannot be
//! interrupted, so lookups go to at most [`MAX_RESOLVER_THREADS`] threads.
//! A run that gives up drops its [`Lookup`]: a hung resolver costs at most
//! the pool's threads, never a worker.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::clock;
use crate::util::elastic::{Elastic, Limits, Refusal, Refused};
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
/// The resolver threads: started on demand, gone after 10 s without work.
/// `getaddrinfo` may load NSS modules; the stack is reserved, not touched.
const LIMITS: Limits = Limits {
    threads: MAX_RESOLVER_THREADS,
    idle: Duration::from_secs(10),
    stack: 256 * 1024,
};

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
        lock(&self.slot).take()
    }
}

/// Where a lookup's answer lands.
type Slot = Mutex<Option<Answer>>;

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
    pool: Arc<Elastic<Request>>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("threads", &self.pool.threads().0)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// A pool that runs `resolve`; its threads are named `<thread_name>-<n>`.
    pub(crate) fn new(resolve: Arc<dyn Resolve>, thread_name: String) -> Resolver {
        let pool = Elastic::new(thread_name, LIMITS, move |request: Request| {
            if request.slot.strong_count() == 0 {
                return; // abandoned before its turn
            }
            let result = resolve_contained(&*resolve, &request.host, request.port);
            answer(request, result);
        });
        Resolver {
            pool: Arc::new(pool),
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
        let slot = Arc::new(Mutex::new(None));
        let lookup = Lookup {
            slot: Arc::clone(&slot),
        };
        let request = Request {
            host: host.to_owned(),
            port,
            slot: Arc::downgrade(&slot),
            on_answer: Box::new(on_answer),
        };
        // Taken: it waits for a busy pool, or its run gives up at its deadline.
        if let Err(Refused { job, why }) = self.pool.submit(request) {
            let e = match why {
                Refusal::Stopped => io::Error::other("the engine is stopping"),
                Refusal::NoThread(e) => {
                    io::Error::new(e.kind(), format!("cannot start a resolver thread: {e}"))
                }
            };
            answer(job, Err(e));
        }
        lookup
    }

    /// Stops the pool: queued lookups are dropped, idle threads end, busy
    /// ones end when their lookup returns.
    pub(crate) fn stop(&self) {
        self.pool.stop(clock::mono_now());
    }
}

/// Runs the embedder's resolver: a panic is that lookup's error
/// (`resolver panicked: <message>`), and the thread serves on.
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
        *lock(&slot) = Some(result);
        drop(slot);
        (request.on_answer)();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
