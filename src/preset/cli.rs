//! `zerobox preset …` and `zerobox trust …`: clap definitions (shared by
//! `zerobox --help`, the completions and the man page) and what each
//! subcommand does.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use super::registry::{self, Resolver};
use super::schema::Preset;
use super::sign::{self, KeyRing};
use super::signer;
use super::{project, sha256_hex, PresetEnv, PresetError};

/// Signed presets: list, inspect, verify, sign, publish, pull and pin them.
#[derive(Debug, Parser)]
#[command(
    name = "preset",
    bin_name = "zerobox preset",
    subcommand_required = true,
    arg_required_else_help = true,
    after_help = "Examples:\n  zerobox preset list                    # bundled, registry and pinned presets\n  zerobox preset show claude --resolved  # every layer with its origin\n  zerobox preset pin claude@1.0.0        # pin into .zerobox/lock.yaml"
)]
pub struct PresetArgs {
    #[command(subcommand)]
    pub command: PresetCommand,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

/// Flags every preset and trust subcommand takes, before or after its name.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct RegistryFlags {
    /// Refuse an expired registry index (and every weaker fallback).
    #[arg(long, global = true)]
    pub strict: bool,
    /// Never use the network: cached and bundled presets only (also ZEROBOX_OFFLINE=1).
    #[arg(long, global = true)]
    pub offline: bool,
}

#[derive(Debug, Subcommand)]
pub enum PresetCommand {
    /// List bundled, registry and pinned presets.
    #[command(
        after_help = "Examples:\n  zerobox preset list\n  zerobox preset list --offline --json | jq -r '.[].name'"
    )]
    List {
        /// Print a JSON array instead of a table (see docs/presets.md).
        #[arg(long)]
        json: bool,
    },
    /// Print a preset file, or every layer of it with its origin.
    #[command(
        after_help = "Examples:\n  zerobox preset show claude\n  zerobox preset show claude@1.0.0\n  zerobox preset show ./team.yaml --resolved"
    )]
    Show {
        /// A preset name, NAME@VERSION, or a preset file.
        #[arg(value_name = "NAME[@VERSION]|FILE")]
        preset: String,
        /// Show the merged layers (extends, preset, overrides) instead of the file.
        #[arg(long)]
        resolved: bool,
        /// Print JSON instead of text (see docs/presets.md).
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of the preset format.
    #[command(after_help = "Example:\n  zerobox preset schema > preset.schema.json")]
    Schema,
    /// Check FILE.minisig against your trusted keys, then validate FILE.
    #[command(
        after_help = "Example:\n  zerobox preset verify team.yaml      # needs team.yaml.minisig"
    )]
    Verify {
        /// The preset file (its signature is FILE.minisig).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Make a new signing key pair PREFIX.key / PREFIX.pub.
    #[command(
        after_help = "Example:\n  zerobox preset keygen --out ~/keys/team   # ~/keys/team.key, ~/keys/team.pub"
    )]
    Keygen {
        /// Where to write the pair (PREFIX.key, PREFIX.pub).
        #[arg(long, value_name = "PREFIX", default_value = "zerobox-preset")]
        out: PathBuf,
    },
    /// Validate FILE and write its signature FILE.minisig.
    #[command(after_help = "Example:\n  zerobox preset sign team.yaml --key ~/keys/team.key")]
    Sign {
        /// The preset file to sign.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The secret key (from `zerobox preset keygen`).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
    },
    /// Publish FILE into a registry directory and re-sign its index.
    #[command(
        after_help = "Examples:\n  zerobox preset publish team.yaml --registry ./registry --key ~/keys/team.key\n  zerobox preset publish --refresh --registry ./registry --key ~/keys/team.key"
    )]
    Publish {
        /// The preset file (omit with --refresh).
        #[arg(value_name = "FILE", required_unless_present = "refresh")]
        file: Option<PathBuf>,
        /// The registry directory (as served over HTTPS or file://).
        #[arg(long, value_name = "DIR")]
        registry: PathBuf,
        /// The secret key that signs the preset and the index.
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// Days until the index expires.
        #[arg(long, value_name = "DAYS", default_value_t = 90,
              value_parser = clap::value_parser!(u64).range(1..=3650))]
        expires_days: u64,
        /// Only re-sign the index with a new expiry (no FILE).
        #[arg(long, conflicts_with = "file")]
        refresh: bool,
    },
    /// Download a preset from the registry into the cache.
    #[command(
        after_help = "Examples:\n  zerobox preset pull team\n  zerobox preset pull team@1.2.0"
    )]
    Pull {
        /// The preset, latest version unless @VERSION.
        #[arg(value_name = "NAME[@VERSION]", value_parser = parse_spec)]
        preset: PresetSpec,
    },
    /// Pin a preset (and what it extends) into .zerobox/lock.yaml by digest.
    #[command(
        after_help = "Examples:\n  zerobox preset pin claude\n  zerobox preset pin team@1.2.0"
    )]
    Pin {
        /// The preset, latest version unless @VERSION.
        #[arg(value_name = "NAME[@VERSION]", value_parser = parse_spec)]
        preset: PresetSpec,
    },
    /// Refresh the registry index and pull newer versions of cached presets.
    #[command(after_help = "Example:\n  zerobox preset update")]
    Update,
    /// Trust a public key for preset signatures.
    #[command(
        after_help = "Examples:\n  zerobox preset trust-key team.pub\n  zerobox preset trust-key RWQ…   # the base64 line of a .pub file"
    )]
    TrustKey {
        /// A minisign .pub file, or its base64 line.
        #[arg(value_name = "KEY")]
        key: String,
    },
}

