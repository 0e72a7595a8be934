//! Enforcement of a resolved [`Policy`]: one entry, [`spawn`], which starts
//! the command in the strongest sandbox the machine offers (or refuses), and
//! [`Running::wait`], which relays signals and returns the exit code.
//!
//! Knows nothing about presets or YAML: it takes plain data.

pub mod linux;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::policy::{defaults, FsAccess, FsRule, Policy};
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

/// The setup stage a failure happened in (decides fallback and wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    Input = 1,
    Namespaces = 2,
    Landlock = 3,
    Capabilities = 4,
    Seccomp = 5,
    Exec = 6,
    Internal = 7,
}

impl Stage {
    fn from_u8(b: u8) -> Stage {
        match b {
            1 => Stage::Input,
            2 => Stage::Namespaces,
            3 => Stage::Landlock,
            4 => Stage::Capabilities,
            5 => Stage::Seccomp,
            6 => Stage::Exec,
            _ => Stage::Internal,
        }
    }
}

#[derive(Debug)]
pub struct SandboxError {
    pub stage: Stage,
    pub message: String,
    pub errno: i32,
}

impl SandboxError {
    pub fn new(stage: Stage, message: impl Into<String>) -> Self {
        SandboxError {
            stage,
            message: message.into(),
            errno: 0,
        }
    }
}

impl std::fmt::Display for SandboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
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
}

/// What the proxy needs from the sandbox and gives to it.
#[derive(Clone)]
pub struct NetworkRequest {
    /// Files to place in the sandbox's temp dir (e.g. `zerobox/ca.pem`).
    pub tmp_files: Vec<(String, Vec<u8>)>,
    /// Environment to add, given the proxy port and the sandbox's temp dir
    /// (proxy variables, CA bundle paths).
    pub env: fn(port: u16, tmpdir: &Path) -> Vec<(String, String)>,
}

/// Layers simulated as missing (`ZEROBOX_SIMULATE_MISSING=userns,landlock`),
/// so tests can exercise the fallback and refusal paths on any machine. It
/// can only make zerobox weaker-or-refusing, never skip a check silently:
/// every fallback is announced and `--strict` still refuses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Simulated {
    pub no_userns: bool,
    pub no_landlock: bool,
}

impl Simulated {
    pub fn from_env() -> Self {
        let v = std::env::var("ZEROBOX_SIMULATE_MISSING").unwrap_or_default();
        Simulated {
            no_userns: v.split(',').any(|s| s == "userns"),
            no_landlock: v.split(',').any(|s| s == "landlock"),
        }
    }
}

/// The Landlock ABI this run can use (0: none).
pub fn landlock_abi(sim: Simulated) -> i32 {
    if sim.no_landlock {
        0
    } else {
        sys::landlock_abi()
    }
}

