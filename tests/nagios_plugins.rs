//! `exec` probes with `outputFormat: "nagios"` running the real plugins of
//! Debian's `monitoring-plugins-basic` (`check_dummy`, `check_tcp`,
//! `check_disk`) through `probewheel once`, side by side with what each
//! plugin prints when run directly. A plugin that is not installed is
//! skipped with a message.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use common::{TempDir, skipped};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_probewheel");
const PLUGINS: &str = "/usr/lib/nagios/plugins";

/// The plugin's absolute path, or `None` (and a message) when absent.
fn plugin(name: &str) -> Option<String> {
    let path = format!("{PLUGINS}/{name}");
    if Path::new(&path).is_file() {
        Some(path)
    } else {
        skipped(&format!(
            "{path} is not installed (Debian: monitoring-plugins-basic)"
        ));
        None
    }
}

/// What a plugin prints and its exit code, run directly.
fn direct(argv: &[String]) -> (String, i32) {
    let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        out.status.code().unwrap(),
    )
}

/// Runs each `(name, argv, extra fields)` as an observe probe through
/// `probewheel once`; the result events by probe name.
fn once(probes: &[(&str, Vec<String>, Value)]) -> serde_json::Map<String, Value> {
    let dir = TempDir::new("nagios-once");
    let mut decls = serde_json::Map::new();
    for (name, argv, extra) in probes {
        let mut d = json!({"kind": "exec", "mode": "observe", "outputFormat": "nagios",
            "command": argv, "timeoutSecs": 30});
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        decls.insert((*name).to_owned(), d);
    }
    let config = dir.write("c.json", &Value::Object(decls).to_string());
    let out = Command::new(BIN)
        .args(["once", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["event"] == "probeResult")
        .map(|v| (v["probeName"].as_str().unwrap().to_owned(), v))
        .collect()
}

fn args(argv: &[&str]) -> Vec<String> {
    argv.iter().map(|a| (*a).to_owned()).collect()
}

/// The first line of a plugin's output before `|`, trimmed.
fn status_text(stdout: &str) -> &str {
    let first = stdout.lines().next().unwrap_or("");
    first.split('|').next().unwrap().trim()
}

#[test]
fn check_dummy_states_side_by_side() {
    let Some(dummy) = plugin("check_dummy") else {
        return;
    };
    let cases = [
        ("ok", args(&[&dummy, "0", "ok"]), json!({}), None),
        (
            "warn",
            args(&[&dummy, "1", "warn"]),
            json!({}),
            Some("exec probe: WARNING (exit 1): WARNING: warn"),
        ),
        (
            "warn-passes",
            args(&[&dummy, "1", "warn"]),
            json!({"warningIs": "pass"}),
            None,
        ),
        (
            "crit",
            args(&[&dummy, "2"]),
            json!({}),
            Some("exec probe: CRITICAL (exit 2): CRITICAL"),
        ),
        (
            "unknown",
            args(&[&dummy, "3"]),
            json!({}),
            Some("exec probe: UNKNOWN (exit 3): UNKNOWN"),
        ),
    ];
    let probes: Vec<_> = cases
        .iter()
        .map(|(n, a, e, _)| (*n, a.clone(), e.clone()))
        .collect();
    let results = once(&probes);
    for (name, argv, _, want) in &cases {
        let r = &results[*name];
        let (stdout, code) = direct(argv);
        match want {
            None => {
                assert_eq!(r["status"], "pass", "{name}: {r}");
                assert!(r["failureReason"].is_null(), "{name}: {r}");
            }
            Some(want) => {
                assert_eq!(r["status"], "fail", "{name}: {r}");
                assert_eq!(r["failureReason"], *want, "{name}");
                // The same text the plugin prints directly.
                assert!(
                    want.ends_with(&format!("(exit {code}): {}", status_text(&stdout))),
                    "{name}: {stdout:?}"
                );
            }
        }
        assert!(r.get("perfdata").is_none(), "{name}: {r}");
    }
}

#[test]
fn check_tcp_open_and_closed_port_side_by_side() {
    let Some(tcp) = plugin("check_tcp") else {
        return;
    };
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = open.local_addr().unwrap().port();
    // A port that was just free: bound, then closed.
    let closed_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let open_argv = args(&[&tcp, "-H", "127.0.0.1", "-p", &open_port.to_string()]);
    let closed_argv = args(&[&tcp, "-H", "127.0.0.1", "-p", &closed_port.to_string()]);
    let results = once(&[
        ("open", open_argv.clone(), json!({})),
        ("closed", closed_argv.clone(), json!({})),
    ]);

    let r = &results["open"];
    assert_eq!(r["status"], "pass", "{r}");
    // `time=0.000088s;;;0.000000;10.000000`: seconds stay seconds.
    let perf = r["perfdata"].as_array().expect("perfdata");
    assert_eq!(perf.len(), 1, "{r}");
    assert_eq!(perf[0]["label"], "time");
    assert_eq!(perf[0]["unit"], "s");
    let t = perf[0]["value"].as_f64().unwrap();
    assert!((0.0..10.0).contains(&t), "{t}");
    let (stdout, code) = direct(&open_argv);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("|time="), "{stdout}");

    let r = &results["closed"];
    let (stdout, code) = direct(&closed_argv);
    assert_eq!(code, 2, "{stdout}");
    assert_eq!(
        r["failureReason"],
        format!(
            "exec probe: CRITICAL (exit 2): connect to address 127.0.0.1 and port {closed_port}: \
             Connection refused"
        )
    );
    assert_eq!(
        r["failureReason"],
        format!("exec probe: CRITICAL (exit 2): {}", status_text(&stdout))
    );
    drop(open);
}

