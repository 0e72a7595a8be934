//! One run, end to end: resolve the policy, find the command, start the
//! sandbox, relay signals, return the exit code, clean up. Also `explain`
//! (the same resolution, printed instead of run) and `doctor`.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::exit::{self, Fatal};
use crate::policy::{self, FsAccess, PathContext, Policy, PolicyLayer};
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
    pub inline_secrets: crate::cli::InlineSecrets,
    /// `--resolve HOST:PORT:ADDR` pins for the proxy.
    pub resolve: Vec<String>,
    /// `--ca-cert FILE`: extra roots for upstream verification.
    pub ca_certs: Vec<PathBuf>,
    pub net_log: Option<PathBuf>,
    /// `--share-net`: raw host network, no proxy.
    pub share_net: bool,
    /// `--allow-weak-net`: network in the Landlock-only fallback is accepted.
    pub allow_weak_net: bool,
    /// `--tmp-size`, `--pids`, `--memory`.
    pub limits: sandbox::linux::limits::Limits,
}

/// The resolved run: policy plus the program to execute.
struct Resolved {
    policy: Policy,
    spec: Spec,
    protection: crate::protect::Protection,
}

fn resolve(req: &RunRequest) -> Result<Resolved, Fatal> {
    let cwd = match &req.cwd {
        Some(dir) => dir.clone(),
        None => std::env::current_dir()
            .map_err(|e| Fatal::usage(format!("cannot read the current directory: {e}")))?,
    };
    let cwd = std::fs::canonicalize(&cwd).map_err(|e| {
        Fatal::usage(format!(
            "invalid --cwd {:?}: {e} (give an existing directory)",
            cwd.display().to_string()
        ))
    })?;
    if !cwd.is_dir() {
        return Err(Fatal::usage(format!(
            "invalid --cwd {:?}: not a directory",
            cwd.display().to_string()
        )));
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .or_else(|| directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf()))
        .ok_or_else(|| Fatal::usage("cannot find your home directory: set HOME"))?;
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
    let protection = crate::protect::Protection::prepare(&layers, &ctx);
    layers.push(protection.layer());
    let host_env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let policy = policy::resolve(&layers, &ctx, &host_env)?;
    check_supported(&policy, req)?;
    for rule in &policy.fs {
        if rule.access == FsAccess::AllowWrite
            && rule.origin == "cli"
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
            return Err(Fatal::usage(format!(
                "refusing {what} from {}: that is no sandbox (use --no-sandbox to say so)",
                rule.origin
            )));
        }
    }
    let Some(name) = req.command.first() else {
        return Err(Fatal::usage("no command given"));
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
        let from_preset = !matches!(rule.origin.as_str(), "cli" | "defaults")
            && !rule.origin.starts_with("zerobox");
        if rule.access != FsAccess::AllowWrite
            || !from_preset
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
}

