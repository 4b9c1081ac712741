//! `probewheel wait` end to end through the real binary: one test per exit
//! status (0 healthy, 1 a failing enforce probe, 1 the deadline, 2 a
//! rejected or missing file and bad arguments, 3 stdout closed or full,
//! 128 + N on a stop signal), the JSON Lines and the text output, and that
//! only the verdict of its own generation decides. Probes are exec
//! commands and loopback listeners; every wait is bounded.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{TempDir, wait_until};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_probewheel");

/// A `probewheel wait` with its stdout lines and stderr read in the
/// background.
struct Wait {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: common::StderrReader,
}

impl Wait {
    fn start(args: &[&str]) -> Wait {
        Self::start_with(args, Stdio::piped())
    }

    fn start_with(args: &[&str], stdout: Stdio) -> Wait {
        let mut child = Command::new(BIN)
            .arg("wait")
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = common::StderrReader::start(child.stderr.take().unwrap());
        Wait {
            child,
            lines,
            stdout: Vec::new(),
            stderr,
        }
    }

    /// Reads stdout until a line matches; panics after `limit`.
    fn until(&mut self, limit: Duration, pred: impl Fn(&str) -> bool) {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let hit = pred(&l);
                    self.stdout.push(l);
                    if hit {
                        return;
                    }
                }
                Err(e) => panic!(
                    "no matching line within {limit:?} ({e}); stdout {:#?}\nstderr {}",
                    self.stdout,
                    self.stderr.so_far()
                ),
            }
        }
    }

    /// Waits for the exit (panics after `limit`): the status, every stdout
    /// line and stderr.
    fn finish(mut self, limit: Duration) -> (i32, Vec<String>, String) {
        let mut status = None;
        let exited = wait_until(limit, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!(
                "wait did not exit within {limit:?}; stdout {:#?}\nstderr {}",
                self.stdout,
                self.stderr.so_far()
            );
        }
        // The readers reach the end of the pipes once the process is gone.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.stdout.push(l);
        }
        let err = self.stderr.all();
        let out = std::mem::take(&mut self.stdout);
        (status.unwrap().code().unwrap_or(-1), out, err)
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The `rolloutVerdict` events among `events`.
fn verdicts(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|v| v["event"] == "rolloutVerdict")
        .collect()
}

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn wait_exits_0_when_every_enforce_probe_passes() {
    let dir = TempDir::new("wait-healthy");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = dir.write(
        "c.json",
        &format!(
            r#"{{"cmd": {{"kind": "exec", "mode": "enforce", "command": ["true"]}},
                 "port": {{"kind": "tcp", "mode": "enforce", "host": "127.0.0.1", "port": {port}}},
                 "off": {{"kind": "exec", "mode": "disabled", "command": ["false"]}},
                 "odd": {{"kind": "exec", "mode": "observe", "command": ["false"]}}}}"#
        ),
    );
    let w = Wait::start(&[
        "--config",
        config.to_str().unwrap(),
        "--rollout",
        "stable@abc",
        "--format",
        "json",
    ]);
    let (code, out, err) = w.finish(LIMIT);
    assert_eq!(code, 0, "{out:#?}\n{err}");
    let events = json(&out);
    assert_eq!(events[0]["event"], "topologyDeclared");
    assert!(
        events
            .iter()
            .all(|e| e["rolloutId"] == "stable@abc" && e["generation"] == 1)
    );
    let last = verdicts(&events).pop().expect("a rolloutVerdict");
    assert_eq!(last["verdict"], "healthy", "{last}");
    assert_eq!(last["decided"], true);
    assert_eq!(
        events.last().unwrap(),
        last,
        "the deciding verdict is the last line"
    );
    assert!(
        err.contains(&format!(
            "probewheel: healthy: {}",
            last["reason"].as_str().unwrap()
        )),
        "{err}"
    );
}

#[test]
fn wait_waits_out_the_soak_before_healthy() {
    let dir = TempDir::new("wait-soak");
    let config = dir.write(
        "c.json",
        r#"{"cmd": {"kind": "exec", "mode": "enforce", "intervalSeconds": 1, "command": ["true"]}}"#,
    );
    let t = Instant::now();
    let w = Wait::start(&[
        "--config",
        config.to_str().unwrap(),
        "--soak",
        "2",
        "--min-interval-ms",
        "500",
        "--format",
        "json",
    ]);
    let (code, out, err) = w.finish(LIMIT);
    assert_eq!(code, 0, "{out:#?}\n{err}");
    assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());
    let events = json(&out);
    let vs = verdicts(&events);
    assert!(
        vs.iter()
            .any(|v| v["verdict"] == "pending" && v.get("soakEndsAt").is_some()),
        "a pending verdict while soaking: {vs:#?}"
    );
    assert_eq!(vs.last().unwrap()["verdict"], "healthy");
}

