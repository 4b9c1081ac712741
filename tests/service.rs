//! `probewheel run` as a host service (README, "Running as a service"), end
//! to end through the real binary: stdin in every state, a consumer that
//! stops reading, signals, exit 3, ordered stats lines, the metrics file,
//! systemd's notify protocol and the example unit; plus `check`'s output.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{TempDir, prometheus, wait_until};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_probewheel");

/// A spawned `probewheel`, stderr collected in the background.
struct Proc {
    child: Child,
    stderr: common::StderrReader,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let stderr = common::StderrReader::start(child.stderr.take().unwrap());
        Proc { child, stderr }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child, which has not been reaped.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// stderr so far, without waiting.
    fn stderr_now(&self) -> String {
        self.stderr.so_far()
    }

    /// stderr so far; once the process has exited, all of it (waiting a
    /// little for the reader to reach the end).
    fn stderr(&self) -> String {
        self.stderr.all()
    }

    fn send(&mut self, bytes: &[u8]) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for the exit; None if still running after `limit`.
    /// SIGTERM, then asserts a clean exit (0) within the contract's bound
    /// plus margin.
    fn terminate_cleanly(&mut self) {
        self.signal(libc::SIGTERM);
        assert_eq!(
            self.exit_within(Duration::from_secs(5)),
            Some(0),
            "{}",
            self.stderr()
        );
    }

    fn exit_within(&mut self, limit: Duration) -> Option<i32> {
        let mut status = None;
        wait_until(limit, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.map(|s| s.code().unwrap_or(-1))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines of a child's stdout as JSON, read in the background.
fn json_lines(out: impl Read + Send + 'static) -> mpsc::Receiver<Value> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    rx
}

/// Reads lines until one matches; panics after `limit`.
fn until(
    rx: &mpsc::Receiver<Value>,
    limit: Duration,
    mut pred: impl FnMut(&Value) -> bool,
) -> Vec<Value> {
    let end = Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok(v) => {
                let hit = pred(&v);
                seen.push(v);
                if hit {
                    return seen;
                }
            }
            Err(e) => panic!("no matching line within {limit:?} ({e}); saw {seen:#?}"),
        }
    }
}

fn run_cmd(config: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["run", "--config", config]).args(extra);
    c
}

/// A `run` with stdin and stdout piped.
fn start_run(config: &str, extra: &[&str]) -> (Proc, mpsc::Receiver<Value>) {
    let mut p = Proc::spawn(
        run_cmd(config, extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    );
    let lines = json_lines(p.child.stdout.take().unwrap());
    (p, lines)
}

fn is(v: &Value, event: &str) -> bool {
    v["event"] == event
}

/// A quiet file: probes that run once at start, then not for an hour.
fn quiet_config(dir: &TempDir) -> String {
    dir.write(
        "quiet.json",
        r#"{
            "ok": {"kind": "exec", "mode": "enforce", "intervalSeconds": 3600, "command": ["true"]},
            "port": {"kind": "tcp", "mode": "observe", "intervalSeconds": 3600, "port": 1}
        }"#,
    )
    .display()
    .to_string()
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as u64 }
}

/// Watches the process's CPU time for `span`: `Err(share)` as soon as it
/// has used more than `max_share` of one core since the start, judged from
/// the first second on (a spinning loop trips it then; a stray clock tick
/// or two cannot), `Ok(share)` when the
/// span ends below it.
fn cpu_stays_under(pid: i32, span: Duration, max_share: f64) -> Result<f64, f64> {
    let t0 = Instant::now();
    let c0 = cpu_ticks(pid);
    let share = || {
        let used = (cpu_ticks(pid) - c0) as f64 / ticks_per_second() as f64;
        used / t0.elapsed().as_secs_f64()
    };
    let mut over = None;
    wait_until(span, || {
        let s = share();
        if t0.elapsed() >= Duration::from_secs(1) && s > max_share {
            over = Some(s);
        }
        over.is_some()
    });
    match over {
        Some(s) => Err(s),
        None => Ok(share()),
    }
}

#[test]
fn stdin_at_end_of_file_costs_no_cpu() {
    let dir = TempDir::new("svc-eof");
    let config = quiet_config(&dir);
    // stdin as systemd gives it (/dev/null), and a pipe closed after one
    // command (`echo stats | probewheel run`).
    let mut null = Proc::spawn(
        run_cmd(&config, &[])
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
    );
    let null_lines = json_lines(null.child.stdout.take().unwrap());
    let (mut piped, piped_lines) = start_run(&config, &[]);
    piped.send(b"stats\n");
    drop(piped.child.stdin.take());
    until(&null_lines, Duration::from_secs(10), |v| {
        is(v, "probeResult")
    });
    until(&piped_lines, Duration::from_secs(10), |v| is(v, "stats"));
    // Both probes ran: from here on nothing is due for an hour.
    until(&null_lines, Duration::from_secs(10), |v| {
        is(v, "probeResult")
    });
    for p in [&null, &piped] {
        // A spinning loop costs a whole core (1.0); idle is about 0.
        if let Err(share) = cpu_stays_under(p.pid(), Duration::from_secs(3), 0.05) {
            panic!("pid {} used {:.1} % of a core", p.pid(), share * 100.0);
        }
    }
    for mut p in [null, piped] {
        p.terminate_cleanly();
    }
}

