//! Linux enforcement: namespaces, mounts, Landlock, seccomp, capabilities,
//! and a tiny PID 1. All `unsafe` code of zerobox lives under this module.
//!
//! One run, in order (each step says why it sits where it does):
//!
//! ```text
//! zerobox (single-threaded here)
//!  └ clone(NEWUSER|NEWNS|NEWNET|NEWPID|NEWIPC|NEWUTS)  → PID 1 of the sandbox
//!     ├ PDEATHSIG, uid/gid maps          (own user namespace: full caps inside it only)
//!     ├ mounts: private, host read-only, /tmp, /dev, /proc, masks, binds
//!     ├ hostname, lo up
//!     └ fork → the command process
//!          ├ close-on-exec every fd ≥ 3, chdir
//!          ├ Landlock                    (paths opened after the mounts)
//!          ├ drop all capabilities, no_new_privs
//!          ├ seccomp                     (last: it forbids what the steps above use)
//!          ├ verify: unshare(NEWUSER) and mount must now fail
//!          └ execve
//! ```
//!
//! Without user namespaces the command is forked directly and gets Landlock
//! and seccomp only (the fallback; `--strict` refuses it).
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod landlock;
pub mod mounts;
pub mod seccomp;
pub mod sys;

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::{Mode, SandboxError, Spec, Stage};
use crate::policy::Policy;

/// Everything the child needs, prepared before the fork so the child only
/// executes (and reports failures through the status pipe).
pub struct Prepared {
    pub mode: Mode,
    pub policy: Policy,
    pub steps: Vec<mounts::Step>,
    pub landlock: Option<landlock::Request>,
    pub seccomp: Vec<libc::sock_filter>,
    pub program: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub cwd: PathBuf,
    pub debug: bool,
    /// Namespace mode with network: PID 1 binds the proxy's listener on
    /// 127.0.0.1:PORT inside the sandbox's network namespace and hands the
    /// descriptor to zerobox (SCM_RIGHTS), which serves it from the host.
    pub proxy_port: Option<u16>,
    /// `--share-net`: keep the host's network namespace.
    pub share_net: bool,
    /// Files PID 1 writes into the private /tmp before the command starts
    /// (name relative to /tmp, content), e.g. the proxy's CA bundle.
    pub tmp_files: Vec<(String, Vec<u8>)>,
    /// zerobox's signal mask before it blocked the relayed signals; the
    /// command gets it back.
    pub sigmask: libc::sigset_t,
    /// Relayed signals that zerobox's caller had set to SIG_IGN (nohup);
    /// the command gets them ignored again.
    pub ignored: Vec<libc::c_int>,
}

/// A started sandbox: the pid zerobox waits for (PID 1 of the sandbox, or
/// the command itself in fallback mode).
pub struct Started {
    pub pid: libc::pid_t,
    /// The proxy's listener from inside the network namespace, if asked for.
    pub listener: Option<std::net::TcpListener>,
    /// Held open while zerobox lives; PID 1 exits when it sees it closed.
    pub _alive: OwnedFd,
}

/// Build the argv/env C strings for `spec`.
pub fn c_strings(spec: &Spec) -> Result<(CString, Vec<CString>, Vec<CString>), SandboxError> {
    let bad = |what: &str| SandboxError::new(Stage::Input, format!("{what} contains a NUL byte"));
    let program =
        CString::new(spec.program.as_os_str().as_bytes()).map_err(|_| bad("program path"))?;
    let mut argv = Vec::new();
    for a in &spec.argv {
        argv.push(CString::new(a.as_bytes()).map_err(|_| bad("an argument"))?);
    }
    let mut envp = Vec::new();
    for (k, v) in &spec.env {
        envp.push(CString::new(format!("{k}={v}")).map_err(|_| bad("an environment value"))?);
    }
    Ok((program, argv, envp))
}

const NS_FLAGS: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS;

