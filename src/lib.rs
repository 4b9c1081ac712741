//! probewheel: a health-probe engine for host agents without an async
//! runtime.
//!
//! (crate manual: being written)

#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![doc(test(attr(deny(warnings))))]

pub mod clock;
pub(crate) mod core;
pub mod decl;
pub mod engine;
pub mod event;
pub mod runner;

pub use crate::clock::Timestamp;
pub use crate::decl::{Declaration, Declarations, FieldError, Mode, Rejection};
pub use crate::engine::{Builder, Engine, EngineError, Stats};
pub use crate::event::Event;
pub use crate::runner::{Check, RunContext, Runner, RunnerOutcome, Status, SubResult};
