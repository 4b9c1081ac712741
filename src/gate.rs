//! The rollout gate: the event stream folded into one answer, "may the
//! current rollout proceed?".
//!
//! A [`Gate`] reads [`Event`]s (by reference, so the agent can still log
//! or forward them) and answers for the newest generation it has seen:
//!
//! - [`Verdict::Rejected`]: the declarations file was rejected; there is
//!   no topology, so nothing can pass.
//! - [`Verdict::Unhealthy`]: the latest result of at least one `enforce`
//!   probe is a failure (with the reasons).
//! - [`Verdict::Pending`]: no topology yet, or some `enforce` probe has no
//!   result yet (and none fails).
//! - [`Verdict::Healthy`]: every `enforce` probe's latest result passes
//!   (also when the topology has no `enforce` probe at all).
//!
//! The rules, in one place:
//!
//! - Only `enforce` probes gate. `observe` probes never do, and `disabled`
//!   probes never run (G4), so they are never waited for.
//! - A probe counts with its *latest* result (highest `seq`) of the
//!   generation: a failing probe that passes again stops gating. A
//!   `runOnce` probe has one result per generation, which stands for the
//!   whole generation.
//! - Events of a generation older than the newest one seen are ignored; the
//!   first event of a newer generation forgets everything about the older
//!   one. Within a generation the answer depends only on which events were
//!   seen, not on the order they were read in (results that arrive before
//!   their topology are kept until it comes).
//!
//! `probewheel once` ends when [`Gate::settled`] (every probe that runs has
//! reported, or the file was rejected) and exits 0 iff the verdict is
//! [`Verdict::is_healthy`].
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use probewheel::{Builder, Gate, RunnerOutcome, Verdict, runner::FnRunner};
//!
//! let (engine, events) = Builder::new()
//!     .declarations_json(r#"{"db": {"kind": "noop", "mode": "enforce"}}"#)
//!     .workers(1)
//!     .runner("noop", FnRunner::new(|_| RunnerOutcome::pass()))
//!     .build()?;
//! engine.reset("stable@abc")?;
//! let mut gate = Gate::new();
//! while !gate.settled() {
//!     let event = events.recv_timeout(Duration::from_secs(5)).expect("an event");
//!     gate.update(&event);
//! }
//! assert_eq!(gate.verdict(), Verdict::Healthy);
//! engine.shutdown()?;
//! # Ok::<(), probewheel::EngineError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::clock::Timestamp;
use crate::event::{Event, ProbeResult};
use crate::vocab::{Mode, Status};

/// Folds events into a [`Verdict`] for the newest generation seen.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    /// Newest generation seen; 0 before any event.
    generation: u64,
    rollout_id: Option<Arc<str>>,
    /// `(seq, probe -> mode)` of the generation's topology.
    topology: Option<(u64, BTreeMap<Arc<str>, Mode>)>,
    /// `(seq, path, reason)` of the generation's rejection.
    rejected: Option<(u64, String, String)>,
    /// Latest result per probe in this generation, topology or not.
    latest: BTreeMap<Arc<str>, Latest>,
}

#[derive(Debug, Clone)]
struct Latest {
    seq: u64,
    status: Status,
    reason: Option<String>,
    failing_since: Option<Timestamp>,
    consecutive: u64,
}

/// The gate's answer for the current generation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Not decided yet: waiting for the topology, or for the first result
    /// of some `enforce` probes.
    Pending(Awaiting),
    /// Every `enforce` probe's latest result passes.
    Healthy,
    /// These `enforce` probes fail (latest result), sorted by name.
    Unhealthy(Vec<Failure>),
    /// The declarations file was rejected: no topology, nothing runs.
    #[non_exhaustive]
    Rejected {
        /// The file's path (`<inline>` for declarations given in memory).
        path: String,
        /// Why (the `declarationsRejected` reason).
        reason: String,
    },
}

/// What a [`Verdict::Pending`] waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Awaiting {
    /// The generation's topology (no event of it has been seen, or only
    /// results so far).
    Topology,
    /// The first result of these `enforce` probes, sorted by name.
    Results(Vec<Arc<str>>),
}

/// One failing `enforce` probe.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure {
    /// The probe.
    pub probe_name: Arc<str>,
    /// The latest result's `failureReason` (empty if it had none).
    pub reason: String,
    /// When the current run of failures began.
    pub failing_since: Option<Timestamp>,
    /// Failures in a row.
    pub consecutive: u64,
}

