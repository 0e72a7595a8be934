//! Seccomp user notification: the command's path-taking system calls are
//! paused and handed to zerobox (the supervisor, outside the sandbox),
//! which decides each one — let it proceed, or fail it with an errno —
//! for `--build-profile` (ask the user) and `learn` (record and proceed).
//!
//! How one run uses it:
//!
//! ```text
//! command process (after the main seccomp filter, before execve)
//!   ├ install a second filter: RET_USER_NOTIF on the calls in NOTIFIED,
//!   │   with SECCOMP_FILTER_FLAG_NEW_LISTENER → the listener fd
//!   ├ send the listener to zerobox over a socketpair (SCM_RIGHTS), close it
//!   └ execve  ← the first notification (see `serve`)
//! zerobox: a supervisor thread: poll, NOTIF_RECV, resolve the path, decide,
//!   NOTIF_SEND (errno, or SECCOMP_USER_NOTIF_FLAG_CONTINUE)
//! ```
//!
//! Filters stack and the kernel takes the strictest answer: what the main
//! filter refuses (mount, `ptrace`, …) never reaches the supervisor.
//!
//! **Not a security boundary on its own.** The path is read from the
//! command's memory while the call waits; another thread of the command
//! can rewrite it after the check and before the kernel reads it (the
//! TOCTOU limit of user notification, see docs/threat-model.md). The run's
//! boundary stays the mounts, Landlock and the main filter; notification
//! decides what is *asked* and *recorded*. A profile built this way is
//! enforced later by mounts and Landlock alone, with no notification.
//!
//! Reading the path: the string is read (`process_vm_readv`, the access
//! check of `/proc/TID/mem` without a descriptor to keep), then the
//! notification's id is checked (`SECCOMP_IOCTL_NOTIF_ID_VALID`: the task
//! is still the one that made the call, not a recycled pid; see
//! `read_string` for why once, after the read, is enough). The relative part is resolved against
//! `/proc/TID/cwd` or `/proc/TID/fd/N`, whose links read as paths of the
//! sandbox's own mount namespace.
//!
//! Hand-written rather than libseccomp: the filter is a dozen instructions
//! of the same kind as [`super::seccomp`]'s, and the supervisor's loop is
//! three ioctls; a C library dependency would be larger than both.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a call does to its path, as the prompt names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// open for reading, a directory listing (open of the directory).
    Read,
    /// execve / execveat.
    Exec,
    /// stat family, access, readlink: metadata only.
    Stat,
    /// open for writing or creating, mkdir, unlink, rename, link, symlink,
    /// chmod, truncate …
    Write,
}

/// One intercepted access.
#[derive(Debug, Clone)]
pub struct Access {
    pub op: Op,
    /// The path as the command's view resolves it, `..` and symlinks not
    /// yet resolved (the decider resolves it; see `profile`).
    pub path: PathBuf,
    /// The host pid (thread id) of the caller.
    pub pid: i32,
    /// The system call's name, for messages.
    pub syscall: &'static str,
}

/// The supervisor's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let the kernel carry the call out (its own checks still apply).
    Continue,
    /// The same, but ask again next time (the answer depends on more than
    /// the path, e.g. on the file not existing yet; or every access is
    /// counted).
    ContinueUncached,
    /// Fail the call with this errno.
    Deny(i32),
}

/// Who decides. Called from the supervisor thread, one access at a time
/// (the command's call waits meanwhile).
pub trait Decide: Send + Sync {
    fn decide(&self, access: &Access) -> Verdict;
    /// The command's program, exec'd by zerobox itself: recorded, never
    /// asked (it was named on the command line).
    fn first_exec(&self, _program: &Path) {}
}

/// Where a call keeps its path (x86_64 / aarch64 argument indexes).
#[derive(Debug, Clone, Copy)]
struct PathArg {
    /// The dirfd argument, or None for AT_FDCWD-only calls.
    dirfd: Option<usize>,
    path: usize,
    op: Op,
}

