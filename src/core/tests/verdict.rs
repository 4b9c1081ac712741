//! The verdict rules against the pure core, in virtual time: each test is
//! named after the rule it holds.

use super::*;
use crate::clock::Timestamp;
use crate::event::{Awaiting, RolloutVerdict};

impl Sim {
    fn verdicts(&self) -> Vec<&RolloutVerdict> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                Event::RolloutVerdict(v) => Some(v),
                _ => None,
            })
            .collect()
    }

    fn last_verdict(&self) -> &RolloutVerdict {
        self.verdicts().pop().expect("a verdict was sent")
    }

    /// (seconds since t0 of `since`, verdict) of every verdict event.
    fn verdict_timeline(&self) -> Vec<(f64, Verdict)> {
        let t0 = Timestamp::from_system_time(wall0()).unix_micros();
        self.verdicts()
            .iter()
            .map(|v| ((v.since.unix_micros() - t0) as f64 / 1e6, v.verdict))
            .collect()
    }
}

fn with(soak: u64, deadline: Option<u64>) -> Config {
    Config {
        soak: secs(soak),
        deadline: deadline.map(secs),
        ..Config::default()
    }
}

fn awaiting(v: &RolloutVerdict) -> Vec<(&str, Awaiting)> {
    v.awaiting.iter().map(|a| (&*a.probe_name, a.why)).collect()
}

/// Passes except at the ticks listed.
fn failing_at(ticks: &'static [u64]) -> impl FnMut(&str, u64) -> (Duration, RunnerOutcome) {
    move |_, tick| {
        let o = if ticks.contains(&tick) {
            fail("status 503")
        } else {
            RunnerOutcome::pass()
        };
        (Duration::from_millis(1), o)
    }
}

#[test]
fn the_first_verdict_follows_the_topology_and_awaits_every_enforce_probe() {
    let mut sim = Sim::new(Config::default());
    sim.consume = false;
    sim.s.sink_mut().capacity = 1 << 20;
    let json = r#"{"a": {"kind": "x", "mode": "enforce"},
                   "b": {"kind": "x", "mode": "observe"},
                   "c": {"kind": "x", "mode": "enforce"},
                   "d": {"kind": "x", "mode": "disabled"}}"#;
    let d = specs(json);
    sim.names = d.iter().map(|p| p.name.to_string()).collect();
    sim.s.reset(sim.now, "r", Ok(&d), "/p", None);
    sim.s.flush();
    let events: Vec<Event> = sim.s.sink_mut().buf.drain(..).collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].name(), "topologyDeclared");
    let Event::RolloutVerdict(v) = &events[1] else {
        panic!("{:?}", events[1])
    };
    assert_eq!((v.verdict, v.decided), (Verdict::Pending, false));
    assert_eq!(
        awaiting(v),
        [("a", Awaiting::NoResult), ("c", Awaiting::NoResult)]
    );
    assert_eq!(v.reason, "awaiting a (noResult), c (noResult)");
    assert_eq!(v.header.generation, 1);
}

