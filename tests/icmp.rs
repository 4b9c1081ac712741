//! The `icmp` kind end to end: through the engine and the `probewheel`
//! binary, beside `check_icmp` (monitoring-plugins) where it is installed.
//!
//! Every address is on loopback. The host's own network namespace may
//! forbid unprivileged ICMP sockets (`net.ipv4.ping_group_range`): the
//! refusal is what is tested there. Replies are tested in a network
//! namespace a test thread makes for itself (root only; the test says it
//! skipped otherwise), with loopback up and every group allowed; the
//! engine's threads and the processes started from that thread share it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{TempDir, collect_until, probe_results, skipped};
use probewheel::{Builder, Status};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_probewheel");
const CHECK_ICMP: &str = "/usr/lib/nagios/plugins/check_icmp";
const LIMIT: Duration = Duration::from_secs(20);

/// Moves this thread into a network namespace of its own, brings `lo` up
/// and lets every group open ICMP datagram sockets there.
fn enter_private_loopback() -> Result<(), String> {
    // SAFETY: unshare takes no pointers; CLONE_NEWNET only changes the
    // namespace of this thread's future sockets.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("unshare(CLONE_NEWNET): {e}"));
    }
    loopback_up().map_err(|e| format!("bringing lo up: {e}"))?;
    sysctl("net/ipv4/ping_group_range", "0 2147483647")
}

/// `ip link set lo up` as the ioctl it is (the `ip` binary may be absent).
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: socket() takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain data (zeroes are valid); both ioctls read
    // the interface name and the flags member of its union, which we set;
    // `fd` is ours and closed once.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut rc = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        }
        let e = std::io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 {
            return Err(e);
        }
    }
    Ok(())
}

/// Writes a sysctl of this thread's network namespace.
fn sysctl(name: &str, value: &str) -> Result<(), String> {
    std::fs::write(format!("/proc/sys/{name}"), value)
        .map_err(|e| format!("writing {value:?} to /proc/sys/{name}: {e}"))
}

/// Loopback of this thread's namespace answers echo requests, or not.
fn answer_echo_requests(answer: bool) {
    let ignore = if answer { "0" } else { "1" };
    sysctl("net/ipv4/icmp_echo_ignore_all", ignore).unwrap();
    sysctl("net/ipv6/icmp/echo_ignore_all", ignore).unwrap();
}

