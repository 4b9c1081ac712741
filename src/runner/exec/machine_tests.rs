//! The exec run as a state machine, driven the way a worker drives it
//! ([`Harness`]): real processes and descriptors, and a clock the test
//! moves ahead where a deadline is what is tested.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use super::run::ORPHAN_REAP_LIMIT;
use super::tests::{
    PidFile, assert_dead, assert_group_gone, decl, live_members, proc_stat, reason, serial, sh,
    wait_for,
};
use super::*;
use crate::Status;
use crate::clock;
use crate::runner::RunnerOutcome;
use crate::runner::machine::Step;
use crate::runner::machine::testing::Harness;

const TRUNCATED: &str = "...[truncated]";

fn probe(fields: Value) -> ExecProbe {
    ExecProbe::from_decl(&decl(fields)).expect("valid declaration")
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Our children (by `/proc`) that are alive and run `comm`.
fn live_children_named(comm: &str) -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some(close) = stat.rfind(')') else {
                return false;
            };
            let name = &stat[stat.find('(').unwrap() + 1..close];
            let mut cols = stat[close + 1..].split_whitespace();
            let state = cols.next().unwrap_or("Z");
            let ppid = cols.next().unwrap_or("");
            name == comm && ppid == me && state != "Z"
        })
        .count()
}

/// G13: children that never exit are waited for on the poll (a pidfd and
/// a pipe each), not by a thread each. Every run asks to be called at its
/// deadline and not before: nothing wakes it in slices.
#[test]
fn children_that_never_exit_hold_no_thread() {
    let _s = serial();
    const RUNS: usize = 64;
    let p = probe(json!({"command": ["sleep", "60"], "timeoutSecs": 30}));
    let mut h = Harness::new();
    let before = threads();
    let t0 = clock::mono_now();
    let deadline = t0 + Duration::from_secs(30);
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        let (run, step) = h.start(&p, t0);
        assert_eq!(step, Step::Wait(deadline));
        runs.push(run);
    }
    wait_for("the sleepers", Duration::from_secs(10), || {
        live_children_named("sleep") >= RUNS
    });
    // A thread per run would add 64; other tests of this binary may start
    // a few of their own meanwhile.
    let after = threads();
    assert!(
        after < before + RUNS / 2,
        "threads went from {before} to {after} with {RUNS} waiting runs"
    );
    // A spurious call before the deadline changes nothing.
    let step = h.advance(&mut *runs[0], t0 + Duration::from_secs(1));
    assert_eq!(step, Step::Wait(deadline));
    for mut run in runs {
        let at = clock::mono_now();
        let step = h.cancel(&mut *run, at);
        let out = h.finish(&mut *run, step, Duration::ZERO, true);
        assert_eq!(reason(&out), "exec probe: cancelled");
    }
    wait_for("the sleepers to be gone", Duration::from_secs(5), || {
        live_children_named("sleep") == 0
    });
}

/// The timeout in virtual time: a call at the deadline kills the whole
/// group (a shell that ignores SIGTERM and its child) and reaps it.
#[test]
fn the_deadline_kills_and_reaps_the_group() {
    let _s = serial();
    let f = PidFile::new();
    let script = format!("echo $$ > {}; trap '' TERM; sleep 60 & wait", f.path());
    let p = probe(json!({"command": sh(&script), "timeoutSecs": 5}));
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let (mut run, step) = h.start(&p, t0);
    assert_eq!(step, Step::Wait(t0 + Duration::from_secs(5)));
    let pgid = f.pid();
    wait_for("the group's sleep", Duration::from_secs(5), || {
        live_members(pgid).len() >= 2
    });
    // Just before the deadline: still waiting.
    let step = h.advance(&mut *run, t0 + Duration::from_millis(4_999));
    assert_eq!(step, Step::Wait(t0 + Duration::from_secs(5)));
    assert_eq!(live_members(pgid).len(), 2);
    // At it: killed.
    let offset = Duration::from_secs(5);
    let step = h.advance(&mut *run, t0 + offset);
    let out = h.finish(&mut *run, step, offset, false);
    assert_eq!(
        reason(&out),
        "exec probe: timed out after 5 s (process group killed)"
    );
    // The leader is reaped (ours: no zombie either); its killed child,
    // PID 1's now, may be a zombie a moment longer.
    assert!(
        proc_stat(pgid).is_none(),
        "the leader {pgid} was not reaped"
    );
    assert_group_gone(pgid, Duration::from_secs(1));
}