/// `NAME[@VERSION]`, checked when parsed.
#[derive(Debug, Clone)]
pub struct PresetSpec {
    pub name: String,
    pub version: Option<semver::Version>,
}

impl std::fmt::Display for PresetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        match &self.version {
            Some(v) => write!(f, "@{v}"),
            None => Ok(()),
        }
    }
}

fn parse_spec(spec: &str) -> Result<PresetSpec, String> {
    split_spec(spec)
        .map(|(name, version)| PresetSpec { name, version })
        .map_err(|e| e.to_string())
}

/// Trust a project's .zerobox/ file (by content hash) so it may widen a policy.
///
/// Shows what each file widens, then asks on a terminal. Without FILE:
/// the project's lock file and every override under .zerobox/.
#[derive(Debug, Parser)]
#[command(
    name = "trust",
    bin_name = "zerobox trust",
    after_help = "Examples:\n  zerobox trust                              # review and trust all of .zerobox/\n  zerobox trust .zerobox/overrides/claude.yaml --yes"
)]
pub struct TrustArgs {
    /// The files to trust (default: the project's lock and override files).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Trust without asking (for scripts; review the printed summary).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

fn system_env(flags: RegistryFlags) -> Result<PresetEnv, PresetError> {
    let cwd = std::env::current_dir().map_err(|e| PresetError::io(Path::new("."), e))?;
    let mut env = PresetEnv::from_system(&cwd, flags.strict)?;
    env.offline |= flags.offline;
    Ok(env)
}

fn report(r: Result<(), PresetError>) -> i32 {
    match r {
        Ok(()) => crate::exit::SUCCESS,
        Err(e) => {
            crate::errln!(
                "zerobox: {}",
                crate::output::one_line(&crate::exit::chain(&e))
            );
            e.exit_code()
        }
    }
}

/// Parse `argv` (the words after `zerobox`'s subcommand name) with `T`'s
/// clap definition; an `Err` is the exit code after help or an error was
/// printed.
fn parse_words<T: Parser>(name: &str, args: Vec<OsString>) -> Result<T, i32> {
    let argv: Vec<OsString> = std::iter::once(OsString::from(name)).chain(args).collect();
    T::try_parse_from(&argv).map_err(|e| {
        let mut cmd = T::command().bin_name(format!("zerobox {name}"));
        cmd.build();
        crate::output::clap_error(&e, &cmd, &argv)
    })
}

/// `zerobox preset …` (args start after "preset"). Exit codes: 0 ok,
/// 1 verification or trust failure, 2 bad input or usage.
pub fn cli_main(args: Vec<OsString>) -> i32 {
    match parse_words::<PresetArgs>("preset", args) {
        Ok(a) => run(a),
        Err(code) => code,
    }
}

/// Run a parsed `zerobox preset …`; returns the exit code.
pub fn run(a: PresetArgs) -> i32 {
    report(run_command(a.command, a.registry))
}

fn run_command(cmd: PresetCommand, flags: RegistryFlags) -> Result<(), PresetError> {
    match cmd {
        PresetCommand::List { json } => list(&system_env(flags)?, json),
        PresetCommand::Show {
            preset,
            resolved,
            json,
        } => show(&preset, resolved, json, &system_env(flags)?),
        PresetCommand::Schema => {
            crate::outln!(
                "{}",
                serde_json::to_string_pretty(&super::json_schema()).unwrap_or_default()
            );
            Ok(())
        }
        PresetCommand::Verify { file } => {
            let env = system_env(flags)?;
            let ring = KeyRing::load(&env)?;
            let sig = sign::sig_path_of(&file);
            if !sig.exists() {
                return Err(PresetError::Signature {
                    file: file.display().to_string(),
                    reason: format!(
                        "no signature {} found; sign it with `zerobox preset sign`",
                        sig.display()
                    ),
                });
            }
            let v = sign::verify_local(&ring, &env, &file)?;
            let p = super::schema::parse_preset(&v)?;
            crate::outln!(
                "ok: {}@{} signed by key {} (sha256 {})",
                p.name,
                p.version,
                v.key_id().unwrap_or("-"),
                p.sha256
            );
            Ok(())
        }
        PresetCommand::Keygen { out } => {
            let out = in_cwd(out);
            let with_ext = |ext: &str| {
                let mut s = out.clone().into_os_string();
                s.push(ext);
                PathBuf::from(s)
            };
            let (skp, pkp) = (with_ext(".key"), with_ext(".pub"));
            if skp.exists() || pkp.exists() {
                return Err(PresetError::Usage(format!(
                    "{} or {} already exists; choose another --out PREFIX",
                    skp.display(),
                    pkp.display()
                )));
            }
            let (sk, pk, id) = signer::keygen()?;
            write_secret(&skp, sk.as_bytes())?;
            super::write_atomic(&pkp, pk.as_bytes())?;
            crate::outln!(
                "key {id}: secret {} (keep it private), public {}",
                skp.display(),
                pkp.display()
            );
            crate::outln!(
                "users trust it with: zerobox preset trust-key {}",
                pkp.display()
            );
            Ok(())
        }
        PresetCommand::Sign { file, key } => {
            let file = in_cwd(file);
            let sk = signer::load_secret_key(&key)?;
            let bytes = super::read_capped(&file, super::MAX_PRESET_BYTES)?;
            let (sig, p) = signer::sign_preset(&sk, &bytes, &file.display().to_string())?;
            super::write_atomic(&sign::sig_path_of(&file), sig.as_bytes())?;
            crate::outln!(
                "signed {}@{} -> {}",
                p.name,
                p.version,
                sign::sig_path_of(&file).display()
            );
            Ok(())
        }
        PresetCommand::Publish {
            file,
            registry: reg,
            key,
            expires_days,
            refresh,
        } => {
            if refresh {
                let serial = registry::refresh_index(&reg, &key, expires_days)?;
                crate::outln!("re-signed {}/index.yaml (serial {serial})", reg.display());
                return Ok(());
            }
            let Some(file) = file else {
                return Err(PresetError::Usage(
                    "publish needs FILE (or --refresh)".into(),
                ));
            };
            let (n, v, serial) = registry::publish(&file, &reg, &key, expires_days)?;
            crate::outln!(
                "published {n}@{v} to {} (index serial {serial})",
                reg.display()
            );
            Ok(())
        }
        PresetCommand::Pull { preset } => {
            let env = system_env(flags)?;
            let mut r = Resolver::ignoring_pins(&env);
            let (p, url) = pick(&mut r, &env, &preset.name, preset.version.as_ref(), true)?;
            crate::outln!("pulled {} (sha256 {}) from {}", p.origin(), p.sha256, url);
            Ok(())
        }
        PresetCommand::Pin { preset } => pin(&system_env(flags)?, &preset),
        PresetCommand::Update => {
            let env = system_env(flags)?;
            if env.offline {
                return Err(PresetError::Usage(
                    "update needs the network; drop --offline".into(),
                ));
            }
            let mut r = Resolver::new(&env);
            let Some((idx, url)) = r.index()? else {
                return Err(PresetError::Usage(
                    "no registry configured: set `registry: URL` in ~/.config/zerobox/config.yaml or ZEROBOX_REGISTRY".into(),
                ));
            };
            crate::outln!(
                "index {url}: serial {}, expires {}",
                idx.serial,
                idx.expires
            );
            let cached: Vec<String> = std::fs::read_dir(env.cache_dir.join("presets"))
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            for name in cached {
                if let Some((v, sha)) = idx.latest(&name) {
                    let p = r.fetch_version(&url, &name, &v, &sha)?;
                    crate::outln!("  {} up to date", p.origin());
                }
            }
            Ok(())
        }
        PresetCommand::TrustKey { key: arg } => {
            let env = system_env(flags)?;
            let text = if Path::new(&arg).is_file() {
                String::from_utf8_lossy(&super::read_capped(Path::new(&arg), 4096)?).into_owned()
            } else {
                arg.clone()
            };
            let (id, b64) = sign::parse_public_key(&text).map_err(|m| {
                PresetError::Usage(format!(
                    "{}: {m}; expected a minisign .pub file or its base64 line",
                    crate::output::quote(&arg)
                ))
            })?;
            let dest = env.config_dir.join("keys").join(format!("{id}.pub"));
            super::write_atomic(
                &dest,
                format!("untrusted comment: zerobox trusted key {id}\n{b64}\n").as_bytes(),
            )?;
            crate::outln!("trusted key {id} ({})", dest.display());
            Ok(())
        }
    }
}

/// `team.yaml` as `./team.yaml`: a bare file name has an empty parent,
/// and `write_atomic` needs a directory for its temporary file (without
/// this, `sign team.yaml` and `keygen --out k` failed with ENOENT after
/// `keygen` had already written the secret key).
fn in_cwd(path: PathBuf) -> PathBuf {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new(".").join(path),
        _ => path,
    }
}

