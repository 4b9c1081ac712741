use std::io;
use std::time::Duration;

use super::*;

// How a missing answer from the engine thread is reported. The end-to-end
// case of a busy engine is in tests/engine_stats.rs; an engine thread that
// is gone cannot be brought about from the public API without a bug, so it
// is told here: a request dropped unanswered, or no answer from a thread
// that has finished.

#[test]
fn an_answer_is_returned() {
    let (tx, rx) = crossbeam_channel::bounded(1);
    tx.send(7).unwrap();
    let answer = await_reply(&rx, Duration::ZERO, || panic!("not asked")).unwrap();
    assert_eq!(answer, 7);
}

#[test]
fn a_request_dropped_unanswered_means_stopped() {
    let (tx, rx) = crossbeam_channel::bounded::<u8>(1);
    drop(tx);
    let err = await_reply(&rx, Duration::from_secs(5), || true).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Stopped);
    assert!(err.is_stopped());
    assert_eq!(err.to_string(), "the engine has stopped");
}

#[test]
fn no_answer_from_a_running_thread_means_busy() {
    let (_tx, rx) = crossbeam_channel::bounded::<u8>(1);
    let err = await_reply(&rx, Duration::from_millis(1), || true).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy);
    assert!(!err.is_stopped());
    assert_eq!(
        err.to_string(),
        "the engine is busy: it is running but did not answer within 1ms"
    );
}

#[test]
fn no_answer_from_a_finished_thread_means_stopped() {
    let (_tx, rx) = crossbeam_channel::bounded::<u8>(1);
    let err = await_reply(&rx, Duration::from_millis(1), || false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Stopped);
}

#[test]
fn each_error_has_its_kind() {
    let io = EngineError::io("create poll")(io::Error::from(io::ErrorKind::PermissionDenied));
    assert_eq!(io.kind(), ErrorKind::Io);
    assert!(std::error::Error::source(&io).is_some());
    assert_eq!(
        Builder::new().workers(0).build().unwrap_err().kind(),
        ErrorKind::Config
    );
    assert_eq!(EngineError::new(Repr::Panicked).kind(), ErrorKind::Panicked);
    assert_eq!(
        validate_rollout_id("").unwrap_err().kind(),
        ErrorKind::InvalidRolloutId
    );
}
