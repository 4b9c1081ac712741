//! The scheduling rules (crate docs, "Events" and "Guarantees") as a state machine driven by the
//! caller's clock.
//!
//! The driver contract, in the style of quinn-proto: after every input
//! (`reset`, `handle_finished`) and whenever `poll_timeout` has passed, call
//! `poll_dispatch(now)` until it returns `None` and start each returned run,
//! and call `handle_timeout(now)` (run deadlines, verdict alarms); then
//! call `flush` while the sink has room; then sleep until `poll_timeout()`
//! (or until an input arrives). Nothing here reads a clock, sleeps or does
//! I/O, so every rule is tested in virtual time.
//!
//! Run deadlines (`timeoutSecs`) are kept here too, not by the threads that
//! run the checks: a custom check that hangs holds its own thread (or, if
//! it runs inline, its worker), so only the engine thread is sure to be
//! awake at the deadline, and deciding here, in the order the engine sees
//! things, settles whether a run returned or was cut off without any
//! cross-thread protocol.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::deadlines::Deadlines;
use super::histogram::Histogram;
use super::outbox::{Outbox, OutboxCounters, Sink};
use super::ticks::{micros, ticks_ceil, ticks_floor};
use super::verdict::{Gated, Judge};
use super::wheel::Wheel;
use crate::clock::Timestamp;
use crate::event::{
    DeclarationsRejected, Event, Header, ProbeFailureFirst, ProbeObservedFirst, ProbeResult,
    RolloutVerdict, TopologyDeclared, TopologyEntry,
};
use crate::vocab::{Mode, RunnerOutcome, Status};

/// Scheduling parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    /// G5: the shortest period. A probe's slots are `max(interval, this)`
    /// apart, anchored at its start (G7); no run starts before its slot.
    pub(crate) min_interval: Duration,
    /// Spread the first ticks of a reset evenly over each probe's interval
    /// instead of running every probe at reset time.
    pub(crate) stagger: bool,
    /// Hand runs to the pool up to this long before they are due (the
    /// worker waits for `Dispatch::due`): one wake-up serves the window.
    pub(crate) lead: Duration,
    /// Verdict: how long every enforce probe must stay passing before the
    /// verdict is healthy.
    pub(crate) soak: Duration,
    /// Verdict: unhealthy when no healthy verdict came this long after a
    /// reset.
    pub(crate) deadline: Option<Duration>,
}

impl Config {
    /// The least sleep after a hand-over: four fifths of the lead, so every
    /// run is still handed over a fifth of the lead early.
    fn batch(&self) -> Duration {
        self.lead * 4 / 5
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            min_interval: Duration::from_secs(5),
            stagger: false,
            lead: Duration::ZERO,
            soak: Duration::ZERO,
            deadline: None,
        }
    }
}

/// A wheel entry: which probe, and the generation it was scheduled in (the
/// low 32 bits; the wheel is also cleared on reset, so wrap-around is
/// harmless).
#[derive(Debug, Clone, Copy)]
struct Timer {
    probe: u32,
    generation: u32,
}

/// What the core needs to know of one declared probe, built by the engine
/// at each reset.
#[derive(Debug, Clone)]
pub(crate) struct ProbeSpec {
    pub(crate) name: Arc<str>,
    pub(crate) kind: Arc<str>,
    pub(crate) mode: Mode,
    /// `intervalSeconds` as declared; the core floors it (G5).
    pub(crate) interval: Duration,
    pub(crate) run_once: bool,
    /// The engine's bound on each run (`timeoutSecs`): cut off after it,
    /// `timed out after N s`. `None` for kinds that bound their own runs.
    pub(crate) cut_off_after: Option<Duration>,
    /// Verdict rules: thresholds, startup grace, and the run's timeout
    /// (staleness is counted from it).
    pub(crate) verdict: VerdictSpec,
    /// Slot 0 is due this long after the reset.
    pub(crate) initial_delay: Duration,
}

/// What the verdict rules need of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VerdictSpec {
    pub(crate) failure_threshold: u32,
    pub(crate) success_threshold: u32,
    pub(crate) startup_grace: Duration,
    pub(crate) timeout: Duration,
}

