//! The engine's counters, as [`Engine::stats`](super::Engine::stats)
//! returns them.

use serde::{Deserialize, Serialize};

/// A snapshot of the engine's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Stats {
    /// Current generation (0 before the first reset).
    pub generation: u64,
    /// Current rollout.
    pub rollout_id: String,
    /// Probes declared in this generation.
    pub probes: u64,
    /// Timer entries in the wheel.
    pub timers: u64,
    /// Times the engine thread woke from its wait (for a deadline, a
    /// command or a finished run).
    pub wakeups: u64,
    /// Runs handed to the pool.
    pub dispatched: u64,
    /// Results accepted (current generation at the time).
    pub results: u64,
    /// Ticks skipped (run in flight, late wake-up, or the floor).
    pub skipped_ticks: u64,
    /// Results of older generations discarded.
    pub stale_results: u64,
    /// Events accepted by the channel.
    pub events_sent: u64,
    /// Results folded into later ones while the consumer was behind.
    pub coalesced: u64,
    /// Events of an older generation still waiting at a reset, dropped.
    pub dropped_at_reset: u64,
    /// Events discarded because the receiver was dropped.
    pub dropped_no_receiver: u64,
    /// Events waiting for room in the channel now.
    pub backlog: u64,
    /// `seq` of the last event sent.
    pub last_seq: u64,
    /// Results behind the lateness percentiles.
    pub lateness_samples: u64,
    /// Median lateness, µs.
    pub lateness_p50_us: u64,
    /// 90th percentile lateness, µs.
    pub lateness_p90_us: u64,
    /// 99th percentile lateness, µs.
    pub lateness_p99_us: u64,
    /// 99.9th percentile lateness, µs.
    pub lateness_p999_us: u64,
    /// Largest lateness seen, µs.
    pub lateness_max_us: u64,
}
