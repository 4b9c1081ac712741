//! The transport layer: what every network probe kind stands on.
//!
//! Name resolution ([`Resolve`], and the bounded resolver pool that runs
//! it off the workers), and non-blocking connections driven by a worker's
//! poll loop. Like mio's `sys`, this is the one place that talks to the
//! socket API: `tcp` and `http` (and TLS) use it, and none of them opens a
//! socket itself.

pub(crate) mod resolve;
#[cfg(feature = "tls")]
pub(crate) mod tls;

pub use self::resolve::{Resolve, SystemResolver};
