use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::event::{
    DeclarationsRejected, Header, ProbeFailureFirst, ProbeObservedFirst, TopologyDeclared,
    TopologyEntry,
};

fn header(seq: u64, generation: u64) -> Header {
    Header {
        seq,
        rollout_id: Arc::from(format!("rollout-{generation}")),
        generation,
    }
}

fn topology(seq: u64, generation: u64, probes: &[(&str, Mode)]) -> Event {
    Event::TopologyDeclared(TopologyDeclared {
        header: header(seq, generation),
        declared_at: Timestamp::from_unix_micros(0),
        probes: probes
            .iter()
            .map(|(name, mode)| TopologyEntry {
                probe_name: Arc::from(*name),
                kind: Arc::from("exec"),
                mode: *mode,
            })
            .collect(),
    })
}

fn rejected(seq: u64, generation: u64, reason: &str) -> Event {
    Event::DeclarationsRejected(DeclarationsRejected {
        header: header(seq, generation),
        path: "/etc/hc.json".into(),
        reason: reason.into(),
    })
}

fn result(seq: u64, generation: u64, probe: &str, mode: Mode, pass: bool) -> Event {
    let t = Timestamp::from_unix_micros(seq as i64 * 1_000_000);
    Event::ProbeResult(ProbeResult {
        header: header(seq, generation),
        probe_name: Arc::from(probe),
        kind: Arc::from("exec"),
        mode,
        status: if pass { Status::Pass } else { Status::Fail },
        observed_at: t,
        failure_reason: (!pass).then(|| format!("{probe} failed at {seq}")),
        sub_results: None,
        tick: 0,
        scheduled_at: t,
        lateness_us: 0,
        duration_us: 0,
        skipped_ticks: 0,
        coalesced: 0,
        consecutive: 1,
        failing_since: (!pass).then_some(t),
    })
}

fn pending(names: &[&str]) -> Verdict {
    Verdict::Pending(Awaiting::Results(
        names.iter().map(|n| Arc::from(*n)).collect(),
    ))
}

fn failing(v: &Verdict) -> Vec<&str> {
    match v {
        Verdict::Unhealthy(f) => f.iter().map(|x| &*x.probe_name).collect(),
        other => panic!("expected unhealthy, got {other:?}"),
    }
}

const MIXED: &[(&str, Mode)] = &[
    ("a", Mode::Enforce),
    ("b", Mode::Enforce),
    ("c", Mode::Observe),
    ("d", Mode::Disabled),
];

#[test]
fn a_new_gate_waits_for_the_topology() {
    let gate = Gate::new();
    assert_eq!(gate.verdict(), Verdict::Pending(Awaiting::Topology));
    assert!(!gate.settled());
    assert_eq!(gate.generation(), 0);
    assert_eq!(gate.rollout_id(), None);
}

#[test]
fn only_enforce_probes_gate_and_disabled_ones_are_not_awaited() {
    let mut gate = Gate::new();
    assert!(gate.update(&topology(1, 1, MIXED)));
    assert_eq!(gate.rollout_id(), Some("rollout-1"));
    assert_eq!(gate.verdict(), pending(&["a", "b"]));
    gate.update(&result(2, 1, "c", Mode::Observe, false));
    assert_eq!(gate.verdict(), pending(&["a", "b"]), "observe never gates");
    gate.update(&result(3, 1, "a", Mode::Enforce, true));
    assert_eq!(gate.verdict(), pending(&["b"]));
    assert!(!gate.settled());
    gate.update(&result(4, 1, "b", Mode::Enforce, true));
    assert_eq!(gate.verdict(), Verdict::Healthy);
    // a, b and c have reported; d is disabled and never will.
    assert!(gate.settled());
}

#[test]
fn a_failure_gates_before_every_probe_has_reported() {
    let mut gate = Gate::new();
    gate.update(&topology(1, 1, MIXED));
    gate.update(&result(2, 1, "b", Mode::Enforce, false));
    let v = gate.verdict();
    assert_eq!(failing(&v), ["b"]);
    let Verdict::Unhealthy(f) = &v else {
        unreachable!()
    };
    assert_eq!(f[0].reason, "b failed at 2");
    assert_eq!(
        f[0].failing_since,
        Some(Timestamp::from_unix_micros(2_000_000))
    );
    assert_eq!(f[0].consecutive, 1);
    assert!(!v.is_healthy() && !v.is_pending());
    assert!(!gate.settled(), "a and c have not reported");
}

#[test]
fn the_latest_result_counts_even_when_read_out_of_order() {
    let mut gate = Gate::new();
    gate.update(&topology(1, 1, &[("a", Mode::Enforce)]));
    gate.update(&result(5, 1, "a", Mode::Enforce, true));
    gate.update(&result(3, 1, "a", Mode::Enforce, false));
    assert_eq!(gate.verdict(), Verdict::Healthy);
    gate.update(&result(7, 1, "a", Mode::Enforce, false));
    assert_eq!(failing(&gate.verdict()), ["a"]);
    gate.update(&result(9, 1, "a", Mode::Enforce, true));
    assert_eq!(
        gate.verdict(),
        Verdict::Healthy,
        "a probe that recovers stops gating"
    );
}