/// `zerobox preset pin NAME[@VERSION]`.
fn pin(env: &PresetEnv, spec: &PresetSpec) -> Result<(), PresetError> {
    // A fresh resolution: the lock file being rewritten does not decide
    // what goes into it.
    let mut r = Resolver::ignoring_pins(env);
    let (p, url) = pick(&mut r, env, &spec.name, spec.version.as_ref(), false)?;
    // Pin the preset and every building block it extends: a pin that
    // covered only the named preset would let a changed building block
    // through.
    let chain = super::chain_of(&mut r, &p)?;
    let mut lock = project::read_lock(&env.project_dir)?.unwrap_or(project::LockFile {
        schema: 1,
        pins: vec![],
    });
    let registry = registry::registry_url(env)?;
    for q in &chain {
        let key = r.key_id_of(q)?;
        let from = if q.name == p.name {
            url.clone()
        } else if q.source == "bundled" {
            "bundled".to_string()
        } else {
            registry.clone().unwrap_or_else(|| url.clone())
        };
        lock.pins.retain(|x| x.name != q.name);
        lock.pins.push(project::Pin {
            name: q.name.clone(),
            version: q.version.to_string(),
            registry: from,
            sha256: q.sha256.clone(),
            key,
        });
    }
    lock.pins.sort_by(|x, y| x.name.cmp(&y.name));
    let path = project::write_lock(env, &lock)?;
    for q in &chain {
        let role = if q.name == p.name {
            ""
        } else {
            " (building block)"
        };
        crate::outln!(
            "pinned {}{role} (sha256 {}) in {}",
            q.origin(),
            q.sha256,
            path.display()
        );
    }
    Ok(())
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), PresetError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| PresetError::io(path, e))?;
    f.write_all(bytes).map_err(|e| PresetError::io(path, e))
}

