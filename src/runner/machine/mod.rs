//! Built-in runs as state machines on a worker's poll loop (G13).
//!
//! A [`Run`] is a state machine over non-blocking descriptors the worker's
//! `mio::Poll` watches. The worker calls [`Run::advance`] at the start, on
//! readiness, on a lookup's answer and at the instant asked for; each call
//! does what it can without waiting and returns [`Step::Wait`] or
//! [`Step::Done`]. So a waiting run costs a descriptor and a timer entry.
//!
//! The contract a `Run` keeps:
//! - every call returns promptly: descriptors are non-blocking, and
//!   `WouldBlock` means "wait for readiness";
//! - readiness is edge-triggered (mio), so after a wake-up a run retries
//!   everything it is waiting for until it would block again; a spurious
//!   call must be harmless;
//! - a run enforces its own deadline: called at or after it, it ends with
//!   a timeout failure;
//! - [`Run::cancel`] (a reset or shutdown) releases what the run holds: it
//!   kills what it started and may ask to be called again (`Step::Wait`)
//!   until that is reaped; its outcome is discarded;
//! - dropping a run releases everything it holds (descriptors close, and
//!   with them their registration).

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use mio::event::Source;
use mio::{Interest, Registry, Token};

use crate::runner::RunnerOutcome;
use crate::transport::Watch;
use crate::transport::dial::Spares;
use crate::transport::resolve::{Lookup, Resolver};

#[cfg(test)]
pub(crate) mod testing;

/// A prepared probe of a built-in kind: starts runs.
pub(crate) trait Machine: Send + Sync + 'static {
    /// A new run, started at `now` (construction only: no syscalls).
    fn start(&self, now: Instant) -> Box<dyn Run>;
}

/// One run in progress (see the module docs for the contract).
pub(crate) trait Run {
    /// Makes what progress can be made now.
    fn advance(&mut self, cx: &mut Cx<'_>) -> Step;

    /// The run is cancelled: release everything.
    fn cancel(&mut self, cx: &mut Cx<'_>) -> Step;
}

/// What a run needs next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Call again when a registered descriptor is ready, a lookup is
    /// answered, or at this instant at the latest.
    Wait(Instant),
    /// Finished.
    Done(RunnerOutcome),
}

/// Wakes a run from another thread (a resolver answering, say): the
/// worker then calls its `advance`.
pub(crate) trait Wake: Send + Sync + 'static {
    /// Schedules a call of the run registered under `token`.
    fn wake(&self, token: Token);
}

/// Spare sockets and a read buffer a worker lends its runs one call at a
/// time, so a waiting run holds none.
#[derive(Debug, Default)]
pub(crate) struct Stock {
    pub(crate) spares: Spares,
    scratch: Vec<u8>,
}

/// What a run sees of its worker during one call.
pub(crate) struct Cx<'a> {
    now: Instant,
    token: Token,
    registry: &'a Registry,
    resolver: &'a Resolver,
    wake: &'a Arc<dyn Wake>,
    stock: &'a mut Stock,
}

impl fmt::Debug for Cx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cx")
            .field("now", &self.now)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl<'a> Cx<'a> {
    pub(crate) fn new(
        now: Instant,
        token: Token,
        registry: &'a Registry,
        resolver: &'a Resolver,
        wake: &'a Arc<dyn Wake>,
        stock: &'a mut Stock,
    ) -> Cx<'a> {
        Cx {
            now,
            token,
            registry,
            resolver,
            wake,
            stock,
        }
    }

    /// The time of this call (the worker's clock reading; virtual in tests).
    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    /// Watches `source` for `interest` on behalf of this run.
    pub(crate) fn register(&self, source: &mut impl Source, interest: Interest) -> io::Result<()> {
        self.registry.register(source, self.token, interest)
    }

    /// Stops watching `source` (closing it does so too).
    pub(crate) fn deregister(&self, source: &mut impl Source) -> io::Result<()> {
        self.registry.deregister(source)
    }

    /// The worker's read buffer, at least `len` bytes long.
    pub(crate) fn scratch(&mut self, len: usize) -> &mut [u8] {
        if self.stock.scratch.len() < len {
            self.stock.scratch.resize(len, 0);
        }
        &mut self.stock.scratch
    }
}

impl Watch for Cx<'_> {
    fn watch(&self, stream: &mut mio::net::TcpStream, interest: Interest) -> io::Result<()> {
        self.register(stream, interest)
    }

    fn unwatch(&self, stream: &mut mio::net::TcpStream) -> io::Result<()> {
        self.deregister(stream)
    }

    fn resolve(&self, host: &str, port: u16) -> Lookup {
        let wake = Arc::clone(self.wake);
        let token = self.token;
        self.resolver.lookup(host, port, move || wake.wake(token))
    }

    fn spares(&mut self) -> &mut Spares {
        &mut self.stock.spares
    }
}