#[test]
fn without_enforce_probes_the_verdict_is_healthy_at_the_topology() {
    let mut sim = Sim::new(with(30, Some(60)));
    sim.reset("r", r#"{"o": {"kind": "x", "mode": "observe"}}"#);
    let v = sim.verdicts();
    assert_eq!(v.len(), 1);
    assert_eq!((v[0].verdict, v[0].decided), (Verdict::Healthy, true));
    assert_eq!(v[0].reason, "no enforce probe declared");
    sim.run_until(secs(120));
    assert_eq!(sim.verdicts().len(), 1, "the deadline does not undo it");
}

#[test]
fn healthy_when_every_enforce_probe_passes() {
    let mut sim = Sim::new(Config::default());
    sim.reset("r", TWO);
    sim.run_until(secs(1));
    let v = sim.last_verdict();
    assert_eq!((v.verdict, v.decided), (Verdict::Healthy, true));
    assert_eq!(v.reason, "1 enforce probe passing");
    assert!(v.failing.is_empty() && v.awaiting.is_empty());
}

#[test]
fn unhealthy_at_the_first_failure_with_the_default_threshold() {
    let mut sim = Sim::new(Config::default()).script(|_, _| (secs(0), fail("status 503")));
    sim.reset("r", r#"{"web": {"kind": "http", "mode": "enforce"}}"#);
    sim.run_until(secs(1));
    let v = sim.last_verdict();
    assert_eq!((v.verdict, v.decided), (Verdict::Unhealthy, true));
    assert_eq!(v.reason, "web: status 503");
    assert_eq!(v.failing.len(), 1);
    assert_eq!(v.failing[0].failure_reason, "status 503");
    assert_eq!(v.failing[0].consecutive, 1);
    assert!(v.failing[0].failing_since.is_some());
}

#[test]
fn failure_threshold_a_passing_probe_stays_passing_below_it() {
    // Passes at 0 and 5, fails at 10 and 15, fails at 20: the third
    // failure in a row makes it failing.
    let mut sim = Sim::new(Config::default()).script(failing_at(&[2, 3, 4]));
    sim.reset(
        "r",
        r#"{"web": {"kind": "http", "mode": "enforce", "intervalSeconds": 5, "failureThreshold": 3}}"#,
    );
    sim.run_until(secs(17));
    assert_eq!(sim.last_verdict().verdict, Verdict::Healthy);
    assert_eq!(sim.verdicts().len(), 2, "two failures change nothing");
    sim.run_until(secs(22));
    let v = sim.last_verdict();
    assert_eq!(v.verdict, Verdict::Unhealthy);
    assert_eq!(v.failing[0].consecutive, 3);
    let t = sim.verdict_timeline();
    assert_eq!(t.last().unwrap().0.floor(), 20.0);
}

#[test]
fn failure_threshold_a_flapping_probe_never_fails_with_two() {
    // Every other run fails: never two in a row.
    let mut sim = Sim::new(Config::default()).script(|_, tick| {
        let o = if tick % 2 == 1 {
            fail("status 503")
        } else {
            RunnerOutcome::pass()
        };
        (Duration::from_millis(1), o)
    });
    sim.reset(
        "r",
        r#"{"web": {"kind": "http", "mode": "enforce", "intervalSeconds": 5, "failureThreshold": 2}}"#,
    );
    sim.run_until(secs(300));
    assert!(
        sim.verdicts()
            .iter()
            .all(|v| v.verdict != Verdict::Unhealthy),
        "{:?}",
        sim.verdict_timeline()
    );
    assert_eq!(sim.last_verdict().verdict, Verdict::Healthy);
}

#[test]
fn success_threshold_holds_the_verdict_pending_until_reached() {
    let mut sim = Sim::new(Config::default());
    sim.reset(
        "r",
        r#"{"db": {"kind": "tcp", "mode": "enforce", "intervalSeconds": 5, "successThreshold": 3}}"#,
    );
    sim.run_until(secs(6));
    let v = sim.last_verdict();
    assert_eq!(v.verdict, Verdict::Pending);
    assert_eq!(awaiting(v), [("db", Awaiting::SuccessThreshold)]);
    sim.run_until(secs(11));
    assert_eq!(sim.last_verdict().verdict, Verdict::Healthy);
    assert_eq!(sim.verdict_timeline().last().unwrap().0.floor(), 10.0);
}

#[test]
fn startup_grace_holds_failures_pending_and_ends_at_the_first_pass() {
    // Down for the first 2 runs (0, 5 s), then up; after that a failure
    // counts at once.
    let mut sim = Sim::new(Config::default()).script(failing_at(&[0, 1, 4]));
    sim.reset(
        "r",
        r#"{"api": {"kind": "http", "mode": "enforce", "intervalSeconds": 5, "startupGraceSeconds": 15}}"#,
    );
    sim.run_until(secs(6));
    let v = sim.last_verdict();
    assert_eq!(v.verdict, Verdict::Pending);
    assert_eq!(awaiting(v), [("api", Awaiting::StartupGrace)]);
    sim.run_until(secs(11));
    assert_eq!(sim.last_verdict().verdict, Verdict::Healthy);
    // Tick 4 (20 s) fails: the grace ended with the first pass at 10 s.
    sim.run_until(secs(21));
    assert_eq!(sim.last_verdict().verdict, Verdict::Unhealthy);
    assert!(
        sim.verdicts()
            .iter()
            .take_while(|v| v.verdict != Verdict::Healthy)
            .all(|v| v.verdict == Verdict::Pending),
        "{:?}",
        sim.verdict_timeline()
    );
}

#[test]
fn startup_grace_ends_after_its_seconds_and_the_initial_delay() {
    let mut sim = Sim::new(Config::default()).script(|_, _| (secs(0), fail("refused")));
    sim.reset(
        "r",
        r#"{"api": {"kind": "http", "mode": "enforce", "intervalSeconds": 5,
                    "startupGraceSeconds": 15, "initialDelaySeconds": 3}}"#,
    );
    sim.run_until(secs(60));
    // The first run at 3 s (the initial delay), grace until 3 + 15 s.
    assert_eq!(sim.starts_of("api")[0].1, secs(3));
    assert_eq!(
        sim.verdict_timeline(),
        [
            (0.0, Verdict::Pending),
            (0.0, Verdict::Pending),
            (18.0, Verdict::Unhealthy)
        ]
    );
    let v = sim.last_verdict();
    assert_eq!(v.reason, "api: refused");
}

