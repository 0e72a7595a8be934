//! One run, end to end: resolve the policy, find the command, start the
//! sandbox, relay signals, return the exit code, clean up. Also `explain`
//! (the same resolution, printed instead of run) and `doctor`.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

mod error;

pub use error::LaunchError;

use crate::exit;
use crate::policy::{self, FsAccess, Origin, PathContext, Policy, PolicyLayer};
use crate::sandbox::{self, Options, Spec};

/// Everything the CLI (or a preset) hands to the launcher.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// Policy layers after the defaults, in merge order (CLI last).
    pub layers: Vec<PolicyLayer>,
    pub command: Vec<OsString>,
    pub cwd: Option<PathBuf>,
    pub no_sandbox: bool,
    pub strict: bool,
    pub debug: bool,
    /// `--secret NAME=VALUE` values (never part of the policy).
    pub inline_secrets: InlineSecrets,
    /// `--resolve HOST:PORT:ADDR` pins for the proxy.
    pub resolve: Vec<String>,
    /// `--ca-cert FILE`: extra roots for upstream verification.
    pub ca_certs: Vec<PathBuf>,
    pub net_log: Option<PathBuf>,
    /// `--share-net`: raw host network, no proxy.
    pub share_net: bool,
    /// `--allow-weak-net`: network in the Landlock-only fallback is accepted.
    pub allow_weak_net: bool,
    /// `--quiet`: no end-of-run "blocked" lines (warnings still print).
    pub quiet: bool,
    /// `--tmp-size`, `--pids`, `--memory`.
    pub limits: sandbox::linux::limits::Limits,
    /// `--build-profile` / `learn`: watches the run (see [`Watcher`]).
    pub watcher: Option<WatcherRef>,
}

/// A run watched by `--build-profile` or `learn` (implemented by
/// `profile::session`): it decides the command's path calls (seccomp user
/// notification) and hosts the rules do not allow (the proxy's hook).
pub trait Watcher: Send + Sync {
    /// With the run's resolved policy, before the sandbox starts: the
    /// supervisor of the command's path calls.
    fn supervisor(
        self: std::sync::Arc<Self>,
        policy: &Policy,
    ) -> Result<std::sync::Arc<dyn sandbox::linux::notify::Decide>, crate::exit::Fatal>;
    /// The proxy's host hook (the proxy always runs for a watched run).
    fn host_hook(self: std::sync::Arc<Self>) -> std::sync::Arc<dyn crate::proxy::HostHook>;
    /// The sandbox runs; `pid` is its PID 1.
    fn started(&self, pid: i32);
    /// After the run: the exit code zerobox returns.
    fn finish(&self, code: i32) -> Result<i32, crate::exit::Fatal>;
}

/// A [`Watcher`] in a [`RunRequest`] (which is `Debug`).
#[derive(Clone)]
pub struct WatcherRef(pub std::sync::Arc<dyn Watcher>);

impl std::fmt::Debug for WatcherRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watcher")
    }
}

/// `--secret NAME=VALUE` values; Debug shows the names only.
#[derive(Clone, Default)]
pub struct InlineSecrets(pub Vec<(String, zeroize::Zeroizing<String>)>);

impl InlineSecrets {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Debug for InlineSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(n, _)| format!("{n}=<redacted>")))
            .finish()
    }
}

/// The resolved run: policy plus the program to execute.
struct Resolved {
    policy: Policy,
    spec: Spec,
    protection: crate::protect::Protection,
}

/// `for_run`: false for `explain`, which must write nothing.
fn resolve(req: &RunRequest, for_run: bool) -> Result<Resolved, LaunchError> {
    let cwd = match &req.cwd {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().map_err(LaunchError::CurrentDir)?,
    };
    let cwd = std::fs::canonicalize(&cwd).map_err(|source| LaunchError::Cwd {
        path: cwd.clone(),
        source,
    })?;
    if !cwd.is_dir() {
        return Err(LaunchError::CwdNotDir { path: cwd });
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .or_else(|| directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf()))
        .ok_or(LaunchError::NoHome)?;
    let ctx = PathContext {
        home: policy::paths::canonical(&home),
        cwd: cwd.clone(),
        tmpdir: PathBuf::from("/tmp"),
    };
    // The deny list covers the account's home too, whatever HOME says.
    let account_home = sandbox::linux::account::account_home()
        .map(|h| policy::paths::canonical(&h))
        .filter(|h| *h != ctx.home && h != Path::new("/"));
    let mut layers = vec![
        policy::defaults_layer_for(account_home.as_slice()),
        own_state_layer(account_home.as_deref()),
    ];
    layers.extend(req.layers.iter().cloned());
    // Git metadata and agent state found on disk: extra write denies, last.
    let protection = crate::protect::Protection::prepare(&layers, &ctx, for_run);
    layers.push(protection.layer());
    let host_env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let policy = policy::resolve(&layers, &ctx, &host_env)?;
    check_supported(&policy, req)?;
    for rule in &policy.fs {
        if rule.access == FsAccess::AllowWrite
            && rule.origin == Origin::Cli
            && std::fs::symlink_metadata(&rule.path).is_err()
        {
            crate::warn!(
                "--allow-write path does not exist, nothing granted: {}",
                rule.path.display()
            );
        }
        if (rule.path == Path::new("/"))
            && matches!(rule.access, FsAccess::AllowWrite | FsAccess::DenyRead)
        {
            // Plain words, not the enum's name (`AllowWrite`).
            let what = match rule.access {
                FsAccess::AllowWrite => "write access on /",
                _ => "a read deny on / (everything hidden)",
            };
            return Err(LaunchError::WholeFilesystem {
                what,
                origin: rule.origin.clone(),
            });
        }
    }
    let Some(name) = req.command.first() else {
        return Err(LaunchError::NoCommand);
    };
    let path_var = policy.env.get("PATH").cloned().unwrap_or_default();
    let program = find_program(name, &path_var, &cwd)?;
    let spec = Spec {
        program,
        argv: req.command.clone(),
        env: policy
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        cwd,
    };
    Ok(Resolved {
        policy,
        spec,
        protection,
    })
}

