//! Process calls: this process's attributes (subreaper), and the children
//! of exec runs (a pidfd of the leader, its exit seen without reaping it,
//! the group killed and its re-parented members reaped).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::Access;
use rustix::io::Errno;
pub(crate) use rustix::process::Pid;
use rustix::process::{self, PidfdFlags, Signal, WaitIdOptions, WaitOptions};

/// This process's id.
pub(crate) fn own_pid() -> Pid {
    process::getpid()
}

/// A pidfd of `pid` (readable once it exits); `None` where the kernel has
/// none (before Linux 5.3).
pub(crate) fn pidfd_open(pid: Pid) -> Option<OwnedFd> {
    process::pidfd_open(pid, PidfdFlags::empty()).ok()
}

/// True once the child `pid` has exited, without reaping it (`WNOWAIT`).
/// An error (say `ECHILD`, when the embedding program ignores `SIGCHLD`
/// and the kernel reaps its children) also counts as exited.
pub(crate) fn exited_unreaped(pid: Pid) -> bool {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    loop {
        match process::waitid(process::WaitId::Pid(pid), options) {
            Ok(status) => return status.is_some(),
            Err(Errno::INTR) => {}
            Err(_) => return true,
        }
    }
}

/// Sends `SIGKILL` to the process group `pgid`; a group already gone is
/// no error.
pub(crate) fn kill_group(pgid: Pid) -> io::Result<()> {
    match process::kill_process_group(pgid, Signal::KILL) {
        Ok(()) | Err(Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reaps, without waiting, the members of group `pgid` that are this
/// process's children. True when none is left (`ECHILD`).
pub(crate) fn reap_group(pgid: Pid) -> bool {
    loop {
        match process::waitpgid(pgid, WaitOptions::NOHANG) {
            Ok(Some(_)) => {}         // reaped one; look for more
            Ok(None) => return false, // one is ours and not dead yet
            Err(Errno::INTR) => {}
            Err(_) => return true,
        }
    }
}

/// Makes reads and writes of `fd` return `WouldBlock` instead of waiting.
pub(crate) fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    rustix::io::ioctl_fionbio(fd, true).map_err(io::Error::from)
}

/// Whether this process may execute the file at `path`.
pub(crate) fn executable(path: &Path) -> bool {
    rustix::fs::access(path, Access::EXEC_OK).is_ok()
}

/// Makes this process the subreaper of its descendants
/// (`PR_SET_CHILD_SUBREAPER`): orphans are re-parented to it, not to PID 1.
#[cfg(target_os = "linux")]
pub(crate) fn set_child_subreaper() -> io::Result<()> {
    // `None` would clear the attribute: any non-zero value sets it.
    Ok(process::set_child_subreaper(Some(own_pid()))?)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn set_child_subreaper() -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "child subreapers are Linux-only",
    ))
}
