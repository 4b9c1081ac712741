//! The events the engine sends (crate docs, "Events") and their JSON form.
//!
//! Strings shared by many events (probe names, kinds, the rollout id) are
//! `Arc<str>`, so building a result event allocates nothing for a pass.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::vocab::{Mode, Perfdata, Status, SubResult};

/// One engine event. Serialises to one JSON object with an `event` tag.
///
/// # Examples
///
/// ```
/// # #[allow(dead_code)]
/// # fn show(event: &probewheel::Event) {
/// match event {
///     probewheel::Event::ProbeResult(r) => {
///         println!("{} {:?} late by {} us", r.probe_name, r.status, r.lateness_us)
///     }
///     other => println!("{}", serde_json::to_string(other).unwrap()),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
#[non_exhaustive]
pub enum Event {
    /// The probes of a generation; first event of every generation that
    /// read its declarations (G1).
    TopologyDeclared(TopologyDeclared),
    /// The file could not be used at all; no topology this generation.
    DeclarationsRejected(DeclarationsRejected),
    /// A probe's first run of the generation started (sent before its first
    /// result).
    ProbeObservedFirst(ProbeObservedFirst),
    /// A probe went into `fail` (sent before that result).
    ProbeFailureFirst(ProbeFailureFirst),
    /// The outcome of one run.
    ProbeResult(ProbeResult),
    /// The rollout verdict of the generation: sent after the topology (or
    /// the rejection) and again whenever the verdict, or the set of probes
    /// that fail or hold it pending (and why), changes.
    RolloutVerdict(RolloutVerdict),
}

/// Fields every event carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Header {
    /// Engine-wide, strictly increasing, starting at 1, without gaps.
    pub seq: u64,
    /// The rollout the engine was reset to.
    pub rollout_id: Arc<str>,
    /// Increases by one on every reset, starting at 1.
    pub generation: u64,
}

/// See [`Event::TopologyDeclared`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TopologyDeclared {
    /// seq, rolloutId, generation.
    #[serde(flatten)]
    pub header: Header,
    /// When the reset read the declarations.
    pub declared_at: Timestamp,
    /// Every declared probe, sorted by name (G11).
    pub probes: Vec<TopologyEntry>,
}

/// One probe of a topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TopologyEntry {
    /// The probe's name.
    pub probe_name: Arc<str>,
    /// Its kind as written.
    pub kind: Arc<str>,
    /// Its mode (unknown modes are `enforce`).
    pub mode: Mode,
}

/// See [`Event::DeclarationsRejected`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DeclarationsRejected {
    /// seq, rolloutId, generation.
    #[serde(flatten)]
    pub header: Header,
    /// The file's path (`<inline>` for declarations given in memory).
    pub path: String,
    /// Why (syntax errors start `line L column C:`).
    pub reason: String,
}

/// See [`Event::ProbeObservedFirst`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ProbeObservedFirst {
    /// seq, rolloutId, generation.
    #[serde(flatten)]
    pub header: Header,
    /// The probe.
    pub probe_name: Arc<str>,
    /// Its mode.
    pub mode: Mode,
    /// When its first run started.
    pub observed_at: Timestamp,
}

/// See [`Event::ProbeFailureFirst`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ProbeFailureFirst {
    /// seq, rolloutId, generation.
    #[serde(flatten)]
    pub header: Header,
    /// The probe.
    pub probe_name: Arc<str>,
    /// Its mode.
    pub mode: Mode,
    /// When the failing run started.
    pub first_failed_at: Timestamp,
}

/// See [`Event::ProbeResult`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ProbeResult {
    /// seq, rolloutId, generation.
    #[serde(flatten)]
    pub header: Header,
    /// The probe.
    pub probe_name: Arc<str>,
    /// Its kind.
    pub kind: Arc<str>,
    /// Its mode.
    pub mode: Mode,
    /// Pass or fail.
    pub status: Status,
    /// Wall time the run started.
    pub observed_at: Timestamp,
    /// Why it failed (null for a pass); at most 512 bytes plus a marker.
    pub failure_reason: Option<String>,
    /// Evidence rows, null for other kinds.
    pub sub_results: Option<Vec<SubResult>>,
    /// Performance values of the run (an `exec` probe with
    /// `outputFormat: "nagios"`); absent from the JSON when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub perfdata: Vec<Perfdata>,
    /// Index of the schedule slot the run belongs to.
    pub tick: u64,
    /// When that slot was due.
    pub scheduled_at: Timestamp,
    /// How late the run started, in microseconds.
    pub lateness_us: u64,
    /// How long it took, in microseconds.
    pub duration_us: u64,
    /// Ticks dropped since the previous result of this probe.
    pub skipped_ticks: u64,
    /// Results of this probe folded into this one while the consumer was
    /// behind.
    pub coalesced: u64,
    /// Results in a row with this status.
    pub consecutive: u64,
    /// `observedAt` of the first failure of the current run of failures;
    /// absent when passing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<Timestamp>,
}