impl Default for VerdictSpec {
    fn default() -> Self {
        VerdictSpec {
            failure_threshold: 1,
            success_threshold: 1,
            startup_grace: Duration::ZERO,
            timeout: Duration::from_secs(10),
        }
    }
}

/// One run, from the core's dispatch to its result, handed back unchanged
/// inside [`Finished`]. `probe` indexes the generation's probes in
/// declaration order, here as in the engine's task table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dispatch {
    pub(crate) probe: u32,
    pub(crate) generation: u64,
    pub(crate) tick: u64,
    /// When the slot was due: lateness is measured from here, and the run
    /// never starts before it (G5).
    pub(crate) due: Instant,
    /// The probe's `ProbeSpec::cut_off_after`: the run is cut off at
    /// [`Dispatch::deadline`].
    pub(crate) timeout: Option<Duration>,
}

impl Dispatch {
    /// The record of this run's end, for [`Scheduler::handle_finished`].
    pub(crate) fn finished(
        self,
        started: Instant,
        finished: Instant,
        outcome: RunnerOutcome,
    ) -> Finished {
        Finished {
            run: self,
            started,
            finished,
            outcome,
            cut_off: false,
        }
    }

    /// When the engine cuts this run off (`timeout` after its slot), if it
    /// bounds it; the run's context reports cancellation from then on.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.timeout.and_then(|t| self.due.checked_add(t))
    }

    /// The outcome of a run cut off at its deadline.
    pub(crate) fn timed_out(&self) -> RunnerOutcome {
        let secs = self.timeout.unwrap_or_default().as_secs();
        RunnerOutcome::fail(format!("timed out after {secs} s"))
    }
}

/// A run that came back from a worker, or that the core cut off.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) run: Dispatch,
    pub(crate) started: Instant,
    pub(crate) finished: Instant,
    pub(crate) outcome: RunnerOutcome,
    /// Made by the core at the run's deadline (`timed out after N s`,
    /// `started` is the slot); the probe stays in flight until the check
    /// returns (G6).
    pub(crate) cut_off: bool,
}

#[derive(Debug)]
struct ProbeState {
    name: Arc<str>,
    kind: Arc<str>,
    mode: Mode,
    /// The period: `intervalSeconds` floored at the minimum interval (G5).
    interval: Duration,
    run_once: bool,
    /// When slot 0 is due; slot k is due at `start + k * interval`.
    start: Instant,
    /// The slot the pending timer stands for.
    next_tick: u64,
    in_flight: bool,
    /// The engine's bound on a run (`ProbeSpec::cut_off_after`).
    timeout: Option<Duration>,
    /// The deadline of the run in flight, until it returns or is cut off.
    deadline: Option<Instant>,
    /// The run in flight was cut off and its result recorded; its check
    /// has not returned yet (G6: the probe's slots are skipped until then).
    cut_off: bool,
    /// Ticks dropped since the last dispatch.
    skipped: u64,
    /// Ticks dropped between the previous run's slot and the one in flight.
    skipped_in_flight: u64,
    last_status: Option<Status>,
    consecutive: u64,
    failing_since: Option<Timestamp>,
    observed: bool,
}

impl ProbeState {
    fn due(&self, tick: u64) -> Instant {
        let nanos = self.interval.as_nanos().saturating_mul(tick as u128);
        let offset = Duration::from_nanos(nanos.min(u64::MAX as u128) as u64);
        self.start.checked_add(offset).unwrap_or(self.start + FAR)
    }

    /// The latest slot due at `now` (0 before the start).
    fn latest_due(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.start).as_nanos();
        (since / self.interval.as_nanos().max(1)).min(u64::MAX as u128) as u64
    }
}

/// A wall-clock step larger than this moves the wall anchor.
pub(crate) const WALL_STEP: Duration = Duration::from_millis(1);

/// A time so far ahead that it never comes (about 30 years).
const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// Counters of the core, for `stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CoreCounters {
    pub(crate) dispatched: u64,
    pub(crate) results: u64,
    pub(crate) skipped_ticks: u64,
    pub(crate) stale_results: u64,
}