#[test]
fn bad_bytes_and_a_huge_line_on_stdin_cost_one_error_each_and_commands_go_on() {
    let dir = TempDir::new("svc-stdin");
    let config = quiet_config(&dir);
    let (mut p, lines) = start_run(&config, &[]);
    until(&lines, Duration::from_secs(10), |v| {
        is(v, "topologyDeclared")
    });
    // In a thread: a reader that stopped reading would block the writes.
    let mut stdin = p.child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        stdin.write_all(b"sta\xfftus\n")?;
        // 64 MiB without a newline, then one: read in pieces, never stored.
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..64 {
            stdin.write_all(&chunk)?;
        }
        stdin.write_all(b"\nstats\n")?;
        Ok::<_, std::io::Error>(stdin)
    });
    let seen = until(&lines, Duration::from_secs(20), |v| is(v, "stats"));
    assert_eq!(seen.last().unwrap()["rolloutId"], "local");
    p.child.stdin = Some(writer.join().unwrap().unwrap());
    p.send(b"reset second\n");
    until(&lines, Duration::from_secs(10), |v| {
        is(v, "topologyDeclared") && v["rolloutId"] == "second"
    });
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.pid())).unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(
        hwm_kib < 32 * 1024,
        "peak RSS {hwm_kib} KiB after a 64 MiB line"
    );
    p.send(b"shutdown\n");
    assert_eq!(p.exit_within(Duration::from_secs(5)), Some(0));
    let err = p.stderr();
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("probewheel: "))
        .collect();
    assert_eq!(errors.len(), 2, "{err}");
    assert!(
        errors[0].contains("not UTF-8") && errors[0].contains(r"sta\xfftus"),
        "{err}"
    );
    assert!(errors[1].contains("longer than 4096 bytes"), "{err}");
    assert!(errors.iter().all(|l| l.len() < 400), "{err}");
}

#[test]
fn rollout_ids_and_the_events_capacity_are_bounded() {
    let dir = TempDir::new("svc-bounds");
    let config = quiet_config(&dir);
    for (flag, value, want) in [
        ("--rollout", "a b".to_owned(), "printable ASCII"),
        ("--rollout", "r".repeat(257), "at most 256 bytes"),
        (
            "--events-capacity",
            "16777216".to_owned(),
            "from 1 to 65536",
        ),
    ] {
        let mut p = Proc::spawn(
            Command::new(BIN)
                .args(["run", "--config", &config, flag, &value])
                .stdin(Stdio::null())
                .stdout(Stdio::null()),
        );
        assert_eq!(p.exit_within(Duration::from_secs(10)), Some(2), "{flag}");
        let err = p.stderr();
        assert!(err.contains(want), "{flag}: {err}");
        assert!(err.len() < 2000, "{flag}: the value is not echoed whole");
    }
    let (mut p, lines) = start_run(&config, &[]);
    until(&lines, Duration::from_secs(10), |v| {
        is(v, "topologyDeclared")
    });
    let mut long = b"reset ".to_vec();
    long.extend(std::iter::repeat_n(b'r', 4000));
    long.push(b'\n');
    p.send(&long);
    p.send(b"stats\n");
    let stats = until(&lines, Duration::from_secs(10), |v| is(v, "stats"));
    assert_eq!(
        stats.last().unwrap()["generation"],
        1,
        "the long id was refused"
    );
    assert!(
        wait_until(Duration::from_secs(5), || p
            .stderr_now()
            .contains("at most 256 bytes")),
        "{}",
        p.stderr_now()
    );
}

/// A config whose probes fill a stdout nobody reads within a second or
/// two, plus one exec probe whose child runs until it is killed; its
/// pid lands in `child.pid`.
fn flood_config(dir: &TempDir) -> String {
    let mut m = serde_json::Map::new();
    for i in 0..200 {
        m.insert(
            format!("flood-{i:03}-{}", "n".repeat(100)),
            serde_json::json!({"kind": "tcp", "mode": "observe", "intervalSeconds": 0, "port": 1}),
        );
    }
    let pidfile = dir.path("child.pid");
    m.insert(
        "long".into(),
        serde_json::json!({"kind": "exec", "mode": "observe", "intervalSeconds": 3600,
            "timeoutSecs": 3600,
            "command": ["sh", "-c", format!("echo $$ > {}.tmp && mv {0}.tmp {0} && exec sleep 1000", pidfile.display())]}),
    );
    dir.write(
        "flood.json",
        &serde_json::to_string(&Value::Object(m)).unwrap(),
    )
    .display()
    .to_string()
}

