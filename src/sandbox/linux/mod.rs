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
//! Without user namespaces (the fallback; `--strict` refuses it) there are
//! no clone flags: a reaper (see [`reaper`]) takes PID 1's place, and the
//! command gets Landlock and seccomp only.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod account;
pub mod cgroup;
pub mod fsat;
pub mod inotify;
pub mod landlock;
pub mod limits;
pub mod mounts;
pub mod notify;
pub mod pidfd;
pub mod reaper;
pub mod seccomp;
pub mod sys;
pub mod tty;

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
    /// Where the run's cgroup goes, or why it has none (found by the plan).
    pub cgroup_parent: Result<PathBuf, String>,
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
    /// Transparent egress (see `capture_setup`): ports to capture; empty
    /// for none.
    pub capture_ports: Vec<u16>,
    /// Try IPv6 capture too (false: simulated missing, for tests).
    pub capture_v6: bool,
    /// `--share-net`: keep the host's network namespace.
    pub share_net: bool,
    /// Resource limits (tmpfs sizes, processes, memory).
    pub limits: limits::Limits,
    /// The fallback's private temp dir on the host: its reaper removes it
    /// if zerobox dies first.
    pub private_tmp: Option<PathBuf>,
    /// Files PID 1 writes into the private /tmp before the command starts
    /// (name relative to /tmp, content), e.g. the proxy's CA bundle.
    pub tmp_files: Vec<(String, Vec<u8>)>,
    /// zerobox's signal mask before it blocked the relayed signals; the
    /// command gets it back.
    pub sigmask: libc::sigset_t,
    /// `--build-profile` / `learn`: the command's path-taking calls are
    /// decided by this supervisor (see [`notify`]).
    pub notify: Option<std::sync::Arc<dyn notify::Decide>>,
}

/// A started sandbox: the pid zerobox waits for (PID 1 of the sandbox, or
/// the command itself in fallback mode).
pub struct Started {
    pub pid: libc::pid_t,
    /// The proxy's listener from inside the network namespace, if asked for.
    pub listener: Option<std::net::TcpListener>,
    /// Transparent egress: DNS on 127.0.0.1:53 and the capture listeners,
    /// from inside the network namespace.
    pub capture: Option<Capture>,
    /// Held open while zerobox lives; PID 1 exits when it sees it closed.
    pub _alive: OwnedFd,
    /// The run's cgroup, removed when the run is over (dropped after the
    /// wait).
    pub cgroup: Option<cgroup::Cgroup>,
    /// Where PID 1 reports the command's exit status once no other
    /// process of the sandbox is left (see [`Started::reported_exit`]);
    /// non-blocking, and its data wakes zerobox with SIGCHLD.
    exited: Option<OwnedFd>,
}

