//! The guarantees (crate docs, G1-G14) against the pure core, in virtual time.
//!
//! `Sim` plays the driver: it jumps `now` to the next wake-up, starts due
//! runs, finishes them after a scripted duration with a scripted outcome,
//! and reads events out of a bounded sink. Nothing sleeps.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::*;
use crate::event::{Event, Verdict};
use crate::vocab::{Mode, RunnerOutcome, Status};

/// A bounded channel stand-in: holds at most `capacity` unread events.
#[derive(Debug)]
struct TestSink {
    buf: VecDeque<Event>,
    capacity: usize,
}

impl Sink for TestSink {
    fn try_send(&mut self, event: Event) -> Result<(), Event> {
        if self.buf.len() >= self.capacity {
            return Err(event);
        }
        self.buf.push_back(event);
        Ok(())
    }
}

type Script = Box<dyn FnMut(&str, u64) -> (Duration, RunnerOutcome)>;
type Jitter = Box<dyn FnMut(&str, u64) -> Duration>;

struct Sim {
    s: Scheduler<TestSink>,
    t0: Instant,
    now: Instant,
    /// (dispatch, start, finish, outcome) of runs in flight.
    running: Vec<(Dispatch, Instant, Instant, RunnerOutcome)>,
    /// Delay between dispatch and the worker starting the run.
    start_delay: Duration,
    /// More start delay per run, by probe name and tick: the wake-up jitter
    /// of whoever starts the run (the worker sleeping to the slot, or the
    /// engine when it hands over at the slot).
    start_jitter: Jitter,
    script: Script,
    /// Every event read from the sink, in order.
    seen: Vec<Event>,
    /// Every dispatch: (probe name, tick, due, start).
    starts: Vec<(String, u64, Instant, Instant)>,
    names: Vec<String>,
    consume: bool,
}

fn wall0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_788_942)
}

/// The core's view of a declarations file, in file order: the fields the
/// core reads (`kind`, `mode`, `intervalSeconds`, `runOnce`, and
/// `timeoutSecs` as the engine's bound on a run) with the
/// defaults of `docs/declarations.md`. The core never parses files; this keeps the
/// tests readable without making them depend on the parser.
fn specs(json: &str) -> Vec<ProbeSpec> {
    struct InOrder(Vec<(String, Value)>);
    impl<'de> serde::Deserialize<'de> for InOrder {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = InOrder;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object of probes")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<InOrder, A::Error> {
                    let mut out = Vec::new();
                    while let Some(entry) = m.next_entry()? {
                        out.push(entry);
                    }
                    Ok(InOrder(out))
                }
            }
            d.deserialize_map(V)
        }
    }
    let InOrder(probes) = serde_json::from_str(json).expect("test declarations parse");
    probes
        .into_iter()
        .map(|(name, fields)| ProbeSpec {
            name: Arc::from(name),
            kind: Arc::from(fields["kind"].as_str().unwrap_or("")),
            mode: match fields["mode"].as_str() {
                Some("observe") => Mode::Observe,
                Some("disabled") => Mode::Disabled,
                _ => Mode::Enforce,
            },
            interval: Duration::from_secs(fields["intervalSeconds"].as_u64().unwrap_or(30)),
            run_once: fields["runOnce"].as_bool().unwrap_or(false),
            // Only where the test declares one: the engine bounds custom
            // kinds only.
            cut_off_after: fields["timeoutSecs"].as_u64().map(Duration::from_secs),
            verdict: VerdictSpec {
                failure_threshold: fields["failureThreshold"].as_u64().unwrap_or(1) as u32,
                success_threshold: fields["successThreshold"].as_u64().unwrap_or(1) as u32,
                startup_grace: Duration::from_secs(
                    fields["startupGraceSeconds"].as_u64().unwrap_or(0),
                ),
                timeout: Duration::from_secs(fields["timeoutSecs"].as_u64().unwrap_or(10)),
            },
            initial_delay: Duration::from_secs(fields["initialDelaySeconds"].as_u64().unwrap_or(0)),
        })
        .collect()
}

impl Sim {
    fn new(config: Config) -> Sim {
        // Virtual time starts at one real instant and only moves by
        // arithmetic from there.
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        Sim {
            s: Scheduler::new(
                config,
                t0,
                wall0(),
                TestSink {
                    buf: VecDeque::new(),
                    capacity: 1 << 20,
                },
            ),
            t0,
            now: t0,
            running: Vec::new(),
            start_delay: Duration::ZERO,
            start_jitter: Box::new(|_, _| Duration::ZERO),
            script: Box::new(|_, _| (Duration::from_millis(1), RunnerOutcome::pass())),
            seen: Vec::new(),
            starts: Vec::new(),
            names: Vec::new(),
            consume: true,
        }
    }

    fn script(mut self, f: impl FnMut(&str, u64) -> (Duration, RunnerOutcome) + 'static) -> Sim {
        self.script = Box::new(f);
        self
    }

    fn reset(&mut self, rollout: &str, json: &str) -> u64 {
        let d = specs(json);
        self.names = d.iter().map(|p| p.name.to_string()).collect();
        let g = self
            .s
            .reset(self.now, rollout, Ok(&d), "/test/health-checks.json", None);
        self.pump();
        g
    }

    fn reject(&mut self, rollout: &str, reason: &str) -> u64 {
        self.names.clear();
        let g = self.s.reset(
            self.now,
            rollout,
            Err(reason),
            "/test/health-checks.json",
            None,
        );
        self.pump();
        g
    }

