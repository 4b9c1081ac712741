//! [`Command`] in a custom check of an engine, with real processes: the
//! typed output and its outcome (more end-to-end tests are
//! `tests/custom_command.rs`).

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use crossbeam_channel::Receiver;
use serde_json::json;

use super::command::seconds;
use super::tests::{PidFile, assert_dead, assert_group_gone, reason, serial};
use super::*;
use crate::clock;
use crate::runner::{CancelState, FnRunner, RunContext, RunnerOutcome};
use crate::{Builder, Declarations, Engine};

const SH: &str = "/bin/sh";

/// An engine whose one probe runs `command` once per reset, from a check
/// of the given placement, on `workers` workers; each output comes on the
/// receiver.
fn engine_running(
    command: Command,
    inline: bool,
    workers: usize,
) -> (Engine, Receiver<CommandOutput>) {
    let (tx, outputs) = crossbeam_channel::unbounded();
    let check = move |ctx: &RunContext<'_>| {
        let _ = tx.send(command.run(ctx));
        RunnerOutcome::pass()
    };
    let runner = if inline {
        FnRunner::inline(check)
    } else {
        FnRunner::new(check)
    };
    let decl = Declaration::from_value(
        "cmd",
        json!({"kind": "cmd", "mode": "enforce", "runOnce": true, "timeoutSecs": 600}),
    );
    let (engine, _events) = Builder::new()
        .declarations(Declarations::from_declarations([decl]).unwrap())
        .runner("cmd", runner)
        .workers(workers)
        .build()
        .unwrap();
    engine.reset("test").unwrap();
    (engine, outputs)
}

fn output(outputs: &Receiver<CommandOutput>) -> CommandOutput {
    outputs
        .recv_timeout(Duration::from_secs(30))
        .expect("the check ran the command")
}

fn run(command: &Command) -> CommandOutput {
    let (engine, outputs) = engine_running(command.clone(), false, 1);
    let out = output(&outputs);
    engine.shutdown().unwrap();
    out
}

#[test]
fn an_exit_gives_its_code_and_the_stderr_tail() {
    let _s = serial();
    let out = run(&Command::new([SH, "-c", "echo boom >&2; exit 3"]));
    assert!(
        matches!(out.end(), CommandEnd::Exited(s) if s.code() == Some(3)),
        "{out:?}"
    );
    assert_eq!(out.code(), Some(3));
    assert_eq!(out.stderr_tail(), b"boom\n");
    assert!(!out.stderr_truncated());
    assert_eq!(
        reason(&out.outcome(0)),
        "exec probe: exit code 3, expected 0; stderr: boom"
    );
    assert_eq!(out.outcome(3), RunnerOutcome::pass());
}

#[test]
fn a_signal_is_not_an_exit_code() {
    let _s = serial();
    let out = run(&Command::new([SH, "-c", "kill -9 $$"]));
    assert!(
        matches!(out.end(), CommandEnd::Exited(s) if s.signal() == Some(9)),
        "{out:?}"
    );
    assert_eq!(out.code(), None);
    assert_eq!(reason(&out.outcome(0)), "exec probe: killed by signal 9");
}

#[test]
fn only_the_end_of_a_long_stderr_is_kept() {
    let _s = serial();
    let script = "head -c 5000 /dev/zero | tr '\\0' a >&2; echo END >&2; exit 1";
    let out = run(&Command::new([SH, "-c", script]));
    assert_eq!(out.stderr_tail().len(), STDERR_TAIL_BYTES);
    assert!(out.stderr_tail().ends_with(b"aaaEND\n"));
    assert!(out.stderr_truncated());
    let r = reason(&out.outcome(0)).to_owned();
    assert!(r.starts_with("exec probe: exit code 1, expected 0; stderr: ...a"));
    assert!(r.ends_with("aaaEND...[truncated]"), "{r}");
}

#[test]
fn stdout_is_kept_only_when_asked_for() {
    let _s = serial();
    let script = "echo out; echo err >&2";
    let out = run(&Command::new([SH, "-c", script]).keep_stdout(100));
    assert_eq!(out.stdout(), b"out\n");
    assert!(!out.stdout_truncated());
    assert_eq!(out.stderr_tail(), b"err\n");
    let out = run(&Command::new([SH, "-c", script]));
    assert_eq!(out.stdout(), b"");
    assert_eq!(out.stderr_tail(), b"err\n");
}

#[test]
fn a_flood_on_stdout_keeps_its_start_and_never_blocks_the_child() {
    let _s = serial();
    // Four pipe buffers' worth: the child ends only if the run keeps reading
    // past what it keeps.
    let script = "echo FIRST; head -c 300000 /dev/zero | tr '\\0' a; echo LAST >&2";
    let out = run(&Command::new([SH, "-c", script])
        .keep_stdout(8)
        .timeout(Duration::from_secs(20)));
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout(), b"FIRST\naa");
    assert!(out.stdout_truncated());
    assert_eq!(out.stderr_tail(), b"LAST\n");
}

