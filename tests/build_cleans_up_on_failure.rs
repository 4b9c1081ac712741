//! A `build()` that fails partway (here: descriptors run out while the
//! workers start) stops every thread it started and closes every
//! descriptor it opened.
//!
//! In a test binary of its own: it lowers this process's descriptor limit,
//! which would make other tests fail if they ran beside it.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::time::Duration;

use common::{nofile, open_fds, set_nofile, threads_named, wait_until};
use probewheel::Builder;
use probewheel::engine::ErrorKind;

/// The highest descriptor this process has open.
fn highest_fd() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .max()
        .unwrap()
}

#[test]
fn a_build_that_runs_out_of_descriptors_leaves_no_thread_and_no_descriptor() {
    let fds_before = open_fds();
    let saved = nofile();
    // Room for the engine's own descriptors and a dozen workers, not 1000.
    set_nofile(libc::rlimit {
        rlim_cur: highest_fd() + 1 + 40,
        rlim_max: saved.rlim_max,
    });
    let built = Builder::new()
        .declarations_json("{}")
        .workers(1000)
        .thread_name("bc-fail")
        .build();
    set_nofile(saved);
    let err = built.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    // It failed partway: some workers had started.
    assert_eq!(
        err.to_string(),
        "cannot spawn worker: Too many open files (os error 24)"
    );

    let mut left = Vec::new();
    let gone = wait_until(Duration::from_secs(5), || {
        left = threads_named("bc-fail-");
        left.is_empty()
    });
    assert!(
        gone,
        "{} threads left: {:?}",
        left.len(),
        &left[..left.len().min(5)]
    );
    let mut fds = 0;
    assert!(
        wait_until(Duration::from_secs(5), || {
            fds = open_fds();
            fds == fds_before
        }),
        "{fds} descriptors open, {fds_before} before the build"
    );

    // The process is left as it was: a build that fits works.
    let (engine, _rx) = Builder::new()
        .declarations_json("{}")
        .workers(2)
        .thread_name("bc-ok")
        .build()
        .unwrap();
    engine.shutdown().unwrap();
}
