//! The rollout verdict of one generation (rules: the README's "The
//! verdict, in short"), driven by the caller's clock.
//!
//! Each probe falls in one class (passing, failing, or awaited with a
//! why); the verdict is a function of the class counts, the soak and the
//! deadline, so a result that changes no class costs a few comparisons and
//! no event. Grace ends, staleness, the soak and the deadline are alarms in
//! a timer wheel of their own, cleared at reset like the schedule's.
//!
//! The driver contract: [`Judge::reset`] at each reset, [`Judge::on_result`]
//! for each result, [`Judge::handle_timeout`] when [`Judge::poll_timeout`]
//! has passed, then [`Judge::poll_verdict`], which returns a verdict when
//! it or its lists changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ticks::{ticks_ceil, ticks_floor};
use super::wheel::Wheel;
use crate::clock::Timestamp;
use crate::event::{AwaitedProbe, Awaiting, FailingProbe, Header, RolloutVerdict, Verdict};
use crate::vocab::Status;

/// Staleness alarms fall on whole seconds (wheel ticks are microseconds),
/// so that many probes' alarms share one wake-up.
const STALE_GRAIN_US: u64 = 1_000_000;

/// At most this many probes are named in a verdict's one-line reason.
const NAMED_IN_REASON: usize = 5;

/// What one probe needs for the rules, given at reset.
#[derive(Debug, Clone)]
pub(crate) struct Gated {
    pub(crate) name: Arc<str>,
    pub(crate) enforce: bool,
    pub(crate) run_once: bool,
    pub(crate) failure_threshold: u32,
    pub(crate) success_threshold: u32,
    /// When its first slot is due.
    pub(crate) start: Instant,
    pub(crate) startup_grace: Duration,
    /// `2 x period + timeout`.
    pub(crate) stale_after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    Unknown,
    Passing,
    Failing,
}

/// Where a probe stands in the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Not an enforce probe.
    Ungated,
    Passing,
    Failing,
    Awaited(Awaiting),
}

#[derive(Debug)]
struct Probe {
    gated: Gated,
    counted: Counted,
    /// Results so far this generation.
    results: u64,
    passed_once: bool,
    grace_until: Instant,
    /// Stale from this instant on unless a result comes.
    stale_at: Instant,
    stale: bool,
    /// A staleness alarm of this probe is in the wheel.
    stale_alarm: bool,
    /// The latest failure: reason, failures in a row, and since when.
    last_failure: Option<(String, u64, Option<Timestamp>)>,
    class: Class,
}

#[derive(Debug, Clone, Copy)]
enum Alarm {
    GraceEnds(u32),
    Stale(u32),
    SoakEnds,
    Deadline,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    alarm: Alarm,
    generation: u32,
}

/// The verdict rules of the current generation.
#[derive(Debug)]
pub(crate) struct Judge {
    soak: Duration,
    deadline: Option<Duration>,
    /// Wheel tick 0 (the scheduler's epoch).
    epoch: Instant,
    wheel: Wheel<Entry>,
    generation: u64,
    reset_at: Instant,
    probes: Vec<Probe>,
    rejected: Option<String>,
    /// Why the file could not be read, when the previous probes run.
    unread: Option<String>,
    enforce: usize,
    passing: usize,
    failing: BTreeSet<u32>,
    awaited: BTreeMap<u32, Awaiting>,
    /// When every enforce probe last became passing (the soak's start).
    all_passing_since: Option<Instant>,
    healthy_reached: bool,
    deadline_missed: bool,
    decided: bool,
    /// The verdict last emitted and since when it holds.
    current: Option<(Verdict, Instant)>,
    dirty: bool,
}

impl Judge {
    pub(crate) fn new(soak: Duration, deadline: Option<Duration>, epoch: Instant) -> Judge {
        Judge {
            soak,
            deadline,
            epoch,
            wheel: Wheel::new(),
            generation: 0,
            reset_at: epoch,
            probes: Vec::new(),
            rejected: None,
            unread: None,
            enforce: 0,
            passing: 0,
            failing: BTreeSet::new(),
            awaited: BTreeMap::new(),
            all_passing_since: None,
            healthy_reached: false,
            deadline_missed: false,
            decided: false,
            current: None,
            dirty: false,
        }
    }