    /// Dispatches what is due, finishes what is done, flushes, reads.
    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(d) = self.s.poll_dispatch(self.now) {
                let name = self.names[d.probe as usize].clone();
                let jitter = (self.start_jitter)(&name, d.tick);
                let start = d.due.max(self.now) + self.start_delay + jitter;
                let (took, outcome) = (self.script)(&name, d.tick);
                self.starts.push((name, d.tick, d.due, start));
                self.running.push((d, start, start + took, outcome));
                progressed = true;
            }
            let now = self.now;
            let (done, rest): (Vec<_>, Vec<_>) = self.running.drain(..).partition(|r| r.2 <= now);
            self.running = rest;
            for (d, start, finish, outcome) in done {
                self.s.handle_finished(d.finished(start, finish, outcome));
                progressed = true;
            }
            // As the driver: after the results, so a run that returned in
            // time is not cut off.
            self.s.handle_timeout(now);
            self.s.flush();
            if self.consume {
                self.seen.extend(self.s.sink_mut().buf.drain(..));
            }
            if !progressed {
                break;
            }
        }
    }

    /// The next instant anything happens: a timer or a run finishing.
    fn next_wake(&mut self) -> Option<Instant> {
        let finish = self.running.iter().map(|r| r.2).min();
        match (self.s.poll_timeout(), finish) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the simulation until `t0 + until`, waking only when needed.
    fn run_until(&mut self, until: Duration) {
        let end = self.t0 + until;
        while let Some(next) = self.next_wake() {
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            self.pump();
        }
        self.now = self.now.max(end);
        self.pump();
    }

    fn results(&self, probe: &str) -> Vec<&crate::event::ProbeResult> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                Event::ProbeResult(r) if &*r.probe_name == probe => Some(r),
                _ => None,
            })
            .collect()
    }

    fn starts_of(&self, probe: &str) -> Vec<(u64, Duration, Duration)> {
        self.starts
            .iter()
            .filter(|s| s.0 == probe)
            .map(|s| (s.1, s.2 - self.t0, s.3 - self.t0))
            .collect()
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn fail(reason: &str) -> RunnerOutcome {
    RunnerOutcome::fail(reason)
}

const TWO: &str = r#"{
    "b": {"kind": "tcp", "mode": "observe", "intervalSeconds": 10},
    "a": {"kind": "exec", "mode": "enforce", "intervalSeconds": 10}
}"#;

// ---- G1: topology first ------------------------------------------------

#[test]
fn g1_topology_precedes_every_event_of_its_generation() {
    let mut sim = Sim::new(Config::default());
    sim.reset("r1", TWO);
    sim.run_until(secs(25));
    sim.reset("r2", TWO);
    sim.run_until(secs(50));
    let mut topology_seen = std::collections::HashSet::new();
    for e in &sim.seen {
        match e {
            Event::TopologyDeclared(t) => {
                assert!(topology_seen.insert(t.header.generation));
            }
            other => assert!(
                topology_seen.contains(&other.generation()),
                "{} of generation {} before its topology",
                other.name(),
                other.generation()
            ),
        }
    }
    assert_eq!(topology_seen.len(), 2);
    assert_eq!(sim.seen[0].name(), "topologyDeclared");
}

#[test]
fn g1_rejection_and_its_verdict_are_the_only_events_and_nothing_runs() {
    let mut sim = Sim::new(Config::default());
    sim.reset("r1", TWO);
    sim.run_until(secs(5));
    let before = sim.seen.len();
    let g = sim.reject("r2", "line 3 column 5: expected `:`");
    assert_eq!(g, 2);
    sim.run_until(secs(100));
    let after: Vec<_> = sim.seen[before..].iter().collect();
    assert_eq!(after.len(), 2, "{after:?}");
    let Event::DeclarationsRejected(r) = after[0] else {
        panic!("expected a rejection, got {:?}", after[0]);
    };
    let Event::RolloutVerdict(v) = after[1] else {
        panic!("expected the verdict, got {:?}", after[1]);
    };
    assert_eq!((v.verdict, v.decided), (Verdict::Rejected, false));
    assert_eq!(
        v.reason,
        "declarations rejected: line 3 column 5: expected `:`"
    );
    assert_eq!(r.reason, "line 3 column 5: expected `:`");
    assert_eq!(r.path, "/test/health-checks.json");
    assert_eq!(&*r.header.rollout_id, "r2");
    assert_eq!(sim.s.poll_timeout(), None, "no probe may be scheduled");
}

// ---- G2: abort ---------------------------------------------------------

#[test]
fn g2_results_of_an_older_generation_are_discarded() {
    // Runs take 4 s; the reset comes while they are in flight.
    let mut sim = Sim::new(Config::default()).script(|_, _| (secs(4), RunnerOutcome::pass()));
    sim.reset("old", TWO);
    sim.run_until(secs(1));
    assert_eq!(sim.running.len(), 2);
    sim.reset("new", TWO);
    sim.run_until(secs(30));
    assert_eq!(sim.s.counters().stale_results, 2);
    let mut newest = 0;
    for e in &sim.seen {
        assert!(e.generation() >= newest, "generation went back: {e:?}");
        newest = e.generation();
    }
    assert!(
        sim.seen
            .iter()
            .filter(|e| e.generation() == 1)
            .all(|e| matches!(e.name(), "topologyDeclared" | "rolloutVerdict")),
        "no result of generation 1 may be emitted"
    );
}

#[test]
fn g2_waiting_events_of_the_old_generation_are_dropped_at_reset() {
    let mut sim = Sim::new(Config::default());
    sim.consume = false;
    sim.s.sink_mut().capacity = 1;
    sim.reset("old", TWO);
    sim.run_until(secs(25));
    assert!(sim.s.backlog() > 0);
    let waiting = sim.s.backlog() as u64;
    sim.reset("new", TWO);
    assert_eq!(sim.s.outbox_counters().dropped_at_reset, waiting);
    // The one event already in the channel is old; nothing older follows
    // anything newer.
    sim.consume = true;
    sim.s.sink_mut().capacity = 1 << 20;
    sim.run_until(secs(40));
    let gens: Vec<u64> = sim.seen.iter().map(Event::generation).collect();
    assert!(gens.windows(2).all(|w| w[0] <= w[1]), "{gens:?}");
    assert_eq!(sim.seen[1].name(), "topologyDeclared");
    assert_eq!(sim.seen[1].generation(), 2);
}

