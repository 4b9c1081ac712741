//! Drives a [`Machine`]'s run to its end on the calling thread, with a
//! private `mio::Poll`: the blocking `Check::run` of the built-in kinds,
//! for callers of `Registry::prepare` outside the engine, and
//! `runner::Command`, which a custom check calls on its own thread. The
//! engine's workers drive built-in runs on their own poll loops instead.

use std::io;
use std::sync::{Arc, OnceLock};

use mio::{Events, Poll, Token, Waker};

use super::{Cx, Machine, Step, Stock, Wake};
use crate::runner::{CANCEL_POLL, RunContext, RunnerOutcome};
use crate::transport::{SystemResolver, resolve::Resolver};

const WAKER: Token = Token(0);
const RUN: Token = Token(1);

struct WakeRun(Waker);

impl Wake for WakeRun {
    fn wake(&self, _token: Token) {
        let _ = self.0.wake();
    }
}

fn resolver() -> &'static Resolver {
    static RESOLVER: OnceLock<Resolver> = OnceLock::new();
    RESOLVER.get_or_init(|| Resolver::new(Arc::new(SystemResolver), "probewheel-resolve".into()))
}

/// Runs one run of `machine` to its outcome, checking `ctx` for
/// cancellation at least every [`CANCEL_POLL`].
pub(crate) fn run_to_end(machine: &dyn Machine, ctx: &RunContext<'_>) -> RunnerOutcome {
    match drive(machine, ctx) {
        Ok(outcome) => outcome,
        Err(e) => RunnerOutcome::fail(format!("poll: {e}")),
    }
}

fn drive(machine: &dyn Machine, ctx: &RunContext<'_>) -> io::Result<RunnerOutcome> {
    let mut poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    let wake: Arc<dyn Wake> = Arc::new(WakeRun(waker));
    let mut events = Events::with_capacity(16);
    let now = ctx.now();
    // Dropped with the run: no descriptor outlives it on this thread.
    let mut stock = Stock::default();
    let mut run = machine.start(now);
    let mut step = run.advance(&mut Cx::new(
        now,
        RUN,
        poll.registry(),
        resolver(),
        &wake,
        &mut stock,
    ));
    let mut cancelled = false;
    loop {
        let until = match step {
            Step::Done(outcome) => return Ok(outcome),
            Step::Wait(until) => until,
        };
        let now = ctx.now();
        let timeout = until.saturating_duration_since(now).min(CANCEL_POLL);
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let now = ctx.now();
        let mut cx = Cx::new(now, RUN, poll.registry(), resolver(), &wake, &mut stock);
        step = if !cancelled && ctx.is_cancelled() {
            cancelled = true;
            run.cancel(&mut cx)
        } else if cancelled {
            // Being cancelled: keep calling cancel until it is done.
            run.cancel(&mut cx)
        } else {
            run.advance(&mut cx)
        };
    }
}
