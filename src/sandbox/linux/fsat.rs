//! Directory-relative file operations that never follow a symlink, for the
//! host-side checks of paths the command could have changed (see
//! `sandbox::guard`). Each wraps one syscall; callers get `io::Result`.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What a directory entry is, seen without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Missing,
    Dir,
    Symlink,
    Other,
}

fn c(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn openat2(
    dirfd: libc::c_int,
    path: &OsStr,
    flags: libc::c_int,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let p = c(path)?;
    // SAFETY: `open_how` is plain integers; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64;
    how.resolve = resolve | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: `p` is a valid C string, `how` a properly laid out
    // `struct open_how` whose size is passed alongside it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            p.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Open the directory at `path` (absolute), failing (ELOOP) if any
/// component is a symlink.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    openat2(libc::AT_FDCWD, path.as_os_str(), libc::O_DIRECTORY, 0)
}

/// Open `path` (absolute, any type) as O_PATH, failing (ELOOP) if any
/// component, the last included, is a symlink.
pub fn open_nofollow(path: &Path) -> io::Result<OwnedFd> {
    openat2(libc::AT_FDCWD, path.as_os_str(), 0, 0)
}

/// Open the subdirectory `name` of `dir` (one component, not a symlink).
pub fn open_child_dir(dir: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    openat2(
        dir.as_raw_fd(),
        name,
        libc::O_DIRECTORY,
        libc::RESOLVE_BENEATH,
    )
}

/// Open the entry `name` of `dir` (one component, any type unless
/// `directory`) as O_PATH, never following a symlink: a directory-relative
/// [`open_nofollow`], so opening every entry of a large directory does not
/// walk its whole path again each time.
pub fn open_child_nofollow(dir: &OwnedFd, name: &OsStr, directory: bool) -> io::Result<OwnedFd> {
    let flags = if directory { libc::O_DIRECTORY } else { 0 };
    openat2(dir.as_raw_fd(), name, flags, libc::RESOLVE_BENEATH)
}

/// The kind of the entry `name` in `dir`, and the later of its birth
/// time and its last status change (seconds since the epoch). Rename and
/// link keep the birth time but set the ctime, which no unprivileged
/// process can set back, so this says when the entry came to be *here*.
pub fn kind_at(dir: &OwnedFd, name: &OsStr) -> io::Result<(Kind, i64)> {
    let n = c(name)?;
    // SAFETY: `statx` is plain data; all-zero is valid before the call.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `dir` is open, `n` a valid C string, `st` writable storage
    // of the right type.
    let rc = unsafe {
        libc::statx(
            dir.as_raw_fd(),
            n.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_TYPE | libc::STATX_BTIME | libc::STATX_CTIME,
            &mut st,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOENT) {
            return Ok((Kind::Missing, 0));
        }
        return Err(e);
    }
    let kind = match u32::from(st.stx_mode) & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => Kind::Symlink,
        _ => Kind::Other,
    };
    let btime = if st.stx_mask & libc::STATX_BTIME != 0 {
        st.stx_btime.tv_sec
    } else {
        0
    };
    Ok((kind, btime.max(st.stx_ctime.tv_sec)))
}

/// Rename `from` to `to` inside `dir`, never replacing an existing `to`.
pub fn rename_noreplace(dir: &OwnedFd, from: &OsStr, to: &OsStr) -> io::Result<()> {
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: `dir` is open; both names are valid C strings.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            dir.as_raw_fd(),
            f.as_ptr(),
            dir.as_raw_fd(),
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