#[test]
fn g2_timers_of_the_old_generation_never_fire() {
    let mut sim = Sim::new(Config::default());
    sim.reset(
        "old",
        r#"{"x": {"kind": "tcp", "mode": "enforce", "intervalSeconds": 60}}"#,
    );
    sim.run_until(secs(30));
    sim.reset(
        "new",
        r#"{"y": {"kind": "tcp", "mode": "enforce", "intervalSeconds": 60}}"#,
    );
    sim.run_until(secs(200));
    let x_starts = sim.starts_of("x");
    assert_eq!(x_starts.len(), 1, "x ran after the reset: {x_starts:?}");
    assert_eq!(sim.s.timers(), 1);
}

// ---- G3: per-probe order -----------------------------------------------

#[test]
fn g3_lifecycle_events_precede_the_results_they_announce() {
    // a: pass, fail, fail, pass, fail ...; b always passes.
    let pattern = [true, false, false, true, false, true, true];
    let mut sim = Sim::new(Config::default()).script(move |name, tick| {
        let ok = name == "b" || pattern[(tick as usize) % pattern.len()];
        let outcome = if ok {
            RunnerOutcome::pass()
        } else {
            fail("down")
        };
        (Duration::from_millis(5), outcome)
    });
    sim.reset("r", TWO);
    sim.run_until(secs(65));
    let a: Vec<&Event> = sim
        .seen
        .iter()
        .filter(|e| e.probe_name() == Some("a"))
        .collect();
    let names: Vec<&str> = a.iter().map(|e| e.name()).collect();
    assert_eq!(
        names,
        [
            "probeObservedFirst",
            "probeResult", // pass
            "probeFailureFirst",
            "probeResult", // fail
            "probeResult", // fail
            "probeResult", // pass
            "probeFailureFirst",
            "probeResult", // fail
            "probeResult", // pass
            "probeResult", // pass
        ]
    );
    let results = sim.results("a");
    let consecutive: Vec<u64> = results.iter().map(|r| r.consecutive).collect();
    assert_eq!(consecutive, [1, 1, 2, 1, 1, 1, 2]);
    assert_eq!(results[1].failing_since, Some(results[1].observed_at));
    assert_eq!(results[2].failing_since, Some(results[1].observed_at));
    assert_eq!(results[3].failing_since, None);
    assert_eq!(results[2].failure_reason.as_deref(), Some("down"));
    assert_eq!(results[0].failure_reason, None);
    let Event::ProbeFailureFirst(ff) = a[2] else {
        unreachable!()
    };
    assert_eq!(ff.first_failed_at, results[1].observed_at);
    let Event::ProbeObservedFirst(of) = a[0] else {
        unreachable!()
    };
    assert_eq!(of.observed_at, results[0].observed_at);
    let seqs: Vec<u64> = sim.seen.iter().map(Event::seq).collect();
    assert_eq!(seqs, (1..=sim.seen.len() as u64).collect::<Vec<_>>());
}

#[test]
fn g3_observed_first_comes_once_per_generation() {
    let mut sim = Sim::new(Config::default());
    sim.reset("r1", TWO);
    sim.run_until(secs(35));
    sim.reset("r2", TWO);
    sim.run_until(secs(70));
    for g in [1, 2] {
        let n = sim
            .seen
            .iter()
            .filter(|e| e.generation() == g && e.name() == "probeObservedFirst")
            .count();
        assert_eq!(n, 2, "generation {g}");
    }
}

// ---- G4: disabled ------------------------------------------------------

#[test]
fn g4_disabled_probes_are_declared_and_never_run() {
    let mut sim = Sim::new(Config::default());
    sim.reset(
        "r",
        r#"{"off": {"kind": "tcp", "mode": "disabled", "intervalSeconds": 5},
            "on": {"kind": "tcp", "mode": "observe", "intervalSeconds": 5}}"#,
    );
    sim.run_until(secs(60));
    let Event::TopologyDeclared(t) = &sim.seen[0] else {
        panic!()
    };
    assert_eq!(t.probes[0].mode, Mode::Disabled);
    assert!(sim.starts_of("off").is_empty());
    assert!(sim.seen.iter().all(|e| e.probe_name() != Some("off")));
    assert_eq!(sim.starts_of("on").len(), 13);
}

// ---- G5: floor ---------------------------------------------------------

#[test]
fn g5_interval_below_the_floor_runs_at_the_floor() {
    let mut sim = Sim::new(Config::default());
    sim.reset(
        "r",
        r#"{"fast": {"kind": "tcp", "mode": "observe", "intervalSeconds": 0},
            "one": {"kind": "tcp", "mode": "observe", "intervalSeconds": 1}}"#,
    );
    sim.run_until(secs(21));
    for p in ["fast", "one"] {
        let at: Vec<Duration> = sim.starts_of(p).iter().map(|s| s.2).collect();
        assert_eq!(at, [secs(0), secs(5), secs(10), secs(15), secs(20)], "{p}");
    }
}

#[test]
fn g5_a_late_start_leaves_the_next_slot_in_place() {
    let min = secs(5);
    let mut sim = Sim::new(Config {
        min_interval: min,
        stagger: false,
        ..Config::default()
    });
    // The first run starts 2 s late (busy pool).
    sim.start_delay = secs(2);
    sim.reset(
        "r",
        r#"{"p": {"kind": "tcp", "mode": "observe", "intervalSeconds": 5}}"#,
    );
    sim.run_until(Duration::from_millis(2500));
    sim.start_delay = Duration::ZERO;
    sim.run_until(secs(21));
    // The floor is on the period: slot 1 is still due at 5 s, and runs
    // then, 3 s after the late start. No slot is skipped and no run starts
    // before its slot.
    let starts = sim.starts_of("p");
    assert_eq!(
        starts,
        [
            (0, secs(0), secs(2)),
            (1, secs(5), secs(5)),
            (2, secs(10), secs(10)),
            (3, secs(15), secs(15)),
            (4, secs(20), secs(20)),
        ]
    );
    let late: Vec<(u64, u64)> = sim
        .results("p")
        .iter()
        .map(|r| (r.skipped_ticks, r.lateness_us))
        .collect();
    assert_eq!(late, [(0, 2_000_000), (0, 0), (0, 0), (0, 0), (0, 0)]);
}

