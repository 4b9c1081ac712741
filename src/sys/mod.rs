//! The OS layer: every system call the library makes outside the standard
//! library and mio, and every `unsafe` block, behind safe functions.
//!
//! The rest of the crate is `#![deny(unsafe_code)]`; the one exception is
//! the `pre_exec` child of exec probes (`runner/exec/spawn.rs`), which
//! must stay async-signal-safe and so calls libc directly. Where rustix has
//! the call, it is used (typed, no `unsafe` of ours); what it lacks is a
//! short `unsafe` block here with its `// SAFETY:` line.

pub(crate) mod host;
#[allow(unsafe_code)]
pub(crate) mod memory;
pub(crate) mod process;
#[cfg(test)]
#[allow(unsafe_code)]
pub(crate) mod signal;
pub(crate) mod socket;
pub(crate) mod thread;
#[cfg(target_os = "linux")]
pub(crate) mod timer;
