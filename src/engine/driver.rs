//! The engine thread: a thin driver around the scheduling core.
//!
//! One loop: read the clocks, take commands and finished runs, let the core
//! dispatch what is due onto the pool, flush events into the channel
//! without ever blocking (G9), then sleep in `poll` until the core's next
//! deadline (timerfd on Linux), a command, or a finished run (G12).

use std::io;
use std::ops::ControlFlow;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::{Events, Poll, Token};

use crate::clock;
use crate::core::{ProbeSpec, Scheduler, Sink, VerdictSpec};
use crate::decl::{self, Declaration, Declarations, Mode, Rejection};
use crate::engine::board::VerdictBoard;
use crate::engine::pool::Pool;
use crate::engine::results::Results;
use crate::engine::shared::Shared;
use crate::engine::stats::Stats;
use crate::engine::tasks::{Task, TaskTable};
use crate::engine::timer::DeadlineTimer;
use crate::event::Event;
use crate::runner::{Check, Prepared, Registry, RunContext, RunnerOutcome};
use crate::vocab::panic_message;

pub(crate) const WAKER: Token = Token(0);
pub(crate) const TIMER: Token = Token(1);

/// How long shutdown waits for runs to return before leaving a worker
/// behind; the rest of the one-second budget (G10) is for joining.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(800);

/// Backlog retry: while the channel is full the engine retries at this
/// pace, doubling up to `MAX_RETRY` (the consumer does not wake us).
const MIN_RETRY: Duration = Duration::from_millis(1);
const MAX_RETRY: Duration = Duration::from_millis(64);

pub(crate) enum Command {
    Reset(String),
    Stats(Sender<Stats>),
    Shutdown,
}

/// Where declarations come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Path(PathBuf),
    Inline(String),
    Parsed(Declarations),
}

impl Source {
    fn load(&self) -> Result<Declarations, Rejection> {
        match self {
            Source::Path(p) => decl::load(p),
            Source::Inline(text) => decl::parse(text.as_bytes()),
            Source::Parsed(d) => Ok(d.clone()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::Path(p) => p.display().to_string(),
            Source::Inline(_) | Source::Parsed(_) => "<inline>".to_owned(),
        }
    }
}

/// The event channel as the core's sink: never blocks.
pub(crate) struct ChannelSink {
    tx: Sender<Event>,
    receiver_gone: bool,
    dropped: u64,
}

impl ChannelSink {
    pub(crate) fn new(tx: Sender<Event>) -> Self {
        ChannelSink {
            tx,
            receiver_gone: false,
            dropped: 0,
        }
    }
}

impl Sink for ChannelSink {
    fn try_send(&mut self, event: Event) -> Result<(), Event> {
        match self.tx.try_send(event) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(e)) => Err(e),
            Err(TrySendError::Disconnected(_)) => {
                if !self.receiver_gone {
                    self.receiver_gone = true;
                    log::warn!("event receiver dropped; probes keep running, events are discarded");
                }
                self.dropped += 1;
                Ok(())
            }
        }
    }
}

pub(crate) struct Driver {
    pub(crate) board: Arc<VerdictBoard>,
    pub(crate) poll: Poll,
    pub(crate) timer: DeadlineTimer,
    pub(crate) core: Scheduler<ChannelSink>,
    pub(crate) commands: Receiver<Command>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) pool: Pool,
    pub(crate) results: Results,
    pub(crate) registry: Registry,
    pub(crate) source: Source,
    pub(crate) wakeups: u64,
    /// The current generation's probes as the core saw them, kept for a
    /// reset that cannot read the declarations (`None` when the current
    /// generation's were rejected).
    pub(crate) previous: Option<Vec<ProbeSpec>>,
}

impl Driver {
    /// The engine thread's loop: each turn takes what came in, hands over
    /// what is due, sends events, and sleeps until the next thing to do.
    pub(crate) fn run(mut self) {
        crate::sys::thread::tighten_timer_slack();
        let mut events = Events::with_capacity(16);
        let mut retry = MIN_RETRY;
        loop {
            self.read_wall_clock();
            if self.take_commands().is_break() {
                return self.shutdown();
            }
            self.take_results();
            let now = clock::mono_now();
            self.dispatch_due(now);
            self.judge(now);
            let wake_at = self.send_events(now, &mut retry);
            if self.sleep(wake_at, &mut events).is_break() {
                return self.shutdown();
            }
        }
    }

    /// Offers the core a fresh (monotonic, wall) pair.
    fn read_wall_clock(&mut self) {
        let now = clock::mono_now();
        let wall = clock::wall_now();
        // A pair read across a preemption would shift every wall time.
        if clock::mono_now().saturating_duration_since(now) < Duration::from_micros(100) {
            self.core.anchor_wall(now, wall);
        }
    }

