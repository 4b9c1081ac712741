//! The `systemd` kind: its fields, its judgement of what `systemctl`
//! prints, restarts counted since the reset, and runs of a fake
//! `systemctl` (real processes) driven as a worker drives them, in virtual
//! time where a deadline or a cancel is what is tested.

use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::restarts::{Restarts, Seen};
use super::run::{Props, failed_verdict, unit_verdict};
use super::*;
use crate::Status;
use crate::clock;
use crate::file::tests::TempDir;
use crate::runner::exec::tests::{proc_stat, serial, wait_for};
use crate::runner::machine::Step;
use crate::runner::machine::testing::Harness;
use crate::runner::{Registry, RunnerOutcome};

fn decl(fields: Value) -> Declaration {
    let mut v = json!({"kind": "systemd", "mode": "enforce"});
    v.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    Declaration::from_value("t", v)
}

fn spec(fields: Value) -> Arc<Spec> {
    SystemdProbe::from_decl(&decl(fields), &HostFacts::default())
        .expect("valid declaration")
        .spec
}

fn refusal(fields: Value) -> String {
    SystemdProbe::from_decl(&decl(fields), &HostFacts::default())
        .unwrap_err()
        .to_string()
}

fn reason(out: &RunnerOutcome) -> &str {
    assert_eq!(out.status(), Status::Fail, "{out:?}");
    out.reason().unwrap()
}

// ---------------------------------------------------------------------------
// Fields

#[test]
fn a_unit_without_a_type_is_a_service() {
    let unit = |u: &str| spec(json!({"unit": u})).unit.clone().unwrap().0;
    assert_eq!(unit("nginx"), "nginx.service");
    assert_eq!(unit("getty@tty1"), "getty@tty1.service");
    assert_eq!(unit("foo.bar"), "foo.bar.service");
    assert_eq!(unit(".timer"), ".timer.service");
    for typed in ["nginx.service", "backup.timer", "dbus.socket", "a.b.target"] {
        assert_eq!(unit(typed), typed);
    }
}

#[test]
fn show_asks_for_the_properties_of_the_unit_only() {
    let s = spec(json!({"unit": "nginx"}));
    assert_eq!(
        *s.unit.as_ref().unwrap().1,
        [
            "systemctl",
            "show",
            "--no-pager",
            "--property=LoadState,ActiveState,SubState,Result,NRestarts,InvocationID",
            "nginx.service"
        ]
    );
    assert!(s.failed.is_none());
    assert_eq!((s.expect_active.as_str(), s.max_restarts), ("active", 0));
    assert_eq!(s.timeout, Duration::from_secs(10));
}

#[test]
fn refuses_unit_names_that_would_be_something_else() {
    let field = "invalid declaration: field `unit`: ";
    let cases = [
        (json!(""), "an empty unit name"),
        (json!("a\0b"), "contains a NUL byte"),
        (
            json!("/etc/systemd/system/nginx.service"),
            "contains a `/`: write the unit's name, not a path",
        ),
        (
            json!("--all"),
            "starts with `-`, which systemctl would read as an option",
        ),
        (json!("a b"), "contains white space or a control character"),
        (
            json!("nginx*"),
            "contains a glob character (`*`, `?`, `[`): name one unit",
        ),
        (
            json!("a".repeat(248)),
            "longer than 255 bytes (with its suffix)",
        ),
        (json!(7), "expected a string, got 7"),
    ];
    for (unit, problem) in cases {
        assert_eq!(refusal(json!({"unit": unit})), format!("{field}{problem}"));
    }
    assert_eq!(
        refusal(json!({})),
        "invalid declaration: field `unit`: required field is missing (unless noFailedUnits is true)"
    );
    // 247 bytes and `.service` is the longest name.
    assert_eq!(
        spec(json!({"unit": "a".repeat(247)}))
            .unit
            .clone()
            .unwrap()
            .0
            .len(),
        255
    );
}