fn split_spec(spec: &str) -> Result<(String, Option<semver::Version>), PresetError> {
    let (name, ver) = match spec.split_once('@') {
        Some((n, v)) => (
            n,
            Some(semver::Version::parse(v).map_err(|e| {
                PresetError::Usage(format!("{spec:?}: bad version ({e}); expected NAME@1.2.3"))
            })?),
        ),
        None => (spec, None),
    };
    super::check_name(name)?;
    Ok((name.to_string(), ver))
}

/// The preset for pull/pin: from the registry (exact or latest version),
/// else bundled when no registry is configured (pin only).
fn pick(
    r: &mut Resolver,
    env: &PresetEnv,
    name: &str,
    version: Option<&semver::Version>,
    need_registry: bool,
) -> Result<(Preset, String), PresetError> {
    if let Some((idx, url)) = r.index()? {
        let entry = match version {
            Some(v) => idx
                .presets
                .get(name)
                .and_then(|vs| vs.get(&v.to_string()))
                .map(|e| (v.clone(), e.sha256.clone())),
            None => idx.latest(name),
        };
        if let Some((v, sha)) = entry {
            return Ok((r.fetch_version(&url, name, &v, &sha)?, url));
        }
        if need_registry {
            return Err(PresetError::NotFound {
                name: format!(
                    "{name}{}",
                    version.map(|v| format!("@{v}")).unwrap_or_default()
                ),
                hint: format!(" in registry {url}"),
            });
        }
    } else if need_registry {
        return Err(PresetError::Usage(
            "no registry configured: set `registry: URL` in ~/.config/zerobox/config.yaml or ZEROBOX_REGISTRY".into(),
        ));
    }
    let _ = env;
    match r.bundled(name)? {
        Some(p) if version.is_none_or(|v| *v == p.version) => Ok((p, "bundled".into())),
        _ => Err(PresetError::NotFound {
            name: name.into(),
            hint: " among the bundled presets (configure a registry for other versions)".into(),
        }),
    }
}

