//! Thin, checked wrappers over the raw system calls the sandbox needs.
//! Every `unsafe` block of the sandbox that is not seccomp or Landlock lives
//! here, each with its SAFETY note; callers get `io::Result`.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

pub fn cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// `clone(flags | SIGCHLD)` with fork semantics (child returns 0).
///
/// # Safety contract for callers
/// The process must be single-threaded (checked by the caller), so the child
/// may allocate and use the standard library freely.
pub fn clone_fork(flags: libc::c_int) -> io::Result<libc::pid_t> {
    // SAFETY: raw clone without CLONE_VM and with a NULL stack behaves like
    // fork(2): the child gets a copy-on-write copy of our address space and
    // continues on its own copy of the current stack. All pointer arguments
    // are NULL, which is valid for this flag set (no SETTID/CLEARTID/TLS).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    check(rc).map(|pid| pid as libc::pid_t)
}

pub fn fork() -> io::Result<libc::pid_t> {
    clone_fork(0)
}

pub fn mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = src.map(cstr).transpose()?;
    let target = cstr(target)?;
    let fstype = fstype.map(|s| CString::new(s).unwrap_or_default());
    let data = data.map(|s| CString::new(s).unwrap_or_default());
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either NULL or a NUL-terminated string that
    // lives until the call returns.
    let rc = unsafe { libc::mount(p(&src), target.as_ptr(), p(&fstype), flags, p(&data).cast()) };
    check(rc.into()).map(|_| ())
}

/// `fsopen(name, FSOPEN_CLOEXEC)`: a filesystem context to configure.
pub fn fsopen(name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid C string; the flags ask for nothing else.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), libc::FSOPEN_CLOEXEC) };
    owned(fd)
}

/// `fsconfig(fs, FSCONFIG_SET_STRING, key, value)`.
pub fn fsconfig_string(fs: &OwnedFd, key: &CStr, value: &CStr) -> io::Result<()> {
    // SAFETY: `fs` is open; `key` and `value` are valid C strings that
    // live until the call returns.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    };
    check(rc).map(|_| ())
}

/// `fsconfig(fs, FSCONFIG_SET_FLAG, key)`.
pub fn fsconfig_flag(fs: &OwnedFd, key: &CStr) -> io::Result<()> {
    // SAFETY: `fs` is open; `key` is a valid C string; a flag takes no
    // value (NULL, 0).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_SET_FLAG,
            key.as_ptr(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    check(rc).map(|_| ())
}

/// `fsconfig(fs, FSCONFIG_CMD_CREATE)`: make the superblock.
pub fn fsconfig_create(fs: &OwnedFd) -> io::Result<()> {
    // SAFETY: `fs` is open; the command takes no key or value.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    check(rc).map(|_| ())
}

/// `fsmount(fs, FSMOUNT_CLOEXEC, attrs)`: a detached mount of it.
pub fn fsmount(fs: &OwnedFd, attrs: u64) -> io::Result<OwnedFd> {
    // SAFETY: `fs` is an open, created filesystem context.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            attrs as libc::c_uint,
        )
    };
    owned(fd)
}

/// `open_tree(mnt, "", OPEN_TREE_CLONE | AT_EMPTY_PATH)`: a detached copy
/// of the mount `mnt` is the root of (not of its submounts).
pub fn open_tree_clone(mnt: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: `mnt` is open; the empty path with AT_EMPTY_PATH means `mnt`
    // itself.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as libc::c_uint,
        )
    };
    owned(fd)
}

/// `move_mount(tree, "", target, "", F_EMPTY_PATH | T_EMPTY_PATH)`: attach
/// the detached mount `tree` on the entry `target` was opened on (no path
/// lookup, nothing followed).
pub fn move_mount_onto(tree: &OwnedFd, target: &OwnedFd) -> io::Result<()> {
    // SAFETY: both descriptors are open; empty paths with the EMPTY_PATH
    // flags mean the descriptors themselves.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    check(rc).map(|_| ())
}

/// A syscall's new descriptor, or its error.
fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = check(fd)?;
    // SAFETY: a non-negative return of a descriptor-making syscall is a
    // fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// `struct mount_attr` from <linux/mount.h>.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// `mount_setattr(2)` on `path` (and every mount below it if `recursive`).
