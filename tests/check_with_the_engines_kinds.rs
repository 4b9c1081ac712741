//! Linting declarations with exactly the kinds and the floor the engine
//! runs: `Builder::check` before `build`, `Engine::check` after, and the
//! same registry in both (what `probewheel check` uses).

use std::time::Duration;

use probewheel::engine::DEFAULT_MIN_INTERVAL;
use probewheel::runner::{FnRunner, Registry};
use probewheel::{Builder, RunnerOutcome, check, decl};

fn builder() -> Builder {
    Builder::new()
        .declarations_json("{}")
        .workers(1)
        .min_interval(Duration::from_secs(10))
        .runner("custom", FnRunner::new(|_| RunnerOutcome::pass()))
}

#[test]
fn the_engine_lints_with_its_own_kinds_and_floor() {
    let decls = decl::parse(
        br#"{
            "a": {"kind": "custom", "mode": "enforce", "intervalSeconds": 5},
            "b": {"kind": "nope", "mode": "observe"},
            "c": {"kind": "tcp", "mode": "observe", "port": 22}
        }"#,
    )
    .unwrap();
    let before = builder().check(&decls);
    let (engine, _events) = builder().build().unwrap();
    assert!(engine.registry().contains("custom"));
    assert!(engine.registry().contains("tcp"));
    let after = engine.check(&decls);
    assert_eq!(after, before);
    let lines: Vec<String> = after.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "warning: a: intervalSeconds: 5 s is below the minimum interval; the probe runs every 10 s",
            "error: b: kind: unknown probe kind 'nope'",
        ]
    );
    // The same registry by hand: the engine's, not the built-in one.
    assert_eq!(
        check::check(&decls, engine.registry(), Duration::from_secs(10)),
        after
    );
    let builtin = check::check(&decls, &Registry::builtin(), DEFAULT_MIN_INTERVAL);
    assert!(
        builtin
            .iter()
            .any(|f| f.probe == "a" && f.problem == "unknown probe kind 'custom'"),
        "{builtin:?}"
    );
    engine.shutdown().unwrap();
}