/// Bytes waiting in a pipe.
fn pipe_backlog(fd: i32) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    assert_eq!(unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) }, 0);
    n as usize
}

/// Whether `pid`'s stdout thread waits in the kernel's pipe write (its wait
/// channel, `pipe_write` or `anon_pipe_write` by kernel version): the pipe
/// is full. The bytes in a full pipe depend on the sizes of the writes that
/// filled it (the kernel fills it by pages and does not split a write's
/// head across a page), so with the output thread's buffered writes a full
/// pipe can hold less than 60 KiB.
fn stdout_thread_blocked(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|t| {
        let read = |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap_or_default();
        read("comm").trim() == "probewheel-stdo" && read("wchan").ends_with("pipe_write")
    })
}

/// A `run` on the flood config whose stdout is a pipe nobody reads, once
/// that pipe is full and the exec child is up.
fn stalled_run(dir: &TempDir) -> (Proc, std::process::ChildStdout, i32) {
    let config = flood_config(dir);
    let mut p = Proc::spawn(
        run_cmd(
            &config,
            &["--min-interval-ms", "50", "--events-capacity", "16"],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped()),
    );
    let out = p.child.stdout.take().unwrap();
    let fd = out.as_raw_fd();
    let pid = p.child.id();
    assert!(
        wait_until(Duration::from_secs(20), || pipe_backlog(fd) >= 60 * 1024
            || stdout_thread_blocked(pid)),
        "stdout pipe never filled ({} bytes)",
        pipe_backlog(fd)
    );
    let child = common::read_pid(&dir.path("child.pid"), Duration::from_secs(10));
    assert!(common::process_running(child));
    (p, out, child)
}

#[test]
fn a_consumer_that_stops_reading_holds_up_neither_sigterm_nor_shutdown() {
    for how in ["SIGTERM", "shutdown"] {
        let dir = TempDir::new("svc-stall");
        let (mut p, _out, child) = stalled_run(&dir);
        let t0 = Instant::now();
        match how {
            "SIGTERM" => p.signal(libc::SIGTERM),
            _ => p.send(b"shutdown\n"),
        }
        let code = p.exit_within(Duration::from_secs(5));
        let took = t0.elapsed();
        assert_eq!(code, Some(0), "{how}: {}", p.stderr());
        // G10 says within 1 s; the margin is for a loaded machine.
        assert!(took < Duration::from_secs(3), "{how}: took {took:?}");
        assert!(
            wait_until(Duration::from_secs(2), || !common::process_running(child)),
            "{how}: exec child {child} outlived probewheel"
        );
    }
}

#[test]
fn a_consumer_that_stops_reading_does_not_hold_up_a_reset() {
    let dir = TempDir::new("svc-stall-reset");
    let (mut p, _out, child) = stalled_run(&dir);
    p.send(b"reset next\n");
    // G2: old exec groups are killed within 100 ms of a reset; the margin
    // is for a loaded machine.
    assert!(
        wait_until(Duration::from_secs(2), || !common::process_running(child)),
        "exec child {child} of the old generation still running"
    );
    p.terminate_cleanly();
}

#[test]
fn sighup_reloads_usr1_prints_stats_and_other_signals_neither_kill_nor_orphan() {
    let dir = TempDir::new("svc-hup");
    let config = dir.write(
        "c.json",
        r#"{"a": {"kind": "exec", "mode": "observe", "intervalSeconds": 3600, "command": ["true"]}}"#,
    );
    let (mut p, lines) = start_run(&config.display().to_string(), &["--rollout", "stable@abc"]);
    until(&lines, Duration::from_secs(10), |v| is(v, "probeResult"));
    std::fs::write(
        &config,
        r#"{"a": {"kind": "exec", "mode": "observe", "intervalSeconds": 3600, "command": ["true"]},
            "b": {"kind": "exec", "mode": "observe", "intervalSeconds": 3600, "command": ["true"]}}"#,
    )
    .unwrap();
    p.signal(libc::SIGHUP);
    let seen = until(&lines, Duration::from_secs(10), |v| {
        is(v, "topologyDeclared")
    });
    let topo = seen.last().unwrap();
    assert_eq!(topo["generation"], 2);
    assert_eq!(topo["rolloutId"], "stable@abc");
    assert_eq!(
        topo["probes"].as_array().unwrap().len(),
        2,
        "the file was re-read"
    );
    for sig in [libc::SIGUSR2, libc::SIGALRM] {
        p.signal(sig);
    }
    p.signal(libc::SIGUSR1);
    let stats = until(&lines, Duration::from_secs(10), |v| is(v, "stats"));
    assert_eq!(stats.last().unwrap()["generation"], 2);
    assert_eq!(
        p.child.try_wait().unwrap(),
        None,
        "USR2/ALRM must not kill it"
    );
    p.signal(libc::SIGQUIT);
    assert_eq!(
        p.exit_within(Duration::from_secs(5)),
        Some(0),
        "{}",
        p.stderr()
    );
}

