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
}

/// The resolved run: policy plus the program to execute.
struct Resolved {
    policy: Policy,
    spec: Spec,
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
    let mut layers = vec![policy::defaults_layer(), own_state_layer()];
    layers.extend(req.layers.iter().cloned());
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
                FsAccess::AllowWrite => "write access to /",
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
    Ok(Resolved { policy, spec })
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
fn own_state_layer() -> PolicyLayer {
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
        let dir = log
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() || log.is_dir() {
            return Err(Fatal::usage(format!(
                "invalid --net-log {:?}: its directory does not exist or it is a directory",
                log.display().to_string()
            )));
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
    };
    let mut running = sandbox::spawn(&resolved.policy, &spec, &opts).map_err(|e| {
        let code = match e.stage {
            sandbox::Stage::Exec if e.errno == libc::ENOENT => exit::NOT_FOUND,
            sandbox::Stage::Exec => exit::NOT_EXECUTABLE,
            sandbox::Stage::Input => exit::USAGE,
            _ => exit::SETUP,
        };
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
            _ => e.message,
        };
        Fatal::new(code, message)
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
    mode: sandbox::Mode,
    layers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    weaker: Vec<String>,
    policy: &'a Policy,
    mounts: Vec<sandbox::linux::mounts::Step>,
}

/// Print the resolved policy and enforcing layers (YAML, or JSON with the
/// same fields); run nothing.
pub fn explain(req: &RunRequest, json: bool) -> Result<i32, Fatal> {
    let resolved = resolve(req)?;
    let opts = Options {
        strict: req.strict,
        debug: req.debug,
        network: None,
        share_net: req.share_net,
    };
    let enforcement =
        sandbox::describe(&resolved.policy, &opts).map_err(|e| Fatal::setup(e.message))?;
    let doc = Explained {
        command: req
            .command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        program: resolved.spec.program.display().to_string(),
        mode: enforcement.mode,
        layers: enforcement.layers,
        weaker: enforcement.weaker,
        policy: &resolved.policy,
        mounts: enforcement.mounts,
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
    crate::outln!("{:<34} {}", "seccomp filter", yes_no(p.seccomp));
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
        },
        "seccomp": p.seccomp,
        "run": run,
    });
    crate::outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    code
}
