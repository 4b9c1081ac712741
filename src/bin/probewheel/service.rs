//! What a service manager sees: systemd's notify protocol and the
//! descriptor limit.
//!
//! The notify protocol is one datagram per message to the socket named by
//! `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace); no
//! libsystemd needed. Messages are best-effort: a manager that is gone or
//! behind must not stop the probes.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to the service manager's notify socket.
#[derive(Debug)]
pub(crate) struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`; `None` when it is unset or unusable (logged).
    pub(crate) fn from_env() -> Option<Notifier> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        match Self::open(name.as_encoded_bytes()) {
            Ok(n) => Some(n),
            Err(e) => {
                log::warn!("NOTIFY_SOCKET {name:?} unusable: {e}");
                None
            }
        }
    }

    fn open(name: &[u8]) -> io::Result<Notifier> {
        let addr = match name.strip_prefix(b"@") {
            Some(abs) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(abs)?
            }
            None => {
                use std::os::unix::ffi::OsStrExt;
                SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(name))?
            }
        };
        let sock = UnixDatagram::unbound()?;
        // A manager that is behind gets no message rather than stalling us.
        sock.set_nonblocking(true)?;
        Ok(Notifier { sock, addr })
    }

    /// Sends `msg` (`KEY=value` lines); failures are logged at debug.
    pub(crate) fn send(&self, msg: &str) {
        if let Err(e) = self.sock.send_to_addr(msg.as_bytes(), &self.addr) {
            log::debug!("notify {msg:?}: {e}");
        }
    }
}

/// `WATCHDOG=1` goes out at most this often, whatever `WATCHDOG_USEC` says:
/// a timeout of a few microseconds cannot be met anyway, and must not turn
/// the main loop into a busy one.
const WATCHDOG_FLOOR: Duration = Duration::from_millis(10);

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC` (as systemd
/// recommends), no more often than [`WATCHDOG_FLOOR`], when it is set and
/// meant for this process (`WATCHDOG_PID` absent or ours).
pub(crate) fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    let pace = watchdog_pace(usec)?;
    if pace > Duration::from_micros(usec / 2) {
        log::warn!(
            "WATCHDOG_USEC={usec} is shorter than {:?}: WATCHDOG=1 is sent every {pace:?}",
            pace * 2
        );
    }
    Some(pace)
}

/// Half of a watchdog timeout of `usec`, at least [`WATCHDOG_FLOOR`];
/// `None` for 0 (no watchdog).
fn watchdog_pace(usec: u64) -> Option<Duration> {
    (usec > 0).then(|| Duration::from_micros(usec / 2).max(WATCHDOG_FLOOR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_pace_is_half_the_timeout_and_never_below_the_floor() {
        assert_eq!(watchdog_pace(0), None);
        assert_eq!(watchdog_pace(1), Some(WATCHDOG_FLOOR));
        assert_eq!(watchdog_pace(19_999), Some(WATCHDOG_FLOOR));
        assert_eq!(watchdog_pace(30_000), Some(Duration::from_millis(15)));
        assert_eq!(watchdog_pace(30_000_000), Some(Duration::from_secs(15)));
    }
}
