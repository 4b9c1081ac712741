//! Real processes. Every test that spawns takes [`serial`], so the fd count
//! of [`no_fd_leaks_over_a_batch_of_runs`] only sees its own runs (other
//! modules' tests may still hold a few fds; see that test).
//!
//! "Gone" means no live process: a killed grandchild is re-parented to PID 1,
//! which reaps it in its own time (on the test VM, `process_api` reaps about
//! every 2 s), so a zombie (`Z`) counts as gone.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::Status;
use crate::clock;
use crate::runner::RunnerOutcome;
use crate::runner::machine::testing;

const TRUNCATED: &str = "...[truncated]";

static SERIAL: Mutex<()> = Mutex::new(());

pub(crate) fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(super) fn decl(fields: Value) -> Declaration {
    let mut v = json!({"kind": "exec", "mode": "enforce"});
    v.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    Declaration::from_value("t", v)
}

fn check(fields: Value) -> Arc<dyn Machine> {
    testing::machine(&decl(fields)).expect("valid declaration")
}

fn field_error(fields: Value) -> String {
    match testing::machine(&decl(fields)) {
        Ok(_) => panic!("prepared an invalid declaration"),
        Err(e) => e,
    }
}

/// `limit` only guards against a hang.
fn run_within(check: &Arc<dyn Machine>, limit: Duration) -> RunnerOutcome {
    testing::run_once(&**check, limit)
}

fn run(check: &Arc<dyn Machine>) -> RunnerOutcome {
    run_within(check, Duration::from_secs(10))
}

pub(super) fn sh(script: &str) -> Value {
    json!(["sh", "-c", script])
}

/// A temporary file the test's shell writes a pid into.
pub(super) struct PidFile(PathBuf);

impl PidFile {
    pub(super) fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("probewheel-exec-{}-{n}.pid", std::process::id());
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        PidFile(path)
    }

    pub(super) fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }

    /// Waits (bounded) until the shell has written the whole line.
    pub(super) fn pid(&self) -> libc::pid_t {
        let mut pid = None;
        wait_for("the pid file", Duration::from_secs(5), || {
            pid = read_pid(&self.0);
            pid.is_some()
        });
        pid.unwrap()
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub(super) fn read_pid(path: &Path) -> Option<libc::pid_t> {
    let text = std::fs::read_to_string(path).ok()?;
    text.strip_suffix('\n')?.trim().parse().ok()
}

pub(crate) fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = clock::mono_now() + limit;
    while !cond() {
        assert!(clock::mono_now() < end, "timed out waiting for {what}");
        clock::sleep(Duration::from_millis(5));
    }
}

/// (state, pgrp) of a process from `/proc/<pid>/stat`, `None` if it is gone.
pub(crate) fn proc_stat(pid: libc::pid_t) -> Option<(char, libc::pid_t)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut cols = rest.split_whitespace();
    let state = cols.next()?.chars().next()?;
    let _ppid = cols.next()?;
    let pgrp = cols.next()?.parse().ok()?;
    Some((state, pgrp))
}

pub(super) fn is_live(state: char) -> bool {
    !matches!(state, 'Z' | 'X' | 'x')
}

/// Live (not zombie) processes whose process group is `pgid`.
pub(super) fn live_members(pgid: libc::pid_t) -> Vec<libc::pid_t> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|&pid| matches!(proc_stat(pid), Some((s, g)) if g == pgid && is_live(s)))
        .collect()
}

pub(super) fn assert_group_gone(pgid: libc::pid_t, limit: Duration) {
    let end = clock::mono_now() + limit;
    let left = loop {
        let left = live_members(pgid);
        if left.is_empty() || clock::mono_now() >= end {
            break left;
        }
        clock::sleep(Duration::from_millis(5));
    };
    assert!(left.is_empty(), "process group {pgid} still has {left:?}");
}

pub(super) fn assert_dead(pid: libc::pid_t, pgid: libc::pid_t, limit: Duration) {
    wait_for(
        &format!("pid {pid} to die"),
        limit,
        || !matches!(proc_stat(pid), Some((s, g)) if g == pgid && is_live(s)),
    );
}

pub(super) fn reason(out: &RunnerOutcome) -> &str {
    assert_eq!(out.status(), Status::Fail, "{out:?}");
    out.reason().unwrap()
}

#[test]
fn passes_when_the_exit_code_is_expected() {
    let _s = serial();
    assert_eq!(
        run(&check(json!({"command": ["true"]}))),
        RunnerOutcome::pass()
    );
    let out = run(&check(
        json!({"command": sh("exit 3"), "expectExitCode": 3}),
    ));
    assert_eq!(out, RunnerOutcome::pass());
}