/// How a call is classified.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Paths with a fixed op.
    Paths(&'static [PathArg]),
    /// open-like: op from the flags argument.
    Open {
        dirfd: Option<usize>,
        path: usize,
        flags: usize,
    },
    /// openat2: op from `open_how.flags` in memory.
    Open2,
}

const fn p(dirfd: Option<usize>, path: usize, op: Op) -> PathArg {
    PathArg { dirfd, path, op }
}

/// The notified system calls: (number, name, kind). Reviewed as data.
const NOTIFIED: &[(i64, &str, Kind)] = &[
    #[cfg(target_arch = "x86_64")]
    (
        libc::SYS_open,
        "open",
        Kind::Open {
            dirfd: None,
            path: 0,
            flags: 1,
        },
    ),
    (
        libc::SYS_openat,
        "openat",
        Kind::Open {
            dirfd: Some(0),
            path: 1,
            flags: 2,
        },
    ),
    (libc::SYS_openat2, "openat2", Kind::Open2),
    #[cfg(target_arch = "x86_64")]
    (
        libc::SYS_creat,
        "creat",
        Kind::Paths(&[p(None, 0, Op::Write)]),
    ),
    (
        libc::SYS_execve,
        "execve",
        Kind::Paths(&[p(None, 0, Op::Exec)]),
    ),
    (
        libc::SYS_execveat,
        "execveat",
        Kind::Paths(&[p(Some(0), 1, Op::Exec)]),
    ),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_stat, "stat", Kind::Paths(&[p(None, 0, Op::Stat)])),
    #[cfg(target_arch = "x86_64")]
    (
        libc::SYS_lstat,
        "lstat",
        Kind::Paths(&[p(None, 0, Op::Stat)]),
    ),
    #[cfg(target_arch = "x86_64")]
    (
        libc::SYS_newfstatat,
        "newfstatat",
        Kind::Paths(&[p(Some(0), 1, Op::Stat)]),
    ),
    #[cfg(target_arch = "aarch64")]
    (
        libc::SYS_newfstatat,
        "newfstatat",
        Kind::Paths(&[p(Some(0), 1, Op::Stat)]),
    ),
    (
        libc::SYS_statx,
        "statx",
        Kind::Paths(&[p(Some(0), 1, Op::Stat)]),
    ),
    #[cfg(target_arch = "x86_64")]
    (
        libc::SYS_access,
        "access",
        Kind::Paths(&[p(None, 0, Op::Stat)]),
    ),
    (
        libc::SYS_faccessat,
        "faccessat",
        Kind::Paths(&[p(Some(0), 1, Op::Stat)]),
    ),
    (
        libc::SYS_faccessat2,
        "faccessat2",
        Kind::Paths(&[p(Some(0), 1, Op::Stat)]),
    ),
    #[cfg(target_arch = "x86_64")]
    (
        libc::SYS_readlink,
        "readlink",
        Kind::Paths(&[p(None, 0, Op::Stat)]),
    ),
    (
        libc::SYS_readlinkat,
        "readlinkat",
        Kind::Paths(&[p(Some(0), 1, Op::Stat)]),
    ),
    #[cfg(target_arch = "x86_64")]
    (
        libc::SYS_mkdir,
        "mkdir",
        Kind::Paths(&[p(None, 0, Op::Write)]),
    ),
    (
        libc::SYS_mkdirat,
        "mkdirat",
        Kind::Paths(&[p(Some(0), 1, Op::Write)]),
    ),
    #[cfg(target_arch = "x86_64")]
    (
        libc::SYS_rmdir,
        "rmdir",
        Kind::Paths(&[p(None, 0, Op::Write)]),
    ),
    #[cfg(target_arch = "x86_64")]
    (
        libc::SYS_unlink,
        "unlink",
        Kind::Paths(&[p(None, 0, Op::Write)]),
    ),
    (
        libc::SYS_unlinkat,
        "unlinkat",
        Kind::Paths(&[p(Some(0), 1, Op::Write)]),
    ),
    #[cfg(target_arch = "x86_64")]
    (
        libc::SYS_rename,
        "rename",
        Kind::Paths(&[p(None, 0, Op::Write), p(None, 1, Op::Write)]),
    ),
    #[cfg(target_arch = "x86_64")]
    (
        libc::SYS_renameat,
        "renameat",
        Kind::Paths(&[p(Some(0), 1, Op::Write), p(Some(2), 3, Op::Write)]),
    ),
    (
        libc::SYS_renameat2,
        "renameat2",
        Kind::Paths(&[p(Some(0), 1, Op::Write), p(Some(2), 3, Op::Write)]),
    ),
    #[cfg(target_arch = "x86_64")]
    (
        libc::SYS_link,
        "link",
        Kind::Paths(&[p(None, 0, Op::Read), p(None, 1, Op::Write)]),
    ),
    (
        libc::SYS_linkat,
        "linkat",
        Kind::Paths(&[p(Some(0), 1, Op::Read), p(Some(2), 3, Op::Write)]),
    ),
    #[cfg(target_arch = "x86_64")]
    (
        libc::SYS_symlink,
        "symlink",
        Kind::Paths(&[p(None, 1, Op::Write)]),
    ),
    (
        libc::SYS_symlinkat,
        "symlinkat",
        Kind::Paths(&[p(Some(1), 2, Op::Write)]),
    ),
    #[cfg(target_arch = "x86_64")]
    (
        libc::SYS_chmod,
        "chmod",
        Kind::Paths(&[p(None, 0, Op::Write)]),
    ),
    (
        libc::SYS_fchmodat,
        "fchmodat",
        Kind::Paths(&[p(Some(0), 1, Op::Write)]),
    ),
    (
        libc::SYS_truncate,
        "truncate",
        Kind::Paths(&[p(None, 0, Op::Write)]),
    ),
    #[cfg(target_arch = "x86_64")]
    (
        libc::SYS_mknod,
        "mknod",
        Kind::Paths(&[p(None, 0, Op::Write)]),
    ),
    (
        libc::SYS_mknodat,
        "mknodat",
        Kind::Paths(&[p(Some(0), 1, Op::Write)]),
    ),
    (
        libc::SYS_utimensat,
        "utimensat",
        Kind::Paths(&[p(Some(0), 1, Op::Write)]),
    ),
];

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// The notification filter: every call in [`NOTIFIED`] goes to the
/// supervisor; everything else is allowed (the main filter, installed
/// first, still refuses what it refuses: the strictest answer wins).
pub fn build_filter() -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const RET_ALLOW: u32 = 0x7fff_0000;
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut prog = vec![
        ins(LD_W_ABS, 0, 0, 4), // arch
        // Another architecture: the main filter kills it; nothing to ask.
        ins(JEQ_K, 1, 0, AUDIT_ARCH),
        ins(RET_K, 0, 0, RET_ALLOW),
        ins(LD_W_ABS, 0, 0, 0), // nr
    ];
    for (nr, _, _) in NOTIFIED {
        prog.push(ins(JEQ_K, 0, 1, *nr as u32));
        prog.push(ins(RET_K, 0, 0, libc::SECCOMP_RET_USER_NOTIF));
    }
    prog.push(ins(RET_K, 0, 0, RET_ALLOW));
    prog
}

