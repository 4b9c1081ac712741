//! Counting a unit's restarts since the reset from what each run sees.
//!
//! systemd counts automatic restarts in `NRestarts` and gives every start
//! a new `InvocationID`; a manual start (or `reset-failed`) sets
//! `NRestarts` back to 0. Between two runs:
//! - `NRestarts` grew by `d`: `d` restarts, at least 1 if the invocation
//!   changed (a manual restart on top);
//! - `NRestarts` fell to `n`: the counter was flushed, so `n` automatic
//!   restarts, plus 1 if the invocation changed (the manual start that
//!   flushed it);
//! - no `NRestarts` (a unit that is not a service): 1 if the invocation
//!   changed; the last `NRestarts` seen stays the reference.
//!
//! The invocation compared is the last one seen: a unit that was never
//! started (an empty `InvocationID`) and then starts is started, not
//! restarted. What leaves no trace between two runs cannot be seen:
//! several manual restarts between two runs count once.

/// What one run of `systemctl show` said of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Seen<'a> {
    /// `NRestarts`, if the unit has it.
    pub(super) n_restarts: Option<u64>,
    /// `InvocationID`; empty when the unit was never started.
    pub(super) invocation: &'a str,
}

/// What a probe has seen of its unit since the reset.
#[derive(Debug, Default)]
pub(super) struct Restarts {
    /// `NRestarts` at the last run; `None` before the first.
    last_n: Option<Option<u64>>,
    /// The last invocation seen that was not empty.
    last_invocation: String,
    /// Restarts counted since the reset.
    count: u64,
}

impl Restarts {
    /// Takes in one run's view; returns the restarts since the reset.
    pub(super) fn observe(&mut self, seen: Seen<'_>) -> u64 {
        if let Some(last_n) = self.last_n {
            let changed = !seen.invocation.is_empty()
                && !self.last_invocation.is_empty()
                && seen.invocation != self.last_invocation;
            let added = match (last_n, seen.n_restarts) {
                (Some(before), Some(now)) if now >= before => {
                    (now - before).max(u64::from(changed))
                }
                (Some(_), Some(now)) => now + u64::from(changed),
                _ => u64::from(changed),
            };
            self.count = self.count.saturating_add(added);
        }
        // A run that printed no NRestarts forgets no count.
        if seen.n_restarts.is_some() || self.last_n.is_none() {
            self.last_n = Some(seen.n_restarts);
        }
        if !seen.invocation.is_empty() {
            seen.invocation.clone_into(&mut self.last_invocation);
        }
        self.count
    }
}