/// A reset or shutdown: `cancel` kills the group at once and the run asks
/// to be looked at again within G2's 100 ms.
#[test]
fn cancel_kills_and_reaps_within_the_bound() {
    let _s = serial();
    let f = PidFile::new();
    let script = format!("echo $$ > {}; trap '' TERM; sleep 60 & wait", f.path());
    let p = probe(json!({"command": sh(&script), "timeoutSecs": 600}));
    let mut h = Harness::new();
    let (mut run, _) = h.start(&p, clock::mono_now());
    let pgid = f.pid();
    wait_for("the group's sleep", Duration::from_secs(5), || {
        live_members(pgid).len() >= 2
    });
    let at = clock::mono_now();
    let step = h.cancel(&mut *run, at);
    if let Step::Wait(until) = step {
        assert!(
            until <= at + ORPHAN_REAP_LIMIT,
            "asked to be called {:?} after the cancel",
            until - at
        );
    }
    // A second cancel while reaping is harmless.
    let step = match step {
        Step::Wait(_) => h.cancel(&mut *run, clock::mono_now()),
        done => done,
    };
    let out = h.finish(&mut *run, step, Duration::ZERO, true);
    assert_eq!(reason(&out), "exec probe: cancelled");
    assert!(proc_stat(pgid).is_none(), "the leader was not reaped");
    assert_group_gone(pgid, Duration::from_secs(1));
}

/// The leader exits at once; its child ignores SIGTERM and would live on.
#[test]
fn a_grandchild_that_ignores_sigterm_does_not_survive_its_leader() {
    let _s = serial();
    let leader = PidFile::new();
    let grandchild = PidFile::new();
    let script = format!(
        "echo $$ > {}; (trap '' TERM; sleep 60; :) & echo $! > {}; exit 0",
        leader.path(),
        grandchild.path()
    );
    let p = probe(json!({"command": sh(&script), "timeoutSecs": 60}));
    let out = Harness::new().run(&p, Duration::from_secs(10));
    assert_eq!(out, RunnerOutcome::pass());
    let pgid = leader.pid();
    assert_dead(grandchild.pid(), pgid, Duration::from_secs(2));
    assert_group_gone(pgid, Duration::from_secs(2));
}

/// The reason cap: a long stderr gives a reason with its end, within the cap,
/// marked as cut.
#[test]
fn a_long_stderr_gives_a_marked_reason_within_the_cap() {
    let _s = serial();
    let script = "head -c 5000 /dev/zero | tr '\\0' e >&2; echo fin >&2; exit 2";
    let out = Harness::new().run(
        &probe(json!({"command": sh(script)})),
        Duration::from_secs(10),
    );
    let r = reason(&out);
    let body = r.strip_suffix(TRUNCATED).unwrap_or_else(|| panic!("{r}"));
    assert!(body.len() <= MAX_REASON_BYTES, "{} bytes", body.len());
    assert!(
        body.starts_with("exec probe: exit code 2, expected 0; stderr: ...eee"),
        "{r}"
    );
    assert!(body.ends_with("eeefin"), "{r}");
    // And a short one is whole, without the marker.
    let out = Harness::new().run(
        &probe(json!({"command": sh("echo fin >&2; exit 2")})),
        Duration::from_secs(10),
    );
    assert_eq!(
        reason(&out),
        "exec probe: exit code 2, expected 0; stderr: fin"
    );
}

/// A scratch directory under the temp dir.
pub(super) struct Scratch(pub(super) PathBuf);

