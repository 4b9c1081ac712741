//! The binary's clock reads: it is a driver, so it may read the clock
//! (clippy.toml allows it here and nowhere else in the binary).

use std::time::{Instant, SystemTime};

/// The monotonic now.
#[allow(clippy::disallowed_methods)]
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// Wall time in microseconds since the Unix epoch, for countdowns.
#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_now_us() -> i64 {
    probewheel::Timestamp::from_system_time(SystemTime::now()).unix_micros()
}