impl Started {
    /// The command's exit status, if PID 1 has reported it: it does so
    /// after killing and reaping every other process in the sandbox (what
    /// the kernel does when PID 1 exits), and only then. zerobox can then
    /// finish without waiting for PID 1's own exit, which tears down the
    /// namespaces (mount tree, network) and takes longer than the rest of
    /// the run's end. Bubblewrap's monitor does not wait for it either.
    /// `None` until then, and for runs that wait for PID 1 itself.
    pub fn reported_exit(&self) -> Option<i32> {
        let mut buf = [0u8; 4];
        let fd = self.exited.as_ref()?;
        sys::read_now(fd.as_raw_fd(), &mut buf).then(|| i32::from_ne_bytes(buf))
    }
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
    // fork() in a threaded process could copy a held lock into the child;
    // the launcher spawns before starting any thread. Not knowing is not
    // "one thread".
    match sys::thread_count() {
        Ok(1) => {}
        Ok(_) => {
            return Err(SandboxError::new(
                Stage::Internal,
                "zerobox must spawn the sandbox before starting threads (bug)",
            ))
        }
        Err(e) => {
            return Err(SandboxError::new(
                Stage::Internal,
                format!(
                    "cannot count zerobox's threads from /proc/self/stat: {e} (is /proc mounted?)"
                ),
            ))
        }
    }
    // The proxy holds two descriptors per connection: zerobox runs with
    // its soft open-file limit at the hard one (the command gets the start
    // value back in `command_main`).
    sys::raise_nofile().map_err(|e| {
        SandboxError::new(Stage::Internal, format!("raise the open-file limit: {e}"))
    })?;
    let (status_r, status_w) = sys::pipe_cloexec()
        .map_err(|e| SandboxError::new(Stage::Internal, format!("pipe: {e}")))?;
    let (alive_r, alive_w) = sys::pipe_cloexec()
        .map_err(|e| SandboxError::new(Stage::Internal, format!("pipe: {e}")))?;
    let (fd_parent, fd_child) = sys::socketpair()
        .map_err(|e| SandboxError::new(Stage::Internal, format!("socketpair: {e}")))?;
    // The notification listener travels from the command to zerobox on a
    // channel of its own (the command process makes it, after PID 1 has
    // sent the proxy listener on the other one).
    let (notify_parent, notify_child) = match prep.notify {
        Some(_) => {
            let (a, b) = sys::socketpair()
                .map_err(|e| SandboxError::new(Stage::Internal, format!("socketpair: {e}")))?;
            (Some(a), Some(b))
        }
        None => (None, None),
    };
    let uid = sys::getuid();
    let gid = sys::getgid();
    let flags = match prep.mode {
        Mode::Namespaces if prep.share_net => NS_FLAGS & !libc::CLONE_NEWNET,
        Mode::Namespaces => NS_FLAGS,
        Mode::LandlockOnly => 0,
    };
    if prep.mode == Mode::LandlockOnly {
        // Orphans of the sandbox come back to zerobox, never to init
        // (see `reaper`).
        reaper::become_subreaper().map_err(|e| {
            SandboxError::new(Stage::Internal, format!("become a child subreaper: {e}"))
        })?;
    }
    // A cgroup for pids.max and memory.max where the user can have one;
    // none is not an error (explain and doctor say so).
    let cgroup = match cgroup::create(&prep.cgroup_parent, &prep.limits) {
        Ok(c) => Some(c),
        Err(cgroup::NoCgroup::Unavailable(why)) => {
            if prep.debug {
                crate::errln!("zerobox: debug: no cgroup: {why}");
            }
            None
        }
        Err(cgroup::NoCgroup::Failed(why)) => {
            crate::warn!("no process or memory cgroup for this run: {why}");
            None
        }
    };
    let cgroup_procs = cgroup.as_ref().map(|c| c.procs_files()).unwrap_or_default();
    // The exit report (see `Started::reported_exit`), in the namespaces
    // only, and not with a cgroup: removing that needs PID 1 gone. Set up
    // before the clone, so a report can never come before its signal.
    let (exited_r, exited_w) = if prep.mode == Mode::Namespaces && cgroup.is_none() {
        let (r, w) = sys::pipe_cloexec()
            .map_err(|e| SandboxError::new(Stage::Internal, format!("pipe: {e}")))?;
        sys::signal_when_readable(r.as_raw_fd(), libc::SIGCHLD)
            .map_err(|e| SandboxError::new(Stage::Internal, format!("exit report pipe: {e}")))?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let pid = sys::clone_fork(flags).map_err(|e| {
        SandboxError::new(Stage::Namespaces, format!("clone with new namespaces: {e}"))
    })?;
    if pid == 0 {
        // Child. Never returns: exec or _exit.
        drop(status_r);
        drop(alive_w);
        drop(fd_parent);
        drop(notify_parent);
        drop(exited_r);
        let code = match prep.mode {
            Mode::Namespaces => init_main(
                prep,
                uid,
                gid,
                &status_w,
                &alive_r,
                Channels {
                    proxy: fd_child,
                    notify: notify_child,
                    exited: exited_w,
                },
                &cgroup_procs,
            ),
            Mode::LandlockOnly => {
                reaper_main(prep, &status_w, &alive_r, notify_child, &cgroup_procs)
            }
        };
        sys::exit_now(code);
    }
    drop(status_w);
    drop(exited_w);
    drop(alive_r);
    drop(fd_child);
    drop(notify_child);
    // The listener comes first (PID 1 sends it before starting the
    // command); EOF instead means PID 1 failed, and the status pipe says why.
    let listener = match prep.proxy_port {
        Some(_) if prep.mode == Mode::Namespaces => sys::recv_fd(fd_parent.as_raw_fd())
            .ok()
            .map(std::net::TcpListener::from),
        _ => None,
    };
    // Then the capture sockets, in the order PID 1 binds them.
    let capture = if listener.is_some() && !prep.capture_ports.is_empty() {
        recv_capture(fd_parent.as_raw_fd(), prep.capture_ports.len())
    } else {
        None
    };
    drop(fd_parent);
    // The supervisor must answer before the command's execve can return,
    // so it starts before the status pipe is read. EOF instead of a
    // listener means the command failed first: the status pipe says why.
    if let (Some(decide), Some(chan)) = (&prep.notify, notify_parent) {
        if let Ok(listener) = sys::recv_fd(chan.as_raw_fd()) {
            let decide = decide.clone();
            let program =
                std::path::PathBuf::from(std::ffi::OsStr::from_bytes(prep.program.as_bytes()));
            std::thread::spawn(move || notify::serve(listener, program, decide));
        }
    }
    // Wait for the status pipe: EOF = exec succeeded; data = a failure.
    let mut buf = Vec::new();
    let mut file = std::fs::File::from(status_r);
    if let Err(e) = file.read_to_end(&mut buf) {
        // Not knowing whether setup succeeded is a failure.
        let _ = sys::kill(pid, libc::SIGKILL);
        let _ = sys::waitpid(pid, 0);
        return Err(SandboxError::new(
            Stage::Internal,
            format!("read the sandbox's status pipe: {e}"),
        ));
    }
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
    if !prep.capture_ports.is_empty() && prep.mode == Mode::Namespaces && capture.is_none() {
        let _ = sys::kill(pid, libc::SIGKILL);
        let _ = sys::waitpid(pid, 0);
        return Err(SandboxError::new(
            Stage::Network,
            "transparent egress: the sandbox did not hand over its DNS and capture sockets",
        ));
    }
    Ok(Started {
        pid,
        listener,
        capture,
        _alive: alive_w,
        cgroup,
        exited: exited_r,
    })
}

/// Transparent egress sockets from inside the network namespace.
pub struct Capture {
    /// DNS on 127.0.0.1:53, UDP and TCP.
    pub dns_udp: std::net::UdpSocket,
    pub dns_tcp: std::net::TcpListener,
    /// One listener per captured port: on `[::]` accepting IPv4 too, or
    /// on 0.0.0.0 when the sandbox has no IPv6 (see `capture_setup`).
    pub tcp: Vec<std::net::TcpListener>,
}

/// The DNS sockets, then `ports` capture listeners (see `capture_setup`).
fn recv_capture(chan: std::os::fd::RawFd, ports: usize) -> Option<Capture> {
    let dns_udp = std::net::UdpSocket::from(sys::recv_fd(chan).ok()?);
    let dns_tcp = std::net::TcpListener::from(sys::recv_fd(chan).ok()?);
    let mut tcp = Vec::with_capacity(ports);
    for _ in 0..ports {
        tcp.push(std::net::TcpListener::from(sys::recv_fd(chan).ok()?));
    }
    Some(Capture {
        dns_udp,
        dns_tcp,
        tcp,
    })
}

/// Whether the IPv6 synthetic range could be made local on lo, with its
/// first address on lo (see `sys::addr_add_lo`): then the capture
/// listeners are dual-stack. No IPv6 in the kernel
/// (EAFNOSUPPORT) or IPv6 disabled on the namespace's lo (EACCES: the host
/// makes new namespaces inherit `disable_ipv6`) means no: the run goes on
/// with IPv4 capture only, which zerobox announces. Nothing is weaker:
/// without the route no IPv6 address but `::1` exists in the namespace.
fn capture_v6() -> bool {
    let (net, len) = crate::proxy::dns_range_v6();
    sys::route_add_local(net.into(), len).is_ok() && sys::addr_add_lo(net.into()).is_ok()
}

/// Whether a run's network namespace will have IPv6 for transparent
/// egress, predicted from the host (`doctor`; the run itself finds out in
/// `capture_v6` and says so). `Err`: why not.
pub fn egress_ipv6_expected(simulated_missing: bool) -> Result<(), String> {
    if simulated_missing {
        return Err("disabled (simulated by ZEROBOX_SIMULATE_MISSING)".into());
    }
    if !std::path::Path::new("/proc/sys/net/ipv6").exists() {
        return Err("no IPv6 in this kernel".into());
    }
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<u8>().ok())
    };
    // 0 (the default) and 2 give a new namespace IPv6's defaults (enabled);
    // 1 and 3 copy the current values, where disable_ipv6 may be set.
    let inherits = matches!(
        read("/proc/sys/net/core/devconf_inherit_init_net"),
        Some(1 | 3)
    );
    let disabled = ["all", "default"]
        .iter()
        .any(|c| read(&format!("/proc/sys/net/ipv6/conf/{c}/disable_ipv6")) == Some(1));
    if inherits && disabled {
        return Err(
            "new network namespaces inherit disable_ipv6=1 (net.core.devconf_inherit_init_net)"
                .into(),
        );
    }
    Ok(())
}

