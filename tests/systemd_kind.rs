//! The `systemd` kind end to end, against a fake `systemctl` (the unit
//! tests' script, answering from files beside it): through the engine, a
//! unit that restarts fails its probe until the next reset; through
//! `probewheel once`, the fake is found on the child's `PATH` and each
//! reason reads as documented; through `probewheel check`, every field is
//! validated before anything runs.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::ffi::OsString;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::{TempDir, collect_until, probe_results};
use probewheel::{Builder, Status};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_probewheel");

/// The fake, written once: each [`Fake`] links to it, so no script is
/// being written while another test forks (`ETXTBSY`).
fn fake_script() -> &'static PathBuf {
    static SCRIPT: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    &SCRIPT
        .get_or_init(|| {
            use std::os::unix::fs::PermissionsExt;
            let dir = TempDir::new("systemd-fake");
            let path = dir.write(
                "fake-systemctl",
                include_str!("../src/runner/systemd/fake_systemctl.sh"),
            );
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            (dir, path)
        })
        .1
}

/// A directory holding `systemctl` (the fake) and its answers.
struct Fake(TempDir);

impl Fake {
    fn new(tag: &str) -> Fake {
        let dir = TempDir::new(tag);
        symlink(fake_script(), dir.path("systemctl")).unwrap();
        Fake(dir)
    }

    fn systemctl(&self) -> PathBuf {
        self.0.path("systemctl")
    }

    /// Replaces an answer whole (a run never reads half of one).
    fn set(&self, name: &str, text: &str) {
        let tmp = self.0.write(&format!("{name}.tmp"), text);
        std::fs::rename(tmp, self.0.path(name)).unwrap();
    }
}

fn show(active: &str, sub: &str, result: &str, n: u64, id: &str) -> String {
    format!(
        "LoadState=loaded\nActiveState={active}\nSubState={sub}\nResult={result}\n\
         NRestarts={n}\nInvocationID={id}\n"
    )
}

#[test]
fn a_unit_that_restarts_fails_until_the_next_reset() {
    let fake = Fake::new("systemd-restarts");
    fake.set("show", &show("active", "running", "success", 2, "a"));
    let decls = json!({"web": {"kind": "systemd", "mode": "enforce", "unit": "nginx",
                               "intervalSeconds": 0}})
    .to_string();
    let (engine, rx) = Builder::new()
        .declarations_json(decls)
        .min_interval(Duration::from_millis(50))
        .systemctl(fake.systemctl())
        .workers(1)
        .build()
        .unwrap();
    engine.reset("r1").unwrap();
    let passed = |status| {
        move |ev: &[probewheel::Event]| probe_results(ev, "web").iter().any(|r| r.status == status)
    };
    collect_until(&rx, Duration::from_secs(10), passed(Status::Pass));
    // It crashes and systemd restarts it: up again at the next run.
    fake.set("show", &show("active", "running", "success", 3, "b"));
    let events = collect_until(&rx, Duration::from_secs(10), passed(Status::Fail));
    let results = probe_results(&events, "web");
    let failed = results.last().unwrap();
    assert_eq!(
        failed.failure_reason.as_deref(),
        Some(
            "systemd probe: nginx.service restarted 1 time since the reset (maxRestarts 0); \
             now active (running)"
        )
    );
    assert_eq!(failed.header.generation, 1);
    // Still failing at the next runs of this generation.
    let events = collect_until(&rx, Duration::from_secs(10), |ev| {
        probe_results(ev, "web").len() >= 2
    });
    assert!(
        probe_results(&events, "web")
            .iter()
            .all(|r| r.status == Status::Fail || r.header.generation > 1),
        "{events:#?}"
    );
    // A reset starts the count over.
    engine.reset("r2").unwrap();
    let events = collect_until(&rx, Duration::from_secs(10), |ev| {
        probe_results(ev, "web")
            .iter()
            .filter(|r| r.header.generation == 2)
            .count()
            >= 2
    });
    engine.shutdown().unwrap();
    for r in probe_results(&events, "web") {
        if r.header.generation == 2 {
            assert_eq!(r.status, Status::Pass, "{r:?}");
        }
    }
}

/// `probewheel once` with `PATH` as given: the probe results by name.
fn once(config: &std::path::Path, path: OsString) -> (i32, Vec<(String, Option<String>)>) {
    let out = Command::new(BIN)
        .args(["once", "--config", config.to_str().unwrap()])
        .env("PATH", path)
        .output()
        .unwrap();
    let mut results: Vec<(String, Option<String>)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["event"] == "probeResult")
        .map(|v| {
            let reason = v["failureReason"].as_str().map(str::to_owned);
            (v["probeName"].as_str().unwrap().to_owned(), reason)
        })
        .collect();
    results.sort();
    (out.status.code().unwrap(), results)
}