pub(crate) struct Scheduler<S> {
    config: Config,
    /// Wheel tick 0; a tick is one microsecond.
    epoch: Instant,
    wheel: Wheel<Timer>,
    /// Deadlines of the runs in flight; not in the wheel, which cannot
    /// drop the entry of a run that returned in time.
    deadlines: Deadlines,
    generation: u64,
    rollout: Arc<str>,
    probes: Vec<ProbeState>,
    outbox: Outbox<S>,
    /// A (monotonic, wall) pair that maps run times to wall times.
    anchor: (Instant, SystemTime),
    counters: CoreCounters,
    lateness: Histogram,
    /// Everything due by `last_poll + lead` has been handed over.
    last_poll: Instant,
    /// The rollout verdict's rules and alarms.
    judge: Judge,
    /// The generation's latest verdict, and whether the driver has taken
    /// it since it changed.
    verdict: Option<Arc<RolloutVerdict>>,
    verdict_taken: bool,
}

impl<S> std::fmt::Debug for Scheduler<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("generation", &self.generation)
            .field("rollout", &self.rollout)
            .field("probes", &self.probes.len())
            .field("timers", &self.wheel.len())
            .finish_non_exhaustive()
    }
}

impl<S: Sink> Scheduler<S> {
    pub(crate) fn new(config: Config, now: Instant, wall: SystemTime, sink: S) -> Self {
        Scheduler {
            config,
            epoch: now,
            wheel: Wheel::new(),
            deadlines: Deadlines::new(),
            generation: 0,
            rollout: Arc::from(""),
            probes: Vec::new(),
            outbox: Outbox::new(sink),
            anchor: (now, wall),
            counters: CoreCounters::default(),
            lateness: Histogram::default(),
            last_poll: now,
            judge: Judge::new(config.soak, config.deadline, now),
            verdict: None,
            verdict_taken: true,
        }
    }

