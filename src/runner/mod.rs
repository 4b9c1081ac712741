//! Probe runners: the one trait every probe kind implements, and the
//! registry that maps kind names to runners.
//!
//! A kind is two steps. [`Runner::prepare`] reads a declaration's
//! kind-specific fields once per reset and returns a [`Check`], or a
//! [`FieldError`] that makes the probe fail with `invalid declaration: ...`.
//! [`Check::run`] then runs on a worker thread at every tick. A run must
//! return when [`RunContext::is_cancelled`] turns true (a reset, a
//! shutdown, or the run's deadline): the engine discards the outcome
//! anyway, and shutdown only waits one second for runs to return.
//!
//! `timeoutSecs` (default 10, 1 to 86400) bounds every run of a registered
//! kind: at [`RunContext::deadline`], `timeoutSecs` after the run's slot,
//! the engine records a failed result `timed out after N s` at once,
//! whether or not the check has returned. A check that has not returned
//! keeps its probe's next slots skipped (at most one run in flight per
//! probe; they count in `skippedTicks`) until it does, and its outcome is
//! then discarded. The built-in `tcp`, `http` and `exec` kinds bound their
//! own runs (`connectTimeoutSecs`, `timeoutSecs`) and report their own
//! timeouts.
//!
//! A check that runs a command uses [`Command`]: the `exec` kind's process
//! handling (a process group of its own, killed whole at the end, on a
//! timeout and on cancellation; never a shell), with a typed
//! [`CommandOutput`] that [`CommandOutput::outcome`] turns into the `exec`
//! kind's outcome.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::clock;
use crate::decl::{DEFAULT_TIMEOUT_SECS, Declaration, FieldError, MAX_TIMEOUT_SECS};
pub use crate::vocab::{MAX_REASON_BYTES, ParseStatusError, RunnerOutcome, Status, SubResult};

#[cfg(feature = "evidence")]
pub mod evidence;
pub(crate) mod exec;
pub use exec::{Command, CommandEnd, CommandOutput};
pub(crate) mod http;
pub(crate) mod machine;
pub(crate) mod tcp;
mod tls_fields;

/// A declaration's `timeoutSecs`, checked: 1 to [`MAX_TIMEOUT_SECS`],
/// default [`DEFAULT_TIMEOUT_SECS`] (for the kinds that use it; the
/// lenient `Declaration::timeout_secs` is for everything else).
pub(crate) fn timeout_secs(decl: &Declaration) -> Result<u64, FieldError> {
    Ok(decl
        .u64_in("timeoutSecs", 1, MAX_TIMEOUT_SECS)?
        .unwrap_or(DEFAULT_TIMEOUT_SECS))
}

/// A probe kind: turns declarations into runnable checks.
pub trait Runner: Send + Sync + 'static {
    /// Reads the kind-specific fields of `decl` (the shared fields are
    /// already read and valid). Called on the engine thread at every reset,
    /// so it must not block. A panic here is caught: the probe then fails
    /// at every tick with `runner panicked in prepare: <message>`, and the
    /// other probes run.
    fn prepare(&self, decl: &Declaration) -> Result<Arc<dyn Check>, FieldError>;

    /// Field names this kind reads beyond [`decl::KNOWN_FIELDS`](crate::decl::KNOWN_FIELDS), so that
    /// `probewheel check` does not report them as unknown.
    fn extra_fields(&self) -> &[&str] {
        &[]
    }
}

/// One prepared probe, run at every tick on a worker thread.
///
/// Each run is bounded by the probe's `timeoutSecs` (default 10 s): at
/// [`RunContext::deadline`] the context reports the run cancelled
/// ([`RunContext::is_cancelled`] turns true, [`RunContext::sleep`] returns
/// early) and the engine records the failed result `timed out after N s`
/// at once. A check that ignores this and keeps going holds its probe:
/// the probe's next slots are skipped (and counted in `skippedTicks`)
/// until `run` returns, and what it returns then is discarded.
///
/// A check that starts a process should run it with [`Command`], which
/// kills the command's whole process group (grandchildren included) at its
/// timeout and when the run is cancelled, and reaps it before returning.
pub trait Check: Send + Sync + 'static {
    /// Runs the probe once. A failing probe is a [`RunnerOutcome::fail`],
    /// never a panic (a panic is caught and reported as a failure all the
    /// same). Return once [`RunContext::is_cancelled`] turns true.
    fn run(&self, ctx: &RunContext<'_>) -> RunnerOutcome;

    /// Where this check runs (default [`Placement::Blocking`]: on a thread
    /// of its own, so that it may block without delaying anything else).
    fn placement(&self) -> Placement {
        Placement::Blocking
    }
}

