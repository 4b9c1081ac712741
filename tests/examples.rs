//! The examples are documentation that runs: build them with the same
//! cargo and features as this test, run each with a short deadline of its
//! own, and check what they print.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

/// Longest a run may take before the test kills it and fails: the examples
/// stop themselves after a few seconds; this only bounds a hang.
const HANG: Duration = Duration::from_secs(60);

/// Builds the examples once (a no-op when `cargo test` already built them)
/// and returns their executables, read from cargo's JSON messages so that
/// any target directory or profile works.
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let mut features = Vec::new();
        if cfg!(feature = "cli") {
            features.push("cli");
        }
        if cfg!(feature = "evidence") {
            features.push("evidence");
        }
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--message-format=json", "--no-default-features"]);
        if !features.is_empty() {
            cargo.args(["--features", &features.join(",")]);
        }
        let out = cargo
            .args(["--example", "agent", "--example", "custom_kind"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo build");
        assert!(out.status.success(), "cargo build of the examples failed");
        let mut exes = HashMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let is_example = msg["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "example"));
            if let (true, Some(exe)) = (is_example, msg["executable"].as_str()) {
                let name = msg["target"]["name"].as_str().unwrap().to_owned();
                exes.insert(name, PathBuf::from(exe));
            }
        }
        exes
    });
    built
        .get(name)
        .unwrap_or_else(|| panic!("cargo built no example {name}: {built:?}"))
        .clone()
}

/// Runs an example to its end, or kills it and fails after [`HANG`].
fn run(name: &str, args: &[&str]) -> Output {
    let child = Command::new(example(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(HANG) {
        Ok(out) => out.expect("wait for the example"),
        Err(_) => {
            // SAFETY: kill(2) on the pid of our own child, not yet reaped
            // (its waiter is still blocked).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{name} {args:?} did not stop within {HANG:?}");
        }
    }
}

fn stdout_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn position(lines: &[String], what: &str) -> usize {
    lines
        .iter()
        .position(|l| l == what)
        .unwrap_or_else(|| panic!("no line {what:?} in:\n{}", lines.join("\n")))
}

/// The first line that starts with `prefix` and contains `needle`.
fn starting(lines: &[String], prefix: &str, needle: &str) -> usize {
    lines
        .iter()
        .position(|l| l.starts_with(prefix) && l.contains(needle))
        .unwrap_or_else(|| panic!("no line {prefix:?}...{needle:?} in:\n{}", lines.join("\n")))
}

#[test]
fn agent_gates_two_rollouts_and_reports_a_heartbeat() {
    let out = run(
        "agent",
        &[
            "--seconds",
            "4",
            "--rollout-after",
            "2",
            "--heartbeat-ms",
            "500",
        ],
    );
    let lines = stdout_lines(&out);
    let text = lines.join("\n");
    assert!(
        out.status.success(),
        "agent failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Generation 1: the one enforce probe (`engine-self`, exec `true`) is
    // awaited, then passes; observe probes fail without gating.
    let pending1 = starting(
        &lines,
        "agent: verdict rollout=demo@1 generation=1: pending: ",
        "engine-self",
    );
    let healthy1 = starting(
        &lines,
        "agent: verdict rollout=demo@1 generation=1: healthy: ",
        "",
    );
    assert!(pending1 < healthy1);
    assert!(
        lines.iter().any(|l| l.starts_with(
            "agent: result missing-tool observe fail exec probe: exit code 3, expected 0"
        )),
        "{text}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("legacy-check")),
        "a disabled probe ran:\n{text}"
    );

    // The reset: a new generation that is pending again until its own
    // result, and never a generation-1 verdict after it.
    let reset = position(&lines, "agent: reset to rollout demo@2");
    let pending2 = starting(
        &lines,
        "agent: verdict rollout=demo@2 generation=2: pending: ",
        "engine-self",
    );
    let healthy2 = starting(
        &lines,
        "agent: verdict rollout=demo@2 generation=2: healthy: ",
        "",
    );
    assert!(
        healthy1 < reset && reset < pending2 && pending2 < healthy2,
        "{text}"
    );
    assert!(
        !lines[reset..]
            .iter()
            .any(|l| l.contains("verdict") && l.contains("generation=1")),
        "{text}"
    );

    // Heartbeats come from engine.stats().
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("agent: heartbeat generation=2 probes=6 results=")),
        "{text}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("agent: stopped; generation=2 verdict: healthy")
    );
}

#[test]
fn agent_refuses_an_unknown_argument() {
    let out = run("agent", &["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown argument \"--bogus\""), "{err}");
    assert!(err.contains("usage: agent"), "{err}");
}

#[test]
fn custom_kind_validates_its_fields_and_honours_cancellation() {
    let out = run("custom_kind", &["--seconds", "2"]);
    let lines = stdout_lines(&out);
    let text = lines.join("\n");
    assert!(
        out.status.success(),
        "custom_kind failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("an event line is JSON"))
        .collect();
    assert_eq!(events[0]["event"], "topologyDeclared", "{text}");
    let result = |probe: &str| {
        events
            .iter()
            .find(|e| e["event"] == "probeResult" && e["probeName"] == probe)
            .unwrap_or_else(|| panic!("no result of {probe}:\n{text}"))
    };

    assert_eq!(result("kernel-is-linux")["status"], "pass");
    for (probe, reason) in [
        (
            "relative-path",
            "invalid declaration: field `path`: must be an absolute path, got \"etc/hosts\"",
        ),
        (
            "empty-needle",
            "invalid declaration: field `contains`: must not be empty",
        ),
        (
            "wait-too-long",
            "invalid declaration: field `waitSecs`: expected an integer from 0 to 600, got 3600",
        ),
    ] {
        let r = result(probe);
        assert_eq!(r["status"], "fail", "{probe}");
        assert_eq!(r["failureReason"], reason, "{probe}");
    }
    // Still waiting (up to 60 s) for its flag file when the example stops.
    assert!(
        !events
            .iter()
            .any(|e| e["event"] == "probeResult" && e["probeName"] == "flag-never-written"),
        "{text}"
    );

    // The verdict gates on the one enforce probe; shutdown cancels the
    // waiting run, which returns before shutdown does.
    let verdict = position(&lines, "custom_kind: verdict: healthy");
    let stopping = position(&lines, "custom_kind: shutting down");
    let cancelled = lines
        .iter()
        .position(|l| l.starts_with("custom_kind: flag-never-written: cancelled after "))
        .unwrap_or_else(|| panic!("the waiting run did not see its cancellation:\n{text}"));
    let stopped = position(&lines, "custom_kind: stopped");
    assert!(
        verdict < stopping && stopping < cancelled && cancelled < stopped,
        "{text}"
    );
}
