//! [`Command`]: a custom check runs a command as `exec` probes do, with the
//! exec kind's own [`ExecRun`] handed to a worker while the check waits.

use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::run::ExecRun;
use super::{CANCELLED, Head, PREFIX, STDERR_TAIL_BYTES, Tail, with_stderr};
use crate::decl::DEFAULT_TIMEOUT_SECS;
use crate::runner::machine::{Machine, Run};
use crate::runner::{RunContext, RunnerOutcome};

/// A command that a custom [`Check`](crate::Check) runs with the machinery
/// of the built-in `exec` kind.
///
/// [`Command::run`] blocks the calling check until the command exits, its
/// timeout passes or the run is cancelled. It runs exactly as an `exec`
/// probe's (see [`decl`](crate::decl)): never through a shell, the leader of a
/// process group of its own whose last 1024 bytes of stderr are kept, and
/// the whole group killed with `SIGKILL` at the end, **also after a normal
/// exit** (a descendant that calls `setsid` escapes). With
/// [`Builder::child_subreaper`](crate::Builder::child_subreaper) the killed
/// grandchildren are reaped before `run` returns.
///
/// The wait holds no thread of its own: a worker waits on the leader's pidfd
/// and the stderr pipe. Call it from a [`Placement::Blocking`] check: in an
/// inline one it runs only if another worker takes it, else ends with
/// [`CommandEnd::WaitFailed`]. [`CommandOutput::outcome`] judges an output
/// as an `exec` probe would.
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
    stdout: Option<usize>,
}

impl Command {
    /// The command `argv` (program first), with a timeout of 10 s. An empty
    /// program or a NUL byte fails at [`run`](Command::run) with
    /// [`CommandEnd::SpawnFailed`].
    pub fn new<I, S>(argv: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Command {
            argv: argv.into_iter().map(Into::into).collect(),
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            stdout: None,
        }
    }

    /// How long a run may last before its group is killed
    /// ([`CommandEnd::TimedOut`]).
    pub fn timeout(mut self, timeout: Duration) -> Command {
        self.timeout = timeout;
        self
    }

    /// Keeps the first `max_bytes` of the command's stdout for
    /// [`CommandOutput::stdout`]; the rest is read and dropped. Without it,
    /// stdout is `/dev/null`.
    pub fn keep_stdout(mut self, max_bytes: usize) -> Command {
        self.stdout = Some(max_bytes);
        self
    }

    /// Runs the command to its end (see the type's docs); the group is
    /// killed and the leader reaped before it returns. A cancelled run
    /// starts nothing.
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
            // Dropped by a shutdown, which killed the group.
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
        CommandOutput::new(
            Arc::clone(&self.argv),
            end,
            Head::default(),
            Tail::default(),
            self.timeout,
        )
    }
}

/// A [`Command`]'s run on a worker: its output goes to `slot`, unjudged.
struct Handed {
    command: Command,
    slot: Arc<Mutex<Option<CommandOutput>>>,
}

impl Machine for Handed {
    fn start(&self, now: Instant) -> Box<dyn Run> {
        let slot = Arc::clone(&self.slot);
        let run = ExecRun::new(
            Arc::clone(&self.command.argv),
            self.command.timeout,
            now,
            move |output| {
                *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(output);
                // Nobody reads it: `Command::run` returns the output.
                RunnerOutcome::pass()
            },
        );
        match self.command.stdout {
            Some(limit) => Box::new(run.keep_stdout(limit)),
            None => Box::new(run),
        }
    }
}

/// How a [`Command`] ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum CommandEnd {
    /// The leader ended by itself (an exit code or a signal, see
    /// [`ExitStatusExt::signal`]); its group was killed after it.
    Exited(ExitStatus),
    /// The timeout passed first; the group was killed.
    TimedOut,
    /// The run was cancelled first (a reset or a shutdown); the group was
    /// killed.
    Cancelled,
    /// The command could not be started (not found, not executable, a
    /// script without `#!`, empty, a NUL byte).
    SpawnFailed(io::Error),
    /// The leader's exit status could not be read (`ECHILD` when the
    /// embedding program ignores `SIGCHLD`, say); the group was killed.
    WaitFailed(io::Error),
}

