//! Tick jitter: how late probe runs start, against two references.
//!
//! ```text
//! cargo bench --bench tick_jitter -- --probes N --interval-ms MS --seconds S [--aligned]
//!     [--pin] [--blocking] [--floor-ms MS] [--hung H] [--only IMPL] [--limit] [--mixed-floor]
//! ```
//!
//! Three implementations run one after another (never concurrently), each
//! for `S` seconds, and each prints one JSON line with the same fields;
//! probewheel's line comes last (`docs/performance.md`). Defaults: 10,000 probes,
//! 1000 ms, 20 s.
//!
//! 1. `tokio-interval`: the reference design. One task per probe on a
//!    current-thread runtime, `tokio::time::interval_at` with
//!    `MissedTickBehavior::Skip`; each tick sends `Instant::now()` minus the
//!    instant `tick()` returned (the slot's scheduled time) on a channel to a
//!    collector thread.
//! 2. `sleep-limit`: one plain thread sleeping to absolute deadlines
//!    (`thread::sleep(deadline - now)`) at the same total rate
//!    (probes / interval), recording its own lateness. Its timer slack is
//!    lowered to 1 ns, as the engine thread does for itself, so this is the
//!    floor a user-space thread reaches on this machine. A deadline already
//!    passed is served at once and counted late (each of the N probes it
//!    stands for would only skip a slot a whole interval late). With
//!    `--aligned` it is as many threads as the engine has workers
//!    (`engine::DEFAULT_WORKERS`), each waking at the instant every probe
//!    is due and then reading the clock once per run of its share of the
//!    probes: the least a burst of starts can cost, one clock read each.
//!    probewheel's line repeats this limit's p50 and p99
//!    (`limit_p50_us`, `limit_p99_us`) and the ratio of the two p50s
//!    (`p50_vs_limit`) when both ran.
//! 3. `probewheel`: the engine through its public API only, with a
//!    registered no-op kind (`FnRunner::inline` returning a pass: a check
//!    that never waits runs on the workers, as built-in runs do), in its default
//!    configuration: 2 workers, not pinned. What the bench sets:
//!    the floor (see "Interval" below), `stagger(true)` unless `--aligned`
//!    (that is what spread means), and an event channel of `probes * 4`
//!    drained by a consumer thread that only records `latenessUs`, so G9
//!    coalescing does not drop samples (the line carries `coalesced`; it
//!    should be 0); the channel's size changes no timing. The declarations
//!    are about 63 bytes a probe (69 with `--mixed-floor`) and the engine
//!    reads at most 1 MiB of them (`docs/declarations.md`), so `--probes` tops out near
//!    16,000 (15,000).
//!
//! # Flags that change the engine's configuration
//!
//! - `--pin`: `Builder::pin_workers(true)` (off by default; see its docs).
//! - `--blocking`: the no-op kind as a blocking custom check
//!   (`FnRunner::new`, `Placement::Blocking`), so each run is handed to a
//!   thread of its own: the cost of that hand-off.
//! - `--floor-ms MS`: the engine's minimum interval, at most the interval
//!   (a larger floor would change the period being measured).
//! - `--hung H`: H more `http` probes (enforce, same interval) against a
//!   loopback listener the bench starts, which accepts every connection,
//!   keeps it open and never answers; their `timeoutSecs` is longer than
//!   the run, so every one of them waits for the whole run. Samples are
//!   still the no-op probes' only. The reference implementations run
//!   without them. The bench's main thread accepts those connections while
//!   it waits (no extra thread), so `threads` compares across runs.
//!   The soft `RLIMIT_NOFILE` is raised to the hard limit at start, since
//!   each hung probe costs two descriptors (both ends of its connection).
//!
//! A sample is one run's lateness in microseconds (for probewheel the
//! `latenessUs` of a `probeResult`: worker start minus slot due time).
//! Every implementation measures the slots due in `[start + interval,
//! start + S)` (with `--mixed-floor`, `[start + interval + 1 s, start + S)`:
//! see "Mixed floor"): the first interval is warm-up and its samples are discarded
//! (thread start-up, page faults, the engine's first allocations), and each
//! keeps running for a grace period of `min(interval / 2, 500 ms)` past the
//! window so that late runs of the last slots are still counted. For
//! probewheel `start` is the topology's `declaredAt` and a slot's time is
//! the result's `scheduledAt` (both on the engine's one wall anchor, so the
//! comparison is exact); for the references it is the scheduled `Instant`.
//! Percentiles are exact, nearest rank over all kept samples
//! (`p = sorted[ceil(q*n)-1]`).
//!
//! # Interval
//!
//! `intervalSeconds` is whole seconds and the engine floors every period at
//! its `min_interval` (G5, default 5 s, which would make a 1 s probe run
//! every 5 s). So the bench sets the floor to the interval unless
//! `--floor-ms` says otherwise: an interval equal to the floor, the common
//! setting G5 is about. When `MS` is a multiple of 1000 the bench declares
//! `intervalSeconds = MS / 1000`; otherwise `intervalSeconds = 0`, and the
//! floor is the period (`--floor-ms`, if given, must then equal `MS`).
//! The engine's hand-over window is a quarter of the floor, at most
//! 100 ms.
//!
//! # Mixed floor
//!
//! `--mixed-floor` measures G5 (lateness never accumulates at an interval
//! equal to the floor) against a control in one engine run: half the no-op
//! probes (the odd one out too) are declared at `intervalSeconds = MS / 1000`
//! with the floor equal to that interval, and the other half one second
//! above it (`MS / 1000 + 1`, so 2 s at a 1 s floor), under the same floor.
//! One second above is the nearest whole-second interval above the floor,
//! so the two groups differ in as little as `intervalSeconds` allows, and at
//! it a slot could only be pushed by the floor if a run were a whole second
//! late: the control cannot suffer the build-up it is compared against. The
//! groups are named `pNNNNNN-floor` (even `NNNNNN`) and `pNNNNNN-above`
//! (odd), told apart by that suffix: the engine staggers first ticks by each
//! probe's rank in name order (G11) times its own interval over the probe
//! count, so alternating names spread each group evenly over its own
//! interval, where a group prefix would crowd both into one half. Stagger
//! as usual (`--aligned` for all first ticks at once). It requires
//! `--interval-ms` in whole seconds, `--floor-ms` left out (or equal to the
//! interval) and at least 2 probes; it measures probewheel only (the
//! references have no floor), so `--only` may only name probewheel. The
//! warm-up is the above-floor interval, so each probe's first slot (up to
//! `MS + 1 s` in with stagger) is discarded in both groups; the window's
//! engine `stats()` start there too. Total runs are three quarters of the
//! all-at-floor rate (at 1 s). With few probes a group's p99 is a handful
//! of samples, and a disturbance that recurs at one phase of every second
//! (another process's timer) hits the groups by where their slots fall,
//! not by their interval: compare several runs, or a longer `--seconds`,
//! and the by-second lines on stderr (see "Extra output").
//!
//! # Extra output
//!
//! The probewheel line adds, after the common fields, `coalesced`,
//! `skipped_ticks`, `wakeups_per_s` and `wakeups_per_run` (engine `stats()`
//! deltas over the measured window, i.e. after warm-up; `coalesced` is the
//! whole run's), so the claim "the engine wakes only when something is
//! due" is visible; then `floor_ms`, `pinned` and `hung`, and `threads`
//! and `rss_kib` (`Threads` and `VmRSS` of `/proc/self/status` at the end
//! of the window, before shutdown: the whole process, so with the
//! reference implementations' leftovers unless `--only probewheel`). With
//! `--mixed-floor` it ends with `at_floor_interval_ms`, `at_floor_samples`,
//! `at_floor_p50_us`, `at_floor_p99_us`, `at_floor_max_us`, the same five
//! `above_floor_*` fields, and `p99_ratio` (at-floor p99 over above-floor
//! p99, `null` if that is 0); the common fields stay over all samples of
//! both groups. Progress, the load average, each implementation's
//! process CPU time (`getrusage`) and the engine's own histogram go to
//! stderr; with `--mixed-floor` so do each group's p50 and p99 by the
//! second its slots fall in, where lateness building up from slot to slot
//! would show as a rise.