pub fn mount_setattr(path: &Path, recursive: bool, set: u64, clr: u64) -> io::Result<()> {
    let c = cstr(path)?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { AT_RECURSIVE } else { 0 } | libc::AT_NO_AUTOMOUNT as libc::c_uint;
    // SAFETY: `c` is a valid C string; `attr` is a properly laid out
    // `struct mount_attr` whose size is passed alongside it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(rc).map(|_| ())
}

/// `open(path, O_PATH | O_CLOEXEC)`: a handle on a path that survives later
/// mounts over it (used to bind host paths back into masked places).
pub fn open_path(path: &Path) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    // SAFETY: valid C string; the returned fd is owned by the OwnedFd.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    check(rc.into())?;
    // SAFETY: both descriptors are fresh and owned by us from here on.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: the prctl options used by the sandbox take integer arguments
    // only; unused arguments are 0.
    let rc = unsafe {
        libc::prctl(
            option,
            arg2,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    check(rc.into()).map(|r| r as libc::c_int)
}

pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare takes only an integer.
    check(unsafe { libc::unshare(flags) }.into()).map(|_| ())
}

pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length describe `name`'s bytes.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }.into()).map(|_| ())
}

/// Bring the loopback interface up in the current network namespace.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket creation; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor, owned from here.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo\0".iter().enumerate() {
        ifr.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills `ifr` (a valid ifreq) for interface "lo".
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) }.into())?;
    // SAFETY: the union member written by SIOCGIFFLAGS is ifru_flags.
    unsafe {
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: as above, SIOCSIFFLAGS reads the flags from `ifr`.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) }.into())?;
    Ok(())
}

/// Drop every capability: bounding set, ambient set, then effective,
/// permitted and inheritable; lock the securebits so root regains nothing on
/// exec.
pub fn drop_all_capabilities() -> io::Result<()> {
    // The bounding set first (needs CAP_SETPCAP, which we still hold in our
    // user namespace or as root). Unknown caps past the kernel's last end
    // the loop with EINVAL.
    //
    // An unprivileged process without a user namespace (the fallback) holds
    // no capability at all and may not change the bounding set or the
    // securebits (EPERM). Then there is nothing to drop: with no permitted
    // capabilities and no_new_privs (set next by the caller), execve cannot
    // grant any. That is checked, not assumed.
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
    )?;
    for cap in 0..64 {
        match prctl(libc::PR_CAPBSET_DROP, cap) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            Err(e) if e.raw_os_error() == Some(libc::EPERM) && permitted_caps()? == 0 => {
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    // Root must not get capabilities back on execve (SECBIT_NOROOT), and the
    // command must not undo this (the _LOCKED bits). EPERM here means we
    // lack CAP_SETPCAP; then the bounding set being empty still keeps exec
    // from granting anything.
    let bits = libc::SECBIT_NOROOT
        | libc::SECBIT_NOROOT_LOCKED
        | libc::SECBIT_NO_SETUID_FIXUP
        | libc::SECBIT_NO_SETUID_FIXUP_LOCKED
        | libc::SECBIT_KEEP_CAPS_LOCKED
        | libc::SECBIT_NO_CAP_AMBIENT_RAISE
        | libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    prctl(libc::PR_SET_SECUREBITS, bits as libc::c_ulong)?;
    let header = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: header and the two (all-zero) data words are laid out as the
    // kernel's __user_cap_header_struct and __user_cap_data_struct[2].
    check(unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) })?;
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// This thread's capability sets, as `capget` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    /// Bit N set when capability N is in the ambient set.
    pub ambient: u64,
}

/// Read back every capability set of this thread (capget, and the ambient
/// set through PR_CAP_AMBIENT_IS_SET).
pub fn capability_sets() -> io::Result<CapSets> {
    let mut header = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are laid out as the kernel's
    // __user_cap_header_struct and __user_cap_data_struct[2] (version 3).
    check(unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) })?;
    let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | (u64::from(f(&data[1])) << 32);
    let mut ambient = 0u64;
    for cap in 0..64 {
        // SAFETY: PR_CAP_AMBIENT_IS_SET takes integers only.
        let rc = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_IS_SET as libc::c_ulong,
                cap as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        match rc {
            1 => ambient |= 1 << cap,
            0 => {}
            // Past the kernel's last capability.
            _ if io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) => break,
            _ => return Err(io::Error::last_os_error()),
        }
    }
    Ok(CapSets {
        effective: join(|d| d.effective),
        permitted: join(|d| d.permitted),
        inheritable: join(|d| d.inheritable),
        ambient,
    })
}

