//! The policy: what a sandboxed command may read, write, reach and see.
//!
//! Owns the data types ([`PolicyLayer`] from one source, [`Policy`] resolved),
//! the merge of layers, path expansion and the access decision for a path.
//! It knows nothing about how a policy is enforced (see `sandbox`) or where a
//! layer came from beyond its origin label (see `cli`, `preset`).
//!
//! Data flows one way: sources produce `PolicyLayer`s, [`resolve`] merges
//! them (defaults first, CLI flags last) into one fully expanded `Policy`,
//! and the launcher hands that to the sandbox.

pub mod defaults;
pub mod net;
pub mod origin;
pub mod paths;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use net::{HostPattern, Portless};
pub use origin::{Implicit, Origin};
pub use paths::PathContext;

/// An error in a policy: always names the offending value and the fix.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid path {value:?} in {origin}: {reason}")]
    BadPath {
        value: String,
        origin: String,
        reason: String,
    },
    #[error("invalid environment pattern {value:?} in {origin}: {reason}")]
    BadEnv {
        value: String,
        origin: String,
        reason: String,
    },
    #[error("{source} (in {origin})")]
    BadHost {
        origin: String,
        #[source]
        source: net::PatternError,
    },
    #[error("invalid secret host {value:?} for {name} in {origin}: a secret never goes to every host; name its API host")]
    SecretToEveryHost {
        name: String,
        value: String,
        origin: String,
    },
    #[error("invalid --env value {value:?}: expected KEY=VALUE")]
    BadEnvSet { value: String },
    #[error("--secret-host {name}=…: no secret {name} is declared (add --secret {name})")]
    UndeclaredSecret { name: String },
    /// `read_default: deny` needs the entries of `/`.
    #[error("cannot list / for {origin} (reads denied by default)")]
    ListRoot {
        origin: Origin,
        #[source]
        source: std::io::Error,
    },
}

/// What one source (defaults, a preset, an override file, CLI flags)
/// contributes. Paths and patterns are kept as written; [`resolve`] expands
/// them. Plain data, no I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLayer {
    /// Where this layer came from (shown as `defaults`, `cli`, `claude@1.2.0`…).
    pub origin: Origin,
    pub read_allow: Vec<String>,
    pub read_deny: Vec<String>,
    pub write_allow: Vec<String>,
    pub write_deny: Vec<String>,
    pub env_allow: Vec<String>,
    pub env_deny: Vec<String>,
    /// `KEY=VALUE` pairs set inside the sandbox (later layers win).
    pub env_set: Vec<(String, String)>,
    /// Host patterns; `Some(empty)` in `net_allow_any` terms is expressed by
    /// `net_allow_any = true`.
    pub net_allow: Vec<String>,
    pub net_allow_any: bool,
    pub net_deny: Vec<String>,
    /// Host patterns refused quietly (see [`NetworkPolicy::quiet`]).
    pub net_quiet: Vec<String>,
    /// Host unix socket paths made reachable.
    pub unix_sockets: Vec<String>,
    /// Secrets the proxy injects (values are never part of a layer).
    pub secrets: Vec<SecretSpec>,
    /// Extra host bindings for secrets declared by this or an earlier layer
    /// (`--secret-host NAME=HOST` for a preset's secret).
    pub secret_hosts: Vec<(String, Vec<String>)>,
    /// `filesystem.read_default: deny` (a complete profile, see
    /// `profile`): every top-level path that no read or write grant
    /// covers is denied; the grants re-open what they name.
    pub read_default_deny: bool,
}

/// A secret as a policy names it: where the value comes from and the host
/// patterns it is bound to. Never holds the value itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SecretSpec {
    /// The environment variable name the command sees (holding a placeholder).
    pub name: String,
    /// `None`: zerobox's own environment variable `name` (or an earlier
    /// layer's source: a later layer that names one wins).
    pub from: Option<SecretSource>,
    /// Host patterns the real value may be sent to (never empty once resolved).
    pub hosts: Vec<String>,
}

/// Where a secret's real value is read from (by the launcher, just before
/// the proxy starts; never by the policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Another variable of zerobox's environment (`env:NAME`).
    Env(String),
    /// A file on the host (`@FILE`), as written; denied for reading inside.
    File(String),
    /// The value given on the command line (`--secret NAME=VALUE`), carried
    /// beside the policy (`launcher::RunRequest::inline_secrets`).
    Inline,
}

impl SecretSource {
    /// A preset's `from:` (`env:NAME` or `@FILE`; a preset never carries a
    /// value). The error says what was expected.
    pub fn parse(s: &str) -> Result<Self, String> {
        let expected = || format!("invalid secret source {s:?}: expected env:NAME or @FILE");
        if let Some(var) = s.strip_prefix("env:") {
            return env_name_ok(var)
                .then(|| SecretSource::Env(var.to_string()))
                .ok_or_else(expected);
        }
        match s.strip_prefix('@') {
            Some(path) if !path.is_empty() => Ok(SecretSource::File(path.to_string())),
            _ => Err(expected()),
        }
    }

    /// The file, for `@FILE`.
    pub fn file(&self) -> Option<&str> {
        match self {
            SecretSource::File(f) => Some(f),
            _ => None,
        }
    }
}

