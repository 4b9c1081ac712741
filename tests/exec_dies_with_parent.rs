//! README, "Running as a service": if probewheel itself is killed (SIGKILL, OOM), its exec
//! children die with it (`PR_SET_PDEATHSIG` in the child), for `run` and
//! for `once`.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TempDir, process_running, read_pid, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_probewheel");

#[test]
fn an_exec_child_dies_when_probewheel_is_killed() {
    for sub in ["run", "once"] {
        let dir = TempDir::new(&format!("dies-with-parent-{sub}"));
        let pidfile = dir.path("pid");
        let script = format!("echo $$ > {}; exec sleep 60", pidfile.display());
        let decls = serde_json::json!({
            "hang": {"kind": "exec", "mode": "enforce", "timeoutSecs": 600,
                     "command": ["sh", "-c", script]},
        });
        let config = dir.write("d.json", &decls.to_string());
        let mut probewheel = Command::new(BIN)
            .args([sub, "--config", config.to_str().unwrap()])
            // Held open (not at EOF) for as long as the child lives.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let child = read_pid(&pidfile, Duration::from_secs(10));
        assert!(
            process_running(child),
            "{sub}: the exec child is not running"
        );

        probewheel.kill().unwrap(); // SIGKILL: no clean shutdown
        probewheel.wait().unwrap();
        let died = wait_until(Duration::from_secs(5), || !process_running(child));
        if !died {
            // SAFETY: plain syscall; do not leave it behind for 60 s.
            unsafe { libc::kill(child, libc::SIGKILL) };
        }
        assert!(
            died,
            "{sub}: exec child {child} outlived a killed probewheel"
        );
    }
}