/// The state of a rollout verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Verdict {
    /// Not decided: some enforce probe has no result yet, is in its
    /// startup grace, has not reached its `successThreshold`, or the soak
    /// is not over.
    Pending,
    /// Every enforce probe passes and has for the whole soak.
    Healthy,
    /// An enforce probe fails outside its startup grace, or the deadline
    /// passed without a healthy verdict.
    Unhealthy,
    /// The declarations file was rejected: no probe runs.
    Rejected,
}

impl Verdict {
    /// The name as written in events (`"pending"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pending => "pending",
            Verdict::Healthy => "healthy",
            Verdict::Unhealthy => "unhealthy",
            Verdict::Rejected => "rejected",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// See [`Event::RolloutVerdict`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RolloutVerdict {
    /// seq, rolloutId, generation.
    #[serde(flatten)]
    pub header: Header,
    /// pending, healthy, unhealthy or rejected.
    pub verdict: Verdict,
    /// True from the generation's first healthy or unhealthy verdict on.
    pub decided: bool,
    /// When this verdict (its state, not its lists) began.
    pub since: Timestamp,
    /// One line a person can read.
    pub reason: String,
    /// Enforce probes that count as failing, sorted by name.
    pub failing: Vec<FailingProbe>,
    /// Enforce probes that hold the verdict pending, sorted by name.
    pub awaiting: Vec<AwaitedProbe>,
    /// When the soak under way ends (absent when none is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak_ends_at: Option<Timestamp>,
    /// When the generation's deadline falls (absent without a deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_at: Option<Timestamp>,
}

impl RolloutVerdict {
    /// Healthy or unhealthy, or a rejected file: an answer that a gate
    /// waiting for the rollout can act on.
    pub fn is_final(&self) -> bool {
        self.decided || self.verdict == Verdict::Rejected
    }
}

/// An enforce probe that counts as failing in a [`RolloutVerdict`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct FailingProbe {
    /// The probe.
    pub probe_name: Arc<str>,
    /// Its latest failure reason (or `stale: no result for N s`).
    pub failure_reason: String,
    /// Failed runs in a row when it last failed.
    pub consecutive: u64,
    /// `observedAt` of the first failure of that run of failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<Timestamp>,
}

/// An enforce probe that holds a [`RolloutVerdict`] pending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AwaitedProbe {
    /// The probe.
    pub probe_name: Arc<str>,
    /// What it waits for.
    pub why: Awaiting,
}

/// Why an enforce probe holds the verdict pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Awaiting {
    /// It has no result yet.
    NoResult,
    /// It fails, but is in its startup grace (it has not passed yet and
    /// `startupGraceSeconds` has not gone by).
    StartupGrace,
    /// It has results, but not yet `successThreshold` passes in a row.
    SuccessThreshold,
    /// It passes; the soak is not over.
    Soak,
}

impl Awaiting {
    /// The name as written in events (`"noResult"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Awaiting::NoResult => "noResult",
            Awaiting::StartupGrace => "startupGrace",
            Awaiting::SuccessThreshold => "successThreshold",
            Awaiting::Soak => "soak",
        }
    }
}

impl Event {
    /// The common fields.
    pub fn header(&self) -> &Header {
        match self {
            Event::TopologyDeclared(e) => &e.header,
            Event::DeclarationsRejected(e) => &e.header,
            Event::ProbeObservedFirst(e) => &e.header,
            Event::ProbeFailureFirst(e) => &e.header,
            Event::ProbeResult(e) => &e.header,
            Event::RolloutVerdict(e) => &e.header,
        }
    }

    pub(crate) fn header_mut(&mut self) -> &mut Header {
        match self {
            Event::TopologyDeclared(e) => &mut e.header,
            Event::DeclarationsRejected(e) => &mut e.header,
            Event::ProbeObservedFirst(e) => &mut e.header,
            Event::ProbeFailureFirst(e) => &mut e.header,
            Event::ProbeResult(e) => &mut e.header,
            Event::RolloutVerdict(e) => &mut e.header,
        }
    }

    /// `seq`.
    pub fn seq(&self) -> u64 {
        self.header().seq
    }

    /// `generation`.
    pub fn generation(&self) -> u64 {
        self.header().generation
    }

    /// `rolloutId`.
    pub fn rollout_id(&self) -> &str {
        &self.header().rollout_id
    }

    /// The probe a per-probe event is about.
    pub fn probe_name(&self) -> Option<&str> {
        match self {
            Event::ProbeObservedFirst(e) => Some(&e.probe_name),
            Event::ProbeFailureFirst(e) => Some(&e.probe_name),
            Event::ProbeResult(e) => Some(&e.probe_name),
            Event::TopologyDeclared(_)
            | Event::DeclarationsRejected(_)
            | Event::RolloutVerdict(_) => None,
        }
    }