/// Where a custom check runs (G13).
///
/// Built-in kinds are state machines on the workers' poll loops and never
/// hold a thread while they wait. A custom [`Check`] has a blocking `run`,
/// so by default it gets a thread of its own for each run in flight (at
/// most [`MAX_BLOCKING_THREADS`](crate::engine::MAX_BLOCKING_THREADS),
/// started on demand and ended after
/// [`BLOCKING_IDLE`](crate::engine::BLOCKING_IDLE) idle): a check that
/// hangs then delays no other probe. A check that never waits (it computes
/// from memory, reads a small local file) can say [`Placement::Inline`] and
/// run right on a worker, which saves the hand-off to another thread; an
/// inline check that does block delays every probe of its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Placement {
    /// On a thread of its own: may block, until its own cancellation.
    Blocking,
    /// On a worker's thread, between other runs: must never wait.
    Inline,
}

/// A [`Check`] that runs on a worker ([`Placement::Inline`]).
struct InlineCheck<F>(F);

impl<F> Check for InlineCheck<F>
where
    F: Fn(&RunContext<'_>) -> RunnerOutcome + Send + Sync + 'static,
{
    fn run(&self, ctx: &RunContext<'_>) -> RunnerOutcome {
        (self.0)(ctx)
    }

    fn placement(&self) -> Placement {
        Placement::Inline
    }
}

impl<F> Check for F
where
    F: Fn(&RunContext<'_>) -> RunnerOutcome + Send + Sync + 'static,
{
    fn run(&self, ctx: &RunContext<'_>) -> RunnerOutcome {
        self(ctx)
    }
}

/// A runner built from a closure that ignores the declaration's fields:
/// handy for registering simple kinds and test fakes.
///
/// # Examples
///
/// ```
/// use probewheel::{RunnerOutcome, runner::FnRunner};
/// let always_pass = FnRunner::new(|_ctx| RunnerOutcome::pass());
/// # let _ = always_pass;
/// ```
pub struct FnRunner {
    check: Arc<dyn Check>,
}

impl FnRunner {
    /// Every probe of this kind runs `f`.
    pub fn new<F>(f: F) -> FnRunner
    where
        F: Fn(&RunContext<'_>) -> RunnerOutcome + Send + Sync + 'static,
    {
        FnRunner { check: Arc::new(f) }
    }

    /// Every probe of this kind runs `f`, which never waits, right on a
    /// worker ([`Placement::Inline`]).
    pub fn inline<F>(f: F) -> FnRunner
    where
        F: Fn(&RunContext<'_>) -> RunnerOutcome + Send + Sync + 'static,
    {
        FnRunner {
            check: Arc::new(InlineCheck(f)),
        }
    }
}

impl fmt::Debug for FnRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnRunner")
    }
}

impl Runner for FnRunner {
    fn prepare(&self, _decl: &Declaration) -> Result<Arc<dyn Check>, FieldError> {
        Ok(Arc::clone(&self.check))
    }
}

/// How a probe runs on the engine's workers (see `Registry::prepare_task`).
#[derive(Clone)]
pub(crate) enum Prepared {
    /// A built-in run: a state machine on a worker's poll loop.
    Machine(Arc<dyn machine::Machine>),
    /// A check that never waits: run right on a worker.
    Inline(Arc<dyn Check>),
    /// A custom check that may block: run on a thread of its own.
    Blocking(Arc<dyn Check>),
}

/// Cancellation shared by the engine and every run: a run of generation g is
/// cancelled once the engine's generation moves past g, or on shutdown.
#[derive(Debug, Default)]
pub(crate) struct CancelState {
    generation: AtomicU64,
    shutdown: AtomicBool,
}

impl CancelState {
    pub(crate) fn set_generation(&self, g: u64) {
        self.generation.store(g, Ordering::Release);
    }

    pub(crate) fn set_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
    }

    /// Changes whenever the generation moves or shutdown begins: a worker
    /// compares it with the value it last swept for.
    pub(crate) fn epoch(&self) -> u64 {
        self.generation.load(Ordering::Acquire) * 2 + u64::from(self.is_shutdown())
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    pub(crate) fn is_cancelled(&self, generation: u64) -> bool {
        self.shutdown.load(Ordering::Acquire)
            || self.generation.load(Ordering::Acquire) != generation
    }
}

/// What a run knows about itself, and how it learns that it should stop:
/// a reset, a shutdown, or its deadline (`timeoutSecs` after its slot).
pub struct RunContext<'a> {
    probe_name: &'a str,
    generation: u64,
    started: Instant,
    deadline: Instant,
    cancel: &'a CancelState,
}

/// The deadline of a run the engine does not bound: about 30 years on.
const NO_DEADLINE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

impl<'a> RunContext<'a> {
    /// A run of `generation` that started at `started` and is cut off at
    /// `deadline` (never, when `None`).
    pub(crate) fn new(
        probe_name: &'a str,
        generation: u64,
        started: Instant,
        deadline: Option<Instant>,
        cancel: &'a CancelState,
    ) -> Self {
        RunContext {
            probe_name,
            generation,
            started,
            deadline: deadline.unwrap_or_else(|| far(started)),
            cancel,
        }
    }

    /// The probe's name.
    pub fn probe_name(&self) -> &str {
        self.probe_name
    }

    /// The generation this run belongs to.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// When the run started (monotonic).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// When the engine cuts this run off: the probe's `timeoutSecs` after
    /// the slot the run belongs to (which is when it started, give or take
    /// the wake-up's jitter). From then on [`RunContext::is_cancelled`] is
    /// true and the run's result is already recorded as `timed out after
    /// N s`.
    ///
    /// # Examples
    ///
    /// ```
    /// use probewheel::{RunnerOutcome, runner::FnRunner};
    ///
    /// // Polls something slow, never past the run's deadline.
    /// let runner = FnRunner::new(|ctx| {
    ///     while ctx.now() < ctx.deadline() {
    ///         if ctx.sleep(std::time::Duration::from_millis(100)) {
    ///             break; // a reset, a shutdown, or the deadline
    ///         }
    ///         // ... look again ...
    ///     }
    ///     RunnerOutcome::fail("not ready")
    /// });
    /// # let _ = runner;
    /// ```
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// True once the run's result can no longer be used (a reset, a
    /// shutdown, or its [deadline](RunContext::deadline) has passed):
    /// return promptly, and stop anything the run started
    /// ([`Command::run`] does both for a command).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled(self.generation) || self.now() >= self.deadline
    }

    /// The current monotonic time (runners must not read clocks directly,
    /// so that the clock stays in one place).
    pub fn now(&self) -> Instant {
        clock::mono_now()
    }

    /// Waits up to `d`, returning early (with `true`) if the run is
    /// cancelled: at its deadline, or within 10 ms of a reset or shutdown.
    pub fn sleep(&self, d: Duration) -> bool {
        let end = self.now().checked_add(d);
        loop {
            if self.is_cancelled() {
                return true;
            }
            let now = self.now();
            if end.is_some_and(|end| now >= end) {
                return false;
            }
            let until = end.map_or(self.deadline, |end| end.min(self.deadline));
            clock::sleep(until.saturating_duration_since(now).min(CANCEL_POLL));
        }
    }

    #[cfg(test)]
    pub(crate) fn for_test(cancel: &'a CancelState) -> Self {
        RunContext::new(
            "test",
            cancel.generation.load(Ordering::Acquire),
            clock::mono_now(),
            None,
            cancel,
        )
    }
}

