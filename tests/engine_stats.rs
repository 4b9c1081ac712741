//! `Engine::stats` tells a busy engine (its thread runs but does not
//! answer in time) from a stopped one, and answers again once the engine
//! is free.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use probewheel::engine::ErrorKind;
use probewheel::{Builder, Check, Declaration, FieldError, RunContext, Runner, RunnerOutcome};

/// A kind whose `prepare` (on the engine thread, at a reset) says it has
/// started and then waits to be released: it holds the engine thread the
/// way a slow reset would.
struct HoldsTheEngine {
    entered: Sender<()>,
    release: Receiver<()>,
}

impl Runner for HoldsTheEngine {
    fn prepare(&self, _decl: &Declaration) -> Result<Arc<dyn Check>, FieldError> {
        let _ = self.entered.send(());
        // Bounded, so a failing test cannot leave the thread stuck.
        let _ = self.release.recv_timeout(Duration::from_secs(30));
        Ok(Arc::new(|_: &RunContext<'_>| RunnerOutcome::pass()))
    }
}

#[test]
fn a_busy_engine_is_reported_busy_not_stopped_and_answers_later() {
    let (entered_tx, entered) = crossbeam_channel::bounded(1);
    let (release, release_rx) = crossbeam_channel::bounded(1);
    let (engine, _events) = Builder::new()
        .declarations_json(r#"{"held": {"kind": "hold", "mode": "observe", "runOnce": true}}"#)
        .workers(1)
        .runner(
            "hold",
            HoldsTheEngine {
                entered: entered_tx,
                release: release_rx,
            },
        )
        .build()
        .unwrap();
    assert_eq!(engine.stats().unwrap().generation, 0);
    engine.reset("r1").unwrap();
    entered
        .recv_timeout(Duration::from_secs(10))
        .expect("the reset reaches prepare");

    let err = engine.stats_timeout(Duration::from_millis(50)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy);
    assert!(!err.is_stopped());
    assert!(err.to_string().contains("busy"), "{err}");

    release.send(()).unwrap();
    let stats = engine.stats().unwrap();
    assert_eq!(stats.generation, 1);
    assert_eq!(stats.rollout_id, "r1");
    engine.shutdown().unwrap();
}

#[test]
fn an_invalid_rollout_id_is_refused_and_changes_nothing() {
    let (engine, events) = Builder::new()
        .declarations_json(r#"{"p": {"kind": "pass", "mode": "observe", "runOnce": true}}"#)
        .workers(1)
        .runner(
            "pass",
            probewheel::runner::FnRunner::inline(|_| RunnerOutcome::pass()),
        )
        .build()
        .unwrap();
    let too_long = "r".repeat(257);
    for bad in ["", "two words", "tab\there", "caf\u{e9}", too_long.as_str()] {
        let err = engine.reset(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRolloutId, "{bad:?}");
        assert!(err.to_string().starts_with("a rollout id "), "{err}");
    }
    // The engine is where it was: no generation, no event.
    let stats = engine.stats().unwrap();
    assert_eq!((stats.generation, stats.events_sent), (0, 0));
    assert!(events.is_empty());
    // The first valid reset starts generation 1 with that id.
    engine.reset(&"r".repeat(256)).unwrap();
    let first = events.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(first.name(), "topologyDeclared");
    assert_eq!(first.generation(), 1);
    assert_eq!(first.rollout_id(), "r".repeat(256));
    engine.shutdown().unwrap();
}