/// A preset's write grants for the agent's own state under HOME (`~/.claude`,
/// `~/.codex`, …) are created as empty 0700 directories when missing, as
/// the agent would on its first unsandboxed run: inside, HOME itself is not
/// writable. Only directory-like names (no extension), only under HOME,
/// only from presets (a CLI path that does not exist gets a warning).
fn create_state_dirs(policy: &Policy, debug: bool) {
    use std::os::unix::fs::DirBuilderExt;
    for rule in &policy.fs {
        if rule.access != FsAccess::AllowWrite
            || !rule.origin.is_preset()
            || !rule.path.starts_with(&policy.home)
            || rule.path == policy.home
            || std::fs::symlink_metadata(&rule.path).is_ok()
        {
            continue;
        }
        let name = rule.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.trim_start_matches('.').contains('.') {
            continue; // a file (`~/.claude.json`): the agent creates it
        }
        let made = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&rule.path);
        if debug {
            crate::errln!(
                "zerobox: debug: create state dir {} for {}: {}",
                rule.path.display(),
                rule.origin,
                if made.is_ok() { "ok" } else { "failed" }
            );
        }
    }
    create_denied_dirs_in_state_dirs(policy, debug);
}

/// A write-denied directory inside an agent's state dir (`~/.codex/skills`,
/// `~/.cache/opencode/bin`) that does not exist yet is created empty
/// (0700), so the deny can hold it read-only. Otherwise the agent makes it
/// itself at every start (Codex installs its bundled skills, opencode its
/// tool dir), and every run would leave a quarantined copy behind. An
/// empty directory there is what the agent would create anyway (a dotfile
/// such as `~/.codex/.env`: an empty file, which loads nothing). Only the
/// last component, only under a real (not symlinked) parent inside a
/// preset's state-dir grant under HOME that is not the project.
fn create_denied_dirs_in_state_dirs(policy: &Policy, debug: bool) {
    use std::os::unix::fs::DirBuilderExt;
    let state_dirs: Vec<&Path> = policy
        .fs
        .iter()
        .filter(|r| {
            r.access == FsAccess::AllowWrite
                && r.origin.is_preset()
                && r.path.starts_with(&policy.home)
                && r.path != policy.home
                && !policy.cwd.starts_with(&r.path)
        })
        .map(|r| r.path.as_path())
        .collect();
    if state_dirs.is_empty() {
        return;
    }
    for rule in &policy.fs {
        if !matches!(rule.access, FsAccess::DenyWrite | FsAccess::DenyRead) {
            continue;
        }
        let (Some(parent), Some(name)) = (
            rule.path.parent(),
            rule.path.file_name().and_then(|n| n.to_str()),
        ) else {
            continue;
        };
        // A name with a dot is a file (`hooks.json`): left missing. A
        // dotfile (`.env`) is made an empty file, never a directory
        // (Codex loads `~/.codex/.env`: a directory there stops it).
        // The disk is looked at last: a run with a thousand deny paths
        // and no state dir does no `lstat` here.
        let dotfile = name.starts_with('.') && !name[1..].contains('.');
        if name.contains('.') && !dotfile
            || !state_dirs.iter().any(|d| parent.starts_with(d))
            || std::fs::symlink_metadata(&rule.path).is_ok()
            || !std::fs::symlink_metadata(parent).is_ok_and(|m| m.is_dir())
        {
            continue;
        }
        let made = if dotfile {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&rule.path)
                .map(drop)
        } else {
            std::fs::DirBuilder::new().mode(0o700).create(&rule.path)
        };
        if debug {
            crate::errln!(
                "zerobox: debug: create denied dir {} ({}): {}",
                rule.path.display(),
                rule.origin,
                if made.is_ok() { "ok" } else { "failed" }
            );
        }
    }
}

