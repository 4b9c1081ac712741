//! Handing freed heap back to the OS.

/// Returns free heap pages to the OS; glibc would otherwise keep them
/// resident. Elsewhere the allocator decides.
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages; it takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}
