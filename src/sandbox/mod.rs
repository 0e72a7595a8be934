//! Enforcement of a resolved [`Policy`]: one entry, [`spawn`], which starts
//! the command in the strongest sandbox the machine offers (or refuses), and
//! [`Running::wait`], which relays signals and returns the exit code.
//!
//! Knows nothing about presets or YAML: it takes plain data.

pub mod error;
pub mod guard;
pub mod linux;
pub mod lstats;
pub mod plan;

pub use error::{SandboxError, Stage};
pub use plan::{plan, Plan};

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::policy::{defaults, FsAccess, FsRule, Implicit, Origin, Policy};
use linux::sys;

pub const EXIT_SETUP: i32 = crate::exit::SETUP;
pub const EXIT_NOT_FOUND: i32 = crate::exit::NOT_FOUND;
pub const EXIT_NOT_EXECUTABLE: i32 = crate::exit::NOT_EXECUTABLE;

/// Signals zerobox relays to the command.
pub const FORWARDED_SIGNALS: &[libc::c_int] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGALRM,
];

/// How the sandbox is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// User, mount, net, pid, ipc, uts namespaces + Landlock + seccomp.
    Namespaces,
    /// No user namespaces: Landlock + seccomp only.
    LandlockOnly,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Absolute path of the program.
    pub program: PathBuf,
    /// argv, including argv[0].
    pub argv: Vec<OsString>,
    /// The complete environment.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

#[derive(Clone, Default)]
pub struct Options {
    pub strict: bool,
    pub debug: bool,
    /// Network through zerobox's proxy: the sandbox gets a listener for it.
    pub network: Option<NetworkRequest>,
    /// Raw host networking (no network namespace, no TCP restriction).
    pub share_net: bool,
    /// `--allow-weak-net`: network in the Landlock-only fallback, where
    /// Landlock confines TCP to the proxy's port but not to its address.
    pub allow_weak_net: bool,
    /// Resource limits (`--tmp-size`, `--pids`, `--memory`).
    pub limits: linux::limits::Limits,
    /// `--build-profile` / `learn`: a supervisor for the command's
    /// path-taking calls (seccomp user notification, `linux::notify`).
    pub notify: Option<std::sync::Arc<dyn linux::notify::Decide>>,
}

/// Why the fallback refuses network without `--allow-weak-net`.
pub const WEAK_NET_REFUSAL: &str = "network (--allow-net, --secret) in the Landlock-only fallback is refused: without a network namespace Landlock confines TCP connect per port, not per address, so the command could reach any address on the proxy's port directly; pass --allow-weak-net to accept that (see docs/network.md §1), or make user namespaces available (run `zerobox doctor`)";

/// What the fallback gives up with `--allow-weak-net` (announced).
pub const WEAK_NET_WARNING: &str = "--allow-weak-net: without a network namespace the command can connect directly to any address on the proxy's port (Landlock confines TCP per port); other ports, UDP and other protocols stay refused";

/// What the proxy needs from the sandbox and gives to it.
#[derive(Clone)]
pub struct NetworkRequest {
    /// Files to place in the sandbox's temp dir (e.g. `zerobox/ca.pem`).
    pub tmp_files: Vec<(String, Vec<u8>)>,
    /// Environment to add, given the proxy port and the sandbox's temp dir
    /// (proxy variables, CA bundle paths).
    pub env: fn(port: u16, tmpdir: &Path) -> Vec<(String, String)>,
    /// Transparent egress (namespace mode only): the TCP ports to capture
    /// on the synthetic range, with DNS on 127.0.0.1:53 and the sandbox's
    /// `/etc/resolv.conf` pointing there. Empty: no capture.
    pub capture_ports: Vec<u16>,
}

/// Layers simulated as missing (`ZEROBOX_SIMULATE_MISSING=userns,landlock`)
/// or older (`ZEROBOX_SIMULATE_LANDLOCK_ABI=N`), so tests can exercise the
/// fallback, refusal and older-kernel paths on any machine. It can only
/// make zerobox weaker-or-refusing, never skip a check silently: every
/// fallback is announced and `--strict` still refuses. A simulated ABI
/// only ever lowers the kernel's (a higher one is ignored).
#[derive(Debug, Clone, Copy, Default)]
pub struct Simulated {
    pub no_userns: bool,
    pub no_landlock: bool,
    /// `ipv6`: transparent egress as on a host without IPv6 (IPv4
    /// capture only, announced).
    pub no_ipv6: bool,
    /// `fsmount`: the directory masks made as on a kernel without the new
    /// mount API (a tmpfs each instead of clones of one).
    pub no_fsmount: bool,
    pub landlock_abi: Option<i32>,
}