/// Where PID 1 stages the sandbox's resolv.conf before binding it over
/// `/etc/resolv.conf` (then removes it: only the mount keeps it).
const RESOLV_STAGE: &str = "/tmp/.zerobox-resolv.conf";

/// Transparent egress, inside the network namespace (PID 1, still
/// privileged there): make the synthetic ranges local on lo, bind DNS on
/// 127.0.0.1:53 and a listener per captured port, hand them to zerobox,
/// and point `/etc/resolv.conf` at the DNS. Any failure fails the run
/// (the step is named), except IPv6 being unavailable (see
/// `capture_v6`): then the listeners are IPv4-only, zerobox sees it from
/// their address family, answers no AAAA and says so.
fn capture_setup(prep: &Prepared, chan: &OwnedFd) -> Result<(), (String, std::io::Error)> {
    use crate::proxy::dns_range;
    fn step(what: &str) -> impl FnOnce(std::io::Error) -> (String, std::io::Error) + '_ {
        move |e| (what.to_string(), e)
    }
    let (net, len) = dns_range();
    sys::route_add_local(net.into(), len).map_err(step(&format!(
        "transparent egress: make {net}/{len} local on lo"
    )))?;
    sys::addr_add_lo(net.into()).map_err(step(&format!("transparent egress: add {net} to lo")))?;
    let dns = std::net::UdpSocket::bind(("127.0.0.1", 53))
        .map_err(step("transparent egress: bind DNS on 127.0.0.1:53"))?;
    let dns_tcp = std::net::TcpListener::bind(("127.0.0.1", 53))
        .map_err(step("transparent egress: bind DNS on 127.0.0.1:53 (TCP)"))?;
    let v6 = prep.capture_v6 && capture_v6();
    let mut tcp = Vec::new();
    for &port in &prep.capture_ports {
        let what = format!("transparent egress: bind the capture listener on port {port}");
        let l = if v6 {
            sys::listen_dual_stack(port, 4096).map_err(step(&what))?
        } else {
            let l = std::net::TcpListener::bind(("0.0.0.0", port)).map_err(step(&what))?;
            sys::set_backlog(l.as_raw_fd(), 4096).map_err(step(
                "transparent egress: raise a capture listener's backlog",
            ))?;
            l
        };
        tcp.push(l);
    }
    sys::send_fd(chan.as_raw_fd(), dns.as_raw_fd())
        .map_err(step("transparent egress: hand the DNS socket to zerobox"))?;
    sys::send_fd(chan.as_raw_fd(), dns_tcp.as_raw_fd())
        .map_err(step("transparent egress: hand the DNS socket to zerobox"))?;
    for l in &tcp {
        sys::send_fd(chan.as_raw_fd(), l.as_raw_fd()).map_err(step(
            "transparent egress: hand a capture listener to zerobox",
        ))?;
    }
    let stage = std::path::Path::new(RESOLV_STAGE);
    let resolv = std::path::Path::new("/etc/resolv.conf");
    let what = "transparent egress: point /etc/resolv.conf at 127.0.0.1";
    // No resolv.conf at all (nor its target): the C libraries' default
    // nameserver is 127.0.0.1, which is already ours.
    if !resolv.exists() {
        return Ok(());
    }
    {
        use std::io::Write;
        // create_new: O_EXCL, never through a planted file or symlink.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(stage)
            .map_err(step(what))?;
        f.write_all(b"# zerobox: names resolve for allowed hosts only\nnameserver 127.0.0.1\noptions attempts:1 timeout:2\n")
            .map_err(step(what))?;
    }
    sys::mount(Some(stage), resolv, None, libc::MS_BIND, None).map_err(step(what))?;
    sys::mount(
        None,
        resolv,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )
    .map_err(step(what))?;
    std::fs::remove_file(stage).map_err(step(what))?;
    Ok(())
}

