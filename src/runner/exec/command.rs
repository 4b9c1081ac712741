//! [`Command`]: a custom check runs a command the way `exec` probes run
//! theirs. The run is the exec kind's own state machine ([`ExecRun`]),
//! handed to one of the engine's workers, which drives it as any run while
//! the check's thread waits; only its output is handed back instead of
//! judged.

use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::run::ExecRun;
use super::{CANCELLED, PREFIX, STDERR_TAIL_BYTES, Tail, with_stderr};
use crate::decl::DEFAULT_TIMEOUT_SECS;
use crate::runner::machine::{Machine, Run};
use crate::runner::{RunContext, RunnerOutcome};

/// A command that a custom [`Check`](crate::Check) runs with the machinery
/// of the built-in `exec` kind.
///
/// [`Command::run`] starts the command and blocks the calling check until
/// the command exits, its timeout passes, or the run is cancelled (a reset
/// or a shutdown, see [`RunContext::is_cancelled`]). The command is run
/// exactly as an `exec` probe's:
///
/// - never through a shell: `argv[0]` is looked up in `PATH` (unless it
///   holds a `/`) and started with `execve`, so a file without `#!` fails
///   with "Exec format error" instead of being run by `/bin/sh`;
/// - as the leader of a process group of its own, with stdin and stdout on
///   `/dev/null` and stderr on a pipe of which the last 1024 bytes are
///   kept, inheriting no descriptor above stderr and no blocked signal;
/// - the leader is killed if this process dies (`PR_SET_PDEATHSIG`);
/// - at the end, **also after a normal exit**, the whole group is killed
///   with `SIGKILL` (grandchildren included: a background child left
///   running would pile up at every tick) and the leader is reaped. With
///   [`Builder::child_subreaper`](crate::Builder::child_subreaper), the
///   killed grandchildren are reaped too, before `run` returns.
///
/// The wait costs no CPU and no thread of its own: the engine's workers
/// wait on a pidfd of the leader and on the stderr pipe, as for an `exec`
/// probe, and kill the group at once when the run is cancelled, while the
/// calling thread waits for the end. Call it from a check that may block,
/// [`Placement::Blocking`] (the default): in an
/// [`Inline`](crate::Placement::Inline) check, which must never wait, a
/// command runs only if another worker takes it, and otherwise ends with
/// [`CommandEnd::WaitFailed`] without being started.
///
/// A command that cannot be started is an output too
/// ([`CommandEnd::SpawnFailed`]), never a panic.
/// [`CommandOutput::outcome`] turns an output into the outcome an `exec`
/// probe would have, with the same failure reasons.
///
/// A descendant that leaves the group (`setsid`, `setpgid`) escapes the
/// kill.
///
/// [`Placement::Blocking`]: crate::Placement::Blocking
///
/// # Examples
///
/// A `pg-ready` kind that passes when `pg_isready -h <host>` exits 0
/// within 5 seconds:
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use probewheel::runner::{Command, CommandEnd};
/// use probewheel::{Builder, Check, Declaration, FieldError, RunContext, Runner, RunnerOutcome};
///
/// struct PgReady;
///
/// struct PgReadyCheck {
///     command: Command,
/// }
///
/// impl Runner for PgReady {
///     fn prepare(&self, decl: &Declaration) -> Result<Arc<dyn Check>, FieldError> {
///         let host = decl.required_str("host")?;
///         let command = Command::new(["pg_isready", "-h", host]).timeout(Duration::from_secs(5));
///         Ok(Arc::new(PgReadyCheck { command }))
///     }
///
///     fn extra_fields(&self) -> &[&str] {
///         &["host"]
///     }
/// }
///
/// impl Check for PgReadyCheck {
///     fn run(&self, ctx: &RunContext<'_>) -> RunnerOutcome {
///         // Blocks until pg_isready exits, 5 s pass or the run is
///         // cancelled; the process group is gone when it returns.
///         let output = self.command.run(ctx);
///         if let CommandEnd::Exited(status) = output.end() {
///             if status.code() == Some(2) {
///                 return RunnerOutcome::fail("pg-ready probe: no response");
///             }
///         }
///         // Exit code 0 passes; anything else fails as an exec probe does:
///         // "exec probe: exit code 1, expected 0; stderr: ...".
///         output.outcome(0)
///     }
/// }
///
/// let (engine, events) = Builder::new()
///     .declarations_path("/etc/nixfleet/agent/health-checks.json")
///     .runner("pg-ready", PgReady)
///     // Killed grandchildren are reaped before a run returns.
///     .child_subreaper(true)
///     .build()?;
/// engine.reset("stable@abc123")?;
/// # drop(events);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Command {
    argv: Arc<[String]>,
    timeout: Duration,
}