    /// Offers a fresh (monotonic, wall) reading. One anchor keeps
    /// `scheduledAt` of slot k exactly `start + k * interval`; it moves only
    /// on a wall step over [`WALL_STEP`].
    pub(crate) fn anchor_wall(&mut self, now: Instant, wall: SystemTime) {
        let predicted = self.wall(now).system_time();
        let off = match wall.duration_since(predicted) {
            Ok(d) => d,
            Err(e) => e.duration(),
        };
        if off > WALL_STEP {
            self.anchor = (now, wall);
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn rollout(&self) -> &str {
        &self.rollout
    }

    pub(crate) fn probe_count(&self) -> usize {
        self.probes.len()
    }

    pub(crate) fn counters(&self) -> CoreCounters {
        self.counters
    }

    pub(crate) fn outbox_counters(&self) -> OutboxCounters {
        self.outbox.counters()
    }

    pub(crate) fn lateness(&self) -> &Histogram {
        &self.lateness
    }

    pub(crate) fn backlog(&self) -> usize {
        self.outbox.backlog()
    }

    pub(crate) fn sink(&self) -> &S {
        self.outbox.sink()
    }

    #[cfg(test)]
    pub(crate) fn sink_mut(&mut self) -> &mut S {
        self.outbox.sink_mut()
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.outbox.last_seq()
    }

    /// Timer entries in the wheel (one per active probe).
    pub(crate) fn timers(&self) -> usize {
        self.wheel.len()
    }

    /// Starts generation g+1 from `probes` (or the file's rejection): old
    /// timers, waiting events and results in flight are dropped, the
    /// topology is the first event (G1), and tick 0 falls due at `now` (or
    /// its stagger offset). Returns the new generation. `unread`: why the
    /// file could not be read, when `probes` are the previous ones (the
    /// verdict is then unhealthy, naming why).
    pub(crate) fn reset(
        &mut self,
        now: Instant,
        rollout: &str,
        probes: Result<&[ProbeSpec], &str>,
        path: &str,
        unread: Option<&str>,
    ) -> u64 {
        self.generation += 1;
        self.rollout = Arc::from(rollout);
        self.wheel.clear();
        self.deadlines.clear();
        self.probes.clear();
        match probes {
            Ok(probes) => {
                self.outbox.reset(probes.len());
                self.declare(now, probes);
                self.arm_first_ticks();
                let gated = probes
                    .iter()
                    .zip(&self.probes)
                    .map(|(spec, st)| Gated {
                        name: Arc::clone(&spec.name),
                        enforce: spec.mode == Mode::Enforce,
                        run_once: spec.run_once,
                        failure_threshold: spec.verdict.failure_threshold,
                        success_threshold: spec.verdict.success_threshold,
                        start: st.start,
                        startup_grace: spec.verdict.startup_grace,
                        stale_after: st.interval.saturating_mul(2) + spec.verdict.timeout,
                    })
                    .collect();
                self.judge.reset(now, self.generation, Ok(gated));
                if let Some(why) = unread {
                    self.judge.declarations_unread(why);
                }
            }
            Err(reason) => {
                self.outbox.reset(0);
                let event = Event::DeclarationsRejected(DeclarationsRejected {
                    header: self.header(),
                    path: path.to_owned(),
                    reason: reason.to_owned(),
                });
                self.outbox.push_event(None, event);
                self.judge.reset(now, self.generation, Err(reason));
            }
        }
        // G1, G14: the generation's first verdict right after its topology.
        self.emit_verdict(now);
        self.generation
    }

    /// Cuts off runs past their deadline, fires the verdict's alarms due by
    /// `now` and emits the verdict if it changed. Once per turn, after the
    /// finished runs: a burst of results makes one verdict event.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.cut_off_due(now);
        self.judge.handle_timeout(now);
        self.emit_verdict(now);
    }

    /// The generation's latest verdict, once after each change: what the
    /// driver posts for [`Engine::verdict`](crate::Engine::verdict).
    pub(crate) fn take_verdict(&mut self) -> Option<Arc<RolloutVerdict>> {
        if std::mem::replace(&mut self.verdict_taken, true) {
            return None;
        }
        self.verdict.clone()
    }

    fn emit_verdict(&mut self, now: Instant) {
        let anchor = self.anchor;
        let header = self.header();
        let Some(v) = self.judge.poll_verdict(now, header, |t| wall_at(anchor, t)) else {
            return;
        };
        let first = self
            .verdict
            .as_ref()
            .is_none_or(|old| old.header.generation != v.header.generation);
        self.verdict = Some(Arc::new(v.clone()));
        self.verdict_taken = false;
        if first {
            // Right behind the topology, never folded away: a consumer
            // learns the rules' first answer before any result.
            self.outbox.push_event(None, Event::RolloutVerdict(v));
        } else {
            self.outbox.push_verdict(v);
        }
    }

    /// Takes the generation's probes and emits its topology (G1).
    fn declare(&mut self, now: Instant, probes: &[ProbeSpec]) {
        self.probes.reserve_exact(probes.len());
        self.wheel.reserve_exact(probes.len());
        for p in probes {
            self.probes.push(ProbeState {
                name: Arc::clone(&p.name),
                kind: Arc::clone(&p.kind),
                mode: p.mode,
                // G5: the floor is on the period, so lateness never carries over.
                interval: p.interval.max(self.config.min_interval),
                run_once: p.run_once,
                start: now + p.initial_delay,
                next_tick: 0,
                in_flight: false,
                timeout: p.cut_off_after,
                deadline: None,
                cut_off: false,
                skipped: 0,
                skipped_in_flight: 0,
                last_status: None,
                consecutive: 0,
                failing_since: None,
                observed: false,
            });
        }
        let topology = probes
            .iter()
            .map(|p| TopologyEntry {
                probe_name: Arc::clone(&p.name),
                kind: Arc::clone(&p.kind),
                mode: p.mode,
            })
            .collect();
        let event = Event::TopologyDeclared(TopologyDeclared {
            header: self.header(),
            declared_at: self.wall(now),
            probes: topology,
        });
        self.outbox.push_event(None, event);
    }

    /// Puts every active probe's tick 0 in the wheel (G4: a disabled probe
    /// never runs), at its start (the reset plus its initial delay) or at
    /// its stagger offset from there.
    fn arm_first_ticks(&mut self) {
        let active = self
            .probes
            .iter()
            .filter(|p| p.mode != Mode::Disabled)
            .count() as u128;
        let mut i = 0u128;
        for (id, p) in self.probes.iter_mut().enumerate() {
            if p.mode == Mode::Disabled {
                continue;
            }
            if self.config.stagger {
                let offset = p.interval.as_nanos() * i / active;
                p.start += Duration::from_nanos(offset as u64);
                i += 1;
            }
            let timer = Timer {
                probe: id as u32,
                generation: self.generation as u32,
            };
            self.wheel.insert(ticks_ceil(self.epoch, p.start), timer);
        }
    }

    /// The next run to hand to the pool at `now`: one due by
    /// `now + lead`. Call until `None`.
    pub(crate) fn poll_dispatch(&mut self, now: Instant) -> Option<Dispatch> {
        self.last_poll = self.last_poll.max(now);
        let horizon = now + self.config.lead;
        let horizon_ticks = ticks_floor(self.epoch, horizon);
        while let Some((_, timer)) = self.wheel.poll(horizon_ticks) {
            if timer.generation != self.generation as u32 {
                continue; // an entry of an older generation never fires
            }
            let st = &mut self.probes[timer.probe as usize];
            let tick = st.next_tick;
            // G6: one run in flight per probe, so this slot is dropped and
            // the schedule stays anchored.
            if st.in_flight {
                st.skipped += 1;
                self.counters.skipped_ticks += 1;
                st.next_tick += 1;
                self.wheel
                    .insert(ticks_ceil(self.epoch, st.due(st.next_tick)), timer);
                continue;
            }
            // G7: when late, run the latest due slot and skip the others.
            let run_tick = if st.run_once {
                tick
            } else {
                st.latest_due(now).max(tick)
            };
            self.counters.skipped_ticks += run_tick - tick;
            st.skipped_in_flight = std::mem::take(&mut st.skipped) + run_tick - tick;
            st.in_flight = true;
            st.next_tick = run_tick + 1;
            if !st.run_once {
                let next = ticks_ceil(self.epoch, st.due(st.next_tick));
                self.wheel.insert(next, timer);
            }
            self.counters.dispatched += 1;
            // G5: the run starts at its slot, never before; the slot is at
            // least the floor after the previous one whenever that one ran.
            let run = Dispatch {
                probe: timer.probe,
                generation: self.generation,
                tick: run_tick,
                due: st.due(run_tick),
                timeout: st.timeout,
            };
            st.deadline = run.deadline();
            if let Some(at) = st.deadline {
                let probes = &self.probes;
                let live = |at, probe| is_live(probes, at, probe);
                self.deadlines.insert(at, run.probe, run.tick, live);
            }
            return Some(run);
        }
        None
    }

    /// When `poll_dispatch` next has something (`lead` ahead), or `None`
    /// when no probe is scheduled (G12).
    pub(crate) fn poll_timeout(&mut self) -> Option<Instant> {
        let lead = self.config.lead;
        let batch_until = self.last_poll + self.config.batch();
        let dispatch = self.wheel.next_deadline().map(|t| {
            let at = self.epoch + Duration::from_micros(t);
            let ahead = at.checked_sub(lead).unwrap_or(at).max(self.epoch);
            // Not again before the batch window is over.
            ahead.max(batch_until.min(at))
        });
        // Verdict alarms and run deadlines are due at their instant, not
        // ahead of it.
        let probes = &self.probes;
        let cut_off = self.deadlines.next(|at, p| is_live(probes, at, p));
        [dispatch, self.judge.poll_timeout(), cut_off]
            .into_iter()
            .flatten()
            .min()
    }

    /// Records `timed out after N s` for every run past its deadline; the
    /// probe stays in flight until the check returns (G6).
    fn cut_off_due(&mut self, now: Instant) {
        loop {
            let probes = &self.probes;
            let live = |at, p| is_live(probes, at, p);
            let Some((at, probe, tick)) = self.deadlines.pop_due(now, live) else {
                break;
            };
            let st = &mut self.probes[probe as usize];
            st.deadline = None;
            st.cut_off = true;
            let run = Dispatch {
                probe,
                generation: self.generation,
                tick,
                due: st.due(tick),
                timeout: st.timeout,
            };
            let outcome = run.timed_out();
            self.handle_finished(Finished {
                run,
                started: run.due,
                finished: at,
                outcome,
                cut_off: true,
            });
        }
    }

    /// Whether `f` is the late return of a cut-off run: it frees the probe
    /// (G6) and its outcome is discarded.
    fn handle_released(&mut self, f: &Finished) -> bool {
        if f.cut_off {
            return false;
        }
        match self.probes.get_mut(f.run.probe as usize) {
            Some(st) if st.cut_off => {
                debug_assert!(st.in_flight, "a cut-off run is in flight");
                st.cut_off = false;
                st.in_flight = false;
                true
            }
            _ => false,
        }
    }

    /// Takes a finished run: an older generation's (G2) or a cut-off run's
    /// late return is discarded, otherwise its events are emitted in the
    /// order of G3. Returns whether the result was used.
    pub(crate) fn handle_finished(&mut self, f: Finished) -> bool {
        let run = f.run;
        if run.generation != self.generation {
            self.counters.stale_results += 1;
            return false;
        }
        if self.handle_released(&f) {
            return false;
        }
        let header = self.header();
        let observed_at = self.wall(f.started);
        let scheduled_at = self.wall(run.due);
        let Some(st) = self.probes.get_mut(run.probe as usize) else {
            debug_assert!(false, "finished run of unknown probe {}", run.probe);
            return false;
        };
        st.in_flight = f.cut_off; // G6: a cut-off check has not returned
        self.counters.results += 1;
        let lateness_us = micros(f.started.saturating_duration_since(run.due));
        self.lateness.record(lateness_us);
        if !st.observed {
            st.observed = true;
            let event = Event::ProbeObservedFirst(ProbeObservedFirst {
                header: header.clone(),
                probe_name: Arc::clone(&st.name),
                mode: st.mode,
                observed_at,
            });
            self.outbox.push_event(Some(run.probe), event);
        }
        let (status, reason, sub_results, perfdata) = f.outcome.into_parts();
        if st.last_status != Some(status) {
            st.consecutive = 0;
        }
        st.consecutive += 1;
        st.last_status = Some(status);
        match status {
            Status::Pass => st.failing_since = None,
            Status::Fail if st.consecutive == 1 => {
                st.failing_since = Some(observed_at);
                let event = Event::ProbeFailureFirst(ProbeFailureFirst {
                    header: header.clone(),
                    probe_name: Arc::clone(&st.name),
                    mode: st.mode,
                    first_failed_at: observed_at,
                });
                self.outbox.push_event(Some(run.probe), event);
            }
            Status::Fail => {}
        }
        if st.mode == Mode::Enforce {
            self.judge.on_result(
                run.probe,
                f.finished,
                status,
                st.consecutive,
                reason.as_deref(),
                st.failing_since,
            );
        }
        let result = ProbeResult {
            header,
            probe_name: Arc::clone(&st.name),
            kind: Arc::clone(&st.kind),
            mode: st.mode,
            status,
            observed_at,
            failure_reason: reason,
            sub_results,
            perfdata,
            tick: run.tick,
            scheduled_at,
            lateness_us,
            duration_us: micros(f.finished.saturating_duration_since(f.started)),
            skipped_ticks: st.skipped_in_flight,
            coalesced: 0,
            consecutive: st.consecutive,
            failing_since: st.failing_since,
        };
        self.outbox.push_result(run.probe, result);
        true
    }

    /// Sends waiting events while the sink has room; returns how many went.
    pub(crate) fn flush(&mut self) -> usize {
        self.outbox.flush()
    }

    fn header(&self) -> Header {
        Header {
            seq: 0, // assigned when the sink accepts the event
            rollout_id: Arc::clone(&self.rollout),
            generation: self.generation,
        }
    }

    fn wall(&self, at: Instant) -> Timestamp {
        wall_at(self.anchor, at)
    }
}

/// Whether `probe`'s run in flight is the one cut off at `at`.
fn is_live(probes: &[ProbeState], at: Instant, probe: u32) -> bool {
    probes
        .get(probe as usize)
        .is_some_and(|st| st.in_flight && st.deadline == Some(at))
}

/// The wall time of `at`, from a (monotonic, wall) anchor pair.
fn wall_at((mono, wall): (Instant, SystemTime), at: Instant) -> Timestamp {
    let t = if at >= mono {
        wall + (at - mono)
    } else {
        wall - (mono - at)
    };
    Timestamp::from_system_time(t)
}
