//! One run of a command as a [`Run`], for an `exec` probe and a custom
//! check's [`Command`](super::Command) alike (only `finish` differs).
//!
//! ```text
//!  Start ──spawn──> Running ──leader exited / deadline / cancel──> Reaping ──> Done
//!                      │                        (SIGKILL the group)     │
//!                      └ drain the pipes at every call                  └ reap the leader,
//!                                                                         then its orphans
//! ```
//!
//! Reaping never blocks: the leader's death is a pidfd event (timer steps as
//! a fallback), orphans are polled in 1 ms steps up to [`ORPHAN_REAP_LIMIT`].

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Interest;
use mio::unix::SourceFd;

use super::{CANCELLED, CommandEnd, CommandOutput, Head, Keep, Tail, spawn};
use crate::runner::RunnerOutcome;
use crate::runner::machine::{Cx, Run, Step};
use crate::sys::process::{self, Pid};

/// How long the reaping waits, after the kill, for members of the group
/// that were re-parented to this process (G2: within 100 ms of a reset).
pub(super) const ORPHAN_REAP_LIMIT: Duration = Duration::from_millis(100);
/// Timer step while polling for killed orphans.
const ORPHAN_STEP: Duration = Duration::from_millis(1);
/// Longest timer step while waiting for a killed leader to die (a pidfd
/// event normally comes first).
const LEADER_STEP_MAX: Duration = Duration::from_secs(1);
/// The deadline of a run whose timeout does not fit the clock (a century).
const FOREVER: Duration = Duration::from_secs(100 * 365 * 86_400);
/// Without a pidfd (kernels before 5.3) the leader is looked at this often.
const NO_PIDFD_STEP: Duration = Duration::from_millis(10);
/// Bytes read from a pipe per `read(2)`.
const READ_CHUNK: usize = 16 * 1024;
/// Most bytes read from a pipe per call while the leader runs, so a
/// flooding child costs its worker short slices.
const READ_SLICE: usize = 64 * 1024;
/// Most bytes read from a pipe after the group is dead (a pipe's default
/// max).
const READ_FINAL: usize = 1024 * 1024;

/// A run of a command; `finish` turns its [`CommandOutput`] into the outcome.
pub(crate) struct ExecRun<F> {
    argv: Arc<[String]>,
    timeout: Duration,
    deadline: Instant,
    /// How much of stdout to keep; `None`: stdout is `/dev/null`.
    stdout: Option<usize>,
    state: State,
    finish: F,
}

enum State {
    Start,
    Live(Box<Live>),
    Done,
}

/// What a started run holds.
struct Live {
    group: ProcessGroup,
    stderr: Option<Pipe<Tail>>,
    stdout: Option<Pipe<Head>>,
    /// False when the pidfd or the pipe is not watched: timer steps instead.
    watched: bool,
    phase: Phase,
}

enum Phase {
    Running,
    /// The group was killed at `at`; `end` is `None` when the leader had
    /// exited by itself.
    Reaping {
        end: Option<CommandEnd>,
        at: Instant,
        leader: Option<io::Result<ExitStatus>>,
    },
}

impl<F: FnMut(CommandOutput) -> RunnerOutcome> ExecRun<F> {
    /// A run of `argv` started at `now` that may last `timeout`.
    pub(crate) fn new(argv: Arc<[String]>, timeout: Duration, now: Instant, finish: F) -> Self {
        // A timeout too long for the clock is as good as none.
        let deadline = now.checked_add(timeout).unwrap_or_else(|| now + FOREVER);
        ExecRun {
            argv,
            timeout,
            deadline,
            stdout: None,
            state: State::Start,
            finish,
        }
    }

    /// Also keeps the first `limit` bytes of stdout (read to its end, so
    /// the child never blocks on it).
    pub(crate) fn keep_stdout(mut self, limit: usize) -> Self {
        self.stdout = Some(limit);
        self
    }

    /// Ends the run with `end` and what the pipes left.
    fn done(&mut self, end: CommandEnd, stdout: Head, stderr: Tail) -> Step {
        self.state = State::Done;
        let output = CommandOutput::new(Arc::clone(&self.argv), end, stdout, stderr, self.timeout);
        Step::Done((self.finish)(output))
    }

    /// Ends a run that started nothing.
    fn not_started(&mut self, end: CommandEnd) -> Step {
        self.done(end, Head::default(), Tail::default())
    }

