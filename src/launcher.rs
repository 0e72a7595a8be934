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
    pub secrets: Vec<String>,
    pub secret_hosts: Vec<String>,
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
    let mut layers = vec![policy::defaults_layer()];
    layers.extend(req.layers.iter().cloned());
    let host_env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let policy = policy::resolve(&layers, &ctx, &host_env)?;
    check_supported(&policy, req)?;
    for rule in &policy.fs {
        if rule.access == FsAccess::AllowWrite
            && rule.origin == "cli"
            && std::fs::symlink_metadata(&rule.path).is_err()
        {
            eprintln!(
                "zerobox: warning: --allow-write path does not exist, nothing granted: {}",
                rule.path.display()
            );
        }
        if (rule.path == Path::new("/"))
            && matches!(rule.access, FsAccess::AllowWrite | FsAccess::DenyRead)
        {
            return Err(Fatal::usage(format!(
                "refusing {:?} on / from {}: that is no sandbox (use --no-sandbox to say so)",
                rule.access, rule.origin
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

/// Until the proxy lands, anything that would need network is refused
/// rather than silently ignored or opened.
fn check_supported(policy: &Policy, req: &RunRequest) -> Result<(), Fatal> {
    if policy.network.wants_network() {
        return Err(Fatal::usage(
            "--allow-net is not available yet: the egress proxy has not landed, and zerobox never opens the network without it (run without --allow-net; the sandbox has no network)",
        ));
    }
    if !req.secrets.is_empty() || !req.secret_hosts.is_empty() {
        return Err(Fatal::usage(
            "--secret is not available yet: secrets need the egress proxy, which has not landed",
        ));
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
    let resolved = resolve(req)?;
    if req.no_sandbox {
        eprintln!("zerobox: warning: --no-sandbox: running WITHOUT any sandbox (full access to your files, network and secrets)");
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
        eprintln!("zerobox: debug: policy:\n{}", render_yaml(&resolved.policy));
    }
    let opts = Options {
        strict: req.strict,
        debug: req.debug,
    };
    let running = sandbox::spawn(&resolved.policy, &resolved.spec, &opts).map_err(|e| {
        let code = match e.stage {
            sandbox::Stage::Exec if e.errno == libc::ENOENT => exit::NOT_FOUND,
            sandbox::Stage::Exec => exit::NOT_EXECUTABLE,
            sandbox::Stage::Input => exit::USAGE,
            _ => exit::SETUP,
        };
        let message = match e.stage {
            sandbox::Stage::Exec if e.errno == libc::ENOENT => format!(
                "command not found inside the sandbox: {}",
                resolved.spec.program.display()
            ),
            sandbox::Stage::Exec => format!(
                "cannot execute {} inside the sandbox: {}",
                resolved.spec.program.display(),
                e.message
            ),
            _ => e.message,
        };
        Fatal::new(code, message)
    })?;
    Ok(running.wait())
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

/// Print the resolved policy and enforcing layers; run nothing.
pub fn explain(req: &RunRequest) -> Result<i32, Fatal> {
    let resolved = resolve(req)?;
    let opts = Options {
        strict: req.strict,
        debug: req.debug,
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
    print!("{}", render_yaml(&doc));
    Ok(0)
}

fn render_yaml<T: Serialize>(v: &T) -> String {
    serde_saphyr::to_string(v).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}

/// Describe this machine's layers and what a run gets. Exit 0 when a
/// sandbox is possible, 125 when zerobox would refuse to run.
pub fn doctor() -> i32 {
    let p = sandbox::probe();
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    println!("zerobox doctor — kernel {}, uid {}", p.kernel, p.uid);
    println!();
    println!("{:<34} status", "layer");
    match &p.user_namespaces {
        Ok(()) => println!("{:<34} yes", "user+mount+net+pid+ipc+uts ns"),
        Err(e) => println!("{:<34} no: {e}", "user+mount+net+pid+ipc+uts ns"),
    }
    if let Some(r) = p.apparmor_restricts_userns {
        println!(
            "{:<34} {}",
            "AppArmor userns restriction",
            if r {
                "on (unprivileged user namespaces blocked)"
            } else {
                "off"
            }
        );
    } else {
        println!("{:<34} not present", "AppArmor userns restriction");
    }
    let abi = p.landlock_abi;
    println!(
        "{:<34} {}",
        "Landlock",
        if abi > 0 {
            format!("ABI {abi}")
        } else {
            "no".into()
        }
    );
    println!(
        "{:<34} {}",
        "  filesystem rules (ABI ≥ 1)",
        yes_no(abi >= 1)
    );
    println!(
        "{:<34} {}",
        "  TCP bind/connect rules (ABI ≥ 4)",
        yes_no(abi >= 4)
    );
    println!(
        "{:<34} {}",
        "  ioctl on devices (ABI ≥ 5)",
        yes_no(abi >= 5)
    );
    println!(
        "{:<34} {}",
        "  abstract unix + signal scope (≥ 6)",
        yes_no(abi >= 6)
    );
    println!("{:<34} {}", "seccomp filter", yes_no(p.seccomp));
    println!();
    let code = match (&p.user_namespaces, abi > 0) {
        (Ok(()), true) => {
            println!("Each run gets: all layers (namespaces, read-only host, private /tmp, Landlock, seccomp, no capabilities).");
            0
        }
        (Ok(()), false) => {
            println!("Each run gets: namespaces + seccomp; no Landlock (--strict refuses to run).");
            0
        }
        (Err(_), true) => {
            println!("Each run gets: Landlock + seccomp only (fallback: no private /tmp, no pid isolation, host unix sockets reachable, no network); --strict refuses.");
            println!("Hint: on Ubuntu ≥ 23.10, allow user namespaces for zerobox with an AppArmor profile, or set kernel.apparmor_restrict_unprivileged_userns=0.");
            0
        }
        (Err(_), false) => {
            println!("zerobox cannot sandbox anything here: it refuses to run (exit 125) unless --no-sandbox.");
            exit::SETUP
        }
    };
    code
}
