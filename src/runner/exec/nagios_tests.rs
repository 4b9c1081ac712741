//! `outputFormat: "nagios"` with fake plugins (`#!/bin/sh` scripts that
//! use only shell built-ins, `head`, `tr`, `yes` and `sleep`), driven as a
//! worker drives them ([`Harness`]).

use std::time::Duration;

use serde_json::{Value, json};

use super::machine_tests::Scratch;
use super::tests::{check_lines, decl, reason, serial};
use super::*;
use crate::clock;
use crate::runner::RunnerOutcome;
use crate::runner::machine::Step;
use crate::runner::machine::testing::Harness;
use crate::vocab::{PerfUnit, Perfdata, Status};

/// Exits `$1` after printing `$2` on stdout and `$3` on stderr (printf
/// formats).
const FAKE: &str = "#!/bin/sh\nprintf \"$2\"\nprintf \"${3:-}\" >&2\nexit \"$1\"\n";

fn probe(fields: Value) -> ExecProbe {
    let mut fields = fields;
    fields["outputFormat"] = json!("nagios");
    ExecProbe::from_decl(&decl(fields)).expect("valid declaration")
}

/// Runs the fake plugin with `args` (after the script) on the real clock.
fn plugin(args: &[&str], extra: Value) -> RunnerOutcome {
    let dir = Scratch::new("nagios-fake");
    let script = dir.file("check_fake", FAKE, 0o755);
    let mut argv = vec![script.to_str().unwrap().to_owned()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let mut fields = extra;
    fields["command"] = json!(argv);
    Harness::new().run(&probe(fields), Duration::from_secs(10))
}

/// Runs a `#!/bin/sh` script with `body`.
fn script(body: &str) -> RunnerOutcome {
    let dir = Scratch::new("nagios-script");
    let path = dir.file("check_script", &format!("#!/bin/sh\n{body}"), 0o755);
    let fields = json!({"command": [path.to_str().unwrap()]});
    Harness::new().run(&probe(fields), Duration::from_secs(10))
}

fn p(label: &str, value: f64, unit: Option<PerfUnit>) -> Perfdata {
    Perfdata::new(label, value, unit)
}

const DISK: &str =
    "DISK WARNING - free space: / 3 GB (8%% inode=90%%);| /=3GB;2;1;0;40 'used inodes'=10%%\\n";

fn disk_perfdata() -> Vec<Perfdata> {
    vec![
        p("/", 3.0 * 1024.0 * 1024.0 * 1024.0, Some(PerfUnit::Bytes)),
        p("used inodes", 10.0, Some(PerfUnit::Percent)),
    ]
}

#[test]
fn exit_0_passes_with_its_perfdata() {
    let _s = serial();
    let out = plugin(
        &["0", "TCP OK - 0.001 second response time|time=1ms;;;0\\n"],
        json!({}),
    );
    assert_eq!(out.status(), Status::Pass, "{out:?}");
    assert_eq!(out.reason(), None);
    assert_eq!(out.perfdata(), [p("time", 0.001, Some(PerfUnit::Seconds))]);
    // Without perfdata a pass is the plain pass.
    let out = plugin(&["0", "OK\\n"], json!({}));
    assert_eq!(out, RunnerOutcome::pass());
}

#[test]
fn exit_1_is_a_warning_that_fails_unless_warning_is_pass() {
    let _s = serial();
    for extra in [json!({}), json!({"warningIs": "fail"})] {
        let out = plugin(&["1", DISK], extra);
        assert_eq!(
            reason(&out),
            "exec probe: WARNING (exit 1): DISK WARNING - free space: / 3 GB (8% inode=90%);"
        );
        assert_eq!(out.perfdata(), disk_perfdata());
    }
    let out = plugin(&["1", DISK], json!({"warningIs": "pass"}));
    assert_eq!(out.status(), Status::Pass, "{out:?}");
    assert_eq!(out.perfdata(), disk_perfdata());
    // Critical stays critical whatever warningIs says.
    let out = plugin(&["2", DISK], json!({"warningIs": "pass"}));
    assert!(reason(&out).starts_with("exec probe: CRITICAL (exit 2): DISK WARNING"));
}

#[test]
fn exit_2_3_and_any_other_code_fail_with_the_status_text() {
    let _s = serial();
    let cases = [
        (
            "2",
            "exec probe: CRITICAL (exit 2): PROCS CRITICAL: 0 processes",
        ),
        (
            "3",
            "exec probe: UNKNOWN (exit 3): PROCS CRITICAL: 0 processes",
        ),
        (
            "4",
            "exec probe: UNKNOWN (exit 4): PROCS CRITICAL: 0 processes",
        ),
        (
            "255",
            "exec probe: UNKNOWN (exit 255): PROCS CRITICAL: 0 processes",
        ),
    ];
    for (code, want) in cases {
        let out = plugin(
            &[
                code,
                "PROCS CRITICAL: 0 processes | procs=0;;1:\\nlong text\\n",
            ],
            json!({}),
        );
        assert_eq!(reason(&out), want);
        assert_eq!(out.perfdata(), [p("procs", 0.0, None)]);
    }
}

#[test]
fn a_plugin_killed_by_a_signal_is_unknown() {
    let _s = serial();
    let out = script("printf 'half done | a=1\\n'\nkill -9 $$\n");
    assert_eq!(
        reason(&out),
        "exec probe: UNKNOWN (killed by signal 9): half done"
    );
    assert_eq!(out.perfdata(), [p("a", 1.0, None)]);
}

#[test]
fn without_a_status_text_the_reason_is_the_end_of_stderr() {
    let _s = serial();
    let out = plugin(&["2", "", "cannot read /proc/meminfo\\n"], json!({}));
    assert_eq!(
        reason(&out),
        "exec probe: CRITICAL (exit 2); stderr: cannot read /proc/meminfo"
    );
    // Only perfdata on stdout is no status text either.
    let out = plugin(&["3", " | a=1\\n", "usage: check_fake\\n"], json!({}));
    assert_eq!(
        reason(&out),
        "exec probe: UNKNOWN (exit 3); stderr: usage: check_fake"
    );
    assert_eq!(out.perfdata(), [p("a", 1.0, None)]);
    let out = plugin(&["1", "", ""], json!({}));
    assert_eq!(reason(&out), "exec probe: WARNING (exit 1)");
    // With a status text, stderr is not shown.
    let out = plugin(&["2", "CRITICAL - down\\n", "noise\\n"], json!({}));
    assert_eq!(
        reason(&out),
        "exec probe: CRITICAL (exit 2): CRITICAL - down"
    );
}

#[test]
fn the_timeout_fails_as_any_exec_probe_and_carries_no_perfdata() {
    let _s = serial();
    let dir = Scratch::new("nagios-timeout");
    let path = dir.file(
        "check_slow",
        "#!/bin/sh\nprintf 'OK | a=1\\n'\nsleep 60\n",
        0o755,
    );
    let p = probe(json!({"command": [path.to_str().unwrap()], "timeoutSecs": 5}));
    let mut h = Harness::new();
    let t0 = clock::mono_now();
    let (mut run, step) = h.start(&p, t0);
    assert_eq!(step, Step::Wait(t0 + Duration::from_secs(5)));
    let offset = Duration::from_secs(5);
    let step = h.advance(&mut *run, t0 + offset);
    let out = h.finish(&mut *run, step, offset, false);
    assert_eq!(
        reason(&out),
        "exec probe: timed out after 5 s (process group killed)"
    );
    assert!(out.perfdata().is_empty());
}

#[test]
fn a_long_output_is_read_to_its_end_and_only_its_start_kept() {
    let _s = serial();
    // A 3000-byte status text, then 200 kB of long text: more than a pipe
    // holds, so the plugin would block if its stdout were not read.
    let out = script(
        "printf 'CRITICAL - '\nhead -c 3000 /dev/zero | tr '\\0' x\n\
         printf ' | a=1 b=2s\\n'\nyes 'long text' | head -c 200000\nexit 2\n",
    );
    let r = reason(&out);
    assert!(
        r.starts_with("exec probe: CRITICAL (exit 2): CRITICAL - xxx"),
        "{r}"
    );
    assert!(r.ends_with("xxx...[truncated]"), "{r}");
    assert_eq!(r.len(), MAX_REASON_BYTES + "...[truncated]".len());
    assert_eq!(
        out.perfdata(),
        [p("a", 1.0, None), p("b", 2.0, Some(PerfUnit::Seconds))]
    );
}

#[test]
fn perfdata_past_the_kept_start_is_dropped_and_none_is_cut_short() {
    let _s = serial();
    // 2000 items `kN=N` on one line: about 18 kB, past the 8 KiB kept.
    let out = script(
        "printf 'OK |'\ni=0\nwhile [ $i -lt 2000 ]; do printf ' k%d=%d' $i $i; i=$((i+1)); done\n\
         printf '\\n'\n",
    );
    assert_eq!(out.status(), Status::Pass, "{out:?}");
    let perf = out.perfdata();
    assert!(perf.len() > 500 && perf.len() < 2000, "{}", perf.len());
    for (i, item) in perf.iter().enumerate() {
        assert_eq!(item, &p(&format!("k{i}"), i as f64, None));
    }
    // The item cut at 8 KiB (however it was cut) is not among them.
    let written: usize = (0..perf.len()).map(|i| format!(" k{i}={i}").len()).sum();
    assert!("OK |".len() + written <= nagios::STDOUT_BYTES);
}

#[test]
fn output_format_warning_is_and_expect_exit_code_are_checked() {
    let err = |fields: Value| -> String {
        let mut f = fields;
        f["command"] = json!(["true"]);
        ExecProbe::from_decl(&decl(f)).unwrap_err().to_string()
    };
    assert_eq!(
        err(json!({"outputFormat": "json"})),
        "invalid declaration: field `outputFormat`: expected \"exitCode\" or \"nagios\", got \"json\""
    );
    assert_eq!(
        err(json!({"warningIs": true})),
        "invalid declaration: field `warningIs`: expected \"fail\" or \"pass\", got true"
    );
    assert_eq!(
        err(json!({"outputFormat": "nagios", "expectExitCode": 1})),
        "invalid declaration: field `expectExitCode`: 1 with outputFormat \"nagios\": a \
         plugin's exit code is its state (0 passes, 1 as warningIs says, any other fails)"
    );
    let judge = |fields: Value| {
        let mut f = fields;
        f["command"] = json!(["true"]);
        ExecProbe::from_decl(&decl(f)).unwrap().spec.judge
    };
    // What a renderer writes for unset fields, or the defaults, is fine.
    assert_eq!(
        judge(json!({"outputFormat": "nagios", "expectExitCode": 0, "warningIs": null})),
        Judge::Nagios {
            warning_passes: false
        }
    );
    assert_eq!(
        judge(json!({"outputFormat": "nagios", "expectExitCode": null, "warningIs": "pass"})),
        Judge::Nagios {
            warning_passes: true
        }
    );
    assert_eq!(
        judge(json!({"outputFormat": "exitCode", "expectExitCode": 3})),
        Judge::ExitCode(3)
    );
    assert_eq!(judge(json!({"outputFormat": null})), Judge::ExitCode(0));
}

#[test]
fn check_warns_of_warning_is_without_nagios() {
    let lines = check_lines(
        br#"{"a": {"kind": "exec", "mode": "observe", "command": ["true"], "warningIs": "pass"},
             "b": {"kind": "exec", "mode": "observe", "command": ["true"], "warningIs": "pass",
                   "outputFormat": "nagios"},
             "c": {"kind": "exec", "mode": "observe", "command": ["true"], "warningIs": null}}"#,
    );
    assert_eq!(
        lines,
        ["warning: a: warningIs: read only with outputFormat \"nagios\": ignored"]
    );
}