/// Start the sandbox. Returns once the command has been exec'd (or the
/// setup failed: the error says which stage, so the caller may fall back).
pub fn start(prep: &Prepared) -> Result<Started, SandboxError> {
    if sys::thread_count() != 1 {
        // fork() in a threaded process could copy a held lock into the
        // child; the launcher spawns before starting any thread.
        return Err(SandboxError::new(
            Stage::Internal,
            "zerobox must spawn the sandbox before starting threads (bug)",
        ));
    }
    let (status_r, status_w) = sys::pipe_cloexec()
        .map_err(|e| SandboxError::new(Stage::Internal, format!("pipe: {e}")))?;
    let (alive_r, alive_w) = sys::pipe_cloexec()
        .map_err(|e| SandboxError::new(Stage::Internal, format!("pipe: {e}")))?;
    let (fd_parent, fd_child) = sys::socketpair()
        .map_err(|e| SandboxError::new(Stage::Internal, format!("socketpair: {e}")))?;
    let uid = sys::getuid();
    let gid = sys::getgid();
    let flags = match prep.mode {
        Mode::Namespaces if prep.share_net => NS_FLAGS & !libc::CLONE_NEWNET,
        Mode::Namespaces => NS_FLAGS,
        Mode::LandlockOnly => 0,
    };
    let pid = sys::clone_fork(flags).map_err(|e| {
        SandboxError::new(Stage::Namespaces, format!("clone with new namespaces: {e}"))
    })?;
    if pid == 0 {
        // Child. Never returns: exec or _exit.
        drop(status_r);
        drop(alive_w);
        drop(fd_parent);
        let code = match prep.mode {
            Mode::Namespaces => init_main(prep, uid, gid, &status_w, &alive_r, fd_child),
            Mode::LandlockOnly => {
                let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                if sys::peer_closed(alive_r.as_raw_fd()) {
                    sys::exit_now(1);
                }
                command_main(prep, &status_w)
            }
        };
        sys::exit_now(code);
    }
    drop(status_w);
    drop(alive_r);
    drop(fd_child);
    // The listener comes first (PID 1 sends it before starting the
    // command); EOF instead means PID 1 failed, and the status pipe says why.
    let listener = match prep.proxy_port {
        Some(_) if prep.mode == Mode::Namespaces => sys::recv_fd(fd_parent.as_raw_fd())
            .ok()
            .map(std::net::TcpListener::from),
        _ => None,
    };
    drop(fd_parent);
    // Wait for the status pipe: EOF = exec succeeded; data = a failure.
    let mut buf = Vec::new();
    let mut file = std::fs::File::from(status_r);
    let _ = file.read_to_end(&mut buf);
    if !buf.is_empty() {
        let _ = sys::waitpid(pid, 0);
        return Err(decode_failure(&buf));
    }
    if prep.proxy_port.is_some() && prep.mode == Mode::Namespaces && listener.is_none() {
        let _ = sys::kill(pid, libc::SIGKILL);
        let _ = sys::waitpid(pid, 0);
        return Err(SandboxError::new(
            Stage::Internal,
            "the sandbox did not hand over the proxy listener",
        ));
    }
    Ok(Started {
        pid,
        listener,
        _alive: alive_w,
    })
}

/// A failure report from the child: one stage byte, errno (4 bytes LE), text.
fn report(fd: &OwnedFd, stage: Stage, errno: i32, msg: &str) {
    let mut buf = vec![stage as u8];
    buf.extend_from_slice(&errno.to_le_bytes());
    buf.extend_from_slice(msg.as_bytes());
    buf.truncate(4000); // one atomic pipe write
    sys::write_all(fd.as_raw_fd(), &buf);
}

fn decode_failure(buf: &[u8]) -> SandboxError {
    let stage = Stage::from_u8(buf[0]);
    let errno = buf
        .get(1..5)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0);
    let msg = String::from_utf8_lossy(buf.get(5..).unwrap_or_default()).into_owned();
    let mut e = SandboxError::new(stage, msg);
    e.errno = errno;
    e
}