#[test]
fn a_custom_check_judges_a_plugin_as_the_nagios_format_does() {
    let _s = serial();
    let plugin = "echo 'LOAD WARNING - load average: 5.00 | load1=5;4;8;0'; exit 1";
    let out = run(&Command::new([SH, "-c", plugin]).keep_stdout(8 * 1024));
    let warned = out.nagios_outcome(false);
    assert_eq!(
        reason(&warned),
        "exec probe: WARNING (exit 1): LOAD WARNING - load average: 5.00"
    );
    let passed = out.nagios_outcome(true);
    assert_eq!(passed.status(), crate::Status::Pass);
    for outcome in [&warned, &passed] {
        assert_eq!(outcome.perfdata().len(), 1);
        assert_eq!(outcome.perfdata()[0].label, "load1");
        assert_eq!(outcome.perfdata()[0].value, 5.0);
    }
}

#[test]
fn the_timeout_kills_the_whole_group() {
    let _s = serial();
    let (leader, child) = (PidFile::new(), PidFile::new());
    let script = format!(
        "echo $$ > {}; sleep 30 & echo $! > {}; sleep 30",
        leader.path(),
        child.path()
    );
    let command = Command::new([SH, "-c", &script]).timeout(Duration::from_millis(300));
    let started = clock::mono_now();
    let out = run(&command);
    let took = clock::mono_now() - started;
    assert!(matches!(out.end(), CommandEnd::TimedOut), "{out:?}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert_eq!(
        reason(&out.outcome(0)),
        "exec probe: timed out after 0.3 s (process group killed)"
    );
    // The grandchild was in the leader's group, which was killed.
    let pgid = leader.pid();
    assert_dead(child.pid(), pgid, Duration::from_secs(2));
    assert_group_gone(pgid, Duration::from_secs(2));
}

#[test]
fn cancelling_the_run_kills_the_group_and_returns() {
    let _s = serial();
    let leader = PidFile::new();
    let script = format!("echo $$ > {}; sleep 30 & sleep 30", leader.path());
    let command = Command::new([SH, "-c", &script]).timeout(Duration::from_secs(60));
    let (engine, outputs) = engine_running(command, false, 1);
    let pgid = leader.pid();
    engine.reset("again").unwrap();
    let out = output(&outputs);
    assert!(matches!(out.end(), CommandEnd::Cancelled), "{out:?}");
    assert_eq!(reason(&out.outcome(0)), "exec probe: cancelled");
    assert_group_gone(pgid, Duration::from_secs(2));
    engine.shutdown().unwrap();
}

#[test]
fn an_inline_check_runs_a_command_only_on_another_worker() {
    let _s = serial();
    for (workers, ran) in [(1, false), (2, true)] {
        let (engine, outputs) = engine_running(Command::new(["/bin/true"]), true, workers);
        let out = output(&outputs);
        engine.shutdown().unwrap();
        if ran {
            assert_eq!(out.code(), Some(0), "{out:?}");
        } else {
            assert!(matches!(out.end(), CommandEnd::WaitFailed(_)), "{out:?}");
            assert!(
                reason(&out.outcome(0)).contains("needs another worker"),
                "{out:?}"
            );
        }
    }
}

#[test]
fn a_cancelled_run_starts_nothing() {
    let cancel = CancelState::default();
    let ctx = RunContext::new("test", 0, clock::mono_now(), None, &cancel);
    cancel.set_shutdown();
    let out = Command::new(["/no/such"]).run(&ctx);
    assert!(matches!(out.end(), CommandEnd::Cancelled), "{out:?}");
}

#[test]
fn what_cannot_start_says_why() {
    let _s = serial();
    let out = run(&Command::new(["/no/such"]));
    assert!(
        matches!(out.end(), CommandEnd::SpawnFailed(e) if e.kind() == std::io::ErrorKind::NotFound),
        "{out:?}"
    );
    assert_eq!(
        reason(&out.outcome(0)),
        "exec probe: spawn /no/such: No such file or directory (os error 2)"
    );
    for argv in [vec![], vec![""]] {
        let out = run(&Command::new(argv));
        assert!(
            matches!(out.end(), CommandEnd::SpawnFailed(e) if e.kind() == std::io::ErrorKind::InvalidInput),
            "{out:?}"
        );
        assert_eq!(
            reason(&out.outcome(0)),
            "exec probe: spawn: an empty command"
        );
    }
    let out = run(&Command::new(["/bin/echo", "a\0b"]));
    assert_eq!(
        reason(&out.outcome(0)),
        "exec probe: spawn /bin/echo: a NUL byte in the command"
    );
}

#[test]
fn timeouts_read_as_seconds() {
    assert_eq!(seconds(Duration::from_secs(10)), "10 s");
    assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
    assert_eq!(seconds(Duration::from_millis(250)), "0.25 s");
    assert_eq!(seconds(Duration::from_micros(1)), "0.001 s");
    assert_eq!(seconds(Duration::ZERO), "0 s");
}

#[test]
fn a_timeout_beyond_the_clock_is_no_timeout() {
    let _s = serial();
    let out = run(&Command::new(["/bin/true"]).timeout(Duration::MAX));
    assert_eq!(out.code(), Some(0), "{out:?}");
}
