//! Footprint: the engine's memory per scheduled probe and its idle CPU.
//!
//! ```text
//! cargo bench --bench footprint [-- --seconds S] [--min-interval-ms MS]
//! ```
//!
//! Prints one JSON line per measurement:
//!
//! - `"measurement":"memory"` for 1k, 10k and 100k probes, each in a fresh
//!   child process (this binary re-run with `--memory-child N`) so that
//!   freed-but-resident memory of one size does not flatter the next. The
//!   probes are of a registered no-op kind with `intervalSeconds = 86400`
//!   and `stagger(true)`: slot 0 of probe 0 runs at the reset, every other
//!   probe's first slot is seconds to hours away, so nothing else runs
//!   during the measurement. The declarations are made in code and handed
//!   over with `Builder::declarations` (a file is capped at 1 MiB, about
//!   16,000 probes), so the engine holds that very set and no copy of it.
//!
//!   Steps: (1) RSS and live heap; (2) the declarations built and kept
//!   alive: their cost is `decl_*`; (3) build the engine, reset it, wait for the topology and
//!   drop that event: the difference to (2) is the engine's.
//!   `engine_heap_bytes_per_probe` is exact: a counting global allocator
//!   reports live heap bytes, so it is what the engine retains (its per-probe
//!   state, wheel entry, outbox slot, the name and kind strings it keeps,
//!   plus its fixed cost spread over N; the parse it does during the reset
//!   is freed). `engine_rss_bytes_per_probe` is the RSS difference (VmRSS
//!   from /proc/self/status) minus the declarations' RSS, divided by N: the
//!   engine parses its own copy during the reset and the allocator may keep
//!   that freed memory resident, which is why the declarations' share is
//!   subtracted; it also counts the touched parts of the engine's and
//!   workers' stacks. `marginal_*` lines give (cost(N2) - cost(N1)) /
//!   (N2 - N1), which removes the fixed costs.
//!
//!
//! - `"measurement":"cpu"`: 1,000 probes at a 5 s interval (spread, the
//!   default 5 s floor, or `--min-interval-ms`) ticking over for `--seconds`
//!   (default 30) after the topology arrived: the engine thread's CPU time, found by its name
//!   `probewheel-engi` in /proc/self/task/*/comm, from `utime + stime` of
//!   its /proc stat (clock ticks, `sysconf(_SC_CLK_TCK)`) and, finer, from
//!   its schedstat run time (ns); and the whole process's CPU time from
//!   `getrusage(RUSAGE_SELF)` (engine, 2 workers, the consumer thread).
//!   The line adds the engine's wake-ups per run, skipped ticks and lateness
//!   percentiles (engine histogram) from `stats()`: with the interval equal
//!   to the floor, a run that started late makes the next one wait for the
//!   floor (a second timer wake-up), which shows here.
//!
//! - `"measurement":"cpu-floor"`: for scale, one plain thread sleeping to
//!   absolute deadlines at the same rate (probes / interval, 1 ns timer
//!   slack) for the same time, and its own CPU time: what one wake-up per
//!   run costs on this machine (a run of the engine needs at least one
//!   engine wake-up and one worker wake-up).

#![allow(clippy::disallowed_methods)] // a benchmark reads clocks and sleeps

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use probewheel::runner::FnRunner;
use probewheel::{Builder, Declaration, Declarations, Event, RunnerOutcome};

/// Counts live heap bytes of the whole process.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_heap() -> i64 {
    LIVE.load(Ordering::Relaxed) as i64
}

const USAGE: &str = "usage: cargo bench --bench footprint [-- --seconds S] [--min-interval-ms MS]";
const MEMORY_SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const CPU_PROBES: usize = 1_000;
const CPU_INTERVAL_SECS: u64 = 5;
const MEMORY_INTERVAL_SECS: u64 = 86_400;

