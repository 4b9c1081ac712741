//! The OS layer: every system call the library makes outside the standard
//! library and mio, and every `unsafe` block, behind safe functions.
//!
//! Elsewhere `unsafe_code` is denied, except in the async-signal-safe
//! `pre_exec` child (`runner/exec/spawn.rs`). rustix where it has the call;
//! else a short `unsafe` block here with its `// SAFETY:` line.

pub(crate) mod host;
#[allow(unsafe_code)]
pub(crate) mod memory;
#[cfg(test)]
#[allow(unsafe_code)]
pub(crate) mod netns;
pub(crate) mod process;
#[cfg(test)]
#[allow(unsafe_code)]
pub(crate) mod signal;
pub(crate) mod socket;
pub(crate) mod thread;
#[cfg(target_os = "linux")]
pub(crate) mod timer;