    /// Starts `generation` at `now`: every alarm and state of the older
    /// generation goes. `probes` is `Err(reason)` for a rejected file.
    pub(crate) fn reset(
        &mut self,
        now: Instant,
        generation: u64,
        probes: Result<Vec<Gated>, &str>,
    ) {
        self.generation = generation;
        self.reset_at = now;
        self.wheel.clear();
        self.probes.clear();
        self.failing.clear();
        self.awaited.clear();
        self.enforce = 0;
        self.passing = 0;
        self.all_passing_since = None;
        self.healthy_reached = false;
        self.deadline_missed = false;
        self.decided = false;
        self.current = None;
        self.dirty = true;
        self.unread = None;
        let probes = match probes {
            Ok(p) => p,
            Err(reason) => {
                self.rejected = Some(reason.to_owned());
                return;
            }
        };
        self.rejected = None;
        if let Some(d) = self.deadline {
            self.arm(now + d, Alarm::Deadline);
        }
        self.probes.reserve_exact(probes.len());
        for (i, gated) in probes.into_iter().enumerate() {
            let id = i as u32;
            let grace_until = gated.start + gated.startup_grace;
            let stale_at = gated.start + gated.stale_after;
            let enforce = gated.enforce;
            self.probes.push(Probe {
                gated,
                counted: Counted::Unknown,
                results: 0,
                passed_once: false,
                grace_until,
                stale_at,
                stale: false,
                stale_alarm: enforce,
                last_failure: None,
                class: Class::Ungated,
            });
            if !enforce {
                continue;
            }
            self.enforce += 1;
            self.arm_stale(id, stale_at);
            if grace_until > now {
                self.arm(grace_until, Alarm::GraceEnds(id));
            }
            self.reclassify(id, now);
        }
        self.update_soak(now);
    }

    /// This generation runs the previous one's probes because the file
    /// could not be read: it is unhealthy, naming `why`, whatever they report.
    pub(crate) fn declarations_unread(&mut self, why: &str) {
        self.unread = Some(why.to_owned());
        self.dirty = true;
    }

    /// Counts one result of probe `id`, finished at `now`.
    pub(crate) fn on_result(
        &mut self,
        id: u32,
        now: Instant,
        status: Status,
        consecutive: u64,
        reason: Option<&str>,
        failing_since: Option<Timestamp>,
    ) {
        let Some(p) = self.probes.get_mut(id as usize) else {
            return;
        };
        if !p.gated.enforce {
            return;
        }
        p.results += 1;
        p.stale = false;
        p.stale_at = now + p.gated.stale_after;
        let (success, failure) = if p.gated.run_once {
            (1, 1)
        } else {
            (p.gated.success_threshold, p.gated.failure_threshold)
        };
        match status {
            Status::Pass => {
                if consecutive >= u64::from(success) {
                    p.counted = Counted::Passing;
                    // "Passed once" as counted: `successThreshold` in a row.
                    p.passed_once = true;
                }
            }
            Status::Fail => {
                let reason = reason.unwrap_or("failed without a reason");
                match &mut p.last_failure {
                    Some((r, c, since)) => {
                        if r != reason {
                            r.clear();
                            r.push_str(reason);
                        }
                        *c = consecutive;
                        *since = failing_since;
                    }
                    None => p.last_failure = Some((reason.to_owned(), consecutive, failing_since)),
                }
                if consecutive >= u64::from(failure) {
                    p.counted = Counted::Failing;
                }
            }
        }
        let rearm = !p.stale_alarm && !p.gated.run_once;
        let stale_at = p.stale_at;
        if rearm {
            self.arm_stale(id, stale_at);
        }
        self.reclassify(id, now);
        self.update_soak(now);
    }

