//! Deadlines of the runs in flight (`timeoutSecs`), for the scheduler.
//!
//! A min-heap of (deadline, probe, tick). A run that returns in time leaves
//! its entry behind (cheaper than taking it out); `live` tells spent
//! entries, which are dropped from the top before the next deadline is
//! read and swept out once they outnumber the live ones.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Below this many entries the heap is never swept.
const MIN_SWEEP: usize = 64;

#[derive(Debug)]
pub(crate) struct Deadlines {
    heap: BinaryHeap<Reverse<(Instant, u32, u64)>>,
    /// The length at which spent entries are swept out.
    sweep_at: usize,
}

impl Deadlines {
    pub(crate) fn new() -> Self {
        Deadlines {
            heap: BinaryHeap::new(),
            sweep_at: MIN_SWEEP,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.heap.clear();
    }

    /// Watches the run of `probe` for slot `tick`, cut off at `at`.
    /// `live(deadline, probe)` says whether an entry still stands for a
    /// run in flight (here and below).
    pub(crate) fn insert(
        &mut self,
        at: Instant,
        probe: u32,
        tick: u64,
        live: impl Fn(Instant, u32) -> bool,
    ) {
        if self.heap.len() >= self.sweep_at {
            self.heap.retain(|&Reverse((at, probe, _))| live(at, probe));
            // Twice what is left: a sweep is paid for by as many inserts.
            self.sweep_at = (2 * self.heap.len()).max(MIN_SWEEP);
        }
        self.heap.push(Reverse((at, probe, tick)));
    }

    /// The earliest deadline of a run still in flight.
    pub(crate) fn next(&mut self, live: impl Fn(Instant, u32) -> bool) -> Option<Instant> {
        while let Some(&Reverse((at, probe, _))) = self.heap.peek() {
            if live(at, probe) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// The earliest run still in flight whose deadline has come by `now`,
    /// as (deadline, probe, tick); it is no longer watched.
    pub(crate) fn pop_due(
        &mut self,
        now: Instant,
        live: impl Fn(Instant, u32) -> bool,
    ) -> Option<(Instant, u32, u64)> {
        let at = self.next(live)?;
        if at > now {
            return None;
        }
        self.heap.pop().map(|Reverse(entry)| entry)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::Duration;

    use super::*;

    #[test]
    fn spent_entries_never_come_out_and_never_pile_up() {
        #[allow(clippy::disallowed_methods)] // a fixed origin; time moves by arithmetic
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Probe p's run in flight is cut off at `current[p]`, if any.
        let current: RefCell<Vec<Option<Instant>>> = RefCell::new(vec![None; 4]);
        let live = |a: Instant, p: u32| current.borrow()[p as usize] == Some(a);
        let mut d = Deadlines::new();
        // 10,000 runs of probe 0, each returning before its deadline (10 s
        // after its slot, slots 1 ms apart); probe 1 hangs from the start.
        current.borrow_mut()[1] = Some(at(5_000));
        d.insert(at(5_000), 1, 0, live);
        for k in 0..10_000u64 {
            current.borrow_mut()[0] = Some(at(k + 10_000));
            d.insert(at(k + 10_000), 0, k, live);
            current.borrow_mut()[0] = None; // returned
            assert!(d.len() <= 2 * MIN_SWEEP, "{} entries at run {k}", d.len());
        }
        assert_eq!(d.next(live), Some(at(5_000)));
        assert_eq!(d.pop_due(at(4_999), live), None);
        assert_eq!(d.pop_due(at(5_000), live), Some((at(5_000), 1, 0)));
        current.borrow_mut()[1] = None; // cut off
        // Only spent entries are left: no deadline, whatever the time.
        assert_eq!(d.next(live), None);
        assert_eq!(d.pop_due(at(1 << 30), live), None);
        assert_eq!(d.len(), 0);
    }
}