impl Simulated {
    pub fn from_env() -> Self {
        let v = std::env::var("ZEROBOX_SIMULATE_MISSING").unwrap_or_default();
        Simulated {
            no_userns: v.split(',').any(|s| s == "userns"),
            no_landlock: v.split(',').any(|s| s == "landlock"),
            no_ipv6: v.split(',').any(|s| s == "ipv6"),
            no_fsmount: v.split(',').any(|s| s == "fsmount"),
            // Unparsable: ignored, which can only mean the real (higher
            // or equal) ABI, never a weaker one than asked for by mistake
            // going unnoticed in a test (the tests check the ABI used).
            landlock_abi: std::env::var("ZEROBOX_SIMULATE_LANDLOCK_ABI")
                .ok()
                .and_then(|v| v.trim().parse::<i32>().ok())
                .filter(|n| *n >= 0),
        }
    }
}

/// The Landlock ABI this run can use (0: none).
pub fn landlock_abi(sim: Simulated) -> i32 {
    if sim.no_landlock {
        return 0;
    }
    let kernel = sys::landlock_abi();
    match sim.landlock_abi {
        Some(n) => n.min(kernel),
        None => kernel,
    }
}

/// The origin of the implicit rule that makes the private temp dir
/// writable (mounts must not read it as a grant on host paths below /tmp).
pub const PRIVATE_TMP_ORIGIN: Origin = Origin::Implicit(Implicit::PrivateTmp);

/// Rules the sandbox adds to every policy in a mode: writable devices, the
/// private temp dir, the cwd readable, host unix sockets hidden.
pub fn implicit_rules(policy: &Policy, mode: Mode, tmpdir: &Path) -> Vec<FsRule> {
    let rule = |path: &str, access, origin: Implicit| FsRule {
        path: PathBuf::from(path),
        access,
        origin: Origin::Implicit(origin),
    };
    let mut rules = Vec::new();
    for dev in defaults::WRITABLE_DEVICES {
        rules.push(rule(dev, FsAccess::AllowWrite, Implicit::Devices));
    }
    rules.push(rule("/dev/pts", FsAccess::AllowWrite, Implicit::Devices));
    rules.push(rule("/dev/ptmx", FsAccess::AllowWrite, Implicit::Devices));
    if mode == Mode::Namespaces {
        rules.push(rule("/dev/shm", FsAccess::AllowWrite, Implicit::Devices));
    }
    rules.push(FsRule {
        path: tmpdir.to_path_buf(),
        access: FsAccess::AllowWrite,
        origin: PRIVATE_TMP_ORIGIN,
    });
    rules.push(FsRule {
        path: policy.cwd.clone(),
        access: FsAccess::AllowRead,
        origin: Origin::Implicit(Implicit::Cwd),
    });
    for sock in host_unix_sockets(policy) {
        rules.push(FsRule {
            path: sock,
            access: FsAccess::DenyRead,
            origin: Origin::Implicit(Implicit::HostUnixSockets),
        });
    }
    rules
}