#[test]
fn initial_delay_moves_the_first_slot_and_the_schedule_counts_from_it() {
    let mut sim = Sim::new(Config::default());
    sim.reset(
        "r",
        r#"{"p": {"kind": "x", "mode": "observe", "intervalSeconds": 10, "initialDelaySeconds": 7}}"#,
    );
    sim.run_until(secs(40));
    let due: Vec<Duration> = sim.starts_of("p").iter().map(|s| s.1).collect();
    assert_eq!(due, [secs(7), secs(17), secs(27), secs(37)]);
}

#[test]
fn staleness_a_probe_without_results_counts_as_failing_until_one_comes() {
    // Tick 1 (5 s) hangs for 60 s: no result from 0 s to 65 s.
    let mut sim = Sim::new(Config::default()).script(|_, tick| {
        let took = if tick == 1 {
            secs(60)
        } else {
            Duration::from_millis(1)
        };
        (took, RunnerOutcome::pass())
    });
    sim.reset(
        "r",
        r#"{"web": {"kind": "x", "mode": "enforce", "intervalSeconds": 5}}"#,
    );
    sim.run_until(secs(100));
    // Stale after 2 x 5 s + 10 s (the default timeout) from the last result
    // at 0.001 s; alarms fall on whole seconds.
    let t = sim.verdict_timeline();
    assert_eq!(t[1], (0.001, Verdict::Healthy));
    assert_eq!(t[2], (21.0, Verdict::Unhealthy));
    assert_eq!(t[3].1, Verdict::Healthy);
    assert_eq!(t[3].0.floor(), 65.0);
    let stale = sim.verdicts()[2].clone();
    assert_eq!(stale.reason, "web: stale: no result for 20 s");
    assert_eq!(stale.failing[0].failure_reason, "stale: no result for 20 s");
}

#[test]
fn staleness_never_marks_a_run_once_probe_after_its_result() {
    let mut sim = Sim::new(Config::default());
    sim.reset(
        "r",
        r#"{"once": {"kind": "x", "mode": "enforce", "runOnce": true, "intervalSeconds": 5}}"#,
    );
    sim.run_until(secs(600));
    assert_eq!(
        sim.verdict_timeline()
            .iter()
            .map(|t| t.1)
            .collect::<Vec<_>>(),
        [Verdict::Pending, Verdict::Healthy]
    );
    assert_eq!(sim.s.poll_timeout(), None, "no alarm left once decided");
}