#[test]
fn check_disk_perfdata_in_bytes_as_the_plugin_printed_it() {
    let Some(disk) = plugin("check_disk") else {
        return;
    };
    // Disk usage moves between two runs, so the plugin's output is recorded
    // by a wrapper in the very run the probe judged.
    let dir = TempDir::new("nagios-disk");
    let record = dir.path("printed");
    let wrapper = dir.write(
        "record",
        &format!(
            "#!/bin/sh\nout=$(\"$@\")\nrc=$?\nprintf '%s\\n' \"$out\" > {}\nprintf '%s\\n' \"$out\"\nexit $rc\n",
            record.display()
        ),
    );
    make_executable(&wrapper);
    let argv = args(&[
        wrapper.to_str().unwrap(),
        &disk,
        "-w",
        "1%",
        "-c",
        "1%",
        "-p",
        "/",
    ]);
    // Passes unless the file system is 99% full; then the reason is the
    // plugin's own text.
    let results = once(&[("disk", argv, json!({}))]);
    let r = &results["disk"];
    let printed = std::fs::read_to_string(&record).unwrap();
    let first = printed.lines().next().unwrap();
    let (text, perf) = first.split_once('|').expect("perfdata");
    if r["status"] == "pass" {
        assert!(text.starts_with("DISK OK"), "{printed}");
    } else {
        assert!(
            r["failureReason"].as_str().unwrap().ends_with(text.trim()),
            "{r}\n{printed}"
        );
    }
    // `/=50933530624B;267847005634;267847005634;0;270552530944`: the
    // value and its unit, converted to the base unit (bytes).
    let item = perf.split_whitespace().next().unwrap();
    let (label, rest) = item.split_once('=').unwrap();
    let value = rest.split(';').next().unwrap();
    let split = value
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap();
    let (number, unit) = value.split_at(split);
    let factor = match unit {
        "B" => 1.0,
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        "TB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => panic!("check_disk printed unit {other:?}: {printed}"),
    };
    let got = r["perfdata"].as_array().expect("perfdata");
    assert_eq!(got[0]["label"], label, "{r}");
    assert_eq!(got[0]["unit"], "B", "{r}");
    assert_eq!(
        got[0]["value"].as_f64().unwrap(),
        number.parse::<f64>().unwrap() * factor,
        "{r}\n{printed}"
    );
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