fn main() -> ExitCode {
    let mut seconds = 30u64;
    let mut floor_ms = 5000u64;
    let mut child = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or_else(|| format!("{name} needs a value"))?;
            v.parse().map_err(|e| format!("{name} {v:?}: {e}"))
        };
        let parsed = match arg.as_str() {
            "--seconds" => value("--seconds").map(|v| seconds = v.max(1)),
            "--min-interval-ms" => value("--min-interval-ms").map(|v| floor_ms = v.max(1)),
            "--memory-child" => value("--memory-child").map(|v| child = Some(v as usize)),
            "--bench" => Ok(()), // added by `cargo bench`
            other => Err(format!("unknown argument {other:?}\n{USAGE}")),
        };
        if let Err(e) = parsed {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    }
    if let Some(n) = child {
        return match measure_memory(n) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("footprint: {n} probes: {e}");
                ExitCode::FAILURE
            }
        };
    }

    eprintln!("footprint: loadavg {}", loadavg());
    let mut measured: Vec<Memory> = Vec::new();
    // In-memory declarations (`Builder::declarations`) have no 1 MiB cap,
    // so every size is measured as asked.
    let sizes: Vec<usize> = MEMORY_SIZES.to_vec();
    let mut failed = false;
    for n in sizes {
        match run_child(n) {
            Ok((line, mem)) => {
                println!("{line}");
                measured.push(mem);
            }
            Err(e) => {
                eprintln!("footprint: {n} probes: {e}");
                failed = true;
            }
        }
    }
    for pair in measured.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let dn = (b.probes - a.probes) as f64;
        println!(
            "{{\"measurement\":\"memory-marginal\",\"from_probes\":{},\"to_probes\":{},\"engine_heap_bytes_per_probe\":{:.1},\"engine_rss_bytes_per_probe\":{:.1},\"decl_heap_bytes_per_probe\":{:.1}}}",
            a.probes,
            b.probes,
            (b.engine_heap - a.engine_heap) as f64 / dn,
            (b.engine_rss - a.engine_rss) as f64 / dn,
            (b.decl_heap - a.decl_heap) as f64 / dn,
        );
    }

    match measure_cpu(seconds, Duration::from_millis(floor_ms)) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("footprint: cpu: {e}");
            failed = true;
        }
    }
    println!("{}", measure_cpu_floor(seconds));
    eprintln!("footprint: loadavg {}", loadavg());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn noop_builder() -> Builder {
    Builder::new()
        .workers(2)
        .stagger(true)
        .runner("noop", FnRunner::inline(|_| RunnerOutcome::pass()))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// VmRSS of this process, bytes.
fn rss() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map_or(0, |kb| kb * 1024)
}

// ---------------------------------------------------------------------------
// Memory

/// One memory measurement, as the parent reads it back.
struct Memory {
    probes: usize,
    engine_heap: i64,
    engine_rss: i64,
    decl_heap: i64,
}

fn run_child(n: usize) -> Result<(String, Memory), String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = Command::new(exe)
        .arg("--memory-child")
        .arg(n.to_string())
        .output()
        .map_err(|e| format!("cannot run child: {e}"))?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(format!("child failed: {}", out.status));
    }
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let v: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| format!("child output {line:?}: {e}"))?;
    let field = |k: &str| v[k].as_i64().unwrap_or(0);
    let mem = Memory {
        probes: n,
        engine_heap: field("engine_heap_bytes"),
        engine_rss: field("engine_rss_bytes"),
        decl_heap: field("decl_heap_bytes"),
    };
    Ok((line, mem))
}

