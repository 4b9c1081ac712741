//! The `evidence` kind: its fields, and its prepare (a build without the
//! `evidence` feature compiles only this file, and fails every run).

use std::sync::Arc;

use crate::decl::{Declaration, Field, FieldError};
use crate::runner::{HostFacts, Kind, Prepared};

/// The `evidence` kind.
pub(crate) struct EvidenceKind;

impl Kind for EvidenceKind {
    fn fields(&self) -> &'static [&'static [Field]] {
        &[FIELDS]
    }

    #[cfg(feature = "evidence")]
    fn prepare(&self, decl: &Declaration, host: &HostFacts) -> Result<Prepared, FieldError> {
        let check = super::EvidenceCheck::from_decl(decl, host.host_key(), host.hostname())?;
        Ok(Prepared::Inline(Arc::new(check)))
    }

    #[cfg(not(feature = "evidence"))]
    fn prepare(&self, _decl: &Declaration, _host: &HostFacts) -> Result<Prepared, FieldError> {
        use crate::runner::{RunContext, RunnerOutcome};
        let outcome = RunnerOutcome::fail(
            "evidence probes need probewheel built with the `evidence` feature",
        );
        Ok(Prepared::Inline(Arc::new(move |_: &RunContext<'_>| {
            outcome.clone()
        })))
    }
}

#[rustfmt::skip]
const FIELDS: &[Field] = &[
    Field::new("framework", "string, not empty", "none", "Judge every control that covers this framework, one row per article,"),
    Field::new("controls", "object: control id -> `{\"mode\": ..., \"reason\": ...}`", "`{}`", "Judge only these controls, each in its own mode"),
    Field::new("controlOverrides", "object: control id -> `{\"mode\": ..., \"reason\": ...}`", "`{}`", "With `framework` only: the mode (and reason) of the named controls."),
    Field::new("evidencePath", "string, not empty", "`/var/lib/nixfleet-compliance/evidence.json`", "The evidence file;"),
    Field::new("maxAgeSeconds", "integer, 1 to 3153600000 (100 years)", "none", "Fail when the evidence's `collectedAt` is older than this."),
];