/// Install the notification filter on the calling thread and return its
/// listener. `no_new_privs` must be set.
pub fn install() -> io::Result<OwnedFd> {
    let prog = build_filter();
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::Error::other("notify filter too long"))?,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `prog`, alive for the call; the kernel
    // copies the program and returns a new descriptor (close-on-exec).
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Is the notification `id` still pending (its task alive and waiting)?
fn id_valid(listener: &OwnedFd, id: u64) -> bool {
    let mut id = id;
    // SAFETY: NOTIF_ID_VALID reads one u64 through the pointer.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID as _,
            &mut id as *mut u64,
        )
    };
    rc == 0
}

/// Ask the kernel to wake the waiting task on the supervisor's CPU when
/// the answer is sent (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`, Linux 6.6):
/// the caller and the supervisor hand the CPU to each other like a
/// synchronous call instead of a wake-up of another CPU. Older kernels
/// refuse it (EINVAL): nothing changes but the speed.
fn sync_wake_up(listener: &OwnedFd) {
    const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: libc::c_ulong = 1;
    // SAFETY: NOTIF_SET_FLAGS takes the flags as the argument value; no
    // memory is passed.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS as _,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
        );
    }
}

fn respond(listener: &OwnedFd, id: u64, verdict: Verdict) {
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: 0,
        flags: 0,
    };
    match verdict {
        Verdict::Continue | Verdict::ContinueUncached => {
            resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
        }
        Verdict::Deny(e) => resp.error = -e,
    }
    // SAFETY: NOTIF_SEND reads a seccomp_notif_resp through the pointer.
    // A failure (ENOENT: the task died or was interrupted) needs nothing.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND as _,
            &mut resp as *mut libc::seccomp_notif_resp,
        );
    }
}

