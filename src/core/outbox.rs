//! The outgoing side of the core: sequence numbers, and the rules for a
//! consumer that is behind (G9, in the crate docs). Events wait here in
//! FIFO order only while the [`Sink`] is full, and `seq` is assigned when
//! the sink accepts, so it has no gaps. The queue holds at most three
//! entries per probe plus the topology and one verdict.

use std::collections::VecDeque;

use crate::event::{Event, ProbeResult, RolloutVerdict};

/// Where events go. Must not block.
pub(crate) trait Sink {
    /// Accepts the event, or gives it back when full. A sink whose reader is
    /// gone accepts (and drops) everything.
    // The event comes back by value, as with crossbeam's `TrySendError`:
    // boxing it would allocate on every send.
    #[allow(clippy::result_large_err)]
    fn try_send(&mut self, event: Event) -> Result<(), Event>;
}

// Entries exist only while the consumer is behind; boxing the large
// variant would allocate per queued event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Pending {
    /// Topology, rejection, or a lifecycle event of a probe.
    Event(Option<u32>, Event),
    /// The probe's waiting result lives in its slot.
    Result(u32),
    /// The waiting verdict lives in `Outbox::verdict`.
    Verdict,
}

#[derive(Debug, Default)]
struct ProbeSlot {
    /// The result waiting to be sent, if any (its marker is in the queue).
    result: Option<Box<ProbeResult>>,
    /// Enqueue stamp of the result marker.
    result_stamp: u64,
    /// Enqueue stamp of the probe's latest queued lifecycle event.
    lifecycle_stamp: u64,
    /// An unsent `probeFailureFirst` of this probe is in the queue.
    failure_first_queued: bool,
}

/// Counters kept by the outbox.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutboxCounters {
    /// Events accepted by the sink.
    pub(crate) sent: u64,
    /// Results folded into a later one.
    pub(crate) coalesced: u64,
    /// Events of an old generation still waiting when a reset came.
    pub(crate) dropped_at_reset: u64,
}

#[derive(Debug)]
pub(crate) struct Outbox<S> {
    sink: S,
    last_seq: u64,
    stamp: u64,
    queue: VecDeque<Pending>,
    slots: Vec<ProbeSlot>,
    /// The verdict waiting to be sent, if any (its marker is in the queue).
    verdict: Option<Box<RolloutVerdict>>,
    counters: OutboxCounters,
}

impl<S: Sink> Outbox<S> {
    pub(crate) fn new(sink: S) -> Self {
        Outbox {
            sink,
            last_seq: 0,
            stamp: 0,
            queue: VecDeque::new(),
            slots: Vec::new(),
            verdict: None,
            counters: OutboxCounters::default(),
        }
    }

    pub(crate) fn sink(&self) -> &S {
        &self.sink
    }

    #[cfg(test)]
    pub(crate) fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    pub(crate) fn counters(&self) -> OutboxCounters {
        self.counters
    }

    /// The `seq` of the last event the sink accepted.
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Events waiting for room in the sink.
    pub(crate) fn backlog(&self) -> usize {
        self.queue.len()
    }

    /// Starts a new generation with `probes` probes: whatever of the old
    /// generation still waits is dropped (G2) and counted.
    pub(crate) fn reset(&mut self, probes: usize) {
        self.counters.dropped_at_reset += self.queue.len() as u64;
        self.queue.clear();
        self.slots.clear();
        self.verdict = None;
        self.slots.resize_with(probes, ProbeSlot::default);
        self.queue.shrink_to(probes.saturating_mul(3) + 1);
    }

    /// Sends or queues a non-result event (topology, rejection, lifecycle).
    pub(crate) fn push_event(&mut self, probe: Option<u32>, event: Event) {
        if self.queue.is_empty() {
            let Err(event) = self.send(event) else {
                return;
            };
            return self.enqueue_event(probe, event);
        }
        self.enqueue_event(probe, event)
    }

    /// Sends or queues a probe's result, folding it over a waiting one.
    pub(crate) fn push_result(&mut self, probe: u32, result: ProbeResult) {
        if self.queue.is_empty() {
            let Err(event) = self.send(Event::ProbeResult(result)) else {
                return;
            };
            let Event::ProbeResult(result) = event else {
                unreachable!("the sink gives back what it was given")
            };
            return self.enqueue_result(probe, result);
        }
        self.enqueue_result(probe, result)
    }

