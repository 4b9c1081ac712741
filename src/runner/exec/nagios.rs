//! `outputFormat: "nagios"`: an exec probe's verdict from a Nagios
//! plugin's exit code, its reason from the plugin's status text, and the
//! perfdata it printed ([`perfdata`](super::perfdata)).

use std::os::unix::process::ExitStatusExt;

use super::perfdata::parse_output;
use super::{CommandEnd, CommandOutput, PREFIX};
use crate::runner::RunnerOutcome;

/// How much of a plugin's stdout is kept and read (the rest is dropped).
pub(super) const STDOUT_BYTES: usize = 8 * 1024;

/// The outcome of a plugin's run: exit 0 passes, 1 (WARNING) passes only
/// when `warning_passes`, 2 (CRITICAL), 3 (UNKNOWN), any other code or a
/// signal (both UNKNOWN) fail with the plugin's status text; a run that
/// timed out, was cancelled or did not start fails as any exec probe's.
pub(super) fn outcome(output: &CommandOutput, warning_passes: bool) -> RunnerOutcome {
    let CommandEnd::Exited(status) = output.end() else {
        return output.outcome(0);
    };
    let (text, perfdata) = parse_output(output.stdout(), output.stdout_truncated());
    let state = match (status.code(), status.signal()) {
        (Some(0), _) => return RunnerOutcome::pass().with_perfdata(perfdata),
        (Some(1), _) if warning_passes => return RunnerOutcome::pass().with_perfdata(perfdata),
        (Some(1), _) => "WARNING (exit 1)".to_owned(),
        (Some(2), _) => "CRITICAL (exit 2)".to_owned(),
        (Some(code), _) => format!("UNKNOWN (exit {code})"),
        (None, Some(sig)) => format!("UNKNOWN (killed by signal {sig})"),
        (None, None) => format!("UNKNOWN (ended with {status})"),
    };
    let outcome = if text.is_empty() {
        // Nothing to say on stdout: what it said on stderr, as exec does.
        output.fail_with_stderr(format!("{PREFIX}{state}"))
    } else {
        RunnerOutcome::fail(format!("{PREFIX}{state}: {text}"))
    };
    outcome.with_perfdata(perfdata)
}