    /// The `event` tag as written in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Event::TopologyDeclared(_) => "topologyDeclared",
            Event::DeclarationsRejected(_) => "declarationsRejected",
            Event::ProbeObservedFirst(_) => "probeObservedFirst",
            Event::ProbeFailureFirst(_) => "probeFailureFirst",
            Event::ProbeResult(_) => "probeResult",
            Event::RolloutVerdict(_) => "rolloutVerdict",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(seq: u64) -> Header {
        Header {
            seq,
            rollout_id: Arc::from("stable@abc"),
            generation: 1,
        }
    }

    #[test]
    fn topology_serialises_as_in_the_design() {
        let e = Event::TopologyDeclared(TopologyDeclared {
            header: header(1),
            declared_at: Timestamp::from_unix_micros(1_795_788_942_123_456),
            probes: vec![TopologyEntry {
                probe_name: Arc::from("ssh"),
                kind: Arc::from("tcp"),
                mode: Mode::Observe,
            }],
        });
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"event":"topologyDeclared","seq":1,"rolloutId":"stable@abc","generation":1,"declaredAt":"2026-11-27T14:15:42.123456Z","probes":[{"probeName":"ssh","kind":"tcp","mode":"observe"}]}"#
        );
    }

    #[test]
    fn result_serialises_every_field_and_round_trips() {
        let t = Timestamp::from_unix_micros(1_795_788_942_000_000);
        let e = Event::ProbeResult(ProbeResult {
            header: header(4),
            probe_name: Arc::from("ssh"),
            kind: Arc::from("tcp"),
            mode: Mode::Observe,
            status: Status::Fail,
            observed_at: t,
            failure_reason: Some("tcp probe: refused".into()),
            sub_results: None,
            perfdata: Vec::new(),
            tick: 0,
            scheduled_at: t,
            lateness_us: 57,
            duration_us: 312,
            skipped_ticks: 0,
            coalesced: 0,
            consecutive: 1,
            failing_since: Some(t),
        });
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"event":"probeResult","seq":4,"rolloutId":"stable@abc","generation":1,"probeName":"ssh","kind":"tcp","mode":"observe","status":"fail","observedAt":"2026-11-27T14:15:42.000000Z","failureReason":"tcp probe: refused","subResults":null,"tick":0,"scheduledAt":"2026-11-27T14:15:42.000000Z","latenessUs":57,"durationUs":312,"skippedTicks":0,"coalesced":0,"consecutive":1,"failingSince":"2026-11-27T14:15:42.000000Z"}"#
        );
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn passing_result_has_no_failing_since() {
        let t = Timestamp::from_unix_micros(0);
        let e = Event::ProbeResult(ProbeResult {
            header: header(2),
            probe_name: Arc::from("a"),
            kind: Arc::from("exec"),
            mode: Mode::Enforce,
            status: Status::Pass,
            observed_at: t,
            failure_reason: None,
            sub_results: None,
            perfdata: Vec::new(),
            tick: 3,
            scheduled_at: t,
            lateness_us: 0,
            duration_us: 0,
            skipped_ticks: 0,
            coalesced: 0,
            consecutive: 2,
            failing_since: None,
        });
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert!(v.get("failingSince").is_none());
        assert!(v["failureReason"].is_null());
        assert!(v["subResults"].is_null());
        assert!(v.get("perfdata").is_none());
    }

    #[test]
    fn perfdata_is_written_only_when_there_is_some_and_round_trips() {
        use crate::vocab::{PerfUnit, Perfdata};
        let t = Timestamp::from_unix_micros(0);
        let e = Event::ProbeResult(ProbeResult {
            header: header(2),
            probe_name: Arc::from("disk"),
            kind: Arc::from("exec"),
            mode: Mode::Enforce,
            status: Status::Pass,
            observed_at: t,
            failure_reason: None,
            sub_results: None,
            perfdata: vec![
                Perfdata::new("/", 46725595136.0, Some(PerfUnit::Bytes)),
                Perfdata::new("time", 0.000123, Some(PerfUnit::Seconds)),
                Perfdata::new("load1", 0.5, None),
            ],
            tick: 0,
            scheduled_at: t,
            lateness_us: 0,
            duration_us: 0,
            skipped_ticks: 0,
            coalesced: 0,
            consecutive: 1,
            failing_since: None,
        });
        let json = serde_json::to_string(&e).unwrap();
        assert!(
            json.contains(
                r#""subResults":null,"perfdata":[{"label":"/","value":46725595136.0,"unit":"B"},{"label":"time","value":0.000123,"unit":"s"},{"label":"load1","value":0.5}],"tick":0"#
            ),
            "{json}"
        );
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }
}