/// zerobox's own state is never readable (the CA key) nor writable (trusted
/// keys and files, the preset cache) from inside, whatever else is granted.
///
/// The cache is unwritable too: presets there are verified on every load,
/// but it also remembers the highest registry serial seen, which is what
/// refuses a rollback.
fn own_state_layer(account_home: Option<&Path>) -> PolicyLayer {
    use crate::dirs::{zerobox_dir, Kind};
    let mut layer = PolicyLayer::new(Origin::OwnState);
    if let Some(d) = zerobox_dir(Kind::Data) {
        layer.read_deny.push(d.display().to_string());
    }
    for kind in [Kind::Config, Kind::Cache] {
        if let Some(d) = zerobox_dir(kind) {
            layer.write_deny.push(d.display().to_string());
        }
    }
    // The same under the account's home when HOME points elsewhere.
    if let Some(home) = account_home {
        layer
            .read_deny
            .push(home.join(".local/share/zerobox").display().to_string());
        for d in [".config/zerobox", ".cache/zerobox"] {
            layer.write_deny.push(home.join(d).display().to_string());
        }
    }
    layer
}

/// Checks of the network request that need no proxy yet.
fn check_supported(policy: &Policy, req: &RunRequest) -> Result<(), LaunchError> {
    if req.share_net && (policy.network.wants_network() || !policy.secrets.is_empty()) {
        return Err(LaunchError::ShareNetWithProxy);
    }
    for r in &req.resolve {
        crate::proxy::parse_resolve(r).map_err(LaunchError::Resolve)?;
    }
    // Files named by network flags are checked up front, network or not:
    // a typo is bad input (exit 2), not a setup failure later.
    for ca in &req.ca_certs {
        if std::fs::File::open(ca).is_err() || !ca.is_file() {
            return Err(LaunchError::CaCert { path: ca.clone() });
        }
    }
    if let Some(log) = &req.net_log {
        check_net_log(policy, log)?;
    }
    for spec in &policy.secrets {
        if let Some(file) = spec.from.as_ref().and_then(policy::SecretSource::file) {
            check_secret_file(policy, &spec.name, Path::new(file))?;
        }
    }
    // (A secret's own name gets its placeholder anyway: no warning.)
    for name in policy
        .env_withheld
        .iter()
        .filter(|n| !policy.secrets.iter().any(|s| &s.name == *n))
    {
        crate::warn!(
            "{name} matches an --allow-env wildcard but looks like a credential; not passed (name it exactly, --allow-env={name}, to pass it; or bind it with --secret {name})"
        );
    }
    Ok(())
}

/// `--secret NAME=@FILE`: the policy denies reading FILE inside (see
/// `policy::resolve`); make sure that holds for the path zerobox will
/// actually read, and that the command cannot replace the file (its
/// directory writable) to choose the value of a later run.
fn check_secret_file(policy: &Policy, name: &str, file: &Path) -> Result<(), LaunchError> {
    let shown = file.display().to_string();
    let bad = |why: String| LaunchError::SecretFile {
        name: name.to_string(),
        why,
    };
    let abs = match std::env::current_dir() {
        Ok(cwd) => policy::paths::lexical_normalise(&cwd.join(file)),
        Err(e) => return Err(bad(format!("cannot read the current directory: {e}"))),
    };
    let real = policy::paths::canonical(&abs);
    // The sandbox's layers act on the resolved file, so that is the path
    // that must be denied (a symlinked secret file is fine).
    if policy.effective(&real).read {
        return Err(bad(format!(
            "{shown:?} would stay readable inside the sandbox (it resolves to {}); give its absolute path",
            real.display()
        )));
    }
    for p in [&abs, &real] {
        let parent = p.parent().unwrap_or(Path::new("/"));
        if policy.effective(parent).write {
            return Err(bad(format!(
                "{shown:?} is in {}, which is writable inside the sandbox (the command could replace it); keep secret files outside every --allow-write grant",
                parent.display()
            )));
        }
    }
    Ok(())
}

/// The `--net-log` path is written by zerobox outside the sandbox, run after
/// run, so the sandboxed command must not be able to touch it: not the
/// file, not its directory (it could swap the file for a symlink to
/// `~/.bashrc`), neither as written nor after resolving symlinks. The open
/// itself refuses a symlink and anything but a regular file (see
/// `proxy::log`); this check gives the clear error up front.
fn check_net_log(policy: &Policy, log: &Path) -> Result<(), LaunchError> {
    let shown = log.display().to_string();
    let bad = |why: String| LaunchError::NetLog {
        path: shown.clone(),
        why,
    };
    let dir = log
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(bad("its directory does not exist".into()));
    }
    match std::fs::symlink_metadata(log) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(bad(
                "it is a symbolic link; zerobox never follows one for the log (a sandboxed command may have planted it): remove it or log elsewhere".into(),
            ))
        }
        Ok(m) if !m.is_file() => {
            return Err(bad(
                "not a regular file (give a plain file path)".into(),
            ))
        }
        _ => {}
    }
    let abs = match std::env::current_dir() {
        Ok(cwd) => policy::paths::lexical_normalise(&cwd.join(log)),
        Err(e) => return Err(bad(format!("cannot read the current directory: {e}"))),
    };
    let real = policy::paths::canonical(&abs);
    for p in [&abs, &real] {
        let parent = p.parent().unwrap_or(Path::new("/"));
        for candidate in [p.as_path(), parent] {
            if policy.effective(candidate).write {
                return Err(bad(format!(
                    "{} is writable inside the sandbox, so the command could replace the log with a symlink to one of your files; put the log outside every --allow-write grant",
                    candidate.display()
                )));
            }
        }
    }
    Ok(())
}

