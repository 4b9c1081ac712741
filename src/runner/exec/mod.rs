//! `exec` probes: run a command in its own process group; pass iff its exit
//! code is `expectExitCode`.
//!
//! Fields (DESIGN §2): `command` (required: an array of strings, the argv,
//! or one string split on ASCII whitespace; never run through a shell),
//! `expectExitCode` (default 0, 0-255) and `timeoutSecs` (default 10,
//! 1-86400, wall clock).
//!
//! A run spawns `argv[0]` (looked up in `PATH` as `std` does) with stdin and
//! stdout on `/dev/null` and stderr on a pipe, as the leader of a new
//! process group. It then waits in `poll(2)` slices of at most
//! [`CANCEL_POLL`] on the stderr pipe and, on Linux, a pidfd of the leader,
//! keeping only the last [`STDERR_TAIL_BYTES`] of stderr. It ends when the
//! leader exits, the timeout passes or the run is cancelled; in every case
//! the whole process group is then killed with `SIGKILL` and the leader is
//! reaped. Even after a normal exit: the leader's exit does not end its
//! children, and a background grandchild left running would pile up at
//! every tick and outlive a shutdown (G10). The probe owns everything it
//! started.
//!
//! Failure reasons (DESIGN §3), each followed by `; stderr: <tail>` when
//! stderr had anything (the start of the tail is dropped, marked `...`, so
//! that its end fits in the 512-byte reason):
//! `exec probe: exit code 3, expected 0`, `exec probe: killed by signal 9`,
//! `exec probe: timed out after 10 s (process group killed)`,
//! `exec probe: spawn /no/such: No such file or directory (os error 2)`,
//! and `exec probe: cancelled` (discarded by the engine).
//!
//! A descendant that leaves the group (`setsid`, `setpgid`) escapes the
//! kill; only a cgroup could contain it.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::decl::{Declaration, FieldError, expected};
use crate::runner::{CANCEL_POLL, Check, MAX_REASON_BYTES, RunContext, Runner, RunnerOutcome};

#[cfg(test)]
mod tests;

/// `timeoutSecs` when absent.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
/// Largest accepted `timeoutSecs` (one day).
pub const MAX_TIMEOUT_SECS: u64 = 86_400;
/// How much of the end of stderr a run keeps for the failure reason.
pub const STDERR_TAIL_BYTES: usize = 1024;

/// Bytes read from stderr per `read(2)`.
const READ_CHUNK: usize = 16 * 1024;
/// Most stderr bytes read between two looks at the clock and the cancel
/// flag, so a flooding child cannot starve them.
const READ_BUDGET: usize = 1024 * 1024;

/// The `exec` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecRunner;

impl Runner for ExecRunner {
    fn prepare(&self, decl: &Declaration) -> Result<Arc<dyn Check>, FieldError> {
        Ok(Arc::new(ExecCheck::from_decl(decl)?))
    }
}

/// A prepared `exec` probe.
#[derive(Debug, Clone)]
struct ExecCheck {
    argv: Vec<String>,
    expect_exit_code: i32,
    timeout_secs: u64,
}

impl ExecCheck {
    fn from_decl(decl: &Declaration) -> Result<ExecCheck, FieldError> {
        let argv = parse_command(decl.get("command"))?;
        let expect_exit_code = decl.i64_in("expectExitCode", 0, 255)?.unwrap_or(0) as i32;
        let timeout_secs = decl
            .u64_in("timeoutSecs", 1, MAX_TIMEOUT_SECS)?
            .unwrap_or(DEFAULT_TIMEOUT_SECS);
        Ok(ExecCheck {
            argv,
            expect_exit_code,
            timeout_secs,
        })
    }

    fn spawn(&self) -> io::Result<Child> {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: the closure runs between fork and exec and makes one
        // async-signal-safe syscall; it allocates nothing.
        unsafe {
            cmd.pre_exec(close_inherited_fds);
        }
        cmd.spawn()
    }