#[test]
fn the_other_fields_are_checked() {
    assert_eq!(
        refusal(json!({"unit": "a", "expectActive": "running"})),
        "invalid declaration: field `expectActive`: expected one of active, inactive, failed, \
         activating, deactivating, reloading, maintenance, refreshing, got \"running\""
    );
    assert_eq!(
        refusal(json!({"unit": "a", "maxRestarts": 4_294_967_296u64})),
        "invalid declaration: field `maxRestarts`: expected an integer from 0 to 4294967295, got 4294967296"
    );
    assert_eq!(
        refusal(json!({"unit": "a", "noFailedUnits": "yes"})),
        "invalid declaration: field `noFailedUnits`: expected true or false, got \"yes\""
    );
    assert_eq!(
        refusal(json!({"unit": "a", "timeoutSecs": 0})),
        "invalid declaration: field `timeoutSecs`: expected an integer from 1 to 86400, got 0"
    );
    let s = spec(json!({"noFailedUnits": true, "timeoutSecs": 3}));
    assert!(s.unit.is_none());
    assert_eq!(
        *s.failed.clone().unwrap(),
        [
            "systemctl",
            "list-units",
            "--state=failed",
            "--plain",
            "--no-legend",
            "--no-pager",
            "--full"
        ]
    );
    let s = spec(json!({"unit": "a", "expectActive": "inactive", "maxRestarts": 3}));
    assert_eq!((s.expect_active.as_str(), s.max_restarts), ("inactive", 3));
}

#[test]
fn check_warns_of_fields_ignored_without_a_unit() {
    let mut warned = Vec::new();
    SystemdKind.lint(
        &decl(json!({"noFailedUnits": true, "maxRestarts": 2, "expectActive": "active"})),
        &mut |field, problem| warned.push(format!("{field}: {problem}")),
    );
    assert_eq!(
        warned,
        [
            "expectActive: ignored without unit: the probe only looks for failed units",
            "maxRestarts: ignored without unit: the probe only looks for failed units"
        ]
    );
}

// ---------------------------------------------------------------------------
// Restarts since the reset

fn seen(n: Option<u64>, invocation: &str) -> Seen<'_> {
    Seen {
        n_restarts: n,
        invocation,
    }
}

#[test]
fn restarts_count_from_the_first_run_after_the_reset() {
    let mut r = Restarts::default();
    // The unit had restarted 5 times before the reset: none count.
    assert_eq!(r.observe(seen(Some(5), "a")), 0);
    assert_eq!(r.observe(seen(Some(5), "a")), 0);
    // Two automatic restarts.
    assert_eq!(r.observe(seen(Some(7), "c")), 2);
    // A manual restart: a new invocation, NRestarts flushed to 0.
    assert_eq!(r.observe(seen(Some(0), "d")), 3);
    // Flushed, then one automatic restart since.
    assert_eq!(r.observe(seen(Some(1), "f")), 4);
    // A manual restart that did not flush the counter.
    assert_eq!(r.observe(seen(Some(1), "g")), 5);
    // Nothing new.
    assert_eq!(r.observe(seen(Some(1), "g")), 5);
}

#[test]
fn a_unit_that_starts_after_the_reset_is_started_not_restarted() {
    let mut r = Restarts::default();
    assert_eq!(r.observe(seen(Some(0), "")), 0);
    assert_eq!(r.observe(seen(Some(0), "a")), 0);
    // Stopped (the invocation may stay or go), started again: a restart.
    assert_eq!(r.observe(seen(Some(0), "")), 0);
    assert_eq!(r.observe(seen(Some(0), "b")), 1);
}

#[test]
fn a_unit_without_nrestarts_counts_new_invocations() {
    let mut r = Restarts::default();
    assert_eq!(r.observe(seen(None, "a")), 0);
    assert_eq!(r.observe(seen(None, "b")), 1);
    assert_eq!(r.observe(seen(None, "b")), 1);
    assert_eq!(r.observe(seen(None, "c")), 2);
    // NRestarts missing from one run's output: the count goes on.
    let mut r = Restarts::default();
    assert_eq!(r.observe(seen(Some(2), "a")), 0);
    assert_eq!(r.observe(seen(None, "a")), 0);
    assert_eq!(r.observe(seen(Some(4), "b")), 2);
}