/// Rules the sandbox adds to every policy in a mode: writable devices, the
/// private temp dir, the cwd readable, host unix sockets hidden.
pub fn implicit_rules(policy: &Policy, mode: Mode, tmpdir: &Path) -> Vec<FsRule> {
    let rule = |path: &str, access, origin: &str| FsRule {
        path: PathBuf::from(path),
        access,
        origin: origin.to_string(),
    };
    let mut rules = Vec::new();
    for dev in defaults::WRITABLE_DEVICES {
        rules.push(rule(dev, FsAccess::AllowWrite, "devices"));
    }
    rules.push(rule("/dev/pts", FsAccess::AllowWrite, "devices"));
    rules.push(rule("/dev/ptmx", FsAccess::AllowWrite, "devices"));
    if mode == Mode::Namespaces {
        rules.push(rule("/dev/shm", FsAccess::AllowWrite, "devices"));
    }
    rules.push(FsRule {
        path: tmpdir.to_path_buf(),
        access: FsAccess::AllowWrite,
        origin: "private temp dir".into(),
    });
    rules.push(FsRule {
        path: policy.cwd.clone(),
        access: FsAccess::AllowRead,
        origin: "cwd".into(),
    });
    for sock in host_unix_sockets(policy) {
        rules.push(FsRule {
            path: sock,
            access: FsAccess::DenyRead,
            origin: "host unix sockets".into(),
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
    found.retain(|p| !policy.unix_sockets.iter().any(|a| a == p));
    found.sort();
    found.dedup();
    found
}

/// What `explain` shows about enforcement.
#[derive(Debug, Serialize)]
pub struct Enforcement {
    pub mode: Mode,
    pub layers: Vec<String>,
    pub weaker: Vec<String>,
    pub mounts: Vec<linux::mounts::Step>,
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
    placeholders: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(dir) = self.private_tmp.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        for p in self.placeholders.iter().rev() {
            // Only if still empty: anything else is not ours to delete.
            match std::fs::symlink_metadata(p) {
                Ok(m) if m.is_dir() => {
                    let _ = std::fs::remove_dir(p);
                }
                Ok(m)
                    if m.is_file()
                        && std::fs::read(p).is_ok_and(|c| c == placeholder_content(p)) =>
                {
                    let _ = std::fs::remove_file(p);
                }
                _ => {}
            }
        }
    }
}

/// Decide the mode for this machine and options, or refuse.
fn choose_mode(opts: &Options, sim: Simulated) -> Result<(Mode, Vec<String>), SandboxError> {
    let abi = landlock_abi(sim);
    let mut weaker = Vec::new();
    if sim.no_userns {
        return fallback_mode(opts, abi, "user namespaces are disabled (simulated)");
    }
    if abi == 0 {
        if opts.strict {
            return Err(SandboxError::new(
                Stage::Landlock,
                "Landlock is not available on this kernel and --strict refuses to run without it (run `zerobox doctor`)",
            ));
        }
        weaker.push("Landlock unavailable: namespaces and seccomp only".into());
    }
    Ok((Mode::Namespaces, weaker))
}

fn fallback_mode(opts: &Options, abi: i32, why: &str) -> Result<(Mode, Vec<String>), SandboxError> {
    if abi == 0 {
        return Err(SandboxError::new(
            Stage::Namespaces,
            format!(
                "no sandbox layer available: {why} and Landlock is missing; run `zerobox doctor`, or pass --no-sandbox to run unprotected"
            ),
        ));
    }
    if opts.strict {
        return Err(SandboxError::new(
            Stage::Namespaces,
            format!("{why}; --strict refuses the Landlock-only fallback (run `zerobox doctor`)"),
        ));
    }
    Ok((
        Mode::LandlockOnly,
        vec![format!(
            "{why}: running with Landlock + seccomp only (no private /tmp, no pid isolation, host unix sockets reachable; a writable directory that contains write-protected paths is writable only in its subdirectories)"
        )],
    ))
}

/// Everything `explain` prints about enforcement, without running.
pub fn describe(policy: &Policy, opts: &Options) -> Result<Enforcement, SandboxError> {
    let sim = Simulated::from_env();
    let (mode, weaker) = choose_mode(opts, sim)?;
    let abi = landlock_abi(sim);
    let tmp = if mode == Mode::Namespaces {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir().join("zerobox-XXXXXX")
    };
    let full = with_rules(policy, implicit_rules(policy, mode, &tmp));
    let mut layers = Vec::new();
    if mode == Mode::Namespaces {
        layers.push("namespaces: user, mount, net (only lo), pid (own init), ipc, uts".into());
        layers
            .push("mounts: host read-only, private /tmp, minimal /dev, fresh /proc, masks".into());
    }
    if abi > 0 {
        let mut l = format!("landlock ABI {abi}: filesystem rules");
        if abi >= 4 {
            l.push_str(", TCP bind/connect denied");
        }
        if abi >= 6 {
            l.push_str(", abstract unix sockets and signals scoped");
        }
        layers.push(l);
    }
    layers.push("seccomp: mount, namespaces, ptrace, bpf, keyrings, io_uring, TIOCSTI, raw sockets … refused".into());
    layers.push("capabilities: all dropped, no_new_privs".into());
    if opts.share_net {
        layers.push("network: the host's own (--share-net): no isolation".into());
    } else if policy.network.wants_network() || !policy.secrets.is_empty() {
        layers.push(format!(
            "network: only through zerobox's proxy ({}); {}",
            if policy.network.allow_any {
                "any host".to_string()
            } else {
                format!("{} host pattern(s)", policy.network.allow.len())
            },
            if mode == Mode::Namespaces {
                "its listener is the only socket in the sandbox's network namespace"
            } else {
                "on host loopback, Landlock allows TCP connect to its port only"
            }
        ));
    } else {
        layers.push("network: none (only lo)".into());
    }
    let mounts = if mode == Mode::Namespaces {
        linux::mounts::plan(&full)
    } else {
        Vec::new()
    };
    Ok(Enforcement {
        mode,
        layers,
        weaker,
        mounts,
    })
}

fn with_rules(policy: &Policy, extra: Vec<FsRule>) -> Policy {
    let mut p = policy.clone();
    p.fs.extend(extra);
    p.fs.sort_by(|a, b| a.path.cmp(&b.path).then(a.access.cmp(&b.access)));
    p.fs.dedup_by(|a, b| a.path == b.path && a.access == b.access);
    p
}

/// Start `spec` under `policy`. Must be called before zerobox starts any
/// thread. Prints the one-line notice when a weaker mode is used.
pub fn spawn(policy: &Policy, spec: &Spec, opts: &Options) -> Result<Running, SandboxError> {
    let sim = Simulated::from_env();
    let (mut mode, mut weaker) = choose_mode(opts, sim)?;
    loop {
        // Announce a weaker mode before the command can print anything.
        // (A namespace failure below is only known after the attempt.)
        for w in &weaker {
            crate::warn!("{w}");
        }
        match try_spawn(policy, spec, opts, mode, sim) {
            Ok(r) => return Ok(r),
            Err(e) if e.stage == Stage::Namespaces && mode == Mode::Namespaces => {
                let why = format!("user namespaces unusable ({})", e.message);
                (mode, weaker) = fallback_mode(opts, landlock_abi(sim), &why)?;
            }
            Err(e) => return Err(e),
        }
    }
}

fn try_spawn(
    policy: &Policy,
    spec: &Spec,
    opts: &Options,
    mode: Mode,
    sim: Simulated,
) -> Result<Running, SandboxError> {
    let mut cleanup = Cleanup::default();
    let mut spec = spec.clone();
    let abi = landlock_abi(sim);
    let tmpdir = match mode {
        Mode::Namespaces => PathBuf::from("/tmp"),
        Mode::LandlockOnly => {
            let dir = private_tmp_dir().map_err(|e| {
                SandboxError::new(Stage::Internal, format!("create a private temp dir: {e}"))
            })?;
            cleanup.private_tmp = Some(dir.clone());
            dir
        }
    };
    // Network: the proxy port. In the namespace any port is free (a fresh
    // network namespace has nothing listening); in the fallback the
    // listener is bound on host loopback here and Landlock lets the command
    // connect to that port only.
    let mut host_listener = None;
    let mut proxy_port = None;
    if let Some(net) = &opts.network {
        let port = match mode {
            Mode::Namespaces => 20000 + (rand::random::<u16>() % 40000),
            Mode::LandlockOnly => {
                if abi < 4 {
                    return Err(SandboxError::new(
                        Stage::Landlock,
                        "network without a network namespace needs Landlock ABI >= 4 to confine TCP to the proxy; refusing --allow-net (run `zerobox doctor`)",
                    ));
                }
                let l = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| {
                    SandboxError::new(Stage::Internal, format!("bind the proxy listener: {e}"))
                })?;
                let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
                {
                    use std::os::fd::AsRawFd;
                    let _ = sys::set_backlog(l.as_raw_fd(), 4096);
                }
                host_listener = Some(l);
                port
            }
        };
        proxy_port = Some(port);
        for (k, v) in (net.env)(port, &tmpdir) {
            spec.env.retain(|(key, _)| *key != k);
            spec.env.push((k, v));
        }
        if mode == Mode::LandlockOnly {
            for (name, content) in &net.tmp_files {
                let path = tmpdir.join(name);
                write_tmp_file(&path, content).map_err(|e| {
                    SandboxError::new(Stage::Internal, format!("write {}: {e}", path.display()))
                })?;
            }
        }
    }
    spec.env.retain(|(k, _)| k != "TMPDIR");
    spec.env
        .push(("TMPDIR".into(), tmpdir.display().to_string()));
    let full = with_rules(policy, implicit_rules(policy, mode, &tmpdir));
    cleanup.placeholders = create_placeholders(&full);
    let (program, argv, envp) = linux::c_strings(&spec)?;
    let steps = if mode == Mode::Namespaces {
        linux::mounts::plan(&full)
    } else {
        Vec::new()
    };
    if opts.debug {
        crate::errln!("zerobox: debug: mode {mode:?}, landlock ABI {abi}");
        for s in &steps {
            crate::errln!("zerobox: debug: mount {s:?}");
        }
    }
    let seccomp = linux::seccomp::build(linux::seccomp::SocketRules {
        deny_inet_udp: mode == Mode::LandlockOnly && !opts.share_net,
        deny_inet: mode == Mode::LandlockOnly && opts.network.is_none() && !opts.share_net,
    })
    .map_err(|e| SandboxError::new(Stage::Seccomp, e.to_string()))?;
    let mut relayed: Vec<libc::c_int> = FORWARDED_SIGNALS.to_vec();
    relayed.push(libc::SIGCHLD);
    let ignored = relayed
        .into_iter()
        .filter(|s| sys::is_ignored(*s))
        .collect();
    let sigmask = block_forwarded_signals()
        .map_err(|e| SandboxError::new(Stage::Internal, format!("block signals: {e}")))?;
    let prep = linux::Prepared {
        sigmask,
        ignored,
        mode,
        policy: full,
        steps,
        landlock: (abi > 0).then(|| linux::landlock::Request {
            abi,
            precise_writes: mode == Mode::LandlockOnly,
            tcp_connect: proxy_port.into_iter().collect(),
            restrict_tcp: !opts.share_net,
        }),
        seccomp,
        program,
        argv,
        envp,
        cwd: spec.cwd.clone(),
        debug: opts.debug,
        proxy_port: proxy_port.filter(|_| mode == Mode::Namespaces),
        share_net: opts.share_net,
        tmp_files: match (&opts.network, mode) {
            (Some(net), Mode::Namespaces) => net.tmp_files.clone(),
            _ => Vec::new(),
        },
    };
    let started = linux::start(&prep).map_err(|mut e| {
        let _ = sys::set_sigmask(&prep.sigmask);
        e.message = match e.stage {
            Stage::Exec => e.message,
            Stage::Namespaces => format!("namespaces: {}", e.message),
            Stage::Landlock => format!(
                "{} (the Landlock layer could not be set up; run `zerobox doctor`, or pass --no-sandbox to run unprotected)",
                e.message
            ),
            _ => format!("{} (run `zerobox doctor`)", e.message),
        };
        e
    })?;
    let listener = match mode {
        Mode::Namespaces => None,
        Mode::LandlockOnly => host_listener,
    };
    let mut started = started;
    let listener = started.listener.take().or(listener);
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

/// A fresh 0700 directory under the host's temp dir (fallback mode).
fn private_tmp_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for _ in 0..16 {
        let name = format!(
            "zerobox-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        let dir = base.join(name);
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no unique name"))
}

/// A denied path that does not exist yet but could be created (its nearest
/// existing parent is writable in the policy) gets an empty placeholder, so
/// the mask or read-only bind (and the Landlock complement) covers it for the
/// whole run: a file if its name has an extension (`settings.json`,
/// `config.toml`: programs that read it see an empty file, or `{}` for
/// JSON), else a directory. Removed afterwards if still as created.
fn create_placeholders(policy: &Policy) -> Vec<PathBuf> {
    let mut created = Vec::new();
    for rule in &policy.fs {
        if rule.access != FsAccess::DenyRead && rule.access != FsAccess::DenyWrite {
            continue;
        }
        if std::fs::symlink_metadata(&rule.path).is_ok() {
            continue;
        }
        let mut existing = rule.path.as_path();
        let mut missing = Vec::new();
        while std::fs::symlink_metadata(existing).is_err() {
            missing.push(existing.to_path_buf());
            match existing.parent() {
                Some(p) => existing = p,
                None => break,
            }
        }
        if !policy.effective(existing).write {
            continue; // cannot be created during the run
        }
        for path in missing.iter().rev() {
            let made = if path == &rule.path && looks_like_a_file(path) {
                use std::io::Write;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
                    .and_then(|mut f| f.write_all(placeholder_content(path)))
                    .is_ok()
            } else {
                std::fs::create_dir(path).is_ok()
            };
            if made {
                created.push(path.clone());
            }
        }
    }
    created
}

/// What a placeholder file holds: `{}` for JSON (an empty file is invalid
/// JSON, and agents such as Gemini CLI refuse to start on it), else nothing.
fn placeholder_content(path: &Path) -> &'static [u8] {
    if path.extension().is_some_and(|e| e == "json") {
        b"{}\n"
    } else {
        b""
    }
}

/// `name.ext` (not a leading-dot name like `.ssh`).
fn looks_like_a_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.trim_start_matches('.').contains('.'))
}

impl Running {
    pub fn pid(&self) -> libc::pid_t {
        self.started.pid
    }

    /// Kill the sandbox (its PID 1 takes everything with it) and reap it.
    pub fn kill(&self) {
        let _ = sys::kill(self.started.pid, libc::SIGKILL);
        let _ = sys::waitpid(self.started.pid, 0);
    }

    /// Relay signals until the sandbox exits; return its exit code.
    /// Signals must have been blocked with [`block_forwarded_signals`]
    /// before [`spawn`].
    pub fn wait(self) -> i32 {
        let mut waited: Vec<libc::c_int> = FORWARDED_SIGNALS.to_vec();
        waited.push(libc::SIGCHLD);
        let pid = self.started.pid;
        let code = loop {
            let Ok(info) = sys::sigwaitinfo(&waited) else {
                continue;
            };
            let sig = info.si_signo;
            if sig == libc::SIGCHLD {
                match sys::waitpid(pid, libc::WNOHANG) {
                    Ok((p, st)) if p == pid => break sys::exit_code(st),
                    Ok(_) => continue,
                    Err(_) => break EXIT_SETUP,
                }
            }
            let from_tty = sys::si_code(&info) == libc::SI_KERNEL;
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
