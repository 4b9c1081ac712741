//! Starting a run's leader: never through a shell, and never outliving us.
//!
//! `std`'s `Command` ends in `execvp`, which runs a file without `#!` with
//! `/bin/sh` when `execve` says `ENOEXEC`. The exec reference says such a file is a
//! failure, so the program is looked up in `PATH` here, in the parent, and
//! the child calls `execve` itself from `pre_exec`: `std`'s own exec is never
//! reached. Everything the child touches (path, argv, envp) is built in the
//! parent, so the child only makes async-signal-safe syscalls.
//!
//! In the child, before `execve`:
//! - every descriptor above stderr is marked close-on-exec (`close_range`),
//!   so a probe never inherits the embedding program's files and sockets;
//! - the signal mask is emptied (the `probewheel` binary blocks SIGINT and
//!   SIGTERM in all its threads to take them with `sigwait`, and a child
//!   would inherit that mask);
//! - `PR_SET_PDEATHSIG` is set to `SIGKILL`, so the leader dies if
//!   probewheel is killed (SIGKILL, OOM), and then the parent's pid is
//!   checked again, for a parent that died before the `prctl`.
//!
//! `PR_SET_PDEATHSIG` fires when the forking *thread* exits (workers live as
//! long as the engine); the leader's own children do not inherit it.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::sys::process;

/// `PATH` when the environment has none (glibc's `execvp` default).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// Spawns `argv` as the leader of a new process group, stdin on `/dev/null`,
/// stdout on a pipe if `stdout` (else `/dev/null`), stderr on a pipe; an
/// empty program is `InvalidInput` (a custom check's `Command` may have one).
#[allow(unsafe_code)] // the pre_exec child
pub(super) fn spawn(argv: &[String], stdout: bool) -> io::Result<Child> {
    let program = match argv.first() {
        Some(program) if !program.is_empty() => program,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an empty command",
            ));
        }
    };
    let path = find_program(OsStr::new(program), std::env::var_os("PATH"))?;
    let image = Image::new(&path, argv)?;
    let mut cmd = Command::new(&path);
    let out = if stdout {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure runs in the child between fork and exec. It only
    // makes async-signal-safe syscalls on data built in the parent, and
    // allocates nothing (`last_os_error` reads errno into a plain value).
    unsafe {
        cmd.pre_exec(move || image.exec());
    }
    cmd.spawn()
}

/// The program to run: `program` itself when it holds a `/`, else the first
/// executable regular file of that name in `path` (an empty entry is the
/// current directory), as `execvp` looks. `EACCES` if only files we may not
/// execute were found, `ENOENT` if none.
pub(super) fn find_program(program: &OsStr, path: Option<OsString>) -> io::Result<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(program));
    }
    let path = path.unwrap_or_else(|| DEFAULT_PATH.into());
    let mut denied = false;
    for dir in std::env::split_paths(&path) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(program);
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() => {
                if process::executable(&candidate) {
                    return Ok(candidate);
                }
                denied = true;
            }
            _ => {}
        }
    }
    Err(io::Error::from_raw_os_error(if denied {
        libc::EACCES
    } else {
        libc::ENOENT
    }))
}

/// What the child hands `execve`, built in the parent.
struct Image {
    path: CString,
    /// Owns the strings `argv_ptrs` points into.
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    /// NULL-terminated.
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    /// This process, to detect in the child that it died before the prctl.
    parent: libc::pid_t,
}

// SAFETY: the raw pointers point into the `CString`s the image owns (heap
// buffers that never move or change); the image is only read, once, in the
// forked child.
#[allow(unsafe_code)]
unsafe impl Send for Image {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl Sync for Image {}

impl Image {
    fn new(path: &Path, argv: &[String]) -> io::Result<Image> {
        let nul = |_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the command");
        let path = CString::new(path.as_os_str().as_bytes()).map_err(nul)?;
        let argv: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()).map_err(nul))
            .collect::<io::Result<_>>()?;
        // The environment is the process's own at spawn time, as with `std`.
        let envp: Vec<CString> = std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv).ok()
            })
            .collect();
        let ptrs = |v: &[CString]| {
            v.iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };
        Ok(Image {
            argv_ptrs: ptrs(&argv),
            envp_ptrs: ptrs(&envp),
            path,
            _argv: argv,
            _envp: envp,
            parent: process::own_pid().as_raw_pid(),
        })
    }

    /// In the child: prepares the process and replaces it with the program.
    /// Returns only on failure (`std` then reports the errno to `spawn`).
    #[allow(unsafe_code)] // async-signal-safe libc calls, after fork
    fn exec(&self) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        // SAFETY: close_range only changes descriptor flags of this
        // process. Best effort: kernels before 5.9 lack it.
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
            );
        }
        // SAFETY: sigset_t is plain data, initialised by sigemptyset; the
        // child has one thread, so sigprocmask is its thread's mask.
        unsafe {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        }
        #[cfg(target_os = "linux")]
        // SAFETY: plain syscalls with integer arguments.
        unsafe {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent died between fork and prctl: the signal will not
            // come, so end here.
            if libc::getppid() != self.parent {
                libc::_exit(127);
            }
        }
        // SAFETY: path, argv and envp are NUL-terminated strings and
        // NULL-terminated arrays that live as long as `self`.
        unsafe {
            libc::execve(
                self.path.as_ptr(),
                self.argv_ptrs.as_ptr(),
                self.envp_ptrs.as_ptr(),
            );
        }
        Err(io::Error::last_os_error())
    }
}