/// PID 1 of the sandbox. Sets up the namespaces' view, starts the command,
/// forwards signals to it, reaps everything, exits with its status.
fn init_main(
    prep: &Prepared,
    uid: u32,
    gid: u32,
    status: &OwnedFd,
    alive: &OwnedFd,
    fd_channel: OwnedFd,
) -> i32 {
    // If zerobox dies, so do we (and with PID 1 the whole pid namespace).
    // The pipe check closes the race with a death before the prctl.
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
    if sys::peer_closed(alive.as_raw_fd()) {
        return 1;
    }
    let fail = |stage: Stage, what: &str, e: &dyn std::fmt::Display, errno: i32| -> i32 {
        report(status, stage, errno, &format!("{what}: {e}"));
        super::EXIT_SETUP
    };
    // Map our own uid/gid only: no other id exists in here. setgroups is
    // denied first (required to write gid_map unprivileged; also stops
    // dropping supplementary groups to bypass group-deny permissions).
    // zerobox is non-dumpable (see `make_undumpable`), which makes our
    // /proc/self files root-owned: an unprivileged user could not write its
    // own maps. Dumpable only while writing them; nothing of the command
    // exists yet, and the command could not ptrace us anyway (we hold
    // capabilities it lacks, and Landlock forbids it).
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 1);
    let maps = [
        ("/proc/self/setgroups", "deny".to_string()),
        ("/proc/self/uid_map", format!("{uid} {uid} 1")),
        ("/proc/self/gid_map", format!("{gid} {gid} 1")),
    ];
    for (file, content) in maps {
        if let Err(e) = std::fs::write(file, content) {
            return fail(
                Stage::Namespaces,
                &format!("write {file}"),
                &e,
                e.raw_os_error().unwrap_or(0),
            );
        }
    }
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0);
    let t0 = std::time::Instant::now();
    if let Err(e) = mounts::apply(&prep.steps) {
        let errno = e.err.raw_os_error().unwrap_or(0);
        return fail(Stage::Namespaces, "mounts", &e, errno);
    }
    if prep.debug {
        crate::errln!(
            "zerobox: debug: {:>8.3} ms  mounts done ({} policy steps)",
            t0.elapsed().as_secs_f64() * 1e3,
            prep.steps.len()
        );
    }
    let _ = sys::sethostname("zerobox");
    if prep.share_net {
        // host network: nothing to bring up
    } else if let Err(e) = sys::loopback_up() {
        return fail(
            Stage::Namespaces,
            "bring up lo",
            &e,
            e.raw_os_error().unwrap_or(0),
        );
    }

    for (name, content) in &prep.tmp_files {
        let path = std::path::Path::new("/tmp").join(name);
        if let Err(e) = super::write_tmp_file(&path, content) {
            return fail(Stage::Internal, &format!("write {}", path.display()), &e, 0);
        }
    }
    // The proxy's listening socket lives in our network namespace, where
    // only lo exists; zerobox accepts on it from the host side. Nothing
    // else in here can reach out: no relay, no second hop.
    if let Some(port) = prep.proxy_port {
        let listener = match std::net::TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => l,
            Err(e) => {
                return fail(
                    Stage::Internal,
                    &format!("bind the proxy listener on 127.0.0.1:{port}"),
                    &e,
                    0,
                )
            }
        };
        let _ = sys::set_backlog(listener.as_raw_fd(), 4096);
        if let Err(e) = sys::send_fd(fd_channel.as_raw_fd(), listener.as_raw_fd()) {
            return fail(Stage::Internal, "hand the proxy listener to zerobox", &e, 0);
        }
    }
    drop(fd_channel);

    // Signals: block the ones we forward before forking, so none is lost
    // between fork and the wait loop; the command restores the mask.
    let forwarded = super::FORWARDED_SIGNALS;
    let mut waited: Vec<libc::c_int> = forwarded.to_vec();
    waited.push(libc::SIGCHLD);
    for s in &waited {
        let _ = sys::install_noop_handler(*s);
    }
    if let Err(e) = sys::block_signals(&waited) {
        return fail(Stage::Internal, "block signals", &e, 0);
    }
    let child = match sys::fork() {
        Ok(p) => p,
        Err(e) => return fail(Stage::Internal, "fork the command", &e, 0),
    };
    if child == 0 {
        sys::exit_now(command_main(prep, status));
    }
    // From here on PID 1 only reaps and forwards. Our copy of the status
    // pipe must go, or zerobox would never see the command's exec (EOF).
    sys::close_raw(status.as_raw_fd());
    loop {
        let info = match sys::sigwaitinfo(&waited) {
            Ok(i) => i,
            Err(_) => continue,
        };
        let sig = info.si_signo;
        if sig == libc::SIGCHLD {
            // Reap everything; when the command itself is gone, we are done
            // (PID 1 exiting kills whatever it left behind).
            loop {
                match sys::waitpid(-1, libc::WNOHANG) {
                    Ok((0, _)) | Err(_) => break,
                    Ok((pid, st)) if pid == child => return sys::exit_code(st),
                    Ok(_) => continue,
                }
            }
            continue;
        }
        // Signals from the terminal (SI_KERNEL) already reached the
        // command's process group; forward only those sent by a process
        // (zerobox relays kill(1)s aimed at it).
        if sys::si_code(&info) != libc::SI_KERNEL {
            let _ = sys::kill(child, sig);
        }
    }
}

