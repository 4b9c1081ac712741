//! Shared helpers of the end-to-end tests: temp dirs, bounded waits, a
//! fault-injecting runner, process checks, and a strict Prometheus text
//! reader. Every wait has a deadline; nothing asserts on a fixed sleep.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock
#![allow(dead_code)] // each test binary uses its own subset

pub mod prometheus;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
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

/// Runs `bin check --config path`: its exit code and standard output.
pub fn check_file(bin: &str, path: &Path) -> (i32, String) {
    let out = std::process::Command::new(bin)
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Tells the person running the tests that the current test skipped its
/// check, and why. Written to stderr directly: libtest swallows what a
/// passing test prints with `println!`, so a skip said that way is never
/// seen.
pub fn skipped(why: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr(), "skipped: {test}: {why}");
}

/// Polls `cond` every 5 ms until it holds or `limit` passes.
/// Shuts `engine` down and checks G10 with a custom check that ignores
/// cancellation: shutdown returns within a second, and of the threads named
/// `<prefix>-...` only the stuck check's own (`<prefix>-check-...`) is left
/// (documented). Joined threads may be listed a moment longer while the
/// kernel tears them down, hence the bounded wait.
pub fn shutdown_leaving_the_stuck_check(engine: probewheel::Engine, prefix: &str) {
    let t = Instant::now();
    engine.shutdown().unwrap();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(1), "shutdown took {took:?}");
    let mut left = Vec::new();
    let settled = wait_until(Duration::from_millis(500), || {
        left = threads_named(&format!("{prefix}-"));
        left.len() == 1
    });
    assert!(settled, "{left:?}");
    assert!(left[0].starts_with(&format!("{prefix}-check-")), "{left:?}");
}

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

/// The `probeResult` events of one probe, in order.
pub fn probe_results<'a>(
    events: &'a [Event],
    probe: &str,
) -> Vec<&'a probewheel::event::ProbeResult> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ProbeResult(r) if &*r.probe_name == probe => Some(r),
            _ => None,
        })
        .collect()
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
                // Parked for good: a check that ignores cancellation.
                "hang" => loop {
                    std::thread::park();
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

// ---------------------------------------------------------------------------
// Helpers of the hostile-condition and soak tests: file descriptors, memory,
// processes, and a checker of the event contract (crate docs, "Guarantees") that runs on
// every event of a stream.
// ---------------------------------------------------------------------------

/// Open file descriptors of this process (entries of `/proc/self/fd`, minus
/// the one `read_dir` itself holds while listing).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count() - 1
}

/// What each open fd of process `pid` points at (`readlink` of
/// `/proc/<pid>/fd/*`), sorted by fd number.
pub fn fd_targets(pid: i32) -> Vec<(i32, String)> {
    let mut out: Vec<(i32, String)> = match std::fs::read_dir(format!("/proc/{pid}/fd")) {
        Err(_) => return Vec::new(),
        Ok(dir) => dir
            .flatten()
            .filter_map(|e| {
                let fd = e.file_name().to_str()?.parse().ok()?;
                let target = std::fs::read_link(e.path()).ok()?;
                Some((fd, target.display().to_string()))
            })
            .collect(),
    };
    out.sort();
    out
}

/// Resident set size of this process, in bytes (`/proc/self/statm`).
///
/// Allocator caveat: glibc's malloc keeps freed memory in its arenas (one
/// per thread that allocated, so the workers have their own) and returns it
/// to the kernel only when the top of a heap is free. RSS therefore tracks
/// what the allocator holds, not what the program holds. `malloc_trim(0)`
/// is called first so that free memory is handed back and the figure is
/// close to what is really in use; what remains can still be fragmentation.
pub fn rss_bytes() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

/// The fields of `/proc/<pid>/stat` the tests look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub state: char,
    pub ppid: i32,
    pub pgid: i32,
}

/// Reads `/proc/<pid>/stat` (`None` when the process is gone).
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgid = f.next()?.parse().ok()?;
    Some(ProcStat {
        pid,
        state,
        ppid,
        pgid,
    })
}

/// Every process on the host.
pub fn all_processes() -> Vec<ProcStat> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter_map(proc_stat)
        .collect()
}