/// What a [`Command`] run gives back: how it ended, the end of what it
/// wrote to stderr, and the start of its stdout when that was kept.
pub struct CommandOutput {
    argv: Arc<[String]>,
    end: CommandEnd,
    stdout: Head,
    stderr: Tail,
    timeout: Duration,
}

impl CommandOutput {
    pub(super) fn new(
        argv: Arc<[String]>,
        end: CommandEnd,
        stdout: Head,
        stderr: Tail,
        timeout: Duration,
    ) -> CommandOutput {
        CommandOutput {
            argv,
            end,
            stdout,
            stderr,
            timeout,
        }
    }

    /// How the command ended.
    pub fn end(&self) -> &CommandEnd {
        &self.end
    }

    /// The exit code, when the leader exited by itself with one.
    pub fn code(&self) -> Option<i32> {
        match &self.end {
            CommandEnd::Exited(status) => status.code(),
            _ => None,
        }
    }

    /// The first bytes the group wrote to stdout, as many as
    /// [`Command::keep_stdout`] asked for; empty when it was not called.
    pub fn stdout(&self) -> &[u8] {
        &self.stdout.buf
    }

    /// True when stdout held more than [`stdout`](Self::stdout).
    pub fn stdout_truncated(&self) -> bool {
        self.stdout.cut
    }

    /// The last bytes (at most 1024) the group wrote to stderr.
    pub fn stderr_tail(&self) -> &[u8] {
        &self.stderr.buf
    }

    /// True when stderr held more than [`stderr_tail`](Self::stderr_tail).
    pub fn stderr_truncated(&self) -> bool {
        self.stderr.cut
    }

    /// The outcome of an `exec` probe with `expectExitCode: expect_exit_code`:
    /// `exec probe: ` then `exit code 3, expected 0`, `killed by signal 9`,
    /// `timed out after 10 s (process group killed)`, `spawn <program>: <error>`
    /// or `cancelled`, then `; stderr: <tail>` (its start cut to fit).
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
        self.fail_with_stderr(head)
    }

    /// The outcome of an `exec` probe with `outputFormat: "nagios"`: the
    /// command is a Nagios plugin. Exit 0 passes, 1 (WARNING) passes only
    /// when `warning_passes`, 2 (CRITICAL), 3 (UNKNOWN), any other code or a
    /// signal fail with the plugin's status text (`exec probe: CRITICAL
    /// (exit 2): <its first line before |>`); the perfdata it printed comes
    /// with the outcome either way. Needs its stdout:
    /// [`Command::keep_stdout`] (the exec kind keeps 8 KiB).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use probewheel::runner::Command;
    /// use probewheel::{RunContext, RunnerOutcome};
    ///
    /// fn run(ctx: &RunContext<'_>) -> RunnerOutcome {
    ///     Command::new(["/usr/lib/nagios/plugins/check_load", "-w", "4", "-c", "8"])
    ///         .keep_stdout(8 * 1024)
    ///         .run(ctx)
    ///         .nagios_outcome(false)
    /// }
    /// # let _ = run;
    /// ```
    pub fn nagios_outcome(&self, warning_passes: bool) -> RunnerOutcome {
        super::nagios::outcome(self, warning_passes)
    }

    /// A failure reading `head`, then `; stderr: <tail>` as
    /// [`outcome`](Self::outcome) appends it: for a kind that runs a command
    /// of its own and words its reasons itself.
    pub(crate) fn fail_with_stderr(&self, head: String) -> RunnerOutcome {
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
            .field("stdout", &String::from_utf8_lossy(&self.stdout.buf))
            .field("stdout_truncated", &self.stdout.cut)
            .field("stderr_tail", &String::from_utf8_lossy(&self.stderr.buf))
            .field("stderr_truncated", &self.stderr.cut)
            .finish()
    }
}

/// A timeout as a reason shows it: `10 s`, `1.5 s` (milliseconds rounded up).
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
