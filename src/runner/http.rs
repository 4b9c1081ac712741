//! `http` probes: HTTP/1.1 GET over a plain socket. (stub, being written)

use std::sync::Arc;

use crate::decl::{Declaration, FieldError};
use crate::runner::{Check, RunContext, Runner, RunnerOutcome};

/// The `http` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpRunner;

impl Runner for HttpRunner {
    fn prepare(&self, _decl: &Declaration) -> Result<Arc<dyn Check>, FieldError> {
        Ok(Arc::new(|_: &RunContext<'_>| {
            RunnerOutcome::fail("http probe: not implemented yet")
        }))
    }
}
