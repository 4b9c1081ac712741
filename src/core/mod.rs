//! The scheduling core: no I/O, `now` passed in.

pub(crate) mod wheel;