#![allow(clippy::disallowed_methods)] // a benchmark reads clocks and sleeps

mod common;

use std::fmt::Write as _;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use probewheel::runner::FnRunner;
use probewheel::{Builder, Event, RunnerOutcome, Stats};

const IMPLS: [&str; 3] = ["tokio-interval", "sleep-limit", "probewheel"];

const USAGE: &str = "usage: cargo bench --bench tick_jitter -- --probes N --interval-ms MS --seconds S [--aligned] [--pin] [--blocking] [--floor-ms MS] [--hung H] [--only IMPL] [--limit] [--mixed-floor]";

#[derive(Debug, Clone, Copy)]
struct Args {
    probes: usize,
    interval: Duration,
    seconds: u64,
    aligned: bool,
    /// Pin the engine's workers (`--pin`).
    pin: bool,
    blocking: bool,
    /// The engine's floor (`--floor-ms`; default: the interval).
    floor: Duration,
    /// Extra http probes that hang for the whole run (`--hung`).
    hung: usize,
    /// Run one implementation only (`--only probewheel`, say): for
    /// comparing changes to one of them; the judged output is all three.
    only: Option<&'static str>,
    /// Run the machine's limit (`sleep-limit`) beside `--only`'s one
    /// (`--limit`), so that probewheel's line carries the ratio.
    limit: bool,
    /// Half the no-op probes at the floor, half one second above it
    /// (`--mixed-floor`; probewheel only).
    mixed_floor: bool,
}