/// Host unix sockets to hide: the per-user runtime dirs as a whole and
/// every socket under /run and /var/run, except those the policy allows.
pub fn host_unix_sockets(policy: &Policy) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if Path::new("/run/user").is_dir() {
        found.push(PathBuf::from("/run/user"));
    }
    fn scan(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        use std::os::unix::fs::FileTypeExt;
        if depth == 0 || dir == Path::new("/run/user") {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_socket() {
                out.push(e.path());
            } else if ft.is_dir() {
                scan(&e.path(), depth - 1, out);
            }
        }
    }
    // Every listening pathname socket of the host's network namespace,
    // wherever it is (a project dir, an IDE's, an agent's). Sockets a
    // daemon creates after this point stay a documented limit.
    found.extend(
        listening_unix_sockets()
            .into_iter()
            .filter(|p| !p.starts_with("/run/user")),
    );
    // Sockets bind-mounted in from another network namespace (zerobox in
    // a container with the host's docker.sock) are not in /proc/net/unix:
    // the usual places are also scanned (small tmpfs dirs).
    scan(Path::new("/run"), 5, &mut found);
    if let Ok(real) = std::fs::canonicalize("/var/run") {
        if real != Path::new("/run") {
            scan(&real, 5, &mut found);
        }
    }
    // Well-known daemon sockets under $HOME (Docker Desktop, Colima, Lima,
    // OrbStack, Rancher Desktop, rootless Podman): each is host root or
    // close to it. Sockets elsewhere are not found (see threat-model.md).
    for dir in [
        ".docker",
        ".colima",
        ".lima",
        ".orbstack",
        ".rd",
        ".local/share/containers",
    ] {
        let d = policy.home.join(dir);
        if d.is_dir() {
            scan(&d, 4, &mut found);
        }
    }
    if let Some(rt) = std::env::var_os("XDG_RUNTIME_DIR") {
        let rt = PathBuf::from(rt);
        if rt.is_absolute() && !rt.starts_with("/run/user") {
            scan(&rt, 3, &mut found);
        }
    }
    if let Ok(sock) = std::env::var("SSH_AUTH_SOCK") {
        let p = PathBuf::from(sock);
        if p.is_absolute() && !p.starts_with("/tmp") {
            found.push(p);
        }
    }
    // Rule paths are real paths: a socket bound as /var/run/x.sock (a
    // symlink to /run) or an $SSH_AUTH_SOCK that is a link is masked at
    // its real location (the mount layer never follows a link).
    let mut found: Vec<PathBuf> = found
        .iter()
        .map(|p| crate::policy::paths::canonical(p))
        .collect();
    found.retain(|p| !policy.unix_sockets.iter().any(|a| a == p));
    found.sort();
    found.dedup();
    // Only what is a socket on disk now (one lstat each): a listed socket
    // whose file was removed is unreachable by path, and every rule path
    // costs work in each later step.
    found.retain(|p| {
        use std::os::unix::fs::FileTypeExt;
        p == Path::new("/run/user")
            || std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket())
    });
    collapse_socket_dirs(policy, found)
}

/// A read-only directory that holds nothing but sockets to hide (a
/// daemon's socket dir) is masked as a whole: one mount instead of one per
/// socket. Only from a handful of sockets up, and never a directory the
/// command may write or one on the way to another rule path.
fn collapse_socket_dirs(policy: &Policy, found: Vec<PathBuf>) -> Vec<PathBuf> {
    use std::collections::BTreeMap;
    use std::os::unix::fs::FileTypeExt;
    const MIN: usize = 8;
    let mut by_dir: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for p in &found {
        if let Some(dir) = p.parent() {
            by_dir.entry(dir.to_path_buf()).or_default().push(p.clone());
        }
    }
    let mut out = Vec::new();
    for (dir, socks) in by_dir {
        let only_sockets = || {
            let names: std::collections::HashSet<&std::ffi::OsStr> =
                socks.iter().filter_map(|p| p.file_name()).collect();
            std::fs::read_dir(&dir).is_ok_and(|entries| {
                entries.flatten().all(|e| {
                    e.file_type().is_ok_and(|t| t.is_socket())
                        && names.contains(e.file_name().as_os_str())
                })
            })
        };
        let on_the_way = || {
            policy
                .fs
                .iter()
                .any(|r| r.path.starts_with(&dir) && r.path != dir)
        };
        if socks.len() >= MIN
            && !policy.effective(&dir).write
            && dir != Path::new("/")
            && !on_the_way()
            && only_sockets()
        {
            out.push(dir);
        } else {
            out.extend(socks);
        }
    }
    out.sort();
    out
}

/// Paths of the listening unix sockets in `/proc/net/unix` (flag
/// `__SO_ACCEPTCON`, a pathname rather than an abstract `@name`). One pass
/// over the kernel's list, proportional to the number of sockets, not to
/// the disk.
pub fn listening_unix_sockets() -> Vec<PathBuf> {
    match std::fs::read_to_string("/proc/net/unix") {
        Ok(text) => parse_proc_net_unix(&text),
        Err(_) => Vec::new(),
    }
}

fn parse_proc_net_unix(text: &str) -> Vec<PathBuf> {
    const SO_ACCEPTCON: u32 = 0x0001_0000;
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let mut fields = line.split_whitespace();
        let flags = fields
            .nth(3)
            .and_then(|f| u32::from_str_radix(f, 16).ok())
            .unwrap_or(0);
        // The path is the rest of the line after the inode: the fields
        // before it are hex and digits, so its leading " /" is the first.
        let Some(i) = line.find(" /") else { continue };
        if flags & SO_ACCEPTCON != 0 {
            out.push(PathBuf::from(&line[i + 1..]));
        }
    }
    out
}

