//! Shared helpers of the end-to-end tests: temp dirs, bounded waits, a
//! fault-injecting runner, and process checks. Every wait has a deadline;
//! nothing asserts on a fixed sleep.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use probewheel::runner::CANCEL_POLL;
use probewheel::{Check, Declaration, Event, FieldError, RunContext, Runner, RunnerOutcome};

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "probewheel-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `cond` every 5 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads events until `stop` says so; panics if `limit` passes first.
pub fn collect_until(
    rx: &Receiver<Event>,
    limit: Duration,
    mut stop: impl FnMut(&[Event]) -> bool,
) -> Vec<Event> {
    let end = Instant::now() + limit;
    let mut out = Vec::new();
    while !stop(&out) {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(e) => out.push(e),
            Err(e) => panic!(
                "condition not reached within {limit:?} ({e}); got {} events: {:#?}",
                out.len(),
                out.iter().rev().take(5).collect::<Vec<_>>()
            ),
        }
    }
    out
}

/// Number of `probeResult` events in `events` (optionally for one probe).
pub fn results(events: &[Event], probe: Option<&str>) -> usize {
    events
        .iter()
        .filter(|e| e.name() == "probeResult" && probe.is_none_or(|p| e.probe_name() == Some(p)))
        .count()
}

/// A runner whose behaviour is set in the declaration:
/// `"behave": "pass" | "fail" | "panic" | "hang" | "slow" | "flip"`, and
/// `"sleepMs"` for `slow` (cancellable). `hang` ignores cancellation on
/// purpose. With `"limit": K` a probe produces K results, then idles. It
/// counts its runs.
#[derive(Default, Clone)]
pub struct Fake {
    pub runs: Arc<AtomicU64>,
    pub log: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Runner for Fake {
    fn prepare(&self, decl: &Declaration) -> Result<Arc<dyn Check>, FieldError> {
        let behave = decl.str_field("behave")?.unwrap_or("pass").to_owned();
        let limit = decl.u64_in("limit", 1, u64::MAX)?;
        let sleep = Duration::from_millis(decl.u64_in("sleepMs", 0, 3_600_000)?.unwrap_or(0));
        let runs = Arc::clone(&self.runs);
        let log = Arc::clone(&self.log);
        let flip = Arc::new(AtomicU64::new(0));
        Ok(Arc::new(move |ctx: &RunContext<'_>| {
            let n = flip.load(Ordering::SeqCst);
            if limit.is_some_and(|l| n >= l) {
                // Past its limit: idle (cancellably) so no result comes.
                ctx.sleep(Duration::from_secs(3600));
                return RunnerOutcome::fail("past limit");
            }
            runs.fetch_add(1, Ordering::SeqCst);
            log.lock()
                .unwrap()
                .push((ctx.probe_name().to_owned(), ctx.started()));
            let outcome = match behave.as_str() {
                "fail" => RunnerOutcome::fail("fake failure"),
                "panic" => panic!("fake runner exploded"),
                "hang" => loop {
                    std::thread::sleep(Duration::from_millis(50));
                },
                "slow" => {
                    if ctx.sleep(sleep) {
                        RunnerOutcome::fail("cancelled")
                    } else {
                        RunnerOutcome::pass()
                    }
                }
                "flip" => {
                    if n % 2 == 0 {
                        RunnerOutcome::pass()
                    } else {
                        RunnerOutcome::fail("flipped")
                    }
                }
                _ => RunnerOutcome::pass(),
            };
            flip.fetch_add(1, Ordering::SeqCst);
            outcome
        }))
    }

    fn extra_fields(&self) -> &[&str] {
        &["behave", "sleepMs", "limit"]
    }
}

/// Whether any process of group `pgid` exists (zombies included).
pub fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(-pgid, 0) };
    rc == 0
}

/// Whether process `pid` exists and is not a zombie.
pub fn process_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            state != Some("Z")
        }
    }
}

/// Reads a pid written by a test script, waiting for it to appear.
pub fn read_pid(path: &Path, limit: Duration) -> i32 {
    let mut pid = None;
    assert!(
        wait_until(limit, || {
            pid = std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            pid.is_some()
        }),
        "no pid written to {}",
        path.display()
    );
    pid.unwrap()
}

/// Names of this process's threads that start with `prefix`.
pub fn threads_named(prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) {
            if comm.starts_with(prefix) {
                out.push(comm.trim().to_owned());
            }
        }
    }
    out
}

pub const CANCEL: Duration = CANCEL_POLL;