impl Args {
    fn runs(&self, name: &str) -> bool {
        self.only.is_none_or(|o| o == name) || (self.limit && name == "sleep-limit")
    }

    fn run_for(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }

    /// How long past the window's end an implementation keeps running, so
    /// that runs of the window's last slots can still start and report.
    fn grace(&self) -> Duration {
        (self.interval / 2).min(Duration::from_millis(500))
    }

    /// Slot `i` of `n` spread evenly over one interval (as the engine's
    /// stagger does), or zero when aligned.
    fn offset(&self, i: usize) -> Duration {
        if self.aligned {
            return Duration::ZERO;
        }
        spread(self.interval, i as u64, self.probes as u64)
    }

    /// The above-floor group's interval with `--mixed-floor`.
    fn above_interval(&self) -> Duration {
        self.interval + Duration::from_secs(1)
    }

    /// Slots due before this (from the start) are warm-up: the interval,
    /// or with `--mixed-floor` the longer one, so that every probe's first
    /// slot is discarded in both groups.
    fn warm_up(&self) -> Duration {
        if self.mixed_floor {
            self.above_interval()
        } else {
            self.interval
        }
    }

    /// No-op runs per second over all probes.
    fn runs_per_sec(&self) -> f64 {
        if self.mixed_floor {
            let above = (self.probes / 2) as f64;
            let at_floor = self.probes as f64 - above;
            at_floor / self.interval.as_secs_f64() + above / self.above_interval().as_secs_f64()
        } else {
            self.probes as f64 / self.interval.as_secs_f64()
        }
    }

    /// Upper bound of the samples one implementation yields.
    fn expected_samples(&self) -> usize {
        let ticks = self.run_for().as_nanos() / self.interval.as_nanos().max(1) + 1;
        (ticks as usize).saturating_mul(self.probes)
    }
}

/// `interval * i / n`, exact in nanoseconds.
fn spread(interval: Duration, i: u64, n: u64) -> Duration {
    let nanos = interval.as_nanos() * u128::from(i) / u128::from(n.max(1));
    Duration::from_nanos(nanos as u64)
}