#[test]
fn run_once_counts_its_one_result_with_thresholds_of_one() {
    let mut sim = Sim::new(Config::default()).script(|_, _| (secs(0), fail("exit 1")));
    sim.reset(
        "r",
        r#"{"m": {"kind": "exec", "mode": "enforce", "runOnce": true, "failureThreshold": 3}}"#,
    );
    sim.run_until(secs(1));
    assert_eq!(sim.last_verdict().verdict, Verdict::Unhealthy);
}

#[test]
fn soak_healthy_only_after_every_probe_passed_for_the_soak() {
    let mut sim = Sim::new(with(12, None));
    sim.reset("r", TWO);
    sim.run_until(secs(30));
    let t = sim.verdict_timeline();
    assert_eq!(
        t[1],
        (0.0, Verdict::Pending),
        "still pending since the reset"
    );
    assert_eq!(t[2], (12.001, Verdict::Healthy));
    let during = sim.verdicts()[1].clone();
    assert_eq!(awaiting(&during), [("a", Awaiting::Soak)]);
    assert_eq!(
        during.reason,
        "1 enforce probe passing, soak of 12 s under way"
    );
    assert!(during.soak_ends_at.is_some());
    let done = sim.last_verdict();
    assert_eq!(done.reason, "1 enforce probe passing, soak of 12 s done");
    assert!(done.soak_ends_at.is_none());
}

#[test]
fn soak_a_probe_leaving_passing_starts_it_over() {
    // Fails at 10 s, passes again at 15 s: the soak counts from 15 s.
    let mut sim = Sim::new(with(12, None)).script(failing_at(&[2]));
    sim.reset(
        "r",
        r#"{"web": {"kind": "x", "mode": "enforce", "intervalSeconds": 5}}"#,
    );
    sim.run_until(secs(40));
    let t = sim.verdict_timeline();
    let kinds: Vec<Verdict> = t.iter().map(|t| t.1).collect();
    assert_eq!(
        kinds,
        [
            Verdict::Pending,
            Verdict::Pending,
            Verdict::Unhealthy,
            Verdict::Pending,
            Verdict::Healthy
        ],
        "{t:?}"
    );
    assert_eq!(t[4].0, 27.001);
}

#[test]
fn soak_a_failure_below_the_threshold_does_not_restart_it() {
    let mut sim = Sim::new(with(12, None)).script(failing_at(&[1]));
    sim.reset(
        "r",
        r#"{"web": {"kind": "x", "mode": "enforce", "intervalSeconds": 5, "failureThreshold": 2}}"#,
    );
    sim.run_until(secs(40));
    let t = sim.verdict_timeline();
    assert_eq!(t.last().unwrap(), &(12.001, Verdict::Healthy), "{t:?}");
}

#[test]
fn deadline_fires_once_naming_what_was_still_awaited() {
    let mut sim = Sim::new(with(0, Some(3))).script(|_, _| (secs(0), fail("refused")));
    sim.reset(
        "r",
        r#"{"api": {"kind": "x", "mode": "enforce", "intervalSeconds": 5, "startupGraceSeconds": 60}}"#,
    );
    sim.run_until(secs(200));
    let deadline: Vec<_> = sim
        .verdicts()
        .into_iter()
        .filter(|v| v.reason.starts_with("deadline"))
        .cloned()
        .collect();
    assert_eq!(
        deadline[0].reason,
        "deadline of 3 s passed; awaiting: api (startupGrace)"
    );
    assert_eq!(
        (deadline[0].verdict, deadline[0].decided),
        (Verdict::Unhealthy, true)
    );
    let t0 = Timestamp::from_system_time(wall0()).unix_micros();
    assert_eq!(deadline[0].since.unix_micros() - t0, 3_000_000);
    assert_eq!(
        deadline[0].deadline_at.map(|d| d.unix_micros() - t0),
        Some(3_000_000)
    );
    // Later changes (the grace ends at 60 s) keep it unhealthy; the
    // deadline itself never fires again.
    assert!(
        sim.verdicts()
            .iter()
            .skip(2)
            .all(|v| v.verdict == Verdict::Unhealthy)
    );
    assert_eq!(sim.verdicts().len(), 4, "{:?}", sim.verdict_timeline());
}