// ---------------------------------------------------------------------------
// What systemctl printed

fn show(active: &str, sub: &str, result: &str, n: u64, id: &str) -> String {
    format!(
        "LoadState=loaded\nActiveState={active}\nSubState={sub}\nResult={result}\n\
         NRestarts={n}\nInvocationID={id}\n"
    )
}

#[test]
fn show_output_is_read_in_any_order_with_properties_missing() {
    let p = Props::parse("SubState=running\nUnknown=x\nActiveState=active\nno equals\n");
    assert_eq!(
        p,
        Props::parse("ActiveState=active\nSubState=running\n"),
        "order and unknown lines do not matter"
    );
    let s = spec(json!({"unit": "a.timer"}));
    // A timer has no NRestarts; an empty Result is no result.
    assert_eq!(
        unit_verdict(&s, &Props::parse("ActiveState=active\nInvocationID=x\n")),
        Ok(())
    );
    assert_eq!(
        unit_verdict(&s, &Props::parse("LoadState=loaded\n")),
        Err("systemd probe: systemctl show printed no ActiveState for a.timer".to_owned())
    );
}

#[test]
fn the_reasons_name_the_unit_and_its_state() {
    let s = spec(json!({"unit": "nginx"}));
    let verdict = |text: &str| unit_verdict(&s, &Props::parse(text));
    assert_eq!(
        verdict(&show("active", "running", "success", 0, "a")),
        Ok(())
    );
    assert_eq!(
        verdict(&show("failed", "failed", "exit-code", 0, "a")),
        Err("systemd probe: nginx.service is failed (Result=exit-code), expected active".into())
    );
    assert_eq!(
        verdict(&show("activating", "auto-restart", "exit-code", 0, "a")),
        Err(
            "systemd probe: nginx.service is activating (auto-restart, Result=exit-code), \
             expected active"
                .into()
        )
    );
    assert_eq!(
        verdict(
            "LoadState=not-found\nActiveState=inactive\nSubState=dead\nResult=success\n\
             NRestarts=0\nInvocationID=\n"
        ),
        Err("systemd probe: no unit nginx.service (LoadState=not-found)".into())
    );
    assert_eq!(
        verdict("LoadState=masked\nActiveState=inactive\nSubState=dead\nResult=success\n"),
        Err(
            "systemd probe: nginx.service is inactive (dead, LoadState=masked), expected active"
                .into()
        )
    );
    // A crash loop caught while the unit is up.
    assert_eq!(
        verdict(&show("active", "running", "success", 3, "b")),
        Err(
            "systemd probe: nginx.service restarted 3 times since the reset (maxRestarts 0); \
             now active (running)"
                .into()
        )
    );
}

#[test]
fn max_restarts_allows_that_many() {
    let s = spec(json!({"unit": "nginx", "maxRestarts": 1, "expectActive": "active"}));
    let verdict = |n: u64, id: &str| {
        unit_verdict(
            &s,
            &Props::parse(&show("active", "running", "success", n, id)),
        )
    };
    assert_eq!(verdict(0, "a"), Ok(()));
    assert_eq!(verdict(1, "b"), Ok(()));
    assert_eq!(
        verdict(2, "c"),
        Err(
            "systemd probe: nginx.service restarted 2 times since the reset (maxRestarts 1); \
             now active (running)"
                .into()
        )
    );
}

#[test]
fn expect_active_inactive_passes_a_stopped_unit() {
    let s = spec(json!({"unit": "backup", "expectActive": "inactive"}));
    let text = show("inactive", "dead", "success", 0, "");
    assert_eq!(unit_verdict(&s, &Props::parse(&text)), Ok(()));
    let text = show("active", "running", "success", 0, "a");
    assert_eq!(
        unit_verdict(&s, &Props::parse(&text)),
        Err("systemd probe: backup.service is active (running), expected inactive".into())
    );
}