fn far(from: Instant) -> Instant {
    from.checked_add(NO_DEADLINE).unwrap_or(from)
}

impl fmt::Debug for RunContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunContext")
            .field("probe_name", &self.probe_name)
            .field("generation", &self.generation)
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// How often long waits in runners look at the cancel flag: bounds the time
/// from a reset to the kill of an `exec` child.
pub(crate) const CANCEL_POLL: Duration = Duration::from_millis(10);

/// Kind name -> runner.
#[derive(Clone)]
pub struct Registry {
    kinds: BTreeMap<String, Arc<dyn Runner>>,
    /// Built-in kinds that run as state machines on the workers.
    machines: BTreeMap<String, MachineFn>,
}

/// Prepares a built-in kind's state machine.
type MachineFn = fn(&Declaration) -> Result<Arc<dyn machine::Machine>, FieldError>;

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.kinds.keys()).finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::builtin()
    }
}

impl Registry {
    /// No kinds at all.
    pub fn empty() -> Self {
        Registry {
            kinds: BTreeMap::new(),
            machines: BTreeMap::new(),
        }
    }

    /// The built-in kinds: `tcp`, `exec`, `http`, `evidence`.
    pub fn builtin() -> Self {
        let mut r = Registry::empty();
        r.insert("tcp", tcp::TcpRunner);
        r.insert("exec", exec::ExecRunner);
        r.insert("http", http::HttpRunner);
        // Their runs are state machines on the workers' poll loops (G13).
        r.machines.insert("tcp".into(), tcp::machine);
        r.machines.insert("exec".into(), exec::machine);
        r.machines.insert("http".into(), http::machine);
        #[cfg(feature = "evidence")]
        r.insert(
            "evidence",
            evidence::EvidenceRunner::new(
                evidence::DEFAULT_HOST_KEY.into(),
                crate::runner::os_hostname(),
            ),
        );
        #[cfg(not(feature = "evidence"))]
        r.insert(
            "evidence",
            Unavailable("evidence probes need probewheel built with the `evidence` feature"),
        );
        r
    }