/// One row of `zerobox preset list --json` (field names are part of the
/// interface: docs/presets.md, "JSON output").
#[derive(serde::Serialize)]
struct ListEntry {
    name: String,
    /// `null` for a bundled preset that does not verify.
    version: Option<String>,
    /// `bundled`, `registry` or `pinned`.
    source: &'static str,
    description: Option<String>,
    /// The registry URL (`registry`), or where a pin points (`pinned`).
    location: Option<String>,
    sha256: Option<String>,
    /// Why a bundled preset is unusable (it does not verify or parse).
    error: Option<String>,
}

fn list(env: &PresetEnv, json: bool) -> Result<(), PresetError> {
    let mut r = Resolver::new(env);
    let mut rows = Vec::new();
    for b in super::bundled::BUNDLED {
        match r.bundled(b.name) {
            Ok(Some(p)) => rows.push(ListEntry {
                name: p.name.clone(),
                version: Some(p.version.to_string()),
                source: "bundled",
                description: p.doc.description.clone(),
                location: None,
                sha256: Some(p.sha256.clone()),
                error: None,
            }),
            Ok(None) => {}
            Err(e) => rows.push(ListEntry {
                name: b.name.to_string(),
                version: None,
                source: "bundled",
                description: None,
                location: None,
                sha256: None,
                error: Some(e.to_string()),
            }),
        }
    }
    let idx = if env.offline {
        None
    } else {
        match r.index() {
            Ok(i) => i,
            // A malformed registry setting is the user's to fix, not a
            // registry being away.
            Err(e @ PresetError::Usage(_)) => return Err(e),
            Err(e) => {
                crate::warn!("{e}");
                None
            }
        }
    };
    if let Some((idx, url)) = idx {
        for (name, versions) in &idx.presets {
            let mut vs: Vec<&String> = versions.keys().collect();
            vs.sort_by_key(|v| semver::Version::parse(v).ok());
            let latest = vs.last().map(|s| s.to_string());
            rows.push(ListEntry {
                name: name.clone(),
                sha256: latest
                    .as_ref()
                    .and_then(|v| versions.get(v))
                    .map(|e| e.sha256.clone()),
                version: latest,
                source: "registry",
                description: None,
                location: Some(url.clone()),
                error: None,
            });
        }
    }
    if let Ok(Some(lock)) = project::read_lock(&env.project_dir) {
        for p in lock.pins {
            rows.push(ListEntry {
                name: p.name,
                version: Some(p.version),
                source: "pinned",
                description: None,
                location: Some(p.registry),
                sha256: Some(p.sha256),
                error: None,
            });
        }
    }
    if json {
        crate::outln!("{}", to_json(&rows));
        return Ok(());
    }
    crate::outln!(
        "{:<24} {:<10} {:<10} DESCRIPTION",
        "NAME",
        "VERSION",
        "SOURCE"
    );
    for row in &rows {
        let version = row.version.as_deref().unwrap_or("-");
        let rest = match (row.source, &row.error) {
            (_, Some(e)) => format!("INVALID: {e}"),
            ("registry", _) => row.location.clone().unwrap_or_default(),
            ("pinned", _) => format!("sha256 {}", row.sha256.as_deref().unwrap_or("-")),
            _ => row.description.clone().unwrap_or_default(),
        };
        crate::outln!(
            "{:<24} {:<10} {:<10} {}",
            row.name,
            version,
            row.source,
            crate::output::one_line(&rest)
        );
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Serializing plain structs of strings cannot fail; an empty object
    // would still parse should it ever.
    serde_json::to_string_pretty(v).unwrap_or_else(|_| "{}".into())
}

/// `zerobox preset show --resolved --json`: the merged layers.
#[derive(serde::Serialize)]
struct ResolvedJson<'a> {
    name: &'a str,
    version: String,
    /// `null` for a building block.
    command: Option<&'a str>,
    layers: Vec<LayerJson<'a>>,
}