/// Check instead of trusting: after [`drop_all_capabilities`], every set
/// must read back empty.
pub fn verify_no_capabilities() -> io::Result<()> {
    let sets = capability_sets()?;
    if sets.effective | sets.permitted | sets.inheritable | sets.ambient != 0 {
        return Err(io::Error::other(format!(
            "capabilities remain after dropping them: effective {:#x}, permitted {:#x}, inheritable {:#x}, ambient {:#x}",
            sets.effective, sets.permitted, sets.inheritable, sets.ambient
        )));
    }
    Ok(())
}

/// The permitted capability set of this thread (64 bits).
pub fn permitted_caps() -> io::Result<u64> {
    let mut header = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are laid out as the kernel's
    // __user_cap_header_struct and __user_cap_data_struct[2] (version 3).
    check(unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) })?;
    Ok(u64::from(data[0].permitted) | (u64::from(data[1].permitted) << 32))
}

/// Mark every descriptor from 3 up close-on-exec, so nothing zerobox or its
/// parent held leaks into the command.
pub fn cloexec_from_3() -> io::Result<()> {
    // SAFETY: close_range only changes descriptor flags.
    check(unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    })
    .map(|_| ())
}

pub fn execve(
    program: &CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> io::Error {
    // SAFETY: `argv` and `envp` are NULL-terminated arrays of pointers to
    // NUL-terminated strings owned by the caller and alive during the call.
    unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

pub fn write_all(fd: RawFd, buf: &[u8]) {
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: pointer/length describe the unwritten rest of `buf`.
        let n = unsafe { libc::write(fd, buf[off..].as_ptr().cast(), buf.len() - off) };
        if n <= 0 {
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        off += n as usize;
    }
}

pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and runs no atexit handlers or destructors
    // (which must not run twice in a forked child).
    unsafe { libc::_exit(code) }
}

pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes integers only.
    check(unsafe { libc::kill(pid, sig) }.into()).map(|_| ())
}

/// `waitpid`, retried on EINTR. Returns (pid, raw status).
pub fn waitpid(pid: libc::pid_t, flags: libc::c_int) -> io::Result<(libc::pid_t, libc::c_int)> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, flags) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok((rc, status));
    }
}

/// Translate a wait status into a shell-style exit code (128+N for signal N).
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// Block `sigs` in this thread and return the previous mask.
pub fn block_signals(sigs: &[libc::c_int]) -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        check(libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old).into())?;
        Ok(old)
    }
}

pub fn set_sigmask(mask: &libc::sigset_t) -> io::Result<()> {
    // SAFETY: `mask` is a valid, initialised sigset_t.
    check(unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) }.into())
        .map(|_| ())
}

extern "C" fn noop_handler(_: libc::c_int) {}

/// Install a no-op handler for `sig` (a PID 1 ignores signals whose action
/// is SIG_DFL, even blocked ones; a handler makes them queue for sigwait).
pub fn install_noop_handler(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: sigaction with a plain extern "C" handler that does nothing.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = noop_handler as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = libc::SA_RESTART;
        check(libc::sigaction(sig, &sa, std::ptr::null_mut()).into()).map(|_| ())
    }
}

/// Wait for one of the signals in `sigs` (which must be blocked).
pub fn sigwaitinfo(sigs: &[libc::c_int]) -> io::Result<libc::siginfo_t> {
    // SAFETY: sigset_t and siginfo_t are plain data filled by the kernel.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        let mut info: libc::siginfo_t = std::mem::zeroed();
        loop {
            let rc = libc::sigwaitinfo(&set, &mut info);
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            return Ok(info);
        }
    }
}

/// Have the kernel send `sig` to this process whenever `fd` (a pipe's
/// read end) becomes readable, and make reads from it non-blocking: a
/// process waiting in `sigwaitinfo` for `sig` then also wakes for data on
/// the pipe (`fcntl` `F_SETOWN`, `F_SETSIG`, `O_ASYNC`).
pub fn signal_when_readable(fd: RawFd, sig: libc::c_int) -> io::Result<()> {
    // <asm-generic/fcntl.h>; the libc crate does not export it.
    const F_SETSIG: libc::c_int = 10;
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    unsafe {
        check(libc::fcntl(fd, libc::F_SETOWN, libc::getpid()).into())?;
        check(libc::fcntl(fd, F_SETSIG, sig).into())?;
        let flags = check(libc::fcntl(fd, libc::F_GETFL).into())? as libc::c_int;
        check(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK | libc::O_ASYNC).into())?;
    }
    Ok(())
}