// SIGKILL of probewheel leaving no exec child: tests/exec_dies_with_parent.rs.

#[test]
fn a_closed_or_full_stdout_exits_3_without_a_panic() {
    let dir = TempDir::new("svc-exit3");
    let config = quiet_config(&dir);
    let bad = dir.write(
        "bad.json",
        r#"{"x": {"kind": "tcp", "mode": "observe", "port": 0}}"#,
    );
    let bad = bad.display().to_string();
    let full = || {
        Stdio::from(
            std::fs::File::options()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
    };
    let cases: Vec<(&str, Vec<&str>, Stdio)> = vec![
        (
            "check/EPIPE",
            vec!["check", "--config", &bad],
            common::closed_pipe(),
        ),
        ("check/ENOSPC", vec!["check", "--config", &bad], full()),
        (
            "once/EPIPE",
            vec!["once", "--config", &config],
            common::closed_pipe(),
        ),
        ("once/ENOSPC", vec!["once", "--config", &config], full()),
        (
            "run/EPIPE",
            vec!["run", "--config", &config],
            common::closed_pipe(),
        ),
        ("run/ENOSPC", vec!["run", "--config", &config], full()),
    ];
    for (name, args, stdout) in cases {
        let mut p = Proc::spawn(
            Command::new(BIN)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(stdout),
        );
        let code = p.exit_within(Duration::from_secs(10));
        assert_eq!(code, Some(3), "{name}: {}", p.stderr());
        assert!(!p.stderr().contains("panicked"), "{name}: {}", p.stderr());
    }
}

#[test]
fn a_stats_line_comes_after_every_event_sent_before_the_command() {
    let dir = TempDir::new("svc-order");
    let mut m = serde_json::Map::new();
    for i in 0..50 {
        m.insert(
            format!("p{i:02}"),
            serde_json::json!({"kind": "exec", "mode": "observe", "runOnce": true, "command": ["true"]}),
        );
    }
    let config = dir.write("c.json", &Value::Object(m).to_string());
    let (mut p, lines) = start_run(&config.display().to_string(), &[]);
    for round in 0..30 {
        p.send(format!("reset r{round}\nstats\n").as_bytes());
    }
    p.send(b"shutdown\n");
    let mut printed = 0u64;
    let mut stats_lines = 0;
    while let Ok(v) = lines.recv_timeout(Duration::from_secs(20)) {
        if is(&v, "stats") {
            stats_lines += 1;
            let last = v["lastSeq"].as_u64().unwrap();
            assert!(
                last <= printed,
                "stats with lastSeq {last} printed after only seq {printed}"
            );
        } else {
            printed = v["seq"].as_u64().unwrap();
        }
    }
    assert_eq!(stats_lines, 30);
    assert_eq!(p.exit_within(Duration::from_secs(5)), Some(0));
}

fn check_out(dir: &TempDir, name: &str, text: &[u8]) -> (i32, String) {
    let path = dir.path(name);
    std::fs::write(&path, text).unwrap();
    common::check_file(BIN, &path)
}

#[test]
fn check_escapes_names_and_reports_repeats_and_encodings() {
    let dir = TempDir::new("svc-check");
    let (code, out) = check_out(
        &dir,
        "names.json",
        br#"{"evil\nerror: ssh: port: forged": {"kind": "tcp", "mode": "observe", "port": 0},
             "twice": {"kind": "tcp", "mode": "observe", "port": 22, "port": 23},
             "shell": {"kind": "exec", "mode": "observe", "command": "test -f /x && echo 'y'"}}"#,
    );
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "one line per finding: {out}");
    assert!(
        lines[0].starts_with(r#"error: "evil\nerror: ssh: port: forged": port: "#),
        "{out}"
    );
    assert!(
        lines[1].starts_with("warning: shell: command: a string command is split"),
        "{out}"
    );
    assert_eq!(
        lines[2],
        "error: twice: port: appears more than once in this declaration"
    );

    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(br#"{"a": {"kind": "tcp", "mode": "observe", "port": 22}}"#);
    let (code, out) = check_out(&dir, "bom.json", &bom);
    assert_eq!(code, 2);
    assert!(out.contains("byte order mark"), "{out}");
    let utf16: Vec<u8> = r#"{"a": {}}"#.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let (code, out) = check_out(&dir, "utf16.json", &utf16);
    assert_eq!(code, 2);
    assert!(out.contains("UTF-16"), "{out}");

    // One probe's unknown field nested deep does not reject the file.
    let deep = format!(
        r#"{{"a": {{"kind": "tcp", "mode": "observe", "port": 22, "x": {}{}}}}}"#,
        "[".repeat(127),
        "]".repeat(127)
    );
    let (code, out) = check_out(&dir, "deep.json", deep.as_bytes());
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "warning: a: x: unknown field, ignored\n");
}