#[test]
fn failed_units_are_named() {
    assert_eq!(failed_verdict("", false), Ok(()));
    assert_eq!(failed_verdict("\n", false), Ok(()));
    let plain =
        "foo.service loaded failed failed Foo\nbar.timer   loaded failed failed Bar timer\n";
    assert_eq!(
        failed_verdict(plain, false),
        Err("systemd probe: 2 units failed: foo.service, bar.timer".into())
    );
    // What a terminal (or SYSTEMD_COLORS=1) would get.
    let coloured = "\x1b[0;1;31m●\x1b[0m foo.service loaded \x1b[0;1;31mfailed\x1b[0m failed Foo\n";
    assert_eq!(
        failed_verdict(coloured, false),
        Err("systemd probe: 1 unit failed: foo.service".into())
    );
    let linked =
        "\x1b]8;;file:///etc/x.service\x1b\\x.service\x1b]8;;\x07 loaded failed failed X\n";
    assert_eq!(
        failed_verdict(linked, false),
        Err("systemd probe: 1 unit failed: x.service".into())
    );
    // Cut: the last line may be a part of a name.
    assert_eq!(
        failed_verdict("a.service loaded failed failed A\nb.serv", true),
        Err("systemd probe: more than 1 units failed: a.service".into())
    );
}

#[test]
fn a_systemctl_not_on_path_says_where_it_was_looked_for() {
    let e = std::io::Error::from_raw_os_error(libc::ENOENT);
    let reason = run::spawn_failed("systemctl", &e);
    assert!(
        reason.starts_with("systemd probe: systemctl not found on PATH: "),
        "{reason}"
    );
    assert_eq!(
        run::spawn_failed("/opt/bin/systemctl", &e),
        "systemd probe: spawn /opt/bin/systemctl: No such file or directory (os error 2)"
    );
}

// ---------------------------------------------------------------------------
// Runs of a fake systemctl

/// The fake, written once per test binary: each [`Fake`] links to it, so
/// no script is written while other tests fork (`ETXTBSY`).
fn fake_script() -> &'static PathBuf {
    static SCRIPT: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    &SCRIPT
        .get_or_init(|| {
            use std::os::unix::fs::PermissionsExt;
            let dir = TempDir::new();
            let path = dir.0.join("fake-systemctl");
            std::fs::write(&path, include_str!("fake_systemctl.sh")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            (dir, path)
        })
        .1
}

/// A directory with a `systemctl` (the fake) and its answers.
struct Fake {
    dir: TempDir,
}

impl Fake {
    fn new() -> Fake {
        let dir = TempDir::new();
        symlink(fake_script(), dir.0.join("systemctl")).unwrap();
        Fake { dir }
    }

    fn systemctl(&self) -> PathBuf {
        self.dir.0.join("systemctl")
    }