/// A started sandbox.
pub struct Running {
    started: linux::Started,
    /// The proxy listener (network runs only): inside the sandbox's network
    /// namespace, or on host loopback in the fallback.
    pub listener: Option<std::net::TcpListener>,
    pub mode: Mode,
    cleanup: Cleanup,
}

/// Host-side leftovers to remove after the run.
#[derive(Default)]
struct Cleanup {
    private_tmp: Option<PathBuf>,
    /// Checked (and the journal removed) when dropped, after the command.
    guards: Option<guard::Guards>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(dir) = self.private_tmp.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        drop(self.guards.take());
    }
}

/// Start `spec` under `policy`: make the [`Plan`] and execute it. Must be
/// called before zerobox starts any thread. Prints the one-line notice
/// when a weaker mode is used.
pub fn spawn(policy: &Policy, spec: &Spec, opts: &Options) -> Result<Running, SandboxError> {
    // Before the plan, so the plan masks it as zerobox's own state (an
    // error is reported when the journal is written).
    let _ = guard::make_journal_dir();
    let plan = plan::plan(policy, opts)?;
    // Announce a weaker mode before the command can print anything.
    for w in &plan.weaker {
        crate::warn!("{w}");
    }
    // No retry in another mode: the probe chose it, and a failure now is
    // a refusal (exit 125), whatever the step.
    execute(plan, spec, opts)
}

/// Carry out `plan`. The only decisions left are the ones that need the
/// side effects (the fallback's proxy port, known once it is bound).
fn execute(mut plan: Plan, spec: &Spec, opts: &Options) -> Result<Running, SandboxError> {
    let mut cleanup = Cleanup::default();
    let mut spec = spec.clone();
    let mode = plan.mode;
    // Reaped once the sandbox is started (its teardown runs meanwhile).
    let probe_child = plan.probe_child.take();
    let tmpdir = plan.tmpdir.clone();
    cleanup.private_tmp = plan.create_private_tmp()?;
    // Network: in the namespace the planned port is free (a fresh network
    // namespace has nothing listening); in the fallback the listener is
    // bound on host loopback here and Landlock lets the command connect
    // to that port only.
    let mut host_listener = None;
    let mut landlock = plan.landlock.clone();
    let mut proxy_port = plan.proxy.as_ref().and_then(|p| p.port);
    if let (Some(net), Some(proxy)) = (&opts.network, &plan.proxy) {
        if !proxy.in_namespace {
            let l = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| {
                SandboxError::new(Stage::Internal, format!("bind the proxy listener: {e}"))
            })?;
            let port = l.local_addr().map(|a| a.port()).map_err(|e| {
                SandboxError::new(Stage::Internal, format!("the proxy listener's port: {e}"))
            })?;
            {
                use std::os::fd::AsRawFd;
                let _ = sys::set_backlog(l.as_raw_fd(), 4096);
            }
            host_listener = Some(l);
            proxy_port = Some(port);
            if let Some(req) = landlock.as_mut() {
                req.tcp_connect = vec![port];
            }
            for (name, content) in &net.tmp_files {
                let path = tmpdir.join(name);
                write_tmp_file(&path, content).map_err(|e| {
                    SandboxError::new(Stage::Internal, format!("write {}: {e}", path.display()))
                })?;
            }
        }
        if let Some(port) = proxy_port {
            for (k, v) in (net.env)(port, &tmpdir) {
                spec.env.retain(|(key, _)| *key != k);
                spec.env.push((k, v));
            }
        }
    }
    spec.env.retain(|(k, _)| k != "TMPDIR");
    spec.env
        .push(("TMPDIR".into(), tmpdir.display().to_string()));
    // Missing protected paths get no placeholder in the user's tree; they
    // are guarded from outside instead (see `guard`). First, what earlier
    // runs that were killed left to check.
    guard::recover();
    cleanup.guards = Some(guard::Guards::arm(plan.guarded.clone()));
    let (program, argv, envp) = linux::c_strings(&spec)?;
    if opts.debug {
        crate::errln!(
            "zerobox: debug: mode {mode:?}, landlock ABI {}",
            plan.landlock_abi
        );
        for s in &plan.mounts {
            crate::errln!("zerobox: debug: mount {s:?}");
        }
    }
    let seccomp = linux::seccomp::build(plan.seccomp)
        .map_err(|e| SandboxError::new(Stage::Seccomp, e.to_string()))?;
    let sigmask = block_forwarded_signals()
        .map_err(|e| SandboxError::new(Stage::Internal, format!("block signals: {e}")))?;
    // Transparent egress (namespace mode only: the fallback has no
    // namespace to capture in). The command may connect to the captured
    // ports too: inside the namespace they lead only to zerobox.
    let capture_ports: Vec<u16> = match (&opts.network, mode, proxy_port) {
        (Some(net), Mode::Namespaces, Some(pp)) if !opts.share_net => net
            .capture_ports
            .iter()
            .copied()
            // Not the proxy's own port, not DNS (both bound on loopback
            // already): those stay reachable through the proxy only.
            .filter(|p| *p != pp && *p != 53)
            .collect(),
        _ => Vec::new(),
    };
    if let (Some(req), false) = (landlock.as_mut(), capture_ports.is_empty()) {
        // DNS over TCP, then the captured ports.
        req.tcp_connect.push(53);
        req.tcp_connect.extend(&capture_ports);
    }
    let prep = linux::Prepared {
        sigmask,
        mode,
        cgroup_parent: plan.cgroup_parent,
        policy: plan.policy,
        steps: plan.mounts,
        landlock,
        seccomp,
        program,
        argv,
        envp,
        cwd: spec.cwd.clone(),
        debug: opts.debug,
        proxy_port: proxy_port.filter(|_| mode == Mode::Namespaces),
        capture_ports,
        capture_v6: !Simulated::from_env().no_ipv6,
        share_net: opts.share_net,
        private_tmp: cleanup.private_tmp.clone(),
        limits: opts.limits,
        tmp_files: match (&opts.network, mode) {
            (Some(net), Mode::Namespaces) => net.tmp_files.clone(),
            _ => Vec::new(),
        },
        notify: opts.notify.clone(),
    };
    let started = linux::start(&prep).inspect_err(|_| {
        let _ = sys::set_sigmask(&prep.sigmask);
    });
    drop(probe_child);
    let started = started?;
    let mut started = started;
    let listener = started.listener.take().or(host_listener);
    // The command runs: watch the guarded names while it does.
    if let Some(g) = cleanup.guards.as_mut() {
        g.watch();
    }
    Ok(Running {
        started,
        listener,
        mode,
        cleanup,
    })
}