/// Children of this process (zombies included: a zombie child means
/// somebody forgot to reap).
pub fn our_children() -> Vec<ProcStat> {
    let me = std::process::id() as i32;
    all_processes()
        .into_iter()
        .filter(|p| p.ppid == me)
        .collect()
}

/// Live (non-zombie) processes whose working directory is `dir`: test
/// scripts `cd` into their temp dir first, so their children and
/// grandchildren are found even after they were re-parented.
pub fn running_in(dir: &Path) -> Vec<ProcStat> {
    all_processes()
        .into_iter()
        .filter(|p| p.state != 'Z')
        .filter(|p| std::fs::read_link(format!("/proc/{}/cwd", p.pid)).is_ok_and(|cwd| cwd == dir))
        .collect()
}

/// Checks the guarantees (crate docs, G1-G14) that a consumer can see, on every
/// event of a stream, in the order received. Coalescing (G9) is taken into
/// account: a result stands for `coalesced + 1` runs.
///
/// - G9: `seq` starts at 1 and has no gaps.
/// - G1: the first event of every generation is `topologyDeclared` or
///   `declarationsRejected`, and there is one such event per generation.
/// - G2: the generation never decreases; the rollout id is that of the
///   generation's first event.
/// - G3: per probe and generation, `probeObservedFirst` once and first; a
///   `probeFailureFirst` before every result that contains a transition
///   into fail, none before a result that contains none; `consecutive` and
///   `failingSince` continue from the previous result; pass ⇔ no reason.
/// - G4: disabled probes (and probes not in the topology) never appear.
/// - G5: `scheduledAt` of two results of a probe at least the floor apart
///   (the floor is on the period), and no run observed before its slot.
/// - G6/G7: `tick` of result n = tick of result n-1 + 1 + `skippedTicks`
///   + `coalesced` (the first: `skippedTicks + coalesced`).
/// - G8: a `runOnce` probe has one result per generation, for tick 0.
/// - G14: every generation sends a `rolloutVerdict` right after its
///   topology (or rejection); a verdict names only enforce probes of its
///   own topology, sorted, and is `rejected` exactly when the file was;
///   `decided` never turns false within a generation.
#[derive(Debug)]
pub struct Guarantees {
    pub min_interval: Duration,
    pub run_once: std::collections::HashSet<String>,
    /// Also check that every event survives a JSON round trip (as JSON).
    pub round_trip: bool,
    /// Also check that `scheduledAt` of every result of a probe is exactly
    /// `scheduledAt` of its first result plus whole intervals (G7, as the
    /// consumer sees it). Holds as long as the wall clock is not stepped.
    pub exact_schedule: bool,
    pub events: u64,
    pub results: u64,
    pub runs: u64,
    pub generations: u64,
    pub newest_generation: u64,
    last_seq: u64,
    rollout: String,
    declared: std::collections::HashMap<String, probewheel::Mode>,
    probes: std::collections::HashMap<String, ProbeTrack>,
    /// The generation was rejected; its verdicts so far; decided yet.
    rejected: bool,
    verdicts: u64,
    decided: bool,
}

#[derive(Debug, Default)]
struct ProbeTrack {
    observed_at: Option<i64>,
    failure_firsts: u32,
    last_failure_first: Option<i64>,
    last: Option<LastResult>,
    /// (tick, scheduledAt) of the first result, and the interval seen.
    slot0: Option<(u64, i64)>,
    interval_us: Option<i64>,
}

#[derive(Debug)]
struct LastResult {
    status: probewheel::Status,
    consecutive: u64,
    tick: u64,
    scheduled_at: i64,
    failing_since: Option<i64>,
}