fn measure_memory(n: usize) -> Result<String, String> {
    // (1) Baseline.
    let (heap0, rss0) = (live_heap(), rss());
    // (2) The declarations themselves, made in code (a file is capped at
    // 1 MiB, about 16,000 probes); the engine takes this very set, so their
    // memory is not counted as the engine's.
    let decls = Declarations::from_declarations((0..n).map(|i| {
        Declaration::from_value(
            &format!("p{i:06}"),
            serde_json::json!({"kind": "noop", "mode": "enforce", "intervalSeconds": MEMORY_INTERVAL_SECS}),
        )
    }))
    .map_err(|e| format!("declarations: {e}"))?;
    let (heap1, rss1) = (live_heap(), rss());
    // (3) The engine with every probe scheduled and the topology received.
    let (engine, events) = noop_builder()
        .declarations(decls)
        .events_capacity(1024)
        .build()
        .map_err(|e| format!("build: {e}"))?;
    engine
        .reset("footprint")
        .map_err(|e| format!("reset: {e}"))?;
    let declared = loop {
        match events.recv_timeout(Duration::from_secs(30)) {
            Ok(Event::TopologyDeclared(t)) => break t.probes.len(),
            Ok(Event::DeclarationsRejected(r)) => return Err(format!("rejected: {}", r.reason)),
            Ok(_) => {}
            Err(e) => return Err(format!("no topology: {e}")),
        }
    };
    // The topology event (dropped above) was the engine's last allocation of
    // the reset; give the engine thread a moment to return to its poll.
    thread::sleep(Duration::from_millis(200));
    let stats = engine.stats().map_err(|e| format!("stats: {e}"))?;
    let (heap2, rss2) = (live_heap(), rss());
    if declared != n || stats.timers as usize != n {
        return Err(format!(
            "{declared} probes declared, {} timers, expected {n}",
            stats.timers
        ));
    }
    let decl_heap = heap1 - heap0;
    let decl_rss = rss1 - rss0;
    let engine_heap = heap2 - heap1;
    let engine_rss = rss2 - rss1; // the engine holds the set itself, not a copy
    let nf = n as f64;
    let line = format!(
        "{{\"measurement\":\"memory\",\"probes\":{n},\"engine_heap_bytes_per_probe\":{:.1},\"engine_rss_bytes_per_probe\":{:.1},\"engine_rss_raw_bytes_per_probe\":{:.1},\"decl_heap_bytes_per_probe\":{:.1},\"decl_rss_bytes_per_probe\":{:.1},\"engine_heap_bytes\":{engine_heap},\"engine_rss_bytes\":{engine_rss},\"decl_heap_bytes\":{decl_heap},\"rss_before_bytes\":{rss1},\"rss_after_bytes\":{rss2},\"runs\":{}}}",
        engine_heap as f64 / nf,
        engine_rss as f64 / nf,
        (rss2 - rss1) as f64 / nf,
        decl_heap as f64 / nf,
        decl_rss as f64 / nf,
        stats.dispatched,
    );
    engine.shutdown().map_err(|e| format!("shutdown: {e}"))?;
    Ok(line)
}

// ---------------------------------------------------------------------------
// CPU

/// The engine thread's id, found by name.
fn engine_tid() -> Option<String> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == "probewheel-engi" {
            return Some(task.file_name().to_string_lossy().into_owned());
        }
    }
    None
}

/// A thread's CPU time: (utime + stime in clock ticks, schedstat run time
/// in ns).
fn thread_cpu(tid: &str) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    // Fields after the parenthesised comm: state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let ticks = field(14).unwrap_or(0) + field(15).unwrap_or(0);
    let sched =
        std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).unwrap_or_default();
    let run_ns = sched
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (ticks, run_ns)
}