/// As written (`env:NAME`, `@FILE`, `inline`): what `explain` shows.
impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Env(var) => write!(f, "env:{var}"),
            SecretSource::File(file) => write!(f, "@{file}"),
            SecretSource::Inline => f.write_str("inline"),
        }
    }
}

impl Serialize for SecretSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl PolicyLayer {
    pub fn new(origin: Origin) -> Self {
        PolicyLayer {
            origin,
            read_allow: Vec::new(),
            read_deny: Vec::new(),
            write_allow: Vec::new(),
            write_deny: Vec::new(),
            env_allow: Vec::new(),
            env_deny: Vec::new(),
            env_set: Vec::new(),
            net_allow: Vec::new(),
            net_allow_any: false,
            net_deny: Vec::new(),
            net_quiet: Vec::new(),
            unix_sockets: Vec::new(),
            secrets: Vec::new(),
            secret_hosts: Vec::new(),
            read_default_deny: false,
        }
    }
}

/// The kind of a filesystem rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsAccess {
    AllowRead,
    DenyRead,
    AllowWrite,
    DenyWrite,
}

/// One filesystem rule: an absolute, lexically normalised path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FsRule {
    pub path: PathBuf,
    pub access: FsAccess,
    pub origin: Origin,
}

/// What the sandbox may do at one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Effective {
    pub read: bool,
    pub write: bool,
}

/// The fully resolved policy handed to the sandbox. Plain data.
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    /// The working directory of the command (absolute, must exist).
    pub cwd: PathBuf,
    /// The user's home directory (what `~` expanded to).
    pub home: PathBuf,
    /// Filesystem rules, sorted by path.
    pub fs: Vec<FsRule>,
    /// The exact environment of the command (the private `TMPDIR` is added
    /// by the sandbox).
    pub env: BTreeMap<String, String>,
    /// Environment variables that were dropped (names only, for `explain`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_dropped: Vec<String>,
    /// Variables a wildcard allow pattern matched but that look like
    /// credentials ([`looks_like_credential`]) and no pattern names
    /// exactly: withheld (also in `env_dropped`); the launcher warns,
    /// naming each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_withheld: Vec<String>,
    pub network: NetworkPolicy,
    /// Host unix sockets that stay reachable.
    pub unix_sockets: Vec<PathBuf>,
    /// Secrets the proxy injects (names, sources, hosts; never values).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretSpec>,
}

/// The network part of a policy: host patterns already parsed (one
/// grammar, [`net`]), so the proxy enforces exactly what was checked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NetworkPolicy {
    /// Port-less patterns mean ports 80 and 443.
    pub allow: Vec<HostPattern>,
    /// Any host (still through the proxy, still address-checked).
    pub allow_any: bool,
    /// Port-less patterns mean every port (a deny never reads narrower).
    pub deny: Vec<HostPattern>,
    /// Hosts a preset knows are optional (updater, telemetry): refused like
    /// any host not allowed, logged in `--net-log` with `"quiet": true`,
    /// left out of the end-of-run "blocked" line. Never allows anything.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quiet: Vec<HostPattern>,
}

impl NetworkPolicy {
    /// True when any network access was asked for.
    pub fn wants_network(&self) -> bool {
        self.allow_any || !self.allow.is_empty()
    }
}

impl Policy {
    /// The access decision for `path` (absolute, normalised).
    ///
    /// Reads: allowed unless the most specific read rule at or above the
    /// path denies it; a deny wins over an allow on the same path. Writes:
    /// denied unless the most specific write rule allows it; a deny-read at
    /// the same or a deeper level than the write grant also denies writing.
    /// An allow-write re-exposes its path for reading (an explicit, more
    /// specific grant).
    pub fn effective(&self, path: &Path) -> Effective {
        let read_rule = self.most_specific(path, |a| {
            matches!(
                a,
                FsAccess::AllowRead | FsAccess::DenyRead | FsAccess::AllowWrite
            )
        });
        let write_rule = self.most_specific(path, |a| {
            matches!(
                a,
                FsAccess::AllowWrite | FsAccess::DenyWrite | FsAccess::DenyRead
            )
        });
        let read = !matches!(read_rule, Some(FsAccess::DenyRead));
        let write = matches!(write_rule, Some(FsAccess::AllowWrite)) && read;
        Effective { read, write }
    }

    /// The deepest rule at or above `path` among the kinds `filter` selects;
    /// at equal depth a deny beats an allow.
    fn most_specific(&self, path: &Path, filter: impl Fn(FsAccess) -> bool) -> Option<FsAccess> {
        let mut best: Option<(usize, FsAccess)> = None;
        let path_bytes = path.as_os_str().as_bytes();
        for rule in &self.fs {
            if !filter(rule.access) || !is_within(path_bytes, rule.path.as_os_str().as_bytes()) {
                continue;
            }
            let depth = rule
                .path
                .as_os_str()
                .as_bytes()
                .iter()
                .filter(|b| **b == b'/')
                .count();
            let is_deny = matches!(rule.access, FsAccess::DenyRead | FsAccess::DenyWrite);
            best = match best {
                None => Some((depth, rule.access)),
                Some((d, _)) if depth > d => Some((depth, rule.access)),
                Some((d, a)) if depth == d && is_deny => {
                    let _ = a;
                    Some((depth, rule.access))
                }
                keep => keep,
            };
        }
        best.map(|(_, a)| a)
    }

