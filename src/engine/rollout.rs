//! The rule for rollout ids, shared by [`Engine::reset`](super::Engine::reset)
//! and the binary's `--rollout` flag and `reset` command.

use super::error::EngineError;

/// Longest rollout id, in bytes.
pub const MAX_ROLLOUT_ID_BYTES: usize = 256;

/// Checks a rollout id: 1 to [`MAX_ROLLOUT_ID_BYTES`] bytes of printable
/// ASCII without spaces (`!` to `~`). The id is copied into every event
/// and printed in logs, so it must stay one short word.
///
/// [`Engine::reset`](super::Engine::reset) refuses any other id with this
/// error, of kind [`ErrorKind::InvalidRolloutId`](super::ErrorKind::InvalidRolloutId),
/// whose `Display` says what is wrong.
///
/// # Examples
///
/// ```
/// use probewheel::engine::{ErrorKind, validate_rollout_id};
///
/// assert!(validate_rollout_id("stable@abc123").is_ok());
/// let err = validate_rollout_id("stable abc").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidRolloutId);
/// assert_eq!(
///     err.to_string(),
///     r#"a rollout id is printable ASCII without spaces; got byte " " at offset 6"#
/// );
/// ```
pub fn validate_rollout_id(id: &str) -> Result<(), EngineError> {
    if id.is_empty() {
        return Err(EngineError::invalid_rollout_id(
            "a rollout id must not be empty".into(),
        ));
    }
    if id.len() > MAX_ROLLOUT_ID_BYTES {
        return Err(EngineError::invalid_rollout_id(format!(
            "a rollout id is at most {MAX_ROLLOUT_ID_BYTES} bytes, got {} bytes",
            id.len()
        )));
    }
    if let Some(at) = id.bytes().position(|b| !b.is_ascii_graphic()) {
        return Err(EngineError::invalid_rollout_id(format!(
            "a rollout id is printable ASCII without spaces; got byte \"{}\" at offset {at}",
            [id.as_bytes()[at]].escape_ascii()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ErrorKind;

    #[test]
    fn printable_ascii_words_of_1_to_256_bytes_pass() {
        for good in [
            "r",
            "stable@abc-1.2_x",
            "!~",
            &"x".repeat(MAX_ROLLOUT_ID_BYTES),
        ] {
            assert!(validate_rollout_id(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn everything_else_is_refused_with_the_reason() {
        let reason = |id: &str| {
            let err = validate_rollout_id(id).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidRolloutId, "{id:?}");
            err.to_string()
        };
        assert_eq!(reason(""), "a rollout id must not be empty");
        assert_eq!(
            reason(&"x".repeat(257)),
            "a rollout id is at most 256 bytes, got 257 bytes"
        );
        assert_eq!(
            reason("a\tb"),
            r#"a rollout id is printable ASCII without spaces; got byte "\t" at offset 1"#
        );
        assert_eq!(
            reason("caf\u{e9}"),
            r#"a rollout id is printable ASCII without spaces; got byte "\xc3" at offset 3"#
        );
        for bad in ["a b", "a\u{7f}", "\0", "x\n"] {
            reason(bad);
        }
        // A huge id does not make a huge message.
        assert!(reason(&"x".repeat(5_000_000)).len() < 100);
    }
}
