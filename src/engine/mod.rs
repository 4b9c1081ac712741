//! The engine: [`Builder`], the [`Engine`] handle, and the driver thread
//! behind it.

mod blocking;
mod board;
mod driver;
mod error;
mod pool;
mod results;
mod rollout;
mod shared;
mod stats;
mod tasks;
#[cfg(test)]
mod tests;
mod timer;
mod wake;
mod worker;

pub use self::blocking::{BLOCKING_IDLE, MAX_BLOCKING_THREADS};
pub use self::board::WaitError;
pub use self::error::{EngineError, ErrorKind};
pub use self::rollout::{MAX_ROLLOUT_ID_BYTES, validate_rollout_id};
pub use self::stats::Stats;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::check::{self, Finding};
use crate::clock;
use crate::core::{Config, Scheduler};
use crate::decl::Declarations;
use crate::event::{Event, RolloutVerdict};
use crate::runner::{Registry, Runner};
use crate::transport::{Resolve, SystemResolver, resolve::Resolver};

use self::board::VerdictBoard;
use self::driver::{ChannelSink, Command, Driver, Source, TIMER, WAKER};
use self::error::Repr;
use self::pool::Pool;
use self::results::Results;
use self::shared::Shared;
use self::timer::DeadlineTimer;
use self::wake::EngineWake;

/// Where the declarations file lives unless told otherwise.
pub const DEFAULT_DECLARATIONS_PATH: &str = "/etc/nixfleet/agent/health-checks.json";

/// Default number of worker threads.
pub const DEFAULT_WORKERS: usize = 2;

/// Default G5 floor.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(5);

/// How long before a run is due the engine may hand it to a worker (which
/// waits for the instant itself), and how long a result may wait for the
/// engine: one wake-up serves every run due in the window. 100 ms wakes the
/// engine four times less than 25 ms (README) and is nothing to a rollout gate.
pub(crate) const DISPATCH_LEAD: Duration = Duration::from_millis(100);

/// Default capacity of the event channel.
pub const DEFAULT_EVENTS_CAPACITY: usize = 1024;

/// Largest capacity of the event channel ([`Builder::events_capacity`]):
/// every slot is reserved at build, and a larger channel only holds more
/// stale events (the engine coalesces results once it is full, G9).
pub const MAX_EVENTS_CAPACITY: usize = 65_536;

/// How long [`Engine::stats`] waits for the engine thread before it fails
/// with [`ErrorKind::Busy`].
pub const STATS_TIMEOUT: Duration = Duration::from_secs(5);

/// Configures and starts an [`Engine`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use probewheel::{Builder, RunnerOutcome, runner::FnRunner};
///
/// let (engine, events) = Builder::new()
///     .declarations_json(r#"{"noop": {"kind": "noop", "mode": "enforce"}}"#)
///     .workers(1)
///     .min_interval(Duration::from_millis(100))
///     .runner("noop", FnRunner::new(|_| RunnerOutcome::pass()))
///     .build()?;
/// engine.reset("stable@abc")?;
/// let first = events.recv_timeout(Duration::from_secs(5)).unwrap();
/// assert_eq!(first.name(), "topologyDeclared");
/// engine.shutdown()?;
/// # Ok::<(), probewheel::EngineError>(())
/// ```
pub struct Builder {
    source: Source,
    workers: usize,
    min_interval: Duration,
    events_capacity: usize,
    stagger: bool,
    soak: Duration,
    deadline: Option<Duration>,
    registry: Registry,
    resolver: Arc<dyn Resolve>,
    thread_name: String,
    child_subreaper: bool,
    pin_workers: bool,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("source", &self.source)
            .field("workers", &self.workers)
            .field("min_interval", &self.min_interval)
            .field("events_capacity", &self.events_capacity)
            .field("stagger", &self.stagger)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// Defaults: the file at [`DEFAULT_DECLARATIONS_PATH`], 2 workers, a
    /// 5 s floor, 1024 events of channel capacity, no stagger, the built-in
    /// kinds.
    pub fn new() -> Builder {
        Builder {
            source: Source::Path(PathBuf::from(DEFAULT_DECLARATIONS_PATH)),
            workers: DEFAULT_WORKERS,
            min_interval: DEFAULT_MIN_INTERVAL,
            events_capacity: DEFAULT_EVENTS_CAPACITY,
            stagger: false,
            soak: Duration::ZERO,
            deadline: None,
            registry: Registry::builtin(),
            resolver: Arc::new(SystemResolver),
            thread_name: "probewheel".to_owned(),
            child_subreaper: false,
            pin_workers: false,
        }
    }

