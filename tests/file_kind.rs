//! The `file` kind through the engine and through `probewheel check`: a
//! fresh heartbeat passes, a stale one fails with its age, and a relative
//! `path` is an error before anything runs.

#![allow(clippy::disallowed_methods)] // end-to-end tests age files on the real clock

mod common;

use std::fs::File;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{TempDir, collect_until, probe_results};
use probewheel::{Builder, Status};
use serde_json::json;

/// Sets the modification time of `path` to `ago` before now.
fn age(path: &Path, ago: Duration) {
    let file = File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - ago).unwrap();
}

#[test]
fn a_fresh_heartbeat_passes_and_a_stale_one_fails_with_its_age() {
    let dir = TempDir::new("file-kind");
    let fresh = dir.write("fresh", "ok\n");
    let stale = dir.write("stale", "ok\n");
    age(&stale, Duration::from_secs(7200));
    let probe = |path: &Path| {
        json!({"kind": "file", "mode": "enforce", "runOnce": true,
               "path": path, "maxAgeSeconds": 3600, "contains": "ok"})
    };
    let decls = json!({"fresh": probe(&fresh), "stale": probe(&stale)}).to_string();
    let (engine, rx) = Builder::new()
        .declarations_json(&decls)
        .workers(1)
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    let events = collect_until(&rx, Duration::from_secs(5), |ev| {
        probe_results(ev, "fresh").len() == 1 && probe_results(ev, "stale").len() == 1
    });
    engine.shutdown().unwrap();

    let fresh = probe_results(&events, "fresh")[0];
    assert_eq!(fresh.status, Status::Pass, "{fresh:?}");
    let stale_result = probe_results(&events, "stale")[0];
    assert_eq!(stale_result.status, Status::Fail);
    let reason = stale_result.failure_reason.as_deref().unwrap();
    // 7,200 s, or a second more if the clock ticked over in between.
    let prefix = format!("file probe: {} is 7,20", stale.display());
    assert!(reason.starts_with(&prefix), "{reason}");
    assert!(
        reason.ends_with(" s old, older than maxAgeSeconds 3600"),
        "{reason}"
    );
}

#[test]
fn check_refuses_a_relative_path() {
    let dir = TempDir::new("file-kind-check");
    let config = dir.write(
        "check.json",
        r#"{"beat": {"kind": "file", "mode": "enforce", "path": "run/heartbeat"},
            "fine": {"kind": "file", "mode": "enforce", "path": "/run/heartbeat"}}"#,
    );
    let (code, out) = common::check_file(env!("CARGO_BIN_EXE_probewheel"), &config);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["error: beat: path: \"run/heartbeat\" is not an absolute path"]
    );
}
