//! Sleeping until a deadline with sub-millisecond precision: a `timerfd`
//! on Linux (poll timeouts are whole milliseconds), elsewhere the poll
//! timeout rounded up.

use std::io;
use std::time::{Duration, Instant};

use mio::{Registry, Token};

#[cfg(target_os = "linux")]
use crate::sys::timer::TimerFd;

/// How the engine thread waits for its next deadline.
pub(crate) enum DeadlineTimer {
    #[cfg(target_os = "linux")]
    TimerFd {
        fd: TimerFd,
        /// The deadline the timer is armed for, if any: most wake-ups (a
        /// command, a result) leave it as it was, and then cost no syscall.
        armed: Option<Instant>,
    },
    /// Portable: the poll timeout.
    PollTimeout,
}

impl DeadlineTimer {
    pub(crate) fn new(registry: &Registry, token: Token) -> io::Result<DeadlineTimer> {
        #[cfg(target_os = "linux")]
        {
            let fd = TimerFd::new()?;
            registry.register(
                &mut mio::unix::SourceFd(&fd.raw()),
                token,
                mio::Interest::READABLE,
            )?;
            Ok(DeadlineTimer::TimerFd { fd, armed: None })
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
            DeadlineTimer::TimerFd { fd, armed } => {
                if deadline != *armed {
                    fd.fire_in(deadline.map(|d| d.saturating_duration_since(now)))?;
                    *armed = deadline;
                }
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
            DeadlineTimer::TimerFd { fd, .. } => Ok(Some(RemoteTimer(fd.try_clone()?))),
            DeadlineTimer::PollTimeout => Ok(None),
        }
    }

    /// Clears the readiness after the timer fired.
    pub(crate) fn acknowledge(&mut self) {
        #[cfg(target_os = "linux")]
        if let DeadlineTimer::TimerFd { fd, armed } = self {
            fd.drain();
            *armed = None;
        }
    }
}

/// A worker's duplicate of the engine's timer fd, to make the engine wake a
/// little later instead of now. Only ever arms it *earlier* than the
/// engine's own deadline (see `EngineWake::result`).
pub(crate) struct RemoteTimer(#[cfg(target_os = "linux")] TimerFd);

impl RemoteTimer {
    /// Makes the timer fire `after` from now.
    pub(crate) fn fire_in(&self, after: Duration) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        return self.0.fire_in(Some(after));
        #[cfg(not(target_os = "linux"))]
        {
            let _ = after;
            Err(io::Error::from(io::ErrorKind::Unsupported))
        }
    }
}