    /// Reads declarations from this file at every reset.
    pub fn declarations_path(mut self, path: impl Into<PathBuf>) -> Builder {
        self.source = Source::Path(path.into());
        self
    }

    /// Uses this JSON text as the declarations at every reset.
    pub fn declarations_json(mut self, json: impl Into<String>) -> Builder {
        self.source = Source::Inline(json.into());
        self
    }

    /// Uses declarations made in code at every reset (no size limit: the
    /// 1 MiB cap is for files).
    pub fn declarations(mut self, decls: Declarations) -> Builder {
        self.source = Source::Parsed(decls);
        self
    }

    /// Number of worker threads (at least 1).
    pub fn workers(mut self, n: usize) -> Builder {
        self.workers = n;
        self
    }

    /// The G5 floor: the shortest interval and the least time between two
    /// starts of one probe (at least 1 ms).
    pub fn min_interval(mut self, d: Duration) -> Builder {
        self.min_interval = d;
        self
    }

    /// Capacity of the event channel, 1 to [`MAX_EVENTS_CAPACITY`] (default
    /// [`DEFAULT_EVENTS_CAPACITY`]); [`Builder::build`] fails with
    /// [`ErrorKind::Config`] outside that range. When the channel is full,
    /// events wait inside the engine and results are coalesced (G9).
    pub fn events_capacity(mut self, n: usize) -> Builder {
        self.events_capacity = n;
        self
    }

    /// Spread the first ticks of each reset evenly over each probe's
    /// interval instead of running every probe at reset time.
    pub fn stagger(mut self, on: bool) -> Builder {
        self.stagger = on;
        self
    }

    /// The rollout verdict's soak (default none): the verdict turns healthy
    /// only once every `enforce` probe has been passing for this long, and
    /// a probe that leaves `passing` starts it over.
    pub fn soak(mut self, d: Duration) -> Builder {
        self.soak = d;
        self
    }

    /// The rollout verdict's deadline (default none): a generation without
    /// a healthy verdict this long after its reset is unhealthy.
    pub fn deadline(mut self, d: Duration) -> Builder {
        self.deadline = Some(d);
        self
    }

    /// Registers (or replaces) a probe kind. The last call for a kind wins.
    pub fn runner(mut self, kind: impl Into<String>, runner: impl Runner) -> Builder {
        self.registry.insert(kind, runner);
        self
    }

    /// The OpenSSH public key that evidence signatures are checked against
    /// (default `/etc/ssh/ssh_host_ed25519_key.pub`), by the engine and by
    /// [`Builder::check`] alike. Without the `evidence` feature it does
    /// nothing.
    pub fn host_key(mut self, path: impl Into<PathBuf>) -> Builder {
        self.registry.set_host_key(path.into());
        self
    }

    /// The host name that evidence must carry (default: the OS host name).
    pub fn hostname(mut self, name: impl Into<String>) -> Builder {
        self.registry.set_hostname(name.into());
        self
    }

    /// The `systemctl` program `systemd` probes run (default: `systemctl`,
    /// looked up on `PATH` at each run), for a service whose `PATH` lacks
    /// it; by [`Builder::check`] too.
    pub fn systemctl(mut self, path: impl Into<PathBuf>) -> Builder {
        self.registry.set_systemctl(path.into());
        self
    }

    /// Prefix of the engine's thread names: `<prefix>-engine` and
    /// `<prefix>-worker-<i>` (default `probewheel`). Linux shows the first
    /// 15 bytes. A prefix with a NUL byte makes [`Builder::build`] fail
    /// with [`ErrorKind::Config`].
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Builder {
        self.thread_name = prefix.into();
        self
    }