    /// Sets an answer file (replaced whole, never read half written).
    fn set(&self, name: &str, text: &str) {
        let tmp = self.dir.0.join(format!("{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.dir.0.join(name)).unwrap();
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.0.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The pid the hanging fake wrote for `verb`.
    fn hung_pid(&self, verb: &str) -> i32 {
        let path = self.dir.0.join(format!("{verb}.pid"));
        let mut pid = None;
        wait_for("the fake's pid", Duration::from_secs(5), || {
            pid = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.strip_suffix('\n')?.parse().ok());
            pid.is_some()
        });
        pid.unwrap()
    }

    /// The probe, prepared as at a reset, running this fake.
    fn probe(&self, fields: Value) -> Arc<dyn Machine> {
        let mut registry = Registry::builtin();
        registry.set_systemctl(self.systemctl());
        match registry.prepare_task(&decl(fields)) {
            Ok((Prepared::Machine(m), None)) => m,
            Ok(_) => panic!("not an unbounded machine"),
            Err(e) => panic!("{e}"),
        }
    }
}

fn run_once(machine: &Arc<dyn Machine>) -> RunnerOutcome {
    Harness::new().run(&**machine, Duration::from_secs(10))
}

fn gone(pid: i32) -> bool {
    proc_stat(pid).is_none_or(|(state, _)| state == 'Z')
}

#[test]
fn a_running_unit_passes_and_a_failed_one_fails() {
    let _s = serial();
    let fake = Fake::new();
    let probe = fake.probe(json!({"unit": "nginx"}));
    fake.set("show", &show("active", "running", "success", 0, "a1"));
    assert_eq!(run_once(&probe).status(), Status::Pass);
    fake.set("show", &show("failed", "failed", "exit-code", 0, "a1"));
    assert_eq!(
        reason(&run_once(&probe)),
        "systemd probe: nginx.service is failed (Result=exit-code), expected active"
    );
    assert_eq!(
        fake.calls(),
        ["show --no-pager --property=LoadState,ActiveState,SubState,Result,NRestarts,InvocationID nginx.service";
            2]
    );
}

/// The prepared probe keeps the counters between runs; a reset prepares
/// it again, and the count starts over.
#[test]
fn restarts_fail_the_probe_until_the_next_reset() {
    let _s = serial();
    let fake = Fake::new();
    let fields = json!({"unit": "nginx.service", "maxRestarts": 1});
    let probe = fake.probe(fields.clone());
    fake.set("show", &show("active", "running", "success", 4, "a"));
    assert_eq!(run_once(&probe).status(), Status::Pass);
    fake.set("show", &show("active", "running", "success", 5, "b"));
    assert_eq!(run_once(&probe).status(), Status::Pass);
    fake.set("show", &show("active", "running", "success", 6, "c"));
    let want = "systemd probe: nginx.service restarted 2 times since the reset \
                (maxRestarts 1); now active (running)";
    assert_eq!(reason(&run_once(&probe)), want);
    // Up and steady since: still failing, in this generation.
    assert_eq!(reason(&run_once(&probe)), want);
    // The next reset.
    let probe = fake.probe(fields);
    assert_eq!(run_once(&probe).status(), Status::Pass);
    assert_eq!(run_once(&probe).status(), Status::Pass);
}

#[test]
fn systemctl_failing_is_a_failure_with_its_stderr() {
    let _s = serial();
    let fake = Fake::new();
    let probe = fake.probe(json!({"unit": "nginx"}));
    fake.set("show.stderr", "Failed to connect to bus: Host is down\n");
    fake.set("show.exit", "1\n");
    let path = fake.systemctl();
    assert_eq!(
        reason(&run_once(&probe)),
        format!(
            "systemd probe: {} show exit code 1; stderr: Failed to connect to bus: Host is down",
            path.display()
        )
    );
}

#[test]
fn failed_units_are_listed_after_the_unit_passes() {
    let _s = serial();
    let fake = Fake::new();
    let probe = fake.probe(json!({"unit": "nginx", "noFailedUnits": true}));
    fake.set("show", &show("active", "running", "success", 0, "a"));
    assert_eq!(run_once(&probe).status(), Status::Pass);
    fake.set(
        "failed",
        "foo.service loaded failed failed Foo\nbar.timer loaded failed failed Bar\n",
    );
    assert_eq!(
        reason(&run_once(&probe)),
        "systemd probe: 2 units failed: foo.service, bar.timer"
    );
    // A unit that fails is the reason; the list is not asked for.
    fake.set("show", &show("failed", "failed", "signal", 0, "a"));
    let calls = fake.calls().len();
    assert_eq!(
        reason(&run_once(&probe)),
        "systemd probe: nginx.service is failed (Result=signal), expected active"
    );
    assert_eq!(fake.calls().len(), calls + 1);
    // Without a unit, only the list.
    let only = fake.probe(json!({"noFailedUnits": true}));
    let calls = fake.calls().len();
    assert_eq!(
        reason(&run_once(&only)),
        "systemd probe: 2 units failed: foo.service, bar.timer"
    );
    assert_eq!(
        fake.calls()[calls..],
        ["list-units --state=failed --plain --no-legend --no-pager --full"]
    );
}

/// The timeout in virtual time: a `systemctl` that hangs is killed at the
/// run's deadline, and reaped.
#[test]
fn a_hung_systemctl_times_out_and_is_killed() {
    let _s = serial();
    let fake = Fake::new();
    let probe = fake.probe(json!({"unit": "nginx", "timeoutSecs": 5}));
    fake.set("show.hang", "");
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let deadline = t0 + Duration::from_secs(5);
    let (mut run, step) = h.start(&*probe, t0);
    assert_eq!(step, Step::Wait(deadline));
    let pid = fake.hung_pid("show");
    // Just before the deadline: still waiting, the fake still there.
    let step = h.advance(&mut *run, deadline - Duration::from_millis(1));
    assert_eq!(step, Step::Wait(deadline));
    assert!(!gone(pid));
    let offset = Duration::from_secs(5);
    let step = h.advance(&mut *run, deadline);
    let out = h.finish(&mut *run, step, offset, false);
    assert_eq!(
        reason(&out),
        format!(
            "systemd probe: {} show timed out after 5 s (process group killed)",
            fake.systemctl().display()
        )
    );
    assert!(proc_stat(pid).is_none(), "the fake {pid} was not reaped");
}

/// `show` and `list-units` share the run's one deadline.
#[test]
fn the_failed_units_list_gets_what_is_left_of_the_timeout() {
    let _s = serial();
    let fake = Fake::new();
    let probe = fake.probe(json!({"unit": "nginx", "noFailedUnits": true, "timeoutSecs": 5}));
    fake.set("show", &show("active", "running", "success", 0, "a"));
    fake.set("failed.hang", "");
    let mut h = Harness::new();
    let t0: Instant = clock::mono_now();
    let deadline = t0 + Duration::from_secs(5);
    let (mut run, mut step) = h.start(&*probe, t0);
    // The show run ends by itself; the list starts, waiting for the same
    // deadline.
    let end = clock::mono_now() + Duration::from_secs(10);
    while !fake.dir.0.join("failed.pid").exists() {
        assert!(clock::mono_now() < end, "list-units never started");
        assert!(
            matches!(step, Step::Wait(until) if until <= deadline),
            "{step:?}"
        );
        h.wait_io(Duration::from_millis(50));
        step = h.advance(&mut *run, t0 + Duration::from_secs(1));
    }
    let pid = fake.hung_pid("failed");
    let step = h.advance(&mut *run, t0 + Duration::from_secs(2));
    assert_eq!(step, Step::Wait(deadline));
    let step = h.advance(&mut *run, deadline);
    let out = h.finish(&mut *run, step, Duration::from_secs(5), false);
    assert_eq!(
        reason(&out),
        format!(
            "systemd probe: {} list-units timed out after 5 s (process group killed)",
            fake.systemctl().display()
        )
    );
    assert!(proc_stat(pid).is_none(), "the fake {pid} was not reaped");
}

/// A reset while `systemctl` hangs: the cancel kills it at once, and the
/// counters are not touched.
#[test]
fn cancel_at_a_reset_kills_systemctl() {
    let _s = serial();
    let fake = Fake::new();
    let probe = fake.probe(json!({"unit": "nginx", "timeoutSecs": 600}));
    fake.set("show.hang", "");
    let mut h = Harness::new();
    let (mut run, _) = h.start(&*probe, clock::mono_now());
    let pid = fake.hung_pid("show");
    let step = h.cancel(&mut *run, clock::mono_now());
    let out = h.finish(&mut *run, step, Duration::ZERO, true);
    assert_eq!(reason(&out), "systemd probe: cancelled");
    assert!(proc_stat(pid).is_none(), "the fake {pid} was not reaped");
    // A call after the end is harmless.
    let again = h.advance(&mut *run, clock::mono_now());
    assert_eq!(
        reason(&match again {
            Step::Done(o) => o,
            other => panic!("{other:?}"),
        }),
        "systemd probe: cancelled"
    );
}
