//! `evidence` probes: signed compliance evidence. (stub, being written)

use std::path::PathBuf;
use std::sync::Arc;

use crate::decl::{Declaration, FieldError};
use crate::runner::{Check, RunContext, Runner, RunnerOutcome};

/// Default path of the host's OpenSSH public key.
pub const DEFAULT_HOST_KEY: &str = "/etc/ssh/ssh_host_ed25519_key.pub";

/// The `evidence` kind.
#[derive(Debug, Clone)]
pub struct EvidenceRunner {
    host_key: PathBuf,
    hostname: String,
}

impl EvidenceRunner {
    /// Verifies evidence against the key at `host_key`, for host `hostname`.
    pub fn new(host_key: PathBuf, hostname: String) -> Self {
        EvidenceRunner { host_key, hostname }
    }
}

impl Runner for EvidenceRunner {
    fn prepare(&self, _decl: &Declaration) -> Result<Arc<dyn Check>, FieldError> {
        let _ = (&self.host_key, &self.hostname);
        Ok(Arc::new(|_: &RunContext<'_>| {
            RunnerOutcome::fail("evidence probe: not implemented yet")
        }))
    }
}