/// Write one of the network's files into the sandbox's temp dir (its
/// parent directories created as needed).
pub(crate) fn write_tmp_file(path: &Path, content: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, content)
}

impl Running {
    pub fn pid(&self) -> libc::pid_t {
        self.started.pid
    }

    /// The transparent-egress sockets PID 1 bound inside the network
    /// namespace (DNS, then one TCP listener per captured port), if asked for.
    pub fn take_capture(&mut self) -> Option<linux::Capture> {
        self.started.capture.take()
    }

    /// Kill the sandbox (its PID 1 takes everything with it) and reap it.
    pub fn kill(&self) {
        let _ = sys::kill(self.started.pid, libc::SIGKILL);
        let _ = sys::waitpid(self.started.pid, 0);
        self.end_orphans();
    }

    /// Fallback: end whatever came back to zerobox, a subreaper (the
    /// reaper normally leaves nothing; see `linux::reaper`).
    fn end_orphans(&self) {
        if self.mode == Mode::LandlockOnly {
            if let Err(e) = linux::reaper::kill_descendants() {
                crate::errln!("zerobox: error: could not end every sandbox process: {e}");
            }
        }
    }

    /// Relay signals until the sandbox exits; return its exit code.
    /// Signals must have been blocked with [`block_forwarded_signals`]
    /// before [`spawn`].
    pub fn wait(self) -> i32 {
        let mut waited: Vec<libc::c_int> = FORWARDED_SIGNALS.to_vec();
        waited.push(libc::SIGCHLD);
        let pid = self.started.pid;
        let session_leader = sys::is_session_leader();
        let code = loop {
            let Ok(info) = sys::sigwaitinfo(&waited) else {
                continue;
            };
            let sig = info.si_signo;
            if sig == libc::SIGCHLD {
                match sys::waitpid(pid, libc::WNOHANG) {
                    Ok((p, st)) if p == pid => break sys::exit_code(st),
                    Ok(_) => {}
                    Err(_) => break EXIT_SETUP,
                }
                // PID 1 reports the command's status once nothing else of
                // the sandbox runs (the report also raises SIGCHLD): the
                // teardown of its namespaces need not hold up the exit.
                if let Some(code) = self.started.reported_exit() {
                    break code;
                }
                continue;
            }
            let from_tty = sys::si_code(&info) == libc::SI_KERNEL;
            // A hang-up reaches only the session's leader: when that is
            // zerobox (run straight from tmux, `ssh -t`, a terminal
            // window), the command would never hear of it and would run
            // on with no terminal. Relay it like a sent signal.
            if from_tty && sig == libc::SIGHUP && session_leader {
                let _ = sys::kill(pid, sig);
                continue;
            }
            if from_tty {
                // The terminal signalled the whole process group, the
                // command included. Follow a stop so the shell sees the job
                // stopped; ignore the rest (the command got them).
                if matches!(sig, libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU) {
                    let _ = sys::kill(std::process::id() as libc::pid_t, libc::SIGSTOP);
                }
                continue;
            }
            let _ = sys::kill(pid, sig);
        };
        self.end_orphans();
        drop(self.cleanup);
        code
    }
}