#[test]
fn once_finds_systemctl_on_path_and_says_why_each_probe_failed() {
    let fake = Fake::new("systemd-once");
    fake.set(
        "show.nginx.service",
        &show("active", "running", "success", 0, "a"),
    );
    fake.set(
        "show.db.service",
        &show("failed", "failed", "exit-code", 0, "b"),
    );
    fake.set(
        "show",
        "LoadState=not-found\nActiveState=inactive\nSubState=dead\nResult=success\n\
         NRestarts=0\nInvocationID=\n",
    );
    fake.set(
        "failed",
        "foo.service loaded failed failed Foo\nbar.timer loaded failed failed Bar\n",
    );
    let config = fake.0.write(
        "probes.json",
        &json!({
            "up": {"kind": "systemd", "mode": "enforce", "unit": "nginx"},
            "down": {"kind": "systemd", "mode": "enforce", "unit": "db"},
            "gone": {"kind": "systemd", "mode": "enforce", "unit": "nope"},
            "host": {"kind": "systemd", "mode": "enforce", "noFailedUnits": true}
        })
        .to_string(),
    );
    let mut path = OsString::from(fake.0.0.as_os_str());
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    let (code, results) = once(&config, path);
    assert_eq!(code, 1);
    let reason = |s: &str| Some(s.to_owned());
    assert_eq!(
        results,
        [
            (
                "down".to_owned(),
                reason("systemd probe: db.service is failed (Result=exit-code), expected active")
            ),
            (
                "gone".to_owned(),
                reason("systemd probe: no unit nope.service (LoadState=not-found)")
            ),
            (
                "host".to_owned(),
                reason("systemd probe: 2 units failed: foo.service, bar.timer")
            ),
            ("up".to_owned(), None),
        ]
    );

    // No systemctl on PATH.
    let empty = TempDir::new("systemd-empty-path");
    let (code, results) = once(&config, empty.0.clone().into_os_string());
    assert_eq!(code, 1);
    let want = format!(
        "systemd probe: systemctl not found on PATH: {}",
        empty.0.display()
    );
    assert_eq!(results.len(), 4);
    for (name, reason) in results {
        assert_eq!(reason.as_deref(), Some(want.as_str()), "{name}");
    }
}

#[test]
fn check_validates_every_field() {
    let dir = TempDir::new("systemd-check");
    let config = dir.write(
        "check.json",
        &json!({
            "a": {"kind": "systemd", "mode": "enforce", "unit": "-x"},
            "b": {"kind": "systemd", "mode": "enforce", "unit": "nginx", "expectActive": "up"},
            "c": {"kind": "systemd", "mode": "enforce", "unit": "nginx", "maxRestarts": -1},
            "d": {"kind": "systemd", "mode": "enforce", "unit": "nginx", "noFailedUnits": 1},
            "e": {"kind": "systemd", "mode": "enforce"},
            "fine": {"kind": "systemd", "mode": "enforce", "unit": "nginx", "noFailedUnits": true,
                     "maxRestarts": 3, "expectActive": "active"}
        })
        .to_string(),
    );
    let (code, out) = common::check_file(BIN, &config);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "error: a: unit: starts with `-`, which systemctl would read as an option",
            "error: b: expectActive: expected one of active, inactive, failed, activating, \
             deactivating, reloading, maintenance, refreshing, got \"up\"",
            "error: c: maxRestarts: expected an integer from 0 to 4294967295, got -1",
            "error: d: noFailedUnits: expected true or false, got 1",
            "error: e: unit: required field is missing (unless noFailedUnits is true)",
        ]
    );
}

/// A reset while `systemctl` hangs kills it (G2), and the new generation's
/// run starts from nothing.
#[test]
fn a_reset_kills_a_hung_systemctl() {
    let fake = Fake::new("systemd-hang");
    fake.set("show.hang", "");
    let decls = json!({"web": {"kind": "systemd", "mode": "enforce", "unit": "nginx",
                               "timeoutSecs": 600}})
    .to_string();
    let (engine, rx) = Builder::new()
        .declarations_json(decls)
        .systemctl(fake.systemctl())
        .workers(1)
        .build()
        .unwrap();
    engine.reset("r1").unwrap();
    let pid = common::read_pid(&fake.0.path("show.pid"), Duration::from_secs(10));
    assert!(common::process_running(pid));
    std::fs::remove_file(fake.0.path("show.hang")).unwrap();
    fake.set("show", &show("active", "running", "success", 7, "a"));
    engine.reset("r2").unwrap();
    assert!(
        common::wait_until(Duration::from_secs(5), || !common::process_running(pid)),
        "the hung systemctl {pid} outlived the reset"
    );
    let events = collect_until(&rx, Duration::from_secs(10), |ev| {
        probe_results(ev, "web")
            .iter()
            .any(|r| r.header.generation == 2)
    });
    engine.shutdown().unwrap();
    let results = probe_results(&events, "web");
    assert_eq!(results.len(), 1, "the cancelled run reports nothing");
    assert_eq!(results[0].status, Status::Pass, "{:?}", results[0]);
}