/// Wait for the next notification; `None` once no task uses the filter.
fn recv(listener: &OwnedFd) -> Option<libc::seccomp_notif> {
    loop {
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, valid for the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, -1) };
        if rc < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return None;
        }
        if pfd.revents & libc::POLLIN == 0 {
            // POLLHUP: every task of the filter is gone.
            return None;
        }
        // SAFETY: an all-zero seccomp_notif is a valid value (plain
        // integers); NOTIF_RECV requires it zeroed and fills it in.
        let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: NOTIF_RECV writes one seccomp_notif through the pointer.
        let rc = unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV as _,
                &mut n as *mut libc::seccomp_notif,
            )
        };
        if rc == 0 {
            return Some(n);
        }
        match io::Error::last_os_error().raw_os_error() {
            // The task was interrupted before we got it, or a signal.
            Some(libc::ENOENT) | Some(libc::EINTR) => continue,
            _ => return None,
        }
    }
}

/// Read `buf.len()` bytes (or fewer, up to an unmapped page) at `addr` in
/// task `pid`'s memory: one `process_vm_readv`, which checks ptrace access
/// against the task's current memory on every call (no descriptor kept
/// that could outlive an `execve`).
fn read_remote(pid: u32, addr: u64, buf: &mut [u8]) -> Option<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as usize as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, writable for its length; the remote
    // iovec is only an address in the other process (the kernel checks it).
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    (n > 0).then_some(n as usize)
}

/// Read a NUL-terminated string of at most PATH_MAX bytes at `addr` in the
/// task's memory, then check that notification `id` is still the call we
/// read for.
///
/// One check, after the read, is enough against a recycled pid: the id
/// stays valid only while the same task waits in the same call, and a
/// task that died cannot make it valid again. If `pid` was reused before
/// or during the read, the check after it fails and what was read is
/// dropped (the call is refused, fail closed). A check before the read
/// would only save reading a stranger's memory that is thrown away
/// anyway; zerobox may read it (ptrace access) and never shows it.
fn read_string(listener: &OwnedFd, id: u64, pid: u32, addr: u64) -> Option<Vec<u8>> {
    const PAGE: u64 = 4096;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    let mut at = addr;
    while out.len() < libc::PATH_MAX as usize {
        // Never across a page end in one read: the next page may be
        // unmapped while the string ends before it.
        let room = (PAGE - at % PAGE).min(buf.len() as u64) as usize;
        let n = read_remote(pid, at, &mut buf[..room])?;
        if let Some(i) = buf[..n].iter().position(|b| *b == 0) {
            out.extend_from_slice(&buf[..i]);
            return id_valid(listener, id).then_some(out);
        }
        out.extend_from_slice(&buf[..n]);
        at = at.checked_add(n as u64)?;
    }
    None // longer than PATH_MAX: the kernel would refuse it (ENAMETOOLONG)
}

