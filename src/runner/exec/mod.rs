//! `exec` probes: run a command in its own process group; pass iff its exit
//! code is `expectExitCode`.
//!
//! Fields: [`FIELDS`], and `timeoutSecs` (wall clock).
//!
//! A run ([`run`]) is a state machine on its worker's poll loop
//! ([`crate::runner::machine`]). It spawns `argv[0]` ([`spawn`]: looked up
//! in `PATH` in the parent and started with `execve`, so a file without
//! `#!` fails with "Exec format error" instead of being run by `/bin/sh`)
//! with stdin and stdout on `/dev/null` and stderr on a pipe, as the leader
//! of a new process group that dies with probewheel (`PR_SET_PDEATHSIG`).
//! It then waits on a pidfd of the leader and on the non-blocking stderr
//! pipe, keeping only the last [`STDERR_TAIL_BYTES`] of stderr: a child
//! that never exits holds no thread. It ends when the leader exits, the
//! timeout passes or the run is cancelled; in every case the whole process
//! group is then killed with `SIGKILL` and the leader reaped, and killed
//! members re-parented to this process (a child subreaper) are reaped in
//! 1 ms timer steps for at most 100 ms. Even after a normal exit: the
//! leader's exit does not end its children, and a background grandchild
//! left running would pile up at every tick and outlive a shutdown (G10).
//! The probe owns everything it started.
//!
//! Failure reasons (crate docs, "Events"), each followed by `; stderr: <tail>` when
//! stderr had anything:
//! `exec probe: exit code 3, expected 0`, `exec probe: killed by signal 9`,
//! `exec probe: timed out after 10 s (process group killed)`,
//! `exec probe: spawn /no/such: No such file or directory (os error 2)`,
//! `exec probe: spawn ./script: Exec format error (os error 8) (a file
//! without `#!` is not run through a shell)`, and `exec probe: cancelled`
//! (discarded by the engine). When stderr does not fit in the 512-byte
//! reason, or its start was already dropped from the tail, its *start* is
//! dropped (shown as `...`: the end of stderr is where the error usually
//! is) and the reason ends in `...[truncated]`, as every cut reason does.
//!
//! A descendant that leaves the group (`setsid`, `setpgid`) escapes the
//! kill; only a cgroup could contain it. When probewheel itself is killed,
//! only the leader is killed with it (see [`spawn`]).
//!
//! A custom check runs a command with the same machinery through the
//! public [`Command`] ([`command`]), and turns its [`CommandOutput`] into
//! these same reasons with [`CommandOutput::outcome`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::decl::{Declaration, Field, FieldError, expected};
use crate::runner::machine::{Machine, Run};
use crate::runner::{HostFacts, Kind, MAX_REASON_BYTES, Prepared};

mod command;
#[cfg(test)]
mod command_tests;
#[cfg(test)]
mod machine_tests;
mod run;
mod spawn;
#[cfg(test)]
mod tests;

pub use command::{Command, CommandEnd, CommandOutput};

/// How much of the end of stderr a run keeps for the failure reason.
pub(crate) const STDERR_TAIL_BYTES: usize = 1024;

/// The `exec` kind.
pub(crate) struct ExecKind;

impl Kind for ExecKind {
    fn fields(&self) -> &'static [&'static [Field]] {
        &[FIELDS]
    }

    /// A string command is only split on whitespace: shell syntax in it is
    /// passed literally.
    fn lint(&self, decl: &Declaration, warn: &mut dyn FnMut(&'static str, String)) {
        let Some(Value::String(cmd)) = decl.get("command") else {
            return;
        };
        if let Some(c) = cmd.chars().find(|c| SHELL_SYNTAX.contains(c)) {
            warn(
                "command",
                format!(
                    "a string command is split on whitespace and never run by a shell: \
                     {c:?} is passed literally; write an argv array (for shell syntax, \
                     [\"/bin/sh\", \"-c\", \"...\"])"
                ),
            );
        }
    }

    fn prepare(&self, decl: &Declaration, _host: &HostFacts) -> Result<Prepared, FieldError> {
        Ok(Prepared::Machine(Arc::new(ExecProbe::from_decl(decl)?)))
    }
}

/// Its own fields, as `docs/declarations.md` lists them.
#[rustfmt::skip]
const FIELDS: &[Field] = &[
    Field::new("command", "array of strings (the argv), or one string split on ASCII whitespace", "required", "The program and its arguments."),
    Field::new("expectExitCode", "integer, 0 to 255", "0", "The exit code that passes."),
];

/// Characters a shell would treat specially.
const SHELL_SYNTAX: &[char] = &[
    '"', '\'', '\\', '`', '$', '|', '&', ';', '<', '>', '(', ')', '*', '?', '~', '#',
];