    /// Spawns the leader and watches its pidfd and pipes.
    fn start(&mut self, cx: &mut Cx<'_>) -> Result<(), Step> {
        let child = match spawn::spawn(&self.argv, self.stdout.is_some()) {
            Ok(child) => child,
            Err(e) => return Err(self.not_started(CommandEnd::SpawnFailed(e))),
        };
        let mut group = ProcessGroup::new(child);
        let stderr = group
            .child
            .stderr
            .take()
            .map(|p| Pipe::new(p.into(), Tail::default()));
        let stdout = group
            .child
            .stdout
            .take()
            .zip(self.stdout)
            .map(|(p, limit)| Pipe::new(p.into(), Head::new(limit)));
        let mut watched = true;
        match &group.pidfd {
            Some(fd) => {
                watched &= cx
                    .register(&mut SourceFd(&fd.as_raw_fd()), Interest::READABLE)
                    .is_ok()
            }
            None => watched = false,
        }
        let fds = stderr
            .iter()
            .map(Pipe::fd)
            .chain(stdout.iter().map(Pipe::fd));
        for fd in fds {
            watched &= cx.register(&mut SourceFd(&fd), Interest::READABLE).is_ok();
        }
        watched &= stderr.as_ref().is_none_or(|p| p.open) && stdout.as_ref().is_none_or(|p| p.open);
        self.state = State::Live(Box::new(Live {
            group,
            stderr,
            stdout,
            watched,
            phase: Phase::Running,
        }));
        Ok(())
    }

    /// Kills, reaps, and once all is done, judges.
    fn reap(&mut self, cx: &mut Cx<'_>) -> Step {
        let now = cx.now();
        let State::Live(live) = &mut self.state else {
            return Step::Done(RunnerOutcome::fail(CANCELLED));
        };
        let Phase::Reaping { at, leader, .. } = &mut live.phase else {
            unreachable!("reap is called in the reaping phase only");
        };
        let at = *at;
        if leader.is_none() {
            match live.group.try_reap() {
                Some(status) => *leader = Some(status),
                None => {
                    // Dying takes the kernel a moment; the pidfd says when.
                    let step = if live.watched {
                        now.saturating_duration_since(at)
                            .clamp(ORPHAN_STEP, LEADER_STEP_MAX)
                    } else {
                        ORPHAN_STEP
                    };
                    let mut until = now + step;
                    if now < at + ORPHAN_REAP_LIMIT {
                        // Looked at again within the G2 bound, event or not.
                        until = until.min(at + ORPHAN_REAP_LIMIT);
                    }
                    return Step::Wait(until);
                }
            }
        }
        if !process::reap_group(live.group.pid) {
            if now < at + ORPHAN_REAP_LIMIT {
                return Step::Wait((now + ORPHAN_STEP).min(at + ORPHAN_REAP_LIMIT));
            }
            log::warn!(
                "exec probe: group {} not reaped within {ORPHAN_REAP_LIMIT:?}",
                live.group.pid.as_raw_pid()
            );
        }
        // The group is dead: reading what is left never blocks.
        let State::Live(mut live) = std::mem::replace(&mut self.state, State::Done) else {
            unreachable!()
        };
        let tail = live.stderr.take().map(|p| p.finish(cx)).unwrap_or_default();
        let head = live.stdout.take().map(|p| p.finish(cx)).unwrap_or_default();
        if let Some(fd) = &live.group.pidfd {
            let _ = cx.deregister(&mut SourceFd(&fd.as_raw_fd()));
        }
        let Phase::Reaping { end, leader, .. } = live.phase else {
            unreachable!()
        };
        let end = end.unwrap_or_else(|| match leader.expect("reaped above") {
            Ok(status) => CommandEnd::Exited(status),
            Err(e) => CommandEnd::WaitFailed(e),
        });
        self.done(end, head, tail)
    }
}

impl Live {
    /// Kills the group and moves to reaping.
    fn end(&mut self, end: Option<CommandEnd>, now: Instant) {
        self.group.kill();
        self.phase = Phase::Reaping {
            end,
            at: now,
            leader: None,
        };
    }
}