/// The command process: harden, then exec. Returns an exit code only on
/// failure (after reporting it on the status pipe).
fn command_main(prep: &Prepared, status: &OwnedFd) -> i32 {
    let t0 = std::time::Instant::now();
    let step = |what: &str| {
        if prep.debug {
            crate::errln!(
                "zerobox: debug: {:>8.3} ms  {what}",
                t0.elapsed().as_secs_f64() * 1e3
            );
        }
    };
    let fail = |stage: Stage, what: &str, e: &dyn std::fmt::Display| -> i32 {
        report(status, stage, 0, &format!("{what}: {e}"));
        super::EXIT_SETUP
    };
    // Nothing but stdio crosses into the command (the status pipe is
    // close-on-exec already).
    if let Err(e) = sys::cloexec_from_3() {
        return fail(Stage::Internal, "close inherited descriptors", &e);
    }
    if let Err(e) = std::env::set_current_dir(&prep.cwd) {
        return fail(
            Stage::Input,
            &format!("cannot enter the working directory {}", prep.cwd.display()),
            &e,
        );
    }
    if let Some(req) = &prep.landlock {
        if let Err(e) = landlock::enforce(&prep.policy, req) {
            return fail(Stage::Landlock, "landlock", &e);
        }
        step("landlock enforced");
    }
    if let Err(e) = sys::drop_all_capabilities() {
        return fail(Stage::Capabilities, "drop capabilities", &e);
    }
    if let Err(e) = sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1) {
        return fail(Stage::Capabilities, "no_new_privs", &e);
    }
    if let Err(e) = seccomp::install(&prep.seccomp) {
        return fail(Stage::Seccomp, "seccomp", &e);
    }
    step("capabilities dropped, seccomp installed");
    // Check instead of trusting: the forbidden calls must now fail.
    if sys::unshare(libc::CLONE_NEWUSER).is_ok() {
        return fail(
            Stage::Seccomp,
            "self-check",
            &"creating a user namespace still works",
        );
    }
    if sys::mount(
        None,
        std::path::Path::new("/"),
        None,
        libc::MS_REMOUNT | libc::MS_BIND,
        None,
    )
    .is_ok()
    {
        return fail(Stage::Seccomp, "self-check", &"mount still works");
    }
    // The command starts with the signal state zerobox was started with.
    let mut relayed: Vec<libc::c_int> = super::FORWARDED_SIGNALS.to_vec();
    relayed.push(libc::SIGCHLD);
    for s in relayed {
        if prep.ignored.contains(&s) {
            sys::ignore_signal(s);
        } else {
            sys::reset_signal(s);
        }
    }
    if let Err(e) = sys::set_sigmask(&prep.sigmask) {
        return fail(Stage::Internal, "restore the signal mask", &e);
    }
    let argv: Vec<*const libc::c_char> = prep
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = prep
        .envp
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let err = sys::execve(&prep.program, &argv, &envp);
    let errno = err.raw_os_error().unwrap_or(0);
    report(status, Stage::Exec, errno, &err.to_string());
    if errno == libc::ENOENT {
        super::EXIT_NOT_FOUND
    } else {
        super::EXIT_NOT_EXECUTABLE
    }
}

