//! A probe kind of the embedding program's own: `file-contains`.
//!
//! ```json
//! "kernel-is-linux": {"kind": "file-contains", "mode": "enforce",
//!                     "path": "/proc/version", "contains": "Linux", "waitSecs": 5}
//! ```
//!
//! passes once the file at `path` (absolute) contains the text `contains`
//! (not empty), re-reading it every 100 ms for up to `waitSecs` (0 to 600,
//! default 0: one read). It shows the three duties of a [`Runner`]:
//!
//! - read the kind's own fields in [`Runner::prepare`], once per reset, and
//!   turn every problem into a [`FieldError`], which the engine reports on
//!   every tick as `invalid declaration: field `<name>`: <problem>`;
//! - list those fields in [`Runner::extra_fields`], so that `probewheel
//!   check` does not call them unknown;
//! - return promptly from [`Check::run`] once the run is cancelled (a
//!   reset, a shutdown, or the probe's `timeoutSecs`, 10 s by default,
//!   after which the engine has recorded `timed out after N s` anyway):
//!   [`RunContext::sleep`] waits and says whether that happened.
//!
//! A kind that runs a program need not write its own kill-on-cancel:
//! `probewheel::runner::Command` runs it the way `exec` probes run theirs
//! (a process group of its own, killed whole, grandchildren included, at
//! its timeout and when the run is cancelled) and hands back its exit
//! status and stderr tail.
//!
//! ```sh
//! cargo run --example custom_kind -- [--config PATH] [--seconds N]
//! ```
//!
//! Defaults: `examples/custom-kind.json`, 5 seconds. Events go to stdout as
//! JSON Lines; lines starting `custom_kind:` narrate.

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{after, select};
use probewheel::{Builder, Check, Declaration, FieldError, RunContext, Runner, RunnerOutcome};

/// How often a waiting check re-reads its file.
const RETRY: Duration = Duration::from_millis(100);

/// The runner: one per kind, registered with the builder.
struct FileContains;

/// One prepared probe of the kind.
struct FileCheck {
    path: PathBuf,
    needle: String,
    wait: Duration,
}

impl Runner for FileContains {
    fn prepare(&self, decl: &Declaration) -> Result<Arc<dyn Check>, FieldError> {
        // The typed getters report wrong types and missing fields
        // ("required field is missing", "expected a string, got 3").
        let path = decl.required_str("path")?;
        if !path.starts_with('/') {
            return Err(FieldError::new(
                "path",
                format!("must be an absolute path, got {path:?}"),
            ));
        }
        let needle = decl.required_str("contains")?;
        if needle.is_empty() {
            return Err(FieldError::new("contains", "must not be empty"));
        }
        let wait = decl.u64_in("waitSecs", 0, 600)?.unwrap_or(0);
        Ok(Arc::new(FileCheck {
            path: PathBuf::from(path),
            needle: needle.to_owned(),
            wait: Duration::from_secs(wait),
        }))
    }

    fn extra_fields(&self) -> &[&str] {
        &["path", "contains", "waitSecs"]
    }
}

impl Check for FileCheck {
    fn run(&self, ctx: &RunContext<'_>) -> RunnerOutcome {
        loop {
            let why = match std::fs::read_to_string(&self.path) {
                Ok(text) if text.contains(&self.needle) => return RunnerOutcome::pass(),
                Ok(_) => format!("does not contain {:?}", self.needle),
                Err(e) => e.to_string(),
            };
            let waited = ctx.now() - ctx.started();
            if waited >= self.wait {
                return RunnerOutcome::fail(format!(
                    "file-contains probe: {}: {why}",
                    self.path.display()
                ));
            }
            // Wakes early when the run is cancelled; the outcome of a
            // cancelled run is discarded, so any outcome will do.
            if ctx.sleep(RETRY.min(self.wait - waited)) {
                println!(
                    "custom_kind: {}: cancelled after {} ms of waiting, returning",
                    ctx.probe_name(),
                    (ctx.now() - ctx.started()).as_millis()
                );
                return RunnerOutcome::fail("cancelled");
            }
        }
    }
}

fn parse_args() -> Result<(String, u64), String> {
    let mut config: String =
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/custom-kind.json").into();
    let mut seconds = 5;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--config" => config = value,
            "--seconds" => {
                seconds = value
                    .parse()
                    .map_err(|_| format!("--seconds: expected a whole number, got {value:?}"))?
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((config, seconds))
}

fn main() -> Result<(), Box<dyn Error>> {
    let (config, seconds) = parse_args().unwrap_or_else(|e| {
        eprintln!("custom_kind: {e}\nusage: custom_kind [--config PATH] [--seconds N]");
        std::process::exit(2)
    });
    let (engine, events) = Builder::new()
        .declarations_path(config)
        .runner("file-contains", FileContains)
        .build()?;
    let generation = engine.reset("custom@1")?;
    let deadline = after(Duration::from_secs(seconds));
    loop {
        select! {
            recv(events) -> event => {
                let event = event?;
                println!("{}", serde_json::to_string(&event)?);
            },
            recv(deadline) -> _ => break,
        }
    }
    // The engine's verdict of the generation this reset started: only
    // `enforce` probes gate it, so the observe probes that fail do not.
    match engine.verdict(generation) {
        Some(v) => println!("custom_kind: verdict: {}", v.verdict),
        None => println!("custom_kind: verdict: none yet"),
    }
    println!("custom_kind: shutting down");
    // Cancels the run still waiting for its flag file.
    engine.shutdown()?;
    println!("custom_kind: stopped");
    Ok(())
}