    /// Every distinct rule path, shallowest first (parents before children).
    pub fn rule_paths(&self) -> Vec<PathBuf> {
        parents_first(self.fs.iter().map(|r| r.path.clone()).collect())
    }
}

/// [`Policy::effective`] for many paths: the rules keyed by path, so a
/// decision looks up the path's ancestors (a handful) instead of scanning
/// every rule. Planning the mounts, the Landlock walk and the launcher's
/// placeholders ask for thousands of paths against thousands of rules; the
/// scan made that quadratic. Gives exactly what `Policy::effective` gives
/// (a test compares the two on random rule sets).
pub struct RuleIndex<'a> {
    by_path: std::collections::HashMap<&'a [u8], Vec<FsAccess>>,
}

impl<'a> RuleIndex<'a> {
    pub fn new(policy: &'a Policy) -> Self {
        let mut by_path: std::collections::HashMap<&[u8], Vec<FsAccess>> =
            std::collections::HashMap::with_capacity(policy.fs.len());
        for rule in &policy.fs {
            by_path
                .entry(rule.path.as_os_str().as_bytes())
                .or_default()
                .push(rule.access);
        }
        RuleIndex { by_path }
    }

    /// The same decision as [`Policy::effective`].
    pub fn effective(&self, path: &Path) -> Effective {
        // The deepest rule at or above the path for each of the two
        // questions, a deny winning at equal depth (the fold of
        // `Policy::most_specific`; its outcome does not depend on order).
        let mut read_best: Option<(usize, FsAccess)> = None;
        let mut write_best: Option<(usize, FsAccess)> = None;
        for base in ancestors_bytes(path.as_os_str().as_bytes()) {
            let Some(accesses) = self.by_path.get(base) else {
                continue;
            };
            let depth = base.iter().filter(|b| **b == b'/').count();
            for &access in accesses {
                if matches!(
                    access,
                    FsAccess::AllowRead | FsAccess::DenyRead | FsAccess::AllowWrite
                ) {
                    read_best = fold_specific(read_best, depth, access);
                }
                if matches!(
                    access,
                    FsAccess::AllowWrite | FsAccess::DenyWrite | FsAccess::DenyRead
                ) {
                    write_best = fold_specific(write_best, depth, access);
                }
            }
        }
        let read = !matches!(read_best, Some((_, FsAccess::DenyRead)));
        let write = matches!(write_best, Some((_, FsAccess::AllowWrite))) && read;
        Effective { read, write }
    }
}

/// One step of the "deepest wins, deny wins a tie" fold.
fn fold_specific(
    best: Option<(usize, FsAccess)>,
    depth: usize,
    access: FsAccess,
) -> Option<(usize, FsAccess)> {
    let is_deny = matches!(access, FsAccess::DenyRead | FsAccess::DenyWrite);
    match best {
        None => Some((depth, access)),
        Some((d, _)) if depth > d => Some((depth, access)),
        Some((d, _)) if depth == d && is_deny => Some((depth, access)),
        keep => keep,
    }
}

/// `path` and every base [`is_within`] accepts for it: the path itself,
/// each prefix ending before a `/`, and `/`.
fn ancestors_bytes(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let cuts = path
        .iter()
        .enumerate()
        .rev()
        .filter(|(i, b)| **b == b'/' && *i > 0)
        .map(move |(i, _)| &path[..i]);
    let root: &[u8] = if path.first() == Some(&b'/') && path != b"/" {
        b"/"
    } else {
        b""
    };
    std::iter::once(path)
        .chain(cuts)
        .chain(std::iter::once(root).filter(|r| !r.is_empty()))
}

/// Sort paths shallowest first (parents before children), without repeats.
pub fn parents_first(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    // Depth counted once per path, not once per comparison.
    let mut keyed: Vec<(usize, PathBuf)> = paths
        .into_iter()
        .map(|p| (p.components().count(), p))
        .collect();
    keyed.sort_unstable();
    keyed.dedup();
    keyed.into_iter().map(|(_, p)| p).collect()
}

/// Is `path` equal to `base` or beneath it? Both absolute and normalised;
/// compared as bytes on `/` boundaries (this runs for every directory the
/// Landlock walk visits, so it avoids `Path::starts_with`'s component
/// parsing).
pub fn is_within(path: &[u8], base: &[u8]) -> bool {
    if base == b"/" {
        return path.first() == Some(&b'/');
    }
    path.starts_with(base) && (path.len() == base.len() || path[base.len()] == b'/')
}

/// The built-in defaults as a layer: the secret deny list. (The environment
/// allow list is applied by [`resolve`].)
pub fn defaults_layer() -> PolicyLayer {
    defaults_layer_for(&[])
}