    /// The failure reason for how the run ended, or `None` for a pass.
    fn judge(&self, end: End, tail: &Tail) -> Option<String> {
        let head = match end {
            End::Cancelled => return Some(CANCELLED.to_owned()),
            End::TimedOut => format!(
                "{PREFIX}timed out after {} s (process group killed)",
                self.timeout_secs
            ),
            End::Exited(Err(e)) => format!("{PREFIX}wait: {e}"),
            End::Exited(Ok(status)) => match (status.code(), status.signal()) {
                (Some(code), _) if code == self.expect_exit_code => return None,
                (Some(code), _) => {
                    format!(
                        "{PREFIX}exit code {code}, expected {}",
                        self.expect_exit_code
                    )
                }
                (None, Some(sig)) => format!("{PREFIX}killed by signal {sig}"),
                (None, None) => format!("{PREFIX}ended with {status}"),
            },
        };
        Some(with_stderr(head, tail))
    }
}

const PREFIX: &str = "exec probe: ";
const CANCELLED: &str = "exec probe: cancelled";

impl Check for ExecCheck {
    fn run(&self, ctx: &RunContext<'_>) -> RunnerOutcome {
        if ctx.is_cancelled() {
            return RunnerOutcome::fail(CANCELLED);
        }
        let deadline = ctx.now() + Duration::from_secs(self.timeout_secs);
        let child = match self.spawn() {
            Ok(child) => child,
            Err(e) => {
                return RunnerOutcome::fail(format!("{PREFIX}spawn {}: {e}", self.argv[0]));
            }
        };
        let mut group = ProcessGroup::new(child);
        let mut stderr = group.child.stderr.take().map(StderrTail::new);
        let pidfd = pidfd_open(group.pid);

        let end = loop {
            // Exit is checked before the clock, so a leader that exited in
            // the last slice counts as exited, not timed out.
            if group.leader_exited() {
                break None;
            }
            if ctx.is_cancelled() {
                break Some(End::Cancelled);
            }
            let now = ctx.now();
            if now >= deadline {
                break Some(End::TimedOut);
            }
            let slice = (deadline - now).min(CANCEL_POLL);
            let stderr_fd = stderr.as_ref().filter(|s| s.open).map(|s| s.fd());
            wait(stderr_fd, pidfd.as_ref().map(AsRawFd::as_raw_fd), slice);
            if let Some(s) = stderr.as_mut() {
                s.drain(READ_BUDGET);
            }
        };
        drop(pidfd);
        let status = group.kill_and_reap();
        // Whatever the leader wrote before it exited is still in the pipe;
        // the writers are dead or dying, so this read is bounded and never
        // blocks.
        let tail = match stderr {
            Some(mut s) => {
                s.drain(READ_BUDGET);
                s.tail
            }
            None => Tail::default(),
        };
        let end = end.unwrap_or(End::Exited(status));
        match self.judge(end, &tail) {
            None => RunnerOutcome::pass(),
            Some(reason) => RunnerOutcome::fail(reason),
        }
    }
}

/// How a run ended.
#[derive(Debug)]
enum End {
    /// The leader exited (the status, or why it could not be read).
    Exited(io::Result<ExitStatus>),
    TimedOut,
    Cancelled,
}

/// Marks every descriptor above stderr close-on-exec in the child, so a
/// probe command never inherits the embedding program's files and sockets
/// that lack `O_CLOEXEC`. Best effort: kernels before 5.9 lack
/// `close_range`, and the exec goes ahead all the same.
#[cfg(target_os = "linux")]
fn close_inherited_fds() -> io::Result<()> {
    // SAFETY: close_range only changes descriptor flags of this process.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        );
    }
    Ok(())
}

/// The spawned leader and its process group (pgid = the leader's pid).
///
/// The group is killed with `SIGKILL` at the end of every run, **also after
/// the leader exited normally**: a leader's exit does not end its children.
/// A background grandchild (`daemon &`, a forgotten `sleep`) would outlive
/// the probe, pile up one more at every tick, keep the stderr pipe open, and
/// still be running after a shutdown that promised no child remains (G10).
/// The probe owns everything it started, so it ends all of it.
///
/// The leader's exit is seen with `waitid(WNOWAIT)`, which leaves it a zombie:
/// until it is reaped its pid, and so the group id, cannot be reused, so the
/// group kill can never reach an unrelated process group. Only then is the
/// leader reaped (`wait`). Killed grandchildren are re-parented to PID 1,
/// which reaps them when it gets to it, or, when this process is a child
/// subreaper, to us: then the run reaps them before it returns.
///
/// Dropping a `ProcessGroup` that was not yet killed kills and reaps it, so
/// no path (a panic included) leaves the group running.
#[derive(Debug)]
struct ProcessGroup {
    child: Child,
    pid: libc::pid_t,
    reaped: bool,
}