/// A failure report from the child: one stage byte, errno (4 bytes LE),
/// the path's length (2 bytes LE) and bytes, then the text.
fn report(fd: &OwnedFd, stage: Stage, errno: i32, msg: &str) {
    report_error(fd, &SandboxError::new(stage, msg).with_errno(errno));
}

fn report_error(fd: &OwnedFd, e: &SandboxError) {
    let mut buf = vec![e.stage as u8];
    buf.extend_from_slice(&e.errno.to_le_bytes());
    let path = e
        .path
        .as_ref()
        .map(|p| p.as_os_str().as_bytes())
        .unwrap_or_default();
    let path = &path[..path.len().min(2000)];
    buf.extend_from_slice(&(path.len() as u16).to_le_bytes());
    buf.extend_from_slice(path);
    buf.extend_from_slice(e.message.as_bytes());
    buf.truncate(4000); // one atomic pipe write
    sys::write_all(fd.as_raw_fd(), &buf);
}

fn decode_failure(buf: &[u8]) -> SandboxError {
    let stage = Stage::from_u8(buf[0]);
    let errno = buf
        .get(1..5)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0);
    let path_len = buf
        .get(5..7)
        .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
        .unwrap_or(0);
    let path = buf.get(7..7 + path_len).unwrap_or_default();
    let msg = String::from_utf8_lossy(buf.get(7 + path_len..).unwrap_or_default()).into_owned();
    let mut e = SandboxError::new(stage, msg).with_errno(errno);
    if !path.is_empty() {
        e.path = Some(PathBuf::from(std::ffi::OsStr::from_bytes(path)));
    }
    e
}

/// PID 1's sockets to zerobox: the proxy listener's, and the one the
/// command sends its notification listener on (`--build-profile`, `learn`).
struct Channels {
    proxy: OwnedFd,
    notify: Option<OwnedFd>,
    /// Where the command's exit status goes once nothing else of the
    /// sandbox is left (see `Started::reported_exit`).
    exited: Option<OwnedFd>,
}