/// Runs `test` on a thread in a network namespace of its own; skips when
/// one cannot be made.
fn in_private_loopback(test: impl FnOnce() + Send + 'static) {
    let name = std::thread::current().name().unwrap_or("a test").to_owned();
    let outcome = std::thread::Builder::new()
        .name(name)
        .spawn(move || match enter_private_loopback() {
            Ok(()) => test(),
            Err(why) => skipped(&format!("no network namespace of its own: {why}")),
        })
        .unwrap()
        .join();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Runs `probes` once through an engine started on this thread: each
/// probe's status and reason.
fn run_once(probes: Value) -> Vec<(String, Status, Option<String>)> {
    let names: Vec<String> = probes.as_object().unwrap().keys().cloned().collect();
    let (engine, rx) = Builder::new()
        .declarations_json(probes.to_string())
        .workers(1)
        .build()
        .unwrap();
    engine.reset("icmp").unwrap();
    let events = collect_until(&rx, LIMIT, |ev| {
        names.iter().all(|n| probe_results(ev, n).len() == 1)
    });
    engine.shutdown().unwrap();
    names
        .iter()
        .map(|n| {
            let r = probe_results(&events, n)[0];
            (
                n.clone(),
                r.status,
                r.failure_reason.as_deref().map(str::to_owned),
            )
        })
        .collect()
}

fn ping(fields: Value) -> Value {
    let mut v = json!({"kind": "icmp", "mode": "enforce", "runOnce": true});
    v.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    v
}

#[test]
fn where_ping_sockets_are_refused_the_reason_names_the_sysctl() {
    let results = run_once(json!({"lo": ping(json!({"host": "127.0.0.1"}))}));
    let (_, status, reason) = &results[0];
    if *status == Status::Pass {
        skipped("this host lets the process open ICMP datagram sockets: none is refused");
        return;
    }
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    let range = range.split_whitespace().collect::<Vec<_>>().join(" ");
    // SAFETY: getegid cannot fail and takes no pointers.
    let gid = unsafe { libc::getegid() };
    // The advice: the range widened to take in the group, or the group
    // alone when the range holds none.
    let ends: Vec<u32> = range.split(' ').filter_map(|e| e.parse().ok()).collect();
    let advice = match ends[..] {
        [low, high] if low <= high => format!("{} {}", low.min(gid), high.max(gid)),
        _ => format!("{gid} {gid}"),
    };
    assert_eq!(
        reason.as_deref().unwrap(),
        format!(
            "icmp probe: this process (gid {gid}) may not open ICMP datagram sockets: \
             net.ipv4.ping_group_range is \"{range}\"; it must include a group of the \
             process (sysctl -w net.ipv4.ping_group_range='{advice}')"
        )
    );
}

#[test]
fn loopback_passes_and_silence_fails_through_the_engine() {
    in_private_loopback(|| {
        let results = run_once(json!({
            "v4": ping(json!({"host": "127.0.0.1", "maxRttMs": 5000})),
            "v6": ping(json!({"host": "[::1]", "packets": 5})),
            "name": ping(json!({"host": "localhost", "ipFamily": "4"})),
        }));
        for (name, status, reason) in results {
            assert_eq!(status, Status::Pass, "{name}: {reason:?}");
        }
        answer_echo_requests(false);
        let results = run_once(json!({
            "v4": ping(json!({"host": "127.0.0.1", "timeoutSecs": 1})),
            "v6": ping(json!({"host": "::1", "timeoutSecs": 1, "packets": 2})),
        }));
        let reasons: Vec<String> = results
            .into_iter()
            .map(|(_, status, reason)| {
                assert_eq!(status, Status::Fail);
                reason.unwrap()
            })
            .collect();
        assert_eq!(
            reasons,
            [
                "icmp probe: 127.0.0.1: 3 of 3 packets lost (100%, more than maxLossPercent 0) within 1 s",
                "icmp probe: ::1: 2 of 2 packets lost (100%, more than maxLossPercent 0) within 1 s",
            ]
        );
    });
}

#[test]
fn probes_waiting_for_replies_hold_no_worker() {
    in_private_loopback(|| {
        // 127.0.0.1 stays silent, ::1 answers; one worker carries all, the
        // answered probe last by name.
        sysctl("net/ipv4/icmp_echo_ignore_all", "1").unwrap();
        let mut probes = json!({"zz-answered": ping(json!({"host": "::1"}))});
        for i in 0..16 {
            probes[format!("silent{i:02}")] = ping(json!({"host": "127.0.0.1"}));
        }
        let (engine, rx) = Builder::new()
            .declarations_json(probes.to_string())
            .workers(1)
            .build()
            .unwrap();
        engine.reset("icmp").unwrap();
        let events = collect_until(&rx, LIMIT, |ev| probe_results(ev, "zz-answered").len() == 1);
        let answered = probe_results(&events, "zz-answered")[0];
        assert_eq!(answered.status, Status::Pass, "{answered:?}");
        // Every run started, and the silent ones still wait for replies
        // (until their 10 s timeout) on the worker that ran the other.
        let stats = engine.stats().unwrap();
        assert_eq!((stats.dispatched, stats.results), (17, 1), "{stats:?}");
        engine.shutdown().unwrap();
    });
}

/// What `check_icmp` says of `host`: pass, fail, or why it could not run.
fn check_icmp(host: &str) -> Result<bool, String> {
    // Critical at 1% loss or an average of 1 s: probewheel's
    // `maxLossPercent: 0, maxRttMs: 1000` (check_icmp fails at >=).
    let out = Command::new(CHECK_ICMP)
        .args(["-H", host, "-n", "3", "-t", "1"])
        .args(["-w", "1000,1%", "-c", "1000,1%"])
        .output()
        .map_err(|e| format!("{CHECK_ICMP}: {e}"))?;
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    match out.status.code() {
        Some(0) => Ok(true),
        Some(2) => Ok(false),
        _ => Err(format!("{CHECK_ICMP} could not judge {host}: {said}")),
    }
}

/// What `probewheel once` says of the same probe: pass, or the reason.
fn probewheel_once(dir: &TempDir, host: &str) -> Result<(), String> {
    let probe = ping(json!({"host": host, "packets": 3, "timeoutSecs": 1,
                            "maxLossPercent": 0, "maxRttMs": 1000}));
    let config = dir.write("ping.json", &json!({ "ping": probe }).to_string());
    let out = Command::new(BIN)
        .args(["once", "--format", "json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let result: Value = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["event"] == "probeResult")
        .unwrap_or_else(|| panic!("no probeResult: {stdout}"));
    match (out.status.code(), result["status"].as_str()) {
        (Some(0), Some("pass")) => Ok(()),
        (Some(1), Some("fail")) => Err(result["failureReason"].as_str().unwrap().to_owned()),
        other => panic!("exit and status disagree: {other:?}: {stdout}"),
    }
}

#[test]
fn check_icmp_and_probewheel_agree_side_by_side() {
    if !std::path::Path::new(CHECK_ICMP).exists() {
        skipped(&format!("{CHECK_ICMP} is not installed"));
        return;
    }
    in_private_loopback(|| {
        let dir = TempDir::new("icmp-side-by-side");
        let mut compared = Vec::new();
        for answer in [true, false] {
            answer_echo_requests(answer);
            // 192.0.2.1 (TEST-NET-1) has no route in the namespace.
            for host in ["127.0.0.1", "::1", "192.0.2.1"] {
                let theirs = match check_icmp(host) {
                    Ok(verdict) => verdict,
                    Err(why) => {
                        skipped(&why);
                        return;
                    }
                };
                let ours = probewheel_once(&dir, host);
                assert_eq!(
                    ours.is_ok(),
                    theirs,
                    "{host} (echo answered: {answer}): check_icmp passes: {theirs}; probewheel: {ours:?}"
                );
                compared.push((host, answer, theirs));
            }
        }
        // Both verdicts occurred: the comparison judged something.
        assert!(compared.iter().any(|c| c.2) && compared.iter().any(|c| !c.2));
    });
}

#[test]
fn check_names_each_invalid_field() {
    let dir = TempDir::new("icmp-check");
    let config = dir.write(
        "check.json",
        &json!({
            "a": {"kind": "icmp", "mode": "enforce"},
            "b": {"kind": "icmp", "mode": "enforce", "host": "127.0.0.1:7"},
            "c": {"kind": "icmp", "mode": "enforce", "host": "::1", "packets": 0},
            "d": {"kind": "icmp", "mode": "enforce", "host": "::1", "maxLossPercent": 100},
            "e": {"kind": "icmp", "mode": "enforce", "host": "::1", "maxRttMs": "5"},
            "f": {"kind": "icmp", "mode": "enforce", "host": "::1", "ipFamily": "v6"},
            "g": {"kind": "icmp", "mode": "enforce", "host": "::1", "packets": 15, "timeoutSecs": 1},
            "fine": {"kind": "icmp", "mode": "enforce", "host": "db.internal", "packets": 20,
                     "maxLossPercent": 50, "maxRttMs": 250, "ipFamily": "6"},
        })
        .to_string(),
    );
    let (code, out) = common::check_file(BIN, &config);
    assert_eq!(code, 1, "{out}");
    let fields: Vec<(&str, &str)> = out
        .lines()
        .map(|l| {
            let mut parts = l.strip_prefix("error: ").unwrap_or(l).splitn(3, ": ");
            (parts.next().unwrap(), parts.next().unwrap())
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("a", "host"),
            ("b", "host"),
            ("c", "packets"),
            ("d", "maxLossPercent"),
            ("e", "maxRttMs"),
            ("f", "ipFamily"),
            ("g", "packets"),
        ],
        "{out}"
    );
}