/// Find `name` like a shell would: a path if it has a slash, else on PATH.
fn find_program(name: &OsString, path_var: &str, cwd: &Path) -> Result<PathBuf, LaunchError> {
    let shown = name.to_string_lossy();
    if name.is_empty() {
        return Err(LaunchError::EmptyCommand);
    }
    let not_found = || LaunchError::NotFound {
        name: shown.to_string(),
    };
    let candidate = |p: &Path| -> Option<Result<PathBuf, LaunchError>> {
        let meta = std::fs::metadata(p).ok()?;
        if meta.is_dir() || meta.permissions().mode() & 0o111 == 0 {
            return Some(Err(LaunchError::NotExecutable {
                path: p.to_path_buf(),
            }));
        }
        Some(Ok(p.to_path_buf()))
    };
    if shown.contains('/') {
        let p = cwd.join(Path::new(name));
        return candidate(&p).unwrap_or_else(|| Err(not_found()));
    }
    let mut first_err = None;
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        match candidate(&Path::new(dir).join(name)) {
            Some(Ok(p)) => return Ok(p),
            Some(Err(e)) => {
                first_err.get_or_insert(e);
            }
            None => {}
        }
    }
    Err(first_err.unwrap_or_else(not_found))
}

/// Run the request; returns the command's exit code.
pub fn run(req: &RunRequest) -> Result<i32, LaunchError> {
    sandbox::make_undumpable();
    let resolved = resolve(req, true)?;
    create_state_dirs(&resolved.policy, req.debug);
    if req.no_sandbox && req.watcher.is_some() {
        return Err(LaunchError::WatchWithoutSandbox);
    }
    if req.no_sandbox {
        crate::warn!("--no-sandbox: running WITHOUT any sandbox (full access to your files, network and secrets)");
        resolved.protection.unwatched();
        use std::os::unix::process::CommandExt;
        let err = std::process::Command::new(&resolved.spec.program)
            .arg0(&req.command[0])
            .args(&req.command[1..])
            .current_dir(&resolved.spec.cwd)
            .exec();
        return Err(LaunchError::Exec {
            path: resolved.spec.program.clone(),
            source: err,
        });
    }
    // After the --no-sandbox exec: only a run that ends here is checked.
    resolved.protection.before_run();
    if req.debug {
        crate::errln!("zerobox: debug: policy:\n{}", render_yaml(&resolved.policy));
    }
    let mut spec = resolved.spec.clone();
    // Network: prepare the proxy (config checks, CA) before the fork, while
    // zerobox is still single-threaded; serve it once the sandbox hands
    // back the listener.
    // A watched run always has the proxy: its hook is where new hosts are
    // asked about (build) or recorded (learn).
    let watcher = req.watcher.as_ref().map(|w| w.0.clone());
    let supervisor = match &watcher {
        Some(w) => Some(
            w.clone()
                .supervisor(&resolved.policy)
                .map_err(LaunchError::Watch)?,
        ),
        None => None,
    };
    let proxy = if resolved.policy.network.wants_network()
        || !resolved.policy.secrets.is_empty()
        || watcher.is_some()
    {
        let mut prepared = prepare_proxy(&resolved.policy, req)?;
        if let Some(w) = &watcher {
            prepared
                .set_host_hook(w.clone().host_hook())
                .map_err(LaunchError::ProxySetup)?;
        }
        let placeholders = prepared.placeholders();
        for (name, placeholder) in &placeholders {
            spec.env.retain(|(k, _)| k != name);
            spec.env.push((name.clone(), placeholder.clone()));
        }
        Some(prepared)
    } else {
        None
    };
    if req.share_net {
        crate::warn!("--share-net: the command gets the host's raw network (no proxy, no host allowlist, host loopback services reachable)");
    }
    let opts = Options {
        strict: req.strict,
        debug: req.debug,
        network: proxy.as_ref().map(|p| sandbox::NetworkRequest {
            tmp_files: vec![(CA_BUNDLE.to_string(), p.ca_bundle_pem().into_bytes())],
            env: network_env,
            capture_ports: p.capture_ports(),
        }),
        share_net: req.share_net,
        allow_weak_net: req.allow_weak_net,
        limits: req.limits,
        notify: supervisor,
    };
    // The exit code is the sandbox error's own (one place decides it);
    // only the exec wording needs the program's name.
    // Inodes of the paths a bind holds, to name any the host replaces
    // mid-run (which detaches the bind: `protect::replaced`).
    let replaced = crate::protect::replaced::Replaced::record(&resolved.policy);
    // Watched while the command runs; one that cannot be is said before
    // it starts (refused under --strict: the watcher is what stops a run
    // whose bind lapsed; without it only the after-run check is left).
    // A watch that cannot be had: refused under --strict, else said.
    let watch_lapse = |what: String| {
        if req.strict {
            return Err(LaunchError::Spawn {
                program: spec.program.clone(),
                source: sandbox::SandboxError::new(
                    sandbox::Stage::Refused,
                    format!("--strict: {what}"),
                ),
            });
        }
        crate::warn!("{what}");
        Ok(())
    };
    let mut held = sandbox::guard::HeldWatch::prepare(replaced.held());
    if !held.failures().is_empty() {
        watch_lapse(format!(
            "cannot watch {} for replacement on the host: if a host program saves a protected file there during the run, the command is not stopped (the after-run check still reports it)",
            held.failures().join(", ")
        ))?;
    }
    let mut running =
        sandbox::spawn(&resolved.policy, &spec, &opts).map_err(|source| LaunchError::Spawn {
            program: spec.program.clone(),
            source,
        })?;
    // Only binds are detached: in the Landlock-only fallback the rules
    // hold the path whatever the host does.
    let binds_hold = running.mode == sandbox::Mode::Namespaces;
    if binds_hold {
        if let Err(e) = held.start(running.pid()) {
            let what = format!("{e}: a protected path replaced on the host during the run will not stop the command (the after-run check still reports it)");
            if let Err(refused) = watch_lapse(what) {
                running.kill();
                return Err(refused);
            }
        }
    }
    if let Some(w) = &watcher {
        w.started(running.pid());
    }
    // Serve the proxy. If this fails the command has no network at all
    // (its only route out is this listener): fail closed, stop the run.
    let handle = match (proxy, running.listener.take()) {
        (Some(prepared), Some(listener)) => match prepared.serve(listener) {
            Ok(h) => Some(h),
            Err(e) => {
                running.kill();
                return Err(LaunchError::ProxySetup(e));
            }
        },
        _ => None,
    };
    // Transparent egress: the sandbox's DNS and capture listeners. Not
    // serving them would leave allowed names unresolvable: fail closed.
    if let (Some(h), Some(c)) = (&handle, running.take_capture()) {
        let socks = crate::proxy::CaptureSockets {
            dns_udp: c.dns_udp,
            dns_tcp: c.dns_tcp,
            tcp: c.tcp,
        };
        if let Err(e) = h.serve_capture(socks) {
            running.kill();
            return Err(LaunchError::ProxySetup(e));
        }
    }
    let mut code = running.wait();
    if let Some(stopped) = held.finish() {
        code = crate::exit::PROTECTION_LAPSED;
        let line = crate::protect::replaced::Replaced::stopped_line(&stopped, code);
        crate::errln!("zerobox: {}", crate::output::one_line(&line));
    }
    for line in replaced.after_run().iter().filter(|_| binds_hold) {
        crate::errln!("zerobox: {}", crate::output::one_line(line));
    }
    resolved.protection.after_run();
    if let Some(handle) = handle {
        let summary = handle.shutdown();
        // `--quiet` hides the refusals (a notice); lost log records are a
        // warning and always print.
        let blocked = if req.quiet {
            Vec::new()
        } else {
            summary.blocked_lines()
        };
        for line in blocked.iter().chain(&summary.lost_line()) {
            // Host names in it come from the sandboxed command.
            crate::errln!("{}", crate::output::one_line(line));
        }
    }
    match &watcher {
        Some(w) => w.finish(code).map_err(LaunchError::Watch),
        None => Ok(code),
    }
}