/// Exactly `buf.len()` bytes from the non-blocking `fd` if that many are
/// there now (a pipe write of up to `PIPE_BUF` bytes arrives whole);
/// `false` for nothing yet, end of file, a short read or an error.
pub fn read_now(fd: RawFd, buf: &mut [u8]) -> bool {
    loop {
        // SAFETY: pointer/length describe `buf`, which we own mutably.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return n == buf.len() as isize;
    }
}

/// The `si_code` of a received signal (SI_USER, SI_KERNEL, …).
pub fn si_code(info: &libc::siginfo_t) -> libc::c_int {
    info.si_code
}

/// True when `fd`'s other end has been closed (a `poll` with no wait).
pub fn peer_closed(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let rc = unsafe { libc::poll(&mut p, 1, 0) };
    rc > 0 && (p.revents & (libc::POLLHUP | libc::POLLERR)) != 0
}

/// Is this process the leader of its session (the terminal's
/// controlling process, which alone gets the kernel's SIGHUP on hang-up)?
pub fn is_session_leader() -> bool {
    // SAFETY: getsid(0) and getpid take no pointers and cannot fault.
    unsafe { libc::getsid(0) == libc::getpid() }
}

pub fn getuid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

pub fn getgid() -> u32 {
    // SAFETY: getgid cannot fail.
    unsafe { libc::getgid() }
}

pub fn landlock_abi() -> i32 {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with a NULL attr and size 0
    // only returns the ABI version (or an error); it creates nothing.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    if rc < 0 {
        0
    } else {
        rc as i32
    }
}

/// `struct landlock_path_beneath_attr` (packed in the uapi header).
#[repr(C, packed)]
struct LandlockPathBeneath {
    allowed_access: u64,
    parent_fd: i32,
}

/// `struct landlock_net_port_attr`.
#[repr(C)]
struct LandlockNetPort {
    allowed_access: u64,
    port: u64,
}

const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;
const LANDLOCK_RULE_NET_PORT: libc::c_int = 2;

/// Add a path-beneath rule to a ruleset. Hand-written instead of the
/// `landlock` crate's `add_rule`, which `fstat`s every descriptor to learn
/// its type: the walk knows it already (a directory is opened with
/// `O_DIRECTORY`, anything else gets file rights only), and a run may add
/// thousands of rules.
pub fn landlock_add_path_rule(
    ruleset: BorrowedFd<'_>,
    parent: BorrowedFd<'_>,
    access: u64,
) -> io::Result<()> {
    let attr = LandlockPathBeneath {
        allowed_access: access,
        parent_fd: parent.as_raw_fd(),
    };
    // SAFETY: both descriptors are open (borrowed for the call); `attr` is
    // a live, correctly laid out uapi struct the kernel only reads.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const LandlockPathBeneath,
            0u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Add a TCP port rule to a ruleset.
pub fn landlock_add_port_rule(ruleset: BorrowedFd<'_>, port: u16, access: u64) -> io::Result<()> {
    let attr = LandlockNetPort {
        allowed_access: access,
        port: u64::from(port),
    };
    // SAFETY: the descriptor is open; `attr` is a live uapi struct the
    // kernel only reads.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            LANDLOCK_RULE_NET_PORT,
            &attr as *const LandlockNetPort,
            0u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Enforce a ruleset on this thread (no_new_privs must be set).
pub fn landlock_restrict_self(ruleset: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: restricting takes an open ruleset descriptor and flags 0.
    let rc = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Current number of threads of this process (from /proc/self/stat field
/// 20). An unreadable or unparsable /proc is an error, never "one thread":
/// the caller forks only when it is sure.
pub fn thread_count() -> io::Result<usize> {
    parse_thread_count(&std::fs::read_to_string("/proc/self/stat")?)
}

pub fn parse_thread_count(stat: &str) -> io::Result<usize> {
    stat.rsplit_once(')')
        .and_then(|(_, after)| after.split_whitespace().nth(17)?.parse().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| io::Error::other("unexpected /proc/self/stat format"))
}

/// Close a raw descriptor whose owner will never drop it (a child that ends
/// with `_exit`).
pub fn close_raw(fd: RawFd) {
    // SAFETY: closing a descriptor number; the owning OwnedFd is never
    // dropped in this process (it only exits through `exit_now`).
    unsafe {
        libc::close(fd);
    }
}

/// A connected pair of unix datagram sockets (close-on-exec).
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    check(rc.into())?;
    // SAFETY: both descriptors are fresh and owned by us from here on.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A `msghdr` carrying one data byte (`iov`) and a control buffer (`cbuf`,
/// room for one cmsghdr with one int, 8-byte aligned) of `controllen` bytes.
fn fd_msghdr(iov: &mut libc::iovec, cbuf: &mut [u64; 4], controllen: usize) -> libc::msghdr {
    // SAFETY: msghdr is plain data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = controllen.min(std::mem::size_of_val(cbuf));
    msg
}

/// Send one descriptor over a unix socket (SCM_RIGHTS).
pub fn send_fd(sock: RawFd, fd: RawFd) -> io::Result<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = [0u64; 4];
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let msg = fd_msghdr(&mut iov, &mut cbuf, space);
    // SAFETY: `msg` points at `iov`/`byte` and `cbuf`, alive for this block;
    // CMSG_* stay within `cbuf` (its size is at least CMSG_SPACE(int)).
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd);
        check(libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) as libc::c_long)?;
    }
    Ok(())
}

