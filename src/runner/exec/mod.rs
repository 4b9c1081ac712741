//! `exec` probes: run a command in its own process group; pass iff its exit
//! code is `expectExitCode`, or, with `outputFormat: "nagios"`, as a Nagios
//! plugin's exit code says ([`nagios`]), with its perfdata ([`perfdata`]).
//!
//! A [`run`] is a state machine on a worker's poll loop: it [`spawn`]s the
//! leader of a new process group, waits on its pidfd and the stderr pipe
//! (a child that never exits holds no thread), and at the end, even after a
//! normal exit, kills the whole group so that no background grandchild piles
//! up at every tick or outlives a shutdown (G10). The reasons are
//! [`CommandOutput::outcome`]'s; custom checks use the same through
//! [`Command`].

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
mod nagios;
#[cfg(test)]
mod nagios_tests;
mod perfdata;
mod run;
mod spawn;
#[cfg(test)]
pub(crate) mod tests;

pub use command::{Command, CommandEnd, CommandOutput};
/// For kinds that run a command of their own (`systemd`).
pub(crate) use run::ExecRun;

/// How much of the end of stderr a run keeps for the failure reason.
pub(crate) const STDERR_TAIL_BYTES: usize = 1024;

/// The `exec` kind.
pub(crate) struct ExecKind;

impl Kind for ExecKind {
    fn fields(&self) -> &'static [&'static [Field]] {
        &[FIELDS]
    }

    /// A string command is only split on whitespace: shell syntax stays
    /// literal. `warningIs` means something with `outputFormat: "nagios"` only.
    fn lint(&self, decl: &Declaration, warn: &mut dyn FnMut(&'static str, String)) {
        if decl.get("warningIs").is_some() && matches!(nagios_format(decl), Ok(false)) {
            warn(
                "warningIs",
                "read only with outputFormat \"nagios\": ignored".to_owned(),
            );
        }
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
    Field::new("outputFormat", "string: `\"exitCode\"` or `\"nagios\"`", "`\"exitCode\"`", "How the run is judged:"),
    Field::new("warningIs", "string: `\"fail\"` or `\"pass\"`", "`\"fail\"`", "With `outputFormat: \"nagios\"`, what a plugin's WARNING (exit 1) counts as."),
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
    judge: Judge,
    timeout_secs: u64,
}

/// How a run's output becomes its outcome (`outputFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judge {
    /// Pass on this exit code.
    ExitCode(i32),
    /// A Nagios plugin: its exit code is its state.
    Nagios { warning_passes: bool },
}

impl ExecProbe {
    fn from_decl(decl: &Declaration) -> Result<ExecProbe, FieldError> {
        let argv = parse_command(decl)?;
        let expect_exit_code = decl.i64_in("expectExitCode", 0, 255)?;
        let warning_passes = either(decl, "warningIs", "fail", "pass")?;
        let judge = if nagios_format(decl)? {
            // 0 is OK for both: a renderer that writes the default is right.
            if let Some(code) = expect_exit_code.filter(|&c| c != 0) {
                return Err(FieldError::new(
                    "expectExitCode",
                    format!(
                        "{code} with outputFormat \"nagios\": a plugin's exit code is its \
                         state (0 passes, 1 as warningIs says, any other fails)"
                    ),
                ));
            }
            Judge::Nagios { warning_passes }
        } else {
            Judge::ExitCode(expect_exit_code.unwrap_or(0) as i32)
        };
        let timeout_secs = crate::runner::timeout_secs(decl)?;
        Ok(ExecProbe {
            spec: Arc::new(Spec {
                argv: argv.into(),
                judge,
                timeout_secs,
            }),
        })
    }
}

/// `outputFormat`: true for `"nagios"`.
fn nagios_format(decl: &Declaration) -> Result<bool, FieldError> {
    either(decl, "outputFormat", "exitCode", "nagios")
}

/// A field that is one of two strings: true for `yes`, false for `no` or
/// absent.
fn either(decl: &Declaration, field: &str, no: &str, yes: &str) -> Result<bool, FieldError> {
    match decl.get(field) {
        None => Ok(false),
        Some(Value::String(s)) if s == no => Ok(false),
        Some(Value::String(s)) if s == yes => Ok(true),
        Some(other) => Err(expected(field, &format!("{no:?} or {yes:?}"), other)),
    }
}

const PREFIX: &str = "exec probe: ";
const CANCELLED: &str = "exec probe: cancelled";

impl Machine for ExecProbe {
    fn start(&self, now: Instant) -> Box<dyn Run> {
        let judge = self.spec.judge;
        let run = run::ExecRun::new(
            Arc::clone(&self.spec.argv),
            Duration::from_secs(self.spec.timeout_secs),
            now,
            move |output: CommandOutput| match judge {
                Judge::ExitCode(expect) => output.outcome(expect),
                Judge::Nagios { warning_passes } => output.nagios_outcome(warning_passes),
            },
        );
        match judge {
            Judge::ExitCode(_) => Box::new(run),
            Judge::Nagios { .. } => Box::new(run.keep_stdout(nagios::STDOUT_BYTES)),
        }
    }
}

/// Where the bytes a run reads from a pipe go.
trait Keep {
    fn push(&mut self, bytes: &[u8]);
}

/// The first `limit` bytes of a stream; the rest is read and dropped, so the
/// child never blocks on a full pipe.
#[derive(Debug, Default)]
struct Head {
    buf: Vec<u8>,
    limit: usize,
    /// Bytes after `buf` were dropped.
    cut: bool,
}

impl Head {
    fn new(limit: usize) -> Head {
        Head {
            buf: Vec::new(),
            limit,
            cut: false,
        }
    }
}

impl Keep for Head {
    fn push(&mut self, bytes: &[u8]) {
        let room = self.limit - self.buf.len();
        self.cut |= bytes.len() > room;
        self.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

/// The last [`STDERR_TAIL_BYTES`] bytes of a stream.
#[derive(Debug, Default)]
struct Tail {
    buf: Vec<u8>,
    /// Bytes before `buf` were dropped.
    cut: bool,
}

impl Keep for Tail {
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

/// Appends `; stderr: <tail>` to `head` when stderr had anything, within
/// [`MAX_REASON_BYTES`] by dropping the tail's *start* (the error is usually
/// at the end), and says whether anything was cut.
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