    /// Makes this process a child subreaper (Linux `PR_SET_CHILD_SUBREAPER`)
    /// so that an `exec` probe's orphaned grandchildren are reaped by the
    /// run, not left as zombies. Process-wide: turn it on only in a program
    /// that reaps its own children (the `probewheel` binary does).
    pub fn child_subreaper(mut self, on: bool) -> Builder {
        self.child_subreaper = on;
        self
    }

    /// Pins worker `i` to the `i`-th of the CPUs this process may run on
    /// (round robin; Linux only). Off by default. Pinned workers stop
    /// queueing behind each other on one CPU, which narrows tail lateness
    /// (README, tick jitter), but cannot move off a CPU other work keeps
    /// busy: leave it off on a loaded host.
    pub fn pin_workers(mut self, on: bool) -> Builder {
        self.pin_workers = on;
        self
    }

    /// Resolves the host names of `tcp` and `http` probes (default:
    /// [`SystemResolver`], the OS's `getaddrinfo`), on at most four shared
    /// resolver threads, never a worker; a probe stops waiting at its own
    /// deadline (G13).
    pub fn resolver(mut self, resolver: impl Resolve) -> Builder {
        self.resolver = Arc::new(resolver);
        self
    }

    /// The kinds the engine will run: after [`Builder::build`],
    /// [`Engine::registry`] is this registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Lints declarations as the engine built from this builder would read
    /// them: with its kinds ([`Builder::registry`]) and its minimum
    /// interval. This is what `probewheel check` prints; see
    /// [`check::check`].
    pub fn check(&self, decls: &Declarations) -> Vec<Finding> {
        check::check(decls, &self.registry, self.min_interval)
    }

    /// Starts the engine thread and the worker pool. The engine runs no
    /// probe until the first [`Engine::reset`].
    pub fn build(self) -> Result<(Engine, Receiver<Event>), EngineError> {
        self.validate()?;
        if self.child_subreaper {
            crate::sys::process::set_child_subreaper()
                .map_err(EngineError::io("become a child subreaper"))?;
        }
        // A quarter of the shortest interval at most, so a run is never
        // handed over before the previous slot of its probe is due.
        let lead = DISPATCH_LEAD.min(self.min_interval / 4);
        let (poll, timer, shared) = engine_wake(lead)?;
        let mut results = Results::default();
        // From here on, what fails drops the pool, which stops its threads.
        let pool = self.start_pool(&shared, &mut results)?;
        let (events_tx, events_rx) = crossbeam_channel::bounded(self.events_capacity);
        let (commands_tx, commands_rx) = crossbeam_channel::unbounded();
        let board = Arc::new(VerdictBoard::default());
        // The runners are shared: the engine's copy is what the driver runs.
        let registry = self.registry.clone();
        let (min_interval, name) = (self.min_interval, format!("{}-engine", self.thread_name));
        let driver = Driver {
            board: Arc::clone(&board),
            poll,
            timer,
            core: self.scheduler(lead, events_tx),
            commands: commands_rx,
            shared: Arc::clone(&shared),
            pool,
            results,
            registry: self.registry,
            source: self.source,
            wakeups: 0,
            previous: None,
        };
        let thread = thread::Builder::new()
            .name(name)
            .stack_size(512 * 1024)
            .spawn(move || driver.run())
            .map_err(EngineError::io("spawn engine thread"))?;
        let engine = Engine {
            commands: commands_tx,
            shared,
            board,
            resets: std::sync::Mutex::new(0),
            thread: Some(thread),
            registry,
            min_interval,
        };
        Ok((engine, events_rx))
    }

    /// Rejects settings out of range.
    fn validate(&self) -> Result<(), EngineError> {
        if self.workers == 0 {
            return Err(EngineError::config("workers must be at least 1"));
        }
        if self.events_capacity == 0 {
            return Err(EngineError::config("events capacity must be at least 1"));
        }
        if self.events_capacity > MAX_EVENTS_CAPACITY {
            return Err(EngineError::new(Repr::ConfigAtMost(
                "events capacity",
                MAX_EVENTS_CAPACITY,
            )));
        }
        if self.thread_name.contains('\0') {
            return Err(EngineError::config(
                "the thread name prefix must not contain a NUL byte",
            ));
        }
        if self.min_interval < Duration::from_millis(1) {
            return Err(EngineError::config(
                "minimum interval must be at least 1 ms",
            ));
        }
        Ok(())
    }