#[test]
fn deadline_after_a_healthy_verdict_changes_nothing() {
    let mut sim = Sim::new(with(0, Some(3)));
    sim.reset("r", TWO);
    sim.run_until(secs(100));
    assert_eq!(sim.verdicts().len(), 2);
    assert_eq!(sim.last_verdict().verdict, Verdict::Healthy);
}

#[test]
fn decided_stays_true_while_the_verdict_follows_the_probes() {
    let mut sim = Sim::new(Config::default()).script(failing_at(&[1]));
    sim.reset(
        "r",
        r#"{"web": {"kind": "x", "mode": "enforce", "intervalSeconds": 5}}"#,
    );
    sim.run_until(secs(11));
    let v: Vec<(Verdict, bool)> = sim
        .verdicts()
        .iter()
        .map(|v| (v.verdict, v.decided))
        .collect();
    assert_eq!(
        v,
        [
            (Verdict::Pending, false),
            (Verdict::Healthy, true),
            (Verdict::Unhealthy, true),
            (Verdict::Healthy, true)
        ]
    );
}

#[test]
fn a_burst_of_results_makes_one_verdict() {
    let json = format!(
        "{{{}}}",
        (0..200)
            .map(|i| format!(r#""p{i:03}": {{"kind": "x", "mode": "enforce"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut sim = Sim::new(Config::default());
    sim.reset("r", &json);
    sim.run_until(secs(1));
    let v = sim.verdicts();
    assert_eq!(
        v.len(),
        2,
        "pending at the topology, healthy after the burst"
    );
    assert_eq!(v[1].reason, "200 enforce probes passing");
}

#[test]
fn g14_a_reset_drops_the_old_generation_s_verdict_and_alarms() {
    // Generation 1: healthy, with a deadline and a long grace pending.
    let mut sim = Sim::new(with(0, Some(50)));
    sim.reset("r@1", TWO);
    sim.run_until(secs(10));
    assert_eq!(sim.last_verdict().verdict, Verdict::Healthy);
    // Generation 2 fails everywhere: its first verdict is pending, never
    // generation 1's healthy.
    sim.script = Box::new(|_, _| (secs(0), fail("refused")));
    let seen = sim.seen.len();
    sim.reset("r@1", TWO);
    let after: Vec<&Event> = sim.seen[seen..].iter().collect();
    assert_eq!(after[0].name(), "topologyDeclared");
    let Event::RolloutVerdict(first) = after[1] else {
        panic!("{:?}", after[1])
    };
    assert_eq!(
        (first.header.generation, first.verdict),
        (2, Verdict::Pending)
    );
    assert!(!first.decided);
    sim.run_until(secs(100));
    let v2: Vec<_> = sim
        .verdicts()
        .into_iter()
        .filter(|v| v.header.generation == 2)
        .collect();
    assert_eq!(v2[1].verdict, Verdict::Unhealthy);
    // Generation 2's deadline counts from its own reset (at 10 s).
    let t0 = Timestamp::from_system_time(wall0()).unix_micros();
    assert_eq!(
        v2[0].deadline_at.map(|d| d.unix_micros() - t0),
        Some(60_000_000)
    );
    // Nothing of generation 1 after generation 2 began.
    let first_g2 = sim.seen.iter().position(|e| e.generation() == 2).unwrap();
    assert!(sim.seen[first_g2..].iter().all(|e| e.generation() == 2));
}

#[test]
fn g9_a_verdict_waiting_for_room_is_replaced_by_the_newest_after_the_results() {
    let mut sim = Sim::new(Config::default()).script(failing_at(&[1, 2]));
    sim.s.sink_mut().capacity = 1;
    sim.consume = false;
    sim.reset(
        "r",
        r#"{"p": {"kind": "x", "mode": "enforce", "intervalSeconds": 5}}"#,
    );
    sim.run_until(secs(16)); // pass, fail, fail, pass
    sim.consume = true;
    sim.s.sink_mut().capacity = 100;
    sim.pump();
    let names: Vec<&str> = sim.seen.iter().map(Event::name).collect();
    // The generation's first verdict behind the topology, then only the
    // newest, behind the results.
    assert_eq!(names[1], "rolloutVerdict");
    assert_eq!(names.last(), Some(&"rolloutVerdict"));
    assert_eq!(names.iter().filter(|n| **n == "rolloutVerdict").count(), 2);
    let v = sim.last_verdict();
    assert_eq!((v.verdict, v.decided), (Verdict::Healthy, true));
    // seq has no gaps.
    for (i, e) in sim.seen.iter().enumerate() {
        assert_eq!(e.seq(), i as u64 + 1);
    }
}

#[test]
fn g14_the_first_verdict_stays_behind_its_topology_while_the_consumer_is_behind() {
    // The sink holds one unread event: the topology goes, the first
    // verdict waits, then results and newer verdicts pile up behind it.
    let mut sim = Sim::new(Config::default()).script(failing_at(&[1]));
    sim.s.sink_mut().capacity = 1;
    sim.consume = false;
    sim.reset(
        "r",
        r#"{"p": {"kind": "x", "mode": "enforce", "intervalSeconds": 5}}"#,
    );
    sim.run_until(secs(1));
    // The reader takes one event at a time.
    for _ in 0..3 {
        sim.seen.extend(sim.s.sink_mut().buf.drain(..));
        sim.run_until(sim.now - sim.t0 + secs(5));
    }
    sim.consume = true;
    sim.s.sink_mut().capacity = 100;
    sim.pump();
    let names: Vec<&str> = sim.seen.iter().map(Event::name).collect();
    assert_eq!(
        &names[..3],
        ["topologyDeclared", "rolloutVerdict", "probeObservedFirst"],
        "{names:?}"
    );
    let mut g = 0;
    for e in &sim.seen {
        assert_eq!(e.seq(), g + 1);
        g = e.seq();
    }
}

#[test]
fn startup_grace_ends_when_the_probe_counts_as_passing_not_at_a_lone_pass() {
    // Fails at 0 and 5 s, passes from 10 s; two passes in a row make it
    // passing (15 s). The lone pass at 10 s must not end the grace while
    // the probe still counts as failing.
    let mut sim = Sim::new(Config::default()).script(failing_at(&[0, 1]));
    sim.reset(
        "r",
        r#"{"api": {"kind": "http", "mode": "enforce", "intervalSeconds": 5,
                    "startupGraceSeconds": 60, "successThreshold": 2}}"#,
    );
    sim.run_until(secs(30));
    let kinds: Vec<Verdict> = sim.verdict_timeline().iter().map(|t| t.1).collect();
    assert!(!kinds.contains(&Verdict::Unhealthy), "{kinds:?}");
    assert_eq!(sim.last_verdict().verdict, Verdict::Healthy);
    assert_eq!(sim.verdict_timeline().last().unwrap().0.floor(), 15.0);
}

#[test]
fn a_generation_on_kept_declarations_is_unhealthy_naming_why() {
    let mut sim = Sim::new(Config::default());
    let d = specs(TWO);
    sim.names = d.iter().map(|p| p.name.to_string()).collect();
    let why = "cannot read file: Too many open files (os error 24)";
    sim.s.reset(sim.now, "r@2", Ok(&d), "/p", Some(why));
    sim.pump();
    sim.run_until(secs(30));
    // The kept probes run and pass, and the rollout is still not healthy.
    assert!(!sim.results("a").is_empty());
    let v = sim.verdicts();
    assert!(
        v.iter().all(|v| v.verdict == Verdict::Unhealthy),
        "{:?}",
        sim.verdict_timeline()
    );
    assert_eq!(
        v[0].reason,
        "declarations not read (cannot read file: Too many open files (os error 24)): \
         the previous generation's probes run, but cannot make this rollout healthy"
    );
}