/// PID 1 of the sandbox. Sets up the namespaces' view, starts the command,
/// forwards signals to it, reaps everything, exits with its status.
fn init_main(
    prep: &Prepared,
    uid: u32,
    gid: u32,
    status: &OwnedFd,
    alive: &OwnedFd,
    channels: Channels,
    cgroup_procs: &[std::path::PathBuf],
) -> i32 {
    let Channels {
        proxy: fd_channel,
        notify: notify_chan,
        exited,
    } = channels;
    // If zerobox dies, so do we (and with PID 1 the whole pid namespace).
    // The pipe check closes the race with a death before the prctl.
    let fail = |stage: Stage, what: &str, e: &dyn std::fmt::Display, errno: i32| -> i32 {
        report(status, stage, errno, &format!("{what}: {e}"));
        super::EXIT_SETUP
    };
    if let Err(e) = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) {
        return fail(Stage::Internal, "set the parent-death signal", &e, 0);
    }
    if sys::peer_closed(alive.as_raw_fd()) {
        return 1;
    }
    // Map our own uid/gid only: no other id exists in here. setgroups is
    // denied first (required to write gid_map unprivileged; also stops
    // dropping supplementary groups to bypass group-deny permissions).
    // zerobox is non-dumpable (see `make_undumpable`), which makes our
    // /proc/self files root-owned: an unprivileged user could not write its
    // own maps. Dumpable only while writing them; nothing of the command
    // exists yet, and the command could not ptrace us anyway (we hold
    // capabilities it lacks, and Landlock forbids it).
    if let Err(e) = sys::prctl(libc::PR_SET_DUMPABLE, 1) {
        return fail(Stage::Internal, "make init dumpable for its id maps", &e, 0);
    }
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
    // Back to non-dumpable, checked: a dumpable init could be read by
    // whatever shares its uid (see `make_undumpable`).
    if let Err(e) = sys::prctl(libc::PR_SET_DUMPABLE, 0) {
        return fail(Stage::Internal, "make init non-dumpable again", &e, 0);
    }
    if sys::prctl(libc::PR_GET_DUMPABLE, 0).ok() != Some(0) {
        return fail(
            Stage::Internal,
            "make init non-dumpable again",
            &"still dumpable",
            0,
        );
    }
    // Into the run's cgroup before anything else exists in here, and while
    // the host's cgroup files are still writable (the mounts make the host
    // read-only).
    if let Err(e) = cgroup::enter(cgroup_procs) {
        return fail(
            Stage::Internal,
            "enter the run's cgroup",
            &e,
            e.raw_os_error().unwrap_or(0),
        );
    }
    let t0 = std::time::Instant::now();
    if let Err(e) = mounts::apply(&prep.steps, &prep.limits.tmpfs_options()) {
        report_error(status, &e.into_sandbox_error());
        return super::EXIT_SETUP;
    }
    if prep.debug {
        crate::errln!(
            "zerobox: debug: {:>8.3} ms  mounts done ({} policy steps)",
            t0.elapsed().as_secs_f64() * 1e3,
            prep.steps.len()
        );
    }
    // Checked: otherwise the command would see the host's name.
    if let Err(e) = sys::sethostname("zerobox") {
        return fail(
            Stage::Namespaces,
            "set the hostname",
            &e,
            e.raw_os_error().unwrap_or(0),
        );
    }
    if prep.share_net {
        // host network: nothing to bring up
    } else if let Err(e) = sys::loopback_up() {
        return fail(
            Stage::Network,
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
        if let Err(e) = sys::set_backlog(listener.as_raw_fd(), 4096) {
            return fail(Stage::Internal, "raise the proxy listener's backlog", &e, 0);
        }
        if let Err(e) = sys::send_fd(fd_channel.as_raw_fd(), listener.as_raw_fd()) {
            return fail(Stage::Internal, "hand the proxy listener to zerobox", &e, 0);
        }
        if !prep.capture_ports.is_empty() {
            if let Err((what, e)) = capture_setup(prep, &fd_channel) {
                let errno = e.raw_os_error().unwrap_or(0);
                return fail(Stage::Network, &what, &e, errno);
            }
        }
    }
    drop(fd_channel);

    // Signals: block the ones we forward before forking, so none is lost
    // between fork and the wait loop; the command restores the mask.
    let forwarded = super::FORWARDED_SIGNALS;
    let mut waited: Vec<libc::c_int> = forwarded.to_vec();
    waited.push(libc::SIGCHLD);
    for s in &waited {
        // Checked: without the handler, PID 1 would drop the signal.
        if let Err(e) = sys::install_noop_handler(*s) {
            return fail(Stage::Internal, "install signal handlers", &e, 0);
        }
    }
    if let Err(e) = sys::block_signals(&waited) {
        return fail(Stage::Internal, "block signals", &e, 0);
    }
    let child = match sys::fork() {
        Ok(p) => p,
        Err(e) => return fail(Stage::Internal, "fork the command", &e, 0),
    };
    if child == 0 {
        // Only PID 1 may report the command's exit.
        drop(exited);
        sys::exit_now(command_main(prep, status, notify_chan.as_ref()));
    }
    // Only the command may send the notification listener; our copy must
    // go so zerobox sees EOF if the command fails before that.
    drop(notify_chan);
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
                    Ok((pid, st)) if pid == child => {
                        let code = sys::exit_code(st);
                        if let Some(exited) = &exited {
                            end_all_then_report(exited, code);
                        }
                        return code;
                    }
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

/// PID 1, the command having exited: end every other process in the
/// sandbox and reap them all (what the kernel does when PID 1 exits), then
/// report the command's `code` to zerobox, which need not wait for PID 1's
/// own exit (see `Started::reported_exit`). Nothing is reported unless
/// `waitpid` says no child is left: every process of the pid namespace is
/// PID 1's child or a descendant of one, so none runs any more.
fn end_all_then_report(exited: &OwnedFd, code: i32) {
    // SIGKILL to every process of the namespace but PID 1; a process that
    // has it pending can no longer fork.
    let _ = sys::kill(-1, libc::SIGKILL);
    loop {
        match sys::waitpid(-1, 0) {
            Ok(_) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => break,
            // Not known to be alone: no report, zerobox waits for our exit.
            Err(_) => return,
        }
    }
    sys::write_all(exited.as_raw_fd(), &code.to_ne_bytes());
}

/// The fallback's reaper (see `reaper`): the command's parent. Forwards
/// signals like PID 1 does, and ends every descendant when the command
/// exits or zerobox dies.
fn reaper_main(
    prep: &Prepared,
    status: &OwnedFd,
    alive: &OwnedFd,
    notify_chan: Option<OwnedFd>,
    cgroup_procs: &[std::path::PathBuf],
) -> i32 {
    let fail = |what: &str, e: &dyn std::fmt::Display| -> i32 {
        report(status, Stage::Internal, 0, &format!("{what}: {e}"));
        super::EXIT_SETUP
    };
    // zerobox's death wakes us with SIGTERM (a waited signal); the closed
    // liveness pipe tells it from a relayed SIGTERM.
    if let Err(e) = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) {
        return fail("set the parent-death signal", &e);
    }
    if sys::peer_closed(alive.as_raw_fd()) {
        return 1;
    }
    if let Err(e) = reaper::become_subreaper() {
        return fail("become a child subreaper", &e);
    }
    if let Err(e) = cgroup::enter(cgroup_procs) {
        return fail("enter the run's cgroup", &e);
    }
    let forwarded = super::FORWARDED_SIGNALS;
    let mut waited: Vec<libc::c_int> = forwarded.to_vec();
    waited.push(libc::SIGCHLD);
    for s in &waited {
        if let Err(e) = sys::install_noop_handler(*s) {
            return fail("install signal handlers", &e);
        }
    }
    if let Err(e) = sys::block_signals(&waited) {
        return fail("block signals", &e);
    }
    let me = sys::getpid();
    let child = match sys::fork() {
        Ok(p) => p,
        Err(e) => return fail("fork the command", &e),
    };
    if child == 0 {
        // If the reaper dies, so does the command (its descendants then go
        // to zerobox, also a subreaper). The parent check closes the race
        // with a death before the prctl.
        if let Err(e) = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) {
            report(
                status,
                Stage::Internal,
                0,
                &format!("set the parent-death signal: {e}"),
            );
            sys::exit_now(super::EXIT_SETUP);
        }
        if sys::getppid() != me {
            sys::exit_now(1);
        }
        sys::exit_now(command_main(prep, status, notify_chan.as_ref()));
    }
    drop(notify_chan);
    sys::close_raw(status.as_raw_fd());
    let end_all = || {
        if let Err(e) = reaper::kill_descendants() {
            crate::errln!("zerobox: error: could not end every sandbox process: {e}");
        }
    };
    loop {
        let info = match sys::sigwaitinfo(&waited) {
            Ok(i) => i,
            Err(_) => continue,
        };
        if sys::peer_closed(alive.as_raw_fd()) {
            // zerobox is gone: nobody else will clean up.
            end_all();
            if let Some(dir) = &prep.private_tmp {
                let _ = std::fs::remove_dir_all(dir);
            }
            return 1;
        }
        let sig = info.si_signo;
        if sig == libc::SIGCHLD {
            let mut code = None;
            loop {
                match sys::waitpid(-1, libc::WNOHANG) {
                    Ok((0, _)) | Err(_) => break,
                    Ok((pid, st)) if pid == child => code = Some(sys::exit_code(st)),
                    Ok(_) => continue,
                }
            }
            if let Some(code) = code {
                end_all();
                return code;
            }
            continue;
        }
        if sys::si_code(&info) != libc::SI_KERNEL {
            let _ = sys::kill(child, sig);
        }
    }
}

