//! `exec` probes: run a command in its own process group. (stub, being written)

use std::sync::Arc;

use crate::decl::{Declaration, FieldError};
use crate::runner::{Check, RunContext, Runner, RunnerOutcome};

/// The `exec` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecRunner;

impl Runner for ExecRunner {
    fn prepare(&self, _decl: &Declaration) -> Result<Arc<dyn Check>, FieldError> {
        Ok(Arc::new(|_: &RunContext<'_>| {
            RunnerOutcome::fail("exec probe: not implemented yet")
        }))
    }
}