    /// Sends or queues the generation's verdict. A waiting verdict is
    /// replaced by the newer one, which moves behind everything queued
    /// since: a verdict follows the results it sums up.
    pub(crate) fn push_verdict(&mut self, verdict: RolloutVerdict) {
        if self.queue.is_empty() {
            let Err(event) = self.send(Event::RolloutVerdict(verdict)) else {
                return;
            };
            let Event::RolloutVerdict(verdict) = event else {
                unreachable!("the sink gives back what it was given")
            };
            self.verdict = Some(Box::new(verdict));
            self.queue.push_back(Pending::Verdict);
            return;
        }
        if self.verdict.is_some() {
            if let Some(i) = self
                .queue
                .iter()
                .position(|p| matches!(p, Pending::Verdict))
            {
                self.queue.remove(i);
            }
        }
        self.verdict = Some(Box::new(verdict));
        self.queue.push_back(Pending::Verdict);
    }

    /// Sends what the sink accepts, in order; stops at the first refusal.
    /// Returns how many events were accepted.
    pub(crate) fn flush(&mut self) -> usize {
        let mut sent = 0;
        while let Some(pending) = self.queue.pop_front() {
            let folded_verdict = matches!(pending, Pending::Verdict);
            let (probe, event) = match pending {
                Pending::Event(p, e) => (p, e),
                Pending::Result(p) => match self.slots[p as usize].result.take() {
                    Some(r) => (Some(p), Event::ProbeResult(*r)),
                    None => continue,
                },
                Pending::Verdict => match self.verdict.take() {
                    Some(v) => (None, Event::RolloutVerdict(*v)),
                    None => continue,
                },
            };
            let is_failure_first = matches!(event, Event::ProbeFailureFirst(_));
            match self.send(event) {
                Ok(()) => {
                    sent += 1;
                    if let (Some(p), true) = (probe, is_failure_first) {
                        self.slots[p as usize].failure_first_queued = false;
                    }
                }
                Err(Event::ProbeResult(r)) => {
                    let p = probe.expect("results always name their probe");
                    self.slots[p as usize].result = Some(Box::new(r));
                    self.queue.push_front(Pending::Result(p));
                    break;
                }
                Err(Event::RolloutVerdict(v)) if folded_verdict => {
                    self.verdict = Some(Box::new(v));
                    self.queue.push_front(Pending::Verdict);
                    break;
                }
                Err(e) => {
                    self.queue.push_front(Pending::Event(probe, e));
                    break;
                }
            }
        }
        sent
    }

    #[allow(clippy::result_large_err)] // see `Sink::try_send`
    fn send(&mut self, mut event: Event) -> Result<(), Event> {
        event.header_mut().seq = self.last_seq + 1;
        self.sink.try_send(event)?;
        self.last_seq += 1;
        self.counters.sent += 1;
        Ok(())
    }

    fn enqueue_event(&mut self, probe: Option<u32>, event: Event) {
        self.stamp += 1;
        if let Some(p) = probe {
            let slot = &mut self.slots[p as usize];
            slot.lifecycle_stamp = self.stamp;
            if let Event::ProbeFailureFirst(new) = &event {
                if slot.failure_first_queued {
                    for pending in self.queue.iter_mut() {
                        if let Pending::Event(Some(q), Event::ProbeFailureFirst(old)) = pending {
                            if *q == p {
                                old.first_failed_at = new.first_failed_at;
                            }
                        }
                    }
                    return;
                }
                slot.failure_first_queued = true;
            }
        }
        self.queue.push_back(Pending::Event(probe, event));
    }

    fn enqueue_result(&mut self, probe: u32, mut result: ProbeResult) {
        self.stamp += 1;
        let slot = &mut self.slots[probe as usize];
        let Some(old) = slot.result.take() else {
            slot.result = Some(Box::new(result));
            slot.result_stamp = self.stamp;
            self.queue.push_back(Pending::Result(probe));
            return;
        };
        result.coalesced += old.coalesced + 1;
        result.skipped_ticks += old.skipped_ticks;
        self.counters.coalesced += 1;
        if slot.lifecycle_stamp > slot.result_stamp {
            // A lifecycle event of this probe was queued after the old
            // result: the new result must come after it (G3).
            slot.result_stamp = self.stamp;
            if let Some(i) = self
                .queue
                .iter()
                .position(|p| matches!(p, Pending::Result(q) if *q == probe))
            {
                self.queue.remove(i);
            }
            self.queue.push_back(Pending::Result(probe));
        }
        // The old box is reused: a long stall allocates once per probe.
        let mut boxed = old;
        *boxed = result;
        slot.result = Some(boxed);
    }
}
