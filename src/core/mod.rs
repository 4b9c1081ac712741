//! The scheduling core: the timer wheel, per-probe state and every event
//! rule, driven by a `now` the caller passes in. No I/O, no clock reads, no
//! sleeping: the engine thread is a thin driver around [`Scheduler`].

mod deadlines;
pub(crate) mod histogram;
pub(crate) mod outbox;
pub(crate) mod scheduler;
pub(crate) mod ticks;
pub(crate) mod verdict;
pub(crate) mod wheel;

#[cfg(test)]
mod tests;

pub(crate) use self::outbox::Sink;
pub(crate) use self::scheduler::{Config, Dispatch, Finished, ProbeSpec, Scheduler, VerdictSpec};
