//! What stdout is: a terminal (and how large), or not.

use std::io::{self, IsTerminal};

/// True when stdout is a terminal that understands cursor movement
/// (`TERM=dumb` does not).
pub(crate) fn stdout_is_terminal() -> bool {
    io::stdout().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// Columns and rows of the terminal on stdout, if it is one.
pub(crate) fn stdout_size() -> Option<(usize, usize)> {
    // SAFETY: winsize is plain data; TIOCGWINSZ only writes into the struct
    // we own, and fails (rc -1) when fd 1 is not a terminal.
    let ws = unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) != 0 {
            return None;
        }
        ws
    };
    (ws.ws_col > 0 && ws.ws_row > 0).then_some((usize::from(ws.ws_col), usize::from(ws.ws_row)))
}
