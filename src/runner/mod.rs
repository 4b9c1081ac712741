//! Probe kinds: the [`Registry`] of kind names, the built-in kinds (a module
//! each) and the [`Runner`] trait for a kind of an embedding program.
//!
//! A registered kind is two steps: [`Runner::prepare`] reads a declaration's
//! own fields once per reset into a [`Check`] (or a [`FieldError`]: `invalid
//! declaration: ...`), and [`Check::run`] runs at every tick on a worker
//! until [`RunContext::is_cancelled`] (a reset, a shutdown, `timeoutSecs`).
//! A check that runs a command uses [`Command`], the `exec` kind's process
//! handling, and [`CommandOutput::outcome`].

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::clock;
use crate::decl::{DEFAULT_TIMEOUT_SECS, Declaration, FieldError, MAX_TIMEOUT_SECS};
pub use crate::vocab::{
    MAX_REASON_BYTES, ParseStatusError, PerfUnit, Perfdata, RunnerOutcome, Status, SubResult,
};

mod dns;
#[cfg(feature = "evidence")]
pub mod evidence;
#[cfg(not(feature = "evidence"))]
#[path = "evidence/kind.rs"]
mod evidence;
pub(crate) mod exec;
mod file;
pub use exec::{Command, CommandEnd, CommandOutput};
pub(crate) mod http;
mod icmp;
pub(crate) mod machine;
use machine::Machine;
mod registry;
pub(crate) use registry::{HostFacts, Kind, Prepared};
pub use registry::{PrepareError, PreparedProbe, Registry};
mod systemd;
pub(crate) mod tcp;
mod tls_fields;

/// A declaration's `timeoutSecs`, checked (the lenient
/// `Declaration::timeout_secs` is for kinds that do not read it).
pub(crate) fn timeout_secs(decl: &Declaration) -> Result<u64, FieldError> {
    Ok(decl
        .u64_in("timeoutSecs", 1, MAX_TIMEOUT_SECS)?
        .unwrap_or(DEFAULT_TIMEOUT_SECS))
}

/// A probe kind: turns declarations into runnable checks.
pub trait Runner: Send + Sync + 'static {
    /// Reads the kind-specific fields of `decl` (the shared ones are valid),
    /// on the engine thread at every reset, so it must not block. A panic
    /// fails the probe with `runner panicked in prepare: <message>`.
    fn prepare(&self, decl: &Declaration) -> Result<Arc<dyn Check>, FieldError>;

    /// Field names this kind reads beyond the shared ones
    /// ([`decl::SHARED_FIELDS`](crate::decl::SHARED_FIELDS)), so that
    /// `probewheel check` does not report them as unknown.
    fn extra_fields(&self) -> &[&str] {
        &[]
    }
}

/// One prepared probe, run at every tick on a worker thread.
///
/// At [`RunContext::deadline`] (`timeoutSecs` after its slot) the engine
/// records `timed out after N s` and the run is cancelled; a check that keeps
/// going holds its probe (next slots skipped, counted in `skippedTicks`)
/// and its outcome is discarded. Start processes with [`Command`], which
/// kills the whole process group on timeout and cancellation.
pub trait Check: Send + Sync + 'static {
    /// Runs the probe once: fail with [`RunnerOutcome::fail`] (a panic is
    /// caught all the same); return once [`RunContext::is_cancelled`].
    fn run(&self, ctx: &RunContext<'_>) -> RunnerOutcome;

    /// Where this check runs (default [`Placement::Blocking`]).
    fn placement(&self) -> Placement {
        Placement::Blocking
    }
}

/// Where a custom check runs (G13): by default on a thread of its own per
/// run in flight (at most
/// [`MAX_BLOCKING_THREADS`](crate::engine::MAX_BLOCKING_THREADS)), so a hung
/// check delays no other probe; a check that never waits may run inline on
/// a worker, saving the hand-off (one that blocks delays its worker).
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

/// Cancellation shared by the engine and every run (a run of generation g
/// ends once the generation moves past g, or on shutdown), and the workers
/// a run can hand a state machine to.
#[derive(Default)]
pub(crate) struct CancelState {
    generation: AtomicU64,
    shutdown: AtomicBool,
    workers: OnceLock<Box<[Arc<dyn Adopt>]>>,
    next_worker: AtomicUsize,
}