#[test]
fn metrics_file_is_prometheus_text_replaced_atomically() {
    let dir = TempDir::new("svc-metrics");
    let config = dir.write(
        "c.json",
        r#"{"up": {"kind": "exec", "mode": "enforce", "intervalSeconds": 3600, "command": ["true"]},
            "we\"ird\\name": {"kind": "exec", "mode": "observe", "intervalSeconds": 3600, "command": ["false"]}}"#,
    );
    let prom = dir.path("probewheel.prom");
    let (mut p, lines) = start_run(
        &config.display().to_string(),
        &["--metrics-file", prom.to_str().unwrap()],
    );
    let mut results = 0;
    until(&lines, Duration::from_secs(10), |v| {
        results += usize::from(is(v, "probeResult"));
        results == 2
    });
    // The file follows the events by up to a second: wait for both rows.
    let mut read = Err("not written yet".to_owned());
    wait_until(Duration::from_secs(10), || {
        read = std::fs::read_to_string(&prom)
            .map_err(|e| e.to_string())
            .and_then(|text| prometheus::parse(&text).map(|m| (text, m)));
        read.as_ref()
            .is_ok_and(|(_, m)| m.samples("probewheel_probe_success").count() == 2)
    });
    let (text, m) = read.unwrap_or_else(|e| {
        panic!(
            "metrics file: {e}\n{}",
            std::fs::read_to_string(&prom).unwrap_or_default()
        )
    });
    let one = |name: &str, labels: &[(&str, &str)]| {
        m.one(name, labels)
            .unwrap_or_else(|e| panic!("{e}\nin:\n{text}"))
    };
    let success = "probewheel_probe_success";
    let up = [("probe", "up")];
    assert_eq!(
        one(
            success,
            &[("probe", "up"), ("kind", "exec"), ("mode", "enforce")]
        ),
        1.0
    );
    let weird = [
        ("probe", r#"we"ird\name"#),
        ("kind", "exec"),
        ("mode", "observe"),
    ];
    assert_eq!(one(success, &weird), 0.0);
    assert!(one("probewheel_probe_duration_seconds", &up) > 0.0);
    assert!(one("probewheel_probe_lateness_seconds", &up) >= 0.0);
    assert!(one("probewheel_probe_last_run_timestamp_seconds", &up) > 1.7e9);
    assert_eq!(one("probewheel_generation", &[]), 1.0);
    assert_eq!(one("probewheel_probes", &[]), 2.0);
    assert_eq!(
        one("probewheel_events_dropped_total", &[("reason", "reset")]),
        0.0
    );
    assert_eq!(
        m.family("probewheel_events_coalesced_total")
            .map(|f| f.kind()),
        Some(prometheus::MetricType::Counter)
    );
    for f in &m.families {
        assert!(f.help.is_some() && f.typed.is_some(), "{}: {text}", f.name);
    }
    // The same reader refuses this very file with one series repeated.
    let first = text.lines().find(|l| !l.starts_with('#')).unwrap();
    let doubled = text.replacen(first, &format!("{first}\n{first}"), 1);
    let err = prometheus::parse(&doubled).unwrap_err();
    assert!(err.contains("duplicate series"), "{err}");

    // Written by rename: no temporary file stays behind.
    let names: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    p.send(b"shutdown\n");
    assert_eq!(p.exit_within(Duration::from_secs(5)), Some(0));
}