#[test]
fn a_rejected_file_is_the_verdict_and_settles() {
    let mut gate = Gate::new();
    gate.update(&rejected(1, 1, "line 3 column 5: expected `:`"));
    assert_eq!(
        gate.verdict(),
        Verdict::Rejected {
            path: "/etc/hc.json".into(),
            reason: "line 3 column 5: expected `:`".into()
        }
    );
    assert!(gate.settled());
    assert_eq!(
        gate.verdict().to_string(),
        "rejected: /etc/hc.json: line 3 column 5: expected `:`"
    );
}

#[test]
fn an_empty_topology_is_healthy() {
    let mut gate = Gate::new();
    gate.update(&topology(1, 1, &[]));
    assert_eq!(gate.verdict(), Verdict::Healthy);
    assert!(gate.settled());
}

#[test]
fn observe_and_disabled_only_is_healthy_at_once() {
    let mut gate = Gate::new();
    gate.update(&topology(
        1,
        1,
        &[("c", Mode::Observe), ("d", Mode::Disabled)],
    ));
    assert_eq!(gate.verdict(), Verdict::Healthy);
    assert!(!gate.settled(), "c has not reported");
    gate.update(&result(2, 1, "c", Mode::Observe, false));
    assert!(gate.settled());
    assert_eq!(gate.verdict(), Verdict::Healthy);
}

#[test]
fn a_new_generation_starts_over_and_older_events_are_ignored() {
    let mut gate = Gate::new();
    gate.update(&topology(1, 1, &[("a", Mode::Enforce)]));
    gate.update(&result(2, 1, "a", Mode::Enforce, true));
    assert_eq!(gate.verdict(), Verdict::Healthy);

    assert!(gate.update(&topology(3, 2, &[("a", Mode::Enforce)])));
    assert_eq!(gate.generation(), 2);
    assert_eq!(gate.rollout_id(), Some("rollout-2"));
    assert_eq!(
        gate.verdict(),
        pending(&["a"]),
        "generation 1's pass does not count"
    );

    // A straggler of generation 1 changes nothing.
    assert!(!gate.update(&result(4, 1, "a", Mode::Enforce, false)));
    assert!(!gate.update(&rejected(5, 1, "late")));
    assert_eq!(gate.verdict(), pending(&["a"]));

    gate.update(&result(6, 2, "a", Mode::Enforce, false));
    assert_eq!(failing(&gate.verdict()), ["a"]);
    // A rejected reload: the failing probe is forgotten, the file gates.
    gate.update(&rejected(7, 3, "not an object"));
    assert!(matches!(gate.verdict(), Verdict::Rejected { .. }));
}

#[test]
fn results_before_their_topology_are_kept() {
    let mut gate = Gate::new();
    gate.update(&result(2, 1, "a", Mode::Enforce, true));
    assert_eq!(gate.verdict(), Verdict::Pending(Awaiting::Topology));
    assert_eq!(gate.generation(), 1);
    gate.update(&topology(1, 1, &[("a", Mode::Enforce)]));
    assert_eq!(gate.verdict(), Verdict::Healthy);
}

#[test]
fn lifecycle_events_do_not_decide() {
    let mut gate = Gate::new();
    gate.update(&topology(1, 1, &[("a", Mode::Enforce)]));
    gate.update(&Event::ProbeObservedFirst(ProbeObservedFirst {
        header: header(2, 1),
        probe_name: Arc::from("a"),
        mode: Mode::Enforce,
        observed_at: Timestamp::from_unix_micros(0),
    }));
    gate.update(&Event::ProbeFailureFirst(ProbeFailureFirst {
        header: header(3, 1),
        probe_name: Arc::from("a"),
        mode: Mode::Enforce,
        first_failed_at: Timestamp::from_unix_micros(0),
    }));
    assert_eq!(gate.verdict(), pending(&["a"]));
}

#[test]
fn verdicts_print_on_one_line() {
    let mut gate = Gate::new();
    assert_eq!(gate.verdict().to_string(), "pending: topology");
    gate.update(&topology(1, 1, MIXED));
    assert_eq!(gate.verdict().to_string(), "pending: a, b");
    gate.update(&result(2, 1, "a", Mode::Enforce, false));
    gate.update(&result(3, 1, "b", Mode::Enforce, false));
    assert_eq!(
        gate.verdict().to_string(),
        "unhealthy: a: a failed at 2; b: b failed at 3"
    );
    gate.update(&result(4, 1, "a", Mode::Enforce, true));
    gate.update(&result(5, 1, "b", Mode::Enforce, true));
    assert_eq!(gate.verdict().to_string(), "healthy");
}

// ---- property: any interleaving gives the model's verdict ----

/// One generation as the engine would send it, before `seq` numbering.
#[derive(Debug, Clone)]
enum GenPlan {
    Rejected,
    /// Probes `p0..pN` with modes, and per probe the statuses of its runs.
    Declared(Vec<(Mode, Vec<bool>)>),
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        Just(Mode::Enforce),
        Just(Mode::Observe),
        Just(Mode::Disabled)
    ]
}