impl Guarantees {
    pub fn new(min_interval: Duration) -> Guarantees {
        Guarantees {
            min_interval,
            run_once: Default::default(),
            round_trip: false,
            exact_schedule: false,
            events: 0,
            results: 0,
            runs: 0,
            generations: 0,
            newest_generation: 0,
            last_seq: 0,
            rollout: String::new(),
            declared: Default::default(),
            probes: Default::default(),
            rejected: false,
            verdicts: 0,
            decided: false,
        }
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Checks one event; the error names the guarantee and the event.
    pub fn check(&mut self, e: &Event) -> Result<(), String> {
        self.check_inner(e).map_err(|why| format!("{why}: {e:?}"))
    }

    fn check_inner(&mut self, e: &Event) -> Result<(), String> {
        use probewheel::{Mode, Status};
        self.events += 1;
        if e.seq() != self.last_seq + 1 {
            return Err(format!("G9: seq {} after {}", e.seq(), self.last_seq));
        }
        self.last_seq = e.seq();
        if self.round_trip {
            let json = serde_json::to_string(e).map_err(|x| format!("serialise: {x}"))?;
            let back: Event = serde_json::from_str(&json).map_err(|x| format!("parse: {x}"))?;
            if &back != e {
                return Err(format!("round trip changed the event: {json} -> {back:?}"));
            }
        }
        let g = e.generation();
        if g < self.newest_generation {
            return Err(format!(
                "G2: generation {g} after generation {}",
                self.newest_generation
            ));
        }
        let opens = matches!(
            e,
            Event::TopologyDeclared(_) | Event::DeclarationsRejected(_)
        );
        if g > self.newest_generation {
            if !opens {
                return Err(format!("G1: generation {g} opened with {}", e.name()));
            }
            self.newest_generation = g;
            self.generations += 1;
            self.rollout = e.rollout_id().to_owned();
            self.declared.clear();
            self.probes.clear();
            self.rejected = matches!(e, Event::DeclarationsRejected(_));
            self.verdicts = 0;
            self.decided = false;
            if let Event::TopologyDeclared(t) = e {
                let names: Vec<&str> = t.probes.iter().map(|p| &*p.probe_name).collect();
                if names.windows(2).any(|w| w[0] >= w[1]) {
                    return Err("G11: topology not sorted by name".into());
                }
                for p in &t.probes {
                    self.declared.insert(p.probe_name.to_string(), p.mode);
                }
            }
            return Ok(());
        }
        if opens {
            return Err(format!("G1: second {} in generation {g}", e.name()));
        }
        if e.rollout_id() != self.rollout {
            return Err(format!("rollout id changed within generation {g}"));
        }
        if let Event::RolloutVerdict(v) = e {
            return self.check_verdict(v);
        }
        if self.verdicts == 0 {
            return Err(format!(
                "G14: {} before the generation's first verdict",
                e.name()
            ));
        }
        let name = e.probe_name().expect("per-probe event");
        match self.declared.get(name) {
            None => return Err(format!("G4: probe {name} is not in the topology")),
            Some(Mode::Disabled) => return Err(format!("G4: disabled probe {name} ran")),
            Some(_) => {}
        }
        let min_us = self.min_interval.as_micros() as i64;
        let run_once = self.run_once.contains(name);
        let track = self.probes.entry(name.to_owned()).or_default();
        match e {
            Event::ProbeObservedFirst(o) => {
                if track.observed_at.is_some() {
                    return Err("G3: second probeObservedFirst".into());
                }
                track.observed_at = Some(o.observed_at.unix_micros());
            }
            Event::ProbeFailureFirst(f) => {
                if track.observed_at.is_none() {
                    return Err("G3: probeFailureFirst before probeObservedFirst".into());
                }
                track.failure_firsts += 1;
                track.last_failure_first = Some(f.first_failed_at.unix_micros());
            }
            Event::ProbeResult(r) => {
                let Some(first_observed) = track.observed_at else {
                    return Err("G3: result before probeObservedFirst".into());
                };
                self.results += 1;
                self.runs += 1 + r.coalesced;
                let observed = r.observed_at.unix_micros();
                let runs = r.coalesced + 1;
                // Pass or fail, with or without a reason.
                match (r.status, &r.failure_reason, &r.failing_since) {
                    (Status::Pass, None, None) | (Status::Fail, Some(_), Some(_)) => {}
                    _ => return Err("status, failureReason and failingSince disagree".into()),
                }
                if let Some(reason) = &r.failure_reason {
                    if reason.len() > 512 + "...[truncated]".len() {
                        return Err(format!("failureReason of {} bytes", reason.len()));
                    }
                }
                if r.consecutive == 0 {
                    return Err("consecutive is 0".into());
                }
                // Streak and lifecycle: did a transition into fail happen
                // within the runs this result stands for?
                let streak_inside = r.consecutive <= runs;
                match &track.last {
                    None if !streak_inside => {
                        return Err("G3: first result continues a streak".into());
                    }
                    Some(prev) if !streak_inside => {
                        if prev.status != r.status || prev.consecutive + runs != r.consecutive {
                            return Err(format!(
                                "G3: consecutive {} does not continue {:?} {} over {runs} runs",
                                r.consecutive, prev.status, prev.consecutive
                            ));
                        }
                        if prev.failing_since.is_some()
                            && r.failing_since.map(|t| t.unix_micros()) != prev.failing_since
                        {
                            return Err("G3: failingSince moved within a failure streak".into());
                        }
                    }
                    _ => {}
                }
                // A transition into fail inside these runs: the streak of
                // this (failing) result started inside, or an earlier one
                // did (only possible when several runs were folded).
                let edge_now = r.status == Status::Fail && streak_inside;
                if !streak_inside && track.failure_firsts > 0 {
                    return Err("G3: probeFailureFirst within a streak that did not break".into());
                }
                if edge_now {
                    if track.failure_firsts == 0 {
                        return Err("G3: failing result without probeFailureFirst".into());
                    }
                    let since = r.failing_since.map(|t| t.unix_micros());
                    if track.last_failure_first != since {
                        return Err(format!(
                            "G3: probeFailureFirst at {:?} but failingSince {since:?}",
                            track.last_failure_first
                        ));
                    }
                }
                if r.coalesced == 0 {
                    let want = u32::from(edge_now);
                    if track.failure_firsts != want {
                        return Err(format!(
                            "G3: {} probeFailureFirst before an uncoalesced {:?} result \
                             (consecutive {})",
                            track.failure_firsts, r.status, r.consecutive
                        ));
                    }
                    if track.last.is_none() && observed != first_observed {
                        return Err("G3: observedAt of the first result and of \
                                    probeObservedFirst differ"
                            .into());
                    }
                } else if track.failure_firsts as u64 > runs {
                    return Err("G3: more probeFailureFirst than runs".into());
                }
                // G6/G7: slots are accounted for.
                let expected_tick = match &track.last {
                    None => r.skipped_ticks + r.coalesced,
                    Some(prev) => prev.tick + 1 + r.skipped_ticks + r.coalesced,
                };
                if r.tick != expected_tick {
                    return Err(format!(
                        "G7: tick {} (skipped {}, coalesced {}), expected {expected_tick}",
                        r.tick, r.skipped_ticks, r.coalesced
                    ));
                }
                // Lateness is the gap between the slot and the start.
                let scheduled = r.scheduled_at.unix_micros();
                if (observed - scheduled - r.lateness_us as i64).abs() > 1 {
                    return Err(format!(
                        "observedAt - scheduledAt = {} µs but latenessUs {}",
                        observed - scheduled,
                        r.lateness_us
                    ));
                }
                if self.exact_schedule {
                    match (track.slot0, track.interval_us) {
                        (None, _) => track.slot0 = Some((r.tick, scheduled)),
                        (Some((t0, s0)), None) => {
                            let (dt, dk) = (scheduled - s0, (r.tick - t0) as i64);
                            if dk == 0 || dt % dk != 0 || dt / dk < min_us {
                                return Err(format!(
                                    "G7: slot {} at {dt} µs after slot {t0}",
                                    r.tick
                                ));
                            }
                            track.interval_us = Some(dt / dk);
                        }
                        (Some((t0, s0)), Some(iv)) => {
                            let want = s0 + (r.tick - t0) as i64 * iv;
                            if scheduled != want {
                                return Err(format!(
                                    "G7: scheduledAt of slot {} is {} µs off start + k * interval",
                                    r.tick,
                                    scheduled - want
                                ));
                            }
                        }
                    }
                }
                // G5: slots never closer than the floor (1 µs of rounding),
                // and no run before its slot.
                if let Some(prev) = &track.last {
                    if scheduled - prev.scheduled_at < min_us - 1 {
                        return Err(format!(
                            "G5: slots {} µs apart, floor {min_us} µs",
                            scheduled - prev.scheduled_at
                        ));
                    }
                }
                if observed < scheduled - 1 {
                    return Err(format!(
                        "G5: run started {} µs before its slot",
                        scheduled - observed
                    ));
                }
                if observed < first_observed {
                    return Err("G3: result observed before probeObservedFirst".into());
                }
                // G8
                if run_once && (track.last.is_some() || r.tick != 0 || r.coalesced != 0) {
                    return Err("G8: runOnce probe ran more than once".into());
                }
                track.failure_firsts = 0;
                track.last = Some(LastResult {
                    status: r.status,
                    consecutive: r.consecutive,
                    tick: r.tick,
                    scheduled_at: scheduled,
                    failing_since: r.failing_since.map(|t| t.unix_micros()),
                });
            }
            Event::TopologyDeclared(_) | Event::DeclarationsRejected(_) => unreachable!(),
            // `Event` is non_exhaustive: a kind this checker does not know fails it.
            other => return Err(format!("unchecked event {}", other.name())),
        }
        Ok(())
    }

    fn check_verdict(&mut self, v: &probewheel::RolloutVerdict) -> Result<(), String> {
        use probewheel::Mode;
        use probewheel::event::Verdict;
        self.verdicts += 1;
        if (v.verdict == Verdict::Rejected) != self.rejected {
            return Err("G14: verdict rejected iff the file was".into());
        }
        if self.decided && !v.decided {
            return Err("G14: decided turned false".into());
        }
        self.decided = v.decided;
        if matches!(v.verdict, Verdict::Healthy | Verdict::Unhealthy) && !v.decided {
            return Err("G14: a healthy or unhealthy verdict that is not decided".into());
        }
        let names = v
            .failing
            .iter()
            .map(|f| &*f.probe_name)
            .chain(v.awaiting.iter().map(|a| &*a.probe_name));
        for name in names {
            if self.declared.get(name) != Some(&Mode::Enforce) {
                return Err(format!(
                    "G14: {name} is not an enforce probe of the topology"
                ));
            }
        }
        let sorted = |names: Vec<&str>| names.windows(2).all(|w| w[0] < w[1]);
        if !sorted(v.failing.iter().map(|f| &*f.probe_name).collect())
            || !sorted(v.awaiting.iter().map(|a| &*a.probe_name).collect())
        {
            return Err("G14: verdict lists not sorted by name".into());
        }
        match v.verdict {
            Verdict::Healthy if !v.failing.is_empty() || !v.awaiting.is_empty() => {
                Err("G14: healthy with failing or awaited probes".into())
            }
            Verdict::Pending if v.failing.is_empty() && v.awaiting.is_empty() => {
                Err("G14: pending with nothing awaited".into())
            }
            _ => Ok(()),
        }
    }
}

/// The process's `RLIMIT_NOFILE`.
pub fn nofile() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim
}