/// The command process: harden, then exec. Returns an exit code only on
/// failure (after reporting it on the status pipe).
fn command_main(prep: &Prepared, status: &OwnedFd, notify_chan: Option<&OwnedFd>) -> i32 {
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
    // Check instead of trusting: every set reads back empty.
    if let Err(e) = sys::verify_no_capabilities() {
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
    // The command starts with the signal state and open-file limit zerobox
    // was started with, not zerobox's own: every disposition back to
    // SIG_DFL (Rust's runtime ignores SIGPIPE, and SIG_IGN survives
    // execve) except what the caller had ignored (nohup's SIGHUP), as
    // recorded before `main`; handlers reset themselves on execve.
    let ignored = match sys::ignored_at_start() {
        Ok(i) => i,
        Err(e) => return fail(Stage::Internal, "signal dispositions", &e),
    };
    for sig in sys::settable_signals() {
        if let Err(e) = sys::set_disposition(sig, ignored.contains(&sig)) {
            return fail(
                Stage::Internal,
                &format!("reset the disposition of signal {sig}"),
                &e,
            );
        }
    }
    if let Err(e) = sys::set_sigmask(&prep.sigmask) {
        return fail(Stage::Internal, "restore the signal mask", &e);
    }
    if let Err(e) = sys::nofile_at_start().and_then(|l| sys::setrlimit(libc::RLIMIT_NOFILE, &l)) {
        return fail(Stage::Internal, "restore the open-file limit", &e);
    }
    // The process limit (see `limits` for what RLIMIT_NPROC counts where).
    let nproc = match limits::nproc_rule(
        prep.mode == Mode::Namespaces,
        sys::getuid(),
        prep.limits.pids,
    ) {
        limits::NprocRule::Sandbox(n) => Some(Ok(n)),
        limits::NprocRule::UserWide(n) => {
            Some(limits::processes_of(sys::getuid()).map(|c| c.saturating_add(n)))
        }
        limits::NprocRule::RootExempt => None,
    };
    if let Some(n) = nproc {
        if let Err(e) = n.and_then(limits::set_nproc) {
            return fail(Stage::Internal, "set the process limit (RLIMIT_NPROC)", &e);
        }
    }
    // The supervisor's filter comes last: after it the execve below is
    // the only notified call (nothing above may come after it: a path
    // call here would be taken for the execve, see `notify::serve`). The command never keeps the listener.
    if let Some(chan) = notify_chan {
        let listener = match notify::install() {
            Ok(l) => l,
            Err(e) => return fail(Stage::Seccomp, "seccomp user notification", &e),
        };
        if let Err(e) = sys::send_fd(chan.as_raw_fd(), listener.as_raw_fd()) {
            return fail(
                Stage::Internal,
                "hand the notification listener to zerobox",
                &e,
            );
        }
        drop(listener);
        sys::close_raw(chan.as_raw_fd());
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

/// The probe a run makes before choosing its mode: the namespaces whose
/// creation a machine restricts (user, with the mounts AppArmor may
/// refuse), plus pid, ipc and uts. Not the network namespace: creating
/// (and tearing down) one costs more than the rest of the probe, and no
/// restriction we know of allows user namespaces but not it; if the run's
/// own clone still fails, that is a refusal (125), never a fallback.
pub fn probe_for_run() -> Result<(), String> {
    probe_start_for_run().finish().0
}

/// [`probe_for_run`] started and not yet waited for: the probe's child runs
/// while zerobox plans (see `plan::plan`); [`ProbeRun::finish`] gives its
/// verdict. Nothing is cached: every run probes the machine afresh, before
/// anything of its sandbox exists.
pub fn probe_start_for_run() -> ProbeRun {
    ProbeRun(probe_start(NS_FLAGS & !libc::CLONE_NEWNET))
}

/// A probe under way (or one that could not start: the error).
pub struct ProbeRun(Result<StartedProbe, String>);

struct StartedProbe {
    pid: libc::pid_t,
    /// The child writes its verdict here before it exits.
    verdict: OwnedFd,
}

/// The probe's child after its verdict: still exiting (tearing down its
/// namespaces takes longer than the probe itself), reaped when dropped.
#[derive(Debug)]
pub struct ProbeChild(libc::pid_t);

impl Drop for ProbeChild {
    fn drop(&mut self) {
        let _ = sys::waitpid(self.0, 0);
    }
}

impl ProbeRun {
    /// The probe's verdict, read as soon as its child has it; the child
    /// comes back too, to be reaped once the sandbox is started.
    pub fn finish(self) -> (Result<(), String>, Option<ProbeChild>) {
        match self.0 {
            Err(e) => (Err(e), None),
            Ok(p) => (read_verdict(p.verdict), Some(ProbeChild(p.pid))),
        }
    }
}

/// One byte from the probe's child: `1` if it could write its id maps and
/// mount; anything else, or nothing (it died), is a failure.
fn read_verdict(fd: OwnedFd) -> Result<(), String> {
    let mut byte = [0u8; 1];
    let mut file = std::fs::File::from(fd);
    loop {
        match file.read(&mut byte) {
            Ok(1) if byte[0] == b'1' => return Ok(()),
            Ok(_) => {
                return Err(
                    "namespaces can be created but not used (uid map or mount refused; AppArmor?)"
                        .into(),
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read the probe's verdict: {e}")),
        }
    }
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
    // Verdict first, then the child reaped (dropped) before returning.
    let (verdict, _child) = ProbeRun(probe_start(flags)).finish();
    verdict
}

/// Fork the probe's child in new namespaces (`flags`); it writes `1` to
/// the verdict pipe if it could write its id maps and, with a mount
/// namespace, mount a tmpfs, then exits.
fn probe_start(flags: libc::c_int) -> Result<StartedProbe, String> {
    let uid = sys::getuid();
    let gid = sys::getgid();
    let (verdict_r, verdict_w) = sys::pipe_cloexec().map_err(|e| format!("pipe: {e}"))?;
    let pid = sys::clone_fork(flags).map_err(|e| format!("clone: {e}"))?;
    if pid == 0 {
        drop(verdict_r);
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
        sys::write_all(verdict_w.as_raw_fd(), if ok { b"1" } else { b"0" });
        sys::exit_now(if ok { 0 } else { 1 });
    }
    drop(verdict_w);
    Ok(StartedProbe {
        pid,
        verdict: verdict_r,
    })
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

    /// Inet sockets: only TCP streams (protocol 0 or IPPROTO_TCP) and, where
    /// the mode allows UDP, UDP datagrams. MPTCP (which Landlock's TCP rule
    /// does not cover), SCTP, UDP-Lite, ICMP "ping" sockets, seqpacket and
    /// DCCP are refused, in both modes.
    fn inet_sockets(rules: seccomp::SocketRules) -> Vec<i32> {
        const IPPROTO_MPTCP: i32 = 262;
        const IPPROTO_SCTP: i32 = 132;
        const IPPROTO_UDPLITE: i32 = 136;
        const SOCK_DCCP: i32 = 6;
        let f: fn() -> Vec<i32> = || {
            // SAFETY: socket() calls with constant arguments; a created
            // socket is closed right away.
            unsafe {
                [
                    (libc::AF_INET, libc::SOCK_STREAM, 0),
                    (
                        libc::AF_INET6,
                        libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                        libc::IPPROTO_TCP,
                    ),
                    (libc::AF_INET, libc::SOCK_STREAM, IPPROTO_MPTCP),
                    (
                        libc::AF_INET6,
                        libc::SOCK_STREAM | libc::SOCK_NONBLOCK,
                        IPPROTO_MPTCP,
                    ),
                    (libc::AF_INET, libc::SOCK_STREAM, IPPROTO_SCTP),
                    (libc::AF_INET, libc::SOCK_SEQPACKET, IPPROTO_SCTP),
                    (libc::AF_INET6, libc::SOCK_SEQPACKET, 0),
                    (libc::AF_INET, SOCK_DCCP, 0),
                    (libc::AF_INET, libc::SOCK_RDM, 0),
                    // The protocol is an int: a high word must not hide it.
                    (
                        libc::AF_INET,
                        libc::SOCK_STREAM,
                        0x1_0000 | libc::IPPROTO_TCP,
                    ),
                    (libc::AF_INET, libc::SOCK_DGRAM, 0),
                    (libc::AF_INET6, libc::SOCK_DGRAM, libc::IPPROTO_UDP),
                    (libc::AF_INET, libc::SOCK_DGRAM, IPPROTO_UDPLITE),
                    (libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP),
                ]
                .iter()
                .map(|(d, t, p)| {
                    let fd = libc::socket(*d, *t, *p);
                    let e = errno_of(fd.into());
                    if fd >= 0 {
                        libc::close(fd);
                    }
                    e
                })
                .collect()
            }
        };
        filtered(rules, f)
    }

    #[test]
    fn inet_sockets_are_tcp_or_udp_only() {
        use libc::{EPERM, EPROTONOSUPPORT as NOPROTO};
        let refused = [
            NOPROTO, NOPROTO, NOPROTO, EPERM, EPERM, EPERM, EPERM, NOPROTO,
        ];
        // Namespace mode: UDP stays (loopback only in there).
        let mut want = vec![0, 0];
        want.extend(refused);
        want.extend([0, 0, NOPROTO, NOPROTO]);
        assert_eq!(inet_sockets(NS), want, "namespace mode");
        // The fallback with network: no UDP at all.
        let mut want = vec![0, 0];
        want.extend(refused);
        want.extend([EPERM; 4]);
        let fallback = seccomp::SocketRules {
            deny_inet_udp: true,
            deny_inet: false,
        };
        assert_eq!(inet_sockets(fallback), want, "fallback mode");
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

    /// The start state is recorded before `main` (the `.init_array` hook is
    /// linked in and ran): SIGKILL is never "ignored", the limit is sane.
    #[test]
    fn start_state_is_recorded_before_main() {
        let ignored = sys::ignored_at_start().unwrap();
        assert!(!ignored.contains(&libc::SIGKILL), "{ignored:?}");
        let lim = sys::nofile_at_start().unwrap();
        assert!(lim.rlim_cur > 0 && lim.rlim_cur <= lim.rlim_max);
    }

    /// /proc/self/stat that cannot be parsed is an error, never "1 thread".
    #[test]
    fn thread_count_fails_closed() {
        assert!(sys::thread_count().unwrap() >= 1);
        for bad in [
            "",
            "1 (x) R",
            "garbage",
            "1 (a) R 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 x",
        ] {
            assert!(sys::parse_thread_count(bad).is_err(), "{bad:?}");
        }
        let ok = "12 (we) ird) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 7 0";
        assert_eq!(sys::parse_thread_count(ok).unwrap(), 7);
    }

    /// The capability read-back refuses a thread that still holds any: as
    /// root the test process holds all (refused); a thread that dropped
    /// them reads back empty (accepted).
    #[test]
    fn capability_readback_refuses_remaining_caps() {
        let before = sys::capability_sets().unwrap();
        assert_eq!(
            sys::verify_no_capabilities().is_ok(),
            before.effective | before.permitted | before.inheritable | before.ambient == 0
        );
        let after = std::thread::spawn(|| {
            // Drop in this thread only (capabilities are per thread).
            let _ = sys::drop_all_capabilities();
            (
                sys::capability_sets().unwrap(),
                sys::verify_no_capabilities().is_ok(),
            )
        })
        .join()
        .unwrap();
        assert_eq!(
            after.0.effective | after.0.permitted | after.0.inheritable,
            0,
            "{:?}",
            after.0
        );
        assert!(after.1, "{:?}", after.0);
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