impl ProcessGroup {
    fn new(child: Child) -> Self {
        let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
        ProcessGroup {
            child,
            pid,
            reaped: false,
        }
    }

    /// True once the leader has exited, without reaping it. An error (say
    /// `ECHILD`, when the embedding program ignores `SIGCHLD` and children
    /// are reaped by the kernel) also counts as exited, so the run does not
    /// wait for its timeout; `wait` then reports the error.
    fn leader_exited(&self) -> bool {
        // SAFETY: siginfo_t is plain old data; all-zero is valid and is
        // what waitid leaves when no child has changed state.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: `info` is valid for writes; the pid is our child's.
            let rc = unsafe {
                libc::waitid(
                    libc::P_PID,
                    self.pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
                )
            };
            if rc == 0 {
                // SAFETY: waitid filled `info` for a child (or left it zero).
                return unsafe { info.si_pid() } != 0;
            }
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return true;
            }
        }
    }

    /// Kills the whole group with `SIGKILL` and reaps the leader.
    fn kill_and_reap(&mut self) -> io::Result<ExitStatus> {
        // SAFETY: plain syscall. The leader is not reaped yet, so the group
        // id is still ours (see the type's docs).
        let rc = unsafe { libc::kill(-self.pid, libc::SIGKILL) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                log::warn!("exec probe: kill process group {}: {e}", self.pid);
            }
        }
        self.reaped = true;
        let status = self.child.wait();
        reap_orphans_of_group(self.pid);
        status
    }
}

/// How long a run waits for killed grandchildren to be re-parented to this
/// process and reaped, when it is a child subreaper.
const ORPHAN_REAP_LIMIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Reaps killed members of group `pgid` that were re-parented to this
/// process. That happens only when the process is a child subreaper
/// (`Builder::child_subreaper`, on in the `probewheel` binary); otherwise
/// they are PID 1's and `waitpid` says `ECHILD` at once. Only this group's
/// members are waited for, never the embedding program's other children.
fn reap_orphans_of_group(pgid: libc::pid_t) {
    let end = crate::clock::mono_now() + ORPHAN_REAP_LIMIT;
    loop {
        let mut status = 0;
        // SAFETY: plain syscall on our own process group id.
        let rc = unsafe { libc::waitpid(-pgid, &mut status, libc::WNOHANG) };
        match rc {
            r if r > 0 => continue, // reaped one; look for more
            0 if crate::clock::mono_now() < end => {
                // A member is still ours but not dead yet (SIGKILL is
                // delivered asynchronously).
                crate::clock::sleep(std::time::Duration::from_millis(1));
            }
            0 => {
                log::warn!("exec probe: group {pgid} not reaped within {ORPHAN_REAP_LIMIT:?}");
                return;
            }
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return, // ECHILD: none of the group is our child
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.kill_and_reap();
        }
    }
}

/// The read end of the child's stderr, non-blocking, and what was kept.
#[derive(Debug)]
struct StderrTail {
    pipe: ChildStderr,
    /// Read buffer, on the heap: worker threads have small stacks.
    buf: Box<[u8]>,
    /// False after end of file or a read error: no longer polled.
    open: bool,
    tail: Tail,
}

impl StderrTail {
    fn new(pipe: ChildStderr) -> Self {
        let open = set_nonblocking(pipe.as_raw_fd()).is_ok();
        StderrTail {
            pipe,
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            open,
            tail: Tail::default(),
        }
    }

    fn fd(&self) -> RawFd {
        self.pipe.as_raw_fd()
    }

