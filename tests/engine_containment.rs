//! Nothing an embedder supplies stops the engine: a runner whose `prepare`
//! panics, a resolver that panics, and `Builder` settings out of range
//! (an event capacity too large to allocate, a thread name with a NUL
//! byte) end in a failing probe or a configuration error, never in a dead
//! engine thread or a panic in the caller.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Fake, collect_until, probe_results, threads_named, wait_until};
use probewheel::engine::{ErrorKind, MAX_EVENTS_CAPACITY};
use probewheel::runner::{Check, Runner};
use probewheel::{Builder, Declaration, Event, FieldError, Status};

const FLOOR: Duration = Duration::from_millis(20);

/// A kind whose `prepare` panics.
struct PanicsInPrepare;

impl Runner for PanicsInPrepare {
    fn prepare(&self, _decl: &Declaration) -> Result<Arc<dyn Check>, FieldError> {
        panic!("prepare exploded")
    }
}

#[test]
fn a_runner_that_panics_in_prepare_fails_its_probe_and_the_engine_lives() {
    let decls = r#"{
        "boom": {"kind": "bad", "mode": "enforce", "intervalSeconds": 0},
        "calm": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0}
    }"#;
    let (engine, rx) = Builder::new()
        .declarations_json(decls)
        .workers(1)
        .min_interval(FLOOR)
        .thread_name("ec-prepare")
        .runner("fake", Fake::default())
        .runner("bad", PanicsInPrepare)
        .build()
        .unwrap();
    for (generation, rollout) in [(1, "r1"), (2, "r2")] {
        assert_eq!(engine.reset(rollout).unwrap(), generation);
        let events = collect_until(&rx, Duration::from_secs(10), |ev| {
            ["boom", "calm"].iter().all(|p| {
                ev.iter()
                    .filter(|e| {
                        e.name() == "probeResult"
                            && e.probe_name() == Some(p)
                            && e.header().generation == generation
                    })
                    .count()
                    >= 3
            })
        });
        let topology = events
            .iter()
            .find_map(|e| match e {
                Event::TopologyDeclared(t) if t.header.generation == generation => Some(t),
                _ => None,
            })
            .expect("a topology for the generation");
        let names: Vec<&str> = topology.probes.iter().map(|p| &*p.probe_name).collect();
        assert_eq!(names, ["boom", "calm"]);
        let current: Vec<Event> = events
            .into_iter()
            .filter(|e| e.header().generation == generation)
            .collect();
        for r in probe_results(&current, "boom") {
            assert_eq!(r.status, Status::Fail);
            assert_eq!(
                r.failure_reason.as_deref(),
                Some("runner panicked in prepare: prepare exploded")
            );
        }
        assert!(
            probe_results(&current, "calm")
                .iter()
                .all(|r| r.status == Status::Pass)
        );
    }
    assert_eq!(engine.stats().unwrap().generation, 2);
    engine.shutdown().unwrap();
    let mut left = Vec::new();
    assert!(
        wait_until(Duration::from_secs(2), || {
            left = threads_named("ec-prepare-");
            left.is_empty()
        }),
        "{left:?}"
    );
}

#[test]
fn a_resolver_that_panics_fails_that_lookup_and_the_next_ones_run() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Panics at its first five lookups (more than the resolver threads),
    // then answers with the listener.
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let resolver = move |_host: &str, port: u16| {
        if seen.fetch_add(1, Ordering::SeqCst) < 5 {
            panic!("resolver exploded");
        }
        Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
    };
    let decls = format!(
        r#"{{"named": {{"kind": "tcp", "mode": "enforce", "intervalSeconds": 0,
            "host": "svc.test", "port": {port}, "connectTimeoutSecs": 1}}}}"#
    );
    let (engine, rx) = Builder::new()
        .declarations_json(decls)
        .workers(1)
        .min_interval(FLOOR)
        .thread_name("ec-resolve")
        .resolver(resolver)
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    let events = collect_until(&rx, Duration::from_secs(10), |ev| {
        probe_results(ev, "named")
            .iter()
            .any(|r| r.status == Status::Pass)
    });
    engine.shutdown().unwrap();
    let rs = probe_results(&events, "named");
    let panicked =
        format!("tcp probe: resolve svc.test:{port}: resolver panicked: resolver exploded");
    let fails: Vec<_> = rs.iter().filter(|r| r.status == Status::Fail).collect();
    assert_eq!(fails.len(), 5, "{rs:#?}");
    for r in fails {
        assert_eq!(r.failure_reason.as_deref(), Some(panicked.as_str()));
    }
    drop(listener);
}

#[test]
fn an_event_capacity_above_the_maximum_is_a_configuration_error() {
    for n in [MAX_EVENTS_CAPACITY + 1, 1 << 40, usize::MAX] {
        let err = Builder::new()
            .declarations_json("{}")
            .events_capacity(n)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{n}: {err}");
        assert_eq!(
            err.to_string(),
            format!(
                "invalid engine configuration: events capacity must be at most {MAX_EVENTS_CAPACITY}"
            )
        );
    }
    let (engine, _rx) = Builder::new()
        .declarations_json("{}")
        .events_capacity(MAX_EVENTS_CAPACITY)
        .build()
        .unwrap();
    engine.shutdown().unwrap();
}

#[test]
fn a_thread_name_with_a_nul_byte_is_a_configuration_error() {
    let err = Builder::new()
        .declarations_json("{}")
        .thread_name("pw\0x")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(
        err.to_string(),
        "invalid engine configuration: the thread name prefix must not contain a NUL byte"
    );
}