#[test]
fn metrics_file_carries_the_rollout_verdict() {
    let dir = TempDir::new("svc-metrics-verdict");
    let config = dir.write(
        "c.json",
        r#"{"up": {"kind": "exec", "mode": "enforce", "intervalSeconds": 3600, "command": ["true"]}}"#,
    );
    let prom = dir.path("probewheel.prom");
    let (mut p, lines) = start_run(
        &config.display().to_string(),
        &[
            "--metrics-file",
            prom.to_str().unwrap(),
            "--soak",
            "0",
            "--deadline",
            "60",
        ],
    );
    until(&lines, Duration::from_secs(10), |v| {
        is(v, "rolloutVerdict") && v["verdict"] == "healthy" && v["decided"] == true
    });
    let want = [
        "probewheel_verdict{verdict=\"pending\"} 0",
        "probewheel_verdict{verdict=\"healthy\"} 1",
        "probewheel_verdict{verdict=\"unhealthy\"} 0",
        "probewheel_verdict{verdict=\"rejected\"} 0",
        "probewheel_verdict_decided 1",
    ];
    let mut text = String::new();
    let written = wait_until(Duration::from_secs(10), || {
        text = std::fs::read_to_string(&prom).unwrap_or_default();
        want.iter().all(|w| text.lines().any(|l| l == *w))
    });
    assert!(written, "{text}");
    assert!(text.contains("# TYPE probewheel_verdict gauge"), "{text}");
    assert!(
        text.contains("# TYPE probewheel_verdict_decided gauge"),
        "{text}"
    );
    p.send(b"shutdown\n");
    assert_eq!(p.exit_within(Duration::from_secs(5)), Some(0));
}

/// A fake Nagios plugin's perfdata in the event and the metrics file, in
/// base units, escaped, and replaced by the next result: a label that is
/// gone from the plugin's output is gone from the file.
#[test]
fn metrics_file_carries_nagios_perfdata_of_the_last_result() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("svc-metrics-perfdata");
    let state = dir.path("second-run");
    let plugin = dir.write(
        "check_fake",
        &format!(
            "#!/bin/sh\nif [ -e {0} ]; then printf 'DISK OK | b=2KB\\n'; exit 0; fi\n\
             touch {0}\nprintf \"DISK WARNING - low | 'free \\\"x\\\"'=250ms;1;2 b=1KB temp=40C\\n\"\nexit 1\n",
            state.display()
        ),
    );
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.write(
        "c.json",
        &serde_json::json!({
            "disk": {"kind": "exec", "mode": "observe", "intervalSeconds": 3600,
                     "outputFormat": "nagios", "command": [plugin]},
            "up": {"kind": "exec", "mode": "enforce", "intervalSeconds": 3600, "command": ["true"]}
        })
        .to_string(),
    );
    let prom = dir.path("probewheel.prom");
    let (mut p, lines) = start_run(
        &config.display().to_string(),
        &["--metrics-file", prom.to_str().unwrap()],
    );
    let mut first = None;
    until(&lines, Duration::from_secs(10), |v| {
        if is(v, "probeResult") && v["probeName"] == "up" {
            assert!(v.get("perfdata").is_none(), "{v}");
        }
        if is(v, "probeResult") && v["probeName"] == "disk" {
            first = Some(v.clone());
        }
        first.is_some()
    });
    let first = first.unwrap();
    assert_eq!(
        first["failureReason"],
        "exec probe: WARNING (exit 1): DISK WARNING - low"
    );
    assert_eq!(
        first["perfdata"],
        serde_json::json!([
            {"label": "free \"x\"", "value": 0.25, "unit": "s"},
            {"label": "b", "value": 1024.0, "unit": "B"}
        ])
    );
    let perfdata = |m: &prometheus::Exposition| -> Vec<(String, f64)> {
        m.samples("probewheel_probe_perfdata")
            .map(|s| {
                assert_eq!(s.labels[0], ("probe".to_owned(), "disk".to_owned()));
                (s.labels[1].1.clone(), s.value)
            })
            .collect()
    };
    let written = |want: &[(&str, f64)]| {
        let mut text = String::new();
        let ok = wait_until(Duration::from_secs(10), || {
            text = std::fs::read_to_string(&prom).unwrap_or_default();
            prometheus::parse(&text).is_ok_and(|m| {
                let got = perfdata(&m);
                got.len() == want.len()
                    && got.iter().zip(want).all(|(g, w)| g.0 == w.0 && g.1 == w.1)
            })
        });
        assert!(ok, "wanted {want:?} in:\n{text}");
        text
    };
    let text = written(&[("free \"x\"", 0.25), ("b", 1024.0)]);
    assert!(
        text.contains("probewheel_probe_perfdata{probe=\"disk\",label=\"free \\\"x\\\"\"} 0.25\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE probewheel_probe_perfdata gauge\n"),
        "{text}"
    );
    // The next run (a reset starts it) prints only `b`.
    p.send(b"reset again\n");
    until(&lines, Duration::from_secs(10), |v| {
        is(v, "probeResult") && v["probeName"] == "disk" && v["generation"] == 2
    });
    written(&[("b", 2048.0)]);
    p.send(b"shutdown\n");
    assert_eq!(p.exit_within(Duration::from_secs(5)), Some(0));
}

