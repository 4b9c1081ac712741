//! Hostile `exec` probes: a child that floods stderr, one that leaves
//! grandchildren behind, one that ignores SIGTERM, one that closes stderr
//! and keeps running. Each time: a bounded reason, every process gone
//! (after the timeout, a reset and shutdown), no zombie, and no file
//! descriptor left open in the test process.
//!
//! The tests of this file count this process's fds and children, so they
//! run one at a time (`SERIAL`); other test binaries are other processes.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{
    TempDir, collect_until, fd_targets, open_fds, our_children, process_running, read_pid,
    running_in, wait_until,
};
use probewheel::event::ProbeResult;
use probewheel::{Builder, Engine, Event, Status};

static SERIAL: Mutex<()> = Mutex::new(());

const MARKER: &str = "...[truncated]";
const MAX_REASON: usize = 512;

/// Serialises the tests and checks, around each one, that the engine left
/// no fd open and no child (running or zombie) behind.
struct Clean {
    _serial: MutexGuard<'static, ()>,
    fds: usize,
    dir: TempDir,
}

impl Clean {
    fn start(tag: &str) -> Clean {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            wait_until(Duration::from_secs(5), || our_children().is_empty()),
            "children left by an earlier test: {:?}",
            our_children()
        );
        let dir = TempDir::new(tag);
        Clean {
            _serial: serial,
            fds: open_fds(),
            dir,
        }
    }

    /// The temp dir as the kernel reports it (for `/proc/<pid>/cwd`).
    fn cwd(&self) -> PathBuf {
        self.dir.0.canonicalize().unwrap()
    }

    /// `sh -c` that first moves into the temp dir, so the script's
    /// descendants can be found by their working directory.
    fn sh(&self, script: &str) -> serde_json::Value {
        serde_json::json!([
            "sh",
            "-c",
            format!("cd {} || exit 99; {script}", self.cwd().display())
        ])
    }

    fn engine(&self, decls: &serde_json::Value) -> (Engine, crossbeam_channel::Receiver<Event>) {
        Builder::new()
            .declarations_path(self.dir.write("d.json", &decls.to_string()))
            .workers(3)
            .min_interval(Duration::from_millis(20))
            .build()
            .unwrap()
    }

    /// After shutdown: nothing of the probes runs, no child of ours is
    /// left (not even a zombie), and the fd count is back where it was.
    fn finish(self) {
        let cwd = self.cwd();
        assert!(
            wait_until(Duration::from_secs(2), || running_in(&cwd).is_empty()),
            "processes of the probes survived: {:?}",
            running_in(&cwd)
        );
        assert!(
            wait_until(Duration::from_secs(2), || our_children().is_empty()),
            "children left (a zombie means an unreaped child): {:?}",
            our_children()
        );
        // A leak only ever adds descriptors. (The test harness may hold a
        // transient one of its own when a test starts, so "fewer" is fine.)
        let mut fds = 0;
        let back = wait_until(Duration::from_secs(2), || {
            fds = open_fds();
            fds <= self.fds
        });
        assert!(
            back,
            "fd count {} before, {fds} after: {:?}",
            self.fds,
            fd_targets(std::process::id() as i32)
        );
    }
}