    /// When the next alarm is due, if any.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.wheel
            .next_deadline()
            .map(|t| self.epoch + Duration::from_micros(t))
    }

    /// Fires every alarm due by `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let ticks = ticks_floor(self.epoch, now);
        while let Some((_, entry)) = self.wheel.poll(ticks) {
            if entry.generation != self.generation as u32 {
                continue;
            }
            match entry.alarm {
                Alarm::GraceEnds(id) => self.reclassify(id, now),
                Alarm::Stale(id) => self.check_stale(id, now),
                // An alarm of a soak that started over is not this one.
                Alarm::SoakEnds => {
                    if self.soak_end().is_some_and(|end| end <= now) {
                        self.dirty = true;
                    }
                }
                Alarm::Deadline => {
                    if !self.healthy_reached {
                        self.deadline_missed = true;
                        self.dirty = true;
                    }
                }
            }
        }
        self.update_soak(now);
    }

    /// The verdict at `now`, when it or its lists changed since the last
    /// call (and right after a reset).
    pub(crate) fn poll_verdict(
        &mut self,
        now: Instant,
        header: Header,
        wall: impl Fn(Instant) -> Timestamp,
    ) -> Option<RolloutVerdict> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let verdict = self.state(now);
        let since = match self.current {
            Some((v, since)) if v == verdict => since,
            _ => now,
        };
        self.current = Some((verdict, since));
        if matches!(verdict, Verdict::Healthy | Verdict::Unhealthy) {
            self.decided = true;
        }
        if verdict == Verdict::Healthy {
            self.healthy_reached = true;
        }
        let soaking = self.soak_end().filter(|end| *end > now);
        let failing = self.failing_list();
        let awaiting = match soaking {
            Some(_) if self.awaited.is_empty() && failing.is_empty() => self.soak_list(),
            _ => self.awaited_list(),
        };
        let reason = self.reason(verdict, &failing, &awaiting);
        Some(RolloutVerdict {
            header,
            verdict,
            decided: self.decided,
            since: wall(since),
            reason,
            failing,
            awaiting,
            soak_ends_at: soaking.map(&wall),
            deadline_at: self
                .deadline
                .filter(|_| self.rejected.is_none())
                .map(|d| wall(self.reset_at + d)),
        })
    }

    /// The verdict the rules give at `now` (no side effects).
    fn state(&self, now: Instant) -> Verdict {
        if self.rejected.is_some() {
            Verdict::Rejected
        } else if !self.failing.is_empty() || self.deadline_missed || self.unread.is_some() {
            Verdict::Unhealthy
        } else if self.passing == self.enforce
            && (self.enforce == 0 || self.soak_end().is_some_and(|end| end <= now))
        {
            Verdict::Healthy
        } else {
            Verdict::Pending
        }
    }

    fn soak_end(&self) -> Option<Instant> {
        self.all_passing_since.map(|t| t + self.soak)
    }

    /// Starts the soak when every enforce probe passes, stops it when one
    /// does not.
    fn update_soak(&mut self, now: Instant) {
        let all = self.enforce > 0 && self.passing == self.enforce;
        match (all, self.all_passing_since) {
            (true, None) => {
                self.all_passing_since = Some(now);
                self.dirty = true;
                if !self.soak.is_zero() {
                    self.arm(now + self.soak, Alarm::SoakEnds);
                }
            }
            (false, Some(_)) => {
                self.all_passing_since = None;
                self.dirty = true;
            }
            _ => {}
        }
    }

    fn check_stale(&mut self, id: u32, now: Instant) {
        let p = &mut self.probes[id as usize];
        p.stale_alarm = false;
        if p.gated.run_once && p.results > 0 {
            return;
        }
        if now >= p.stale_at {
            p.stale = true;
            self.reclassify(id, now);
        } else {
            let at = p.stale_at;
            self.arm_stale(id, at);
        }
    }

    /// Puts probe `id` in its class at `now` and keeps the counts.
    fn reclassify(&mut self, id: u32, now: Instant) {
        let p = &mut self.probes[id as usize];
        let class = if !p.gated.enforce {
            Class::Ungated
        } else if p.stale || p.counted == Counted::Failing {
            if !p.passed_once && now < p.grace_until {
                Class::Awaited(Awaiting::StartupGrace)
            } else {
                Class::Failing
            }
        } else if p.counted == Counted::Passing {
            Class::Passing
        } else if p.results == 0 {
            Class::Awaited(Awaiting::NoResult)
        } else {
            Class::Awaited(Awaiting::SuccessThreshold)
        };
        let old = std::mem::replace(&mut p.class, class);
        if old == class {
            return;
        }
        self.dirty = true;
        match old {
            Class::Passing => self.passing -= 1,
            Class::Failing => {
                self.failing.remove(&id);
            }
            Class::Awaited(_) => {
                self.awaited.remove(&id);
            }
            Class::Ungated => {}
        }
        match class {
            Class::Passing => self.passing += 1,
            Class::Failing => {
                self.failing.insert(id);
            }
            Class::Awaited(why) => {
                self.awaited.insert(id, why);
            }
            Class::Ungated => {}
        }
    }

    fn arm(&mut self, at: Instant, alarm: Alarm) {
        let entry = Entry {
            alarm,
            generation: self.generation as u32,
        };
        self.wheel.insert(ticks_ceil(self.epoch, at), entry);
    }

    fn arm_stale(&mut self, id: u32, at: Instant) {
        let ticks = ticks_ceil(self.epoch, at).div_ceil(STALE_GRAIN_US) * STALE_GRAIN_US;
        self.probes[id as usize].stale_alarm = true;
        let entry = Entry {
            alarm: Alarm::Stale(id),
            generation: self.generation as u32,
        };
        self.wheel.insert(ticks, entry);
    }

    fn failing_list(&self) -> Vec<FailingProbe> {
        self.failing
            .iter()
            .map(|&id| {
                let p = &self.probes[id as usize];
                let (reason, consecutive, failing_since) = if p.stale {
                    (stale_reason(p.gated.stale_after), 0, None)
                } else {
                    p.last_failure
                        .clone()
                        .unwrap_or_else(|| ("failed".to_owned(), 0, None))
                };
                FailingProbe {
                    probe_name: Arc::clone(&p.gated.name),
                    failure_reason: reason,
                    consecutive,
                    failing_since,
                }
            })
            .collect()
    }

    fn awaited_list(&self) -> Vec<AwaitedProbe> {
        self.awaited
            .iter()
            .map(|(&id, &why)| AwaitedProbe {
                probe_name: Arc::clone(&self.probes[id as usize].gated.name),
                why,
            })
            .collect()
    }

    fn soak_list(&self) -> Vec<AwaitedProbe> {
        self.probes
            .iter()
            .filter(|p| p.class == Class::Passing)
            .map(|p| AwaitedProbe {
                probe_name: Arc::clone(&p.gated.name),
                why: Awaiting::Soak,
            })
            .collect()
    }

    fn reason(
        &self,
        verdict: Verdict,
        failing: &[FailingProbe],
        awaiting: &[AwaitedProbe],
    ) -> String {
        match verdict {
            Verdict::Rejected => format!(
                "declarations rejected: {}",
                self.rejected.as_deref().unwrap_or_default()
            ),
            Verdict::Healthy if self.enforce == 0 => "no enforce probe declared".to_owned(),
            Verdict::Healthy => {
                let mut s = format!("{} enforce {} passing", self.enforce, plural(self.enforce));
                if !self.soak.is_zero() {
                    s.push_str(&format!(", soak of {} done", secs(self.soak)));
                }
                s
            }
            Verdict::Unhealthy if self.unread.is_some() => format!(
                "declarations not read ({}): the previous generation's probes run, \
                 but cannot make this rollout healthy",
                self.unread.as_deref().unwrap_or_default()
            ),
            Verdict::Unhealthy if !failing.is_empty() && !self.deadline_missed => {
                let first = &failing[0];
                let mut s = format!("{}: {}", first.probe_name, first.failure_reason);
                if failing.len() > 1 {
                    s.push_str(&format!(" (and {} more failing)", failing.len() - 1));
                }
                s
            }
            Verdict::Unhealthy => {
                let d = self.deadline.unwrap_or_default();
                let mut s = format!("deadline of {} passed", secs(d));
                if !failing.is_empty() {
                    s.push_str("; failing: ");
                    s.push_str(&names(failing.iter().map(|f| (&*f.probe_name, None))));
                }
                if !awaiting.is_empty() {
                    s.push_str("; awaiting: ");
                    s.push_str(&names(
                        awaiting.iter().map(|a| (&*a.probe_name, Some(a.why))),
                    ));
                }
                s
            }
            Verdict::Pending if !awaiting.is_empty() && awaiting[0].why == Awaiting::Soak => {
                format!(
                    "{} enforce {} passing, soak of {} under way",
                    self.enforce,
                    plural(self.enforce),
                    secs(self.soak)
                )
            }
            _ => format!(
                "awaiting {}",
                names(awaiting.iter().map(|a| (&*a.probe_name, Some(a.why))))
            ),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "probe" } else { "probes" }
}

/// `web (startupGrace), db (noResult) and 3 more`.
fn names<'a>(list: impl ExactSizeIterator<Item = (&'a str, Option<Awaiting>)>) -> String {
    let total = list.len();
    let mut s = String::new();
    for (i, (name, why)) in list.take(NAMED_IN_REASON).enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(name);
        if let Some(why) = why {
            s.push_str(&format!(" ({})", why.as_str()));
        }
    }
    if total > NAMED_IN_REASON {
        s.push_str(&format!(" and {} more", total - NAMED_IN_REASON));
    }
    s
}

/// Whole seconds, or tenths below ten seconds when not whole (tests and
/// small floors use sub-second intervals).
fn secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 || d >= Duration::from_secs(10) {
        format!("{} s", d.as_secs_f64().round())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn stale_reason(after: Duration) -> String {
    format!("stale: no result for {}", secs(after))
}