/// [`defaults_layer`], with every `~/…` entry also applied under each of
/// `other_homes` (the account's home from the user database when `HOME`
/// points elsewhere: both are the user's).
pub fn defaults_layer_for(other_homes: &[PathBuf]) -> PolicyLayer {
    let mut layer = PolicyLayer::new(Origin::Defaults);
    layer.read_deny = defaults::DENY_READ.iter().map(|s| s.to_string()).collect();
    for home in other_homes {
        for entry in defaults::DENY_READ {
            if let Some(rest) = entry.strip_prefix("~/") {
                layer.read_deny.push(home.join(rest).display().to_string());
            }
        }
    }
    layer
}

/// Merge `layers` (in order: defaults, presets, overrides, CLI last) into a
/// An `env: set:` value: a leading `~/` is the home directory (a preset
/// cannot know it), everything else is taken as written.
pub fn expand_env_value(value: &str, home: &Path) -> String {
    match value.strip_prefix("~/") {
        Some(rest) => home.join(rest).display().to_string(),
        None if value == "~" => home.display().to_string(),
        None => value.to_string(),
    }
}

/// [`Policy`]. `host_env` is zerobox's own environment.
pub fn resolve(
    layers: &[PolicyLayer],
    ctx: &PathContext,
    host_env: &[(OsString, OsString)],
) -> Result<Policy, PolicyError> {
    // The rules share their ancestors: each is looked at once.
    paths::memoized(|| resolve_layers(layers, ctx, host_env))
}

fn resolve_layers(
    layers: &[PolicyLayer],
    ctx: &PathContext,
    host_env: &[(OsString, OsString)],
) -> Result<Policy, PolicyError> {
    let mut fs = Vec::new();
    let mut env_allow: Vec<(String, String)> = defaults::ENV_ALLOW
        .iter()
        .map(|p| (p.to_string(), "defaults".to_string()))
        .collect();
    let mut env_deny: Vec<String> = Vec::new();
    let mut env_set: BTreeMap<String, String> = BTreeMap::new();
    let mut network = NetworkPolicy::default();
    let mut unix_sockets = Vec::new();
    let mut secrets: Vec<SecretSpec> = Vec::new();
    // (value as written, origin, access, symlinks on its way): checked once
    // every layer is merged, when it is known what the command can write.
    let mut linked: Vec<(String, Origin, Option<FsAccess>, Vec<PathBuf>)> = Vec::new();

    for layer in layers {
        let origin = &layer.origin;
        // Errors name the origin as the user reads it.
        let label = origin.to_string();
        let groups: [(&Vec<String>, FsAccess); 4] = [
            (&layer.read_allow, FsAccess::AllowRead),
            (&layer.read_deny, FsAccess::DenyRead),
            (&layer.write_allow, FsAccess::AllowWrite),
            (&layer.write_deny, FsAccess::DenyWrite),
        ];
        for (values, access) in groups {
            for value in values {
                for e in ctx.expand(value, &label, access == FsAccess::DenyRead)? {
                    linked.push((value.clone(), origin.clone(), Some(access), e.links.clone()));
                    fs.push(FsRule {
                        path: e.path,
                        access,
                        origin: origin.clone(),
                    });
                }
            }
        }
        for pattern in &layer.env_allow {
            validate_env_pattern(pattern, &label)?;
            if pattern == "*" {
                return Err(PolicyError::BadEnv {
                    value: pattern.clone(),
                    origin: label.clone(),
                    reason: "allowing every variable would pass your tokens and keys too; name the variables (--allow-env=NAME) or a prefix (--allow-env=PREFIX*)".into(),
                });
            }
            env_allow.push((pattern.clone(), label.clone()));
        }
        for pattern in &layer.env_deny {
            validate_env_pattern(pattern, &label)?;
            env_deny.push(pattern.clone());
        }
        for (k, v) in &layer.env_set {
            validate_env_pattern(k, &label)?;
            if k.ends_with('*') {
                return Err(PolicyError::BadEnvSet {
                    value: format!("{k}={v}"),
                });
            }
            env_set.insert(k.clone(), expand_env_value(v, &ctx.home));
        }
        let host = |text: &String, portless| {
            HostPattern::parse(text, portless).map_err(|source| PolicyError::BadHost {
                origin: label.clone(),
                source,
            })
        };
        for text in &layer.net_allow {
            network.allow.push(host(text, Portless::Web)?);
        }
        network.allow_any |= layer.net_allow_any;
        for text in &layer.net_deny {
            network.deny.push(host(text, Portless::Any)?);
        }
        for text in &layer.net_quiet {
            network.quiet.push(host(text, Portless::Web)?);
        }
        // A secret's hosts: the same grammar, checked here (the proxy
        // parses them again when it binds the value), `*` never.
        let secret_hosts = layer
            .secrets
            .iter()
            .map(|s| (&s.name, &s.hosts))
            .chain(layer.secret_hosts.iter().map(|(n, h)| (n, h)));
        for (name, hosts) in secret_hosts {
            for text in hosts {
                if text.trim() == "*" {
                    return Err(PolicyError::SecretToEveryHost {
                        name: name.clone(),
                        value: text.clone(),
                        origin: label.clone(),
                    });
                }
                net::SecretHost::parse(text).map_err(|source| PolicyError::BadHost {
                    origin: label.clone(),
                    source,
                })?;
            }
        }
        for value in &layer.unix_sockets {
            for e in ctx.expand(value, &label, false)? {
                linked.push((value.clone(), origin.clone(), None, e.links.clone()));
                unix_sockets.push(e.path);
            }
        }
        // Secrets merge by name: hosts are a union, a later source wins.
        for spec in &layer.secrets {
            validate_env_pattern(&spec.name, &label)?;
            match secrets.iter_mut().find(|s| s.name == spec.name) {
                Some(existing) => {
                    for h in &spec.hosts {
                        if !existing.hosts.contains(h) {
                            existing.hosts.push(h.clone());
                        }
                    }
                    if spec.from.is_some() {
                        existing.from = spec.from.clone();
                    }
                }
                None => secrets.push(spec.clone()),
            }
        }
        for (name, hosts) in &layer.secret_hosts {
            let Some(existing) = secrets.iter_mut().find(|s| s.name == *name) else {
                return Err(PolicyError::UndeclaredSecret { name: name.clone() });
            };
            for h in hosts {
                if !existing.hosts.contains(h) {
                    existing.hosts.push(h.clone());
                }
            }
        }
    }
    // A secret's source file is never readable inside: the sandbox sees
    // only the placeholder, and reading the file would undo that.
    for spec in &secrets {
        if let Some(file) = spec.from.as_ref().and_then(SecretSource::file) {
            let origin = Origin::SecretFile {
                secret: spec.name.clone(),
            };
            for expanded in ctx.expand(file, &origin.to_string(), false)? {
                fs.push(FsRule {
                    path: expanded.path,
                    access: FsAccess::DenyRead,
                    origin: origin.clone(),
                });
            }
        }
    }
    if let Some(layer) = layers.iter().find(|l| l.read_default_deny) {
        let top = std::fs::read_dir("/")
            .map_err(|source| PolicyError::ListRoot {
                origin: layer.origin.clone(),
                source,
            })?
            .flatten()
            .map(|e| e.path())
            .collect();
        let extra = default_deny_rules(&fs, top, &ctx.cwd, &layer.origin);
        fs.extend(extra);
    }
    fs.sort_by(|a, b| a.path.cmp(&b.path).then(a.access.cmp(&b.access)));
    fs.dedup_by(|a, b| a.path == b.path && a.access == b.access);
    let fs = check_links(fs, &linked)?;

    // Environment: pass what an allow pattern names and no deny pattern
    // names, then apply explicit settings. A wildcard never carries a
    // credential-looking name on its own: that takes the exact name.
    let mut env = BTreeMap::new();
    let mut env_dropped = Vec::new();
    let mut env_withheld = Vec::new();
    for (k, v) in host_env {
        let (Some(k), Some(v)) = (k.to_str(), v.to_str()) else {
            continue; // non-UTF-8 names or values never pass
        };
        let exact = env_allow.iter().any(|(p, _)| p == k);
        let by_wildcard = env_allow
            .iter()
            .any(|(p, _)| p.ends_with('*') && env_matches(p, k));
        let denied = env_deny.iter().any(|p| env_matches(p, k));
        if denied || !(exact || by_wildcard) {
            env_dropped.push(k.to_string());
        } else if !exact && looks_like_credential(k) {
            env_dropped.push(k.to_string());
            env_withheld.push(k.to_string());
        } else {
            env.insert(k.to_string(), v.to_string());
        }
    }
    env_dropped.sort();
    env_withheld.sort();
    env.extend(env_set);
    env.insert("PWD".into(), ctx.cwd.display().to_string());

    Ok(Policy {
        cwd: ctx.cwd.clone(),
        home: ctx.home.clone(),
        fs,
        env,
        env_dropped,
        env_withheld,
        network,
        unix_sockets,
        secrets,
    })
}

