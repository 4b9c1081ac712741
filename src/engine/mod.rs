//! The engine: builder, handle, driver thread. (stub, being written)

use std::fmt;

/// Builds an [`Engine`].
#[derive(Debug, Default)]
pub struct Builder {}

/// A running engine.
#[derive(Debug)]
pub struct Engine {}

/// Engine counters.
#[derive(Debug, Default, Clone)]
pub struct Stats {}

/// The engine could not do what was asked.
#[derive(Debug)]
pub struct EngineError {}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("engine error")
    }
}

impl std::error::Error for EngineError {}