fn result_of<'a>(events: &'a [Event], probe: &str) -> &'a ProbeResult {
    events
        .iter()
        .find_map(|e| match e {
            Event::ProbeResult(r) if &*r.probe_name == probe => Some(r),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no result for {probe}"))
}

fn assert_bounded(reason: &str) {
    let body = reason.strip_suffix(MARKER).unwrap_or(reason);
    assert!(
        body.len() <= MAX_REASON,
        "reason of {} bytes: {reason:?}",
        reason.len()
    );
}

/// The command name of a process.
fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Fds of this process (3 and up) that a child inherits: no FD_CLOEXEC.
fn inheritable_fds() -> Vec<i32> {
    fd_targets(std::process::id() as i32)
        .into_iter()
        .map(|(fd, _)| fd)
        .filter(|&fd| fd > 2)
        .filter(|&fd| {
            // SAFETY: F_GETFD on a number only reads flags; a closed fd
            // gives -1.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            flags >= 0 && flags & libc::FD_CLOEXEC == 0
        })
        .collect()
}

fn gone(pid: i32) -> bool {
    !process_running(pid)
}

#[test]
fn a_stderr_flood_gives_a_bounded_reason_with_the_tail() {
    let t = Clean::start("exec-flood");
    let decls = serde_json::json!({
        // 100 MB of stderr, then the line that matters, then a failure.
        "flood": {"kind": "exec", "mode": "enforce", "runOnce": true, "timeoutSecs": 120,
            "command": t.sh("head -c 100000000 /dev/zero | tr '\\0' x >&2; \
                             echo 'the real error' >&2; exit 3")},
        // An endless flood: the timeout must still be seen.
        "endless": {"kind": "exec", "mode": "enforce", "runOnce": true, "timeoutSecs": 1,
            "command": t.sh("echo $$ > endless.pid; exec yes 'flood é' >&2")},
    });
    let (engine, rx) = t.engine(&decls);
    engine.reset("r").unwrap();
    let endless = read_pid(&t.dir.path("endless.pid"), Duration::from_secs(10));
    let events = collect_until(&rx, Duration::from_secs(60), |ev| {
        common::results(ev, None) == 2
    });

    let flood = result_of(&events, "flood");
    let reason = flood.failure_reason.as_deref().unwrap();
    assert_bounded(reason);
    assert!(
        reason.starts_with("exec probe: exit code 3, expected 0; stderr: ..."),
        "{reason:?}"
    );
    // The start of stderr was dropped: the reason says so at its end
    // (crate docs, "Events"), right after the end of stderr.
    assert!(
        reason.ends_with(&format!("xxxxthe real error{MARKER}")),
        "{reason:?}"
    );

    let endless_r = result_of(&events, "endless");
    let reason = endless_r.failure_reason.as_deref().unwrap();
    assert_bounded(reason);
    assert!(
        reason.starts_with("exec probe: timed out after 1 s (process group killed); stderr: ..."),
        "{reason:?}"
    );
    assert!(reason.ends_with(&format!("flood é{MARKER}")), "{reason:?}");
    assert!(
        wait_until(Duration::from_secs(2), || gone(endless)),
        "the flooding child survived its timeout"
    );
    engine.shutdown().unwrap();
    t.finish();
}

#[test]
fn grandchildren_die_with_their_leader() {
    let t = Clean::start("exec-litter");
    let decls = serde_json::json!({
        // The leader exits 0 at once and leaves two sleepers behind.
        "litter": {"kind": "exec", "mode": "enforce", "runOnce": true, "timeoutSecs": 30,
            "command": t.sh("sleep 30 & echo $! > litter.1; sleep 30 & echo $! > litter.2; exit 0")},
        // The leader exits 0 and leaves a child that keeps stderr open and
        // writes to it: the run must end at the leader's exit, not at EOF.
        "spammer": {"kind": "exec", "mode": "enforce", "runOnce": true, "timeoutSecs": 30,
            "command": t.sh("(while :; do echo spam >&2; sleep 0.01; done) & \
                             echo $! > spammer.1; exit 0")},
    });
    let (engine, rx) = t.engine(&decls);
    engine.reset("r").unwrap();
    let events = collect_until(&rx, Duration::from_secs(20), |ev| {
        common::results(ev, None) == 2
    });
    for p in ["litter", "spammer"] {
        let r = result_of(&events, p);
        assert_eq!(
            (r.status, r.failure_reason.as_deref()),
            (Status::Pass, None),
            "{p}"
        );
    }
    for f in ["litter.1", "litter.2", "spammer.1"] {
        let pid = read_pid(&t.dir.path(f), Duration::from_secs(5));
        assert!(
            wait_until(Duration::from_secs(2), || gone(pid)),
            "grandchild {f} ({pid}) outlived its probe"
        );
    }
    // Nothing runs although the engine is still up.
    assert!(
        running_in(&t.cwd()).is_empty(),
        "{:?}",
        running_in(&t.cwd())
    );
    assert!(our_children().is_empty(), "{:?}", our_children());
    engine.shutdown().unwrap();
    t.finish();
}

#[test]
fn a_child_that_ignores_sigterm_or_closes_stderr_is_killed_at_the_timeout() {
    let t = Clean::start("exec-deaf");
    let decls = serde_json::json!({
        "deaf": {"kind": "exec", "mode": "enforce", "runOnce": true, "timeoutSecs": 1,
            "command": t.sh("trap '' TERM; echo $$ > deaf.pid; sleep 30 & echo $! > deaf.1; sleep 30")},
        "mute": {"kind": "exec", "mode": "observe", "runOnce": true, "timeoutSecs": 1,
            "command": t.sh("exec 2>&-; echo $$ > mute.pid; sleep 30")},
    });
    let (engine, rx) = t.engine(&decls);
    engine.reset("r").unwrap();
    let pids: Vec<i32> = ["deaf.pid", "deaf.1", "mute.pid"]
        .iter()
        .map(|f| read_pid(&t.dir.path(f), Duration::from_secs(10)))
        .collect();
    let events = collect_until(&rx, Duration::from_secs(20), |ev| {
        common::results(ev, None) == 2
    });
    for p in ["deaf", "mute"] {
        assert_eq!(
            result_of(&events, p).failure_reason.as_deref(),
            Some("exec probe: timed out after 1 s (process group killed)"),
            "{p}"
        );
    }
    // SIGKILL is sent before the result; dying takes the kernel a moment.
    for pid in pids {
        assert!(
            wait_until(Duration::from_secs(2), || gone(pid)),
            "{pid} survived the timeout"
        );
    }
    assert!(our_children().is_empty(), "{:?}", our_children());
    engine.shutdown().unwrap();
    t.finish();
}

#[test]
fn reset_and_shutdown_kill_running_groups_and_children_inherit_no_fd() {
    let t = Clean::start("exec-reset");
    // Something of the test process's own that a child must not inherit.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // And one without FD_CLOEXEC, as an embedding program may leave them:
    // the exec runner must not let it through either.
    let leak_bait = std::fs::File::open("/dev/null").unwrap();
    let bait_fd = std::os::fd::AsRawFd::as_raw_fd(&leak_bait);
    // SAFETY: clears FD_CLOEXEC on our own, open descriptor.
    unsafe { libc::fcntl(bait_fd, libc::F_SETFD, 0) };
    let decls = serde_json::json!({
        "stubborn": {"kind": "exec", "mode": "enforce", "timeoutSecs": 60,
            "command": t.sh("trap '' TERM; echo $$ > s.pid; sleep 30 & echo $! > s.1; \
                             exec 2>&-; wait")},
        "flood": {"kind": "exec", "mode": "enforce", "timeoutSecs": 60,
            "command": t.sh("echo $$ > f.pid; exec yes >&2")},
    });
    let (engine, rx) = t.engine(&decls);
    let cwd = t.cwd();
    let mut old: Vec<i32> = Vec::new();
    for round in 0..3 {
        for f in ["s.pid", "s.1", "f.pid"] {
            let _ = std::fs::remove_file(t.dir.path(f));
        }
        let at = Instant::now();
        engine.reset(&format!("round-{round}")).unwrap();
        // The previous round's groups are killed at the reset.
        for &pid in &old {
            assert!(
                wait_until(Duration::from_secs(2), || gone(pid)),
                "{pid} of the previous generation survived the reset"
            );
        }
        let took = at.elapsed();
        assert!(
            took < Duration::from_millis(500),
            "reset kill took {took:?}"
        );
        let pids: Vec<i32> = ["s.pid", "s.1", "f.pid"]
            .iter()
            .map(|f| read_pid(&t.dir.path(f), Duration::from_secs(10)))
            .collect();
        // The stubborn shell's sleeper, once it sleeps, holds stdin and
        // stdout on /dev/null and stderr on the pipe, and nothing else: not
        // even what this process leaves without FD_CLOEXEC (say a
        // jobserver pipe of the caller), which the exec runner marks
        // close-on-exec in the child. (While `sleep` starts up it briefly
        // has its libraries and locale files open: hence the wait.)
        let inherited = inheritable_fds();
        let mut fds = Vec::new();
        let settled = wait_until(Duration::from_secs(5), || {
            fds = fd_targets(pids[1]);
            comm(pids[1]) == "sleep"
                && fds.len() >= 3
                && fds[0] == (0, "/dev/null".to_owned())
                && fds[1] == (1, "/dev/null".to_owned())
                && fds[2].0 == 2
                && fds[2].1.starts_with("pipe:")
                && fds.len() == 3
        });
        assert!(
            settled,
            "the sleeper ({}) holds {fds:?}; ours without FD_CLOEXEC: {inherited:?}",
            comm(pids[1])
        );
        old = pids;
    }
    let before = running_in(&cwd);
    assert!(before.len() >= 3, "{before:?}");
    let at = Instant::now();
    engine.shutdown().unwrap();
    assert!(at.elapsed() < Duration::from_secs(1), "{:?}", at.elapsed());
    for pid in old {
        assert!(
            wait_until(Duration::from_secs(2), || gone(pid)),
            "{pid} survived shutdown"
        );
    }
    // No result of a killed run ever came out.
    let events: Vec<Event> = rx.try_iter().collect();
    assert!(
        !events.iter().any(|e| e.name() == "probeResult"),
        "{events:?}"
    );
    drop(listener);
    drop(leak_bait);
    t.finish();
}