    /// Reads what is available now, at most about `budget` bytes; never
    /// blocks.
    fn drain(&mut self, budget: usize) {
        let mut read = 0;
        while self.open && read < budget {
            match self.pipe.read(&mut self.buf) {
                Ok(0) => self.open = false,
                Ok(n) => {
                    self.tail.push(&self.buf[..n]);
                    read += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => self.open = false,
            }
        }
    }
}

/// The last [`STDERR_TAIL_BYTES`] bytes of a stream; memory stays bounded
/// whatever the stream's length.
#[derive(Debug, Default)]
struct Tail {
    buf: Vec<u8>,
    /// Bytes before `buf` were dropped.
    cut: bool,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        if bytes.len() >= STDERR_TAIL_BYTES {
            self.cut |= !self.buf.is_empty() || bytes.len() > STDERR_TAIL_BYTES;
            self.buf.clear();
            self.buf
                .extend_from_slice(&bytes[bytes.len() - STDERR_TAIL_BYTES..]);
            return;
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > STDERR_TAIL_BYTES {
            let excess = self.buf.len() - STDERR_TAIL_BYTES;
            self.buf.drain(..excess);
            self.cut = true;
        }
    }
}

/// Appends `; stderr: <tail>` to `head` when stderr had anything, keeping
/// the whole reason within [`MAX_REASON_BYTES`] by dropping the *start* of
/// the tail: the end of stderr is where the error usually is.
fn with_stderr(mut head: String, tail: &Tail) -> String {
    let mut bytes = &tail.buf[..];
    let mut cut = tail.cut;
    if cut {
        // Do not show the broken remains of a character cut in half.
        let skip = bytes
            .iter()
            .take(3)
            .take_while(|&&b| b & 0xC0 == 0x80)
            .count();
        bytes = &bytes[skip..];
    }
    let text = String::from_utf8_lossy(bytes);
    let mut text = text.trim();
    if text.is_empty() {
        return head;
    }
    const SEP: &str = "; stderr: ";
    const ELLIPSIS: &str = "...";
    let budget = MAX_REASON_BYTES.saturating_sub(head.len() + SEP.len() + ELLIPSIS.len());
    if text.len() > budget {
        let mut start = text.len() - budget;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text = &text[start..];
        cut = true;
    }
    head.push_str(SEP);
    if cut {
        head.push_str(ELLIPSIS);
    }
    head.push_str(text);
    head
}

/// `command`: an array of strings, or one string split on ASCII whitespace.
fn parse_command(value: Option<&Value>) -> Result<Vec<String>, FieldError> {
    const FIELD: &str = "command";
    let argv: Vec<String> = match value {
        None => return Err(FieldError::new(FIELD, "required field is missing")),
        Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(FieldError::new(
                    FIELD,
                    format!(
                        "expected an array of strings, element {i} is {}",
                        other.to_string().chars().take(40).collect::<String>()
                    ),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(expected(FIELD, "an array of strings or a string", other)),
    };
    if argv.is_empty() {
        return Err(FieldError::new(
            FIELD,
            "expected a non-empty command, got an empty one",
        ));
    }
    if argv[0].is_empty() {
        return Err(FieldError::new(FIELD, "the program (element 0) is empty"));
    }
    if let Some(i) = argv.iter().position(|a| a.contains('\0')) {
        return Err(FieldError::new(
            FIELD,
            format!("element {i} contains a NUL byte"),
        ));
    }
    Ok(argv)
}

/// Waits up to `slice` (rounded up to whole milliseconds) for stderr to be
/// readable or closed, or the leader to exit. With neither fd it just
/// sleeps the slice.
fn wait(stderr: Option<RawFd>, pidfd: Option<RawFd>, slice: Duration) {
    let mut fds = [libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    }; 2];
    let mut n = 0;
    for fd in [stderr, pidfd].into_iter().flatten() {
        fds[n].fd = fd;
        n += 1;
    }
    let ms = slice
        .as_nanos()
        .div_ceil(1_000_000)
        .clamp(1, i32::MAX as u128) as libc::c_int;
    // SAFETY: the first `n` entries are valid pollfds for fds owned by the
    // caller and alive for the call. An error (EINTR) just ends the slice
    // early; the caller loops.
    unsafe { libc::poll(fds.as_mut_ptr(), n as libc::nfds_t, ms) };
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A pidfd of `pid` (readable once it exits), so the wait wakes at the
/// leader's exit instead of at the end of a slice. `None` where the kernel
/// has none; the slices bound the delay then.
#[cfg(target_os = "linux")]
fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: plain syscall; the returned fd is close-on-exec.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh fd that nobody else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

#[cfg(not(target_os = "linux"))]
fn pidfd_open(_pid: libc::pid_t) -> Option<OwnedFd> {
    None
}
