//! The transport layer: what every network probe kind stands on.
//!
//! Name resolution ([`Resolve`], and the bounded resolver pool that runs
//! it off the workers), non-blocking connects (`dial`), the byte stream
//! of a connection (`stream`) and TLS sessions over it (`tls`, feature
//! `tls`), all driven by a worker's poll loop. Like mio's `sys`, this is
//! the one place that talks to the socket API: `tcp` and `http` use it,
//! and none of them opens a socket itself.

pub(crate) mod dial;
pub(crate) mod resolve;
pub(crate) mod stream;
#[cfg(feature = "tls")]
pub(crate) mod tls;

pub use self::resolve::{Resolve, SystemResolver};