/// zerobox's own state is never readable (the CA key) nor writable (trusted
/// keys and files, the preset cache) from inside, whatever else is granted.
///
/// The cache is unwritable too: presets there are verified on every load,
/// but it also remembers the highest registry serial seen, which is what
/// refuses a rollback.
fn own_state_layer(account_home: Option<&Path>) -> PolicyLayer {
    use crate::dirs::{zerobox_dir, Kind};
    let mut layer = PolicyLayer::new("zerobox's own state");
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
fn check_supported(policy: &Policy, req: &RunRequest) -> Result<(), Fatal> {
    if req.share_net && (policy.network.wants_network() || !policy.secrets.is_empty()) {
        return Err(Fatal::usage(
            "--share-net gives raw host networking; it cannot be combined with --allow-net or --secret (which go through the proxy)",
        ));
    }
    for pattern in policy.network.allow.iter().chain(&policy.network.deny) {
        crate::proxy::validate_pattern(pattern).map_err(|e| Fatal::usage(e.to_string()))?;
    }
    for r in &req.resolve {
        crate::proxy::parse_resolve(r).map_err(|e| Fatal::usage(e.to_string()))?;
    }
    // Files named by network flags are checked up front, network or not:
    // a typo is bad input (exit 2), not a setup failure later.
    for ca in &req.ca_certs {
        if std::fs::File::open(ca).is_err() || !ca.is_file() {
            return Err(Fatal::usage(format!(
                "invalid --ca-cert {:?}: not a readable file (give a PEM file)",
                ca.display().to_string()
            )));
        }
    }
    if let Some(log) = &req.net_log {
        check_net_log(policy, log)?;
    }
    for spec in &policy.secrets {
        if let Some(file) = spec.from.as_deref().and_then(|f| f.strip_prefix('@')) {
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
fn check_secret_file(policy: &Policy, name: &str, file: &Path) -> Result<(), Fatal> {
    let shown = file.display().to_string();
    let abs = match std::env::current_dir() {
        Ok(cwd) => policy::paths::lexical_normalise(&cwd.join(file)),
        Err(e) => {
            return Err(Fatal::usage(format!(
                "secret {name}: cannot read the current directory: {e}"
            )))
        }
    };
    let real = policy::paths::canonical(&abs);
    // The sandbox's layers act on the resolved file, so that is the path
    // that must be denied (a symlinked secret file is fine).
    if policy.effective(&real).read {
        return Err(Fatal::usage(format!(
            "secret {name}: {shown:?} would stay readable inside the sandbox (it resolves to {}); give its absolute path",
            real.display()
        )));
    }
    for p in [&abs, &real] {
        let parent = p.parent().unwrap_or(Path::new("/"));
        if policy.effective(parent).write {
            return Err(Fatal::usage(format!(
                "secret {name}: {shown:?} is in {}, which is writable inside the sandbox (the command could replace it); keep secret files outside every --allow-write grant",
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
fn check_net_log(policy: &Policy, log: &Path) -> Result<(), Fatal> {
    let shown = log.display().to_string();
    let bad = |why: String| Fatal::usage(format!("invalid --net-log {shown:?}: {why}"));
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
fn find_program(name: &OsString, path_var: &str, cwd: &Path) -> Result<PathBuf, Fatal> {
    let shown = name.to_string_lossy();
    if name.is_empty() {
        return Err(Fatal::usage("empty command name"));
    }
    let candidate = |p: &Path| -> Option<Result<PathBuf, Fatal>> {
        let meta = std::fs::metadata(p).ok()?;
        if meta.is_dir() || meta.permissions().mode() & 0o111 == 0 {
            return Some(Err(Fatal::new(
                exit::NOT_EXECUTABLE,
                format!("permission denied: {} is not executable", p.display()),
            )));
        }
        Some(Ok(p.to_path_buf()))
    };
    if shown.contains('/') {
        let p = cwd.join(Path::new(name));
        return candidate(&p).unwrap_or_else(|| {
            Err(Fatal::new(
                exit::NOT_FOUND,
                format!("command not found: {shown}"),
            ))
        });
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
    Err(first_err
        .unwrap_or_else(|| Fatal::new(exit::NOT_FOUND, format!("command not found: {shown}"))))
}

/// Run the request; returns the command's exit code.
pub fn run(req: &RunRequest) -> Result<i32, Fatal> {
    sandbox::make_undumpable();
    let resolved = resolve(req)?;
    create_state_dirs(&resolved.policy, req.debug);
    if req.no_sandbox {
        crate::warn!("--no-sandbox: running WITHOUT any sandbox (full access to your files, network and secrets)");
        use std::os::unix::process::CommandExt;
        let err = std::process::Command::new(&resolved.spec.program)
            .arg0(&req.command[0])
            .args(&req.command[1..])
            .current_dir(&resolved.spec.cwd)
            .exec();
        return Err(Fatal::new(
            exit::NOT_EXECUTABLE,
            format!("cannot execute {}: {err}", resolved.spec.program.display()),
        ));
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
    let proxy = if resolved.policy.network.wants_network() || !resolved.policy.secrets.is_empty() {
        let prepared = prepare_proxy(&resolved.policy, req)?;
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
        }),
        share_net: req.share_net,
        allow_weak_net: req.allow_weak_net,
        limits: req.limits,
    };
    let mut running = sandbox::spawn(&resolved.policy, &spec, &opts).map_err(|e| {
        // The exit code is the error's own (one place decides it); only
        // the exec wording needs the program's name.
        let message = match e.stage {
            sandbox::Stage::Exec if e.errno == libc::ENOENT => format!(
                "command not found inside the sandbox: {}",
                spec.program.display()
            ),
            sandbox::Stage::Exec => format!(
                "cannot execute {} inside the sandbox: {}",
                spec.program.display(),
                e.message
            ),
            _ => e.to_string(),
        };
        Fatal::new(e.exit_code(), message)
    })?;
    // Serve the proxy. If this fails the command has no network at all
    // (its only route out is this listener): fail closed, stop the run.
    let handle = match (proxy, running.listener.take()) {
        (Some(prepared), Some(listener)) => match prepared.serve(listener) {
            Ok(h) => Some(h),
            Err(e) => {
                running.kill();
                return Err(Fatal::setup(format!("proxy: {e}")));
            }
        },
        _ => None,
    };
    let code = running.wait();
    resolved.protection.after_run();
    if let Some(handle) = handle {
        if let Some(line) = handle.shutdown().stderr_line() {
            // Host names in it come from the sandboxed command.
            crate::errln!("{}", crate::output::one_line(&line));
        }
    }
    Ok(code)
}

/// Where the proxy's CA bundle lands inside the sandbox's temp dir.
const CA_BUNDLE: &str = "zerobox/ca-bundle.pem";

fn network_env(port: u16, tmpdir: &Path) -> Vec<(String, String)> {
    crate::proxy::sandbox_env(&format!("127.0.0.1:{port}"), &tmpdir.join(CA_BUNDLE))
}

/// Build the proxy from the policy and the network flags. Secret values
/// are read here (from zerobox's environment, a file, or the command line)
/// and live only in the proxy from now on.
fn prepare_proxy(policy: &Policy, req: &RunRequest) -> Result<crate::proxy::PreparedProxy, Fatal> {
    use crate::proxy::{self, Secret};
    let mut secrets = Vec::new();
    for spec in &policy.secrets {
        if spec.hosts.is_empty() {
            return Err(Fatal::usage(format!(
                "secret {} is not bound to any host: add --secret-host {}=HOST (a secret never goes to all hosts)",
                spec.name, spec.name
            )));
        }
        let from_cli = req
            .layers
            .iter()
            .any(|l| l.origin == "cli" && l.secrets.iter().any(|s| s.name == spec.name));
        if spec.from.is_none() && std::env::var_os(&spec.name).is_none() && !from_cli {
            // A preset's secret that this user does not have (e.g. an agent
            // logged in with OAuth instead of an API key): nothing to inject.
            if req.debug {
                crate::errln!("zerobox: debug: secret {} not set; not injected", spec.name);
            }
            continue;
        }
        let secret = match spec.from.as_deref() {
            None => Secret::from_env(&spec.name, spec.hosts.clone()),
            Some("inline") => {
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
            Some(from) if from.starts_with('@') => {
                Secret::from_file(&spec.name, Path::new(&from[1..]), spec.hosts.clone())
            }
            Some(from) if from.starts_with("env:") => {
                let var = &from[4..];
                match std::env::var(var) {
                    Ok(v) => Secret::from_value(&spec.name, v, spec.hosts.clone()),
                    Err(_) => {
                        return Err(Fatal::usage(format!(
                            "secret {}: environment variable {var} is not set",
                            spec.name
                        )))
                    }
                }
            }
            Some(other) => {
                return Err(Fatal::usage(format!(
                    "secret {}: unknown source {other:?} (expected @FILE or env:NAME)",
                    spec.name
                )))
            }
        }
        .map_err(|e| Fatal::usage(e.to_string()))?;
        secrets.push(secret);
    }
    // Stable placeholders (an agent's "use this key?" approval sticks):
    // derived from a per-user key in the data dir, read-denied inside.
    if !secrets.is_empty() {
        let dir = crate::dirs::zerobox_dir(crate::dirs::Kind::Data)
            .ok_or_else(|| {
                Fatal::usage(
                    "cannot find your home directory for the placeholder key: set HOME or XDG_DATA_HOME",
                )
            })?
            .join("placeholder");
        let key =
            proxy::PlaceholderKey::load_or_create(&dir).map_err(|e| Fatal::setup(e.to_string()))?;
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
            return Err(Fatal::usage(format!(
                "environment variable {k} contains the value of a secret: drop it with --deny-env={k}"
            )));
        }
    }
    let mut resolve = Vec::new();
    for r in &req.resolve {
        resolve.push(proxy::parse_resolve(r).map_err(|e| Fatal::usage(e.to_string()))?);
    }
    let ca_dir = crate::dirs::zerobox_dir(crate::dirs::Kind::Data)
        .ok_or_else(|| {
            Fatal::usage(
                "cannot find your home directory for the proxy's CA: set HOME or XDG_DATA_HOME",
            )
        })?
        .join("ca");
    let upstream_proxy = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    let config = proxy::ProxyConfig {
        allow: policy.network.allow.clone(),
        allow_any: policy.network.allow_any,
        deny: policy.network.deny.clone(),
        secrets,
        resolve,
        extra_ca_certs: req.ca_certs.clone(),
        ca_dir,
        net_log: req.net_log.clone(),
        upstream_proxy,
    };
    proxy::prepare(config).map_err(|e| match e {
        proxy::ProxyError::Tls(_) | proxy::ProxyError::Io(_) => Fatal::setup(format!("proxy: {e}")),
        _ => Fatal::usage(e.to_string()),
    })
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
pub fn explain(req: &RunRequest, json: bool) -> Result<i32, Fatal> {
    let resolved = resolve(req)?;
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
        }),
        share_net: req.share_net,
        allow_weak_net: req.allow_weak_net,
        limits: req.limits,
    };
    let plan = sandbox::plan(&resolved.policy, &opts)
        .map_err(|e| Fatal::new(e.exit_code(), e.to_string()))?;
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
        let mut v = serde_json::to_value(&doc)
            .map_err(|e| Fatal::setup(format!("cannot render the policy: {e}")))?;
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