impl Gate {
    /// A gate that has seen nothing: [`Verdict::Pending`] for the topology.
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Takes one event into account. Returns `false` when the event was
    /// ignored because it belongs to an older generation than one already
    /// seen.
    pub fn update(&mut self, event: &Event) -> bool {
        let generation = event.generation();
        if generation < self.generation {
            return false;
        }
        if generation > self.generation {
            *self = Gate {
                generation,
                rollout_id: Some(Arc::clone(&event.header().rollout_id)),
                ..Gate::default()
            };
        }
        let seq = event.seq();
        match event {
            Event::TopologyDeclared(t) => {
                if self.topology.as_ref().is_none_or(|(s, _)| *s < seq) {
                    let probes = t
                        .probes
                        .iter()
                        .map(|p| (Arc::clone(&p.probe_name), p.mode))
                        .collect();
                    self.topology = Some((seq, probes));
                }
            }
            Event::DeclarationsRejected(r) => {
                if self.rejected.as_ref().is_none_or(|(s, _, _)| *s < seq) {
                    self.rejected = Some((seq, r.path.clone(), r.reason.clone()));
                }
            }
            Event::ProbeResult(r) => self.record(r),
            // Lifecycle events announce results; the results decide.
            Event::ProbeObservedFirst(_)
            | Event::ProbeFailureFirst(_)
            | Event::RolloutVerdict(_) => {}
        }
        true
    }

    fn record(&mut self, r: &ProbeResult) {
        let seq = r.header.seq;
        if self.latest.get(&*r.probe_name).is_some_and(|l| l.seq > seq) {
            return;
        }
        self.latest.insert(
            Arc::clone(&r.probe_name),
            Latest {
                seq,
                status: r.status,
                reason: r.failure_reason.clone(),
                failing_since: r.failing_since,
                consecutive: r.consecutive,
            },
        );
    }

    /// The answer for the newest generation seen.
    pub fn verdict(&self) -> Verdict {
        if let Some((_, path, reason)) = &self.rejected {
            return Verdict::Rejected {
                path: path.clone(),
                reason: reason.clone(),
            };
        }
        let Some((_, probes)) = &self.topology else {
            return Verdict::Pending(Awaiting::Topology);
        };
        let mut failing = Vec::new();
        let mut awaiting = Vec::new();
        for (name, _) in probes.iter().filter(|(_, m)| **m == Mode::Enforce) {
            match self.latest.get(name) {
                None => awaiting.push(Arc::clone(name)),
                Some(l) if l.status == Status::Fail => failing.push(Failure {
                    probe_name: Arc::clone(name),
                    reason: l.reason.clone().unwrap_or_default(),
                    failing_since: l.failing_since,
                    consecutive: l.consecutive,
                }),
                Some(_) => {}
            }
        }
        if !failing.is_empty() {
            Verdict::Unhealthy(failing)
        } else if !awaiting.is_empty() {
            Verdict::Pending(Awaiting::Results(awaiting))
        } else {
            Verdict::Healthy
        }
    }

    /// True once nothing more is needed to answer for this generation as
    /// `probewheel once` does: the file was rejected, or the topology is in
    /// and every probe that runs (`enforce` and `observe`) has at least one
    /// result.
    pub fn settled(&self) -> bool {
        if self.rejected.is_some() {
            return true;
        }
        let Some((_, probes)) = &self.topology else {
            return false;
        };
        probes
            .iter()
            .filter(|(_, m)| **m != Mode::Disabled)
            .all(|(name, _)| self.latest.contains_key(name))
    }

    /// The newest generation seen (0 before any event).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The rollout of the newest generation seen.
    pub fn rollout_id(&self) -> Option<&str> {
        self.rollout_id.as_deref()
    }
}

impl Verdict {
    /// True only for [`Verdict::Healthy`]: the rollout may proceed.
    pub fn is_healthy(&self) -> bool {
        matches!(self, Verdict::Healthy)
    }

    /// True for [`Verdict::Pending`]: wait for more events.
    pub fn is_pending(&self) -> bool {
        matches!(self, Verdict::Pending(_))
    }
}

impl fmt::Display for Verdict {
    /// One line: `healthy`, `pending: topology`, `pending: a, b`,
    /// `unhealthy: a: <reason>; b: <reason>`, `rejected: <path>: <reason>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Healthy => f.write_str("healthy"),
            Verdict::Pending(Awaiting::Topology) => f.write_str("pending: topology"),
            Verdict::Pending(Awaiting::Results(names)) => {
                write!(f, "pending: {}", names.join(", "))
            }
            Verdict::Unhealthy(failures) => {
                f.write_str("unhealthy: ")?;
                for (i, x) in failures.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{}: {}", x.probe_name, x.reason)?;
                }
                Ok(())
            }
            Verdict::Rejected { path, reason } => write!(f, "rejected: {path}: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests;