/// Where the proxy's CA bundle lands inside the sandbox's temp dir.
const CA_BUNDLE: &str = "zerobox/ca-bundle.pem";

fn network_env(port: u16, tmpdir: &Path) -> Vec<(String, String)> {
    crate::proxy::sandbox_env(&format!("127.0.0.1:{port}"), &tmpdir.join(CA_BUNDLE))
}

/// Build the proxy from the policy and the network flags. Secret values
/// are read here (from zerobox's environment, a file, or the command line)
/// and live only in the proxy from now on.
fn prepare_proxy(
    policy: &Policy,
    req: &RunRequest,
) -> Result<crate::proxy::PreparedProxy, LaunchError> {
    use crate::policy::SecretSource;
    use crate::proxy::{self, Secret};
    let mut secrets = Vec::new();
    for spec in &policy.secrets {
        if spec.hosts.is_empty() {
            return Err(LaunchError::SecretUnbound {
                name: spec.name.clone(),
            });
        }
        let from_cli = req
            .layers
            .iter()
            .any(|l| l.origin == Origin::Cli && l.secrets.iter().any(|s| s.name == spec.name));
        if spec.from.is_none() && std::env::var_os(&spec.name).is_none() && !from_cli {
            // A preset's secret that this user does not have (e.g. an agent
            // logged in with OAuth instead of an API key): nothing to inject.
            if req.debug {
                crate::errln!("zerobox: debug: secret {} not set; not injected", spec.name);
            }
            continue;
        }
        let secret = match &spec.from {
            None => Secret::from_env(&spec.name, spec.hosts.clone()),
            Some(SecretSource::Inline) => {
                crate::warn!(
                    "--secret {}=VALUE puts the value in zerobox's argv, visible to other users (ps); prefer --secret {} (from the environment) or {}=@FILE",
                    spec.name, spec.name, spec.name
                );
                let value = req
                    .inline_secrets
                    .get(&spec.name)
                    .unwrap_or_default()
                    .to_string();
                Secret::from_value(&spec.name, value, spec.hosts.clone())
            }
            Some(SecretSource::File(file)) => {
                Secret::from_file(&spec.name, Path::new(file), spec.hosts.clone())
            }
            Some(SecretSource::Env(var)) => {
                match std::env::var(var) {
                    Ok(v) => Secret::from_value(&spec.name, v, spec.hosts.clone()),
                    Err(_) => {
                        return Err(LaunchError::SecretEnvUnset {
                            name: spec.name.clone(),
                            var: var.clone(),
                        })
                    }
                }
            }
        }
        .map_err(LaunchError::Secret)?;
        secrets.push(secret);
    }
    // Stable placeholders (an agent's "use this key?" approval sticks):
    // derived from a per-user key in the data dir, read-denied inside.
    if !secrets.is_empty() {
        let dir = crate::dirs::zerobox_dir(crate::dirs::Kind::Data)
            .ok_or(LaunchError::NoDataDir {
                what: "the placeholder key",
            })?
            .join("placeholder");
        let key =
            proxy::PlaceholderKey::load_or_create(&dir).map_err(LaunchError::PlaceholderKey)?;
        for s in &mut secrets {
            s.use_stable_placeholder(&key);
        }
    }
    // `--secret NAME=VALUE`: the value sits in zerobox's argv, which the
    // sandbox's PID 1 shares (and /proc/1/cmdline is readable inside).
    let inline: Vec<&[u8]> = req
        .inline_secrets
        .0
        .iter()
        .map(|(_, v)| v.as_bytes())
        .collect();
    sandbox::scrub_cmdline(&inline);
    // No other variable may carry a secret's real value into the sandbox.
    for (k, v) in &policy.env {
        if secrets.iter().any(|s| s.occurs_in(v)) && !secrets.iter().any(|s| s.name() == k) {
            return Err(LaunchError::SecretInEnv { var: k.clone() });
        }
    }
    let mut resolve = Vec::new();
    for r in &req.resolve {
        resolve.push(proxy::parse_resolve(r).map_err(LaunchError::Resolve)?);
    }
    let ca_dir = crate::dirs::zerobox_dir(crate::dirs::Kind::Data)
        .ok_or(LaunchError::NoDataDir {
            what: "the proxy's CA",
        })?
        .join("ca");
    let upstream_proxy = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    let config = proxy::ProxyConfig {
        allow: policy.network.allow.clone(),
        allow_any: policy.network.allow_any,
        deny: policy.network.deny.clone(),
        quiet: policy.network.quiet.clone(),
        secrets,
        resolve,
        extra_ca_certs: req.ca_certs.clone(),
        ca_dir,
        net_log: req.net_log.clone(),
        upstream_proxy,
    };
    proxy::prepare(config).map_err(LaunchError::proxy)
}

