//! Building blocks the engine and the transport share, below both.

pub(crate) mod elastic;