#[test]
fn g5_custom_minimum_interval() {
    let mut sim = Sim::new(Config {
        min_interval: Duration::from_millis(200),
        stagger: false,
        ..Config::default()
    });
    sim.reset(
        "r",
        r#"{"p": {"kind": "tcp", "mode": "observe", "intervalSeconds": 0}}"#,
    );
    sim.run_until(Duration::from_millis(1000));
    assert_eq!(sim.starts_of("p").len(), 6);
}

#[test]
fn g5_lateness_does_not_accumulate_at_an_interval_equal_to_the_floor() {
    // Every run starts 300 µs after its slot (a worker's wake-up). Measured
    // from the previous *actual* start, the floor made each run wait for
    // its predecessor's lateness as well: 300, 600, 900 µs ... until a slot
    // was skipped. The floor is on the period: each run is as late as its
    // own wake-up.
    let mut sim = Sim::new(Config::default());
    sim.start_delay = Duration::from_micros(300);
    sim.reset(
        "r",
        r#"{"p": {"kind": "tcp", "mode": "observe", "intervalSeconds": 5}}"#,
    );
    sim.run_until(secs(5 * 100) - Duration::from_millis(1)); // slots 0..=99
    let r = sim.results("p");
    let got: Vec<(u64, u64, u64)> = r
        .iter()
        .map(|r| (r.tick, r.skipped_ticks, r.lateness_us))
        .collect();
    let want: Vec<(u64, u64, u64)> = (0..100).map(|k| (k, 0, 300)).collect();
    assert_eq!(got, want, "(tick, skippedTicks, latenessUs)");
}

/// A wake-up jitter for slot `tick`, in whole microseconds, a pure function
/// of `(seed, tick)`: mostly below 1 ms, sometimes up to 20 ms, rarely up
/// to `max_us`.
fn jitter_us(seed: u64, tick: u64, max_us: u64) -> u64 {
    // splitmix64
    let mut z = seed ^ tick.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let bound = match z % 100 {
        0 => max_us,
        1..=9 => 20_000,
        _ => 1_000,
    };
    (z >> 8) % bound.min(max_us)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// G5 at an interval equal to (or below) the 5 s floor, over 1,000
    /// slots, each run started late by a random wake-up jitter below the
    /// interval (small enough that the run is over before the next slot is
    /// handed over, else G6 would skip it): every run is late by exactly
    /// its own jitter, never its predecessors', and no slot is skipped.
    #[test]
    fn g5_random_jitter_never_accumulates_at_the_floor(
        interval_secs in 0u64..=5,
        lead_ms in proptest::prop_oneof![proptest::strategy::Just(0u64), proptest::strategy::Just(100)],
        seed in proptest::prelude::any::<u64>(),
    ) {
        const SLOTS: u64 = 1000;
        let floor = secs(5);
        let lead = Duration::from_millis(lead_ms);
        let took = Duration::from_millis(1);
        let max_us = (floor - lead - took).as_micros() as u64 - 1;
        let mut sim = Sim::new(Config { min_interval: floor, stagger: false, lead, ..Config::default() })
            .script(move |_, _| (took, RunnerOutcome::pass()));
        sim.start_jitter =
            Box::new(move |_, tick| Duration::from_micros(jitter_us(seed, tick, max_us)));
        sim.reset(
            "r",
            &format!(r#"{{"p": {{"kind": "tcp", "mode": "observe", "intervalSeconds": {interval_secs}}}}}"#),
        );
        sim.run_until(floor * SLOTS as u32 - lead - Duration::from_micros(1));
        let r = sim.results("p");
        proptest::prop_assert_eq!(r.len() as u64, SLOTS);
        let base = r[0].scheduled_at.unix_micros();
        for (k, res) in r.iter().enumerate() {
            let k = k as u64;
            proptest::prop_assert_eq!(res.tick, k);
            proptest::prop_assert_eq!(res.skipped_ticks, 0, "slot {} skipped", k);
            proptest::prop_assert_eq!(
                res.scheduled_at.unix_micros() - base,
                (k * 5_000_000) as i64,
                "slot {} not anchored", k
            );
            proptest::prop_assert_eq!(
                res.lateness_us,
                jitter_us(seed, k, max_us),
                "slot {} is late by more than its own jitter", k
            );
        }
        for (_, due, start) in sim.starts_of("p") {
            proptest::prop_assert!(start >= due, "a run started before its slot");
        }
        proptest::prop_assert_eq!(sim.s.counters().skipped_ticks, 0);
    }
}

// ---- G6: no overlap ----------------------------------------------------

#[test]
fn g6_a_slow_run_skips_ticks_instead_of_overlapping() {
    // Every run takes 12 s at a 5 s interval.
    let mut sim = Sim::new(Config::default()).script(|_, _| (secs(12), RunnerOutcome::pass()));
    sim.reset(
        "r",
        r#"{"slow": {"kind": "exec", "mode": "enforce", "intervalSeconds": 5}}"#,
    );
    sim.run_until(secs(61));
    let starts = sim.starts_of("slow");
    for w in starts.windows(2) {
        assert!(w[1].2 >= w[0].2 + secs(12), "overlap: {starts:?}");
    }
    // Runs at 0, 15, 30, 45, 60: ticks 0, 3, 6, 9, 12.
    let ticks: Vec<u64> = starts.iter().map(|s| s.0).collect();
    assert_eq!(ticks, [0, 3, 6, 9, 12]);
    let results = sim.results("slow");
    assert_eq!(results[0].skipped_ticks, 0);
    assert!(
        results[1..].iter().all(|r| r.skipped_ticks == 2),
        "{results:?}"
    );
    assert_eq!(sim.s.counters().skipped_ticks, 8);
}

// ---- G6 with run deadlines (`timeoutSecs`) -------------------------------

/// A custom kind bounded at 3 s, due every 5 s.
const BOUNDED: &str =
    r#"{"hung": {"kind": "custom", "mode": "enforce", "intervalSeconds": 5, "timeoutSecs": 3}}"#;

fn reason(r: &crate::event::ProbeResult) -> Option<&str> {
    r.failure_reason.as_deref()
}

#[test]
fn g6_a_run_cut_off_at_its_deadline_holds_its_slots_until_its_check_returns() {
    // Tick 0's check hangs until 23 s; later runs take 1 s. Runs are
    // handed over ahead of their slots: the deadline is still kept exactly.
    let config = Config {
        lead: Duration::from_millis(100),
        ..Config::default()
    };
    let mut sim = Sim::new(config).script(|_, tick| match tick {
        0 => (secs(23), RunnerOutcome::pass()),
        _ => (secs(1), RunnerOutcome::pass()),
    });
    sim.reset("r", BOUNDED);
    sim.run_until(secs(3) - Duration::from_micros(1));
    assert!(
        sim.results("hung").is_empty(),
        "cut off before its deadline"
    );

    // At the deadline: the failed result, at once.
    sim.run_until(secs(3));
    let rs = sim.results("hung");
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].status, Status::Fail);
    assert_eq!(reason(rs[0]), Some("timed out after 3 s"));
    assert_eq!((rs[0].tick, rs[0].skipped_ticks), (0, 0));
    assert_eq!(rs[0].duration_us, 3_000_000);
    assert_eq!(rs[0].consecutive, 1);

    // The check has not returned: slots 1-4 (5 s to 20 s) are skipped and
    // counted, nothing else is dispatched.
    sim.run_until(secs(22));
    assert_eq!(sim.results("hung").len(), 1);
    assert_eq!(sim.starts_of("hung").len(), 1);
    assert_eq!(sim.s.counters().skipped_ticks, 4);

    // It returns at 23 s: its pass is discarded, and slot 5 (25 s) runs,
    // counting the four skipped slots.
    sim.run_until(secs(24));
    assert_eq!(sim.results("hung").len(), 1, "a late outcome was used");
    sim.run_until(secs(31));
    let rs = sim.results("hung");
    assert_eq!(rs.len(), 3, "{rs:?}");
    assert_eq!((rs[1].tick, rs[1].skipped_ticks), (5, 4));
    assert_eq!(rs[1].status, Status::Pass);
    assert_eq!((rs[2].tick, rs[2].skipped_ticks), (6, 0));
    let ticks: Vec<u64> = sim.starts_of("hung").iter().map(|s| s.0).collect();
    assert_eq!(ticks, [0, 5, 6]);
    let c = sim.s.counters();
    assert_eq!((c.dispatched, c.results, c.stale_results), (3, 3, 0));
}