/// Receive one descriptor sent with [`send_fd`]; EOF (the sender died
/// without sending) is an error.
pub fn recv_fd(sock: RawFd) -> io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = [0u64; 4];
    let mut msg = fd_msghdr(&mut iov, &mut cbuf, usize::MAX);
    // SAFETY: `msg` points at live buffers; the kernel fills at most
    // msg_controllen bytes of `cbuf`, and we only read a descriptor out of
    // a SCM_RIGHTS header.
    unsafe {
        let n = loop {
            let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break n;
        };
        check(n as libc::c_long)?;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if n == 0
            || cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "no descriptor received",
            ));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Raise a listening socket's accept backlog (std binds with 128, which
/// overflows under a burst of connections and costs clients a 1 s SYN
/// retry). Calling listen(2) again on a listening socket only changes it.
pub fn set_backlog(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: listen takes integers only.
    check(unsafe { libc::listen(fd, backlog) }.into()).map(|_| ())
}

/// Overwrite every occurrence of each of `values` in this process's
/// command line (the memory `/proc/PID/cmdline` shows) with `*`. Used for
/// `--secret NAME=VALUE`: the sandbox's PID 1 is forked from zerobox and
/// shares that text, and `/proc/1/cmdline` is readable inside.
pub fn scrub_cmdline(values: &[&[u8]]) {
    let Some((start, end)) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1.to_string();
            let fields: Vec<&str> = after.split_whitespace().collect();
            // Fields 48 and 49 (1-based, counting pid and comm) are
            // arg_start and arg_end; `after` starts at field 3.
            let start: usize = fields.get(45)?.parse().ok()?;
            let end: usize = fields.get(46)?.parse().ok()?;
            Some((start, end))
        })
    else {
        return;
    };
    if end <= start || end - start > (1 << 24) {
        return;
    }
    // SAFETY: the kernel reports [arg_start, arg_end) as the argument
    // strings of this process: initialised, writable memory of our own
    // stack mapping, never freed. Nothing holds a Rust reference into it
    // (std keeps only the raw argv pointers and copies on each `args()`),
    // and zerobox is single-threaded here (checked before any fork).
    let area = unsafe { std::slice::from_raw_parts_mut(start as *mut u8, end - start) };
    for value in values.iter().filter(|v| !v.is_empty()) {
        let mut i = 0;
        while i + value.len() <= area.len() {
            if &area[i..i + value.len()] == *value {
                area[i..i + value.len()].fill(b'*');
                i += value.len();
            } else {
                i += 1;
            }
        }
    }
}

