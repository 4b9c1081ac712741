//! `evidence` probes: signed compliance evidence.
//!
//! A collector on the host writes `evidencePath` (default
//! `/var/lib/nixfleet-compliance/evidence.json`):
//!
//! ```json
//! {"schemaVersion": 1, "hostname": "web-1", "collectedAt": "2026-11-27T14:15:42Z",
//!  "controls": [{"controlId": "ssh-hardening", "passed": true,
//!                "frameworkArticles": {"nis2": ["21.2.a", "21.2.j"]}}]}
//! ```
//!
//! and next to it `<evidencePath>.sig`: one line of standard base64, the
//! 64-byte ed25519 signature, by the host's SSH host key, over the RFC 8785
//! (JCS) canonical form of the file's JSON value. The probe checks that
//! signature against the host's OpenSSH public key
//! ([`Builder::host_key`](crate::Builder::host_key), default
//! [`DEFAULT_HOST_KEY`]) before it trusts any content; the file may be
//! pretty-printed, and unknown fields stay signed.
//!
//! Then, at every run, `hostname` must be this host's and `collectedAt`
//! within `maxAgeSeconds` (the future counts as fresh), and the selected
//! controls become `subResults` rows, sorted by control id, framework,
//! article (the selection is in `docs/declarations.md`). Rows are attached
//! only to verified, fresh evidence for this host.
//!
//! Decisions:
//! - Repeated keys at any depth, and a repeated `controlId`, are refused:
//!   the signer and this reader could disagree about what was signed.
//! - A strict JSON reader of this module, not serde_json, whose default
//!   float parsing would change the canonical form of some numbers.
//! - JCS numbers are doubles (RFC 8785): integers beyond 2^53 are
//!   canonicalized as the nearest double; a collector must do the same.
//! - Verification is cached per probe on the size, times, device and inode
//!   of the three files; freshness is checked at every run.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};

use self::document::Evidence;
use self::select::Selection;
use crate::clock::{self, Timestamp};
use crate::decl::Mode;
use crate::decl::{Declaration, FieldError};
use crate::file::{FileStamp, OpenError, RegularFile};
use crate::runner::{Check, Placement, RunContext, RunnerOutcome};

mod document;
mod host_key;
mod jcs;
mod json;
mod kind;
mod select;

pub(crate) use kind::EvidenceKind;
#[cfg(test)]
mod tests;

/// Default path of the host's OpenSSH public key.
pub const DEFAULT_HOST_KEY: &str = "/etc/ssh/ssh_host_ed25519_key.pub";

/// Default `evidencePath`.
pub(crate) const DEFAULT_EVIDENCE_PATH: &str = "/var/lib/nixfleet-compliance/evidence.json";

/// Largest `maxAgeSeconds` accepted: one hundred years (larger is invalid).
pub(crate) const MAX_AGE_LIMIT_SECS: u64 = 100 * 365 * 24 * 3600;

/// Largest evidence file read.
const MAX_EVIDENCE_BYTES: u64 = 16 * 1024 * 1024;
/// Largest signature file read (64 bytes are 88 base64 characters).
const MAX_SIGNATURE_BYTES: u64 = 1024;
/// Largest public key file read.
const MAX_KEY_BYTES: u64 = 16 * 1024;

/// One prepared evidence probe, with its verification cache.
#[derive(Debug)]
pub(crate) struct EvidenceCheck {
    evidence: PathBuf,
    signature: PathBuf,
    host_key: PathBuf,
    hostname: String,
    max_age_secs: Option<u64>,
    selection: Selection,
    probe_mode: Mode,
    cache: Mutex<Option<Cached>>,
    verifications: AtomicU64,
}

/// The outcome of reading and verifying one set of file versions.
#[derive(Debug)]
struct Cached {
    stamps: [FileStamp; 3],
    verified: Result<Arc<Evidence>, String>,
}

impl Check for EvidenceCheck {
    fn run(&self, _ctx: &RunContext<'_>) -> RunnerOutcome {
        self.run_at(clock::wall_now())
    }

    /// Local files, read only when changed, and one signature check.
    fn placement(&self) -> Placement {
        Placement::Inline
    }
}

impl EvidenceCheck {
    /// Reads the probe's fields; evidence is verified against the key at
    /// `host_key`, for host `hostname`.
    pub(crate) fn from_decl(
        decl: &Declaration,
        host_key: PathBuf,
        hostname: &str,
    ) -> Result<EvidenceCheck, FieldError> {
        let selection = Selection::from_decl(decl)?;
        let evidence = match decl.str_field("evidencePath")? {
            None => PathBuf::from(DEFAULT_EVIDENCE_PATH),
            Some("") => return Err(FieldError::new("evidencePath", "must not be empty")),
            Some(p) => PathBuf::from(p),
        };
        let max_age_secs = decl.u64_in("maxAgeSeconds", 1, MAX_AGE_LIMIT_SECS)?;
        let mut signature = evidence.clone().into_os_string();
        signature.push(".sig");
        Ok(EvidenceCheck {
            evidence,
            signature: PathBuf::from(signature),
            host_key,
            hostname: hostname.to_owned(),
            max_age_secs,
            selection,
            probe_mode: decl.mode(),
            cache: Mutex::new(None),
            verifications: AtomicU64::new(0),
        })
    }