/// The whole process's user + system CPU time.
fn process_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct we pass; RUSAGE_SELF is valid.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn measure_cpu(seconds: u64, floor: Duration) -> Result<String, String> {
    // SAFETY: sysconf with a valid name has no preconditions.
    let clk_tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let (engine, events) = noop_builder()
        .min_interval(floor)
        .declarations_json(common::noop_declarations(CPU_PROBES, CPU_INTERVAL_SECS))
        .build()
        .map_err(|e| format!("build: {e}"))?;
    let (topology_tx, topology_rx) = crossbeam_channel::bounded::<usize>(1);
    let consumer = thread::spawn(move || {
        let mut results = 0u64;
        for event in events.iter() {
            match event {
                Event::ProbeResult(_) => results += 1,
                Event::TopologyDeclared(t) => {
                    let _ = topology_tx.try_send(t.probes.len());
                }
                _ => {}
            }
        }
        results
    });
    engine
        .reset("footprint")
        .map_err(|e| format!("reset: {e}"))?;
    let declared = topology_rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|e| format!("no topology: {e}"))?;
    let tid = engine_tid().ok_or("no thread named probewheel-engi")?;
    let s0 = engine.stats().map_err(|e| format!("stats: {e}"))?;
    let (ticks0, ns0) = thread_cpu(&tid);
    let proc0 = process_cpu();
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs(seconds));
    let (ticks1, ns1) = thread_cpu(&tid);
    let proc1 = process_cpu();
    let wall = t0.elapsed().as_secs_f64();
    let s1 = engine.stats().map_err(|e| format!("stats: {e}"))?;
    engine.shutdown().map_err(|e| format!("shutdown: {e}"))?;
    let results = consumer.join().map_err(|_| "consumer panicked")?;

    let engine_stat_s = (ticks1 - ticks0) as f64 / clk_tck;
    let engine_sched_s = (ns1 - ns0) as f64 / 1e9;
    let process_s = (proc1 - proc0).as_secs_f64();
    let runs = s1.dispatched - s0.dispatched;
    let wakeups = s1.wakeups - s0.wakeups;
    Ok(format!(
        "{{\"measurement\":\"cpu\",\"probes\":{declared},\"interval_s\":{CPU_INTERVAL_SECS},\"seconds\":{wall:.1},\"runs\":{runs},\"results\":{results},\"engine_cpu_percent\":{:.3},\"engine_cpu_percent_stat\":{:.3},\"engine_cpu_us_per_run\":{:.1},\"process_cpu_percent\":{:.3},\"wakeups_per_s\":{:.1},\"wakeups_per_run\":{:.3},\"skipped_ticks\":{},\"lateness_p50_us\":{},\"lateness_p99_us\":{},\"min_interval_ms\":{},\"clk_tck\":{clk_tck}}}",
        engine_sched_s / wall * 100.0,
        engine_stat_s / wall * 100.0,
        engine_sched_s * 1e6 / runs.max(1) as f64,
        process_s / wall * 100.0,
        wakeups as f64 / wall,
        wakeups as f64 / runs.max(1) as f64,
        s1.skipped_ticks - s0.skipped_ticks,
        s1.lateness_p50_us,
        s1.lateness_p99_us,
        floor.as_millis(),
    ))
}

/// One thread waking at the CPU measurement's run rate, doing nothing else.
fn measure_cpu_floor(seconds: u64) -> String {
    let rate = CPU_PROBES as f64 / CPU_INTERVAL_SECS as f64;
    let period = Duration::from_secs(CPU_INTERVAL_SECS) / CPU_PROBES as u32;
    let (wakes, cpu_ns, wall) = thread::spawn(move || {
        // SAFETY: PR_SET_TIMERSLACK takes one integer argument and affects
        // only the calling thread.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
        }
        let own = || {
            std::fs::read_to_string("/proc/thread-self/schedstat")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let cpu0 = own();
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(seconds);
        let mut wakes = 0u64;
        loop {
            let due = t0 + period * (wakes as u32 + 1);
            if due >= end {
                break;
            }
            thread::sleep(due.saturating_duration_since(Instant::now()));
            wakes += 1;
        }
        (wakes, own() - cpu0, t0.elapsed().as_secs_f64())
    })
    .join()
    .expect("floor thread");
    format!(
        "{{\"measurement\":\"cpu-floor\",\"wakes_per_s\":{rate:.1},\"seconds\":{wall:.1},\"wakes\":{wakes},\"thread_cpu_percent\":{:.3},\"cpu_us_per_wake\":{:.1}}}",
        cpu_ns as f64 / 1e9 / wall * 100.0,
        cpu_ns as f64 / 1e3 / wakes.max(1) as f64,
    )
}