    /// Carries out the commands sent so far; breaks on shutdown.
    fn take_commands(&mut self) -> ControlFlow<()> {
        // Cleared before draining, as `Results::drain` does (see wake.rs).
        self.shared.wake.take_commands();
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Reset(rollout) => self.reset(&rollout),
                Command::Stats(reply) => {
                    let _ = reply.send(self.stats());
                }
                Command::Shutdown => return ControlFlow::Break(()),
            }
        }
        ControlFlow::Continue(())
    }

    /// Gives the core every run the workers have finished.
    fn take_results(&mut self) {
        let core = &mut self.core;
        self.results.drain(|f| {
            core.handle_finished(f);
        });
    }

    /// Hands the pool every run due by `now` plus the core's lead.
    fn dispatch_due(&mut self, now: Instant) {
        let core = &mut self.core;
        self.pool
            .submit_all(std::iter::from_fn(|| core.poll_dispatch(now)));
    }

    /// Cuts off overdue runs, fires the verdict's alarms and posts a changed
    /// verdict for `Engine::verdict`. After the results, so a run that
    /// returned in time is not cut off.
    fn judge(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        if let Some(v) = self.core.take_verdict() {
            self.board.post(v);
        }
    }

    /// Sends waiting events without blocking (G9); returns when to wake
    /// next: the core's next deadline, or sooner to retry a full channel
    /// (the consumer does not wake us).
    fn send_events(&mut self, now: Instant, retry: &mut Duration) -> Option<Instant> {
        let flushed = self.core.flush();
        let wake_at = self.core.poll_timeout();
        if self.core.backlog() == 0 {
            return wake_at;
        }
        *retry = if flushed > 0 {
            MIN_RETRY
        } else {
            (*retry * 2).min(MAX_RETRY)
        };
        let at = now + *retry;
        Some(wake_at.map_or(at, |w| w.min(at)))
    }

    /// Sleeps until `wake_at` (never, when `None`: G12), a command or a
    /// result; breaks when polling fails for good.
    fn sleep(&mut self, wake_at: Option<Instant>, events: &mut Events) -> ControlFlow<()> {
        let now = clock::mono_now();
        if wake_at.is_some_and(|w| w <= now) {
            return ControlFlow::Continue(()); // already due: no sleep
        }
        let timeout = match self.timer.arm(wake_at, now) {
            Ok(t) => t,
            Err(e) => {
                log::error!("cannot arm the deadline timer ({e}); falling back to poll timeouts");
                self.timer = DeadlineTimer::PollTimeout;
                return ControlFlow::Continue(());
            }
        };
        // Armed, then published (the order wake.rs relies on); a result
        // that arrived before workers could see it is taken now.
        self.shared.wake.sleeping_until(wake_at);
        if !self.results.is_empty() {
            self.shared.wake.awake(now);
            return ControlFlow::Continue(());
        }
        if let Err(e) = self.poll.poll(events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                log::error!("poll failed: {e}; engine stops");
                return ControlFlow::Break(());
            }
        }
        self.wakeups += 1;
        self.shared.wake.awake(now);
        if events.iter().any(|e| e.token() == TIMER) {
            self.timer.acknowledge();
        }
        ControlFlow::Continue(())
    }

    /// Starts a new generation. A file unreadable for a shortage of our own
    /// (no descriptor left) says nothing about the file: the generation
    /// keeps the previous probes and its verdict is unhealthy, naming why.
    fn reset(&mut self, rollout: &str) {
        let loaded = self.source.load();
        let generation = self.core.generation() + 1;
        // Runs of older generations see the cancellation from here on.
        self.shared.cancel.set_generation(generation);
        let path = self.source.describe();
        let mut unread = None;
        let (probes, tasks) = match loaded {
            Ok(decls) => {
                log::info!(
                    "reset to {rollout:?} (generation {generation}): {} probes from {path}",
                    decls.len()
                );
                let (specs, tasks) = self.prepare(&decls);
                (Ok(specs), TaskTable::new(generation, tasks))
            }
            Err(r) if r.is_transient() && self.previous.is_some() => {
                let specs = self.previous.take().unwrap_or_default();
                log::warn!(
                    "reset to {rollout:?} (generation {generation}): cannot read {path} ({r}); \
                     it keeps the {} probes of generation {}",
                    specs.len(),
                    generation - 1
                );
                unread = Some(r.reason().to_owned());
                (Ok(specs), self.pool.tasks().renumbered(generation))
            }
            Err(r) => {
                log::warn!("reset to {rollout:?} (generation {generation}): {path} rejected: {r}");
                (Err(r), TaskTable::new(generation, Vec::new()))
            }
        };
        self.pool.publish_tasks(&self.shared, tasks);
        // Tick 0 is due now: after reading and preparing, not before.
        let declared = match &probes {
            Ok(specs) => Ok(specs.as_slice()),
            Err(rejection) => Err(rejection.reason()),
        };
        let g = self.core.reset(
            clock::mono_now(),
            rollout,
            declared,
            &path,
            unread.as_deref(),
        );
        debug_assert_eq!(g, generation);
        // Runs find their probe in the task table by the core's index.
        assert_eq!(self.core.probe_count(), self.pool.tasks().len());
        // What a later reset keeps if it cannot read the file.
        self.previous = probes.ok();
        // The reset's temporary parse goes back to the OS.
        crate::sys::memory::release_freed_memory();
    }

    /// The core's view of each probe and the workers' task, in one pass:
    /// a dispatch's `probe` indexes the task table.
    fn prepare(&self, decls: &Declarations) -> (Vec<ProbeSpec>, Vec<Task>) {
        let mut specs = Vec::with_capacity(decls.len());
        let mut tasks = Vec::with_capacity(decls.len());
        // One `Arc` per distinct kind, shared by its probes' events.
        let mut kinds: Vec<&Arc<str>> = Vec::new();
        for d in decls.probes() {
            let kind = match kinds.iter().find(|k| ***k == *d.kind_arc()) {
                Some(k) => Arc::clone(k),
                None => {
                    kinds.push(d.kind_arc());
                    Arc::clone(d.kind_arc())
                }
            };
            let (prepared, cut_off_after) = if d.mode() == Mode::Disabled {
                (None, None)
            } else {
                match prepare_task(&self.registry, d) {
                    Ok((prepared, timeout)) => (Some(prepared), timeout),
                    // It fails at once: nothing to bound.
                    Err(reason) => (Some(Prepared::Inline(failing(reason))), None),
                }
            };
            specs.push(ProbeSpec {
                name: Arc::clone(d.name_arc()),
                kind,
                mode: d.mode(),
                interval: Duration::from_secs(d.interval_secs()),
                run_once: d.run_once(),
                cut_off_after,
                verdict: VerdictSpec {
                    failure_threshold: d.failure_threshold(),
                    success_threshold: d.success_threshold(),
                    startup_grace: Duration::from_secs(d.startup_grace_secs()),
                    timeout: Duration::from_secs(d.timeout_secs()),
                },
                initial_delay: Duration::from_secs(d.initial_delay_secs()),
            });
            tasks.push(Task {
                name: Arc::clone(d.name_arc()),
                prepared,
            });
        }
        (specs, tasks)
    }

    fn stats(&self) -> Stats {
        let c = self.core.counters();
        let o = self.core.outbox_counters();
        let h = self.core.lateness();
        Stats {
            generation: self.core.generation(),
            rollout_id: self.core.rollout().to_owned(),
            probes: self.core.probe_count() as u64,
            timers: self.core.timers() as u64,
            wakeups: self.wakeups,
            dispatched: c.dispatched,
            results: c.results,
            skipped_ticks: c.skipped_ticks,
            stale_results: c.stale_results,
            events_sent: o.sent,
            coalesced: o.coalesced,
            dropped_at_reset: o.dropped_at_reset,
            dropped_no_receiver: self.core.sink().dropped,
            backlog: self.core.backlog() as u64,
            last_seq: self.core.last_seq(),
            lateness_samples: h.count(),
            lateness_p50_us: h.quantile(0.50),
            lateness_p90_us: h.quantile(0.90),
            lateness_p99_us: h.quantile(0.99),
            lateness_p999_us: h.quantile(0.999),
            lateness_max_us: h.max(),
        }
    }

    fn shutdown(mut self) {
        let deadline = clock::mono_now() + SHUTDOWN_GRACE;
        self.shared.cancel.set_shutdown();
        self.board.close();
        self.pool.stop(deadline);
        // Dropping `self` disconnects the event receiver.
    }
}

/// Prepares `decl`; a runner that panics gets a probe failing at every
/// tick, since nothing an embedder supplies may end the engine thread.
fn prepare_task(
    registry: &Registry,
    decl: &Declaration,
) -> Result<(Prepared, Option<Duration>), String> {
    panic::catch_unwind(AssertUnwindSafe(|| registry.prepare_task(decl))).unwrap_or_else(
        |payload| {
            let reason = format!("runner panicked in prepare: {}", panic_message(&*payload));
            log::error!("probe {:?}: {reason}", decl.name());
            Err(reason)
        },
    )
}

/// The check of a probe that cannot run: fails every tick with the reason.
fn failing(reason: String) -> Arc<dyn Check> {
    let outcome = RunnerOutcome::fail(reason);
    Arc::new(move |_: &RunContext<'_>| outcome.clone())
}
