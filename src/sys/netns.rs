//! Tests only: a network namespace of the calling thread's own, with `lo`
//! up and ICMP datagram sockets allowed, so `icmp` probes are tested on
//! loopback whatever the host's `net.ipv4.ping_group_range` says. Threads
//! and processes the thread starts afterwards share it.

use std::io;

/// Moves the calling thread into a new network namespace, brings `lo` up
/// and allows every group ICMP datagram sockets there. Needs
/// `CAP_SYS_ADMIN` (root): the error says why it could not.
pub(crate) fn enter_private_loopback() -> Result<(), String> {
    // SAFETY: the hazard of unshare is CLONE_FILES (descriptors no longer
    // shared with the other threads); CLONE_NEWNET changes only which
    // network namespace this thread's new sockets belong to.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
        .map_err(|e| format!("unshare(CLONE_NEWNET): {}", io::Error::from(e)))?;
    loopback_up().map_err(|e| format!("bringing lo up: {e}"))?;
    // /proc/sys/net is the namespace of the thread that opens it.
    write_sysctl("net/ipv4/ping_group_range", "0 2147483647")
}

/// Makes the thread's namespace answer echo requests (IPv4 and IPv6), or
/// ignore them.
pub(crate) fn answer_echo_requests(answer: bool) -> Result<(), String> {
    let ignore = if answer { "0" } else { "1" };
    write_sysctl("net/ipv4/icmp_echo_ignore_all", ignore)?;
    write_sysctl("net/ipv6/icmp/echo_ignore_all", ignore)
}

fn write_sysctl(name: &str, value: &str) -> Result<(), String> {
    std::fs::write(format!("/proc/sys/{name}"), value)
        .map_err(|e| format!("writing {value:?} to /proc/sys/{name}: {e}"))
}

/// `ip link set lo up`, as an ioctl (no netlink, no `ip` binary).
fn loopback_up() -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket() takes no pointers; a valid descriptor is owned once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq naming an interface, as both ioctls
    // expect; the flags member of its union is the one they use.
    unsafe {
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