#[test]
fn a_cut_off_run_counts_for_the_verdict_at_its_deadline() {
    let mut sim = Sim::new(Config::default()).script(|_, _| (secs(60), RunnerOutcome::pass()));
    sim.reset("r", BOUNDED);
    sim.run_until(secs(3));
    let v = sim
        .seen
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::RolloutVerdict(v) => Some(v),
            _ => None,
        })
        .expect("a verdict");
    assert_eq!((v.verdict, v.decided), (Verdict::Unhealthy, true));
    assert_eq!(v.reason, "hung: timed out after 3 s");
}

#[test]
fn a_run_that_returns_in_time_is_not_cut_off_and_its_deadline_wakes_nobody() {
    let mut sim = Sim::new(Config::default()).script(|_, _| (secs(1), fail("down")));
    sim.reset("r", BOUNDED);
    sim.run_until(secs(2));
    // The next wake-up is the next slot, not the spent deadline at 3 s.
    assert_eq!(sim.s.poll_timeout(), Some(sim.t0 + secs(5)));
    sim.run_until(secs(21));
    let rs = sim.results("hung");
    assert_eq!(rs.len(), 5);
    assert!(rs.iter().all(|r| reason(r) == Some("down")), "{rs:?}");
    assert!(rs.iter().all(|r| r.skipped_ticks == 0));
}

#[test]
fn a_run_of_a_kind_without_engine_bound_is_never_cut_off() {
    // No `timeoutSecs` in the core's spec: a kind that bounds its own runs.
    let mut sim = Sim::new(Config::default()).script(|_, _| (secs(60), RunnerOutcome::pass()));
    sim.reset(
        "r",
        r#"{"p": {"kind": "exec", "mode": "enforce", "intervalSeconds": 5}}"#,
    );
    sim.run_until(secs(59));
    assert!(sim.results("p").is_empty());
    sim.run_until(secs(61));
    assert_eq!(sim.results("p")[0].status, Status::Pass);
}