    /// Starts the resolver and the workers, which hand their results over
    /// to `results`.
    fn start_pool(&self, shared: &Arc<Shared>, results: &mut Results) -> Result<Pool, EngineError> {
        let resolver = Resolver::new(
            Arc::clone(&self.resolver),
            format!("{}-resolve", self.thread_name),
        );
        let (n, name, pin) = (self.workers, &self.thread_name, self.pin_workers);
        Pool::start(n, name, shared, results, Arc::new(resolver), pin)
            .map_err(EngineError::io("spawn worker"))
    }

    /// The scheduling core, sending its events on `events`.
    fn scheduler(&self, lead: Duration, events: Sender<Event>) -> Scheduler<ChannelSink> {
        let config = Config {
            min_interval: self.min_interval,
            stagger: self.stagger,
            lead,
            soak: self.soak,
            deadline: self.deadline,
        };
        let sink = ChannelSink::new(events);
        Scheduler::new(config, clock::mono_now(), clock::wall_now(), sink)
    }
}

/// The engine thread's poll and timer, and what it shares with the threads
/// that wake it; results bring its wake-up forward by at most `hold`.
fn engine_wake(hold: Duration) -> Result<(mio::Poll, DeadlineTimer, Arc<Shared>), EngineError> {
    let poll = mio::Poll::new().map_err(EngineError::io("create poll"))?;
    let waker = mio::Waker::new(poll.registry(), WAKER).map_err(EngineError::io("create waker"))?;
    let timer =
        DeadlineTimer::new(poll.registry(), TIMER).map_err(EngineError::io("create timer"))?;
    let remote = timer
        .remote()
        .map_err(EngineError::io("duplicate the timer"))?;
    let wake = EngineWake::new(waker, remote, hold, clock::mono_now());
    Ok((poll, timer, Arc::new(Shared::new(wake))))
}