    /// Registers (or replaces) a kind.
    pub fn insert(&mut self, kind: impl Into<String>, runner: impl Runner) {
        let kind = kind.into();
        self.machines.remove(&kind);
        self.kinds.insert(kind, Arc::new(runner));
    }

    /// The runner of a kind.
    pub(crate) fn get(&self, kind: &str) -> Option<&Arc<dyn Runner>> {
        self.kinds.get(kind)
    }

    /// Whether `kind` is registered.
    pub fn contains(&self, kind: &str) -> bool {
        self.kinds.contains_key(kind)
    }

    /// Prepares a declaration: the check to run at every tick, or why every
    /// tick fails (the error's `Display` is the `failureReason`). Besides
    /// the kind's own fields, a kind that is not a built-in state machine
    /// (`tcp`, `http`, `exec`) has its `timeoutSecs` checked here, since
    /// the engine bounds its runs with it.
    ///
    /// # Examples
    ///
    /// ```
    /// use probewheel::Declaration;
    /// use probewheel::runner::{PrepareError, Registry};
    ///
    /// let registry = Registry::builtin();
    /// let typo = Declaration::from_value(
    ///     "db",
    ///     serde_json::json!({"kind": "tcp", "mode": "enforce", "port": 70000}),
    /// );
    /// match registry.prepare(&typo) {
    ///     Err(PrepareError::Invalid(e)) => assert_eq!(e.field(), "port"),
    ///     other => panic!("{:?}", other.err()),
    /// }
    /// let odd = Declaration::from_value("x", serde_json::json!({"kind": "ftp", "mode": "observe"}));
    /// let err = registry.prepare(&odd).err().unwrap();
    /// assert_eq!(err.to_string(), "unknown probe kind 'ftp'");
    /// ```
    pub fn prepare(&self, decl: &Declaration) -> Result<Arc<dyn Check>, PrepareError> {
        if let Some(e) = decl.invalid() {
            return Err(PrepareError::Invalid(e.clone()));
        }
        self.prepare_bounded(decl).map(|(check, _)| check)
    }

    /// [`Registry::prepare`], with the engine's bound on each run of the
    /// check: `timeoutSecs`, or `None` for a built-in state machine kind,
    /// which bounds its own runs (and may not read `timeoutSecs`).
    fn prepare_bounded(
        &self,
        decl: &Declaration,
    ) -> Result<(Arc<dyn Check>, Option<Duration>), PrepareError> {
        let Some(runner) = self.get(decl.kind()) else {
            return Err(PrepareError::UnknownKind(decl.kind().to_owned()));
        };
        let check = runner.prepare(decl).map_err(PrepareError::Invalid)?;
        if self.machines.contains_key(decl.kind()) {
            return Ok((check, None));
        }
        let secs = timeout_secs(decl).map_err(PrepareError::Invalid)?;
        Ok((check, Some(Duration::from_secs(secs))))
    }

    /// Prepares a declaration for the engine: a built-in kind as a state
    /// machine for the workers' poll loops, a custom check where its
    /// [`Placement`] says, with the engine's bound on each of its runs
    /// (`timeoutSecs`; `None` for a state machine, which bounds its own).
    pub(crate) fn prepare_task(
        &self,
        decl: &Declaration,
    ) -> Result<(Prepared, Option<Duration>), String> {
        if let Some(e) = decl.invalid() {
            return Err(e.to_string());
        }
        if let Some(machine) = self.machines.get(decl.kind()) {
            return machine(decl)
                .map(|m| (Prepared::Machine(m), None))
                .map_err(|e| e.to_string());
        }
        let (check, timeout) = self.prepare_bounded(decl).map_err(|e| e.to_string())?;
        let prepared = match check.placement() {
            Placement::Inline => Prepared::Inline(check),
            Placement::Blocking => Prepared::Blocking(check),
        };
        Ok((prepared, timeout))
    }
}