#[test]
fn g6_a_late_return_from_an_older_generation_changes_nothing() {
    // Both generations' tick 0 hangs for 98 s; later runs take 1 s.
    let mut sim = Sim::new(Config::default()).script(|_, tick| match tick {
        0 => (secs(98), RunnerOutcome::pass()),
        _ => (secs(1), RunnerOutcome::pass()),
    });
    sim.reset("old", BOUNDED);
    sim.run_until(secs(4));
    sim.reset("new", BOUNDED); // at 4 s: the new tick 0 hangs until 102 s
    // The old check returns at 98 s: stale, and the new run stays in
    // flight, so its slot at 99 s is skipped too.
    sim.run_until(secs(101));
    assert_eq!(sim.s.counters().stale_results, 1);
    assert_eq!(sim.starts.len(), 2, "only the two tick-0 runs started");
    sim.run_until(secs(106));
    let by_gen = |g: u64| -> Vec<(u64, u64, Option<String>)> {
        sim.results("hung")
            .iter()
            .filter(|r| r.header.generation == g)
            .map(|r| (r.tick, r.skipped_ticks, r.failure_reason.clone()))
            .collect()
    };
    let cut = Some("timed out after 3 s".to_owned());
    assert_eq!(by_gen(1), [(0, 0, cut.clone())]);
    // Generation 2 slots: 4 s + 5k. Its check returned at 102 s, so the
    // next run is tick 20 at 104 s, with ticks 1-19 skipped.
    assert_eq!(by_gen(2), [(0, 0, cut), (20, 19, None)]);
}

// ---- G7: anchored schedule ---------------------------------------------

#[test]
fn g7_ticks_stay_anchored_with_slow_runs_and_late_starts() {
    let mut sim = Sim::new(Config::default()).script(|_, tick| {
        (
            Duration::from_millis(300 + 37 * tick),
            RunnerOutcome::pass(),
        )
    });
    sim.start_delay = Duration::from_micros(700);
    sim.reset(
        "r",
        r#"{"p": {"kind": "http", "mode": "enforce", "intervalSeconds": 7}}"#,
    );
    sim.run_until(secs(7 * 100));
    let starts = sim.starts_of("p");
    assert_eq!(starts.len(), 101);
    for (k, (tick, due, start)) in starts.iter().enumerate() {
        assert_eq!(*tick, k as u64);
        assert_eq!(*due, secs(7 * k as u64), "drift at tick {k}");
        assert_eq!(*start - *due, Duration::from_micros(700));
    }
    let r = sim.results("p");
    assert_eq!(r.len(), 100, "the run of tick 100 is still in flight");
    assert_eq!(r[99].lateness_us, 700);
    assert_eq!(r[99].duration_us, 300_000 + 37 * 99_000);
    let scheduled = r[99].scheduled_at.unix_micros() - r[0].scheduled_at.unix_micros();
    assert_eq!(scheduled, 693_000_000);
}

#[test]
fn g7_an_engine_that_wakes_late_skips_to_the_latest_slot() {
    let mut sim = Sim::new(Config::default());
    sim.reset(
        "r",
        r#"{"p": {"kind": "tcp", "mode": "enforce", "intervalSeconds": 10}}"#,
    );
    sim.run_until(secs(1));
    // The host was suspended: the next wake-up is at 47 s.
    sim.now = sim.t0 + secs(47);
    sim.pump();
    sim.run_until(secs(75));
    let starts = sim.starts_of("p");
    // One run for the missed slots, never a burst; slot 5 (50 s) is 10 s
    // after slot 4, so it runs on time although the late run started only
    // 3 s before it (G5 floors the period, not the gap between starts).
    assert_eq!(
        starts.iter().map(|s| (s.0, s.1, s.2)).collect::<Vec<_>>(),
        [
            (0, secs(0), secs(0)),
            (4, secs(40), secs(47)),
            (5, secs(50), secs(50)),
            (6, secs(60), secs(60)),
            (7, secs(70), secs(70))
        ],
    );
    let r = sim.results("p");
    assert_eq!(r[1].skipped_ticks, 3);
    assert_eq!(r[1].lateness_us, 7_000_000);
    assert_eq!(r[2].skipped_ticks, 0);
    assert_eq!(r[2].lateness_us, 0);
    assert_eq!(r[3].skipped_ticks, 0);
}

#[test]
fn g7_stagger_spreads_first_ticks_over_one_interval() {
    let mut sim = Sim::new(Config {
        min_interval: secs(5),
        stagger: true,
        ..Config::default()
    });
    sim.reset(
        "r",
        r#"{"a": {"kind": "tcp", "mode": "observe", "intervalSeconds": 8},
            "b": {"kind": "tcp", "mode": "disabled", "intervalSeconds": 8},
            "c": {"kind": "tcp", "mode": "observe", "intervalSeconds": 8},
            "d": {"kind": "tcp", "mode": "observe", "intervalSeconds": 8},
            "e": {"kind": "tcp", "mode": "observe", "intervalSeconds": 8}}"#,
    );
    sim.run_until(secs(17));
    let first: Vec<Duration> = ["a", "c", "d", "e"]
        .iter()
        .map(|p| sim.starts_of(p)[0].1)
        .collect();
    assert_eq!(first, [secs(0), secs(2), secs(4), secs(6)]);
    assert_eq!(sim.starts_of("c")[1].1, secs(10));
}

// ---- G8: runOnce -------------------------------------------------------

#[test]
fn g8_run_once_runs_exactly_once_per_generation() {
    let once =
        r#"{"once": {"kind": "exec", "mode": "enforce", "runOnce": true, "intervalSeconds": 5}}"#;
    let mut sim = Sim::new(Config::default()).script(|_, _| (secs(20), fail("nope")));
    sim.reset("r1", once);
    sim.run_until(secs(100));
    assert_eq!(sim.starts_of("once").len(), 1);
    assert_eq!(sim.results("once").len(), 1);
    assert_eq!(sim.results("once")[0].skipped_ticks, 0);
    sim.reset("r2", once);
    sim.run_until(secs(300));
    assert_eq!(sim.starts_of("once").len(), 2);
    assert_eq!(sim.s.poll_timeout(), None);
}