impl Command {
    /// The command `argv`: the program (`argv[0]`), then its arguments.
    /// The timeout is 10 seconds (the `exec` kind's default) until
    /// [`Command::timeout`] says otherwise. An empty `argv`, an empty
    /// program or an argument with a NUL byte fails at
    /// [`run`](Command::run) with [`CommandEnd::SpawnFailed`].
    pub fn new<I, S>(argv: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Command {
            argv: argv.into_iter().map(Into::into).collect(),
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        }
    }

    /// How long a run may last (wall clock, from the start of
    /// [`run`](Command::run)) before its process group is killed and it
    /// ends with [`CommandEnd::TimedOut`].
    pub fn timeout(mut self, timeout: Duration) -> Command {
        self.timeout = timeout;
        self
    }

    /// Runs the command to its end, blocking the calling check (see the
    /// type's docs): until it exits, the timeout passes or `ctx` is
    /// cancelled. In every case the whole process group is killed and the
    /// leader reaped before it returns. A run already cancelled starts
    /// nothing.
    pub fn run(&self, ctx: &RunContext<'_>) -> CommandOutput {
        if ctx.is_cancelled() {
            return self.output(CommandEnd::Cancelled);
        }
        let slot = Arc::new(Mutex::new(None));
        let machine = Handed {
            command: self.clone(),
            slot: Arc::clone(&slot),
        };
        let outcome = ctx.hand_over(Arc::new(machine));
        let output = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        output.unwrap_or_else(|| match outcome {
            // Dropped unstarted or unfinished (a shutdown): dropping the run
            // killed the group.
            None if ctx.is_cancelled() => self.output(CommandEnd::Cancelled),
            None => self.output(CommandEnd::WaitFailed(io::Error::other(
                "no worker of the engine could run it (a command in an inline check \
                 needs another worker)",
            ))),
            // The run panicked.
            Some(outcome) => {
                let why = outcome.reason().unwrap_or("no output").to_owned();
                self.output(CommandEnd::WaitFailed(io::Error::other(why)))
            }
        })
    }

    /// An output of a run that started nothing.
    fn output(&self, end: CommandEnd) -> CommandOutput {
        CommandOutput::new(Arc::clone(&self.argv), end, Tail::default(), self.timeout)
    }
}

/// A [`Command`]'s run, handed to a worker: the output goes to `slot`,
/// where [`Command::run`] takes it, instead of being judged.
struct Handed {
    command: Command,
    slot: Arc<Mutex<Option<CommandOutput>>>,
}

impl Machine for Handed {
    fn start(&self, now: Instant) -> Box<dyn Run> {
        let slot = Arc::clone(&self.slot);
        Box::new(ExecRun::new(
            Arc::clone(&self.command.argv),
            self.command.timeout,
            now,
            move |output| {
                *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(output);
                // Nobody reads it: `Command::run` returns the output.
                RunnerOutcome::pass()
            },
        ))
    }
}

/// How a [`Command`] ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum CommandEnd {
    /// The leader ended by itself: with an exit code
    /// ([`ExitStatus::code`]) or killed by a signal
    /// ([`ExitStatusExt::signal`]). Its group was killed after it.
    Exited(ExitStatus),
    /// The timeout passed first; the group was killed.
    TimedOut,
    /// The run was cancelled first (a reset or a shutdown); the group was
    /// killed. The engine discards a cancelled run's outcome.
    Cancelled,
    /// The command could not be started: not found, not executable, not a
    /// valid executable (a script without `#!`), an empty command or a NUL
    /// byte in it.
    SpawnFailed(io::Error),
    /// The leader's exit status could not be read (`ECHILD` when the
    /// embedding program ignores `SIGCHLD`, say); the group was killed.
    WaitFailed(io::Error),
}

/// What a [`Command`] run gives back: how it ended, and the end of what it
/// wrote to stderr.
pub struct CommandOutput {
    argv: Arc<[String]>,
    end: CommandEnd,
    stderr: Tail,
    timeout: Duration,
}

impl CommandOutput {
    pub(super) fn new(
        argv: Arc<[String]>,
        end: CommandEnd,
        stderr: Tail,
        timeout: Duration,
    ) -> CommandOutput {
        CommandOutput {
            argv,
            end,
            stderr,
            timeout,
        }
    }