#[derive(Serialize)]
struct Explained<'a> {
    command: Vec<String>,
    program: String,
    policy: &'a Policy,
    /// The run's plan, exactly as `spawn` would execute it.
    #[serde(flatten)]
    plan: &'a sandbox::Plan,
}

/// Print the resolved policy and the run's plan (YAML, or JSON with the
/// same fields); run nothing.
pub fn explain(req: &RunRequest, json: bool) -> Result<i32, LaunchError> {
    let resolved = resolve(req, false)?;
    let wants_network =
        resolved.policy.network.wants_network() || !resolved.policy.secrets.is_empty();
    let opts = Options {
        strict: req.strict,
        debug: req.debug,
        // The same shape of request as a run (the plan depends on it);
        // nothing is written or served.
        network: wants_network.then_some(sandbox::NetworkRequest {
            tmp_files: Vec::new(),
            env: network_env,
            capture_ports: Vec::new(),
        }),
        share_net: req.share_net,
        allow_weak_net: req.allow_weak_net,
        limits: req.limits,
        notify: None,
    };
    let plan = sandbox::plan(&resolved.policy, &opts).map_err(|source| LaunchError::Spawn {
        program: resolved.spec.program.clone(),
        source,
    })?;
    let doc = Explained {
        command: req
            .command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        program: resolved.spec.program.display().to_string(),
        policy: &resolved.policy,
        plan: &plan,
    };
    if json {
        // The same document; `weaker` is always present in JSON.
        let mut v = serde_json::to_value(&doc).map_err(LaunchError::Render)?;
        if let Some(map) = v.as_object_mut() {
            map.entry("weaker").or_insert(serde_json::json!([]));
        }
        crate::outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        crate::out!("{}", render_yaml(&doc));
    }
    Ok(0)
}

fn render_yaml<T: Serialize>(v: &T) -> String {
    serde_saphyr::to_string(v).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}