#[test]
fn g8_run_once_cancelled_by_a_reset_runs_again_in_the_new_generation() {
    let once = r#"{"once": {"kind": "exec", "mode": "enforce", "runOnce": true}}"#;
    let mut sim = Sim::new(Config::default()).script(|_, _| (secs(20), RunnerOutcome::pass()));
    sim.reset("r1", once);
    sim.run_until(secs(5));
    sim.reset("r2", once);
    sim.run_until(secs(60));
    assert_eq!(sim.starts_of("once").len(), 2);
    let r = sim.results("once");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].header.generation, 2);
}

// ---- G9: never blocked by the consumer ---------------------------------

#[test]
fn g9_a_stalled_consumer_gets_every_lifecycle_event_and_coalesced_results() {
    let mut sim = Sim::new(Config::default()).script(|name, tick| {
        let ok = name == "b" || tick % 3 != 1;
        let o = if ok { RunnerOutcome::pass() } else { fail("x") };
        (Duration::from_millis(1), o)
    });
    sim.s.sink_mut().capacity = 4;
    sim.consume = false;
    sim.reset("r", TWO);
    sim.run_until(Duration::from_millis(100_500)); // 11 runs each: ticks 0..=10
    // The engine kept dispatching on time while nobody read.
    assert_eq!(sim.starts_of("a").len(), 11);
    assert_eq!(sim.starts_of("b").len(), 11);
    assert!(sim.s.backlog() <= 3 * 2 + 1, "backlog {}", sim.s.backlog());
    sim.consume = true;
    sim.s.sink_mut().capacity = 1 << 20;
    sim.pump();
    let seqs: Vec<u64> = sim.seen.iter().map(Event::seq).collect();
    assert_eq!(
        seqs,
        (1..=sim.seen.len() as u64).collect::<Vec<_>>(),
        "seq gaps"
    );
    // Per probe: every result run is accounted for.
    for p in ["a", "b"] {
        let rs = sim.results(p);
        let accounted: u64 = rs.iter().map(|r| 1 + r.coalesced).sum();
        assert_eq!(accounted, 11, "{p}");
        let evs: Vec<&str> = sim
            .seen
            .iter()
            .filter(|e| e.probe_name() == Some(p))
            .map(Event::name)
            .collect();
        assert_eq!(evs[0], "probeObservedFirst", "{p}: {evs:?}");
        // Each failureFirst is followed (eventually) by a failing result
        // before any other failureFirst.
        let mut expect_fail_result = false;
        for e in sim.seen.iter().filter(|e| e.probe_name() == Some(p)) {
            match e {
                Event::ProbeFailureFirst(_) => {
                    assert!(!expect_fail_result, "{p}: two failureFirst in a row");
                    expect_fail_result = true;
                }
                Event::ProbeResult(r) => {
                    if expect_fail_result {
                        assert_eq!(r.status, Status::Fail);
                    }
                    expect_fail_result = false;
                }
                _ => {}
            }
        }
    }
    assert!(sim.s.outbox_counters().coalesced > 0);
    // The last result of each probe is the real latest one.
    assert_eq!(sim.results("a").last().unwrap().tick, 10);
    assert_eq!(sim.results("b").last().unwrap().tick, 10);
}

#[test]
fn g9_coalesced_result_after_a_new_failure_edge_keeps_order() {
    // pass, fail, pass, fail while nobody reads.
    let mut sim = Sim::new(Config::default()).script(|_, tick| {
        let o = if tick % 2 == 0 {
            RunnerOutcome::pass()
        } else {
            fail("x")
        };
        (Duration::from_millis(1), o)
    });
    sim.s.sink_mut().capacity = 1;
    sim.consume = false;
    sim.reset(
        "r",
        r#"{"p": {"kind": "tcp", "mode": "enforce", "intervalSeconds": 5}}"#,
    );
    sim.run_until(secs(16)); // ticks 0..=3
    sim.consume = true;
    sim.s.sink_mut().capacity = 100;
    sim.pump();
    let names: Vec<&str> = sim.seen.iter().map(Event::name).collect();
    assert_eq!(
        names,
        [
            "topologyDeclared",
            "rolloutVerdict",
            "probeObservedFirst",
            "probeFailureFirst",
            "probeResult",
            "rolloutVerdict"
        ]
    );
    let r = sim.results("p");
    assert_eq!(
        (r[0].tick, r[0].status, r[0].coalesced),
        (3, Status::Fail, 3)
    );
    let Event::ProbeFailureFirst(ff) = &sim.seen[3] else {
        unreachable!()
    };
    assert_eq!(Some(ff.first_failed_at), r[0].failing_since);
}

// ---- G11: determinism --------------------------------------------------

#[test]
fn g11_topology_keeps_the_declared_order_and_is_identical_for_the_same_file() {
    // The declarations come sorted by name (`decl`, G11); the core keeps
    // that order in the topology, whatever the probes' modes.
    let json = r#"{"Mid": {"kind": "http", "mode": "bogus"},
                   "alpha": {"kind": "exec", "mode": "enforce"},
                   "mid": {"kind": "http", "mode": "disabled"},
                   "zeta": {"kind": "tcp", "mode": "observe"}}"#;
    let payload = |sim: &Sim| {
        let Event::TopologyDeclared(t) = &sim.seen[0] else {
            panic!()
        };
        serde_json::to_string(&t.probes).unwrap()
    };
    let mut one = Sim::new(Config::default());
    one.reset("r", json);
    let mut two = Sim::new(Config::default());
    two.reset("r", json);
    assert_eq!(payload(&one), payload(&two));
    assert_eq!(
        payload(&one),
        r#"[{"probeName":"Mid","kind":"http","mode":"enforce"},{"probeName":"alpha","kind":"exec","mode":"enforce"},{"probeName":"mid","kind":"http","mode":"disabled"},{"probeName":"zeta","kind":"tcp","mode":"observe"}]"#
    );
}

// ---- G12: idle is idle -------------------------------------------------