/// The rules that make reads deny-by-default (`read_default: deny`): a
/// deny on every entry of `/` (`top`) that no grant covers as a whole;
/// the grants inside (more specific) re-open exactly what they name. The
/// sandbox's own `/tmp`, `/dev` and `/proc` are built fresh and keep their
/// implicit rules; a symlink at the top (`/lib -> usr/lib`) is no place of
/// its own (its target's rules apply); the cwd stays readable (the sandbox
/// adds it) even when it is a top-level directory.
pub fn default_deny_rules(
    fs: &[FsRule],
    top: Vec<PathBuf>,
    cwd: &Path,
    origin: &Origin,
) -> Vec<FsRule> {
    let mut out = Vec::new();
    for path in top {
        if ["/tmp", "/dev", "/proc"]
            .iter()
            .any(|s| path == Path::new(s))
            || path == cwd
        {
            continue;
        }
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            continue;
        }
        let covered = fs.iter().any(|r| {
            matches!(r.access, FsAccess::AllowRead | FsAccess::AllowWrite)
                && path.starts_with(&r.path)
        });
        if !covered {
            out.push(FsRule {
                path,
                access: FsAccess::DenyRead,
                origin: Origin::ReadDefaultDeny {
                    by: Box::new(origin.clone()),
                },
            });
        }
    }
    out
}

