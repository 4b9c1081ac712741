//! A custom kind that runs a command with `runner::Command`, registered on
//! a real engine: at its timeout and on a reset the command's whole
//! process group (grandchild included) is killed and reaped before the
//! check returns; a normal exit gives its code and stderr tail.
//!
//! The engines are child subreapers, so killed grandchildren are
//! re-parented to this process and reaped by the run: "gone" below means
//! no `/proc` entry at all, not even a zombie.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TempDir, collect_until, probe_results, read_pid, wait_until};
use crossbeam_channel::{Receiver, Sender};
use probewheel::runner::{Command, CommandEnd};
use probewheel::{
    Builder, Check, Declaration, Engine, Event, FieldError, RunContext, Runner, RunnerOutcome,
    Status,
};

/// What a check saw when its command returned.
#[derive(Debug)]
struct Seen {
    probe: String,
    end: String,
    code: Option<i32>,
    stderr: String,
    /// The grandchild's pid (from the script's `child` file, if any) and
    /// whether it had no `/proc` entry left when `Command::run` returned.
    grandchild_gone: Option<(i32, bool)>,
}

/// The `sh` kind: `/bin/sh -c <script>` with `timeoutMs`, judged with
/// `expectExitCode` as an exec probe is; reports each output on `seen`.
struct ShKind {
    seen: Sender<Seen>,
}

struct ShCheck {
    command: Command,
    expect: i32,
    childfile: Option<String>,
    seen: Sender<Seen>,
}

impl Runner for ShKind {
    fn prepare(&self, decl: &Declaration) -> Result<Arc<dyn Check>, FieldError> {
        let script = decl.required_str("script")?;
        let timeout = decl.u64_in("timeoutMs", 1, 600_000)?.unwrap_or(10_000);
        let expect = decl.i64_in("expectExitCode", 0, 255)?.unwrap_or(0) as i32;
        Ok(Arc::new(ShCheck {
            command: Command::new(["/bin/sh", "-c", script])
                .timeout(Duration::from_millis(timeout)),
            expect,
            childfile: decl.str_field("childFile")?.map(str::to_owned),
            seen: self.seen.clone(),
        }))
    }

    fn extra_fields(&self) -> &[&str] {
        &["script", "timeoutMs", "expectExitCode", "childFile"]
    }
}

impl Check for ShCheck {
    fn run(&self, ctx: &RunContext<'_>) -> RunnerOutcome {
        let output = self.command.run(ctx);
        // Looked at before anything else: what `run` promised on return.
        let grandchild_gone = self.childfile.as_ref().and_then(|f| {
            let pid: i32 = std::fs::read_to_string(f).ok()?.trim().parse().ok()?;
            Some((pid, gone(pid)))
        });
        let end = match output.end() {
            CommandEnd::Exited(_) => "exited",
            CommandEnd::TimedOut => "timed out",
            CommandEnd::Cancelled => "cancelled",
            CommandEnd::SpawnFailed(_) => "spawn failed",
            CommandEnd::WaitFailed(_) => "wait failed",
            _ => "other",
        };
        let _ = self.seen.send(Seen {
            probe: ctx.probe_name().to_owned(),
            end: end.to_owned(),
            code: output.code(),
            stderr: String::from_utf8_lossy(output.stderr_tail()).into_owned(),
            grandchild_gone,
        });
        output.outcome(self.expect)
    }
}

/// No `/proc` entry: neither running nor a zombie.
fn gone(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// An engine reading `decls` from `d.json` in `dir` at every reset.
fn engine(dir: &TempDir, decls: &serde_json::Value) -> (Engine, Receiver<Event>, Receiver<Seen>) {
    let (tx, seen) = crossbeam_channel::unbounded();
    let (engine, events) = Builder::new()
        .declarations_path(dir.write("d.json", &decls.to_string()))
        .min_interval(Duration::from_millis(50))
        .runner("sh", ShKind { seen: tx })
        .child_subreaper(true)
        .build()
        .unwrap();
    (engine, events, seen)
}

fn next_seen(seen: &Receiver<Seen>, probe: &str) -> Seen {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let s = seen
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no run of {probe} returned within 10 s"));
        if s.probe == probe {
            return s;
        }
    }
}

/// A script that writes the shell's pid to `pid` and starts a background
/// grandchild that writes its own to `child`; both sleep for 30 s.
fn two_sleepers(dir: &TempDir) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let (pid, child) = (dir.path("pid"), dir.path("child"));
    let script = format!(
        "echo $$ > {p}; sleep 30 & echo $! > {c}; sleep 30",
        p = pid.display(),
        c = child.display()
    );
    (pid, child, script)
}