impl Scratch {
    pub(super) fn new(tag: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("probewheel-exec-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub(super) fn file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The exec reference: a file without `#!` is a failure, never run by `/bin/sh`
/// (the `execvp` fallback). The same file with `#!/bin/sh` does run, which
/// shows the marker would be there had a shell run it.
#[test]
fn an_executable_without_a_shebang_fails_and_is_not_run_by_sh() {
    let _s = serial();
    let dir = Scratch::new("enoexec");
    let marker = dir.0.join("ran");
    let body = format!("touch {}\nexit 0\n", marker.display());
    let bare = dir.file("bare", &body, 0o755);
    let out = Harness::new().run(
        &probe(json!({"command": [bare.to_str().unwrap()]})),
        Duration::from_secs(10),
    );
    assert_eq!(
        reason(&out),
        format!(
            "exec probe: spawn {}: Exec format error (os error 8) \
             (a file without `#!` is not run through a shell)",
            bare.display()
        )
    );
    assert!(!marker.exists(), "a shell ran the file");

    let script = dir.file("script", &format!("#!/bin/sh\n{body}"), 0o755);
    let out = Harness::new().run(
        &probe(json!({"command": [script.to_str().unwrap()]})),
        Duration::from_secs(10),
    );
    assert_eq!(out, RunnerOutcome::pass());
    assert!(marker.exists());
}

#[test]
fn the_program_is_looked_up_in_path_as_execvp_does() {
    let dir = Scratch::new("path");
    std::fs::create_dir_all(dir.0.join("a")).unwrap();
    std::fs::create_dir_all(dir.0.join("b")).unwrap();
    let not_exec = dir.file("a/prog", "#!/bin/sh\n", 0o644);
    let exec = dir.file("b/prog", "#!/bin/sh\n", 0o755);
    std::fs::create_dir_all(dir.0.join("a/dir")).unwrap();
    let path =
        |dirs: &[&str]| Some(std::env::join_paths(dirs.iter().map(|d| dir.0.join(d))).unwrap());
    let find = |prog: &str, p| find_program_errno(OsStr::new(prog), p);
    assert_eq!(find("prog", path(&["a", "b"])), Ok(exec.clone()));
    assert_eq!(find("prog", path(&["a"])), Err(libc::EACCES));
    assert_eq!(find("prog", path(&["missing"])), Err(libc::ENOENT));
    // A directory of that name is skipped.
    assert_eq!(find("dir", path(&["a"])), Err(libc::ENOENT));
    // With a slash: as given, unchecked (execve says what is wrong).
    assert_eq!(find(not_exec.to_str().unwrap(), None), Ok(not_exec.clone()));
}

fn find_program_errno(prog: &OsStr, path: Option<std::ffi::OsString>) -> Result<PathBuf, i32> {
    spawn::find_program(prog, path).map_err(|e| e.raw_os_error().unwrap())
}

/// The child starts with no signal blocked, although the thread that
/// spawned it blocks SIGTERM (the `probewheel` binary blocks it in every
/// thread to take it with `sigwait`).
#[test]
fn the_child_starts_with_an_empty_signal_mask() {
    let _s = serial();
    let blocked = crate::sys::signal::Blocked::sigterm();
    let out = Harness::new().run(
        &probe(json!({"command": sh("grep SigBlk /proc/self/status >&2; exit 1"), "expectExitCode": 0})),
        Duration::from_secs(10),
    );
    drop(blocked);
    assert_eq!(out.status(), Status::Fail);
    assert_eq!(
        reason(&out),
        "exec probe: exit code 1, expected 0; stderr: SigBlk:\t0000000000000000"
    );
}

/// A run that is cancelled before its first call spawns nothing (through
/// the registry's entry point, `machine`).
#[test]
fn cancelled_before_the_start_spawns_nothing() {
    let p =
        crate::runner::machine::testing::machine(&decl(json!({"command": ["/no/such"]}))).unwrap();
    let mut h = Harness::new();
    let mut run = p.start(clock::mono_now());
    let out = match h.cancel(&mut *run, clock::mono_now()) {
        Step::Done(out) => out,
        other => panic!("{other:?}"),
    };
    assert_eq!(reason(&out), "exec probe: cancelled");
}
