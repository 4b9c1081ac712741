//! Files that declarations name (a `caFile`, the system trust bundle) turn
//! into FIFOs: opening one for reading would block until a writer comes,
//! and the engine prepares probes on its own thread at every reset. The
//! engine must keep going (topology, results, shutdown) with a reason that
//! says what the path is, and `probewheel check` must return.

#![cfg(feature = "tls")]
#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{FifoRelease, Guarantees, TempDir, mkfifo, wait_until};
use probewheel::{Builder, Event};

const BIN: &str = env!("CARGO_BIN_EXE_probewheel");

/// Until dropped, watches for a hang: `Engine::reset` waits for the
/// engine thread, so if that thread blocks in `open` on the FIFO, the test
/// thread never gets to fail. After `limit`, the FIFO is opened for
/// writing (again and again: every probe may block on it), which releases
/// them, and [`Watchdog::released`] says so.
struct Watchdog {
    done: Option<crossbeam_channel::Sender<()>>,
    released: Arc<AtomicBool>,
}

impl Watchdog {
    fn new(fifo: &Path, limit: Duration) -> Watchdog {
        let (done, finished) = crossbeam_channel::bounded::<()>(0);
        let released = Arc::new(AtomicBool::new(false));
        let (fifo, flag) = (fifo.to_owned(), Arc::clone(&released));
        std::thread::spawn(move || {
            let mut wait = limit;
            while finished.recv_timeout(wait).is_err_and(|e| e.is_timeout()) {
                flag.store(true, Ordering::SeqCst);
                drop(FifoRelease(&fifo));
                wait = Duration::from_millis(20);
            }
        });
        Watchdog {
            done: Some(done),
            released,
        }
    }

    fn released(&self) -> bool {
        self.released.load(Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Disconnecting ends the watchdog's wait at once.
        self.done.take();
    }
}

#[test]
fn a_ca_file_that_is_a_fifo_does_not_hang_the_engine() {
    let dir = TempDir::new("trust-fifo");
    let fifo = dir.path("ca.pem");
    mkfifo(&fifo);
    let watchdog = Watchdog::new(&fifo, Duration::from_secs(10));
    let decls = serde_json::json!({
        "https": {"kind": "http", "mode": "observe", "intervalSeconds": 1,
                  "url": "https://127.0.0.1:1/", "caFile": fifo.to_str().unwrap()},
        "tls": {"kind": "tcp", "mode": "observe", "intervalSeconds": 1,
                "host": "127.0.0.1", "port": 1, "tls": true, "caFile": fifo.to_str().unwrap()},
    });
    let path = dir.write("health-checks.json", &decls.to_string());
    let floor = Duration::from_secs(1);
    let (engine, rx) = Builder::new()
        .declarations_path(&path)
        .min_interval(floor)
        .build()
        .unwrap();
    let mut check = Guarantees::new(floor);
    engine.reset("r1").unwrap();
    assert!(
        !watchdog.released(),
        "the engine blocked opening the caFile until the FIFO was released"
    );
    let expected = format!(
        "invalid declaration: field `caFile`: {}: not a regular file (a FIFO)",
        fifo.display()
    );
    let mut failed = Vec::new();
    while failed.len() < 2 {
        let e = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("no event: the engine is stuck on the caFile");
        check.check(&e).unwrap();
        if let Event::ProbeResult(r) = &e {
            assert_eq!(r.failure_reason.as_deref(), Some(expected.as_str()));
            if !failed.contains(&r.probe_name) {
                failed.push(r.probe_name.clone());
            }
        }
    }
    assert_eq!(engine.stats().unwrap().probes, 2);
    engine.shutdown().unwrap();
    assert!(!watchdog.released());
}

/// Runs `probewheel check` on `decls` with `env`; its exit code and
/// output. Fails (after releasing the FIFO) if it does not return.
fn check_returns(dir: &TempDir, fifo: &Path, decls: &str, env: &[(&str, &Path)]) -> (i32, String) {
    let path = dir.write("check.json", decls);
    let mut cmd = Command::new(BIN);
    cmd.args(["check", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let done = wait_until(Duration::from_secs(20), || {
        child.try_wait().unwrap().is_some()
    });
    if !done {
        drop(FifoRelease(fifo));
        let _ = child.kill();
        let _ = child.wait();
        panic!("probewheel check hung on {}", fifo.display());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn probewheel_check_returns_when_a_trust_file_is_a_fifo() {
    let dir = TempDir::new("trust-fifo-check");
    let fifo = dir.path("bundle.pem");
    mkfifo(&fifo);
    let _release = FifoRelease(&fifo);

    // As a caFile: the declaration is invalid, and says why.
    let decls = serde_json::json!({
        "https": {"kind": "http", "mode": "observe", "intervalSeconds": 60,
                  "url": "https://127.0.0.1:1/", "caFile": fifo.to_str().unwrap()},
    });
    let (code, out) = check_returns(&dir, &fifo, &decls.to_string(), &[]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(&format!("{}: not a regular file (a FIFO)", fifo.display())),
        "{out}"
    );

    // As SSL_CERT_FILE: passed over for the next system bundle (and a host
    // without one is not the declaration's fault either way).
    let decls = serde_json::json!({
        "https": {"kind": "http", "mode": "observe", "intervalSeconds": 60,
                  "url": "https://127.0.0.1:1/"},
    });
    let (code, out) = check_returns(&dir, &fifo, &decls.to_string(), &[("SSL_CERT_FILE", &fifo)]);
    assert_eq!((code, out.as_str()), (0, ""));
}