fn parse_args() -> Result<Args, String> {
    let mut probes = None;
    let mut interval_ms = None;
    let mut seconds = None;
    let mut aligned = false;
    let mut pin = false;
    let mut blocking = false;
    let mut floor_ms = None;
    let mut hung = 0;
    let mut only = None;
    let mut limit = false;
    let mut mixed_floor = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or_else(|| format!("{name} needs a value"))?;
            v.parse()
                .map_err(|e| format!("{name} {v:?}: {e}"))
                .and_then(|n: u64| {
                    if n == 0 {
                        Err(format!("{name} must be positive"))
                    } else {
                        Ok(n)
                    }
                })
        };
        match arg.as_str() {
            "--probes" => probes = Some(value("--probes")?),
            "--interval-ms" => interval_ms = Some(value("--interval-ms")?),
            "--seconds" => seconds = Some(value("--seconds")?),
            "--aligned" => aligned = true,
            "--pin" => pin = true,
            "--blocking" => blocking = true,
            "--floor-ms" => floor_ms = Some(value("--floor-ms")?),
            "--hung" => {
                let v = it.next().ok_or("--hung needs a value")?;
                hung = v.parse().map_err(|e| format!("--hung {v:?}: {e}"))?;
            }
            "--only" => {
                let name = it.next().ok_or("--only needs a value")?;
                only = Some(
                    IMPLS
                        .into_iter()
                        .find(|i| *i == name)
                        .ok_or_else(|| format!("--only {name:?}: one of {IMPLS:?}"))?,
                );
            }
            "--mixed-floor" => mixed_floor = true,
            "--limit" => limit = true,
            "--bench" => {} // added by `cargo bench`
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let interval_ms = interval_ms.unwrap_or(1000);
    let floor_ms = floor_ms.unwrap_or(interval_ms);
    if mixed_floor {
        if interval_ms % 1000 != 0 {
            return Err(format!(
                "--mixed-floor needs --interval-ms in whole seconds (intervalSeconds is whole \
                 seconds), not {interval_ms}\n{USAGE}"
            ));
        }
        if floor_ms != interval_ms {
            return Err(format!(
                "--mixed-floor sets the floor to --interval-ms ({interval_ms}): leave --floor-ms \
                 out\n{USAGE}"
            ));
        }
        if let Some(other) = only.filter(|o| *o != "probewheel") {
            return Err(format!(
                "--mixed-floor measures probewheel only (the references have no floor): \
                 --only {other} does not go with it\n{USAGE}"
            ));
        }
        only = Some("probewheel");
        if probes.is_some_and(|n| n < 2) {
            return Err(format!(
                "--mixed-floor needs --probes of at least 2 (one a group)\n{USAGE}"
            ));
        }
    }
    if floor_ms > interval_ms {
        return Err(format!(
            "--floor-ms {floor_ms} is above --interval-ms {interval_ms}: the probes would run \
             every {floor_ms} ms, not at the interval measured\n{USAGE}"
        ));
    }
    if interval_ms % 1000 != 0 && floor_ms != interval_ms {
        return Err(format!(
            "--interval-ms {interval_ms} is not whole seconds, so the floor is the period \
             (intervalSeconds 0): --floor-ms must be {interval_ms} or left out\n{USAGE}"
        ));
    }
    let args = Args {
        probes: probes.unwrap_or(10_000) as usize,
        interval: Duration::from_millis(interval_ms),
        seconds: seconds.unwrap_or(20),
        aligned,
        pin,
        blocking,
        floor: Duration::from_millis(floor_ms),
        hung,
        only,
        limit,
        mixed_floor,
    };
    if args.run_for() <= args.warm_up() {
        return Err(format!(
            "--seconds must exceed the warm-up of {:?} (the first interval, or with \
             --mixed-floor the above-floor one)\n{USAGE}",
            args.warm_up()
        ));
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    raise_nofile_limit();
    eprintln!(
        "tick_jitter: {} probes, interval {:?}{}, {} s per implementation, {}; probewheel: floor {:?}, \
         {}, {} hung; loadavg {}",
        args.probes,
        args.interval,
        if args.mixed_floor {
            format!(
                " (--mixed-floor: {} at it, {} at {:?}; probewheel only)",
                args.probes - args.probes / 2,
                args.probes / 2,
                args.above_interval()
            )
        } else {
            String::new()
        },
        args.seconds,
        if args.aligned { "aligned" } else { "spread" },
        args.floor,
        if args.pin { "pinned" } else { "not pinned" },
        args.hung,
        loadavg()
    );

    if args.runs("tokio-interval") {
        let cpu = process_cpu();
        let tokio_samples = run_tokio(&args);
        report_cpu("tokio-interval", cpu, &args);
        println!("{}", summary("tokio-interval", args.probes, tokio_samples));
    }
    let mut limit = None;
    if args.runs("sleep-limit") {
        let cpu = process_cpu();
        let mut floor_samples = run_sleep_limit(&args);
        report_cpu("sleep-limit", cpu, &args);
        floor_samples.sort_unstable();
        limit = Some((
            percentile(&floor_samples, 0.50),
            percentile(&floor_samples, 0.99),
        ));
        println!("{}", summary("sleep-limit", args.probes, floor_samples));
    }
    if !args.runs("probewheel") {
        return ExitCode::SUCCESS;
    }

    let cpu = process_cpu();
    let run = run_probewheel(&args);
    report_cpu("probewheel", cpu, &args);
    match run {
        Ok(run) => {
            let mut samples = run.samples;
            samples.sort_unstable();
            let p50 = percentile(&samples, 0.50);
            let mut line = summary("probewheel", args.probes, samples);
            line.pop(); // reopen the object for the extra fields
            if let Some((limit_p50, limit_p99)) = limit {
                let _ = write!(
                    line,
                    ",\"limit_p50_us\":{limit_p50},\"limit_p99_us\":{limit_p99},\"p50_vs_limit\":{:.2}",
                    p50 as f64 / limit_p50.max(1) as f64
                );
            }
            let window = run.after.wakeups.saturating_sub(run.before.wakeups);
            let runs = run.after.dispatched.saturating_sub(run.before.dispatched);
            let secs = run.window.as_secs_f64();
            let _ = write!(
                line,
                ",\"coalesced\":{},\"skipped_ticks\":{},\"wakeups_per_s\":{:.1},\"wakeups_per_run\":{:.4},\
                 \"floor_ms\":{},\"pinned\":{},\"hung\":{},\"threads\":{},\"rss_kib\":{}}}",
                run.coalesced.max(run.after.coalesced),
                run.after
                    .skipped_ticks
                    .saturating_sub(run.before.skipped_ticks),
                window as f64 / secs,
                window as f64 / runs.max(1) as f64,
                args.floor.as_millis(),
                args.pin,
                args.hung,
                run.threads,
                run.rss_kib,
            );
            if let Some(groups) = run.groups {
                eprintln!("probewheel: {}", by_second("at_floor", &groups.at_floor));
                eprintln!(
                    "probewheel: {}",
                    by_second("above_floor", &groups.above_floor)
                );
                line.pop();
                let floor_p99 =
                    group_fields(&mut line, "at_floor", args.interval, &groups.at_floor);
                let above_p99 = group_fields(
                    &mut line,
                    "above_floor",
                    args.above_interval(),
                    &groups.above_floor,
                );
                if above_p99 == 0 {
                    line.push_str(",\"p99_ratio\":null}");
                } else {
                    let _ = write!(
                        line,
                        ",\"p99_ratio\":{:.2}}}",
                        floor_p99 as f64 / above_p99 as f64
                    );
                }
            }
            eprintln!(
                "probewheel: engine stats over the whole run: wakeups {}, dispatched {}, results {}, \
                 histogram p50 {} p99 {} max {} us; loadavg {}",
                run.after.wakeups,
                run.after.dispatched,
                run.after.results,
                run.after.lateness_p50_us,
                run.after.lateness_p99_us,
                run.after.lateness_max_us,
                loadavg()
            );
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("probewheel: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exact nearest-rank percentile `q` of `sorted` (0 when empty).
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The common JSON line: exact nearest-rank percentiles over all samples.
fn summary(name: &str, probes: usize, mut samples: Vec<u64>) -> String {
    samples.sort_unstable();
    let pct = |q: f64| percentile(&samples, q);
    format!(
        "{{\"impl\":\"{name}\",\"probes\":{probes},\"samples\":{},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}}}",
        samples.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        samples.last().copied().unwrap_or(0),
    )
}

/// Appends one `--mixed-floor` group's fields (`{prefix}_interval_ms`,
/// `_samples`, `_p50_us`, `_p99_us`, `_max_us`) to `line`; returns its p99.
fn group_fields(line: &mut String, prefix: &str, interval: Duration, group: &[(u64, u64)]) -> u64 {
    let mut samples: Vec<u64> = group.iter().map(|&(_, late)| late).collect();
    samples.sort_unstable();
    let p99 = percentile(&samples, 0.99);
    let _ = write!(
        line,
        ",\"{prefix}_interval_ms\":{},\"{prefix}_samples\":{},\"{prefix}_p50_us\":{},\
         \"{prefix}_p99_us\":{p99},\"{prefix}_max_us\":{}",
        interval.as_millis(),
        samples.len(),
        percentile(&samples, 0.50),
        samples.last().copied().unwrap_or(0),
    );
    p99
}

/// One group's p50/p99 by the second its slots fall in (`second:p50/p99`,
/// in µs): lateness that built up from slot to slot would show as a rise
/// along the window.
fn by_second(prefix: &str, group: &[(u64, u64)]) -> String {
    let mut by: std::collections::BTreeMap<u64, Vec<u64>> = std::collections::BTreeMap::new();
    for &(second, late) in group {
        by.entry(second).or_default().push(late);
    }
    let mut out = format!("{prefix} p50/p99 us by second of the slot:");
    for (second, mut samples) in by {
        samples.sort_unstable();
        let _ = write!(
            out,
            " {second}:{}/{}",
            percentile(&samples, 0.50),
            percentile(&samples, 0.99)
        );
    }
    out
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

/// Process CPU used by one implementation's run (setup included), to stderr.
fn report_cpu(name: &str, since: Duration, args: &Args) {
    let used = process_cpu().saturating_sub(since);
    let runs = args.runs_per_sec() * args.seconds as f64;
    eprintln!(
        "{name}: process CPU {:.2} s over {} s ({:.1} % of one core, {:.1} us per run); loadavg {}",
        used.as_secs_f64(),
        args.seconds,
        used.as_secs_f64() / args.seconds as f64 * 100.0,
        used.as_secs_f64() * 1e6 / runs.max(1.0),
        loadavg()
    );
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// A field of `/proc/self/status` as a number (`Threads`, `VmRSS` in kB);
/// 0 when it cannot be read.
fn proc_status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Raises the soft limit on open descriptors to the hard limit: each hung
/// probe holds two (`--hung` can be 1,000 and more).
fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct we pass;
    // RLIMIT_NOFILE is a valid resource.
    let ok = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0
        }
    };
    if !ok {
        eprintln!(
            "tick_jitter: cannot raise RLIMIT_NOFILE: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// A collector thread for lateness samples sent on a channel.
fn collector(capacity: usize) -> (crossbeam_channel::Sender<u64>, thread::JoinHandle<Vec<u64>>) {
    let (tx, rx) = crossbeam_channel::unbounded::<u64>();
    let handle = thread::Builder::new()
        .name("tokio-collector".to_owned())
        .spawn(move || {
            let mut samples = Vec::with_capacity(capacity);
            samples.extend(rx.iter());
            samples
        })
        .expect("spawn collector");
    (tx, handle)
}

// ---------------------------------------------------------------------------
// Reference 1: tokio::time::interval, one task per probe.

fn run_tokio(args: &Args) -> Vec<u64> {
    use tokio::time::{Instant as TokioInstant, MissedTickBehavior};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime");
    let (tx, collected) = collector(args.expected_samples());
    let args = *args;
    rt.block_on(async move {
        let t0 = TokioInstant::now();
        let warm_end = t0 + args.interval;
        let end = t0 + args.run_for();
        let mut tasks = Vec::with_capacity(args.probes);
        for i in 0..args.probes {
            let tx = tx.clone();
            let start = t0 + args.offset(i);
            tasks.push(tokio::spawn(async move {
                let mut interval = tokio::time::interval_at(start, args.interval);
                interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
                loop {
                    let scheduled = interval.tick().await;
                    let late = Instant::now().saturating_duration_since(scheduled.into_std());
                    if scheduled >= warm_end && scheduled < end {
                        let _ = tx.send(micros(late));
                    }
                }
            }));
        }
        drop(tx);
        tokio::time::sleep_until(end + args.grace()).await;
        for t in &tasks {
            t.abort(); // as the reference design does at a reset
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    drop(rt);
    collected.join().expect("collector")
}

// ---------------------------------------------------------------------------
// Reference 2: one thread sleeping to absolute deadlines.

fn run_sleep_limit(args: &Args) -> Vec<u64> {
    if args.aligned {
        return run_burst_limit(args);
    }
    let args = *args;
    let capacity = args.expected_samples();
    thread::Builder::new()
        .name("sleep-limit".to_owned())
        .spawn(move || {
            tighten_timer_slack();
            let mut samples = Vec::with_capacity(capacity);
            let n = args.probes as u64;
            let t0 = Instant::now();
            let warm_end = t0 + args.interval;
            let end = t0 + args.run_for();
            // Deadline j is t0 + j * interval / probes, exact in nanoseconds so
            // no drift accumulates.
            let mut j = 0u64;
            loop {
                let due = t0 + spread(args.interval, j, n);
                if due >= end {
                    break;
                }
                let now = Instant::now();
                if due > now {
                    thread::sleep(due - now);
                }
                if due >= warm_end {
                    samples.push(micros(Instant::now() - due));
                }
                j += 1;
            }
            samples
        })
        .expect("spawn sleep-limit")
        .join()
        .expect("sleep-limit thread")
}

/// The aligned limit: one thread per engine worker, each sleeping to the
/// instant every probe is due, then starting its share of the burst with
/// nothing but one clock read per run.
fn run_burst_limit(args: &Args) -> Vec<u64> {
    let args = *args;
    let threads = probewheel::engine::DEFAULT_WORKERS;
    let t0 = Instant::now() + Duration::from_millis(10);
    let handles: Vec<_> = (0..threads)
        .map(|w| {
            let share = args.probes / threads + usize::from(w < args.probes % threads);
            thread::Builder::new()
                .name(format!("burst-limit-{w}"))
                .spawn(move || {
                    tighten_timer_slack();
                    let mut samples = Vec::with_capacity(args.expected_samples() / threads + 1);
                    let warm_end = t0 + args.interval;
                    let end = t0 + args.run_for();
                    let mut k = 0u32;
                    loop {
                        let due = t0 + args.interval * k;
                        if due >= end {
                            break;
                        }
                        let now = Instant::now();
                        if due > now {
                            thread::sleep(due - now);
                        }
                        for _ in 0..share {
                            let late = micros(Instant::now().saturating_duration_since(due));
                            if due >= warm_end {
                                samples.push(late);
                            }
                        }
                        k += 1;
                    }
                    samples
                })
                .expect("spawn burst-limit")
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("burst-limit thread"))
        .collect()
}

/// Lowers this thread's timer slack to 1 ns, as the engine thread does.
fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and affects only
    // the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

// ---------------------------------------------------------------------------
// probewheel through its public API.

struct EngineRun {
    /// Every no-op probe's samples.
    samples: Vec<u64>,
    /// The same samples by group, with `--mixed-floor`.
    groups: Option<Groups>,
    coalesced: u64,
    before: Stats,
    after: Stats,
    window: Duration,
    /// `Threads` and `VmRSS` at the end of the window.
    threads: u64,
    rss_kib: u64,
}

/// `--mixed-floor` samples by group: (whole seconds from the reset to the
/// slot, lateness in microseconds).
struct Groups {
    at_floor: Vec<(u64, u64)>,
    above_floor: Vec<(u64, u64)>,
}

/// Name suffixes of the `--mixed-floor` groups (see the module docs).
const AT_FLOOR: &str = "-floor";
const ABOVE_FLOOR: &str = "-above";

/// `intervalSeconds` for the interval asked for (see the module docs).
fn interval_secs(args: &Args) -> u64 {
    let ms = args.interval.as_millis() as u64;
    if ms % 1000 == 0 { ms / 1000 } else { 0 }
}

/// The no-op probes, and `--hung` http probes against `hung_url`.
fn declarations(args: &Args, hung_url: Option<&str>) -> String {
    let every = interval_secs(args);
    let mut json = if args.mixed_floor {
        mixed_declarations(args.probes, every)
    } else {
        common::noop_declarations(args.probes, every)
    };
    let Some(url) = hung_url else {
        return json;
    };
    // Longer than the whole run: every hung run waits until shutdown.
    let timeout = (args.seconds + 2 * args.interval.as_secs() + 60).min(86_400);
    json.pop(); // reopen the object
    for i in 0..args.hung {
        if args.probes > 0 || i > 0 {
            json.push(',');
        }
        let _ = write!(
            json,
            "\"hung{i:06}\":{{\"kind\":\"http\",\"mode\":\"enforce\",\"intervalSeconds\":{every},\
             \"url\":\"{url}\",\"timeoutSecs\":{timeout}}}"
        );
    }
    json.push('}');
    json
}

/// `--mixed-floor`'s no-op probes: `pNNNNNN-floor` at `floor_secs` for
/// even `NNNNNN`, `pNNNNNN-above` at `floor_secs + 1` for odd, so that the
/// two groups alternate in name order (see the module docs).
fn mixed_declarations(n: usize, floor_secs: u64) -> String {
    let mut json = String::with_capacity(n * 72 + 2);
    json.push('{');
    for i in 0..n {
        if i > 0 {
            json.push(',');
        }
        let (suffix, every) = if i % 2 == 0 {
            (AT_FLOOR, floor_secs)
        } else {
            (ABOVE_FLOOR, floor_secs + 1)
        };
        let _ = write!(
            json,
            "\"p{i:06}{suffix}\":{{\"kind\":\"noop\",\"mode\":\"enforce\",\"intervalSeconds\":{every}}}"
        );
    }
    json.push('}');
    json
}

/// A loopback listener that accepts and never answers (`--hung`). Its
/// connections are accepted by the main thread while it waits
/// ([`Hung::wait_until`]), and kept open until the listener is dropped.
struct Hung {
    listener: std::net::TcpListener,
    held: Vec<std::net::TcpStream>,
}

impl Hung {
    fn start() -> std::io::Result<Hung> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        Ok(Hung {
            listener,
            held: Vec::new(),
        })
    }

    fn url(&self) -> std::io::Result<String> {
        Ok(format!("http://{}/", self.listener.local_addr()?))
    }

    /// Accepts connections until `deadline`, sleeping in `poll(2)` on the
    /// listener in between.
    fn wait_until(&mut self, deadline: Instant) {
        use std::os::fd::AsRawFd as _;
        loop {
            loop {
                match self.listener.accept() {
                    Ok((stream, _)) => self.held.push(stream),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        eprintln!("probewheel: hung listener: accept: {e}");
                        break;
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let ms = (deadline - now).as_millis().clamp(1, i32::MAX as u128) as i32;
            let mut fd = libc::pollfd {
                fd: self.listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for a descriptor we own, count 1.
            unsafe {
                libc::poll(&mut fd, 1, ms);
            }
        }
    }
}

/// Waits until `deadline`, accepting hung connections meanwhile if any.
fn wait_until(hung: Option<&mut Hung>, deadline: Instant) {
    match hung {
        Some(h) => h.wait_until(deadline),
        None => thread::sleep(deadline.saturating_duration_since(Instant::now())),
    }
}

fn run_probewheel(args: &Args) -> Result<EngineRun, String> {
    let engine_err = |e: probewheel::EngineError| e.to_string();
    let mut hung = if args.hung > 0 {
        Some(Hung::start().map_err(|e| format!("cannot start the hung listener: {e}"))?)
    } else {
        None
    };
    let url = match &hung {
        Some(h) => Some(h.url().map_err(|e| format!("hung listener address: {e}"))?),
        None => None,
    };
    let json = declarations(args, url.as_deref());
    eprintln!(
        "probewheel: declarations {} bytes, intervalSeconds {}{}, min_interval {:?}, pin_workers {}, \
         {} hung http probes",
        json.len(),
        interval_secs(args),
        if args.mixed_floor {
            format!(" (half; the other half {})", interval_secs(args) + 1)
        } else {
            String::new()
        },
        args.floor,
        args.pin,
        args.hung,
    );
    let mut builder = Builder::new()
        .declarations_json(json)
        .min_interval(args.floor)
        .events_capacity((args.probes * 4).max(1024))
        .stagger(!args.aligned)
        .runner(
            "noop",
            if args.blocking {
                FnRunner::new(|_| RunnerOutcome::pass())
            } else {
                FnRunner::inline(|_| RunnerOutcome::pass())
            },
        );
    if args.pin {
        builder = builder.pin_workers(true);
    }
    let (engine, events) = builder.build().map_err(engine_err)?;

    let (topology_tx, topology_rx) = crossbeam_channel::bounded::<usize>(1);
    let capacity = args.expected_samples();
    let warm_end = micros(args.warm_up()) as i64;
    let end = micros(args.run_for()) as i64;
    let mixed = args.mixed_floor;
    let consumer = thread::Builder::new()
        .name("pw-consumer".to_owned())
        .spawn(move || {
            let mut samples = Vec::with_capacity(capacity);
            // With `--mixed-floor`: (second of the slot, lateness) by group.
            let (mut at_floor, mut above_floor) = (Vec::new(), Vec::new());
            let mut coalesced = 0u64;
            let mut declared_at = 0i64;
            for event in events.iter() {
                match event {
                    // Samples are the no-op probes' only (not `--hung`).
                    Event::ProbeResult(r) if &*r.kind == "noop" => {
                        coalesced += r.coalesced;
                        // Slot time relative to the reset, on the same wall
                        // anchor as `declaredAt`.
                        let at = r.scheduled_at.unix_micros() - declared_at;
                        if !(warm_end..end).contains(&at) {
                            continue;
                        }
                        samples.push(r.lateness_us);
                        if mixed {
                            let sample = ((at / 1_000_000) as u64, r.lateness_us);
                            if r.probe_name.ends_with(ABOVE_FLOOR) {
                                above_floor.push(sample);
                            } else {
                                at_floor.push(sample);
                            }
                        }
                    }
                    Event::TopologyDeclared(t) => {
                        declared_at = t.declared_at.unix_micros();
                        let _ = topology_tx.try_send(t.probes.len());
                    }
                    Event::DeclarationsRejected(r) => {
                        eprintln!("probewheel: declarations rejected: {}", r.reason);
                        let _ = topology_tx.try_send(0);
                    }
                    _ => {}
                }
            }
            let groups = mixed.then_some(Groups {
                at_floor,
                above_floor,
            });
            (samples, groups, coalesced)
        })
        .expect("spawn consumer");

    engine.reset("bench").map_err(engine_err)?;
    let declared = topology_rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or(0);
    // The engine anchored slot 0 (its `declaredAt`) just before this.
    let t0 = Instant::now();
    if declared != args.probes + args.hung {
        eprintln!(
            "probewheel: topology has {declared} probes, expected {}",
            args.probes + args.hung
        );
    }
    wait_until(hung.as_mut(), t0 + args.warm_up());
    let before = engine.stats().map_err(engine_err)?;
    let window_start = Instant::now();
    wait_until(hung.as_mut(), t0 + args.run_for());
    let after = engine.stats().map_err(engine_err)?;
    let window = window_start.elapsed();
    let (threads, rss_kib) = (proc_status("Threads"), proc_status("VmRSS"));
    if let Some(h) = &hung {
        eprintln!(
            "probewheel: {} hung connections held at the end of the window",
            h.held.len()
        );
    }
    wait_until(hung.as_mut(), Instant::now() + args.grace());
    engine.shutdown().map_err(engine_err)?;
    drop(hung);
    let (samples, groups, coalesced) = consumer.join().expect("consumer thread");
    Ok(EngineRun {
        samples,
        groups,
        coalesced,
        before,
        after,
        window,
        threads,
        rss_kib,
    })
}
