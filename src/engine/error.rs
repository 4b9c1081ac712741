//! What the engine's calls fail with: [`EngineError`] and its [`ErrorKind`].

use std::fmt;
use std::io;
use std::time::Duration;

/// The engine could not do what was asked. (A failing probe is never an
/// error: it is an event.) [`EngineError::kind`] says which case it is,
/// as [`std::io::Error::kind`] does.
///
/// # Examples
///
/// ```
/// use probewheel::Builder;
/// use probewheel::engine::ErrorKind;
///
/// let (engine, _events) = Builder::new().declarations_json("{}").build()?;
/// let err = engine.reset("two words").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidRolloutId);
/// match engine.stats() {
///     Ok(stats) => assert_eq!(stats.generation, 0),
///     Err(e) if e.kind() == ErrorKind::Busy => { /* ask again later */ }
///     Err(e) => return Err(e),
/// }
/// # Ok::<(), probewheel::EngineError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct EngineError {
    repr: Repr,
}

/// The kind of an [`EngineError`]. More kinds may be added: match with a
/// `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A [`Builder`](super::Builder) setting is out of range.
    Config,
    /// The OS refused something the engine needs to start (a thread, a
    /// poll instance, a timer); the error's
    /// [`source`](std::error::Error::source) is the [`io::Error`].
    Io,
    /// The engine thread is gone: shut down, or stopped on a fatal error.
    Stopped,
    /// The engine thread is running but did not answer in time (see
    /// [`Engine::stats_timeout`](super::Engine::stats_timeout)), busy with a
    /// large reset or a blocking [`Runner::prepare`](crate::runner::Runner::prepare).
    Busy,
    /// [`Engine::reset`](super::Engine::reset) was given a rollout id that
    /// breaks the rule of [`validate_rollout_id`](super::validate_rollout_id);
    /// nothing was changed.
    InvalidRolloutId,
    /// The engine thread panicked
    /// ([`Engine::shutdown`](super::Engine::shutdown)).
    Panicked,
}

#[derive(Debug)]
pub(super) enum Repr {
    Config(&'static str),
    /// A setting above its maximum: the setting and the maximum.
    ConfigAtMost(&'static str, usize),
    Io(&'static str, io::Error),
    Stopped,
    Busy(Duration),
    InvalidRolloutId(String),
    Panicked,
}

impl EngineError {
    pub(super) fn new(repr: Repr) -> Self {
        EngineError { repr }
    }

    pub(super) fn config(msg: &'static str) -> Self {
        EngineError::new(Repr::Config(msg))
    }

    pub(super) fn io(what: &'static str) -> impl FnOnce(io::Error) -> EngineError {
        move |e| EngineError::new(Repr::Io(what, e))
    }

    pub(super) fn stopped() -> Self {
        EngineError::new(Repr::Stopped)
    }

    pub(super) fn busy(waited: Duration) -> Self {
        EngineError::new(Repr::Busy(waited))
    }

    pub(crate) fn invalid_rollout_id(reason: String) -> Self {
        EngineError::new(Repr::InvalidRolloutId(reason))
    }

    /// Which case this is.
    pub fn kind(&self) -> ErrorKind {
        match self.repr {
            Repr::Config(_) | Repr::ConfigAtMost(..) => ErrorKind::Config,
            Repr::Io(..) => ErrorKind::Io,
            Repr::Stopped => ErrorKind::Stopped,
            Repr::Busy(_) => ErrorKind::Busy,
            Repr::InvalidRolloutId(_) => ErrorKind::InvalidRolloutId,
            Repr::Panicked => ErrorKind::Panicked,
        }
    }

    /// The engine thread is gone (shut down, or it stopped on a fatal
    /// error): `kind() == ErrorKind::Stopped`. A [busy](ErrorKind::Busy)
    /// engine is not stopped.
    pub fn is_stopped(&self) -> bool {
        self.kind() == ErrorKind::Stopped
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Config(msg) => write!(f, "invalid engine configuration: {msg}"),
            Repr::ConfigAtMost(what, max) => {
                write!(
                    f,
                    "invalid engine configuration: {what} must be at most {max}"
                )
            }
            Repr::Io(what, e) => write!(f, "cannot {what}: {e}"),
            Repr::Stopped => f.write_str("the engine has stopped"),
            Repr::Busy(waited) => write!(
                f,
                "the engine is busy: it is running but did not answer within {waited:?}"
            ),
            Repr::InvalidRolloutId(reason) => f.write_str(reason),
            Repr::Panicked => f.write_str("the engine thread panicked"),
        }
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.repr {
            Repr::Io(_, e) => Some(e),
            _ => None,
        }
    }
}