    /// How many signature verifications this check has done (cache misses).
    #[cfg(test)]
    pub(crate) fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// One run with the wall clock at `now`.
    pub(crate) fn run_at(&self, now: SystemTime) -> RunnerOutcome {
        let evidence = match self.verified(now) {
            Ok(e) => e,
            Err(reason) => return RunnerOutcome::fail(format!("evidence probe: {reason}")),
        };
        let file = self.evidence.display().to_string();
        if evidence.hostname != self.hostname {
            return RunnerOutcome::fail(format!(
                "evidence probe: {file}: hostname {:?} != {:?} (this host); the evidence was \
                 collected on another host, or --hostname is wrong",
                document::short(&evidence.hostname),
                self.hostname
            ));
        }
        if let Some(max) = self.max_age_secs {
            let age_us = Timestamp::from_system_time(now)
                .unix_micros()
                .saturating_sub(evidence.collected_at.unix_micros());
            let max_us = (max * 1_000_000) as i64; // max <= MAX_AGE_LIMIT_SECS
            if age_us > max_us {
                let stale = ((age_us - max_us) as u64).div_ceil(1_000_000);
                return RunnerOutcome::fail(format!(
                    "evidence probe: {file} is stale by {stale} s: collectedAt {} is {} s old, \
                     maxAgeSeconds is {max}; is the collector running?",
                    evidence.collected_at,
                    age_us / 1_000_000
                ));
            }
        }
        self.selection
            .rows(self.probe_mode, &evidence)
            .verdict(&self.selection, &file)
    }

    /// The verified evidence, from the cache when no file changed.
    fn verified(&self, now: SystemTime) -> Result<Arc<Evidence>, String> {
        // Opened before the cache is consulted and read through these
        // descriptors, so the stamps are those of what is read.
        let files = Files {
            evidence: open(&self.evidence, MAX_EVIDENCE_BYTES, "evidence file")?,
            signature: open(&self.signature, MAX_SIGNATURE_BYTES, "signature file")?,
            host_key: open(&self.host_key, MAX_KEY_BYTES, "host key")?,
        };
        let stamps = [
            files.evidence.stamp(),
            files.signature.stamp(),
            files.host_key.stamp(),
        ];
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.as_ref() {
            if c.stamps == stamps {
                return c.verified.clone();
            }
        }
        let verified = self.load(files).map(Arc::new);
        *cache = if stamps.iter().any(|s| s.is_racy(now)) {
            None
        } else {
            Some(Cached {
                stamps,
                verified: verified.clone(),
            })
        };
        verified
    }

    /// Reads the three files and verifies the signature, then the document.
    fn load(&self, files: Files) -> Result<Evidence, String> {
        let key = self.read_host_key(files.host_key)?;
        let ev = self.evidence.display();
        let bytes = read(files.evidence, &self.evidence, "evidence file")?;
        let value = json::parse(&bytes).map_err(|e| format!("{ev} is not valid JSON: {e}"))?;
        let signature = self.read_signature(files.signature)?;
        let canonical =
            jcs::canonicalize(&value).map_err(|e| format!("{ev} cannot be canonicalized: {e}"))?;
        self.verifications.fetch_add(1, Ordering::Relaxed);
        key.verify_strict(canonical.as_bytes(), &signature)
            .map_err(|_| {
                format!(
                    "bad signature: {} does not verify {ev} with host key {}; the evidence was \
                     changed after signing, or signed with another key",
                    self.signature.display(),
                    self.host_key.display()
                )
            })?;
        document::read(&value).map_err(|e| format!("{ev}: {e}"))
    }

    fn read_host_key(&self, file: RegularFile) -> Result<VerifyingKey, String> {
        let path = self.host_key.display();
        let bytes = read(file, &self.host_key, "host key")?;
        let text =
            std::str::from_utf8(&bytes).map_err(|_| format!("host key {path} is not text"))?;
        host_key::parse(text).map_err(|e| format!("host key {path}: {e}"))
    }

    fn read_signature(&self, file: RegularFile) -> Result<Signature, String> {
        let path = self.signature.display();
        let bytes = read(file, &self.signature, "signature file")?;
        let raw = STANDARD.decode(bytes.trim_ascii()).map_err(|e| {
            format!("signature file {path} is not one line of standard base64: {e}")
        })?;
        let raw: [u8; 64] = raw.as_slice().try_into().map_err(|_| {
            format!(
                "signature file {path} decodes to {} bytes; an ed25519 signature is 64",
                raw.len()
            )
        })?;
        Ok(Signature::from_bytes(&raw))
    }
}

/// The three files of one verification, open.
struct Files {
    evidence: RegularFile,
    signature: RegularFile,
    host_key: RegularFile,
}

/// Opens one of the files (see `crate::file`: it cannot block).
fn open(path: &Path, max: u64, what: &str) -> Result<RegularFile, String> {
    RegularFile::open(path, max).map_err(|e| problem(path, what, e))
}

fn read(file: RegularFile, path: &Path, what: &str) -> Result<Vec<u8>, String> {
    file.read().map_err(|e| problem(path, what, e))
}

fn problem(path: &Path, what: &str, e: OpenError) -> String {
    match e {
        OpenError::Io(e) => io_problem(path, what, &e),
        other => format!("{what} {} is {other}", path.display()),
    }
}

fn io_problem(path: &Path, what: &str, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::NotFound {
        let hint = match what {
            "evidence file" => "; has the compliance collector run on this host?",
            "signature file" => "; the collector writes it next to the evidence file",
            _ => "",
        };
        format!("{what} {} is missing{hint}", path.display())
    } else {
        format!("cannot read {what} {}: {e}", path.display())
    }
}
