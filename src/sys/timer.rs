//! A timerfd on CLOCK_MONOTONIC, the clock `Instant` reads.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};

/// A non-blocking, close-on-exec timerfd.
pub(crate) struct TimerFd(OwnedFd);

impl TimerFd {
    pub(crate) fn new() -> io::Result<TimerFd> {
        let flags = TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC;
        Ok(TimerFd(timerfd_create(TimerfdClockId::Monotonic, flags)?))
    }

    /// Another descriptor for the same timer.
    pub(crate) fn try_clone(&self) -> io::Result<TimerFd> {
        Ok(TimerFd(self.0.try_clone()?))
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Makes the timer fire once, `after` from now, or disarms it (`None`).
    pub(crate) fn fire_in(&self, after: Option<Duration>) -> io::Result<()> {
        let spec = Itimerspec {
            it_interval: Timespec::default(),
            it_value: after.map_or_else(Timespec::default, expiry),
        };
        timerfd_settime(self.0.as_fd(), TimerfdTimerFlags::empty(), &spec)?;
        Ok(())
    }

    /// Clears the readiness after the timer fired.
    pub(crate) fn drain(&self) {
        // Nothing to read (EAGAIN) is fine: the readiness is cleared either way.
        let _ = rustix::io::read(&self.0, &mut [0u8; 8]);
    }
}

/// An expiry `d` from now. Zero would disarm: the smallest expiry fires
/// at once.
fn expiry(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64 / 2) as i64,
        tv_nsec: d.subsec_nanos().max(u32::from(d.as_secs() == 0)).into(),
    }
}