/// A prepared `exec` probe: a [`Machine`] whose runs wait on the poll.
#[derive(Debug, Clone)]
struct ExecProbe {
    spec: Arc<Spec>,
}

/// What a declaration says.
#[derive(Debug)]
struct Spec {
    argv: Arc<[String]>,
    expect_exit_code: i32,
    timeout_secs: u64,
}

impl ExecProbe {
    fn from_decl(decl: &Declaration) -> Result<ExecProbe, FieldError> {
        let argv = parse_command(decl)?;
        let expect_exit_code = decl.i64_in("expectExitCode", 0, 255)?.unwrap_or(0) as i32;
        let timeout_secs = crate::runner::timeout_secs(decl)?;
        Ok(ExecProbe {
            spec: Arc::new(Spec {
                argv: argv.into(),
                expect_exit_code,
                timeout_secs,
            }),
        })
    }
}

const PREFIX: &str = "exec probe: ";
const CANCELLED: &str = "exec probe: cancelled";

impl Machine for ExecProbe {
    fn start(&self, now: Instant) -> Box<dyn Run> {
        let expect = self.spec.expect_exit_code;
        Box::new(run::ExecRun::new(
            Arc::clone(&self.spec.argv),
            Duration::from_secs(self.spec.timeout_secs),
            now,
            move |output: CommandOutput| output.outcome(expect),
        ))
    }
}

/// The last [`STDERR_TAIL_BYTES`] bytes of a stream; memory stays bounded
/// whatever the stream's length.
#[derive(Debug, Default)]
struct Tail {
    buf: Vec<u8>,
    /// Bytes before `buf` were dropped.
    cut: bool,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        if bytes.len() >= STDERR_TAIL_BYTES {
            self.cut |= !self.buf.is_empty() || bytes.len() > STDERR_TAIL_BYTES;
            self.buf.clear();
            self.buf
                .extend_from_slice(&bytes[bytes.len() - STDERR_TAIL_BYTES..]);
            return;
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > STDERR_TAIL_BYTES {
            let excess = self.buf.len() - STDERR_TAIL_BYTES;
            self.buf.drain(..excess);
            self.cut = true;
        }
    }
}

/// Appends `; stderr: <tail>` to `head` when stderr had anything, and says
/// whether anything was cut. The result stays within [`MAX_REASON_BYTES`]
/// (before the marker a cut reason gets) by dropping the *start* of the
/// tail, shown as `...`: the end of stderr is where the error usually is.
/// A tail that already lost its start counts as cut too. Only whitespace
/// around the text is dropped without saying so.
fn with_stderr(mut head: String, tail: &Tail) -> (String, bool) {
    let mut bytes = &tail.buf[..];
    let mut cut = tail.cut;
    if cut {
        // Do not show the broken remains of a character cut in half.
        let skip = bytes
            .iter()
            .take(3)
            .take_while(|&&b| b & 0xC0 == 0x80)
            .count();
        bytes = &bytes[skip..];
    }
    let text = String::from_utf8_lossy(bytes);
    let mut text = text.trim();
    if text.is_empty() {
        return (head, false);
    }
    const SEP: &str = "; stderr: ";
    const ELLIPSIS: &str = "...";
    let budget = MAX_REASON_BYTES.saturating_sub(head.len() + SEP.len() + ELLIPSIS.len());
    if text.len() > budget {
        text = crate::text::tail(text, budget);
        cut = true;
    }
    head.push_str(SEP);
    if cut {
        head.push_str(ELLIPSIS);
    }
    head.push_str(text);
    (head, cut)
}

/// `command`: an array of strings, or one string split on ASCII whitespace.
fn parse_command(decl: &Declaration) -> Result<Vec<String>, FieldError> {
    const FIELD: &str = "command";
    let argv: Vec<String> = match decl.get(FIELD) {
        None => return Err(FieldError::new(FIELD, "required field is missing")),
        Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(_)) => decl
            .str_array(FIELD)?
            .unwrap_or_default()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        Some(other) => return Err(expected(FIELD, "an array of strings or a string", other)),
    };
    if argv.is_empty() {
        return Err(FieldError::new(
            FIELD,
            "expected a non-empty command, got an empty one",
        ));
    }
    if argv[0].is_empty() {
        return Err(FieldError::new(FIELD, "the program (element 0) is empty"));
    }
    if let Some(i) = argv.iter().position(|a| a.contains('\0')) {
        return Err(FieldError::new(
            FIELD,
            format!("element {i} contains a NUL byte"),
        ));
    }
    Ok(argv)
}
