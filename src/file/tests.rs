//! Named files: what is refused without blocking, and what is read.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A unique directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("probewheel-file-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes a FIFO at `path` (no writer ever opens it).
pub(crate) fn mkfifo(path: &Path) {
    let mode = rustix::fs::Mode::from_raw_mode(0o600);
    rustix::fs::mkfifoat(rustix::fs::CWD, path, mode).expect("mkfifo");
}

fn refusal(path: &Path, max: u64) -> String {
    RegularFile::open(path, max).unwrap_err().to_string()
}

#[test]
fn a_fifo_is_refused_at_once_directly_and_through_a_symlink() {
    let dir = TempDir::new();
    let fifo = dir.0.join("fifo");
    mkfifo(&fifo);
    // A blocking open would wait here for a writer that never comes.
    assert_eq!(refusal(&fifo, 1024), "not a regular file (a FIFO)");
    let link = dir.0.join("link");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    assert_eq!(refusal(&link, 1024), "not a regular file (a FIFO)");
}

#[test]
fn directories_and_devices_are_refused_by_name() {
    let dir = TempDir::new();
    assert_eq!(refusal(&dir.0, 1024), "not a regular file (a directory)");
    assert_eq!(
        refusal(Path::new("/dev/null"), 1024),
        "not a regular file (a character device)"
    );
}

#[test]
fn a_missing_file_keeps_its_io_error_kind() {
    let dir = TempDir::new();
    match RegularFile::open(&dir.0.join("nope"), 1024) {
        Err(OpenError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_file_over_the_bound_is_not_read() {
    let dir = TempDir::new();
    let sparse = dir.0.join("sparse");
    File::create(&sparse).unwrap().set_len(10 << 30).unwrap();
    assert_eq!(
        refusal(&sparse, 16 << 20),
        "larger than 16 MiB (10737418240 bytes)"
    );
    let small = dir.0.join("small");
    std::fs::write(&small, b"12345").unwrap();
    assert_eq!(refusal(&small, 4), "larger than 4 bytes (5 bytes)");
    assert_eq!(RegularFile::read_all(&small, 5).unwrap(), b"12345");
}

#[test]
fn a_file_that_grows_after_the_check_is_read_only_to_the_bound() {
    let dir = TempDir::new();
    let path = dir.0.join("growing");
    std::fs::write(&path, b"abc").unwrap();
    let file = RegularFile::open(&path, 4).unwrap();
    std::fs::write(&path, b"abcdefgh").unwrap();
    assert_eq!(
        file.read().unwrap_err().to_string(),
        "larger than 4 bytes (5 bytes)"
    );
}

#[test]
#[cfg(any(feature = "tls", feature = "evidence"))]
fn the_stamp_changes_with_the_content_and_a_fresh_file_is_racy() {
    let dir = TempDir::new();
    let path = dir.0.join("f");
    std::fs::write(&path, b"one").unwrap();
    let one = RegularFile::open(&path, 1024).unwrap().stamp();
    assert_eq!(RegularFile::open(&path, 1024).unwrap().stamp(), one);
    std::fs::write(&path, b"three").unwrap();
    assert_ne!(RegularFile::open(&path, 1024).unwrap().stamp(), one);
    let now = crate::clock::wall_now();
    assert!(one.is_racy(now));
    assert!(!one.is_racy(now + RACY_WINDOW + std::time::Duration::from_secs(1)));
}