/// A one-probe file whose probe passes, and the metrics file path beside it.
fn metrics_setup(dir: &TempDir) -> (String, std::path::PathBuf) {
    let config = dir.write(
        "c.json",
        r#"{"up": {"kind": "exec", "mode": "enforce", "intervalSeconds": 3600, "command": ["true"]}}"#,
    );
    (config.display().to_string(), dir.path("probewheel.prom"))
}

/// Waits until `prom` is a regular file whose text shows the probe `up`
/// passing; its text.
fn metrics_written(prom: &std::path::Path) -> String {
    let mut text = String::new();
    let written = wait_until(Duration::from_secs(10), || {
        let regular = std::fs::symlink_metadata(prom).is_ok_and(|m| m.file_type().is_file());
        text = std::fs::read_to_string(prom).unwrap_or_default();
        regular
            && prometheus::parse(&text)
                .is_ok_and(|m| m.one("probewheel_probe_success", &[("probe", "up")]) == Ok(1.0))
    });
    assert!(written, "metrics file not written: {text:?}");
    text
}

/// SIGTERM, then a clean exit within G10's second.
fn terminate_within_a_second(p: &mut Proc, what: &str) {
    let t0 = Instant::now();
    p.signal(libc::SIGTERM);
    let code = p.exit_within(Duration::from_secs(5));
    let took = t0.elapsed();
    assert_eq!(code, Some(0), "{what}: {}", p.stderr());
    assert!(
        took < Duration::from_secs(1),
        "{what}: SIGTERM took {took:?}"
    );
}

#[test]
fn the_metrics_file_is_never_written_through_a_planted_link() {
    let dir = TempDir::new("svc-metrics-link");
    let (config, prom) = metrics_setup(&dir);
    let victim = dir.write("victim", "precious\n");
    // Every name someone could predict: the old fixed one, and the usual
    // variants of it.
    let planted = [
        "probewheel.prom.tmp",
        ".probewheel.prom.tmp",
        "probewheel.prom.new",
        "probewheel.prom~",
        ".probewheel.prom",
    ];
    for name in planted {
        std::os::unix::fs::symlink(&victim, dir.path(name)).unwrap();
    }
    let (mut p, _lines) = start_run(&config, &["--metrics-file", prom.to_str().unwrap()]);
    let text = metrics_written(&prom);
    assert!(text.contains("probewheel_generation 1"), "{text}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    for name in planted {
        let link = std::fs::read_link(dir.path(name));
        assert_eq!(link.ok().as_deref(), Some(victim.as_path()), "{name}");
    }
    terminate_within_a_second(&mut p, "after a planted link");
    // No temporary file of ours stays behind.
    let mut names: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !planted.contains(&n.as_str()))
        .collect();
    names.sort();
    assert_eq!(names, ["c.json", "probewheel.prom", "victim"]);
}

#[test]
fn a_fifo_at_the_old_temporary_name_holds_up_neither_metrics_nor_commands() {
    let dir = TempDir::new("svc-metrics-fifo");
    let (config, prom) = metrics_setup(&dir);
    common::mkfifo(&std::path::PathBuf::from(format!("{}.tmp", prom.display())));
    let (mut p, lines) = start_run(&config, &["--metrics-file", prom.to_str().unwrap()]);
    metrics_written(&prom);
    // Commands still reach the engine.
    p.send(b"reset next\n");
    until(&lines, Duration::from_secs(10), |v| {
        is(v, "topologyDeclared") && v["rolloutId"] == "next"
    });
    p.send(b"stats\n");
    let seen = until(&lines, Duration::from_secs(10), |v| is(v, "stats"));
    assert_eq!(seen.last().unwrap()["generation"], 2);
    terminate_within_a_second(&mut p, "with a FIFO beside the metrics file");
}

#[test]
fn an_unwritable_metrics_directory_is_logged_and_holds_up_nothing() {
    let dir = TempDir::new("svc-metrics-unwritable");
    let (config, _) = metrics_setup(&dir);
    // Unwritable even for root: nothing can be created in /proc.
    let (mut p, lines) = start_run(&config, &["--metrics-file", "/proc/probewheel.prom"]);
    until(&lines, Duration::from_secs(10), |v| is(v, "probeResult"));
    assert!(
        wait_until(Duration::from_secs(10), || p
            .stderr_now()
            .contains("cannot write metrics file /proc/probewheel.prom")),
        "{}",
        p.stderr_now()
    );
    p.send(b"stats\n");
    until(&lines, Duration::from_secs(10), |v| is(v, "stats"));
    terminate_within_a_second(&mut p, "with an unwritable metrics directory");
}