/// Read `len` bytes at `addr` (the openat2 `open_how`); checked after the
/// read like [`read_string`].
fn read_bytes(listener: &OwnedFd, id: u64, pid: u32, addr: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        got += read_remote(pid, addr.checked_add(got as u64)?, &mut buf[got..])?;
    }
    id_valid(listener, id).then_some(buf)
}

/// The directory a relative path starts from, in the sandbox's view.
fn base_dir(pid: u32, dirfd: i64) -> Option<PathBuf> {
    let link = if dirfd as i32 == libc::AT_FDCWD {
        format!("/proc/{pid}/cwd")
    } else {
        format!("/proc/{pid}/fd/{}", dirfd as i32)
    };
    let target = std::fs::read_link(link).ok()?;
    // Only a real directory path (not `pipe:[…]`, not a deleted one).
    target.is_absolute().then_some(target)
}

/// The op of an open from its flags.
fn open_op(flags: u64) -> Op {
    let f = flags as i32;
    let writes = f & libc::O_ACCMODE != libc::O_RDONLY
        || f & (libc::O_CREAT | libc::O_TRUNC) != 0
        || f & libc::O_TMPFILE == libc::O_TMPFILE;
    if writes {
        Op::Write
    } else {
        Op::Read
    }
}

/// The accesses one notification makes; `Err(())` when its memory could
/// not be read (the caller refuses the call: fail closed).
fn accesses(listener: &OwnedFd, n: &libc::seccomp_notif) -> Result<Vec<Access>, ()> {
    let nr = i64::from(n.data.nr);
    let Some((_, name, kind)) = NOTIFIED.iter().find(|(x, _, _)| *x == nr) else {
        return Ok(Vec::new());
    };
    let args = n.data.args;
    let one = |dirfd: Option<usize>, path: usize, op: Op| -> Result<Option<Access>, ()> {
        let raw = read_string(listener, n.id, n.pid, args[path]).ok_or(())?;
        if raw.is_empty() {
            // AT_EMPTY_PATH (fstat via newfstatat, fexecve): the fd was
            // opened, and checked, before. Without the flag: ENOENT.
            return Ok(None);
        }
        let rel = PathBuf::from(OsString::from_vec(raw));
        let path = if rel.is_absolute() {
            rel
        } else {
            let dirfd = dirfd
                .map(|i| args[i] as i64)
                .unwrap_or(libc::AT_FDCWD as i64);
            base_dir(n.pid, dirfd).ok_or(())?.join(rel)
        };
        Ok(Some(Access {
            op,
            path,
            pid: n.pid as i32,
            syscall: name,
        }))
    };
    let mut out = Vec::new();
    match kind {
        Kind::Paths(list) => {
            for a in list.iter() {
                out.extend(one(a.dirfd, a.path, a.op)?);
            }
        }
        Kind::Open { dirfd, path, flags } => {
            out.extend(one(*dirfd, *path, open_op(args[*flags]))?);
        }
        Kind::Open2 => {
            let how = read_bytes(listener, n.id, n.pid, args[2], 8).ok_or(())?;
            let flags = u64::from_ne_bytes(how[..8].try_into().map_err(|_| ())?);
            out.extend(one(Some(0), 1, open_op(flags))?);
        }
    }
    Ok(out)
}

/// Most cached verdicts (then the cache starts over: a bound on memory
/// for a command that touches millions of paths).
const CACHE_MAX: usize = 200_000;