/// What zerobox was started with, recorded before `main` (see
/// [`START_HOOK`]): the signals its caller had set to SIG_IGN (bit N for
/// signal N; bit 0 says the record was taken) and the soft and hard
/// `RLIMIT_NOFILE`.
static IGNORED_AT_START: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static NOFILE_AT_START: [std::sync::atomic::AtomicU64; 2] = [
    std::sync::atomic::AtomicU64::new(0),
    std::sync::atomic::AtomicU64::new(0),
];
/// Set once `NOFILE_AT_START` holds a value.
static NOFILE_RECORDED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs from `.init_array`, i.e. before Rust's runtime starts `main`, which
/// sets SIGPIPE to SIG_IGN: only here can zerobox still tell whether its
/// caller had ignored SIGPIPE (or any other signal, e.g. `nohup`'s SIGHUP),
/// so the command gets exactly the caller's dispositions back.
extern "C" fn record_start_state() {
    use std::sync::atomic::Ordering;
    let mut ignored = 1u64; // bit 0: recorded
    for sig in 1..64 {
        // SAFETY: querying a disposition into a zeroed sigaction; invalid
        // signal numbers fail with EINVAL and are skipped.
        let ign = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_IGN
        };
        if ign {
            ignored |= 1 << sig;
        }
    }
    IGNORED_AT_START.store(ignored, Ordering::SeqCst);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the rlimit we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        NOFILE_AT_START[0].store(lim.rlim_cur, Ordering::SeqCst);
        NOFILE_AT_START[1].store(lim.rlim_max, Ordering::SeqCst);
        NOFILE_RECORDED.store(true, Ordering::SeqCst);
    }
}

/// The hook glibc calls before `main` (ELF `.init_array`).
#[used]
#[link_section = ".init_array"]
static START_HOOK: extern "C" fn() = record_start_state;

/// The signals zerobox's caller had set to SIG_IGN, or an error if the
/// start state was not recorded (the hook did not run: fail closed).
pub fn ignored_at_start() -> io::Result<Vec<libc::c_int>> {
    // Naming the hook keeps the linker from dropping the object it is in.
    std::hint::black_box(&START_HOOK);
    let bits = IGNORED_AT_START.load(std::sync::atomic::Ordering::SeqCst);
    if bits & 1 == 0 {
        return Err(io::Error::other(
            "the signal dispositions zerobox was started with were not recorded (bug)",
        ));
    }
    Ok((1..64).filter(|s| bits & (1 << s) != 0).collect())
}

/// The `RLIMIT_NOFILE` zerobox was started with.
pub fn nofile_at_start() -> io::Result<libc::rlimit> {
    use std::sync::atomic::Ordering;
    std::hint::black_box(&START_HOOK);
    if !NOFILE_RECORDED.load(Ordering::SeqCst) {
        return Err(io::Error::other(
            "the open-file limit zerobox was started with was not recorded (bug)",
        ));
    }
    Ok(libc::rlimit {
        rlim_cur: NOFILE_AT_START[0].load(Ordering::SeqCst),
        rlim_max: NOFILE_AT_START[1].load(Ordering::SeqCst),
    })
}

pub fn getrlimit(resource: libc::__rlimit_resource_t) -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the rlimit we own.
    check(unsafe { libc::getrlimit(resource, &mut lim) }.into())?;
    Ok(lim)
}

pub fn setrlimit(resource: libc::__rlimit_resource_t, lim: &libc::rlimit) -> io::Result<()> {
    // SAFETY: setrlimit reads the rlimit we pass.
    check(unsafe { libc::setrlimit(resource, lim) }.into()).map(|_| ())
}

/// Raise this process's soft `RLIMIT_NOFILE` to its hard limit (the proxy
/// holds two descriptors per connection; the common soft limit of 1024
/// would cap it near 500 connections). Children get the start value back
/// from [`nofile_at_start`].
pub fn raise_nofile() -> io::Result<()> {
    let mut lim = getrlimit(libc::RLIMIT_NOFILE)?;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        setrlimit(libc::RLIMIT_NOFILE, &lim)?;
    }
    Ok(())
}

/// Every signal number whose disposition a process can set: 1..=31 except
/// SIGKILL and SIGSTOP, and SIGRTMIN..=SIGRTMAX (glibc keeps 32 and 33 for
/// itself and refuses them; nothing can have set them to SIG_IGN).
pub fn settable_signals() -> impl Iterator<Item = libc::c_int> {
    (1..32)
        .filter(|s| *s != libc::SIGKILL && *s != libc::SIGSTOP)
        .chain(libc::SIGRTMIN()..=libc::SIGRTMAX())
}