#[derive(serde::Serialize)]
struct LayerJson<'a> {
    origin: &'a crate::policy::Origin,
    read_allow: &'a [String],
    read_deny: &'a [String],
    write_allow: &'a [String],
    write_deny: &'a [String],
    net_allow: &'a [String],
    net_allow_any: bool,
    net_deny: &'a [String],
    net_quiet: &'a [String],
    env_allow: &'a [String],
    env_deny: &'a [String],
    env_set: std::collections::BTreeMap<&'a str, &'a str>,
    unix_sockets: &'a [String],
    secrets: Vec<SecretJson<'a>>,
}

#[derive(serde::Serialize)]
struct SecretJson<'a> {
    name: &'a str,
    hosts: &'a [String],
}

/// `zerobox preset show --json`: the file and where it came from.
#[derive(serde::Serialize)]
struct ShowJson<'a> {
    name: &'a str,
    version: String,
    /// `bundled`, `cache`, a registry URL or a file path.
    source: &'a str,
    sha256: &'a str,
    description: Option<&'a str>,
    /// The preset file's text, as signed.
    yaml: String,
}

fn show(what: &str, resolved: bool, json: bool, env: &PresetEnv) -> Result<(), PresetError> {
    // NAME@VERSION: that exact version (from the registry, else bundled).
    let spec = match what.split_once('@') {
        Some(_) if !super::is_file_arg(what) => Some(split_spec(what)?),
        _ => None,
    };
    if resolved {
        let lp = match &spec {
            Some((name, Some(v))) => {
                let lp = super::load(name, env)?;
                if lp.version != *v {
                    return Err(PresetError::Usage(format!(
                        "{name} resolves to {name}@{} here, not {v}: `zerobox preset pin {name}@{v}` makes it the one used",
                        lp.version
                    )));
                }
                lp
            }
            _ => super::load(what, env)?,
        };
        if json {
            let doc = ResolvedJson {
                name: &lp.name,
                version: lp.version.to_string(),
                command: (!lp.command.is_empty()).then_some(lp.command.as_str()),
                layers: lp
                    .layers
                    .iter()
                    .map(|l| LayerJson {
                        origin: &l.origin,
                        read_allow: &l.read_allow,
                        read_deny: &l.read_deny,
                        write_allow: &l.write_allow,
                        write_deny: &l.write_deny,
                        net_allow: &l.net_allow,
                        net_allow_any: l.net_allow_any,
                        net_deny: &l.net_deny,
                        net_quiet: &l.net_quiet,
                        env_allow: &l.env_allow,
                        env_deny: &l.env_deny,
                        env_set: l
                            .env_set
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                            .collect(),
                        unix_sockets: &l.unix_sockets,
                        secrets: l
                            .secrets
                            .iter()
                            .map(|s| SecretJson {
                                name: &s.name,
                                hosts: &s.hosts,
                            })
                            .collect(),
                    })
                    .collect(),
            };
            crate::outln!("{}", to_json(&doc));
            return Ok(());
        }
        crate::outln!(
            "# {}@{} (command: {})",
            lp.name,
            lp.version,
            if lp.command.is_empty() {
                "-"
            } else {
                &lp.command
            }
        );
        for l in &lp.layers {
            crate::outln!("\n## {}", l.origin);
            let groups: [(&str, &Vec<String>); 10] = [
                ("filesystem.read.allow", &l.read_allow),
                ("filesystem.read.deny", &l.read_deny),
                ("filesystem.write.allow", &l.write_allow),
                ("filesystem.write.deny", &l.write_deny),
                ("network.allow", &l.net_allow),
                ("network.deny", &l.net_deny),
                ("network.quiet", &l.net_quiet),
                ("env.allow", &l.env_allow),
                ("env.deny", &l.env_deny),
                ("unix_sockets", &l.unix_sockets),
            ];
            for (k, v) in groups {
                if !v.is_empty() {
                    crate::outln!("{k}: {}", v.join(", "));
                }
            }
            if l.net_allow_any {
                crate::outln!("network.allow: * (any host)");
            }
            for (k, v) in &l.env_set {
                crate::outln!("env.set: {k}={v}");
            }
            for s in &l.secrets {
                crate::outln!("secret: {} -> {}", s.name, s.hosts.join(", "));
            }
        }
        return Ok(());
    }
    let mut r = Resolver::new(env);
    let p = match &spec {
        Some((name, Some(v))) => pick(&mut r, env, name, Some(v), false)?.0,
        _ if super::is_file_arg(what) => r.load_file(Path::new(what))?,
        _ => r.load_named(what)?,
    };
    let bytes = if p.source == "bundled" {
        super::bundled::find(&p.name)
            .map(|b| b.yaml.to_vec())
            .unwrap_or_default()
    } else if super::is_file_arg(what) {
        std::fs::read(what).unwrap_or_default()
    } else {
        std::fs::read(registry::cached_preset_path(
            env,
            &p.name,
            &p.version.to_string(),
        ))
        .unwrap_or_default()
    };
    let text = String::from_utf8_lossy(&bytes);
    if json {
        let doc = ShowJson {
            name: &p.name,
            version: p.version.to_string(),
            source: &p.source,
            sha256: &p.sha256,
            description: p.doc.description.as_deref(),
            yaml: text.into_owned(),
        };
        crate::outln!("{}", to_json(&doc));
        return Ok(());
    }
    crate::outln!("# {} from {} (sha256 {})", p.origin(), p.source, p.sha256);
    crate::out!("{text}");
    Ok(())
}