/// Describe this machine's layers and what a run gets. Exit 0 when a
/// sandbox is possible, 125 when zerobox would refuse to run.
pub fn doctor(json: bool) -> i32 {
    let p = sandbox::probe();
    if json {
        return doctor_json(&p);
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    crate::outln!("zerobox doctor — kernel {}, uid {}", p.kernel, p.uid);
    crate::outln!();
    crate::outln!("{:<34} status", "layer");
    for (name, r) in &p.each_namespace {
        let label = format!("{name} namespace");
        match r {
            Ok(()) => crate::outln!("{label:<34} yes"),
            Err(e) => crate::outln!("{label:<34} no: {e}"),
        }
    }
    match &p.user_namespaces {
        Ok(()) => crate::outln!("{:<34} yes", "all of them together (a run)"),
        Err(e) => crate::outln!("{:<34} no: {e}", "all of them together (a run)"),
    }
    if let Some(r) = p.apparmor_restricts_userns {
        crate::outln!(
            "{:<34} {}",
            "AppArmor userns restriction",
            if r {
                "on (unprivileged user namespaces blocked)"
            } else {
                "off"
            }
        );
    } else {
        crate::outln!("{:<34} not present", "AppArmor userns restriction");
    }
    let abi = p.landlock_abi;
    crate::outln!(
        "{:<34} {}",
        "Landlock",
        if abi > 0 {
            format!("ABI {abi}")
        } else {
            "no".into()
        }
    );
    crate::outln!(
        "{:<34} {}",
        "  filesystem rules (ABI ≥ 1)",
        yes_no(abi >= 1)
    );
    crate::outln!(
        "{:<34} {}",
        "  TCP bind/connect rules (ABI ≥ 4)",
        yes_no(abi >= 4)
    );
    crate::outln!(
        "{:<34} {}",
        "  ioctl on devices (ABI ≥ 5)",
        yes_no(abi >= 5)
    );
    crate::outln!(
        "{:<34} {}",
        "  abstract unix + signal scope (≥ 6)",
        yes_no(abi >= 6)
    );
    crate::outln!(
        "{:<34} {}",
        "  unix socket connect rules (≥ 9)",
        yes_no(abi >= 9)
    );
    crate::outln!("{:<34} {}", "seccomp filter", yes_no(p.seccomp));
    crate::outln!(
        "{:<34} {}",
        "transparent egress over IPv6",
        match egress_ipv6() {
            Ok(()) => "yes (AAAA from 2001:2::/48, captured like IPv4)".to_string(),
            Err(e) => format!("no: {e}; allowed names resolve to IPv4 only"),
        }
    );
    let sockets = host_unix_sockets(&p);
    crate::outln!("{:<34} {}", "host unix sockets", sockets.summary);
    for (i, line) in doctor_limits(&p).lines.iter().enumerate() {
        crate::outln!(
            "{:<34} {line}",
            if i == 0 { "limits (defaults)" } else { "" }
        );
    }
    crate::outln!();
    let code = match (&p.user_namespaces, abi > 0) {
        (Ok(()), true) => {
            crate::outln!("Each run gets: all layers (namespaces, read-only host, private /tmp, Landlock, seccomp, no capabilities).");
            0
        }
        (Ok(()), false) => {
            crate::outln!(
                "Each run gets: namespaces + seccomp; no Landlock (--strict refuses to run)."
            );
            0
        }
        (Err(_), true) => {
            crate::outln!("Each run gets: Landlock + seccomp only (fallback: no private /tmp, no pid isolation, host unix sockets reachable, no network); --strict refuses.");
            crate::outln!("Network in this mode (--allow-weak-net) has no transparent egress: names do not resolve inside, only clients that use the proxy variables reach allowed hosts.");
            crate::outln!("Hint: on Ubuntu ≥ 23.10, allow user namespaces for zerobox with an AppArmor profile (see docs/policy.md, \"Ubuntu\"), or set kernel.apparmor_restrict_unprivileged_userns=0.");
            0
        }
        (Err(_), false) => {
            crate::outln!("zerobox cannot sandbox anything here: it refuses to run (exit 125) unless --no-sandbox.");
            exit::SETUP
        }
    };
    code
}

/// Transparent egress over IPv6 on this machine (`doctor`; namespace
/// mode only, predicted: the run announces what it got).
fn egress_ipv6() -> Result<(), String> {
    sandbox::linux::egress_ipv6_expected(sandbox::Simulated::from_env().no_ipv6)
}

/// How host unix sockets are kept from a run on this machine (`doctor`).
struct HostUnixSockets {
    /// Listening sockets are masked when the sandbox starts (namespaces).
    masked_at_start: bool,
    /// Landlock ABI >= 9 refuses connecting to any outside socket.
    landlock_connect_rules: bool,
    /// Listening host sockets right now.
    listening: usize,
    summary: String,
}

fn host_unix_sockets(p: &sandbox::Probe) -> HostUnixSockets {
    let listening = sandbox::listening_unix_sockets().len();
    let masked_at_start = p.user_namespaces.is_ok();
    let landlock_connect_rules = p.landlock_abi >= 9;
    let summary = match (masked_at_start, landlock_connect_rules) {
        (true, true) => format!("masked at start ({listening} listening now) and Landlock connect rules"),
        (true, false) => format!("masked at start ({listening} listening now); sockets created later are reachable (Landlock ABI < 9)"),
        (false, true) => "Landlock connect rules only (no masks without namespaces)".to_string(),
        (false, false) => "REACHABLE: no namespaces for masks, Landlock ABI < 9".to_string(),
    };
    HostUnixSockets {
        masked_at_start,
        landlock_connect_rules,
        listening,
        summary,
    }
}

/// The default resource limits on this machine (docs/policy.md,
/// "Resource limits"), for `doctor`.
struct DoctorLimits {
    limits: sandbox::linux::limits::Limits,
    cgroup: Result<String, String>,
    lines: Vec<String>,
}

fn doctor_limits(p: &sandbox::Probe) -> DoctorLimits {
    let limits = sandbox::linux::limits::Limits::default();
    let cgroup = sandbox::linux::cgroup::probe();
    let lines =
        sandbox::linux::limits::describe(&limits, p.user_namespaces.is_ok(), p.uid, &cgroup);
    DoctorLimits {
        limits,
        cgroup,
        lines,
    }
}

/// What a run gets on this machine, as `zerobox doctor --json` names it.
fn run_mode(p: &sandbox::Probe) -> (&'static str, i32) {
    match (&p.user_namespaces, p.landlock_abi > 0) {
        (Ok(()), true) => ("full", 0),
        (Ok(()), false) => ("no-landlock", 0),
        (Err(_), true) => ("landlock-only", 0),
        (Err(_), false) => ("refused", exit::SETUP),
    }
}

/// `zerobox doctor --json`: field names are part of the interface
/// (docs/architecture.md, "JSON output").
fn doctor_json(p: &sandbox::Probe) -> i32 {
    use serde_json::json;
    let layer = |r: &Result<(), String>| match r {
        Ok(()) => json!({"available": true, "error": null}),
        Err(e) => json!({"available": false, "error": e}),
    };
    let namespaces: serde_json::Map<String, serde_json::Value> = p
        .each_namespace
        .iter()
        .map(|(name, r)| (name.to_string(), layer(r)))
        .collect();
    let abi = p.landlock_abi;
    let (run, code) = run_mode(p);
    let sockets = host_unix_sockets(p);
    let limits = doctor_limits(p);
    let doc = json!({
        "kernel": p.kernel,
        "uid": p.uid,
        "namespaces": namespaces,
        "all_namespaces": layer(&p.user_namespaces),
        "apparmor_restricts_userns": p.apparmor_restricts_userns,
        "landlock": {
            "abi": abi,
            "filesystem": abi >= 1,
            "tcp": abi >= 4,
            "ioctl_dev": abi >= 5,
            "scope": abi >= 6,
            "unix_connect": abi >= 9,
        },
        "seccomp": p.seccomp,
        "transparent_egress_ipv6": layer(&egress_ipv6()),
        "host_unix_sockets": {
            "masked_at_start": sockets.masked_at_start,
            "landlock_connect_rules": sockets.landlock_connect_rules,
            "listening": sockets.listening,
            "summary": sockets.summary,
        },
        "limits": {
            "tmp_size_bytes": limits.limits.tmp_size,
            "pids": limits.limits.pids,
            "memory_bytes": limits.limits.memory_bytes(),
            "cgroup": match &limits.cgroup {
                Ok(w) => json!({"available": true, "where": w, "error": null}),
                Err(e) => json!({"available": false, "where": null, "error": e}),
            },
            "lines": limits.lines,
        },
        "run": run,
    });
    crate::outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::FsRule;

    fn policy_with(home: &Path, rules: Vec<FsRule>) -> Policy {
        let ctx = PathContext {
            home: home.to_path_buf(),
            cwd: home.to_path_buf(),
            tmpdir: PathBuf::from("/tmp"),
        };
        let mut p = policy::resolve(&[], &ctx, &[]).expect("an empty policy resolves");
        p.fs = rules;
        p
    }

    /// A preset whose name starts with `zerobox` is still a preset: its
    /// write grant under HOME gets its state directory like any other.
    #[test]
    fn a_preset_named_zerobox_something_gets_its_state_dirs() {
        let home = tempfile::tempdir().expect("a temp dir");
        let state = home.path().join(".zerobox-tool");
        let p = policy_with(
            home.path(),
            vec![FsRule {
                path: state.clone(),
                access: FsAccess::AllowWrite,
                origin: Origin::preset("zerobox-tool", &"1.0.0"),
            }],
        );
        create_state_dirs(&p, false);
        assert!(
            state.is_dir(),
            "no state dir for a preset named zerobox-tool"
        );
    }

    /// zerobox's own layer and the CLI never get directories created.
    #[test]
    fn own_state_and_cli_grants_create_nothing() {
        let home = tempfile::tempdir().expect("a temp dir");
        let (a, b) = (home.path().join(".a"), home.path().join(".b"));
        let p = policy_with(
            home.path(),
            vec![
                FsRule {
                    path: a.clone(),
                    access: FsAccess::AllowWrite,
                    origin: Origin::Cli,
                },
                FsRule {
                    path: b.clone(),
                    access: FsAccess::AllowWrite,
                    origin: Origin::OwnState,
                },
            ],
        );
        create_state_dirs(&p, false);
        assert!(!a.exists() && !b.exists());
    }
}