#[test]
fn g12_no_probes_means_no_timeout_and_the_timeout_is_the_next_deadline() {
    let mut sim = Sim::new(Config::default());
    sim.reset("r", "{}");
    assert_eq!(sim.s.poll_timeout(), None);
    sim.reset(
        "r",
        r#"{"p": {"kind": "tcp", "mode": "observe", "intervalSeconds": 60}}"#,
    );
    sim.run_until(Duration::from_millis(10));
    assert_eq!(sim.s.poll_timeout(), Some(sim.t0 + secs(60)));
    // Between deadlines the core has nothing to do.
    sim.now = sim.t0 + secs(59);
    assert_eq!(sim.s.poll_dispatch(sim.now), None);
}

#[test]
fn g12_wake_ups_are_one_per_due_tick() {
    let mut sim =
        Sim::new(Config::default()).script(|_, _| (Duration::ZERO, RunnerOutcome::pass()));
    sim.reset("r", TWO);
    let mut wakes = 0;
    let end = sim.t0 + secs(100);
    while let Some(next) = sim.next_wake() {
        if next > end {
            break;
        }
        sim.now = next;
        sim.pump();
        wakes += 1;
    }
    // Both probes share deadlines 10 s apart: ticks at 10..=100.
    assert_eq!(wakes, 10);
}

// ---- misc --------------------------------------------------------------

#[test]
fn wall_times_follow_the_anchor() {
    let mut sim = Sim::new(Config::default());
    sim.start_delay = Duration::from_micros(250);
    sim.reset(
        "r",
        r#"{"p": {"kind": "tcp", "mode": "observe", "intervalSeconds": 10}}"#,
    );
    sim.run_until(secs(1));
    let r = &sim.results("p")[0];
    let base = wall0().duration_since(UNIX_EPOCH).unwrap().as_micros() as i64;
    assert_eq!(r.scheduled_at.unix_micros(), base);
    assert_eq!(r.observed_at.unix_micros(), base + 250);
    assert_eq!(r.lateness_us, 250);
    let Event::TopologyDeclared(t) = &sim.seen[0] else {
        panic!()
    };
    assert_eq!(t.declared_at.unix_micros(), base);
}

#[test]
fn every_event_carries_rollout_and_generation() {
    let mut sim = Sim::new(Config::default());
    sim.reset("stable@abc", TWO);
    sim.run_until(secs(15));
    assert!(
        sim.seen
            .iter()
            .all(|e| e.rollout_id() == "stable@abc" && e.generation() == 1)
    );
    sim.reset("stable@def", TWO);
    sim.run_until(secs(30));
    assert_eq!(sim.seen.last().unwrap().rollout_id(), "stable@def");
    assert_eq!(sim.s.generation(), 2);
}

#[test]
fn runs_are_handed_over_lead_early_and_start_on_time() {
    let lead = Duration::from_micros(200);
    let mut sim = Sim::new(Config {
        lead,
        ..Config::default()
    });
    sim.reset(
        "r",
        r#"{"p": {"kind": "tcp", "mode": "observe", "intervalSeconds": 10}}"#,
    );
    // The engine wakes `lead` before each slot.
    assert_eq!(sim.s.poll_timeout(), Some(sim.t0 + secs(10) - lead));
    sim.run_until(secs(31));
    let r = sim.results("p");
    assert_eq!(r.len(), 4);
    for (k, res) in r.iter().enumerate() {
        assert_eq!(res.tick, k as u64);
        assert_eq!(res.lateness_us, 0, "the worker waits for the slot itself");
    }
    // Dispatch times (the starts recorded by the Sim are the slots).
    let starts: Vec<Duration> = sim.starts_of("p").iter().map(|s| s.2).collect();
    assert_eq!(starts, [secs(0), secs(10), secs(20), secs(30)]);
}

#[test]
fn lead_never_lets_a_run_start_before_its_slot() {
    let mut sim = Sim::new(Config {
        lead: Duration::from_millis(2),
        ..Config::default()
    });
    sim.start_delay = Duration::from_micros(700);
    sim.reset(
        "r",
        r#"{"p": {"kind": "tcp", "mode": "observe", "intervalSeconds": 5}}"#,
    );
    sim.run_until(secs(21));
    let starts = sim.starts_of("p");
    assert_eq!(starts.len(), 5);
    for (k, (tick, due, start)) in starts.iter().enumerate() {
        assert_eq!((*tick, *due), (k as u64, secs(5 * k as u64)), "{starts:?}");
        assert_eq!(*start - *due, Duration::from_micros(700), "{starts:?}");
    }
}

#[test]
fn one_wake_up_hands_over_every_run_due_in_the_lead_window() {
    let lead = Duration::from_millis(2500);
    let mut sim = Sim::new(Config {
        lead,
        stagger: true,
        ..Config::default()
    });
    let decls: String = (0..10)
        .map(|i| format!(r#""p{i}": {{"kind": "tcp", "mode": "observe", "intervalSeconds": 10}}"#))
        .collect::<Vec<_>>()
        .join(",");
    sim.reset("r", &format!("{{{decls}}}"));
    // Slots fall due every second; the engine wakes every 2 s (four fifths
    // of the lead) and hands over what is due within the next 2.5 s.
    let mut wakes = Vec::new();
    let mut handed = Vec::new();
    while let Some(at) = sim.s.poll_timeout() {
        if at >= sim.t0 + secs(10) {
            break;
        }
        sim.now = at;
        wakes.push(at - sim.t0);
        while let Some(d) = sim.s.poll_dispatch(sim.now) {
            assert!(d.due >= sim.now, "{d:?}");
            assert!(d.due - sim.now <= lead);
            handed.push(d.due - sim.t0);
        }
    }
    assert_eq!(
        wakes,
        [secs(2), secs(4), secs(6), secs(8)],
        "slot 0..=2 were handed over at the reset"
    );
    assert_eq!(handed, (3..10).map(secs).collect::<Vec<_>>());
}

mod verdict;