/// Block the relayed signals in zerobox itself (call before [`spawn`]);
/// returns the previous mask, which the command gets back.
pub fn block_forwarded_signals() -> std::io::Result<libc::sigset_t> {
    let mut sigs: Vec<libc::c_int> = FORWARDED_SIGNALS.to_vec();
    sigs.push(libc::SIGCHLD);
    sys::block_signals(&sigs)
}

/// Make zerobox itself non-dumpable: no core dump can carry a secret, and
/// no process without CAP_SYS_PTRACE can read its memory or
/// `/proc/PID/environ` — not even a sandboxed command running as the same
/// user in the Landlock-only fallback, where zerobox is its parent. The
/// sandbox's PID 1 is forked from zerobox and inherits this; the command's
/// own `execve` resets it for the command only.
pub fn make_undumpable() {
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0);
}

/// Blank secret values out of zerobox's own command line (see
/// `sys::scrub_cmdline`). Call before [`spawn`].
pub fn scrub_cmdline(values: &[&[u8]]) {
    sys::scrub_cmdline(values);
}

/// What `doctor` reports.
#[derive(Debug, Serialize)]
pub struct Probe {
    pub kernel: String,
    pub user_namespaces: Result<(), String>,
    /// Each namespace kind on its own (with a user namespace).
    pub each_namespace: Vec<(&'static str, Result<(), String>)>,
    pub apparmor_restricts_userns: Option<bool>,
    pub landlock_abi: i32,
    pub seccomp: bool,
    pub uid: u32,
}

pub fn probe() -> Probe {
    let sim = Simulated::from_env();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let apparmor =
        std::fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
            .ok()
            .map(|s| s.trim() == "1");
    let user_namespaces = if sim.no_userns {
        Err("disabled (simulated by ZEROBOX_SIMULATE_MISSING)".into())
    } else {
        linux::probe_namespaces()
    };
    let seccomp = std::fs::read_to_string("/proc/self/status")
        .map(|s| s.contains("Seccomp:"))
        .unwrap_or(false);
    Probe {
        kernel,
        user_namespaces,
        each_namespace: if sim.no_userns {
            Vec::new()
        } else {
            linux::probe_each_namespace()
        },
        apparmor_restricts_userns: apparmor,
        landlock_abi: landlock_abi(sim),
        seccomp,
        uid: sys::getuid(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_unix_listening_pathname_sockets_only() {
        let text = "Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 195690 /var/tmp/a b/svc.sock
0000000000000000: 00000003 00000000 00000000 0001 03  2218 /run/connected.sock
0000000000000000: 00000002 00000000 00010000 0001 01  2219 @abstract
0000000000000000: 00000002 00000000 00010000 0005 01  2220
0000000000000000: 00000002 00000000 00010000 0002 01  2221 /run/dgram /x
";
        assert_eq!(
            parse_proc_net_unix(text),
            vec![
                PathBuf::from("/var/tmp/a b/svc.sock"),
                PathBuf::from("/run/dgram /x")
            ]
        );
    }
}