/// Serve notifications until no task is left. The first notification is
/// the command process's own `execve` of `program` (nothing else it runs
/// after installing the filter is notified): zerobox chose that program
/// and the process is not yet dumpable (its memory is zerobox's copy), so
/// it is let through without reading its memory. Every later call is
/// resolved and decided; one whose memory cannot be read is refused.
///
/// Decisions are cached per (op, path) by the decider; this loop keeps a
/// small cache of the verdicts too, so a repeated access costs one
/// memory read and one lookup.
pub fn serve(listener: OwnedFd, program: PathBuf, decide: Arc<dyn Decide>) {
    sync_wake_up(&listener);
    let Some(first) = recv(&listener) else {
        return;
    };
    if i64::from(first.data.nr) == libc::SYS_execve {
        decide.first_exec(&program);
        respond(&listener, first.id, Verdict::Continue);
    } else {
        respond(&listener, first.id, Verdict::Deny(libc::EACCES));
    }
    let mut cache: HashMap<(Op, PathBuf), Verdict> = HashMap::new();
    while let Some(n) = recv(&listener) {
        let verdict = match accesses(&listener, &n) {
            Err(()) => Verdict::Deny(libc::EACCES),
            Ok(list) => {
                let mut v = Verdict::Continue;
                for a in list {
                    let key = (a.op, a.path.clone());
                    let got = match cache.get(&key) {
                        Some(v) => *v,
                        None => {
                            let got = decide.decide(&a);
                            if got != Verdict::ContinueUncached {
                                if cache.len() >= CACHE_MAX {
                                    cache.clear();
                                }
                                cache.insert(key, got);
                            }
                            got
                        }
                    };
                    if !matches!(got, Verdict::Continue | Verdict::ContinueUncached) {
                        v = got;
                        break;
                    }
                }
                v
            }
        };
        respond(&listener, n.id, verdict);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_flags_classify_reads_and_writes() {
        assert_eq!(open_op(libc::O_RDONLY as u64), Op::Read);
        assert_eq!(
            open_op((libc::O_RDONLY | libc::O_DIRECTORY) as u64),
            Op::Read
        );
        assert_eq!(open_op(libc::O_WRONLY as u64), Op::Write);
        assert_eq!(open_op(libc::O_RDWR as u64), Op::Write);
        assert_eq!(open_op((libc::O_RDONLY | libc::O_CREAT) as u64), Op::Write);
        assert_eq!(open_op((libc::O_RDONLY | libc::O_TRUNC) as u64), Op::Write);
        assert_eq!(open_op((libc::O_TMPFILE | libc::O_RDWR) as u64), Op::Write);
    }

    #[test]
    fn filter_is_within_bpf_limits_and_ends_in_allow() {
        let f = build_filter();
        assert!(f.len() < 4096);
        assert_eq!(f.last().map(|i| i.k), Some(0x7fff_0000));
        assert_eq!(
            f.iter()
                .filter(|i| i.k == libc::SECCOMP_RET_USER_NOTIF)
                .count(),
            NOTIFIED.len()
        );
    }

    /// A thread with the filter: its reads of a path reach a decider in
    /// another thread, which refuses one file and lets another through.
    #[test]
    fn a_thread_under_the_filter_is_decided_by_the_supervisor() {
        struct DenySecret;
        impl Decide for DenySecret {
            fn decide(&self, a: &Access) -> Verdict {
                if a.path.ends_with("secret") {
                    Verdict::Deny(libc::EACCES)
                } else {
                    Verdict::Continue
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::fs::write(dir.path().join("ok"), "o").unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<OwnedFd>();
        let d = dir.path().to_path_buf();
        let worker = std::thread::spawn(move || {
            super::super::sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).unwrap();
            let l = install().unwrap();
            tx.send(l).unwrap();
            // The supervisor lets the first notification (normally the
            // command's execve) through without a look: use it up.
            let _ = std::fs::metadata("/");
            (
                std::fs::read_to_string(d.join("ok")).map_err(|e| e.raw_os_error()),
                std::fs::read_to_string(d.join("secret")).map_err(|e| e.raw_os_error()),
            )
        });
        let l = rx.recv().unwrap();
        std::thread::spawn(move || serve(l, PathBuf::from("/"), Arc::new(DenySecret)));
        let (ok, secret) = worker.join().unwrap();
        assert_eq!(ok, Ok("o".to_string()));
        assert_eq!(secret, Err(Some(libc::EACCES)));
    }
}
