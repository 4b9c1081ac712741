//! Attributes of the whole process.

use std::io;

/// Makes this process the subreaper of its descendants
/// (`PR_SET_CHILD_SUBREAPER`): orphans are re-parented to it, not to PID 1.
#[cfg(target_os = "linux")]
pub(crate) fn set_child_subreaper() -> io::Result<()> {
    // `None` would clear the attribute: any non-zero value sets it.
    let me = rustix::process::getpid();
    Ok(rustix::process::set_child_subreaper(Some(me))?)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn set_child_subreaper() -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "child subreapers are Linux-only",
    ))
}
