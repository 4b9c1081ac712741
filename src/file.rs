//! Opening a file that a declaration or the command line names, here and
//! nowhere else, so that it never blocks: a FIFO without a writer, a device
//! or a directory is refused by name instead of hanging a reset or a run.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

#[cfg(test)]
pub(crate) mod tests;

/// How recently a file may have been modified for its [`FileStamp`] to be
/// trusted: a second write within one timestamp tick leaves the same stamp.
#[cfg(any(feature = "tls", feature = "evidence"))]
const RACY_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);

/// A regular file, open for reading, with the metadata of that descriptor.
#[derive(Debug)]
pub(crate) struct RegularFile {
    file: File,
    meta: Metadata,
    max: u64,
}

/// Why a named file cannot be read.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// `open(2)`, `fstat(2)` or `read(2)` failed (a missing file is
    /// [`io::ErrorKind::NotFound`]).
    Io(io::Error),
    /// Not a regular file: what it is instead ("a FIFO", "a directory").
    NotRegular(&'static str),
    /// Larger than the caller's bound.
    TooLarge {
        /// The file's size.
        len: u64,
        /// The bound.
        max: u64,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Io(e) => e.fmt(f),
            OpenError::NotRegular(what) => write!(f, "not a regular file ({what})"),
            OpenError::TooLarge { len, max } => {
                write!(f, "larger than {} ({len} bytes)", size(*max))
            }
        }
    }
}

impl RegularFile {
    /// Opens `path` for reading without blocking, and checks that it is a
    /// regular file of at most `max` bytes. A symlink is followed.
    pub(crate) fn open(path: &Path, max: u64) -> Result<RegularFile, OpenError> {
        // O_NONBLOCK: a FIFO without a writer would block; O_NOCTTY: a tty
        // never becomes ours. Neither changes how a regular file reads.
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(OpenError::Io)?;
        // fstat of the descriptor: the path may be replaced in between.
        let meta = file.metadata().map_err(OpenError::Io)?;
        let kind = meta.file_type();
        if !kind.is_file() {
            let what = if kind.is_fifo() {
                "a FIFO"
            } else if kind.is_dir() {
                "a directory"
            } else if kind.is_char_device() {
                "a character device"
            } else if kind.is_block_device() {
                "a block device"
            } else if kind.is_socket() {
                "a socket"
            } else {
                "of an unknown type"
            };
            return Err(OpenError::NotRegular(what));
        }
        if meta.len() > max {
            return Err(OpenError::TooLarge {
                len: meta.len(),
                max,
            });
        }
        Ok(RegularFile { file, meta, max })
    }

    /// [`RegularFile::open`], then [`RegularFile::read`].
    pub(crate) fn read_all(path: &Path, max: u64) -> Result<Vec<u8>, OpenError> {
        RegularFile::open(path, max)?.read()
    }

    /// What identifies this version of the file.
    #[cfg(any(feature = "tls", feature = "evidence"))]
    pub(crate) fn stamp(&self) -> FileStamp {
        FileStamp::of(&self.meta)
    }

    /// The descriptor's metadata, taken at [`RegularFile::open`].
    pub(crate) fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// At most the first `n` bytes, however large the file is.
    pub(crate) fn read_head(self, n: u64) -> Result<Vec<u8>, OpenError> {
        let mut bytes = Vec::with_capacity(self.meta.len().min(n) as usize);
        self.file
            .take(n)
            .read_to_end(&mut bytes)
            .map_err(OpenError::Io)?;
        Ok(bytes)
    }

    /// The whole file, at most the bound given to [`RegularFile::open`]
    /// (it may have grown since).
    pub(crate) fn read(self) -> Result<Vec<u8>, OpenError> {
        let mut bytes = Vec::with_capacity(self.meta.len() as usize);
        self.file
            .take(self.max + 1)
            .read_to_end(&mut bytes)
            .map_err(OpenError::Io)?;
        if bytes.len() as u64 > self.max {
            return Err(OpenError::TooLarge {
                len: bytes.len() as u64,
                max: self.max,
            });
        }
        Ok(bytes)
    }
}

/// A bound in words: "16 MiB", "1024 bytes".
fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// What identifies one version of a file without reading it: size,
/// modification and change times, device and inode.
#[cfg(any(feature = "tls", feature = "evidence"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    /// (device, inode, ctime seconds, ctime nanoseconds).
    identity: (u64, u64, i64, i64),
}

#[cfg(any(feature = "tls", feature = "evidence"))]
impl FileStamp {
    fn of(meta: &Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            identity: (meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Modified so recently (or in the future) that a later write could
    /// leave the same stamp: an equal stamp does not prove equal content.
    pub(crate) fn is_racy(&self, now: std::time::SystemTime) -> bool {
        self.modified
            .is_none_or(|m| now.duration_since(m).map_or(true, |age| age < RACY_WINDOW))
    }
}
