//! The `file` kind: a heartbeat a timer or a batch job touches, checked by
//! its age, its first 64 KiB, or its absence.
//!
//! Inline on a worker: a `stat` and a bounded, non-blocking read of a local
//! regular file never wait long (a FIFO or a device is refused at open).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::clock;
use crate::decl::{Declaration, Field, FieldError};
use crate::file::{OpenError, RegularFile};
use crate::runner::{Check, HostFacts, Kind, Prepared, RunContext, RunnerOutcome};

#[cfg(test)]
mod tests;

/// How much of the file `contains` searches.
const HEAD: u64 = 64 * 1024;

/// The longest `maxAgeSeconds`: 100 years.
const MAX_AGE_SECS: u64 = 3_153_600_000;

/// The `file` kind.
pub(crate) struct FileKind;

impl Kind for FileKind {
    fn fields(&self) -> &'static [&'static [Field]] {
        &[FIELDS]
    }

    fn lint(&self, decl: &Declaration, warn: &mut dyn FnMut(&'static str, String)) {
        let Ok(check) = FileCheck::from_decl(decl) else {
            return;
        };
        if !check.expect_exists {
            for field in ["maxAgeSeconds", "contains"] {
                if decl.get(field).is_some() {
                    warn(
                        field,
                        "ignored with expectExists false: the probe only checks that \
                         nothing exists at path"
                            .to_owned(),
                    );
                }
            }
            return;
        }
        if let Some(max) = check.max_age
            && !decl.run_once()
            && max.as_secs() < decl.interval_secs()
        {
            warn(
                "maxAgeSeconds",
                format!(
                    "{} is shorter than intervalSeconds {}: a file touched as often as \
                     the probe runs is stale at every other run",
                    max.as_secs(),
                    decl.interval_secs()
                ),
            );
        }
    }

    fn prepare(&self, decl: &Declaration, _host: &HostFacts) -> Result<Prepared, FieldError> {
        Ok(Prepared::Inline(Arc::new(FileCheck::from_decl(decl)?)))
    }
}

/// Its own fields, as `docs/declarations.md` lists them.
#[rustfmt::skip]
const FIELDS: &[Field] = &[
    Field::new("path", "string: an absolute path", "required", "The file to look at."),
    Field::new("maxAgeSeconds", "integer, 1 to 3153600000 (100 years)", "none", "Fail when the file was last modified longer ago than this."),
    Field::new("contains", "string, at most 64 KiB", "none", "The text the first 64 KiB of the file must contain."),
    Field::new("expectExists", "boolean", "true", "Whether the file must exist."),
];

/// One `file` probe, read from its declaration.
#[derive(Debug)]
struct FileCheck {
    path: PathBuf,
    max_age: Option<Duration>,
    contains: Option<String>,
    expect_exists: bool,
}

impl FileCheck {
    fn from_decl(decl: &Declaration) -> Result<FileCheck, FieldError> {
        let path = decl.required_str("path")?;
        if !Path::new(path).is_absolute() {
            return Err(FieldError::new(
                "path",
                format!("{path:?} is not an absolute path"),
            ));
        }
        if path.contains('\0') {
            return Err(FieldError::new("path", "contains a NUL byte"));
        }
        let contains = decl.str_field("contains")?;
        if contains.is_some_and(|c| c.len() as u64 > HEAD) {
            return Err(FieldError::new(
                "contains",
                "longer than 64 KiB, the part of the file searched",
            ));
        }
        Ok(FileCheck {
            path: path.into(),
            max_age: decl
                .u64_in("maxAgeSeconds", 1, MAX_AGE_SECS)?
                .map(Duration::from_secs),
            contains: contains.filter(|c| !c.is_empty()).map(str::to_owned),
            expect_exists: decl.bool_field("expectExists")?.unwrap_or(true),
        })
    }

    /// Looks at the file as of `now` (the wall clock): `Err` is the reason
    /// the probe fails.
    fn judge(&self, now: SystemTime) -> Result<(), String> {
        let path = self.path.display();
        if !self.expect_exists {
            // stat, not open: a FIFO at the path exists all the same.
            return match std::fs::metadata(&self.path) {
                Ok(_) => Err(format!("file probe: {path} exists, expected it not to")),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(format!("file probe: {path}: {e}")),
            };
        }
        let file = RegularFile::open(&self.path, u64::MAX).map_err(|e| match e {
            OpenError::Io(e) if e.kind() == std::io::ErrorKind::NotFound => {
                format!("file probe: {path}: no such file")
            }
            e => format!("file probe: {path}: {e}"),
        })?;
        if let Some(max) = self.max_age {
            let modified = file
                .metadata()
                .modified()
                .map_err(|e| format!("file probe: {path}: no modification time: {e}"))?;
            // A modification time in the future (a clock stepped back) is age 0.
            let age = now.duration_since(modified).unwrap_or_default().as_secs();
            if age > max.as_secs() {
                return Err(format!(
                    "file probe: {path} is {} s old, older than maxAgeSeconds {}",
                    grouped(age),
                    max.as_secs()
                ));
            }
        }
        if let Some(needle) = &self.contains {
            let head = file
                .read_head(HEAD)
                .map_err(|e| format!("file probe: {path}: {e}"))?;
            if !head.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                return Err(format!(
                    "file probe: {path} does not contain {needle:?} in its first 64 KiB"
                ));
            }
        }
        Ok(())
    }
}

impl Check for FileCheck {
    fn run(&self, _ctx: &RunContext<'_>) -> RunnerOutcome {
        match self.judge(clock::wall_now()) {
            Ok(()) => RunnerOutcome::pass(),
            Err(reason) => RunnerOutcome::fail(reason),
        }
    }
}

/// `3612` as `3,612`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