/// A running engine. Dropping it shuts it down (see [`Engine::shutdown`]).
pub struct Engine {
    commands: Sender<Command>,
    shared: Arc<Shared>,
    board: Arc<VerdictBoard>,
    /// Resets sent so far: the generation of the latest one. Held while
    /// sending, so that generations follow the order of the commands.
    resets: std::sync::Mutex<u64>,
    thread: Option<JoinHandle<()>>,
    registry: Registry,
    min_interval: Duration,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl Engine {
    /// Starts a new generation for `rollout_id`: re-reads the declarations,
    /// cancels runs in flight (their results are discarded, `exec` children
    /// killed), and declares the new topology. Returns once the command is
    /// queued, with the generation this reset starts (the first reset
    /// starts generation 1); the engine applies commands in order.
    ///
    /// Ask [`Engine::verdict`] or [`Engine::wait_verdict`] with this
    /// generation: they never answer for an older one (events of the older
    /// generation may still be in the channel).
    pub fn reset(&self, rollout_id: &str) -> Result<u64, EngineError> {
        validate_rollout_id(rollout_id)?;
        let mut resets = self.resets.lock().unwrap_or_else(|e| e.into_inner());
        self.send(Command::Reset(rollout_id.to_owned()))?;
        *resets += 1;
        Ok(*resets)
    }

    /// The latest rollout verdict of `generation` (the number
    /// [`Engine::reset`] returned), or `None` before that reset is applied
    /// or after a later one. Does not block. Its `header.seq` is 0: `seq`
    /// numbers the channel's events, and this one may not be in it yet.
    pub fn verdict(&self, generation: u64) -> Option<RolloutVerdict> {
        self.board.get(generation)
    }

    /// Waits, up to `timeout`, for the verdict of `generation` to be final:
    /// decided (healthy or unhealthy; see [`RolloutVerdict::decided`]) or
    /// rejected. Returns at once if it already is. For a synchronous loop:
    /// it blocks only the caller, never the engine.
    ///
    /// # Errors
    ///
    /// [`WaitError::TimedOut`] (with the latest verdict so far),
    /// [`WaitError::Superseded`] when a later reset started, and
    /// [`WaitError::Stopped`] when the engine is gone.
    pub fn wait_verdict(
        &self,
        generation: u64,
        timeout: Duration,
    ) -> Result<RolloutVerdict, WaitError> {
        self.board.wait_final(generation, timeout)
    }

    /// Counters and lateness percentiles, from the engine thread: waits at
    /// most [`STATS_TIMEOUT`] (see [`Engine::stats_timeout`]).
    pub fn stats(&self) -> Result<Stats, EngineError> {
        self.stats_timeout(STATS_TIMEOUT)
    }

    /// Counters and lateness percentiles, waiting at most `timeout` for the
    /// engine thread, which answers between two turns of its loop.
    ///
    /// Fails with [`ErrorKind::Busy`] when the thread is running but has
    /// not answered in time (later requests may succeed), and with
    /// [`ErrorKind::Stopped`] when it is gone.
    pub fn stats_timeout(&self, timeout: Duration) -> Result<Stats, EngineError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Command::Stats(tx))?;
        await_reply(&rx, timeout, || {
            self.thread.as_ref().is_some_and(|t| !t.is_finished())
        })
    }

    /// The kinds this engine runs: the [`Builder::registry`] it was built
    /// from, with the same runners.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Lints declarations as this engine reads them: with its kinds and its
    /// minimum interval (what `probewheel check` prints; see
    /// [`check::check`]). The engine thread is not involved.
    ///
    /// # Examples
    ///
    /// ```
    /// use probewheel::{Builder, RunnerOutcome, decl, runner::FnRunner};
    ///
    /// let (engine, _events) = Builder::new()
    ///     .declarations_json("{}")
    ///     .runner("noop", FnRunner::new(|_| RunnerOutcome::pass()))
    ///     .build()?;
    /// let decls = decl::parse(br#"{
    ///     "a": {"kind": "noop", "mode": "enforce"},
    ///     "b": {"kind": "nope", "mode": "enforce"}
    /// }"#).unwrap();
    /// let findings = engine.check(&decls);
    /// assert_eq!(findings.len(), 1);
    /// assert_eq!(findings[0].to_string(), "error: b: kind: unknown probe kind 'nope'");
    /// # Ok::<(), probewheel::EngineError>(())
    /// ```
    pub fn check(&self, decls: &Declarations) -> Vec<Finding> {
        check::check(decls, &self.registry, self.min_interval)
    }

    /// Stops the engine: cancels every run, kills `exec` children, stops
    /// the workers and the engine thread. Returns within about one second
    /// even when runs are stuck (G10); after it returns no further event is
    /// sent. A worker stuck in a registered check that ignores cancellation
    /// is left behind (logged).
    pub fn shutdown(mut self) -> Result<(), EngineError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), EngineError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        // Cancel runs right away, before the engine thread reads the command.
        self.shared.cancel.set_shutdown();
        let _ = self.commands.send(Command::Shutdown);
        self.shared.wake.command();
        let joined = thread.join();
        // Also when the engine thread panicked: waiters must not hang.
        self.board.close();
        joined.map_err(|_| EngineError::new(Repr::Panicked))
    }

    fn send(&self, cmd: Command) -> Result<(), EngineError> {
        if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
            return Err(EngineError::stopped());
        }
        self.commands
            .send(cmd)
            .map_err(|_| EngineError::stopped())?;
        self.shared.wake.command();
        Ok(())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The engine thread's answer, or why there is none: busy if it is still
/// `alive`, stopped if not.
fn await_reply<T>(
    reply: &Receiver<T>,
    timeout: Duration,
    alive: impl FnOnce() -> bool,
) -> Result<T, EngineError> {
    match reply.recv_timeout(timeout) {
        Ok(answer) => Ok(answer),
        Err(RecvTimeoutError::Disconnected) => Err(EngineError::stopped()),
        Err(RecvTimeoutError::Timeout) if alive() => Err(EngineError::busy(timeout)),
        Err(RecvTimeoutError::Timeout) => Err(EngineError::stopped()),
    }
}