#[test]
fn exit_code_mismatch_reports_the_stderr_tail() {
    let _s = serial();
    let out = run(&check(json!({"command": sh("echo boom >&2; exit 3")})));
    assert_eq!(
        reason(&out),
        "exec probe: exit code 3, expected 0; stderr: boom"
    );
    let out = run(&check(json!({"command": ["true"], "expectExitCode": 1})));
    assert_eq!(reason(&out), "exec probe: exit code 0, expected 1");
}

#[test]
fn a_string_command_is_split_on_whitespace_and_never_run_by_a_shell() {
    let _s = serial();
    let out = run(&check(json!({"command": " test\t2 -gt  1\n"})));
    assert_eq!(out, RunnerOutcome::pass());
    let out = run(&check(json!({"command": "test 1 -gt 2"})));
    assert_eq!(reason(&out), "exec probe: exit code 1, expected 0");
    // A shell would run `true` then `false`; argv[0] is the word `true;`.
    let out = run(&check(json!({"command": "true; false"})));
    assert!(
        reason(&out).starts_with("exec probe: spawn true;: "),
        "{out:?}"
    );
}

#[test]
fn spawn_failure_has_the_spawn_reason() {
    let _s = serial();
    let out = run(&check(json!({"command": ["/no/such", "arg"]})));
    assert_eq!(
        reason(&out),
        "exec probe: spawn /no/such: No such file or directory (os error 2)"
    );
}

#[test]
fn death_by_signal_is_reported() {
    let _s = serial();
    let out = run(&check(json!({"command": sh("kill -9 $$")})));
    assert_eq!(reason(&out), "exec probe: killed by signal 9");
}

#[test]
fn timeout_kills_a_group_that_ignores_sigterm() {
    let _s = serial();
    let f = PidFile::new();
    let script = format!("echo $$ > {}; trap '' TERM; sleep 60; exit 0", f.path());
    let c = check(json!({"command": sh(&script), "timeoutSecs": 1}));
    let out = run_within(&c, Duration::from_secs(5));
    assert_eq!(
        reason(&out),
        "exec probe: timed out after 1 s (process group killed)"
    );
    assert_group_gone(f.pid(), Duration::from_secs(2));
}

#[test]
fn a_grandchild_holding_stderr_neither_blocks_the_run_nor_survives() {
    let _s = serial();
    for script in [
        // Inherits stderr and sleeps.
        "sleep 60 & echo $! > {f}; exit 0",
        // Keeps writing to stderr after the leader exited.
        "(while :; do echo tick >&2; sleep 0.01; done) & echo $! > {f}; exit 0",
    ] {
        let f = PidFile::new();
        let script = script.replace("{f}", f.path());
        let c = check(json!({"command": sh(&script), "timeoutSecs": 60}));
        let out = run_within(&c, Duration::from_secs(5));
        assert_eq!(out, RunnerOutcome::pass(), "{script}");
        let grandchild = f.pid();
        let pgid = proc_stat(grandchild).map_or(grandchild, |(_, g)| g);
        assert_dead(grandchild, pgid, Duration::from_secs(2));
        assert_group_gone(pgid, Duration::from_secs(2));
    }
}

#[test]
fn a_grandchild_that_closed_stderr_does_not_survive() {
    let _s = serial();
    let f = PidFile::new();
    let script = format!(
        "echo $$ > {p}; sleep 60 2>&- & echo $! >> {p}; exit 1",
        p = f.path()
    );
    let c = check(json!({"command": sh(&script), "timeoutSecs": 60, "expectExitCode": 1}));
    let out = run_within(&c, Duration::from_secs(5));
    assert_eq!(out, RunnerOutcome::pass());
    let text = std::fs::read_to_string(&f.0).unwrap();
    let pids: Vec<libc::pid_t> = text.lines().map(|l| l.trim().parse().unwrap()).collect();
    let [pgid, grandchild] = pids[..] else {
        panic!("pid file: {text:?}")
    };
    assert_dead(grandchild, pgid, Duration::from_secs(2));
    assert_group_gone(pgid, Duration::from_secs(2));
}