/// `zerobox trust [FILE…] [--yes]`: trust the exact content of a project
/// file (`.zerobox/lock.yaml`, `.zerobox/overrides/NAME.yaml`) or an
/// unsigned local preset file, for this project and this path only.
/// Without FILE: every file under the project's `.zerobox/`. Shows what each
/// file widens, then asks on a terminal; `--yes` confirms for scripts, and
/// without a terminal and without `--yes` nothing is trusted (exit 2).
pub fn trust_main(args: Vec<OsString>) -> i32 {
    match parse_words::<TrustArgs>("trust", args) {
        Ok(a) => trust(a),
        Err(code) => code,
    }
}

/// Run a parsed `zerobox trust …`; returns the exit code.
pub fn trust(a: TrustArgs) -> i32 {
    report((|| {
        let env = system_env(a.registry)?;
        let files: Vec<PathBuf> = match a.files.as_slice() {
            [] => {
                let dir = env.project_dir.join(".zerobox");
                let mut v = vec![];
                let lock = project::lock_path(&env.project_dir);
                if super::present(&lock)? {
                    v.push(lock);
                }
                let ov_dir = dir.join("overrides");
                if super::present(&ov_dir)? {
                    let rd = std::fs::read_dir(&ov_dir).map_err(|e| PresetError::Unreadable {
                        path: ov_dir.display().to_string(),
                        source: e,
                    })?;
                    let mut o: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
                    o.sort();
                    v.extend(o);
                }
                if v.is_empty() {
                    return Err(PresetError::Usage(format!(
                        "nothing to trust: no {} found",
                        dir.display()
                    )));
                }
                v
            }
            files => files.to_vec(),
        };
        // Review everything first: a file that does not parse is refused
        // before anything is trusted.
        let mut reviewed = Vec::new();
        for f in files {
            let rf = super::read_real(&f, super::MAX_PRESET_BYTES)?;
            let sha = sha256_hex(&rf.bytes);
            let what = review(&f, &rf.bytes)?;
            reviewed.push((f, rf.real, sha, what));
        }
        let root = std::fs::canonicalize(&env.project_dir).unwrap_or(env.project_dir.clone());
        for (f, _, sha, what) in &reviewed {
            crate::outln!(
                "{} (sha256 {sha}), for project {}:",
                f.display(),
                root.display()
            );
            for line in what {
                crate::outln!("  {line}");
            }
        }
        if !a.yes {
            use std::io::IsTerminal;
            if !std::io::stdin().is_terminal() {
                return Err(PresetError::Usage(
                    "zerobox trust asks for confirmation on a terminal and stdin is none; review the files above and pass --yes to trust them from a script".into(),
                ));
            }
            crate::err_prompt!(
                "trust {} for this project? [y/N] ",
                if reviewed.len() == 1 {
                    "this file"
                } else {
                    "these files"
                }
            );
            let mut answer = String::new();
            std::io::stdin()
                .read_line(&mut answer)
                .map_err(|e| PresetError::io(Path::new("stdin"), e))?;
            if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
                return Err(PresetError::Untrusted {
                    file: reviewed
                        .iter()
                        .map(|(f, ..)| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    message: "not trusted (you did not answer y)".into(),
                });
            }
        }
        for (f, real, sha, _) in &reviewed {
            sign::record_trust(&env, real, sha)?;
            crate::outln!("trusted {} (sha256 {sha})", f.display());
        }
        Ok(())
    })())
}