/// Why [`Registry::prepare`] gives no check; every tick of the probe fails
/// with this error's `Display` as its `failureReason`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrepareError {
    /// A shared or kind-specific field is invalid; shown as the
    /// [`FieldError`] shows itself (`invalid declaration: ...`).
    Invalid(FieldError),
    /// No runner is registered for this kind: `unknown probe kind '<kind>'`.
    UnknownKind(String),
}

impl fmt::Display for PrepareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrepareError::Invalid(e) => e.fmt(f),
            PrepareError::UnknownKind(kind) => write!(f, "unknown probe kind '{kind}'"),
        }
    }
}

// No `source`: the `Display` text already is the whole reason (it is what
// events carry), and a reporter that walks sources would print it twice.
impl std::error::Error for PrepareError {}

/// The OS host name (`gethostname`), or `""` if it cannot be read: the
/// default name evidence must carry.
#[cfg(feature = "evidence")]
pub(crate) fn os_hostname() -> String {
    crate::sys::host::hostname()
}

/// A built-in kind that this build cannot run: every tick fails with the
/// reason.
#[derive(Debug, Clone, Copy)]
#[cfg(not(feature = "evidence"))]
pub(crate) struct Unavailable(pub(crate) &'static str);

#[cfg(not(feature = "evidence"))]
impl Runner for Unavailable {
    fn prepare(&self, _decl: &Declaration) -> Result<Arc<dyn Check>, FieldError> {
        let reason = self.0;
        Ok(Arc::new(move |_: &RunContext<'_>| {
            RunnerOutcome::fail(reason)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancellation_follows_generation_and_shutdown() {
        let c = CancelState::default();
        c.set_generation(3);
        assert!(!c.is_cancelled(3));
        assert!(c.is_cancelled(2));
        c.set_generation(4);
        assert!(c.is_cancelled(3));
        c.set_shutdown();
        assert!(c.is_cancelled(4));
    }

    #[test]
    fn the_engine_bounds_registered_kinds_by_timeout_secs_and_leaves_built_ins_alone() {
        let mut r = Registry::builtin();
        r.insert("custom", FnRunner::new(|_| RunnerOutcome::pass()));
        let decl = |v: serde_json::Value| Declaration::from_value("p", v);
        let bound = |v| r.prepare_task(&decl(v)).map(|(_, t)| t);
        let custom = serde_json::json!({"kind": "custom", "mode": "enforce"});
        assert_eq!(bound(custom), Ok(Some(Duration::from_secs(10))));
        let custom = serde_json::json!({"kind": "custom", "mode": "enforce", "timeoutSecs": 3});
        assert_eq!(bound(custom), Ok(Some(Duration::from_secs(3))));
        let custom = serde_json::json!({"kind": "custom", "mode": "enforce", "timeoutSecs": 0});
        let err = r.prepare(&decl(custom)).err().unwrap();
        assert!(matches!(&err, PrepareError::Invalid(e) if e.field() == "timeoutSecs"));
        // tcp bounds itself (connectTimeoutSecs) and does not read it.
        let tcp =
            serde_json::json!({"kind": "tcp", "mode": "enforce", "port": 22, "timeoutSecs": 0});
        assert_eq!(bound(tcp), Ok(None));
        let http =
            serde_json::json!({"kind": "http", "mode": "enforce", "url": "http://127.0.0.1/"});
        assert_eq!(bound(http), Ok(None));
    }

    #[test]
    fn a_context_is_cancelled_at_its_deadline_and_sleep_returns_there() {
        let c = CancelState::default();
        let now = clock::mono_now();
        let ctx = RunContext::new("p", 0, now, Some(now + Duration::from_millis(30)), &c);
        assert!(!ctx.is_cancelled());
        assert!(
            ctx.sleep(Duration::from_secs(60)),
            "cancelled at the deadline"
        );
        assert!(ctx.is_cancelled());
        assert!(ctx.now() >= ctx.deadline());
    }
}