impl fmt::Debug for CancelState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelState")
            .field("generation", &self.generation)
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
    }
}

/// A worker that drives runs handed over from other threads.
pub(crate) trait Adopt: Send + Sync + 'static {
    /// Takes `run`, or gives it back: on the worker's own thread (which
    /// cannot wait for itself), or once the worker has stopped.
    fn adopt(&self, run: Adopted) -> Result<(), Adopted>;
}

/// A run handed to a worker: it drives it as any run, cancels it with its
/// generation or at `deadline`, and sends its outcome to `reply`.
pub(crate) struct Adopted {
    pub(crate) machine: Arc<dyn Machine>,
    pub(crate) generation: u64,
    pub(crate) deadline: Instant,
    pub(crate) reply: crossbeam_channel::Sender<RunnerOutcome>,
}

impl CancelState {
    /// The workers runs are handed to (the engine, once they started).
    pub(crate) fn set_workers(&self, workers: Vec<Arc<dyn Adopt>>) {
        let _ = self.workers.set(workers.into());
    }

    /// Hands `run` to the next worker that takes it.
    fn hand_over(&self, mut run: Adopted) -> Result<(), Adopted> {
        let workers = self.workers.get().map_or(&[][..], |w| &w[..]);
        let first = self.next_worker.fetch_add(1, Ordering::Relaxed);
        for i in 0..workers.len() {
            match workers[(first + i) % workers.len()].adopt(run) {
                Ok(()) => return Ok(()),
                Err(back) => run = back,
            }
        }
        Err(run)
    }

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

/// What a run knows about itself, and whether it should stop.
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
            deadline: deadline
                .unwrap_or_else(|| started.checked_add(NO_DEADLINE).unwrap_or(started)),
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

    /// When the engine cuts this run off (`timeoutSecs` after its slot):
    /// from then on [`RunContext::is_cancelled`] and the result is already
    /// `timed out after N s`.
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

    /// True once the result can no longer be used (a reset, a shutdown, its
    /// [deadline](RunContext::deadline)): return promptly, stopping what the
    /// run started ([`Command::run`] does both).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled(self.generation) || self.now() >= self.deadline
    }

    /// The current monotonic time (runners read no clock themselves).
    pub fn now(&self) -> Instant {
        clock::mono_now()
    }

    /// Runs `machine` on an engine worker, cancelled with this run, and
    /// waits; `None` when no worker took it or the engine stopped.
    pub(crate) fn hand_over(&self, machine: Arc<dyn Machine>) -> Option<RunnerOutcome> {
        let (reply, outcome) = crossbeam_channel::bounded(1);
        let run = Adopted {
            machine,
            generation: self.generation,
            deadline: self.deadline,
            reply,
        };
        self.cancel.hand_over(run).ok()?;
        outcome.recv().ok()
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

    /// A kind that reads a `path` of its own.
    struct PathKind;

    impl Runner for PathKind {
        fn prepare(&self, decl: &Declaration) -> Result<Arc<dyn Check>, FieldError> {
            decl.get("path");
            Ok(Arc::new(|_: &RunContext<'_>| RunnerOutcome::pass()))
        }

        fn extra_fields(&self) -> &[&str] {
            &["path"]
        }
    }

    #[test]
    fn a_field_nested_too_deeply_invalidates_a_probe_whose_kind_reads_it() {
        let mut r = Registry::builtin();
        r.insert("file", PathKind);
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let text = format!(
            r#"{{"a": {{"kind": "file", "mode": "observe", "path": {0}}},
                 "b": {{"kind": "file", "mode": "observe", "pth": {0}}},
                 "c": {{"kind": "tcp", "mode": "observe", "port": {0}}},
                 "d": {{"kind": "tcp", "mode": "observe", "port": 1, "path": {0}}}}}"#,
            nest(100_000)
        );
        let decls = crate::decl::parse(text.as_bytes()).unwrap();
        let reasons: Vec<Option<String>> = decls
            .probes()
            .iter()
            .map(|d| r.prepare(d).err().map(|e| e.to_string()))
            .collect();
        let deep = |f: &str| {
            Some(format!(
                "invalid declaration: field `{f}`: nested too deeply to read"
            ))
        };
        assert_eq!(reasons, [deep("path"), None, deep("port"), None]);
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
