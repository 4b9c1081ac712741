//! The calling thread's scheduling: timer slack and CPU affinity.

use std::io;
use std::num::NonZeroU64;

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity, set_current_timer_slack};

/// Lowers the calling thread's timer slack to 1 ns so the kernel does not
/// batch its wake-ups (the default slack is 50 µs). Best effort.
pub(crate) fn tighten_timer_slack() {
    let _ = set_current_timer_slack(NonZeroU64::new(1));
}

/// The CPUs this process may run on, in order.
pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
    let set = sched_getaffinity(None)?;
    Ok((0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect())
}

/// Pins the calling thread to `cpu`.
pub(crate) fn pin_to(cpu: usize) -> io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu);
    Ok(sched_setaffinity(None, &set)?)
}
