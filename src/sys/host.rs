//! The host's name (`uname`'s node name, which is what `gethostname` reads
//! on Linux).

/// The host name, lossily as UTF-8; empty if the kernel has none.
#[cfg(feature = "evidence")]
pub(crate) fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