#[test]
fn wait_exits_1_on_a_failing_enforce_probe_and_says_why() {
    let dir = TempDir::new("wait-unhealthy");
    let config = dir.write(
        "c.json",
        r#"{"web": {"kind": "exec", "mode": "enforce",
                    "command": ["sh", "-c", "echo 'status 503, expected 200' >&2; exit 1"]},
            "ok": {"kind": "exec", "mode": "enforce", "command": ["true"]}}"#,
    );
    // Text, though stdout is a pipe: appended lines, then the closing line.
    let w = Wait::start(&["--config", config.to_str().unwrap(), "--format", "text"]);
    let (code, out, err) = w.finish(LIMIT);
    assert_eq!(code, 1, "{out:#?}\n{err}");
    let closing = out.last().unwrap();
    assert!(closing.starts_with("unhealthy: "), "{out:#?}");
    assert!(closing.contains("web"), "{closing}");
    assert!(closing.contains("status 503, expected 200"), "{closing}");
    assert!(
        out[0].starts_with("rollout local (generation 1): "),
        "{out:#?}"
    );
    assert!(
        out.iter()
            .any(|l| l.trim_start().starts_with("web") && l.contains("failing: ")),
        "{out:#?}"
    );
    assert!(
        out.iter().all(|l| !l.contains('\x1b')),
        "no escapes off a terminal"
    );
}

#[test]
fn wait_exits_1_when_the_deadline_passes_first() {
    let dir = TempDir::new("wait-deadline");
    let config = dir.write(
        "c.json",
        r#"{"api": {"kind": "exec", "mode": "enforce", "startupGraceSeconds": 60,
                    "command": ["false"]}}"#,
    );
    let t = Instant::now();
    let w = Wait::start(&[
        "--config",
        config.to_str().unwrap(),
        "--deadline",
        "1",
        "--format",
        "text",
    ]);
    let (code, out, err) = w.finish(LIMIT);
    assert_eq!(code, 1, "{out:#?}\n{err}");
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(1), "{took:?}");
    let closing = out.last().unwrap();
    assert!(
        closing.starts_with("unhealthy: deadline of 1 s passed"),
        "{out:#?}\n{err}"
    );
    assert!(closing.contains("api"), "{closing}");
    assert!(
        out.iter().any(|l| l.contains("startup grace")),
        "the probe was shown in its grace: {out:#?}"
    );
}

#[test]
fn wait_exits_2_on_a_rejected_file() {
    let dir = TempDir::new("wait-rejected");
    let config = dir.write("c.json", "{\"a\": {\"kind\": \"tcp\",}}");
    let w = Wait::start(&["--config", config.to_str().unwrap(), "--format", "json"]);
    let (code, out, err) = w.finish(LIMIT);
    assert_eq!(code, 2, "{out:#?}\n{err}");
    let events = json(&out);
    assert_eq!(events[0]["event"], "declarationsRejected");
    assert_eq!(verdicts(&events).last().unwrap()["verdict"], "rejected");
    assert!(err.contains("rejected: "), "{err}");
}

#[test]
fn wait_exits_2_on_bad_arguments_and_a_missing_file() {
    let dir = TempDir::new("wait-args");
    let missing = dir.path("nope.json");
    for (args, expect) in [
        (
            vec!["--config", missing.to_str().unwrap()],
            format!("--config {}: no such file", missing.display()),
        ),
        (
            vec!["--format", "yaml"],
            "--format takes text or json".into(),
        ),
        (
            vec!["--deadline", "0"],
            "--deadline takes an integer from 1 to 86400".into(),
        ),
        (vec!["--soak"], "--soak needs a value".into()),
        (
            vec!["--events-capacity", "8"],
            "unknown option \"--events-capacity\"".into(),
        ),
    ] {
        let w = Wait::start(&args);
        let (code, out, err) = w.finish(LIMIT);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out:#?}");
        assert!(err.contains(&expect), "{args:?}: {err}");
    }
}

#[test]
fn wait_exits_3_when_stdout_is_closed_or_full() {
    let dir = TempDir::new("wait-stdout");
    let config = dir.write(
        "c.json",
        r#"{"api": {"kind": "exec", "mode": "enforce", "startupGraceSeconds": 60,
                    "command": ["false"]}}"#,
    );
    let config = config.to_str().unwrap();
    let full = || {
        Stdio::from(
            std::fs::File::options()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
    };
    for (name, format, stdout) in [
        ("json/EPIPE", "json", common::closed_pipe()),
        ("json/ENOSPC", "json", full()),
        ("text/EPIPE", "text", common::closed_pipe()),
        ("text/ENOSPC", "text", full()),
    ] {
        let w = Wait::start_with(&["--config", config, "--format", format], stdout);
        let (code, _, err) = w.finish(LIMIT);
        assert_eq!(code, 3, "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
}

#[test]
fn wait_stopped_by_a_signal_exits_128_plus_its_number_with_a_closing_line() {
    let dir = TempDir::new("wait-signal");
    let config = dir.write(
        "c.json",
        r#"{"api": {"kind": "exec", "mode": "enforce", "startupGraceSeconds": 600,
                    "command": ["false"]}}"#,
    );
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let mut w = Wait::start(&["--config", config.to_str().unwrap(), "--format", "text"]);
        // The probe's first (failed) run is on the table.
        w.until(LIMIT, |l| {
            l.trim_start().starts_with("api") && l.contains("fail")
        });
        // SAFETY: signalling our own child, which has not been reaped.
        assert_eq!(unsafe { libc::kill(w.child.id() as i32, sig) }, 0);
        let t = Instant::now();
        let (got, out, err) = w.finish(LIMIT);
        assert_eq!(got, code, "{out:#?}\n{err}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let closing = out.last().unwrap();
        assert!(
            closing.starts_with("interrupted by SIG") && closing.contains("before a final verdict"),
            "{out:#?}"
        );
    }
}
