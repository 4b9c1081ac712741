//! Test support: SIGTERM blocked in the calling thread, as the `probewheel`
//! binary blocks it in all its threads.

/// SIGTERM blocked in this thread until dropped (the old mask restored).
pub(crate) struct Blocked {
    old: libc::sigset_t,
}

impl Blocked {
    pub(crate) fn sigterm() -> Self {
        // SAFETY: sigset_t is plain data, initialised by sigemptyset before
        // use; pthread_sigmask changes this thread's mask only.
        unsafe {
            let mut old: libc::sigset_t = std::mem::zeroed();
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            Blocked { old }
        }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `sigterm` in the same thread.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}