/// Can this process create the namespaces a run needs, and mount in them?
/// (Ubuntu's AppArmor restriction lets `unshare` succeed but forbids the
/// mounts, so the probe mounts a tmpfs.)
pub fn probe_namespaces() -> Result<(), String> {
    probe_flags(NS_FLAGS)
}

/// One namespace kind each (user always, since the others need it when
/// unprivileged): `(name, result)`, for `doctor`.
pub fn probe_each_namespace() -> Vec<(&'static str, Result<(), String>)> {
    [
        ("user", 0),
        ("mount", libc::CLONE_NEWNS),
        ("network", libc::CLONE_NEWNET),
        ("pid", libc::CLONE_NEWPID),
        ("ipc", libc::CLONE_NEWIPC),
        ("uts", libc::CLONE_NEWUTS),
    ]
    .into_iter()
    .map(|(name, flag)| (name, probe_flags(libc::CLONE_NEWUSER | flag)))
    .collect()
}

fn probe_flags(flags: libc::c_int) -> Result<(), String> {
    let uid = sys::getuid();
    let gid = sys::getgid();
    let pid = sys::clone_fork(flags).map_err(|e| format!("clone: {e}"))?;
    if pid == 0 {
        let _ = sys::prctl(libc::PR_SET_DUMPABLE, 1);
        let maps = std::fs::write("/proc/self/setgroups", "deny").is_ok()
            && std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1")).is_ok()
            && std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1")).is_ok();
        // A mount namespace must allow a mount (AppArmor's restriction
        // lets the clone succeed but not this).
        let ok = maps
            && (flags & libc::CLONE_NEWNS == 0
                || sys::mount(
                    Some(std::path::Path::new("tmpfs")),
                    std::path::Path::new("/tmp"),
                    Some("tmpfs"),
                    0,
                    None,
                )
                .is_ok());
        sys::exit_now(if ok { 0 } else { 1 });
    }
    match sys::waitpid(pid, 0) {
        Ok((_, st)) if sys::exit_code(st) == 0 => Ok(()),
        Ok(_) => Err(
            "namespaces can be created but not used (uid map or mount refused; AppArmor?)".into(),
        ),
        Err(e) => Err(format!("wait: {e}")),
    }
}

#[cfg(test)]
mod seccomp_tests {
    use super::*;

