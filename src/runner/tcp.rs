//! `tcp` probes: connect with a timeout. (stub, being written)

use std::sync::Arc;

use crate::decl::{Declaration, FieldError};
use crate::runner::{Check, RunContext, Runner, RunnerOutcome};

/// The `tcp` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpRunner;

impl Runner for TcpRunner {
    fn prepare(&self, _decl: &Declaration) -> Result<Arc<dyn Check>, FieldError> {
        Ok(Arc::new(|_: &RunContext<'_>| {
            RunnerOutcome::fail("tcp probe: not implemented yet")
        }))
    }
}