/// Set `sig` to SIG_IGN (`ignore`) or SIG_DFL, checked.
pub fn set_disposition(sig: libc::c_int, ignore: bool) -> io::Result<()> {
    // SAFETY: a zeroed sigaction with SIG_IGN/SIG_DFL and an empty mask is
    // a valid action; the old action is not asked for.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = if ignore { libc::SIG_IGN } else { libc::SIG_DFL };
        libc::sigemptyset(&mut sa.sa_mask);
        check(libc::sigaction(sig, &sa, std::ptr::null_mut()).into()).map(|_| ())
    }
}

/// Is this process a child subreaper (PR_GET_CHILD_SUBREAPER)?
pub fn is_child_subreaper() -> io::Result<bool> {
    let mut v: libc::c_int = 0;
    // SAFETY: PR_GET_CHILD_SUBREAPER writes one int through the pointer,
    // which points at `v`.
    check(unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut v as *mut libc::c_int) }.into())?;
    Ok(v != 0)
}

pub fn getpid() -> libc::pid_t {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

pub fn getppid() -> libc::pid_t {
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() }
}

/// May the real user write `path` (access(2) with W_OK)?
pub fn access_writable(path: &Path) -> bool {
    let Ok(c) = cstr(path) else { return false };
    // SAFETY: valid C string; access only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// Make every address of `prefix/len` local on `lo` in the current network
/// namespace (`ip route add local PREFIX/LEN dev lo`, table local; IPv4 or
/// IPv6), so sockets bound to the wildcard address accept connections to
/// any of them. Used for transparent egress: the synthetic addresses the
/// DNS responder hands out (see `proxy::capture`). One rtnetlink request,
/// built by hand: it is a fixed message (44 bytes for IPv4, 56 for IPv6),
/// and the kernel's ack is checked. IPv6 disabled on `lo` (the
/// `disable_ipv6` sysctl) answers EACCES; no IPv6 in the kernel,
/// EAFNOSUPPORT.
pub fn route_add_local(prefix: std::net::IpAddr, len: u8) -> io::Result<()> {
    const RTM_NEWROUTE: u16 = 24;
    const RT_TABLE_LOCAL: u8 = 255;
    const RTPROT_BOOT: u8 = 3;
    const RT_SCOPE_HOST: u8 = 254;
    const RTN_LOCAL: u8 = 2;
    const RTA_DST: u16 = 1;
    const RTA_OIF: u16 = 4;
    let (family, addr): (u8, Vec<u8>) = match prefix {
        std::net::IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
        std::net::IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
    };
    let lo = CString::new("lo").unwrap_or_default();
    // SAFETY: `lo` is a NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(lo.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::last_os_error());
    }
    // nlmsghdr (16) + rtmsg (12) + RTA_DST (4 + address) + RTA_OIF (8).
    let total = 16 + 12 + 4 + addr.len() + 8;
    let mut msg: Vec<u8> = Vec::with_capacity(total);
    let flags =
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    msg.extend_from_slice(&(total as u32).to_ne_bytes()); // nlmsg_len
    msg.extend_from_slice(&RTM_NEWROUTE.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
                                                // struct rtmsg
    msg.extend_from_slice(&[
        family,
        len,
        0,
        0,
        RT_TABLE_LOCAL,
        RTPROT_BOOT,
        RT_SCOPE_HOST,
        RTN_LOCAL,
    ]);
    msg.extend_from_slice(&0u32.to_ne_bytes()); // rtm_flags
    msg.extend_from_slice(&(4 + addr.len() as u16).to_ne_bytes());
    msg.extend_from_slice(&RTA_DST.to_ne_bytes());
    msg.extend_from_slice(&addr);
    msg.extend_from_slice(&8u16.to_ne_bytes());
    msg.extend_from_slice(&RTA_OIF.to_ne_bytes());
    msg.extend_from_slice(&ifindex.to_ne_bytes());
    debug_assert_eq!(msg.len(), total);
    rtnetlink_request(&msg)
}

/// Add `addr` as a host address (/32, /128) on `lo`: `ip addr add ADDR
/// dev lo`. Transparent egress gives the namespace one address in each
/// synthetic range so that the C library's `AI_ADDRCONFIG` (which ignores
/// loopback addresses) sees the family configured: without it,
/// `getaddrinfo(AF_INET or AF_INET6, AI_ADDRCONFIG)` (`getent ahostsv4`,
/// `ahostsv6`) refuses every name before asking DNS. IPv6: no duplicate
/// address detection (IFA_F_NODAD), the address is usable at once.
pub fn addr_add_lo(addr: std::net::IpAddr) -> io::Result<()> {
    const RTM_NEWADDR: u16 = 20;
    const IFA_ADDRESS: u16 = 1;
    const IFA_LOCAL: u16 = 2;
    const IFA_F_NODAD: u8 = 0x02;
    let (family, bytes, prefix, flags, attrs): (u8, Vec<u8>, u8, u8, &[u16]) = match addr {
        std::net::IpAddr::V4(a) => (
            libc::AF_INET as u8,
            a.octets().to_vec(),
            32,
            0,
            &[IFA_LOCAL, IFA_ADDRESS],
        ),
        std::net::IpAddr::V6(a) => (
            libc::AF_INET6 as u8,
            a.octets().to_vec(),
            128,
            IFA_F_NODAD,
            &[IFA_ADDRESS],
        ),
    };
    let lo = CString::new("lo").unwrap_or_default();
    // SAFETY: `lo` is a NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(lo.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::last_os_error());
    }
    // nlmsghdr (16) + ifaddrmsg (8) + each attribute (4 + address).
    let total = 16 + 8 + attrs.len() * (4 + bytes.len());
    let nl_flags =
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    let mut msg: Vec<u8> = Vec::with_capacity(total);
    msg.extend_from_slice(&(total as u32).to_ne_bytes());
    msg.extend_from_slice(&RTM_NEWADDR.to_ne_bytes());
    msg.extend_from_slice(&nl_flags.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
                                                // struct ifaddrmsg: family, prefix length, flags, scope (universe), index.
    msg.extend_from_slice(&[family, prefix, flags, 0]);
    msg.extend_from_slice(&ifindex.to_ne_bytes());
    for ty in attrs {
        msg.extend_from_slice(&(4 + bytes.len() as u16).to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&bytes);
    }
    debug_assert_eq!(msg.len(), total);
    rtnetlink_request(&msg)
}

/// Send one rtnetlink request (with NLM_F_ACK) and check the kernel's ack.
fn rtnetlink_request(msg: &[u8]) -> io::Result<()> {
    const NLMSG_ERROR: u16 = 2;
    // SAFETY: plain socket creation; the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor, owned from here.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fd: AF_NETLINK with no address sends to the kernel; pointer and length describe `msg`.
    let n = unsafe { libc::send(sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 256];
    // SAFETY: pointer and length describe `buf`.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = &buf[..n as usize];
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "unexpected rtnetlink answer");
    let ty = got.get(4..6).ok_or_else(bad)?;
    if u16::from_ne_bytes([ty[0], ty[1]]) != NLMSG_ERROR {
        return Err(bad());
    }
    let e = got.get(16..20).ok_or_else(bad)?;
    match i32::from_ne_bytes([e[0], e[1], e[2], e[3]]) {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(-e)),
    }
}

/// A TCP listener on `[::]:port` that also accepts IPv4 (IPV6_V6ONLY off,
/// whatever `net.ipv6.bindv6only` says): one listener per captured port
/// serves both synthetic ranges. IPv4 peers show as `::ffff:a.b.c.d`.
pub fn listen_dual_stack(port: u16, backlog: i32) -> io::Result<std::net::TcpListener> {
    // SAFETY: plain socket creation; the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            libc::IPPROTO_TCP,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor, owned from here.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let off: libc::c_int = 0;
    let on: libc::c_int = 1;
    for (opt_level, opt, val) in [
        (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &off),
        (libc::SOL_SOCKET, libc::SO_REUSEADDR, &on),
    ] {
        // SAFETY: the pointer and length describe a c_int that outlives the call.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                opt_level,
                opt,
                (val as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        check(rc.into())?;
    }
    // SAFETY: an all-zero sockaddr_in6 is valid (the unspecified address).
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_port = port.to_be();
    // SAFETY: the pointer and length describe `sa`.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&sa as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    check(rc.into())?;
    set_backlog(sock.as_raw_fd(), backlog)?;
    Ok(std::net::TcpListener::from(sock))
}