/// Words in a variable name that mark it as a credential (compared
/// uppercase). `SUBSTRINGS` match anywhere in the name; `WORDS` match one
/// `_`-separated part exactly (so `KEY` catches `AWS_ACCESS_KEY_ID` but not
/// `KEYBOARD_LAYOUT`); `AUTH` matches a part starting with it
/// (`AUTHORIZATION`), except `AUTHOR`/`AUTHORS` (`GIT_AUTHOR_NAME`).
/// Documented in docs/policy.md.
const CREDENTIAL_SUBSTRINGS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "APIKEY",
    "PRIVATE",
    "COOKIE",
    "SESSION",
    "OAUTH",
    // A webhook URL is its own credential (anyone holding it can post).
    "WEBHOOK",
];
/// Connection strings (`DATABASE_URL`, `REDIS_URL`, `MONGODB_URI`) usually
/// carry a password: a name ending in `_URL`/`_URI` with one of these parts.
const CONNECTION_WORDS: &[&str] = &[
    "DATABASE",
    "DB",
    "REDIS",
    "MONGO",
    "MONGODB",
    "POSTGRES",
    "POSTGRESQL",
    "PG",
    "MYSQL",
    "MARIADB",
    "AMQP",
    "RABBITMQ",
    "BROKER",
    "CONNECTION",
    "CONN",
    "SMTP",
];
const CREDENTIAL_WORDS: &[&str] = &["KEY", "KEYS", "PASS", "PW", "PWD", "PAT", "DSN"];

/// Does an environment variable's name look like it holds a credential?
/// Used so that no wildcard (`AWS_*`, `*`) carries one without the user
/// naming it.
pub fn looks_like_credential(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    if CREDENTIAL_SUBSTRINGS.iter().any(|w| upper.contains(w)) {
        return true;
    }
    let parts: Vec<&str> = upper.split('_').collect();
    if matches!(parts.last(), Some(&("URL" | "URI" | "URLS")))
        && parts.iter().any(|p| CONNECTION_WORDS.contains(p))
    {
        return true;
    }
    upper.split('_').any(|part| {
        // `PWD` alone is the working directory, not a password.
        (CREDENTIAL_WORDS.contains(&part) && upper != "PWD" && upper != "OLDPWD")
            || (part.starts_with("AUTH") && part != "AUTHOR" && part != "AUTHORS")
    })
}

/// Symlinks on the way to a rule path that live where the command can
/// write (their directory is writable) are the next run's attack surface:
/// the command can re-point them. A grant (read, write, unix socket)
/// through one is refused, naming the link; a protection through one also
/// protects the link itself (the sandbox pins it in place, so it cannot be
/// removed, renamed or replaced during the run).
fn check_links(
    mut fs: Vec<FsRule>,
    linked: &[(String, Origin, Option<FsAccess>, Vec<PathBuf>)],
) -> Result<Vec<FsRule>, PolicyError> {
    if linked.iter().all(|(_, _, _, links)| links.is_empty()) {
        return Ok(fs);
    }
    let view = Policy {
        cwd: PathBuf::new(),
        home: PathBuf::new(),
        fs: fs.clone(),
        env: BTreeMap::new(),
        env_dropped: Vec::new(),
        env_withheld: Vec::new(),
        network: NetworkPolicy::default(),
        unix_sockets: Vec::new(),
        secrets: Vec::new(),
    };
    let replaceable = |link: &Path| link.parent().is_some_and(|dir| view.effective(dir).write);
    for (value, origin, access, links) in linked {
        for link in links.iter().filter(|l| replaceable(l)) {
            match access {
                Some(a @ (FsAccess::DenyRead | FsAccess::DenyWrite)) => fs.push(FsRule {
                    path: link.clone(),
                    access: *a,
                    origin: origin.clone(),
                }),
                _ => {
                    return Err(PolicyError::BadPath {
                        value: value.clone(),
                        origin: origin.to_string(),
                        reason: format!(
                            "it goes through the symlink {}, which lives in a directory the command can write: a run could re-point it to widen the next one; name the real path instead",
                            link.display()
                        ),
                    })
                }
            }
        }
    }
    fs.sort_by(|a, b| a.path.cmp(&b.path).then(a.access.cmp(&b.access)));
    fs.dedup_by(|a, b| a.path == b.path && a.access == b.access);
    Ok(fs)
}