#[test]
fn at_its_timeout_the_group_and_its_grandchild_are_killed_and_reaped() {
    let dir = TempDir::new("command-timeout");
    let (pidfile, childfile, script) = two_sleepers(&dir);
    let decls = serde_json::json!({
        "slow": {"kind": "sh", "mode": "enforce", "runOnce": true, "script": script,
                 "timeoutMs": 700, "childFile": childfile},
    });
    let (engine, events, seen) = engine(&dir, &decls);
    engine.reset("one").unwrap();
    let shell = read_pid(&pidfile, Duration::from_secs(10));
    let sleeper = read_pid(&childfile, Duration::from_secs(10));
    assert!(!gone(shell) && !gone(sleeper));

    let s = next_seen(&seen, "slow");
    assert_eq!(s.end, "timed out", "{s:?}");
    assert_eq!(s.code, None);
    assert_eq!(
        s.grandchild_gone,
        Some((sleeper, true)),
        "grandchild not reaped by the time the run returned"
    );
    assert!(gone(shell), "shell {shell} still has a /proc entry");

    let evs = collect_until(&events, Duration::from_secs(10), |ev| {
        !probe_results(ev, "slow").is_empty()
    });
    let r = probe_results(&evs, "slow")[0];
    assert_eq!(r.status, Status::Fail);
    assert_eq!(
        r.failure_reason.as_deref(),
        Some("exec probe: timed out after 0.7 s (process group killed)")
    );
    engine.shutdown().unwrap();
}

#[test]
fn a_reset_cancels_the_run_and_the_grandchild_dies_within_the_bound() {
    let dir = TempDir::new("command-reset");
    let (pidfile, childfile, script) = two_sleepers(&dir);
    let decls = serde_json::json!({
        "stuck": {"kind": "sh", "mode": "enforce", "runOnce": true, "script": script,
                  "timeoutMs": 60_000, "childFile": childfile},
    });
    let (engine, events, seen) = engine(&dir, &decls);
    engine.reset("old").unwrap();
    let shell = read_pid(&pidfile, Duration::from_secs(10));
    let sleeper = read_pid(&childfile, Duration::from_secs(10));
    assert!(!gone(shell) && !gone(sleeper));

    // The new generation does not run it, so that the files stay the
    // cancelled run's.
    let disabled =
        serde_json::json!({"stuck": {"kind": "sh", "mode": "disabled", "script": "true"}});
    dir.write("d.json", &disabled.to_string());
    let reset_at = Instant::now();
    engine.reset("new").unwrap();
    assert!(
        wait_until(Duration::from_secs(2), || gone(shell) && gone(sleeper)),
        "shell {shell} or grandchild {sleeper} still has a /proc entry"
    );
    let took = reset_at.elapsed();
    // The kill follows within a cancel poll (10 ms) of the reset; the
    // bound is looser only to absorb a loaded machine.
    assert!(took < Duration::from_millis(800), "took {took:?}");

    let s = next_seen(&seen, "stuck");
    assert_eq!(s.end, "cancelled", "{s:?}");
    assert_eq!(s.code, None);
    assert_eq!(
        s.grandchild_gone,
        Some((sleeper, true)),
        "grandchild not reaped by the time the cancelled run returned"
    );

    // The cancelled run's outcome is never sent.
    let evs = collect_until(&events, Duration::from_secs(10), |ev| {
        ev.iter().any(|e| e.generation() == 2)
    });
    assert!(
        !evs.iter()
            .any(|e| e.generation() == 1 && e.name() == "probeResult"),
        "{evs:?}"
    );
    engine.shutdown().unwrap();
}

#[test]
fn a_normal_exit_gives_its_code_and_stderr_tail() {
    let dir = TempDir::new("command-exit");
    let decls = serde_json::json!({
        "three": {"kind": "sh", "mode": "enforce", "runOnce": true,
                  "script": "echo starting; echo boom >&2; exit 3"},
        "three-expected": {"kind": "sh", "mode": "enforce", "runOnce": true,
                           "script": "exit 3", "expectExitCode": 3},
    });
    let (engine, events, seen) = engine(&dir, &decls);
    engine.reset("one").unwrap();

    let s = next_seen(&seen, "three");
    assert_eq!(s.end, "exited", "{s:?}");
    assert_eq!(s.code, Some(3));
    // stdout is not captured; stderr is.
    assert_eq!(s.stderr, "boom\n");

    let evs = collect_until(&events, Duration::from_secs(10), |ev| {
        !probe_results(ev, "three").is_empty() && !probe_results(ev, "three-expected").is_empty()
    });
    let r = probe_results(&evs, "three")[0];
    assert_eq!(r.status, Status::Fail);
    assert_eq!(
        r.failure_reason.as_deref(),
        Some("exec probe: exit code 3, expected 0; stderr: boom")
    );
    let r = probe_results(&evs, "three-expected")[0];
    assert_eq!(r.status, Status::Pass, "{r:?}");
    assert_eq!(r.failure_reason, None);
    engine.shutdown().unwrap();
}