impl<F: FnMut(CommandOutput) -> RunnerOutcome> Run for ExecRun<F> {
    fn advance(&mut self, cx: &mut Cx<'_>) -> Step {
        let now = cx.now();
        if let State::Start = self.state {
            if let Err(done) = self.start(cx) {
                return done;
            }
        }
        let deadline = self.deadline;
        let State::Live(live) = &mut self.state else {
            // Called after it ended: harmless.
            return Step::Done(RunnerOutcome::fail(CANCELLED));
        };
        if let Phase::Running = live.phase {
            let buf = cx.scratch(READ_CHUNK);
            let mut more = live
                .stderr
                .as_mut()
                .is_some_and(|p| p.drain(buf, READ_SLICE));
            more |= live
                .stdout
                .as_mut()
                .is_some_and(|p| p.drain(buf, READ_SLICE));
            // Exit is looked at before the clock, so a leader that exited
            // since the last call counts as exited, not timed out.
            if process::exited_unreaped(live.group.pid) {
                live.end(None, now);
            } else if now >= deadline {
                live.end(Some(CommandEnd::TimedOut), now);
            } else if more {
                return Step::Wait(now);
            } else if live.watched {
                return Step::Wait(deadline);
            } else {
                return Step::Wait(deadline.min(now + NO_PIDFD_STEP));
            }
        }
        self.reap(cx)
    }

    fn cancel(&mut self, cx: &mut Cx<'_>) -> Step {
        let now = cx.now();
        match &mut self.state {
            State::Start => self.not_started(CommandEnd::Cancelled),
            // Called after it ended: harmless, and `finish` is not called twice.
            State::Done => Step::Done(RunnerOutcome::fail(CANCELLED)),
            State::Live(live) => {
                match &mut live.phase {
                    Phase::Running => live.end(Some(CommandEnd::Cancelled), now),
                    Phase::Reaping { end, .. } => *end = Some(CommandEnd::Cancelled),
                }
                self.reap(cx)
            }
        }
    }
}

/// The spawned leader and its process group (pgid = the leader's pid),
/// killed at the end of every run (G10). The leader's exit is seen with
/// `waitid(WNOWAIT)`, so until it is reaped the group id cannot be reused and
/// the kill never reaches another group. A drop kills without waiting: a
/// leader not dead yet stays a zombie, so drive a run to `Step::Done`.
struct ProcessGroup {
    child: Child,
    pid: Pid,
    /// Readable once the leader exits; `None` where the kernel has none.
    pidfd: Option<OwnedFd>,
    killed: bool,
    reaped: bool,
}

impl ProcessGroup {
    fn new(child: Child) -> Self {
        let pid = Pid::from_child(&child);
        ProcessGroup {
            child,
            pid,
            pidfd: process::pidfd_open(pid),
            killed: false,
            reaped: false,
        }
    }

    /// Sends `SIGKILL` to the whole group.
    fn kill(&mut self) {
        if self.killed {
            return;
        }
        self.killed = true;
        // The leader is not reaped yet, so the group id is still ours.
        if let Err(e) = process::kill_group(self.pid) {
            log::warn!(
                "exec probe: kill process group {}: {e}",
                self.pid.as_raw_pid()
            );
        }
    }

    /// Reaps the leader if it is dead (`None` while it is dying).
    fn try_reap(&mut self) -> Option<io::Result<ExitStatus>> {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.reaped = true;
                Some(Ok(status))
            }
            Ok(None) => None,
            Err(e) => {
                self.reaped = true;
                Some(Err(e))
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            if self.try_reap().is_none() {
                log::warn!(
                    "exec probe: run dropped before its leader {} was reaped",
                    self.pid.as_raw_pid()
                );
            }
        }
    }
}

/// The read end of one of the child's pipes, non-blocking, and what was
/// kept of it.
struct Pipe<K> {
    file: File,
    /// False after end of file or a read error: nothing more to read.
    open: bool,
    kept: K,
}

impl<K: Keep> Pipe<K> {
    fn new(fd: OwnedFd, kept: K) -> Self {
        let file = File::from(fd);
        let open = process::set_nonblocking(&file).is_ok();
        Pipe { file, open, kept }
    }

    fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Reads what is available through the worker's `buf`, about `budget`
    /// bytes at most; true if it stopped at the budget.
    fn drain(&mut self, buf: &mut [u8], budget: usize) -> bool {
        let mut read = 0;
        while self.open {
            if read >= budget {
                return true;
            }
            match self.file.read(buf) {
                Ok(0) => self.open = false,
                Ok(n) => {
                    self.kept.push(&buf[..n]);
                    read += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => self.open = false,
            }
        }
        false
    }

    /// Reads what is left once the group is dead (never blocks), stops
    /// watching, and gives back what was kept.
    fn finish(mut self, cx: &mut Cx<'_>) -> K {
        self.drain(cx.scratch(READ_CHUNK), READ_FINAL);
        let _ = cx.deregister(&mut SourceFd(&self.fd()));
        self.kept
    }
}
