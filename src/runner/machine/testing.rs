//! Drives one [`Run`] the way a worker does, for the runners' tests: a real
//! `mio::Poll`, real descriptors, and a clock the test may take over.
//!
//! [`Harness::run`] runs a probe to its end on the real clock.
//! For deadlines and cancellation in virtual time, step it by hand:
//! [`Harness::start`], then [`Harness::wait_io`] for real readiness and
//! [`Harness::advance`] / [`Harness::cancel`] with any `now`.

#![allow(clippy::disallowed_methods)] // the harness waits on the real clock

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};

use super::{Cx, Machine, Run, Step, Stock, Wake};
use crate::decl::Declaration;
use crate::runner::{Prepared, Registry, RunnerOutcome};
use crate::transport::{Resolve, SystemResolver, resolve::Resolver};

const WAKER: Token = Token(0);
/// The one run's token.
pub(crate) const RUN: Token = Token(1);

struct TestWake {
    waker: Waker,
    woken: Mutex<Vec<Token>>,
}

impl Wake for TestWake {
    fn wake(&self, token: Token) {
        self.woken.lock().unwrap().push(token);
        let _ = self.waker.wake();
    }
}

/// A built-in kind's state machine for `decl`, prepared as the engine
/// prepares it; the reason when the declaration is invalid.
pub(crate) fn machine(decl: &Declaration) -> Result<Arc<dyn Machine>, String> {
    match Registry::builtin().prepare_task(decl)? {
        (Prepared::Machine(machine), _) => Ok(machine),
        _ => panic!("{} is not a state machine kind", decl.kind()),
    }
}

/// Runs `machine` once on the real clock with the system resolver (see
/// [`Harness::run`]).
pub(crate) fn run_once(machine: &dyn Machine, limit: Duration) -> RunnerOutcome {
    Harness::new().run(machine, limit)
}

/// A poll loop for one run at a time.
pub(crate) struct Harness {
    poll: Poll,
    events: Events,
    resolver: Resolver,
    wake: Arc<dyn Wake>,
    test_wake: Arc<TestWake>,
    /// Lent to the runs, as a worker lends its own.
    stock: Stock,
}

impl Harness {
    /// With the system resolver.
    pub(crate) fn new() -> Harness {
        Harness::with_resolver(SystemResolver)
    }

    /// With the given resolver.
    pub(crate) fn with_resolver(resolve: impl Resolve) -> Harness {
        let poll = Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), WAKER).unwrap();
        let test_wake = Arc::new(TestWake {
            waker,
            woken: Mutex::new(Vec::new()),
        });
        let wake: Arc<dyn Wake> = Arc::clone(&test_wake) as Arc<dyn Wake>;
        Harness {
            poll,
            events: Events::with_capacity(64),
            resolver: Resolver::new(Arc::new(resolve), "test-resolve".into()),
            wake,
            test_wake,
            stock: Stock::default(),
        }
    }

    /// Runs `machine` once on the real clock, from start to outcome, and
    /// returns it with the run's duration. Panics if it takes longer than
    /// `limit` (a run must end by its own deadline).
    pub(crate) fn run(&mut self, machine: &dyn Machine, limit: Duration) -> RunnerOutcome {
        let started = Instant::now();
        let (mut run, mut step) = self.start(machine, started);
        loop {
            let until = match step {
                Step::Done(outcome) => return outcome,
                Step::Wait(until) => until,
            };
            assert!(
                started.elapsed() < limit,
                "the run did not end within {limit:?}"
            );
            let now = Instant::now();
            if until > now {
                self.wait_io(until - now);
            }
            step = self.advance(&mut *run, Instant::now());
        }
    }

    /// Drives a run from `step` to its end with its clock `offset` ahead of
    /// the real one; `cancelling` calls `cancel` instead of `advance`, as a
    /// worker does after a cancel. The 10 s real-time limit only guards
    /// against a hang.
    pub(crate) fn finish(
        &mut self,
        run: &mut dyn Run,
        mut step: Step,
        offset: Duration,
        cancelling: bool,
    ) -> RunnerOutcome {
        let limit = Duration::from_secs(10);
        let end = Instant::now() + limit;
        loop {
            let until = match step {
                Step::Done(outcome) => return outcome,
                Step::Wait(until) => until,
            };
            assert!(Instant::now() < end, "the run did not end within {limit:?}");
            let now = Instant::now() + offset;
            if until > now {
                self.wait_io(until - now);
            }
            let now = Instant::now() + offset;
            step = if cancelling {
                self.cancel(run, now)
            } else {
                self.advance(run, now)
            };
        }
    }

    /// Starts a run at `now` and makes its first call.
    pub(crate) fn start(&mut self, machine: &dyn Machine, now: Instant) -> (Box<dyn Run>, Step) {
        let mut run = machine.start(now);
        let step = self.advance(&mut *run, now);
        (run, step)
    }

    /// Calls the run's `advance` as at `now`.
    pub(crate) fn advance(&mut self, run: &mut dyn Run, now: Instant) -> Step {
        run.advance(&mut self.cx(now))
    }

    /// Calls the run's `cancel` as at `now`.
    pub(crate) fn cancel(&mut self, run: &mut dyn Run, now: Instant) -> Step {
        run.cancel(&mut self.cx(now))
    }

    fn cx(&mut self, now: Instant) -> Cx<'_> {
        let poll = self.poll.registry();
        Cx::new(now, RUN, poll, &self.resolver, &self.wake, &mut self.stock)
    }

    /// How many spare sockets the runs left: IPv4, IPv6.
    pub(crate) fn spares_held(&self) -> [usize; 2] {
        self.stock.spares.held()
    }

    /// Waits up to `max` (real time) for the run's descriptors or a wake;
    /// true if something came.
    pub(crate) fn wait_io(&mut self, max: Duration) -> bool {
        loop {
            match self.poll.poll(&mut self.events, Some(max)) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("poll: {e}"),
            }
        }
        let io = self.events.iter().any(|e| e.token() == RUN);
        let woken = !std::mem::take(&mut *self.test_wake.woken.lock().unwrap()).is_empty();
        io || woken
    }

    /// Waits (real time, at most `max`) until the run's descriptors are
    /// ready or a wake came, then advances it at `now`: for stepping in
    /// virtual time while the I/O is real.
    pub(crate) fn advance_after_io(
        &mut self,
        run: &mut dyn Run,
        max: Duration,
        now: Instant,
    ) -> (bool, Step) {
        let got = self.wait_io(max);
        (got, self.advance(run, now))
    }
}

/// A loopback listener whose accept queue is full, so that a further
/// connect to it never completes (the SYN is dropped) until the caller
/// gives up: a server that "never answers" at the TCP level. The fillers
/// must stay alive as long as the listener.
pub(crate) struct HangingListener {
    pub(crate) addr: std::net::SocketAddr,
    _listener: std::net::TcpListener,
    _fillers: Vec<std::net::TcpStream>,
}

/// See [`HangingListener`].
pub(crate) fn hanging_listener() -> HangingListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // Listening again only changes the backlog (to the smallest the kernel
    // allows).
    rustix::net::listen(&listener, 0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..64 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => fillers.push(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return HangingListener {
                    addr,
                    _listener: listener,
                    _fillers: fillers,
                };
            }
            Err(e) => panic!("filling the backlog of {addr}: {e}"),
        }
    }
    panic!("the backlog of {addr} never filled up");
}