    /// Install the filter in a fresh thread, run `f` there, return its
    /// result (the filter dies with the thread).
    fn filtered<T: Send + 'static>(rules: seccomp::SocketRules, f: fn() -> T) -> T {
        std::thread::spawn(move || {
            sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).unwrap();
            seccomp::install(&seccomp::build(rules).unwrap()).unwrap();
            f()
        })
        .join()
        .unwrap()
    }

    fn errno_of(rc: libc::c_long) -> i32 {
        if rc >= 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
        }
    }

    const NS: seccomp::SocketRules = seccomp::SocketRules {
        deny_inet_udp: false,
        deny_inet: false,
    };

    #[test]
    fn denied_syscalls_get_eperm() {
        let got = filtered(NS, || {
            // SAFETY: each call is made with harmless arguments; with the
            // filter they fail before the kernel looks at them.
            unsafe {
                vec![
                    errno_of(libc::syscall(libc::SYS_ptrace, 0, 0, 0, 0)),
                    errno_of(libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0)),
                    errno_of(libc::syscall(libc::SYS_bpf, 0, 0, 0)),
                    errno_of(libc::syscall(libc::SYS_io_uring_setup, 1, 0)),
                    errno_of(libc::syscall(libc::SYS_userfaultfd, 0)),
                    errno_of(libc::syscall(libc::SYS_umount2, c"/".as_ptr(), 0)),
                    errno_of(libc::syscall(libc::SYS_perf_event_open, 0, 0, 0, 0, 0)),
                    errno_of(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)),
                    errno_of(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWNET)),
                    errno_of(libc::syscall(libc::SYS_ioctl, 0, libc::TIOCSTI, 0)),
                    errno_of(libc::syscall(libc::SYS_personality, 0x0040000)),
                ]
            }
        });
        assert!(got.iter().all(|e| *e == libc::EPERM), "{got:?}");
    }

    #[test]
    fn allowed_calls_still_work() {
        let got = filtered(NS, || {
            // SAFETY: harmless calls: unshare(CLONE_FS) of this thread's fs
            // info, a personality query, socket creations closed right away.
            unsafe {
                let fs = errno_of(libc::syscall(libc::SYS_unshare, libc::CLONE_FS));
                let pers = errno_of(libc::syscall(libc::SYS_personality, 0xffffffffu32));
                let mut socks = Vec::new();
                for (d, t, p) in [
                    (libc::AF_UNIX, libc::SOCK_STREAM, 0),
                    (libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0),
                    (libc::AF_INET6, libc::SOCK_DGRAM, 0),
                    (libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE),
                ] {
                    let fd = libc::socket(d, t, p);
                    socks.push(errno_of(fd.into()));
                    if fd >= 0 {
                        libc::close(fd);
                    }
                }
                (fs, pers, socks)
            }
        });
        assert_eq!(got, (0, 0, vec![0, 0, 0, 0]));
    }

    #[test]
    fn socket_families_and_types_are_filtered() {
        let got = filtered(
            seccomp::SocketRules {
                deny_inet_udp: true,
                deny_inet: false,
            },
            || {
                // SAFETY: socket() calls with constant arguments.
                unsafe {
                    [
                        (libc::AF_PACKET, libc::SOCK_RAW, 0),
                        (libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_AUDIT),
                        (libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
                        (libc::AF_INET6, 10, 0),
                        (libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0),
                        (libc::AF_BLUETOOTH, libc::SOCK_STREAM, 0),
                    ]
                    .iter()
                    .map(|(d, t, p)| errno_of(libc::socket(*d, *t, *p).into()))
                    .collect::<Vec<_>>()
                }
            },
        );
        assert_eq!(
            got,
            vec![
                libc::EAFNOSUPPORT,
                libc::EAFNOSUPPORT,
                libc::EPERM,
                libc::EPERM,
                libc::EPERM,
                libc::EAFNOSUPPORT
            ]
        );
    }

    #[test]
    fn x32_and_clone3_are_refused() {
        let got = filtered(NS, || {
            // SAFETY: an x32-numbered getpid and a clone3 with a NULL
            // argument; both are refused by the filter before running.
            unsafe {
                (
                    errno_of(libc::syscall(0x4000_0000 | libc::SYS_getpid)),
                    errno_of(libc::syscall(libc::SYS_clone3, 0, 0)),
                )
            }
        });
        assert_eq!(got, (libc::ENOSYS, libc::ENOSYS));
    }

    #[test]
    fn clone_with_namespace_flags_is_refused() {
        let got = filtered(NS, || {
            // SAFETY: a raw clone that the filter refuses (EPERM) before the
            // kernel creates anything.
            unsafe {
                errno_of(libc::syscall(
                    libc::SYS_clone,
                    (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong,
                    0,
                    0,
                    0,
                    0,
                ))
            }
        });
        assert_eq!(got, libc::EPERM);
    }
}

#[cfg(test)]
mod sys_tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// With the raised backlog, 300 connections queue up without a single
    /// accept; with std's default of 128 the rest would stall in SYN retry.
    #[test]
    fn raised_backlog_queues_a_burst_of_connections() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        sys::set_backlog(l.as_raw_fd(), 4096).unwrap();
        let addr = l.local_addr().unwrap();
        let mut held = Vec::new();
        for i in 0..300 {
            let c =
                std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(500))
                    .unwrap_or_else(|e| panic!("connection {i} not queued: {e}"));
            held.push(c);
        }
    }

    /// A descriptor sent with send_fd arrives as a working socket.
    #[test]
    fn fd_passing_round_trip() {
        let (a, b) = sys::socketpair().unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        sys::send_fd(a.as_raw_fd(), l.as_raw_fd()).unwrap();
        let got = std::net::TcpListener::from(sys::recv_fd(b.as_raw_fd()).unwrap());
        assert_eq!(got.local_addr().unwrap().port(), port);
        drop(a);
        assert!(sys::recv_fd(b.as_raw_fd()).is_err(), "EOF must be an error");
    }
}