/// Sets the process's `RLIMIT_NOFILE` (for a test in a binary of its own).
pub fn set_nofile(lim: libc::rlimit) {
    // SAFETY: setrlimit reads one rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

/// Makes a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

/// If something blocks in `open` on the FIFO, opening it for writing
/// releases it, so that a failing test fails instead of hanging.
pub struct FifoRelease<'a>(pub &'a Path);

impl Drop for FifoRelease<'_> {
    fn drop(&mut self) {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(self.0);
    }
}

/// A pipe whose read end is already closed: writing to it is EPIPE.
pub fn closed_pipe() -> std::process::Stdio {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe writes two descriptors into `fds`, which we then own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors are ours and open.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    std::process::Stdio::from(write)
}

/// A child's stderr, read to its end by a thread of its own.
#[derive(Clone)]
pub struct StderrReader(Arc<Mutex<(String, bool)>>);

impl StderrReader {
    pub fn start(mut err: std::process::ChildStderr) -> StderrReader {
        use std::io::Read;
        let text = Arc::new(Mutex::new((String::new(), false)));
        let sink = Arc::clone(&text);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .0
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            sink.lock().unwrap().1 = true;
        });
        StderrReader(text)
    }

    /// What was read so far, without waiting.
    pub fn so_far(&self) -> String {
        self.0.lock().unwrap().0.clone()
    }

    /// All of it once the child has exited (waiting a little for the
    /// reader to reach the end).
    pub fn all(&self) -> String {
        wait_until(Duration::from_secs(2), || self.0.lock().unwrap().1);
        self.so_far()
    }
}
