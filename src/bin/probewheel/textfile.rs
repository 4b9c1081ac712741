//! The metrics file on disk (`--metrics-file`), replaced by a thread of its
//! own.
//!
//! The file usually sits in node_exporter's textfile directory, which other
//! accounts may be able to write, so no name there is trusted: the text goes
//! to a new file with an unpredictable name, created exclusively
//! (`O_CREAT|O_EXCL|O_NOFOLLOW`: never through a link, never into a FIFO or
//! someone else's file), then renamed over `PATH` (a rename replaces a link
//! at `PATH`, it does not follow it). The collector reads only `*.prom`, so
//! it sees neither the temporary file nor half a file.
//!
//! The `probewheel-metrics` thread does the writing, fed the latest text: a
//! write that blocks (a hung NFS mount, a slow disk) holds up that thread
//! only, never commands, signals, resets or shutdown, and a text offered
//! while another waits replaces it.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;

use crossbeam_channel::Sender;

/// The metrics writer thread, as the main loop sees it.
#[derive(Debug)]
pub(crate) struct Writer {
    /// The latest text not yet taken by the thread.
    pending: Arc<Mutex<Option<String>>>,
    /// Wakes the thread; holds at most one wake-up. Dropping it ends the
    /// thread once it has written what is pending.
    wake: Sender<()>,
}

impl Writer {
    /// Starts the thread that replaces `path`; failures are logged.
    pub(crate) fn spawn(path: PathBuf) -> io::Result<Writer> {
        let mut failing: Option<String> = None;
        Self::spawn_with(move |text| match replace(&path, &text) {
            Ok(()) => {
                if failing.take().is_some() {
                    log::info!("metrics file {} written again", path.display());
                }
            }
            // Once per distinct error, not at every snapshot.
            Err(e) => {
                let msg = e.to_string();
                if failing.as_ref() != Some(&msg) {
                    log::warn!("cannot write metrics file {}: {msg}", path.display());
                } else {
                    log::debug!("cannot write metrics file {}: {msg}", path.display());
                }
                failing = Some(msg);
            }
        })
    }

    fn spawn_with(mut write: impl FnMut(String) + Send + 'static) -> io::Result<Writer> {
        let pending = Arc::new(Mutex::new(None::<String>));
        let (wake, woken) = crossbeam_channel::bounded::<()>(1);
        let taken = pending.clone();
        thread::Builder::new()
            .name("probewheel-metrics".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                for () in woken {
                    // The lock is held for the take only, never for a write.
                    let text = taken.lock().unwrap_or_else(|p| p.into_inner()).take();
                    if let Some(text) = text {
                        write(text);
                    }
                }
            })?;
        Ok(Writer { pending, wake })
    }

    /// Hands `text` to the thread without waiting: it replaces any text
    /// still pending.
    pub(crate) fn offer(&self, text: String) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
        // Full: a wake-up is already queued and will take this text.
        let _ = self.wake.try_send(());
    }
}

/// Replaces `path` with `text`: written to a new file of a random name
/// beside it, then renamed.
pub(crate) fn replace(path: &Path, text: &str) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let (mut file, tmp) = {
        let mut tries = 0;
        loop {
            let mut tmp_name = name.to_owned();
            tmp_name.push(format!(".{}.tmp", random_hex()?));
            let tmp = path.with_file_name(tmp_name);
            let opened = OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp);
            match opened {
                Ok(f) => break (f, tmp),
                // Someone guessed 96 random bits: draw again, a few times.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 3 => tries += 1,
                Err(e) => return Err(e),
            }
        }
    };
    let written = file.write_all(text.as_bytes());
    drop(file);
    let result = written.and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// 96 bits from the kernel's generator, in hex.
fn random_hex() -> io::Result<String> {
    let mut buf = [0u8; 12];
    crate::sys::random_bytes(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests;
