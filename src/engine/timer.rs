//! Sleeping until a deadline with sub-millisecond precision.
//!
//! mio's poll timeout is whole milliseconds (epoll_wait). On Linux the
//! engine arms a `timerfd` (CLOCK_MONOTONIC, the clock `Instant` uses)
//! registered with the poll and waits without a timeout; elsewhere it falls
//! back to the poll timeout, rounded up so it never wakes early.

use std::io;
use std::time::{Duration, Instant};

use mio::{Registry, Token};

/// How the engine thread waits for its next deadline.
pub(crate) enum DeadlineTimer {
    #[cfg(target_os = "linux")]
    TimerFd(linux::TimerFd),
    /// Portable: the poll timeout.
    PollTimeout,
}

impl DeadlineTimer {
    pub(crate) fn new(registry: &Registry, token: Token) -> io::Result<DeadlineTimer> {
        #[cfg(target_os = "linux")]
        {
            let fd = linux::TimerFd::new()?;
            registry.register(
                &mut mio::unix::SourceFd(&fd.raw()),
                token,
                mio::Interest::READABLE,
            )?;
            Ok(DeadlineTimer::TimerFd(fd))
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (registry, token);
            Ok(DeadlineTimer::PollTimeout)
        }
    }

    /// Arms the timer for `deadline` (or disarms it) and returns the timeout
    /// to give `Poll::poll`.
    pub(crate) fn arm(
        &mut self,
        deadline: Option<Instant>,
        now: Instant,
    ) -> io::Result<Option<Duration>> {
        match self {
            #[cfg(target_os = "linux")]
            DeadlineTimer::TimerFd(fd) => {
                fd.set(deadline, now)?;
                Ok(None)
            }
            DeadlineTimer::PollTimeout => Ok(deadline.map(|d| {
                // Round up to whole milliseconds: never wake before the deadline.
                let left = d.saturating_duration_since(now);
                let ms = left.as_nanos().div_ceil(1_000_000);
                Duration::from_millis(ms.min(u64::MAX as u128) as u64)
            })),
        }
    }

    /// A handle through which other threads can bring the wake-up forward
    /// (see [`RemoteTimer`]); `None` for the poll-timeout fallback.
    pub(crate) fn remote(&self) -> io::Result<Option<RemoteTimer>> {
        match self {
            #[cfg(target_os = "linux")]
            DeadlineTimer::TimerFd(fd) => Ok(Some(RemoteTimer(fd.fd.try_clone()?))),
            DeadlineTimer::PollTimeout => Ok(None),
        }
    }

    /// Clears the readiness after the timer fired.
    pub(crate) fn acknowledge(&mut self) {
        #[cfg(target_os = "linux")]
        if let DeadlineTimer::TimerFd(fd) = self {
            fd.drain();
        }
    }
}

/// The engine's timer as seen from a worker: a duplicate of its timer fd,
/// so a worker can make the engine wake a little later instead of now. It
/// owns its descriptor, so it stays valid for a worker that outlives the
/// engine thread.
///
/// Only ever arms the timer *earlier* than the engine's own deadline: the
/// caller wins a compare-and-swap on the published wake-up time first (see
/// `EngineWake::result`), and the engine arms before it publishes.
pub(crate) struct RemoteTimer(#[cfg(target_os = "linux")] std::os::fd::OwnedFd);

impl RemoteTimer {
    /// Makes the timer fire `after` from now.
    pub(crate) fn fire_in(&self, after: Duration) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: linux::timespec(after),
            };
            // SAFETY: `spec` is a valid itimerspec; the old value is not asked for.
            let rc = unsafe {
                libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut())
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = after;
            Err(io::Error::from(io::ErrorKind::Unsupported))
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::time::{Duration, Instant};

    pub(crate) struct TimerFd {
        pub(super) fd: OwnedFd,
        /// The deadline the timer is armed for, if any.
        armed: Option<Instant>,
    }

    /// An expiry `d` from now. Zero would disarm: the smallest expiry
    /// fires at once.
    pub(super) fn timespec(d: Duration) -> libc::timespec {
        libc::timespec {
            tv_sec: d.as_secs().min(i64::MAX as u64 / 2) as libc::time_t,
            tv_nsec: d.subsec_nanos().max(u32::from(d.as_secs() == 0)) as libc::c_long,
        }
    }

    impl TimerFd {
        pub(crate) fn new() -> io::Result<TimerFd> {
            // SAFETY: plain syscall; the result is checked before use.
            let fd = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is a freshly created descriptor that we own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            Ok(TimerFd { fd, armed: None })
        }

        pub(crate) fn raw(&self) -> RawFd {
            self.fd.as_raw_fd()
        }

        /// Arms the timer for `deadline` (relative to `now`), or disarms
        /// it. Most wake-ups (a command, a result) leave the deadline as it
        /// was: then no syscall is made.
        pub(crate) fn set(&mut self, deadline: Option<Instant>, now: Instant) -> io::Result<()> {
            if deadline == self.armed {
                return Ok(());
            }
            let after = deadline.map(|d| d.saturating_duration_since(now));
            let value = match after {
                None if self.armed.is_none() => return Ok(()),
                None => libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                Some(d) => timespec(d),
            };
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: value,
            };
            // SAFETY: `spec` is a valid itimerspec; the old value is not asked for.
            let rc = unsafe { libc::timerfd_settime(self.raw(), 0, &spec, std::ptr::null_mut()) };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            self.armed = deadline;
            Ok(())
        }

        pub(crate) fn drain(&mut self) {
            let mut buf = [0u8; 8];
            // SAFETY: reads at most 8 bytes into a valid 8-byte buffer; a
            // non-blocking fd with nothing to read returns EAGAIN, ignored.
            unsafe {
                libc::read(self.raw(), buf.as_mut_ptr().cast(), buf.len());
            }
            self.armed = None;
        }
    }
}

/// Lowers this thread's timer slack to 1 ns so the kernel does not batch
/// our wake-ups (the default slack is 50 µs). Best effort.
pub(crate) fn tighten_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and affects only
    // the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}