    /// How the command ended.
    pub fn end(&self) -> &CommandEnd {
        &self.end
    }

    /// The exit code, when the leader exited by itself with one (not when
    /// a signal killed it, nor after a timeout or a cancel).
    pub fn code(&self) -> Option<i32> {
        match &self.end {
            CommandEnd::Exited(status) => status.code(),
            _ => None,
        }
    }

    /// The last bytes the command's group wrote to stderr (at most 1024),
    /// as written.
    pub fn stderr_tail(&self) -> &[u8] {
        &self.stderr.buf
    }

    /// True when stderr held more than [`stderr_tail`](Self::stderr_tail):
    /// its start was dropped.
    pub fn stderr_truncated(&self) -> bool {
        self.stderr.cut
    }

    /// The outcome an `exec` probe with `expectExitCode: expect_exit_code`
    /// gives for this output: a pass when the leader exited with that
    /// code, else a failure with the `exec` kind's reasons, each followed
    /// by `; stderr: <tail>` when stderr had anything:
    /// `exec probe: exit code 3, expected 0`,
    /// `exec probe: killed by signal 9`,
    /// `exec probe: timed out after 10 s (process group killed)`,
    /// `exec probe: spawn /no/such: No such file or directory (os error 2)`,
    /// `exec probe: cancelled`. A reason is cut to fit
    /// [`MAX_REASON_BYTES`](crate::runner::MAX_REASON_BYTES) by dropping
    /// the start of the stderr tail, and then ends in `...[truncated]`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use probewheel::runner::Command;
    /// use probewheel::{RunContext, RunnerOutcome};
    ///
    /// fn run(ctx: &RunContext<'_>) -> RunnerOutcome {
    ///     // `grep -q` exits 1 when nothing matches.
    ///     let output = Command::new(["/bin/grep", "-q", "Linux", "/proc/version"])
    ///         .timeout(Duration::from_millis(500))
    ///         .run(ctx);
    ///     output.outcome(0)
    /// }
    /// # let _ = run;
    /// ```
    pub fn outcome(&self, expect_exit_code: i32) -> RunnerOutcome {
        let head = match &self.end {
            CommandEnd::Cancelled => return RunnerOutcome::fail(CANCELLED),
            CommandEnd::SpawnFailed(e) => {
                let hint = if e.raw_os_error() == Some(libc::ENOEXEC) {
                    " (a file without `#!` is not run through a shell)"
                } else {
                    ""
                };
                match self.argv.first().filter(|p| !p.is_empty()) {
                    Some(program) => format!("{PREFIX}spawn {program}: {e}{hint}"),
                    None => format!("{PREFIX}spawn: {e}"),
                }
            }
            CommandEnd::TimedOut => format!(
                "{PREFIX}timed out after {} (process group killed)",
                seconds(self.timeout)
            ),
            CommandEnd::WaitFailed(e) => format!("{PREFIX}wait: {e}"),
            CommandEnd::Exited(status) => match (status.code(), status.signal()) {
                (Some(code), _) if code == expect_exit_code => return RunnerOutcome::pass(),
                (Some(code), _) => format!("{PREFIX}exit code {code}, expected {expect_exit_code}"),
                (None, Some(sig)) => format!("{PREFIX}killed by signal {sig}"),
                (None, None) => format!("{PREFIX}ended with {status}"),
            },
        };
        match with_stderr(head, &self.stderr) {
            (reason, false) => RunnerOutcome::fail(reason),
            (body, true) => RunnerOutcome::fail_cut(body),
        }
    }
}

impl fmt::Debug for CommandOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandOutput")
            .field("end", &self.end)
            .field("stderr_tail", &String::from_utf8_lossy(&self.stderr.buf))
            .field("stderr_truncated", &self.stderr.cut)
            .finish()
    }
}

/// A timeout as a reason shows it: `10 s`, `1.5 s`, `0.25 s` (whole
/// milliseconds, rounded up).
pub(super) fn seconds(d: Duration) -> String {
    let ms = d.as_nanos().div_ceil(1_000_000);
    let (whole, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        return format!("{whole} s");
    }
    let frac = format!("{frac:03}");
    format!("{whole}.{} s", frac.trim_end_matches('0'))
}

// The stderr tail's bound is the exec kind's; the docs above say 1024.
const _: () = assert!(STDERR_TAIL_BYTES == 1024);