/// `probewheel run` on a quiet config with a fake `NOTIFY_SOCKET` (read
/// with a 10 s timeout) and `WATCHDOG_USEC`.
fn run_with_notify_socket(dir: &TempDir, watchdog_usec: &str) -> (Proc, UnixDatagram) {
    let config = quiet_config(dir);
    let sock_path = dir.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let p = Proc::spawn(
        run_cmd(&config, &[])
            .env("NOTIFY_SOCKET", &sock_path)
            .env("WATCHDOG_USEC", watchdog_usec)
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    );
    (p, sock)
}

#[test]
fn systemd_notify_ready_status_watchdog_and_stopping() {
    let dir = TempDir::new("svc-notify");
    let (mut p, sock) = run_with_notify_socket(&dir, "200000");
    let mut got: Vec<String> = Vec::new();
    let recv = |got: &mut Vec<String>| {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a notify message within 10 s");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    };
    while !got.iter().any(|m| m.contains("READY=1")) {
        recv(&mut got);
    }
    let ready = got.iter().find(|m| m.contains("READY=1")).unwrap();
    assert!(
        ready.contains("STATUS=rollout local generation 1: 2 probes"),
        "{ready}"
    );
    let watchdogs = |got: &Vec<String>| got.iter().filter(|m| *m == "WATCHDOG=1").count();
    while watchdogs(&got) < 2 {
        recv(&mut got);
    }
    p.signal(libc::SIGTERM);
    while !got.iter().any(|m| m == "STOPPING=1") {
        recv(&mut got);
    }
    assert_eq!(p.exit_within(Duration::from_secs(5)), Some(0));
}

#[test]
fn a_tiny_watchdog_usec_does_not_make_the_loop_spin() {
    let dir = TempDir::new("svc-watchdog-tiny");
    let (mut p, sock) = run_with_notify_socket(&dir, "1");
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).expect("READY=1 within 10 s");
        if buf[..n].starts_with(b"READY=1") {
            break;
        }
    }
    // Over two seconds: a loop that sends back to back sends thousands
    // (and uses a whole core); at the floor of 10 ms between messages, 200.
    let window = Duration::from_secs(2);
    let t0 = Instant::now();
    let mut watchdogs = 0;
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while t0.elapsed() < window {
        if let Ok(n) = sock.recv(&mut buf) {
            watchdogs += usize::from(&buf[..n] == b"WATCHDOG=1");
        }
    }
    assert!(
        (2..=300).contains(&watchdogs),
        "{watchdogs} WATCHDOG=1 in {window:?}"
    );
    if let Err(share) = cpu_stays_under(p.pid(), Duration::from_secs(2), 0.1) {
        panic!("used {:.1} % of a core", share * 100.0);
    }
    p.terminate_cleanly();
}

#[test]
fn run_raises_the_open_files_limit_to_the_hard_limit() {
    let dir = TempDir::new("svc-nofile");
    let config = quiet_config(&dir);
    let mut cmd = run_cmd(&config, &[]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; it lowers the child's own soft limit.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            let mut lim: libc::rlimit = std::mem::zeroed();
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
            lim.rlim_cur = 64.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            Ok(())
        });
    }
    let mut p = Proc::spawn(&mut cmd);
    let lines = json_lines(p.child.stdout.take().unwrap());
    until(&lines, Duration::from_secs(10), |v| {
        is(v, "topologyDeclared")
    });
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", p.pid())).unwrap();
    let row: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        row[3], row[4],
        "soft limit raised to the hard one: {limits}"
    );
    p.send(b"shutdown\n");
    assert_eq!(p.exit_within(Duration::from_secs(5)), Some(0));
}

#[test]
fn the_example_unit_passes_systemd_analyze_verify() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        common::skipped("systemd-analyze is not installed, the example unit is not verified");
        return;
    };
    if !probe.status.success() {
        common::skipped("systemd-analyze does not run here, the example unit is not verified");
        return;
    }
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/probewheel.service"
    ))
    .unwrap();
    assert!(unit.contains("Type=notify"));
    // verify checks that ExecStart's binary exists: point it at ours.
    let unit = unit.replace("/usr/local/bin/probewheel", BIN);
    let dir = TempDir::new("svc-unit");
    let path = dir.write("probewheel.service", &unit);
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Without a running systemd (a container) verify still parses the unit
    // and reports its problems; only complaints about the unit count.
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("probewheel.service"))
        .collect();
    assert!(ours.is_empty(), "systemd-analyze verify:\n{err}");
}

#[test]
fn check_quotes_a_rejection_as_written_on_one_line() {
    let dir = TempDir::new("svc-check-reject");
    let (code, out) = check_out(&dir, "dup.json", br#"{"a": {}, "a": {}}"#);
    assert_eq!(code, 2);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains(r#"duplicate probe name "a""#), "{out}");
}
