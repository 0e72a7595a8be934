//! Presets: signed, versioned YAML policies (`zerobox claude`, `--profile`).
//!
//! Data flows one way and every byte is verified before it is parsed:
//!
//! ```text
//! bytes (bundled | cache | registry | local file)
//!   ─► sign::verify_*  ─► VerifiedBytes (only the verifier builds one)
//!   ─► schema::parse_preset ─► PresetDoc ─► PolicyLayer
//! ```
//!
//! Overrides (user and project) are the user's own configuration and are
//! parsed with the same schema (no name/version); a project file may only
//! narrow a policy until the user trusts that content at that path for that
//! project (`zerobox trust`).
//!
//! See `docs/presets.md` and `docs/registry.md`.

mod bundled;
mod cli;
pub mod first_run;
mod project;
pub mod registry;
pub mod schema;
pub mod sign;
pub mod signer;
mod yaml;

use std::path::{Path, PathBuf};

use crate::policy::{Origin, PolicyLayer};

pub use cli::{cli_main, run, trust, trust_main, PresetArgs, RegistryFlags, TrustArgs};
pub use schema::json_schema;
pub use sign::VerifiedBytes;

/// Largest preset or override file accepted (bytes).
pub const MAX_PRESET_BYTES: usize = 256 * 1024;
/// Largest registry index accepted (bytes).
pub const MAX_INDEX_BYTES: usize = 4 * 1024 * 1024;
/// Largest `.minisig` accepted (bytes).
pub const MAX_SIG_BYTES: usize = 4 * 1024;
/// Deepest `extends` chain.
pub const MAX_EXTENDS_DEPTH: usize = 16;