fn gen_plan() -> impl Strategy<Value = GenPlan> {
    prop_oneof![
        1 => Just(GenPlan::Rejected),
        5 => prop::collection::vec(
            (mode(), prop::collection::vec(any::<bool>(), 0..4)),
            0..5
        )
        .prop_map(GenPlan::Declared),
    ]
}

/// The events of generations 1..=n in the engine's order, `seq` from 1.
/// Probe runs of one generation are interleaved round-robin.
fn events_of(plans: &[GenPlan]) -> Vec<Event> {
    let mut out = Vec::new();
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        seq
    };
    for (i, plan) in plans.iter().enumerate() {
        let generation = i as u64 + 1;
        match plan {
            GenPlan::Rejected => out.push(rejected(next(), generation, "bad file")),
            GenPlan::Declared(probes) => {
                let names: Vec<String> = (0..probes.len()).map(|p| format!("p{p}")).collect();
                let entries: Vec<(&str, Mode)> = names
                    .iter()
                    .zip(probes)
                    .map(|(n, (m, _))| (n.as_str(), *m))
                    .collect();
                out.push(topology(next(), generation, &entries));
                let longest = probes.iter().map(|(_, r)| r.len()).max().unwrap_or(0);
                for run in 0..longest {
                    for (name, (m, runs)) in names.iter().zip(probes) {
                        // Disabled probes never run (G4).
                        if *m == Mode::Disabled {
                            continue;
                        }
                        if let Some(pass) = runs.get(run) {
                            out.push(result(next(), generation, name, *m, *pass));
                        }
                    }
                }
            }
        }
    }
    out
}

/// The rule stated directly over a set of events.
fn model(events: &[Event]) -> (Verdict, bool) {
    let Some(g) = events.iter().map(Event::generation).max() else {
        return (Verdict::Pending(Awaiting::Topology), false);
    };
    let current: Vec<&Event> = events.iter().filter(|e| e.generation() == g).collect();
    for e in &current {
        if let Event::DeclarationsRejected(r) = e {
            let v = Verdict::Rejected {
                path: r.path.clone(),
                reason: r.reason.clone(),
            };
            return (v, true);
        }
    }
    let Some(topo) = current.iter().find_map(|e| match e {
        Event::TopologyDeclared(t) => Some(t),
        _ => None,
    }) else {
        return (Verdict::Pending(Awaiting::Topology), false);
    };
    let latest = |name: &str| {
        current
            .iter()
            .filter_map(|e| match e {
                Event::ProbeResult(r) if &*r.probe_name == name => Some(r),
                _ => None,
            })
            .max_by_key(|r| r.header.seq)
    };
    let mut sorted: BTreeMap<&str, Mode> = BTreeMap::new();
    for p in &topo.probes {
        sorted.insert(&p.probe_name, p.mode);
    }
    let settled = sorted
        .iter()
        .filter(|(_, m)| **m != Mode::Disabled)
        .all(|(n, _)| latest(n).is_some());
    let mut failures = Vec::new();
    let mut awaiting = Vec::new();
    for (name, m) in &sorted {
        if *m != Mode::Enforce {
            continue;
        }
        match latest(name) {
            None => awaiting.push(Arc::from(*name)),
            Some(r) if r.status == Status::Fail => failures.push(Failure {
                probe_name: Arc::from(*name),
                reason: r.failure_reason.clone().unwrap_or_default(),
                failing_since: r.failing_since,
                consecutive: r.consecutive,
            }),
            Some(_) => {}
        }
    }
    let v = if !failures.is_empty() {
        Verdict::Unhealthy(failures)
    } else if !awaiting.is_empty() {
        Verdict::Pending(Awaiting::Results(awaiting))
    } else {
        Verdict::Healthy
    };
    (v, settled)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Events of several generations in any order, any prefix of them:
    /// the gate answers as the model does over the events it was given.
    #[test]
    fn any_interleaving_gives_the_models_verdict(
        (events, cut) in prop::collection::vec(gen_plan(), 1..4)
            .prop_map(|plans| events_of(&plans))
            .prop_flat_map(|events| {
                let n = events.len();
                (Just(events).prop_shuffle(), 0..=n)
            })
    ) {
        let seen = &events[..cut];
        let mut gate = Gate::new();
        for e in seen {
            gate.update(e);
        }
        let (verdict, settled) = model(seen);
        prop_assert_eq!(gate.verdict(), verdict);
        prop_assert_eq!(gate.settled(), settled);
    }

    /// In the engine's own order, every prefix agrees with the model too
    /// (the order an agent actually reads).
    #[test]
    fn every_prefix_of_the_engines_order_agrees(plans in prop::collection::vec(gen_plan(), 1..4)) {
        let events = events_of(&plans);
        let mut gate = Gate::new();
        for (i, e) in events.iter().enumerate() {
            prop_assert!(gate.update(e), "in-order events are never ignored");
            let (verdict, settled) = model(&events[..=i]);
            prop_assert_eq!(gate.verdict(), verdict);
            prop_assert_eq!(gate.settled(), settled);
        }
    }
}