#[test]
fn a_stderr_flood_keeps_only_the_end_and_says_it_was_cut() {
    let _s = serial();
    let script = "head -c 100000000 /dev/zero | tr '\\0' x >&2; echo END >&2; exit 1";
    let out = run_within(
        &check(json!({"command": sh(script)})),
        Duration::from_secs(60),
    );
    let r = reason(&out);
    assert!(
        r.starts_with("exec probe: exit code 1, expected 0; stderr: ...xxx"),
        "{r}"
    );
    let body = r.strip_suffix(TRUNCATED).unwrap_or_else(|| panic!("{r}"));
    assert!(body.ends_with("xxxEND"), "{r}");
    assert!(body.len() <= MAX_REASON_BYTES, "{} bytes", body.len());
}

#[test]
fn the_tail_stays_bounded() {
    let mut tail = Tail::default();
    let chunk = [b'y'; 700];
    for i in 0..20_000 {
        tail.push(&chunk[..1 + i % 700]);
    }
    tail.push(&[b'z'; 3000]);
    tail.push(b"end");
    assert_eq!(tail.buf.len(), STDERR_TAIL_BYTES);
    assert!(
        tail.buf.capacity() <= 4 * STDERR_TAIL_BYTES,
        "{}",
        tail.buf.capacity()
    );
    assert!(tail.cut);
    assert!(tail.buf.ends_with(b"zzzend"));
}

#[test]
fn the_reason_keeps_the_end_of_stderr_within_budget() {
    let tail = |s: &str, cut: bool| Tail {
        buf: s.as_bytes().to_vec(),
        cut,
    };
    let head = || "exec probe: exit code 1, expected 0".to_owned();
    assert_eq!(with_stderr(head(), &tail(" \n\t", false)), (head(), false));
    assert_eq!(
        with_stderr(head(), &tail("  oops\n", false)),
        (
            "exec probe: exit code 1, expected 0; stderr: oops".to_owned(),
            false
        )
    );
    // A cut in the middle of a character drops its remains.
    let halves = Tail {
        buf: vec![0x82, 0xAC, b'a', b'b', b'c'], // the end of a cut `€`
        cut: true,
    };
    assert_eq!(
        with_stderr(head(), &halves),
        (
            "exec probe: exit code 1, expected 0; stderr: ...abc".to_owned(),
            true
        )
    );
    let s = format!("{}€END", "é".repeat(600));
    let (r, cut) = with_stderr(head(), &tail(&s, false));
    assert!(cut);
    assert!(r.len() <= MAX_REASON_BYTES && r.len() >= MAX_REASON_BYTES - 3);
    assert!(r.ends_with("é€END"), "{r}");
    assert!(r.contains("; stderr: ...é"), "{r}");
}

/// The reason cap (crate docs, "Events") through the judge: a cut reason ends in the marker with at
/// most 512 bytes before it; one that fits is whole and unmarked.
#[test]
fn a_cut_reason_ends_in_the_marker_and_an_uncut_one_never_does() {
    let judge = |stderr: &[u8]| {
        let mut tail = Tail::default();
        tail.push(stderr);
        let output = CommandOutput::new(
            ["x".to_owned()].into(),
            CommandEnd::TimedOut,
            Head::default(),
            tail,
            Duration::from_secs(10),
        );
        output.outcome(0).reason().unwrap().to_owned()
    };
    let whole = judge(b"short\n");
    assert_eq!(
        whole,
        "exec probe: timed out after 10 s (process group killed); stderr: short"
    );
    // Fits in the reason but the tail lost its start: cut.
    let mut long = vec![b'a'; STDERR_TAIL_BYTES + 10];
    long.extend_from_slice(b"last words");
    let r = judge(&long);
    let body = r.strip_suffix(TRUNCATED).unwrap_or_else(|| panic!("{r}"));
    assert!(body.len() <= MAX_REASON_BYTES, "{}", body.len());
    assert!(body.ends_with("aaalast words"), "{r}");
    assert!(body.contains("; stderr: ...a"), "{r}");
    // A child that writes the marker itself does not make an uncut reason
    // look cut.
    let r = judge(TRUNCATED.as_bytes());
    assert!(r.ends_with(TRUNCATED), "{r}");
    assert!(r.ends_with(&format!("...[truncated{TRUNCATED}")), "{r}");
}

