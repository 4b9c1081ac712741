//! `Instant`s as wheel ticks: microseconds since the core's epoch, the one
//! conversion the schedule's wheel and the verdict's alarm wheel share.

use std::time::{Duration, Instant};

/// Whole microseconds of `d`, saturating.
pub(crate) fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

/// Wheel ticks (µs since `epoch`) of a deadline, rounded up so that a timer
/// never fires before its instant.
pub(crate) fn ticks_ceil(epoch: Instant, at: Instant) -> u64 {
    let d = at.saturating_duration_since(epoch);
    micros(d) + u64::from(d.subsec_nanos() % 1000 != 0)
}

/// Wheel ticks of the current time, rounded down.
pub(crate) fn ticks_floor(epoch: Instant, now: Instant) -> u64 {
    micros(now.saturating_duration_since(epoch))
}