/// Every way loading, verifying or publishing a preset can fail. Messages
/// name the file (and line:column when known), the value, and the fix.
#[derive(Debug, thiserror::Error)]
pub enum PresetError {
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{file}: {message}")]
    InvalidFile { file: String, message: String },
    #[error("no preset named {name:?}{hint}")]
    NotFound { name: String, hint: String },
    #[error("invalid preset name {name:?}: names match ^[a-z0-9][a-z0-9-]{{0,63}}$ (lowercase letters, digits, '-')")]
    BadName { name: String },
    #[error("extends cycle: {chain}; remove one of these `extends` entries")]
    Cycle { chain: String },
    #[error("extends chain deeper than {MAX_EXTENDS_DEPTH} at {name:?}; flatten the presets")]
    TooDeep { name: String },
    #[error("signature check failed for {file}: {reason}")]
    Signature { file: String, reason: String },
    #[error("{file} is signed by key {key_id}, which is not trusted; if you trust its owner, run `zerobox preset trust-key KEY.pub`")]
    UnknownKey { file: String, key_id: String },
    #[error("{file}: {message}")]
    Untrusted { file: String, message: String },
    #[error("{file}: {message}")]
    State { file: String, message: String },
    #[error("rollback refused for {what}: {message}")]
    Rollback { what: String, message: String },
    #[error("registry index {url} expired at {expires}; the registry must re-sign it (strict mode refuses a frozen index; without --strict it is used with a warning)")]
    Expired { url: String, expires: String },
    #[error("digest mismatch for {what}: expected sha256 {expected}, got {actual}")]
    Digest {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what} is larger than the {limit}-byte limit; refusing it")]
    TooLarge { what: String, limit: usize },
    #[error("pinned preset {name}@{version} (sha256 {sha256}) from {pin_file} was not found with that exact digest in the cache, the registry or the bundled presets; run `zerobox preset pin {name}@VERSION` again or restore the registry")]
    PinNotFound {
        name: String,
        version: String,
        sha256: String,
        pin_file: String,
    },
    #[error("{pin_file} pins {by} but not its building block {name} (`extends`): a pin covers the whole chain; run `zerobox preset pin {root}` again to pin every preset it is built from")]
    PinChain {
        name: String,
        by: String,
        root: String,
        pin_file: String,
    },
    #[error("project file {file} widens the policy ({entry}); a project file may only narrow (deny) until you review and run `zerobox trust {file}`")]
    Widening { file: String, entry: String },
    #[error("registry {url}: {message}")]
    Registry { url: String, message: String },
    #[error("registry {url} unreachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("cannot read {path} ({source}); zerobox refuses to run without a setting you made: fix its permissions or remove it")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    /// zerobox's own directory of this kind cannot be found.
    #[error("cannot find your home directory: set HOME or {var}")]
    NoHome { var: &'static str },
    #[error("preset {preset} supports {supported} only, not {os}")]
    Platform {
        preset: String,
        supported: String,
        os: &'static str,
    },
    /// A key (trusted, publisher's, or just made) that does not parse.
    #[error("{what}: {message}")]
    BadKey { what: &'static str, message: String },
    /// A signing or key-generation step (minisign) failed.
    #[error("{step} failed: {message}")]
    Crypto { step: &'static str, message: String },
    #[error("no signature found for {preset}")]
    NoSignature { preset: String },
    #[error("pinned version {version:?} in {pin_file} is not a version")]
    PinVersion {
        version: String,
        pin_file: String,
        #[source]
        source: semver::Error,
    },
    /// zerobox's own state could not be encoded (a bug, not bad input).
    #[error("cannot encode {what}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The registry fetch could not run (its runtime or thread).
    #[error("the registry fetch failed to run: {0}")]
    Fetch(String),
}

impl PresetError {
    /// The exit code for this error: 1 for verification and trust failures,
    /// 2 for bad input and usage.
    pub fn exit_code(&self) -> i32 {
        match self {
            PresetError::Signature { .. }
            | PresetError::UnknownKey { .. }
            | PresetError::Untrusted { .. }
            | PresetError::Rollback { .. }
            | PresetError::State { .. }
            | PresetError::Expired { .. }
            | PresetError::Digest { .. }
            | PresetError::PinNotFound { .. }
            | PresetError::PinChain { .. }
            | PresetError::Widening { .. } => crate::exit::REFUSED,
            _ => crate::exit::USAGE,
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        PresetError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The error as `cli::main` prints it: the chain once, this error's code.
impl From<PresetError> for crate::exit::Fatal {
    fn from(e: PresetError) -> Self {
        crate::exit::Fatal::new(e.exit_code(), crate::exit::chain(&e))
    }
}

/// Where presets, overrides, trust and cache live for one run.
#[derive(Debug, Clone)]
pub struct PresetEnv {
    /// `$XDG_CONFIG_HOME/zerobox`: `config.yaml`, `keys/`, `overrides/`.
    pub config_dir: PathBuf,
    /// `$XDG_CACHE_HOME/zerobox`: downloaded presets, indexes, highest-seen state.
    pub cache_dir: PathBuf,
    /// `$XDG_DATA_HOME/zerobox`: the trust store (`trust/`). Unreadable
    /// inside the sandbox (the launcher's own-state layer denies it), so the
    /// command can neither read which files the user trusted nor forge trust.
    pub data_dir: PathBuf,
    /// The directory holding `.zerobox/` (searched upward from the cwd to the
    /// repository root), or the cwd when there is none.
    pub project_dir: PathBuf,
    /// Refuse what would otherwise be a warning (expired index, unsigned local file).
    pub strict: bool,
    /// Never touch the network (cache and bundled presets only).
    pub offline: bool,
}

impl PresetEnv {
    /// Directories from the XDG variables (via `directories`), the project
    /// root from `cwd`. `ZEROBOX_OFFLINE=1` sets `offline`.
    pub fn from_system(cwd: &Path, strict: bool) -> Result<Self, PresetError> {
        use crate::dirs::{zerobox_dir, Kind};
        let config_dir = zerobox_dir(Kind::Config).ok_or(PresetError::NoHome {
            var: "XDG_CONFIG_HOME",
        })?;
        let cache_dir = zerobox_dir(Kind::Cache).ok_or(PresetError::NoHome {
            var: "XDG_CACHE_HOME",
        })?;
        let data_dir = zerobox_dir(Kind::Data).ok_or(PresetError::NoHome {
            var: "XDG_DATA_HOME",
        })?;
        let offline = std::env::var_os("ZEROBOX_OFFLINE").is_some_and(|v| v == "1" || v == "true");
        Ok(PresetEnv {
            config_dir,
            cache_dir,
            data_dir,
            project_dir: project::find_project_dir(cwd),
            strict,
            offline,
        })
    }
}

/// A preset resolved into policy layers, ready for `policy::resolve`.
#[derive(Debug, Clone)]
pub struct LoadedPreset {
    pub name: String,
    pub version: semver::Version,
    /// The program to run (found on PATH by the launcher); empty for a
    /// building block that names no command.
    pub command: String,
    /// The preset's own arguments for `command`, before the user's.
    pub args: Vec<String>,
    /// The `extends` chain in order, then the preset itself, then the user
    /// override, then the project override. Each layer's `origin` names it.
    pub layers: Vec<PolicyLayer>,
}

/// Load a preset by name (project pin → cache → registry → bundled) or from
/// a file path (anything containing `/` or ending in `.yaml`/`.yml`), with
/// its `extends` chain and the user and project overrides.
pub fn load(name_or_file: &str, env: &PresetEnv) -> Result<LoadedPreset, PresetError> {
    let mut resolver = registry::Resolver::new(env);
    let root = if is_file_arg(name_or_file) {
        resolver.load_file(Path::new(name_or_file))?
    } else {
        check_name(name_or_file)?;
        resolver.load_named(name_or_file)?
    };
    let os = std::env::consts::OS;
    let platforms: Vec<&str> = root
        .doc
        .platforms
        .iter()
        .map(|p| p.value.as_str())
        .collect();
    if !platforms.is_empty() && !platforms.contains(&os) {
        return Err(PresetError::Platform {
            preset: root.origin().to_string(),
            supported: platforms.join(", "),
            os,
        });
    }
    warn_unmatched_overrides(&env.config_dir.join("overrides"), env)?;
    warn_unmatched_overrides(&env.project_dir.join(".zerobox").join("overrides"), env)?;
    let mut layers = Vec::new();
    let mut stack = vec![root.name.clone()];
    for parent in &root.doc.extends {
        resolver.require_pinned(&parent.value, &root.name, &root.name)?;
        collect_extends(&mut resolver, &parent.value, &mut stack, &mut layers)?;
    }
    layers.push(root.doc.to_layer(root.origin()));
    // User override: the user's own file; may widen.
    let user = env
        .config_dir
        .join("overrides")
        .join(format!("{}.yaml", root.name));
    if let Some(ov) = project::read_override(&user)? {
        for parent in &ov.extends {
            collect_extends(&mut resolver, &parent.value, &mut stack, &mut layers)?;
        }
        layers.push(ov.to_layer(Origin::UserOverride { path: tilde(&user) }));
    }
    // Project override: narrowing only, unless trusted by hash.
    let proj = env
        .project_dir
        .join(".zerobox")
        .join("overrides")
        .join(format!("{}.yaml", root.name));
    if let Some((ov, trusted)) = project::read_project_override(&proj, env)? {
        if trusted {
            for parent in &ov.extends {
                collect_extends(&mut resolver, &parent.value, &mut stack, &mut layers)?;
            }
        }
        let rel = proj.strip_prefix(&env.project_dir).unwrap_or(&proj);
        layers.push(ov.to_layer(Origin::ProjectOverride {
            path: rel.display().to_string(),
            trusted,
        }));
    }
    Ok(LoadedPreset {
        name: root.name.clone(),
        version: root.version.clone(),
        command: root
            .doc
            .command
            .as_ref()
            .map(|c| c.value.clone())
            .unwrap_or_default(),
        args: root.doc.args.iter().map(|a| a.value.clone()).collect(),
        layers,
    })
}

/// An override file applies to the preset its name names, so a typo (or a
/// `.yml` spelling) silently applies to nothing: warn, with the closest
/// preset names. An overrides directory that exists but cannot be listed
/// is an error (the user's override would be skipped unseen).
fn warn_unmatched_overrides(dir: &Path, env: &PresetEnv) -> Result<(), PresetError> {
    if !present(dir)? {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| PresetError::Unreadable {
        path: dir.display().to_string(),
        source: e,
    })?;
    let mut names: Vec<String> = Vec::new();
    for e in entries {
        let e = e.map_err(|e| PresetError::Unreadable {
            path: dir.display().to_string(),
            source: e,
        })?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let known = all_names(env);
    for file in names {
        if file.starts_with('.') {
            continue;
        }
        let stem = file
            .strip_suffix(".yaml")
            .or_else(|| file.strip_suffix(".yml"))
            .unwrap_or(&file);
        let path = tilde(&dir.join(&file));
        if !file.ends_with(".yaml") {
            crate::warn!(
                "override {path} is never applied: override files are named PRESET.yaml{}",
                if known.iter().any(|k| k == stem) {
                    format!(" (rename it to {stem}.yaml)")
                } else {
                    String::new()
                }
            );
            continue;
        }
        if !known.iter().any(|k| k == stem) {
            let close = suggestions(stem, env);
            let hint = if close.is_empty() {
                "; `zerobox preset list` shows the known presets".to_string()
            } else {
                format!("; did you mean {}?", close.join(", "))
            };
            crate::warn!("override {path} matches no known preset, so it is never applied{hint}");
        }
    }
    Ok(())
}

/// Following `extends` from the presets on `stack` to `name`: refused if
/// `name` is already on the way (a cycle, named in full) or the chain is
/// deeper than `MAX_EXTENDS_DEPTH`.
fn check_extends_step(stack: &[String], name: &str) -> Result<(), PresetError> {
    if let Some(pos) = stack.iter().position(|n| n == name) {
        let mut chain: Vec<&str> = stack[pos..].iter().map(String::as_str).collect();
        chain.push(name);
        return Err(PresetError::Cycle {
            chain: chain.join(" -> "),
        });
    }
    if stack.len() > MAX_EXTENDS_DEPTH {
        return Err(PresetError::TooDeep { name: name.into() });
    }
    Ok(())
}

fn collect_extends(
    resolver: &mut registry::Resolver,
    name: &str,
    stack: &mut Vec<String>,
    out: &mut Vec<PolicyLayer>,
) -> Result<(), PresetError> {
    check_extends_step(stack, name)?;
    let p = resolver.load_named(name)?;
    stack.push(name.to_string());
    for parent in &p.doc.extends {
        resolver.require_pinned(&parent.value, name, &stack[0])?;
        collect_extends(resolver, &parent.value, stack, out)?;
    }
    stack.pop();
    let origin = p.origin();
    if !out.iter().any(|l| l.origin == origin) {
        out.push(p.doc.to_layer(origin));
    }
    Ok(())
}

/// `root` and every preset in its `extends` chain (each once, parents
/// before children), loaded with `resolver`: what a pin must cover.
pub(crate) fn chain_of(
    resolver: &mut registry::Resolver,
    root: &schema::Preset,
) -> Result<Vec<schema::Preset>, PresetError> {
    fn walk(
        r: &mut registry::Resolver,
        p: &schema::Preset,
        stack: &mut Vec<String>,
        out: &mut Vec<schema::Preset>,
    ) -> Result<(), PresetError> {
        for parent in &p.doc.extends {
            let name = &parent.value;
            check_extends_step(stack, name)?;
            let child = r.load_named(name)?;
            stack.push(name.clone());
            walk(r, &child, stack, out)?;
            stack.pop();
            if !out.iter().any(|q| q.name == child.name) {
                out.push(child);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(resolver, root, &mut vec![root.name.clone()], &mut out)?;
    out.push(root.clone());
    Ok(out)
}

/// Is `name` a preset that can be resolved (bundled, cached, pinned or in
/// the cached registry index)? Never touches the network.
pub fn exists(name: &str, env: &PresetEnv) -> bool {
    if check_name(name).is_err() {
        return false;
    }
    all_names(env).iter().any(|n| n == name)
}

/// The closest known preset names to `name` (edit distance ≤ 2 or a prefix).
pub fn suggestions(name: &str, env: &PresetEnv) -> Vec<String> {
    let mut scored: Vec<(usize, String)> = all_names(env)
        .into_iter()
        .filter_map(|n| {
            let d = edit_distance(name, &n);
            let close = d <= 2 || (name.len() >= 3 && n.starts_with(name));
            close.then_some((d, n))
        })
        .collect();
    scored.sort();
    scored.into_iter().map(|(_, n)| n).take(3).collect()
}

fn all_names(env: &PresetEnv) -> Vec<String> {
    let mut names: Vec<String> = bundled::BUNDLED
        .iter()
        .map(|b| b.name.to_string())
        .collect();
    names.extend(registry::cached_names(env));
    if let Ok(Some(lock)) = project::read_lock(&env.project_dir) {
        names.extend(lock.pins.into_iter().map(|p| p.name));
    }
    names.sort();
    names.dedup();
    names
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `^[a-z0-9][a-z0-9-]{0,63}$`
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

pub(crate) fn check_name(name: &str) -> Result<(), PresetError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(PresetError::BadName { name: name.into() })
    }
}

pub(crate) fn is_file_arg(s: &str) -> bool {
    s.contains('/') || s.ends_with(".yaml") || s.ends_with(".yml")
}

pub(crate) fn tilde(path: &Path) -> String {
    if let Some(home) = std::env::var_os("HOME") {
        if let Ok(rest) = path.strip_prefix(&home) {
            return format!("~/{}", rest.display());
        }
    }
    path.display().to_string()
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Write `bytes` to `path` atomically, creating parent directories: a
/// fresh temp file in the same directory (random name, `O_EXCL`, never
/// through a symlink: the directory may be a project the command can
/// write), fsync, rename over `path`, fsync the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PresetError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| PresetError::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut last = None;
    for _ in 0..8 {
        let tmp = dir.join(format!(
            ".{name}.tmp.{}.{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp);
        let mut f = match created {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(PresetError::io(path, e)),
        };
        let res = (|| {
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            // The rename is durable once the directory is synced.
            std::fs::File::open(dir)?.sync_all()
        })();
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(PresetError::io(path, e));
        }
        return Ok(());
    }
    Err(PresetError::io(
        path,
        last.unwrap_or_else(|| std::io::Error::other("no temp file name")),
    ))
}

/// A profile file as `--build-profile` reads it back (a regular file of
/// at most `limit` bytes; see `profile`).
pub fn read_profile(path: &Path, limit: usize) -> Result<Vec<u8>, PresetError> {
    read_capped(path, limit)
}

/// Write a profile atomically (see [`write_atomic`]) and, with `env`,
/// trust exactly this content at this real path, as `zerobox trust` would:
/// a later change by anything else makes `--profile FILE` refuse it.
pub fn write_profile(
    path: &Path,
    bytes: &[u8],
    env: Option<&PresetEnv>,
) -> Result<(), PresetError> {
    write_atomic(path, bytes)?;
    if let Some(env) = env {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let real = std::fs::canonicalize(dir)
            .map_err(|e| PresetError::io(dir, e))?
            .join(path.file_name().unwrap_or_default());
        sign::record_trust(env, &real, &sha256_hex(bytes))?;
    }
    Ok(())
}

/// Read at most `limit` bytes of `path`; larger files are refused, and so
/// is anything but a regular file (a FIFO planted where a file is expected
/// would block zerobox; a directory is a misconfiguration).
pub(crate) fn read_capped(path: &Path, limit: usize) -> Result<Vec<u8>, PresetError> {
    read_real(path, limit).map(|f| f.bytes)
}

/// A file read once, with the path the kernel actually opened.
pub(crate) struct ReadFile {
    pub bytes: Vec<u8>,
    /// The opened file's real path (symlinks resolved), from the open
    /// descriptor itself, so a swap after the read cannot change it.
    pub real: PathBuf,
}

/// [`read_capped`], also returning the real path of what was read.
pub(crate) fn read_real(path: &Path, limit: usize) -> Result<ReadFile, PresetError> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO must not wait for a writer; it has no
    // effect on the regular file we then insist on.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => PresetError::io(path, e),
            _ => PresetError::Unreadable {
                path: path.display().to_string(),
                source: e,
            },
        })?;
    let meta = f.metadata().map_err(|e| PresetError::io(path, e))?;
    if !meta.is_file() {
        return Err(PresetError::InvalidFile {
            file: path.display().to_string(),
            message: "not a regular file; replace it with a file or remove it".into(),
        });
    }
    let real = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))
        .or_else(|_| std::fs::canonicalize(path))
        .map_err(|e| PresetError::io(path, e))?;
    let mut bytes = Vec::new();
    f.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| PresetError::io(path, e))?;
    if bytes.len() > limit {
        return Err(PresetError::TooLarge {
            what: path.display().to_string(),
            limit,
        });
    }
    Ok(ReadFile { bytes, real })
}

/// Does `path` exist? `Ok(false)` only when it is truly absent; any other
/// failure to look (a directory on the way that cannot be searched, a file
/// where a directory is expected) is an error naming the path: a setting
/// the user made must never be skipped because it could not be seen.
pub(crate) fn present(path: &Path) -> Result<bool, PresetError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(PresetError::Unreadable {
            path: path.display().to_string(),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["claude", "a", "0", "node-22", &"a".repeat(64)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "-a",
            "A",
            "a_b",
            "../x",
            "a/b",
            "a.b",
            &"a".repeat(65),
            "é",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("claud", "claude"), 1);
        assert_eq!(edit_distance("codx", "codex"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