#[test]
fn no_fd_leaks_over_a_batch_of_runs() {
    let _s = serial();
    let count = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let checks = [
        check(json!({"command": ["true"]})),
        check(json!({"command": sh("echo boom >&2; exit 3")})),
        check(json!({"command": ["/no/such"]})),
        check(json!({"command": sh("kill -9 $$")})),
        check(json!({"command": sh("sleep 60 & exit 0")})),
        check(json!({"command": sh("sleep 60 2>&- & exit 0")})),
    ];
    // Warm up: the first run may open fds that live for the whole process.
    for c in &checks {
        run(c);
    }
    let before = count();
    for _ in 0..4 {
        for c in &checks {
            run(c);
        }
    }
    let after = count();
    // Other modules' tests (tcp, engine) run on other threads and may hold
    // a few fds at either count; a leak of one fd per run would show as 24.
    assert!(
        after <= before + 6,
        "open fds went from {before} to {after} over 24 runs"
    );
}

#[test]
fn defaults_and_limits() {
    let p = ExecProbe::from_decl(&decl(json!({"command": "a b", "expectExitCode": null}))).unwrap();
    let c = &p.spec;
    assert_eq!(*c.argv, ["a", "b"]);
    assert_eq!((c.judge, c.timeout_secs), (Judge::ExitCode(0), 10));
    let p = ExecProbe::from_decl(&decl(
        json!({"command": ["a b"], "expectExitCode": 255, "timeoutSecs": 86400}),
    ))
    .unwrap();
    let c = &p.spec;
    assert_eq!(*c.argv, ["a b"]);
    assert_eq!((c.judge, c.timeout_secs), (Judge::ExitCode(255), 86400));
}

#[test]
fn invalid_fields_name_the_field() {
    let command = "invalid declaration: field `command`: ";
    assert_eq!(
        field_error(json!({})),
        format!("{command}required field is missing")
    );
    assert_eq!(
        field_error(json!({"command": null})),
        format!("{command}required field is missing")
    );
    assert_eq!(
        field_error(json!({"command": []})),
        format!("{command}expected a non-empty command, got an empty one")
    );
    assert_eq!(
        field_error(json!({"command": " \t "})),
        format!("{command}expected a non-empty command, got an empty one")
    );
    assert_eq!(
        field_error(json!({"command": [1]})),
        format!("{command}expected an array of strings, element 0 is 1")
    );
    assert_eq!(
        field_error(json!({"command": ["ls", null]})),
        format!("{command}expected an array of strings, element 1 is null")
    );
    assert_eq!(
        field_error(json!({"command": 5})),
        format!("{command}expected an array of strings or a string, got 5")
    );
    assert_eq!(
        field_error(json!({"command": [""]})),
        format!("{command}the program (element 0) is empty")
    );
    assert_eq!(
        field_error(json!({"command": ["ls", "a\u{0}b"]})),
        format!("{command}element 1 contains a NUL byte")
    );
    assert_eq!(
        field_error(json!({"command": ["true"], "expectExitCode": 300})),
        "invalid declaration: field `expectExitCode`: expected an integer from 0 to 255, got 300"
    );
    assert_eq!(
        field_error(json!({"command": ["true"], "expectExitCode": -1})),
        "invalid declaration: field `expectExitCode`: expected an integer from 0 to 255, got -1"
    );
    assert_eq!(
        field_error(json!({"command": ["true"], "timeoutSecs": 0})),
        "invalid declaration: field `timeoutSecs`: expected an integer from 1 to 86400, got 0"
    );
    assert_eq!(
        field_error(json!({"command": ["true"], "timeoutSecs": 86401})),
        "invalid declaration: field `timeoutSecs`: expected an integer from 1 to 86400, got 86401"
    );
}

#[test]
fn check_warns_of_shell_syntax_in_a_string_command_only() {
    let d = crate::decl::parse(
        br#"{"sh": {"kind": "exec", "mode": "observe", "command": "test -f /a && echo 'ok'"},
             "argv": {"kind": "exec", "mode": "observe", "command": ["sh", "-c", "a && b"]},
             "plain": {"kind": "exec", "mode": "observe", "command": "test -f /a"}}"#,
    )
    .unwrap();
    assert_eq!(
        check_lines_of(&d),
        [
            "warning: sh: command: a string command is split on whitespace and never run by a \
             shell: '&' is passed literally; write an argv array (for shell syntax, \
             [\"/bin/sh\", \"-c\", \"...\"])"
        ]
    );
}

/// What `probewheel check` says of a declarations file, line by line.
pub(super) fn check_lines(file: &[u8]) -> Vec<String> {
    check_lines_of(&crate::decl::parse(file).unwrap())
}

fn check_lines_of(d: &crate::decl::Declarations) -> Vec<String> {
    let registry = crate::runner::Registry::builtin();
    crate::check::check(d, &registry, Duration::from_secs(5))
        .iter()
        .map(ToString::to_string)
        .collect()
}
