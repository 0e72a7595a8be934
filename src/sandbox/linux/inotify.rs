//! A minimal inotify handle for `sandbox::guard`'s watchers: directory
//! watches for new entries ([`Inotify::watch_dir`], missing protected
//! names) or for any change of the entries' names ([`Inotify::watch_names`],
//! held paths a host program may rename over or remove), polled with a
//! timeout. Hand-written (a few syscalls) rather than a crate: it only
//! needs name events, never reads or writes of file contents.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

pub struct Inotify {
    fd: OwnedFd,
}

impl Inotify {
    pub fn new() -> io::Result<Inotify> {
        // SAFETY: no pointers; the returned fd is owned below.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Inotify { fd })
    }

    /// Watch the directory `dir` (not following a final symlink) for
    /// entries created or moved into it. Returns the watch descriptor.
    pub fn watch_dir(&self, dir: &Path) -> io::Result<i32> {
        self.add(dir, libc::IN_CREATE | libc::IN_MOVED_TO)
    }

    /// Watch the directory `dir` (not following a final symlink) for every
    /// change of its entries' names: created, moved in or out, removed, and
    /// the directory itself moved or removed. Opening, reading or writing a
    /// file raises no event: the command's own reads and in-place writes
    /// cost nothing.
    pub fn watch_names(&self, dir: &Path) -> io::Result<i32> {
        self.add(
            dir,
            libc::IN_CREATE
                | libc::IN_MOVED_TO
                | libc::IN_MOVED_FROM
                | libc::IN_DELETE
                | libc::IN_DELETE_SELF
                | libc::IN_MOVE_SELF,
        )
    }

    fn add(&self, dir: &Path, events: u32) -> io::Result<i32> {
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let mask = events | libc::IN_ONLYDIR | libc::IN_DONT_FOLLOW;
        // SAFETY: the fd is open and `c` a valid C string.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), mask) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(wd)
    }

    /// Wait up to `timeout_ms` for events; returns (watch, name) pairs
    /// (empty on timeout).
    pub fn wait(&self, timeout_ms: i32) -> io::Result<Vec<(i32, OsString)>> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(Vec::new())
            } else {
                Err(e)
            };
        }
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: `buf` is writable for its length.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break; // EAGAIN: drained
            }
            let n = n as usize;
            let head = std::mem::size_of::<libc::inotify_event>();
            let mut off = 0;
            while off + head <= n {
                // SAFETY: the kernel wrote a whole event header at `off`
                // (checked against `n`); read_unaligned copes with the
                // byte buffer's alignment.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf.as_ptr().add(off).cast()) };
                let name_start = off + head;
                let name_end = (name_start + ev.len as usize).min(n);
                let raw = &buf[name_start..name_end];
                let name = raw.split(|b| *b == 0).next().unwrap_or_default();
                out.push((ev.wd, OsString::from_vec(name.to_vec())));
                off = name_end;
            }
        }
        Ok(out)
    }
}