/// An environment variable name as POSIX shells accept it: letters,
/// digits and `_`, not starting with a digit. The one check for every
/// name a policy source gives (flags, presets, secrets, `env.set`).
pub fn env_name_ok(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An environment pattern: `NAME`, `PREFIX*` or `*` (refused later for
/// allow lists, with its own reason).
pub fn env_pattern_ok(pattern: &str) -> bool {
    pattern == "*" || env_name_ok(pattern.strip_suffix('*').unwrap_or(pattern))
}

/// `NAME` or `PREFIX*`; names are what POSIX shells accept.
fn validate_env_pattern(pattern: &str, origin: &str) -> Result<(), PolicyError> {
    if !env_pattern_ok(pattern) {
        return Err(PolicyError::BadEnv {
            value: pattern.to_string(),
            origin: origin.to_string(),
            reason: "expected NAME or PREFIX* (letters, digits, _)".into(),
        });
    }
    Ok(())
}

/// Does env `pattern` (`NAME` or `PREFIX*`) match `name`?
pub fn env_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small tree of names so random rules and queries overlap a lot:
    /// parents, children, equal paths and the `/` vs `/x` depth tie.
    fn arb_path() -> impl proptest::strategy::Strategy<Value = PathBuf> {
        use proptest::prelude::*;
        proptest::collection::vec(prop::sample::select(vec!["a", "b", "ab", "c"]), 0..4).prop_map(
            |parts| {
                let mut p = PathBuf::from("/");
                for part in parts {
                    p.push(part);
                }
                p
            },
        )
    }

    fn arb_access() -> impl proptest::strategy::Strategy<Value = FsAccess> {
        proptest::prop_oneof![
            proptest::strategy::Just(FsAccess::AllowRead),
            proptest::strategy::Just(FsAccess::DenyRead),
            proptest::strategy::Just(FsAccess::AllowWrite),
            proptest::strategy::Just(FsAccess::DenyWrite),
        ]
    }

    proptest::proptest! {
        #[test]
        fn rule_index_decides_like_the_scan(
            rules in proptest::collection::vec((arb_path(), arb_access()), 0..12),
            queries in proptest::collection::vec(arb_path(), 1..16),
        ) {
            let mut p = policy(&[]);
            p.fs = rules
                .into_iter()
                .map(|(path, access)| FsRule { path, access, origin: Origin::Test })
                .collect();
            let index = RuleIndex::new(&p);
            for q in queries {
                proptest::prop_assert_eq!(index.effective(&q), p.effective(&q), "{}", q.display());
            }
        }
    }

    fn ctx() -> PathContext {
        PathContext {
            home: PathBuf::from("/home/u"),
            cwd: PathBuf::from("/home/u/proj"),
            tmpdir: PathBuf::from("/tmp"),
        }
    }

    fn policy(layers: &[PolicyLayer]) -> Policy {
        let env = vec![
            (OsString::from("PATH"), OsString::from("/bin")),
            (OsString::from("AWS_SECRET_ACCESS_KEY"), OsString::from("x")),
            (OsString::from("LC_ALL"), OsString::from("C")),
            (OsString::from("GITHUB_TOKEN"), OsString::from("t")),
        ];
        resolve(layers, &ctx(), &env).unwrap()
    }

    fn cli(f: impl FnOnce(&mut PolicyLayer)) -> PolicyLayer {
        let mut l = PolicyLayer::new(Origin::Cli);
        f(&mut l);
        l
    }

    #[test]
    fn defaults_read_everything_but_secrets_and_write_nothing() {
        let p = policy(&[defaults_layer()]);
        let e = |s: &str| p.effective(Path::new(s));
        assert_eq!(
            e("/usr/bin/ls"),
            Effective {
                read: true,
                write: false
            }
        );
        assert_eq!(
            e("/home/u/proj/a"),
            Effective {
                read: true,
                write: false
            }
        );
        assert!(!e("/home/u/.ssh").read);
        assert!(!e("/home/u/.ssh/id_ed25519").read);
        assert!(!e("/etc/shadow").read);
        assert!(e("/etc/shadowfax").read, "prefix of a name is not a parent");
        assert!(!e("/home/u/.ssh").write);
    }

    #[test]
    fn table_of_precedence() {
        // (layers' rules, path, expected read, expected write)
        type Case = (
            &'static [(&'static str, FsAccess)],
            &'static str,
            bool,
            bool,
        );
        use FsAccess::*;
        let cases: &[Case] = &[
            (&[("/a", AllowWrite)], "/a/b", true, true),
            (
                &[("/a", AllowWrite), ("/a/b", DenyWrite)],
                "/a/b/c",
                true,
                false,
            ),
            (
                &[("/a", AllowWrite), ("/a/b", DenyWrite)],
                "/a/x",
                true,
                true,
            ),
            (
                &[("/a", AllowWrite), ("/a", DenyWrite)],
                "/a/x",
                true,
                false,
            ),
            (&[("/a", DenyRead), ("/a", AllowRead)], "/a/x", false, false),
            (
                &[("/a", DenyRead), ("/a/b", AllowRead)],
                "/a/b/c",
                true,
                false,
            ),
            (
                &[("/a", DenyRead), ("/a/b", AllowWrite)],
                "/a/b",
                true,
                true,
            ),
            (
                &[("/a", AllowWrite), ("/a/b", DenyRead)],
                "/a/b",
                false,
                false,
            ),
            (
                &[("/a/b", AllowWrite), ("/a", DenyRead)],
                "/a/c",
                false,
                false,
            ),
            (
                &[("/a", AllowRead), ("/a/b", DenyRead)],
                "/a/b/c",
                false,
                false,
            ),
            (
                &[("/a", DenyWrite), ("/a/b", AllowWrite)],
                "/a/b/c",
                true,
                true,
            ),
        ];
        for (rules, path, read, write) in cases {
            let mut l = PolicyLayer::new(Origin::Test);
            for (p, a) in rules.iter() {
                let v = p.to_string();
                match a {
                    AllowRead => l.read_allow.push(v),
                    DenyRead => l.read_deny.push(v),
                    AllowWrite => l.write_allow.push(v),
                    DenyWrite => l.write_deny.push(v),
                }
            }
            let p = policy(&[l]);
            assert_eq!(
                p.effective(Path::new(path)),
                Effective {
                    read: *read,
                    write: *write
                },
                "rules {rules:?} path {path}"
            );
        }
    }

    #[test]
    fn env_allow_list_and_flags() {
        let p = policy(&[]);
        assert!(p.env.contains_key("PATH"));
        assert!(p.env.contains_key("LC_ALL"));
        assert!(!p.env.contains_key("AWS_SECRET_ACCESS_KEY"));
        assert!(p.env_dropped.contains(&"GITHUB_TOKEN".to_string()));

        let p = policy(&[cli(|l| {
            l.env_allow.push("GITHUB_TOKEN".into());
            l.env_deny.push("LC_*".into());
            l.env_set.push(("FOO".into(), "bar".into()));
        })]);
        assert_eq!(p.env.get("GITHUB_TOKEN").map(String::as_str), Some("t"));
        assert!(!p.env.contains_key("LC_ALL"));
        assert_eq!(p.env.get("FOO").map(String::as_str), Some("bar"));
        assert_eq!(p.env.get("PWD").map(String::as_str), Some("/home/u/proj"));
    }

    #[test]
    fn wildcards_never_carry_credentials() {
        let p = policy(&[cli(|l| {
            l.env_allow.push("GITHUB_*".into());
            l.env_allow.push("AWS_*".into());
        })]);
        assert!(!p.env.contains_key("GITHUB_TOKEN"));
        assert!(!p.env.contains_key("AWS_SECRET_ACCESS_KEY"));
        assert_eq!(
            p.env_withheld,
            vec!["AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN"]
        );
        assert!(p.env_dropped.contains(&"GITHUB_TOKEN".to_string()));
        // Named exactly: passed, no warning.
        let p = policy(&[cli(|l| {
            l.env_allow.push("GITHUB_*".into());
            l.env_allow.push("GITHUB_TOKEN".into());
        })]);
        assert_eq!(p.env.get("GITHUB_TOKEN").map(String::as_str), Some("t"));
        assert!(p.env_withheld.is_empty());
        // A bare `*` is refused, with the alternative.
        let err = resolve(&[cli(|l| l.env_allow.push("*".into()))], &ctx(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("PREFIX*"), "{err}");
        // ... but denying everything is fine.
        assert!(resolve(&[cli(|l| l.env_deny.push("*".into()))], &ctx(), &[]).is_ok());
    }

    #[test]
    fn credential_names() {
        for yes in [
            "GITHUB_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "OPENAI_API_KEY",
            "NPM_AUTH",
            "DB_PASSWORD",
            "PGPASSWORD",
            "MY_APIKEY",
            "SENTRY_DSN",
            "GH_PAT",
            "AUTHORIZATION",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "SESSION_COOKIE",
            "SSH_PRIVATE",
            "aws_session_token",
            "DATABASE_URL",
            "REDIS_URL",
            "MONGODB_URI",
            "PG_CONNECTION_URL",
            "SLACK_WEBHOOK_URL",
        ] {
            assert!(looks_like_credential(yes), "{yes}");
        }
        for no in [
            "PATH",
            "HOME",
            "PWD",
            "OLDPWD",
            "LC_ALL",
            "GIT_AUTHOR_NAME",
            "KEYBOARD_LAYOUT",
            "AWS_REGION",
            "MONKEY",
            "TERM",
            "API_URL",
            "DB_NAME",
            "REGISTRY_URL",
        ] {
            assert!(!looks_like_credential(no), "{no}");
        }
    }

    #[test]
    fn secret_source_files_are_unreadable() {
        let p = policy(&[cli(|l| {
            l.secrets.push(SecretSpec {
                name: "K".into(),
                from: Some(SecretSource::File("/home/u/.tokens/k".into())),
                hosts: vec!["a.example".into()],
            });
        })]);
        assert!(!p.effective(Path::new("/home/u/.tokens/k")).read);
        assert!(p.effective(Path::new("/home/u/.tokens/other")).read);
    }

    #[test]
    fn bad_env_patterns_are_errors() {
        for bad in ["", "A-B", "1X", "A*B", "**"] {
            let l = cli(|l| l.env_allow.push(bad.into()));
            let err = resolve(&[l], &ctx(), &[]).unwrap_err();
            assert!(err.to_string().contains("expected NAME"), "{bad}: {err}");
        }
    }

    #[test]
    fn within_is_on_component_boundaries() {
        assert!(is_within(b"/a/b", b"/a"));
        assert!(is_within(b"/a", b"/a"));
        assert!(is_within(b"/a", b"/"));
        assert!(!is_within(b"/ab", b"/a"));
        assert!(!is_within(b"/a", b"/a/b"));
    }

    #[test]
    fn rule_paths_parents_first() {
        let p = policy(&[cli(|l| {
            l.write_allow.push("/a/b/c".into());
            l.read_deny.push("/a".into());
            l.write_deny.push("/a/b".into());
        })]);
        let paths = p.rule_paths();
        let a = paths.iter().position(|p| p == Path::new("/a")).unwrap();
        let abc = paths.iter().position(|p| p == Path::new("/a/b/c")).unwrap();
        assert!(a < abc);
    }
}

#[cfg(test)]
mod one_grammar_tests;
