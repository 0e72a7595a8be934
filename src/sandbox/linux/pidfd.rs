//! A process handle that cannot outlive its process's pid: `pidfd_open`
//! and `pidfd_send_signal` (Linux 5.3). The held-path watcher
//! (`sandbox::guard::HeldWatch`) kills the sandbox from its own thread
//! while the main thread may be reaping it; a plain `kill(pid)` there could
//! hit another process that reused the number. Hand-written: two syscalls.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub struct PidFd {
    fd: OwnedFd,
}

impl PidFd {
    /// A handle on `pid`, which must be a child not reaped yet (then the
    /// number still names it).
    pub fn open(pid: libc::pid_t) -> io::Result<PidFd> {
        // SAFETY: no pointers; the returned fd is owned below.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor we own (CLOEXEC by default).
        let fd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
        Ok(PidFd { fd })
    }

    /// SIGKILL the process. Once it has exited (even if not reaped), this
    /// is a no-op that fails with ESRCH: never another process.
    pub fn kill(&self) -> io::Result<()> {
        // SAFETY: the fd is open; a null siginfo is allowed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