/// What trusting `file` would let it do, one line each; an error when it
/// does not parse (nothing is trusted that zerobox cannot read).
fn review(f: &Path, bytes: &[u8]) -> Result<Vec<String>, PresetError> {
    let file = f.display().to_string();
    let name = f
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let in_overrides = f
        .parent()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "overrides");
    if name == "lock.yaml" {
        let lock: project::LockFile = super::yaml::parse(bytes, &file)?;
        let mut out: Vec<String> = lock
            .pins
            .iter()
            .map(|p| {
                format!(
                    "pins {}@{} (sha256 {}, key {}) from {}",
                    p.name, p.version, p.sha256, p.key, p.registry
                )
            })
            .collect();
        if out.is_empty() {
            out.push("pins nothing".into());
        }
        return Ok(out);
    }
    let doc = if in_overrides {
        super::schema::parse_override(bytes, &file)?
    } else {
        // An unsigned local preset: parsed for review only; it is verified
        // (by this trust) when it is loaded.
        super::yaml::parse::<super::schema::PresetDoc>(bytes, &file)?
    };
    let mut out: Vec<String> = doc
        .widening_entries()
        .into_iter()
        .map(|w| format!("widens: {w}"))
        .collect();
    if !in_overrides {
        if let Some(c) = &doc.command {
            out.insert(0, format!("runs: {}", c.value));
        }
    }
    if out.is_empty() {
        out.push("only narrows (deny entries); it applies without trust too".into());
    }
    Ok(out)
}
